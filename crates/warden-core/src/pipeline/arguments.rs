//! Arguments: a call's arguments checked against the tool's declared parameters and bound
//! as SQL values, with the caller's identity filled in by the pipeline (never by the client).

use serde_json::{Map, Value};

use crate::confirm;
use crate::exec::SqlValue;
use crate::identity::Principal;
use crate::project::{Access, ArgumentError, ParamType, Tool};

use super::error::CallError;

pub use crate::project::{CALLER_EMAIL, CALLER_ORG, CALLER_USER_ID};

/// A call's arguments with the confirmation ones taken out.
pub(super) struct Split {
    pub confirm: bool,
    pub token: Option<String>,
    pub own: Option<Map<String, Value>>,
}

/// Takes `confirm` and `confirmation_token` out of a write tool's arguments (checking their
/// types); a read tool has no such arguments, so they stay and are refused as unknown.
pub(super) fn split_confirmation(
    tool: &Tool,
    args: Option<&Map<String, Value>>,
) -> Result<Split, CallError> {
    let Some(args) = args else {
        return Ok(Split {
            confirm: false,
            token: None,
            own: None,
        });
    };
    if tool.access != Access::Write {
        return Ok(Split {
            confirm: false,
            token: None,
            own: Some(args.clone()),
        });
    }
    let mut own = args.clone();
    let confirm = match own.remove(confirm::CONFIRM) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(ArgumentError {
                param: confirm::CONFIRM.into(),
                message: "expected boolean".into(),
            }
            .into());
        }
    };
    let token = match own.remove(confirm::TOKEN) {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t),
        Some(_) => {
            return Err(ArgumentError {
                param: confirm::TOKEN.into(),
                message: "expected string".into(),
            }
            .into());
        }
    };
    Ok(Split {
        confirm,
        token,
        own: Some(own),
    })
}

/// Fills `:caller_org`, `:caller_user_id` and `:caller_email` from the authenticated caller
/// (NULL without one): the only way SQL learns who calls.
pub(super) fn bind_caller(names: &[String], args: &mut [SqlValue], caller: Option<&Principal>) {
    for (slot, name) in args.iter_mut().zip(names) {
        let value = match name.as_str() {
            CALLER_ORG => caller.map(|c| c.org.clone()),
            CALLER_USER_ID => caller.map(|c| c.user_id.clone()),
            CALLER_EMAIL => caller.map(|c| c.email.clone()),
            _ => continue,
        };
        *slot = value.map_or(SqlValue::Null(ParamType::String), SqlValue::Text);
    }
}

/// Fills a value the pipeline produced itself (an elicitation answer, a model's reply) into
/// every position of the statement that names it.
pub(super) fn bind_extra(tool: &Tool, args: &mut [SqlValue], name: &str, value: SqlValue) {
    for (slot, n) in args.iter_mut().zip(&tool.statement.names) {
        if n == name {
            *slot = value.clone();
        }
    }
}

/// A resource statement's values: the URI template's variables by name (NULL where the
/// statement names something the URI does not carry).
pub(super) fn bind_uri(names: &[String], vars: &[(String, String)]) -> Vec<SqlValue> {
    names
        .iter()
        .map(|n| {
            vars.iter()
                .find(|(k, _)| k == n)
                .map_or(SqlValue::Null(ParamType::String), |(_, v)| {
                    SqlValue::Text(v.clone())
                })
        })
        .collect()
}
