//! `cargo run --release -p bench -- ingest …`: transaction ingest throughput.
//!
//! Loads the Synthea transaction bundles (`../shared/data/synthea` by
//! default) into a fresh store, through the real HTTP stack on loopback
//! (`--via http`, the default) or straight into the core service
//! (`--via direct`), with validation on, and reports resources per second.
//! Prints a JSON line and a markdown table row. Never asserts: figures go to
//! BENCHMARKS.md.
//!
//! Other subcommands: `search` (issue #3), `access` (issue #4),
//! `audit-verify` (issue #5) and `population` (issue #6: ingest, reads,
//! searches, `$everything` and a care worker's flow on a generated
//! integrated care system; see `population.rs`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};

mod access;
mod population;

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
    /// Search latency at scale: load the Synthea bundles `repeat` times
    /// (60 ≈ 1 million resources), then time each kind of search over HTTP.
    Search {
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        #[arg(long, env = "SHAREDCARE_BENCH_DATABASE_URL")]
        database_url: Option<String>,
        #[arg(long, default_value = "../shared/data/synthea")]
        bundles: PathBuf,
        #[arg(long, default_value_t = 60)]
        repeat: usize,
        /// Requests per kind of search.
        #[arg(long, default_value_t = 200)]
        iterations: usize,
    },
    /// What access control costs: the policy decision alone, and
    /// authorised reads with and without it, on a generated population.
    Access {
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        #[arg(long, env = "SHAREDCARE_BENCH_DATABASE_URL")]
        database_url: Option<String>,
        /// People in the generated population.
        #[arg(long, default_value_t = 2000)]
        people: usize,
        /// Observations per person.
        #[arg(long, default_value_t = 20)]
        observations: usize,
        /// Reads per caller.
        #[arg(long, default_value_t = 20000)]
        reads: usize,
        /// Policy decisions to time.
        #[arg(long, default_value_t = 200000)]
        decisions: usize,
        /// HTTP client threads for the over-HTTP phase.
        #[arg(long, default_value_t = 2)]
        clients: usize,
        /// SQLite: fsync the WAL at every commit (the server's default).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        durable: bool,
        /// Over HTTP, each client keeps its connection open across reads
        /// (`false`: a new connection per read, as before 2026-11-26).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        keep_alive: bool,
        /// Timed rounds per caller over HTTP (after one warm-up round).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// The product at the scale of an integrated care system (issue #6):
    /// generate a population in process, ingest it, then time authorised
    /// reads, searches, `$everything` and a care worker's flow over HTTP at
    /// several concurrencies.
    Population {
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        /// PostgreSQL URL (or SHAREDCARE_BENCH_DATABASE_URL); a fresh schema
        /// is used and dropped at the end.
        #[arg(long, env = "SHAREDCARE_BENCH_DATABASE_URL")]
        database_url: Option<String>,
        /// People in the generated population.
        #[arg(long, default_value_t = 10_000)]
        people: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// "Today" for the generated records (fixed, so that runs load the
        /// same records).
        #[arg(long, default_value = "2026-11-25")]
        now: String,
        /// Client threads; each figure is measured at each of these.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        concurrency: Vec<usize>,
        /// Timed units (requests, or flows) per figure and concurrency.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// People per ingest transaction.
        #[arg(long, default_value_t = 50)]
        people_per_bundle: usize,
        /// Concurrent loaders during ingest.
        #[arg(long, default_value_t = 2)]
        loaders: usize,
        /// Issue no new request of a figure after this many seconds (the
        /// figure then rests on fewer units; its JSON says how many).
        #[arg(long, default_value_t = 60.0)]
        max_seconds: f64,
        /// Also write every measurement to this file (one JSON document).
        #[arg(long)]
        json: Option<PathBuf>,
        /// SQLite: fsync the WAL at every commit (the server's default).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        durable: bool,
        /// SQLite: measure a database that already holds this population
        /// (the same --people, --seed and --now), e.g. the
        /// `sharedcare.db` of a data directory filled by `sharedcare
        /// generate` and `sharedcare import`. Ingest is skipped and the
        /// file is left in place (with the bench's audit records added).
        #[arg(long)]
        sqlite_path: Option<PathBuf>,
    },
    /// How fast `sharedcare audit verify` walks the audit chain: appends
    /// records shaped like real ones, then verifies them.
    AuditVerify {
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: Backend,
        #[arg(long, env = "SHAREDCARE_BENCH_DATABASE_URL")]
        database_url: Option<String>,
        /// Records to append and verify.
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
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
        Cmd::Search {
            backend,
            database_url,
            bundles,
            repeat,
            iterations,
        } => rt.block_on(search_bench(
            backend,
            database_url,
            bundles,
            repeat,
            iterations,
        )),
        Cmd::AuditVerify {
            backend,
            database_url,
            records,
        } => rt.block_on(async {
            let run = format!("v{}", std::process::id());
            match backend {
                Backend::Sqlite => {
                    let tmp = std::env::temp_dir().join(format!("sharedcare-bench-{run}"));
                    let _ = std::fs::remove_dir_all(&tmp);
                    let store = store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(
                        tmp.join("bench.db"),
                    ))
                    .map_err(|e| e.to_string())?;
                    let out = audit_verify(&store, "sqlite", records).await;
                    let _ = std::fs::remove_dir_all(&tmp);
                    out
                }
                Backend::Postgres => {
                    let url = database_url
                        .ok_or("postgres needs --database-url or SHAREDCARE_BENCH_DATABASE_URL")?;
                    let mut c = store_postgres::PostgresConfig::new(url);
                    c.schema = Some(format!("bench_{run}"));
                    let store = store_postgres::PostgresStore::connect(c)
                        .await
                        .map_err(|e| e.to_string())?;
                    audit_verify(&store, "postgres", records).await
                }
            }
        }),
        Cmd::Population {
            backend,
            database_url,
            people,
            seed,
            now,
            concurrency,
            requests,
            people_per_bundle,
            loaders,
            max_seconds,
            json,
            durable,
            sqlite_path,
        } => {
            let now = generate::Date::parse(&now).ok_or("--now: expected YYYY-MM-DD")?;
            let opts = population::Options {
                people,
                seed,
                now,
                concurrency,
                requests,
                people_per_bundle,
                loaders,
                max_seconds,
                loaded: false,
            };
            rt.block_on(population_bench(
                backend,
                database_url,
                opts,
                json,
                durable,
                sqlite_path,
            ))
        }
        Cmd::Access {
            backend,
            database_url,
            people,
            observations,
            reads,
            decisions,
            clients,
            durable,
            keep_alive,
            rounds,
        } => {
            access::decision(decisions);
            let http = access::HttpRun {
                clients: clients.max(1),
                keep_alive,
                rounds: rounds.max(1),
            };
            rt.block_on(async {
                let run = format!("a{}", std::process::id());
                match backend {
                    Backend::Sqlite => {
                        let tmp = std::env::temp_dir().join(format!("sharedcare-bench-{run}"));
                        let _ = std::fs::remove_dir_all(&tmp);
                        let mut config = store_sqlite::SqliteConfig::new(tmp.join("bench.db"));
                        config.durable = durable;
                        let store =
                            store_sqlite::SqliteStore::open(config).map_err(|e| e.to_string())?;
                        let out = access::reads(store, people, observations, reads, http).await;
                        let _ = std::fs::remove_dir_all(&tmp);
                        out
                    }
                    Backend::Postgres => {
                        let url = database_url.ok_or(
                            "postgres needs --database-url or SHAREDCARE_BENCH_DATABASE_URL",
                        )?;
                        let mut c = store_postgres::PostgresConfig::new(url);
                        c.schema = Some(format!("bench_{run}"));
                        let store = store_postgres::PostgresStore::connect(c)
                            .await
                            .map_err(|e| e.to_string())?;
                        access::reads(store, people, observations, reads, http).await
                    }
                }
            })
        }
    }
}

