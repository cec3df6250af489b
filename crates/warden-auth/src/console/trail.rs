//! The console's trail pages, with no HTTP: a member's own records in their organisation's
//! chain (`activity`), and for an Admin the whole chain (`audit`), one record in full
//! (`audit_record`), the chain's verification (`verify`) and the signed export (`export`).
//!
//! The chain read is always the permit's organisation's, and a record is looked up within
//! it, so no query string reaches another organisation's records. Pages are keyset-paged on
//! `seq` (`Filter::before_seq`), newest first. An Admin's look at the audit page or at a
//! record, and every export, is recorded with source `console`; a member reading their own
//! activity is not (it would fill their own page with records of reading it).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use warden_store::UserId;
use warden_store::audit::export::{self, ExportWriter};
use warden_store::audit::{
    Checkpoint, Filter, Record, Signer, chain, decision_of_policy, outcome_of_status,
    source_of_word, trust,
};

use super::{Admin, Console, ConsoleError, Member};

/// Records per page.
pub const PAGE_SIZE: usize = 50;

/// The filters a trail page takes, as the form sends them (all optional; `user` only on
/// the Admin's page).
#[derive(Debug, Clone, Default)]
pub struct TrailQuery {
    /// RFC 3339, `YYYY-MM-DDTHH:MM` (UTC, as a date-time field sends it) or a date.
    pub since: Option<String>,
    pub until: Option<String>,
    pub user: Option<String>,
    pub tool: Option<String>,
    /// `ok`, `error`, `denied`, `confirmation`, as `warden log --status`.
    pub status: Option<String>,
    /// `allow` or `deny`, as `warden log --policy`.
    pub decision: Option<String>,
    pub event: Option<String>,
    /// An OAuth client id or API key id.
    pub client: Option<String>,
    /// `http`, `stdio`, `dashboard`, `console`, `cli` or `system`, as `warden log --source`.
    pub source: Option<String>,
    /// Keyset: records below this seq.
    pub before: Option<i64>,
}

/// One page of records, newest first, and where the next (older) page starts.
#[derive(Debug, Clone)]
pub struct TrailPage {
    pub records: Vec<Record>,
    /// `before=` for the "Older" link, when there are older matching records.
    pub older: Option<i64>,
}

/// What verifying the organisation's chain found, as `warden audit verify` reports it.
#[derive(Debug, Clone)]
pub struct ChainStatus {
    pub report: chain::ChainReport,
    /// The newest checkpoint whose signature and hash check out.
    pub last_checkpoint: Option<Checkpoint>,
    /// The keys trusted (the server's own, and those endorsements reach from it).
    pub keys: Vec<String>,
}

/// The signed export of one organisation's chain, as one file.
#[derive(Debug)]
pub struct ExportFile {
    /// The bundle: manifest line, records, checkpoints.
    pub body: Vec<u8>,
    pub records: u64,
    pub file_name: String,
}

/// What the trail pages need beyond the store: the audit key (to trust checkpoints from and
/// to sign exports) and one slot for the CPU-heavy work, so concurrent verifications or
/// exports queue instead of taking every core.
#[derive(Debug, Clone)]
pub struct TrailKeys {
    pub signer: Arc<Signer>,
    pub slots: Arc<tokio::sync::Semaphore>,
}

impl TrailKeys {
    pub fn new(signer: Arc<Signer>) -> Self {
        Self {
            signer,
            slots: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }
}

fn unavailable() -> ConsoleError {
    ConsoleError::Invalid(
        "This server keeps no signed audit trail (audit is disabled), so it cannot verify or export one."
            .into(),
    )
}

/// A time the form sent, as records store it.
fn parse_time(field: &str, s: &str) -> Result<String, ConsoleError> {
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(fmt(t.with_timezone(&Utc)));
    }
    for f in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(fmt(t.and_utc()));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(fmt(t.and_utc()));
    }
    Err(ConsoleError::Invalid(format!(
        "'{s}' in {field} is not a time: use a date (2026-11-21) or a date and time in UTC (2026-11-21T09:00)."
    )))
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(256).collect())
}

