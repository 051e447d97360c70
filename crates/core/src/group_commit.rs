//! Group commit for the audit records of requests that write nothing
//! else (reads, searches, refusals).
//!
//! Every such request must have its record committed before its response
//! leaves. Committing each alone costs one durable commit (an fsync) per
//! read; instead, records that arrive while a commit is under way wait for
//! it to finish and then go together in the next one. One request at a time
//! is the leader: it takes every waiting record and appends them in one
//! store transaction; the others find their result when they get the lock.
//!
//! Invariants:
//! - A record's result is reported only after the transaction holding it
//!   committed (or failed): nobody is told "appended" early.
//! - A record is in exactly one of: waiting, being appended by the leader,
//!   done. If a leader is cancelled mid-append (its client went away), the
//!   records it took get no result; their requests see that and fail
//!   rather than wait forever or go unaudited.

use std::collections::HashMap;
use std::sync::Mutex;

use store::Store;
use store::audit::NewAudit;

use crate::error::{CoreError, Result};

#[derive(Default)]
struct Queue {
    next: u64,
    waiting: Vec<(u64, NewAudit)>,
    done: HashMap<u64, std::result::Result<i64, ()>>,
}

#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
    leader: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends `record` (with whatever else is waiting) and returns its
    /// seq once committed.
    pub(crate) async fn append<S: Store>(&self, store: &S, record: NewAudit) -> Result<i64> {
        let ticket = {
            let mut q = self.queue();
            let t = q.next;
            q.next += 1;
            q.waiting.push((t, record));
            t
        };
        loop {
            let _leader = self.leader.lock().await;
            let batch = {
                let mut q = self.queue();
                if let Some(r) = q.done.remove(&ticket) {
                    return r.map_err(|()| CoreError::AuditFailed);
                }
                if !q.waiting.iter().any(|(t, _)| *t == ticket) {
                    // Taken by a leader that never finished.
                    return Err(CoreError::AuditFailed);
                }
                std::mem::take(&mut q.waiting)
            };
            let records: Vec<NewAudit> = batch.iter().map(|(_, r)| r.clone()).collect();
            let result = store.append_audit(&records).await;
            let mut q = self.queue();
            match &result {
                Ok(seqs) if seqs.len() == batch.len() => {
                    for ((t, _), seq) in batch.iter().zip(seqs) {
                        q.done.insert(*t, Ok(*seq));
                    }
                }
                Ok(_) | Err(_) => {
                    if let Err(e) = &result {
                        tracing::error!(error = %e, records = batch.len(), "audit append failed");
                    }
                    for (t, _) in &batch {
                        q.done.insert(*t, Err(()));
                    }
                }
            }
            // Our own result is now in `done`: the next turn returns it.
        }
    }
}
