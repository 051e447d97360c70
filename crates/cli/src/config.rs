//! Configuration: a TOML file < `SHAREDCARE_*` environment < command line.
//!
//! The raw layers are parsed first (unknown keys in the file are errors), then
//! resolved once into [`Config`], which is passed down; nothing reads the
//! environment after start-up. Secrets (the database URL's password) are
//! redacted from `Debug` output and logs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    /// External OIDC issuers (e.g. NHS CIS2) and how to read their claims.
    #[serde(default)]
    issuers: Vec<IssuerFile>,
    /// Clients of `POST /oauth/token` (client_credentials).
    #[serde(default)]
    clients: Vec<api::auth::OAuthClient>,
    /// Lifetime of tokens the embedded issuer mints (default 3600).
    #[serde(default)]
    token_ttl_secs: Option<i64>,
}

/// `[[auth.issuers]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerFile {
    issuer: String,
    /// A JWKS file with the issuer's public keys …
    jwks_file: Option<PathBuf>,
    /// … or the URL of its JWKS (`jwks_uri` in its OpenID configuration).
    jwks_url: Option<String>,
    /// How often a `jwks_url` is fetched again, in seconds.
    jwks_refresh_secs: Option<u64>,
    #[serde(default)]
    mapping: auth::ClaimMapping,
}

/// The resolved `[auth]` table.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    pub issuers: Vec<ExternalIssuer>,
    pub clients: Vec<api::auth::OAuthClient>,
    pub token_ttl_secs: Option<i64>,
}

/// A trusted external issuer.
#[derive(Debug, Clone)]
pub struct ExternalIssuer {
    /// The exact `iss` of its tokens.
    pub issuer: String,
    pub jwks: JwksSource,
    pub mapping: auth::ClaimMapping,
}

/// Where an external issuer's public keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A JWKS file, read once at start-up.
    File(PathBuf),
    /// A JWKS URL, fetched at start-up and then every `refresh_every` (and
    /// sooner when a token names a key it does not hold).
    Url {
        url: JwksUrl,
        refresh_every: Duration,
    },
}

/// How often a JWKS URL is fetched again, by default (`jwks_refresh_secs`).
pub const DEFAULT_JWKS_REFRESH_SECS: u64 = 3600;
/// The bounds of `jwks_refresh_secs`: a minute to a week.
pub const JWKS_REFRESH_SECS: std::ops::RangeInclusive<u64> = 60..=7 * 86_400;

/// A JWKS URL that may be fetched: `https://`, or `http://` to a loopback
/// host (`127.0.0.1`, `[::1]`, `localhost`; for tests and sidecars). It has
/// no user name or password.
#[derive(Clone, PartialEq, Eq)]
pub struct JwksUrl {
    uri: hyper::Uri,
    https: bool,
    /// The host without an IPv6 literal's brackets, for DNS and TLS.
    host: String,
    port: u16,
}

impl JwksUrl {
    /// Checks a `jwks_url`; the error says what is wrong without quoting it.
    pub fn parse(text: &str) -> Result<JwksUrl, String> {
        const RULE: &str =
            "jwks_url must be an https:// URL (http:// only to 127.0.0.1, [::1] or localhost)";
        let uri: hyper::Uri = text
            .parse()
            .map_err(|_| format!("{RULE}; this is not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(RULE.to_owned()),
        };
        let Some(authority) = uri.authority() else {
            return Err(format!("{RULE}; this one has no host"));
        };
        if authority.as_str().contains('@') {
            return Err("jwks_url must not hold a user name or password".to_owned());
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(format!("{RULE}; this one has no host"));
        }
        let loopback = ["127.0.0.1", "[::1]", "localhost"]
            .iter()
            .any(|l| host.eq_ignore_ascii_case(l));
        if !https && !loopback {
            return Err(format!("{RULE}; plain http:// is refused for other hosts"));
        }
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_ascii_lowercase();
        Ok(JwksUrl {
            uri,
            https,
            host,
            port,
        })
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host to resolve and (with https) to check the certificate for.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `Host` header: the URL's authority as written.
    pub fn authority(&self) -> &str {
        self.uri.authority().map_or("", |a| a.as_str())
    }

    /// The request target: the path and query (`/` when empty).
    pub fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }
}

impl std::fmt::Display for JwksUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.uri.fmt(f)
    }
}

impl std::fmt::Debug for JwksUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwksUrl({})", self.uri)
    }
}

impl IssuerFile {
    fn resolve(self) -> Result<ExternalIssuer, String> {
        let what = |reason: &str| format!("[[auth.issuers]] `{}`: {reason}", self.issuer);
        let jwks = match (self.jwks_file, self.jwks_url) {
            (Some(_), Some(_)) => {
                return Err(what("give either jwks_file or jwks_url, not both"));
            }
            (None, None) => return Err(what("give its keys: jwks_file or jwks_url")),
            (Some(path), None) => {
                if self.jwks_refresh_secs.is_some() {
                    return Err(what(
                        "jwks_refresh_secs goes with jwks_url (a jwks_file is read once, at start-up)",
                    ));
                }
                JwksSource::File(path)
            }
            (None, Some(url)) => {
                let url = JwksUrl::parse(&url).map_err(|e| what(&e))?;
                let secs = self.jwks_refresh_secs.unwrap_or(DEFAULT_JWKS_REFRESH_SECS);
                if !JWKS_REFRESH_SECS.contains(&secs) {
                    return Err(what(&format!(
                        "jwks_refresh_secs must be between {} and {} seconds",
                        JWKS_REFRESH_SECS.start(),
                        JWKS_REFRESH_SECS.end()
                    )));
                }
                JwksSource::Url {
                    url,
                    refresh_every: Duration::from_secs(secs),
                }
            }
        };
        Ok(ExternalIssuer {
            issuer: self.issuer,
            jwks,
            mapping: self.mapping,
        })
    }
}