/// The store's filter for `q`, without the user (each page sets its own).
fn filter_of(q: &TrailQuery) -> Result<Filter, ConsoleError> {
    let word = |v: &Option<String>, f: fn(&str) -> Option<&'static str>, what: &str| {
        given(v)
            .map(|s| {
                f(&s).map(str::to_string).ok_or_else(|| {
                    ConsoleError::Invalid(format!("'{s}' is not a {what} this page knows."))
                })
            })
            .transpose()
    };
    Ok(Filter {
        since: given(&q.since)
            .map(|s| parse_time("From", &s))
            .transpose()?,
        until: given(&q.until)
            .map(|s| parse_time("Until", &s))
            .transpose()?,
        tool: given(&q.tool),
        outcome: word(&q.status, outcome_of_status, "status")?,
        decision: word(&q.decision, decision_of_policy, "decision")?,
        event: given(&q.event),
        client: given(&q.client),
        source: word(&q.source, source_of_word, "source")?,
        before_seq: q.before.filter(|b| *b > 0),
        limit: PAGE_SIZE + 1,
        ..Filter::default()
    })
}

impl Console {
    async fn page(&self, chain: &str, filter: &Filter) -> Result<TrailPage, ConsoleError> {
        let mut records = self.store.audit_page(chain, filter).await?;
        let older = if records.len() > PAGE_SIZE {
            records.truncate(PAGE_SIZE);
            records.last().map(|r| r.seq)
        } else {
            None
        };
        Ok(TrailPage { records, older })
    }

    /// The member's own records in their organisation's chain; a `user` in `q` is ignored.
    pub async fn activity(&self, m: &Member, q: &TrailQuery) -> Result<TrailPage, ConsoleError> {
        let mut filter = filter_of(q)?;
        filter.user_id = Some(m.user.id.to_string());
        self.page(&m.org.slug, &filter).await
    }

    /// The organisation's whole trail, filtered; the look is recorded.
    pub async fn audit(&self, admin: &Admin, q: &TrailQuery) -> Result<TrailPage, ConsoleError> {
        let mut filter = filter_of(q)?;
        if let Some(u) = given(&q.user) {
            // A known person is one indexed column; anything else matches email or id as
            // `warden log --user` does.
            let known = match u.parse::<UserId>() {
                Ok(id) => Some(id),
                Err(_) => self.store.user_by_email(&u).await?.map(|x| x.id),
            };
            match known {
                Some(id) => filter.user_id = Some(id.to_string()),
                None => filter.user = Some(u),
            }
        }
        let page = self.page(&admin.0.org.slug, &filter).await?;
        let mut e = admin
            .0
            .event("console_audit_viewed", "/console/admin/audit");
        e.detail = Some(serde_json::json!({
            "filters": {
                "since": filter.since, "until": filter.until, "user": given(&q.user),
                "tool": filter.tool, "outcome": filter.outcome, "decision": filter.decision,
                "event": filter.event, "client": filter.client, "before": filter.before_seq,
            },
            "shown": page.records.len(),
        }));
        self.record(e).await?;
        Ok(page)
    }

    /// The record at `seq` in the Admin's organisation's chain, and only there; the look is
    /// recorded, and a seq not in this chain is a refusal, recorded.
    pub async fn audit_record(&self, admin: &Admin, seq: &str) -> Result<Record, ConsoleError> {
        let found = match seq.trim().parse::<i64>() {
            Ok(n) => self.store.audit_record(&admin.0.org.slug, n).await?,
            Err(_) => None,
        };
        let Some(record) = found else {
            let refusal = ConsoleError::NotFound(format!(
                "There is no record {seq:?} in {}'s trail.",
                admin.0.org.name
            ));
            return Err(self.refuse(&admin.0, "audit_record", seq, refusal).await);
        };
        let mut e = admin
            .0
            .event("console_audit_viewed", "/console/admin/audit/record");
        e.detail = Some(serde_json::json!({ "seq": record.seq }));
        self.record(e).await?;
        Ok(record)
    }

