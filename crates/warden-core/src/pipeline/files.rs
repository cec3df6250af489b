//! Files: the tools that issue URLs (`request_upload_url`, `request_download_url`,
//! `list_files`) and the use of a URL (`Pipeline::upload`, `Pipeline::download`), each
//! checked and recorded here.
//!
//! A URL is used with the bearer of the principal it was issued to (the edge authenticates
//! it as for `/mcp`); its token must carry this server's signature, be unexpired, name that
//! principal's organisation and user, and its single-use ticket is redeemed before anything
//! is read or stored. Every use, allowed or refused, is one record with the object's
//! SHA-256 when there is one.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::audit::{Event, Peer};
use crate::confirm::Binding;
use crate::exec::{QueryOutput, SqlValue};
use crate::files::{
    Body, Claims, DOWNLOAD_TTL, ObjectStore, Op, StoreError, Stored, UPLOAD_TTL, UrlSigner,
};
use crate::identity::Principal;
use crate::project::{Builtin, Tool};

use super::Pipeline;
use super::error::CallError;
use super::output::shape;
use super::record::call_event;
use super::request::{CallRequest, Source};
use super::response::ToolResult;

/// The file service a pipeline (and each reloaded one) shares.
#[derive(Debug)]
pub struct Files {
    pub store: Arc<dyn ObjectStore>,
    pub signer: UrlSigner,
    pub max_upload: u64,
    /// `scheme://host:port` the URLs start with, once the server knows its address.
    pub base_url: OnceLock<String>,
}

/// One use of a file URL, as the edge received it.
pub struct FileUse<'a> {
    pub token: &'a str,
    /// The authenticated principal (`None` only under `auth: none`).
    pub caller: Option<&'a Principal>,
    pub peer: &'a Peer,
    /// `Content-Length`, when the request stated one (uploads).
    pub length: Option<u64>,
}

impl std::fmt::Debug for FileUse<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileUse")
            .field("token", &"<secret>")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// Why a URL's use was refused, for the edge's status code.
#[derive(Debug, thiserror::Error)]
pub enum FileRefusal {
    /// 404: files are not served, or the object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 403: the token, its ticket or its principal.
    #[error("{0}")]
    Forbidden(String),
    /// 413: the body is larger than the URL allows.
    #[error("{0}")]
    TooLarge(String),
    /// 400: the body could not be read.
    #[error("{0}")]
    Bad(String),
    /// 503: storage or the trail failed.
    #[error("{0}")]
    Unavailable(String),
}

/// A download: the object's bytes and what it is.
#[derive(Debug)]
pub struct Download {
    pub stored: Stored,
    pub bytes: Vec<u8>,
}

fn who(caller: Option<&Principal>) -> (String, String) {
    caller.map_or_else(
        || ("local".to_string(), "local".to_string()),
        |c| (c.org.clone(), c.user_id.clone()),
    )
}

/// What a URL's ticket is bound to.
fn ticket_binding(c: &Claims) -> Binding {
    Binding {
        user: c.user.clone(),
        org: c.org.clone(),
        tool: format!("files:{}", c.op.as_str()),
        args_hash: crate::confirm::args_hash(
            "files",
            &[
                SqlValue::Text(c.name.clone()),
                SqlValue::Int(c.max as i64),
                SqlValue::Int(c.exp),
            ],
        ),
    }
}

/// Rows as CSV: a header of the first row's columns, then each row (a null is empty; text
/// as it is, numbers and booleans as JSON writes them, anything else as JSON).
fn to_csv(rows: &[Value]) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header: Vec<String> = rows
        .first()
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    if !header.is_empty() {
        w.write_record(&header).map_err(|e| e.to_string())?;
    }
    for row in rows {
        let fields: Vec<String> = header
            .iter()
            .map(|k| match row.get(k) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            })
            .collect();
        w.write_record(&fields).map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// Claims before their ticket.
fn claims(op: Op, org: &str, user: &str, name: &str, max: u64, exp: i64) -> Claims {
    Claims {
        op,
        org: org.to_string(),
        user: user.to_string(),
        name: name.to_string(),
        max,
        exp,
        ticket: String::new(),
    }
}

impl Pipeline {
    /// Serves files with `files` (kept across reloads).
    pub fn with_files(mut self, files: Arc<Files>) -> Self {
        self.files = Some(files);
        self
    }

    /// The address file URLs start with (`scheme://host:port`), once the server knows it.
    pub fn set_files_base_url(&self, base: String) {
        if let Some(f) = &self.files {
            let _ = f.base_url.set(base.trim_end_matches('/').to_string());
        }
    }

