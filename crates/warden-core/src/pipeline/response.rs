//! What leaves: a tool's result, a resource's contents and a prompt's messages, independent
//! of any wire format (the edge maps them to MCP).

use serde_json::{Map, Value};

use crate::project::Speaker;

/// One block of a tool's result.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    Image {
        data: String,
        mime_type: String,
    },
    Audio {
        data: String,
        mime_type: String,
    },
    Resource {
        uri: String,
        text: String,
        mime_type: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub content: Vec<Content>,
    /// Set when the tool declares an output schema.
    pub structured: Option<Value>,
    /// What the output policy did: rules fired, fields filtered or masked, policy version.
    pub policy: crate::policy::PolicyReport,
    /// Rows the statement returned (a read) or changed (a write), for the daily quotas.
    pub rows: u64,
    /// What the call's record keeps besides (a file URL's object and expiry, ...).
    pub detail: Option<Value>,
}

/// What a previewed write would do.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub tool: String,
    pub rows_affected: u64,
    /// The rows as they would be after the write (its `RETURNING` rows).
    pub rows: Vec<Map<String, Value>>,
    /// For a generated `update` or `delete`: the row as it is now.
    pub before: Option<Vec<Map<String, Value>>>,
    pub token: String,
    pub expires_in_secs: u64,
}

impl Preview {
    pub fn message(&self) -> String {
        let rows = serde_json::to_string(&self.rows).unwrap_or_default();
        format!(
            "Confirmation required: this is a preview and nothing was changed. {tool} would change {n} row(s){before}{after}. \
             Show this to the user; if they agree, call {tool} again with exactly the same arguments plus \
             \"confirm\": true and \"confirmation_token\": \"{token}\" (valid {secs} seconds, once).",
            tool = self.tool,
            n = self.rows_affected,
            before = before_text(self.before.as_deref()),
            after = if self.rows.is_empty() {
                String::new()
            } else {
                format!("; afterwards they would read: {rows}")
            },
            token = self.token,
            secs = self.expires_in_secs,
        )
    }
}

/// "; now they read: [...]" for a preview that read the rows first.
pub(super) fn before_text(before: Option<&[Map<String, Value>]>) -> String {
    match before {
        Some(rows) if !rows.is_empty() => format!(
            "; now they read: {}",
            serde_json::to_string(rows).unwrap_or_default()
        ),
        Some(_) => "; no such row exists now".into(),
        None => String::new(),
    }
}

/// One message of a rendered prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptMessageOut {
    pub speaker: Speaker,
    pub content: Content,
}

/// A resource's body.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceBody {
    Text(String),
    /// Base64.
    Blob(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceContents {
    pub uri: String,
    pub mime_type: Option<String>,
    pub body: ResourceBody,
}