/// `bench -- population` on a fresh store of `backend`, removed afterwards
/// (or, SQLite only, on a file that already holds the population).
async fn population_bench(
    backend: Backend,
    url: Option<String>,
    mut opts: population::Options,
    json_out: Option<PathBuf>,
    durable: bool,
    sqlite_path: Option<PathBuf>,
) -> Result<(), String> {
    let run = format!("p{}", std::process::id());
    let label = format!("{backend:?}").to_lowercase();
    let report = match backend {
        Backend::Sqlite => {
            // A fresh file in a directory of the run's own, removed at the
            // end, unless the population is already in a given file.
            let tmp = std::env::temp_dir().join(format!("sharedcare-bench-{run}"));
            let fresh = sqlite_path.is_none();
            let path = match sqlite_path {
                Some(p) if p.is_file() => p,
                Some(p) => return Err(format!("--sqlite-path {}: no such file", p.display())),
                None => {
                    let _ = std::fs::remove_dir_all(&tmp);
                    tmp.join("bench.db")
                }
            };
            opts.loaded = !fresh;
            let mut config = store_sqlite::SqliteConfig::new(path.clone());
            config.durable = durable;
            eprintln!(
                "SQLite at {} (synchronous={})",
                config.path.display(),
                if durable { "FULL" } else { "NORMAL" }
            );
            let store = store_sqlite::SqliteStore::open(config).map_err(|e| e.to_string())?;
            let run = population::run(store, &label, &opts, async || {
                let bytes: u64 = store_sqlite::files(&path)
                    .iter()
                    .filter_map(|f| std::fs::metadata(f).ok())
                    .map(|m| m.len())
                    .sum();
                eprintln!("  database files: {:.2} GB", bytes as f64 / 1e9);
                Ok(())
            });
            let report = tokio::select! {
                r = run => r,
                () = interrupted() => Err("interrupted".to_owned()),
            };
            if fresh {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            report
        }
        Backend::Postgres => {
            let url =
                url.ok_or("postgres needs --database-url or SHAREDCARE_BENCH_DATABASE_URL")?;
            let schema = format!("bench_{run}");
            let mut c = store_postgres::PostgresConfig::new(url.clone());
            c.schema = Some(schema.clone());
            let store = store_postgres::PostgresStore::connect(c)
                .await
                .map_err(|e| e.to_string())?;
            // After the bulk load, fresh planner statistics (what autovacuum
            // would reach in its own time), so every run plans alike.
            let run = population::run(store, &label, &opts, async || {
                let sql = format!(
                    "DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' LOOP EXECUTE format('ANALYZE %I.%I', '{schema}', t); END LOOP; END $$; SELECT pg_size_pretty(sum(pg_total_relation_size(format('%I.%I', schemaname, tablename)))::bigint) FROM pg_tables WHERE schemaname = '{schema}'"
                );
                let started = Instant::now();
                let size = pg_exec(&url, &sql).await?;
                eprintln!(
                    "  ANALYZE of schema {schema}: {:.1} s; tables and indexes: {size}",
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            });
            let report = tokio::select! {
                r = run => r,
                () = interrupted() => Err("interrupted".to_owned()),
            };
            let dropped = pg_exec(&url, &format!("DROP SCHEMA {schema} CASCADE")).await;
            if let Err(e) = dropped {
                eprintln!("could not drop schema {schema}: {e}");
            }
            report
        }
    }?;
    if let Some(path) = json_out {
        let doc = serde_json::json!({"bench": "population", "resources": report.resources, "measurements": report.measurements});
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if report.non_200 > 0 {
        return Err(format!(
            "{} requests did not return 200: the figures above are not valid",
            report.non_200
        ));
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM, so that an interrupted run still removes
/// its database.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    eprintln!("interrupted: removing the benchmark's database");
}

/// Runs `sql` (simple query protocol) on a one-off connection; returns the
/// first column of the last row, if any.
async fn pg_exec(url: &str, sql: &str) -> Result<String, String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let task = tokio::spawn(conn);
    let out = client.simple_query(sql).await.map_err(|e| e.to_string())?;
    drop(client);
    let _ = task.await;
    Ok(out
        .iter()
        .rev()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_default())
}

/// Appends `n` audit records (realistic size: a GP reading one resource),
/// then times `audit_log::verify` over them.
async fn audit_verify<S: Store>(store: &S, backend: &str, n: usize) -> Result<(), String> {
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        let rec = audit::AuditRecord {
            time: 1_700_000_000_000_000 + i as i64,
            request_id: format!("req-{i:012}"),
            action: audit::Action::Read,
            user: audit::AuditUser {
                subject: "gp-0001".into(),
                name: "Dr A Example".into(),
                role: "gp".into(),
                registration: Some("GMC:1234567".into()),
                org: Some("B00001".into()),
            },
            client: None,
            purpose_of_use: Some("TREAT".into()),
            patients: vec![format!("p{}", i % 10_000)],
            entities: vec![audit::AuditEntity {
                rtype: "MedicationStatement".into(),
                id: format!("m{i}"),
                version: Some(1),
                labels: vec![],
            }],
            decision: audit::Decision {
                permit: true,
                reasons: vec!["gp-registration".into()],
            },
            outcome: audit::Outcome::Success,
            status: 200,
            error_code: None,
            break_glass: false,
            search: None,
        };
        batch.push(sharedcare_core::trail::new_audit(&rec));
        if batch.len() == 1000 || i + 1 == n {
            store
                .append_audit(&batch)
                .await
                .map_err(|e| e.to_string())?;
            batch.clear();
        }
    }
    eprintln!(
        "appended {n} audit records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let report = sharedcare_core::audit_log::verify(store, |_| true)
        .await
        .map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    if let Some(p) = report.problem {
        return Err(format!("the fresh chain did not verify: {p}"));
    }
    let rate = report.records as f64 / secs;
    println!(
        "{}",
        serde_json::json!({"bench": "audit-verify", "backend": backend, "records": report.records, "seconds": secs, "records_per_second": rate})
    );
    println!(
        "| audit verify | {backend} | {} records | {secs:.2} s | {rate:.0} records/s |",
        report.records
    );
    Ok(())
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
    let app = api::router(
        service.clone(),
        bench_api_config(&format!("http://{addr}/fhir")),
    );
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
                            .bundle(&system_caller(), body.as_bytes())
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
    // Head and body in one write (see `get_as`).
    let mut request = format!(
        "POST /fhir HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\n\r\n",
        bench_token(addr),
        body.len()
    );
    request.push_str(body);
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let head =
        String::from_utf8_lossy(out.get(..out.len().min(64)).unwrap_or_default()).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| "no status".to_owned())
}

/// Reads the bundles in `dir`, sorted, as text.
fn read_bundles(dir: &PathBuf) -> Result<Vec<String>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
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
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).map_err(|e| e.to_string()))
        .collect()
}

