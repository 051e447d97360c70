//! Walking the audit hash chain and saying, in plain English, where and how
//! it was tampered with.
//!
//! Feed a [`Verifier`] the rows in ascending `seq` order, as read from the
//! store, then check each signed checkpoint against the hashes it verified.
//! The first problem stops verification: every later push returns it again.
//!
//! Invariants of a sound chain (see [`store::audit`]): `seq` runs 1, 2, 3, …
//! with no gaps; the first row's `prev_hash` is [`GENESIS`]; each later
//! row's `prev_hash` is its predecessor's `hash`; and every row's `hash` is
//! `chain_hash(prev_hash, seq, record)` over the *stored* record text.
//!
//! How each problem is recognised (row `r`, expected next seq `e`):
//! - **Altered**: `r.hash` is not `chain_hash(r.prev_hash, r.seq, r.record)`
//!   and no seq within 1,000 of `r.seq` explains it either. This covers an
//!   edited record, an edited `prev_hash`, and an edited `hash`.
//! - **Reordered**: `r.hash` matches its content under some other seq `s'`
//!   within 1,000 of `r.seq`: the row was written as record `s'` and has
//!   been moved or renumbered (e.g. two rows' seqs swapped).
//! - **Deleted**: `r` is self-consistent but `r.seq > e`: records `e` to
//!   `r.seq - 1` are missing. Reported at `e`.
//! - **Inserted**: `r` is self-consistent and `r.seq < e` (a duplicate
//!   seq); or `r.seq == e` but `r.prev_hash` is not the previous row's hash.
//!   If `r` was written to follow the *previous row's* predecessor (its
//!   `prev_hash` equals the previous row's `prev_hash`, or its hash shows it
//!   was written one seq lower), the previous row is the interloper: it is
//!   reported, and [`Verifier::head`] steps back past it. Otherwise the
//!   problem is reported at `r` itself.
//!
//! Limits, honestly:
//! - These are heuristics for naming the damage; *that* the chain is
//!   damaged is certain whenever any rule fires. Some tampering fits more
//!   than one story: a deletion followed by renumbering the later rows
//!   down looks like a reordering; a record that was altered *and*
//!   re-hashed looks like an insertion at the next record ("does not
//!   follow"); a duplicated seq cannot say which copy is the forgery.
//! - Deleting the *last* rows leaves a shorter chain that is perfectly
//!   sound. Only a checkpoint at or after a deleted row reveals it
//!   ("the chain ends before checkpoint N").
//! - Anyone with write access to the store can rewrite a record and
//!   recompute every later hash; the rows alone then verify. Only a signed
//!   checkpoint taken before the rewrite catches that, and only if the
//!   signing key was not also taken. That is what checkpoints are for:
//!   check them all.
//!
//! Memory is constant: the verifier keeps the last two good rows' seq and
//! hash, not the chain. To check a checkpoint below the head, the caller
//! passes the hash it saw verified at that seq.

use std::fmt;

use store::audit::{AuditRow, Checkpoint, GENESIS, chain_hash};

/// How far either side of a row's seq to look for the seq its hash was
/// written under.
const REORDER_WINDOW: i64 = 1_000;

/// What kind of damage was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    Altered,
    Deleted,
    Inserted,
    Reordered,
    BadCheckpoint,
}

impl ProblemKind {
    /// A stable lowercase code.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Altered => "altered",
            ProblemKind::Deleted => "deleted",
            ProblemKind::Inserted => "inserted",
            ProblemKind::Reordered => "reordered",
            ProblemKind::BadCheckpoint => "bad-checkpoint",
        }
    }
}

/// The first damage found. `seq` is the record (or checkpoint) it is
/// reported at; `message` is a plain-English sentence naming only
/// sequence numbers, never record content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub seq: i64,
    pub kind: ProblemKind,
    pub message: String,
}

impl Problem {
    fn new(seq: i64, kind: ProblemKind, message: String) -> Problem {
        Problem { seq, kind, message }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

/// Streaming chain verification. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    /// The last good row: (seq, hash).
    head: Option<(i64, String)>,
    /// The good row before it, if any.
    before_head: Option<(i64, String)>,
    checked: u64,
    failed: Option<Problem>,
}

impl Verifier {
    pub fn new() -> Self {
        Verifier::default()
    }

