//! Tables served as tools (`tables:` in the project file): the checked specification, the
//! schema read from the database, and the tools generated from both.
//!
//! Pipeline position: none at call time. `expand` runs once per project, after loading and
//! before the pipeline is built (at start, at each reload, and in `warden check`): it reads
//! each named table's columns, primary key and foreign keys from the data source, on a
//! read-only connection, and adds ordinary [`Tool`]s to the project. From there a generated
//! tool takes the same path as a hand-written one (authorize, arguments, input policy,
//! confirmation, execute, output policy, audit); what it carries beyond one is in
//! [`Generated`]: the keys its rows are paged by (`pipeline/paging.rs` signs the cursors)
//! and, for `update` and `delete`, the statement that reads the row as it is for the preview.
//!
//! Invariants:
//! - SQL text is built only from names read from the database's catalogue and checked
//!   against the project file, each quoted as an identifier; every client value is bound.
//! - Excluded columns appear in no statement, parameter or result.
//! - Sensitive columns are never searched, filtered, counted or returned by a write's
//!   preview, and their written values are redacted from the trail like any sensitive
//!   parameter.

mod generate;
mod schema;

use std::collections::HashMap;

use crate::exec::sql::Statement;
use crate::policy::PolicySet;
use crate::project::{FieldLocation, ParamType, Project, ProjectError, Tool};

pub use schema::{Column, ColumnKind, ForeignKey, TableSchema};

/// ISO 8601 dates, optionally with a time and an offset.
pub(crate) const DATE_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?$";

/// Rows a paged tool returns when the caller does not say.
pub const DEFAULT_LIMIT: u32 = 20;
/// Most rows a paged tool returns in one call.
pub const MAX_LIMIT: u32 = 200;

/// A read verb of `tables[].read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadVerb {
    List,
    Get,
    Search,
    Filter,
    Count,
    Related,
    Export,
}

impl ReadVerb {
    pub const ALL: [(&'static str, Self); 7] = [
        ("list", Self::List),
        ("get", Self::Get),
        ("search", Self::Search),
        ("filter", Self::Filter),
        ("count", Self::Count),
        ("related", Self::Related),
        ("export", Self::Export),
    ];
}

/// Most rows one `export_<table>` call writes to a file.
pub const MAX_EXPORT_ROWS: usize = 100_000;

/// A write verb of `tables[].write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteVerb {
    Insert,
    Update,
    Delete,
    Ingest,
}

impl WriteVerb {
    pub const ALL: [(&'static str, Self); 4] = [
        ("insert", Self::Insert),
        ("update", Self::Update),
        ("delete", Self::Delete),
        ("ingest", Self::Ingest),
    ];
}

/// Rows one `ingest_<table>` call takes unless the table says otherwise.
pub const DEFAULT_INGEST_ROWS: u32 = 100_000;
/// Rows an ingest inserts with one statement.
pub const INGEST_PER_STATEMENT: usize = 100;

/// A column named in a table's specification, and where.
#[derive(Debug, Clone)]
pub struct Named {
    pub name: String,
    pub at: FieldLocation,
}

/// One entry of `tables:`, checked at load (the names are checked against the database
/// only by [`expand`]).
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub table: String,
    /// Where `table` is written.
    pub at: FieldLocation,
    pub description: Option<String>,
    pub read: Vec<ReadVerb>,
    pub write: Vec<WriteVerb>,
    pub exclude: Vec<Named>,
    pub sensitive: Vec<Named>,
    pub search: Vec<Named>,
    pub count_by: Vec<Named>,
    pub dates: Vec<Named>,
    /// The column holding each row's organisation, on a shared database.
    pub tenant: Option<Named>,
    /// Most rows one `ingest_<table>` call takes.
    pub max_ingest_rows: u32,
    /// The project's global rules, then the table's own; `sensitive` holds its sensitive
    /// columns.
    pub policies: PolicySet,
}

impl TableSpec {
    /// Not served: excluded, or the tenant column (which Warden alone fills and matches).
    pub fn excluded(&self, column: &str) -> bool {
        self.exclude.iter().any(|n| n.name == column)
            || self.tenant.as_ref().is_some_and(|t| t.name == column)
    }

    pub fn is_sensitive(&self, column: &str) -> bool {
        self.sensitive.iter().any(|n| n.name == column)
    }
}

/// What a generated tool carries beyond a hand-written one.
#[derive(Debug, Clone)]
pub struct Generated {
    pub table: String,
    /// `list`, `get`, ..., `insert`, `update`, `delete`.
    pub verb: &'static str,
    /// Results come a page at a time, in key order, with a signed cursor for the next.
    pub paging: Option<Paging>,
    /// For `update` and `delete`: reads the row as it is, for the preview.
    pub before: Option<Statement>,
    /// The parameters that name the row (its primary key), for a write's record.
    pub key: Vec<String>,
    /// For `ingest`: the columns rows may give and the statements that insert them.
    pub ingest: Option<std::sync::Arc<Ingest>>,
}

/// How `ingest_<table>` checks and inserts rows.
#[derive(Debug)]
pub struct Ingest {
    /// The columns a row may give, in the order the statements bind them (the tenant
    /// column is not one: it is bound as `:caller_org`).
    pub columns: Vec<IngestColumn>,
    /// [`INGEST_PER_STATEMENT`] rows at a time.
    pub many: Statement,
    pub max_rows: u32,
}

