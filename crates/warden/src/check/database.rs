//! The database half of `warden check`: the configured data source, opened read-only, and
//! every tool's and resource's statement prepared on it (tables, columns, syntax), none run.
//!
//! Nothing is written or created. A SQLite file is opened read-only, and `immutable` unless
//! its `-wal` file exists: a read-only open of a WAL database would otherwise create the
//! `-wal` and `-shm` files beside it. PostgreSQL statements are prepared on a session whose
//! transactions are read-only; preparing parses and analyses, it runs nothing.
//!
//! With `{org}` in the location, each organisation's database that exists is checked (for
//! SQLite, the files the pattern matches); they are never created by Warden, only opened on
//! an organisation's first call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor, SqlSafeStr};
use warden_core::project::{
    DataConfig, DataLocation, FieldLocation, ParamType, Project, ProjectError,
};

/// What checking the database found.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) problems: Vec<ProjectError>,
    /// What was checked, for the "ok" line.
    pub(crate) summary: String,
}

/// One statement to prepare: its text, the SQL type of each position, and where it is
/// written.
struct Statement<'p> {
    text: &'p str,
    types: Vec<ParamType>,
    at: &'p FieldLocation,
}

/// Checks every statement of `project` against its data source.
pub(crate) async fn check(project: &Project) -> Report {
    let statements = statements(project);
    let data = &project.data;
    if !data.per_org() {
        let mut report = Report::default();
        let n = prepare_on(project, data, None, &statements, &mut report.problems).await;
        report.summary = match n {
            Some(n) => format!("{n} statements prepared on {}", shown(&data.location)),
            None => "the data source could not be checked".into(),
        };
        return report;
    }
    match &data.location {
        DataLocation::Sqlite(pattern) => {
            let orgs = warden_core::project::sqlite_organisations(pattern);
            let mut report = Report::default();
            for org in &orgs {
                let cfg = data.for_org(org);
                prepare_on(project, &cfg, Some(org), &statements, &mut report.problems).await;
            }
            report.summary = if orgs.is_empty() {
                format!(
                    "no organisation's database exists yet ({}); each is checked once it does",
                    pattern.display()
                )
            } else {
                format!(
                    "{} statements prepared on each organisation's database ({})",
                    statements.len(),
                    orgs.join(", ")
                )
            };
            report
        }
        DataLocation::Postgres(_) => Report {
            problems: Vec::new(),
            summary: "statements not prepared: each organisation's PostgreSQL database is named only at run time".into(),
        },
    }
}

/// The problem with a shared SQLite data file that does not exist, if it does not: `serve`
/// asks this before it creates any state.
pub(crate) fn missing_data_file(project: &Project) -> Option<ProjectError> {
    let data = &project.data;
    match &data.location {
        DataLocation::Sqlite(path) if !data.per_org() => {
            missing(path).map(|m| ProjectError::at(&project.file, &data.written_at, m))
        }
        _ => None,
    }
}

fn missing(path: &Path) -> Option<String> {
    if path.is_file() {
        None
    } else if path.exists() {
        Some(format!("{} is not a file", path.display()))
    } else {
        Some(format!(
            "the SQLite file {} does not exist (data.sqlite is relative to the project file); create it or correct the path",
            path.display()
        ))
    }
}

/// Every statement the project runs, with the types their positions are bound with (as the
/// pipeline binds them: declared parameters by their type, everything else as text).
fn statements(project: &Project) -> Vec<Statement<'_>> {
    let mut out = Vec::new();
    for tool in project.tools.iter().filter(|t| t.builtin.is_none()) {
        let types = tool
            .statement
            .names
            .iter()
            .map(|n| {
                tool.params
                    .iter()
                    .find(|p| &p.name == n)
                    .map(|p| p.ty)
                    .or_else(|| generated_type(tool, n))
                    .unwrap_or(ParamType::String)
            })
            .collect();
        out.push(Statement {
            text: &tool.statement.text,
            types,
            at: &tool.sql_at,
        });
    }
    for resource in &project.resources {
        out.push(Statement {
            text: &resource.statement.text,
            types: vec![ParamType::String; resource.statement.names.len()],
            at: &resource.sql_at,
        });
    }
    out
}

/// The type a tool generated from `tables:` binds a name it does not declare with: an
/// ingest's columns, the row count (`:_fetch`), and each key of the last row seen.
fn generated_type(tool: &warden_core::project::Tool, name: &str) -> Option<ParamType> {
    let generated = tool.generated.as_ref()?;
    if let Some(ingest) = &generated.ingest {
        return ingest
            .columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.kind.param_type());
    }
    if name == warden_core::tables::FETCH {
        return Some(ParamType::Integer);
    }
    let paging = generated.paging.as_ref()?;
    let i: usize = name.strip_prefix("_after_")?.parse().ok()?;
    paging.keys.get(i).map(|(_, ty)| *ty)
}

