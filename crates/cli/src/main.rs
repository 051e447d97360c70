//! `sharedcare`: the one binary.
//!
//! - `sharedcare serve`: serve the FHIR API on the embedded store (SQLite in
//!   `--data`) or on PostgreSQL (`--database-url`).
//! - `sharedcare demo`: the same, after loading a small built-in sample
//!   (idempotently: repeat runs reuse the data), printing what to try.
//!
//! This is the only place that constructs the real clock and id generator.

mod config;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use sharedcare_core::{Clock, IdGenerator, Service, ServiceConfig};
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
    /// Load a small built-in sample, then serve it and print what to try.
    Demo {
        #[command(flatten)]
        server: ServerArgs,
        /// Delete the embedded store's data first.
        #[arg(long)]
        reset: bool,
    },
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

const DEMO_BUNDLE: &str = include_str!("../demo/sample-bundle.json");

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
        Command::Serve(args) => {
            config::resolve(&args).and_then(|c| runtime.block_on(run(c, false)))
        }
        Command::Demo { server, reset } => config::resolve(&server).and_then(|c| {
            if reset {
                reset_data(&c)?;
            }
            runtime.block_on(run(c, true))
        }),
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
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(format!(
                            "cannot remove {}: {e}",
                            std::path::Path::new(&p).display()
                        ));
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

async fn run(c: Config, demo: bool) -> Result<(), String> {
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

async fn serve<S: Store>(store: S, c: &Config, demo: bool) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(c.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", c.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base_url = c
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}/fhir"));
    let service = Service::new(
        store,
        Arc::new(SystemClock),
        Arc::new(UuidIds),
        ServiceConfig {
            base_url: base_url.clone(),
        },
    );
    let reindexed = service
        .reindex_if_needed()
        .await
        .map_err(|e| format!("rebuilding the search index: {e}"))?;
    if reindexed > 0 {
        tracing::info!(resources = reindexed, "search index rebuilt");
    }
    if demo {
        load_demo(&service).await?;
    }
    let app = api::router(
        service,
        api::ApiConfig {
            max_body_bytes: c.max_body_bytes,
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
        },
    );
    if demo {
        print_demo_help(&base_url);
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

async fn load_demo<S: Store>(service: &Service<S>) -> Result<(), String> {
    let response = service
        .bundle(DEMO_BUNDLE.as_bytes())
        .await
        .map_err(|e| format!("loading the demo sample: {e}"))?;
    let v: serde_json::Value = serde_json::from_str(&response).map_err(|e| e.to_string())?;
    let entries = v
        .get("entry")
        .and_then(|e| e.as_array())
        .map(Vec::len)
        .unwrap_or(0);
    let created = v
        .get("entry")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .filter(|e| e.pointer("/response/status").and_then(|s| s.as_str()) == Some("201 Created"))
        .count();
    if created == 0 {
        eprintln!(
            "demo: the sample ({entries} resources) was already loaded; reusing it (use --reset to start again)"
        );
    } else {
        eprintln!("demo: loaded the sample: {created} of {entries} resources created");
    }
    Ok(())
}

fn print_demo_help(base: &str) {
    let nhs = "https://fhir.nhs.uk/Id/nhs-number";
    println!(
        r#"
sharedcare demo is running. FHIR base: {base}

Try (in another terminal):
  # What this server can do
  curl -s {base}/metadata | head -c 400; echo
  # Find Margaret Hughes by NHS number
  curl -s '{base}/Patient?identifier={nhs}|9990000018'
  # Her record's history, newest first
  curl -s '{base}/Patient/_history?_count=5'
  # Add an observation (use the Patient id from the search above)
  curl -s -X POST {base}/Observation -H 'Content-Type: application/fhir+json' \
       -d '{{"resourceType":"Observation","status":"final","code":{{"text":"Weight"}},"valueQuantity":{{"value":61.5,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}}}'
  # Invalid input is refused with an OperationOutcome saying why
  curl -s -X POST {base}/Patient -H 'Content-Type: application/fhir+json' \
       -d '{{"resourceType":"Patient","identifier":[{{"system":"{nhs}","value":"9990000019"}}]}}'

Stop with Ctrl-C.
"#
    );
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
