//! Keyset paging for tools generated from `tables:`: the page size and the cursor a call
//! gives are bound into the statement (`:_fetch`, one row more than the page, and
//! `:_after_<i>`, the last key seen), and a result with more rows than the page is cut and
//! given the next cursor.
//!
//! A cursor is `<base64url(JSON keys)>.<base64url(HMAC-SHA256)>`, the MAC (under the
//! pipeline's cursor key) binding the keys to the caller (organisation and user), the tool
//! and the call's filter (every bound value but the page's). A cursor edited, replayed by
//! someone else, or sent to another tool or with another filter is refused, naming the
//! `cursor` parameter; its MAC is compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::exec::{QueryOutput, SqlValue};
use crate::project::{ArgumentError, ParamType, Tool};
use crate::tables::{FETCH, MAX_LIMIT, Paging};

use super::error::CallError;
use super::request::CallRequest;

/// A paged call's page: its size and what its cursors are bound to.
pub(super) struct Page<'t> {
    paging: &'t Paging,
    limit: usize,
    binding: Vec<u8>,
}

/// The pipeline's secret for cursors. Instances that share a state store share it, so a
/// cursor one gave another accepts.
#[derive(Clone)]
pub struct CursorKey(pub(super) std::sync::Arc<[u8; 32]>);

impl CursorKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(std::sync::Arc::new(key))
    }

    /// A key of this process only.
    pub fn random() -> Self {
        let mut k = [0u8; 32];
        rand::fill(&mut k);
        Self::new(k)
    }

    fn mac(&self, binding: &[u8], payload: &[u8]) -> Option<Hmac<Sha256>> {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_slice()).ok()?;
        m.update(b"warden-cursor-v1\0");
        m.update(binding);
        m.update(&[0]);
        m.update(payload);
        Some(m)
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(<secret>)")
    }
}

fn refused(message: &str) -> CallError {
    CallError::Arguments(ArgumentError {
        param: "cursor".into(),
        message: message.into(),
    })
}

/// Binds a paged tool's page size and cursor into `args` (positions of the statement's
/// names). `None` for a tool that is not paged.
pub(super) fn bind<'t>(
    key: &CursorKey,
    tool: &'t Tool,
    own: Option<&Map<String, Value>>,
    args: &mut [SqlValue],
    req: &CallRequest<'_>,
    max_rows: usize,
) -> Result<Option<Page<'t>>, CallError> {
    let Some(paging) = tool.generated.as_ref().and_then(|g| g.paging.as_ref()) else {
        return Ok(None);
    };
    let names = &tool.statement.names;
    let asked = own
        .and_then(|a| a.get("limit"))
        .and_then(Value::as_u64)
        .map_or(paging.default_limit, |l| l.min(u64::from(MAX_LIMIT)) as u32);
    // The page and the row that tells there is more must fit under `data.max_rows`.
    let limit = (asked as usize).min(max_rows.saturating_sub(1)).max(1);
    // What the cursor is bound to: who, which tool, and the filter (the page's own
    // positions still unbound here).
    let mut binding = Vec::new();
    let (org, user) = req
        .caller
        .map_or(("local", "local"), |c| (c.org.as_str(), c.user_id.as_str()));
    for part in [org, user, tool.name.as_str()] {
        binding.extend_from_slice(part.as_bytes());
        binding.push(0);
    }
    binding.extend_from_slice(crate::confirm::args_hash(&tool.name, args).as_bytes());
    let after: Vec<SqlValue> = match own.and_then(|a| a.get("cursor")).and_then(Value::as_str) {
        None => paging
            .keys
            .iter()
            .map(|(_, ty)| SqlValue::Null(*ty))
            .collect(),
        Some(cursor) => open(key, &binding, cursor, paging)?,
    };
    for (i, n) in names.iter().enumerate() {
        if n == FETCH {
            args[i] = SqlValue::Int(limit as i64 + 1);
        } else if let Some(k) = n
            .strip_prefix("_after_")
            .and_then(|k| k.parse::<usize>().ok())
            && let Some(v) = after.get(k)
        {
            args[i] = v.clone();
        }
    }
    Ok(Some(Page {
        paging,
        limit,
        binding,
    }))
}

/// The key values a cursor carries, once its MAC is checked.
fn open(
    key: &CursorKey,
    binding: &[u8],
    cursor: &str,
    paging: &Paging,
) -> Result<Vec<SqlValue>, CallError> {
    const BAD: &str = "is not a cursor this call can use: pass the next_cursor of the previous page of exactly this call (same tool, same filters, same user), or leave it out to start from the first page";
    let (payload, mac) = cursor.split_once('.').ok_or_else(|| refused(BAD))?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| refused(BAD))?;
    let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| refused(BAD))?;
    let m = key.mac(binding, &payload).ok_or_else(|| refused(BAD))?;
    // `verify_slice` compares in constant time.
    m.verify_slice(&mac).map_err(|_| refused(BAD))?;
    let Ok(Value::Array(values)) = serde_json::from_slice::<Value>(&payload) else {
        return Err(refused(BAD));
    };
    if values.len() != paging.keys.len() {
        return Err(refused(BAD));
    }
    Ok(values
        .iter()
        .zip(&paging.keys)
        .map(|(v, (_, ty))| SqlValue::from_json(v, *ty))
        .collect())
}

/// Cuts the extra row and gives the cursor of the rows after the page, if there are more.
pub(super) fn finish(key: &CursorKey, page: &Page<'_>, out: &mut QueryOutput) -> Option<String> {
    let more = out.rows.len() > page.limit || out.truncated;
    out.rows.truncate(page.limit);
    out.truncated = more;
    if !more || page.paging.keys.is_empty() {
        return None;
    }
    let last = out.rows.last()?;
    let keys: Vec<Value> = page
        .paging
        .keys
        .iter()
        .map(|(k, _)| last.get(k).cloned().unwrap_or(Value::Null))
        .collect();
    let payload = serde_json::to_vec(&keys).ok()?;
    let mac = key.mac(&page.binding, &payload)?.finalize().into_bytes();
    Some(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(mac)
    ))
}

/// The values `names` take, found by name among `from_names` (for a statement sharing
/// another's parameters: a write's `before`).
pub(super) fn rebind(names: &[String], from_names: &[String], args: &[SqlValue]) -> Vec<SqlValue> {
    names
        .iter()
        .map(|n| {
            from_names
                .iter()
                .position(|f| f == n)
                .and_then(|i| args.get(i).cloned())
                .unwrap_or(SqlValue::Null(ParamType::String))
        })
        .collect()
}
