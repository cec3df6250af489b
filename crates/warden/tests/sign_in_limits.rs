//! Sign-in limits held by the state store, against the real binary: three `warden serve`
//! processes on one PostgreSQL store lock an account exactly as one process does (same
//! attempt, same refusal, on every instance), one process on SQLite does the same, and a
//! store that cannot count failures refuses sign-in instead of allowing unlimited guesses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{PASSWORD, PgDatabase, Server, add_member, audit_log, run};
use sqlx::Connection;

const EMAIL: &str = "ana@acme.example";
const CSRF: &str = "test-csrf-token-for-the-double-submit-check";

/// A `warden init` project whose state store is `postgres` (a URL) or the default SQLite
/// file, with `ana@acme.example` (password [`PASSWORD`]) an admin of `acme`.
fn project(postgres: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p");
    let out = run(&["init", project.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = project.join("warden.yaml");
    if let Some(url) = postgres {
        let yaml = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, format!("{yaml}\nstate:\n  postgres: {url}\n")).unwrap();
    }
    add_member(&file, EMAIL, "admin", "mcp:read", true);
    (dir, file)
}

/// One password sign-in on `server`: its status, body, and how long it took.
async fn sign_in(server: &Server, password: &str) -> (u16, String, Duration) {
    let base = server.url.trim_end_matches("/mcp");
    let started = Instant::now();
    let r = server
        .client()
        .post(format!("{base}/login"))
        .header(reqwest::header::COOKIE, format!("warden_csrf={CSRF}"))
        .form(&[
            ("csrf_token", CSRF),
            ("continue", "/"),
            ("email", EMAIL),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap(), started.elapsed())
}

/// Twenty wrong passwords, round robin over `servers`, then the right one on each: the
/// account locks at the tenth failure whatever instance saw which attempt.
async fn twenty_wrong_passwords_lock_the_account(servers: &[Server], file: &Path) {
    let mut statuses = Vec::new();
    for attempt in 0..20 {
        let server = &servers[attempt % servers.len()];
        let (status, body, took) = sign_in(server, "wrong password!").await;
        statuses.push(status);
        if status == 401 {
            assert!(
                body.contains("The email or password is not right."),
                "{body}"
            );
        } else {
            assert!(body.contains("Too many failed sign-ins"), "{body}");
        }
        // The delay grows with the failures every instance counted: before the tenth
        // attempt, nine (three per instance when there are three) call for the longest.
        if attempt == 9 {
            assert!(
                took >= Duration::from_millis(4_900),
                "the tenth attempt waited only {took:?}"
            );
        }
    }
    let mut expected = vec![401; 10];
    expected.extend([429; 10]);
    assert_eq!(statuses, expected, "over {} instance(s)", servers.len());
    for (i, server) in servers.iter().enumerate() {
        let (status, body, _) = sign_in(server, PASSWORD).await;
        assert_eq!(status, 429, "the right password on instance {i}: {body}");
        assert!(body.contains("Too many failed sign-ins"), "{body}");
    }
    let events = audit_log(file, &[]);
    let failed = events
        .iter()
        .filter(|e| e["event"] == "login_failed")
        .count();
    assert_eq!(failed, 10, "refused attempts are not counted or checked");
    let lockouts: Vec<_> = events.iter().filter(|e| e["event"] == "lockout").collect();
    assert_eq!(
        lockouts.len(),
        2,
        "the account and the address, each locked once: {lockouts:?}"
    );
}

#[tokio::test]
async fn three_instances_on_postgres_lock_an_account_as_one_does() {
    let Some(db) = PgDatabase::create("limits").await else {
        return;
    };
    let (_d, file) = project(Some(&db.url));
    let servers: Vec<Server> = (0..3).map(|_| Server::start(&file)).collect();
    twenty_wrong_passwords_lock_the_account(&servers, &file).await;
    drop(servers);
    drop(db);
}

#[tokio::test]
async fn one_instance_on_sqlite_locks_an_account() {
    let (_d, file) = project(None);
    let server = Server::start(&file);
    twenty_wrong_passwords_lock_the_account(std::slice::from_ref(&server), &file).await;
}

/// The store answers, but cannot count failures (their table is gone): sign-in is refused
/// as unavailable, the right password included, rather than let through unlimited.
async fn uncountable_failures_refuse_sign_in(server: &Server, drop_table: impl AsyncFnOnce()) {
    let (status, _, _) = sign_in(server, "wrong password!").await;
    assert_eq!(status, 401);
    drop_table().await;
    for password in ["wrong password!", PASSWORD] {
        let (status, body, _) = sign_in(server, password).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("temporarily unavailable"), "{body}");
    }
}

#[tokio::test]
async fn sign_in_fails_closed_when_failures_cannot_be_counted() {
    let (_d, file) = project(None);
    let server = Server::start(&file);
    let db = file.parent().unwrap().join(".warden/state.db");
    uncountable_failures_refuse_sign_in(&server, async || {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::raw_sql("DROP TABLE auth_failures")
            .execute(&mut conn)
            .await
            .unwrap();
    })
    .await;

    let Some(pg) = PgDatabase::create("limits_closed").await else {
        return;
    };
    let (_d, file) = project(Some(&pg.url));
    let server = Server::start(&file);
    let url = pg.url.clone();
    uncountable_failures_refuse_sign_in(&server, async || {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("DROP TABLE auth_failures")
            .execute(&mut conn)
            .await
            .unwrap();
    })
    .await;
    drop(server);
    drop(pg);
}

/// Thirty wrong passwords sent at once, spread over `servers`: one attempt per account is
/// checked at a time, so no more failures are counted (and checked) than the lockout allows,
/// the rest are turned away (429), and the right password is then refused.
async fn a_parallel_burst_of_guesses_is_checked_one_at_a_time(servers: &[Server]) {
    let attempts = (0..30).map(|i| sign_in(&servers[i % servers.len()], "wrong password!"));
    let results = futures::future::join_all(attempts).await;
    let checked = results.iter().filter(|(s, _, _)| *s == 401).count();
    let turned_away = results.iter().filter(|(s, _, _)| *s == 429).count();
    assert_eq!(
        checked + turned_away,
        30,
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(
        (1..=10).contains(&checked),
        "{checked} guesses were checked"
    );
    // Keep guessing, one at a time, until the account locks: never more than 10 checked.
    let mut more = 0;
    loop {
        let (status, _, _) = sign_in(&servers[0], "wrong password!").await;
        if status == 429 {
            break;
        }
        assert_eq!(status, 401);
        more += 1;
        assert!(checked + more <= 10, "more than 10 guesses were checked");
    }
    let (status, _, _) = sign_in(&servers[0], PASSWORD).await;
    assert_eq!(status, 429, "the locked account let the right password in");
}

#[tokio::test]
async fn a_parallel_burst_of_guesses_cannot_outrun_the_lockout() {
    let (_d, file) = project(None);
    let server = Server::start(&file);
    a_parallel_burst_of_guesses_is_checked_one_at_a_time(std::slice::from_ref(&server)).await;
    if let Some(db) = PgDatabase::create("limits_burst").await {
        let (_d, file) = project(Some(&db.url));
        let servers: Vec<Server> = (0..3).map(|_| Server::start(&file)).collect();
        a_parallel_burst_of_guesses_is_checked_one_at_a_time(&servers).await;
        drop(servers);
        drop(db);
    }
}