    /// Verifies the organisation's chain as `warden audit verify` does, trusting the server's
    /// own key and the signers its endorsements reach. The hashing runs on a blocking thread,
    /// one verification or export at a time.
    pub async fn verify(&self, admin: &Admin) -> Result<ChainStatus, ConsoleError> {
        let keys = self.trail.as_ref().ok_or_else(unavailable)?;
        let _slot = keys
            .slots
            .acquire()
            .await
            .map_err(|_| ConsoleError::Invalid("The server is shutting down.".into()))?;
        let chain_name = admin.0.org.slug.clone();
        let (trusted, _) = trust::trusted_from(&self.store, keys.signer.verifier().clone()).await?;
        let records = self.store.audit_chain(&chain_name).await?;
        let checkpoints = self.store.audit_checkpoints(&chain_name).await?;
        let key_ids = trusted.iter().map(|k| k.key_id().to_string()).collect();
        let (report, checkpoints) = tokio::task::spawn_blocking(move || {
            let r =
                chain::verify_chain_with_keys(&chain_name, &records, &checkpoints, Some(&trusted));
            (r, checkpoints)
        })
        .await
        .map_err(|e| ConsoleError::Invalid(format!("The verification stopped: {e}")))?;
        let last_checkpoint = report
            .last_checkpoint_seq
            .and_then(|seq| checkpoints.into_iter().rev().find(|c| c.seq == seq));
        Ok(ChainStatus {
            report,
            last_checkpoint,
            keys: key_ids,
        })
    }

    /// The signed export of the organisation's chain, as one file `warden audit verify
    /// --export FILE` checks. Recorded before it is handed out: an export the trail cannot
    /// record is not given.
    pub async fn export(&self, admin: &Admin) -> Result<ExportFile, ConsoleError> {
        let keys = self.trail.as_ref().ok_or_else(unavailable)?;
        let _slot = keys
            .slots
            .acquire()
            .await
            .map_err(|_| ConsoleError::Invalid("The server is shutting down.".into()))?;
        let chain_name = admin.0.org.slug.clone();
        let records = self.store.audit_chain(&chain_name).await?;
        let checkpoints = self.store.audit_checkpoints(&chain_name).await?;
        let signers = self.store.audit_signers().await?;
        let endorsements = self.store.audit_endorsements().await?;
        let signer = keys.signer.clone();
        let name = chain_name.clone();
        let built = tokio::task::spawn_blocking(move || {
            let (mut r, mut c) = (Vec::new(), Vec::new());
            let mut w = ExportWriter::new();
            w.add_chain(&name, &records, &checkpoints, &mut r, &mut c)?;
            let m = w.finish(&signer, signers, endorsements)?;
            let body = export::bundle(&m, &r, &c)?;
            Ok::<_, export::ExportError>((body, m))
        })
        .await
        .map_err(|e| ConsoleError::Invalid(format!("The export stopped: {e}")))?;
        let (body, m) =
            built.map_err(|e| ConsoleError::Invalid(format!("The export failed: {e}")))?;
        let head = m.chains.first().and_then(|c| c.last_seq);
        let mut e = admin
            .0
            .event("console_audit_export", "/console/admin/audit/export");
        e.detail = Some(serde_json::json!({
            "records": m.count,
            "last_seq": head,
            "records_sha256": m.records_sha256,
            "key_id": m.key_id,
        }));
        // Not `record`: nothing has been handed out yet, so a failure here is a refusal.
        self.audit.record(e).await?;
        Ok(ExportFile {
            file_name: format!(
                "warden-audit-{chain_name}-{}.jsonl",
                Utc::now().format("%Y%m%dT%H%M%SZ")
            ),
            records: m.count,
            body,
        })
    }
}

#[cfg(test)]
#[path = "trail_tests.rs"]
mod tests;
