//! Measures authentication costs in-process, against a real state store:
//! - bearer validation per request (access token, API key), in microseconds; on PostgreSQL
//!   without and with the bearer cache (LISTEN/NOTIFY);
//! - the time from a revocation committed by another connection (another instance, the CLI)
//!   to the first refused request at this one;
//! - durable refresh-token rotations per second, sequential and concurrent.
//!
//! Prints a table with the command and machine.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use clap::Parser;
use warden_auth::AuthServer;
use warden_auth::token::{self, TokenKind};
use warden_store::{Role, Scopes, Store};

#[derive(Debug, Parser)]
#[command(
    name = "warden-auth-bench",
    about = "Measure bearer validation and refresh-token rotation against a real state store",
    after_help = "Examples:\n  warden-auth-bench                                  SQLite state in a temporary directory\n  warden-auth-bench --postgres postgres://postgres@127.0.0.1/warden_bench\n  warden-auth-bench --validations 20000 --rotations 2000 --concurrency 16"
)]
struct Args {
    /// Use this PostgreSQL database for state (its tables are created if missing).
    #[arg(long)]
    postgres: Option<String>,
    /// Bearer validations to time, per kind.
    #[arg(long, default_value_t = 20_000)]
    validations: u32,
    /// Refresh rotations to time (sequential run; the concurrent run does the same total).
    #[arg(long, default_value_t = 1_000)]
    rotations: u32,
    /// Revocations timed from commit (through another connection) to first refusal.
    #[arg(long, default_value_t = 50)]
    revocations: u32,
    /// Concurrent refresh chains in the concurrent run.
    #[arg(long, default_value_t = 16)]
    concurrency: u32,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or("?".to_string(), |kb| {
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        });
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    format!("{cores} cores, {mem}, {cpu}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let (store, backend) = match &args.postgres {
        Some(url) => (
            Store::connect(url)
                .await
                .context("cannot connect to --postgres")?,
            "postgres",
        ),
        None => (
            Store::open_sqlite(dir.path().join("state.db")).await?,
            "sqlite (WAL, synchronous=FULL)",
        ),
    };
    store.migrate().await?;
    let suffix = token::random_id("")?.to_lowercase().replace(['-', '_'], "");
    let org = store
        .create_org(&format!("bench-{}", &suffix[..8]), "Bench")
        .await?;
    let user = store
        .create_user(&format!("bench-{}@bench.example", &suffix[..8]), "Bench")
        .await?;
    store.set_membership(org.id, user.id, Role::Member).await?;
    let issuer = "http://127.0.0.1:1";
    // Rotations are audited as in production: each waits for its record to be durable.
    let audit = warden_store::audit::AuditLog::start(
        store.clone(),
        None,
        warden_store::audit::Options::default(),
    );
    let auth = Arc::new(AuthServer::new(
        store.clone(),
        Arc::new(audit),
        issuer,
        Duration::from_secs(900),
        Duration::from_secs(86_400),
    )?);
    let client = store
        .create_client("bench", &["http://127.0.0.1:9/cb".to_string()], Utc::now())
        .await?;
    let now = Utc::now();
    let later = now + chrono::Duration::hours(1);

