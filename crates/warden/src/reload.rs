//! Reloading a running server's project (SIGHUP, which `warden reload` sends): the file is
//! read and checked exactly as at start, the new pipeline is built beside the old one
//! (`Pipeline::reloaded`, which refuses a change to a section only a restart applies), its
//! `project_reloaded` record is made durable, and only then does it replace the old one in a
//! single swap. Any failure before the swap changes nothing: the old project keeps serving,
//! and the log (file and line of each problem) and a `project_reload_failed` record say why.

use std::path::Path;
use std::sync::Arc;

use warden_core::audit::Sink;
use warden_core::pipeline::{LivePipeline, Pipeline};

use crate::audit_cmd;
use crate::open::Opened;

/// Problems kept in a `project_reload_failed` record (all of them go to the log).
const RECORDED_PROBLEMS: usize = 10;

/// What a reload needs of the running server: the pipeline it serves and its audit trail.
#[derive(Clone)]
pub(crate) struct Reload {
    live: LivePipeline,
    sink: Arc<dyn Sink>,
}

impl Reload {
    pub(crate) fn of(opened: &Opened) -> Self {
        Self {
            live: opened.pipeline.clone(),
            sink: opened.sink(),
        }
    }

    /// Re-reads the project file the server serves and swaps it in, or changes nothing and
    /// says why. Every outcome is logged and recorded; none stops the server.
    pub(crate) async fn run(&self, trigger: &str) {
        let current = self.live.current();
        let file = current.project().file.clone();
        tracing::info!(file = %file.display(), "{trigger}: reloading the project file");
        let next = match self.build(&current, &file).await {
            Some(next) => next,
            None => return,
        };
        let summary = format!(
            "{} tools, {} resources, {} prompts, policy version {}",
            next.project().tools.len(),
            next.project().resources.len(),
            next.project().prompts.len(),
            next.project().policies.version
        );
        // The new manifest is on the record before any call runs on it, as at start.
        if let Err(e) = self
            .sink
            .record(audit_cmd::reloaded_event(next.project()))
            .await
        {
            tracing::error!(
                file = %file.display(),
                error = %e,
                "reload refused: it could not be recorded; the running project keeps serving"
            );
            return;
        }
        // Calls in flight keep the pipeline they took; new requests take this one.
        self.live.replace(next);
        tracing::info!(file = %file.display(), "project reloaded: {summary}");
    }

    /// The new pipeline, or `None` when the file fails a check or changes a section only
    /// a restart applies (logged and recorded here).
    async fn build(&self, current: &Pipeline, file: &Path) -> Option<Pipeline> {
        let project = match warden_core::tables::load_file(file, false).await {
            Ok((p, _)) => p,
            Err(e) => {
                for problem in &e.errors {
                    tracing::error!("{problem}");
                }
                let reason = format!(
                    "{} problem(s) in {}; nothing was reloaded: fix them (`warden check -p {}` lists them) and reload again",
                    e.errors.len(),
                    file.display(),
                    file.display()
                );
                tracing::error!(file = %file.display(), "reload refused: {reason}");
                let problems: Vec<String> = e
                    .errors
                    .iter()
                    .take(RECORDED_PROBLEMS)
                    .map(ToString::to_string)
                    .collect();
                self.record_failure(
                    current,
                    "invalid_file",
                    reason,
                    serde_json::json!({ "file": file.display().to_string(), "problems": problems }),
                )
                .await;
                return None;
            }
        };
        match current.reloaded(Arc::new(project)) {
            Ok(next) => Some(next),
            Err(restart) => {
                tracing::error!(file = %file.display(), "reload refused: {restart}");
                let sections: Vec<&str> = restart.sections.iter().map(|s| s.as_str()).collect();
                self.record_failure(
                    current,
                    "restart_needed",
                    restart.to_string(),
                    serde_json::json!({ "file": file.display().to_string(), "sections": sections }),
                )
                .await;
                None
            }
        }
    }

    async fn record_failure(
        &self,
        current: &Pipeline,
        rule: &str,
        reason: String,
        detail: serde_json::Value,
    ) {
        let event = audit_cmd::reload_failed_event(&current.project().name, rule, reason, detail);
        if let Err(e) = self.sink.record(event).await {
            tracing::error!(error = %e, "could not record the refused reload");
        }
    }
}
