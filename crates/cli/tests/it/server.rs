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

/// The README's demo: generates and loads a small population once (a
/// repeat run reuses it, with the same cast), and every example request it
/// prints returns what its comment says, for each role.
#[test]
fn demo_loads_once_and_its_examples_do_what_they_say() {
    let dir = temp_dir("demo");
    let mut first_person = None;
    for run in 0..2 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sharedcare"))
            .args([
                "demo",
                "--people",
                "300",
                "--listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(&dir)
            .env("SHAREDCARE_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let (addr, help) = {
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
        assert!(help.contains("curl"), "the demo prints what to try");
        let token = |var: &str| {
            help.lines()
                .find_map(|l| l.trim().strip_prefix(&format!("export {var}=")))
                .unwrap_or_else(|| panic!("no {var} token printed"))
                .to_owned()
        };
        // The demo person, as printed.
        let person = help
            .lines()
            .find_map(|l| l.split("(Patient/").nth(1))
            .and_then(|r| r.split(')').next())
            .expect("the demo names its person")
            .to_owned();
        match &first_person {
            None => first_person = Some(person.clone()),
            Some(p) => assert_eq!(p, &person, "a repeat run reuses the data and the cast"),
        }
        // Every printed request, with its token variable, run as printed.
        let requests: Vec<(String, String, String)> = help
            .lines()
            .filter(|l| {
                l.trim_start()
                    .starts_with("curl -s -H \"Authorization: Bearer $")
            })
            .map(|l| {
                let var = l
                    .split('$')
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .to_owned();
                let url = l.split('\'').nth(1).unwrap().to_owned();
                let comment = l.split('#').nth(1).unwrap_or("").trim().to_owned();
                (var, url, comment)
            })
            .collect();
        assert!(requests.len() >= 12, "{requests:?}");
        let base = format!("http://{addr}");
        let get = |var: &str, url: &str| {
            let path = url.strip_prefix(&base).unwrap().replace('|', "%7C");
            crate::client::request_as(addr, "GET", &path, None, Some(&token(var))).unwrap()
        };
        for (var, url, comment) in &requests {
            let r = get(var, url);
            let want = if comment.starts_with("403") { 403 } else { 200 };
            assert_eq!(r.status, want, "{var} {url} ({comment}): {}", r.body);
        }
        let types = |r: crate::client::Reply| -> Vec<String> {
            r.json()["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["resource"]["resourceType"].as_str().unwrap().to_owned())
                .collect()
        };
        let everything = format!("{base}/fhir/Patient/{person}/$everything");
        let gp = types(get("GP", &everything));
        let care = types(get("CARE", &everything));
        assert!(gp.contains(&"Condition".to_owned()), "{gp:?}");
        assert!(!care.contains(&"Condition".to_owned()), "{care:?}");
        assert!(
            care.len() < gp.len(),
            "the care worker sees less: {care:?} / {gp:?}"
        );
        // The NHS number search finds exactly one person, however many runs.
        if let Some((var, url, _)) = requests.iter().find(|(_, u, _)| u.contains("nhs-number")) {
            assert_eq!(
                get(var, url).json()["entry"].as_array().unwrap().len(),
                1,
                "run {run}"
            );
        }
        assert_eq!(
            crate::client::request_as(addr, "GET", &format!("/fhir/Patient/{person}"), None, None)
                .unwrap()
                .status,
            401
        );
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
