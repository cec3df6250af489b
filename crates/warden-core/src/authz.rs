//! Authorize: what the authenticated caller may do through the assistant.
//!
//! Pipeline position: after authentication, before the input policy and execution. One
//! function, [`decide`], answers for connecting, `tools/list`, `tools/call`, resources and
//! prompts alike ([`decide_unauthenticated`] is its counterpart for a project served with
//! `auth: none`), and its answer is a value: a [`Permit`] or a [`Denial`] naming its stage,
//! rule and reason, which the pipeline records.
//!
//! A [`Permit`] can be made only here (its fields are private), and every path that runs SQL
//! (`exec::DataSource::run`, `run_gated`, `dry_run`) takes one: a check that is skipped
//! leaves nothing to run the statement with.

use crate::identity::Principal;
use crate::project::{Access, AuthMode};

/// Which check refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No authenticated caller, on a project that requires one.
    Authenticate,
    /// The role may not connect an assistant at all.
    Connect,
    /// The role may not do this.
    Role,
    /// The connection's scopes do not cover this.
    Scope,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authenticate => "authenticate",
            Self::Connect => "connect",
            Self::Role => "role",
            Self::Scope => "scope",
        }
    }
}

/// Leave to run SQL of one access kind for one call. Only [`decide`] and
/// [`decide_unauthenticated`] make one.
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    rule: &'static str,
    access: Access,
}

