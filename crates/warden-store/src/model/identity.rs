//! Identity records: OAuth clients and grants, API keys, browser sessions, and
//! the scopes a grant or key carries.
//!
//! No secret lives in these types. Tokens are stored only as hashes, and the
//! hashes stay inside the store: a record read back never carries one.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{OrgId, Role, UserId};

id_type!(
    /// Identifies an [`OAuthClient`]; this is the OAuth `client_id`.
    ClientId
);
id_type!(
    /// Identifies a [`Grant`].
    GrantId
);
id_type!(
    /// Identifies an [`ApiKey`]. Not secret: the key itself is.
    ApiKeyId
);

/// One OAuth scope Warden understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `mcp:read`: read tools.
    Read,
    /// `mcp:write`: write tools; implies [`Scope::Read`].
    Write,
}

impl Scope {
    /// Every scope, in canonical order.
    pub const ALL: [Scope; 2] = [Scope::Read, Scope::Write];

    /// The wire and stored name, e.g. `"mcp:read"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "mcp:read",
            Scope::Write => "mcp:write",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Read => 1,
            Scope::Write => 2,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = UnknownScope;

    /// Exact, case-sensitive match on the scope names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope {
                value: s.to_owned(),
            })
    }
}

/// A set of [`Scope`]s, as carried by a grant or an API key.
///
/// The set holds exactly the scopes granted; the implication
/// `mcp:write` ⇒ `mcp:read` is applied by [`Scopes::allows_read`], so check
/// access with [`Scopes::allows_read`] / [`Scopes::allows_write`], not with
/// [`Scopes::contains`].
///
/// Parsed from an OAuth `scope` string (space separated, RFC 6749 §3.3) and
/// displayed in canonical order (`"mcp:read mcp:write"`), which is also how it
/// is stored.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    /// No scope at all.
    pub const NONE: Scopes = Scopes(0);
    /// `mcp:read`: the default for a new grant.
    pub const READ: Scopes = Scopes(1);
    /// `mcp:read mcp:write`.
    pub const READ_WRITE: Scopes = Scopes(1 | 2);

    /// Whether `scope` itself is in the set (no implication applied).
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The set with `scope` added.
    #[must_use]
    pub fn with(self, scope: Scope) -> Scopes {
        Scopes(self.0 | scope.bit())
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether read tools may be called: `mcp:read` or `mcp:write`.
    pub fn allows_read(self) -> bool {
        self.contains(Scope::Read) || self.contains(Scope::Write)
    }

    /// Whether write tools may be called: `mcp:write`.
    pub fn allows_write(self) -> bool {
        self.contains(Scope::Write)
    }

    /// The scopes in the set, in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({:?})", self.to_string())
    }
}

impl FromStr for Scopes {
    type Err = UnknownScope;

    /// Parses a space-separated scope string. Repeated spaces and repeated
    /// scopes are tolerated; the empty string is the empty set. Any other
    /// token, including one differing only in case, is an error naming it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(' ')
            .filter(|token| !token.is_empty())
            .try_fold(Scopes::NONE, |set, token| Ok(set.with(token.parse()?)))
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        iter.into_iter().fold(Scopes::NONE, Scopes::with)
    }
}

/// A scope name Warden does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {value:?}; valid scopes are mcp:read and mcp:write")]
pub struct UnknownScope {
    /// The rejected scope token.
    pub value: String,
}

/// An OAuth client (an MCP client application), registered once and shared by
/// every organization that connects it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthClient {
    /// The OAuth `client_id`.
    pub id: ClientId,
    /// The name shown on the consent page and in `warden apps list`.
    pub name: String,
    /// The exact redirect URIs an authorization request may use.
    pub redirect_uris: Vec<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it was revoked everywhere, if it was. Tokens of a revoked client
    /// stop working.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One user's authorization of one client in one organization: the root that
/// codes, access tokens and refresh tokens are issued from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Stable id.
    pub id: GrantId,
    /// The organization the tokens act in.
    pub org_id: OrgId,
    /// The user who authorized the client.
    pub user_id: UserId,
    /// The client authorized.
    pub client_id: ClientId,
    /// What the client may do.
    pub scopes: Scopes,
    /// The user's role when the grant was authorized or last refreshed.
    pub role: Role,
    /// The RFC 8707 resource (audience) the tokens are for.
    pub resource: String,
    /// When the user authorized the client.
    pub created_at: DateTime<Utc>,
    /// When the role or revocation last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was revoked, if it was. A revoked grant's tokens never work.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked, e.g. `"refresh token reuse"`.
    pub revoked_reason: Option<String>,
}

impl Grant {
    /// Whether the grant has not been revoked.
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A long-lived API key of one user in one organization. The key is stored
/// only as a hash, which this record does not carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// Stable id, used to revoke the key.
    pub id: ApiKeyId,
    /// The first characters of the raw key, to tell keys apart in listings.
    pub display_prefix: String,
    /// The organization the key acts in.
    pub org_id: OrgId,
    /// The user the key acts as; their live role applies.
    pub user_id: UserId,
    /// A label chosen by its creator.
    pub name: String,
    /// What the key may do, on top of the user's live role.
    pub scopes: Scopes,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last authenticated a request, if ever.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A signed-in browser (dashboard, login and consent pages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrowserSession {
    /// Who is signed in.
    pub user_id: UserId,
    /// When they signed in.
    pub created_at: DateTime<Utc>,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// The result of redeeming an authorization code
/// ([`Store::consume_code`](crate::Store::consume_code)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeOutcome {
    /// First use of a live code of an active grant. The code is now used.
    /// The caller must still check `redirect_uri` and the PKCE verifier
    /// against `code_challenge`.
    Fresh {
        /// The grant to issue tokens from.
        grant: Grant,
        /// The redirect URI the code was issued to.
        redirect_uri: String,
        /// The PKCE S256 challenge of the authorization request.
        code_challenge: String,
    },
    /// The code had expired; it is now used.
    Expired,
    /// The code was already redeemed: someone replayed it. The caller should
    /// revoke the grant (RFC 9700 §4.5).
    Replayed {
        /// The grant the code was issued from.
        grant_id: GrantId,
    },
    /// The code's grant or client has been revoked.
    Revoked,
    /// No such code.
    Unknown,
}

/// The result of exchanging a refresh token
/// ([`Store::rotate_refresh_token`](crate::Store::rotate_refresh_token)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The old token is now used and the new refresh and access tokens are
    /// stored. The caller re-checks the user's live membership against
    /// `grant.role`.
    Rotated {
        /// The grant, as it is now.
        grant: Grant,
    },
    /// The token had already been used: a copy is in someone else's hands.
    /// The whole grant and all its tokens have been revoked.
    Reused {
        /// The grant that was revoked.
        grant_id: GrantId,
    },
    /// The token has expired.
    Expired,
    /// The token, its grant or its client has been revoked.
    Revoked,
    /// No such token.
    Unknown,
}