    // Bearer validation.
    let grant = store
        .create_grant(
            org.id,
            user.id,
            &client.id,
            Scopes::READ,
            Role::Member,
            &format!("{issuer}/mcp"),
            now,
        )
        .await?;
    let access = token::generate(TokenKind::AccessToken)?;
    store
        .insert_access_token(access.hash().as_str(), &grant.id, now, later)
        .await?;
    let key = token::generate(TokenKind::ApiKey)?;
    store
        .create_api_key(
            key.hash().as_str(),
            &key.display_prefix(),
            org.id,
            user.id,
            "bench",
            Scopes::READ,
            now,
        )
        .await?;
    let mut rows = Vec::new();
    let postgres = args.postgres.is_some();
    let passes: &[&str] = if postgres { &["", " (cached)"] } else { &[""] };
    for pass in passes {
        if !pass.is_empty() {
            store.listen_for_auth_changes();
            let started = Instant::now();
            while !store.bearer_cache_live() {
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(10),
                    "the bearer cache never went live"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        for (name, bearer) in [
            ("access token", access.expose().to_string()),
            ("API key", key.expose().to_string()),
        ] {
            let name = format!("{name}{pass}");
            for _ in 0..200 {
                auth.authenticate(&bearer).await?;
            }
            let mut samples = Vec::with_capacity(args.validations as usize);
            let started = Instant::now();
            for _ in 0..args.validations {
                let t = Instant::now();
                auth.authenticate(&bearer).await?;
                samples.push(t.elapsed());
            }
            let total = started.elapsed();
            samples.sort();
            rows.push(format!(
                "| validate {name} | {} | {:.0}/s | {:.1} | {:.1} | {:.1} |",
                args.validations,
                f64::from(args.validations) / total.as_secs_f64(),
                total.as_secs_f64() * 1e6 / f64::from(args.validations),
                percentile(&samples, 0.5),
                percentile(&samples, 0.99)
            ));
        }
    }

    // A revocation made through another connection, to the first refused request here.
    let other = match &args.postgres {
        Some(url) => Store::connect(url).await?,
        None => Store::open_sqlite(dir.path().join("state.db")).await?,
    };
    let mut waits = Vec::new();
    for n in 0..args.revocations {
        let k = token::generate(TokenKind::ApiKey)?;
        let created = store
            .create_api_key(
                k.hash().as_str(),
                &k.display_prefix(),
                org.id,
                user.id,
                &format!("revoked-{n}"),
                Scopes::READ,
                Utc::now(),
            )
            .await?;
        for _ in 0..3 {
            auth.authenticate(k.expose()).await?;
        }
        other
            .revoke_api_key(org.id, &created.id, Utc::now())
            .await?;
        let t = Instant::now();
        loop {
            if auth.authenticate(k.expose()).await.is_err() {
                break;
            }
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(5),
                "a revoked key was still accepted 5 s later"
            );
        }
        waits.push(t.elapsed());
    }
    waits.sort();
    rows.push(format!(
        "| revocation elsewhere → first refusal here | {} | | | {:.1} | {:.1} (max {:.1}) |",
        args.revocations,
        percentile(&waits, 0.5),
        percentile(&waits, 0.99),
        waits.last().map_or(0.0, |d| d.as_secs_f64() * 1e6)
    ));
    other.close().await;

    // The same access-token validation done as three separate lookups (token and grant,
    // user, organisation), as before it became one query: the ratio is measured in this run.
    let hash = access.hash();
    let mut samples = Vec::with_capacity(args.validations as usize);
    let started = Instant::now();
    for _ in 0..args.validations {
        let t = Instant::now();
        let grant = store
            .access_token(hash.as_str(), Utc::now())
            .await?
            .context("token vanished")?;
        store.user_by_id(grant.user_id).await?;
        store.org_by_id(grant.org_id).await?;
        samples.push(t.elapsed());
    }
    let total = started.elapsed();
    samples.sort();
    rows.push(format!(
        "| access token as 3 lookups (previous design) | {} | {:.0}/s | {:.1} | {:.1} | {:.1} |",
        args.validations,
        f64::from(args.validations) / total.as_secs_f64(),
        total.as_secs_f64() * 1e6 / f64::from(args.validations),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99)
    ));

    // Refresh rotation: one chain, each rotation a durable transaction.
    let client_id = client.id.to_string();
    let mut refresh = new_chain(&store, &org, &user, &client, issuer).await?;
    let mut samples = Vec::with_capacity(args.rotations as usize);
    let started = Instant::now();
    for _ in 0..args.rotations {
        let t = Instant::now();
        let r = auth
            .refresh(Some(&refresh), Some(&client_id), None, "bench")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        refresh = r.refresh_token.expose().to_string();
        samples.push(t.elapsed());
    }
    let total = started.elapsed();
    samples.sort();
    rows.push(format!(
        "| refresh rotation, 1 chain | {} | {:.0}/s | {:.1} | {:.1} | {:.1} |",
        args.rotations,
        f64::from(args.rotations) / total.as_secs_f64(),
        total.as_secs_f64() * 1e6 / f64::from(args.rotations),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99)
    ));

    // Concurrent chains (different grants), the same total.
    let per = (args.rotations / args.concurrency).max(1);
    let mut chains = Vec::new();
    for _ in 0..args.concurrency {
        chains.push(new_chain(&store, &org, &user, &client, issuer).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut refresh in chains {
        let auth = auth.clone();
        let client_id = client_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per as usize);
            for _ in 0..per {
                let t = Instant::now();
                let r = auth
                    .refresh(Some(&refresh), Some(&client_id), None, "bench")
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                refresh = r.refresh_token.expose().to_string();
                samples.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await??);
    }
    let total = started.elapsed();
    samples.sort();
    let done = per * args.concurrency;
    rows.push(format!(
        "| refresh rotation, {} chains | {done} | {:.0}/s | {:.1} | {:.1} | {:.1} |",
        args.concurrency,
        f64::from(done) / total.as_secs_f64(),
        total.as_secs_f64() * 1e6 / f64::from(done),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99)
    ));

    let argv: Vec<String> = std::env::args().collect();
    println!("warden-auth-bench: authentication costs, in-process, state on {backend}");
    println!("command   {}", argv.join(" "));
    println!("machine   {}", machine());
    println!("| operation | count | throughput | mean µs | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    store.close().await;
    Ok(())
}

/// A grant with one refresh token, as after a code exchange.
async fn new_chain(
    store: &Store,
    org: &warden_store::Organization,
    user: &warden_store::User,
    client: &warden_store::OAuthClient,
    issuer: &str,
) -> anyhow::Result<String> {
    let now = Utc::now();
    let grant = store
        .create_grant(
            org.id,
            user.id,
            &client.id,
            Scopes::READ,
            Role::Member,
            &format!("{issuer}/mcp"),
            now,
        )
        .await?;
    let refresh = token::generate(TokenKind::RefreshToken)?;
    store
        .insert_refresh_token(
            refresh.hash().as_str(),
            &grant.id,
            now,
            now + chrono::Duration::days(1),
        )
        .await?;
    Ok(refresh.expose().to_string())
}
