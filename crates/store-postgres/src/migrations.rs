//! Versioned schema migrations. Each entry runs once, in order, inside a
//! transaction under an advisory lock (so that several servers starting at
//! once do not race), and is recorded in `schema_migrations`. Never edit a
//! released migration: append a new one.
//!
//! Every patient-linked table carries `patient_id` so that a later migration
//! can distribute it by patient (e.g. Citus `create_distributed_table`).
//!
//! Every text column uses the "C" collation: byte-wise order, the same as
//! SQLite's, so both backends sort and page identically, and ORDER BY id
//! can walk the primary key instead of sorting every match.

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE resource_version (
    seq          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rtype        TEXT COLLATE "C"    NOT NULL,
    id           TEXT COLLATE "C"    NOT NULL,
    version      BIGINT  NOT NULL,
    last_updated BIGINT  NOT NULL,
    deleted      BOOLEAN NOT NULL,
    patient_id   TEXT COLLATE "C",
    body         TEXT COLLATE "C",
    UNIQUE (rtype, id, version)
);
CREATE INDEX resource_version_type_seq ON resource_version (rtype, seq);

CREATE TABLE resource_current (
    rtype      TEXT COLLATE "C"    NOT NULL,
    id         TEXT COLLATE "C"    NOT NULL,
    version    BIGINT  NOT NULL,
    seq        BIGINT  NOT NULL,
    deleted    BOOLEAN NOT NULL,
    patient_id TEXT COLLATE "C",
    PRIMARY KEY (rtype, id)
);
CREATE INDEX resource_current_patient ON resource_current (patient_id) WHERE patient_id IS NOT NULL;

