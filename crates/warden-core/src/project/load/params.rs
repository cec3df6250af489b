//! One entry of a tool's `params`: name (never an organisation), type, bounds, pattern,
//! enumeration and default, each checked against the others.

use super::suggest::closest;
use super::{Checker, first_line, is_name};
use crate::project::params::ParamType;
use crate::project::{Param, model};

impl Checker<'_> {
    pub(super) fn param(&mut self, p: model::ParamSpec, field: &str) -> Option<Param> {
        let before = self.errors.len();
        if crate::project::TENANT_NAMES.contains(&p.name.value.to_ascii_lowercase().as_str()) {
            self.err(
                &p.name,
                format!("{field}.name"),
                format!(
                    "'{}' would let the client choose the organisation; Warden takes it from the caller's credential: use :caller_org in the SQL instead",
                    p.name.value
                ),
            );
        }
        if !is_name(&p.name.value) {
            self.err(&p.name, format!("{field}.name"), format!("'{}' is not a valid parameter name: start with a letter or '_', then letters, digits or '_'", p.name.value));
        }
        let Some(ty) = ParamType::parse(&p.ty.value) else {
            // Every other setting depends on the type, so that is the one problem to report.
            let known = ["string", "integer", "number", "boolean", "object", "array"];
            let guess = match p.ty.value.to_ascii_lowercase().as_str() {
                "float" | "double" | "decimal" | "real" | "numeric" => Some("number"),
                "text" | "str" | "varchar" => Some("string"),
                "int" | "bigint" | "long" => Some("integer"),
                "bool" => Some("boolean"),
                other => closest(other, known),
            };
            self.err(
                &p.ty,
                format!("{field}.type"),
                format!(
                    "unknown type '{}'; {}use string, integer, number, boolean, object or array",
                    p.ty.value,
                    guess
                        .map(|g| format!("did you mean `{g}`? "))
                        .unwrap_or_default()
                ),
            );
            return None;
        };
        let numeric = matches!(ty, ParamType::Integer | ParamType::Number);
        for (opt, name) in [(&p.minimum, "minimum"), (&p.maximum, "maximum")] {
            if let Some(v) = opt
                && !numeric
            {
                self.err(
                    v,
                    format!("{field}.{name}"),
                    format!(
                        "applies only to integer and number parameters, not {}",
                        ty.as_str()
                    ),
                );
            }
        }
        for (opt, name) in [(&p.min_length, "min_length"), (&p.max_length, "max_length")] {
            if let Some(v) = opt
                && ty != ParamType::String
            {
                self.err(
                    v,
                    format!("{field}.{name}"),
                    format!("applies only to string parameters, not {}", ty.as_str()),
                );
            }
        }
        if let (Some(lo), Some(hi)) = (&p.minimum, &p.maximum)
            && lo.value > hi.value
        {
            self.err(lo, format!("{field}.minimum"), "is greater than maximum");
        }
        if let (Some(lo), Some(hi)) = (&p.min_length, &p.max_length)
            && lo.value > hi.value
        {
            self.err(
                lo,
                format!("{field}.min_length"),
                "is greater than max_length",
            );
        }
        let pattern = match &p.pattern {
            None => None,
            Some(s) if ty != ParamType::String => {
                self.err(
                    s,
                    format!("{field}.pattern"),
                    "applies only to string parameters",
                );
                None
            }
            Some(s) => match regex::Regex::new(&s.value) {
                Ok(r) => Some(r),
                Err(e) => {
                    self.err(
                        s,
                        format!("{field}.pattern"),
                        format!("invalid regular expression: {}", first_line(&e.to_string())),
                    );
                    None
                }
            },
        };
        if let Some(e) = &p.enumeration {
            if e.value.is_empty() {
                self.err(e, format!("{field}.enum"), "must list at least one value");
            }
            for v in &e.value {
                if !ty.accepts(v) {
                    self.err(
                        e,
                        format!("{field}.enum"),
                        format!("value {v} is not a {}", ty.as_str()),
                    );
                }
            }
        }
        if let Some(d) = &p.default
            && p.required
        {
            self.err(
                d,
                format!("{field}.default"),
                "a required parameter cannot have a default; drop one of them",
            );
        }
        if let Some(h) = &p.header {
            if !is_header_token(&h.value) {
                self.err(h, format!("{field}.header"), format!("'{}' cannot end a header name; use 1 to 64 letters, digits or '-' (the client sends Mcp-Param-<header>)", h.value));
            }
            if matches!(ty, ParamType::Number | ParamType::Object | ParamType::Array) {
                self.err(h, format!("{field}.header"), format!("a header carries a string, an integer or a boolean, not {} (a number may be written in several ways, so its header could not be compared with the body)", ty.as_str()));
            }
            if p.sensitive {
                self.err(h, format!("{field}.header"), "a sensitive value must not travel in an HTTP header, where proxies and logs see it; remove `header` or `sensitive`");
            }
        }
        if self.errors.len() > before {
            return None;
        }
        let param = Param {
            name: p.name.value,
            ty,
            description: p.description,
            required: p.required,
            default: p.default.as_ref().map(|d| d.value.clone()),
            enumeration: p.enumeration.map(|e| e.value),
            minimum: p.minimum.map(|v| v.value),
            maximum: p.maximum.map(|v| v.value),
            min_length: p.min_length.map(|v| v.value),
            max_length: p.max_length.map(|v| v.value),
            pattern,
            sensitive: p.sensitive,
            header: p.header.map(|h| h.value),
            items: None,
        };
        if let Some(d) = &p.default
            && let Err(e) = param.check(&d.value)
        {
            self.err(
                d,
                format!("{field}.default"),
                format!("the default fails its own rules: {}", e.message),
            );
            return None;
        }
        Some(param)
    }
}

/// RFC 9110 token characters, 1 to 64 of them: what may follow `Mcp-Param-` in a header name.
pub(super) fn is_header_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
