//! An external issuer trusted by JWKS URL: the binary fetches its keys at
//! start-up (and accepts its tokens), or refuses to start.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};

use auth::{IssuerKey, TokenClaims};

use crate::client::{Server, now_secs, request_as, temp_dir};

const IDP: &str = "https://idp.test";

/// Answers every request on a loopback port with `jwks`, from a thread
/// that lives as long as the test process.
fn jwks_server(jwks: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{jwks}",
                jwks.len()
            );
        }
    });
    addr
}

/// A data directory with a configuration that trusts `IDP` by `url`.
fn configured(name: &str, url: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sharedcare.toml");
    std::fs::write(
        &config,
        format!("[[auth.issuers]]\nissuer = \"{IDP}\"\njwks_url = \"{url}\"\n"),
    )
    .unwrap();
    (dir, config)
}

fn idp_token(key: &IssuerKey, server: SocketAddr) -> String {
    let now = now_secs();
    key.mint(&TokenClaims {
        iss: IDP.to_owned(),
        aud: format!("http://{server}/fhir"),
        sub: "idp-feed".to_owned(),
        exp: now + 3600,
        nbf: now - 5,
        iat: now - 5,
        jti: format!("idp-{now}"),
        name: "Feed".to_owned(),
        role: "integration".to_owned(),
        scope: "system/*.cruds".to_owned(),
        org: Some("RXX01".to_owned()),
        registration: None,
        patient: None,
        related_person: None,
        client_id: None,
    })
    .unwrap()
}

#[test]
fn tokens_of_an_issuer_trusted_by_jwks_url_are_accepted() {
    let idp = IssuerKey::from_seed([42; 32]);
    let jwks = jwks_server(idp.jwks().to_string());
    let (dir, config) = configured("jwks-url", &format!("http://{jwks}/jwks.json"));
    let server = Server::start(&dir, &["--config", config.to_str().unwrap()]);

    let token = idp_token(&idp, server.addr);
    let r = request_as(server.addr, "GET", "/fhir/Patient", None, Some(&token)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let stranger = idp_token(&IssuerKey::from_seed([43; 32]), server.addr);
    let r = request_as(server.addr, "GET", "/fhir/Patient", None, Some(&stranger)).unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreachable_jwks_url_stops_start_up_with_the_reason() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/jwks.json");
    let (dir, config) = configured("jwks-url-down", &url);
    let out = Command::new(env!("CARGO_BIN_EXE_sharedcare"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&dir)
        .arg("--config")
        .arg(&config)
        .env("SHAREDCARE_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("listening"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: issuer {IDP}: cannot fetch its JWK Set from {url} (3 attempts): cannot connect"
        )),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
