//! Group commit for the audit records of requests that write nothing
//! else (reads, searches, refusals).
//!
//! Every such request must have its record committed before its response
//! leaves. Committing each alone costs one durable commit (an fsync) per
//! read; instead, one committer task per service takes every record that
//! is waiting, appends them in one store transaction, tells each request
//! its result, and takes the next lot: the records that arrived while it
//! was committing. Requests wait on their own reply, so nothing queues
//! behind the committer's lock and the next commit starts as soon as the
//! last one ends (an earlier design passed a leader's lock from request to
//! request, and each commit waited for that chain of wake-ups).
//!
//! Invariants:
//! - A record's result is reported only after the transaction holding it
//!   committed (or failed): nobody is told "appended" early.
//! - Every record sent is committed or failed, in the order sent, even
//!   when its request has gone away meanwhile (the client disconnected):
//!   the committer owns the records, not the requests.
//! - A request whose committer has gone (its runtime shut down) starts a
//!   new one rather than wait forever or go unaudited.

use std::sync::Mutex;

use store::Store;
use store::audit::NewAudit;
use tokio::sync::{mpsc, oneshot};

use crate::error::{CoreError, Result};

/// The most records one transaction takes (a bound on its size and on how
/// long the first of them waits).
const MAX_BATCH: usize = 1024;

type Reply = oneshot::Sender<std::result::Result<i64, ()>>;

#[derive(Default)]
pub(crate) struct GroupCommit {
    /// The committer's queue; `None` until the first append.
    queue: Mutex<Option<mpsc::UnboundedSender<(NewAudit, Reply)>>>,
}

impl GroupCommit {
    /// Appends `record` (with whatever else is waiting) and returns its
    /// seq once committed.
    pub(crate) async fn append<S: Store>(&self, store: &S, record: NewAudit) -> Result<i64> {
        let (reply, result) = oneshot::channel();
        self.send(store, (record, reply));
        match result.await {
            Ok(Ok(seq)) => Ok(seq),
            // Failed, or the committer went away with it.
            Ok(Err(())) | Err(_) => Err(CoreError::AuditFailed),
        }
    }

    fn send<S: Store>(&self, store: &S, item: (NewAudit, Reply)) {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let item = match queue.as_ref() {
            Some(q) => match q.send(item) {
                Ok(()) => return,
                Err(mpsc::error::SendError(item)) => item,
            },
            None => item,
        };
        // No committer yet, or it ended with the runtime it ran on.
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(commit_loop(store.clone(), rx));
        // The receiver is alive (just spawned): a failed send drops the
        // reply, and the request reports the audit failure.
        let _ = tx.send(item);
        *queue = Some(tx);
    }
}

/// The committer: runs until every sender is gone (the service dropped).
async fn commit_loop<S: Store>(store: S, mut queue: mpsc::UnboundedReceiver<(NewAudit, Reply)>) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (records, replies): (Vec<NewAudit>, Vec<Reply>) = batch.drain(..).unzip();
        let result = store.append_audit(&records).await;
        match result {
            Ok(seqs) if seqs.len() == replies.len() => {
                for (reply, seq) in replies.into_iter().zip(seqs) {
                    let _ = reply.send(Ok(seq));
                }
            }
            Ok(_) | Err(_) => {
                if let Err(e) = &result {
                    tracing::error!(error = %e, records = records.len(), "audit append failed");
                }
                for reply in replies {
                    let _ = reply.send(Err(()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn record(i: i64) -> NewAudit {
        NewAudit {
            time: i,
            patients: vec![],
            record: format!(r#"{{"n":{i}}}"#),
        }
    }

    /// Concurrent appends each get their own place in the chain; a failed
    /// commit fails every request in it and the committer carries on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_append_is_committed_once_or_reported_failed() {
        let dir = store_conformance::TempDir::new("core-group-commit");
        let path = dir.path().join("t.db");
        let store =
            store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(&path)).unwrap();
        let group = Arc::new(GroupCommit::default());
        let spawn_appends = |from: i64, to: i64| {
            (from..to)
                .map(|i| {
                    let (group, store) = (group.clone(), store.clone());
                    tokio::spawn(async move { group.append(&store, record(i)).await })
                })
                .collect::<Vec<_>>()
        };
        let mut seqs = Vec::new();
        for t in spawn_appends(0, 64) {
            seqs.push(t.await.unwrap().unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=64).collect::<Vec<i64>>());

        let raw = rusqlite::Connection::open(store_sqlite::audit_path(&path)).unwrap();
        raw.execute_batch(
            "CREATE TRIGGER broken BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        )
        .unwrap();
        for t in spawn_appends(64, 80) {
            assert!(matches!(t.await.unwrap(), Err(CoreError::AuditFailed)));
        }
        raw.execute_batch("DROP TRIGGER broken;").unwrap();
        assert_eq!(group.append(&store, record(80)).await.unwrap(), 65);
    }
}
