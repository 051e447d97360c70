//! `bench -- population`: the product at the scale of an integrated care
//! system (issue #6).
//!
//! 1. **Ingest.** Generates a synthetic ICS in process with the `generate`
//!    crate (fixed seed and "today", so every run loads the same records)
//!    and loads it through `Service::bundle` as a system client, exactly as
//!    `sharedcare demo` does: the directory first, then transactions of
//!    `people_per_bundle` people (PUT entries), posted by `loaders`
//!    concurrent loaders while one thread generates the next bundles.
//!    Reported as resources/s over the whole load (generation runs on the
//!    same cores and is reported separately).
//! 2. **Requests over HTTP.** Starts the real server (`api::router`, audit
//!    of every read on, as in production) on loopback and times, at each
//!    concurrency, GETs made with tokens of generated users: the GP of a
//!    practice reading and searching its registered patients, and a care
//!    worker of a care home reading its residents and opening a resident's
//!    record (a flow of eight requests timed as one unit). Every request must
//!    return 200; anything else is counted and reported.
//!
//! Each measurement is one JSON object on stdout (and in `--json`); a
//! markdown table follows at the end.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use generate::ics::OrgKind;
use generate::{Date, Ics, Settings};
use serde_json::{Value, json};
use sharedcare_core::{Caller, Service, ServiceConfig};
use store::Store;

use crate::access::percentile;
use crate::{BenchClock, BenchIds, Lcg};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub people: u64,
    pub seed: u64,
    /// "Today" for the generated records.
    pub now: Date,
    /// Client threads, one measurement each.
    pub concurrency: Vec<usize>,
    /// Timed units (requests, or flows) per measurement.
    pub requests: usize,
    pub people_per_bundle: usize,
    pub loaders: usize,
    /// Stop issuing new units of a measurement after this many seconds
    /// (slow searches at scale would otherwise run for hours).
    pub max_seconds: f64,
    /// The store already holds this population (same people, seed and
    /// today), e.g. from `sharedcare import`: nothing is loaded, the cast
    /// is picked from the generator alone.
    pub loaded: bool,
}

/// Everything measured in one run.
pub struct Report {
    /// One JSON object per measurement (ingest first).
    pub measurements: Vec<Value>,
    /// Requests that did not return 200, over every measurement.
    pub non_200: usize,
    pub resources: u64,
}

/// What the load keeps about a registered patient of the chosen practice.
struct Registered {
    id: String,
    nhs: Option<String>,
    family: Option<String>,
    /// `system|code` of one of their Observations.
    observation_code: Option<String>,
}

/// What the generator learns while it writes: the chosen practice's
/// registered patients and every care home's residents (without a dissent).
#[derive(Default)]
struct Picked {
    registered: Vec<Registered>,
    residents: BTreeMap<String, Vec<String>>,
    people: u64,
    resources: u64,
    /// Seconds spent generating and serialising (not waiting to send).
    busy: f64,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// Notes what `person` offers the benchmark.
fn pick(person: &[Value], practice: &str, picked: &mut Picked) {
    let of = |t: &'static str| {
        person
            .iter()
            .filter(move |r| str_at(r, "/resourceType") == Some(t))
    };
    let Some(patient) = of("Patient").next() else {
        return;
    };
    let Some(id) = str_at(patient, "/id") else {
        return;
    };
    if str_at(patient, "/generalPractitioner/0/identifier/value") == Some(practice) {
        picked.registered.push(Registered {
            id: id.to_owned(),
            nhs: patient
                .get("identifier")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|i| str_at(i, "/system") == Some(NHS_NUMBER))
                .and_then(|i| str_at(i, "/value"))
                .map(str::to_owned),
            family: str_at(patient, "/name/0/family").map(str::to_owned),
            observation_code: of("Observation").find_map(|o| {
                Some(format!(
                    "{}|{}",
                    str_at(o, "/code/coding/0/system")?,
                    str_at(o, "/code/coding/0/code")?
                ))
            }),
        });
    }
    // A dissent would (rightly) keep the care home out: such residents are
    // not what "authorised reads" measures.
    let dissent = of("Consent").any(|c| {
        c.get("category")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|cat| str_at(cat, "/coding/0/code") == Some("share-dissent"))
    });
    if dissent {
        return;
    }
    for e in of("EpisodeOfCare") {
        if str_at(e, "/status") == Some("active")
            && str_at(e, "/type/0/coding/0/code") == Some("care-home-residency")
            && let Some(home) = str_at(e, "/managingOrganization/identifier/value")
        {
            picked
                .residents
                .entry(home.to_owned())
                .or_default()
                .push(id.to_owned());
        }
    }
}

