//! `warden init`: writes a working example project, a vendor-risk register with a few hundred
//! rows of realistic, deterministic data.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection};

const PROJECT: &str = include_str!("../assets/vendor-risk/warden.yaml");
const SCHEMA: &str = include_str!("../assets/vendor-risk/schema.sql");
const POLICY_TESTS: &str = include_str!("../assets/vendor-risk/policies.test.yaml");

pub const VENDOR_COUNT: usize = 80;

/// Who `warden init` should make the first admin, and of which organisation.
pub struct FirstRun {
    pub org: Option<String>,
    pub admin: Option<String>,
    /// Put the example data in this PostgreSQL database instead of a SQLite file.
    pub postgres: Option<String>,
}

/// `warden init`: the project, then the first organisation and admin: from `--org` and
/// `--admin`, by asking at a terminal, or else as the exact commands to run.
pub async fn run(dir: &Path, first: FirstRun) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    // Check the flags before anything is written.
    if let Some(slug) = &first.org {
        warden_store::validate_slug(slug).map_err(|e| anyhow::anyhow!("--org: {e}"))?;
    }
    if let Some(email) = &first.admin {
        warden_store::normalize_email(email).map_err(|e| anyhow::anyhow!("--admin: {e}"))?;
    }
    let asked = match (first.org, first.admin) {
        (Some(org), Some(admin)) => Some((org, admin)),
        (None, None) if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() => None,
        (None, None) => {
            let project = init_on(dir, first.postgres.as_deref()).await?;
            created(&project, dir);
            println!(
                "\nNobody can connect yet: Warden serves the members of an organisation. Next:"
            );
            for step in crate::admin::first_steps(&project, "acme", "admin@example.com") {
                println!("  {step}");
            }
            println!(
                "`user reset-password` and `key add` print a password and a key once; keep them."
            );
            return Ok(());
        }
        _ => anyhow::bail!(
            "give both --org SLUG and --admin EMAIL, or neither (nothing was created)"
        ),
    };
    let (org, admin) = match asked {
        Some(pair) => pair,
        None => {
            let org = ask(
                "Organisation slug (lowercase letters, digits, '-')",
                Some("acme"),
                |s| warden_store::validate_slug(s).map_err(|e| e.to_string()),
            )?;
            let admin = ask("Your email (the first admin)", None, |s| {
                warden_store::normalize_email(s)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })?;
            (org, admin)
        }
    };
    let project = init_on(dir, first.postgres.as_deref()).await?;
    created(&project, dir);
    let store = crate::admin::open_state(&project).await?;
    let audit = warden_store::audit::AuditLog::start(
        store.clone(),
        None,
        warden_store::audit::Options::default(),
    );
    let seeded = crate::admin::seed_first_admin(&store, &audit, &org, &org, &admin).await;
    drop(audit);
    store.close().await;
    let seeded = seeded?;
    println!("\nCreated organisation {org} with {admin} as its admin (shown once; keep them):");
    println!(
        "  password  {}      for the sign-in page of OAuth clients",
        seeded.password
    );
    println!(
        "  API key   {}      read and write; send it as `Authorization: Bearer ...`",
        seeded.key
    );
    println!("Next:\n  warden serve -p {}", project.display());
    Ok(())
}

fn created(project: &Path, dir: &Path) {
    println!("Created {}", project.display());
    if dir.join("data/vendors.db").exists() {
        println!("  data: {}", dir.join("data/vendors.db").display());
    } else {
        println!("  data: the PostgreSQL database named in the project file's data.postgres");
    }
}

/// Asks at the terminal until `check` accepts the answer (or the default, on Enter).
fn ask(
    question: &str,
    default: Option<&str>,
    check: impl Fn(&str) -> Result<(), String>,
) -> anyhow::Result<String> {
    use std::io::Write;
    loop {
        match default {
            Some(d) => print!("{question} [{d}]: "),
            None => print!("{question}: "),
        }
        std::io::stdout().flush()?;
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line)? == 0 {
            anyhow::bail!("no answer; nothing was created");
        }
        let answer = match line.trim() {
            "" => match default {
                Some(d) => d.to_string(),
                None => continue,
            },
            a => a.to_string(),
        };
        match check(&answer) {
            Ok(()) => return Ok(answer),
            Err(e) => println!("  {e}"),
        }
    }
}

