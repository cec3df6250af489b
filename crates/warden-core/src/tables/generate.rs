//! The tools one table generates: their parameters (typed from the columns), their SQL
//! (names quoted, values bound) and what the pipeline needs to page and preview them.

use std::collections::HashSet;

use serde_json::json;

use super::schema::{Column, ColumnKind, TableSchema};
use super::{
    DATE_PATTERN, DEFAULT_LIMIT, FETCH, Generated, MAX_LIMIT, Named, Paging, ReadVerb, TableSpec,
    WriteVerb, after,
};
use crate::exec::sql;
use crate::project::{Access, Dialect, FieldLocation, Param, ParamType, Returns, Tool};

type Problems = Vec<(FieldLocation, String)>;

/// Longest text a `search_` query or a cursor may be.
const MAX_QUERY: u64 = 200;
const MAX_CURSOR: u64 = 2048;

/// One generated tool, before it is checked and compiled.
struct Made {
    name: String,
    title: String,
    description: String,
    access: Access,
    params: Vec<Param>,
    sql: String,
    returns: Returns,
    generated: Generated,
}

/// One column as the generated tools see it.
#[derive(Debug, Clone)]
struct Col<'s> {
    c: &'s Column,
    kind: ColumnKind,
    sensitive: bool,
}

struct Table<'s> {
    spec: &'s TableSpec,
    schema: &'s TableSchema,
    dialect: Dialect,
    /// Served columns (not excluded), in the table's order.
    cols: Vec<Col<'s>>,
    /// The column holding each row's organisation, matched to `:caller_org`.
    tenant: Option<String>,
}

