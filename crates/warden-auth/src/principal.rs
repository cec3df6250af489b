//! How a principal proved who they are, and the role rules authentication applies. The
//! principal itself is the domain's [`warden_core::identity::Principal`].

use warden_store::{ApiKeyId, ClientId, GrantId, Role};

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// An OAuth access token; its role was bound when the user consented and is re-checked
    /// on every refresh.
    OAuth {
        grant_id: GrantId,
        client_id: ClientId,
    },
    /// An API key; the role is the member's live role, looked up on every request.
    ApiKey { key_id: ApiKeyId },
    /// A browser session; the live role, like an API key.
    Session,
}

impl AuthMethod {
    /// The OAuth client id or API key id behind it (empty for a browser session).
    pub fn credential(&self) -> String {
        match self {
            Self::OAuth { client_id, .. } => client_id.to_string(),
            Self::ApiKey { key_id } => key_id.to_string(),
            Self::Session => String::new(),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OAuth { .. } => "oauth",
            Self::ApiKey { .. } => "api_key",
            Self::Session => "session",
        }
    }
}

/// Roles that may connect an assistant at all (see [`Role::can_connect`]).
pub fn can_connect(role: Role) -> bool {
    role.can_connect()
}

/// Roles that may use write tools (see [`Role::can_write`]).
pub fn can_write(role: Role) -> bool {
    role.can_write()
}
