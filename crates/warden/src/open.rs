//! Opening a project for `serve` and `demo`: the checked project, its state store, its audit
//! writer and signer (and the daily retention purge), the confirmation ledger and the
//! pipeline, with `project_loaded` on the record before anything is served.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use warden_core::audit::Sink;
use warden_core::pipeline::{LivePipeline, Pipeline};
use warden_core::project::{self, AuthMode, Project};
use warden_store::audit::{AuditLog, Signer};
use warden_store::jobs::Lease;

use crate::{admin, audit_cmd};

/// A project ready to serve: its pipeline, its state store and its audit trail.
pub(crate) struct Opened {
    /// The pipeline serving now; a reload (`reload.rs`) replaces it.
    pub(crate) pipeline: LivePipeline,
    pub(crate) state: warden_store::Store,
    /// `None` with `audit: { enabled: false }`.
    audit: Option<Audit>,
    /// This instance's claims on the jobs only one instance runs at a time.
    leases: std::sync::Mutex<Vec<Arc<Lease>>>,
    /// Names this instance in job leases and in the records its jobs leave.
    holder: String,
}

#[derive(Clone)]
struct Audit {
    log: AuditLog,
    signer: Arc<Signer>,
}

impl Opened {
    pub(crate) fn sink(&self) -> Arc<dyn Sink> {
        sink_of(self.audit.as_ref())
    }

    /// The audit signing key, when the trail is on (the console verifies and exports with it).
    pub(crate) fn signer(&self) -> Option<Arc<Signer>> {
        self.audit.as_ref().map(|a| a.signer.clone())
    }

    /// This instance's claim on job `name`'s lease: whoever holds it runs the job, one
    /// instance at a time (see `warden_store::jobs`). Given up when the server stops.
    pub(crate) fn job_lease(&self, name: &'static str) -> Arc<Lease> {
        let lease = Lease::keep(self.state.clone(), name, self.holder.clone());
        if let Ok(mut leases) = self.leases.lock() {
            leases.push(lease.clone());
        }
        lease
    }

    /// Closes the pipeline (recording what it still holds) and signs a last checkpoint.
    pub(crate) async fn close(&self) {
        // A reloaded pipeline shares the data pools and the tally with the first, so closing
        // the current one closes them all.
        self.pipeline.current().close().await;
        if let Some(a) = &self.audit
            && let Err(e) = a.log.checkpoint("shutdown").await
        {
            tracing::error!(error = %e, "could not sign the shutdown checkpoint");
        }
        // Another instance takes the jobs over now rather than when the leases run out.
        let leases = self.leases.lock().map(|l| l.clone()).unwrap_or_default();
        for lease in leases {
            lease.release(&self.state).await;
        }
    }
}

/// Where events go: the writer, or nowhere with `audit: { enabled: false }`.
fn sink_of(audit: Option<&Audit>) -> Arc<dyn Sink> {
    match audit {
        Some(a) => Arc::new(a.log.clone()),
        None => Arc::new(warden_core::audit::Disabled),
    }
}

pub(crate) async fn open(project_file: &Path) -> anyhow::Result<Opened> {
    let opened = open_project(project_file).await?;
    if opened.pipeline.current().project().auth.mode == AuthMode::None {
        tracing::warn!(
            "`auth: none`: serving WITHOUT authentication (local development only); every client can use every tool"
        );
    }
    Ok(opened)
}