    /// Check the next row. Rows must come in ascending `seq` order as the
    /// store returns them. After the first problem, every call returns that
    /// problem again.
    pub fn push(&mut self, row: &AuditRow) -> Result<(), Problem> {
        if let Some(p) = &self.failed {
            return Err(p.clone());
        }
        match self.check(row) {
            Ok(()) => {
                self.before_head = self.head.take();
                self.head = Some((row.seq, row.hash.clone()));
                self.checked = self.checked.saturating_add(1);
                Ok(())
            }
            Err(Found {
                problem,
                head_is_bad,
            }) => {
                if head_is_bad {
                    // The head row was the interloper: it is not good.
                    self.head = self.before_head.take();
                    self.checked = self.checked.saturating_sub(1);
                }
                self.failed = Some(problem.clone());
                Err(problem)
            }
        }
    }

    /// How many rows have been verified good.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The last good row's seq and hash (`None` before the first).
    pub fn head(&self) -> Option<(i64, String)> {
        self.head.clone()
    }

    /// The first problem found, if any.
    pub fn problem(&self) -> Option<&Problem> {
        self.failed.as_ref()
    }

    /// Check a checkpoint against the verified chain. Call it after pushing
    /// every row (or at least every row up to `cp.seq`). `hash_at` is the
    /// hash the verifier accepted for row `cp.seq` (the caller remembers it
    /// while pushing); it may be `None` when `cp.seq` is the head.
    /// `signature_ok` is whether the caller verified `cp.signature` over
    /// [`store::audit::checkpoint_message`] with the key `cp.kid`.
    pub fn check_checkpoint(
        &self,
        cp: &Checkpoint,
        hash_at: Option<&str>,
        signature_ok: bool,
    ) -> Result<(), Problem> {
        let bad = |message: String| Err(Problem::new(cp.seq, ProblemKind::BadCheckpoint, message));
        let n = cp.seq;
        if !signature_ok {
            return bad(format!("checkpoint {n}'s signature is not valid"));
        }
        if n < 1 {
            return bad(format!("checkpoint {n} does not name a record"));
        }
        let head_seq = self.head.as_ref().map_or(0, |(s, _)| *s);
        if n > head_seq {
            return if self.failed.is_some() {
                bad(format!(
                    "checkpoint {n} could not be checked: the chain is broken before it"
                ))
            } else {
                bad(format!("the chain ends before checkpoint {n}"))
            };
        }
        let verified = match (hash_at, &self.head) {
            (Some(h), _) => h,
            (None, Some((s, h))) if *s == n => h.as_str(),
            (None, _) => {
                return bad(format!(
                    "checkpoint {n} could not be checked: the hash of record {n} was not kept"
                ));
            }
        };
        if verified != cp.hash {
            return bad(format!(
                "checkpoint {n} does not match the chain: the records up to {n} were rewritten"
            ));
        }
        Ok(())
    }

    /// The rules of the module docs, for one row. Does not change state.
    fn check(&self, row: &AuditRow) -> Result<(), Found> {
        let seq = row.seq;
        let expected_seq = self.head.as_ref().map_or(1, |(s, _)| s.saturating_add(1));
        let expected_prev = self.head.as_ref().map_or(GENESIS, |(_, h)| h.as_str());

        if chain_hash(&row.prev_hash, seq, &row.record) != row.hash {
            return match written_as(row) {
                Some(s) if self.is_pushed_up(row, s) => Err(self.inserted_at_head()),
                Some(s) => Err(Found::at_row(
                    seq,
                    ProblemKind::Reordered,
                    format!("record {seq} is out of order: it was written as record {s}"),
                )),
                None => Err(Found::at_row(
                    seq,
                    ProblemKind::Altered,
                    format!("record {seq} was altered: its hash does not match its content"),
                )),
            };
        }
        if seq < expected_seq {
            return Err(Found::at_row(
                seq,
                ProblemKind::Inserted,
                format!(
                    "record {seq} appears more than once: a copy or a forged record was inserted"
                ),
            ));
        }
        if seq > expected_seq {
            let last_missing = seq.saturating_sub(1);
            let message = if last_missing == expected_seq {
                format!("record {expected_seq} is missing: it was deleted from the log")
            } else {
                format!(
                    "records {expected_seq} to {last_missing} are missing: they were deleted from the log"
                )
            };
            return Err(Found::at_row(expected_seq, ProblemKind::Deleted, message));
        }
        if row.prev_hash != expected_prev {
            if self.follows_heads_predecessor(row) {
                return Err(self.inserted_at_head());
            }
            let before = if seq <= 1 {
                String::from("the start of the log")
            } else {
                format!("record {}", seq.saturating_sub(1))
            };
            return Err(Found::at_row(
                seq,
                ProblemKind::Inserted,
                format!(
                    "record {seq} does not follow {before}: a forged record was inserted or one of them was rewritten"
                ),
            ));
        }
        Ok(())
    }

