//! Kill -9 during a stream of transactions: after a restart every
//! acknowledged transaction is there whole, and no unacknowledged one is
//! there in part.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::client::{Server, get, request, temp_dir};

const PER_TX: usize = 20;
const CLIENTS: usize = 3;
/// Kill once this many transactions have been acknowledged.
const KILL_AFTER: usize = 40;

fn bundle(run: &str, tx: usize) -> String {
    let entries: Vec<_> = (0..PER_TX)
        .map(|i| {
            json!({
                "fullUrl": format!("urn:uuid:00000000-0000-4000-8000-{:012}", i),
                "resource": {
                    "resourceType": "Basic",
                    "identifier": [{"system": format!("urn:sharedcare:test:{run}"), "value": format!("tx{tx}")}],
                    "code": {"text": format!("entry {i}")},
                    "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}
                },
                "request": {"method": "POST", "url": "Basic"}
            })
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}).to_string()
}

fn count(addr: std::net::SocketAddr, run: &str, tx: usize) -> usize {
    let r = get(
        addr,
        &format!("/fhir/Basic?identifier=urn:sharedcare:test:{run}%7Ctx{tx}&_count=1000"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["entry"].as_array().map_or(0, Vec::len)
}

fn crash_run(extra: &[&str], run: &str) {
    let dir = temp_dir("crash");
    let server = Server::start(&dir, extra);
    let addr = server.addr;
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Vec::<usize>::new()));
    let killed = Arc::new(AtomicBool::new(false));
    let mut clients = vec![];
    for _ in 0..CLIENTS {
        let (next, acked, killed, run) =
            (next.clone(), acked.clone(), killed.clone(), run.to_owned());
        clients.push(std::thread::spawn(move || {
            let mut sent = vec![];
            while !killed.load(Ordering::SeqCst) {
                let tx = next.fetch_add(1, Ordering::SeqCst);
                sent.push(tx);
                match request(addr, "POST", "/fhir", Some(&bundle(&run, tx))) {
                    Ok(r) if r.status == 200 => acked.lock().unwrap().push(tx),
                    Ok(r) => panic!("transaction refused: {} {}", r.status, r.body),
                    Err(_) => break, // the server died under us
                }
            }
            sent
        }));
    }
    // Wait (by polling the acknowledgement count, not by sleeping) for enough
    // acknowledged transactions, then kill -9 with requests in flight.
    loop {
        if acked.lock().unwrap().len() >= KILL_AFTER {
            break;
        }
        std::thread::yield_now();
    }
    server.signal("KILL");
    killed.store(true, Ordering::SeqCst);
    let mut sent = vec![];
    for c in clients {
        sent.extend(c.join().unwrap());
    }
    drop(server);

    let acked = acked.lock().unwrap().clone();
    let restarted = Server::start(&dir, extra);
    let mut partial = vec![];
    for tx in &sent {
        let n = count(restarted.addr, run, *tx);
        if acked.contains(tx) {
            assert_eq!(
                n, PER_TX,
                "acknowledged transaction {tx} is not whole after the crash"
            );
        } else if n != 0 && n != PER_TX {
            partial.push((tx, n));
        }
    }
    assert!(
        partial.is_empty(),
        "unacknowledged transactions stored in part: {partial:?}"
    );
    assert!(acked.len() >= KILL_AFTER);
    eprintln!(
        "crash test: {} sent, {} acknowledged, all whole after kill -9",
        sent.len(),
        acked.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill_9_during_transactions_sqlite() {
    crash_run(&[], &format!("sqlite{}", std::process::id()));
}

#[test]
fn kill_9_during_transactions_postgres() {
    let Ok(url) = std::env::var("SHAREDCARE_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: postgres kill -9 test (SHAREDCARE_TEST_DATABASE_URL is not set)");
        return;
    };
    crash_run(
        &["--database-url", &url],
        &format!("pg{}", std::process::id()),
    );
}
