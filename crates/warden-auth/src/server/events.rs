//! The audit events the authorization server records (grant events from the OAuth
//! endpoints, misuse and reuse of codes and refresh tokens, sign-in events), and `record`,
//! through which they reach the audit sink.

use warden_core::audit::{AuditError, Event, Source};
use warden_store::{Grant, GrantId, OAuthClient};

use super::AuthServer;

impl AuthServer {
    /// Records a security event; the operation it describes fails if it cannot be recorded.
    pub(super) async fn record(&self, event: Event) -> Result<(), AuditError> {
        self.audit.record(event).await
    }

    /// An event about a grant (its organisation, user and client), from the OAuth endpoints.
    /// `email` is the grant's user's, when the caller has already read the user.
    pub(super) async fn grant_event(
        &self,
        kind: &'static str,
        grant: &Grant,
        email: Option<String>,
        addr: &str,
    ) -> Event {
        let mut e = Event::new(kind, Source::Dashboard, kind);
        e.org = self
            .store
            .org_by_id(grant.org_id)
            .await
            .ok()
            .flatten()
            .map(|o| o.slug);
        e.user_id = Some(grant.user_id.to_string());
        e.user_email = email;
        e.auth_method = Some("oauth".into());
        e.credential = Some(grant.client_id.to_string());
        e.remote_addr = Some(addr.to_string()).filter(|a| !a.is_empty());
        e.detail = Some(
            serde_json::json!({"grant": grant.id.to_string(), "scopes": grant.scopes.to_string()}),
        );
        e
    }

    /// A code or refresh token of one client presented by another: the grant was revoked.
    pub(super) async fn record_misuse(
        &self,
        grant: &Grant,
        presented_by: &OAuthClient,
        addr: &str,
        what: &str,
    ) -> Result<(), AuditError> {
        let mut e = self
            .grant_event("token_misuse_detected", grant, None, addr)
            .await
            .denied(
                "token",
                "token.other_client",
                format!("{what} was presented by another client; its grant was revoked"),
            );
        e.detail = Some(serde_json::json!({
            "grant": grant.id.to_string(),
            "presented_by": presented_by.id.to_string(),
            "grant_revoked": true,
        }));
        self.record(e).await
    }

    /// An event about a grant known only by id (it was revoked on reuse).
    pub(super) fn grant_id_event(
        kind: &'static str,
        grant_id: &GrantId,
        addr: &str,
        reason: &str,
    ) -> Event {
        let mut e =
            Event::new(kind, Source::Dashboard, kind).denied("token", kind, reason.to_string());
        e.auth_method = Some("oauth".into());
        e.remote_addr = Some(addr.to_string()).filter(|a| !a.is_empty());
        e.detail = Some(serde_json::json!({"grant": grant_id.to_string(), "grant_revoked": true}));
        e
    }

    pub(super) fn login_event(kind: &'static str, method: &str, addr: &str) -> Event {
        let mut e = Event::new(kind, Source::Dashboard, kind);
        e.auth_method = Some(method.to_string());
        e.remote_addr = Some(addr.to_string()).filter(|a| !a.is_empty());
        e
    }
}