    /// Whether `row` was written to follow the row before the head (so the
    /// head row was slipped in between them).
    fn follows_heads_predecessor(&self, row: &AuditRow) -> bool {
        let Some((head_seq, _)) = &self.head else {
            return false;
        };
        // The head is always preceded by `before_head`, or is record 1
        // (a first good row with any other seq is reported as a deletion).
        let heads_prev = self
            .before_head
            .as_ref()
            .map_or(GENESIS, |(_, h)| h.as_str());
        head_seq.saturating_add(1) == row.seq && row.prev_hash == heads_prev
    }

    /// Whether `row`, written as record `written`, has been pushed up by one
    /// to make room for the head row, and links to what the head links to.
    fn is_pushed_up(&self, row: &AuditRow, written: i64) -> bool {
        written.saturating_add(1) == row.seq && self.follows_heads_predecessor(row)
    }

    /// The problem "the head row was inserted".
    fn inserted_at_head(&self) -> Found {
        let n = self.head.as_ref().map_or(0, |(s, _)| *s);
        let before = if n <= 1 {
            String::from("the start of the log")
        } else {
            format!("record {}", n.saturating_sub(1))
        };
        Found {
            problem: Problem::new(
                n,
                ProblemKind::Inserted,
                format!(
                    "record {n} was inserted: the record after it was written to follow {before}"
                ),
            ),
            head_is_bad: true,
        }
    }
}

/// A problem found by [`Verifier::check`], and whether it condemns the
/// head row (already accepted) rather than the row being checked.
struct Found {
    problem: Problem,
    head_is_bad: bool,
}

impl Found {
    fn at_row(seq: i64, kind: ProblemKind, message: String) -> Found {
        Found {
            problem: Problem::new(seq, kind, message),
            head_is_bad: false,
        }
    }
}

/// The seq, other than the row's own, under which the row's content hashes
/// to its stored hash, searching within [`REORDER_WINDOW`].
fn written_as(row: &AuditRow) -> Option<i64> {
    let low = row.seq.saturating_sub(REORDER_WINDOW);
    let high = row.seq.saturating_add(REORDER_WINDOW);
    (low..=high)
        .filter(|s| *s != row.seq)
        .find(|s| chain_hash(&row.prev_hash, *s, &row.record) == row.hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sound chain of `n` rows, seq 1..=n.
    fn chain(n: i64) -> Vec<AuditRow> {
        let mut rows = Vec::new();
        let mut prev = GENESIS.to_owned();
        for seq in 1..=n {
            let record = format!(r#"{{"n":{seq},"name":"Jane Smith"}}"#);
            let hash = chain_hash(&prev, seq, &record);
            rows.push(AuditRow {
                seq,
                time: seq * 1_000_000,
                patients: vec!["p1".into()],
                record,
                prev_hash: prev.clone(),
                hash: hash.clone(),
            });
            prev = hash;
        }
        rows
    }

    /// Recompute `row.hash` from its (possibly edited) fields.
    fn rehash(row: &mut AuditRow) {
        row.hash = chain_hash(&row.prev_hash, row.seq, &row.record);
    }

    /// Push every row; the first problem, if any, and the verifier.
    fn verify(rows: &[AuditRow]) -> (Verifier, Result<(), Problem>) {
        let mut v = Verifier::new();
        for row in rows {
            if let Err(p) = v.push(row) {
                return (v, Err(p));
            }
        }
        (v, Ok(()))
    }

    fn checkpoint(seq: i64, hash: &str) -> Checkpoint {
        Checkpoint {
            seq,
            hash: hash.to_owned(),
            time: 0,
            kid: "k1".into(),
            signature: "sig".into(),
        }
    }

    fn assert_no_personal_data(p: &Problem) {
        assert!(!p.message.contains("Jane"), "{}", p.message);
        assert!(!p.message.contains('{'), "{}", p.message);
    }

    #[test]
    fn a_sound_chain_verifies_with_its_checkpoints() {
        let rows = chain(100);
        let (v, result) = verify(&rows);
        assert_eq!(result, Ok(()));
        assert_eq!(v.checked(), 100);
        assert_eq!(v.head(), Some((100, rows[99].hash.clone())));
        assert_eq!(v.problem(), None);
        // At the head, the verifier knows the hash itself.
        assert_eq!(
            v.check_checkpoint(&checkpoint(100, &rows[99].hash), None, true),
            Ok(())
        );
        // Below the head, the caller passes the hash it saw verified.
        assert_eq!(
            v.check_checkpoint(&checkpoint(60, &rows[59].hash), Some(&rows[59].hash), true),
            Ok(())
        );
    }

    #[test]
    fn an_empty_chain_has_no_head() {
        let v = Verifier::new();
        assert_eq!(v.checked(), 0);
        assert_eq!(v.head(), None);
        let p = v
            .check_checkpoint(&checkpoint(1, GENESIS), None, true)
            .unwrap_err();
        assert_eq!(p.kind, ProblemKind::BadCheckpoint);
        assert_eq!(p.message, "the chain ends before checkpoint 1");
    }

    #[test]
    fn altered_record_text_is_found() {
        let mut rows = chain(100);
        rows[49].record = rows[49].record.replace("Jane", "Joan");
        let (v, result) = verify(&rows);
        let p = result.unwrap_err();
        assert_eq!(p.kind, ProblemKind::Altered);
        assert_eq!(p.seq, 50);
        assert_eq!(
            p.message,
            "record 50 was altered: its hash does not match its content"
        );
        assert_eq!(p.to_string(), p.message);
        assert_no_personal_data(&p);
        assert_eq!(v.checked(), 49);
        assert_eq!(v.head(), Some((49, rows[48].hash.clone())));
    }

    #[test]
    fn an_altered_hash_or_prev_hash_is_found() {
        // prev_hash links correctly, hash is wrong.
        let mut rows = chain(100);
        rows[49].hash = chain_hash(GENESIS, 0, "forged");
        let p = verify(&rows).1.unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::Altered, 50));

        // prev_hash edited, hash left alone.
        let mut rows = chain(100);
        rows[49].prev_hash = GENESIS.to_owned();
        let p = verify(&rows).1.unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::Altered, 50));
    }

    #[test]
    fn an_altered_and_rehashed_record_is_found_at_the_next_record() {
        let mut rows = chain(100);
        rows[49].record = rows[49].record.replace("Jane", "Joan");
        rehash(&mut rows[49]);
        let p = verify(&rows).1.unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::Inserted, 51));
        assert_eq!(
            p.message,
            "record 51 does not follow record 50: a forged record was inserted or one of them was rewritten"
        );
    }

    #[test]
    fn a_deleted_record_is_found() {
        let mut rows = chain(100);
        rows.remove(49);
        let (v, result) = verify(&rows);
        let p = result.unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::Deleted, 50));
        assert_eq!(
            p.message,
            "record 50 is missing: it was deleted from the log"
        );
        assert_eq!(v.checked(), 49);

        let mut rows = chain(100);
        rows.drain(49..52);
        let p = verify(&rows).1.unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::Deleted, 50));
        assert_eq!(
            p.message,
            "records 50 to 52 are missing: they were deleted from the log"
        );

        let mut rows = chain(100);
        rows.remove(0);
        let p = verify(&rows).1.unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::Deleted, 1));
    }

    #[test]
    fn a_deleted_last_record_is_found_only_by_a_checkpoint() {
        let full = chain(100);
        let mut rows = full.clone();
        rows.pop();
        // The rows alone are a sound, shorter chain.
        let (v, result) = verify(&rows);
        assert_eq!(result, Ok(()));
        assert_eq!(v.checked(), 99);
        // A checkpoint taken at record 100 shows the loss.
        let p = v
            .check_checkpoint(&checkpoint(100, &full[99].hash), None, true)
            .unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::BadCheckpoint, 100));
        assert_eq!(p.message, "the chain ends before checkpoint 100");
    }

    /// A forged, self-consistent record `seq` following `prev`.
    fn forged(seq: i64, prev: &str) -> AuditRow {
        let record = r#"{"n":"forged"}"#.to_owned();
        AuditRow {
            seq,
            time: 0,
            patients: vec![],
            hash: chain_hash(prev, seq, &record),
            record,
            prev_hash: prev.to_owned(),
        }
    }

    #[test]
    fn an_inserted_record_with_later_records_renumbered_is_found() {
        // Forged record 50 linking to 49; the old 50..=100 become 51..=101
        // with their stored hashes untouched.
        let mut rows = chain(100);
        let f = forged(50, &rows[48].hash);
        for row in rows.iter_mut().skip(49) {
            row.seq += 1;
        }
        rows.insert(49, f);
        let (v, result) = verify(&rows);
        let p = result.unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::Inserted, 50));
        assert_eq!(
            p.message,
            "record 50 was inserted: the record after it was written to follow record 49"
        );
        // The forged record is no longer counted as good.
        assert_eq!(v.checked(), 49);
        assert_eq!(v.head(), Some((49, rows[48].hash.clone())));
        // Later pushes repeat the problem.
        let mut v = v;
        assert_eq!(v.push(&rows[51]), Err(p));
    }

    #[test]
    fn an_inserted_record_with_later_records_renumbered_and_rehashed_is_found() {
        // As above, but each renumbered record is re-hashed over its new
        // seq, keeping its stored prev_hash: every row is self-consistent.
        let mut rows = chain(100);
        let f = forged(50, &rows[48].hash);
        for row in rows.iter_mut().skip(49) {
            row.seq += 1;
            rehash(row);
        }
        rows.insert(49, f);
        let (v, result) = verify(&rows);
        let p = result.unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::Inserted, 50));
        assert_eq!(v.checked(), 49);
    }

    #[test]
    fn a_self_consistent_forged_record_at_50_after_shifting_is_found() {
        // The forger could not link to record 49: the forged record is
        // self-consistent over a made-up predecessor.
        let mut rows = chain(100);
        let f = forged(50, &chain_hash(GENESIS, 0, "made up"));
        for row in rows.iter_mut().skip(49) {
            row.seq += 1;
        }
        rows.insert(49, f);
        let (v, result) = verify(&rows);
        let p = result.unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::Inserted, 50));
        assert_eq!(
            p.message,
            "record 50 does not follow record 49: a forged record was inserted or one of them was rewritten"
        );
        assert_eq!(v.checked(), 49);
    }

    #[test]
    fn a_duplicated_seq_is_found() {
        let mut rows = chain(100);
        let copy = rows[49].clone();
        rows.insert(50, copy);
        let p = verify(&rows).1.unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::Inserted, 50));
        assert_eq!(
            p.message,
            "record 50 appears more than once: a copy or a forged record was inserted"
        );
    }

    #[test]
    fn a_first_record_not_following_genesis_is_found() {
        let mut rows = chain(3);
        rows[0] = forged(1, &chain_hash(GENESIS, 0, "made up"));
        let p = verify(&rows).1.unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::Inserted, 1));
        assert_eq!(
            p.message,
            "record 1 does not follow the start of the log: a forged record was inserted or one of them was rewritten"
        );
    }

    #[test]
    fn swapped_records_are_found() {
        let mut rows = chain(100);
        rows[39].seq = 41;
        rows[40].seq = 40;
        rows.swap(39, 40); // read back in ascending seq order
        let (v, result) = verify(&rows);
        let p = result.unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::Reordered, 40));
        assert_eq!(
            p.message,
            "record 40 is out of order: it was written as record 41"
        );
        assert_eq!(v.checked(), 39);
    }

    #[test]
    fn a_record_moved_far_away_is_found() {
        let mut rows = chain(100);
        let moved = rows.remove(89);
        rows.insert(10, moved);
        for (i, row) in rows.iter_mut().enumerate() {
            row.seq = i64::try_from(i).unwrap() + 1;
        }
        let p = verify(&rows).1.unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::Reordered, 11));
        assert_eq!(
            p.message,
            "record 11 is out of order: it was written as record 90"
        );
    }

    #[test]
    fn a_checkpoint_that_does_not_match_is_found() {
        let rows = chain(100);
        let (v, _) = verify(&rows);
        let cp = checkpoint(60, &rows[60].hash);
        let p = v
            .check_checkpoint(&cp, Some(&rows[59].hash), true)
            .unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::BadCheckpoint, 60));
        assert_eq!(
            p.message,
            "checkpoint 60 does not match the chain: the records up to 60 were rewritten"
        );
    }

    #[test]
    fn a_checkpoint_with_a_bad_signature_is_found() {
        let rows = chain(100);
        let (v, _) = verify(&rows);
        let p = v
            .check_checkpoint(&checkpoint(100, &rows[99].hash), None, false)
            .unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::BadCheckpoint, 100));
        assert_eq!(p.message, "checkpoint 100's signature is not valid");
    }

    #[test]
    fn checkpoints_that_cannot_be_checked_are_problems() {
        let rows = chain(100);
        let (v, _) = verify(&rows);
        let p = v
            .check_checkpoint(&checkpoint(0, GENESIS), None, true)
            .unwrap_err();
        assert_eq!(p.message, "checkpoint 0 does not name a record");
        let p = v
            .check_checkpoint(&checkpoint(60, &rows[59].hash), None, true)
            .unwrap_err();
        assert_eq!(
            p.message,
            "checkpoint 60 could not be checked: the hash of record 60 was not kept"
        );

        // A broken chain cannot vouch for checkpoints past the break.
        let mut rows = chain(100);
        rows[49].record.push(' ');
        let (v, _) = verify(&rows);
        let p = v
            .check_checkpoint(&checkpoint(60, &rows[59].hash), None, true)
            .unwrap_err();
        assert_eq!(
            p.message,
            "checkpoint 60 could not be checked: the chain is broken before it"
        );
    }

    #[test]
    fn a_rewritten_tail_passes_the_rows_but_not_the_checkpoint() {
        // The limit of the rows alone: alter record 50 and recompute every
        // later hash. Only the signed checkpoint at 60 catches it.
        let original = chain(100);
        let mut rows = original.clone();
        rows[49].record = rows[49].record.replace("Jane", "Joan");
        let mut prev = rows[48].hash.clone();
        for row in rows.iter_mut().skip(49) {
            row.prev_hash = prev.clone();
            rehash(row);
            prev = row.hash.clone();
        }
        let mut v = Verifier::new();
        let mut hash_at_60 = None;
        for row in &rows {
            v.push(row).unwrap();
            if row.seq == 60 {
                hash_at_60 = Some(row.hash.clone());
            }
        }
        assert_eq!(v.checked(), 100);
        let p = v
            .check_checkpoint(
                &checkpoint(60, &original[59].hash),
                hash_at_60.as_deref(),
                true,
            )
            .unwrap_err();
        assert_eq!((p.kind, p.seq), (ProblemKind::BadCheckpoint, 60));
    }

    #[test]
    fn kinds_have_stable_codes() {
        assert_eq!(ProblemKind::Altered.as_str(), "altered");
        assert_eq!(ProblemKind::Deleted.as_str(), "deleted");
        assert_eq!(ProblemKind::Inserted.as_str(), "inserted");
        assert_eq!(ProblemKind::Reordered.as_str(), "reordered");
        assert_eq!(ProblemKind::BadCheckpoint.as_str(), "bad-checkpoint");
    }
}
