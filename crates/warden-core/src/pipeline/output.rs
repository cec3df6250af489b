//! Output policy and result shaping: the rows become the tool's declared result (a row, or
//! `rows`/`row_count`/`truncated`), the output rules filter, mask and drop what the caller
//! may not see, and only then is the result rendered into content blocks.

use serde_json::{Map, Value, json};

use crate::exec::QueryOutput;
use crate::policy::PolicyDenial;
use crate::project::{Access, ContentBlock, Resource, Returns, Tool};

use super::error::{CallError, ResourceError};
use super::response::{Content, ResourceBody, ToolResult};

/// Turns rows into the tool's declared result shape and content blocks.
/// `next_cursor`: for a paged tool cut short, the cursor of the rows after these.
pub(super) fn shape(
    tool: &Tool,
    out: QueryOutput,
    vars: &mut Map<String, Value>,
    next_cursor: Option<String>,
) -> Result<ToolResult, CallError> {
    let counted = match tool.access {
        Access::Write => out.rows_affected,
        Access::Read => out.rows.len() as u64,
    };
    let mut value = match (tool.returns, tool.access) {
        (Returns::Row, _) => match out.rows.into_iter().next() {
            Some(row) => Value::Object(row),
            None => {
                return Err(CallError::NotFound(format!(
                    "{} found nothing for these arguments",
                    tool.name
                )));
            }
        },
        (Returns::Rows, Access::Write) if out.rows.is_empty() => {
            json!({ "rows_affected": out.rows_affected })
        }
        (Returns::Rows, _) => {
            let mut m = Map::new();
            m.insert("row_count".into(), json!(out.rows.len()));
            m.insert(
                "rows".into(),
                Value::Array(out.rows.into_iter().map(Value::Object).collect()),
            );
            m.insert("truncated".into(), json!(out.truncated));
            if let Some(c) = next_cursor {
                m.insert("next_cursor".into(), json!(c));
            }
            if tool.access == Access::Write {
                m.insert("rows_affected".into(), json!(out.rows_affected));
            }
            Value::Object(m)
        }
    };
    // The output policy sees (and edits) the whole result before anything is rendered.
    let report = tool
        .policies
        .apply_output(vars, &mut value)
        .map_err(CallError::Policy)?;
    if !tool.content.is_empty() {
        let rows: Vec<Map<String, Value>> = match value {
            Value::Object(mut m) if tool.returns == Returns::Rows => match m.remove("rows") {
                Some(Value::Array(rows)) => rows
                    .into_iter()
                    .filter_map(|r| {
                        if let Value::Object(o) = r {
                            Some(o)
                        } else {
                            None
                        }
                    })
                    .collect(),
                _ => Vec::new(),
            },
            Value::Object(row) => vec![row],
            _ => Vec::new(),
        };
        let mut r = content_result(tool, rows)?;
        r.policy = report;
        r.rows = counted;
        return Ok(r);
    }
    let text = serde_json::to_string(&value).unwrap_or_default();
    Ok(ToolResult {
        content: vec![Content::Text(text)],
        structured: tool.output_schema.is_some().then_some(value),
        policy: report,
        rows: counted,
        detail: None,
    })
}

/// Builds the declared content blocks from each row.
fn content_result(tool: &Tool, rows: Vec<Map<String, Value>>) -> Result<ToolResult, CallError> {
    let col = |row: &Map<String, Value>, c: &str| -> Result<String, CallError> {
        match row.get(c) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Null) | None => Err(CallError::NotFound(format!(
                "column '{c}' is missing or null in the result"
            ))),
            Some(other) => Ok(other.to_string()),
        }
    };
    let mut content = Vec::new();
    for row in &rows {
        for block in &tool.content {
            content.push(match block {
                ContentBlock::Text { column } => Content::Text(col(row, column)?),
                ContentBlock::Image { column, mime_type } => Content::Image {
                    data: col(row, column)?,
                    mime_type: mime_type.clone(),
                },
                ContentBlock::Audio { column, mime_type } => Content::Audio {
                    data: col(row, column)?,
                    mime_type: mime_type.clone(),
                },
                ContentBlock::Resource {
                    uri_column,
                    column,
                    mime_type,
                } => Content::Resource {
                    uri: col(row, uri_column)?,
                    text: col(row, column)?,
                    mime_type: mime_type.clone(),
                },
            });
        }
    }
    Ok(ToolResult {
        content,
        structured: None,
        policy: Default::default(),
        rows: 0,
        detail: None,
    })
}

/// A resource's first column, through the output rules: JSON content can be edited by
/// them; any other content can only be denied.
pub(super) fn resource_body(
    policies: &crate::policy::PolicySet,
    resource: &Resource,
    vars: &mut Map<String, Value>,
    text: String,
) -> Result<ResourceBody, ResourceError> {
    let deny = |d: PolicyDenial| ResourceError::Policy(d);
    let text = match serde_json::from_str::<Value>(&text) {
        Ok(mut json) if !resource.binary => {
            policies.apply_output(vars, &mut json).map_err(deny)?;
            json.to_string()
        }
        _ => {
            policies
                .apply_output(vars, &mut Value::Null)
                .map_err(deny)?;
            text
        }
    };
    Ok(if resource.binary {
        ResourceBody::Blob(text)
    } else {
        ResourceBody::Text(text)
    })
}