/// Prepares `statements` on one data source (an organisation's, with `org`), adding a
/// problem for each that fails. The number prepared, or `None` if the source could not be
/// opened.
async fn prepare_on(
    project: &Project,
    data: &DataConfig,
    org: Option<&str>,
    statements: &[Statement<'_>],
    problems: &mut Vec<ProjectError>,
) -> Option<usize> {
    let file = &project.file;
    let place = org.map_or(String::new(), |o| {
        format!(" (organisation '{o}', {})", shown(&data.location))
    });
    let mut source = match Source::open(&data.location, data.query_timeout).await {
        Ok(s) => s,
        Err(m) => {
            problems.push(ProjectError::at(
                file,
                &data.written_at,
                format!("{m}{place}"),
            ));
            return None;
        }
    };
    for s in statements {
        if let Err(m) = source.prepare(s).await {
            problems.push(ProjectError::at(
                file,
                s.at,
                format!(
                    "{} rejects this statement{place}: {m}; every call would fail the same way",
                    source.backend()
                ),
            ));
        }
    }
    source.close().await;
    Some(statements.len())
}

/// A connection that can only read.
enum Source {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Source {
    async fn open(location: &DataLocation, timeout: Duration) -> Result<Self, String> {
        match location {
            DataLocation::Sqlite(path) => {
                if let Some(m) = missing(path) {
                    return Err(m);
                }
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .read_only(true)
                    .immutable(!wal_file(path).exists())
                    .create_if_missing(false)
                    .busy_timeout(timeout);
                let mut conn = options
                    .connect()
                    .await
                    .map_err(|e| format!("cannot open {}: {}", path.display(), message(&e)))?;
                // A file that is not a database fails every statement alike: say it once.
                conn.prepare("SELECT 1 FROM sqlite_schema".into_sql_str())
                    .await
                    .map_err(|e| format!("cannot read {}: {}", path.display(), message(&e)))?;
                Ok(Self::Sqlite(conn))
            }
            DataLocation::Postgres(url) => {
                let connect = sqlx::PgConnection::connect(url);
                let mut conn = match tokio::time::timeout(Duration::from_secs(10), connect).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        return Err(format!(
                            "cannot connect to PostgreSQL: {}",
                            message(&e).replace(url.as_str(), "<data.postgres>")
                        ));
                    }
                    Err(_) => {
                        return Err("cannot connect to PostgreSQL: no answer in 10 s".into());
                    }
                };
                // Belt and braces: preparing runs nothing, and any transaction on this
                // session could only read.
                conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                    .await
                    .map_err(|e| format!("cannot prepare the session: {}", message(&e)))?;
                Ok(Self::Postgres(conn))
            }
        }
    }

    fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "SQLite",
            Self::Postgres(_) => "PostgreSQL",
        }
    }

    async fn prepare(&mut self, s: &Statement<'_>) -> Result<(), String> {
        let sql = AssertSqlSafe(s.text.to_string()).into_sql_str();
        match self {
            Self::Sqlite(conn) => conn.prepare(sql).await.map(drop).map_err(|e| message(&e)),
            Self::Postgres(conn) => {
                let types: Vec<sqlx::postgres::PgTypeInfo> =
                    s.types.iter().map(|t| pg_type(*t)).collect();
                conn.prepare_with(sql, &types)
                    .await
                    .map(drop)
                    .map_err(|e| pg_message(&e, s.text))
            }
        }
    }

    async fn close(self) {
        // Closing only tells the server goodbye; a failure changes nothing checked.
        let _ = match self {
            Self::Sqlite(c) => c.close().await,
            Self::Postgres(c) => c.close().await,
        };
    }
}

/// The type PostgreSQL is told each position has: what the pipeline binds for it.
fn pg_type(t: ParamType) -> sqlx::postgres::PgTypeInfo {
    use sqlx::{Postgres, Type};
    match t {
        ParamType::Integer => <i64 as Type<Postgres>>::type_info(),
        ParamType::Number => <f64 as Type<Postgres>>::type_info(),
        ParamType::Boolean => <bool as Type<Postgres>>::type_info(),
        ParamType::String | ParamType::Object | ParamType::Array => {
            <String as Type<Postgres>>::type_info()
        }
    }
}

fn message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    }
}

/// PostgreSQL's message, with the line of the statement it points at when it says.
fn pg_message(e: &sqlx::Error, text: &str) -> String {
    let base = message(e);
    let position = match e {
        sqlx::Error::Database(d) => d
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .and_then(|p| match p.position() {
                Some(sqlx::postgres::PgErrorPosition::Original(at)) => Some(at),
                _ => None,
            }),
        _ => None,
    };
    match position {
        Some(at) if text.contains('\n') => {
            let line = 1 + text
                .chars()
                .take(at.saturating_sub(1))
                .filter(|&c| c == '\n')
                .count();
            format!("{base} (line {line} of the statement)")
        }
        _ => base,
    }
}

fn wal_file(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// A data location as shown to the operator: a file's path, never a URL (it may hold a
/// password).
fn shown(location: &DataLocation) -> String {
    match location {
        DataLocation::Sqlite(p) => p.display().to_string(),
        DataLocation::Postgres(_) => "the PostgreSQL database".into(),
    }
}
