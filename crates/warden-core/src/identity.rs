//! Who a caller is, in the product's words: the organisation roles and the OAuth scopes.
//! Plain domain types, shared by authentication, authorization and storage.

use std::fmt;
use std::str::FromStr;

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

impl Role {
    /// Whether this role may connect an assistant at all. Auxiliary Members and Service
    /// Accounts never can.
    pub fn can_connect(self) -> bool {
        !matches!(self, Role::AuxiliaryMember | Role::ServiceAccount)
    }

    /// Whether this role may use write tools (it still needs `mcp:write` and confirmation).
    pub fn can_write(self) -> bool {
        matches!(self, Role::Admin | Role::Member)
    }

    /// The name people read ("Siloed Member").
    pub fn title(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::Member => "Member",
            Role::SiloedMember => "Siloed Member",
            Role::Guest => "Guest",
            Role::AuxiliaryMember => "Auxiliary Member",
            Role::ServiceAccount => "Service Account",
        }
    }
}

/// Who is calling: the authenticated principal, as every stage after authentication sees it.
/// The organisation comes from the credential only, never from anything the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub email: String,
    /// The organisation's slug.
    pub org: String,
    pub role: Role,
    pub scopes: Scopes,
    /// `oauth`, `api_key` or `session`.
    pub method: &'static str,
    /// The OAuth client id or API key id behind the call (empty for a browser session).
    pub credential: String,
}
