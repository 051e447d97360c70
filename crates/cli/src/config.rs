//! Configuration: a TOML file < `SHAREDCARE_*` environment < command line.
//!
//! The raw layers are parsed first (unknown keys in the file are errors), then
//! resolved once into [`Config`], which is passed down; nothing reads the
//! environment after start-up. Secrets (the database URL's password) are
//! redacted from `Debug` output and logs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Options shared by `serve` and `demo` (clap fills them from the command
/// line, then from the environment).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// A TOML configuration file (keys: listen, data, database_url, base_url,
    /// max_body_bytes, sqlite_durable, and [auth] and [policy] tables).
    #[arg(long, env = "SHAREDCARE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "SHAREDCARE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory for the embedded store (default ./sharedcare-data).
    #[arg(long, env = "SHAREDCARE_DATA")]
    pub data: Option<PathBuf>,
    /// Use PostgreSQL at this URL instead of the embedded store.
    #[arg(long, env = "SHAREDCARE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The FHIR base URL clients see (default http://LISTEN/fhir).
    #[arg(long, env = "SHAREDCARE_BASE_URL")]
    pub base_url: Option<String>,
    /// Largest accepted request body, in bytes (default 16 MiB).
    #[arg(long, env = "SHAREDCARE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// fsync the SQLite WAL at every commit (default true).
    #[arg(long, env = "SHAREDCARE_SQLITE_DURABLE")]
    pub sqlite_durable: Option<bool>,
}

/// The file layer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    database_url: Option<String>,
    base_url: Option<String>,
    max_body_bytes: Option<usize>,
    sqlite_durable: Option<bool>,
    #[serde(default)]
    auth: AuthFile,
    /// `[policy]`: durations and roles (defaults: issue #4's table).
    #[serde(default)]
    policy: policy::PolicySettings,
}

/// `[auth]`: trusted external issuers and token-endpoint clients. The
/// embedded issuer (a key pair in the data directory) is always trusted.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// External OIDC issuers (e.g. NHS CIS2) and how to read their claims.
    #[serde(default)]
    pub issuers: Vec<IssuerFile>,
    /// Clients of `POST /oauth/token` (client_credentials).
    #[serde(default)]
    pub clients: Vec<api::auth::OAuthClient>,
    /// Lifetime of tokens the embedded issuer mints (default 3600).
    #[serde(default)]
    pub token_ttl_secs: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerFile {
    pub issuer: String,
    /// A JWKS file with the issuer's public keys.
    pub jwks_file: PathBuf,
    #[serde(default)]
    pub mapping: auth::ClaimMapping,
}

/// Where the records live.
#[derive(Clone)]
pub enum Backend {
    Sqlite { path: PathBuf },
    Postgres { url: String },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            Backend::Postgres { .. } => f
                .debug_struct("Postgres")
                .field("url", &"<redacted>")
                .finish(),
        }
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub backend: Backend,
    pub base_url: Option<String>,
    pub max_body_bytes: usize,
    pub sqlite_durable: bool,
    /// Holds the embedded store and the token issuer's key pair.
    pub data: PathBuf,
    pub auth: AuthFile,
    /// The access policy: the defaults with the file's `[policy]` applied.
    pub policy: policy::Policy,
}

impl Config {
    /// The FHIR base URL: configured, or `http://LISTEN/fhir` for `addr`.
    pub fn base_url_for(&self, addr: SocketAddr) -> String {
        self.base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}/fhir"))
    }
}

/// Environment variables this program reads (clap reads them; this list
/// exists to warn about misspelt ones).
const KNOWN_ENV: &[&str] = &[
    "SHAREDCARE_CONFIG",
    "SHAREDCARE_LISTEN",
    "SHAREDCARE_DATA",
    "SHAREDCARE_DATABASE_URL",
    "SHAREDCARE_BASE_URL",
    "SHAREDCARE_MAX_BODY_BYTES",
    "SHAREDCARE_SQLITE_DURABLE",
    "SHAREDCARE_LOG",
    // Read by the test suites, not by the server.
    "SHAREDCARE_TEST_DATABASE_URL",
];

/// Names of `SHAREDCARE_*` variables in `vars` that nothing reads.
pub fn unknown_env_vars(vars: impl Iterator<Item = String>) -> Vec<String> {
    vars.filter(|k| k.starts_with("SHAREDCARE_") && !KNOWN_ENV.contains(&k.as_str()))
        .collect()
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // The error's message and position only: its default text quotes the
    // offending line, which may hold a secret (a database URL's password).
    toml::from_str(&text).map_err(|e| {
        let at = e.span().map(|span| {
            let line = text
                .get(..span.start)
                .map_or(0, |before| before.matches('\n').count())
                + 1;
            format!(" (line {line})")
        });
        format!(
            "invalid configuration file {}{}: {}",
            path.display(),
            at.unwrap_or_default(),
            e.message()
        )
    })
}

