//! Ingest (`ingest_<table>`): rows given as JSON or read from an uploaded CSV file, every one
//! checked against the columns before anything runs (one bad row refuses the batch, naming
//! the row and the column), previewed (the count and the first rows) under a confirmation
//! token bound to the rows' content, then inserted in one transaction whose COMMIT waits for
//! the record, with progress notifications on the way.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::authz::Permit;
use crate::exec::{Batch, ExecError, QueryOutput, SqlValue};
use crate::project::{ArgumentError, Tool};
use crate::tables::{ColumnKind, INGEST_PER_STATEMENT, Ingest, IngestColumn};

use super::Pipeline;
use super::confirm::binding;
use super::error::CallError;
use super::output::shape;
use super::record::write_gate;
use super::request::CallRequest;
use super::response::{Preview, ToolResult};

/// The longest an ingest's transaction may take, unless one statement may take longer.
const INGEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Rows shown in the preview.
const PREVIEW_ROWS: usize = 5;

fn refused(param: &str, message: impl Into<String>) -> CallError {
    CallError::Arguments(ArgumentError {
        param: param.into(),
        message: message.into(),
    })
}

/// The rows to insert, checked, in the statements' column order.
struct Rows {
    values: Vec<Vec<SqlValue>>,
    /// `rows` or `file`.
    source: &'static str,
    /// SHA-256 of the file, for a file.
    sha256: Option<String>,
}

/// What a write call brings to the ingest stage: its permit, its confirmation, and what
/// its record's gate needs.
pub(super) struct WriteCall<'a> {
    pub permit: &'a Permit,
    pub confirm: bool,
    pub token: Option<String>,
    pub started: Instant,
    pub event: &'a crate::audit::Event,
    pub recorded: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Pipeline {
    pub(super) async fn ingest(
        &self,
        call: WriteCall<'_>,
        tool: &Tool,
        ingest: &Ingest,
        own: Option<&Map<String, Value>>,
        req: &CallRequest<'_>,
        vars: &mut Map<String, Value>,
    ) -> Result<ToolResult, CallError> {
        let WriteCall {
            permit,
            confirm,
            token,
            started,
            event,
            recorded,
        } = call;
        let rows = self.rows(ingest, own, req).await?;
        let n = rows.values.len();
        // The token covers the rows themselves: a file replaced after the preview, or other
        // rows, need a new preview.
        let bound = binding_of_rows(req, tool, &rows.values);
        if !confirm {
            let first: Vec<Map<String, Value>> = rows
                .values
                .iter()
                .take(PREVIEW_ROWS)
                .map(|r| shown(&ingest.columns, r))
                .collect();
            let token = self
                .confirmations
                .mint(bound)
                .await
                .map_err(|e| CallError::Confirmation(e.to_string()))?;
            return Err(CallError::ConfirmationRequired(Box::new(Preview {
                tool: tool.name.clone(),
                rows_affected: n as u64,
                rows: first,
                before: None,
                token,
                expires_in_secs: crate::confirm::TTL.as_secs(),
            })));
        }
        let token = token.ok_or_else(|| {
            CallError::Confirmation(
                "confirm: true needs the confirmation_token from the preview; call the tool without confirm first".into(),
            )
        })?;
        self.confirmations
            .redeem(&token, &bound)
            .await
            .map_err(|e| CallError::Confirmation(e.to_string()))?;
        let extra = json!({"source": rows.source, "rows": n, "sha256": rows.sha256});
        let gate = write_gate(
            self.audit.clone(),
            event.clone(),
            tool,
            started,
            recorded,
            Some(extra),
        );
        let data = self.data.for_caller(req.caller).await?;
        let (tx, mut rx) = tokio::sync::watch::channel(0u64);
        let batch = Batch {
            single: tool.statement.clone(),
            many: ingest.many.clone(),
            per: INGEST_PER_STATEMENT,
            columns: ingest.columns.iter().map(|c| c.name.clone()).collect(),
            fixed: match req.caller {
                Some(c) => vec![(super::CALLER_ORG.to_string(), SqlValue::Text(c.org.clone()))],
                None => Vec::new(),
            },
            rows: rows.values,
            progress: Some(tx),
            timeout: INGEST_TIMEOUT.max(data.limits().timeout),
        };
        let total = n as u32;
        let step = (n / 20).max(INGEST_PER_STATEMENT) as u64;
        let run = data.run_batch_gated(permit, batch, &req.cancel, gate);
        tokio::pin!(run);
        let mut told = 0u64;
        let out = loop {
            tokio::select! {
                r = &mut run => break r,
                changed = rx.changed() => {
                    if changed.is_err() {
                        break run.await;
                    }
                    let done = *rx.borrow_and_update();
                    if done >= told + step && done < n as u64 {
                        told = done;
                        req.channel.progress(done as u32, total, format!("{done} of {total} rows inserted")).await;
                    }
                }
            }
        }
        .map_err(|e| match e {
            ExecError::Refused(reason) => CallError::Audit(crate::audit::AuditError(reason)),
            other if super::execute::carries_sensitive(tool) => {
                CallError::Execution(other.withheld())
            }
            other => CallError::Execution(other),
        })?;
        req.channel
            .progress(total, total, format!("{total} of {total} rows inserted"))
            .await;
        shape(
            tool,
            QueryOutput {
                rows_affected: out.rows_affected,
                ..QueryOutput::default()
            },
            vars,
            None,
        )
    }

    /// The rows of the call: `rows` (JSON) or `file` (CSV), exactly one, each checked.
    async fn rows(
        &self,
        ingest: &Ingest,
        own: Option<&Map<String, Value>>,
        req: &CallRequest<'_>,
    ) -> Result<Rows, CallError> {
        let given = |k: &str| own.and_then(|a| a.get(k)).filter(|v| !v.is_null());
        let max = ingest.max_rows as usize;
        match (given("rows"), given("file")) {
            (Some(Value::Array(list)), None) => {
                if list.len() > max {
                    return Err(refused(
                        "rows",
                        format!(
                            "{} rows is more than the {max} one call takes; split them",
                            list.len()
                        ),
                    ));
                }
                if list.is_empty() {
                    return Err(refused("rows", "no rows to add"));
                }
                let mut values = Vec::with_capacity(list.len());
                for (i, row) in list.iter().enumerate() {
                    let Value::Object(row) = row else {
                        return Err(refused(
                            "rows",
                            format!("row {}: expected an object of columns", i + 1),
                        ));
                    };
                    values.push(json_row(&ingest.columns, row, i + 1)?);
                }
                Ok(Rows {
                    values,
                    source: "rows",
                    sha256: None,
                })
            }
            (None, Some(Value::String(name))) => {
                let files = self.files.as_ref().ok_or_else(|| {
                    refused("file", "this server keeps no files (`files` is not configured); give `rows` instead")
                })?;
                let org = req.caller.map_or("local", |c| c.org.as_str());
                let bytes = files
                    .store
                    .read(org, name)
                    .await
                    .map_err(|e| refused("file", e.to_string()))?
                    .ok_or_else(|| refused("file", format!("no stored file '{name}'; upload it with request_upload_url first (list_files shows what there is)")))?;
                // The hash of the bytes read, not of the sidecar: what was ingested.
                let sha = crate::files::sha256_hex(&bytes);
                // Parsing a large file is CPU work: off the runtime's workers.
                let columns = ingest.columns.clone();
                let values = tokio::task::spawn_blocking(move || csv_rows(&columns, &bytes, max))
                    .await
                    .map_err(|e| refused("file", format!("the file could not be read: {e}")))??;
                Ok(Rows {
                    values,
                    source: "file",
                    sha256: Some(sha),
                })
            }
            (Some(_), Some(_)) => Err(refused("rows", "give `rows` or `file`, not both")),
            (None, None) => Err(refused(
                "rows",
                "give `rows` (a list of objects) or `file` (an uploaded CSV file)",
            )),
            (Some(_), None) => Err(refused("rows", "expected a list of objects")),
            (None, Some(_)) => Err(refused("file", "expected a file name")),
        }
    }
}

