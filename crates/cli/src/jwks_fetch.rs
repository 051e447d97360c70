//! External issuers' JWK Sets by URL (`jwks_url`).
//!
//! At start-up each URL is fetched (a few attempts, then start-up fails
//! with the reason). The keys live in the verifier ([`auth::IssuerKeys`])
//! and a task per issuer fetches them again:
//!
//! - every `jwks_refresh_secs`;
//! - when a token of the issuer names a key it does not hold (an unknown
//!   `kid`). That token is refused all the same (401): the verifier only
//!   wakes the task, and nothing on a request's path waits for the network.
//!   The task fetches at most once every [`MIN_GAP`] per issuer, however
//!   many such tokens arrive, so they cannot make it hammer the issuer.
//!
//! A fetch that fails, or brings anything but a usable JWK Set (the keys
//! are checked exactly as a `jwks_file`'s), keeps the previous keys and
//! logs a warning with the reason (never a token: the task sees none).
//!
//! Each fetch is one HTTP/1.1 GET on a new connection, bounded by
//! [`Limits`] (5 s for the whole exchange, 1 MiB of body), over TLS checked
//! against the Mozilla roots (webpki-roots) unless the URL is a loopback
//! `http://` one. Redirects are not followed: configure the final URL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONNECTION, CONTENT_LENGTH, HOST, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::config::{ExternalIssuer, JwksSource, JwksUrl};

/// The least time between two fetches of one issuer's JWK Set, whatever
/// wakes the task.
pub const MIN_GAP: Duration = Duration::from_secs(60);

/// Bounds on one fetch.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For the whole exchange: resolving, connecting, TLS, the request and
    /// the body.
    pub timeout: Duration,
    /// The largest JWK Set accepted, in bytes.
    pub max_bytes: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        timeout: Duration::from_secs(5),
        max_bytes: 1024 * 1024,
    };
}

/// How hard start-up tries: `attempts` fetches, pausing `pause` after the
/// first failure and twice as long after each further one.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub pause: Duration,
}

impl Retry {
    /// Three attempts, 0.5 s and 1 s apart (each bounded by its timeout).
    pub const START_UP: Retry = Retry {
        attempts: 3,
        pause: Duration::from_millis(500),
    };
}

/// Fetches JWK Sets.
pub struct Fetcher {
    tls: TlsConnector,
    limits: Limits,
}

impl Fetcher {
    pub fn new(limits: Limits) -> Result<Fetcher, String> {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Fetcher {
            tls: TlsConnector::from(Arc::new(config)),
            limits,
        })
    }

    /// Fetches the JWK Set at `url` once. Only its shape is checked here;
    /// the keys are checked when they reach the verifier.
    pub async fn fetch(&self, url: &JwksUrl) -> Result<Value, String> {
        let body = tokio::time::timeout(self.limits.timeout, self.get(url))
            .await
            .map_err(|_| {
                format!(
                    "no complete answer within {} ms",
                    self.limits.timeout.as_millis()
                )
            })??;
        auth::jwks_from_slice("the answer", &body).map_err(|e| e.to_string())
    }

    /// Fetches at start-up, trying again a few times.
    pub async fn fetch_at_start_up(
        &self,
        issuer: &str,
        url: &JwksUrl,
        retry: Retry,
    ) -> Result<Value, String> {
        let mut pause = retry.pause;
        let mut attempt = 1;
        loop {
            match self.fetch(url).await {
                Ok(jwks) => return Ok(jwks),
                Err(e) if attempt >= retry.attempts => {
                    return Err(format!(
                        "issuer {issuer}: cannot fetch its JWK Set from {url} \
                         ({attempt} attempts): {e}"
                    ));
                }
                Err(e) => {
                    tracing::warn!(issuer, attempt, error = %e, "cannot fetch the JWK Set; trying again");
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                    attempt += 1;
                }
            }
        }
    }

    async fn get(&self, url: &JwksUrl) -> Result<Vec<u8>, String> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((url.host(), url.port()))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", url.host()))?
            .collect();
        // Plain http is for loopback only, whatever `localhost` resolves to.
        if !url.is_https() && !addrs.iter().all(|a| a.ip().is_loopback()) {
            return Err(format!(
                "{} resolves to a non-loopback address, and the URL is not https",
                url.host()
            ));
        }
        let tcp = connect(&addrs).await?;
        if url.is_https() {
            let name = ServerName::try_from(url.host().to_owned())
                .map_err(|_| format!("{} is not a valid TLS server name", url.host()))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {}: {e}", url.host()))?;
            exchange(TokioIo::new(tls), url, self.limits.max_bytes).await
        } else {
            exchange(TokioIo::new(tcp), url, self.limits.max_bytes).await
        }
    }
}

