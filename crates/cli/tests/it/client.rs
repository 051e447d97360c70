//! A minimal blocking HTTP/1.1 client (one request per connection), enough
//! for tests without pulling an HTTP client library into the build.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The system-client token of each running test server (by address).
static TOKENS: std::sync::Mutex<Vec<(SocketAddr, String)>> = std::sync::Mutex::new(Vec::new());

fn token_for(addr: SocketAddr) -> Option<String> {
    TOKENS
        .lock()
        .unwrap()
        .iter()
        .find(|(a, _)| *a == addr)
        .map(|(_, t)| t.clone())
}

/// Now, in Unix seconds (tests may read the clock).
#[allow(clippy::disallowed_methods)]
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Mints a token with the server's own issuer key (in its data directory).
#[allow(clippy::too_many_arguments)]
pub fn mint(
    data: &Path,
    addr: SocketAddr,
    sub: &str,
    role: &str,
    org: Option<&str>,
    registration: Option<&str>,
    patient: Option<&str>,
    scope: &str,
) -> String {
    let key = auth::IssuerKey::load_or_create(data, || panic!("the server made no key")).unwrap();
    let base = format!("http://{addr}/fhir");
    let now = now_secs();
    key.mint(&auth::TokenClaims {
        iss: base.clone(),
        aud: base,
        sub: sub.to_owned(),
        exp: now + 3600,
        nbf: now - 5,
        iat: now - 5,
        jti: format!("jti-{sub}-{now}"),
        name: format!("Test {sub}"),
        role: role.to_owned(),
        scope: scope.to_owned(),
        org: org.map(str::to_owned),
        registration: registration.map(str::to_owned),
        patient: patient.map(str::to_owned),
        related_person: None,
        client_id: None,
    })
    .unwrap()
}

/// Mints a proxy's token: a caregiver (`related_person`) acting for
/// `patient`.
pub fn mint_proxy(data: &Path, addr: SocketAddr, related_person: &str, patient: &str) -> String {
    let key = auth::IssuerKey::load_or_create(data, || panic!("the server made no key")).unwrap();
    let base = format!("http://{addr}/fhir");
    let now = now_secs();
    key.mint(&auth::TokenClaims {
        iss: base.clone(),
        aud: base,
        sub: format!("nhs-login-{related_person}"),
        exp: now + 3600,
        nbf: now - 5,
        iat: now - 5,
        jti: format!("jti-{related_person}-{now}"),
        name: format!("Test {related_person}"),
        role: "proxy".to_owned(),
        scope: "patient/*.rs".to_owned(),
        org: None,
        registration: None,
        patient: Some(patient.to_owned()),
        related_person: Some(related_person.to_owned()),
        client_id: None,
    })
    .unwrap()
}

/// A request as the server's system client.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<Reply> {
    request_as(addr, method, path, body, token_for(addr).as_deref())
}

/// A request with the given bearer token (or none).
pub fn request_as(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(addr)?;
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/fhir+json\r\n\
         {auth}Content-Type: application/fhir+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "incomplete response")
    })?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, None).unwrap()
}

pub fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    request(addr, "POST", path, Some(body)).unwrap()
}

/// A running server process.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `sharedcare serve` on port 0 with `args`, and waits for the
    /// line that says where it listens (no sleeps).
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sharedcare"))
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(data)
            .args(extra)
            .env("SHAREDCARE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            if let Some(rest) = line.strip_prefix("sharedcare listening on http://") {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        let token = mint(
            data,
            addr,
            "e2e-system",
            "integration",
            None,
            None,
            None,
            "system/*.cruds",
        );
        TOKENS.lock().unwrap().push((addr, token));
        Server { child, addr }
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh temporary directory path (removed first if present).
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("sharedcare-e2e-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}
