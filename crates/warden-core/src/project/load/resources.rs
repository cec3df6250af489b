//! One entry of `resources`: a fixed URI or a URI template, and SQL that uses only the
//! template's variables and the caller's.

use serde_saphyr::Spanned;

use super::Checker;
use crate::exec::sql;
use crate::project::uri_template::UriTemplate;
use crate::project::{Dialect, Resource, ResourceUri, model};

impl Checker<'_> {
    pub(super) fn resource(
        &mut self,
        r: Spanned<model::ResourceSpec>,
        field: &str,
        dialect: Dialect,
    ) -> Option<Resource> {
        let loc = r.referenced;
        let r = r.value;
        let before = self.errors.len();
        let uri = match (&r.uri, &r.uri_template) {
            (Some(u), None) if u.value.contains("://") || u.value.contains(':') => {
                Some(ResourceUri::Fixed(u.value.clone()))
            }
            (Some(u), None) => {
                self.err(
                    u,
                    format!("{field}.uri"),
                    format!(
                        "'{}' is not a URI (it needs a scheme, e.g. vendor://all)",
                        u.value
                    ),
                );
                None
            }
            (None, Some(t)) => match UriTemplate::parse(&t.value) {
                Ok(t) => Some(ResourceUri::Template(t)),
                Err(m) => {
                    self.err(t, format!("{field}.uri_template"), m);
                    None
                }
            },
            _ => {
                self.at(
                    loc,
                    field.to_string(),
                    "give exactly one of `uri` or `uri_template`",
                );
                None
            }
        };
        if r.name.value.trim().is_empty() {
            self.err(&r.name, format!("{field}.name"), "must not be empty");
        }
        let statement = match sql::compile(&r.sql.value, dialect) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(&r.sql, format!("{field}.sql"), e.to_string());
                None
            }
        };
        if let (Some(uri), Some(s)) = (&uri, &statement) {
            let vars: Vec<&str> = match uri {
                ResourceUri::Fixed(_) => Vec::new(),
                ResourceUri::Template(t) => t.variables().collect(),
            };
            for n in &s.names {
                let from_caller = [
                    crate::project::CALLER_ORG,
                    crate::project::CALLER_USER_ID,
                    crate::project::CALLER_EMAIL,
                ]
                .contains(&n.as_str());
                if !vars.contains(&n.as_str()) && !from_caller {
                    self.err(
                        &r.sql,
                        format!("{field}.sql"),
                        format!("uses :{n}, which is not a variable of the URI"),
                    );
                }
            }
        }
        if self.errors.len() > before {
            return None;
        }
        Some(Resource {
            uri: uri?,
            name: r.name.value,
            title: r.title,
            description: r.description,
            mime_type: r.mime_type,
            statement: statement?,
            sql_at: Self::located(&r.sql, format!("{field}.sql")),
            binary: r.binary,
        })
    }
}
