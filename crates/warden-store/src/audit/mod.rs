//! The audit trail: durable, hash-chained, signed, queryable.
//!
//! - [`AuditLog`] is the writer: one task per process that takes events from every caller,
//!   writes all that are waiting in one transaction (group commit: one fsync for many
//!   calls) and answers each caller only once that transaction is durable. It implements
//!   `warden_core::audit::Sink`, so the pipeline can wait on it.
//! - [`chain`]: how records are hashed and chains verified; [`signer`]: the Ed25519
//!   checkpoint key, kept in a file outside the database; [`trust`]: which signers a
//!   verification trusts, from a key the verifier holds; [`export`]: the signed export
//!   (files or one bundle) and its offline check.
//! - The SQL lives with the rest in `store/audit.rs`.
//!
//! The writer also answers readiness ([`Sink::ready`]) and records, through the `metrics`
//! facade, each commit's latency and size (see [`COMMIT_DURATION`]).

pub mod chain;
pub mod export;
pub mod signer;
pub mod trust;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use warden_core::audit::{AuditError, Event, NotReady, Sink};

pub use crate::store::audit::{Appended, Purged, chain_of};
use crate::{Store, StoreError};
pub use chain::{Break, BreakKind, ChainReport, Checkpoint, GENESIS, Record};
pub use signer::{Signer, SignerError, Verifier};

/// The chain of events that belong to no organisation (failed sign-ins of unknown users,
/// startup, retention). Cannot collide with an organisation: slugs have no `_`.
pub const SYSTEM_CHAIN: &str = "_system";

/// Which records `warden log` and the console's trail pages show.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// RFC 3339 UTC, inclusive.
    pub since: Option<String>,
    /// RFC 3339 UTC, exclusive.
    pub until: Option<String>,
    /// An email (any case) or user id.
    pub user: Option<String>,
    /// Exactly this user id (the console's own-activity page, and a user the Admin named
    /// who is known): unlike `user`, one indexed column, no email alternative.
    pub user_id: Option<String>,
    pub tool: Option<String>,
    pub org: Option<String>,
    /// An OAuth client id or API key id.
    pub client: Option<String>,
    /// `success`, `tool_error`, `denied`, `confirmation_required`.
    pub outcome: Option<String>,
    /// `allowed` or `denied`.
    pub decision: Option<String>,
    pub event: Option<String>,
    /// Keyset paging within one chain: only records with a smaller `seq`.
    pub before_seq: Option<i64>,
    /// Where the events came from, as stored: `mcp_http`, `mcp_stdio`, `dashboard`, `cli`,
    /// `console` or `system`.
    pub source: Option<String>,
    pub limit: usize,
}

/// The stored source a `warden log --source` (and the console's source filter) word names:
/// `http` (or `mcp_http`), `stdio` (or `mcp_stdio`), `dashboard`, `cli`, `console`, `system`.
pub fn source_of_word(word: &str) -> Option<&'static str> {
    Some(match word {
        "http" | "mcp_http" => "mcp_http",
        "stdio" | "mcp_stdio" => "mcp_stdio",
        "dashboard" => "dashboard",
        "cli" => "cli",
        "console" => "console",
        "system" => "system",
        _ => return None,
    })
}

/// The stored outcome a `warden log --status` (and the console's status filter) word names:
/// `ok`, `error`, `denied` or `confirmation`.
pub fn outcome_of_status(status: &str) -> Option<&'static str> {
    Some(match status {
        "ok" => "success",
        "error" => "tool_error",
        "denied" => "denied",
        "confirmation" => "confirmation_required",
        _ => return None,
    })
}

/// The stored decision a `warden log --policy` (and the console's decision filter) word
/// names: `allow` or `deny`.
pub fn decision_of_policy(policy: &str) -> Option<&'static str> {
    Some(match policy {
        "allow" => "allowed",
        "deny" => "denied",
        _ => return None,
    })
}

/// How the writer batches and checkpoints.
#[derive(Debug, Clone)]
pub struct Options {
    /// Most events in one transaction.
    pub max_batch: usize,
    /// Sign a checkpoint once a chain has this many records past its last one...
    pub checkpoint_every: u64,
    /// ...or this long after its last one, whichever comes first.
    pub checkpoint_interval: Duration,
    /// When several instances share the trail: the lease of the periodic checkpoint job.
    /// Only its holder signs periodic checkpoints, of every chain that has records past its
    /// last checkpoint (whoever wrote them). Without one, the writer checkpoints on its own
    /// schedule after writing. Checkpoints by count and at shutdown are signed regardless.
    pub periodic: Option<std::sync::Arc<crate::jobs::Lease>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_batch: 1024,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            periodic: None,
        }
    }
}

