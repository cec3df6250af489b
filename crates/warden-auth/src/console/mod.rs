//! The web console's rules, with no HTTP: what a signed-in person may see and change about
//! their own access (connected apps, API keys) and, for an Admin, about their organisation's
//! members. Every change is recorded in the organisation's chain with source `console`,
//! naming the acting person and the target.
//!
//! Permits, not checks: [`Console::member`] is the only way to get a [`Member`] (the person
//! and the one organisation they act in, taken from their own memberships), and every
//! operation takes one; [`Console::admin`] turns a `Member` into an [`Admin`] only for the
//! Admin role, and records the refusal otherwise. An operation on an object (a key, a grant,
//! a member) matches it against the permit's organisation, and the owner where it has one,
//! in the store's own statement or before acting, so an id of someone else's changes nothing.
//!
//! Actions that mint a credential, grant power or remove someone (create or regenerate a
//! key, change a role, add or remove a member) also need a recent proof of the password
//! ([`crate::server::REAUTH_WINDOW`]); each such operation asks [`Console::recent`] first,
//! which records the refusal when the proof is stale. Revocations never need one.
//!
//! One file per job: `apps.rs` (connected apps), `keys.rs` (API keys), `members.rs` (the
//! Admin's member list and invitations), `tools.rs` (what each role may use, and why),
//! `trail.rs` (the member's own activity, and the Admin's audit pages: records,
//! verification, signed export); this file holds the permits, the errors and the events.

mod apps;
mod keys;
mod members;
mod tools;
mod trail;

use std::sync::Arc;

use warden_core::audit::{AuditError, Event, Sink, Source};
use warden_store::{Organization, Role, Store, StoreError, User};

use crate::server::SignedIn;
use crate::token::RandomnessError;

pub use apps::ConnectedApp;
pub use keys::{CreatedKey, RegeneratedKey};
pub use members::{Added, OrgMember};
pub use tools::{RoleAccess, ToolAccess, WhyAnswer};
pub use trail::{ChainStatus, ExportFile, PAGE_SIZE, TrailKeys, TrailPage, TrailQuery};

/// Why a console request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The person is a member of no organisation.
    #[error("you are not a member of any organisation yet; ask an Admin to add you")]
    NoMembership,
    /// `?org=` named an organisation the person is not a member of (or none at all).
    #[error("you are not a member of an organisation called {0:?}")]
    NotYourOrg(String),
    /// The organisation signs its members in through an identity provider only, and this
    /// session was opened with a password or a sign-in link.
    #[error("{0} signs its members in through its identity provider only")]
    ProviderOnly(String),
    /// An Admin page or action asked for by someone who is not an Admin there.
    #[error("only an Admin of {0} can do this")]
    NotAdmin(String),
    /// The key, app or member named is not there (or not the person's own).
    #[error("{0}")]
    NotFound(String),
    /// The action needs a recent proof of the password, and the last one is too old.
    #[error(
        "this needs your password again: your last sign-in or confirmation was more than 5 minutes ago"
    )]
    Reauthenticate,
    /// The form's input is not valid; the message says how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// A refusal could not be recorded; it is still a refusal.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The change was made, but its record could not be: the operator must know.
    #[error(
        "the change was made, but the audit trail could not record it ({0}); tell your Warden operator"
    )]
    Unrecorded(AuditError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
}

/// What the edge knows about the request, for the record.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub remote_addr: Option<String>,
    pub user_agent: Option<String>,
}

/// A signed-in person acting in one of their organisations. Only [`Console::member`]
/// makes one, from the person's own memberships.
#[derive(Debug, Clone)]
pub struct Member {
    user: User,
    org: Organization,
    role: Role,
    /// Every organisation the person is a member of, with their role, for the selector.
    orgs: Vec<(Organization, Role)>,
    origin: Origin,
    /// When the person last proved their password in this session.
    authenticated_at: chrono::DateTime<chrono::Utc>,
}

impl Member {
    pub fn user(&self) -> &User {
        &self.user
    }

    pub fn org(&self) -> &Organization {
        &self.org
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn orgs(&self) -> &[(Organization, Role)] {
        &self.orgs
    }

    /// An event of `kind` on `target`, by this person, in their organisation.
    fn event(&self, kind: &'static str, target: impl Into<String>) -> Event {
        let mut e = Event::new(kind, Source::Console, target)
            .org(self.org.slug.clone())
            .user(self.user.id.to_string(), self.user.email.clone());
        e.auth_method = Some("session".into());
        e.remote_addr = self.origin.remote_addr.clone();
        e.user_agent = self.origin.user_agent.clone();
        e
    }
}

/// A [`Member`] whose role in the organisation is Admin. Only [`Console::admin`] makes one.
#[derive(Debug, Clone)]
pub struct Admin(Member);

impl Admin {
    pub fn member(&self) -> &Member {
        &self.0
    }
}

/// The console's operations over the state store and the audit trail.
#[derive(Debug, Clone)]
pub struct Console {
    store: Store,
    audit: Arc<dyn Sink>,
    /// For the trail pages' verification and export; `None` when audit is disabled.
    trail: Option<TrailKeys>,
    /// Organisations whose console needs a session opened through an identity provider.
    provider_only: Vec<String>,
}

impl Console {
    pub fn new(store: Store, audit: Arc<dyn Sink>) -> Self {
        Self {
            store,
            audit,
            trail: None,
            provider_only: Vec::new(),
        }
    }

