//! The storage seam.
//!
//! This crate names what sharedcare needs from a database and nothing else:
//! it has no SQL, no driver and no FHIR knowledge beyond "a resource is a
//! typed, versioned JSON document". Each backend (`store-sqlite`,
//! `store-postgres`) implements [`Store`] and [`Tx`], and one conformance
//! suite (the `store-conformance` crate, driven from each backend's tests) holds them
//! to the same behaviour.
//!
//! Invariants every backend upholds:
//! - A version is immutable once written; history is append-only.
//! - `resource_current` (the "current" pointer) and the version rows change
//!   together, in one database transaction, with the index rows of that
//!   version. A reader never sees one without the others.
//! - Every patient-linked row carries the id of the patient it belongs to
//!   (its Patient compartment), so that production can shard by patient.
//! - Work done through a [`Tx`] that is dropped without [`Tx::commit`] is
//!   rolled back: nothing partial is ever stored.
//! - The relationship facts of a source resource ([`RelationshipRow`]) are
//!   replaced as a whole, in the caller's transaction: a reader sees the
//!   old set or the new one, never a mix.
//! - Every change of a patient's relationship rows bumps that patient's
//!   relationship version in the same transaction (a practice's sharing
//!   rows bump the one rules version): what lets a store keep rows in a
//!   [`relationship_cache::RelationshipCache`] and never serve stale ones.

pub mod audit;
pub mod relationship_cache;
pub mod search;

use std::future::Future;

pub use search::{Filter, IndexRow, SortKey, SortValue};

/// Microseconds since the Unix epoch, UTC. All stored times use it so that
/// both backends sort and compare them identically.
pub type Micros = i64;

/// Errors a backend reports. Driver text stays inside the backend's log;
/// what crosses this seam is a category the caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else changed the same resource first (version mismatch or a
    /// concurrent create of the same id). The caller may retry or report 409/412.
    #[error("concurrent modification of {rtype}/{id}")]
    Conflict { rtype: String, id: String },
    /// The database could not be reached or refused the work.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else the backend could not do; the message is for the log only.
    #[error("storage failure: {0}")]
    Internal(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One stored version of a resource, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResource {
    pub rtype: String,
    pub id: String,
    pub version: u64,
    pub last_updated: Micros,
    /// A logical delete: `body` is `None`.
    pub deleted: bool,
    /// The resource as canonical compact FHIR JSON, with `id` and `meta`
    /// (versionId, lastUpdated) already set by the writer.
    pub body: Option<String>,
    /// Monotonic position in the global history (used for paging history).
    pub seq: i64,
}

/// A new version to append inside a transaction.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub rtype: String,
    pub id: String,
    /// Must be exactly one more than the current version (1 for a new id);
    /// the backend refuses anything else with [`StoreError::Conflict`].
    pub version: u64,
    pub last_updated: Micros,
    pub deleted: bool,
    /// The Patient compartment this resource belongs to, if any.
    pub patient_id: Option<String>,
    pub body: Option<String>,
    pub index: Vec<IndexRow>,
}

/// Which history to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    pub rtype: Option<String>,
    pub id: Option<String>,
    /// Only versions with `last_updated >= since`.
    pub since: Option<Micros>,
    /// Only versions with `seq < before` (paging cursor, newest first).
    pub before_seq: Option<i64>,
    pub limit: usize,
}

/// A search over the current, non-deleted resources of one type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchQuery {
    pub rtype: String,
    /// All must hold.
    pub filters: Vec<Filter>,
    /// Sort keys; the logical id is always the final tie-break.
    pub sort: Vec<SortKey>,
    /// Only rows strictly after this position in the sort order.
    pub after: Option<Cursor>,
    /// Walk the sort order in reverse from `after` (rows strictly before it,
    /// nearest first): how a `previous` page is read.
    pub backward: bool,
    pub limit: usize,
}

/// A position in a sorted result: the sort values and id of the last row seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub values: Vec<SortValue>,
    pub last_id: String,
}

