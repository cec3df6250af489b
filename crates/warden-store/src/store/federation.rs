//! Sign-in through identity providers: sign-ins under way (`sso_flows`, each taken once),
//! the people they proved (`federated_identities`, keyed on issuer and subject), and which
//! browser session and grant came from which of them.

use chrono::{DateTime, Utc};

use super::rows::{UserRow, millis, now_millis};
use super::{Backend, BeginWrite, INSERT_USER, Store};
use crate::StoreError;
use crate::model::{GrantId, User, UserId, normalize_email};

const INSERT_FLOW: &str = "INSERT INTO sso_flows \
     (state_hash, provider, nonce, pkce_verifier, continue_to, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
const PURGE_FLOWS: &str = "DELETE FROM sso_flows WHERE expires_at <= $1";
// Deleted whether or not it is still valid: a state answers one return only.
const TAKE_FLOW: &str = "DELETE FROM sso_flows WHERE state_hash = $1 \
     RETURNING provider, nonce, pkce_verifier, continue_to, expires_at";

const IDENTITY_BY_SUBJECT: &str = "SELECT id, issuer, subject, user_id, provider, email, refresh_sealed \
     FROM federated_identities WHERE issuer = $1 AND subject = $2";
const IDENTITY_BY_ID: &str = "SELECT id, issuer, subject, user_id, provider, email, refresh_sealed \
     FROM federated_identities WHERE id = $1";
const INSERT_IDENTITY: &str = "INSERT INTO federated_identities \
     (id, issuer, subject, user_id, provider, email, refresh_sealed, created_at, last_login_at) \
     VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7) \
     RETURNING id, issuer, subject, user_id, provider, email, refresh_sealed";

const SIGNED_IN: &str = "UPDATE federated_identities \
     SET email = $2, refresh_sealed = $3, last_login_at = $4 WHERE id = $1";
const SET_REFRESH: &str = "UPDATE federated_identities SET refresh_sealed = $2 WHERE id = $1";
const SESSION_IDENTITY: &str = "UPDATE browser_sessions SET identity_id = $2 WHERE token_hash = $1";
const GRANT_IDENTITY_SET: &str = "UPDATE grants SET identity_id = $2 WHERE id = $1";
const GRANT_IDENTITY: &str = "SELECT identity_id FROM grants WHERE id = $1";

/// A sign-in under way at a provider, as stored when the person was sent there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoFlow {
    /// The provider's `name` in the project file.
    pub provider: String,
    /// The ID token must carry it back.
    pub nonce: String,
    /// PKCE: sent with the code.
    pub pkce_verifier: String,
    /// Where the person goes once signed in (a checked same-site path).
    pub continue_to: String,
}

/// A person at an identity provider, linked to one Warden account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedIdentity {
    pub id: String,
    pub issuer: String,
    pub subject: String,
    pub user_id: UserId,
    pub provider: String,
    /// The e-mail the provider last gave (for display only; never used to link).
    pub email: Option<String>,
    /// The provider's refresh token, sealed; only for providers with `resync`.
    pub refresh_sealed: Option<String>,
}

#[derive(sqlx::FromRow)]
struct IdentityRow {
    id: String,
    issuer: String,
    subject: String,
    user_id: String,
    provider: String,
    email: Option<String>,
    refresh_sealed: Option<String>,
}

impl TryFrom<IdentityRow> for FederatedIdentity {
    type Error = StoreError;

    fn try_from(r: IdentityRow) -> Result<Self, StoreError> {
        Ok(FederatedIdentity {
            user_id: r.user_id.parse().map_err(|_| StoreError::Corrupt {
                entity: "federated identity",
                detail: format!("user id {:?} is not an id", r.user_id),
            })?,
            id: r.id,
            issuer: r.issuer,
            subject: r.subject,
            provider: r.provider,
            email: r.email,
            refresh_sealed: r.refresh_sealed,
        })
    }
}

impl Store {
    /// Records a sign-in under way (its state by hash), purging the ones that expired.
    pub async fn create_sso_flow(
        &self,
        state_hash: &str,
        flow: &SsoFlow,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(PURGE_FLOWS)
            .bind(millis(now))
            .execute(pool)
            .await
            .map(|_| ()))?;
        on_pool!(self, pool => sqlx::query(INSERT_FLOW)
            .bind(state_hash)
            .bind(&flow.provider)
            .bind(&flow.nonce)
            .bind(&flow.pkce_verifier)
            .bind(&flow.continue_to)
            .bind(millis(now))
            .bind(millis(expires_at))
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Takes the sign-in under way with this state (once: it is deleted), if it has not
    /// expired at `now`.
    pub async fn take_sso_flow(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SsoFlow>, StoreError> {
        let row: Option<(String, String, String, String, i64)> = on_pool!(self, pool => sqlx::query_as(TAKE_FLOW)
                .bind(state_hash)
                .fetch_optional(pool)
                .await)?;
        Ok(row.filter(|r| r.4 > millis(now)).map(
            |(provider, nonce, pkce_verifier, continue_to, _)| SsoFlow {
                provider,
                nonce,
                pkce_verifier,
                continue_to,
            },
        ))
    }

    /// The identity a provider's `(issuer, subject)` names, if it is linked.
    pub async fn federated_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<FederatedIdentity>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, IdentityRow>(IDENTITY_BY_SUBJECT)
            .bind(issuer)
            .bind(subject)
            .fetch_optional(pool)
            .await)?;
        row.map(FederatedIdentity::try_from).transpose()
    }

