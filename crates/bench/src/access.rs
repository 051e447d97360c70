//! `bench -- access`: what access control costs.
//!
//! 1. The policy decision alone (in-process, no IO): `patient_access` plus
//!    one item decision, per call; p50/p99 over many calls.
//! 2. Authorised reads through the core service on a generated population
//!    (each person registered with practice B00001, living in care home
//!    B00002, with observations, conditions, medications and encounters):
//!    the same reads (a) straight from the store with no decision, (b) as a
//!    system client, (c) as the GP, (d) as the care-home care worker.
//!    Reported as reads/s and as a ratio to (a).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use policy::{Facts, Policy, Principal, Relationship};
use serde_json::json;
use sharedcare_core::{Caller, Service, ServiceConfig};
use store::Store;

use crate::{BenchClock, BenchIds};

pub(crate) fn percentile(sorted: &[u128], p: f64) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

/// Decision cost: patient_access + one item decision, `n` times.
pub fn decision(n: usize) {
    let policy = Policy::default();
    let principal = |role: &str, org: &str| Principal {
        subject: format!("{role}-1"),
        name: "Bench User".into(),
        role: role.into(),
        org: Some(org.into()),
        registration: Some("GMC:1234567".into()),
        patient: None,
        related_person: None,
        scopes: policy::scopes::parse("user/*.cruds"),
    };
    let rel = |org: &str, kind: &str| Relationship {
        org: org.into(),
        kind: kind.into(),
        user: None,
        active: true,
        start: None,
        end: None,
        detail: None,
    };
    let relationships = vec![
        rel("B00001", "gp-registration"),
        rel("B00002", "episode-of-care"),
        Relationship {
            active: false,
            end: Some(1_700_000_000_000_000),
            ..rel("B00003", "encounter")
        },
    ];
    let item = json!({"resourceType": "MedicationStatement", "id": "m1", "status": "active",
        "meta": {"tag": [{"system": policy::labels::RECORDED_BY, "code": "B00001"}]},
        "subject": {"reference": "Patient/p1"}, "note": [{"text": "x"}],
        "medicationCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "322236009"}]}});
    let now = 1_767_225_600_000_000;
    for (label, p) in [
        ("gp", principal("gp", "B00001")),
        ("care-worker", principal("care-worker", "B00002")),
        (
            "no relationship (denied)",
            principal("hospital-clinician", "R00001"),
        ),
    ] {
        let mut times = Vec::with_capacity(n);
        let mut shown = 0usize;
        for _ in 0..n {
            let started = Instant::now();
            let facts = Facts {
                patient_id: "p1",
                relationships: &relationships,
                proxy_levels: &[],
                org_type: None,
            };
            if let Ok(access) = policy.patient_access(&p, &facts, now)
                && matches!(
                    access.item("MedicationStatement", Some("p1"), &item),
                    policy::Item::Show(_)
                )
            {
                shown += 1;
            }
            times.push(started.elapsed().as_nanos());
        }
        times.sort_unstable();
        let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
        println!(
            "{}",
            json!({"bench": "policy-decision", "principal": label, "calls": n, "shown": shown, "p50_ns": p50, "p99_ns": p99})
        );
        println!(
            "| policy decision | {label} | {n} calls | p50 {:.2} µs | p99 {:.2} µs |",
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0
        );
    }
}

/// A transaction bundle for one person of the generated population.
fn person_bundle(i: usize, observations: usize) -> String {
    let pid = format!("bp{i}");
    let mut entries = vec![json!({"resource": {"resourceType": "Patient", "id": pid,
        "name": [{"family": format!("Family{i}"), "given": ["Bench"]}], "gender": "female", "birthDate": "1940-01-01",
        "generalPractitioner": [{"reference": "Organization/gp1"}]},
        "request": {"method": "PUT", "url": format!("Patient/{pid}")}})];
    entries.push(json!({"resource": {"resourceType": "EpisodeOfCare", "id": format!("{pid}-eoc"), "status": "active",
        "patient": {"reference": format!("Patient/{pid}")}, "managingOrganization": {"reference": "Organization/ch1"}},
        "request": {"method": "PUT", "url": format!("EpisodeOfCare/{pid}-eoc")}}));
    for j in 0..observations {
        entries.push(json!({"resource": {"resourceType": "Observation", "id": format!("{pid}-o{j}"), "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": format!("Patient/{pid}")}, "effectiveDateTime": "2025-06-01T10:00:00Z",
            "valueQuantity": {"value": 60 + j, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}},
            "request": {"method": "PUT", "url": format!("Observation/{pid}-o{j}")}}));
    }
    for (j, status) in ["active", "stopped"].iter().enumerate() {
        entries.push(json!({"resource": {"resourceType": "MedicationStatement", "id": format!("{pid}-m{j}"), "status": status,
            "medicationCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "322236009"}]},
            "subject": {"reference": format!("Patient/{pid}")}},
            "request": {"method": "PUT", "url": format!("MedicationStatement/{pid}-m{j}")}}));
    }
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}).to_string()
}

