//! Times the console's audit page query (`Store::audit_page`, the statement the pages run)
//! on a trail of a million records, on SQLite and PostgreSQL: a first page and a deep keyset
//! page, filtered by user + tool + time range, and a few other shapes; p50/p99 over many
//! runs, and the plan each backend makes. Prints a table.
//!
//! The records are inserted by one SQL statement each (a recursive CTE on SQLite,
//! `generate_series` on PostgreSQL), not through the audit writer: they are NOT hash-chained
//! (`prev_hash`/`hash` are placeholders), which a query does not read. Verification is not
//! measured here.

#![forbid(unsafe_code)]

#[allow(dead_code)]
#[path = "../machine.rs"]
mod machine;

use std::time::Instant;

use clap::Parser;
use sqlx::{AssertSqlSafe, Connection};
use warden_store::Store;
use warden_store::audit::Filter;

#[derive(Debug, Parser)]
#[command(
    name = "warden-trail-bench",
    about = "Time the console's audit page query on a trail of a million records",
    after_help = "Example:\n  warden-trail-bench --postgres postgres://postgres@127.0.0.1:5432/postgres"
)]
struct Args {
    /// Records in the organisation's chain.
    #[arg(long, default_value_t = 1_000_000)]
    records: i64,
    /// Timed runs of each query.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Also run on PostgreSQL: an admin URL; a database is created and dropped.
    #[arg(long)]
    postgres: Option<String>,
}

/// The first record's time, in Unix seconds; record n is n seconds later.
const BASE: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const USERS: i64 = 20;
const TOOLS: [&str; 10] = [
    "search_vendors",
    "vendor_detail",
    "list_findings",
    "portfolio_report",
    "upcoming_obligations",
    "update_finding_status",
    "a",
    "b",
    "c",
    "d",
];

fn ts(n: i64) -> String {
    chrono::DateTime::from_timestamp(BASE + n, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// Rows for chain `acme` (seq 1..=n) and, to share the table, `globex` (n/10).
fn sqlite_fill(n: i64) -> String {
    let tools = TOOLS.map(|t| format!("\"{t}\"")).join(",");
    format!(
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}), \
         t(i, name) AS (SELECT key, value FROM json_each('[{tools}]')) \
         INSERT INTO audit_records (chain, seq, ts, request_id, event, org, user_id, user_email, \
           auth_method, credential, source, remote_addr, user_agent, action, params, decision, stage, \
           rule, reason, outcome, duration_us, affected, detail, trace_id, prev_hash, hash) \
         SELECT c.chain, s.n, strftime('%Y-%m-%dT%H:%M:%fZ', {BASE} + s.n, 'unixepoch'), 'r' || s.n, 'tool_call', c.chain, \
           'u' || (s.n % {USERS}), 'u' || (s.n % {USERS}) || '@acme.example', 'api_key', 'key-' || (s.n % 7), 'mcp_http', \
           '127.0.0.1', 'bench', t.name, '{{\"query\":\"x\"}}', CASE WHEN s.n % 13 = 0 THEN 'denied' ELSE 'allowed' END, \
           NULL, NULL, NULL, CASE WHEN s.n % 13 = 0 THEN 'denied' ELSE 'success' END, 1000, NULL, NULL, NULL, 'unchained', 'unchained' \
         FROM s JOIN t ON t.i = (s.n / {USERS}) % 10 \
         JOIN (SELECT 'acme' AS chain UNION ALL SELECT 'globex') c \
         WHERE c.chain = 'acme' OR s.n <= {n} / 10"
    )
}

fn postgres_fill(n: i64) -> String {
    let tools = TOOLS.map(|t| format!("'{t}'")).join(",");
    format!(
        "INSERT INTO audit_records (chain, seq, ts, request_id, event, org, user_id, user_email, \
           auth_method, credential, source, remote_addr, user_agent, action, params, decision, stage, \
           rule, reason, outcome, duration_us, affected, detail, trace_id, prev_hash, hash) \
         SELECT c.chain, s.n, to_char(to_timestamp({BASE} + s.n) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
           'r' || s.n, 'tool_call', c.chain, 'u' || (s.n % {USERS}), 'u' || (s.n % {USERS}) || '@acme.example', 'api_key', \
           'key-' || (s.n % 7), 'mcp_http', '127.0.0.1', 'bench', (ARRAY[{tools}])[((s.n / {USERS}) % 10) + 1], \
           '{{\"query\":\"x\"}}', CASE WHEN s.n % 13 = 0 THEN 'denied' ELSE 'allowed' END, NULL, NULL, NULL, \
           CASE WHEN s.n % 13 = 0 THEN 'denied' ELSE 'success' END, 1000, NULL, NULL, NULL, 'unchained', 'unchained' \
         FROM generate_series(1, {n}) AS s(n) CROSS JOIN (VALUES ('acme'), ('globex')) AS c(chain) \
         WHERE c.chain = 'acme' OR s.n <= {n} / 10"
    )
}