    pub async fn federated_identity_by_id(
        &self,
        id: &str,
    ) -> Result<Option<FederatedIdentity>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, IdentityRow>(IDENTITY_BY_ID)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        row.map(FederatedIdentity::try_from).transpose()
    }

    /// Links `(issuer, subject)` to an existing account. A second link of the same pair
    /// is a conflict.
    pub async fn link_identity(
        &self,
        issuer: &str,
        subject: &str,
        user_id: UserId,
        provider: &str,
        email: Option<&str>,
    ) -> Result<FederatedIdentity, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_millis();
        let row = on_pool!(self, pool => sqlx::query_as::<_, IdentityRow>(INSERT_IDENTITY)
            .bind(&id)
            .bind(issuer)
            .bind(subject)
            .bind(user_id.to_string())
            .bind(provider)
            .bind(email)
            .bind(now)
            .fetch_one(pool)
            .await);
        row.map_err(|e| conflict_or(e, "an identity", "subject", subject))?
            .try_into()
    }

    /// Creates an account without a password for someone a provider proved, and links it,
    /// in one transaction: either both exist afterwards or neither does.
    pub async fn provision_identity(
        &self,
        email: &str,
        display_name: &str,
        issuer: &str,
        subject: &str,
        provider: &str,
    ) -> Result<(User, FederatedIdentity), StoreError> {
        let email = normalize_email(email)?;
        let user_id = UserId::new_random();
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_millis();
        let (user, identity) = on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            let user = sqlx::query_as::<_, UserRow>(INSERT_USER)
                .bind(user_id.to_string())
                .bind(&email)
                .bind(display_name)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict_or(e, "a user", "email", &email))?;
            let identity = sqlx::query_as::<_, IdentityRow>(INSERT_IDENTITY)
                .bind(&id)
                .bind(issuer)
                .bind(subject)
                .bind(user_id.to_string())
                .bind(provider)
                .bind(&email)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict_or(e, "an identity", "subject", subject))?;
            tx.commit().await?;
            Ok::<_, StoreError>((user, identity))
        }
        .await)?;
        Ok((user.try_into()?, identity.try_into()?))
    }

    /// A sign-in through the identity: its e-mail as the provider gave it now, and the
    /// provider's (sealed) refresh token, or none.
    pub async fn identity_signed_in(
        &self,
        id: &str,
        email: Option<&str>,
        refresh_sealed: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(SIGNED_IN)
            .bind(id)
            .bind(email)
            .bind(refresh_sealed)
            .bind(millis(now))
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Replaces the identity's sealed refresh token (the provider rotated it), or clears it.
    pub async fn set_identity_refresh(
        &self,
        id: &str,
        refresh_sealed: Option<&str>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(SET_REFRESH)
            .bind(id)
            .bind(refresh_sealed)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Marks a browser session as opened by a provider sign-in.
    pub async fn set_session_identity(
        &self,
        session_hash: &str,
        identity_id: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(SESSION_IDENTITY)
            .bind(session_hash)
            .bind(identity_id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Marks a grant as approved in a session opened by a provider sign-in.
    pub async fn set_grant_identity(
        &self,
        grant: &GrantId,
        identity_id: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(GRANT_IDENTITY_SET)
            .bind(grant.to_string())
            .bind(identity_id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The provider sign-in a grant was approved in, if any.
    pub async fn grant_identity(&self, grant: &GrantId) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> = on_pool!(self, pool => sqlx::query_as(GRANT_IDENTITY)
            .bind(grant.to_string())
            .fetch_optional(pool)
            .await)?;
        Ok(row.and_then(|r| r.0))
    }
}

fn conflict_or(
    err: sqlx::Error,
    entity: &'static str,
    field: &'static str,
    value: &str,
) -> StoreError {
    if matches!(
        crate::error::violation(&err),
        Some(sqlx::error::ErrorKind::UniqueViolation)
    ) {
        StoreError::Conflict {
            entity,
            field,
            value: value.to_string(),
            hint: "an account or identity with it exists already; link it instead",
        }
    } else {
        err.into()
    }
}
