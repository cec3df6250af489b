//! HTTPS at the edge: a test CA made here (rcgen), `warden serve --tls-cert/--tls-key`, and
//! clients that trust only that CA. Bad certificate material is a clear start-up error; HTTPS
//! answers carry HSTS and plain HTTP never does; a certificate swapped on disk reaches new
//! connections while an open one keeps working; the redirect listener sends plain HTTP to
//! HTTPS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{Server, init_project, warden};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA and a way to issue leaf certificates for 127.0.0.1 under it.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Warden test CA");
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// Writes `NAME.pem` and `NAME.key` (mode 600) into `dir`; returns the leaf's DER.
    fn issue(&self, dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        write_private(&k, &key.serialize_pem());
        (c, k, cert.der().to_vec())
    }

    fn client_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
    }
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `warden serve` that must refuse to start: its stderr.
fn refused(project: &Path, extra: &[&str]) -> String {
    let out = warden()
        .args([
            "serve",
            "-p",
            project.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env("WARDEN_LOG", "info")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "started: {err}");
    assert!(!err.contains("serving MCP on"), "{err}");
    err
}

#[test]
fn bad_certificate_material_is_a_clear_start_up_error() {
    let (dir, file, _) = init_project();
    let d = dir.path();
    let ca = Ca::new();
    let (cert, key, _) = ca.issue(d, "good", "warden-a");
    let (_, other_key, _) = ca.issue(d, "other", "warden-b");
    let garbage = d.join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n").unwrap();
    let open_key = d.join("open.key");
    std::fs::copy(&key, &open_key).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let missing = d.join("missing.pem");
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec![
                "--tls-cert".into(),
                s(&missing),
                "--tls-key".into(),
                s(&key),
            ],
            vec![s(&missing), "cannot read".into()],
        ),
        (
            vec![
                "--tls-cert".into(),
                s(&cert),
                "--tls-key".into(),
                s(&other_key),
            ],
            vec![s(&other_key), s(&cert), "does not belong".into()],
        ),
        (
            vec![
                "--tls-cert".into(),
                s(&garbage),
                "--tls-key".into(),
                s(&key),
            ],
            vec![s(&garbage), "no PEM certificate".into()],
        ),
        (
            vec![
                "--tls-cert".into(),
                s(&cert),
                "--tls-key".into(),
                s(&open_key),
            ],
            vec![s(&open_key), "chmod 600".into()],
        ),
        (
            vec!["--tls-cert".into(), s(&cert)],
            vec!["--tls-key".into()],
        ),
    ];
    for (args, says) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = refused(&file, &args);
        for word in says {
            assert!(err.contains(&word), "{args:?}: expected {word:?} in {err}");
        }
    }
    // With TLS on, an http:// public URL is refused, by `serve` and by `check`.
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        yaml.replace(
            "  # public_url: https://warden.example.com",
            &format!(
                "  public_url: http://127.0.0.1:8443\n  tls:\n    cert: {}\n    key: {}",
                s(&cert),
                s(&key)
            ),
        ),
    )
    .unwrap();
    let err = refused(&file, &[]);
    assert!(
        err.contains("server.public_url") && err.contains("https://"),
        "{err}"
    );
    let check = warden()
        .args(["check", "-p", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("server.public_url"));
}

#[tokio::test]
async fn https_serves_mcp_with_hsts_and_plain_http_never_sends_it() {
    let (dir, file, key) = init_project();
    let ca = Ca::new();
    let (cert, tls_key, _) = ca.issue(dir.path(), "leaf", "warden");
    let server = Server::start_with(
        &file,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            tls_key.to_str().unwrap(),
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let addr = server
        .url
        .trim_start_matches("https://")
        .trim_end_matches("/mcp")
        .to_string();
    let init = https(
        &ca,
        &addr,
        &format!(
            "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{INIT}",
            INIT.len()
        ),
    )
    .await;
    assert!(init.starts_with("HTTP/1.1 200"), "{init}");
    assert!(
        init.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000; includesubdomains"),
        "{init}"
    );
    assert!(init.contains("\"serverInfo\""), "{init}");
    // The OAuth metadata names https:// endpoints.
    let meta = https(
        &ca,
        &addr,
        &format!(
            "GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(
        meta.contains(&format!("\"issuer\":\"https://{addr}\"")),
        "{meta}"
    );
    // A client that does not trust the CA cannot even finish the handshake.
    let stranger = Ca::new();
    let mut config = stranger.client_config();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()), tcp)
            .await
            .is_err()
    );

    // Plain HTTP: no HSTS.
    let plain = Server::start(&file);
    let r = reqwest::Client::new()
        .get(
            plain
                .url
                .replace("/mcp", "/.well-known/oauth-protected-resource/mcp"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("strict-transport-security").is_none());
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// `request` (whole, with `Connection: close`) over a new TLS connection; the whole answer.
async fn https(ca: &Ca, addr: &str, request: &str) -> String {
    let (mut stream, _) = connect(ca, addr).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).to_string()
}

/// One HTTP/1.1 request on an open TLS stream; the status line of the answer.
async fn get_on(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    path: &str,
) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    text.lines().next().unwrap_or_default().to_string()
}

async fn connect(
    ca: &Ca,
    addr: &str,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<u8>,
) {
    let mut config = ca.client_config();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = connector
        .connect(ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()), tcp)
        .await
        .unwrap();
    let served: Vec<u8> = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c: &CertificateDer<'_>| c.to_vec())
        .unwrap();
    (stream, served)
}

#[tokio::test]
async fn a_certificate_swapped_on_disk_reaches_new_connections_and_old_ones_keep_working() {
    let (dir, file, _) = init_project();
    let ca = Ca::new();
    let (cert, key, first) = ca.issue(dir.path(), "leaf", "warden-first");
    let server = Server::start_with(
        &file,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let addr = server
        .url
        .trim_start_matches("https://")
        .trim_end_matches("/mcp")
        .to_string();
    let (mut old, served) = connect(&ca, &addr).await;
    assert_eq!(served, first);
    assert!(get_on(&mut old, "/healthz").await.contains("200"));

    // A bad pair on disk: the old one keeps serving, and the log says why.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let (_, served) = connect(&ca, &addr).await;
    assert_eq!(
        served, first,
        "a bad new pair must not replace the good one"
    );
    assert!(
        server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("kept the previous TLS certificate")),
        "the failed reload is logged"
    );

    // A good new pair, written in place (key first, then the certificate, as tools do).
    let (new_cert, new_key, second) = ca.issue(dir.path(), "next", "warden-second");
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    let mut served = Vec::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        served = connect(&ca, &addr).await.1;
        if served == second {
            break;
        }
    }
    assert_eq!(served, second, "new connections get the new certificate");
    // The connection opened before the swap still works.
    assert!(get_on(&mut old, "/healthz").await.contains("200"));
}

#[tokio::test]
async fn the_redirect_listener_sends_plain_http_to_https() {
    let (dir, file, _) = init_project();
    let ca = Ca::new();
    let (cert, key, _) = ca.issue(dir.path(), "leaf", "warden");
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let redirect = probe.local_addr().unwrap();
    drop(probe);
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        yaml.replace(
            "  # public_url: https://warden.example.com",
            &format!(
                "  public_url: https://warden.example.com\n  redirect_http: {redirect}\n  tls:\n    cert: {}\n    key: {}",
                cert.display(),
                key.display()
            ),
        ),
    )
    .unwrap();
    let _server = Server::start(&file);
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://{redirect}/mcp?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        "https://warden.example.com/mcp?x=1"
    );
    assert!(r.headers().get("strict-transport-security").is_none());
}
