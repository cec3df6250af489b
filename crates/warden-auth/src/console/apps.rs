//! Connected apps: the person's own active OAuth grants in the organisation, and revoking
//! one (the grant and every token issued from it, in one transaction).

use chrono::{DateTime, Utc};
use warden_store::{GrantId, Role, Scopes};

use super::{Admin, Console, ConsoleError, Member};

/// One app the person connected, as the console lists it.
#[derive(Debug, Clone)]
pub struct ConnectedApp {
    pub grant: GrantId,
    pub client_name: String,
    pub scopes: Scopes,
    /// The role bound to its tokens (at consent, or at the last refresh).
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// Whose it is (the Admin's organisation-wide list).
    pub user_email: String,
}

impl Console {
    /// The member's own active grants in their organisation. A grant's last use is not
    /// recorded by the store, so none is given.
    pub async fn apps(&self, m: &Member) -> Result<Vec<ConnectedApp>, ConsoleError> {
        Ok(self
            .store
            .list_grants(m.org.id)
            .await?
            .into_iter()
            .filter(|(g, _, _)| g.user_id == m.user.id)
            .map(|(g, c, _)| ConnectedApp {
                grant: g.id,
                client_name: c.name,
                scopes: g.scopes,
                role: g.role,
                created_at: g.created_at,
                user_email: m.user.email.clone(),
            })
            .collect())
    }

    /// Every active grant in the Admin's organisation, whoever it belongs to.
    pub async fn org_apps(&self, admin: &Admin) -> Result<Vec<ConnectedApp>, ConsoleError> {
        Ok(self
            .store
            .list_grants(admin.0.org.id)
            .await?
            .into_iter()
            .map(|(g, c, u)| ConnectedApp {
                grant: g.id,
                client_name: c.name,
                scopes: g.scopes,
                role: g.role,
                created_at: g.created_at,
                user_email: u.email,
            })
            .collect())
    }

    /// Revokes the member's own grant `grant` (named by the form, so checked here against
    /// the organisation and the owner): its tokens stop working on their next request.
    pub async fn revoke_app(&self, m: &Member, grant: &str) -> Result<String, ConsoleError> {
        self.revoke_grant(m, grant, true).await
    }

    /// Revokes any active grant `grant` of the Admin's organisation.
    pub async fn revoke_org_app(&self, admin: &Admin, grant: &str) -> Result<String, ConsoleError> {
        self.revoke_grant(&admin.0, grant, false).await
    }

    /// Revokes `grant` if it belongs to `m`'s organisation and, when `own_only`, to `m`.
    async fn revoke_grant(
        &self,
        m: &Member,
        grant: &str,
        own_only: bool,
    ) -> Result<String, ConsoleError> {
        let not_found = || {
            ConsoleError::NotFound(
                if own_only {
                    "That app is not connected to your account here (it may already be revoked)."
                } else {
                    "That app is not connected in this organisation (it may already be revoked)."
                }
                .into(),
            )
        };
        let g = match grant.parse::<GrantId>() {
            Ok(id) => self.store.grant(&id).await?,
            Err(_) => None,
        };
        // A grant's organisation and owner never change, so checking before acting is sound.
        let Some(g) = g.filter(|g| {
            g.org_id == m.org.id && (!own_only || g.user_id == m.user.id) && g.revoked_at.is_none()
        }) else {
            return Err(self.refuse(m, "app_revoke", grant, not_found()).await);
        };
        let id = g.id;
        let client = self
            .store
            .client(&g.client_id)
            .await?
            .map(|c| c.name)
            .unwrap_or_default();
        if !self
            .store
            .revoke_grant(&id, "revoked in the console", Utc::now())
            .await?
        {
            // Revoked meanwhile (another tab, the CLI): nothing left to do.
            return Err(not_found());
        }
        let mut e = m.event("app_revoked", g.client_id.to_string());
        e.detail = Some(serde_json::json!({
            "grant": id.to_string(),
            "client": g.client_id.to_string(),
            "client_name": client,
            "connections_revoked": 1,
            "owner": g.user_id.to_string(),
        }));
        self.record(e).await?;
        Ok(client)
    }
}
