//! API keys, browser sessions and magic links: the credentials that are not
//! OAuth tokens. Each is stored only as the hash of its secret.
//!
//! None of them binds a role: whoever presents one gets the user's live
//! membership, resolved by the caller on every request.

use chrono::{DateTime, TimeDelta, Utc};

use super::rows::{ApiKeyListRow, ApiKeyRow, SessionRow, magic_link_user_id, millis};
use super::{Backend, BeginWrite, ORG_EXISTS, Parent, Store, USER_EXISTS, token_hash_conflict};
use crate::StoreError;
use crate::model::{
    ApiKey, ApiKeyId, BrowserSession, OrgId, Scopes, User, UserId, validate_display_prefix,
    validate_not_blank, validate_scopes, validate_token_hash,
};

/// How long a magic link is kept after it expires, for support questions
/// ("did my link expire?"), before [`Store::purge_magic_links`] deletes it.
const MAGIC_LINK_RETENTION: TimeDelta = TimeDelta::hours(24);

/// A key's last use is recorded at most this often, so a busy key does not
/// turn every request into a database write.
const API_KEY_TOUCH_INTERVAL: TimeDelta = TimeDelta::minutes(1);

const INSERT_API_KEY: &str = "INSERT INTO api_keys \
     (id, token_hash, display_prefix, org_id, user_id, name, scopes, \
      created_at, last_used_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL) \
     RETURNING id, display_prefix, org_id, user_id, name, scopes, \
      created_at, last_used_at, revoked_at";

const API_KEY_BY_HASH: &str = "SELECT id, display_prefix, org_id, user_id, name, scopes, \
      created_at, last_used_at, revoked_at \
     FROM api_keys WHERE token_hash = $1 AND revoked_at IS NULL";

// Never moves last_used_at backwards, and skips the write within the interval.
const TOUCH_API_KEY: &str = "UPDATE api_keys SET last_used_at = $2 \
     WHERE id = $1 AND revoked_at IS NULL \
      AND (last_used_at IS NULL OR last_used_at <= $3)";

const LIST_API_KEYS: &str = "SELECT \
     k.id, k.display_prefix, k.org_id, k.user_id, k.name, k.scopes, \
     k.created_at, k.last_used_at, k.revoked_at, \
     u.email AS u_email, u.display_name AS u_display_name, \
     u.password_hash AS u_password_hash, u.created_at AS u_created_at, \
     u.disabled_at AS u_disabled_at \
     FROM api_keys k JOIN users u ON u.id = k.user_id \
     WHERE k.org_id = $1 \
     ORDER BY k.created_at, k.id";

const REVOKE_API_KEY: &str = "UPDATE api_keys SET revoked_at = $3 \
     WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING id";

// A member's own key: the organisation and the owner are part of the match, so a key id of
// someone else changes nothing.
const REVOKE_MEMBER_API_KEY: &str = "UPDATE api_keys SET revoked_at = $4 \
     WHERE org_id = $1 AND user_id = $2 AND id = $3 AND revoked_at IS NULL \
     RETURNING id, display_prefix, org_id, user_id, name, scopes, \
      created_at, last_used_at, revoked_at";

const INSERT_SESSION: &str = "INSERT INTO browser_sessions \
     (token_hash, user_id, created_at, expires_at, revoked_at) \
     VALUES ($1, $2, $3, $4, NULL)";

const SESSION: &str = "SELECT user_id, created_at, expires_at, \
      COALESCE(last_seen_at, created_at) AS last_seen_at, \
      COALESCE(authenticated_at, created_at) AS authenticated_at, identity_id \
     FROM browser_sessions \
     WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2";

// The check and the touch in one statement: a session idle since before $3 stays over even
// when two requests race.
const TOUCH_SESSION: &str = "UPDATE browser_sessions SET last_seen_at = $2 \
     WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 \
      AND COALESCE(last_seen_at, created_at) > $3 \
     RETURNING user_id, created_at, expires_at, last_seen_at, \
      COALESCE(authenticated_at, created_at) AS authenticated_at, identity_id";

const REAUTHENTICATE_SESSION: &str = "UPDATE browser_sessions SET authenticated_at = $2 \
     WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING token_hash";

