//! Versioned schema migrations. Each entry runs once, in order, inside a
//! transaction, and is recorded in `schema_migrations`. Never edit a released
//! migration: append a new one.

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[(
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
)];
