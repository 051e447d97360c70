//! `sharedcare`: the one binary.
//!
//! - `sharedcare serve`: serve the FHIR API on the embedded store (SQLite in
//!   `--data`) or on PostgreSQL (`--database-url`).
//! - `sharedcare demo`: the same, after generating and loading (once: repeat
//!   runs reuse the data) a small synthetic integrated care system, printing
//!   what to try with ready tokens.
//! - `sharedcare token`: mint a token with the data directory's issuer key.
//! - `sharedcare generate`: write a synthetic ICS population (FHIR NDJSON or
//!   transaction Bundles, and demo users).
//!
//! This is the only place that constructs the real clock, the id generator
//! and the key pair's random seed.

mod audit_cmd;
mod config;
mod demo;
mod generate_cmd;
mod import;
mod jwks_fetch;
mod progress;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use sharedcare_core::{Caller, Clock, IdGenerator, Service, ServiceConfig};
use store::Store;

use crate::config::{Backend, Config, ServerArgs};

/// mimalloc: allocation-heavy request paths (JSON, FHIRPath, SQLite binds)
/// ran 25-30% of their time in glibc malloc/free under two threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sharedcare",
    version,
    about = "A shared health and social care record (FHIR R4, UK Core)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the FHIR API.
    Serve(ServerArgs),
    /// Generate and load a small synthetic integrated care system (once),
    /// then serve it and print what to try, with ready tokens.
    Demo {
        #[command(flatten)]
        server: ServerArgs,
        /// Delete the embedded store's data first.
        #[arg(long)]
        reset: bool,
        /// How many people the demo population has.
        #[arg(long, default_value_t = 1_000)]
        people: u64,
        /// The population's seed (the same seed, the same people).
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Mint a token with this data directory's issuer key (the operator's
    /// tool: it can mint any role, including system clients).
    Token(Box<TokenArgs>),
    /// The audit log: verify its hash chain, sign a checkpoint, export it.
    Audit {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Write a synthetic integrated care system population: organisations,
    /// staff, people and their records, as FHIR NDJSON or transaction
    /// Bundles, with `users.ndjson` for `sharedcare token`.
    Generate(generate_cmd::GenerateArgs),
    /// Load FHIR NDJSON files and transaction/batch Bundles (files or
    /// folders) through validation, policy and audit, in resumable batches;
    /// exits 1 when anything was rejected.
    Import(Box<import::ImportArgs>),
}

#[derive(Subcommand, Clone)]
enum AuditAction {
    /// Walk the hash chain and the signed checkpoints; report the first
    /// altered, deleted, inserted or reordered record and exit non-zero.
    Verify,
    /// Verify, then sign and store a checkpoint of the chain's head.
    Checkpoint,
    /// Write every record as NDJSON (to stdout, or to --output).
    Export {
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(clap::Args)]
struct TokenArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The user's (or client's) subject id.
    #[arg(long)]
    sub: String,
    /// Display name.
    #[arg(long)]
    name: String,
    /// Role code: gp, hospital-clinician, community-clinician, pharmacist,
    /// care-nurse, social-worker, care-worker, patient, proxy,
    /// data-controller, commissioner, integration, admin.
    #[arg(long)]
    role: String,
    /// Organisation (ODS code).
    #[arg(long)]
    org: Option<String>,
    /// Professional registration (GMC/NMC/HCPC/GPhC id).
    #[arg(long)]
    registration: Option<String>,
    /// The patient (logical id, or NHS number) a patient/proxy token is for.
    #[arg(long)]
    patient: Option<String>,
    /// The RelatedPerson a proxy acts as.
    #[arg(long)]
    related_person: Option<String>,
    /// SMART scopes (default by role: system/*.cruds, patient/*.cruds or
    /// user/*.cruds).
    #[arg(long)]
    scope: Option<String>,
    /// Lifetime, e.g. 1h, 30m, 3600s (default 1h).
    #[arg(long, default_value = "1h")]
    ttl: String,
}

/// The real clock.
struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> i64 {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
    }
}

