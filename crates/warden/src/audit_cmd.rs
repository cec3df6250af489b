//! `warden log` and `warden audit`: reading, verifying, exporting and purging the trail;
//! also the server's startup record and its retention task.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;
use sha2::{Digest, Sha256};
use warden_core::audit::{Event, Source};
use warden_core::project::{self, Project};
use warden_store::audit::export::{
    self, CHECKPOINTS_FILE, ExportParts, ExportVerdict, ExportWriter, MANIFEST_FILE, RECORDS_FILE,
};
use warden_store::audit::{
    AuditLog, ChainReport, Filter, SYSTEM_CHAIN, Signer, Verifier, chain, decision_of_policy,
    outcome_of_status, trust,
};
use warden_store::{Store, endorsement_message};

/// `warden log`'s filters.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    #[arg(short, long, default_value = "warden.yaml", env = "WARDEN_PROJECT")]
    project: PathBuf,
    /// From this time: RFC 3339 (2026-11-21T09:00:00Z), a date (2026-11-21), or an age
    /// (30m, 12h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// A user's email or id.
    #[arg(long)]
    user: Option<String>,
    /// A tool, resource URI, prompt or action name.
    #[arg(long)]
    tool: Option<String>,
    /// An organisation's slug.
    #[arg(long)]
    org: Option<String>,
    /// An OAuth client id or API key id.
    #[arg(long)]
    client: Option<String>,
    /// ok, error, denied or confirmation.
    #[arg(long, value_parser = ["ok", "error", "denied", "confirmation"])]
    status: Option<String>,
    /// allow or deny: the decision.
    #[arg(long, value_parser = ["allow", "deny"])]
    policy: Option<String>,
    /// An event kind: tool_call, resource_read, prompt_get, login_succeeded, login_failed,
    /// lockout, token_issued, token_refreshed, token_revoked, token_reuse_detected,
    /// token_misuse_detected,
    /// key_created, key_revoked, key_regenerated, app_revoked, role_changed, member_removed,
    /// console_refused, project_loaded,
    /// project_reloaded, project_reload_failed, retention_purge, ...
    #[arg(long)]
    event: Option<String>,
    /// Where it came from: http or stdio (an assistant over MCP), dashboard (sign-in,
    /// consent and the OAuth endpoints), console, cli or system.
    #[arg(long, value_parser = ["http", "stdio", "mcp_http", "mcp_stdio", "dashboard", "cli", "console", "system"])]
    source: Option<String>,
    /// At most this many records (the newest), shown oldest first.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Instead of records: today's use of the daily quotas in the project's `limits`, per
    /// organisation and per member (narrowed by --org and --user).
    #[arg(long)]
    usage: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every chain (or an export) and report the first broken link.
    #[command(
        after_help = "Examples:\n  warden audit verify -p warden.yaml\n  warden audit verify --export ./audit-2026-11 --public-key 3b6a...\nExit status is 0 when every chain verifies, 1 when one is broken."
    )]
    Verify {
        #[arg(short, long, default_value = "warden.yaml", env = "WARDEN_PROJECT")]
        project: PathBuf,
        /// Verify an export offline instead of the database: a directory `audit export`
        /// wrote, or the single file the console's export download gives.
        #[arg(long)]
        export: Option<PathBuf>,
        /// The Ed25519 public key (hex) the checkpoints must be signed with; by default the
        /// one derived from the project's signing key (or, for an export, its manifest's).
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Write the trail as JSONL with a signed manifest, for a SIEM or an auditor.
    #[command(
        after_help = "Examples:\n  warden audit export -p warden.yaml --out ./audit-export\n  warden audit export -p warden.yaml --out ./acme --org acme\nFiles: records.jsonl, checkpoints.jsonl, manifest.json."
    )]
    Export {
        #[arg(short, long, default_value = "warden.yaml", env = "WARDEN_PROJECT")]
        project: PathBuf,
        /// Directory to write (created; must not hold an export already).
        #[arg(long)]
        out: PathBuf,
        /// Only this organisation's chain.
        #[arg(long)]
        org: Option<String>,
    },
    /// Manage the keys whose checkpoints `audit verify` accepts (one per signing instance).
    #[command(
        after_help = "Examples:\n  warden audit signer list -p warden.yaml\n  warden audit signer add -p warden.yaml --public-key 3b6a...\n  warden audit signer remove 9f2c41d0e8a7b613 -p warden.yaml"
    )]
    Signer {
        #[command(subcommand)]
        command: SignerCommand,
    },
    /// Remove records past retention now (the server also does this daily).
    #[command(
        after_help = "Examples:\n  warden audit purge -p warden.yaml                 records older than audit.retention_days\n  warden audit purge -p warden.yaml --before 2026-01-01"
    )]
    Purge {
        #[arg(short, long, default_value = "warden.yaml", env = "WARDEN_PROJECT")]
        project: PathBuf,
        /// Remove records before this time instead (same forms as `warden log --since`).
        #[arg(long)]
        before: Option<String>,
    },
}

