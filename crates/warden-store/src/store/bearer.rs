//! Bearer lookups for authentication: everything needed to build a caller from a token, in
//! one query, because this runs on every MCP request.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use warden_sqlite::Readers;

use super::audit_sqlite::sqlite_error;
use super::bearer_cache::Cached;
use super::rows::{ApiKeyRow, GrantRow, millis};
use super::{Backend, Store};
use crate::StoreError;
use crate::model::{ApiKey, Grant, Role};

/// The stored facts about who stands behind a credential, from which authentication
/// builds the domain's `Principal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRow {
    pub email: String,
    pub org_slug: String,
    pub user_disabled: bool,
}

const ACCESS_IDENTITY: &str = "SELECT g.id, g.org_id, g.user_id, g.client_id, g.scopes, \
      g.role, g.resource, g.created_at, g.updated_at, g.revoked_at, g.revoked_reason, \
      u.email AS holder_email, o.slug AS holder_org_slug, u.disabled_at AS holder_disabled_at, \
      t.expires_at AS token_expires_at \
     FROM access_tokens t \
     JOIN grants g ON g.id = t.grant_id \
     JOIN oauth_clients c ON c.id = g.client_id \
     JOIN users u ON u.id = g.user_id \
     JOIN organizations o ON o.id = g.org_id \
     WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 \
      AND g.revoked_at IS NULL AND c.revoked_at IS NULL";

const KEY_IDENTITY: &str = "SELECT k.id, k.display_prefix, k.org_id, k.user_id, k.name, k.scopes, \
      k.created_at, k.last_used_at, k.revoked_at, \
      u.email AS holder_email, o.slug AS holder_org_slug, u.disabled_at AS holder_disabled_at, \
      m.role AS live_role \
     FROM api_keys k \
     JOIN users u ON u.id = k.user_id \
     JOIN organizations o ON o.id = k.org_id \
     LEFT JOIN memberships m ON m.org_id = k.org_id AND m.user_id = k.user_id \
     WHERE k.token_hash = $1 AND k.revoked_at IS NULL";

#[derive(sqlx::FromRow)]
struct AccessIdentityRow {
    #[sqlx(flatten)]
    grant: GrantRow,
    holder_email: String,
    holder_org_slug: String,
    holder_disabled_at: Option<i64>,
    token_expires_at: i64,
}

#[derive(sqlx::FromRow)]
struct KeyIdentityRow {
    #[sqlx(flatten)]
    key: ApiKeyRow,
    holder_email: String,
    holder_org_slug: String,
    holder_disabled_at: Option<i64>,
    live_role: Option<String>,
}

/// At most one row of `sql` (written for sqlx, with `$1`, `$2`, ...), read through the
/// store's readers (on this thread when it is quick, as it nearly always is) with `args`
/// bound to those names in order.
async fn read_one<T: Send + 'static>(
    readers: &Readers,
    sql: &'static str,
    args: Vec<Value>,
    decode: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    readers
        .read(move |c| {
            let mut stmt = c.prepare_cached(sql)?;
            // SQLite numbers `$n` parameters by first appearance, not by n: bind by name.
            let names: Vec<String> = (1..=args.len()).map(|n| format!("${n}")).collect();
            let params: Vec<(&str, &dyn rusqlite::ToSql)> = names
                .iter()
                .zip(&args)
                .map(|(n, v)| (n.as_str(), v as &dyn rusqlite::ToSql))
                .collect();
            let mut rows = stmt.query(params.as_slice())?;
            rows.next()?.map(decode).transpose()
        })
        .await
        .ok_or_else(|| StoreError::Sqlite("the store is closed".into()))?
        .map_err(sqlite_error)
}

