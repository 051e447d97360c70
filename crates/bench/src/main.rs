//! `cargo run --release -p bench -- ingest …`: transaction ingest throughput.
//!
//! Loads the Synthea transaction bundles (`../shared/data/synthea` by
//! default) into a fresh store, through the real HTTP stack on loopback
//! (`--via http`, the default) or straight into the core service
//! (`--via direct`), with validation on, and reports resources per second.
//! Prints a JSON line and a markdown table row. Never asserts: figures go to
//! BENCHMARKS.md.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};

/// The same allocator as the server binary, so figures match.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use sharedcare_core::{Clock, IdGenerator, Service, ServiceConfig};
use store::Store;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy, ValueEnum, Debug)]
enum Via {
    Http,
    Direct,
}

#[derive(Subcommand)]
enum Cmd {
    /// Transaction ingest throughput over the Synthea bundles.
    Ingest {
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        /// PostgreSQL URL (or SHAREDCARE_BENCH_DATABASE_URL); a fresh schema is used.
        #[arg(long, env = "SHAREDCARE_BENCH_DATABASE_URL")]
        database_url: Option<String>,
        #[arg(long, default_value = "../shared/data/synthea")]
        bundles: PathBuf,
        /// Load the whole set this many times (new ids each time).
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Concurrent clients.
        #[arg(long, default_value_t = 2)]
        clients: usize,
        #[arg(long, value_enum, default_value = "http")]
        via: Via,
    },
}

struct BenchClock;
impl Clock for BenchClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> i64 {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(d.as_micros()).unwrap_or(0)
    }
}

/// Sequential ids with a per-run prefix: cheap, unique within the run.
struct BenchIds(String, AtomicU64);
impl IdGenerator for BenchIds {
    fn new_id(&self) -> String {
        format!("{}-{}", self.0, self.1.fetch_add(1, Ordering::Relaxed))
    }
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    match args.command {
        Cmd::Ingest {
            backend,
            database_url,
            bundles,
            repeat,
            clients,
            via,
        } => rt.block_on(ingest(backend, database_url, bundles, repeat, clients, via)),
    }
}

async fn ingest(
    backend: Backend,
    url: Option<String>,
    dir: PathBuf,
    repeat: usize,
    clients: usize,
    via: Via,
) -> Result<(), String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| {
            format!(
                "{}: {e} (the Synthea bundles live in ../shared/data/synthea)",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut bodies = Vec::new();
    let mut resources = 0usize;
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        resources += v
            .get("entry")
            .and_then(|e| e.as_array())
            .map_or(0, Vec::len);
        bodies.push(text);
    }
    let run = format!("b{}", std::process::id());
    let tmp = std::env::temp_dir().join(format!("sharedcare-bench-{run}"));
    let _ = std::fs::remove_dir_all(&tmp);
    let label = format!("{backend:?}").to_lowercase();
    let result = match backend {
        Backend::Sqlite => {
            let store = store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(
                tmp.join("bench.db"),
            ))
            .map_err(|e| e.to_string())?;
            run_ingest(store, &run, &bodies, repeat, clients, via).await
        }
        Backend::Postgres => {
            let url =
                url.ok_or("postgres needs --database-url or SHAREDCARE_BENCH_DATABASE_URL")?;
            let mut c = store_postgres::PostgresConfig::new(url);
            c.schema = Some(format!("bench_{run}"));
            let store = store_postgres::PostgresStore::connect(c)
                .await
                .map_err(|e| e.to_string())?;
            run_ingest(store, &run, &bodies, repeat, clients, via).await
        }
    };
    let _ = std::fs::remove_dir_all(&tmp);
    let secs = result?;
    let total = resources * repeat;
    let rate = total as f64 / secs;
    println!(
        "{}",
        serde_json::json!({"bench": "ingest", "backend": label, "via": format!("{via:?}").to_lowercase(),
            "bundles": bodies.len() * repeat, "resources": total, "clients": clients, "seconds": secs, "resources_per_second": rate})
    );
    println!(
        "| ingest | {label} | {:?} | {} bundles, {total} resources | {clients} | {secs:.2} s | {rate:.0} resources/s |",
        via,
        bodies.len() * repeat
    );
    Ok(())
}

async fn run_ingest<S: Store>(
    store: S,
    run: &str,
    bodies: &[String],
    repeat: usize,
    clients: usize,
    via: Via,
) -> Result<f64, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let service = Service::new(
        store,
        Arc::new(BenchClock),
        Arc::new(BenchIds(run.to_owned(), AtomicU64::new(0))),
        ServiceConfig {
            base_url: format!("http://{addr}/fhir"),
        },
    );
    let app = api::router(service.clone(), api::ApiConfig::default());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let work: Vec<&String> = (0..repeat).flat_map(|_| bodies.iter()).collect();
    let next = Arc::new(AtomicU64::new(0));
    let work = Arc::new(work.into_iter().cloned().collect::<Vec<String>>());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (work, next, service) = (work.clone(), next.clone(), service.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = usize::try_from(next.fetch_add(1, Ordering::Relaxed)).unwrap_or(usize::MAX);
                let Some(body) = work.get(i) else {
                    return Ok::<(), String>(());
                };
                match via {
                    Via::Direct => {
                        service
                            .bundle(body.as_bytes())
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    Via::Http => {
                        let body = body.clone();
                        let status = tokio::task::spawn_blocking(move || post(addr, &body))
                            .await
                            .map_err(|e| e.to_string())??;
                        if status != 200 {
                            return Err(format!("bundle refused with {status}"));
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// One POST over a fresh loopback connection; returns the status.
fn post(addr: SocketAddr, body: &str) -> Result<u16, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    write!(
        s,
        "POST /fhir HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    s.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let head =
        String::from_utf8_lossy(out.get(..out.len().min(64)).unwrap_or_default()).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| "no status".to_owned())
}