/// Seconds from a batch arriving at the writer's turn to its COMMIT returning.
pub const COMMIT_DURATION: &str = "warden.audit.commit.duration";
/// Records in each committed batch (the group commit's width).
pub const COMMIT_RECORDS: &str = "warden.audit.commit.records";
/// Batches whose transaction failed (every call in them was refused).
pub const COMMIT_FAILURES: &str = "warden.audit.commit.failures";

/// How long a readiness probe's answer is reused: a storm of scrapes costs one probe a
/// second.
const PROBE_TTL: Duration = Duration::from_secs(1);
/// Longest a probe may take before the trail counts as unable to append.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after a failed commit the trail is reported not ready, even if the probe
/// passes (a full disk fails a real commit before it fails a rolled-back probe), unless a
/// commit succeeds first.
const FAILURE_HOLD: Duration = Duration::from_secs(5);

/// The reason `/readyz` gives; fixed, so it leaks nothing.
const CANNOT_APPEND: NotReady = NotReady("audit trail cannot append");

/// What readiness knows: the writer's last failed commit and the last probe.
#[derive(Debug)]
struct Health {
    store: Store,
    /// When a commit last failed, cleared by the next that succeeds.
    failed_at: Mutex<Option<Instant>>,
    /// The last probe and when it ran; the lock is held while one runs, so concurrent
    /// scrapes share it.
    probe: tokio::sync::Mutex<Option<(Instant, Result<(), NotReady>)>>,
}

impl Health {
    fn note_commit(&self, ok: bool) {
        if let Ok(mut f) = self.failed_at.lock() {
            *f = if ok { None } else { Some(Instant::now()) };
        }
    }

    async fn ready(&self) -> Result<(), NotReady> {
        let recently_failed = self
            .failed_at
            .lock()
            .map(|f| f.is_some_and(|t| t.elapsed() < FAILURE_HOLD))
            .unwrap_or(true);
        if recently_failed {
            return Err(CANNOT_APPEND);
        }
        let mut last = self.probe.lock().await;
        if let Some((at, result)) = *last
            && at.elapsed() < PROBE_TTL
        {
            return result;
        }
        let result = match tokio::time::timeout(PROBE_TIMEOUT, self.store.audit_probe()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: the audit trail cannot append");
                Err(CANNOT_APPEND)
            }
            Err(_) => {
                tracing::warn!("readiness: the audit probe timed out");
                Err(CANNOT_APPEND)
            }
        };
        *last = Some((Instant::now(), result));
        result
    }
}

/// Most times the writer yields to the runtime before a commit while new records keep
/// arriving (see `writer`).
const LINGER_YIELDS: usize = 4;

// Nearly every message is an `Append`: boxing the event would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Append(Event, oneshot::Sender<Result<Appended, String>>),
    Checkpoint(&'static str, oneshot::Sender<Result<u64, String>>),
}

/// The writer. Cheap to clone; the task stops when the last clone is dropped.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    signing: bool,
    health: Arc<Health>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("signing", &self.signing)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Starts the writer on `store`. Without a signer no checkpoints are written (the CLI's
    /// one-off events; the server always signs).
    pub fn start(store: Store, signer: Option<Arc<Signer>>, options: Options) -> Self {
        let (tx, rx) = mpsc::channel(options.max_batch.max(1) * 8);
        let signing = signer.is_some();
        let health = Arc::new(Health {
            store: store.clone(),
            failed_at: Mutex::new(None),
            probe: tokio::sync::Mutex::new(None),
        });
        tokio::spawn(writer(store, signer, options, rx, health.clone()));
        Self {
            tx,
            signing,
            health,
        }
    }

    /// Appends one event; resolves once it is durable.
    pub async fn append(&self, event: Event) -> Result<Appended, AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Append(event, done))
            .await
            .map_err(|_| AuditError("the audit writer has stopped".into()))?;
        wait.await
            .map_err(|_| AuditError("the audit writer has stopped".into()))?
            .map_err(AuditError)
    }

    /// Signs a checkpoint at the head of every chain with records past its last one.
    pub async fn checkpoint(&self, kind: &'static str) -> Result<u64, AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Checkpoint(kind, done))
            .await
            .map_err(|_| AuditError("the audit writer has stopped".into()))?;
        wait.await
            .map_err(|_| AuditError("the audit writer has stopped".into()))?
            .map_err(AuditError)
    }
}

impl Sink for AuditLog {
    fn record(&self, event: Event) -> BoxFuture<'static, Result<(), AuditError>> {
        let log = self.clone();
        Box::pin(async move { log.append(event).await.map(|_| ()) })
    }

    /// Not ready for a few seconds after a commit failed (until one succeeds), or when a
    /// probe (a rolled-back insert, run at most once a second) fails. No record is written.
    fn ready(&self) -> BoxFuture<'static, Result<(), NotReady>> {
        let health = self.health.clone();
        Box::pin(async move { health.ready().await })
    }
}