impl Permit {
    /// The rule that allowed it.
    pub fn rule(&self) -> &'static str {
        self.rule
    }

    /// What it allows: a read permit runs statements only on read-only connections.
    pub fn access(&self) -> Access {
        self.access
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Denial {
    pub stage: Stage,
    pub rule: &'static str,
    /// Plain words for the person: what is refused and what to do.
    pub reason: String,
}

/// Whether `caller` may use something of this `access` kind.
///
/// The role matrix: Admin and Member may read and write; Siloed Member and Guest may only
/// read; Auxiliary Member and Service Account may not connect. The scopes: `mcp:read` for
/// reads, `mcp:write` (which implies read) for writes. Both must allow it.
pub fn decide(caller: &Principal, access: Access) -> Result<Permit, Denial> {
    let role = caller.role;
    may_connect(caller)?;
    match access {
        Access::Read if caller.scopes.allows_read() => Ok(Permit {
            rule: "read: role may read, scope mcp:read",
            access,
        }),
        Access::Read => Err(Denial {
            stage: Stage::Scope,
            rule: "scope.read_missing",
            reason: "this connection was not granted mcp:read; reconnect the app".into(),
        }),
        Access::Write if !role.can_write() => Err(Denial {
            stage: Stage::Role,
            rule: "role.read_only",
            reason: format!(
                "your role in {} is {}, which can only read; ask a Member or an Admin to make this change",
                caller.org,
                role.title()
            ),
        }),
        Access::Write if !caller.scopes.allows_write() => Err(Denial {
            stage: Stage::Scope,
            rule: "scope.write_missing",
            reason: "this connection is read-only (it lacks the mcp:write scope); to make changes, reconnect the app \
                     and tick \"Also let it change data\" on the consent page, or use an API key with mcp:write"
                .into(),
        }),
        Access::Write => Ok(Permit {
            rule: "write: role may write, scope mcp:write",
            access,
        }),
    }
}

/// Whether `caller`'s role may connect an assistant at all: Auxiliary Members and Service
/// Accounts may not. Part of every [`decide`]; asked alone before a connection is served.
pub fn may_connect(caller: &Principal) -> Result<(), Denial> {
    if caller.role.can_connect() {
        return Ok(());
    }
    Err(Denial {
        stage: Stage::Connect,
        rule: "role.cannot_connect",
        reason: format!(
            "the role {} cannot use Warden through an assistant; ask an Admin for a Member, Siloed Member or Guest role",
            caller.role.title()
        ),
    })
}

/// The decision for a call that carries no authenticated caller: permitted, by a rule that
/// says so, only when the project is served with `auth: none`; refused otherwise.
pub fn decide_unauthenticated(mode: AuthMode, access: Access) -> Result<Permit, Denial> {
    match mode {
        AuthMode::None => Ok(Permit {
            rule: "auth.none: the project is served without authentication",
            access,
        }),
        AuthMode::OAuth => Err(Denial {
            stage: Stage::Authenticate,
            rule: "authenticate.missing",
            reason:
                "authentication required: send an OAuth access token or API key as a Bearer token"
                    .into(),
        }),
    }
}

/// Whether `tools/list` shows a tool of this `access` to `caller`. Tools the caller may not
/// call are hidden, except that `show_write_tools` lets read-only connections see write tools
/// (calling them is still refused).
pub fn visible(caller: &Principal, access: Access, show_write_tools: bool) -> bool {
    match decide(caller, access) {
        Ok(_) => true,
        Err(d) => show_write_tools && access == Access::Write && d.stage != Stage::Connect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Role, Scopes};

    fn caller(role: Role, scopes: Scopes) -> Principal {
        Principal {
            user_id: "u".into(),
            email: "u@x".into(),
            org: "acme".into(),
            role,
            scopes,
            method: "api_key",
            credential: "k".into(),
        }
    }

    #[test]
    fn the_whole_matrix() {
        use Access::{Read, Write};
        use Role::*;
        let rw = Scopes::READ_WRITE;
        let r = Scopes::READ;
        // (role, scopes, access) -> Ok or the denying stage
        let cases: &[(Role, Scopes, Access, Option<Stage>)] = &[
            (Admin, rw, Read, None),
            (Admin, rw, Write, None),
            (Admin, r, Read, None),
            (Admin, r, Write, Some(Stage::Scope)),
            (Member, rw, Read, None),
            (Member, rw, Write, None),
            (Member, r, Read, None),
            (Member, r, Write, Some(Stage::Scope)),
            (SiloedMember, rw, Read, None),
            (SiloedMember, rw, Write, Some(Stage::Role)),
            (SiloedMember, r, Read, None),
            (SiloedMember, r, Write, Some(Stage::Role)),
            (Guest, rw, Read, None),
            (Guest, rw, Write, Some(Stage::Role)),
            (Guest, r, Read, None),
            (Guest, r, Write, Some(Stage::Role)),
            (AuxiliaryMember, rw, Read, Some(Stage::Connect)),
            (AuxiliaryMember, r, Write, Some(Stage::Connect)),
            (ServiceAccount, rw, Read, Some(Stage::Connect)),
            (ServiceAccount, rw, Write, Some(Stage::Connect)),
        ];
        for (role, scopes, access, want) in cases {
            let got = decide(&caller(*role, *scopes), *access)
                .err()
                .map(|d| d.stage);
            assert_eq!(got, *want, "{role:?} {scopes} {access:?}");
        }
    }

    #[test]
    fn reasons_say_what_to_do() {
        let d = decide(&caller(Role::Guest, Scopes::READ_WRITE), Access::Write).unwrap_err();
        assert!(
            d.reason.contains("Guest") && d.reason.contains("ask a Member or an Admin"),
            "{}",
            d.reason
        );
        let d = decide(&caller(Role::Member, Scopes::READ), Access::Write).unwrap_err();
        assert!(
            d.reason.contains("mcp:write") && d.reason.contains("reconnect"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn a_permit_names_its_rule_and_access_and_no_caller_is_a_decision_too() {
        let p = decide(&caller(Role::Member, Scopes::READ_WRITE), Access::Write).unwrap();
        assert_eq!(p.access(), Access::Write);
        assert!(p.rule().starts_with("write:"));
        let p = decide_unauthenticated(AuthMode::None, Access::Read).unwrap();
        assert_eq!(
            (p.access(), p.rule()),
            (
                Access::Read,
                "auth.none: the project is served without authentication"
            )
        );
        let d = decide_unauthenticated(AuthMode::OAuth, Access::Read).unwrap_err();
        assert_eq!(
            (d.stage, d.rule),
            (Stage::Authenticate, "authenticate.missing")
        );
    }

    #[test]
    fn listing_hides_what_cannot_be_called_unless_asked() {
        let reader = caller(Role::Member, Scopes::READ);
        assert!(visible(&reader, Access::Read, false));
        assert!(!visible(&reader, Access::Write, false));
        assert!(visible(&reader, Access::Write, true));
        let aux = caller(Role::AuxiliaryMember, Scopes::READ_WRITE);
        assert!(!visible(&aux, Access::Write, true));
    }
}
