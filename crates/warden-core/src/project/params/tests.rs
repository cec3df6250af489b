use std::path::Path;

use serde_json::{Map, Value, json};

use crate::exec::SqlValue;
use crate::project::{ParamType, Tool, load_str};

fn tool() -> Tool {
    let yaml = "version: 1\nname: t\ndata:\n  sqlite: d.db\ntools:\n  - name: t\n    description: d\n    access: read\n    params:\n      - { name: q, type: string, min_length: 2, max_length: 5, pattern: '^[a-z]+$' }\n      - { name: n, type: integer, minimum: 1, maximum: 10, default: 3 }\n      - { name: x, type: number }\n      - { name: b, type: boolean }\n      - { name: tier, type: string, enum: [low, high] }\n      - { name: secret, type: string, sensitive: true, enum: [a] }\n      - { name: must, type: integer, required: true }\n    sql: SELECT :must, :q, :n, :x, :b, :tier, :secret, :n\n";
    let mut p = load_str(yaml, Path::new("p.yaml"), |_| None).unwrap();
    p.tools.remove(0)
}

fn args(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn arguments_bind_in_statement_order_with_defaults_and_typed_nulls() {
    let t = tool();
    let bound = t
        .bind_arguments(Some(&args(json!({"must": 7, "x": 1.5, "b": true}))))
        .unwrap();
    assert_eq!(
        bound,
        vec![
            SqlValue::Int(7),
            SqlValue::Null(ParamType::String),
            SqlValue::Int(3),
            SqlValue::Float(1.5),
            SqlValue::Bool(true),
            SqlValue::Null(ParamType::String),
            SqlValue::Null(ParamType::String),
        ]
    );
    // An explicit null means "not given": the default applies.
    let bound = t
        .bind_arguments(Some(&args(json!({"must": 1, "n": null}))))
        .unwrap();
    assert_eq!(bound[2], SqlValue::Int(3));
}

#[test]
fn each_bad_argument_is_named() {
    let t = tool();
    let cases = [
        (json!({}), "must", "is required (integer)"),
        (json!({"must": "7"}), "must", "expected integer, got string"),
        (json!({"must": 7.5}), "must", "expected integer, got number"),
        (json!({"must": 1, "n": 0}), "n", "must be at least 1, got 0"),
        (
            json!({"must": 1, "n": 11}),
            "n",
            "must be at most 10, got 11",
        ),
        (
            json!({"must": 1, "q": "a"}),
            "q",
            "must be at least 2 characters, got 1",
        ),
        (
            json!({"must": 1, "q": "abcdef"}),
            "q",
            "must be at most 5 characters, got 6",
        ),
        (
            json!({"must": 1, "q": "AB"}),
            "q",
            "does not match the pattern ^[a-z]+$",
        ),
        (
            json!({"must": 1, "x": "1"}),
            "x",
            "expected number, got string",
        ),
        (
            json!({"must": 1, "b": 1}),
            "b",
            "expected boolean, got integer",
        ),
        (
            json!({"must": 1, "tier": "mid"}),
            "tier",
            "\"mid\" is not one of \"low\", \"high\"",
        ),
        (
            json!({"must": 1, "q": ["a"]}),
            "q",
            "expected string, got array",
        ),
        (
            json!({"must": 1, "org_id": 9}),
            "org_id",
            "unknown parameter; this tool takes: q, n, x, b, tier, secret, must",
        ),
    ];
    for (given, param, want) in cases {
        let err = t.bind_arguments(Some(&args(given.clone()))).unwrap_err();
        assert_eq!(err.param, param, "{given}");
        assert!(err.message.contains(want), "{given}: {}", err.message);
    }
}

#[test]
fn sensitive_values_are_never_echoed() {
    let t = tool();
    let err = t
        .bind_arguments(Some(&args(json!({"must": 1, "secret": "hunter2"}))))
        .unwrap_err();
    assert_eq!(err.param, "secret");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn the_input_schema_mirrors_the_params() {
    let t = tool();
    let s = &t.input_schema;
    assert_eq!(s["type"], "object");
    assert_eq!(s["required"], json!(["must"]));
    assert_eq!(
        s["properties"]["q"],
        json!({"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"})
    );
    assert_eq!(
        s["properties"]["n"],
        json!({"type": "integer", "minimum": 1, "maximum": 10, "default": 3})
    );
    assert_eq!(s["properties"]["tier"]["enum"], json!(["low", "high"]));
}