async fn writer(
    store: Store,
    signer: Option<Arc<Signer>>,
    options: Options,
    mut rx: mpsc::Receiver<Msg>,
    health: Arc<Health>,
) {
    // Records each chain gained since this writer last checkpointed it.
    let mut since_checkpoint: HashMap<String, u64> = HashMap::new();
    let mut tick = tokio::time::interval(options.checkpoint_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut batch = Vec::with_capacity(options.max_batch);
    let mut controls = Vec::new();
    loop {
        let first = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => break,
            },
            _ = tick.tick() => {
                let due = match &options.periodic {
                    Some(lease) => lease.held(),
                    None => !since_checkpoint.is_empty(),
                };
                if let Some(signer) = &signer
                    && due
                {
                    match store.audit_checkpoint(signer, "periodic").await {
                        Ok(_) => since_checkpoint.clear(),
                        Err(e) => tracing::error!(error = %e, "could not write an audit checkpoint"),
                    }
                }
                continue;
            }
        };
        // Whatever queued while the last commit was on disk goes into this one.
        let mut next = Some(first);
        let mut lingered = 0;
        loop {
            while let Some(m) = next.take() {
                match m {
                    Msg::Append(e, done) => batch.push((e, done)),
                    Msg::Checkpoint(kind, done) => controls.push((kind, done)),
                }
                if batch.len() < options.max_batch {
                    next = rx.try_recv().ok();
                }
            }
            // Linger while other calls are still running: each yield lets every task ready
            // on this worker take a turn, and calls finishing meanwhile join this commit.
            // On an idle server the yield returns at once, nothing new has come, and the
            // batch goes now; under load one commit carries many more records.
            if lingered == LINGER_YIELDS || batch.len() >= options.max_batch {
                break;
            }
            lingered += 1;
            tokio::task::yield_now().await;
            match rx.try_recv() {
                Ok(m) => next = Some(m),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let (events, waiting): (Vec<Event>, Vec<_>) = batch.drain(..).unzip();
            let mut due = Vec::new();
            if signer.is_some() {
                let mut counts: HashMap<&str, u64> = HashMap::new();
                for e in &events {
                    *counts.entry(chain_of(e)).or_default() += 1;
                }
                for (chain, n) in counts {
                    if since_checkpoint.get(chain).copied().unwrap_or(0) + n
                        >= options.checkpoint_every
                    {
                        due.push(chain.to_string());
                    }
                }
            }
            let started = std::time::Instant::now();
            let result = store
                .audit_append(events, signer.clone().map(|s| (s, due.clone())))
                .await;
            tracing::debug!(
                events = waiting.len(),
                elapsed_us = started.elapsed().as_micros() as u64,
                ok = result.is_ok(),
                "audit batch"
            );
            health.note_commit(result.is_ok());
            if result.is_ok() {
                metrics::histogram!(COMMIT_DURATION).record(started.elapsed().as_secs_f64());
                metrics::histogram!(COMMIT_RECORDS).record(waiting.len() as f64);
            } else {
                metrics::counter!(COMMIT_FAILURES).increment(1);
            }
            match result {
                Ok(placed) => {
                    for p in &placed {
                        *since_checkpoint.entry(p.chain.clone()).or_default() += 1;
                    }
                    for chain in &due {
                        since_checkpoint.remove(chain);
                    }
                    for (done, p) in waiting.into_iter().zip(placed) {
                        let _ = done.send(Ok(p));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, events = waiting.len(), "the audit trail could not record; the calls are refused");
                    let reason = store_error_reason(&e);
                    for done in waiting {
                        let _ = done.send(Err(reason.clone()));
                    }
                }
            }
        }
        for (kind, done) in controls.drain(..) {
            let r = match &signer {
                Some(s) => store
                    .audit_checkpoint(s, kind)
                    .await
                    .map_err(|e| store_error_reason(&e)),
                None => Err("no audit signing key is loaded".into()),
            };
            if r.is_ok() {
                since_checkpoint.clear();
            }
            let _ = done.send(r);
        }
    }
}

/// What a caller is told when the store fails: the cause, without internals.
fn store_error_reason(e: &StoreError) -> String {
    // The database's own words, not the store's advice appended to them.
    let lower = match e {
        StoreError::Database(db) => db.to_string(),
        StoreError::Sqlite(message) => message.clone(),
        other => other.to_string(),
    }
    .to_lowercase();
    if lower.contains("full") || lower.contains("no space") {
        "the audit store is full".into()
    } else if lower.contains("readonly")
        || lower.contains("read-only")
        || lower.contains("read only")
    {
        "the audit store is read-only".into()
    } else if lower.contains("locked") || lower.contains("busy") || lower.contains("timed out") {
        "the audit store is busy or locked".into()
    } else {
        "the audit store is unavailable".into()
    }
}