const REVOKE_SESSION: &str = "UPDATE browser_sessions SET revoked_at = $2 \
     WHERE token_hash = $1 AND revoked_at IS NULL RETURNING token_hash";

const REVOKE_USER_SESSIONS: &str = "UPDATE browser_sessions SET revoked_at = $2 \
     WHERE user_id = $1 AND revoked_at IS NULL";

const INSERT_MAGIC_LINK: &str = "INSERT INTO magic_links \
     (token_hash, user_id, created_at, expires_at, used_at) \
     VALUES ($1, $2, $3, $4, NULL)";

// One statement, so of concurrent redemptions exactly one gets the user.
const USE_MAGIC_LINK: &str = "UPDATE magic_links SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
     RETURNING user_id";

const PURGE_MAGIC_LINKS: &str = "DELETE FROM magic_links WHERE expires_at < $1";

impl Store {
    /// Stores a new API key of `user_id` in `org_id` by the hash of its
    /// secret. `display_prefix` is the start of the raw key shown in
    /// listings (1 to 16 printable characters). Fails with
    /// [`StoreError::Invalid`] for a malformed hash or prefix, a blank name
    /// or empty scopes, [`StoreError::Conflict`] if the hash is already
    /// stored, and [`StoreError::NotFound`] for an unknown organization or
    /// user.
    ///
    /// Whether the user is a member is the caller's check, at creation and
    /// on every use.
    #[expect(clippy::too_many_arguments)]
    pub async fn create_api_key(
        &self,
        hash: &str,
        display_prefix: &str,
        org_id: OrgId,
        user_id: UserId,
        name: &str,
        scopes: Scopes,
        now: DateTime<Utc>,
    ) -> Result<ApiKey, StoreError> {
        validate_token_hash(hash)?;
        validate_display_prefix(display_prefix)?;
        validate_not_blank("API key name", name)?;
        validate_scopes(scopes)?;
        let id = ApiKeyId::new_random().to_string();
        let (org, user) = (org_id.to_string(), user_id.to_string());
        let row = on_pool!(self, pool => sqlx::query_as::<_, ApiKeyRow>(INSERT_API_KEY)
            .bind(&id)
            .bind(hash)
            .bind(display_prefix)
            .bind(&org)
            .bind(&user)
            .bind(name)
            .bind(scopes.to_string())
            .bind(millis(now))
            .fetch_one(pool)
            .await);
        match row {
            Ok(row) => row.try_into(),
            Err(err) => Err(self
                .insert_failure(
                    err,
                    token_hash_conflict,
                    &[
                        Parent {
                            entity: "organization",
                            exists: ORG_EXISTS,
                            id: &org,
                        },
                        Parent {
                            entity: "user",
                            exists: USER_EXISTS,
                            id: &user,
                        },
                    ],
                    "organization or user",
                )
                .await),
        }
    }