/// Builds one request path of a kind of search.
type MakePath<'a> = Box<dyn Fn(&mut Lcg) -> String + 'a>;

/// A small deterministic generator for picking request parameters.
struct Lcg(u64);
impl Lcg {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let n = u64::try_from(items.len()).unwrap_or(1).max(1);
        items.get(usize::try_from((self.0 >> 33) % n).unwrap_or(0))
    }
}

async fn search_bench(
    backend: Backend,
    url: Option<String>,
    dir: PathBuf,
    repeat: usize,
    iterations: usize,
) -> Result<(), String> {
    let bodies = read_bundles(&dir)?;
    let run = format!("s{}", std::process::id());
    let tmp = std::env::temp_dir().join(format!("sharedcare-bench-{run}"));
    let _ = std::fs::remove_dir_all(&tmp);
    let label = format!("{backend:?}").to_lowercase();
    let result = match backend {
        Backend::Sqlite => {
            let store = store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(
                tmp.join("bench.db"),
            ))
            .map_err(|e| e.to_string())?;
            run_search_bench(store, &run, &bodies, repeat, iterations, &label).await
        }
        Backend::Postgres => {
            let url =
                url.ok_or("postgres needs --database-url or SHAREDCARE_BENCH_DATABASE_URL")?;
            let mut c = store_postgres::PostgresConfig::new(url);
            c.schema = Some(format!("bench_{run}"));
            let store = store_postgres::PostgresStore::connect(c)
                .await
                .map_err(|e| e.to_string())?;
            run_search_bench(store, &run, &bodies, repeat, iterations, &label).await
        }
    };
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