const NHS_NUMBER: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The 1-minute load average, to record with each figure.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Generates the population and loads it; returns what was picked and the
/// ingest measurement.
async fn ingest<S: Store + Clone>(
    service: &Service<S>,
    opts: &Options,
    backend: &str,
    practice: &str,
    ics: Arc<Ics>,
) -> Result<(Picked, Value), String> {
    let settings = Settings::new(opts.seed, opts.people, opts.now);
    let caller = Caller::system("bench-population-loader", None);
    let started = Instant::now();
    let directory = ics.directory();
    let directory_resources = directory.len() as u64;
    service
        .bundle(
            &caller,
            generate::output::transaction(&directory)
                .to_string()
                .as_bytes(),
        )
        .await
        .map_err(|e| format!("loading the directory: {e}"))?;

    // One thread generates bundles ahead (a few at most), the loaders post
    // them as they come.
    let (tx, rx) = tokio::sync::mpsc::channel::<(String, u64)>(4);
    let per_bundle = opts.people_per_bundle.max(1) as u64;
    let practice_owned = practice.to_owned();
    let generator = tokio::task::spawn_blocking(move || {
        let mut picked = Picked::default();
        let mut batch: Vec<Value> = Vec::new();
        let mut t = Instant::now();
        for index in settings.range() {
            let person = generate::person(&ics, &settings, index);
            pick(&person, &practice_owned, &mut picked);
            picked.people += 1;
            batch.extend(person);
            let last = index + 1 == settings.range().end;
            if (index + 1) % per_bundle == 0 || last {
                let n = batch.len() as u64;
                picked.resources += n;
                let body = generate::output::transaction(&batch).to_string();
                batch.clear();
                picked.busy += t.elapsed().as_secs_f64();
                if tx.blocking_send((body, n)).is_err() {
                    break; // the loaders stopped: they report why
                }
                t = Instant::now();
            }
        }
        picked
    });
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let loaded = Arc::new(AtomicU64::new(directory_resources));
    let bundles = Arc::new(AtomicU64::new(1));
    let mut loaders = Vec::new();
    for _ in 0..opts.loaders.max(1) {
        let (rx, loaded, bundles) = (rx.clone(), loaded.clone(), bundles.clone());
        let (service, caller) = (service.clone(), caller.clone());
        loaders.push(tokio::spawn(async move {
            let mut reported = Instant::now();
            loop {
                let next = rx.lock().await.recv().await;
                let Some((body, n)) = next else {
                    return Ok::<(), String>(());
                };
                service
                    .bundle(&caller, body.as_bytes())
                    .await
                    .map_err(|e| format!("loading the population: {e}"))?;
                let done = loaded.fetch_add(n, Ordering::Relaxed) + n;
                bundles.fetch_add(1, Ordering::Relaxed);
                if reported.elapsed().as_secs() >= 30 {
                    reported = Instant::now();
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!(
                        "  loaded {done} resources in {secs:.0} s ({:.0}/s), load average {:.2}",
                        done as f64 / secs,
                        load_average().unwrap_or(0.0)
                    );
                }
            }
        }));
    }
    drop(rx);
    let mut failed = None;
    for l in loaders {
        if let Err(e) = l.await.map_err(|e| e.to_string()).and_then(|r| r)
            && failed.is_none()
        {
            failed = Some(e);
        }
    }
    let picked = generator.await.map_err(|e| e.to_string())?;
    if let Some(e) = failed {
        return Err(e);
    }
    let secs = started.elapsed().as_secs_f64();
    let resources = loaded.load(Ordering::Relaxed);
    let m = json!({
        "bench": "population", "backend": backend, "people": opts.people, "seed": opts.seed,
        "now": opts.now.to_string(), "measurement": "ingest", "resources": resources,
        "bundles": bundles.load(Ordering::Relaxed), "people_per_bundle": opts.people_per_bundle,
        "loaders": opts.loaders, "seconds": secs, "resources_per_second": resources as f64 / secs,
        "generate_seconds": picked.busy, "load_average": load_average(),
    });
    Ok((picked, m))
}

