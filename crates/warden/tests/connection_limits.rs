//! An unfriendly network: many connections that send half a request line and then nothing
//! (slowloris), from one address. The cap and the per-address share refuse the excess at
//! once, the header timeout closes the half-open ones, and a client on another address keeps
//! getting its calls answered. The figures are printed (`--nocapture`); the bounds asserted
//! are loose on purpose (speed is measured in benchmarks, not here).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::{Server, init_project};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Half-open connections the attack opens; `WARDEN_SLOWLORIS_CONNECTIONS` raises it for a
/// bigger run (figures in the closing note came from one).
fn attackers() -> usize {
    std::env::var("WARDEN_SLOWLORIS_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Whether the server has closed `s` (EOF or reset) within `wait`.
async fn closed(s: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 512];
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Err(_) => false,
        Ok(Ok(0)) | Ok(Err(_)) => true,
        // Some servers answer 408 before closing; read on to the close.
        Ok(Ok(_)) => matches!(
            tokio::time::timeout(wait, s.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        ),
    }
}

#[tokio::test]
async fn half_open_connections_cannot_starve_a_real_client() {
    let (_dir, file, key) = init_project();
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        yaml.replace(
            "  bind: 127.0.0.1:8080",
            "  bind: 127.0.0.1:8080\n  limits:\n    max_connections: 128\n    max_connections_per_address: 64\n    header_timeout_ms: 1500\n    idle_timeout_ms: 5000\n  metrics:\n    bind: 127.0.0.1:0",
        ),
    )
    .unwrap();
    let server = Server::start(&file);
    let pid = server.pid().unwrap();
    let addr = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_string();
    let rss_before = rss_kib(pid);

    // The attack: half a request line on each connection, then nothing.
    let attack = attackers();
    let started = Instant::now();
    let mut attackers = Vec::new();
    for _ in 0..attack {
        if let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await {
            let _ = s.write_all(b"POST /mcp HTT").await;
            attackers.push(s);
        }
    }
    let connect_time = started.elapsed();
    // Those past the per-address share are closed at once.
    let refused = futures::future::join_all(
        attackers
            .iter_mut()
            .map(|s| closed(s, Duration::from_millis(300))),
    )
    .await
    .into_iter()
    .filter(|c| *c)
    .count();
    let held = attack - refused;

    // Meanwhile a real client on another loopback address calls tools.
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let post = |body: Value, session: Option<String>| {
        let mut r = client
            .post(&server.url)
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
        if let Some(s) = session {
            r = r.header("mcp-session-id", s);
        }
        r.send()
    };
    let init = post(
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"real","version":"1"}}}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(init.status(), 200);
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let _ = init.text().await;
    let mut latencies = Vec::new();
    for i in 0..30 {
        let t = Instant::now();
        let r = post(
            json!({"jsonrpc":"2.0","id":i + 2,"method":"tools/call","params":{"name":"search_vendors","arguments":{"query":"a","limit":5}}}),
            Some(session.clone()),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        assert!(body.contains("rows"), "{body}");
        latencies.push(t.elapsed());
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let max = *latencies.last().unwrap();

    // The half-open connections are closed once the header timeout passes.
    let still_open = futures::future::join_all(
        attackers
            .iter_mut()
            .map(|s| closed(s, Duration::from_millis(3000))),
    )
    .await
    .into_iter()
    .filter(|c| !*c)
    .count();
    let closed_after = started.elapsed();
    let rss_after = rss_kib(pid);

    let metrics_url = server
        .log
        .lock()
        .unwrap()
        .iter()
        .find_map(|l| {
            l.split("serving metrics on ")
                .nth(1)
                .map(|u| u.trim().to_string())
        })
        .expect("the metrics listener's address");
    let scraped = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused_counted: f64 = scraped
        .lines()
        .filter(|l| l.starts_with("warden_connections_refused_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();

    println!(
        "slowloris: {attack} half-open connections from 127.0.0.1; {refused} refused at once, {held} held, {still_open} still open after {:.1} s",
        closed_after.as_secs_f64()
    );
    println!(
        "real client on 127.0.0.2: 30 calls, p50 {:.1} ms, max {:.1} ms; server RSS {} -> {} KiB; refusals counted {refused_counted}",
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        rss_before,
        rss_after
    );
    assert!(held <= 64, "the per-address share holds: {held} held");
    assert!(refused >= attack - 64, "{refused} refused");
    assert_eq!(still_open, 0, "every half-open connection is closed");
    assert!(
        max < Duration::from_secs(5),
        "calls stayed answered: max {max:?}"
    );
    assert!(rss_after < rss_before + 100 * 1024, "RSS stayed bounded");
    // Every refusal is counted. (In a long run, connections opened after the first ones timed
    // out were held, not refused, so only a fast run can be compared one to one.)
    assert!(refused_counted >= 1.0, "{scraped}");
    if connect_time < Duration::from_millis(1500) {
        assert!(refused_counted >= refused as f64, "{scraped}");
    }
}

/// A connection that never sends a byte is closed after the header timeout (before, it was
/// held until the idle timeout, for HTTP/2 even longer).
#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let (_dir, file, _) = init_project();
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        yaml.replace(
            "  bind: 127.0.0.1:8080",
            "  bind: 127.0.0.1:8080\n  limits:\n    header_timeout_ms: 800\n    idle_timeout_ms: 60000",
        ),
    )
    .unwrap();
    let server = Server::start(&file);
    let addr = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_string();
    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(
        closed(&mut silent, Duration::from_secs(5)).await,
        "still open after 5 s"
    );
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(700),
        "closed too early: {after:?}"
    );
    assert!(after < Duration::from_secs(3), "closed late: {after:?}");
}

/// Sends `head` (headers naming a 100-byte body) and then one body byte every 200 ms: the
/// connection is never idle, but the body never arrives whole. Returns the response's first
/// line and how long it took.
async fn trickle(addr: &str, head: &str) -> (String, Duration) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            n = s.read(&mut buf) => {
                let n = n.unwrap();
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                return (text.lines().next().unwrap_or("").to_string(), started.elapsed());
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                assert!(started.elapsed() < Duration::from_secs(10), "no answer after 10 s");
                let _ = s.write_all(b" ").await;
            }
        }
    }
}

#[tokio::test]
async fn a_body_that_trickles_in_is_refused_at_the_body_timeout() {
    let (_dir, file, key) = init_project();
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        yaml.replace(
            "  bind: 127.0.0.1:8080",
            "  bind: 127.0.0.1:8080\n  limits:\n    body_timeout_ms: 1000\n    idle_timeout_ms: 60000",
        ),
    )
    .unwrap();
    let server = Server::start(&file);
    let addr = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_string();
    let mcp = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{{"
    );
    let (status, took) = trickle(&addr, &mcp).await;
    assert!(status.contains(" 408 "), "{status}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // The OAuth endpoints' form bodies too.
    let token = format!(
        "POST /token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type="
    );
    let (status, took) = trickle(&addr, &token).await;
    assert!(status.contains(" 408 "), "{status}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // A whole body is served as before.
    let mut s = Server::attach(server.url.clone())
        .with_bearer(&key)
        .session()
        .await;
    s.call("portfolio_report", json!({})).await;
}
