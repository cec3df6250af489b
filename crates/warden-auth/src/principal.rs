//! The authenticated caller, as every later stage sees it.

use warden_store::{ApiKeyId, ClientId, GrantId, OrgId, Role, Scopes, UserId};

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
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OAuth { .. } => "oauth",
            Self::ApiKey { .. } => "api_key",
            Self::Session => "session",
        }
    }
}

/// Who is calling, in which organisation, with which role and scopes. The organisation comes
/// only from the credential, never from anything the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub email: String,
    pub org_id: OrgId,
    pub org_slug: String,
    pub role: Role,
    pub scopes: Scopes,
    pub method: AuthMethod,
}

/// Roles that may connect an assistant at all. Auxiliary Members and Service Accounts never
/// can: they are refused before anything runs.
pub fn can_connect(role: Role) -> bool {
    !matches!(role, Role::AuxiliaryMember | Role::ServiceAccount)
}

/// Roles that may use write tools (given the `mcp:write` scope and confirmation).
pub fn can_write(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Member)
}
