//! OAuth clients, grants, authorization codes, access and refresh tokens.
//!
//! The grant is the root of everything issued through OAuth. A code or token
//! works only while its own row, its grant and the grant's client are all
//! unrevoked, and every check joins all three. Revoking a grant also revokes
//! its tokens and uses up its codes in the same transaction; the grant row
//! stays authoritative, so even a token inserted by a transaction racing the
//! revocation is dead.

use chrono::{DateTime, Utc};
use sqlx::error::ErrorKind;

use super::rows::{
    ClientRow, CodeStateRow, GrantListRow, GrantRow, RefreshStateRow, UsedCodeRow,
    encode_redirect_uris, grant_id, millis,
};
use super::{Backend, BeginWrite, ORG_EXISTS, Parent, Store, USER_EXISTS, token_hash_conflict};
use crate::StoreError;
use crate::error::violation;
use crate::model::{
    ClientId, CodeOutcome, Grant, GrantId, OAuthClient, OrgId, Role, RotateOutcome, Scopes, User,
    UserId, validate_not_blank, validate_scopes, validate_token_hash,
};

/// `revoked_reason` when a used refresh token is presented again.
const REASON_REFRESH_REUSE: &str = "refresh token reuse";
/// `revoked_reason` when the client revokes its refresh token (RFC 7009).
const REASON_REFRESH_REVOKED: &str = "refresh token revoked";
/// `revoked_reason` when an app is disconnected from one organization.
const REASON_CLIENT_REVOKED_IN_ORG: &str = "app revoked in organization";
/// `revoked_reason` when a client is revoked everywhere.
const REASON_CLIENT_REVOKED: &str = "client revoked";

const INSERT_CLIENT: &str = "INSERT INTO oauth_clients \
     (id, name, redirect_uris, created_at, revoked_at) \
     VALUES ($1, $2, $3, $4, NULL) \
     RETURNING id, name, redirect_uris, created_at, revoked_at";

const CLIENT_BY_ID: &str = "SELECT id, name, redirect_uris, created_at, revoked_at \
     FROM oauth_clients WHERE id = $1";

const CLIENT_BY_DOCUMENT: &str = "SELECT id, name, redirect_uris, created_at, revoked_at \
     FROM oauth_clients WHERE metadata_url = $1";

// A client known by its metadata document: made on first approval, then following the
// document's name and redirect URIs. A revoked one stays revoked.
const UPSERT_DOCUMENT_CLIENT: &str = "INSERT INTO oauth_clients \
     (id, name, redirect_uris, created_at, revoked_at, metadata_url) \
     VALUES ($1, $2, $3, $4, NULL, $5) \
     ON CONFLICT (metadata_url) DO UPDATE SET name = excluded.name, \
      redirect_uris = excluded.redirect_uris \
     RETURNING id, name, redirect_uris, created_at, revoked_at";

const CLIENT_EXISTS: &str = "SELECT id FROM oauth_clients WHERE id = $1";

const REVOKE_CLIENT: &str =
    "UPDATE oauth_clients SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";

const INSERT_GRANT: &str = "INSERT INTO grants \
     (id, org_id, user_id, client_id, scopes, role, resource, \
      created_at, updated_at, revoked_at, revoked_reason) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, NULL, NULL) \
     RETURNING id, org_id, user_id, client_id, scopes, role, resource, \
      created_at, updated_at, revoked_at, revoked_reason";

const GRANT_BY_ID: &str = "SELECT id, org_id, user_id, client_id, scopes, role, resource, \
      created_at, updated_at, revoked_at, revoked_reason \
     FROM grants WHERE id = $1";

const GRANT_EXISTS: &str = "SELECT id FROM grants WHERE id = $1";

/// The grant, only if neither it nor its client is revoked.
const ACTIVE_GRANT: &str = "SELECT g.id, g.org_id, g.user_id, g.client_id, g.scopes, g.role, \
      g.resource, g.created_at, g.updated_at, g.revoked_at, g.revoked_reason \
     FROM grants g JOIN oauth_clients c ON c.id = g.client_id \
     WHERE g.id = $1 AND g.revoked_at IS NULL AND c.revoked_at IS NULL";

const SET_GRANT_ROLE: &str =
    "UPDATE grants SET role = $2, updated_at = $3 WHERE id = $1 AND revoked_at IS NULL";

