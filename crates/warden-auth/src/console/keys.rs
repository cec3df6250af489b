//! API keys: the person's own keys in the organisation; creating one (the secret returned
//! once, only its hash stored), revoking one, and regenerating one (a new secret for the same
//! name and scopes, the old key revoked in the same transaction, one record naming both).

use chrono::Utc;
use warden_store::{ApiKey, ApiKeyId, Scopes};

use super::{Admin, Console, ConsoleError, Member};
use crate::token::{self, RawToken, TokenKind};

/// Longest key name the console accepts.
const MAX_NAME_CHARS: usize = 64;

/// A key just made, with its secret: shown once, then gone.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: RawToken,
}

/// A key regenerated: the one revoked, and its replacement with its secret.
#[derive(Debug)]
pub struct RegeneratedKey {
    pub old: ApiKey,
    pub new: CreatedKey,
}

fn not_found() -> ConsoleError {
    ConsoleError::NotFound(
        "That API key is not one of your active keys here (it may already be revoked).".into(),
    )
}

/// The scopes a form may ask for: read, or read and write.
pub fn parse_scopes(raw: &str) -> Result<Scopes, ConsoleError> {
    let s: Scopes = raw.parse().map_err(|_| {
        ConsoleError::Invalid("Choose the key's access: read, or read and write.".into())
    })?;
    if s == Scopes::READ || s == Scopes::READ_WRITE {
        Ok(s)
    } else {
        Err(ConsoleError::Invalid(
            "A key can read, or read and write; write alone is not offered.".into(),
        ))
    }
}

impl Console {
    /// The member's own keys in their organisation, revoked ones included, newest first.
    pub async fn keys(&self, m: &Member) -> Result<Vec<ApiKey>, ConsoleError> {
        let mut keys: Vec<ApiKey> = self
            .store
            .list_api_keys(m.org.id)
            .await?
            .into_iter()
            .filter(|(k, _)| k.user_id == m.user.id)
            .map(|(k, _)| k)
            .collect();
        keys.reverse();
        Ok(keys)
    }

    /// A new key for the member, named `name`, with `scopes` (`mcp:read` or
    /// `mcp:read mcp:write`).
    pub async fn create_key(
        &self,
        m: &Member,
        name: &str,
        scopes: &str,
    ) -> Result<CreatedKey, ConsoleError> {
        self.recent(m, "key_create").await?;
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(ConsoleError::Invalid(format!(
                "Give the key a name of 1 to {MAX_NAME_CHARS} characters, such as \"laptop\"."
            )));
        }
        let scopes = parse_scopes(scopes)?;
        let secret = token::generate(TokenKind::ApiKey)?;
        let key = self
            .store
            .create_api_key(
                secret.hash().as_str(),
                &secret.display_prefix(),
                m.org.id,
                m.user.id,
                name,
                scopes,
                Utc::now(),
            )
            .await?;
        let mut e = m.event("key_created", name);
        e.detail =
            Some(serde_json::json!({"key": key.id.to_string(), "scopes": scopes.to_string()}));
        self.record(e).await?;
        Ok(CreatedKey { key, secret })
    }

    /// Revokes the member's own key `key`: it stops working on its next request.
    pub async fn revoke_key(&self, m: &Member, key: &str) -> Result<ApiKey, ConsoleError> {
        let revoked = match key.parse::<ApiKeyId>() {
            Ok(id) => {
                self.store
                    .revoke_member_api_key(m.org.id, m.user.id, &id, Utc::now())
                    .await?
            }
            Err(_) => None,
        };
        let Some(old) = revoked else {
            return Err(self.refuse(m, "key_revoke", key, not_found()).await);
        };
        let id = old.id.to_string();
        let mut e = m.event("key_revoked", id.clone());
        e.detail = Some(serde_json::json!({"key": id, "name": old.name}));
        self.record(e).await?;
        Ok(old)
    }

    /// Replaces the member's own key `key` with a new secret of the same name and scopes;
    /// the old one stops at once. One record names both keys.
    pub async fn regenerate_key(
        &self,
        m: &Member,
        key: &str,
    ) -> Result<RegeneratedKey, ConsoleError> {
        self.recent(m, "key_regenerate").await?;
        let secret = token::generate(TokenKind::ApiKey)?;
        let replaced = match key.parse::<ApiKeyId>() {
            Ok(id) => {
                self.store
                    .replace_member_api_key(
                        m.org.id,
                        m.user.id,
                        &id,
                        secret.hash().as_str(),
                        &secret.display_prefix(),
                        Utc::now(),
                    )
                    .await?
            }
            Err(_) => None,
        };
        let Some((old, new)) = replaced else {
            return Err(self.refuse(m, "key_regenerate", key, not_found()).await);
        };
        let mut e = m.event("key_regenerated", old.name.clone());
        e.detail = Some(serde_json::json!({
            "old_key": old.id.to_string(),
            "new_key": new.id.to_string(),
            "scopes": new.scopes.to_string(),
        }));
        self.record(e).await?;
        Ok(RegeneratedKey {
            old,
            new: CreatedKey { key: new, secret },
        })
    }

    /// Every key in the Admin's organisation, with its owner's email, newest first.
    pub async fn org_keys(&self, admin: &Admin) -> Result<Vec<(ApiKey, String)>, ConsoleError> {
        let mut keys: Vec<(ApiKey, String)> = self
            .store
            .list_api_keys(admin.0.org.id)
            .await?
            .into_iter()
            .map(|(k, u)| (k, u.email))
            .collect();
        keys.reverse();
        Ok(keys)
    }

    /// Revokes any active key `key` of the Admin's organisation (a key of another
    /// organisation, or an unknown id, changes nothing and is refused on the record).
    pub async fn revoke_org_key(&self, admin: &Admin, key: &str) -> Result<(), ConsoleError> {
        let m = &admin.0;
        let not_found = || {
            ConsoleError::NotFound(
                "That API key is not an active key of this organisation (it may already be revoked)."
                    .into(),
            )
        };
        let revoked = match key.parse::<ApiKeyId>() {
            Ok(id) => self.store.revoke_api_key(m.org.id, &id, Utc::now()).await?,
            Err(_) => false,
        };
        if !revoked {
            return Err(self.refuse(m, "key_revoke", key, not_found()).await);
        }
        let mut e = m.event("key_revoked", key.to_string());
        e.detail = Some(serde_json::json!({"key": key, "by_admin": true}));
        self.record(e).await
    }
}