/// What an ingest's token is bound to: the caller, the tool and every value of every row,
/// hashed as [`crate::confirm::args_hash`] would hash them all in a row (without copying).
fn binding_of_rows(
    req: &CallRequest<'_>,
    tool: &Tool,
    rows: &[Vec<SqlValue>],
) -> crate::confirm::Binding {
    let mut b = binding(req, tool, tool.name.clone(), &[]);
    b.args_hash = crate::confirm::args_hash_iter(&tool.name, rows.iter().flatten());
    b
}

/// A row for the preview: its columns, the sensitive ones left out.
fn shown(columns: &[IngestColumn], row: &[SqlValue]) -> Map<String, Value> {
    columns
        .iter()
        .zip(row)
        .filter(|(c, _)| !c.sensitive)
        .map(|(c, v)| {
            let v = match v {
                SqlValue::Null(_) => Value::Null,
                SqlValue::Int(i) => json!(i),
                SqlValue::Float(f) => json!(f),
                SqlValue::Text(t) => json!(t),
                SqlValue::Bool(b) => json!(b),
            };
            (c.name.clone(), v)
        })
        .collect()
}

fn date_ok(s: &str) -> bool {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(crate::tables::DATE_PATTERN).ok())
        .as_ref()
        .is_some_and(|r| r.is_match(s))
}

fn unknown(columns: &[IngestColumn], name: &str, at: &str) -> String {
    let all: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    format!(
        "{at}: unknown column '{}'; the columns are {}",
        cut(name),
        all.join(", ")
    )
}

/// A value shown in an error (and so in the record): at most 64 characters.
fn cut(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(64).collect::<String>())
    }
}