/// Resolves the layers: command line / environment first, then the file,
/// then defaults.
pub fn resolve(args: &ServerArgs) -> Result<Config, String> {
    let file = match &args.config {
        Some(p) => read_file(p)?,
        None => FileConfig::default(),
    };
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
    let data = args
        .data
        .clone()
        .or(file.data)
        .unwrap_or_else(|| PathBuf::from("sharedcare-data"));
    let backend = match args.database_url.clone().or(file.database_url.clone()) {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Backend::Postgres { url }
        }
        Some(_) => {
            return Err("database_url must start with postgres:// or postgresql://".to_owned());
        }
        None => Backend::Sqlite {
            path: data.join("sharedcare.db"),
        },
    };
    let base_url = args
        .base_url
        .clone()
        .or(file.base_url)
        .map(|u| u.trim_end_matches('/').to_owned());
    let max_body_bytes = args
        .max_body_bytes
        .or(file.max_body_bytes)
        .unwrap_or(16 * 1024 * 1024);
    let sqlite_durable = args.sqlite_durable.or(file.sqlite_durable).unwrap_or(true);
    Ok(Config {
        listen,
        backend,
        base_url,
        max_body_bytes,
        sqlite_durable,
        data,
        auth: file.auth,
        policy: policy::Policy::configured(file.policy)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "sharedcare-config-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn layers() {
        let p = write(
            "layers",
            "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 10\n",
        );
        let args = ServerArgs {
            config: Some(p.clone()),
            max_body_bytes: Some(20),
            ..Default::default()
        };
        let c = resolve(&args).unwrap();
        assert_eq!(c.listen.port(), 9000, "file beats default");
        assert_eq!(
            c.max_body_bytes, 20,
            "command line / environment beats file"
        );
        assert!(matches!(c.backend, Backend::Sqlite { .. }));
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn auth_table() {
        let p = write(
            "auth",
            r#"
[auth]
token_ttl_secs = 600

[[auth.issuers]]
issuer = "https://cis2.example"
jwks_file = "/etc/sharedcare/cis2-jwks.json"
mapping = { kind = "cis2", role_map = { R8000 = "hospital-clinician" } }

[[auth.clients]]
client_id = "adt-feed"
secret_sha256 = "00"
name = "Hospital ADT feed"
role = "integration"
org = "RXX01"
scope = "system/Encounter.cru"
"#,
        );
        let c = resolve(&ServerArgs {
            config: Some(p.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.auth.token_ttl_secs, Some(600));
        assert_eq!(c.auth.issuers.len(), 1);
        assert_eq!(c.auth.clients[0].role, "integration");
        std::fs::remove_file(p).unwrap();
        let p = write(
            "auth-bad",
            "[auth]\nclients = [{ client_id = \"x\", secret = \"y\" }]\n",
        );
        assert!(
            resolve(&ServerArgs {
                config: Some(p.clone()),
                ..Default::default()
            })
            .is_err()
        );
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn unknown_keys_rejected() {
        let p = write("unknown", "listn = \"127.0.0.1:9000\"\n");
        let err = resolve(&ServerArgs {
            config: Some(p.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("listn"), "{err}");
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn config_errors_do_not_quote_secrets() {
        let p = write("secret", "database_urll = \"postgres://u:hunter2@h/db\"\n");
        let err = resolve(&ServerArgs {
            config: Some(p.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.contains("database_urll") && err.contains("line 1"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn secrets_redacted() {
        let args = ServerArgs {
            database_url: Some("postgres://u:secret@h/db".into()),
            ..Default::default()
        };
        let c = resolve(&args).unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn unknown_env() {
        let vars = ["SHAREDCARE_LISTEN", "SHAREDCARE_LISTN", "PATH"]
            .into_iter()
            .map(String::from);
        assert_eq!(unknown_env_vars(vars), vec!["SHAREDCARE_LISTN"]);
    }

    #[test]
    fn policy_table() {
        let p = write(
            "policy",
            r#"
[policy]
recent_encounter_days = 14
break_glass_hours = 2

[[policy.roles]]
code = "reablement-worker"
kind = "social-care"
needs_registration = false
break_glass = false
reads_directory = true
view = { rules = [
  { rtype = "Patient", elements = ["name", "birthDate"] },
  { rtype = "AllergyIntolerance", conditions = [{ code = { param = "clinical-status", path = "clinicalStatus.coding.code", codes = ["active"] } }] },
  { rtype = "CarePlan", conditions = ["recorded-by-own-org"] },
] }
creates = [{ rtype = "Observation" }]
"#,
        );
        let c = resolve(&ServerArgs {
            config: Some(p.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.policy.recent_encounter, 14 * 86_400_000_000);
        assert_eq!(c.policy.break_glass_for, 2 * 3_600_000_000);
        let role = c.policy.role("reablement-worker").unwrap();
        assert!(matches!(&role.view, policy::View::Rules(r) if r.len() == 3));
        assert!(c.policy.role("gp").is_some(), "defaults kept");

        let bad = write("policy-bad", "[policy]\nbreak_glass_hours = 99\n");
        let err = resolve(&ServerArgs {
            config: Some(bad.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("break_glass_hours"), "{err}");
        let unknown = write("policy-unknown", "[policy]\nbreak_glass_minutes = 5\n");
        let err = resolve(&ServerArgs {
            config: Some(unknown.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("break_glass_minutes"), "{err}");
        for f in [p, bad, unknown] {
            let _ = std::fs::remove_file(f);
        }
    }
}
