//! Tool parameters: the JSON-Schema subset a project may declare, the schema advertised to
//! clients, and the check every call's arguments pass before any SQL runs.

use serde_json::{Map, Value, json};

use super::{Param, Tool};
use crate::exec::SqlValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
    /// A JSON object, bound as its JSON text.
    Object,
    /// A JSON array, bound as its JSON text.
    Array,
}

impl ParamType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "object" => Self::Object,
            "array" => Self::Array,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Object => "object",
            Self::Array => "array",
        }
    }

    pub fn accepts(self, v: &Value) -> bool {
        match self {
            Self::String => v.is_string(),
            Self::Integer => v.is_i64() || v.is_u64() && v.as_i64().is_some(),
            Self::Number => v.is_number(),
            Self::Boolean => v.is_boolean(),
            Self::Object => v.is_object(),
            Self::Array => v.is_array(),
        }
    }
}

/// A call's argument was missing, unknown or out of bounds. Always names the parameter, and
/// never repeats the value of a `sensitive` one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter '{param}': {message}")]
pub struct ArgumentError {
    pub param: String,
    pub message: String,
}

impl ArgumentError {
    fn new(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: param.to_string(),
            message: message.into(),
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Param {
    /// Checks one supplied value against this parameter's constraints.
    pub fn check(&self, v: &Value) -> Result<(), ArgumentError> {
        let shown = |v: &Value| {
            if self.sensitive {
                "<sensitive>".to_string()
            } else {
                v.to_string()
            }
        };
        if !self.ty.accepts(v) {
            return Err(ArgumentError::new(
                &self.name,
                format!("expected {}, got {}", self.ty.as_str(), type_name(v)),
            ));
        }
        if let (Some(item), Value::Array(items)) = (self.items, v) {
            if items.len() > super::MAX_ITEMS {
                return Err(ArgumentError::new(
                    &self.name,
                    format!(
                        "takes at most {} items, got {}",
                        super::MAX_ITEMS,
                        items.len()
                    ),
                ));
            }
            if let Some((i, bad)) = items.iter().enumerate().find(|(_, x)| !item.accepts(x)) {
                return Err(ArgumentError::new(
                    &self.name,
                    format!(
                        "item {i}: expected {}, got {}",
                        item.as_str(),
                        type_name(bad)
                    ),
                ));
            }
            if let Some(re) = &self.pattern
                && let Some(i) = items
                    .iter()
                    .position(|x| x.as_str().is_some_and(|s| !re.is_match(s)))
            {
                return Err(ArgumentError::new(
                    &self.name,
                    format!("item {i} does not match the pattern {}", re.as_str()),
                ));
            }
        }
        if let Some(allowed) = &self.enumeration
            && !allowed.contains(v)
        {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return Err(ArgumentError::new(
                &self.name,
                format!("{} is not one of {}", shown(v), list.join(", ")),
            ));
        }
        if let Some(n) = v.as_f64() {
            if let Some(min) = self.minimum
                && n < min
            {
                return Err(ArgumentError::new(
                    &self.name,
                    format!("must be at least {min}, got {}", shown(v)),
                ));
            }
            if let Some(max) = self.maximum
                && n > max
            {
                return Err(ArgumentError::new(
                    &self.name,
                    format!("must be at most {max}, got {}", shown(v)),
                ));
            }
        }
        if let Some(s) = v.as_str() {
            let len = s.chars().count() as u64;
            if let Some(min) = self.min_length
                && len < min
            {
                return Err(ArgumentError::new(
                    &self.name,
                    format!("must be at least {min} characters, got {len}"),
                ));
            }
            if let Some(max) = self.max_length
                && len > max
            {
                return Err(ArgumentError::new(
                    &self.name,
                    format!("must be at most {max} characters, got {len}"),
                ));
            }
            if let Some(re) = &self.pattern
                && !re.is_match(s)
            {
                return Err(ArgumentError::new(
                    &self.name,
                    format!("does not match the pattern {}", re.as_str()),
                ));
            }
        }
        Ok(())
    }

    /// This parameter as a JSON Schema property.
    pub(super) fn schema(&self) -> Value {
        let mut p = Map::new();
        p.insert("type".into(), json!(self.ty.as_str()));
        if let Some(d) = &self.description {
            p.insert("description".into(), json!(d));
        }
        if let Some(e) = &self.enumeration {
            p.insert("enum".into(), Value::Array(e.clone()));
        }
        if let Some(m) = self.minimum {
            p.insert("minimum".into(), number(m));
        }
        if let Some(m) = self.maximum {
            p.insert("maximum".into(), number(m));
        }
        if let Some(m) = self.min_length {
            p.insert("minLength".into(), json!(m));
        }
        if let Some(m) = self.max_length {
            p.insert("maxLength".into(), json!(m));
        }
        match (&self.pattern, self.items) {
            (Some(re), Some(item)) => {
                p.insert(
                    "items".into(),
                    json!({"type": item.as_str(), "pattern": re.as_str()}),
                );
            }
            (Some(re), None) => {
                p.insert("pattern".into(), json!(re.as_str()));
            }
            (None, Some(item)) => {
                p.insert("items".into(), json!({"type": item.as_str()}));
            }
            (None, None) => {}
        }
        if self.items.is_some() {
            p.insert("maxItems".into(), json!(super::MAX_ITEMS));
        }
        if let Some(d) = &self.default {
            p.insert("default".into(), d.clone());
        }
        if let Some(h) = &self.header {
            p.insert("x-mcp-header".into(), json!(h));
        }
        Value::Object(p)
    }
}

/// Whole numbers print as integers, so `maximum: 100` is advertised as `100`, not `100.0`.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

pub(crate) fn input_schema(params: &[Param]) -> Map<String, Value> {
    let properties: Map<String, Value> = params
        .iter()
        .map(|p| (p.name.clone(), p.schema()))
        .collect();
    let required: Vec<Value> = params
        .iter()
        .filter(|p| p.required)
        .map(|p| json!(p.name))
        .collect();
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    schema.insert("additionalProperties".into(), json!(false));
    schema
}

impl Tool {
    /// Checks a call's arguments and returns the values to bind, in statement order.
    /// Unknown arguments are refused: a client cannot smuggle in fields the tool does not
    /// declare (an organisation id, say).
    pub fn bind_arguments(
        &self,
        args: Option<&Map<String, Value>>,
    ) -> Result<Vec<SqlValue>, ArgumentError> {
        let empty = Map::new();
        let args = args.unwrap_or(&empty);
        if let Some(unknown) = args
            .keys()
            .find(|k| !self.params.iter().any(|p| &p.name == *k))
        {
            let known: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
            let hint = if known.is_empty() {
                "this tool takes no parameters".to_string()
            } else {
                format!("this tool takes: {}", known.join(", "))
            };
            return Err(ArgumentError::new(
                unknown,
                format!("unknown parameter; {hint}"),
            ));
        }
        let mut resolved = std::collections::HashMap::new();
        for p in &self.params {
            let value = match args.get(&p.name) {
                Some(Value::Null) | None => match &p.default {
                    Some(d) => d.clone(),
                    None if p.required => {
                        let what = format!(
                            "is required ({}{})",
                            p.ty.as_str(),
                            p.description
                                .as_deref()
                                .map(|d| format!(": {d}"))
                                .unwrap_or_default()
                        );
                        return Err(ArgumentError::new(&p.name, what));
                    }
                    None => Value::Null,
                },
                Some(v) => {
                    p.check(v)?;
                    v.clone()
                }
            };
            resolved.insert(p.name.as_str(), SqlValue::from_json(&value, p.ty));
        }
        Ok(self
            .statement
            .names
            .iter()
            .map(|n| {
                resolved
                    .get(n.as_str())
                    .cloned()
                    .unwrap_or(SqlValue::Null(ParamType::String))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
