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

pub use warden_core::identity::{Scope, Scopes, UnknownScope};

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
    /// Its last request.
    pub last_seen_at: DateTime<Utc>,
    /// When its person last proved their password (or used a sign-in link): the sign-in,
    /// or a later confirmation.
    pub authenticated_at: DateTime<Utc>,
    /// The identity-provider sign-in it came from (a `federated_identities` id), if any.
    pub identity_id: Option<String>,
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