async fn run_search_bench<S: Store>(
    store: S,
    run: &str,
    bodies: &[String],
    repeat: usize,
    iterations: usize,
    label: &str,
) -> Result<(), String> {
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
    let app = api::router(
        service.clone(),
        bench_api_config(&format!("http://{addr}/fhir")),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // Load, remembering patient ids and family names.
    let mut families: Vec<String> = Vec::new();
    let mut synthea_ids: Vec<String> = Vec::new();
    for body in bodies {
        let v: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        for e in v
            .get("entry")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(f) = e
                .pointer("/resource/name/0/family")
                .and_then(|f| f.as_str())
                && e.pointer("/resource/resourceType").and_then(|t| t.as_str()) == Some("Patient")
            {
                families.push(f.to_owned());
                if let Some(id) = e.pointer("/resource/id").and_then(|i| i.as_str()) {
                    synthea_ids.push(id.to_owned());
                }
            }
        }
    }
    let mut patients: Vec<String> = Vec::new();
    let mut resources = 0usize;
    let started = Instant::now();
    for round in 0..repeat {
        for body in bodies {
            let out = service
                .bundle(&system_caller(), body.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
            for e in v
                .get("entry")
                .and_then(|e| e.as_array())
                .into_iter()
                .flatten()
            {
                resources += 1;
                if let Some(loc) = e.pointer("/response/location").and_then(|l| l.as_str())
                    && let Some(rest) = loc.strip_prefix("Patient/")
                {
                    patients.push(rest.split('/').next().unwrap_or_default().to_owned());
                }
            }
        }
        if (round + 1) % 10 == 0 {
            eprintln!(
                "loaded {resources} resources ({:.0}/s)",
                resources as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let load_secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"bench": "search-load", "backend": label, "resources": resources, "seconds": load_secs,
            "resources_per_second": resources as f64 / load_secs})
    );

    let kinds: Vec<(&str, MakePath<'_>)> = vec![
        (
            "read Patient/{id}",
            Box::new(|r: &mut Lcg| {
                format!(
                    "/fhir/Patient/{}",
                    r.pick(&patients).cloned().unwrap_or_default()
                )
            }),
        ),
        (
            "token, first page (broad)",
            Box::new(|_: &mut Lcg| {
                "/fhir/Observation?code=http://loinc.org%7C2339-0&_count=20".to_owned()
            }),
        ),
        (
            "token, selective (identifier)",
            Box::new(|r: &mut Lcg| {
                format!(
                    "/fhir/Patient?identifier=https://github.com/synthetichealth/synthea%7C{}",
                    r.pick(&synthea_ids).cloned().unwrap_or_default()
                )
            }),
        ),
        (
            "date, first page",
            Box::new(|_: &mut Lcg| "/fhir/Observation?date=ge2020-06-01&_count=20".to_owned()),
        ),
        (
            "reference, selective",
            Box::new(|r: &mut Lcg| {
                format!(
                    "/fhir/Observation?subject=Patient/{}&_count=20",
                    r.pick(&patients).cloned().unwrap_or_default()
                )
            }),
        ),
        (
            "string",
            Box::new(|r: &mut Lcg| {
                format!(
                    "/fhir/Patient?name={}&_count=20",
                    r.pick(&families).cloned().unwrap_or_default()
                )
            }),
        ),
        (
            "chained",
            Box::new(|r: &mut Lcg| {
                format!(
                    "/fhir/Condition?subject.name={}&_count=20",
                    r.pick(&families).cloned().unwrap_or_default()
                )
            }),
        ),
        (
            "_include",
            Box::new(|r: &mut Lcg| {
                format!(
                    "/fhir/Observation?subject=Patient/{}&_include=Observation:encounter&_count=20",
                    r.pick(&patients).cloned().unwrap_or_default()
                )
            }),
        ),
        (
            "sorted (-date), selective",
            Box::new(|r: &mut Lcg| {
                format!(
                    "/fhir/Observation?subject=Patient/{}&_sort=-date&_count=20",
                    r.pick(&patients).cloned().unwrap_or_default()
                )
            }),
        ),
        (
            "$everything, first page",
            Box::new(|r: &mut Lcg| {
                format!(
                    "/fhir/Patient/{}/$everything?_count=50",
                    r.pick(&patients).cloned().unwrap_or_default()
                )
            }),
        ),
    ];
    println!("| search ({label}, {resources} resources) | requests | p50 | p99 | mean |");
    println!("|---|---|---|---|---|");
    for (name, make) in &kinds {
        let mut rng = Lcg(42);
        let mut times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let path = make(&mut rng);
            let t0 = Instant::now();
            let status = tokio::task::spawn_blocking(move || get(addr, &path))
                .await
                .map_err(|e| e.to_string())??;
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
            if status != 200 {
                return Err(format!("{name}: status {status}"));
            }
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            times
                .get(((times.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
        println!(
            "| {name} | {iterations} | {:.2} ms | {:.2} ms | {:.2} ms |",
            pct(0.5),
            pct(0.99),
            mean
        );
        println!(
            "{}",
            serde_json::json!({"bench": "search", "backend": label, "kind": name, "resources": resources,
                "p50_ms": pct(0.5), "p99_ms": pct(0.99), "mean_ms": mean})
        );
    }
    Ok(())
}

/// One GET over a fresh loopback connection; returns the status.
fn get(addr: SocketAddr, path: &str) -> Result<u16, String> {
    get_as(addr, path, &bench_token(addr))
}

/// One GET with the given bearer token; returns the status.
fn get_as(addr: SocketAddr, path: &str, token: &str) -> Result<u16, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    // One write, as a client's HTTP library sends it: `write!` straight to
    // the socket sent each formatted piece as a packet of its own, and the
    // server woke for each.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let head =
        String::from_utf8_lossy(out.get(..out.len().min(64)).unwrap_or_default()).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| "no status".to_owned())
}

/// One client's HTTP/1.1 connection, kept open across requests as FHIR
/// clients keep theirs (`get_as` opens one per request instead). Each
/// response is read to the end of its `Content-Length`; a connection the
/// server closed is opened again, once per request.
pub(crate) struct KeepAlive {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl KeepAlive {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        KeepAlive {
            addr,
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// `GET path` with `token`: the response's status.
    pub(crate) fn get(&mut self, path: &str, token: &str) -> Result<u16, String> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
            self.addr
        );
        let reused = self.stream.is_some();
        match self.exchange(request.as_bytes()) {
            Err(_) if reused => {
                self.stream = None;
                self.exchange(request.as_bytes())
            }
            out => out,
        }
    }

    fn exchange(&mut self, request: &[u8]) -> Result<u16, String> {
        let stream = match &mut self.stream {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(self.addr).map_err(|e| e.to_string())?;
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                self.stream.insert(s)
            }
        };
        stream.write_all(request).map_err(|e| e.to_string())?;
        self.buf.clear();
        let mut chunk = [0u8; 16 * 1024];
        let (head_len, status, body_len, close) = loop {
            if !read_more(stream, &mut self.buf, &mut chunk)? {
                self.stream = None;
                return Err("connection closed".to_owned());
            }
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(self.buf.get(..end).unwrap_or_default())
                    .to_ascii_lowercase();
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse::<u16>().ok())
                    .ok_or("no status")?;
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_owned())
                };
                let len = header("content-length:")
                    .and_then(|v| v.parse::<usize>().ok())
                    .ok_or("no content-length")?;
                let close = header("connection:").is_some_and(|v| v == "close");
                break (end + 4, status, len, close);
            }
        };
        while self.buf.len() < head_len + body_len {
            if !read_more(stream, &mut self.buf, &mut chunk)? {
                self.stream = None;
                return Err("connection closed mid-body".to_owned());
            }
        }
        if close {
            self.stream = None;
        }
        Ok(status)
    }
}

