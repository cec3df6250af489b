//! Reads tables' columns, primary keys and foreign keys from the data source's catalogue, on
//! a connection that cannot write (SQLite opened read-only, PostgreSQL in a read-only
//! session). Table names are bound as values, never spliced.

use std::collections::HashMap;

use sqlx::{ConnectOptions, Connection, Row};

use crate::project::{DataConfig, DataLocation, ParamType};

/// How a column's values are typed for parameters and comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Integer,
    Real,
    Boolean,
    Text,
    /// A calendar date (PostgreSQL `date`, a SQLite `DATE` column, or text named in `dates`).
    Date,
    /// A date and time.
    Timestamp,
    /// Anything else (uuid, json, bytes, ...): bound and returned as text.
    Other,
}

impl ColumnKind {
    /// The type of a parameter that carries one value of this column.
    pub fn param_type(self) -> ParamType {
        match self {
            Self::Integer => ParamType::Integer,
            Self::Real => ParamType::Number,
            Self::Boolean => ParamType::Boolean,
            Self::Text | Self::Date | Self::Timestamp | Self::Other => ParamType::String,
        }
    }

    /// Whether ranges make sense (`_min`, `_max`).
    pub fn ordered(self) -> bool {
        matches!(
            self,
            Self::Integer | Self::Real | Self::Date | Self::Timestamp
        )
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// The type as the database states it (`integer`, `TEXT`, `timestamp with time zone`).
    pub declared: String,
    pub kind: ColumnKind,
    pub not_null: bool,
    /// The default's SQL, as the catalogue holds it.
    pub default: Option<String>,
    /// The database fills it itself and refuses a value (identity, generated); or, on
    /// SQLite, an `INTEGER PRIMARY KEY` (the rowid), which a null fills.
    pub generated: bool,
    pub auto_key: bool,
}

#[derive(Debug, Clone)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub table: String,
    pub references: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct TableSchema {
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    pub foreign_keys: Vec<ForeignKey>,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// The schemas of those of `tables` that exist.
pub(super) async fn read(
    config: &DataConfig,
    tables: &[String],
) -> Result<HashMap<String, TableSchema>, String> {
    let mut out = HashMap::new();
    match &config.location {
        DataLocation::Sqlite(path) => {
            if !path.is_file() {
                return Err(format!("the SQLite file {} does not exist", path.display()));
            }
            let wal = {
                let mut p = path.as_os_str().to_owned();
                p.push("-wal");
                std::path::PathBuf::from(p)
            };
            let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .read_only(true)
                .immutable(!wal.exists())
                .create_if_missing(false)
                .busy_timeout(config.query_timeout)
                .connect()
                .await
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            for t in tables {
                if let Some(s) = sqlite_table(&mut conn, t).await? {
                    out.insert(t.clone(), s);
                }
            }
            let _ = conn.close().await;
        }
        DataLocation::Postgres(url) => {
            let options: sqlx::postgres::PgConnectOptions = url
                .parse()
                .map_err(|_| "data.postgres is not a valid URL".to_string())?;
            let mut conn = options
                .options([("default_transaction_read_only", "on")])
                .connect()
                .await
                .map_err(|e| format!("cannot connect: {}", redact(&e.to_string(), url)))?;
            for t in tables {
                if let Some(s) = pg_table(&mut conn, t).await.map_err(|e| redact(&e, url))? {
                    out.insert(t.clone(), s);
                }
            }
            let _ = conn.close().await;
        }
    }
    Ok(out)
}

fn redact(message: &str, url: &str) -> String {
    message.replace(url, "<data.postgres>")
}

fn db(e: sqlx::Error) -> String {
    e.to_string()
}

async fn sqlite_table(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
) -> Result<Option<TableSchema>, String> {
    // The table must be a real table (not a view): rows are addressed by their key.
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_schema WHERE type = 'table' AND name = ?1")
            .bind(table)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
    if exists.is_none() {
        return Ok(None);
    }
    let rows = sqlx::query(
        "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut columns = Vec::new();
    let mut keyed: Vec<(i64, String)> = Vec::new();
    for r in &rows {
        let name: String = r.try_get(0).map_err(db)?;
        let declared: String = r
            .try_get::<Option<String>, _>(1)
            .map_err(db)?
            .unwrap_or_default();
        let not_null: i64 = r.try_get(2).map_err(db)?;
        let default: Option<String> = r.try_get(3).map_err(db)?;
        let pk: i64 = r.try_get(4).map_err(db)?;
        let hidden: i64 = r.try_get(5).map_err(db)?;
        if hidden == 1 {
            continue; // a virtual table's hidden column
        }
        if pk > 0 {
            keyed.push((pk, name.clone()));
        }
        columns.push(Column {
            kind: sqlite_kind(&declared),
            name,
            declared,
            not_null: not_null != 0,
            default,
            generated: hidden == 2 || hidden == 3,
            auto_key: false,
        });
    }
    keyed.sort();
    let primary_key: Vec<String> = keyed.into_iter().map(|(_, n)| n).collect();
    // `INTEGER PRIMARY KEY` is the rowid: inserting a null gives the next one.
    if let [only] = primary_key.as_slice()
        && let Some(c) = columns.iter_mut().find(|c| &c.name == only)
        && c.declared.eq_ignore_ascii_case("INTEGER")
    {
        c.auto_key = true;
    }
    let fks = sqlx::query(
        "SELECT id, seq, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut parts = Vec::new();
    for r in &fks {
        let to: Option<String> = r.try_get(4).map_err(db)?;
        parts.push((
            r.try_get::<i64, _>(0).map_err(db)?,
            r.try_get::<String, _>(2).map_err(db)?,
            r.try_get::<String, _>(3).map_err(db)?,
            to.unwrap_or_default(),
        ));
    }
    let foreign_keys = grouped(parts);
    Ok(Some(TableSchema {
        name: table.to_string(),
        columns,
        primary_key,
        foreign_keys,
    }))
}

/// Foreign keys from `(constraint id, referenced table, column, referenced column)` rows,
/// in order: a key's columns are consecutive rows of one id.
fn grouped(parts: Vec<(i64, String, String, String)>) -> Vec<ForeignKey> {
    let mut out: Vec<(i64, ForeignKey)> = Vec::new();
    for (id, parent, from, to) in parts {
        match out.last_mut() {
            Some((last, fk)) if *last == id => {
                fk.columns.push(from);
                fk.references.push(to);
            }
            _ => out.push((
                id,
                ForeignKey {
                    columns: vec![from],
                    table: parent,
                    references: vec![to],
                },
            )),
        }
    }
    out.into_iter().map(|(_, f)| f).collect()
}

/// SQLite's type affinity rules, with dates and booleans told apart by their declared names.
fn sqlite_kind(declared: &str) -> ColumnKind {
    let t = declared.to_ascii_uppercase();
    if t.contains("BOOL") {
        ColumnKind::Boolean
    } else if t.contains("TIMESTAMP") || t.contains("DATETIME") {
        ColumnKind::Timestamp
    } else if t.contains("DATE") {
        ColumnKind::Date
    } else if t.contains("INT") {
        ColumnKind::Integer
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        ColumnKind::Text
    } else if t.contains("REAL")
        || t.contains("FLOA")
        || t.contains("DOUB")
        || t.contains("NUM")
        || t.contains("DEC")
    {
        ColumnKind::Real
    } else {
        ColumnKind::Other
    }
}

fn pg_kind(typname: &str) -> ColumnKind {
    match typname {
        "int2" | "int4" | "int8" => ColumnKind::Integer,
        "float4" | "float8" | "numeric" => ColumnKind::Real,
        "bool" => ColumnKind::Boolean,
        "text" | "varchar" | "bpchar" | "citext" | "name" => ColumnKind::Text,
        "date" => ColumnKind::Date,
        "timestamp" | "timestamptz" => ColumnKind::Timestamp,
        _ => ColumnKind::Other,
    }
}

async fn pg_table(
    conn: &mut sqlx::PgConnection,
    table: &str,
) -> Result<Option<TableSchema>, String> {
    // Resolved through the search path, as the tools' statements will be; only ordinary
    // and partitioned tables.
    let oid: Option<(i64,)> = sqlx::query_as(
        "SELECT c.oid::int8 FROM pg_class c WHERE c.oid = to_regclass(quote_ident($1)) AND c.relkind IN ('r', 'p')",
    )
    .bind(table)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some((oid,)) = oid else {
        return Ok(None);
    };
    let rows = sqlx::query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text, a.attnotnull, \
                pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text \
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut columns = Vec::new();
    for r in &rows {
        let name: String = r.try_get(0).map_err(db)?;
        let declared: String = r.try_get(1).map_err(db)?;
        let typname: String = r.try_get(2).map_err(db)?;
        let not_null: bool = r.try_get(3).map_err(db)?;
        let default: Option<String> = r.try_get(4).map_err(db)?;
        let identity: String = r.try_get(5).map_err(db)?;
        let generated: String = r.try_get(6).map_err(db)?;
        let serial = default
            .as_deref()
            .is_some_and(|d| d.starts_with("nextval("));
        columns.push(Column {
            kind: pg_kind(&typname),
            name,
            declared,
            not_null,
            // An identity or generated column has no default to write; serial's is kept.
            default: if generated.is_empty() { default } else { None },
            generated: identity == "a" || !generated.is_empty(),
            auto_key: serial || identity == "d",
        });
    }
    let pk = sqlx::query(
        "SELECT a.attname::text FROM pg_index i \
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = $1::int8::oid AND i.indisprimary ORDER BY k.ord",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let primary_key = pk
        .iter()
        .map(|r| r.try_get::<String, _>(0).map_err(db))
        .collect::<Result<Vec<_>, _>>()?;
    let fks = sqlx::query(
        "SELECT c.oid::int8, r.relname::text, a.attname::text, fa.attname::text \
         FROM pg_constraint c JOIN pg_class r ON r.oid = c.confrelid \
         CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(col, fcol, ord) \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.col \
         JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = k.fcol \
         WHERE c.conrelid = $1::int8::oid AND c.contype = 'f' ORDER BY 1, k.ord",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut parts = Vec::new();
    for r in &fks {
        parts.push((
            r.try_get::<i64, _>(0).map_err(db)?,
            r.try_get::<String, _>(1).map_err(db)?,
            r.try_get::<String, _>(2).map_err(db)?,
            r.try_get::<String, _>(3).map_err(db)?,
        ));
    }
    let foreign_keys = grouped(parts);
    Ok(Some(TableSchema {
        name: table.to_string(),
        columns,
        primary_key,
        foreign_keys,
    }))
}
