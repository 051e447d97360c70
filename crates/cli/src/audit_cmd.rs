//! `sharedcare audit …`: the operator's side of `core::audit_log`.

use std::time::Instant;

use sharedcare_core::audit_log;
use store::Store;
use store::audit::{Checkpoint, checkpoint_message};

fn signature_ok(key: &auth::IssuerKey) -> impl Fn(&Checkpoint) -> bool + '_ {
    move |cp| {
        cp.kid == key.kid()
            && key.verify(
                checkpoint_message(cp.seq, &cp.hash).as_bytes(),
                &cp.signature,
            )
    }
}

fn print(report: &audit_log::Report, seconds: f64) {
    let rate = if seconds > 0.0 {
        report.records as f64 / seconds
    } else {
        0.0
    };
    match &report.problem {
        None => println!(
            "audit chain intact: {} records, {} signed checkpoints verified ({seconds:.2} s, {rate:.0} records/s)",
            report.records, report.checkpoints
        ),
        Some(p) => println!(
            "AUDIT CHAIN BROKEN at record {} ({}): {} ({} records verified before it)",
            p.seq,
            p.kind.as_str(),
            p.message,
            report.records
        ),
    }
}

/// Exit non-zero (an `Err`) when the chain does not verify.
pub async fn verify<S: Store>(store: &S, key: &auth::IssuerKey) -> Result<(), String> {
    let started = Instant::now();
    let report = audit_log::verify(store, signature_ok(key))
        .await
        .map_err(|e| format!("reading the audit log: {e}"))?;
    print(&report, started.elapsed().as_secs_f64());
    match report.problem {
        None => Ok(()),
        Some(_) => Err("the audit chain does not verify".to_owned()),
    }
}

pub async fn checkpoint<S: Store>(
    store: &S,
    key: &auth::IssuerKey,
    now: store::Micros,
) -> Result<(), String> {
    let started = Instant::now();
    let (report, cp) =
        audit_log::checkpoint(store, key.kid(), |m| key.sign(m), signature_ok(key), now)
            .await
            .map_err(|e| format!("audit checkpoint: {e}"))?;
    print(&report, started.elapsed().as_secs_f64());
    match (report.problem, cp) {
        (Some(_), _) => Err("refusing to sign a broken audit chain".to_owned()),
        (None, Some(cp)) => {
            println!("checkpoint signed at record {} ({})", cp.seq, cp.hash);
            Ok(())
        }
        (None, None) => {
            println!("the audit log is empty: nothing to sign");
            Ok(())
        }
    }
}

pub async fn export<S: Store>(store: &S, out: &mut dyn std::io::Write) -> Result<u64, String> {
    audit_log::export(store, out)
        .await
        .map_err(|e| format!("audit export: {e}"))
}
