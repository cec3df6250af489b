//! One entry of `tools`: its name, access, SQL (compiled, and matched against the declared
//! parameters), result shape and content blocks, elicitation and sampling, and its policies
//! compiled with the project's. Write tools also get the confirmation parameters.

use std::collections::HashSet;

use serde_saphyr::Spanned;

use super::params::is_header_token;
use super::policies::{Applies, describe_policies};
use super::{Checker, is_tool_name};
use crate::exec::sql;
use crate::project::params::{ParamType, input_schema};
use crate::project::{Access, ContentBlock, Dialect, Returns, Tool, model};

impl Checker<'_> {
    /// An answer key: letters, digits, `_` and `-`, 1 to 64 long.
    pub(super) fn answer_key(
        &mut self,
        key: Option<&Spanned<String>>,
        default: &str,
        field: &str,
    ) -> String {
        let Some(k) = key else {
            return default.to_string();
        };
        let ok = !k.value.is_empty()
            && k.value.len() <= 64
            && k.value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            self.err(
                k,
                field,
                format!(
                    "'{}' is not a key; use 1 to 64 letters, digits, '_' or '-'",
                    k.value
                ),
            );
        }
        k.value.clone()
    }

    pub(super) fn tool(
        &mut self,
        t: model::ToolSpec,
        field: &str,
        dialect: Dialect,
        global: &model::PoliciesSpec,
    ) -> Option<Tool> {
        let before = self.errors.len();
        if !is_tool_name(&t.name.value) {
            self.err(
                &t.name,
                format!("{field}.name"),
                format!(
                    "'{}' is not a valid tool name: use 1-128 letters, digits, '_', '-' or '.'",
                    t.name.value
                ),
            );
        }
        if t.description.value.trim().is_empty() {
            self.err(
                &t.description,
                format!("{field}.description"),
                "must not be empty: clients show it to the model to decide when to call the tool",
            );
        }
        let access = match t.access.value.as_str() {
            "read" => Access::Read,
            "write" => Access::Write,
            other => {
                self.err(
                    &t.access,
                    format!("{field}.access"),
                    format!("'{other}' is not an access kind; use read or write"),
                );
                Access::Read
            }
        };
        // Every declared name counts as declared, even one whose other settings are wrong: its
        // own error says what is wrong, and the SQL and the rules that use it are not wrong too.
        let declared: Vec<String> = t
            .params
            .iter()
            .map(|p| p.value.name.value.clone())
            .collect();
        let mut params = Vec::new();
        let mut seen = HashSet::new();
        let mut headers = HashSet::new();
        for (i, p) in t.params.into_iter().enumerate() {
            let pfield = format!("{field}.params[{i}]");
            if !seen.insert(p.value.name.value.clone()) {
                self.err(
                    &p.value.name,
                    format!("{pfield}.name"),
                    format!("duplicate parameter '{}'", p.value.name.value),
                );
            }
            if let Some(h) = &p.value.header
                && !headers.insert(h.value.to_ascii_lowercase())
            {
                self.err(
                    h,
                    format!("{pfield}.header"),
                    format!(
                        "another parameter already uses the header '{}' (header names ignore case)",
                        h.value
                    ),
                );
            }
            if let Some(param) = self.param(p.value, &pfield) {
                params.push(param);
            }
        }
        let statement = match sql::compile(&t.sql.value, dialect) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(&t.sql, format!("{field}.sql"), e.to_string());
                None
            }
        };
        let mut provided: Vec<&str> = vec![
            crate::project::CALLER_ORG,
            crate::project::CALLER_USER_ID,
            crate::project::CALLER_EMAIL,
        ];
        if self.stateless {
            // An older client is asked mid-call, by a request answered on another request:
            // without sessions, another instance may get it.
            if let Some(e) = &t.elicit {
                self.err(e, format!("{field}.elicit"), "asking the client mid-call needs MCP sessions, and `server.sessions` is stateless; remove `elicit`, or serve one instance with `sessions: stateful`");
            }
            if let Some(s) = &t.sample {
                self.err(s, format!("{field}.sample"), "asking the client's model mid-call needs MCP sessions, and `server.sessions` is stateless; remove `sample`, or serve one instance with `sessions: stateful`");
            }
            if let Some(r) = &t.roots {
                self.err(r, format!("{field}.roots"), "asking the client for its roots mid-call needs MCP sessions, and `server.sessions` is stateless; remove `roots`, or serve one instance with `sessions: stateful`");
            }
        }
        let settings = self.task_settings(
            t.task.as_ref(),
            t.ask.as_ref(),
            access == Access::Write,
            t.elicit.is_some() || t.sample.is_some() || t.roots.is_some(),
            field,
        );
        if access == Access::Write {
            // A write is confirmed against a preview of exactly what will run; an answer
            // given after the preview would change the write the person approved.
            for (asks, what) in [
                (t.elicit.as_ref().map(|e| e.referenced), "elicit"),
                (t.sample.as_ref().map(|s| s.referenced), "sample"),
                (t.roots.as_ref().map(|r| r.referenced), "roots"),
            ] {
                if let Some(at) = asks {
                    self.at(at, format!("{field}.{what}"), format!("a write tool cannot `{what}`: its confirmation covers a preview of exactly what will run, and an answer would change the write after it; ask in a read tool first, or take the value as a parameter"));
                }
            }
        }
        let questions = self.questions(t.elicit, t.sample, t.roots, t.name.referenced, field);
        use crate::project::{
            ANSWERS, ELICIT_ACTION, ELICIT_CONTENT, QuestionKind, ROOTS, SAMPLE_TEXT,
        };
        if !questions.is_empty() {
            provided.push(ANSWERS);
        }
        for q in &questions {
            match q.kind {
                QuestionKind::Elicit { .. } => provided.extend([ELICIT_ACTION, ELICIT_CONTENT]),
                QuestionKind::Sample { .. } => provided.push(SAMPLE_TEXT),
                QuestionKind::Roots => provided.push(ROOTS),
            }
        }
        for p in &declared {
            if [
                ELICIT_ACTION,
                ELICIT_CONTENT,
                SAMPLE_TEXT,
                ROOTS,
                ANSWERS,
                crate::confirm::CONFIRM,
                crate::confirm::TOKEN,
                crate::project::CALLER_ORG,
                crate::project::CALLER_USER_ID,
                crate::project::CALLER_EMAIL,
            ]
            .contains(&p.as_str())
            {
                self.err(
                    &t.sql,
                    format!("{field}.params"),
                    format!("'{p}' is reserved for answers Warden binds itself"),
                );
            }
        }
        if let Some(s) = &statement {
            for n in &s.names {
                if !declared.contains(n) && !provided.contains(&n.as_str()) {
                    self.err(
                        &t.sql,
                        format!("{field}.sql"),
                        format!("uses :{n}, which is not declared in params"),
                    );
                }
            }
            for p in &declared {
                if !s.names.contains(p) {
                    self.err(
                        &t.sql,
                        format!("{field}.sql"),
                        format!("never uses the declared parameter :{p}"),
                    );
                }
            }
        }
        let returns = match t.returns.as_ref().map(|r| r.value.as_str()) {
            None | Some("rows") => Returns::Rows,
            Some("row") => Returns::Row,
            Some(other) => {
                if let Some(r) = &t.returns {
                    self.err(
                        r,
                        format!("{field}.returns"),
                        format!("'{other}' is not a result shape; use rows or row"),
                    );
                }
                Returns::Rows
            }
        };
        let output_schema = match t.output_schema {
            None => None,
            Some(s) => match s.value {
                serde_json::Value::Object(m)
                    if m.get("type").and_then(|v| v.as_str()) == Some("object") =>
                {
                    Some(m)
                }
                _ => {
                    self.err(
                        &s,
                        format!("{field}.output_schema"),
                        "must be a JSON Schema object with `type: object`",
                    );
                    None
                }
            },
        };
        let mut content = Vec::new();
        for (i, c) in t.content.into_iter().enumerate() {
            let cfield = format!("{field}.content[{i}]");
            if let Some(b) = self.content(c, &cfield) {
                content.push(b);
            }
        }
        let progress_steps = match t.progress_steps {
            Some(p) if p.value > 100 => {
                self.err(&p, format!("{field}.progress_steps"), "must be at most 100");
                0
            }
            Some(p) => p.value,
            None => 0,
        };
        let own_schema = t
            .input_schema
            .as_ref()
            .and_then(|s| self.own_input_schema(s, &params, &format!("{field}.input_schema")));
        // The tool's own rules are checked even when something else in it is wrong, so that
        // one run lists every problem.
        let own = t.policies.as_ref().map(|p| {
            let applies = Applies::Tool {
                name: &t.name.value,
                params: &declared,
            };
            self.policies(&p.value, &format!("{field}.policies"), Some(applies))
        });
        if self.errors.len() > before {
            return None;
        }
        let (mut input_rules, mut output_rules) = self.policies(global, "policies", None);
        let mut policy_text = describe_policies(global);
        if let (Some(p), Some((i, o))) = (&t.policies, own) {
            input_rules.extend(i);
            output_rules.extend(o);
            policy_text.push_str(&describe_policies(&p.value));
        }
        let sensitive: Vec<String> = t.sensitive.iter().map(|s| s.value.clone()).collect();
        policy_text.push_str(&format!("sensitive={sensitive:?}"));
        let policies = crate::policy::PolicySet {
            input: input_rules,
            output: output_rules,
            sensitive,
            version: crate::policy::version_of(&policy_text),
        };
        let mut input_schema = own_schema.unwrap_or_else(|| input_schema(&params));
        if access == Access::Write {
            add_confirmation_params(&mut input_schema);
        }
        Some(Tool {
            name: t.name.value,
            title: t.title,
            description: t.description.value,
            access,
            params,
            statement: statement?,
            sql_at: Self::located(&t.sql, format!("{field}.sql")),
            returns,
            output_schema,
            input_schema,
            content,
            progress_steps,
            log: t.log,
            idempotent: t.idempotent,
            questions,
            task: settings.task,
            ask_before_task: settings.ask_before_task,
            policies,
            generated: None,
            builtin: None,
        })
    }

    /// `input_schema`: an object schema whose `properties` are exactly the declared
    /// parameters, each of the same type where the schema states one. Warden still checks
    /// every argument against `params`; the schema's other keywords are advertised as
    /// written.
    fn own_input_schema(
        &mut self,
        schema: &Spanned<serde_json::Value>,
        params: &[crate::project::Param],
        field: &str,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        let Some(m) = schema
            .value
            .as_object()
            .filter(|m| m.get("type").and_then(|v| v.as_str()) == Some("object"))
        else {
            self.err(
                schema,
                field,
                "must be a JSON Schema object with `type: object`",
            );
            return None;
        };
        let empty = serde_json::Map::new();
        let properties = match m.get("properties") {
            None => &empty,
            Some(serde_json::Value::Object(p)) => p,
            Some(_) => {
                self.err(
                    schema,
                    format!("{field}.properties"),
                    "must be a mapping of parameter names to schemas",
                );
                return None;
            }
        };
        let before = self.errors.len();
        let mut headers = HashSet::new();
        for name in properties.keys() {
            if !params.iter().any(|p| &p.name == name) {
                self.err(schema, format!("{field}.properties.{name}"), format!("'{name}' is not a declared parameter, so a call that sent it would be refused; declare it in params (type object or array for structured values)"));
            }
        }
        for p in params {
            match properties.get(&p.name) {
                None => self.err(
                    schema,
                    format!("{field}.properties"),
                    format!(
                        "the parameter '{}' is missing; every parameter must be advertised",
                        p.name
                    ),
                ),
                Some(prop) => {
                    if let Some(ty) = prop.get("type").and_then(|t| t.as_str())
                        && ty != p.ty.as_str()
                    {
                        self.err(
                            schema,
                            format!("{field}.properties.{}.type", p.name),
                            format!("is {ty}, but the parameter is declared {}", p.ty.as_str()),
                        );
                    }
                    if p.header.is_some() {
                        self.err(schema, format!("{field}.properties.{}", p.name), "with input_schema, write the header as `x-mcp-header` in the schema, not as `header` on the parameter");
                    }
                    if let Some(h) = prop.get("x-mcp-header") {
                        let pfield = format!("{field}.properties.{}.x-mcp-header", p.name);
                        if prop.get("type").and_then(|t| t.as_str()).is_none() {
                            self.err(schema, pfield.clone(), "a property with a header must state its `type` (string, integer or boolean), or clients drop the header and every call is refused");
                        }
                        match h.as_str() {
                            Some(name) if is_header_token(name) => {
                                if !headers.insert(name.to_ascii_lowercase()) {
                                    self.err(schema, pfield.clone(), format!("another parameter already uses the header '{name}' (header names ignore case)"));
                                }
                            }
                            _ => self.err(schema, pfield.clone(), "must be 1 to 64 letters, digits or '-' (the client sends Mcp-Param-<header>)"),
                        }
                        if matches!(
                            p.ty,
                            ParamType::Number | ParamType::Object | ParamType::Array
                        ) {
                            self.err(
                                schema,
                                pfield.clone(),
                                format!(
                                    "a header carries a string, an integer or a boolean, not {}",
                                    p.ty.as_str()
                                ),
                            );
                        }
                        if p.sensitive {
                            self.err(schema, pfield, "a sensitive value must not travel in an HTTP header, where proxies and logs see it");
                        }
                    }
                }
            }
        }
        // rmcp reads `x-mcp-header` along nested `properties` too: only a parameter's own
        // property may carry one, where the checks above apply.
        let mut nested = Vec::new();
        for (name, prop) in properties {
            if let Some(o) = prop.as_object() {
                for (k, v) in o {
                    if k != "x-mcp-header" {
                        headers_below(v, &format!("{name}.{k}"), &mut nested);
                    }
                }
            }
        }
        for (k, v) in m {
            if k != "properties" {
                headers_below(v, k, &mut nested);
            }
        }
        for path in nested {
            self.err(schema, format!("{field}.{path}"), "an `x-mcp-header` may only be on a parameter's own property (`properties.<name>`), where its type and sensitivity are checked");
        }
        (self.errors.len() == before).then(|| m.clone())
    }

    fn content(&mut self, c: Spanned<model::ContentSpec>, field: &str) -> Option<ContentBlock> {
        let c = c.value;
        let column = c.column.as_ref().map(|s| s.value.clone());
        let need = |me: &mut Self, what: &str| {
            me.err(
                &c.kind,
                field.to_string(),
                format!("a {} block needs `{what}`", c.kind.value),
            );
        };
        match c.kind.value.as_str() {
            "text" => match column {
                Some(column) => Some(ContentBlock::Text { column }),
                None => {
                    need(self, "column");
                    None
                }
            },
            kind @ ("image" | "audio") => match (column, c.mime_type) {
                (Some(column), Some(mime_type)) if kind == "image" => {
                    Some(ContentBlock::Image { column, mime_type })
                }
                (Some(column), Some(mime_type)) => Some(ContentBlock::Audio { column, mime_type }),
                _ => {
                    need(self, "column and mime_type");
                    None
                }
            },
            "resource" => match (c.uri_column, column) {
                (Some(u), Some(column)) => Some(ContentBlock::Resource {
                    uri_column: u.value,
                    column,
                    mime_type: c.mime_type,
                }),
                _ => {
                    need(self, "uri_column and column");
                    None
                }
            },
            other => {
                self.err(
                    &c.kind,
                    format!("{field}.type"),
                    format!("unknown content type '{other}'; use text, image, audio or resource"),
                );
                None
            }
        }
    }
}

/// Write tools take `confirm` and `confirmation_token` besides their own parameters.
pub(crate) fn add_confirmation_params(schema: &mut serde_json::Map<String, serde_json::Value>) {
    if let Some(serde_json::Value::Object(props)) = schema.get_mut("properties") {
        props.insert(
            crate::confirm::CONFIRM.into(),
            serde_json::json!({"type": "boolean", "description": "Set to true, with confirmation_token, only after the user approved the preview returned by a call without it."}),
        );
        props.insert(
            crate::confirm::TOKEN.into(),
            serde_json::json!({"type": "string", "description": "The token from the preview of exactly this call."}),
        );
    }
}

/// Where under `v` (at `path`) an `x-mcp-header` is written.
fn headers_below(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, c) in o {
                let here = format!("{path}.{k}");
                if k == "x-mcp-header" {
                    out.push(here);
                } else {
                    headers_below(c, &here, out);
                }
            }
        }
        serde_json::Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                headers_below(c, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}