const ACTIVE_SCOPES_OF_CLIENT_FOR_USER: &str = "SELECT scopes FROM grants \
     WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL";

const MARK_STEP_UP: &str = "UPDATE grants SET step_up_at = $2 WHERE id = $1 AND revoked_at IS NULL";

/// The grant of an active refresh token, if it carries a step-up mark set at or after `$2`.
const STEP_UP_PENDING: &str = "SELECT g.id FROM grants g JOIN refresh_tokens r ON r.grant_id = g.id \
     WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.revoked_at IS NULL AND r.expires_at > $3 \
       AND g.revoked_at IS NULL AND g.step_up_at >= $2";

const CLEAR_STEP_UP: &str = "UPDATE grants SET step_up_at = NULL \
     WHERE user_id = $1 AND client_id = $2 AND step_up_at IS NOT NULL";

const REVOKE_GRANT: &str = "UPDATE grants SET revoked_at = $2, revoked_reason = $3, updated_at = $2 \
     WHERE id = $1 AND revoked_at IS NULL";

const REVOKE_GRANTS_OF_CLIENT: &str = "UPDATE grants \
     SET revoked_at = $2, revoked_reason = $3, updated_at = $2 \
     WHERE client_id = $1 AND revoked_at IS NULL \
     RETURNING id";

const REVOKE_GRANTS_OF_CLIENT_IN_ORG: &str = "UPDATE grants \
     SET revoked_at = $3, revoked_reason = $4, updated_at = $3 \
     WHERE org_id = $1 AND client_id = $2 AND revoked_at IS NULL \
     RETURNING id";

const REVOKE_GRANTS_OF_MEMBER: &str = "UPDATE grants \
     SET revoked_at = $3, revoked_reason = $4, updated_at = $3 \
     WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL \
     RETURNING id";

// The three statements that kill everything issued from grant $1 at time $2.
const REVOKE_ACCESS_TOKENS_OF_GRANT: &str =
    "UPDATE access_tokens SET revoked_at = $2 WHERE grant_id = $1 AND revoked_at IS NULL";
const REVOKE_REFRESH_TOKENS_OF_GRANT: &str =
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE grant_id = $1 AND revoked_at IS NULL";
const USE_CODES_OF_GRANT: &str =
    "UPDATE auth_codes SET used_at = $2 WHERE grant_id = $1 AND used_at IS NULL";

const LIST_GRANTS: &str = "SELECT \
     g.id, g.org_id, g.user_id, g.client_id, g.scopes, g.role, g.resource, \
     g.created_at, g.updated_at, g.revoked_at, g.revoked_reason, \
     c.name AS c_name, c.redirect_uris AS c_redirect_uris, \
     c.created_at AS c_created_at, c.revoked_at AS c_revoked_at, \
     u.email AS u_email, u.display_name AS u_display_name, \
     u.password_hash AS u_password_hash, u.created_at AS u_created_at, \
     u.disabled_at AS u_disabled_at \
     FROM grants g \
     JOIN oauth_clients c ON c.id = g.client_id \
     JOIN users u ON u.id = g.user_id \
     WHERE g.org_id = $1 AND g.revoked_at IS NULL \
     ORDER BY c.name, u.email, g.created_at, g.id";

const INSERT_CODE: &str = "INSERT INTO auth_codes \
     (token_hash, grant_id, redirect_uri, code_challenge, created_at, expires_at, used_at) \
     VALUES ($1, $2, $3, $4, $5, $6, NULL)";

// Expiry is checked after marking, so an expired code is used up too.
const USE_CODE: &str = "UPDATE auth_codes SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL \
     RETURNING grant_id, redirect_uri, code_challenge, expires_at";

const CODE_STATE: &str = "SELECT a.grant_id, a.used_at, a.expires_at, \
     g.revoked_at AS grant_revoked_at, c.revoked_at AS client_revoked_at \
     FROM auth_codes a \
     JOIN grants g ON g.id = a.grant_id \
     JOIN oauth_clients c ON c.id = g.client_id \
     WHERE a.token_hash = $1";

const INSERT_ACCESS_TOKEN: &str = "INSERT INTO access_tokens \
     (token_hash, grant_id, created_at, expires_at, revoked_at) \
     VALUES ($1, $2, $3, $4, NULL)";