fn json_row(
    columns: &[IngestColumn],
    row: &Map<String, Value>,
    n: usize,
) -> Result<Vec<SqlValue>, CallError> {
    if let Some(k) = row.keys().find(|k| !columns.iter().any(|c| &c.name == *k)) {
        return Err(refused("rows", unknown(columns, k, &format!("row {n}"))));
    }
    columns
        .iter()
        .map(|c| {
            let at = || format!("row {n}, column {}", c.name);
            let ty = c.kind.param_type();
            match row.get(&c.name) {
                None | Some(Value::Null) if c.required => {
                    Err(refused("rows", format!("{}: is required", at())))
                }
                None | Some(Value::Null) => Ok(SqlValue::Null(ty)),
                Some(v) => typed(c, v).ok_or_else(|| {
                    let shown = if c.sensitive {
                        "<sensitive>".to_string()
                    } else {
                        cut(&v.to_string())
                    };
                    refused(
                        "rows",
                        format!("{}: expected {}, got {shown}", at(), expected(c)),
                    )
                }),
            }
        })
        .collect()
}

/// What a column takes, in words.
fn expected(c: &IngestColumn) -> &'static str {
    match c.kind {
        ColumnKind::Integer => "an integer",
        ColumnKind::Real => "a number",
        ColumnKind::Boolean => "true or false",
        ColumnKind::Date | ColumnKind::Timestamp => {
            "an ISO date (YYYY-MM-DD, optionally with a time)"
        }
        ColumnKind::Text | ColumnKind::Other => "text",
    }
}

fn typed(c: &IngestColumn, v: &Value) -> Option<SqlValue> {
    match (c.kind, v) {
        (ColumnKind::Integer, Value::Number(n)) => n.as_i64().map(SqlValue::Int),
        (ColumnKind::Real, Value::Number(n)) => n.as_f64().map(SqlValue::Float),
        (ColumnKind::Boolean, Value::Bool(b)) => Some(SqlValue::Bool(*b)),
        (ColumnKind::Date | ColumnKind::Timestamp, Value::String(s)) if date_ok(s) => {
            Some(SqlValue::Text(s.clone()))
        }
        (ColumnKind::Text | ColumnKind::Other, Value::String(s)) => Some(SqlValue::Text(s.clone())),
        _ => None,
    }
}

fn from_text(c: &IngestColumn, s: &str) -> Option<SqlValue> {
    match c.kind {
        ColumnKind::Integer => s.trim().parse().ok().map(SqlValue::Int),
        ColumnKind::Real => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(SqlValue::Float),
        ColumnKind::Boolean => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(SqlValue::Bool(true)),
            "false" | "0" | "no" => Some(SqlValue::Bool(false)),
            _ => None,
        },
        ColumnKind::Date | ColumnKind::Timestamp => {
            date_ok(s.trim()).then(|| SqlValue::Text(s.trim().to_string()))
        }
        ColumnKind::Text | ColumnKind::Other => Some(SqlValue::Text(s.to_string())),
    }
}

/// A CSV file's rows: a header naming columns, then one record per row; an empty field is
/// a null. Row numbers count the records after the header (row 1 is the file's line 2).
fn csv_rows(
    columns: &[IngestColumn],
    bytes: &[u8],
    max: usize,
) -> Result<Vec<Vec<SqlValue>>, CallError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| refused("file", format!("the CSV header cannot be read: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut at = Vec::with_capacity(header.len());
    for (i, h) in header.iter().enumerate() {
        let Some(c) = columns.iter().position(|c| &c.name == h) else {
            return Err(refused("file", unknown(columns, h, "the header")));
        };
        if header[..i].contains(h) {
            return Err(refused("file", format!("the header names '{h}' twice")));
        }
        at.push(c);
    }
    if let Some(c) = columns
        .iter()
        .find(|c| c.required && !header.contains(&c.name))
    {
        return Err(refused(
            "file",
            format!("the header lacks the required column '{}'", c.name),
        ));
    }
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let n = i + 1;
        if n > max {
            return Err(refused(
                "file",
                format!("the file has more than the {max} rows one call takes; split it"),
            ));
        }
        let record = record.map_err(|e| refused("file", format!("row {n}: {e}")))?;
        let mut row: Vec<SqlValue> = columns
            .iter()
            .map(|c| SqlValue::Null(c.kind.param_type()))
            .collect();
        for (field, &c) in record.iter().zip(&at) {
            let col = &columns[c];
            if field.is_empty() {
                continue;
            }
            row[c] = from_text(col, field).ok_or_else(|| {
                let shown = if col.sensitive {
                    "<sensitive>".to_string()
                } else {
                    cut(&format!("{field:?}"))
                };
                refused(
                    "file",
                    format!(
                        "row {n}, column {}: expected {}, got {shown}",
                        col.name,
                        expected(col)
                    ),
                )
            })?;
        }
        if let Some((c, _)) = columns
            .iter()
            .zip(&row)
            .find(|(c, v)| c.required && matches!(v, SqlValue::Null(_)))
        {
            return Err(refused(
                "file",
                format!("row {n}, column {}: is required", c.name),
            ));
        }
        out.push(row);
    }
    if out.is_empty() {
        return Err(refused("file", "the file has no rows after its header"));
    }
    Ok(out)
}
