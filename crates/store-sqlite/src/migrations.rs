//! Versioned schema migrations. Each entry runs once, in order, inside a
//! transaction, and is recorded in `schema_migrations`. Never edit a released
//! migration: append a new one.

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE resource_version (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    rtype        TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    patient_id   TEXT,
    body         TEXT,
    UNIQUE (rtype, id, version)
);
CREATE INDEX resource_version_type_seq ON resource_version (rtype, seq);

CREATE TABLE resource_current (
    rtype      TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    deleted    INTEGER NOT NULL,
    patient_id TEXT,
    PRIMARY KEY (rtype, id)
) WITHOUT ROWID;
CREATE INDEX resource_current_patient ON resource_current (patient_id) WHERE patient_id IS NOT NULL;

CREATE TABLE idx_token (
    rtype      TEXT NOT NULL,
    id         TEXT NOT NULL,
    param      TEXT NOT NULL,
    system     TEXT,
    code       TEXT NOT NULL,
    patient_id TEXT
);
CREATE INDEX idx_token_lookup ON idx_token (rtype, param, code, system);
CREATE INDEX idx_token_owner ON idx_token (rtype, id);
"#,
    ),
    (
        2,
        // The search index for every parameter type (issue #3). The old token
        // table is replaced; the server rebuilds the index at start-up when the
        // stored index version differs from its own.
        r#"
DROP TABLE idx_token;
ALTER TABLE resource_current ADD COLUMN last_updated INTEGER NOT NULL DEFAULT 0;
UPDATE resource_current SET last_updated = (SELECT v.last_updated FROM resource_version v WHERE v.seq = resource_current.seq);
CREATE INDEX resource_current_updated ON resource_current (rtype, last_updated);

CREATE TABLE store_setting (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

CREATE TABLE idx_string (rtype TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, normalized TEXT NOT NULL, exact TEXT NOT NULL, patient_id TEXT);
CREATE INDEX idx_string_value ON idx_string (rtype, param, normalized);
CREATE INDEX idx_string_owner ON idx_string (rtype, id);

CREATE TABLE idx_token (rtype TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, system TEXT, code TEXT, text TEXT, patient_id TEXT);
CREATE INDEX idx_token_value ON idx_token (rtype, param, code, system);
CREATE INDEX idx_token_owner ON idx_token (rtype, id);

CREATE TABLE idx_reference (rtype TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, target_type TEXT, target_id TEXT, url TEXT, patient_id TEXT);
CREATE INDEX idx_reference_target ON idx_reference (target_id, target_type, param);
CREATE INDEX idx_reference_url ON idx_reference (url) WHERE url IS NOT NULL;
CREATE INDEX idx_reference_owner ON idx_reference (rtype, id);

CREATE TABLE idx_date (rtype TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL, patient_id TEXT);
CREATE INDEX idx_date_value ON idx_date (rtype, param, low, high);
CREATE INDEX idx_date_owner ON idx_date (rtype, id);

CREATE TABLE idx_number (rtype TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, value REAL NOT NULL, low REAL NOT NULL, high REAL NOT NULL, patient_id TEXT);
CREATE INDEX idx_number_value ON idx_number (rtype, param, low, high);
CREATE INDEX idx_number_owner ON idx_number (rtype, id);

CREATE TABLE idx_quantity (rtype TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, system TEXT, code TEXT, unit TEXT, value REAL NOT NULL, low REAL NOT NULL, high REAL NOT NULL, patient_id TEXT);
CREATE INDEX idx_quantity_value ON idx_quantity (rtype, param, code, low, high);
CREATE INDEX idx_quantity_owner ON idx_quantity (rtype, id);

CREATE TABLE idx_uri (rtype TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, value TEXT NOT NULL, patient_id TEXT);
CREATE INDEX idx_uri_value ON idx_uri (rtype, param, value);
CREATE INDEX idx_uri_owner ON idx_uri (rtype, id);

CREATE TABLE idx_composite (rtype TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, system TEXT, code TEXT NOT NULL,
    s_system TEXT, s_code TEXT, s_low_n REAL, s_high_n REAL, s_low_d INTEGER, s_high_d INTEGER, s_str TEXT, patient_id TEXT);
CREATE INDEX idx_composite_value ON idx_composite (rtype, param, code);
CREATE INDEX idx_composite_owner ON idx_composite (rtype, id);
"#,
    ),
    (
        3,
        // A compartment page filters on patient_id and orders by (rtype, id):
        // one index serves both, so the planner never walks every resource
        // in id order looking for one patient's.
        r#"
DROP INDEX resource_current_patient;
CREATE INDEX resource_current_compartment ON resource_current (patient_id, rtype, id) WHERE patient_id IS NOT NULL;
"#,
    ),
    (
        4,
        // Relationship facts for the access policy: per patient, the
        // organisations with a legitimate relationship and per-user grants,
        // replaced per source resource. (patient_id, org) serves the per-request
        // lookup, (org, patient_id) the population search, (src_type, src_id)
        // the replacement.
        r#"
CREATE TABLE relationship (
    patient_id TEXT    NOT NULL,
    org        TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    user_sub   TEXT,
    active     INTEGER NOT NULL,
    start_at   INTEGER,
    end_at     INTEGER,
    src_type   TEXT    NOT NULL,
    src_id     TEXT    NOT NULL,
    detail     TEXT
);
CREATE INDEX relationship_patient_org ON relationship (patient_id, org);
CREATE INDEX relationship_org_patient ON relationship (org, patient_id);
CREATE INDEX relationship_source ON relationship (src_type, src_id);
"#,
    ),
    (
        5,
        // The audit log (issue #5): append-only, hash-chained. `seq` is
        // assigned by the appender (1, 2, 3, … with no gaps) under the
        // single writer. Triggers refuse UPDATE and DELETE, so nothing
        // through SQL changes a record by accident; the chain is what
        // catches someone who drops them.
        r#"
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    time      INTEGER NOT NULL,
    record    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);
CREATE TABLE audit_patient (
    patient_id TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (patient_id, seq)
) WITHOUT ROWID;
CREATE INDEX audit_patient_seq ON audit_patient (seq);
CREATE TABLE audit_checkpoint (
    seq       INTEGER PRIMARY KEY,
    hash      TEXT    NOT NULL,
    time      INTEGER NOT NULL,
    kid       TEXT    NOT NULL,
    signature TEXT    NOT NULL
);
CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
"#,
    ),
    (
        6,
        // The audit log moves to its own file (`crate::audit_path`, schema
        // [`AUDIT_SCHEMA`]); `crate::migrate` has already copied it there, in
        // a transaction of its own, before this runs. `audit_pending` keeps
        // the records of the last write transaction in the database file
        // itself (see `crate::restore_pending_audit`).
        r#"
DROP TABLE main.audit_log;
DROP TABLE main.audit_patient;
DROP TABLE main.audit_checkpoint;
CREATE TABLE main.audit_pending (
    seq       INTEGER PRIMARY KEY,
    time      INTEGER NOT NULL,
    record    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL,
    patients  TEXT    NOT NULL
);
"#,
    ),
    (
        7,
        // One version per patient, bumped with every change of their
        // relationship rows (`#rules` for every practice's sharing rules):
        // what `store::relationship_cache` checks its entries against.
        r#"
CREATE TABLE relationship_version (
    patient_id TEXT    PRIMARY KEY,
    version    INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    ),
];

