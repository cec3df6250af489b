//! Client ID Metadata Documents: a `client_id` that is an https URL, whose document Warden
//! fetches. Documents are served here over HTTPS with a test CA, on loopback (127.0.0.2),
//! and names are resolved by a simulated resolver, so that a name can be made to point at
//! 127.0.0.1, 10.x or 169.254.x, or change its answer between two fetches. The address rule
//! used lets 127.0.0.2 (the test server) through and is otherwise the production one.
//!
//! A good document authorizes, is stored when approved, and its code is exchanged with the
//! URL as client_id. Each attack (a redirect, an oversized document with and without a
//! length, a slow one, a `client_id` that is not the URL, a host resolving to a private
//! address, an answer that changes to one, a non-https URL, an IP-literal host) is refused
//! with a clear error and nothing is stored or issued. On SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::PgDatabase;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warden_auth::AuthServer;
use warden_auth::cimd::{CimdFetcher, Lookup, is_public};
use warden_auth::server::{AuthorizeError, AuthorizeParams};
use warden_store::{Role, Store};

const TEST_SERVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "a-pkce-verifier-that-is-long-enough-to-be-valid-0123456789";

/// The production rule, plus the test server's own address.
fn allow(ip: IpAddr) -> bool {
    ip == IpAddr::V4(TEST_SERVER) || is_public(ip)
}

/// Names and their answers; a name with several answers gives them in turn.
#[derive(Default)]
struct Dns {
    answers: Mutex<HashMap<String, Vec<IpAddr>>>,
    asked: AtomicUsize,
}

struct SharedDns(Arc<Dns>);

impl Lookup for SharedDns {
    fn lookup(
        &self,
        host: String,
    ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let n = self.0.asked.fetch_add(1, Ordering::SeqCst);
        let mut answers = self.0.answers.lock().unwrap();
        let ip = match answers.get_mut(&host) {
            Some(list) if list.len() > 1 => list.remove(0),
            Some(list) => list[0],
            None => {
                return Box::pin(async move {
                    Err(std::io::Error::other(format!("no such host {host} ({n})")))
                });
            }
        };
        Box::pin(async move { Ok(vec![ip]) })
    }
}

fn ca_and_leaf() -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Warden CIMD test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let names = [
        "app.test",
        "redirect.test",
        "big.test",
        "slow.test",
        "liar.test",
        "loop.test",
        "ten.test",
        "meta.test",
        "rebind.test",
    ];
    let leaf = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    (ca_cert.pem(), Arc::new(config))
}

