//! Domain records of the control plane: organizations, users, memberships and
//! roles, plus the input rules the store enforces before writing them.
//!
//! These are plain types: nothing here knows SQL, HTTP or MCP.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;

#[cfg(test)]
mod tests;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Hyphenated lowercase: the form stored in the database.
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies an [`Organization`]. Distinct from [`UserId`] so the two
    /// cannot be swapped in a call.
    OrgId
);
id_type!(
    /// Identifies a [`User`].
    UserId
);

/// A tenant: the unit that owns memberships and, later, grants and policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    /// Stable id.
    pub id: OrgId,
    /// URL-safe unique name: lowercase letters, digits and `-`, 1 to 63 long.
    pub slug: String,
    /// Human-readable name.
    pub name: String,
    /// When it was created (UTC, millisecond precision).
    pub created_at: DateTime<Utc>,
}

/// A person or service identity that can sign in.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id.
    pub id: UserId,
    /// Lowercased email address; unique across users.
    pub email: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// Password hash (PHC string), if the user signs in with a password.
    /// Never printed by `Debug`.
    pub password_hash: Option<String>,
    /// When it was created (UTC, millisecond precision).
    pub created_at: DateTime<Utc>,
    /// When it was disabled, if it is.
    pub disabled_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            // Shows whether a hash is set, never the hash itself.
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("created_at", &self.created_at)
            .field("disabled_at", &self.disabled_at)
            .finish()
    }
}

/// A user's role in one organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// The organization.
    pub org_id: OrgId,
    /// The member.
    pub user_id: UserId,
    /// What the member may do there.
    pub role: Role,
    /// When the user first joined the organization.
    pub created_at: DateTime<Utc>,
    /// When the role was last set.
    pub updated_at: DateTime<Utc>,
}

/// The role a user holds in an organization. Stored as its [`Role::as_str`] name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages the organization, its members and its configuration.
    Admin,
    /// Regular member.
    Member,
    /// Member who sees only what is explicitly shared with them.
    SiloedMember,
    /// Outside collaborator with limited access.
    Guest,
    /// Member with access restricted to auxiliary features.
    AuxiliaryMember,
    /// Non-human identity acting for automation.
    ServiceAccount,
}

impl Role {
    /// Every role, in privilege order from most to least.
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::Member,
        Role::SiloedMember,
        Role::Guest,
        Role::AuxiliaryMember,
        Role::ServiceAccount,
    ];

    /// The stored and configuration name, e.g. `"siloed_member"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::SiloedMember => "siloed_member",
            Role::Guest => "guest",
            Role::AuxiliaryMember => "auxiliary_member",
            Role::ServiceAccount => "service_account",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;

    /// Exact, case-sensitive match on the stored names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole {
                value: s.to_owned(),
            })
    }
}

/// A string that names no [`Role`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown role {value:?}; valid roles are admin, member, siloed_member, guest, \
     auxiliary_member, service_account"
)]
pub struct UnknownRole {
    /// The rejected input.
    pub value: String,
}

/// Longest organization slug: fits a DNS label.
pub const MAX_SLUG_LEN: usize = 63;
/// Longest email address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Checks an organization slug: 1 to 63 of `a-z`, `0-9`, `-`.
pub fn validate_slug(slug: &str) -> Result<(), StoreError> {
    let ok = (1..=MAX_SLUG_LEN).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field: "organization slug",
            value: slug.to_owned(),
            rule: "use 1 to 63 characters, each a lowercase letter a-z, a digit or '-'",
        })
    }
}

/// Trims and lowercases an email address and checks its rough shape: exactly
/// one `@` with text on both sides, no whitespace or control characters.
/// Deliverability is proven by confirmation mail, not here.
pub fn normalize_email(email: &str) -> Result<String, StoreError> {
    let normalized = email.trim().to_lowercase();
    let shape_ok = match normalized.split_once('@') {
        Some((local, domain)) => !local.is_empty() && !domain.is_empty() && !domain.contains('@'),
        None => false,
    };
    let chars_ok = !normalized
        .chars()
        .any(|c| c.is_whitespace() || c.is_control());
    if shape_ok && chars_ok && normalized.len() <= MAX_EMAIL_LEN {
        Ok(normalized)
    } else {
        Err(StoreError::Invalid {
            field: "email address",
            value: email.to_owned(),
            rule: "use one address of the form name@example.com, at most 254 characters, \
                   without spaces",
        })
    }
}

/// Checks that an organization name has visible text.
pub(crate) fn validate_org_name(name: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() {
        Err(StoreError::Invalid {
            field: "organization name",
            value: name.to_owned(),
            rule: "give the organization a non-empty name",
        })
    } else {
        Ok(())
    }
}
