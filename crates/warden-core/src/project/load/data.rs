//! The `data` section: where the tool data lives (SQLite file or PostgreSQL URL), the query
//! timeout, the row limit and the connection pool size.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::Checker;
use crate::project::{DataConfig, DataLocation, FieldLocation, model};

impl Checker<'_> {
    pub(super) fn data(&mut self, d: Spanned<model::DataSection>) -> Option<DataConfig> {
        let loc = d.referenced;
        let d = d.value;
        let written_at = match (&d.sqlite, &d.postgres) {
            (Some(path), _) => Self::located(path, "data.sqlite"),
            (None, Some(url)) => Self::located(url, "data.postgres"),
            (None, None) => FieldLocation {
                field: "data".into(),
                line: loc.line() as u32,
                column: loc.column() as u32,
            },
        };
        let location = match (&d.sqlite, &d.postgres) {
            (Some(path), None) => {
                let v = self.expand(path, "data.sqlite")?;
                let p = PathBuf::from(&v);
                let base = self.file.parent().unwrap_or(Path::new("."));
                Some(DataLocation::Sqlite(if p.is_absolute() {
                    p
                } else {
                    base.join(p)
                }))
            }
            (None, Some(url)) => {
                let v = self.expand(url, "data.postgres")?;
                if v.starts_with("postgres://") || v.starts_with("postgresql://") {
                    Some(DataLocation::Postgres(v))
                } else {
                    self.err(
                        url,
                        "data.postgres",
                        "must be a postgres:// or postgresql:// URL",
                    );
                    None
                }
            }
            _ => {
                self.at(
                    loc,
                    "data",
                    "give exactly one of `sqlite: FILE` or `postgres: URL`",
                );
                None
            }
        };
        let ranged =
            |c: &mut Self, v: &Option<Spanned<u64>>, field: &str, lo: u64, hi: u64, def: u64| {
                match v {
                    None => Some(def),
                    Some(n) if (lo..=hi).contains(&n.value) => Some(n.value),
                    Some(n) => {
                        c.err(
                            n,
                            field,
                            format!("must be between {lo} and {hi}, got {}", n.value),
                        );
                        None
                    }
                }
            };
        let timeout = ranged(
            self,
            &d.query_timeout_ms,
            "data.query_timeout_ms",
            1,
            600_000,
            5_000,
        );
        let max_rows = ranged(self, &d.max_rows, "data.max_rows", 1, 100_000, 1_000);
        let conns = d.max_connections.as_ref().map(|s| Spanned {
            value: u64::from(s.value),
            referenced: s.referenced,
            defined: s.defined,
        });
        let max_connections = ranged(self, &conns, "data.max_connections", 1, 100, 8);
        let schema_org = d.schema_org.as_ref().and_then(|o| {
            let ok = !o.value.is_empty()
                && o.value
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                self.err(
                    o,
                    "data.schema_org",
                    format!(
                        "'{}' is not an organisation slug (lowercase letters, digits and '-')",
                        o.value
                    ),
                );
            }
            ok.then(|| o.value.clone())
        });
        Some(DataConfig {
            location: location?,
            written_at,
            query_timeout: Duration::from_millis(timeout?),
            max_rows: max_rows? as usize,
            max_connections: max_connections? as u32,
            schema_org,
        })
    }
}