#[derive(Debug, Clone)]
pub struct IngestColumn {
    pub name: String,
    pub kind: ColumnKind,
    /// A row must give it (NOT NULL without a default).
    pub required: bool,
    pub sensitive: bool,
}

/// How a paged tool's statement is bound: `:_fetch` (one row more than the page) and one
/// `:_after_<i>` per key column (null on the first page).
#[derive(Debug, Clone)]
pub struct Paging {
    /// The key columns rows are ordered by, with the type their values bind as; empty for
    /// a tool whose one page is all it returns (a count).
    pub keys: Vec<(String, ParamType)>,
    /// Rows per page when the call names no `limit` (and the most, for a tool without one).
    pub default_limit: u32,
}

/// The name a paged statement binds its row count to.
pub const FETCH: &str = "_fetch";

/// The name a paged statement binds the `i`th key of the last row seen to.
pub fn after(i: usize) -> String {
    format!("_after_{i}")
}

/// What [`expand`] added, for `warden check` and the start-up log.
#[derive(Debug, Default)]
pub struct Expanded {
    /// (table, generated tool names)
    pub tables: Vec<(String, Vec<String>)>,
}

/// Reads the schema of every table in `project.tables` from the data source and adds the
/// tools they generate. Every problem is returned, each naming where the table or column is
/// written; on any problem nothing is added.
pub async fn expand(project: &mut Project) -> Result<Expanded, Vec<ProjectError>> {
    if project.tables.is_empty() {
        return Ok(Expanded::default());
    }
    let names: Vec<String> = project.tables.iter().map(|t| t.table.clone()).collect();
    let config = match (project.data.per_org(), &project.data.schema_org) {
        (false, _) => project.data.clone(),
        (true, Some(org)) => project.data.for_org(org),
        // SQLite: the first organisation's file that exists.
        (true, None)
            if let crate::project::DataLocation::Sqlite(pattern) = &project.data.location
                && let Some(org) = crate::project::sqlite_organisations(pattern).first() =>
        {
            tracing::info!(org = %org, "reading the schema of `tables:` from this organisation's database (set data.schema_org to choose)");
            project.data.for_org(org)
        }
        (true, None) => {
            return Err(vec![ProjectError::at(
                &project.file,
                &project.data.written_at,
                "with `{org}` in the data location, `tables:` needs `data.schema_org`: the organisation whose database the tables' schema is read from (every organisation's database must have the same tables)",
            )]);
        }
    };
    let schemas = schema::read(&config, &names).await.map_err(|e| {
        vec![ProjectError::at(
            &project.file,
            &project.data.written_at,
            format!("cannot read the schema of the tables in `tables:`: {e}"),
        )]
    })?;
    let dialect = project.data.dialect();
    let mut errors = Vec::new();
    if project.files.is_none()
        && let Some(t) = project
            .tables
            .iter()
            .find(|t| t.read.contains(&ReadVerb::Export))
    {
        errors.push(ProjectError::at(
            &project.file,
            &t.at,
            format!(
                "`export` on '{}' writes a file to download, which needs a `files:` section",
                t.table
            ),
        ));
    }
    if project.auth.mode == crate::project::AuthMode::None
        && let Some(t) = project.tables.iter().find_map(|t| t.tenant.as_ref())
    {
        errors.push(ProjectError::at(
            &project.file,
            &t.at,
            "`tenant_column` keeps each organisation to its rows, which needs authenticated callers; remove `auth: none`",
        ));
    }
    let mut tools: Vec<Tool> = Vec::new();
    let mut added = Expanded::default();
    for spec in &project.tables {
        let Some(schema) = schemas.get(&spec.table) else {
            errors.push(ProjectError::at(
                &project.file,
                &spec.at,
                format!(
                    "table '{}' does not exist in the data source{}",
                    spec.table,
                    suggest(&spec.table, schemas.keys().map(String::as_str))
                ),
            ));
            continue;
        };
        match generate::tools(spec, schema, &project.tables, &schemas, dialect) {
            Ok(generated) => {
                added.tables.push((
                    spec.table.clone(),
                    generated.iter().map(|t| t.name.clone()).collect(),
                ));
                tools.extend(generated);
            }
            Err(problems) => errors.extend(
                problems
                    .into_iter()
                    .map(|(at, message)| ProjectError::at(&project.file, &at, message)),
            ),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    project
        .add_tools(tools)
        .map_err(|m| vec![ProjectError::at(&project.file, &project.tables[0].at, m)])?;
    Ok(added)
}

/// Loads a project file ([`crate::project::load_file`], or its offline form) and adds the
/// tools its `tables:` generate: the project as it is served.
pub async fn load_file(
    path: &std::path::Path,
    offline: bool,
) -> Result<(Project, Expanded), crate::project::LoadError> {
    let mut project = if offline {
        crate::project::load_file_offline(path)?
    } else {
        crate::project::load_file(path)?
    };
    let expanded = expand(&mut project)
        .await
        .map_err(|errors| crate::project::LoadError { errors })?;
    Ok((project, expanded))
}

/// " (did you mean 'x'?)" for the closest of `known`, or nothing.
fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    let lower = name.to_ascii_lowercase();
    known
        .filter(|k| {
            let k = k.to_ascii_lowercase();
            k == lower || k.starts_with(&lower) || lower.starts_with(&k)
        })
        .min_by_key(|k| k.len())
        .map(|k| format!(" (did you mean '{k}'?)"))
        .unwrap_or_default()
}

/// The schemas read, by table name.
pub type Schemas = HashMap<String, TableSchema>;