    /// Runs one of Warden's own tools after the stages before execution.
    pub(super) async fn builtin(
        &self,
        builtin: Builtin,
        tool: &Tool,
        own: Option<&Map<String, Value>>,
        req: &CallRequest<'_>,
        vars: &mut Map<String, Value>,
    ) -> Result<ToolResult, CallError> {
        let files = self.files.as_ref().ok_or_else(|| {
            CallError::NotFound(
                "files are not served by this instance; restart it to apply `files`".into(),
            )
        })?;
        let (org, user) = who(req.caller);
        let name = own
            .and_then(|a| a.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let store_error = |e: StoreError| CallError::NotFound(e.to_string());
        let (row, detail) = match builtin {
            Builtin::ListFiles => {
                let list = files.store.list(&org).await.map_err(store_error)?;
                let rows: Vec<Value> = list
                    .iter()
                    .map(|s| json!({"name": s.name, "size": s.size, "sha256": s.sha256}))
                    .collect();
                (json!({"files": rows, "count": list.len()}), None)
            }
            Builtin::UploadUrl => {
                let max = own
                    .and_then(|a| a.get("size"))
                    .and_then(Value::as_u64)
                    .map_or(files.max_upload, |s| s.min(files.max_upload));
                let exp = chrono::Utc::now().timestamp() + UPLOAD_TTL.as_secs() as i64;
                let url = self
                    .issue(files, claims(Op::Put, &org, &user, &name, max, exp))
                    .await?;
                (
                    json!({"url": url, "method": "PUT", "max_bytes": max, "expires_in_seconds": UPLOAD_TTL.as_secs(),
                           "note": "PUT the file's bytes to this URL once, with the same Authorization header as for MCP, within its lifetime"}),
                    Some(json!({"op": "put", "name": name, "max_bytes": max, "expires_at": exp})),
                )
            }
            Builtin::DownloadUrl => {
                let stored = files
                    .store
                    .stat(&org, &name)
                    .await
                    .map_err(store_error)?
                    .ok_or_else(|| {
                        CallError::NotFound(format!(
                            "no stored file '{name}'; list_files shows what there is"
                        ))
                    })?;
                let exp = chrono::Utc::now().timestamp() + DOWNLOAD_TTL.as_secs() as i64;
                let url = self
                    .issue(files, claims(Op::Get, &org, &user, &name, 0, exp))
                    .await?;
                (
                    json!({"url": url, "method": "GET", "size": stored.size, "sha256": stored.sha256, "expires_in_seconds": DOWNLOAD_TTL.as_secs()}),
                    Some(
                        json!({"op": "get", "name": name, "sha256": stored.sha256, "size": stored.size, "expires_at": exp}),
                    ),
                )
            }
        };
        let Value::Object(row) = row else {
            return Err(CallError::NotFound("no result".into()));
        };
        let out = QueryOutput {
            rows: vec![row],
            ..QueryOutput::default()
        };
        let mut result = shape(tool, out, vars, None)?;
        result.detail = detail;
        Ok(result)
    }

    /// Signs `claims` with a fresh single-use ticket, as a URL.
    async fn issue(&self, files: &Files, mut claims: Claims) -> Result<String, CallError> {
        claims.ticket = self
            .confirmations
            .mint(ticket_binding(&claims))
            .await
            .map_err(|e| CallError::NotFound(format!("no URL could be issued: {e}")))?;
        let token = files
            .signer
            .sign(&claims)
            .ok_or_else(|| CallError::NotFound("no URL could be signed".into()))?;
        let base = files.base_url.get().cloned().unwrap_or_else(|| {
            self.project
                .server
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", self.project.server.bind))
        });
        Ok(format!("{}/files/{token}", base.trim_end_matches('/')))
    }

    /// `export_<table>`: every row the filters match (up to the export cap), through the
    /// output rules, written as CSV to the caller's organisation's files; the result is the
    /// file, its SHA-256 and a download URL.
    pub(super) async fn export(
        &self,
        permit: &crate::authz::Permit,
        tool: &Tool,
        args: &mut [SqlValue],
        req: &CallRequest<'_>,
        vars: &mut Map<String, Value>,
    ) -> Result<ToolResult, CallError> {
        let files = self.files.clone().ok_or_else(|| {
            CallError::NotFound(
                "files are not served by this instance; restart it to apply `files`".into(),
            )
        })?;
        let cap = crate::tables::MAX_EXPORT_ROWS;
        for (slot, n) in args.iter_mut().zip(&tool.statement.names) {
            if n == crate::tables::FETCH {
                *slot = SqlValue::Int(cap as i64 + 1);
            }
        }
        let data = self.data.for_caller(req.caller).await?;
        let out = data
            .run_capped(permit, &tool.statement, args, &req.cancel, cap + 1)
            .await
            .map_err(|e| {
                if super::execute::carries_sensitive(tool) {
                    CallError::Execution(e.withheld())
                } else {
                    CallError::Execution(e)
                }
            })?;
        let truncated = out.rows.len() > cap || out.truncated;
        let mut rows = out.rows;
        rows.truncate(cap);
        let n = rows.len();
        // The same output rules as a result of the table's other tools.
        let mut value = json!({ "rows": rows });
        tool.policies
            .apply_output(vars, &mut value)
            .map_err(CallError::Policy)?;
        let rows = match value.get_mut("rows").map(Value::take) {
            Some(Value::Array(r)) => r,
            _ => Vec::new(),
        };
        let csv = tokio::task::spawn_blocking(move || to_csv(&rows))
            .await
            .map_err(|e| CallError::NotFound(format!("the export could not be written: {e}")))?
            .map_err(|e| CallError::NotFound(format!("the export could not be written: {e}")))?;
        let (org, user) = who(req.caller);
        let table = tool.generated.as_ref().map_or("rows", |g| g.table.as_str());
        let mut nonce = [0u8; 3];
        rand::fill(&mut nonce);
        let name = format!(
            "export-{table}-{}-{}.csv",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
            crate::files::hex(&nonce)
        );
        let body: Body = Box::pin(futures::stream::once(async move { Ok(csv) }));
        let stored = files
            .store
            .put(&org, &name, body, u64::MAX)
            .await
            .map_err(|e| CallError::NotFound(format!("the export could not be stored: {e}")))?;
        let exp = chrono::Utc::now().timestamp() + DOWNLOAD_TTL.as_secs() as i64;
        let url = self
            .issue(&files, claims(Op::Get, &org, &user, &name, 0, exp))
            .await?;
        let summary = json!({
            "file": name, "rows": n, "truncated": truncated, "size": stored.size, "sha256": stored.sha256,
            "url": url, "method": "GET", "expires_in_seconds": DOWNLOAD_TTL.as_secs(),
        });
        let Value::Object(row) = summary else {
            return Err(CallError::NotFound("no result".into()));
        };
        let mut result = shape(
            tool,
            QueryOutput {
                rows: vec![row],
                ..QueryOutput::default()
            },
            vars,
            None,
        )?;
        result.rows = n as u64;
        result.detail = Some(
            json!({"op": "export", "name": name, "rows": n, "sha256": stored.sha256, "expires_at": exp}),
        );
        Ok(result)
    }

    /// Checks a URL's token for `op`: signature, expiry, principal, ticket. On refusal, the
    /// record to make.
    async fn admit_url(
        &self,
        files: &Files,
        use_: &FileUse<'_>,
        op: Op,
        event: &mut Event,
    ) -> Result<Claims, FileRefusal> {
        let now = chrono::Utc::now().timestamp();
        let claims = match files.signer.open(use_.token, now) {
            Ok(c) => c,
            Err(e) => {
                event.deny("files", e.rule(), e.to_string());
                return Err(FileRefusal::Forbidden(e.to_string()));
            }
        };
        event.params = Some(json!({"name": claims.name}));
        // The principal's rights as they are now: an upload needs write access still.
        let access = match op {
            Op::Put => crate::project::Access::Write,
            Op::Get => crate::project::Access::Read,
        };
        if let Err(d) = self.authorize(use_.caller, access) {
            event.deny(d.stage.as_str(), d.rule, d.reason.clone());
            return Err(FileRefusal::Forbidden(d.reason));
        }
        if claims.op != op {
            let m = format!(
                "this URL is for {}, not {}",
                claims.op.as_str().to_uppercase(),
                op.as_str().to_uppercase()
            );
            event.deny("files", "files.operation", m.clone());
            return Err(FileRefusal::Forbidden(m));
        }
        let (org, user) = who(use_.caller);
        if claims.org != org || claims.user != user {
            let m = "this URL was issued to someone else; ask for your own with your credentials"
                .to_string();
            event.deny(
                "files",
                if claims.org != org {
                    "files.other_org"
                } else {
                    "files.other_user"
                },
                m.clone(),
            );
            return Err(FileRefusal::Forbidden(m));
        }
        let binding = ticket_binding(&claims);
        if let Err(e) = self.confirmations.redeem(&claims.ticket, &binding).await {
            let m = format!(
                "this URL cannot be used: {}",
                match e {
                    crate::confirm::LedgerError::Refused(crate::confirm::Refusal::Used) =>
                        "it was already used; a URL works once".to_string(),
                    other => other.to_string(),
                }
            );
            event.deny("files", "files.ticket", m.clone());
            return Err(FileRefusal::Forbidden(m));
        }
        Ok(claims)
    }

    /// `PUT /files/{token}`: stores the body under the URL's name, within its limit. A
    /// declared `Content-Length` over the limit is refused before the body is read; a body
    /// that turns out larger is stopped and nothing is kept.
    pub async fn upload(&self, use_: FileUse<'_>, body: Body) -> Result<Stored, FileRefusal> {
        let started = Instant::now();
        let mut event = call_event(
            "file_upload",
            "files.put",
            use_.caller,
            Source::Http,
            use_.peer,
        );
        let result = self.upload_inner(&use_, body, &mut event).await;
        if let Err(e) = self.finish_file(event, started, &result).await {
            // No object without its record.
            if let (Ok(stored), Some(files)) = (&result, &self.files) {
                let (org, _) = who(use_.caller);
                let _ = files.store.delete(&org, &stored.name).await;
            }
            return Err(e);
        }
        result
    }

    async fn upload_inner(
        &self,
        use_: &FileUse<'_>,
        body: Body,
        event: &mut Event,
    ) -> Result<Stored, FileRefusal> {
        let Some(files) = self.files.clone() else {
            event.deny("files", "files.off", "this server serves no files");
            return Err(FileRefusal::NotFound("this server serves no files".into()));
        };
        let claims = self.admit_url(&files, use_, Op::Put, event).await?;
        if let Some(n) = use_.length
            && n > claims.max
        {
            let m = format!(
                "Content-Length {n} is larger than the {} bytes this URL allows; nothing was stored",
                claims.max
            );
            event.deny("files", "files.too_large", m.clone());
            return Err(FileRefusal::TooLarge(m));
        }
        // The body must arrive before the URL expires (and a minute's grace).
        let left = (claims.exp - chrono::Utc::now().timestamp()).max(0) as u64 + 60;
        let put = files.store.put(&claims.org, &claims.name, body, claims.max);
        let stored = match tokio::time::timeout(std::time::Duration::from_secs(left), put).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Body(
                "the body did not arrive before the URL expired".into(),
            )),
        };
        match stored {
            Ok(stored) => {
                event.detail = Some(json!({"sha256": stored.sha256, "size": stored.size}));
                Ok(stored)
            }
            Err(e @ StoreError::TooLarge(_)) => {
                event.deny("files", "files.too_large", e.to_string());
                Err(FileRefusal::TooLarge(e.to_string()))
            }
            Err(e @ StoreError::Body(_)) => {
                event.deny("files", "files.body", e.to_string());
                Err(FileRefusal::Bad(e.to_string()))
            }
            Err(e @ StoreError::BadName(_)) => {
                event.deny("files", "files.name", e.to_string());
                Err(FileRefusal::Bad(e.to_string()))
            }
            Err(e @ StoreError::Io(_)) => {
                event.deny("files", "files.storage", e.to_string());
                Err(FileRefusal::Unavailable(e.to_string()))
            }
        }
    }

    /// `GET /files/{token}`: the object the URL names.
    pub async fn download(&self, use_: FileUse<'_>) -> Result<Download, FileRefusal> {
        let started = Instant::now();
        let mut event = call_event(
            "file_download",
            "files.get",
            use_.caller,
            Source::Http,
            use_.peer,
        );
        let result = self.download_inner(&use_, &mut event).await;
        self.finish_file(event, started, &result).await?;
        result
    }

    async fn download_inner(
        &self,
        use_: &FileUse<'_>,
        event: &mut Event,
    ) -> Result<Download, FileRefusal> {
        let Some(files) = self.files.clone() else {
            event.deny("files", "files.off", "this server serves no files");
            return Err(FileRefusal::NotFound("this server serves no files".into()));
        };
        let claims = self.admit_url(&files, use_, Op::Get, event).await?;
        let missing = || {
            FileRefusal::NotFound(format!(
                "the stored file '{}' no longer exists",
                claims.name
            ))
        };
        let bytes = match files.store.read(&claims.org, &claims.name).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                event.deny("files", "files.missing", "the stored file no longer exists");
                return Err(missing());
            }
            Err(e) => {
                event.deny("files", "files.storage", e.to_string());
                return Err(FileRefusal::Unavailable(e.to_string()));
            }
        };
        // What is served, hashed as served.
        let stored = Stored {
            name: claims.name.clone(),
            sha256: crate::files::sha256_hex(&bytes),
            size: bytes.len() as u64,
        };
        event.detail = Some(json!({"sha256": stored.sha256, "size": stored.size}));
        Ok(Download { stored, bytes })
    }

    /// Records a URL's use; if the trail cannot take it, the use is refused (an upload's
    /// object then stays, unrecorded only if the trail failed after it was stored).
    async fn finish_file<T>(
        &self,
        mut event: Event,
        started: Instant,
        result: &Result<T, FileRefusal>,
    ) -> Result<(), FileRefusal> {
        event.ts = crate::audit::now();
        event.duration_us = Some(started.elapsed().as_micros() as u64);
        if result.is_ok() {
            event.outcome = crate::audit::Outcome::Success;
        }
        self.audit.record(event).await.map_err(|e| {
            FileRefusal::Unavailable(format!(
                "the use could not be recorded, so it was refused: {}",
                e.0
            ))
        })
    }
}