CREATE TABLE idx_token (
    rtype      TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    param      TEXT COLLATE "C" NOT NULL,
    system     TEXT COLLATE "C",
    code       TEXT COLLATE "C" NOT NULL,
    patient_id TEXT COLLATE "C"
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
ALTER TABLE resource_current ADD COLUMN last_updated BIGINT NOT NULL DEFAULT 0;
UPDATE resource_current c SET last_updated = v.last_updated FROM resource_version v WHERE v.seq = c.seq;
CREATE INDEX resource_current_updated ON resource_current (rtype, last_updated);

CREATE TABLE store_setting (key TEXT COLLATE "C" PRIMARY KEY, value TEXT COLLATE "C" NOT NULL);

CREATE TABLE idx_string (rtype TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL, normalized TEXT COLLATE "C" NOT NULL, exact TEXT COLLATE "C" NOT NULL, patient_id TEXT COLLATE "C");
CREATE INDEX idx_string_value ON idx_string (rtype, param, normalized);
CREATE INDEX idx_string_owner ON idx_string (rtype, id);

CREATE TABLE idx_token (rtype TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL, system TEXT COLLATE "C", code TEXT COLLATE "C", text TEXT COLLATE "C", patient_id TEXT COLLATE "C");
CREATE INDEX idx_token_value ON idx_token (rtype, param, code, system);
CREATE INDEX idx_token_owner ON idx_token (rtype, id);

CREATE TABLE idx_reference (rtype TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL, target_type TEXT COLLATE "C", target_id TEXT COLLATE "C", url TEXT COLLATE "C", patient_id TEXT COLLATE "C");
CREATE INDEX idx_reference_target ON idx_reference (target_id, target_type, param);
CREATE INDEX idx_reference_url ON idx_reference (url) WHERE url IS NOT NULL;
CREATE INDEX idx_reference_owner ON idx_reference (rtype, id);

CREATE TABLE idx_date (rtype TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL, low BIGINT NOT NULL, high BIGINT NOT NULL, patient_id TEXT COLLATE "C");
CREATE INDEX idx_date_value ON idx_date (rtype, param, low, high);
CREATE INDEX idx_date_owner ON idx_date (rtype, id);

CREATE TABLE idx_number (rtype TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL, value DOUBLE PRECISION NOT NULL, low DOUBLE PRECISION NOT NULL, high DOUBLE PRECISION NOT NULL, patient_id TEXT COLLATE "C");
CREATE INDEX idx_number_value ON idx_number (rtype, param, low, high);
CREATE INDEX idx_number_owner ON idx_number (rtype, id);

CREATE TABLE idx_quantity (rtype TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL, system TEXT COLLATE "C", code TEXT COLLATE "C", unit TEXT COLLATE "C", value DOUBLE PRECISION NOT NULL, low DOUBLE PRECISION NOT NULL, high DOUBLE PRECISION NOT NULL, patient_id TEXT COLLATE "C");
CREATE INDEX idx_quantity_value ON idx_quantity (rtype, param, code, low, high);
CREATE INDEX idx_quantity_owner ON idx_quantity (rtype, id);

CREATE TABLE idx_uri (rtype TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL, value TEXT COLLATE "C" NOT NULL, patient_id TEXT COLLATE "C");
CREATE INDEX idx_uri_value ON idx_uri (rtype, param, value);
CREATE INDEX idx_uri_owner ON idx_uri (rtype, id);

CREATE TABLE idx_composite (rtype TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL, system TEXT COLLATE "C", code TEXT COLLATE "C" NOT NULL,
    s_system TEXT COLLATE "C", s_code TEXT COLLATE "C", s_low_n DOUBLE PRECISION, s_high_n DOUBLE PRECISION, s_low_d BIGINT, s_high_d BIGINT, s_str TEXT COLLATE "C", patient_id TEXT COLLATE "C");
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
    patient_id TEXT COLLATE "C" NOT NULL,
    org        TEXT COLLATE "C" NOT NULL,
    kind       TEXT COLLATE "C" NOT NULL,
    user_sub   TEXT COLLATE "C",
    active     BOOLEAN NOT NULL,
    start_at   BIGINT,
    end_at     BIGINT,
    src_type   TEXT COLLATE "C" NOT NULL,
    src_id     TEXT COLLATE "C" NOT NULL,
    detail     TEXT COLLATE "C"
);
CREATE INDEX relationship_patient_org ON relationship (patient_id, org);
CREATE INDEX relationship_org_patient ON relationship (org, patient_id);
CREATE INDEX relationship_source ON relationship (src_type, src_id);
"#,
    ),
    (
        5,
        // The audit log (issue #5): append-only, hash-chained. `audit_head`
        // is the chain's single head row: appending updates it (so appends
        // serialise on its row lock, held only from the append to commit)
        // and computes the next hash in the same statement. Triggers refuse
        // UPDATE, DELETE and TRUNCATE of records; the chain is what catches
        // someone who drops them.
        r#"
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    time      BIGINT NOT NULL,
    record    TEXT COLLATE "C" NOT NULL,
    prev_hash TEXT COLLATE "C" NOT NULL,
    hash      TEXT COLLATE "C" NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);
CREATE TABLE audit_patient (
    patient_id TEXT COLLATE "C" NOT NULL,
    seq        BIGINT NOT NULL,
    PRIMARY KEY (patient_id, seq)
);
CREATE INDEX audit_patient_seq ON audit_patient (seq);
CREATE TABLE audit_head (
    id   INT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    prev TEXT COLLATE "C" NOT NULL,
    hash TEXT COLLATE "C" NOT NULL
);
INSERT INTO audit_head (id, seq, prev, hash) VALUES
    (1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
           '0000000000000000000000000000000000000000000000000000000000000000');
CREATE TABLE audit_checkpoint (
    seq       BIGINT PRIMARY KEY,
    hash      TEXT COLLATE "C" NOT NULL,
    time      BIGINT NOT NULL,
    kid       TEXT COLLATE "C" NOT NULL,
    signature TEXT COLLATE "C" NOT NULL
);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
"#,
    ),
    (
        6,
        // One version per patient, bumped with every change of their
        // relationship rows (`#rules` for every practice's sharing rules):
        // what `store::relationship_cache` checks its entries against.
        r#"
CREATE TABLE relationship_version (
    patient_id TEXT COLLATE "C" PRIMARY KEY,
    version    BIGINT NOT NULL
);
"#,
    ),
];