async fn open_project(project_file: &Path) -> anyhow::Result<Opened> {
    let mut project: Project = project::load_file(project_file).map_err(|e| {
        anyhow::anyhow!(
            "{e}\n{} problem(s) in the project file; run `warden check` for the full list",
            e.errors.len()
        )
    })?;
    // Refused before anything is created: a server that cannot start leaves no state
    // store or signing key behind.
    if let Some(problem) = crate::check::missing_data_file(&project) {
        anyhow::bail!("{problem}");
    }
    // The tools `tables:` generate, from the schema as it is now (read-only).
    let expanded = warden_core::tables::expand(&mut project)
        .await
        .map_err(|errors| {
            anyhow::anyhow!(
                "{}\n{} problem(s) with `tables:`; run `warden check` for the full list",
                project::LoadError {
                    errors: errors.clone()
                },
                errors.len()
            )
        })?;
    for (table, tools) in &expanded.tables {
        tracing::info!(table = %table, tools = tools.len(), "serving table as tools: {}", tools.join(", "));
    }
    let state = admin::open_state_at(&project.auth.state).await?;
    // A server caches bearer lookups while it hears every change (PostgreSQL only).
    state.listen_for_auth_changes();
    // Names this instance in job leases and in the records its jobs leave.
    let holder = format!("pid {} ({})", std::process::id(), audit_cmd::random_token());
    let mut leases = Vec::new();
    let audit = if project.audit.enabled {
        let signer = Arc::new(
            Signer::load_or_create(&project.audit.signing_key)
                .map_err(|e| anyhow::anyhow!("{e}; set audit.signing_key in the project file"))?,
        );
        audit_cmd::check_signer(&state, &signer, &project.audit.signing_key, project_file).await?;
        let periodic = Lease::keep(state.clone(), "audit_checkpoints", holder.clone());
        leases.push(periodic.clone());
        let log = AuditLog::start(
            state.clone(),
            Some(signer.clone()),
            warden_store::audit::Options {
                periodic: Some(periodic),
                ..Default::default()
            },
        );
        Some(Audit { log, signer })
    } else {
        tracing::warn!(
            "`audit: {{ enabled: false }}`: calls are NOT recorded; use this for benchmarks only"
        );
        None
    };
    // Write confirmations live with the rest of the state, so any instance can redeem them;
    // without authentication there is no shared state, and memory suffices.
    let confirmations: Arc<dyn warden_core::confirm::Ledger> = match project.auth.mode {
        AuthMode::OAuth => Arc::new(warden_auth::confirm::StoreLedger::new(state.clone())),
        AuthMode::None => Arc::new(warden_auth::confirm::MemoryLedger::default()),
    };
    let sink = sink_of(audit.as_ref());
    let manifest = audit_cmd::manifest_event(&project);
    let retention_days = project.audit.retention_days;
    let purge_every = project.audit.purge_every;
    let authenticated = project.auth.mode == AuthMode::OAuth;
    if !authenticated && !project.limits.is_empty() {
        tracing::warn!(
            "`limits` does nothing under `auth: none`: limits are counted per user, client and organisation, and there are none"
        );
    }
    let mut pipeline = Pipeline::open(Arc::new(project), confirmations, sink.clone())
        .await
        .context("cannot open the project's data")?;
    // Files: objects per organisation, URLs signed with a key kept outside the database.
    if let Some(files) = &pipeline.project().files {
        let signer = warden_core::files::UrlSigner::load_or_create(&files.signing_key)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let service = warden_core::pipeline::Files {
            store: Arc::new(warden_core::files::Directory::new(files.dir.clone())),
            signer,
            max_upload: files.max_upload,
            base_url: std::sync::OnceLock::new(),
        };
        pipeline = pipeline.with_files(Arc::new(service));
    }
    // The project's `limits`, in buckets every instance shares. Without authentication
    // there is no caller to limit.
    if authenticated {
        // Cursors of paged tools are signed with a key every instance on this store shares.
        let key = state
            .server_key("table_cursors")
            .await
            .context("cannot read the cursor key from the state store")?;
        pipeline = pipeline.with_cursor_key(warden_core::pipeline::CursorKey::new(key));
        let buckets = warden_auth::rate::SharedLimiter::new(state.clone());
        pipeline =
            pipeline.with_limiter(Arc::new(warden_auth::rate::CallBuckets(Arc::new(buckets))));
    }
    // The tool manifest this process serves is on the record before any call is.
    sink.record(manifest)
        .await
        .context("cannot record the project load; refusing to serve without an audit trail")?;
    if let Some(a) = &audit {
        let lease = Lease::keep(state.clone(), "audit_retention", holder.clone());
        leases.push(lease.clone());
        audit_cmd::start_retention(
            state.clone(),
            a.log.clone(),
            a.signer.clone(),
            retention_days,
            purge_every,
            lease,
        );
    }
    Ok(Opened {
        pipeline: LivePipeline::new(pipeline),
        state,
        audit,
        leases: std::sync::Mutex::new(leases),
        holder,
    })
}