/// A small HTTPS server answering by path; returns its port.
async fn serve(tls: Arc<rustls::ServerConfig>) -> u16 {
    let listener = tokio::net::TcpListener::bind((TEST_SERVER, 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let host = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("host: ")
                            .or_else(|| l.strip_prefix("Host: "))
                    })
                    .unwrap_or("")
                    .trim()
                    .to_string();
                let me = format!("https://{host}{path}");
                let doc = |id: &str| {
                    format!(
                        r#"{{"client_id":"{id}","client_name":"Good App","redirect_uris":["{REDIRECT}"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}}"#
                    )
                };
                let ok = |body: String, extra: &str| {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let reply = match path.as_str() {
                    "/good.json" => ok(doc(&me), ""),
                    "/fresh.json" => ok(doc(&me), "cache-control: no-store\r\n"),
                    "/redirect.json" => "HTTP/1.1 302 Found\r\nlocation: /good.json\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string(),
                    "/big.json" => ok(format!(r#"{{"client_id":"{me}","padding":"{}"}}"#, "x".repeat(20_000)), ""),
                    "/big-unsized.json" => {
                        let body = format!(r#"{{"client_id":"{me}","padding":"{}"}}"#, "x".repeat(20_000));
                        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{body}")
                    }
                    "/slow.json" => {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{").await;
                        tokio::time::sleep(Duration::from_secs(8)).await;
                        ok(doc(&me), "")
                    }
                    "/liar.json" => ok(doc("https://someone-else.example/client.json"), ""),
                    _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string(),
                };
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

fn params(client_id: &str) -> AuthorizeParams {
    AuthorizeParams {
        response_type: Some("code".into()),
        client_id: Some(client_id.into()),
        redirect_uri: Some(REDIRECT.into()),
        scope: Some("mcp:read".into()),
        state: Some("st4te".into()),
        code_challenge: Some(warden_auth::pkce::challenge_s256(VERIFIER)),
        code_challenge_method: Some("S256".into()),
        resource: None,
    }
}

async fn attacks(store: Store) {
    let (ca_pem, tls) = ca_and_leaf();
    let port = serve(tls).await;
    let dns = Arc::new(Dns::default());
    let srv = IpAddr::V4(TEST_SERVER);
    for (name, ip) in [
        ("app.test", srv),
        ("redirect.test", srv),
        ("big.test", srv),
        ("slow.test", srv),
        ("liar.test", srv),
        ("loop.test", "127.0.0.1".parse().unwrap()),
        ("ten.test", "10.0.0.7".parse().unwrap()),
        ("meta.test", "169.254.169.254".parse().unwrap()),
    ] {
        dns.answers.lock().unwrap().insert(name.into(), vec![ip]);
    }
    // Answers the test server first, then 127.0.0.1: a rebinding attempt.
    dns.answers.lock().unwrap().insert(
        "rebind.test".into(),
        vec![srv, "127.0.0.1".parse().unwrap()],
    );
    let fetcher = CimdFetcher::with(
        Arc::new(SharedDns(dns.clone())),
        allow,
        Some(ca_pem.as_bytes()),
    )
    .unwrap();

    let sink: Arc<dyn warden_core::audit::Sink> =
        Arc::new(warden_core::audit::MemorySink::default());
    let auth = AuthServer::new(
        store.clone(),
        sink,
        "https://warden.test",
        Duration::from_secs(900),
        Duration::from_secs(86_400),
    )
    .unwrap()
    .with_client_documents(Some(Arc::new(fetcher)));

    // A good document: authorized, nothing stored until approved.
    let good = format!("https://app.test:{port}/good.json");
    let req = auth
        .check_authorize(&params(&good))
        .await
        .expect("a good document is accepted");
    assert_eq!(req.client.name, "Good App");
    assert_eq!(
        req.document.as_ref().unwrap().host,
        "app.test",
        "the consent page shows the host"
    );
    assert!(
        store.client_by_document(&good).await.unwrap().is_none(),
        "nothing stored before approval"
    );
    let org = store.create_org("acme", "Acme").await.unwrap();
    let ana = store.create_user("ana@acme.example", "Ana").await.unwrap();
    store
        .set_membership(org.id, ana.id, Role::Member)
        .await
        .unwrap();
    let location = auth
        .approve(ana.id, "acme", &req, false, None)
        .await
        .unwrap();
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let stored = store
        .client_by_document(&good)
        .await
        .unwrap()
        .expect("stored on approval");
    assert_eq!(stored.redirect_uris, [REDIRECT]);
    let tokens = auth
        .exchange_code(
            Some(&code),
            Some(VERIFIER),
            Some(REDIRECT),
            Some(&good),
            None,
            "127.0.0.1",
        )
        .await
        .expect("the code is exchanged with the URL as client_id");
    assert!(tokens.access_token.expose().starts_with("wdn_at_"));
    // Asked again, the same client (same internal id), from the cache.
    let asked = dns.asked.load(Ordering::SeqCst);
    let again = auth.check_authorize(&params(&good)).await.unwrap();
    assert_eq!(again.client.id, stored.id);
    assert_eq!(
        dns.asked.load(Ordering::SeqCst),
        asked,
        "served from the cache"
    );

    // The attacks: each refused with a clear error, and nothing stored.
    let rebind = format!("https://rebind.test:{port}/fresh.json");
    assert!(
        auth.check_authorize(&params(&rebind)).await.is_ok(),
        "its first answer is the test server"
    );
    let cases = [
        (
            format!("https://redirect.test:{port}/redirect.json"),
            "redirect",
        ),
        (
            format!("https://big.test:{port}/big.json"),
            "larger than 10240 bytes",
        ),
        (
            format!("https://big.test:{port}/big-unsized.json"),
            "larger than 10240 bytes",
        ),
        (format!("https://slow.test:{port}/slow.json"), "5 seconds"),
        (
            format!("https://liar.test:{port}/liar.json"),
            "must name its own URL",
        ),
        (format!("https://loop.test:{port}/good.json"), "127.0.0.1"),
        (format!("https://ten.test:{port}/good.json"), "10.0.0.7"),
        (
            format!("https://meta.test:{port}/good.json"),
            "169.254.169.254",
        ),
        // The same name, now answering 127.0.0.1 (no-store: fetched again).
        (rebind.clone(), "127.0.0.1"),
        (format!("http://app.test:{port}/good.json"), "must be https"),
        (
            format!("https://127.0.0.2:{port}/good.json"),
            "not an IP address",
        ),
        (format!("https://app.test:{port}/"), "must have a path"),
    ];
    for (url, words) in &cases {
        match auth.check_authorize(&params(url)).await {
            Err(AuthorizeError::NoRedirect(m)) => {
                assert!(m.contains(words), "{url}: expected {words:?} in: {m}")
            }
            Err(other) => panic!("{url}: refused, but not before the redirect: {other:?}"),
            Ok(_) => panic!("{url}: accepted"),
        }
        assert!(
            store.client_by_document(url).await.unwrap().is_none(),
            "{url}: nothing stored"
        );
    }
    // A URL client_id that was never approved gets no tokens.
    let never = format!("https://liar.test:{port}/liar.json");
    let refused = auth
        .exchange_code(
            Some(&code),
            Some(VERIFIER),
            Some(REDIRECT),
            Some(&never),
            None,
            "127.0.0.1",
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code, "invalid_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_metadata_documents_are_fetched_safely_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path().join("s.db")).await.unwrap();
    store.migrate().await.unwrap();
    attacks(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_metadata_documents_are_fetched_safely_postgres() {
    let Some(db) = PgDatabase::create("cimd").await else {
        return;
    };
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    attacks(store).await;
}
