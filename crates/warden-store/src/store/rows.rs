//! Rows as both backends return them, and their checked conversion into
//! domain records. Column types are the common subset of SQLite and
//! PostgreSQL: TEXT ids and enums, 64-bit integer unix-millisecond timestamps.

use chrono::{DateTime, Utc};

use crate::StoreError;
use crate::model::{Membership, OrgId, Organization, Role, User, UserId};

/// The current time as stored: UTC unix milliseconds.
pub(super) fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
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
