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

/// Roles that may connect an assistant at all (see [`Role::can_connect`]).
pub fn can_connect(role: Role) -> bool {
    role.can_connect()
}

/// Roles that may use write tools (see [`Role::can_write`]).
pub fn can_write(role: Role) -> bool {
    role.can_write()
}

impl Principal {
    /// The caller as the pipeline's later stages see it.
    pub fn caller(&self) -> warden_core::authz::Caller {
        let credential = match &self.method {
            AuthMethod::OAuth { client_id, .. } => client_id.to_string(),
            AuthMethod::ApiKey { key_id } => key_id.to_string(),
            AuthMethod::Session => String::new(),
        };
        warden_core::authz::Caller {
            user_id: self.user_id.to_string(),
            email: self.email.clone(),
            org: self.org_slug.clone(),
            role: self.role,
            scopes: self.scopes,
            method: self.method.as_str(),
            credential,
        }
    }
}