/// Authorised read throughput with and without the policy.
pub async fn reads<S: Store + Clone>(
    store: S,
    people: usize,
    observations: usize,
    reads: usize,
    http: HttpRun,
) -> Result<(), String> {
    let service = Service::new(
        store.clone(),
        Arc::new(BenchClock),
        Arc::new(BenchIds("acc".to_owned(), AtomicU64::new(0))),
        ServiceConfig {
            base_url: "http://bench.local/fhir".to_owned(),
        },
    );
    let loader = Caller::system("bench-loader", Some("B00001"));
    let orgs = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Organization", "id": "gp1", "name": "Bench Practice",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "B00001"}]},
         "request": {"method": "PUT", "url": "Organization/gp1"}},
        {"resource": {"resourceType": "Organization", "id": "ch1", "name": "Bench Care Home",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "B00002"}]},
         "request": {"method": "PUT", "url": "Organization/ch1"}}]});
    service
        .bundle(&loader, orgs.to_string().as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    for i in 0..people {
        service
            .bundle(&loader, person_bundle(i, observations).as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
    eprintln!(
        "loaded {people} people in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let principal = |role: &str, org: &str, reg: Option<&str>| {
        Caller::new(Principal {
            subject: format!("bench-{role}"),
            name: "Bench User".into(),
            role: role.into(),
            org: Some(org.into()),
            registration: reg.map(str::to_owned),
            patient: None,
            related_person: None,
            scopes: policy::scopes::parse("user/*.cruds"),
        })
    };
    let gp = principal("gp", "B00001", Some("GMC:1234567"));
    let care = principal("care-worker", "B00002", None);
    let system = Caller::system("bench-reader", None);
    // The read mix: a patient's active medication (visible to every role here).
    let keys: Vec<(String, String)> = (0..reads)
        .map(|k| {
            let i = (k * 7919) % people.max(1);
            ("MedicationStatement".to_owned(), format!("bp{i}-m0"))
        })
        .collect();
    let labels = [
        "store only (no decision)",
        "system client",
        "gp (registration)",
        "care-worker (episode, restricted view)",
    ];
    // Round 0 warms caches and is not counted; then ROUNDS rounds, the
    // callers interleaved so that drift on the machine hits each alike; each
    // caller's best round is reported.
    let mut stats = [(0.0f64, 0usize); 4];
    for round in 0..=ROUNDS {
        for (n, stat) in stats.iter_mut().enumerate() {
            let started = Instant::now();
            let mut ok = 0usize;
            for (t, id) in &keys {
                let hit = match n {
                    0 => store
                        .read(t, id)
                        .await
                        .map_err(|e| e.to_string())?
                        .is_some(),
                    1 => service.read(&system, t, id).await.is_ok(),
                    2 => service.read(&gp, t, id).await.is_ok(),
                    _ => service.read(&care, t, id).await.is_ok(),
                };
                ok += usize::from(hit);
            }
            let rate = keys.len() as f64 / started.elapsed().as_secs_f64();
            if round > 0 && rate > stat.0 {
                stat.0 = rate;
            }
            stat.1 = ok;
        }
    }
    let baseline = stats[0].0;
    for (label, &(rate, ok)) in labels.iter().zip(&stats) {
        println!(
            "{}",
            json!({"bench": "authorised-read", "caller": label, "reads": keys.len(), "found": ok, "rounds": ROUNDS, "reads_per_second": rate, "ratio_to_store_only": rate / baseline})
        );
        println!(
            "| read | {label} | {} reads ({ok} found) | {rate:.0} reads/s | {:.0}% of store only |",
            keys.len(),
            100.0 * rate / baseline
        );
    }
    http_reads(service, &keys, http).await
}

/// Timed rounds per caller in process (after one untimed warm-up round).
const ROUNDS: usize = 3;

/// How the over-HTTP phase runs.
#[derive(Debug, Clone, Copy)]
pub struct HttpRun {
    /// Client threads, each with one request in flight.
    pub clients: usize,
    /// Each client keeps one connection open (else one per read).
    pub keep_alive: bool,
    /// Timed rounds (after one untimed warm-up round).
    pub rounds: usize,
}

/// The middle value of `xs` (the mean of the middle two when even).
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    let at = |i: usize| xs.get(i).copied().unwrap_or(0.0);
    if n % 2 == 1 {
        at(n / 2)
    } else {
        (at((n / 2).saturating_sub(1)) + at(n / 2)) / 2.0
    }
}

/// The same reads over HTTP on loopback, as a system client and as each
/// role, with the audit on and off: the ratios a client sees.
///
/// Every round runs each caller once, one after another, so a ratio
/// between two callers of the same round compares runs a few seconds
/// apart; the report gives the median of those per-round ratios and their
/// range, which drifts in the machine's speed (a shared VM's) cannot
/// move the way they move the best rate of each caller.
async fn http_reads<S: Store + Clone>(
    service: Service<S>,
    keys: &[(String, String)],
    http: HttpRun,
) -> Result<(), String> {
    let HttpRun {
        clients,
        keep_alive,
        rounds,
    } = http;
    // Two servers on the same store: one appends an audit record for every
    // read (as the product does), one does not (to measure what audit
    // costs).
    let mut addrs = Vec::new();
    for audit in [true, false] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let mut config = crate::bench_api_config(&format!("http://{addr}/fhir"));
        config.audit_requests = audit;
        let app = api::router(service.clone(), config);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addrs.push((audit, addr));
    }
    let who = |addr| {
        [
            (
                "system client",
                crate::bench_token_as(addr, "sys", "integration", None, None, "system/*.cruds"),
            ),
            (
                "gp (registration)",
                crate::bench_token_as(
                    addr,
                    "gp",
                    "gp",
                    Some("B00001"),
                    Some("GMC:1234567"),
                    "user/*.cruds",
                ),
            ),
            (
                "care-worker (episode, restricted view)",
                crate::bench_token_as(
                    addr,
                    "cw",
                    "care-worker",
                    Some("B00002"),
                    None,
                    "user/*.cruds",
                ),
            ),
        ]
    };
    // (label, audit on?, addr, token)
    let mut runs = Vec::new();
    for label_n in 0..3 {
        for &(audit, addr) in &addrs {
            if let Some((label, token)) = who(addr).get(label_n).cloned() {
                runs.push((label, audit, addr, token));
            }
        }
    }
    let paths: Arc<Vec<String>> = Arc::new(
        keys.iter()
            .map(|(t, id)| format!("/fhir/{t}/{id}"))
            .collect(),
    );
    // Per run: its rate in each timed round, and the reads answered 200.
    let mut rates: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); runs.len()];
    let mut oks = vec![0usize; runs.len()];
    for round in 0..=rounds {
        for (i, (_, _, addr, token)) in runs.iter().enumerate() {
            let addr = *addr;
            let started = Instant::now();
            let mut threads = Vec::new();
            for part in 0..clients {
                let (paths, token) = (paths.clone(), token.clone());
                threads.push(tokio::task::spawn_blocking(move || {
                    let mut ok = 0usize;
                    let mut conn = crate::KeepAlive::new(addr);
                    for p in paths.iter().skip(part).step_by(clients) {
                        let status = if keep_alive {
                            conn.get(p, &token)
                        } else {
                            crate::get_as(addr, p, &token)
                        };
                        if status == Ok(200) {
                            ok += 1;
                        }
                    }
                    ok
                }));
            }
            let mut ok = 0;
            for t in threads {
                ok += t.await.map_err(|e| e.to_string())?;
            }
            let rate = paths.len() as f64 / started.elapsed().as_secs_f64();
            if round > 0
                && let (Some(r), Some(o)) = (rates.get_mut(i), oks.get_mut(i))
            {
                r.push(rate);
                *o = ok;
            }
        }
    }
    let index_of = |label: &str, audit: bool| {
        runs.iter()
            .position(|(l, a, _, _)| *l == label && *a == audit)
    };
    // The median and range of `rates[i] / rates[j]`, round by round.
    let ratios = |i: usize, j: Option<usize>| {
        let r: Vec<f64> = match (rates.get(i), j.and_then(|j| rates.get(j))) {
            (Some(a), Some(b)) => a.iter().zip(b).map(|(x, y)| x / y).collect(),
            _ => vec![],
        };
        let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = r.iter().copied().fold(0.0, f64::max);
        (median(r), lo, hi)
    };
    let connection = if keep_alive {
        "keep-alive"
    } else {
        "one per read"
    };
    for (i, (label, audit, _, _)) in runs.iter().enumerate() {
        let rate = rates.get(i).cloned().map_or(0.0, median);
        let ok = oks.get(i).copied().unwrap_or(0);
        let (sys, sys_lo, sys_hi) = ratios(i, index_of("system client", *audit));
        let (off, off_lo, off_hi) = ratios(i, index_of(label, false));
        println!(
            "{}",
            json!({"bench": "authorised-read-http", "caller": label, "audit": audit, "reads": paths.len(), "ok": ok, "clients": clients, "connection": connection, "rounds": rounds, "median_reads_per_second": rate, "ratio_to_system_client": {"median": sys, "min": sys_lo, "max": sys_hi}, "ratio_to_audit_off": {"median": off, "min": off_lo, "max": off_hi}})
        );
        println!(
            "| read over HTTP | {label} | audit {} | {} reads ({ok} ok) | {rate:.0} reads/s | {:.0}% of system client ({:.0}–{:.0}%) | {:.0}% of audit off ({:.0}–{:.0}%) |",
            if *audit { "on" } else { "off" },
            paths.len(),
            100.0 * sys,
            100.0 * sys_lo,
            100.0 * sys_hi,
            100.0 * off,
            100.0 * off_lo,
            100.0 * off_hi,
        );
    }
    Ok(())
}
