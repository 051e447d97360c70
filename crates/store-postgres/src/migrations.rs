//! Versioned schema migrations. Each entry runs once, in order, inside a
//! transaction under an advisory lock (so that several servers starting at
//! once do not race), and is recorded in `schema_migrations`. Never edit a
//! released migration: append a new one.
//!
//! Every patient-linked table carries `patient_id` so that a later migration
//! can distribute it by patient (e.g. Citus `create_distributed_table`).

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    r#"
CREATE TABLE resource_version (
    seq          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rtype        TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      BIGINT  NOT NULL,
    last_updated BIGINT  NOT NULL,
    deleted      BOOLEAN NOT NULL,
    patient_id   TEXT,
    body         TEXT,
    UNIQUE (rtype, id, version)
);
CREATE INDEX resource_version_type_seq ON resource_version (rtype, seq);

CREATE TABLE resource_current (
    rtype      TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    version    BIGINT  NOT NULL,
    seq        BIGINT  NOT NULL,
    deleted    BOOLEAN NOT NULL,
    patient_id TEXT,
    PRIMARY KEY (rtype, id)
);
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
)];