    /// Organisations (slugs) whose members must sign in through an identity provider.
    pub fn with_provider_only(mut self, orgs: Vec<String>) -> Self {
        self.provider_only = orgs;
        self
    }

    /// With the audit key the trail pages verify from and sign exports with.
    pub fn with_trail(mut self, trail: Option<TrailKeys>) -> Self {
        self.trail = trail;
        self
    }

    /// The signed-in `user` acting in the organisation `wanted` names (by slug), or in their
    /// first organisation when it names none. The organisation is one of the user's own
    /// memberships, read now; nothing else can choose it.
    pub async fn member(
        &self,
        signed_in: SignedIn,
        wanted: Option<&str>,
        origin: Origin,
    ) -> Result<Member, ConsoleError> {
        let SignedIn {
            user,
            authenticated_at,
            identity,
        } = signed_in;
        let orgs: Vec<(Organization, Role)> = self
            .store
            .orgs_of_user(user.id)
            .await?
            .into_iter()
            .map(|(o, m)| (o, m.role))
            .collect();
        let chosen = match wanted.filter(|w| !w.is_empty()) {
            Some(slug) => orgs
                .iter()
                .find(|(o, _)| o.slug == slug)
                .ok_or_else(|| ConsoleError::NotYourOrg(slug.to_string()))?,
            None => orgs.first().ok_or(ConsoleError::NoMembership)?,
        };
        let (org, role) = chosen.clone();
        if identity.is_none() && self.provider_only.contains(&org.slug) {
            return Err(ConsoleError::ProviderOnly(org.name));
        }
        Ok(Member {
            user,
            org,
            role,
            orgs,
            origin,
            authenticated_at,
        })
    }

    /// Leave for an action that needs a recent proof of the password, or the refusal,
    /// recorded: the form is not acted on, and the page asks for the password.
    pub async fn recent(&self, m: &Member, action: &str) -> Result<(), ConsoleError> {
        if crate::server::recently_authenticated(m.authenticated_at, chrono::Utc::now()) {
            return Ok(());
        }
        let e = m.event("console_refused", action).denied(
            "authenticate",
            "console.reauth_required",
            format!(
                "{action} needs the password again; it was last proved at {}",
                m.authenticated_at.to_rfc3339()
            ),
        );
        self.audit.record(e).await?;
        Err(ConsoleError::Reauthenticate)
    }

    /// An [`Admin`] permit for `member`, or the refusal, recorded.
    pub async fn admin(&self, member: &Member, page: &str) -> Result<Admin, ConsoleError> {
        if member.role == Role::Admin {
            return Ok(Admin(member.clone()));
        }
        let refusal = ConsoleError::NotAdmin(member.org.name.clone());
        let e = member.event("console_refused", page).denied(
            "role",
            "console.admin_only",
            format!(
                "{} pages are for Admins; this person is {}",
                page,
                member.role.title()
            ),
        );
        self.audit.record(e).await?;
        Err(refusal)
    }

    /// Records that a console form from `m` for `action` came without the page's CSRF token
    /// (a cross-site post, or a stale page); nothing was done.
    pub async fn refuse_forged(&self, m: &Member, action: &str) -> Result<(), ConsoleError> {
        let e = m.event("console_refused", action).denied(
            "csrf",
            "console.csrf",
            "the form's CSRF token was missing or did not match; nothing was done",
        );
        Ok(self.audit.record(e).await?)
    }

    /// Records that `m` named `target` for `action` and it is not theirs to act on (another
    /// person's, another organisation's, or no such thing), and returns the refusal.
    async fn refuse(
        &self,
        m: &Member,
        action: &str,
        target: &str,
        refusal: ConsoleError,
    ) -> ConsoleError {
        let mut e = m.event("console_refused", action).denied(
            "lookup",
            "console.not_found",
            refusal.to_string(),
        );
        e.detail = Some(serde_json::json!({ "target": target }));
        match self.audit.record(e).await {
            Ok(()) => refusal,
            Err(a) => ConsoleError::Audit(a),
        }
    }

    /// Records a change just made. It cannot be undone, so a failure is returned to say the
    /// trail lacks it.
    async fn record(&self, e: Event) -> Result<(), ConsoleError> {
        self.audit.record(e).await.map_err(ConsoleError::Unrecorded)
    }
}

#[cfg(test)]
mod tests;
