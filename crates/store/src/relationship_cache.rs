//! A cache of relationship rows that is never stale: an entry is used only
//! when the patient's relationship versions, read in the same snapshot as
//! the request's own data, are the ones it was filled at.
//!
//! Every read request needs the caller's relationship rows of one patient
//! (see [`crate::Store::relationships`]). Reading them costs several index
//! probes and, on PostgreSQL, two JSON subqueries: the larger part of a
//! staff read's work in the database. They change rarely (a registration,
//! an encounter, a consent, a break-glass grant), so the stores keep the
//! last rows per `(patient, org, user)` here, with the [`Versions`] they
//! were read at.
//!
//! Invariants (the stores keep them; `store-conformance` checks them):
//! - Every change of a patient's relationship rows bumps the patient's
//!   version in the same transaction; every change of a practice's sharing
//!   rows bumps the one rules version ([`RULES_VERSION_KEY`]). Versions only
//!   grow.
//! - An entry's rows were read no earlier than its versions: the versions
//!   first (or in the same statement), then the rows. Rows newer than their
//!   versions are only ever newer facts; a later reader that sees newer
//!   versions misses and reads again.
//! - A read uses an entry only when the versions it has just read, with
//!   the data it is deciding on, equal the entry's. A consent or
//!   relationship change therefore applies to the next request, on every
//!   server sharing the database, as it did without the cache.
//!
//! Bounded: each of [`SHARDS`] shards holds at most [`ROWS_PER_SHARD`] rows
//! and entries (an entry counts one more than its rows) and is emptied
//! when an insert would pass that (boring, and a full refill costs one
//! query per entry).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::RelationshipRow;

/// The version row every practice's sharing rules share: a change of any
/// practice's rules bumps it (rules change rarely; one key keeps a read to
/// two version probes). Not a FHIR id (no FHIR id contains `#`).
pub const RULES_VERSION_KEY: &str = "#rules";

/// Shards of the cache, each behind its own lock.
pub const SHARDS: usize = 16;

/// Rows one shard holds at most (about 200 bytes each): 16 × 16,384 rows
/// is some 50 MB at worst.
pub const ROWS_PER_SHARD: usize = 16_384;

/// The versions a patient's relationship rows were read at: the patient's
/// own and the rules version. Both 0 before anything was ever written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Versions {
    pub patient: i64,
    pub rules: i64,
}

/// The version row a change of relationship rows stored under `patient_id`
/// bumps: the patient's own, or [`RULES_VERSION_KEY`] for a practice's
/// pseudo patient.
pub fn version_key(patient_id: &str) -> &str {
    if patient_id.starts_with(crate::relationship::PRACTICE_PREFIX) {
        RULES_VERSION_KEY
    } else {
        patient_id
    }
}

/// What an entry of `rows` rows counts against [`ROWS_PER_SHARD`]: one
/// more than its rows, so that entries with none (a person with no
/// relationship to the caller) are bounded too.
fn charge(rows: usize) -> usize {
    rows + 1
}

struct Entry {
    versions: Versions,
    rows: Vec<RelationshipRow>,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<String, Entry>,
    /// The sum of [`charge`] over the entries.
    rows: usize,
}

/// See the module documentation.
pub struct RelationshipCache {
    shards: Vec<Mutex<Shard>>,
}

impl Default for RelationshipCache {
    fn default() -> Self {
        RelationshipCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl std::fmt::Debug for RelationshipCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelationshipCache").finish_non_exhaustive()
    }
}

/// One entry's key: the three arguments of [`crate::Store::relationships`],
/// each present or not, unambiguously whatever text they hold (an
/// organisation code and a subject come from tokens): each part is
/// written as `-` when absent, or as `+`, its byte length, `:` and the
/// text, so no two argument lists share a key.
fn key(patient_id: &str, org: Option<&str>, user: Option<&str>) -> String {
    use std::fmt::Write as _;
    let mut k = String::with_capacity(
        patient_id.len() + org.map_or(0, str::len) + user.map_or(0, str::len) + 16,
    );
    for part in [Some(patient_id), org, user] {
        match part {
            // Writing to a String cannot fail.
            Some(p) => {
                let _ = write!(k, "+{}:{p}", p.len());
            }
            None => k.push('-'),
        }
    }
    k
}

impl RelationshipCache {
    /// The shard of `key` (always `Some`: the index is taken modulo the
    /// shard count).
    fn shard(&self, key: &str) -> Option<&Mutex<Shard>> {
        // FNV-1a: the shard only spreads lock contention.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.as_bytes() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.shards.get((h % SHARDS as u64) as usize)
    }

