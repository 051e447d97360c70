//! The audit chain as a whole: walking it to verify, signing checkpoints of
//! its head, exporting it. Operators' tools (`sharedcare audit …`) and
//! tests call these; they read the store directly and never change a
//! record (a checkpoint is only added over a chain just verified).
//!
//! Signing is passed in (`sign`, `signature_ok`): core holds no keys.

use std::collections::HashMap;
use std::io::Write;

use store::Store;
use store::audit::{AuditQuery, Checkpoint, checkpoint_message};

use crate::error::{CoreError, Result};

/// Rows read per store call while walking the chain.
const PAGE: usize = 20_000;

/// What [`verify`] found.
#[derive(Debug)]
pub struct Report {
    /// Records checked (before the problem, if any).
    pub records: u64,
    /// Checkpoints whose hash and signature verified.
    pub checkpoints: usize,
    /// The last verified record's seq and hash.
    pub head: Option<(i64, String)>,
    /// The first problem; `None` when the chain is intact.
    pub problem: Option<audit::Problem>,
}

/// Walks the whole chain in `seq` order, then checks every checkpoint
/// (its hash against the walked chain, its signature with
/// `signature_ok`). Stops at the first problem.
pub async fn verify<S: Store>(
    store: &S,
    signature_ok: impl Fn(&Checkpoint) -> bool,
) -> Result<Report> {
    let checkpoints = store.audit_checkpoints().await?;
    let wanted: HashMap<i64, ()> = checkpoints.iter().map(|c| (c.seq, ())).collect();
    let mut hashes_at: HashMap<i64, String> = HashMap::new();
    let mut v = audit::Verifier::new();
    let mut after = None;
    let mut problem = None;
    'walk: loop {
        let rows = store
            .audit_rows(&AuditQuery {
                after,
                limit: PAGE,
                without_patients: true,
                ..Default::default()
            })
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.seq);
        for row in &rows {
            if let Err(p) = v.push(row) {
                problem = Some(p);
                break 'walk;
            }
            if wanted.contains_key(&row.seq) {
                hashes_at.insert(row.seq, row.hash.clone());
            }
        }
        if rows.len() < PAGE {
            break;
        }
    }
    let mut verified = 0;
    if problem.is_none() {
        for cp in &checkpoints {
            let at = hashes_at.get(&cp.seq).map(String::as_str);
            if let Err(p) = v.check_checkpoint(cp, at, signature_ok(cp)) {
                problem = Some(p);
                break;
            }
            verified += 1;
        }
    }
    Ok(Report {
        records: v.checked(),
        checkpoints: verified,
        head: v.head(),
        problem,
    })
}

/// Verifies the chain, then signs (`sign` over [`checkpoint_message`]) and
/// stores a checkpoint of its head. `None` for an empty log; an error,
/// signing nothing, when the chain does not verify.
pub async fn checkpoint<S: Store>(
    store: &S,
    kid: &str,
    sign: impl Fn(&[u8]) -> String,
    signature_ok: impl Fn(&Checkpoint) -> bool,
    now: store::Micros,
) -> Result<(Report, Option<Checkpoint>)> {
    let report = verify(store, signature_ok).await?;
    if report.problem.is_some() {
        return Ok((report, None));
    }
    let Some((seq, hash)) = report.head.clone() else {
        return Ok((report, None));
    };
    let cp = Checkpoint {
        seq,
        signature: sign(checkpoint_message(seq, &hash).as_bytes()),
        hash,
        time: now,
        kid: kid.to_owned(),
    };
    store.add_audit_checkpoint(&cp).await?;
    Ok((report, Some(cp)))
}

/// Why an export stopped.
#[derive(Debug)]
pub enum ExportError {
    Store(CoreError),
    Write(std::io::Error),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Store(e) => write!(f, "reading the audit log: {e}"),
            ExportError::Write(e) => write!(f, "writing the export: {e}"),
        }
    }
}

/// Writes every record as one NDJSON line: `seq`, `time`, `prev_hash`,
/// `hash`, `patients`, and `record` (the stored text verbatim, as a JSON
/// string, so that the export can be verified again). Returns the number
/// of lines.
pub async fn export<S: Store>(
    store: &S,
    out: &mut dyn Write,
) -> std::result::Result<u64, ExportError> {
    let io = ExportError::Write;
    let mut after = None;
    let mut n = 0u64;
    loop {
        let rows = store
            .audit_rows(&AuditQuery {
                after,
                limit: PAGE,
                ..Default::default()
            })
            .await
            .map_err(|e| ExportError::Store(e.into()))?;
        let Some(last) = rows.last() else { break };
        after = Some(last.seq);
        for r in &rows {
            let line = serde_json::json!({
                "seq": r.seq,
                "time": r.time,
                "prev_hash": r.prev_hash,
                "hash": r.hash,
                "patients": r.patients,
                "record": r.record,
            });
            writeln!(out, "{line}").map_err(io)?;
            n += 1;
        }
        if rows.len() < PAGE {
            break;
        }
    }
    out.flush().map_err(io)?;
    Ok(n)
}
