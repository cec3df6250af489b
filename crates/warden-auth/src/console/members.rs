//! The Admin's member list: every member of the organisation with their role; changing a
//! role (API keys and sessions take it on their next request, OAuth tokens at their next
//! refresh) and removing a member (their connected apps revoked at once), as
//! `warden member set-role` and `warden member remove` do; and adding someone by e-mail
//! (`warden member add`), with an invitation link when they have no account yet.

use chrono::{DateTime, Utc};
use warden_store::{Role, UserId};

use super::{Admin, Console, ConsoleError};
use crate::token::{self, RawToken, TokenKind};

/// How long an invitation link works: long enough to reach someone, once.
pub const INVITATION_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 60 * 60);

/// Someone added to the organisation.
#[derive(Debug)]
pub enum Added {
    /// They had an account: a member now, with their role from their next request.
    Existing { email: String, role: Role },
    /// They had none: an account without a password was made, and this single-use link
    /// signs them in (for [`INVITATION_TTL`]); it is shown once, to the Admin.
    Invited {
        email: String,
        role: Role,
        link: RawToken,
    },
}

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
        self.recent(&admin.0, "role_change").await?;
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
        self.recent(&admin.0, "member_remove").await?;
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

    /// Adds the person with this e-mail to the Admin's organisation as `role`; someone with
    /// no account gets one (no password) and an invitation link. Someone already a member is
    /// refused, with how to change their role instead.
    pub async fn add_member(
        &self,
        admin: &Admin,
        email: &str,
        role: &str,
    ) -> Result<Added, ConsoleError> {
        self.recent(&admin.0, "member_add").await?;
        let email = email.trim();
        if email.is_empty()
            || email.chars().count() > 254
            || email.chars().any(|c| c.is_control() || c.is_whitespace())
            || !email.contains('@')
        {
            return Err(ConsoleError::Invalid(
                "Give the person's e-mail address, such as ana@example.com.".into(),
            ));
        }
        let role: Role = role
            .parse()
            .map_err(|e: warden_store::UnknownRole| ConsoleError::Invalid(e.to_string()))?;
        let org = &admin.0.org;
        let (user, invited) = match self.store.user_by_email(email).await? {
            Some(u) => (u, false),
            None => {
                let display = email.split('@').next().unwrap_or(email);
                let u = self
                    .store
                    .create_user(email, display)
                    .await
                    .map_err(|e| match e {
                        e @ warden_store::StoreError::Invalid { .. } => {
                            ConsoleError::Invalid(format!("That e-mail address is not valid: {e}"))
                        }
                        other => other.into(),
                    })?;
                (u, true)
            }
        };
        if user.disabled_at.is_some() {
            return Err(ConsoleError::Invalid(format!(
                "{} was removed from Warden (the account is kept, disabled, so the audit trail still names it) and cannot be added back here.",
                user.email
            )));
        }
        if self
            .store
            .add_membership(org.id, user.id, role)
            .await?
            .is_none()
        {
            return Err(ConsoleError::Invalid(format!(
                "{} is already a member of {}; change their role in the list below instead.",
                user.email, org.name
            )));
        }
        let link = if invited {
            let link = token::generate(TokenKind::MagicLink)?;
            let now = Utc::now();
            let until = now + chrono::Duration::from_std(INVITATION_TTL).unwrap_or_default();
            self.store
                .create_magic_link(link.hash().as_str(), user.id, now, until)
                .await?;
            Some(link)
        } else {
            None
        };
        let kind = if invited {
            "member_invited"
        } else {
            "member_added"
        };
        let mut e = admin.0.event(kind, user.email.clone());
        e.detail = Some(serde_json::json!({
            "member": user.id.to_string(),
            "member_email": user.email,
            "role": role.to_string(),
            "account_created": invited,
        }));
        self.record(e).await?;
        Ok(match link {
            Some(link) => Added::Invited {
                email: user.email,
                role,
                link,
            },
            None => Added::Existing {
                email: user.email,
                role,
            },
        })
    }
}