async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, String> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(format!("cannot connect to {addr}: {e}")),
        }
    }
    Err(last.unwrap_or_else(|| "the host resolves to no address".to_owned()))
}

/// One GET on a fresh connection, with the body read up to `max_bytes`.
async fn exchange<T>(io: T, url: &JwksUrl, max_bytes: usize) -> Result<Vec<u8>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let request = Request::get(url.path_and_query())
        .header(HOST, url.authority())
        .header(ACCEPT, "application/jwk-set+json, application/json")
        .header(
            USER_AGENT,
            concat!("sharedcare/", env!("CARGO_PKG_VERSION")),
        )
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("HTTP request: {e}"))?;
    let work = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(format!(
                "answered {status}; redirects are not followed (configure the final URL)"
            ));
        }
        if status != StatusCode::OK {
            return Err(format!("answered {status}"));
        }
        let too_large = || format!("the answer is larger than {max_bytes} bytes");
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max_bytes as u64) {
            return Err(too_large());
        }
        let body = Limited::new(response.into_body(), max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<LengthLimitError>() {
                    too_large()
                } else {
                    format!("reading the answer: {e}")
                }
            })?;
        Ok(body.to_bytes().to_vec())
    };
    // The connection is driven here rather than spawned, so a timeout drops
    // it with the request.
    let mut work = std::pin::pin!(work);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        biased;
        result = &mut work => result,
        ended = &mut conn => match ended {
            Ok(()) => work.await,
            Err(e) => Err(format!("HTTP: {e}")),
        },
    }
}

/// The trust entries of the configured external issuers: each `jwks_file`
/// read, each `jwks_url` fetched (trying again as `retry` says).
pub async fn trusted_issuers(
    issuers: &[ExternalIssuer],
    fetcher: &Fetcher,
    retry: Retry,
) -> Result<Vec<auth::TrustedIssuer>, String> {
    let mut trusted = Vec::with_capacity(issuers.len());
    for i in issuers {
        let keys = match &i.jwks {
            JwksSource::File(path) => {
                auth::jwks_from_file(path).map_err(|e| format!("issuer {}: {e}", i.issuer))?
            }
            JwksSource::Url { url, .. } => {
                let jwks = fetcher.fetch_at_start_up(&i.issuer, url, retry).await?;
                tracing::info!(issuer = %i.issuer, %url, "fetched the JWK Set");
                jwks
            }
        };
        trusted.push(auth::TrustedIssuer {
            issuer: i.issuer.clone(),
            keys,
            mapping: i.mapping.clone(),
        });
    }
    Ok(trusted)
}

/// Starts a refresh task for each `jwks_url` issuer of `verifier`. The tasks
/// end with the runtime.
pub fn keep_fresh(
    verifier: &auth::Verifier,
    issuers: &[ExternalIssuer],
    fetcher: &Arc<Fetcher>,
) -> Result<(), String> {
    for i in issuers {
        if let JwksSource::Url { url, refresh_every } = &i.jwks {
            let keys = verifier
                .issuer_keys(&i.issuer)
                .ok_or_else(|| format!("issuer {}: not in the verifier", i.issuer))?;
            spawn_refresher(
                Arc::clone(fetcher),
                url.clone(),
                keys,
                Schedule {
                    every: *refresh_every,
                    min_gap: MIN_GAP,
                },
            );
        }
    }
    Ok(())
}

/// Wakes on an unknown key and starts the task that refreshes `keys`.
fn spawn_refresher(
    fetcher: Arc<Fetcher>,
    url: JwksUrl,
    keys: auth::IssuerKeys,
    schedule: Schedule,
) {
    let wake = Arc::new(Notify::new());
    let on_unknown = Arc::clone(&wake);
    keys.on_unknown_key(move || on_unknown.notify_one());
    tokio::spawn(refresh_task(fetcher, url, keys, wake, schedule));
}

