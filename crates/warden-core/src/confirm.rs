//! Explicit confirmation of writes: the third key, after a write-capable role and the
//! `mcp:write` scope.
//!
//! A write call without `confirm: true` runs as a dry run (in a transaction that is rolled
//! back) and answers with a preview and a server-minted confirmation token. The token is
//! single-use, expires after 5 minutes, and is bound to the caller, the organisation, the
//! tool and a hash of the canonical arguments, so the model cannot confirm on its own: it
//! needs the token the server just handed out for exactly this call.

use std::time::Duration;

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::exec::SqlValue;

pub const TTL: Duration = Duration::from_secs(5 * 60);

/// Argument names a write tool accepts besides its own parameters.
pub const CONFIRM: &str = "confirm";
pub const TOKEN: &str = "confirmation_token";

/// What a confirmation token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub user: String,
    pub org: String,
    pub tool: String,
    pub args_hash: String,
}

/// Why a confirmation token was refused; each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the confirmation_token is not one this server issued; call the tool without confirm to get a new preview and token"
    )]
    Unknown,
    #[error(
        "this confirmation_token was already used; every write needs a fresh preview and token"
    )]
    Used,
    #[error(
        "this confirmation_token has expired (they last 5 minutes); call the tool without confirm to get a new one"
    )]
    Expired,
    #[error(
        "this confirmation_token was issued to another user; only the person who saw the preview can confirm it"
    )]
    OtherUser,
    #[error("this confirmation_token was issued in another organisation")]
    OtherOrg,
    #[error("this confirmation_token was issued for another tool")]
    OtherTool,
    #[error(
        "the arguments differ from the ones previewed; call the tool without confirm to preview these arguments"
    )]
    ArgumentsChanged,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("confirmations are unavailable: {0}")]
    Internal(String),
}

/// Where confirmation tokens are minted and redeemed (the state store, or memory for
/// `auth: none`).
pub trait Ledger: Send + Sync + std::fmt::Debug {
    /// A new raw token for `binding`, valid for [`TTL`].
    fn mint(&self, binding: Binding) -> BoxFuture<'_, Result<String, LedgerError>>;
    /// Uses `token` once, if it was minted for exactly `binding` and is still valid.
    fn redeem<'a>(
        &'a self,
        token: &'a str,
        binding: &'a Binding,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;
}

/// Checks a stored binding against the one presented, most specific refusal first.
pub fn compare(stored: &Binding, presented: &Binding) -> Result<(), Refusal> {
    if stored.user != presented.user {
        return Err(Refusal::OtherUser);
    }
    if stored.org != presented.org {
        return Err(Refusal::OtherOrg);
    }
    if stored.tool != presented.tool {
        return Err(Refusal::OtherTool);
    }
    if stored.args_hash != presented.args_hash {
        return Err(Refusal::ArgumentsChanged);
    }
    Ok(())
}

/// SHA-256 over the tool name and the bound values (after defaults), in statement order,
/// each with its type: two calls hash alike exactly when they would run the same statement
/// with the same values.
pub fn args_hash(tool: &str, args: &[SqlValue]) -> String {
    args_hash_iter(tool, args.iter())
}

/// [`args_hash`] over values as they come.
pub fn args_hash_iter<'a>(tool: &str, args: impl Iterator<Item = &'a SqlValue>) -> String {
    let mut h = Sha256::new();
    h.update(tool.as_bytes());
    for a in args {
        h.update([0u8]);
        let (tag, bytes) = match a {
            SqlValue::Null(t) => (b'n', t.as_str().as_bytes().to_vec()),
            SqlValue::Int(i) => (b'i', i.to_le_bytes().to_vec()),
            SqlValue::Float(f) => (b'f', f.to_le_bytes().to_vec()),
            SqlValue::Text(s) => (b's', s.as_bytes().to_vec()),
            SqlValue::Bool(b) => (b'b', vec![u8::from(*b)]),
        };
        h.update([tag]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::ParamType;

    #[test]
    fn hashes_tell_calls_apart() {
        let a = args_hash("t", &[SqlValue::Int(1), SqlValue::Text("x".into())]);
        assert_eq!(
            a,
            args_hash("t", &[SqlValue::Int(1), SqlValue::Text("x".into())])
        );
        for other in [
            args_hash("u", &[SqlValue::Int(1), SqlValue::Text("x".into())]),
            args_hash("t", &[SqlValue::Int(2), SqlValue::Text("x".into())]),
            args_hash(
                "t",
                &[SqlValue::Text("1".into()), SqlValue::Text("x".into())],
            ),
            args_hash("t", &[SqlValue::Int(1), SqlValue::Null(ParamType::String)]),
            args_hash(
                "t",
                &[
                    SqlValue::Int(1),
                    SqlValue::Text("x".into()),
                    SqlValue::Bool(true),
                ],
            ),
        ] {
            assert_ne!(a, other);
        }
    }

    #[test]
    fn most_specific_refusal_first() {
        let b = Binding {
            user: "u".into(),
            org: "o".into(),
            tool: "t".into(),
            args_hash: "h".into(),
        };
        assert_eq!(compare(&b, &b), Ok(()));
        assert_eq!(
            compare(
                &b,
                &Binding {
                    user: "v".into(),
                    ..b.clone()
                }
            ),
            Err(Refusal::OtherUser)
        );
        assert_eq!(
            compare(
                &b,
                &Binding {
                    org: "p".into(),
                    ..b.clone()
                }
            ),
            Err(Refusal::OtherOrg)
        );
        assert_eq!(
            compare(
                &b,
                &Binding {
                    tool: "x".into(),
                    ..b.clone()
                }
            ),
            Err(Refusal::OtherTool)
        );
        assert_eq!(
            compare(
                &b,
                &Binding {
                    args_hash: "z".into(),
                    ..b.clone()
                }
            ),
            Err(Refusal::ArgumentsChanged)
        );
    }
}