/// A search result row with its sort values (for the next cursor).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRow {
    pub resource: StoredResource,
    pub sort_values: Vec<SortValue>,
}

/// The current resources of one Patient compartment (by `patient_id`),
/// in (type, id) order: `Patient/[id]/$everything`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompartmentQuery {
    pub patient_id: String,
    /// Only these types.
    pub types: Option<Vec<String>>,
    /// Only versions written at or after this time.
    pub since: Option<Micros>,
    /// Care dates: leave out resources all of whose indexed dates end
    /// before `start` or begin after `end` (resources without dates stay).
    pub start: Option<Micros>,
    pub end: Option<Micros>,
    /// Only rows after this (type, id).
    pub after: Option<Key>,
    pub limit: usize,
}

/// `(resource type, logical id)`
pub type Key = (String, String);

/// One legitimate-relationship fact: organisation `org` (an ODS code) has a
/// relationship of `kind` with a patient, derived from the source resource
/// `(src_type, src_id)`, or a break-glass grant (`src_type` is
/// [`relationship::BREAK_GLASS_SOURCE`]).
///
/// The access policy reads these (see [`Store::relationships`] and
/// [`Filter::Related`]); the core derives them at write time and stores them
/// with [`Tx::put_relationships`]. The patient is not part of the row: it is
/// the `patient_id` they were stored under.
///
/// `org` is cut like indexed text ([`search::clip`]) when stored and when
/// compared, so an absurdly long value cannot make a write fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationshipRow {
    pub org: String,
    /// One of the [`relationship`] kinds, e.g. [`relationship::GP_REGISTRATION`].
    pub kind: String,
    /// `Some(subject)` only for a per-user grant (break-glass): the row then
    /// counts for that user alone.
    pub user: Option<String>,
    /// The source's status says active / in progress.
    pub active: bool,
    /// Period start, if known.
    pub start: Option<Micros>,
    /// Period end (or a grant's expiry), if known.
    pub end: Option<Micros>,
    pub src_type: String,
    pub src_id: String,
    /// Free short text, e.g. a break-glass reason code. Never personal data.
    pub detail: Option<String>,
}

/// What [`Store::read_with_relationships`] returns.
#[derive(Debug, Clone)]
pub struct ReadWithFacts {
    pub resource: StoredResource,
    /// The Patient compartment the current version was stored with.
    pub patient_id: Option<String>,
    /// The patient's relationship rows for the caller (empty without a
    /// patient).
    pub relationships: Vec<RelationshipRow>,
}