    /// The rows cached for these arguments if they were read at `versions`.
    pub fn get(
        &self,
        patient_id: &str,
        org: Option<&str>,
        user: Option<&str>,
        versions: Versions,
    ) -> Option<Vec<RelationshipRow>> {
        let k = key(patient_id, org, user);
        let shard = self.shard(&k)?.lock().ok()?;
        shard
            .entries
            .get(&k)
            .filter(|e| e.versions == versions)
            .map(|e| e.rows.clone())
    }

    /// Keeps `rows`, read at `versions` or later, for these arguments.
    pub fn put(
        &self,
        patient_id: &str,
        org: Option<&str>,
        user: Option<&str>,
        versions: Versions,
        rows: &[RelationshipRow],
    ) {
        let cost = charge(rows.len());
        if cost > ROWS_PER_SHARD {
            return;
        }
        let k = key(patient_id, org, user);
        let Some(Ok(mut shard)) = self.shard(&k).map(Mutex::lock) else {
            return;
        };
        if shard.rows + cost > ROWS_PER_SHARD {
            shard.entries.clear();
            shard.rows = 0;
        }
        let entry = Entry {
            versions,
            rows: rows.to_vec(),
        };
        if let Some(old) = shard.entries.insert(k, entry) {
            shard.rows = shard.rows.saturating_sub(charge(old.rows.len()));
        }
        shard.rows += cost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(org: &str) -> RelationshipRow {
        RelationshipRow {
            org: org.to_owned(),
            kind: crate::relationship::ENCOUNTER.to_owned(),
            user: None,
            active: true,
            start: None,
            end: None,
            src_type: "Encounter".to_owned(),
            src_id: "e1".to_owned(),
            detail: None,
        }
    }

    const V1: Versions = Versions {
        patient: 1,
        rules: 0,
    };

    #[test]
    fn an_entry_serves_only_its_versions_and_arguments() {
        let cache = RelationshipCache::default();
        cache.put("p1", Some("A1"), None, V1, &[row("A1")]);
        assert_eq!(cache.get("p1", Some("A1"), None, V1), Some(vec![row("A1")]));
        // Either version moved: a miss.
        let bumped = Versions { patient: 2, ..V1 };
        assert_eq!(cache.get("p1", Some("A1"), None, bumped), None);
        let rules = Versions { rules: 1, ..V1 };
        assert_eq!(cache.get("p1", Some("A1"), None, rules), None);
        // Other arguments: a miss, including a user where there was none.
        assert_eq!(cache.get("p1", Some("B2"), None, V1), None);
        assert_eq!(cache.get("p1", Some("A1"), Some("u"), V1), None);
        assert_eq!(cache.get("p1", None, None, V1), None);
        assert_eq!(cache.get("p2", Some("A1"), None, V1), None);
    }

    #[test]
    fn keys_do_not_run_into_each_other() {
        assert_ne!(key("p", Some("A"), None), key("p", None, Some("A")));
        assert_ne!(key("p", Some(""), None), key("p", None, None));
        assert_ne!(key("pA", None, None), key("p", Some("A"), None));
        // Whatever the parts hold, even the separators themselves.
        assert_ne!(
            key("p", Some("A"), Some("B+1:C")),
            key("p", Some("A+1:B"), Some("C"))
        );
        assert_ne!(
            key("p", Some("A\u{1}B"), None),
            key("p", Some("A"), Some("B"))
        );
    }

    #[test]
    fn a_later_put_replaces_and_a_full_shard_empties() {
        let cache = RelationshipCache::default();
        cache.put("p1", Some("A1"), None, V1, &[row("A1")]);
        let v2 = Versions { patient: 2, ..V1 };
        cache.put("p1", Some("A1"), None, v2, &[]);
        assert_eq!(cache.get("p1", Some("A1"), None, v2), Some(vec![]));
        assert_eq!(cache.get("p1", Some("A1"), None, V1), None);
        // Fill far past every shard's budget: the count stays bounded.
        let many = vec![row("A1"); 1000];
        for i in 0..(SHARDS * ROWS_PER_SHARD / 1000 * 4) {
            cache.put(&format!("q{i}"), None, None, V1, &many);
        }
        // Entries with no rows count too.
        for i in 0..(SHARDS * ROWS_PER_SHARD * 2) {
            cache.put(&format!("r{i}"), None, None, V1, &[]);
        }
        for shard in &cache.shards {
            let s = shard.lock().unwrap();
            assert!(s.rows <= ROWS_PER_SHARD);
            assert!(s.entries.len() <= ROWS_PER_SHARD);
            assert_eq!(
                s.rows,
                s.entries.values().map(|e| charge(e.rows.len())).sum()
            );
        }
    }

    #[test]
    fn practice_rows_bump_the_rules_version() {
        assert_eq!(version_key("p1"), "p1");
        let practice = format!("{}A81001", crate::relationship::PRACTICE_PREFIX);
        assert_eq!(version_key(&practice), RULES_VERSION_KEY);
    }
}
