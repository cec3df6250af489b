//! Domain records of the control plane: organizations, users, memberships and
//! roles, the identity records in [`identity`] (OAuth clients, grants, API
//! keys, sessions, scopes), plus the input rules the store enforces before
//! writing them.
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

// After `id_type!`, which it uses.
pub mod identity;

pub use identity::{
    ApiKey, ApiKeyId, BrowserSession, ClientId, CodeOutcome, Grant, GrantId, OAuthClient,
    RotateOutcome, Scope, Scopes, UnknownScope,
};

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

pub use warden_core::identity::{Role, UnknownRole};

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

/// Length of a token hash: SHA-256 as lowercase hex.
pub const TOKEN_HASH_LEN: usize = 64;
/// Longest API key display prefix: enough to tell keys apart, too short to
/// leak a usable part of the key.
pub const MAX_DISPLAY_PREFIX_LEN: usize = 16;
/// Longest password hash string accepted.
pub const MAX_PASSWORD_HASH_LEN: usize = 512;

/// Checks that a token hash is 64 lowercase hex digits, so a raw token passed
/// by mistake is refused rather than stored. The rejected value is not echoed:
/// it may be that raw token.
pub(crate) fn validate_token_hash(hash: &str) -> Result<(), StoreError> {
    let ok = hash.len() == TOKEN_HASH_LEN
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field: "token hash",
            value: REDACTED.to_owned(),
            rule: "pass the lowercase hex SHA-256 of the token, never the token itself",
        })
    }
}

/// Checks the shape of a PHC password-hash string (`$id$...$salt$hash`), so a
/// plain password passed by mistake is refused rather than stored. The
/// rejected value is not echoed: it may be that password.
pub(crate) fn validate_password_hash(phc: &str) -> Result<(), StoreError> {
    let mut parts = phc.split('$');
    let starts_with_dollar = parts.next() == Some("");
    let algorithm_ok = parts.next().is_some_and(|id| {
        !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    // At least a salt and a hash after the algorithm, none of them empty.
    let rest: Vec<&str> = parts.collect();
    let ok = starts_with_dollar
        && algorithm_ok
        && rest.len() >= 2
        && rest.iter().all(|part| !part.is_empty())
        && phc.len() <= MAX_PASSWORD_HASH_LEN
        && phc.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field: "password hash",
            value: REDACTED.to_owned(),
            rule: "pass the PHC string from the password hasher (e.g. $argon2id$v=19$...), \
                   never the password itself",
        })
    }
}

/// Checks an API key display prefix: 1 to 16 printable ASCII characters.
pub(crate) fn validate_display_prefix(prefix: &str) -> Result<(), StoreError> {
    if (1..=MAX_DISPLAY_PREFIX_LEN).contains(&prefix.len())
        && prefix.bytes().all(|b| b.is_ascii_graphic())
    {
        Ok(())
    } else {
        // Not echoed: an over-long "prefix" may be the whole key.
        Err(StoreError::Invalid {
            field: "API key display prefix",
            value: REDACTED.to_owned(),
            rule: "pass 1 to 16 printable characters from the start of the key, \
                   e.g. the kind prefix and 4 more",
        })
    }
}

/// Checks that a required text input has visible text.
pub(crate) fn validate_not_blank(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.trim().is_empty() {
        Err(StoreError::Invalid {
            field,
            value: value.to_owned(),
            rule: "give a non-empty value",
        })
    } else {
        Ok(())
    }
}

/// Checks that a grant or API key carries at least one scope.
pub(crate) fn validate_scopes(scopes: Scopes) -> Result<(), StoreError> {
    if scopes.is_empty() {
        Err(StoreError::Invalid {
            field: "scopes",
            value: String::new(),
            rule: "grant at least mcp:read",
        })
    } else {
        Ok(())
    }
}

/// Shown instead of a rejected value that may be a secret.
const REDACTED: &str = "<redacted>";