const ACCESS_TOKEN_GRANT: &str = "SELECT g.id, g.org_id, g.user_id, g.client_id, g.scopes, \
      g.role, g.resource, g.created_at, g.updated_at, g.revoked_at, g.revoked_reason \
     FROM access_tokens t \
     JOIN grants g ON g.id = t.grant_id \
     JOIN oauth_clients c ON c.id = g.client_id \
     WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 \
      AND g.revoked_at IS NULL AND c.revoked_at IS NULL";

// RETURNING, not the affected-row count: on SQLite, sqlx's count can be a previous
// statement's on the same connection (seen in the server after RETURNING statements ran).
const REVOKE_ACCESS_TOKEN: &str = "UPDATE access_tokens SET revoked_at = $2 \
     WHERE token_hash = $1 AND revoked_at IS NULL RETURNING token_hash";

const LOCK_GRANT_OF_REFRESH: &str = "UPDATE grants SET updated_at = updated_at \
     WHERE id = (SELECT grant_id FROM refresh_tokens WHERE token_hash = $1)";

const INSERT_REFRESH_TOKEN: &str = "INSERT INTO refresh_tokens \
     (token_hash, grant_id, created_at, expires_at, used_at, revoked_at) \
     VALUES ($1, $2, $3, $4, NULL, NULL)";

// Marks the token used only if it is valid in every respect, so exactly one
// of several concurrent rotations of the same token succeeds.
const USE_REFRESH_TOKEN: &str = "UPDATE refresh_tokens SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
      AND EXISTS (SELECT 1 FROM grants g JOIN oauth_clients c ON c.id = g.client_id \
       WHERE g.id = refresh_tokens.grant_id \
        AND g.revoked_at IS NULL AND c.revoked_at IS NULL) \
     RETURNING grant_id";

const REFRESH_STATE: &str = "SELECT r.grant_id, r.used_at, r.revoked_at, r.expires_at, \
     g.revoked_at AS grant_revoked_at, c.revoked_at AS client_revoked_at \
     FROM refresh_tokens r \
     JOIN grants g ON g.id = r.grant_id \
     JOIN oauth_clients c ON c.id = g.client_id \
     WHERE r.token_hash = $1";

const REFRESH_TOKEN_GRANT: &str = "SELECT grant_id FROM refresh_tokens WHERE token_hash = $1";