/// The relationship kinds and source names the store itself gives meaning
/// to (other kinds are stored and returned as they are).
pub mod relationship {
    /// A GP registration: returned by [`crate::Store::relationships`]
    /// whichever organisation asks.
    pub const GP_REGISTRATION: &str = "gp-registration";
    /// An encounter: a finished one still counts for
    /// [`crate::Filter::Related`] when it ended at or after `recent_since`.
    pub const ENCOUNTER: &str = "encounter";
    pub const EPISODE_OF_CARE: &str = "episode-of-care";
    pub const CARE_TEAM: &str = "care-team";
    pub const REFERRAL: &str = "referral";
    pub const BREAK_GLASS: &str = "break-glass";
    /// A marker, not a relationship: one row per sealed item, `org` its
    /// recorder. Returned by [`crate::Store::relationships`] whichever
    /// organisation asks, so a decision knows what it withholds.
    pub const SEALED: &str = "sealed";
    /// A marker: one row per item withheld from the patient (NOPAT,
    /// third-party information). Returned like [`SEALED`].
    pub const NOT_FOR_PATIENT: &str = "not-for-patient";
    /// A marker: the person's dissent from sharing; `org` is an
    /// organisation code, [`EVERY_ORGANISATION`] or `type:` and an
    /// organisation type. Returned like [`SEALED`]; it keeps organisations
    /// out of [`crate::Filter::Related`].
    pub const DISSENT: &str = "dissent";
    /// A marker: an explicit consent opening sealed categories (`detail`)
    /// to `org`.
    pub const SENSITIVE_CONSENT: &str = "sensitive-consent";
    /// A marker: a secondary-use opt-out (`org`: its code). Returned like
    /// [`SEALED`].
    pub const OPT_OUT: &str = "opt-out";
    /// The `org` of a dissent from sharing with everyone, and of a
    /// practice-wide sharing rule.
    pub const EVERY_ORGANISATION: &str = "*";
    /// The kinds that give an organisation access; everything else is a
    /// marker or a sharing rule.
    pub const ACCESS_KINDS: &[&str] = &[
        GP_REGISTRATION,
        ENCOUNTER,
        EPISODE_OF_CARE,
        CARE_TEAM,
        REFERRAL,
        BREAK_GLASS,
    ];
    /// A practice's sharing rules are rows under the pseudo patient id
    /// `PRACTICE_PREFIX + practice` (no FHIR id contains `#` or `:`):
    /// `org` names the organisation a rule is about (or `*`), `detail` the
    /// practice. [`crate::Store::relationships`] returns the rules of the
    /// person's registered practices that name the caller's organisation
    /// or `*`, and [`crate::Filter::Related`] applies them.
    pub const PRACTICE_PREFIX: &str = "#practice:";
    pub mod sharing {
        pub const OFF: &str = "sharing-off";
        pub const LOCAL: &str = "sharing-local";
        pub const ALLOW_LIST: &str = "sharing-allow-list";
        pub const ALLOW: &str = "sharing-allow";
        pub const DENY: &str = "sharing-deny";
        pub const VERIFY: &str = "sharing-verify";
        pub const PENDING: &str = "sharing-pending";
        pub const APPROVED: &str = "sharing-approved";
        pub const REJECTED: &str = "sharing-rejected";
        pub const KINDS: &[&str] = &[
            OFF, LOCAL, ALLOW_LIST, ALLOW, DENY, VERIFY, PENDING, APPROVED, REJECTED,
        ];
    }
    /// The kinds [`crate::Store::relationships`] returns whichever
    /// organisation asks.
    pub const ANY_ORG_KINDS: &[&str] =
        &[GP_REGISTRATION, SEALED, NOT_FOR_PATIENT, DISSENT, OPT_OUT];
    /// The `src_type` of break-glass grants (not a resource type).
    pub const BREAK_GLASS_SOURCE: &str = "$break-glass";
    /// [`crate::Store::relationships`] returns at most this many rows.
    pub const MAX_ROWS: usize = 200;

    /// Checks the [`crate::Tx::put_relationships`] precondition: every row
    /// comes from the source `(src_type, src_id)`.
    pub fn check_sources(
        src_type: &str,
        src_id: &str,
        rows: &[super::RelationshipRow],
    ) -> crate::Result<()> {
        match rows
            .iter()
            .find(|r| r.src_type != src_type || r.src_id != src_id)
        {
            None => Ok(()),
            Some(_) => Err(crate::StoreError::Internal(format!(
                "relationship row from another source than {src_type}/{src_id}"
            ))),
        }
    }
}

