//! `files`: where each organisation's objects are kept, the key that signs URLs to them and
//! the largest upload; and the tools Warden then provides (`request_upload_url`,
//! `request_download_url`, `list_files`).

use serde_saphyr::Spanned;

use super::Checker;
use super::policies::describe_policies;
use crate::exec::sql::Statement;
use crate::project::{Access, Builtin, FilesConfig, Param, ParamType, Returns, Tool, model};

/// The default and the most a project may allow for one upload.
const DEFAULT_MAX_UPLOAD: u64 = 100 * 1024 * 1024;
const MOST_UPLOAD: u64 = 10 * 1024 * 1024 * 1024;

impl Checker<'_> {
    pub(super) fn files(
        &mut self,
        section: Option<Spanned<model::FilesSection>>,
        global: &model::PoliciesSpec,
    ) -> (Option<FilesConfig>, Vec<Tool>) {
        let Some(section) = section else {
            return (None, Vec::new());
        };
        let at = crate::project::FieldLocation {
            field: "files".into(),
            line: section.referenced.line() as u32,
            column: section.referenced.column() as u32,
        };
        let f = section.value;
        let max_upload = match &f.max_upload_bytes {
            Some(m) if m.value == 0 || m.value > MOST_UPLOAD => {
                self.err(
                    m,
                    "files.max_upload_bytes",
                    format!("must be between 1 and {MOST_UPLOAD}, got {}", m.value),
                );
                DEFAULT_MAX_UPLOAD
            }
            Some(m) => m.value,
            None => DEFAULT_MAX_UPLOAD,
        };
        let config = FilesConfig {
            dir: self.relative(f.dir.as_ref().map_or("data/files", |d| d.value.as_str())),
            signing_key: self.relative(
                f.signing_key
                    .as_ref()
                    .map_or(".warden/files.key", |k| k.value.as_str()),
            ),
            max_upload,
        };
        let name = |description: &str| Param {
            name: "name".into(),
            ty: ParamType::String,
            description: Some(description.into()),
            required: true,
            default: None,
            enumeration: None,
            minimum: None,
            maximum: None,
            min_length: Some(1),
            max_length: Some(128),
            pattern: regex::Regex::new("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$").ok(),
            sensitive: false,
            header: None,
            items: None,
        };
        let size = Param {
            name: "size".into(),
            ty: ParamType::Integer,
            description: Some(format!(
                "The file's size in bytes, if known: the URL then takes no more (at most {max_upload})"
            )),
            required: false,
            minimum: Some(1.0),
            maximum: Some(max_upload as f64),
            ..name("")
        };
        let mut tools = Vec::new();
        for (tool, builtin, access, params, title, description) in [
            (
                "request_upload_url",
                Builtin::UploadUrl,
                Access::Write,
                vec![name("The object's name in your organisation's files, e.g. vendors.csv (letters, digits, '.', '_', '-')"), size],
                "Ask for an upload URL",
                format!("A URL to PUT one file to (with your bearer token), valid 300 seconds and once, for at most {max_upload} bytes. The file is kept in your organisation's files under this name; ingest_<table> tools can then read it."),
            ),
            (
                "request_download_url",
                Builtin::DownloadUrl,
                Access::Read,
                vec![name("The stored object's name (see list_files)")],
                "Ask for a download URL",
                "A URL to GET one of your organisation's stored files (with your bearer token), valid 120 seconds and once, with its size and SHA-256.".to_string(),
            ),
            (
                "list_files",
                Builtin::ListFiles,
                Access::Read,
                Vec::new(),
                "List stored files",
                "Your organisation's stored files, each with its size and SHA-256.".to_string(),
            ),
        ] {
            let (input, output) = self.policies(global, "policies", None);
            tools.push(Tool {
                name: tool.into(),
                title: Some(title.into()),
                description,
                access,
                input_schema: crate::project::input_schema(&params),
                params,
                statement: Statement {
                    text: String::new(),
                    names: Vec::new(),
                },
                sql_at: at.clone(),
                returns: Returns::Row,
                output_schema: None,
                content: Vec::new(),
                progress_steps: 0,
                log: Vec::new(),
                idempotent: false,
                questions: Vec::new(),
                task: None,
                ask_before_task: false,
                policies: crate::policy::PolicySet {
                    input,
                    output,
                    sensitive: Vec::new(),
                    version: crate::policy::version_of(&describe_policies(global)),
                },
                generated: None,
                builtin: Some(builtin),
            });
        }
        (Some(config), tools)
    }
}
