//! `tables`: which tables are served as generated tools, with which verbs, and which of
//! their columns are left out, sensitive, searched, counted by or read as dates. Names are
//! checked against the database later, by `tables::expand`; here only their form, the
//! verbs and the table's policies.

use std::collections::HashSet;

use serde_saphyr::Spanned;

use super::policies::{Applies, describe_policies};
use super::{Checker, is_name};
use crate::project::model;
use crate::tables::{Named, ReadVerb, TableSpec, WriteVerb};

impl Checker<'_> {
    pub(super) fn tables(
        &mut self,
        raw: Vec<Spanned<model::TableSpec>>,
        global: &model::PoliciesSpec,
    ) -> Vec<TableSpec> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (i, spec) in raw.into_iter().enumerate() {
            let field = format!("tables[{i}]");
            let t = spec.value;
            let before = self.errors.len();
            if !is_name(&t.table.value) || t.table.value.len() > 60 {
                self.err(&t.table, format!("{field}.table"), format!("'{}' cannot name generated tools; use a table whose name is letters, digits and '_' (at most 60), starting with a letter or '_'", t.table.value));
            }
            if !seen.insert(t.table.value.clone()) {
                self.err(
                    &t.table,
                    format!("{field}.table"),
                    format!("table '{}' is listed twice", t.table.value),
                );
            }
            let read = self.verbs(&t.read, &format!("{field}.read"), &ReadVerb::ALL);
            let write = self.verbs(&t.write, &format!("{field}.write"), &WriteVerb::ALL);
            if read.is_empty() && write.is_empty() {
                self.err(&t.table, format!("{field}.read"), format!("table '{}' serves no verb; give `read:` (list, get, search, filter, count, related) or `write:` (insert, update, delete, ingest)", t.table.value));
            }
            let names = |c: &mut Self, list: &[Spanned<String>], what: &str| -> Vec<Named> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                for (j, n) in list.iter().enumerate() {
                    let f = format!("{field}.{what}[{j}]");
                    if !is_name(&n.value) {
                        c.err(n, f.clone(), format!("'{}' is not a column name Warden serves (letters, digits and '_', starting with a letter or '_')", n.value));
                    } else if !seen.insert(n.value.clone()) {
                        c.err(n, f.clone(), format!("'{}' is listed twice", n.value));
                    }
                    out.push(Named {
                        name: n.value.clone(),
                        at: Self::located(n, f),
                    });
                }
                out
            };
            let exclude = names(self, &t.exclude, "exclude");
            let sensitive = names(self, &t.sensitive, "sensitive");
            let search = names(self, &t.search, "search");
            let count_by = names(self, &t.count_by, "count_by");
            let dates = names(self, &t.dates, "dates");
            let tenant = t.tenant_column.as_ref().map(|c| {
                if !is_name(&c.value) {
                    self.err(
                        c,
                        format!("{field}.tenant_column"),
                        format!("'{}' is not a column name Warden serves", c.value),
                    );
                }
                Named {
                    name: c.value.clone(),
                    at: Self::located(c, format!("{field}.tenant_column")),
                }
            });
            for n in exclude
                .iter()
                .chain(&sensitive)
                .chain(&search)
                .chain(&count_by)
                .chain(&dates)
            {
                if tenant.as_ref().is_some_and(|t| t.name == n.name) {
                    self.errors.push(crate::project::ProjectError::at(&self.file, &n.at, format!("'{}' is the tenant column, which Warden alone fills and matches; drop it from this list", n.name)));
                }
            }
            for n in &sensitive {
                if exclude.iter().any(|e| e.name == n.name) {
                    self.errors.push(crate::project::ProjectError::at(&self.file, &n.at, format!("'{}' is excluded and sensitive; an excluded column is never served, so drop it from `sensitive`", n.name)));
                }
            }
            // A table's rules apply to each of its tools, whose parameters the schema
            // decides: they may read `args` fields the verbs share and the columns the
            // table names.
            let mut params: Vec<String> = ["limit", "cursor", "query", "column"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            params.extend(
                search
                    .iter()
                    .chain(&count_by)
                    .chain(&dates)
                    .map(|n| n.name.clone()),
            );
            let own = t.policies.as_ref().map(|p| {
                let applies = Applies::Tool {
                    name: &t.table.value,
                    params: &params,
                };
                self.policies(&p.value, &format!("{field}.policies"), Some(applies))
            });
            if self.errors.len() > before {
                continue;
            }
            let (mut input, mut output) = self.policies(global, "policies", None);
            let mut text = describe_policies(global);
            if let (Some(p), Some((i, o))) = (&t.policies, own) {
                input.extend(i);
                output.extend(o);
                text.push_str(&describe_policies(&p.value));
            }
            let sensitive_names: Vec<String> = sensitive.iter().map(|n| n.name.clone()).collect();
            text.push_str(&format!("sensitive={sensitive_names:?}"));
            let max_ingest_rows = match &t.max_ingest_rows {
                Some(m) if m.value == 0 || m.value > 1_000_000 => {
                    self.err(
                        m,
                        format!("{field}.max_ingest_rows"),
                        format!("must be between 1 and 1000000, got {}", m.value),
                    );
                    continue;
                }
                Some(m) => m.value,
                None => crate::tables::DEFAULT_INGEST_ROWS,
            };
            out.push(TableSpec {
                table: t.table.value.clone(),
                at: Self::located(&t.table, format!("{field}.table")),
                description: t.description,
                read,
                write,
                exclude,
                sensitive,
                search,
                count_by,
                dates,
                tenant,
                max_ingest_rows,
                policies: crate::policy::PolicySet {
                    input,
                    output,
                    sensitive: sensitive_names,
                    version: crate::policy::version_of(&text),
                },
            });
        }
        out
    }

    fn verbs<V: Copy + PartialEq>(
        &mut self,
        list: &[Spanned<String>],
        field: &str,
        known: &[(&'static str, V)],
    ) -> Vec<V> {
        let mut out = Vec::new();
        for (j, v) in list.iter().enumerate() {
            match known.iter().find(|(n, _)| *n == v.value) {
                Some((_, verb)) if out.contains(verb) => {
                    self.err(
                        v,
                        format!("{field}[{j}]"),
                        format!("'{}' is listed twice", v.value),
                    );
                }
                Some((_, verb)) => out.push(*verb),
                None => {
                    let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
                    self.err(
                        v,
                        format!("{field}[{j}]"),
                        format!(
                            "unknown verb '{}'; {}use {}",
                            v.value,
                            super::suggest::did_you_mean(&v.value, names.iter().copied()),
                            names.join(", ")
                        ),
                    );
                }
            }
        }
        out
    }
}