/// Inside transaction `$tx`: revokes the access and refresh tokens of grant
/// `$grant` (id text) and uses up its unused codes, at `$now` (millis).
macro_rules! revoke_issued {
    ($tx:ident, $grant:expr, $now:expr) => {
        for sql in [
            REVOKE_ACCESS_TOKENS_OF_GRANT,
            REVOKE_REFRESH_TOKENS_OF_GRANT,
            USE_CODES_OF_GRANT,
        ] {
            sqlx::query(sql)
                .bind($grant)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

/// Inside transaction `$tx`: revokes grant `$grant` (id text) and everything
/// issued from it. Evaluates to whether the grant was active.
macro_rules! revoke_grant_in {
    ($tx:ident, $grant:expr, $reason:expr, $now:expr) => {{
        let was_active = sqlx::query(REVOKE_GRANT)
            .bind($grant)
            .bind($now)
            .bind($reason)
            .execute(&mut *$tx)
            .await?
            .rows_affected()
            > 0;
        // Also when the grant was already revoked: sweeps up anything a
        // transaction racing that revocation inserted.
        revoke_issued!($tx, $grant, $now);
        was_active
    }};
}

/// Maps a failed insert of a token row inside a transaction.
fn token_insert_error(err: sqlx::Error) -> StoreError {
    if matches!(violation(&err), Some(ErrorKind::UniqueViolation)) {
        token_hash_conflict()
    } else {
        err.into()
    }
}

fn grant_parent(id: &str) -> [Parent<'_>; 1] {
    [Parent {
        entity: "grant",
        exists: GRANT_EXISTS,
        id,
    }]
}

impl Store {
    /// Registers an OAuth client with a fresh random [`ClientId`]. Fails with
    /// [`StoreError::Invalid`] for a blank name, no redirect URI or a blank
    /// one. The URIs are stored as given: checking their form is the
    /// authorization server's job.
    pub async fn create_client(
        &self,
        name: &str,
        redirect_uris: &[String],
        now: DateTime<Utc>,
    ) -> Result<OAuthClient, StoreError> {
        validate_not_blank("client name", name)?;
        if redirect_uris.is_empty() {
            return Err(StoreError::Invalid {
                field: "redirect URIs",
                value: "[]".to_owned(),
                rule: "register at least one redirect URI",
            });
        }
        for uri in redirect_uris {
            validate_not_blank("redirect URI", uri)?;
        }
        let id = ClientId::new_random().to_string();
        let row = on_pool!(self, pool => sqlx::query_as::<_, ClientRow>(INSERT_CLIENT)
            .bind(&id)
            .bind(name)
            .bind(encode_redirect_uris(redirect_uris))
            .bind(millis(now))
            .fetch_one(pool)
            .await)?;
        row.try_into()
    }

    /// The client whose `client_id` is the metadata document at `url`, revoked or not.
    pub async fn client_by_document(&self, url: &str) -> Result<Option<OAuthClient>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, ClientRow>(CLIENT_BY_DOCUMENT)
            .bind(url)
            .fetch_optional(pool)
            .await)?;
        row.map(OAuthClient::try_from).transpose()
    }

    /// Makes (or brings up to date with its document) the client whose `client_id` is the
    /// metadata document at `url`, returning it with its internal id.
    pub async fn upsert_document_client(
        &self,
        url: &str,
        name: &str,
        redirect_uris: &[String],
        now: DateTime<Utc>,
    ) -> Result<OAuthClient, StoreError> {
        validate_not_blank("client name", name)?;
        validate_not_blank("client metadata URL", url)?;
        let id = ClientId::new_random().to_string();
        let row = on_pool!(self, pool => sqlx::query_as::<_, ClientRow>(UPSERT_DOCUMENT_CLIENT)
            .bind(&id)
            .bind(name)
            .bind(encode_redirect_uris(redirect_uris))
            .bind(millis(now))
            .bind(url)
            .fetch_one(pool)
            .await)?;
        row.try_into()
    }

    /// Looks up a client, revoked or not (see [`OAuthClient::revoked_at`]).
    pub async fn client(&self, client_id: &ClientId) -> Result<Option<OAuthClient>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, ClientRow>(CLIENT_BY_ID)
            .bind(client_id.to_string())
            .fetch_optional(pool)
            .await)?;
        row.map(OAuthClient::try_from).transpose()
    }

    /// Revokes a client everywhere: the client, every grant of it in every
    /// organization (reason `"client revoked"`) and all their tokens, in one
    /// transaction. Returns whether the client was not already revoked.
    pub async fn revoke_client(
        &self,
        client_id: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self.revoke_client_unflushed(client_id, now).await;
        if result.is_ok() {
            self.auth_changed();
        }
        result
    }

    async fn revoke_client_unflushed(
        &self,
        client_id: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let client = client_id.to_string();
        let now = millis(now);
        on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            let was_active = sqlx::query(REVOKE_CLIENT)
                .bind(&client)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            let grants = sqlx::query_scalar::<_, String>(REVOKE_GRANTS_OF_CLIENT)
                .bind(&client)
                .bind(now)
                .bind(REASON_CLIENT_REVOKED)
                .fetch_all(&mut *tx)
                .await?;
            for grant in &grants {
                revoke_issued!(tx, grant, now);
            }
            tx.commit().await?;
            Ok::<_, StoreError>(was_active)
        }
        .await)
    }

    /// Records that `user_id` authorized `client_id` in `org_id` with
    /// `scopes`, binding the user's current `role`, for tokens meant for
    /// `resource` (RFC 8707). Fails with [`StoreError::Invalid`] for empty
    /// scopes or a blank resource, and [`StoreError::NotFound`] naming the
    /// organization, user or client that does not exist.
    ///
    /// Whether the user is a member with that role is the caller's check.
    #[expect(clippy::too_many_arguments)]
    pub async fn create_grant(
        &self,
        org_id: OrgId,
        user_id: UserId,
        client_id: &ClientId,
        scopes: Scopes,
        role: Role,
        resource: &str,
        now: DateTime<Utc>,
    ) -> Result<Grant, StoreError> {
        validate_scopes(scopes)?;
        validate_not_blank("resource", resource)?;
        let id = GrantId::new_random().to_string();
        let (org, user, client) = (
            org_id.to_string(),
            user_id.to_string(),
            client_id.to_string(),
        );
        let row = on_pool!(self, pool => sqlx::query_as::<_, GrantRow>(INSERT_GRANT)
            .bind(&id)
            .bind(&org)
            .bind(&user)
            .bind(&client)
            .bind(scopes.to_string())
            .bind(role.as_str())
            .bind(resource)
            .bind(millis(now))
            .fetch_one(pool)
            .await);
        match row {
            Ok(row) => row.try_into(),
            Err(err) => Err(self
                .insert_failure(
                    err,
                    // A random UUID clashed: not worth a message of its own.
                    || StoreError::Conflict {
                        entity: "a grant",
                        field: "id",
                        value: id.clone(),
                        hint: "try again",
                    },
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
                        Parent {
                            entity: "OAuth client",
                            exists: CLIENT_EXISTS,
                            id: &client,
                        },
                    ],
                    "organization, user or OAuth client",
                )
                .await),
        }
    }

    /// Looks up a grant, revoked or not (see [`Grant::revoked_at`]).
    pub async fn grant(&self, grant_id: &GrantId) -> Result<Option<Grant>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, GrantRow>(GRANT_BY_ID)
            .bind(grant_id.to_string())
            .fetch_optional(pool)
            .await)?;
        row.map(Grant::try_from).transpose()
    }

    /// Re-binds an active grant to `role`, e.g. after a refresh found the
    /// user demoted. Returns whether an active grant was changed; a revoked
    /// grant is left alone.
    pub async fn set_grant_role(
        &self,
        grant_id: &GrantId,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => sqlx::query(SET_GRANT_ROLE)
            .bind(grant_id.to_string())
            .bind(role.as_str())
            .bind(millis(now))
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(changed > 0)
    }

    /// The scopes of every active grant `user_id` gave `client_id`, in any organization:
    /// the consent page tells a first connection from a request for more access.
    pub async fn active_scopes_of_client(
        &self,
        user_id: UserId,
        client_id: &ClientId,
    ) -> Result<Vec<Scopes>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_scalar::<_, String>(ACTIVE_SCOPES_OF_CLIENT_FOR_USER)
            .bind(user_id.to_string())
            .bind(client_id.to_string())
            .fetch_all(pool)
            .await)?;
        rows.iter()
            .map(|s| {
                s.parse().map_err(|e| StoreError::Corrupt {
                    entity: "grant",
                    detail: format!("scopes {s:?}: {e}"),
                })
            })
            .collect()
    }

    /// Notes that a call on `grant_id`'s token was just answered with a step-up challenge
    /// (403 insufficient_scope). A revoked grant is left alone.
    pub async fn mark_step_up(
        &self,
        grant_id: &GrantId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(MARK_STEP_UP)
            .bind(grant_id.to_string())
            .bind(millis(now))
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// If the refresh token hashed `refresh_hash` is active and its grant was marked by
    /// [`Store::mark_step_up`] at or after `since`, the grant: the caller refuses the refresh
    /// until the person has answered a new authorization ([`Store::clear_step_up`]).
    pub async fn step_up_pending(
        &self,
        refresh_hash: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<GrantId>, StoreError> {
        let id = on_pool!(self, pool => sqlx::query_scalar::<_, String>(STEP_UP_PENDING)
            .bind(refresh_hash)
            .bind(millis(since))
            .bind(millis(now))
            .fetch_optional(pool)
            .await)?;
        id.map(|id| grant_id(&id)).transpose()
    }

    /// Clears the step-up marks of every grant `user_id` gave `client_id`: the person has
    /// answered a new authorization, so the old grants refresh again as they are.
    pub async fn clear_step_up(
        &self,
        user_id: UserId,
        client_id: &ClientId,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(CLEAR_STEP_UP)
            .bind(user_id.to_string())
            .bind(client_id.to_string())
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Revokes a grant with `reason`, and in the same transaction revokes all
    /// its access and refresh tokens and uses up its unused codes. Returns
    /// whether the grant was active; the first reason recorded stays.
    pub async fn revoke_grant(
        &self,
        grant_id: &GrantId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self.revoke_grant_unflushed(grant_id, reason, now).await;
        if result.is_ok() {
            self.auth_changed();
        }
        result
    }

    async fn revoke_grant_unflushed(
        &self,
        grant_id: &GrantId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let grant = grant_id.to_string();
        let now = millis(now);
        on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            let was_active = revoke_grant_in!(tx, grant.as_str(), reason, now);
            tx.commit().await?;
            Ok::<_, StoreError>(was_active)
        }
        .await)
    }

    /// The active grants in `org_id`, each with its client and user, ordered
    /// by client name, then user email: what `warden apps list` shows.
    pub async fn list_grants(
        &self,
        org_id: OrgId,
    ) -> Result<Vec<(Grant, OAuthClient, User)>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, GrantListRow>(LIST_GRANTS)
            .bind(org_id.to_string())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Disconnects an app from one organization: revokes every active grant
    /// of `client_id` in `org_id` (reason `"app revoked in organization"`)
    /// and their tokens, in one transaction. Returns how many grants were
    /// revoked. The client itself and its grants elsewhere are untouched.
    pub async fn revoke_client_in_org(
        &self,
        org_id: OrgId,
        client_id: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let result = self
            .revoke_client_in_org_unflushed(org_id, client_id, now)
            .await;
        if result.is_ok() {
            self.auth_changed();
        }
        result
    }

    async fn revoke_client_in_org_unflushed(
        &self,
        org_id: OrgId,
        client_id: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.revoke_grants_where(
            REVOKE_GRANTS_OF_CLIENT_IN_ORG,
            org_id.to_string(),
            client_id.to_string(),
            REASON_CLIENT_REVOKED_IN_ORG,
            now,
        )
        .await
    }

    /// Revokes every active grant of `user_id` in `org_id` with `reason`, and
    /// their tokens, in one transaction: for removing a member. Returns how
    /// many grants were revoked.
    pub async fn revoke_grants_of_member(
        &self,
        org_id: OrgId,
        user_id: UserId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let result = self
            .revoke_grants_of_member_unflushed(org_id, user_id, reason, now)
            .await;
        if result.is_ok() {
            self.auth_changed();
        }
        result
    }

    async fn revoke_grants_of_member_unflushed(
        &self,
        org_id: OrgId,
        user_id: UserId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.revoke_grants_where(
            REVOKE_GRANTS_OF_MEMBER,
            org_id.to_string(),
            user_id.to_string(),
            reason,
            now,
        )
        .await
    }

    /// Runs `revoke` (`$1`, `$2` pick the grants, `$3` is the time, `$4` the
    /// reason; returns their ids), then revokes what they issued.
    async fn revoke_grants_where(
        &self,
        revoke: &'static str,
        first: String,
        second: String,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let now = millis(now);
        on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            let grants = sqlx::query_scalar::<_, String>(revoke)
                .bind(&first)
                .bind(&second)
                .bind(now)
                .bind(reason)
                .fetch_all(&mut *tx)
                .await?;
            for grant in &grants {
                revoke_issued!(tx, grant, now);
            }
            tx.commit().await?;
            Ok::<_, StoreError>(grants.len())
        }
        .await)
    }

    /// Stores an authorization code by its hash, for `grant_id`, valid until
    /// `expires_at`. Fails with [`StoreError::Invalid`] if `hash` is not a
    /// lowercase hex SHA-256, [`StoreError::Conflict`] if it is already
    /// stored, and [`StoreError::NotFound`] for an unknown grant.
    pub async fn insert_code(
        &self,
        hash: &str,
        grant_id: &GrantId,
        redirect_uri: &str,
        code_challenge: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        validate_token_hash(hash)?;
        let grant = grant_id.to_string();
        let done = on_pool!(self, pool => sqlx::query(INSERT_CODE)
            .bind(hash)
            .bind(&grant)
            .bind(redirect_uri)
            .bind(code_challenge)
            .bind(millis(now))
            .bind(millis(expires_at))
            .execute(pool)
            .await
            .map(|_| ()));
        match done {
            Ok(()) => Ok(()),
            Err(err) => Err(self
                .insert_failure(err, token_hash_conflict, &grant_parent(&grant), "grant")
                .await),
        }
    }

    /// Redeems an authorization code, atomically: of any number of
    /// concurrent calls with one code, at most one sees
    /// [`CodeOutcome::Fresh`]. Any code presented is used up, expired or
    /// not. A code presented again after a successful redemption is
    /// [`CodeOutcome::Replayed`]; one presented again after being refused as
    /// expired stays [`CodeOutcome::Expired`], since nothing was issued from
    /// it.
    pub async fn consume_code(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<CodeOutcome, StoreError> {
        let now = millis(now);
        on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            let used = sqlx::query_as::<_, UsedCodeRow>(USE_CODE)
                .bind(hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let outcome = match used {
                Some(code) if code.expires_at <= now => CodeOutcome::Expired,
                Some(code) => {
                    let grant = sqlx::query_as::<_, GrantRow>(ACTIVE_GRANT)
                        .bind(&code.grant_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    match grant {
                        Some(grant) => CodeOutcome::Fresh {
                            grant: grant.try_into()?,
                            redirect_uri: code.redirect_uri,
                            code_challenge: code.code_challenge,
                        },
                        None => CodeOutcome::Revoked,
                    }
                }
                None => {
                    let state = sqlx::query_as::<_, CodeStateRow>(CODE_STATE)
                        .bind(hash)
                        .fetch_optional(&mut *tx)
                        .await?;
                    match state {
                        None => CodeOutcome::Unknown,
                        Some(code)
                            if code.grant_revoked_at.is_some()
                                || code.client_revoked_at.is_some() =>
                        {
                            CodeOutcome::Revoked
                        }
                        // Used before it expired: it was redeemed, so tokens
                        // may exist that this replay's sender must not keep.
                        Some(code) => match code.used_at {
                            Some(used_at) if used_at < code.expires_at => CodeOutcome::Replayed {
                                grant_id: grant_id(&code.grant_id)?,
                            },
                            Some(_) => CodeOutcome::Expired,
                            // Inserted after our update looked: cannot happen
                            // for a code handed out once.
                            None => CodeOutcome::Unknown,
                        },
                    }
                }
            };
            tx.commit().await?;
            Ok::<_, StoreError>(outcome)
        }
        .await)
    }

    /// Stores an access token by its hash, for `grant_id`, valid until
    /// `expires_at`. Errors as for [`Store::insert_code`].
    pub async fn insert_access_token(
        &self,
        hash: &str,
        grant_id: &GrantId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.insert_token(INSERT_ACCESS_TOKEN, hash, grant_id, now, expires_at)
            .await
    }

    /// The grant an access token acts for, only if the token exists, is not
    /// revoked, has not expired at `now`, and its grant and client are not
    /// revoked. The role in it is the one bound at authorization or the last
    /// refresh.
    pub async fn access_token(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, GrantRow>(ACCESS_TOKEN_GRANT)
            .bind(hash)
            .bind(millis(now))
            .fetch_optional(pool)
            .await)?;
        row.map(Grant::try_from).transpose()
    }

    /// Revokes one access token. Returns whether it existed unrevoked.
    pub async fn revoke_access_token(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self.revoke_access_token_unflushed(hash, now).await;
        if result.is_ok() {
            self.auth_changed();
        }
        result
    }

    async fn revoke_access_token_unflushed(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let revoked: Option<(String,)> = on_pool!(self, pool => sqlx::query_as(REVOKE_ACCESS_TOKEN)
            .bind(hash)
            .bind(millis(now))
            .fetch_optional(pool)
            .await)?;
        Ok(revoked.is_some())
    }

    /// Stores a refresh token by its hash, for `grant_id`, valid until
    /// `expires_at`. Errors as for [`Store::insert_code`].
    pub async fn insert_refresh_token(
        &self,
        hash: &str,
        grant_id: &GrantId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.insert_token(INSERT_REFRESH_TOKEN, hash, grant_id, now, expires_at)
            .await
    }

    /// Exchanges refresh token `old_hash` for a new refresh token and a new
    /// access token of the same grant, in one transaction (see
    /// [`RotateOutcome`]):
    /// - valid (unused, unrevoked, unexpired, grant and client active): the
    ///   old token is marked used and the new ones stored: `Rotated`;
    /// - revoked, or its grant or client revoked: `Revoked`;
    /// - already used: someone holds a copy, so the grant and everything
    ///   issued from it is revoked (reason `"refresh token reuse"`): `Reused`;
    /// - expired: `Expired`; not stored: `Unknown`.
    ///
    /// Of concurrent rotations of one token, one rotates and the others
    /// report reuse (or `Revoked`, once the reuse revoked the grant). Fails with [`StoreError::Invalid`] if a new hash is not
    /// a lowercase hex SHA-256, and [`StoreError::Conflict`] if one is
    /// already stored; then nothing changes.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new_refresh_hash: &str,
        new_access_hash: &str,
        now: DateTime<Utc>,
        access_expires_at: DateTime<Utc>,
        refresh_expires_at: DateTime<Utc>,
    ) -> Result<RotateOutcome, StoreError> {
        validate_token_hash(new_refresh_hash)?;
        validate_token_hash(new_access_hash)?;
        let now = millis(now);
        let access_expires_at = millis(access_expires_at);
        let refresh_expires_at = millis(refresh_expires_at);
        on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            // Take the grant's row lock before any token row: concurrent rotations of one
            // token, and the grant-wide revocation that reuse triggers, then queue in one
            // order instead of deadlocking (PostgreSQL; SQLite already serializes writers).
            sqlx::query(LOCK_GRANT_OF_REFRESH)
                .bind(old_hash)
                .execute(&mut *tx)
                .await?;
            let used = sqlx::query_scalar::<_, String>(USE_REFRESH_TOKEN)
                .bind(old_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let outcome = match used {
                Some(grant) => {
                    let row = sqlx::query_as::<_, GrantRow>(ACTIVE_GRANT)
                        .bind(&grant)
                        .fetch_optional(&mut *tx)
                        .await?;
                    match row {
                        // Revoked between the two statements (PostgreSQL).
                        None => RotateOutcome::Revoked,
                        Some(row) => {
                            for (sql, hash, expires_at) in [
                                (INSERT_REFRESH_TOKEN, new_refresh_hash, refresh_expires_at),
                                (INSERT_ACCESS_TOKEN, new_access_hash, access_expires_at),
                            ] {
                                sqlx::query(sql)
                                    .bind(hash)
                                    .bind(&grant)
                                    .bind(now)
                                    .bind(expires_at)
                                    .execute(&mut *tx)
                                    .await
                                    .map_err(token_insert_error)?;
                            }
                            RotateOutcome::Rotated {
                                grant: row.try_into()?,
                            }
                        }
                    }
                }
                None => {
                    let state = sqlx::query_as::<_, RefreshStateRow>(REFRESH_STATE)
                        .bind(old_hash)
                        .fetch_optional(&mut *tx)
                        .await?;
                    match state {
                        None => RotateOutcome::Unknown,
                        Some(token)
                            if token.revoked_at.is_some()
                                || token.grant_revoked_at.is_some()
                                || token.client_revoked_at.is_some() =>
                        {
                            RotateOutcome::Revoked
                        }
                        Some(token) if token.used_at.is_some() => {
                            revoke_grant_in!(
                                tx,
                                token.grant_id.as_str(),
                                REASON_REFRESH_REUSE,
                                now
                            );
                            RotateOutcome::Reused {
                                grant_id: grant_id(&token.grant_id)?,
                            }
                        }
                        Some(token) if token.expires_at <= now => RotateOutcome::Expired,
                        // Valid now, yet the update did not match: it changed
                        // concurrently. Refuse rather than guess.
                        Some(_) => RotateOutcome::Revoked,
                    }
                }
            };
            tx.commit().await?;
            Ok::<_, StoreError>(outcome)
        }
        .await)
    }

    /// Revokes a refresh token as RFC 7009 asks of a client's revocation
    /// request: the token's whole grant is revoked (reason
    /// `"refresh token revoked"`) with every access and refresh token issued
    /// from it, not just this token. Returns whether the token was found and
    /// its grant was active.
    pub async fn revoke_refresh_token(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = millis(now);
        on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            let grant = sqlx::query_scalar::<_, String>(REFRESH_TOKEN_GRANT)
                .bind(hash)
                .fetch_optional(&mut *tx)
                .await?;
            let was_active = match grant {
                Some(grant) => revoke_grant_in!(tx, grant.as_str(), REASON_REFRESH_REVOKED, now),
                None => false,
            };
            tx.commit().await?;
            Ok::<_, StoreError>(was_active)
        }
        .await)
    }

    /// Inserts an access or refresh token: `sql` takes hash, grant id,
    /// creation and expiry.
    async fn insert_token(
        &self,
        sql: &'static str,
        hash: &str,
        grant_id: &GrantId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        validate_token_hash(hash)?;
        let grant = grant_id.to_string();
        let done = on_pool!(self, pool => sqlx::query(sql)
            .bind(hash)
            .bind(&grant)
            .bind(millis(now))
            .bind(millis(expires_at))
            .execute(pool)
            .await
            .map(|_| ()));
        match done {
            Ok(()) => Ok(()),
            Err(err) => Err(self
                .insert_failure(err, token_hash_conflict, &grant_parent(&grant), "grant")
                .await),
        }
    }
}
