//! The Admin's member list: every member of the organisation with their role; changing a
//! role (API keys and sessions take it on their next request, OAuth tokens at their next
//! refresh) and removing a member (their connected apps revoked at once), as
//! `warden member set-role` and `warden member remove` do.

use chrono::{DateTime, Utc};
use warden_store::{Role, UserId};

use super::{Admin, Console, ConsoleError};

/// One member, as the Admin's list shows them.
#[derive(Debug, Clone)]
pub struct OrgMember {
    pub user: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub since: DateTime<Utc>,
}

fn not_found() -> ConsoleError {
    ConsoleError::NotFound("That person is not a member of this organisation.".into())
}

/// An Admin acting on their own membership could lock everyone out; that is the CLI's job.
fn not_yourself(admin: &Admin, user: UserId) -> Result<(), ConsoleError> {
    if admin.0.user.id == user {
        return Err(ConsoleError::Invalid(
            "You cannot change your own role or remove yourself here; ask another Admin, or use `warden member` on the server."
                .into(),
        ));
    }
    Ok(())
}

impl Console {
    /// Every member of the Admin's organisation.
    pub async fn members(&self, admin: &Admin) -> Result<Vec<OrgMember>, ConsoleError> {
        Ok(self
            .store
            .list_members(admin.0.org.id)
            .await?
            .into_iter()
            .map(|(u, m)| OrgMember {
                user: u.id,
                email: u.email,
                name: u.display_name,
                role: m.role,
                since: m.created_at,
            })
            .collect())
    }

    /// Gives member `user` the role named `role`; only an existing member is changed.
    pub async fn set_role(
        &self,
        admin: &Admin,
        user: &str,
        role: &str,
    ) -> Result<(String, Role, Role), ConsoleError> {
        let role: Role = role
            .parse()
            .map_err(|e: warden_store::UnknownRole| ConsoleError::Invalid(e.to_string()))?;
        let org = &admin.0.org;
        let before = match user.parse::<UserId>() {
            Ok(id) => {
                not_yourself(admin, id)?;
                self.store
                    .membership(org.id, id)
                    .await?
                    .map(|m| (id, m.role))
            }
            Err(_) => None,
        };
        let Some((id, before)) = before else {
            return Err(self
                .refuse(&admin.0, "role_change", user, not_found())
                .await);
        };
        if self.store.change_role(org.id, id, role).await?.is_none() {
            // Removed meanwhile.
            return Err(not_found());
        }
        let email = self
            .store
            .user_by_id(id)
            .await?
            .map(|u| u.email)
            .unwrap_or_default();
        let mut e = admin.0.event("role_changed", email.clone());
        e.detail = Some(serde_json::json!({
            "member": id.to_string(),
            "member_email": email,
            "from": before.to_string(),
            "to": role.to_string(),
        }));
        self.record(e).await?;
        Ok((email, before, role))
    }

    /// Removes member `user` from the organisation and revokes their connected apps there.
    pub async fn remove_member(&self, admin: &Admin, user: &str) -> Result<String, ConsoleError> {
        let org = &admin.0.org;
        let removed = match user.parse::<UserId>() {
            Ok(id) => {
                not_yourself(admin, id)?;
                self.store
                    .remove_membership(org.id, id)
                    .await?
                    .then_some(id)
            }
            Err(_) => None,
        };
        let Some(id) = removed else {
            return Err(self
                .refuse(&admin.0, "member_remove", user, not_found())
                .await);
        };
        let revoked = self
            .store
            .revoke_grants_of_member(org.id, id, "member removed", Utc::now())
            .await?;
        let email = self
            .store
            .user_by_id(id)
            .await?
            .map(|u| u.email)
            .unwrap_or_default();
        let mut e = admin.0.event("member_removed", email.clone());
        e.detail = Some(serde_json::json!({
            "member": id.to_string(),
            "member_email": email,
            "grants_revoked": revoked,
        }));
        self.record(e).await?;
        Ok(email)
    }
}
