//! The binary serves, answers, and stops gracefully on SIGTERM.

use serde_json::json;

use crate::client::{Server, get, post, request, temp_dir};

#[test]
fn serves_and_stops_gracefully_on_sigterm() {
    let dir = temp_dir("serve");
    let mut server = Server::start(&dir, &[]);
    let a = server.addr;
    assert_eq!(get(a, "/healthz").status, 200);
    assert_eq!(get(a, "/readyz").status, 200);
    let p = json!({"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018"}]});
    let r = post(a, "/fhir/Patient", &p.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let location = r.header("location").unwrap().to_owned();
    assert!(location.starts_with(&format!("http://{a}/fhir/Patient/")));
    let path = location
        .strip_prefix(&format!("http://{a}"))
        .unwrap()
        .split("/_history")
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(get(a, &path).json()["identifier"][0]["value"], "9990000018");
    let r = request(a, "GET", "/fhir/Patient/%3Cscript%3E", None).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["resourceType"], "OperationOutcome");

    server.signal("TERM");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");

    // The data is there on the next start.
    let server = Server::start(&dir, &[]);
    assert_eq!(get(server.addr, &path).status, 200);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_loads_once_and_is_idempotent() {
    let dir = temp_dir("demo");
    for _ in 0..2 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sharedcare"))
            .args(["demo", "--listen", "127.0.0.1:0", "--data"])
            .arg(&dir)
            .env("SHAREDCARE_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = {
            use std::io::BufRead;
            let stdout = child.stdout.take().unwrap();
            let mut lines = std::io::BufReader::new(stdout).lines();
            let mut help = String::new();
            loop {
                let line = lines.next().unwrap().unwrap();
                if let Some(rest) = line.strip_prefix("sharedcare listening on http://") {
                    break (
                        rest.split_whitespace()
                            .next()
                            .unwrap()
                            .parse::<std::net::SocketAddr>()
                            .unwrap(),
                        help,
                    );
                }
                help.push_str(&line);
                help.push('\n');
            }
        };
        let (addr, help) = server;
        assert!(help.contains("curl"), "the demo prints what to try");
        // The printed tokens work, each with its role's view.
        let token = |var: &str| {
            help.lines()
                .find_map(|l| l.trim().strip_prefix(&format!("export {var}=")))
                .unwrap_or_else(|| panic!("no {var} token printed"))
                .to_owned()
        };
        let as_ = |var: &str, path: &str| {
            crate::client::request_as(addr, "GET", path, None, Some(&token(var))).unwrap()
        };
        // Exactly one Margaret Hughes, however many times the demo starts.
        let b = as_(
            "GP",
            "/fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number%7C9990000018",
        )
        .json();
        assert_eq!(b["entry"].as_array().unwrap().len(), 1);
        assert_eq!(b["entry"][0]["resource"]["name"][0]["family"], "Hughes");
        let id = b["entry"][0]["resource"]["id"].as_str().unwrap().to_owned();
        let types = |r: crate::client::Reply| -> Vec<String> {
            r.json()["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["resource"]["resourceType"].as_str().unwrap().to_owned())
                .collect()
        };
        let gp = types(as_("GP", &format!("/fhir/Patient/{id}/$everything")));
        assert!(
            gp.contains(&"Observation".to_owned()) && gp.contains(&"Condition".to_owned()),
            "{gp:?}"
        );
        let care = types(as_("CARE", &format!("/fhir/Patient/{id}/$everything")));
        assert!(care.contains(&"AllergyIntolerance".to_owned()), "{care:?}");
        assert!(
            !care.contains(&"Observation".to_owned()) && !care.contains(&"Condition".to_owned()),
            "{care:?}"
        );
        assert_eq!(as_("HOSP", &format!("/fhir/Patient/{id}")).status, 403);
        assert_eq!(as_("DC", &format!("/fhir/Patient/{id}")).status, 403);
        assert_eq!(as_("PATIENT", &format!("/fhir/Patient/{id}")).status, 200);
        assert_eq!(
            crate::client::request_as(addr, "GET", &format!("/fhir/Patient/{id}"), None, None)
                .unwrap()
                .status,
            401
        );
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