/// When a refresh task fetches.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    every: Duration,
    min_gap: Duration,
}

impl Schedule {
    /// The next fetch after one at `last`: `every` later, or, once woken
    /// by an unknown key, as soon as `min_gap` allows.
    fn next(self, last: Instant, woken: bool) -> Instant {
        if woken {
            last + self.min_gap
        } else {
            last + self.every
        }
    }
}

async fn refresh_task(
    fetcher: Arc<Fetcher>,
    url: JwksUrl,
    keys: auth::IssuerKeys,
    wake: Arc<Notify>,
    schedule: Schedule,
) {
    // The start-up fetch has just happened.
    let mut last = Instant::now();
    loop {
        let woken = tokio::select! {
            () = tokio::time::sleep_until(schedule.next(last, false)) => false,
            () = wake.notified() => true,
        };
        if woken {
            // Further wake-ups meanwhile leave one permit: at most one more
            // fetch, again at least `min_gap` later.
            tokio::time::sleep_until(schedule.next(last, true)).await;
        }
        last = Instant::now();
        let _ = refresh(&fetcher, &url, &keys).await;
    }
}

/// Fetches `url` and replaces the issuer's keys, or keeps them and logs a
/// warning. Returns the number of keys now in use, or the reason.
pub async fn refresh(
    fetcher: &Fetcher,
    url: &JwksUrl,
    keys: &auth::IssuerKeys,
) -> Result<usize, String> {
    let outcome = match fetcher.fetch(url).await {
        Ok(jwks) => keys.replace(&jwks).map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    match &outcome {
        Ok(count) => {
            tracing::info!(
                issuer = keys.issuer(),
                keys = count,
                "refreshed the JWK Set"
            );
        }
        Err(e) => tracing::warn!(
            issuer = keys.issuer(),
            %url,
            error = %e,
            "cannot refresh the JWK Set; keeping the previous keys"
        ),
    }
    outcome
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use auth::{ClaimMapping, IssuerKey, TokenClaims, Verifier, VerifierConfig};
    use serde_json::json;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    const ISSUER: &str = "https://idp.test";
    const AUDIENCE: &str = "https://sharedcare.test/fhir";
    const NOW: i64 = 1_750_000_000;
    const ONCE: Retry = Retry {
        attempts: 1,
        pause: Duration::ZERO,
    };

    /// A loopback HTTP server: it reads each request's head and answers
    /// with the current canned response, then closes the connection.
    struct JwksServer {
        addr: SocketAddr,
        answer: Arc<Mutex<Vec<u8>>>,
        hits: Arc<AtomicUsize>,
    }

    impl JwksServer {
        async fn start(answer: Vec<u8>) -> JwksServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let answer = Arc::new(Mutex::new(answer));
            let hits = Arc::new(AtomicUsize::new(0));
            let (current, count) = (Arc::clone(&answer), Arc::clone(&hits));
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let (current, count) = (Arc::clone(&current), Arc::clone(&count));
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                        let bytes = current.lock().unwrap().clone();
                        let _ = stream.write_all(&bytes).await;
                        let _ = stream.shutdown().await;
                    });
                }
            });
            JwksServer { addr, answer, hits }
        }

        fn url(&self) -> JwksUrl {
            JwksUrl::parse(&format!("http://{}/jwks.json", self.addr)).unwrap()
        }

        fn serve(&self, answer: Vec<u8>) {
            *self.answer.lock().unwrap() = answer;
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    fn answer(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    fn ok(body: &[u8]) -> Vec<u8> {
        answer("200 OK", "Content-Type: application/json\r\n", body)
    }

    fn jwks_of(keys: &[&IssuerKey]) -> Vec<u8> {
        let keys: Vec<Value> = keys.iter().map(|k| k.jwks()["keys"][0].clone()).collect();
        json!({ "keys": keys }).to_string().into_bytes()
    }

    fn key_a() -> IssuerKey {
        IssuerKey::from_seed([1; 32])
    }

    fn key_b() -> IssuerKey {
        IssuerKey::from_seed([2; 32])
    }

    fn token(key: &IssuerKey) -> String {
        key.mint(&TokenClaims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: "user-1".to_owned(),
            exp: NOW + 300,
            nbf: NOW,
            iat: NOW,
            jti: "t-1".to_owned(),
            name: "Dr Test".to_owned(),
            role: "gp".to_owned(),
            scope: "user/*.rs".to_owned(),
            org: Some("A81001".to_owned()),
            registration: Some("GMC:1234567".to_owned()),
            patient: None,
            related_person: None,
            client_id: None,
        })
        .unwrap()
    }

    fn external(url: JwksUrl) -> ExternalIssuer {
        ExternalIssuer {
            issuer: ISSUER.to_owned(),
            jwks: JwksSource::Url {
                url,
                refresh_every: Duration::from_secs(3600),
            },
            mapping: ClaimMapping::Direct,
        }
    }

    fn fetcher() -> Fetcher {
        Fetcher::new(Limits::DEFAULT).unwrap()
    }

    /// The verifier the server would build for the issuer at `url`.
    async fn verifier_from(url: JwksUrl, fetcher: &Fetcher) -> Verifier {
        let trusted = trusted_issuers(&[external(url)], fetcher, ONCE)
            .await
            .unwrap();
        Verifier::new(VerifierConfig::new(AUDIENCE, trusted)).unwrap()
    }

    fn code(v: &Verifier, token: &str) -> &'static str {
        v.verify(token, NOW).map_or_else(|e| e.code(), |_| "ok")
    }

    #[tokio::test]
    async fn keys_from_a_url_rotate_on_refresh() {
        let server = JwksServer::start(ok(&jwks_of(&[&key_a()]))).await;
        let fetcher = fetcher();
        let v = verifier_from(server.url(), &fetcher).await;
        let keys = v.issuer_keys(ISSUER).unwrap();
        assert_eq!(code(&v, &token(&key_a())), "ok");
        assert_eq!(code(&v, &token(&key_b())), "unknown_key");

        // The issuer rotates: a new kid, the old key withdrawn.
        server.serve(ok(&jwks_of(&[&key_b()])));
        assert_eq!(
            code(&v, &token(&key_b())),
            "unknown_key",
            "not before a refresh"
        );
        assert_eq!(refresh(&fetcher, &server.url(), &keys).await, Ok(1));
        assert_eq!(code(&v, &token(&key_b())), "ok");
        assert_eq!(code(&v, &token(&key_a())), "unknown_key");
        assert_eq!(keys.kids(), vec![key_b().kid().to_owned()]);
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn an_unknown_kid_is_refused_and_wakes_the_refresher() {
        let server = JwksServer::start(ok(&jwks_of(&[&key_a()]))).await;
        let fetcher = Arc::new(fetcher());
        let v = verifier_from(server.url(), &fetcher).await;
        let schedule = Schedule {
            every: Duration::from_secs(3600),
            min_gap: Duration::ZERO,
        };
        spawn_refresher(
            Arc::clone(&fetcher),
            server.url(),
            v.issuer_keys(ISSUER).unwrap(),
            schedule,
        );
        server.serve(ok(&jwks_of(&[&key_a(), &key_b()])));
        // Refused at once: the request never waits for the fetch.
        assert_eq!(code(&v, &token(&key_b())), "unknown_key");
        // The background task fetches; wait for it by yielding, not sleeping.
        tokio::time::timeout(Duration::from_secs(5), async {
            while code(&v, &token(&key_b())) != "ok" {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the refresher fetched the new keys");
        assert_eq!(code(&v, &token(&key_a())), "ok");
        assert_eq!(server.hits(), 2);
    }

    #[test]
    fn an_unknown_kid_waits_out_the_gap_and_the_interval_applies_otherwise() {
        let schedule = Schedule {
            every: Duration::from_secs(3600),
            min_gap: MIN_GAP,
        };
        let last = Instant::now();
        assert_eq!(schedule.next(last, false), last + Duration::from_secs(3600));
        assert_eq!(schedule.next(last, true), last + Duration::from_secs(60));
    }

    #[tokio::test]
    async fn an_unreachable_url_at_start_up_is_a_clear_error() {
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let url = JwksUrl::parse(&format!("http://{addr}/jwks.json")).unwrap();
        let retry = Retry {
            attempts: 2,
            pause: Duration::ZERO,
        };
        let err = trusted_issuers(&[external(url)], &fetcher(), retry)
            .await
            .unwrap_err();
        assert!(err.starts_with(&format!("issuer {ISSUER}: cannot fetch its JWK Set from http://{addr}/jwks.json (2 attempts): cannot connect to {addr}")), "{err}");
    }

    #[tokio::test]
    async fn bad_answers_are_refused_and_the_previous_keys_kept() {
        let server = JwksServer::start(ok(&jwks_of(&[&key_a()]))).await;
        let fetcher = fetcher();
        let v = verifier_from(server.url(), &fetcher).await;
        let keys = v.issuer_keys(ISSUER).unwrap();

        let max = Limits::DEFAULT.max_bytes;
        let mut private = key_b().jwks();
        private["keys"][0]["d"] = json!("AAAA");
        let big_set = format!(r#"{{"keys":[{}]}}"#, " ".repeat(max)).into_bytes();
        let mut chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
        for _ in 0..=max / 65_536 {
            chunked.extend_from_slice(format!("{:x}\r\n", 65_536).as_bytes());
            chunked.extend_from_slice(&[b' '; 65_536]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "over 1 MiB, declared",
                ok(&big_set),
                "larger than 1048576 bytes",
            ),
            ("over 1 MiB, chunked", chunked, "larger than 1048576 bytes"),
            (
                "HTML",
                answer(
                    "200 OK",
                    "Content-Type: text/html\r\n",
                    b"<html>login</html>",
                ),
                "not a JSON document",
            ),
            (
                "JSON, not a JWK Set",
                ok(br#"{"issuer":"https://idp.test"}"#),
                "not a JWK Set",
            ),
            (
                "an empty set",
                ok(br#"{"keys":[]}"#),
                "the JWK Set is empty",
            ),
            (
                "a private key",
                ok(private.to_string().as_bytes()),
                "private key material",
            ),
            (
                "a symmetric key",
                ok(br#"{"keys":[{"kty":"oct","kid":"hs"}]}"#),
                "symmetric",
            ),
            (
                "not found",
                answer("404 Not Found", "", b""),
                "answered 404 Not Found",
            ),
            (
                "a redirect",
                answer(
                    "302 Found",
                    "Location: https://elsewhere.test/jwks\r\n",
                    b"",
                ),
                "redirects are not followed",
            ),
            ("not HTTP", b"SSH-2.0-OpenSSH\r\n\r\n".to_vec(), "HTTP"),
        ];
        for (what, bad, reason) in cases {
            server.serve(bad);
            let err = refresh(&fetcher, &server.url(), &keys).await.unwrap_err();
            assert!(err.contains(reason), "{what}: {err}");
            assert_eq!(code(&v, &token(&key_a())), "ok", "{what}: keys kept");
            assert_eq!(keys.kids(), vec![key_a().kid().to_owned()], "{what}");
        }
        // And a good answer is taken again.
        server.serve(ok(&jwks_of(&[&key_b()])));
        assert_eq!(refresh(&fetcher, &server.url(), &keys).await, Ok(1));
        assert_eq!(code(&v, &token(&key_b())), "ok");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        // Connections queue in the backlog and are never answered.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = JwksUrl::parse(&format!("http://{}/jwks", silent.local_addr().unwrap())).unwrap();
        let fetcher = Fetcher::new(Limits {
            timeout: Duration::from_millis(200),
            ..Limits::DEFAULT
        })
        .unwrap();
        let err = fetcher.fetch(&url).await.unwrap_err();
        assert_eq!(err, "no complete answer within 200 ms");
        drop(silent);
    }

    #[tokio::test]
    async fn https_needs_a_tls_server() {
        // A plain HTTP server behind an https URL: it gets a TLS ClientHello
        // (never a request in the clear) and answers in plain HTTP, which
        // fails the handshake.
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = plain.local_addr().unwrap();
        let seen = tokio::spawn(async move {
            let (mut stream, _) = plain.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
            let _ = stream.shutdown().await;
            buf[..n].to_vec()
        });
        let url = JwksUrl::parse(&format!("https://{addr}/jwks.json")).unwrap();
        let err = fetcher().fetch(&url).await.unwrap_err();
        assert!(err.starts_with("TLS with 127.0.0.1: "), "{err}");
        let first = seen.await.unwrap();
        assert_eq!(first.first(), Some(&0x16), "a TLS handshake record");
        assert!(!first.windows(4).any(|w| w == b"GET "));
    }
}