/// A time as records store it, from RFC 3339, a date or an age.
pub fn parse_time(s: &str, now: DateTime<Utc>) -> anyhow::Result<String> {
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(fmt(t.with_timezone(&Utc)));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(fmt(t.and_utc()));
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = num.parse().map_err(|_| {
        anyhow::anyhow!(
            "'{s}' is not a time: use RFC 3339 (2026-11-21T09:00:00Z), a date (2026-11-21) or an age (30m, 12h, 7d)"
        )
    })?;
    let age = match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        _ => bail!("'{s}': an age ends in s, m, h or d (e.g. 30m, 12h, 7d)"),
    };
    Ok(fmt(now - age))
}

pub async fn log(args: LogArgs) -> anyhow::Result<ExitCode> {
    if args.usage {
        return usage(&args).await;
    }
    let now = Utc::now();
    let filter = Filter {
        since: args
            .since
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()?,
        user: args.user,
        tool: args.tool,
        org: args.org,
        client: args.client,
        outcome: args
            .status
            .as_deref()
            .and_then(outcome_of_status)
            .map(str::to_string),
        decision: args
            .policy
            .as_deref()
            .and_then(decision_of_policy)
            .map(str::to_string),
        event: args.event,
        source: args
            .source
            .as_deref()
            .and_then(warden_store::audit::source_of_word)
            .map(str::to_string),
        limit: args.limit,
        ..Filter::default()
    };
    let store = crate::admin::open_state(&args.project).await?;
    let records = store.audit_query(&filter).await?;
    store.close().await;
    let mut out = std::io::stdout().lock();
    if args.json {
        for r in &records {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<24}  {:<10}  {:<26}  {:<9}  {:<16}  {:<24}  {:<22}  {:>8}  REASON",
        "TIME (UTC)", "ORG", "USER", "SOURCE", "EVENT", "ACTION", "DECISION", "MS"
    )?;
    for r in &records {
        let decision = match (&r.decision[..], &r.stage) {
            ("denied", Some(stage)) => format!("denied@{stage}"),
            (d, _) if r.outcome == "tool_error" => format!("{d}/error"),
            (d, _) if r.outcome == "confirmation_required" => format!("{d}/preview"),
            (d, _) => d.to_string(),
        };
        writeln!(
            out,
            "{:<24}  {:<10}  {:<26}  {:<9}  {:<16}  {:<24}  {:<22}  {:>8}  {}",
            r.ts,
            cut(r.org.as_deref().unwrap_or("-"), 10),
            cut(r.user_email.as_deref().unwrap_or("-"), 26),
            cut(r.source.trim_start_matches("mcp_"), 9),
            cut(&r.event, 16),
            cut(&r.action, 24),
            cut(&decision, 22),
            r.duration_us
                .map_or("-".into(), |d| format!("{:.1}", d as f64 / 1000.0)),
            cut(r.reason.as_deref().unwrap_or(""), 400)
        )?;
    }
    if records.is_empty() {
        eprintln!("no records match");
    } else if records.len() == filter.limit {
        eprintln!(
            "showing the newest {} matching records; use --limit for more",
            filter.limit
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// At most `n` characters of `s` for the table, with control characters (a terminal escape
/// hidden in a user agent or an argument name) shown as `?`.
fn cut(s: &str, n: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() <= n {
        s
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[derive(Debug, Subcommand)]
pub enum SignerCommand {
    /// List the registered signers.
    #[command(after_help = "Example:\n  warden audit signer list -p warden.yaml")]
    List {
        #[arg(short, long, default_value = "warden.yaml", env = "WARDEN_PROJECT")]
        project: PathBuf,
    },
    /// Register a signer: by default this machine's key (audit.signing_key, created if
    /// missing), or another instance's public key.
    #[command(
        after_help = "Examples:\n  warden audit signer add -p warden.yaml                      this machine's key\n  warden audit signer add -p warden.yaml --public-key 3b6a...  another instance's (it prints it when refused)"
    )]
    Add {
        #[arg(short, long, default_value = "warden.yaml", env = "WARDEN_PROJECT")]
        project: PathBuf,
        /// The Ed25519 public key, hex.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Remove a signer; checkpoints it signed no longer verify, so do this only for a key
    /// that never signed, or was stolen.
    #[command(
        after_help = "Example:\n  warden audit signer remove 9f2c41d0e8a7b613 -p warden.yaml"
    )]
    Remove {
        key_id: String,
        #[arg(short, long, default_value = "warden.yaml", env = "WARDEN_PROJECT")]
        project: PathBuf,
    },
}

/// At start: this instance's signing key must be a registered signer, or its checkpoints
/// would not verify. The first instance on a new state store registers its own.
pub async fn check_signer(
    store: &Store,
    signer: &Signer,
    key_file: &Path,
    project_file: &Path,
) -> anyhow::Result<()> {
    let v = signer.verifier();
    if store
        .add_first_audit_signer(v.key_id(), &v.public_hex())
        .await?
    {
        tracing::info!(
            key = v.key_id(),
            "registered this instance's audit signing key, the first on this state store"
        );
        return Ok(());
    }
    let registered = store.audit_signers().await?;
    if registered.iter().any(|s| s.key_id == v.key_id()) {
        // Nothing is endorsed here: an instance never vouches for a key on the database's
        // word (someone who can write the database could make that key). Endorsements are
        // an operator's `warden audit signer add`.
        return Ok(());
    }
    bail!(
        "this instance's audit signing key {} ({}, project {}) is not a registered signer of this state store, so its checkpoints would not verify. Either register it on an instance whose key is registered (that key endorses the new one): `warden audit signer add --public-key {}` with that instance's -p, or give this instance the signing key the others use (audit.signing_key). Registered: {}",
        v.key_id(),
        key_file.display(),
        project_file.display(),
        v.public_hex(),
        registered
            .iter()
            .map(|s| s.key_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The keys `audit verify` trusts. Trust starts from a key the operator holds, never from
/// the database: `anchor` (`--public-key`) or the project's own key file. From there it
/// follows endorsements signed by keys already trusted, so a row written into the database
/// without a signing key is never trusted. A store with no signers yet trusts the anchor
/// alone. Returns the trusted keys and the registered ones left out.
async fn trusted_keys(
    store: &Store,
    key_file: &Path,
    anchor: Option<Verifier>,
) -> anyhow::Result<(Vec<Verifier>, Vec<String>)> {
    let anchor = match anchor {
        Some(a) => Some(a),
        None if key_file.exists() => Some(Signer::load(key_file)?.verifier().clone()),
        None => None,
    };
    let registered = store.audit_signers().await?;
    let Some(anchor) = anchor else {
        if registered.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        bail!(
            "this project has no signing key ({}) to start trust from; pass an instance's public key with --public-key (`warden audit signer list` on an instance shows them)",
            key_file.display()
        );
    };
    let endorsements = store.audit_endorsements().await?;
    Ok(trust::endorsed_from(anchor, &registered, &endorsements))
}

async fn run_signer(cmd: SignerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SignerCommand::List { project } => {
            let p = load(&project)?;
            let store = crate::admin::open_state_at(&p.auth.state).await?;
            let signers = store.audit_signers().await?;
            store.close().await;
            if signers.is_empty() {
                println!(
                    "No signer registered yet; the first `warden serve` registers its own key."
                );
            } else {
                println!(
                    "{:<18}  {:<64}  {:<20}  ADDED BY",
                    "KEY ID", "PUBLIC KEY", "ADDED"
                );
                for s in signers {
                    let added = chrono::DateTime::from_timestamp_millis(s.added_at)
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_default();
                    println!(
                        "{:<18}  {:<64}  {:<20}  {}",
                        s.key_id, s.public_key, added, s.added_by
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SignerCommand::Add {
            project,
            public_key,
        } => {
            let p = load(&project)?;
            if !p.audit.signing_key.exists() {
                bail!(
                    "this machine has no audit signing key ({}); run this on an instance whose key is a registered signer: it endorses the new key with its own",
                    p.audit.signing_key.display()
                );
            }
            let local = Signer::load(&p.audit.signing_key)?;
            let v = match public_key {
                Some(k) => {
                    Verifier::from_hex(&k).map_err(|e| anyhow::anyhow!("--public-key: {e}"))?
                }
                None => local.verifier().clone(),
            };
            let store = crate::admin::open_state_at(&p.auth.state).await?;
            let registered = store.audit_signers().await?;
            let endorser = local.verifier().key_id().to_string();
            if !registered.iter().any(|s| s.key_id == endorser) {
                store.close().await;
                bail!(
                    "this machine's signing key {endorser} is not a registered signer, so it cannot endorse another; run this on an instance whose key is (`warden audit signer list` shows them)"
                );
            }
            let who = std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .map(|u| format!("cli:os-user:{u}"))
                .unwrap_or_else(|_| "cli".into());
            let added = store
                .add_audit_signer(v.key_id(), &v.public_hex(), &who)
                .await;
            // Endorse it whether it is new or already registered: run on an instance that
            // another registered, this is how it vouches for the others in return.
            if added.is_ok() && v.key_id() != endorser {
                let sig = local.sign(&endorsement_message(v.key_id(), &v.public_hex()));
                if let Err(e) = store.add_endorsement(&endorser, v.key_id(), &sig).await {
                    store.close().await;
                    return Err(e.into());
                }
            }
            let recorded = match added {
                Ok(true) => {
                    let log = AuditLog::start(store.clone(), None, Default::default());
                    let mut e =
                        Event::new("audit_signer_added", Source::Cli, v.key_id().to_string());
                    e.detail = Some(
                        serde_json::json!({"key_id": v.key_id(), "public_key": v.public_hex()}),
                    );
                    let r = log.append(e).await.map(|_| ());
                    drop(log);
                    Some(r)
                }
                Ok(false) => None,
                Err(e) => {
                    store.close().await;
                    return Err(e.into());
                }
            };
            store.close().await;
            match recorded {
                Some(Ok(())) => println!("Registered signer {}", v.key_id()),
                Some(Err(e)) => {
                    bail!("the signer was added, but the audit trail could not record it: {e}")
                }
                None => println!(
                    "Signer {} was already registered; nothing changed",
                    v.key_id()
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        SignerCommand::Remove { key_id, project } => {
            let p = load(&project)?;
            let store = crate::admin::open_state_at(&p.auth.state).await?;
            let removed = store.remove_audit_signer(&key_id).await?;
            if removed {
                let log = AuditLog::start(store.clone(), None, Default::default());
                let recorded = log
                    .append(Event::new(
                        "audit_signer_removed",
                        Source::Cli,
                        key_id.clone(),
                    ))
                    .await;
                drop(log);
                recorded.map_err(|e| {
                    anyhow::anyhow!(
                        "the signer was removed, but the audit trail could not record it: {e}"
                    )
                })?;
            }
            store.close().await;
            if !removed {
                bail!("no registered signer {key_id}; see `warden audit signer list`");
            }
            println!("Removed signer {key_id}; checkpoints it signed no longer verify");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify {
            project,
            export: Some(dir),
            public_key,
        } => {
            let _ = project;
            verify_export(&dir, public_key.as_deref())
        }
        AuditCommand::Verify {
            project,
            export: None,
            public_key,
        } => {
            let p = load(&project)?;
            let store = crate::admin::open_state_at(&p.auth.state).await?;
            let anchor = public_key.map(|k| Verifier::from_hex(&k)).transpose()?;
            let (keys, untrusted) = trusted_keys(&store, &p.audit.signing_key, anchor).await?;
            if !untrusted.is_empty() {
                println!(
                    "note: registered signer(s) {} are not endorsed by a trusted key; their checkpoints do not verify",
                    untrusted.join(", ")
                );
            }
            let verifier = (!keys.is_empty()).then_some(keys.as_slice());
            let mut reports = Vec::new();
            for c in store.audit_chains().await? {
                eprint!("verifying {c} ... ");
                let records = store.audit_chain(&c).await?;
                let cps = store.audit_checkpoints(&c).await?;
                if verifier.is_none() && !cps.is_empty() {
                    bail!(
                        "{c} has signed checkpoints but the signing key {} is missing; pass the public key with --public-key",
                        p.audit.signing_key.display()
                    );
                }
                let r = chain::verify_chain_with_keys(&c, &records, &cps, verifier);
                eprintln!("{} records", r.records);
                reports.push(r);
            }
            store.close().await;
            let key_id = match verifier {
                Some(keys) => keys
                    .iter()
                    .map(Verifier::key_id)
                    .collect::<Vec<_>>()
                    .join(", "),
                None => {
                    println!(
                        "note: no signing key yet ({} is created when the server first starts), and no checkpoints to check",
                        p.audit.signing_key.display()
                    );
                    "(none)".into()
                }
            };
            Ok(print_reports(&reports, &key_id))
        }
        AuditCommand::Export { project, out, org } => export(&project, &out, org.as_deref()).await,
        AuditCommand::Signer { command } => run_signer(command).await,
        AuditCommand::Purge { project, before } => {
            let p = load(&project)?;
            let before = match before {
                Some(b) => parse_time(&b, Utc::now())?,
                None => retention_cutoff(p.audit.retention_days),
            };
            let signer = Arc::new(Signer::load_or_create(&p.audit.signing_key)?);
            let store = crate::admin::open_state_at(&p.auth.state).await?;
            let log = AuditLog::start(store.clone(), None, Default::default());
            let n = purge(&store, &log, &signer, &before, Source::Cli).await?;
            drop(log);
            store.close().await;
            println!("Removed {n} record(s) older than {before}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load(file: &Path) -> anyhow::Result<Project> {
    project::load_file_offline(file).map_err(|e| anyhow::anyhow!("{e}"))
}

fn print_reports(reports: &[ChainReport], key_id: &str) -> ExitCode {
    let mut broken = 0;
    for r in reports {
        let span = match (r.first_seq, r.last_seq) {
            (Some(a), Some(b)) => format!("seq {a}..{b}"),
            _ => "empty".into(),
        };
        match &r.problem {
            None => {
                let unsigned = match (r.last_seq, r.last_checkpoint_seq) {
                    (Some(last), Some(cp)) if last > cp => {
                        format!("; seq {}..{last} not yet under a checkpoint", cp + 1)
                    }
                    (Some(_), None) => "; no checkpoint yet".into(),
                    _ => String::new(),
                };
                println!(
                    "{}: OK — {} records ({span}), {} checkpoints{unsigned}",
                    r.chain, r.records, r.checkpoints
                );
            }
            Some(b) => {
                broken += 1;
                println!(
                    "{}: BROKEN at seq {} — {}: {}",
                    r.chain,
                    b.seq,
                    b.kind.as_str(),
                    b.detail
                );
            }
        }
    }
    if broken == 0 {
        println!(
            "{} chain(s) verified; checkpoints signed by key {key_id}",
            reports.len()
        );
        ExitCode::SUCCESS
    } else {
        println!("{broken} of {} chain(s) BROKEN", reports.len());
        ExitCode::FAILURE
    }
}

async fn export(project: &Path, out: &Path, org: Option<&str>) -> anyhow::Result<ExitCode> {
    let p = load(project)?;
    let signer = Signer::load(&p.audit.signing_key)
        .context("an export is signed with the audit signing key")?;
    if out.join(MANIFEST_FILE).exists() {
        bail!(
            "{} already holds an export; choose another --out",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let store = crate::admin::open_state_at(&p.auth.state).await?;
    let chains: Vec<String> = match org {
        Some(o) => vec![o.to_string()],
        None => store.audit_chains().await?,
    };
    // Written under temporary names and renamed last: no half export looks complete.
    let tmp = |name: &str| out.join(format!(".{name}.partial"));
    let mut records = std::io::BufWriter::new(std::fs::File::create(tmp(RECORDS_FILE))?);
    let mut checkpoints = std::io::BufWriter::new(std::fs::File::create(tmp(CHECKPOINTS_FILE))?);
    let mut writer = ExportWriter::new();
    for c in &chains {
        let rs = store.audit_chain(c).await?;
        let cps = store.audit_checkpoints(c).await?;
        writer.add_chain(c, &rs, &cps, &mut records, &mut checkpoints)?;
        eprintln!("exported {c}: {} records", rs.len());
    }
    let signers = store.audit_signers().await?;
    let endorsements = store.audit_endorsements().await?;
    store.close().await;
    records.into_inner()?.sync_all()?;
    checkpoints.into_inner()?.sync_all()?;
    let m = writer.finish(&signer, signers, endorsements)?;
    std::fs::write(tmp(MANIFEST_FILE), serde_json::to_vec_pretty(&m)?)?;
    for f in [RECORDS_FILE, CHECKPOINTS_FILE, MANIFEST_FILE] {
        std::fs::rename(tmp(f), out.join(f))?;
    }
    println!(
        "Exported {} records from {} chain(s) to {}",
        m.count,
        m.chains.len(),
        out.display()
    );
    println!(
        "Verify offline: warden audit verify --export {} --public-key {}",
        out.display(),
        m.public_key
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads an export: a directory as `warden audit export` writes it, or one file as the
/// console's download is (the bundle: manifest line, records, checkpoints).
fn read_export(path: &Path) -> anyhow::Result<ExportParts> {
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return export::parse_bundle(&text)
            .with_context(|| format!("{} is not a Warden audit export", path.display()));
    }
    let manifest = serde_json::from_slice(
        &std::fs::read(path.join(MANIFEST_FILE))
            .with_context(|| format!("cannot read {}", path.join(MANIFEST_FILE).display()))?,
    )
    .context("manifest.json is not a Warden audit manifest")?;
    let read_lines = |name: &str| -> anyhow::Result<Vec<String>> {
        let file = std::fs::File::open(path.join(name))
            .with_context(|| format!("cannot read {}", path.join(name).display()))?;
        Ok(std::io::BufReader::new(file)
            .lines()
            .collect::<Result<_, _>>()?)
    };
    Ok(ExportParts {
        manifest,
        records: read_lines(RECORDS_FILE)?,
        checkpoints: read_lines(CHECKPOINTS_FILE)?,
    })
}

fn verify_export(path: &Path, public_key: Option<&str>) -> anyhow::Result<ExitCode> {
    let parts = read_export(path)?;
    let anchor = Verifier::from_hex(public_key.unwrap_or(&parts.manifest.public_key))?;
    if public_key.is_none() {
        eprintln!(
            "note: trusting the public key in the manifest ({}); pass --public-key to check it against yours",
            parts.manifest.key_id
        );
    }
    match export::verify(&parts, anchor)? {
        ExportVerdict::BadManifest { key_id } => {
            println!(
                "manifest: BROKEN — its signature does not match key {key_id}, or that key is not one the given key trusts"
            );
            Ok(ExitCode::FAILURE)
        }
        ExportVerdict::AlteredFile(name) => {
            println!("{name}: BROKEN — it is not the file the manifest signed");
            Ok(ExitCode::FAILURE)
        }
        ExportVerdict::Checked {
            reports,
            keys,
            untrusted,
        } => {
            if !untrusted.is_empty() {
                println!(
                    "note: signer(s) {} in the export are not endorsed by a trusted key; their checkpoints do not verify",
                    untrusted.join(", ")
                );
            }
            let ids: Vec<&str> = keys.iter().map(Verifier::key_id).collect();
            Ok(print_reports(&reports, &ids.join(", ")))
        }
    }
}

/// The record of what this process serves: the project and a hash of its tool manifest.
pub fn manifest_event(project: &Project) -> Event {
    Event::new("project_loaded", Source::System, project.name.clone())
        .detail(manifest_detail(project))
}

/// The record of a reload that replaced what this process serves (`reload.rs`): the same
/// detail as `project_loaded`, for the project now served.
pub fn reloaded_event(project: &Project) -> Event {
    Event::new("project_reloaded", Source::System, project.name.clone())
        .detail(manifest_detail(project))
}

/// The record of a reload that changed nothing: `rule` is `invalid_file` or
/// `restart_needed`, `reason` says why and what to do, `detail` names the problems.
pub fn reload_failed_event(
    name: &str,
    rule: &str,
    reason: String,
    detail: serde_json::Value,
) -> Event {
    Event::new("project_reload_failed", Source::System, name)
        .denied("reload", rule, reason)
        .detail(detail)
}

/// What a project serves: counts, a SHA-256 of its tool manifest (each tool's name,
/// access, SQL, parameters and policy version), the project-wide policy version and each
/// tool's (which a call's record names when a rule fires).
fn manifest_detail(project: &Project) -> serde_json::Value {
    let tools: Vec<serde_json::Value> = project
        .tools
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name,
                "access": t.access.as_str(),
                "sql": t.statement.text,
                "params": t.params.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
                "policy": t.policies.version,
            })
        })
        .collect();
    let manifest = serde_json::Value::Array(tools).to_string();
    let tool_policies: serde_json::Map<String, serde_json::Value> = project
        .tools
        .iter()
        .map(|t| (t.name.clone(), t.policies.version.clone().into()))
        .collect();
    serde_json::json!({
        "file": project.file.display().to_string(),
        "tools": project.tools.len(),
        "resources": project.resources.len(),
        "prompts": project.prompts.len(),
        "manifest_sha256": hex::encode(Sha256::digest(manifest.as_bytes())),
        "policy_version": project.policies.version,
        "tool_policy_versions": tool_policies,
        "version": env!("CARGO_PKG_VERSION"),
    })
}

fn retention_cutoff(days: u32) -> String {
    (Utc::now() - chrono::Duration::days(i64::from(days)))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Purges records before `before` and records the purge in each chain it cut.
async fn purge(
    store: &Store,
    log: &AuditLog,
    signer: &Signer,
    before: &str,
    source: Source,
) -> anyhow::Result<u64> {
    let purged = store.audit_purge(before, signer).await?;
    let mut total = 0;
    for p in &purged {
        total += p.records;
        let mut e = Event::new("retention_purge", source, "retention_purge").detail(
            serde_json::json!({"records": p.records, "through_seq": p.through_seq, "before": before}),
        );
        if p.chain != SYSTEM_CHAIN {
            e.org = Some(p.chain.clone());
        }
        log.append(e).await?;
    }
    Ok(total)
}

/// Runs the retention purge for as long as the server runs, on whichever instance holds the
/// `audit_retention` lease (see `warden_store::jobs`): when it takes the lease, then every
/// `every`. Each run leaves one `retention_purge_run` record on the `_system` chain naming the
/// instance and when the run started and finished, so the trail shows that runs never overlap;
/// each chain a run cut also gets its `retention_purge` record.
pub fn start_retention(
    store: Store,
    log: AuditLog,
    signer: Arc<Signer>,
    days: u32,
    every: Duration,
    lease: Arc<warden_store::jobs::Lease>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.min(Duration::from_secs(60)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_run: Option<std::time::Instant> = None;
        loop {
            tick.tick().await;
            if !lease.held() {
                last_run = None;
                continue;
            }
            if last_run.is_some_and(|t| t.elapsed() < every) {
                continue;
            }
            last_run = Some(std::time::Instant::now());
            let started = Utc::now();
            let before = retention_cutoff(days);
            let purged = purge(&store, &log, &signer, &before, Source::System).await;
            let finished = Utc::now();
            let (outcome, records) = match &purged {
                Ok(n) => ("success", *n),
                Err(_) => ("error", 0),
            };
            let run = Event::new("retention_purge_run", Source::System, "retention_purge").detail(
                serde_json::json!({
                    "holder": lease.holder(),
                    "started_at": started.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    "finished_at": finished.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    "records": records,
                    "before": before,
                    "outcome": outcome,
                }),
            );
            if let Err(e) = log.append(run).await {
                tracing::error!(error = %e, "could not record the retention purge run");
            }
            match purged {
                Ok(0) => tracing::debug!(days, "audit retention purge: nothing to purge"),
                Ok(n) => tracing::info!(records = n, days, "audit retention purge"),
                Err(e) => tracing::error!(error = %e, "audit retention purge failed"),
            }
        }
    });
}

/// A random token telling this process's leases apart from a restarted one with the same pid.
pub(crate) fn random_token() -> String {
    let mut b = [0u8; 8];
    rand::Rng::fill(&mut rand::rng(), &mut b[..]);
    hex::encode(b)
}

/// `warden log --usage`: each daily quota's use today, per organisation and per member.
async fn usage(args: &LogArgs) -> anyhow::Result<ExitCode> {
    use warden_core::pipeline::limits::daily_quotas;
    let p = load(&args.project)?;
    let store = crate::admin::open_state_at(&p.auth.state).await?;
    let now = Utc::now();
    let buckets = warden_auth::rate::SharedLimiter::new(store.clone());
    let mut rows: Vec<(String, String, String, u64, u32, String)> = Vec::new();
    let orgs = store.list_orgs().await?;
    for org in orgs
        .iter()
        .filter(|o| args.org.as_deref().is_none_or(|s| s == o.slug))
    {
        let mut whose: Vec<(String, Option<String>)> = Vec::new();
        if args.user.is_none() {
            whose.push(("(organisation)".into(), None));
        }
        for (u, _) in store.list_members(org.id).await? {
            if args
                .user
                .as_deref()
                .is_none_or(|w| w.eq_ignore_ascii_case(&u.email) || w == u.id.to_string())
            {
                whose.push((u.email.clone(), Some(u.id.to_string())));
            }
        }
        for (label, user) in whose {
            for q in daily_quotas(&p.limits, &org.slug, user.as_deref(), now) {
                let rule = warden_auth::rate::Rule {
                    rate_per_sec: q.rate.per_sec,
                    burst: q.rate.burst,
                };
                let left = buckets.left(&q.key, rule, now).await?;
                let used = (f64::from(q.rate.burst) - left).max(0.0).round() as u64;
                let resets = q
                    .resets_at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default();
                rows.push((
                    org.slug.clone(),
                    label.clone(),
                    q.name,
                    used,
                    q.rate.burst,
                    resets,
                ));
            }
        }
    }
    store.close().await;
    if rows.is_empty() {
        println!(
            "No daily quotas apply: add `limits.daily` to {} (see docs/project-file.md#limits).",
            args.project.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        for (org, who, limit, used, quota, resets) in rows {
            println!(
                "{}",
                serde_json::json!({"org": org, "who": who, "limit": limit, "used": used, "quota": quota, "resets_at": resets})
            );
        }
    } else {
        println!(
            "{:<16} {:<28} {:<36} {:>10} {:>10}  RESETS",
            "ORG", "WHO", "QUOTA", "USED", "OF"
        );
        for (org, who, limit, used, quota, resets) in rows {
            println!("{org:<16} {who:<28} {limit:<36} {used:>10} {quota:>10}  {resets}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