pub(super) fn tools(
    spec: &TableSpec,
    schema: &TableSchema,
    specs: &[TableSpec],
    schemas: &super::Schemas,
    dialect: Dialect,
) -> Result<Vec<Tool>, Problems> {
    let t = checked(spec, schema, dialect)?;
    let mut problems = Problems::new();
    let mut out = Vec::new();
    let mut push = |r: Result<Tool, String>, problems: &mut Problems| match r {
        Ok(tool) => out.push(tool),
        Err(m) => problems.push((spec.at.clone(), m)),
    };
    for verb in &spec.read {
        match verb {
            ReadVerb::List => push(t.list(), &mut problems),
            ReadVerb::Get => push(t.get(), &mut problems),
            ReadVerb::Search => push(t.search(), &mut problems),
            ReadVerb::Filter => push(t.filter(), &mut problems),
            ReadVerb::Count => push(t.count(), &mut problems),
            ReadVerb::Export => push(t.export(), &mut problems),
            ReadVerb::Related => {
                let mut any = false;
                for child in specs.iter().filter(|c| !c.read.is_empty()) {
                    let Some(cs) = schemas.get(&child.table) else {
                        continue;
                    };
                    let fks: Vec<_> = cs
                        .foreign_keys
                        .iter()
                        .filter(|f| f.table == spec.table)
                        .collect();
                    for fk in &fks {
                        any = true;
                        let ct = match checked(child, cs, dialect) {
                            Ok(ct) => ct,
                            Err(_) => continue, // reported for the child itself
                        };
                        let name = if fks.len() > 1 {
                            format!(
                                "{}_of_{}_by_{}",
                                child.table,
                                spec.table,
                                fk.columns.join("_")
                            )
                        } else {
                            format!("{}_of_{}", child.table, spec.table)
                        };
                        push(ct.related(&name, &spec.table, &fk.columns), &mut problems);
                    }
                }
                if !any {
                    problems.push((spec.at.clone(), format!(
                        "`related` on '{}' finds no table in `tables:` with a foreign key to it; add the referring tables to `tables:` or drop `related`",
                        spec.table
                    )));
                }
            }
        }
    }
    for verb in &spec.write {
        match verb {
            WriteVerb::Insert => push(t.insert(), &mut problems),
            WriteVerb::Update => push(t.update(), &mut problems),
            WriteVerb::Delete => push(t.delete(), &mut problems),
            WriteVerb::Ingest => push(t.ingest(), &mut problems),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Checks the names the specification gives against the schema.
fn checked<'s>(
    spec: &'s TableSpec,
    schema: &'s TableSchema,
    dialect: Dialect,
) -> Result<Table<'s>, Problems> {
    let mut problems = Problems::new();
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    let known = |list: &[Named], what: &str, problems: &mut Problems| {
        for n in list {
            if schema.column(&n.name).is_none() {
                problems.push((
                    n.at.clone(),
                    format!(
                        "table '{}' has no column '{}' to {what}; its columns are {}",
                        spec.table,
                        n.name,
                        names.join(", ")
                    ),
                ));
            }
        }
    };
    known(&spec.exclude, "exclude", &mut problems);
    known(&spec.sensitive, "mark sensitive", &mut problems);
    known(&spec.search, "search", &mut problems);
    known(&spec.count_by, "count by", &mut problems);
    known(&spec.dates, "read as dates", &mut problems);
    for (list, what) in [
        (&spec.search, "searched"),
        (&spec.count_by, "counted by"),
        (&spec.dates, "filtered as a date"),
    ] {
        for n in list {
            if spec.excluded(&n.name) {
                problems.push((n.at.clone(), format!("column '{}' is excluded, so it cannot be {what}; remove it from one of the lists", n.name)));
            } else if spec.is_sensitive(&n.name) {
                problems.push((n.at.clone(), format!("column '{}' is sensitive, so it cannot be {what} (its values would show through the results); remove it from one of the lists", n.name)));
            }
        }
    }
    for n in &spec.dates {
        if let Some(c) = schema.column(&n.name)
            && c.kind != ColumnKind::Text
        {
            problems.push((n.at.clone(), format!("column '{}' is {}, not text; `dates` is for text columns that hold ISO dates (date and time columns get ranges already)", n.name, c.declared)));
        }
    }
    if schema.primary_key.is_empty() {
        problems.push((spec.at.clone(), format!(
            "table '{}' has no primary key; generated tools page, get and change rows by it, so give the table one",
            spec.table
        )));
    }
    for k in &schema.primary_key {
        if spec.excluded(k) || spec.is_sensitive(k) {
            problems.push((spec.at.clone(), format!(
                "column '{k}' is part of the primary key of '{}', so it cannot be excluded or sensitive",
                spec.table
            )));
        }
    }
    if spec.read.contains(&ReadVerb::Search) && spec.search.is_empty() {
        problems.push((
            spec.at.clone(),
            format!(
                "`search` on '{}' needs `search:`, the text columns it looks in",
                spec.table
            ),
        ));
    }
    if spec.read.contains(&ReadVerb::Count) && spec.count_by.is_empty() {
        problems.push((
            spec.at.clone(),
            format!(
                "`count` on '{}' needs `count_by:`, the low-cardinality columns it may group by",
                spec.table
            ),
        ));
    }
    if let Some(t) = &spec.tenant {
        match schema.column(&t.name) {
            None => problems.push((t.at.clone(), format!("table '{}' has no column '{}' to hold the organisation; its columns are {}", spec.table, t.name, names.join(", ")))),
            Some(c) if c.kind != ColumnKind::Text => problems.push((t.at.clone(), format!("the tenant column '{}' is {}; it must be text, to hold the organisation's slug", t.name, c.declared))),
            Some(_) => {}
        }
    }
    // Served columns become parameters and placeholders under their own names.
    for c in schema.columns.iter().filter(|c| !spec.excluded(&c.name)) {
        let lower = c.name.to_ascii_lowercase();
        let why = if !crate::project::is_plain_name(&c.name) {
            Some("its name is not letters, digits and '_' starting with a letter".to_string())
        } else if lower.starts_with("caller_")
            || lower == "confirm"
            || lower == "confirmation_token"
        {
            Some("its name is one Warden binds itself".to_string())
        } else if crate::project::TENANT_NAMES.contains(&lower.as_str()) {
            Some(format!(
                "it would let the client choose the organisation; if it holds each row's organisation, set `tenant_column: {}` (Warden then fills and matches it from the caller)",
                c.name
            ))
        } else {
            None
        };
        if let Some(why) = why {
            problems.push((
                spec.at.clone(),
                format!(
                    "column '{}' of '{}' cannot be served: {why}; or exclude it",
                    c.name, spec.table
                ),
            ));
        }
    }
    // A cursor carries the last row's key: no output rule may hide a key column.
    for rule in &spec.policies.output {
        if let crate::policy::OutputAction::FilterFields(fields)
        | crate::policy::OutputAction::MaskFields(fields) = &rule.action
            && let Some(k) = schema.primary_key.iter().find(|k| fields.contains(k))
        {
            problems.push((spec.at.clone(), format!("rule '{}' hides the key column '{k}' of '{}', which page cursors carry; hide another column, or serve the table without it", rule.name, spec.table)));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let cols = schema
        .columns
        .iter()
        .filter(|c| !spec.excluded(&c.name))
        .map(|c| Col {
            c,
            kind: if spec.dates.iter().any(|d| d.name == c.name) {
                ColumnKind::Date
            } else {
                c.kind
            },
            sensitive: spec.is_sensitive(&c.name),
        })
        .collect();
    Ok(Table {
        spec,
        schema,
        dialect,
        cols,
        tenant: spec.tenant.as_ref().map(|t| t.name.clone()),
    })
}

/// A name quoted as an SQL identifier.
fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn param(name: &str, ty: ParamType) -> Param {
    Param {
        name: name.to_string(),
        ty,
        description: None,
        required: false,
        default: None,
        enumeration: None,
        minimum: None,
        maximum: None,
        min_length: None,
        max_length: None,
        pattern: None,
        sensitive: false,
        header: None,
        items: None,
    }
}

fn date_pattern() -> Option<regex::Regex> {
    regex::Regex::new(DATE_PATTERN).ok()
}

impl<'s> Table<'s> {
    fn name(&self) -> &str {
        &self.spec.table
    }

    fn what(&self) -> String {
        match &self.spec.description {
            Some(d) => format!("{} ({})", self.name(), d.trim_end_matches('.')),
            None => self.name().to_string(),
        }
    }

    fn col(&self, name: &str) -> Option<&Col<'s>> {
        self.cols.iter().find(|c| c.c.name == name)
    }

    /// The placeholder for `param` compared with or written to column `c`: PostgreSQL gets
    /// a cast where the column's type is not one a bound value already has.
    fn bind(&self, c: &Col<'_>, param: &str) -> String {
        let needs_cast = self.dialect == Dialect::Postgres
            && matches!(
                c.c.kind,
                ColumnKind::Date | ColumnKind::Timestamp | ColumnKind::Other
            );
        if needs_cast {
            format!("CAST(:{param} AS {})", c.c.declared)
        } else {
            format!(":{param}")
        }
    }

    /// The select list: every served column (or only the non-sensitive ones), with types
    /// the decoder does not know returned as text.
    fn select(&self, sensitive_too: bool) -> String {
        self.cols
            .iter()
            .filter(|c| sensitive_too || !c.sensitive)
            .map(|c| {
                if self.dialect == Dialect::Postgres && c.c.kind == ColumnKind::Other {
                    format!("CAST({0} AS TEXT) AS {0}", q(&c.c.name))
                } else {
                    q(&c.c.name)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_cols(&self) -> Vec<&Col<'s>> {
        self.schema
            .primary_key
            .iter()
            .filter_map(|k| self.col(k))
            .collect()
    }

    /// `"org" = :caller_org`, on a shared database.
    fn tenant_match(&self) -> Option<String> {
        self.tenant
            .as_ref()
            .map(|t| format!("{} = :{}", q(t), crate::project::CALLER_ORG))
    }

    /// One row by its key, among the caller's organisation's.
    fn row_match(&self) -> String {
        let mut conds = vec![self.key_match()];
        conds.extend(self.tenant_match());
        conds.join(" AND ")
    }

    /// `k1 = :k1 AND ...`
    fn key_match(&self) -> String {
        self.key_cols()
            .iter()
            .map(|c| format!("{} = {}", q(&c.c.name), self.bind(c, &c.c.name)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn key_params(&self) -> Vec<Param> {
        self.key_cols()
            .iter()
            .map(|c| {
                let mut p = self.value_param(c, &c.c.name);
                p.required = true;
                p.description = Some(format!("{} of the {} row", c.c.name, self.name()));
                p
            })
            .collect()
    }

    /// A parameter carrying one value of `c`.
    fn value_param(&self, c: &Col<'_>, name: &str) -> Param {
        let mut p = param(name, c.kind.param_type());
        if matches!(c.kind, ColumnKind::Date | ColumnKind::Timestamp) {
            p.pattern = date_pattern();
        }
        p.sensitive = c.sensitive;
        p
    }

    /// Keyset paging: after the last row's key, in key order, one row more than the page.
    fn keyset(&self) -> (String, String) {
        let keys = self.key_cols();
        let cols: Vec<String> = keys.iter().map(|c| q(&c.c.name)).collect();
        let binds: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, c)| self.bind(c, &after(i)))
            .collect();
        let cond = if keys.len() == 1 {
            format!("(:{} IS NULL OR {} > {})", after(0), cols[0], binds[0])
        } else {
            format!(
                "(:{} IS NULL OR ({}) > ({}))",
                after(0),
                cols.join(", "),
                binds.join(", ")
            )
        };
        (cond, cols.join(", "))
    }

    fn paging(&self) -> Paging {
        Paging {
            keys: self
                .key_cols()
                .iter()
                .map(|c| (c.c.name.clone(), c.kind.param_type()))
                .collect(),
            default_limit: DEFAULT_LIMIT,
        }
    }

    fn page_params(&self) -> Vec<Param> {
        let mut limit = param("limit", ParamType::Integer);
        limit.description = Some(format!(
            "Most rows to return (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})"
        ));
        limit.minimum = Some(1.0);
        limit.maximum = Some(f64::from(MAX_LIMIT));
        let mut cursor = param("cursor", ParamType::String);
        cursor.description = Some(
            "next_cursor from a truncated result of this same call, for the rows after it".into(),
        );
        cursor.max_length = Some(MAX_CURSOR);
        vec![limit, cursor]
    }

    fn paged_select(&self, filter: Option<String>) -> String {
        let (keyset, order) = self.keyset();
        let mut conds = vec![keyset];
        conds.extend(self.tenant_match());
        conds.extend(filter);
        format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {order} LIMIT :{FETCH}",
            self.select(true),
            q(self.name()),
            conds.join(" AND ")
        )
    }

    fn generated(&self, verb: &'static str, paging: Option<Paging>) -> Generated {
        Generated {
            table: self.name().to_string(),
            verb,
            paging,
            before: None,
            key: self.schema.primary_key.clone(),
            ingest: None,
        }
    }

    fn build(&self, made: Made) -> Result<Tool, String> {
        let Made {
            name,
            title,
            description,
            access,
            params,
            sql: text,
            returns,
            generated,
        } = made;
        if name.len() > 128 {
            return Err(format!(
                "the generated tool name '{name}' is longer than 128 characters"
            ));
        }
        let mut seen = HashSet::new();
        if let Some(dup) = params.iter().find(|p| !seen.insert(p.name.as_str())) {
            return Err(format!(
                "{name} would have two parameters named '{}' (a column's name meets another's filter); exclude one of the columns or drop the verb",
                dup.name
            ));
        }
        let statement = sql::compile(&text, self.dialect)
            .map_err(|e| format!("{name}: the generated SQL cannot be compiled ({e})"))?;
        let mut input_schema = crate::project::input_schema(&params);
        if access == Access::Write {
            crate::project::add_confirmation_params(&mut input_schema);
        }
        let mut policies = self.spec.policies.clone();
        policies.sensitive = self.spec.sensitive.iter().map(|n| n.name.clone()).collect();
        Ok(Tool {
            name,
            title: Some(title),
            description,
            access,
            params,
            statement,
            sql_at: self.spec.at.clone(),
            returns,
            output_schema: None,
            input_schema,
            content: Vec::new(),
            progress_steps: 0,
            log: Vec::new(),
            idempotent: matches!(generated.verb, "update" | "delete"),
            questions: Vec::new(),
            task: None,
            ask_before_task: false,
            policies,
            generated: Some(generated),
            builtin: None,
        })
    }

    fn paged_note(&self) -> String {
        format!(
            "At most `limit` rows (default {DEFAULT_LIMIT}) in key order; when `truncated` is true, call again with `cursor` set to `next_cursor` for the next rows."
        )
    }

    fn list(&self) -> Result<Tool, String> {
        self.build(Made {
            name: format!("list_{}", self.name()),
            title: format!("List {}", self.name()),
            description: format!("Lists {}. {}", self.what(), self.paged_note()),
            access: Access::Read,
            params: self.page_params(),
            sql: self.paged_select(None),
            returns: Returns::Rows,
            generated: self.generated("list", Some(self.paging())),
        })
    }

    fn get(&self) -> Result<Tool, String> {
        let text = format!(
            "SELECT {} FROM {} WHERE {}",
            self.select(true),
            q(self.name()),
            self.row_match()
        );
        self.build(Made {
            name: format!("get_{}", self.name()),
            title: format!("Get one of {}", self.name()),
            description: format!(
                "One row of {} by its key ({}).",
                self.what(),
                self.schema.primary_key.join(", ")
            ),
            access: Access::Read,
            params: self.key_params(),
            sql: text,
            returns: Returns::Row,
            generated: self.generated("get", None),
        })
    }

    fn search(&self) -> Result<Tool, String> {
        // The query's own % and _ match themselves: escaped, with \ as the escape.
        let pattern = r"'%' || replace(replace(replace(lower(:query), '\', '\\'), '%', '\%'), '_', '\_') || '%'";
        let ors: Vec<String> = self
            .spec
            .search
            .iter()
            .map(|n| {
                format!(
                    "lower(CAST({} AS TEXT)) LIKE {pattern} ESCAPE '\\'",
                    q(&n.name)
                )
            })
            .collect();
        let mut query = param("query", ParamType::String);
        query.required = true;
        query.min_length = Some(1);
        query.max_length = Some(MAX_QUERY);
        let cols: Vec<&str> = self.spec.search.iter().map(|n| n.name.as_str()).collect();
        query.description = Some(format!(
            "Text to find in {} (case-insensitive; % and _ match themselves)",
            cols.join(", ")
        ));
        let mut params = vec![query];
        params.extend(self.page_params());
        self.build(Made {
            name: format!("search_{}", self.name()),
            title: format!("Search {}", self.name()),
            description: format!(
                "Finds {} whose {} contain the text. {}",
                self.what(),
                cols.join(" or "),
                self.paged_note()
            ),
            access: Access::Read,
            params,
            sql: self.paged_select(Some(format!("({})", ors.join(" OR ")))),
            returns: Returns::Rows,
            generated: self.generated("search", Some(self.paging())),
        })
    }

    /// The filters of `filter_` and `export_`: their parameters and conditions.
    fn filters(&self) -> (Vec<Param>, Vec<String>) {
        let mut params = Vec::new();
        let mut conds = Vec::new();
        for c in self.cols.iter().filter(|c| !c.sensitive) {
            let name = &c.c.name;
            let mut eq = self.value_param(c, name);
            eq.description = Some(format!("Only rows whose {name} equals this"));
            conds.push(format!(
                "(:{name} IS NULL OR {} = {})",
                q(name),
                self.bind(c, name)
            ));
            params.push(eq);
            if c.kind != ColumnKind::Boolean {
                let pname = format!("{name}_in");
                let mut any = param(&pname, ParamType::Array);
                any.items = Some(c.kind.param_type());
                if matches!(c.kind, ColumnKind::Date | ColumnKind::Timestamp) {
                    any.pattern = date_pattern();
                }
                any.description = Some(format!("Only rows whose {name} is one of these"));
                conds.push(self.in_list(c, &pname));
                params.push(any);
            }
            if c.kind.ordered() {
                for (suffix, op, word) in [("min", ">=", "at least"), ("max", "<=", "at most")] {
                    let pname = format!("{name}_{suffix}");
                    let mut p = self.value_param(c, &pname);
                    p.description = Some(format!("Only rows whose {name} is {word} this"));
                    conds.push(format!(
                        "(:{pname} IS NULL OR {} {op} {})",
                        q(name),
                        self.bind(c, &pname)
                    ));
                    params.push(p);
                }
            }
        }
        (params, conds)
    }

    fn filter(&self) -> Result<Tool, String> {
        let (mut params, conds) = self.filters();
        params.extend(self.page_params());
        self.build(Made { name: format!("filter_{}", self.name()), title: format!("Filter {}", self.name()), description: format!(
                "Rows of {} matching every filter given: a column's value, one of a list (`_in`), or a range (`_min`, `_max`, inclusive). {}",
                self.what(),
                self.paged_note()
            ), access: Access::Read, params, sql: self.paged_select(Some(conds.join(" AND "))), returns: Returns::Rows, generated: self.generated("filter", Some(self.paging())) })
    }

    /// All the rows matching the filters (up to [`super::MAX_EXPORT_ROWS`]), written to a
    /// CSV file of the organisation's, with a URL to download it.
    fn export(&self) -> Result<Tool, String> {
        let (params, conds) = self.filters();
        let (_, order) = self.keyset();
        let mut all = Vec::new();
        all.extend(self.tenant_match());
        all.extend(conds);
        let text = format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {order} LIMIT :{FETCH}",
            self.select(true),
            q(self.name()),
            if all.is_empty() {
                "1 = 1".to_string()
            } else {
                all.join(" AND ")
            }
        );
        self.build(Made {
            name: format!("export_{}", self.name()),
            title: format!("Export {}", self.name()),
            description: format!(
                "Writes the rows of {} matching every filter given (as filter_{} takes them; at most {}) to a CSV file in your organisation's files, and returns a URL to download it (valid 120 seconds, once) with its SHA-256. For results too large to read through tool calls.",
                self.what(),
                self.name(),
                super::MAX_EXPORT_ROWS
            ),
            access: Access::Read,
            params,
            sql: text,
            returns: Returns::Row,
            generated: self.generated("export", None),
        })
    }

    /// `column IN (the items of a JSON array)`, bound as the array's text.
    fn in_list(&self, c: &Col<'_>, param: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!(
                "(:{param} IS NULL OR {} IN (SELECT value FROM json_each(:{param})))",
                q(&c.c.name)
            ),
            Dialect::Postgres => {
                let item = match c.c.kind {
                    ColumnKind::Integer => "CAST(x AS int8)".to_string(),
                    ColumnKind::Real => "CAST(x AS float8)".to_string(),
                    ColumnKind::Text => "x".to_string(),
                    _ => format!("CAST(x AS {})", c.c.declared),
                };
                format!(
                    "(:{param} IS NULL OR {} IN (SELECT {item} FROM jsonb_array_elements_text(CAST(:{param} AS jsonb)) AS e(x)))",
                    q(&c.c.name)
                )
            }
        }
    }

    fn count(&self) -> Result<Tool, String> {
        let whens: Vec<String> = self
            .spec
            .count_by
            .iter()
            .map(|n| {
                format!(
                    "WHEN '{}' THEN CAST({} AS TEXT)",
                    n.name.replace('\'', "''"),
                    q(&n.name)
                )
            })
            .collect();
        let text = format!(
            "SELECT CASE :column {} END AS value, COUNT(*) AS count FROM {}{} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT :{FETCH}",
            whens.join(" "),
            q(self.name()),
            self.tenant_match()
                .map(|t| format!(" WHERE {t}"))
                .unwrap_or_default()
        );
        let mut column = param("column", ParamType::String);
        column.required = true;
        column.enumeration = Some(self.spec.count_by.iter().map(|n| json!(n.name)).collect());
        column.description = Some("The column to count rows by".into());
        self.build(Made { name: format!("count_{}_by", self.name()), title: format!("Count {} by a column", self.name()), description: format!(
                "How many rows of {} have each value of a column, most common first (at most {MAX_LIMIT} values).",
                self.what()
            ), access: Access::Read, params: vec![column], sql: text, returns: Returns::Rows, generated: self.generated(
                "count",
                Some(Paging {
                    keys: Vec::new(),
                    default_limit: MAX_LIMIT,
                }),
            ) })
    }

    /// Rows of this (child) table whose foreign key `columns` name one row of `parent`.
    fn related(&self, name: &str, parent: &str, columns: &[String]) -> Result<Tool, String> {
        let mut params = Vec::new();
        let mut conds = Vec::new();
        for col in columns {
            let Some(c) = self.col(col) else {
                return Err(format!(
                    "{name}: the foreign key column '{col}' of '{}' is excluded",
                    self.name()
                ));
            };
            if c.sensitive {
                return Err(format!(
                    "{name}: the foreign key column '{col}' of '{}' is sensitive",
                    self.name()
                ));
            }
            let mut p = self.value_param(c, col);
            p.required = true;
            p.description = Some(format!(
                "The {parent} row's key, as {}.{col} holds it",
                self.name()
            ));
            conds.push(format!("{} = {}", q(col), self.bind(c, col)));
            params.push(p);
        }
        params.extend(self.page_params());
        let mut generated = self.generated("related", Some(self.paging()));
        generated.verb = "related";
        self.build(Made {
            name: name.to_string(),
            title: format!("{} of one {parent} row", self.name()),
            description: format!(
                "The rows of {} that refer to one row of {parent} (by {}). {}",
                self.what(),
                columns.join(", "),
                self.paged_note()
            ),
            access: Access::Read,
            params,
            sql: self.paged_select(Some(conds.join(" AND "))),
            returns: Returns::Rows,
            generated,
        })
    }

    /// A column a write may set: served and not filled by the database alone.
    fn writable(&self) -> impl Iterator<Item = &Col<'s>> {
        self.cols.iter().filter(|c| !c.c.generated)
    }

    fn insert(&self) -> Result<Tool, String> {
        for c in &self.schema.columns {
            if self.spec.exclude.iter().any(|n| n.name == c.name)
                && c.not_null
                && c.default.is_none()
                && !c.generated
                && !c.auto_key
            {
                return Err(format!(
                    "insert_{0}: column '{1}' is excluded but NOT NULL without a default, so no row could be inserted; stop excluding '{1}' or drop insert",
                    self.name(),
                    c.name
                ));
            }
        }
        let mut names = Vec::new();
        let mut values = Vec::new();
        let mut params = Vec::new();
        for (c, required, value) in self.insertable() {
            let name = &c.c.name;
            let mut p = self.value_param(c, name);
            p.required = required;
            p.description = Some(match &c.c.default {
                Some(_) => format!("{name} (the column's default when left out)"),
                None if c.c.auto_key => format!("{name} (the next one when left out)"),
                None => name.clone(),
            });
            names.push(q(name));
            values.push(value.replace("{param}", name));
            params.push(p);
        }
        if let Some(t) = &self.tenant {
            names.push(q(t));
            values.push(format!(":{}", crate::project::CALLER_ORG));
        }
        let text = format!(
            "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
            q(self.name()),
            names.join(", "),
            values.join(", "),
            self.select(false)
        );
        self.build(Made {
            name: format!("insert_{}", self.name()),
            title: format!("Add a row to {}", self.name()),
            description: format!(
                "Adds one row to {}. Changes data: the first call returns a preview to confirm.",
                self.what()
            ),
            access: Access::Write,
            params,
            sql: text,
            returns: Returns::Rows,
            generated: self.generated("insert", None),
        })
    }

    /// The columns an inserted row may give, with the expression each is written with
    /// (`param` standing for its placeholder's name).
    fn insertable(&self) -> Vec<(&Col<'s>, bool, String)> {
        self.writable()
            // PostgreSQL's identity BY DEFAULT has no default expression to fall back on.
            .filter(|c| {
                !(self.dialect == Dialect::Postgres && c.c.auto_key && c.c.default.is_none())
            })
            .map(|c| {
                let required = c.c.not_null && c.c.default.is_none() && !c.c.auto_key;
                let value = match &c.c.default {
                    Some(d) => format!("COALESCE({}, ({d}))", self.bind(c, "{param}")),
                    None => self.bind(c, "{param}"),
                };
                (c, required, value)
            })
            .collect()
    }

    fn ingest(&self) -> Result<Tool, String> {
        let cols = self.insertable();
        let mut names: Vec<String> = cols.iter().map(|(c, _, _)| q(&c.c.name)).collect();
        names.extend(self.tenant.as_ref().map(|t| q(t)));
        let tenant_value = self
            .tenant
            .as_ref()
            .map(|_| format!(":{}", crate::project::CALLER_ORG));
        let row = |prefix: &str| {
            cols.iter()
                .map(|(c, _, v)| v.replace("{param}", &format!("{prefix}{}", c.c.name)))
                .chain(tenant_value.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let insert = |rows: Vec<String>| {
            format!(
                "INSERT INTO {} ({}) VALUES {}",
                q(self.name()),
                names.join(", "),
                rows.join(", ")
            )
        };
        let single = insert(vec![format!("({})", row(""))]);
        let many = insert(
            (0..super::INGEST_PER_STATEMENT)
                .map(|i| format!("({})", row(&format!("r{i}_"))))
                .collect(),
        );
        let many = sql::compile(&many, self.dialect).map_err(|e| {
            format!(
                "ingest_{}: the generated SQL cannot be compiled ({e})",
                self.name()
            )
        })?;
        let columns: Vec<super::IngestColumn> = cols
            .iter()
            .map(|(c, required, _)| super::IngestColumn {
                name: c.c.name.clone(),
                kind: c.kind,
                required: *required,
                sensitive: c.sensitive,
            })
            .collect();
        let required: Vec<&str> = columns
            .iter()
            .filter(|c| c.required)
            .map(|c| c.name.as_str())
            .collect();
        let all: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let mut rows = param("rows", ParamType::Array);
        // The rows may hold sensitive values, and a batch is long: the record keeps their
        // count and, for a file, its SHA-256, not the rows.
        rows.sensitive = true;
        rows.description = Some(format!(
            "The rows to add, each an object of columns ({}; required: {})",
            all.join(", "),
            if required.is_empty() {
                "none".to_string()
            } else {
                required.join(", ")
            }
        ));
        let mut file = param("file", ParamType::String);
        file.description = Some("Instead of rows: a CSV file uploaded with request_upload_url (a header line naming the columns, then one line per row)".into());
        file.pattern = regex::Regex::new("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$").ok();
        let mut generated = self.generated("ingest", None);
        generated.ingest = Some(std::sync::Arc::new(super::Ingest {
            columns,
            many,
            max_rows: self.spec.max_ingest_rows,
        }));
        self.build(Made {
            name: format!("ingest_{}", self.name()),
            title: format!("Add many rows to {}", self.name()),
            description: format!(
                "Adds rows to {}, given as JSON (`rows`) or as an uploaded CSV file (`file`), at most {} a call. Every row is checked first: one bad row refuses the whole batch, naming the row and column, and nothing is written. Changes data: the first call returns a preview (the count and the first rows) to confirm.",
                self.what(),
                self.spec.max_ingest_rows
            ),
            access: Access::Write,
            params: vec![rows, file],
            sql: single,
            returns: Returns::Rows,
            generated,
        })
    }

    fn before(&self) -> Result<sql::Statement, String> {
        let text = format!(
            "SELECT {} FROM {} WHERE {}",
            self.select(false),
            q(self.name()),
            self.row_match()
        );
        sql::compile(&text, self.dialect)
            .map_err(|e| format!("the generated SQL cannot be compiled ({e})"))
    }

    fn update(&self) -> Result<Tool, String> {
        let keys = &self.schema.primary_key;
        let mut sets = Vec::new();
        let mut given = Vec::new();
        let mut params = self.key_params();
        for c in self.writable().filter(|c| !keys.contains(&c.c.name)) {
            let name = &c.c.name;
            let mut p = self.value_param(c, name);
            p.description = Some(format!("The new {name} (unchanged when left out)"));
            sets.push(format!(
                "{0} = COALESCE({1}, {0})",
                q(name),
                self.bind(c, name)
            ));
            given.push(format!(":{name} IS NOT NULL"));
            params.push(p);
        }
        if sets.is_empty() {
            return Err(format!(
                "update_{}: no column can be changed (every one is in the key, excluded or generated); drop update",
                self.name()
            ));
        }
        let text = format!(
            "UPDATE {} SET {} WHERE {} AND ({}) RETURNING {}",
            q(self.name()),
            sets.join(", "),
            self.row_match(),
            given.join(" OR "),
            self.select(false)
        );
        let mut generated = self.generated("update", None);
        generated.before = Some(self.before()?);
        self.build(Made { name: format!("update_{}", self.name()), title: format!("Change a row of {}", self.name()), description: format!(
                "Changes the columns given of one row of {}, found by its key ({}); columns left out keep their value. Changes data: the first call returns a preview (the row before and after) to confirm.",
                self.what(),
                keys.join(", ")
            ), access: Access::Write, params, sql: text, returns: Returns::Rows, generated })
    }

    fn delete(&self) -> Result<Tool, String> {
        let text = format!(
            "DELETE FROM {} WHERE {} RETURNING {}",
            q(self.name()),
            self.row_match(),
            self.select(false)
        );
        let mut generated = self.generated("delete", None);
        generated.before = Some(self.before()?);
        self.build(Made { name: format!("delete_{}", self.name()), title: format!("Delete a row of {}", self.name()), description: format!(
                "Deletes one row of {} by its key ({}). Changes data: the first call returns a preview to confirm.",
                self.what(),
                self.schema.primary_key.join(", ")
            ), access: Access::Write, params: self.key_params(), sql: text, returns: Returns::Rows, generated })
    }
}