    /// The unrevoked API key with this hash, if any.
    pub async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, ApiKeyRow>(API_KEY_BY_HASH)
            .bind(hash)
            .fetch_optional(pool)
            .await)?;
        row.map(ApiKey::try_from).transpose()
    }

    /// Records that an unrevoked key was used at `now`. To keep busy keys
    /// from writing on every request, nothing is written if a use within the
    /// last minute is already recorded, and `last_used_at` never moves back.
    pub async fn touch_api_key(
        &self,
        key_id: &ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(TOUCH_API_KEY)
            .bind(key_id.to_string())
            .bind(millis(now))
            .bind(millis(now - API_KEY_TOUCH_INTERVAL))
            .execute(pool)
            .await
            .map(|_| ()))?;
        if let Some(cache) = &self.bearer_cache {
            cache.touched(&key_id.to_string(), now);
        }
        Ok(())
    }

    /// Every API key in `org_id`, revoked ones included (see
    /// [`ApiKey::revoked_at`]), each with its user, oldest first.
    pub async fn list_api_keys(&self, org_id: OrgId) -> Result<Vec<(ApiKey, User)>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, ApiKeyListRow>(LIST_API_KEYS)
            .bind(org_id.to_string())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Revokes an API key of `org_id`. Returns whether an unrevoked key with
    /// that id exists in that organization; a key of another organization is
    /// left alone.
    pub async fn revoke_api_key(
        &self,
        org_id: OrgId,
        key_id: &ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self.revoke_api_key_unflushed(org_id, key_id, now).await;
        if result.is_ok() {
            self.auth_changed();
        }
        result
    }

    async fn revoke_api_key_unflushed(
        &self,
        org_id: OrgId,
        key_id: &ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // RETURNING, not the affected-row count (see `oauth::REVOKE_ACCESS_TOKEN`).
        let revoked: Option<(String,)> = on_pool!(self, pool => sqlx::query_as(REVOKE_API_KEY)
            .bind(org_id.to_string())
            .bind(key_id.to_string())
            .bind(millis(now))
            .fetch_optional(pool)
            .await)?;
        Ok(revoked.is_some())
    }

    /// Revokes `user_id`'s own unrevoked key `key_id` in `org_id`, returning it as it was
    /// before; `None` (and nothing changed) for a key of another user or organisation, an
    /// unknown id or a key already revoked.
    pub async fn revoke_member_api_key(
        &self,
        org_id: OrgId,
        user_id: UserId,
        key_id: &ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKey>, StoreError> {
        let result = self
            .revoke_member_api_key_unflushed(org_id, user_id, key_id, now)
            .await;
        if result.is_ok() {
            self.auth_changed();
        }
        result
    }

    async fn revoke_member_api_key_unflushed(
        &self,
        org_id: OrgId,
        user_id: UserId,
        key_id: &ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKey>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, ApiKeyRow>(REVOKE_MEMBER_API_KEY)
            .bind(org_id.to_string())
            .bind(user_id.to_string())
            .bind(key_id.to_string())
            .bind(millis(now))
            .fetch_optional(pool)
            .await)?;
        row.map(ApiKey::try_from).transpose()
    }

    /// Replaces `user_id`'s own unrevoked key `key_id` in `org_id` with a new one stored by
    /// `hash`, with the same name and scopes, in one transaction: the old key is revoked
    /// exactly when the new one exists. Returns `(old, new)`, or `None` with nothing changed
    /// when no such key is theirs (as [`Store::revoke_member_api_key`]).
    pub async fn replace_member_api_key(
        &self,
        org_id: OrgId,
        user_id: UserId,
        key_id: &ApiKeyId,
        hash: &str,
        display_prefix: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(ApiKey, ApiKey)>, StoreError> {
        let result = self
            .replace_member_api_key_unflushed(org_id, user_id, key_id, hash, display_prefix, now)
            .await;
        if result.is_ok() {
            self.auth_changed();
        }
        result
    }

    async fn replace_member_api_key_unflushed(
        &self,
        org_id: OrgId,
        user_id: UserId,
        key_id: &ApiKeyId,
        hash: &str,
        display_prefix: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(ApiKey, ApiKey)>, StoreError> {
        validate_token_hash(hash)?;
        validate_display_prefix(display_prefix)?;
        let (org, user) = (org_id.to_string(), user_id.to_string());
        let new_id = ApiKeyId::new_random().to_string();
        let rows = on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            let old = sqlx::query_as::<_, ApiKeyRow>(REVOKE_MEMBER_API_KEY)
                .bind(&org)
                .bind(&user)
                .bind(key_id.to_string())
                .bind(millis(now))
                .fetch_optional(&mut *tx)
                .await?;
            let Some(old) = old else {
                tx.rollback().await?;
                return Ok::<_, StoreError>(None);
            };
            let old = ApiKey::try_from(old)?;
            let new = sqlx::query_as::<_, ApiKeyRow>(INSERT_API_KEY)
                .bind(&new_id)
                .bind(hash)
                .bind(display_prefix)
                .bind(&org)
                .bind(&user)
                .bind(&old.name)
                .bind(old.scopes.to_string())
                .bind(millis(now))
                .fetch_one(&mut *tx)
                .await?;
            let new = ApiKey::try_from(new)?;
            tx.commit().await?;
            Ok(Some((old, new)))
        }
        .await)?;
        Ok(rows)
    }

    /// Stores a browser session by the hash of its cookie secret. Fails with
    /// [`StoreError::Invalid`] for a malformed hash, [`StoreError::Conflict`]
    /// if it is already stored, and [`StoreError::NotFound`] for an unknown
    /// user.
    pub async fn create_session(
        &self,
        hash: &str,
        user_id: UserId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.insert_user_secret(INSERT_SESSION, hash, user_id, now, expires_at)
            .await
    }

    /// The session with this hash if it is unrevoked and unexpired at `now`.
    pub async fn session(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<BrowserSession>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, SessionRow>(SESSION)
            .bind(hash)
            .bind(millis(now))
            .fetch_optional(pool)
            .await)?;
        row.map(BrowserSession::try_from).transpose()
    }

    /// A request on the session with this hash at `now`: the session, with `last_seen_at`
    /// moved to `now`, if it is unrevoked, unexpired, and was last used after `idle_since`
    /// (a session idle for longer is over, and stays over).
    pub async fn touch_session(
        &self,
        hash: &str,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<Option<BrowserSession>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, SessionRow>(TOUCH_SESSION)
            .bind(hash)
            .bind(millis(now))
            .bind(millis(idle_since))
            .fetch_optional(pool)
            .await)?;
        row.map(BrowserSession::try_from).transpose()
    }

    /// Marks a live session as having just proved its password again (for the console's
    /// destructive actions). Returns whether the session was live.
    pub async fn reauthenticate_session(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done: Option<(String,)> = on_pool!(self, pool => sqlx::query_as(REAUTHENTICATE_SESSION)
            .bind(hash)
            .bind(millis(now))
            .fetch_optional(pool)
            .await)?;
        Ok(done.is_some())
    }

    /// Ends a session (sign-out). Returns whether it existed unrevoked.
    pub async fn revoke_session(&self, hash: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let revoked: Option<(String,)> = on_pool!(self, pool => sqlx::query_as(REVOKE_SESSION)
            .bind(hash)
            .bind(millis(now))
            .fetch_optional(pool)
            .await)?;
        Ok(revoked.is_some())
    }

    /// Ends every session of `user_id` (a password reset, a removal). Returns how many.
    pub async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query(REVOKE_USER_SESSIONS)
            .bind(user_id.to_string())
            .bind(millis(now))
            .execute(pool)
            .await
            .map(|d| d.rows_affected()))?)
    }

    /// Stores a sign-in link by the hash of its secret. Errors as for
    /// [`Store::create_session`].
    pub async fn create_magic_link(
        &self,
        hash: &str,
        user_id: UserId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.insert_user_secret(INSERT_MAGIC_LINK, hash, user_id, now, expires_at)
            .await
    }

    /// Redeems a sign-in link: the user it signs in, if the link is unused
    /// and unexpired at `now`. Atomic: a link signs in at most once.
    pub async fn consume_magic_link(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        let user = on_pool!(self, pool => sqlx::query_scalar::<_, String>(USE_MAGIC_LINK)
            .bind(hash)
            .bind(millis(now))
            .fetch_optional(pool)
            .await)?;
        user.as_deref().map(magic_link_user_id).transpose()
    }

    /// Deletes magic links that expired more than 24 hours before `now`,
    /// used or not. Returns how many were deleted.
    pub async fn purge_magic_links(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let deleted = on_pool!(self, pool => sqlx::query(PURGE_MAGIC_LINKS)
            .bind(millis(now - MAGIC_LINK_RETENTION))
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(deleted)
    }

    /// Inserts a session or magic link: `sql` takes hash, user id, creation
    /// and expiry.
    async fn insert_user_secret(
        &self,
        sql: &'static str,
        hash: &str,
        user_id: UserId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        validate_token_hash(hash)?;
        let user = user_id.to_string();
        let done = on_pool!(self, pool => sqlx::query(sql)
            .bind(hash)
            .bind(&user)
            .bind(millis(now))
            .bind(millis(expires_at))
            .execute(pool)
            .await
            .map(|_| ()));
        match done {
            Ok(()) => Ok(()),
            Err(err) => Err(self
                .insert_failure(
                    err,
                    token_hash_conflict,
                    &[Parent {
                        entity: "user",
                        exists: USER_EXISTS,
                        id: &user,
                    }],
                    "user",
                )
                .await),
        }
    }
}