/// The audit log file's schema (attached as `audit`), created when absent
/// at every start. The tables are those of migration 5, which they replace.
/// Triggers refuse UPDATE and DELETE, so nothing through SQL changes a
/// record by accident; the chain is what catches someone who drops them.
/// Change it only by adding statements that are safe to run again.
pub(crate) const AUDIT_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS audit.audit_log (
    seq       INTEGER PRIMARY KEY,
    time      INTEGER NOT NULL,
    record    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit.audit_log_time ON audit_log (time);
CREATE TABLE IF NOT EXISTS audit.audit_patient (
    patient_id TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (patient_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit.audit_patient_seq ON audit_patient (seq);
CREATE TABLE IF NOT EXISTS audit.audit_checkpoint (
    seq       INTEGER PRIMARY KEY,
    hash      TEXT    NOT NULL,
    time      INTEGER NOT NULL,
    kid       TEXT    NOT NULL,
    signature TEXT    NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit.audit_log_append_only_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit.audit_log_append_only_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
"#;

/// Copies a log still in the database file (migration 5) into the audit
/// file. Safe to run again: a crash between the copy and migration 6 (which
/// drops the old tables) copies again over what is there.
pub(crate) const COPY_OLD_AUDIT: &str = r#"
INSERT OR IGNORE INTO audit.audit_log (seq, time, record, prev_hash, hash)
    SELECT seq, time, record, prev_hash, hash FROM main.audit_log;
INSERT OR IGNORE INTO audit.audit_patient (patient_id, seq)
    SELECT patient_id, seq FROM main.audit_patient;
INSERT OR IGNORE INTO audit.audit_checkpoint (seq, hash, time, kid, signature)
    SELECT seq, hash, time, kid, signature FROM main.audit_checkpoint;
"#;
