//! Rows as both backends return them, and their checked conversion into
//! domain records. Column types are the common subset of SQLite and
//! PostgreSQL: TEXT ids and enums, 64-bit integer unix-millisecond timestamps.

use chrono::{DateTime, Utc};

use crate::StoreError;
use crate::model::{
    ApiKey, ApiKeyId, BrowserSession, ClientId, Grant, GrantId, Membership, OAuthClient, OrgId,
    Organization, Role, Scopes, User, UserId,
};

/// The current time as stored: UTC unix milliseconds.
pub(super) fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// A caller-provided time as stored: UTC unix milliseconds.
pub(super) fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn timestamp(entity: &'static str, millis: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| StoreError::Corrupt {
        entity,
        detail: format!("timestamp {millis} is out of range"),
    })
}

fn parse_id<T: std::str::FromStr>(entity: &'static str, text: &str) -> Result<T, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt {
        entity,
        detail: format!("id {text:?} is not a UUID"),
    })
}

fn parse_scopes(entity: &'static str, text: &str) -> Result<Scopes, StoreError> {
    text.parse().map_err(|err| StoreError::Corrupt {
        entity,
        detail: format!("scopes {text:?}: {err}"),
    })
}

/// Redirect URIs as stored: a JSON array of strings.
pub(super) fn encode_redirect_uris(uris: &[String]) -> String {
    serde_json::Value::from(uris).to_string()
}

fn parse_redirect_uris(entity: &'static str, text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt {
        entity,
        detail: format!("redirect URIs are not a JSON array of strings: {err}"),
    })
}

fn optional_timestamp(
    entity: &'static str,
    millis: Option<i64>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    millis.map(|ms| timestamp(entity, ms)).transpose()
}

fn parse_role(entity: &'static str, text: &str) -> Result<Role, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt {
        entity,
        detail: format!("role {text:?} is not a known role"),
    })
}

#[derive(sqlx::FromRow)]
pub(super) struct OrgRow {
    id: String,
    slug: String,
    name: String,
    created_at: i64,
}

impl TryFrom<OrgRow> for Organization {
    type Error = StoreError;

