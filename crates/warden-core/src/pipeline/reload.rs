//! Reload: the pipeline a running server serves, replaced whole by a re-read project.
//!
//! Pipeline position: around it. [`LivePipeline`] holds the pipeline serving now; the edge
//! takes it once per request ([`LivePipeline::current`]) and runs that request to its end on
//! what it took. A reload builds a complete new [`Pipeline`] from a project that passed
//! every check ([`Pipeline::reloaded`]) and then replaces the old one in one atomic store
//! ([`LivePipeline::replace`]): a request sees the old project or the new one, never a mix,
//! and a call in flight keeps the `Arc` it took, so it finishes on the old tools and
//! policies even if it outlives the swap.
//!
//! What a new project shares with the old: the data pools (the `data` section must be
//! unchanged), the confirmation ledger, the audit sink and the unauthenticated tally. What
//! it does not: tools, resources, prompts, policies and their compiled templates. Sections
//! the running server built its listener, authentication or audit trail from cannot change
//! here; [`RestartNeeded`] names them.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{Pipeline, template};
use crate::project::{DataConfig, Project};

/// The pipeline serving now, shared by every part of the edge. Cloning shares it.
#[derive(Clone)]
pub struct LivePipeline(Arc<ArcSwap<Pipeline>>);

impl std::fmt::Debug for LivePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LivePipeline")
            .field(&self.0.load().project().name)
            .finish()
    }
}

impl LivePipeline {
    pub fn new(pipeline: Pipeline) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(pipeline)))
    }

    /// The pipeline to serve one request with. Take it once per request and keep it: a
    /// request that asked twice could see two projects.
    pub fn current(&self) -> Arc<Pipeline> {
        self.0.load_full()
    }

    /// Serves `next` to every request that starts from now on; returns the one it replaced,
    /// which requests already holding it keep until they finish.
    pub fn replace(&self, next: Pipeline) -> Arc<Pipeline> {
        self.0.swap(Arc::new(next))
    }
}

/// Sections of the project file that only a restart applies, as they are written there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartSection {
    Server,
    Auth,
    State,
    Tokens,
    Login,
    Audit,
    Data,
    Files,
}

impl RestartSection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Auth => "auth",
            Self::State => "state",
            Self::Tokens => "tokens",
            Self::Login => "login",
            Self::Audit => "audit",
            Self::Data => "data",
            Self::Files => "files",
        }
    }
}

/// A re-read project changed sections the running server cannot change: nothing was
/// reloaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {} changed, which only a restart applies; nothing was reloaded: restart `warden serve` to apply it, or undo that change and reload again",
    sections_named(.sections)
)]
pub struct RestartNeeded {
    pub sections: Vec<RestartSection>,
}

fn sections_named(sections: &[RestartSection]) -> String {
    let names: Vec<String> = sections
        .iter()
        .map(|s| format!("`{}`", s.as_str()))
        .collect();
    match names.as_slice() {
        [one] => format!("{one} section"),
        [init @ .., last] => format!("{} and {last} sections", init.join(", ")),
        [] => "project".to_string(),
    }
}

impl Pipeline {
    /// A pipeline serving `project` in place of this one's, sharing this one's data pools,
    /// confirmation ledger, audit sink and unauthenticated tally. Refused, with nothing
    /// built, when a section that only a restart applies differs.
    pub fn reloaded(&self, project: Arc<Project>) -> Result<Pipeline, RestartNeeded> {
        let sections = restart_sections_changed(&self.project, &project);
        if !sections.is_empty() {
            return Err(RestartNeeded { sections });
        }
        Ok(Pipeline {
            templates: Arc::new(template::Templates::compile(&project)),
            project,
            data: self.data.clone(),
            confirmations: self.confirmations.clone(),
            audit: self.audit.clone(),
            unauthenticated: self.unauthenticated.clone(),
            limiter: self.limiter.clone(),
            limited: self.limited.clone(),
            cursors: self.cursors.clone(),
            files: self.files.clone(),
        })
    }
}

/// The sections that differ between `old` and `new` and that only a restart applies: the
/// listener, TLS and limits (`server`), authentication and the state store (`auth`,
/// `state`, `tokens`, `login`), the audit trail and its key (`audit`), the open data
/// pools (`data`) and the file service (`files`).
fn restart_sections_changed(old: &Project, new: &Project) -> Vec<RestartSection> {
    let (a, b) = (&old.auth, &new.auth);
    [
        (RestartSection::Server, old.server == new.server),
        (RestartSection::Auth, a.mode == b.mode),
        (RestartSection::State, a.state == b.state),
        (
            RestartSection::Tokens,
            (a.access_ttl, a.refresh_ttl, a.code_ttl) == (b.access_ttl, b.refresh_ttl, b.code_ttl),
        ),
        (RestartSection::Login, a.mailer == b.mailer),
        (RestartSection::Audit, old.audit == new.audit),
        (RestartSection::Data, same_data(&old.data, &new.data)),
        // The file service (its directory, key and limit) is opened at start.
        (RestartSection::Files, old.files == new.files),
    ]
    .into_iter()
    .filter_map(|(section, same)| (!same).then_some(section))
    .collect()
}

/// The same data source with the same limits; where the field is written may move.
fn same_data(a: &DataConfig, b: &DataConfig) -> bool {
    a.location == b.location
        && a.query_timeout == b.query_timeout
        && a.max_rows == b.max_rows
        && a.max_connections == b.max_connections
}

#[cfg(test)]
mod tests;