/// Reads what `stream` has into `buf` (through `chunk`); `false` when the
/// peer has closed the connection.
fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, chunk: &mut [u8]) -> Result<bool, String> {
    let n = stream.read(chunk).map_err(|e| e.to_string())?;
    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    Ok(n > 0)
}

/// The bench's token issuer (a fixed seed: the bench is not a deployment).
fn bench_key() -> auth::IssuerKey {
    auth::IssuerKey::from_seed([9u8; 32])
}

/// The server's own tasks run as a system client.
fn system_caller() -> sharedcare_core::Caller {
    sharedcare_core::Caller::system("bench", None)
}

/// HTTP settings trusting the bench's issuer for `base`.
fn bench_api_config(base: &str) -> api::ApiConfig {
    let key = bench_key();
    let verifier = auth::Verifier::new(auth::VerifierConfig::new(
        base,
        vec![key.trusted_issuer(base)],
    ));
    let auth = match verifier {
        Ok(v) => api::auth::AuthConfig::new(v, None, vec![], 3600),
        Err(_) => api::auth::AuthConfig::deny_all(),
    };
    api::ApiConfig {
        auth: Arc::new(auth),
        ..api::ApiConfig::default()
    }
}

/// A token for the bench server at `addr` with the given identity.
fn bench_token_as(
    addr: SocketAddr,
    sub: &str,
    role: &str,
    org: Option<&str>,
    registration: Option<&str>,
    scope: &str,
) -> String {
    let base = format!("http://{addr}/fhir");
    let now = BenchClock.now() / 1_000_000;
    bench_key()
        .mint(&auth::TokenClaims {
            iss: base.clone(),
            aud: base,
            sub: sub.to_owned(),
            exp: now + 86_400,
            nbf: now - 60,
            iat: now - 60,
            jti: sub.to_owned(),
            name: sub.to_owned(),
            role: role.to_owned(),
            scope: scope.to_owned(),
            org: org.map(str::to_owned),
            registration: registration.map(str::to_owned),
            patient: None,
            related_person: None,
            client_id: None,
        })
        .unwrap_or_default()
}

/// A system-client token for the bench server at `addr` (minted once).
fn bench_token(addr: SocketAddr) -> String {
    static TOKENS: std::sync::Mutex<Vec<(SocketAddr, String)>> = std::sync::Mutex::new(Vec::new());
    let Ok(mut tokens) = TOKENS.lock() else {
        return String::new();
    };
    if let Some((_, t)) = tokens.iter().find(|(a, _)| *a == addr) {
        return t.clone();
    }
    let token = bench_token_as(addr, "bench", "integration", None, None, "system/*.cruds");
    tokens.push((addr, token.clone()));
    token
}