struct Case {
    name: &'static str,
    filter: Filter,
}

fn cases(n: i64) -> Vec<Case> {
    let page = |f: Filter| Filter { limit: 51, ..f };
    let user_tool_time = Filter {
        user_id: Some("u7".into()),
        tool: Some("search_vendors".into()),
        since: Some(ts(n / 10)),
        until: Some(ts(n - n / 10)),
        ..Filter::default()
    };
    vec![
        Case {
            name: "Admin: user + tool + time range, first page",
            filter: page(user_tool_time.clone()),
        },
        Case {
            name: "Admin: user + tool + time range, deep page (before = n/5)",
            filter: page(Filter {
                before_seq: Some(n / 5),
                ..user_tool_time
            }),
        },
        Case {
            name: "Member activity (user), first page",
            filter: page(Filter {
                user_id: Some("u7".into()),
                ..Filter::default()
            }),
        },
        Case {
            name: "Member activity (user), deep page (before = 1000)",
            filter: page(Filter {
                user_id: Some("u7".into()),
                before_seq: Some(1000),
                ..Filter::default()
            }),
        },
        Case {
            name: "Admin: tool, deep page (before = n/2)",
            filter: page(Filter {
                tool: Some("list_findings".into()),
                before_seq: Some(n / 2),
                ..Filter::default()
            }),
        },
        Case {
            name: "Admin: whole trail, deep page (before = 100)",
            filter: page(Filter {
                before_seq: Some(100),
                ..Filter::default()
            }),
        },
    ]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn measure(backend: &str, store: &Store, n: i64, runs: usize) -> anyhow::Result<()> {
    for c in cases(n) {
        let rows = store.audit_page("acme", &c.filter).await?;
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let r = store.audit_page("acme", &c.filter).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            std::hint::black_box(r);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {backend} | {} | {} | {:.2} | {:.2} |",
            c.name,
            rows.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
        for line in store.audit_page_plan("acme", &c.filter).await? {
            println!("|   | plan: `{}` | | | |", line.trim());
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let n = args.records;
    let argv: Vec<String> = std::env::args().collect();
    println!("command: {}", argv.join(" "));
    println!("machine: {}", machine::Machine::detect().line());
    println!(
        "trail: {n} records in chain acme (and {} in globex), inserted by one SQL statement: NOT hash-chained (placeholder hashes); {USERS} users, {} tools, one second apart; {} timed runs per query, warm cache",
        n / 10,
        TOOLS.len(),
        args.runs
    );
    println!();
    println!("| backend | query | rows | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("trail.db");
    let store = Store::open_sqlite(&path).await?;
    store.migrate().await?;
    let t = Instant::now();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
    sqlx::raw_sql(AssertSqlSafe(sqlite_fill(n)))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    eprintln!("sqlite: filled in {:.1} s", t.elapsed().as_secs_f64());
    measure("SQLite", &store, n, args.runs).await?;
    store.close().await;

    if let Some(admin) = &args.postgres {
        let name = format!("warden_trail_bench_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(admin).await?;
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        let mut url = url::Url::parse(admin)?;
        url.set_path(&name);
        let result = async {
            let store = Store::connect(url.as_str()).await?;
            store.migrate().await?;
            let t = Instant::now();
            let mut db = sqlx::PgConnection::connect(url.as_str()).await?;
            sqlx::raw_sql(AssertSqlSafe(postgres_fill(n)))
                .execute(&mut db)
                .await?;
            // What autovacuum does soon after a bulk load; the plan depends on it.
            sqlx::raw_sql("VACUUM ANALYZE audit_records")
                .execute(&mut db)
                .await?;
            db.close().await?;
            eprintln!("postgres: filled in {:.1} s", t.elapsed().as_secs_f64());
            measure("PostgreSQL", &store, n, args.runs).await?;
            store.close().await;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await?;
        result?;
    }
    Ok(())
}