impl AuthFile {
    fn resolve(self) -> Result<AuthSettings, String> {
        Ok(AuthSettings {
            issuers: self
                .issuers
                .into_iter()
                .map(IssuerFile::resolve)
                .collect::<Result<_, _>>()?,
            clients: self.clients,
            token_ttl_secs: self.token_ttl_secs,
        })
    }
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
    pub auth: AuthSettings,
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
        auth: file.auth.resolve()?,
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
    fn jwks_urls_are_https_or_loopback_http() {
        for (url, host, port, path) in [
            ("https://idp.example/jwks", "idp.example", 443, "/jwks"),
            (
                "https://IdP.Example:8443/a/b?v=2",
                "idp.example",
                8443,
                "/a/b?v=2",
            ),
            ("https://idp.example", "idp.example", 443, "/"),
            ("https://[2001:db8::1]/jwks", "2001:db8::1", 443, "/jwks"),
            ("http://127.0.0.1:8080/jwks", "127.0.0.1", 8080, "/jwks"),
            ("http://[::1]:9000/jwks", "::1", 9000, "/jwks"),
            ("http://localhost/jwks", "localhost", 80, "/jwks"),
            ("HTTP://LOCALHOST:1/jwks", "localhost", 1, "/jwks"),
        ] {
            let u = JwksUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                (u.host(), u.port(), u.path_and_query()),
                (host, port, path),
                "{url}"
            );
            assert_eq!(u.is_https(), url.to_ascii_lowercase().starts_with("https"));
        }
        for (url, reason) in [
            ("http://idp.example/jwks", "plain http:// is refused"),
            ("http://127.0.0.2/jwks", "plain http:// is refused"),
            ("http://10.0.0.1/jwks", "plain http:// is refused"),
            (
                "http://localhost.evil.example/jwks",
                "plain http:// is refused",
            ),
            (
                "http://127.0.0.1.evil.example/jwks",
                "plain http:// is refused",
            ),
            (
                "http://127.0.0.1@evil.example/jwks",
                "user name or password",
            ),
            (
                "https://user:secret@idp.example/jwks",
                "user name or password",
            ),
            ("ftp://idp.example/jwks", "must be an https:// URL"),
            ("file:///etc/jwks.json", "must be an https:// URL"),
            ("idp.example/jwks", "must be an https:// URL"),
            ("/jwks", "must be an https:// URL"),
            ("", "not a URL"),
            ("https://idp example/jwks", "not a URL"),
        ] {
            let err = JwksUrl::parse(url).expect_err(url);
            assert!(err.contains(reason), "{url}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn an_issuer_has_exactly_one_source_of_keys() {
        let issuer = |keys: &str| {
            let p = write(
                "issuer-keys",
                &format!("[[auth.issuers]]\nissuer = \"https://idp.example\"\n{keys}"),
            );
            let r = resolve(&ServerArgs {
                config: Some(p.clone()),
                ..Default::default()
            });
            std::fs::remove_file(p).unwrap();
            r.map(|c| c.auth.issuers.into_iter().next().unwrap().jwks)
        };
        let url = issuer("jwks_url = \"https://idp.example/jwks\"\n").unwrap();
        assert!(
            matches!(&url, JwksSource::Url { url, refresh_every }
                if url.to_string() == "https://idp.example/jwks"
                    && *refresh_every == Duration::from_secs(3600)),
            "{url:?}"
        );
        let url = issuer("jwks_url = \"http://127.0.0.1:9/k\"\njwks_refresh_secs = 60\n").unwrap();
        assert!(
            matches!(url, JwksSource::Url { refresh_every, .. } if refresh_every == Duration::from_secs(60))
        );
        let file = issuer("jwks_file = \"/etc/jwks.json\"\n").unwrap();
        assert!(matches!(file, JwksSource::File(p) if p == Path::new("/etc/jwks.json")));

        for (keys, reason) in [
            ("", "give its keys: jwks_file or jwks_url"),
            (
                "jwks_file = \"/etc/jwks.json\"\njwks_url = \"https://idp.example/jwks\"\n",
                "either jwks_file or jwks_url, not both",
            ),
            (
                "jwks_file = \"/etc/jwks.json\"\njwks_refresh_secs = 600\n",
                "jwks_refresh_secs goes with jwks_url",
            ),
            (
                "jwks_url = \"https://idp.example/jwks\"\njwks_refresh_secs = 59\n",
                "between 60 and 604800 seconds",
            ),
            (
                "jwks_url = \"https://idp.example/jwks\"\njwks_refresh_secs = 604801\n",
                "between 60 and 604800 seconds",
            ),
            (
                "jwks_url = \"http://idp.example/jwks\"\n",
                "plain http:// is refused",
            ),
            ("jwks_uri = \"https://idp.example/jwks\"\n", "jwks_uri"),
        ] {
            let err = issuer(keys).expect_err(keys);
            assert!(err.contains(reason), "{keys}: {err}");
            if !reason.contains("jwks_uri") {
                assert!(
                    err.contains("`https://idp.example`"),
                    "names the issuer: {err}"
                );
            }
        }
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