/// One kind of request (or flow) to time.
struct Kind {
    name: &'static str,
    caller: &'static str,
    example: &'static str,
    token: String,
    /// Each unit is one or more paths, timed together.
    units: Vec<Vec<String>>,
}

/// What one measurement saw (or one client thread of it).
#[derive(Default)]
struct Measured {
    seconds: f64,
    /// Per unit, nanoseconds, sorted.
    latencies: Vec<u128>,
    /// Per step of a unit (its n-th request), total nanoseconds.
    steps: Vec<u128>,
    requests: usize,
    statuses: BTreeMap<u16, usize>,
    first_bad: Option<String>,
}

impl Measured {
    fn merge(&mut self, other: Measured) {
        self.latencies.extend(other.latencies);
        if self.steps.len() < other.steps.len() {
            self.steps.resize(other.steps.len(), 0);
        }
        for (a, b) in self.steps.iter_mut().zip(other.steps) {
            *a += b;
        }
        self.requests += other.requests;
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_insert(0) += n;
        }
        if self.first_bad.is_none() {
            self.first_bad = other.first_bad;
        }
    }
}

/// Times `units` with `concurrency` client threads, one loopback connection
/// per request (the client of `bench -- access` and `-- search`), issuing
/// no new unit after `max_seconds`.
fn drive(
    addr: SocketAddr,
    token: &str,
    units: &[Vec<String>],
    concurrency: usize,
    max_seconds: f64,
) -> Measured {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let parts: Vec<Measured> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut m = Measured::default();
                    loop {
                        if started.elapsed().as_secs_f64() > max_seconds {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(unit) = units.get(i) else { break };
                        if m.steps.len() < unit.len() {
                            m.steps.resize(unit.len(), 0);
                        }
                        let t0 = Instant::now();
                        for (path, step) in unit.iter().zip(m.steps.iter_mut()) {
                            let t = Instant::now();
                            // 0: no HTTP answer at all.
                            let status = crate::get_as(addr, path, token).unwrap_or(0);
                            *step += t.elapsed().as_nanos();
                            m.requests += 1;
                            *m.statuses.entry(status).or_insert(0) += 1;
                            if status != 200 && m.first_bad.is_none() {
                                m.first_bad = Some(format!("{status} GET {path}"));
                            }
                        }
                        m.latencies.push(t0.elapsed().as_nanos());
                    }
                    m
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut out = Measured {
        seconds: started.elapsed().as_secs_f64(),
        ..Measured::default()
    };
    for part in parts {
        out.merge(part);
    }
    out.latencies.sort_unstable();
    out
}

/// Runs the whole benchmark on `store` (fresh and empty).
pub async fn run<S: Store + Clone>(
    store: S,
    backend: &str,
    opts: &Options,
    after_load: impl AsyncFnOnce() -> Result<(), String>,
) -> Result<Report, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base = format!("http://{addr}/fhir");
    let service = Service::new(
        store,
        Arc::new(BenchClock),
        Arc::new(BenchIds("pop".to_owned(), AtomicU64::new(0))),
        ServiceConfig {
            base_url: base.clone(),
        },
    );
    let settings = Settings::new(opts.seed, opts.people, opts.now);
    let ics = Arc::new(Ics::new(&settings));
    let practice = ics
        .orgs
        .iter()
        .find(|o| o.kind == OrgKind::GpPractice)
        .map(|o| o.ods.clone())
        .ok_or("the population has no GP practice")?;
    eprintln!(
        "population: generating and loading {} people (seed {}, now {}) into {backend}",
        opts.people, opts.seed, opts.now
    );
    if opts.loaded {
        let started = Instant::now();
        let picked = cast(&ics, &settings, &practice);
        eprintln!(
            "  already loaded: picked the cast from the generator in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let loaded = (listener, base, ics, practice, picked);
        return measure(service, backend, opts, loaded, None).await;
    }
    let (picked, ingest_m) = ingest(&service, opts, backend, &practice, ics.clone()).await?;
    eprintln!(
        "  ingest: {} resources in {:.1} s ({:.0} resources/s; generation {:.1} s of it, on the same cores)",
        picked.resources + ics.directory().len() as u64,
        ingest_m
            .get("seconds")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
        ingest_m
            .get("resources_per_second")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
        picked.busy
    );
    println!("{ingest_m}");
    after_load().await?;
    let loaded = (listener, base, ics, practice, picked);
    measure(service, backend, opts, loaded, Some(ingest_m)).await
}

/// The practice's registered patients and the care homes' residents,
/// from the generator alone (for a store that already holds them).
fn cast(ics: &Ics, settings: &Settings, practice: &str) -> Picked {
    let mut picked = Picked::default();
    for index in settings.range() {
        let person = generate::person(ics, settings, index);
        pick(&person, practice, &mut picked);
        picked.people += 1;
        picked.resources += person.len() as u64;
    }
    picked
}

/// What the timed requests need from the load: the server's socket and
/// base URL, the population, the practice and the cast.
type Loaded = (tokio::net::TcpListener, String, Arc<Ics>, String, Picked);

/// Everything after the load: the server and the timed requests.
/// `ingest_m` is the load's measurement (none when it was loaded before).
async fn measure<S: Store + Clone>(
    service: Service<S>,
    backend: &str,
    opts: &Options,
    (listener, base, ics, practice, picked): Loaded,
    ingest_m: Option<Value>,
) -> Result<Report, String> {
    let resources = ingest_m
        .as_ref()
        .and_then(|m| m.get("resources"))
        .and_then(Value::as_u64)
        .unwrap_or(picked.resources + ics.directory().len() as u64);
    let addr = listener.local_addr().map_err(|e| e.to_string())?;

    // The server, audit of every read on (the production default).
    let app = api::router(service.clone(), crate::bench_api_config(&base));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let user_at = |role: &str, org: &str| {
        ics.users
            .iter()
            .find(|u| u.role == role && u.org.as_deref() == Some(org))
    };
    let token = |u: &generate::User| {
        crate::bench_token_as(
            addr,
            &u.sub,
            &u.role,
            u.org.as_deref(),
            u.registration.as_deref(),
            "user/*.cruds",
        )
    };
    let gp = user_at("gp", &practice).ok_or("the practice has no GP user")?;
    // The care home with the most residents (that has a care-worker user).
    let home = picked
        .residents
        .iter()
        .filter(|(home, _)| user_at("care-worker", home).is_some())
        .max_by_key(|(_, r)| r.len());
    let n = opts.requests.max(1);
    let mut rng = Lcg(opts.seed ^ 0x5eed);
    let mut units = |from: &[&Registered], f: &dyn Fn(&Registered) -> Vec<String>| {
        (0..n)
            .filter_map(|_| rng.pick(from).map(|r| f(r)))
            .collect::<Vec<_>>()
    };
    let all: Vec<&Registered> = picked.registered.iter().collect();
    let with_nhs: Vec<&Registered> = all.iter().copied().filter(|r| r.nhs.is_some()).collect();
    let with_obs: Vec<&Registered> = all
        .iter()
        .copied()
        .filter(|r| r.observation_code.is_some())
        .collect();
    let with_family: Vec<&Registered> =
        all.iter().copied().filter(|r| r.family.is_some()).collect();
    let year_ago = opts.now.plus_days(-365);
    let gp_token = token(gp);
    let gp_kind = |name, example, units| Kind {
        name,
        caller: "gp",
        example,
        token: gp_token.clone(),
        units,
    };
    let mut kinds = vec![
        gp_kind(
            "read",
            "Patient/{id}",
            units(&all, &|r| vec![format!("/fhir/Patient/{}", r.id)]),
        ),
        gp_kind(
            "search: token + reference",
            "Observation?patient={id}&code={system}|{code}",
            units(&with_obs, &|r| {
                vec![format!(
                    "/fhir/Observation?patient={}&code={}",
                    r.id,
                    enc(r.observation_code.as_deref().unwrap_or_default())
                )]
            }),
        ),
        gp_kind(
            "search: reference",
            "Condition?patient={id}",
            units(&all, &|r| vec![format!("/fhir/Condition?patient={}", r.id)]),
        ),
        // The same with a typed reference: shows what the bare id costs.
        gp_kind(
            "search: reference, typed",
            "Condition?patient=Patient/{id}",
            units(&all, &|r| {
                vec![format!("/fhir/Condition?patient=Patient/{}", r.id)]
            }),
        ),
        gp_kind(
            "search: reference + date",
            "Encounter?patient={id}&date=ge{a year ago}",
            units(&all, &|r| {
                vec![format!(
                    "/fhir/Encounter?patient={}&date=ge{year_ago}",
                    r.id
                )]
            }),
        ),
        gp_kind(
            "search: token (NHS number)",
            "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}",
            units(&with_nhs, &|r| {
                vec![format!(
                    "/fhir/Patient?identifier={}",
                    enc(&format!(
                        "{NHS_NUMBER}|{}",
                        r.nhs.as_deref().unwrap_or_default()
                    ))
                )]
            }),
        ),
        gp_kind(
            "search: reference + token",
            "MedicationRequest?patient={id}&status=active",
            units(&all, &|r| {
                vec![format!(
                    "/fhir/MedicationRequest?patient={}&status=active",
                    r.id
                )]
            }),
        ),
        gp_kind(
            "search: string",
            "Patient?name={family}",
            units(&with_family, &|r| {
                vec![format!(
                    "/fhir/Patient?name={}",
                    enc(r.family.as_deref().unwrap_or_default())
                )]
            }),
        ),
        gp_kind(
            "search: chained",
            "Condition?patient={id}&subject:Patient.name={family}",
            units(&with_family, &|r| {
                vec![format!(
                    "/fhir/Condition?patient={}&subject:Patient.name={}",
                    r.id,
                    enc(r.family.as_deref().unwrap_or_default())
                )]
            }),
        ),
        gp_kind(
            "search: _include",
            "Observation?patient={id}&_include=Observation:encounter",
            units(&all, &|r| {
                vec![format!(
                    "/fhir/Observation?patient={}&_include=Observation:encounter",
                    r.id
                )]
            }),
        ),
        gp_kind(
            "search: sorted",
            "Observation?patient={id}&_sort=-date",
            units(&all, &|r| {
                vec![format!("/fhir/Observation?patient={}&_sort=-date", r.id)]
            }),
        ),
        gp_kind(
            "$everything",
            "Patient/{id}/$everything (first page, 50)",
            units(&all, &|r| {
                vec![format!("/fhir/Patient/{}/$everything", r.id)]
            }),
        ),
    ];
    let mut meta = json!({
        "bench": "population-run", "backend": backend, "people": opts.people, "seed": opts.seed,
        "now": opts.now.to_string(), "resources": resources,
        "practice": practice, "gp": gp.sub, "registered_patients": picked.registered.len(),
        "concurrency": opts.concurrency, "units_per_measurement": n, "max_seconds": opts.max_seconds,
        "cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(0),
        "http": "HTTP/1.1 on loopback, one connection per request; client threads on the same cores as the server",
        "audit": "every request appends an audit record",
    });
    match home {
        Some((home, residents)) => {
            let cw = user_at("care-worker", home).ok_or("no care worker")?;
            let cw_token = token(cw);
            if let Some(m) = meta.as_object_mut() {
                m.insert("care_home".into(), json!(home));
                m.insert("care_worker".into(), json!(cw.sub));
                m.insert("residents".into(), json!(residents.len()));
            }
            let mut pick_resident = |f: &dyn Fn(&str) -> Vec<String>| {
                (0..n)
                    .filter_map(|_| rng.pick(residents).map(|r| f(r)))
                    .collect::<Vec<_>>()
            };
            kinds.insert(
                1,
                Kind {
                    name: "read",
                    caller: "care-worker",
                    example: "Patient/{id}",
                    token: cw_token.clone(),
                    units: pick_resident(&|id| vec![format!("/fhir/Patient/{id}")]),
                },
            );
            kinds.push(Kind {
                name: "care worker opens a resident's record",
                caller: "care-worker",
                example: "Patient/{id}, then ?patient={id} of AllergyIntolerance, MedicationRequest, MedicationStatement, CarePlan, Encounter, MedicationAdministration, QuestionnaireResponse",
                token: cw_token,
                units: pick_resident(&|id| {
                    let mut flow = vec![format!("/fhir/Patient/{id}")];
                    for t in [
                        "AllergyIntolerance",
                        "MedicationRequest",
                        "MedicationStatement",
                        "CarePlan",
                        "Encounter",
                        "MedicationAdministration",
                        "QuestionnaireResponse",
                    ] {
                        flow.push(format!("/fhir/{t}?patient={id}"));
                    }
                    flow
                }),
            });
        }
        None => eprintln!(
            "  no care home with residents in this population: the care worker's figures are left out"
        ),
    }
    println!("{meta}");
    eprintln!(
        "  GP {} of {practice} ({} registered); care worker {} ({} residents)",
        gp.sub,
        picked.registered.len(),
        meta.get("care_worker")
            .and_then(Value::as_str)
            .unwrap_or("-"),
        meta.get("residents").and_then(Value::as_u64).unwrap_or(0),
    );

    let mut measurements = vec![meta];
    measurements.extend(ingest_m.clone());
    let mut non_200 = 0usize;
    let mut rows = Vec::new();
    for kind in kinds {
        if kind.units.is_empty() {
            eprintln!("  {}: nothing to ask for in this population", kind.name);
            continue;
        }
        let units = Arc::new(kind.units);
        let token = Arc::new(kind.token);
        // Warm-up, untimed.
        {
            let (units, token) = (units.clone(), token.clone());
            let warm = units.len().min(100);
            let c = opts.concurrency.iter().copied().max().unwrap_or(1);
            tokio::task::spawn_blocking(move || {
                drive(addr, &token, units.get(..warm).unwrap_or_default(), c, 20.0)
            })
            .await
            .map_err(|e| e.to_string())?;
        }
        for &c in &opts.concurrency {
            let load = load_average();
            let (u, t) = (units.clone(), token.clone());
            let max = opts.max_seconds;
            let m = tokio::task::spawn_blocking(move || drive(addr, &t, &u, c, max))
                .await
                .map_err(|e| e.to_string())?;
            let bad: usize = m
                .statuses
                .iter()
                .filter(|(s, _)| **s != 200)
                .map(|(_, n)| n)
                .sum();
            non_200 += bad;
            let ms = |p: f64| percentile(&m.latencies, p) as f64 / 1e6;
            let mean =
                m.latencies.iter().sum::<u128>() as f64 / 1e6 / m.latencies.len().max(1) as f64;
            let per_second = m.latencies.len() as f64 / m.seconds;
            let statuses: BTreeMap<String, usize> = m
                .statuses
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect();
            let j = json!({
                "bench": "population", "backend": backend, "people": opts.people,
                "measurement": kind.name, "caller": kind.caller, "example": kind.example,
                "concurrency": c, "units": m.latencies.len(),
                "requests_per_unit": units.first().map_or(0, Vec::len), "requests": m.requests,
                "non_200": bad, "statuses": statuses, "first_non_200": m.first_bad,
                "seconds": m.seconds, "units_per_second": per_second,
                "step_mean_ms": (m.steps.len() > 1).then(|| m.steps.iter()
                    .map(|t| *t as f64 / 1e6 / m.latencies.len().max(1) as f64)
                    .collect::<Vec<_>>()),
                "p50_ms": ms(0.5), "p99_ms": ms(0.99), "mean_ms": mean,
                "load_average": load,
            });
            println!("{j}");
            if bad > 0 {
                eprintln!(
                    "  {} ({}): {bad} requests did not return 200, e.g. {}",
                    kind.name,
                    kind.caller,
                    m.first_bad.as_deref().unwrap_or("?")
                );
            }
            let example = match units.first().map_or(0, Vec::len) {
                0 | 1 => format!("`{}`", kind.example),
                n => format!("{n} requests (see the JSON)"),
            };
            rows.push(format!(
                "| {} | {} | {example} | {c} | {} | {bad} | {per_second:.0} | {:.2} ms | {:.2} ms | {:.2} |",
                kind.name,
                kind.caller,
                m.latencies.len(),
                ms(0.5),
                ms(0.99),
                load.unwrap_or(0.0)
            ));
            measurements.push(j);
        }
    }
    println!();
    println!(
        "Population benchmark: {backend}, {} people, {resources} resources, seed {}, now {}",
        opts.people, opts.seed, opts.now
    );
    println!();
    match &ingest_m {
        Some(m) => println!(
            "ingest: {:.0} resources/s ({:.1} s, {} loaders, {} people per transaction)",
            m.get("resources_per_second")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
            m.get("seconds").and_then(Value::as_f64).unwrap_or(0.0),
            opts.loaders,
            opts.people_per_bundle
        ),
        None => println!("ingest: not measured (the store held the population already)"),
    }
    println!();
    println!(
        "| measurement | caller | example | concurrency | units | non-200 | units/s | p50 | p99 | load avg |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    Ok(Report {
        measurements,
        non_200,
        resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 200 people on SQLite, end to end: every request returns 200.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_population_runs_end_to_end() {
        let dir =
            std::env::temp_dir().join(format!("sharedcare-bench-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store =
            store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(dir.join("bench.db")))
                .unwrap();
        let opts = Options {
            people: 200,
            seed: 1,
            now: Date::parse("2026-11-25").unwrap(),
            concurrency: vec![1, 4],
            requests: 10,
            people_per_bundle: 50,
            loaders: 2,
            max_seconds: 60.0,
            loaded: false,
        };
        let report = run(store, "sqlite", &opts, async || Ok(())).await.unwrap();
        // Measured again on the same file, as after `sharedcare import`:
        // nothing is loaded twice, the same cast finds every record.
        let again =
            store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(dir.join("bench.db")))
                .unwrap();
        let loaded = Options {
            loaded: true,
            ..opts
        };
        let second = run(again, "sqlite", &loaded, async || Ok(()))
            .await
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(second.non_200, 0);
        assert_eq!(second.resources, report.resources);
        assert!(
            second
                .measurements
                .iter()
                .all(|m| m["measurement"] != "ingest"),
            "nothing was loaded the second time"
        );
        assert_eq!(report.non_200, 0);
        assert!(report.resources > 1000, "{}", report.resources);
        let flows = report
            .measurements
            .iter()
            .filter(|m| m["measurement"] == "care worker opens a resident's record")
            .count();
        assert_eq!(flows, 2, "the care worker's flow ran at each concurrency");
    }
}