/// A database backend.
///
/// Reads outside a transaction see committed data only. Methods return
/// futures that are `Send` so that the HTTP layer can hold them across awaits.
pub trait Store: Clone + Send + Sync + 'static {
    type Tx: Tx;

    /// Starts a read-write transaction. Writes through it become visible
    /// together at [`Tx::commit`], or not at all.
    fn begin(&self) -> impl Future<Output = Result<Self::Tx>> + Send;

    /// The current version of a resource (a deleted one too: `deleted` says so).
    fn read(
        &self,
        rtype: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<StoredResource>>> + Send;

    /// One specific version.
    fn vread(
        &self,
        rtype: &str,
        id: &str,
        version: u64,
    ) -> impl Future<Output = Result<Option<StoredResource>>> + Send;

    /// Versions newest first (by `seq`), at most `query.limit`.
    fn history(
        &self,
        query: &HistoryQuery,
    ) -> impl Future<Output = Result<Vec<StoredResource>>> + Send;

    /// Current, non-deleted resources matching every filter, in sort order,
    /// at most `query.limit`.
    fn search(&self, query: &SearchQuery) -> impl Future<Output = Result<Vec<SearchRow>>> + Send;

    /// How many current, non-deleted resources of `rtype` match every filter.
    fn count(&self, rtype: &str, filters: &[Filter]) -> impl Future<Output = Result<u64>> + Send;

    /// The local targets of the references in `sources` (through `param`, or
    /// any reference parameter when `None`), optionally of one target type.
    fn references_from(
        &self,
        sources: &[Key],
        param: Option<&str>,
        target_type: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Key>>> + Send;

    /// Current resources of `source_type` whose `param` (any reference
    /// parameter when `None`) points at one of `targets`.
    fn referrers(
        &self,
        source_type: &str,
        param: Option<&str>,
        targets: &[Key],
    ) -> impl Future<Output = Result<Vec<Key>>> + Send;

    /// The current versions of these resources (deleted or unknown ones are left out).
    fn read_many(&self, keys: &[Key]) -> impl Future<Output = Result<Vec<StoredResource>>> + Send;

    /// Current, non-deleted resources after `after` in (type, id) order:
    /// the walk used to rebuild the index.
    fn scan(
        &self,
        after: Option<&Key>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredResource>>> + Send;

    /// One page of a Patient compartment.
    fn compartment(
        &self,
        query: &CompartmentQuery,
    ) -> impl Future<Output = Result<Vec<StoredResource>>> + Send;

    /// The relationship facts of patient `patient_id` that concern the
    /// caller: rows with `org = org`, rows of the kinds
    /// [`relationship::ANY_ORG_KINDS`] (whatever their organisation), and
    /// rows with `user = user` (a `None` argument leaves its clause out);
    /// for a practice's pseudo patient ([`relationship::PRACTICE_PREFIX`]),
    /// all its rows. Then, with an `org`, the sharing rules of the
    /// patient's practices (the rows under the pseudo patient of each
    /// organisation the patient has an active GP registration with) whose
    /// `org` is `org` or `*`, ordered by `(kind, org, detail)`, at most
    /// [`relationship::MAX_ROWS`] more.
    ///
    /// Rows come back as stored: a per-user row of `org` is returned whoever
    /// asks, so the caller checks [`RelationshipRow::user`].
    ///
    /// Ordered by `active` (true first), then `end` descending with no end
    /// first, then `(src_type, src_id, kind, org)` byte-wise; at most
    /// [`relationship::MAX_ROWS`] rows. Runs on every read request: it is
    /// one query over the `(patient_id, org)` index (two with an `org`).
    fn relationships(
        &self,
        patient_id: &str,
        org: Option<&str>,
        user: Option<&str>,
    ) -> impl Future<Output = Result<Vec<RelationshipRow>>> + Send;

    /// The current version of one resource, the patient it belongs to (its
    /// stored compartment, as written with it) and that patient's
    /// relationship rows for `org`/`user` exactly as [`Store::relationships`]
    /// returns them: everything deciding a single read needs, in one store
    /// call (one reader checkout on SQLite, one statement on PostgreSQL). `None` when the resource was never written.
    fn read_with_relationships(
        &self,
        rtype: &str,
        id: &str,
        org: Option<&str>,
        user: Option<&str>,
    ) -> impl Future<Output = Result<Option<ReadWithFacts>>> + Send;

    /// Logical ids of the patients with an active GP registration at
    /// `org` (relationship rows of kind [`relationship::GP_REGISTRATION`]),
    /// sorted: a practice's list, for its data controller.
    fn registered_patients(&self, org: &str) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Appends audit records in a transaction of their own (for requests
    /// that write nothing else: reads, searches, refusals) and returns their
    /// sequence numbers once committed. See [`audit`] for the chain.
    fn append_audit(
        &self,
        records: &[audit::NewAudit],
    ) -> impl Future<Output = Result<Vec<i64>>> + Send;

    /// Audit rows matching `query`, in ascending `seq` order, at most
    /// `query.limit`.
    fn audit_rows(
        &self,
        query: &audit::AuditQuery,
    ) -> impl Future<Output = Result<Vec<audit::AuditRow>>> + Send;

    /// Records a signed checkpoint of the audit chain.
    fn add_audit_checkpoint(
        &self,
        checkpoint: &audit::Checkpoint,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Every checkpoint, in ascending `seq` order.
    fn audit_checkpoints(&self) -> impl Future<Output = Result<Vec<audit::Checkpoint>>> + Send;

    /// A value from the store's own settings table (e.g. the index version).
    fn setting(&self, key: &str) -> impl Future<Output = Result<Option<String>>> + Send;

    /// Is the database reachable and migrated?
    fn ready(&self) -> impl Future<Output = Result<()>> + Send;
}

/// A read-write transaction. Dropping it without `commit` rolls it back.
///
/// After any method returns an error the transaction may hold partial work:
/// callers must drop it, never commit it.
pub trait Tx: Send {
    /// The current version of a resource, locked against concurrent writers
    /// until this transaction ends.
    fn current(
        &mut self,
        rtype: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<StoredResource>>> + Send;

    /// Ids of current, non-deleted resources of `rtype` matching all filters
    /// (at most `limit`), as seen inside this transaction.
    fn find(
        &mut self,
        rtype: &str,
        filters: &[Filter],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Replaces the index rows (and compartment) of the current version
    /// without writing a new version: used when the index is rebuilt.
    fn reindex(
        &mut self,
        rtype: &str,
        id: &str,
        patient_id: Option<&str>,
        rows: &[IndexRow],
    ) -> impl Future<Output = Result<()>> + Send;

    fn set_setting(&mut self, key: &str, value: &str) -> impl Future<Output = Result<()>> + Send;

    /// Replaces every relationship row from the source `(src_type, src_id)`:
    /// deletes them, then stores `rows` under `patient_id`. With
    /// `patient_id == None` or no rows it only deletes (how a deleted or
    /// unlinked source is cleared).
    ///
    /// Every row's own `src_type` and `src_id` must equal the arguments: a
    /// mismatch is a caller bug and fails with [`StoreError::Internal`]
    /// before anything is written.
    fn put_relationships(
        &mut self,
        src_type: &str,
        src_id: &str,
        patient_id: Option<&str>,
        rows: &[RelationshipRow],
    ) -> impl Future<Output = Result<()>> + Send;

    /// Appends audit records as part of this transaction: they commit with
    /// its work or not at all. Returns their sequence numbers.
    fn append_audit(
        &mut self,
        records: &[audit::NewAudit],
    ) -> impl Future<Output = Result<Vec<i64>>> + Send;

    /// [`Store::relationships`], as seen inside this transaction (its own
    /// writes included).
    fn relationships(
        &mut self,
        patient_id: &str,
        org: Option<&str>,
        user: Option<&str>,
    ) -> impl Future<Output = Result<Vec<RelationshipRow>>> + Send;

    /// Serialises this transaction against every other one that takes the same
    /// key (used by conditional create so two concurrent requests cannot both
    /// create). Held until the transaction ends.
    fn lock_key(&mut self, key: &str) -> impl Future<Output = Result<()>> + Send;

    /// Appends a version, moves the current pointer and replaces the index
    /// rows. Fails with [`StoreError::Conflict`] unless `version` is exactly
    /// one more than the current version.
    fn put(&mut self, version: &NewVersion) -> impl Future<Output = Result<i64>> + Send;

    fn commit(self) -> impl Future<Output = Result<()>> + Send;
}
