use serde_json::{Map, Value, json};

use super::*;

fn vars(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn set(input: Vec<InputRule>, output: Vec<OutputRule>, sensitive: &[&str]) -> PolicySet {
    PolicySet {
        input,
        output,
        sensitive: sensitive.iter().map(|s| s.to_string()).collect(),
        version: version_of("test"),
    }
}

fn input(name: &str, cond: &str) -> InputRule {
    InputRule {
        name: name.into(),
        condition: Condition::compile(cond).unwrap(),
        reason: format!("{name} says no"),
    }
}

fn output(name: &str, cond: Option<&str>, action: OutputAction) -> OutputRule {
    OutputRule {
        name: name.into(),
        condition: cond.map(|c| Condition::compile(c).unwrap()),
        action,
        reason: format!("{name} says no"),
    }
}

#[test]
fn input_rules_deny_with_reason_and_fail_closed() {
    let p = set(
        vec![input(
            "big-limit",
            "args.limit > 50 && user.role != 'admin'",
        )],
        vec![],
        &[],
    );
    let guest = json!({"user": {"role": "guest", "email": "g@x"}, "args": {"limit": 100}});
    let d = p.check_input(&vars(guest)).unwrap_err();
    assert_eq!(d.rule, "big-limit");
    assert_eq!(d.error, None);
    assert!(
        p.check_input(&vars(
            json!({"user": {"role": "admin"}, "args": {"limit": 100}})
        ))
        .is_ok()
    );
    assert!(
        p.check_input(&vars(
            json!({"user": {"role": "guest"}, "args": {"limit": 5}})
        ))
        .is_ok()
    );

    // A deny rule over an attribute some users lack denies them: never "condition false".
    let domain = set(
        vec![input(
            "outside-domain",
            "!user.email.endsWith('@acme.example')",
        )],
        vec![],
        &[],
    );
    let no_email = domain
        .check_input(&vars(json!({"user": {"role": "member"}, "args": {}})))
        .unwrap_err();
    assert!(no_email.error.is_some(), "{no_email:?}");
    assert!(
        no_email
            .reason
            .starts_with("policy error in rule 'outside-domain'"),
        "{}",
        no_email.reason
    );
    assert!(
        domain
            .check_input(&vars(
                json!({"user": {"email": "a@acme.example"}, "args": {}})
            ))
            .is_ok()
    );
    assert!(
        domain
            .check_input(&vars(
                json!({"user": {"email": "a@evil.example"}, "args": {}})
            ))
            .is_err()
    );

    // A type error, and a non-boolean result, deny too.
    for cond in ["args.limit + 'x' > 1", "args.limit"] {
        let p = set(vec![input("bad", cond)], vec![], &[]);
        let d = p
            .check_input(&vars(json!({"args": {"limit": 3}})))
            .unwrap_err();
        assert!(d.error.is_some(), "{cond}");
    }
}

#[test]
fn output_actions_flat_nested_arrays_and_absent() {
    let response = json!({
        "rows": [
            {"id": 1, "owner_email": "a@x", "spend": 10, "contact": {"phone": "123", "name": "A"}},
            {"id": 2, "owner_email": null, "spend": 20, "contact": {"name": "B"}}
        ],
        "owner_email": "top@x"
    });
    let p = set(
        vec![],
        vec![
            output(
                "hide-spend",
                None,
                OutputAction::FilterFields(vec!["spend".into()]),
            ),
            output(
                "mask-phone",
                None,
                OutputAction::MaskFields(vec!["contact.phone".into(), "absent.field".into()]),
            ),
            output("no-sensitive", None, OutputAction::FilterSensitive),
        ],
        &["owner_email"],
    );
    let mut r = response.clone();
    let report = p.apply_output(&mut vars(json!({})), &mut r).unwrap();
    assert_eq!(
        r,
        json!({"rows": [
            {"id": 1, "contact": {"phone": MASK, "name": "A"}},
            {"id": 2, "contact": {"name": "B"}}
        ]})
    );
    assert_eq!(report.fired, ["hide-spend", "mask-phone", "no-sensitive"]);
    assert_eq!(
        report.filtered.iter().collect::<Vec<_>>(),
        ["owner_email", "spend"]
    );
    assert_eq!(
        report.masked.iter().collect::<Vec<_>>(),
        ["contact.phone"],
        "absent fields are not reported"
    );
}

#[test]
fn conditional_output_rules_and_deny() {
    let p = set(
        vec![],
        vec![
            output(
                "guests-no-spend",
                Some("user.role == 'guest'"),
                OutputAction::FilterFields(vec!["spend".into()]),
            ),
            output(
                "too-many",
                Some("size(response.rows) > 1"),
                OutputAction::Deny,
            ),
        ],
        &[],
    );
    let mut admin = vars(json!({"user": {"role": "admin"}}));
    let mut one = json!({"rows": [{"spend": 1}]});
    assert!(p.apply_output(&mut admin, &mut one).is_ok());
    assert_eq!(one, json!({"rows": [{"spend": 1}]}));
    let mut guest = vars(json!({"user": {"role": "guest"}}));
    let mut one = json!({"rows": [{"spend": 1}]});
    p.apply_output(&mut guest, &mut one).unwrap();
    assert_eq!(one, json!({"rows": [{}]}));
    let mut two = json!({"rows": [{}, {}]});
    assert_eq!(
        p.apply_output(&mut admin, &mut two).unwrap_err().rule,
        "too-many"
    );
    // An output condition that errors denies.
    let broken = set(
        vec![],
        vec![output(
            "broken",
            Some("response.nope.deeper == 1"),
            OutputAction::Deny,
        )],
        &[],
    );
    let d = broken
        .apply_output(&mut admin, &mut json!({"rows": []}))
        .unwrap_err();
    assert!(d.error.is_some());
}

#[test]
fn reads_detects_response_use() {
    assert!(
        Condition::compile("size(response.rows) > 0")
            .unwrap()
            .reads("response")
    );
    assert!(
        !Condition::compile("args.limit > 0")
            .unwrap()
            .reads("response")
    );
    assert!(Condition::compile("args.limit >").is_err());
}

#[test]
fn each_stage_converts_only_what_its_rules_read_and_every_rule_still_sees_its_variables() {
    // Two rules reading different variables: each must see its own whatever the other
    // reads, and output rules get the variables they read, not the input rules' set.
    let p = set(
        vec![
            input("by-tool", "tool.name == 'drop_all'"),
            input(
                "by-source",
                "request.source == 'stdio' && user.role != 'admin'",
            ),
        ],
        vec![output(
            "mask-for-guests",
            Some("user.role == 'guest'"),
            OutputAction::MaskFields(vec!["email".into()]),
        )],
        &[],
    );
    let call = |tool: &str, source: &str, role: &str| {
        vars(json!({
            "tool": {"name": tool},
            "request": {"source": source},
            "user": {"role": role},
            "unread": {"huge": u64::MAX, "nested": [[[{"x": null}]]]},
        }))
    };
    assert_eq!(
        p.check_input(&call("drop_all", "http", "admin"))
            .unwrap_err()
            .rule,
        "by-tool"
    );
    assert_eq!(
        p.check_input(&call("search", "stdio", "member"))
            .unwrap_err()
            .rule,
        "by-source"
    );
    p.check_input(&call("search", "http", "member")).unwrap();
    let mut out = json!({"rows": [{"email": "a@b"}]});
    let report = p
        .apply_output(&mut call("search", "http", "guest"), &mut out)
        .unwrap();
    assert_eq!(report.fired, ["mask-for-guests"]);
    assert_eq!(out["rows"][0]["email"], MASK);
    // A rule naming a variable the call does not have still fails closed.
    let missing = set(vec![input("needs-org", "org.plan == 'free'")], vec![], &[]);
    let d = missing
        .check_input(&call("search", "http", "member"))
        .unwrap_err();
    assert_eq!(d.rule, "needs-org");
    assert!(d.error.is_some());
}

#[test]
fn json_reaches_cel_as_the_serde_mapping_would_give_it() {
    // Every JSON kind, compared against cel's own serde conversion of the same value.
    let value = json!({
        "null": null, "yes": true, "pos": 7, "neg": -3, "big": u64::MAX, "frac": 2.5,
        "text": "héllo", "list": [1, "two", [3.0], {"k": null}], "map": {"a": {"b": [false]}},
    });
    let ours = to_cel(&value);
    let theirs = cel::to_value(&value).unwrap();
    assert_eq!(ours, theirs);
    // And rules see the values with their types: uint against int literals, nested access.
    let p = set(
        vec![
            input("pos", "args.pos == 7 && args.pos > 6"),
            input("neg", "args.neg < 0"),
            input("deep", "args.map.a.b[0] == false && args.list[2][0] == 3.0"),
            input("size", "size(args.list) == 4 && args.text == 'héllo'"),
        ],
        vec![],
        &[],
    );
    for rule in ["pos", "neg", "deep", "size"] {
        let only = set(
            p.input
                .iter()
                .filter(|r| r.name == rule)
                .map(|r| input(&r.name, &r.condition.source))
                .collect(),
            vec![],
            &[],
        );
        let d = only.check_input(&vars(json!({"args": value}))).unwrap_err();
        assert_eq!((d.rule.as_str(), d.error), (rule, None));
    }
}