impl Store {
    /// The grant behind a valid access token (unrevoked, unexpired, grant and client active)
    /// and its holder, in one query.
    pub async fn access_token_identity(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(Grant, PrincipalRow)>, StoreError> {
        let cache = self.bearer_cache.as_deref();
        if let Some(Cached::Access { grant, holder, .. }) = cache.and_then(|c| c.get(hash, now)) {
            return Ok(Some((grant, holder)));
        }
        let generation = cache.and_then(|c| c.generation());
        let row = match &self.readers {
            Some(readers) => {
                let args = vec![Value::Text(hash.to_string()), Value::Integer(millis(now))];
                read_one(readers, ACCESS_IDENTITY, args, |r| {
                    Ok(AccessIdentityRow {
                        grant: GrantRow::from_sqlite(r, 0)?,
                        holder_email: r.get(11)?,
                        holder_org_slug: r.get(12)?,
                        holder_disabled_at: r.get(13)?,
                        token_expires_at: r.get(14)?,
                    })
                })
                .await?
            }
            None => on_pool!(self, pool => sqlx::query_as::<_, AccessIdentityRow>(ACCESS_IDENTITY)
                .bind(hash)
                .bind(millis(now))
                .fetch_optional(pool)
                .await)?,
        };
        let Some(r) = row else { return Ok(None) };
        let holder = PrincipalRow {
            email: r.holder_email,
            org_slug: r.holder_org_slug,
            user_disabled: r.holder_disabled_at.is_some(),
        };
        let grant = Grant::try_from(r.grant)?;
        if let (Some(cache), Some(g)) = (cache, generation) {
            let expires_at = DateTime::from_timestamp_millis(r.token_expires_at).unwrap_or(now);
            let value = Cached::Access {
                grant: grant.clone(),
                holder: holder.clone(),
                expires_at,
            };
            cache.put(g, hash, value);
        }
        Ok(Some((grant, holder)))
    }

    /// An unrevoked API key, its holder, and the holder's live role in the key's organisation
    /// (`None` once they are no longer a member), in one query.
    pub async fn api_key_identity(
        &self,
        hash: &str,
    ) -> Result<Option<(ApiKey, PrincipalRow, Option<Role>)>, StoreError> {
        let cache = self.bearer_cache.as_deref();
        if let Some(Cached::Key { key, holder, role }) = cache.and_then(|c| c.get(hash, Utc::now()))
        {
            return Ok(Some((key, holder, Some(role))));
        }
        let generation = cache.and_then(|c| c.generation());
        let row = match &self.readers {
            Some(readers) => {
                read_one(
                    readers,
                    KEY_IDENTITY,
                    vec![Value::Text(hash.to_string())],
                    |r| {
                        Ok(KeyIdentityRow {
                            key: ApiKeyRow::from_sqlite(r, 0)?,
                            holder_email: r.get(9)?,
                            holder_org_slug: r.get(10)?,
                            holder_disabled_at: r.get(11)?,
                            live_role: r.get(12)?,
                        })
                    },
                )
                .await?
            }
            None => on_pool!(self, pool => sqlx::query_as::<_, KeyIdentityRow>(KEY_IDENTITY)
                .bind(hash)
                .fetch_optional(pool)
                .await)?,
        };
        let Some(r) = row else { return Ok(None) };
        let role = match r.live_role {
            Some(s) => Some(s.parse::<Role>().map_err(|e| StoreError::Corrupt {
                entity: "membership",
                detail: e.to_string(),
            })?),
            None => None,
        };
        let holder = PrincipalRow {
            email: r.holder_email,
            org_slug: r.holder_org_slug,
            user_disabled: r.holder_disabled_at.is_some(),
        };
        let key = ApiKey::try_from(r.key)?;
        // A key whose holder is no longer a member is refused, and refusals are not kept.
        if let (Some(cache), Some(g), Some(role)) = (cache, generation, role) {
            let value = Cached::Key {
                key: key.clone(),
                holder: holder.clone(),
                role,
            };
            cache.put(g, hash, value);
        }
        Ok(Some((key, holder, role)))
    }
}