/// Random (v4) UUIDs as logical ids.
struct UuidIds;

impl IdGenerator for UuidIds {
    #[allow(clippy::disallowed_methods)]
    fn new_id(&self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHAREDCARE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    for name in config::unknown_env_vars(std::env::vars().map(|(k, _)| k)) {
        tracing::warn!(variable = %name, "unknown SHAREDCARE_ environment variable ignored");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => config::resolve(&args).and_then(|c| runtime.block_on(run(c, None))),
        Command::Demo {
            server,
            reset,
            people,
            seed,
        } => config::resolve(&server).and_then(|c| {
            if reset {
                reset_data(&c)?;
            }
            if !(50..=1_000_000).contains(&people) {
                return Err("--people must be 50 to 1,000,000".to_owned());
            }
            runtime.block_on(run(c, Some(DemoOptions { people, seed })))
        }),
        Command::Token(args) => {
            config::resolve(&args.server).and_then(|c| runtime.block_on(mint_command(&c, &args)))
        }
        Command::Generate(args) => generate_cmd::run(&args),
        Command::Import(args) => return import::run(&args, &runtime),
        Command::Audit { server, action } => {
            config::resolve(&server).and_then(|c| runtime.block_on(audit_command(&c, action)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn reset_data(c: &Config) -> Result<(), String> {
    match &c.backend {
        Backend::Sqlite { path } => {
            for p in store_sqlite::files(path) {
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(format!("cannot remove {}: {e}", p.display()));
                    }
                }
            }
            Ok(())
        }
        Backend::Postgres { .. } => {
            Err("--reset works on the embedded store only; drop the database yourself".to_owned())
        }
    }
}

/// What `sharedcare demo` loads.
#[derive(Debug, Clone, Copy)]
struct DemoOptions {
    people: u64,
    seed: u64,
}

async fn run(c: Config, demo: Option<DemoOptions>) -> Result<(), String> {
    tracing::info!(config = ?c, "starting");
    match &c.backend {
        Backend::Sqlite { path } => {
            let mut sc = store_sqlite::SqliteConfig::new(path.clone());
            sc.durable = c.sqlite_durable;
            let store =
                store_sqlite::SqliteStore::open(sc).map_err(|e| format!("embedded store: {e}"))?;
            serve(store, &c, demo).await
        }
        Backend::Postgres { url } => {
            let store = store_postgres::PostgresStore::connect(
                store_postgres::PostgresConfig::new(url.clone()),
            )
            .await
            .map_err(|e| format!("postgres: {e}"))?;
            serve(store, &c, demo).await
        }
    }
}

async fn serve<S: Store>(store: S, c: &Config, demo: Option<DemoOptions>) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(c.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", c.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base_url = c.base_url_for(addr);
    let service = service_for(store, &base_url).with_policy(c.policy.clone());
    let reindexed = service
        .reindex_if_needed()
        .await
        .map_err(|e| format!("rebuilding the search index: {e}"))?;
    if reindexed > 0 {
        tracing::info!(resources = reindexed, "search index rebuilt");
    }
    let cast = match demo {
        Some(d) => Some(demo::load(&service, d.people, d.seed, today()).await?),
        None => None,
    };
    let key = issuer_key(c)?;
    let demo_help = match &cast {
        Some(cast) => {
            let tokens = demo::tokens(&key, &base_url, service.now(), cast)?;
            Some(demo::help(&base_url, &tokens, cast))
        }
        None => None,
    };
    let auth = auth_config(c, key, &base_url).await?;
    let app = api::router(
        service,
        api::ApiConfig {
            max_body_bytes: c.max_body_bytes,
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            auth: Arc::new(auth),
            audit_requests: true,
        },
    );
    if let Some(help) = demo_help {
        println!("{help}");
    }
    // Tests and scripts read this line to find the port.
    println!("sharedcare listening on http://{addr} (FHIR base {base_url})");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// Today's date (UTC), from the real clock: the demo population's "now".
fn today() -> generate::Date {
    generate::Date::from_days(SystemClock.now().div_euclid(86_400_000_000))
}

/// 32 bytes from the operating system's random source (via v4 UUIDs).
#[allow(clippy::disallowed_methods)]
fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    let (a, b) = seed.split_at_mut(16);
    a.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    b.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed
}

/// The embedded issuer's key pair, created in the data directory at first
/// start.
/// `sharedcare audit …` on the configured store.
async fn audit_command(c: &Config, action: AuditAction) -> Result<(), String> {
    match &c.backend {
        Backend::Sqlite { path } => {
            if !path.exists() {
                return Err(format!("no embedded store at {}", path.display()));
            }
            let store =
                store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(path.clone()))
                    .map_err(|e| format!("embedded store: {e}"))?;
            audit_on(c, &store, action).await
        }
        Backend::Postgres { url } => {
            let store = store_postgres::PostgresStore::connect(
                store_postgres::PostgresConfig::new(url.clone()),
            )
            .await
            .map_err(|e| format!("postgres: {e}"))?;
            audit_on(c, &store, action).await
        }
    }
}

async fn audit_on<S: Store>(c: &Config, store: &S, action: AuditAction) -> Result<(), String> {
    let key = issuer_key(c)?;
    match action {
        AuditAction::Verify => audit_cmd::verify(store, &key).await,
        AuditAction::Checkpoint => audit_cmd::checkpoint(store, &key, SystemClock.now()).await,
        AuditAction::Export { output } => {
            let n = match output {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                    let mut w = std::io::BufWriter::new(file);
                    audit_cmd::export(store, &mut w).await?
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut w = std::io::BufWriter::new(stdout.lock());
                    audit_cmd::export(store, &mut w).await?
                }
            };
            eprintln!("exported {n} audit records");
            Ok(())
        }
    }
}

fn issuer_key(c: &Config) -> Result<auth::IssuerKey, String> {
    auth::IssuerKey::load_or_create(&c.data, random_seed)
        .map_err(|e| format!("the token issuer key in {}: {e}", c.data.display()))
}

/// Trusts the embedded issuer (iss and aud: the FHIR base URL) and the
/// configured external issuers, fetching their JWK Set URLs and starting
/// the tasks that keep those keys fresh.
async fn auth_config(
    c: &Config,
    key: auth::IssuerKey,
    base_url: &str,
) -> Result<api::auth::AuthConfig, String> {
    let fetcher = Arc::new(jwks_fetch::Fetcher::new(jwks_fetch::Limits::DEFAULT)?);
    let mut issuers = vec![key.trusted_issuer(base_url)];
    issuers.extend(
        jwks_fetch::trusted_issuers(&c.auth.issuers, &fetcher, jwks_fetch::Retry::START_UP).await?,
    );
    let verifier = auth::Verifier::new(auth::VerifierConfig::new(base_url, issuers))
        .map_err(|e| format!("token verification: {e}"))?;
    jwks_fetch::keep_fresh(&verifier, &c.auth.issuers, &fetcher)?;
    Ok(api::auth::AuthConfig::new(
        verifier,
        Some(api::auth::EmbeddedIssuer {
            key,
            issuer: base_url.to_owned(),
            audience: base_url.to_owned(),
        }),
        c.auth.clients.clone(),
        c.auth.token_ttl_secs.unwrap_or(3600),
    ))
}

fn parse_ttl(s: &str) -> Result<i64, String> {
    let (n, unit) = s.split_at(s.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
    let n: i64 = n
        .parse()
        .map_err(|_| format!("--ttl: '{s}' is not like 1h, 30m or 3600s"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("--ttl: unknown unit in '{s}'")),
    };
    if secs <= 0 || secs > 30 * 86_400 {
        return Err("--ttl must be between 1 second and 30 days".to_owned());
    }
    Ok(secs)
}

fn default_scope(role: &str) -> &'static str {
    match role {
        "integration" => "system/*.cruds",
        "patient" | "proxy" => "patient/*.cruds",
        _ => "user/*.cruds",
    }
}

#[allow(clippy::too_many_arguments)]
fn mint(
    key: &auth::IssuerKey,
    base_url: &str,
    now_micros: i64,
    ttl_secs: i64,
    sub: &str,
    name: &str,
    role: &str,
    org: Option<&str>,
    registration: Option<&str>,
    patient: Option<&str>,
    related_person: Option<&str>,
    scope: Option<&str>,
) -> Result<String, String> {
    let now = now_micros.div_euclid(1_000_000);
    let claims = auth::TokenClaims {
        iss: base_url.to_owned(),
        aud: base_url.to_owned(),
        sub: sub.to_owned(),
        exp: now + ttl_secs,
        nbf: now,
        iat: now,
        jti: UuidIds.new_id(),
        name: name.to_owned(),
        role: role.to_owned(),
        scope: scope.unwrap_or(default_scope(role)).to_owned(),
        org: org.map(str::to_owned),
        registration: registration.map(str::to_owned),
        patient: patient.map(str::to_owned),
        related_person: related_person.map(str::to_owned),
        client_id: None,
    };
    key.mint(&claims).map_err(|e| format!("minting: {e}"))
}

/// `sharedcare token …`: prints a token for this data directory's issuer.
async fn mint_command(c: &Config, args: &TokenArgs) -> Result<(), String> {
    if c.policy.role(&args.role).is_none() {
        let known: Vec<&str> = c.policy.roles.iter().map(|r| r.code.as_str()).collect();
        return Err(format!(
            "unknown role {:?}; the policy has: {}",
            args.role,
            known.join(", ")
        ));
    }
    let key = issuer_key(c)?;
    let base_url = c.base_url_for(c.listen);
    let ttl = parse_ttl(&args.ttl)?;
    // An NHS number is resolved to the patient's logical id.
    let patient = match &args.patient {
        Some(p) if p.len() == 10 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(find_patient_by_nhs_number(c, p).await?)
        }
        other => other.clone(),
    };
    let token = mint(
        &key,
        &base_url,
        SystemClock.now(),
        ttl,
        &args.sub,
        &args.name,
        &args.role,
        args.org.as_deref(),
        args.registration.as_deref(),
        patient.as_deref(),
        args.related_person.as_deref(),
        args.scope.as_deref(),
    )?;
    println!("{token}");
    Ok(())
}

async fn find_patient_by_nhs_number(c: &Config, nhs: &str) -> Result<String, String> {
    let query = format!("identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}&_elements=id");
    let pairs = sharedcare_core::query::parse_query_string(&query).map_err(|e| e.to_string())?;
    let caller = Caller::system("sharedcare-token", None);
    let found = match &c.backend {
        Backend::Sqlite { path } => {
            let store =
                store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(path.clone()))
                    .map_err(|e| format!("embedded store: {e}"))?;
            service_for(store, "")
                .search(&caller, "Patient", &pairs, false)
                .await
        }
        Backend::Postgres { url } => {
            let store = store_postgres::PostgresStore::connect(
                store_postgres::PostgresConfig::new(url.clone()),
            )
            .await
            .map_err(|e| format!("postgres: {e}"))?;
            service_for(store, "")
                .search(&caller, "Patient", &pairs, false)
                .await
        }
    }
    .map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&found.0).map_err(|e| e.to_string())?;
    let ids: Vec<&str> = v
        .get("entry")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| e.pointer("/resource/id").and_then(|i| i.as_str()))
        .collect();
    match ids.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(format!("no patient has NHS number {nhs}")),
        _ => Err(format!("several patients have NHS number {nhs}")),
    }
}

/// The service over `store` with the real clock and ids.
fn service_for<S: Store>(store: S, base_url: &str) -> Service<S> {
    Service::new(
        store,
        Arc::new(SystemClock),
        Arc::new(UuidIds),
        ServiceConfig {
            base_url: base_url.to_owned(),
        },
    )
}

/// Resolves on SIGTERM or Ctrl-C; in-flight requests then finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