    fn try_from(row: OrgRow) -> Result<Self, StoreError> {
        const E: &str = "organization";
        Ok(Organization {
            id: parse_id::<OrgId>(E, &row.id)?,
            slug: row.slug,
            name: row.name,
            created_at: timestamp(E, row.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: String,
    email: String,
    display_name: String,
    password_hash: Option<String>,
    created_at: i64,
    disabled_at: Option<i64>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        const E: &str = "user";
        Ok(User {
            id: parse_id::<UserId>(E, &row.id)?,
            email: row.email,
            display_name: row.display_name,
            password_hash: row.password_hash,
            created_at: timestamp(E, row.created_at)?,
            disabled_at: row.disabled_at.map(|ms| timestamp(E, ms)).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct MembershipRow {
    org_id: String,
    user_id: String,
    role: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<MembershipRow> for Membership {
    type Error = StoreError;

    fn try_from(row: MembershipRow) -> Result<Self, StoreError> {
        const E: &str = "membership";
        Ok(Membership {
            org_id: parse_id::<OrgId>(E, &row.org_id)?,
            user_id: parse_id::<UserId>(E, &row.user_id)?,
            role: parse_role(E, &row.role)?,
            created_at: timestamp(E, row.created_at)?,
            updated_at: timestamp(E, row.updated_at)?,
        })
    }
}

/// A membership joined with its user, for member listings.
#[derive(sqlx::FromRow)]
pub(super) struct MemberRow {
    #[sqlx(flatten)]
    user: UserRow,
    m_org_id: String,
    m_role: String,
    m_created_at: i64,
    m_updated_at: i64,
}

impl TryFrom<MemberRow> for (User, Membership) {
    type Error = StoreError;

    fn try_from(row: MemberRow) -> Result<Self, StoreError> {
        let membership = MembershipRow {
            org_id: row.m_org_id,
            user_id: row.user.id.clone(),
            role: row.m_role,
            created_at: row.m_created_at,
            updated_at: row.m_updated_at,
        };
        Ok((User::try_from(row.user)?, Membership::try_from(membership)?))
    }
}

/// Organizations of one user, each with the membership.
#[derive(sqlx::FromRow)]
pub(super) struct OrgMembershipRow {
    #[sqlx(flatten)]
    org: OrgRow,
    m_user_id: String,
    m_role: String,
    m_created_at: i64,
    m_updated_at: i64,
}

impl TryFrom<OrgMembershipRow> for (Organization, Membership) {
    type Error = StoreError;

    fn try_from(row: OrgMembershipRow) -> Result<Self, StoreError> {
        let membership = MembershipRow {
            org_id: row.org.id.clone(),
            user_id: row.m_user_id,
            role: row.m_role,
            created_at: row.m_created_at,
            updated_at: row.m_updated_at,
        };
        Ok((
            Organization::try_from(row.org)?,
            Membership::try_from(membership)?,
        ))
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ClientRow {
    id: String,
    name: String,
    redirect_uris: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<ClientRow> for OAuthClient {
    type Error = StoreError;

    fn try_from(row: ClientRow) -> Result<Self, StoreError> {
        const E: &str = "OAuth client";
        Ok(OAuthClient {
            id: parse_id::<ClientId>(E, &row.id)?,
            name: row.name,
            redirect_uris: parse_redirect_uris(E, &row.redirect_uris)?,
            created_at: timestamp(E, row.created_at)?,
            revoked_at: optional_timestamp(E, row.revoked_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct GrantRow {
    id: String,
    org_id: String,
    user_id: String,
    client_id: String,
    scopes: String,
    role: String,
    resource: String,
    created_at: i64,
    updated_at: i64,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
}

impl GrantRow {
    /// The row's eleven columns starting at `at`, in declaration order, from a query run
    /// directly on SQLite (the bearer lookup's fast path).
    pub(super) fn from_sqlite(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(at)?,
            org_id: r.get(at + 1)?,
            user_id: r.get(at + 2)?,
            client_id: r.get(at + 3)?,
            scopes: r.get(at + 4)?,
            role: r.get(at + 5)?,
            resource: r.get(at + 6)?,
            created_at: r.get(at + 7)?,
            updated_at: r.get(at + 8)?,
            revoked_at: r.get(at + 9)?,
            revoked_reason: r.get(at + 10)?,
        })
    }
}

impl TryFrom<GrantRow> for Grant {
    type Error = StoreError;

    fn try_from(row: GrantRow) -> Result<Self, StoreError> {
        const E: &str = "grant";
        Ok(Grant {
            id: parse_id::<GrantId>(E, &row.id)?,
            org_id: parse_id::<OrgId>(E, &row.org_id)?,
            user_id: parse_id::<UserId>(E, &row.user_id)?,
            client_id: parse_id::<ClientId>(E, &row.client_id)?,
            scopes: parse_scopes(E, &row.scopes)?,
            role: parse_role(E, &row.role)?,
            resource: row.resource,
            created_at: timestamp(E, row.created_at)?,
            updated_at: timestamp(E, row.updated_at)?,
            revoked_at: optional_timestamp(E, row.revoked_at)?,
            revoked_reason: row.revoked_reason,
        })
    }
}

/// A grant joined with its client and user, for `warden apps list`.
#[derive(sqlx::FromRow)]
pub(super) struct GrantListRow {
    #[sqlx(flatten)]
    grant: GrantRow,
    c_name: String,
    c_redirect_uris: String,
    c_created_at: i64,
    c_revoked_at: Option<i64>,
    u_email: String,
    u_display_name: String,
    u_password_hash: Option<String>,
    u_created_at: i64,
    u_disabled_at: Option<i64>,
}

impl TryFrom<GrantListRow> for (Grant, OAuthClient, User) {
    type Error = StoreError;

    fn try_from(row: GrantListRow) -> Result<Self, StoreError> {
        let client = ClientRow {
            id: row.grant.client_id.clone(),
            name: row.c_name,
            redirect_uris: row.c_redirect_uris,
            created_at: row.c_created_at,
            revoked_at: row.c_revoked_at,
        };
        let user = UserRow {
            id: row.grant.user_id.clone(),
            email: row.u_email,
            display_name: row.u_display_name,
            password_hash: row.u_password_hash,
            created_at: row.u_created_at,
            disabled_at: row.u_disabled_at,
        };
        Ok((
            Grant::try_from(row.grant)?,
            OAuthClient::try_from(client)?,
            User::try_from(user)?,
        ))
    }
}

/// An authorization code just marked used.
#[derive(sqlx::FromRow)]
pub(super) struct UsedCodeRow {
    pub(super) grant_id: String,
    pub(super) redirect_uri: String,
    pub(super) code_challenge: String,
    pub(super) expires_at: i64,
}

/// Why an authorization code could not be used.
#[derive(sqlx::FromRow)]
pub(super) struct CodeStateRow {
    pub(super) grant_id: String,
    pub(super) used_at: Option<i64>,
    pub(super) expires_at: i64,
    pub(super) grant_revoked_at: Option<i64>,
    pub(super) client_revoked_at: Option<i64>,
}

/// Why a refresh token could not be used.
#[derive(sqlx::FromRow)]
pub(super) struct RefreshStateRow {
    pub(super) grant_id: String,
    pub(super) used_at: Option<i64>,
    pub(super) revoked_at: Option<i64>,
    pub(super) expires_at: i64,
    pub(super) grant_revoked_at: Option<i64>,
    pub(super) client_revoked_at: Option<i64>,
}

/// Parses a grant id read from a token or code row.
pub(super) fn grant_id(text: &str) -> Result<GrantId, StoreError> {
    parse_id("grant", text)
}

#[derive(sqlx::FromRow)]
pub(super) struct ApiKeyRow {
    id: String,
    display_prefix: String,
    org_id: String,
    user_id: String,
    name: String,
    scopes: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl ApiKeyRow {
    /// The row's nine columns starting at `at`, in declaration order (see
    /// [`GrantRow::from_sqlite`]).
    pub(super) fn from_sqlite(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(at)?,
            display_prefix: r.get(at + 1)?,
            org_id: r.get(at + 2)?,
            user_id: r.get(at + 3)?,
            name: r.get(at + 4)?,
            scopes: r.get(at + 5)?,
            created_at: r.get(at + 6)?,
            last_used_at: r.get(at + 7)?,
            revoked_at: r.get(at + 8)?,
        })
    }
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> Result<Self, StoreError> {
        const E: &str = "API key";
        Ok(ApiKey {
            id: parse_id::<ApiKeyId>(E, &row.id)?,
            display_prefix: row.display_prefix,
            org_id: parse_id::<OrgId>(E, &row.org_id)?,
            user_id: parse_id::<UserId>(E, &row.user_id)?,
            name: row.name,
            scopes: parse_scopes(E, &row.scopes)?,
            created_at: timestamp(E, row.created_at)?,
            last_used_at: optional_timestamp(E, row.last_used_at)?,
            revoked_at: optional_timestamp(E, row.revoked_at)?,
        })
    }
}

/// An API key joined with its user, for key listings.
#[derive(sqlx::FromRow)]
pub(super) struct ApiKeyListRow {
    #[sqlx(flatten)]
    key: ApiKeyRow,
    u_email: String,
    u_display_name: String,
    u_password_hash: Option<String>,
    u_created_at: i64,
    u_disabled_at: Option<i64>,
}

impl TryFrom<ApiKeyListRow> for (ApiKey, User) {
    type Error = StoreError;

    fn try_from(row: ApiKeyListRow) -> Result<Self, StoreError> {
        let user = UserRow {
            id: row.key.user_id.clone(),
            email: row.u_email,
            display_name: row.u_display_name,
            password_hash: row.u_password_hash,
            created_at: row.u_created_at,
            disabled_at: row.u_disabled_at,
        };
        Ok((ApiKey::try_from(row.key)?, User::try_from(user)?))
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    user_id: String,
    created_at: i64,
    expires_at: i64,
    last_seen_at: i64,
    authenticated_at: i64,
    identity_id: Option<String>,
}

impl TryFrom<SessionRow> for BrowserSession {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Self, StoreError> {
        const E: &str = "browser session";
        Ok(BrowserSession {
            user_id: parse_id::<UserId>(E, &row.user_id)?,
            created_at: timestamp(E, row.created_at)?,
            expires_at: timestamp(E, row.expires_at)?,
            last_seen_at: timestamp(E, row.last_seen_at)?,
            authenticated_at: timestamp(E, row.authenticated_at)?,
            identity_id: row.identity_id,
        })
    }
}

/// Parses a user id read from a magic-link row.
pub(super) fn magic_link_user_id(text: &str) -> Result<UserId, StoreError> {
    parse_id("magic link", text)
}
