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
/// Pages fetched ahead of the one being checked.
const AHEAD: usize = 3;

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
    verify_paged(store, signature_ok, PAGE).await
}

async fn verify_paged<S: Store>(
    store: &S,
    signature_ok: impl Fn(&Checkpoint) -> bool,
    page_size: usize,
) -> Result<Report> {
    let checkpoints = store.audit_checkpoints().await?;
    let wanted: HashMap<i64, ()> = checkpoints.iter().map(|c| (c.seq, ())).collect();
    let mut hashes_at: HashMap<i64, String> = HashMap::new();
    let mut v = audit::Verifier::new();
    let mut problem = None;
    // Pages are fetched ahead, several at once (PostgreSQL serves each on
    // its own backend), while the current one is checked on this thread.
    // Sequence numbers have no gaps in an intact log, so page `k` is
    // guessed to start after `k * PAGE`; a page is used only when its first
    // record follows the last one checked, and otherwise (a gap: something
    // was deleted or moved) the walk fetches exactly what follows, so the
    // verifier sees every record in order either way.
    let fetch = |after: Option<i64>| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .audit_rows(&AuditQuery {
                    after,
                    limit: page_size,
                    without_patients: true,
                    ..Default::default()
                })
                .await
        })
    };
    let page = i64::try_from(page_size).unwrap_or(i64::MAX);
    let mut ahead: std::collections::VecDeque<(i64, tokio::task::JoinHandle<_>)> =
        std::collections::VecDeque::new();
    let mut last: i64 = 0;
    let mut planned: i64 = 0;
    'walk: loop {
        while ahead.len() < AHEAD {
            ahead.push_back((planned, fetch(Some(planned))));
            planned = planned.saturating_add(page);
        }
        let Some((after, pending)) = ahead.pop_front() else {
            break;
        };
        let mut rows = pending.await.map_err(|_| CoreError::Internal)??;
        if after != last || rows.first().is_some_and(|r| r.seq != last + 1) {
            // The guess was off: fetch exactly what follows, and plan the
            // pages after it afresh.
            ahead.clear();
            rows = store
                .audit_rows(&AuditQuery {
                    after: Some(last),
                    limit: page_size,
                    without_patients: true,
                    ..Default::default()
                })
                .await?;
            planned = rows.last().map_or(last, |r| r.seq);
        }
        let Some(end) = rows.last().map(|r| r.seq) else {
            break;
        };
        for row in &rows {
            if let Err(p) = v.push(row) {
                problem = Some(p);
                break 'walk;
            }
            if wanted.contains_key(&row.seq) {
                hashes_at.insert(row.seq, row.hash.clone());
            }
        }
        last = end;
        if rows.len() < page_size {
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

#[cfg(test)]
mod tests {
    use super::*;
    use store::audit::NewAudit;

    /// The walk's read-ahead guesses page boundaries from sequence numbers:
    /// an intact log verifies whole across many pages, and a record
    /// deleted (or moved) in a later page is still found exactly, on the
    /// fallback path.
    #[tokio::test]
    async fn paged_walk_finds_problems_beyond_the_first_pages() {
        let dir = store_conformance::TempDir::new("core-verify-paged");
        let path = dir.path().join("db.sqlite");
        let s = store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(&path)).unwrap();
        let records: Vec<NewAudit> = (0..50)
            .map(|i| NewAudit {
                time: 1_000 + i,
                patients: vec![],
                record: format!(r#"{{"n":{i}}}"#),
            })
            .collect();
        s.append_audit(&records).await.unwrap();
        for page in [1, 7, 49, 50, 51] {
            let r = verify_paged(&s, |_| true, page).await.unwrap();
            assert!(r.problem.is_none(), "page {page}: {:?}", r.problem);
            assert_eq!(r.records, 50, "page {page}");
        }
        let c = rusqlite::Connection::open(store_sqlite::audit_path(&path)).unwrap();
        c.execute_batch(
            "DROP TRIGGER audit_log_append_only_update; DROP TRIGGER audit_log_append_only_delete; \
             DELETE FROM audit_log WHERE seq = 23;",
        )
        .unwrap();
        for page in [1, 7, 22, 23, 50] {
            let r = verify_paged(&s, |_| true, page).await.unwrap();
            let p = r
                .problem
                .unwrap_or_else(|| panic!("page {page}: not found"));
            assert_eq!(
                (p.seq, p.kind),
                (23, audit::ProblemKind::Deleted),
                "page {page}"
            );
        }
        // Moved: record 40 renumbered past the end.
        c.execute_batch("UPDATE audit_log SET seq = 60 WHERE seq = 40; INSERT INTO audit_log SELECT 23, time, record, prev_hash, hash FROM audit_log WHERE seq = 60;")
            .unwrap();
        let r = verify_paged(&s, |_| true, 7).await.unwrap();
        let p = r.problem.unwrap();
        assert!(p.seq == 23 || p.seq == 24, "{p:?}");
    }
}