/// Inserts the example rows in the open transaction `$tx` (SQLite or PostgreSQL: the
/// statements are the same).
macro_rules! insert_rows {
    ($tx:ident) => {{
        let mut rng = StdRng::seed_from_u64(0x5741_5244_454e);
        let data = generate(&mut rng);
        for v in &data.vendors {
            sqlx::query("INSERT INTO vendors VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)")
                .bind(&v.id)
                .bind(&v.name)
                .bind(v.category)
                .bind(v.tier)
                .bind(v.status)
                .bind(v.country)
                .bind(&v.owner_email)
                .bind(v.data_access)
                .bind(v.annual_spend)
                .bind(&v.contract_end)
                .bind(v.risk_score)
                .execute(&mut *$tx)
                .await?;
        }
        for a in &data.assessments {
            sqlx::query("INSERT INTO assessments VALUES ($1,$2,$3,$4,$5,$6,$7)")
                .bind(a.id)
                .bind(&a.vendor_id)
                .bind(a.kind)
                .bind(&a.assessed_on)
                .bind(a.assessor)
                .bind(a.rating)
                .bind(a.score)
                .execute(&mut *$tx)
                .await?;
        }
        for f in &data.findings {
            sqlx::query("INSERT INTO findings VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)")
                .bind(f.id)
                .bind(f.assessment_id)
                .bind(&f.vendor_id)
                .bind(f.title)
                .bind(f.severity)
                .bind(f.status)
                .bind(&f.opened_on)
                .bind(&f.due_on)
                .bind(&f.closed_on)
                .bind(None::<String>)
                .execute(&mut *$tx)
                .await?;
        }
        for o in &data.obligations {
            sqlx::query("INSERT INTO obligations VALUES ($1,$2,$3,$4,$5,$6)")
                .bind(o.id)
                .bind(&o.vendor_id)
                .bind(o.framework)
                .bind(o.requirement)
                .bind(&o.due_on)
                .bind(o.status)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

/// Creates `dir/warden.yaml` and `dir/data/vendors.db`. Refuses to touch a directory that
/// already holds a project, so nothing is overwritten.
pub async fn init(dir: &Path) -> anyhow::Result<PathBuf> {
    init_on(dir, None).await
}

/// [`init`], with the example data in the PostgreSQL database `postgres` names when given
/// (its tables must not exist yet; the schema and rows go in one transaction).
pub async fn init_on(dir: &Path, postgres: Option<&str>) -> anyhow::Result<PathBuf> {
    let Some(url) = postgres else {
        return init_sqlite(dir).await;
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bail!("--postgres must be a postgres:// or postgresql:// URL (nothing was created)");
    }
    let project = dir.join("warden.yaml");
    let tests = dir.join("policies.test.yaml");
    none_exists(&[&project, &tests])?;
    write_postgres(url).await.context(
        "cannot create the example tables in the PostgreSQL database (nothing was created)",
    )?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(&project, postgres_project(url))
        .with_context(|| format!("cannot write {}", project.display()))?;
    std::fs::write(&tests, POLICY_TESTS)
        .with_context(|| format!("cannot write {}", tests.display()))?;
    Ok(project)
}

/// The example project for PostgreSQL: the data source, and the few statements SQLite
/// writes in its own dialect (dates, JSON) in PostgreSQL's.
fn postgres_project(url: &str) -> String {
    PROJECT
        .replace("  sqlite: data/vendors.db", &format!("  postgres: {url}"))
        .replace(
            "date('now', '+' || :within_days || ' days')",
            "to_char(CURRENT_DATE + CAST(:within_days AS integer), 'YYYY-MM-DD')",
        )
        .replace("date('now')", "to_char(CURRENT_DATE, 'YYYY-MM-DD')")
        .replace("SELECT json_object(", "SELECT CAST(json_build_object(")
        .replace(
            ")\n      FROM vendors WHERE id = :vendor_id",
            ") AS TEXT)\n      FROM vendors WHERE id = :vendor_id",
        )
}

async fn write_postgres(url: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let (exists,): (Option<String>,) =
        sqlx::query_as("SELECT CAST(to_regclass('vendors') AS TEXT)")
            .fetch_one(&mut conn)
            .await?;
    if exists.is_some() {
        bail!("the database already has a table named vendors; give an empty database");
    }
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
    insert_rows!(tx);
    tx.commit().await?;
    conn.close().await?;
    Ok(())
}

/// Refuses to touch a directory that already holds a project, so nothing is overwritten.
fn none_exists(paths: &[&PathBuf]) -> anyhow::Result<()> {
    if let Some(existing) = paths.iter().find(|p| p.exists()) {
        bail!(
            "{} already exists; choose an empty directory (nothing was changed)",
            existing.display()
        );
    }
    Ok(())
}

async fn init_sqlite(dir: &Path) -> anyhow::Result<PathBuf> {
    let project = dir.join("warden.yaml");
    let db = dir.join("data").join("vendors.db");
    let tests = dir.join("policies.test.yaml");
    none_exists(&[&project, &db, &tests])?;
    std::fs::create_dir_all(dir.join("data"))
        .with_context(|| format!("cannot create {}", dir.join("data").display()))?;
    // Build the database under a temporary name and rename it into place, so an interrupted
    // init never leaves a half-filled database behind.
    let partial = dir.join("data").join(".vendors.db.partial");
    let _ = std::fs::remove_file(&partial);
    write_database(&partial)
        .await
        .context("cannot create the example database")?;
    std::fs::rename(&partial, &db)
        .with_context(|| format!("cannot move the database to {}", db.display()))?;
    std::fs::write(&project, PROJECT)
        .with_context(|| format!("cannot write {}", project.display()))?;
    std::fs::write(&tests, POLICY_TESTS)
        .with_context(|| format!("cannot write {}", tests.display()))?;
    Ok(project)
}

async fn write_database(path: &Path) -> anyhow::Result<()> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Delete)
        .connect()
        .await?;
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
    insert_rows!(tx);
    tx.commit().await?;
    conn.close().await?;
    Ok(())
}

struct Vendor {
    id: String,
    name: String,
    category: &'static str,
    tier: &'static str,
    status: &'static str,
    country: &'static str,
    owner_email: String,
    data_access: &'static str,
    annual_spend: i64,
    contract_end: String,
    risk_score: i64,
}

struct Assessment {
    id: i64,
    vendor_id: String,
    kind: &'static str,
    assessed_on: String,
    assessor: &'static str,
    rating: &'static str,
    score: i64,
}

struct Finding {
    id: i64,
    assessment_id: i64,
    vendor_id: String,
    title: &'static str,
    severity: &'static str,
    status: &'static str,
    opened_on: String,
    due_on: String,
    closed_on: Option<String>,
}

struct Obligation {
    id: i64,
    vendor_id: String,
    framework: &'static str,
    requirement: &'static str,
    due_on: String,
    status: &'static str,
}

struct Data {
    vendors: Vec<Vendor>,
    assessments: Vec<Assessment>,
    findings: Vec<Finding>,
    obligations: Vec<Obligation>,
}

const PREFIXES: &[&str] = &[
    "Acme",
    "Northwind",
    "Bluepeak",
    "Corvid",
    "Helix",
    "Lumen",
    "Meridian",
    "Nimbus",
    "Orbital",
    "Pinecrest",
    "Quanta",
    "Redwood",
    "Sable",
    "Tessera",
    "Umbra",
    "Vantage",
    "Wavelength",
    "Xylo",
    "Yarrow",
    "Zephyr",
];
const SUFFIXES: &[&str] = &[
    "Cloud",
    "Analytics",
    "Payments",
    "Logistics",
    "Security",
    "Systems",
    "Health",
    "Labs",
];
const CATEGORIES: &[&str] = &[
    "cloud hosting",
    "payroll",
    "payment processing",
    "customer support software",
    "data analytics",
    "logistics",
    "identity provider",
    "marketing automation",
    "legal services",
    "facilities",
    "HR software",
    "telecoms",
];
const COUNTRIES: &[&str] = &["DE", "FR", "NL", "IE", "US", "GB", "SE", "ES", "IN", "CA"];
const OWNERS: &[&str] = &[
    "amara.okafor",
    "jonas.weber",
    "li.na",
    "sofia.rossi",
    "tom.becker",
    "priya.nair",
];
const ASSESSORS: &[&str] = &[
    "Internal audit",
    "Security team",
    "Privacy office",
    "External auditor",
];
const KINDS: &[&str] = &[
    "security questionnaire",
    "SOC 2 report review",
    "penetration test review",
    "onsite audit",
];
const FINDINGS: &[&str] = &[
    "MFA not enforced for administrator accounts",
    "Encryption at rest not documented",
    "No tested disaster-recovery plan",
    "Sub-processor list out of date",
    "Access reviews not performed quarterly",
    "Incident notification SLA exceeds 72 hours",
    "Penetration test older than 12 months",
    "Data retention period undefined",
    "Shared service accounts in production",
    "Vulnerability patching exceeds 30 days for critical issues",
    "No data processing agreement on file",
    "Backups not stored off-site",
];
const FRAMEWORKS: &[(&str, &str)] = &[
    ("GDPR", "Data processing agreement signed"),
    ("GDPR", "Transfer impact assessment for non-EU processing"),
    ("SOC 2", "Current SOC 2 Type II report received"),
    ("ISO 27001", "Certificate valid and in scope"),
    ("DORA", "ICT third-party risk register entry complete"),
    ("DORA", "Exit strategy documented for critical function"),
    ("PCI DSS", "Attestation of compliance received"),
];

fn date(rng: &mut StdRng, from_days: i64, to_days: i64) -> String {
    // Days relative to 2026-01-01, formatted without a date library.
    let offset = rng.random_range(from_days..=to_days);
    day_to_string(20_454 + offset)
}

/// Days since 1970-01-01 to YYYY-MM-DD (proleptic Gregorian).
fn day_to_string(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    // The lists are non-empty constants.
    *items.choose(rng).unwrap_or(&items[0])
}

fn generate(rng: &mut StdRng) -> Data {
    let mut vendors = Vec::with_capacity(VENDOR_COUNT);
    let mut names = std::collections::HashSet::new();
    while vendors.len() < VENDOR_COUNT {
        let name = format!("{} {}", pick(rng, PREFIXES), pick(rng, SUFFIXES));
        if !names.insert(name.clone()) {
            continue;
        }
        let n = vendors.len() + 1;
        let tier = pick(
            rng,
            &[
                "critical", "high", "high", "medium", "medium", "medium", "low", "low",
            ],
        );
        let base = match tier {
            "critical" => 70,
            "high" => 50,
            "medium" => 30,
            _ => 10,
        };
        vendors.push(Vendor {
            id: format!("V-{n:03}"),
            name,
            category: pick(rng, CATEGORIES),
            tier,
            status: pick(
                rng,
                &[
                    "active",
                    "active",
                    "active",
                    "active",
                    "onboarding",
                    "offboarded",
                ],
            ),
            country: pick(rng, COUNTRIES),
            owner_email: format!("{}@example.com", pick(rng, OWNERS)),
            data_access: pick(rng, &["none", "internal", "confidential", "restricted"]),
            annual_spend: rng.random_range(5..2_000) * 1_000,
            contract_end: date(rng, 30, 1_100),
            risk_score: base + rng.random_range(0..30),
        });
    }
    let mut assessments = Vec::new();
    let mut findings = Vec::new();
    for v in &vendors {
        for _ in 0..rng.random_range(1..=4) {
            let id = assessments.len() as i64 + 1;
            let score = rng.random_range(40..100);
            let rating = if score >= 80 {
                "pass"
            } else if score >= 60 {
                "conditional"
            } else {
                "fail"
            };
            let assessed_on = date(rng, -700, -10);
            let finding_count = match rating {
                "pass" => rng.random_range(0..=1),
                "conditional" => rng.random_range(1..=2),
                _ => rng.random_range(2..=3),
            };
            for _ in 0..finding_count {
                let status = pick(
                    rng,
                    &["open", "open", "in_progress", "remediated", "risk_accepted"],
                );
                let closed_on =
                    matches!(status, "remediated" | "risk_accepted").then(|| date(rng, -9, 0));
                findings.push(Finding {
                    id: findings.len() as i64 + 1,
                    assessment_id: id,
                    vendor_id: v.id.clone(),
                    title: pick(rng, FINDINGS),
                    severity: pick(
                        rng,
                        &["critical", "high", "high", "medium", "medium", "low"],
                    ),
                    status,
                    opened_on: assessed_on.clone(),
                    due_on: date(rng, -60, 180),
                    closed_on,
                });
            }
            assessments.push(Assessment {
                id,
                vendor_id: v.id.clone(),
                kind: pick(rng, KINDS),
                assessed_on,
                assessor: pick(rng, ASSESSORS),
                rating,
                score,
            });
        }
    }
    let mut obligations = Vec::new();
    for v in vendors.iter().filter(|v| v.tier != "low") {
        for _ in 0..rng.random_range(1..=3) {
            let (framework, requirement) = pick(rng, FRAMEWORKS);
            obligations.push(Obligation {
                id: obligations.len() as i64 + 1,
                vendor_id: v.id.clone(),
                framework,
                requirement,
                due_on: date(rng, -90, 365),
                status: pick(rng, &["met", "met", "pending", "overdue"]),
            });
        }
    }
    Data {
        vendors,
        assessments,
        findings,
        obligations,
    }
}

#[cfg(test)]
mod tests {
    use super::day_to_string;

    #[test]
    fn civil_dates() {
        assert_eq!(day_to_string(0), "1970-01-01");
        assert_eq!(day_to_string(20_454), "2026-01-01");
        assert_eq!(day_to_string(20_454 + 58), "2026-02-28");
        assert_eq!(day_to_string(19_782), "2024-02-29");
    }
}
