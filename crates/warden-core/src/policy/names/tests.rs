use super::*;

fn problems(source: &str, scope: &Scope) -> Vec<NameProblem> {
    Condition::compile(source).unwrap().unknown_names(scope)
}

fn var(name: &str) -> NameProblem {
    NameProblem::UnknownVariable { name: name.into() }
}

fn field(variable: &str, field: &str) -> NameProblem {
    NameProblem::UnknownField {
        variable: variable.into(),
        field: field.into(),
    }
}

fn input(args: &[&str]) -> Scope {
    Scope::new(
        Stage::Input,
        true,
        args.iter().map(|s| s.to_string()).collect(),
    )
}

#[test]
fn known_names_pass() {
    let scope = Scope::new(Stage::Output, true, vec!["limit".into()]);
    for ok in [
        "args.limit > 50 && user.role != 'admin'",
        "user.attributes.department != 'risk'",
        "has(user.email) && user.email.endsWith('@acme.example')",
        "'mcp:read' in user.scopes",
        "tool.annotations.readOnlyHint && tool.name == 'x' && tool.kind == 'tool'",
        "request.source == 'stdio' && request.time != '' && request.client == request.method",
        "size(response.rows) > 500 || response.anything.at.all == 1",
        "response.rows.exists(r, r.risk_score > 90)",
        "response.rows.all(r, r.tier in ['low', 'high'])",
        "type(args.limit) == int || type(args.limit) == uint",
        "[1, 2].map(x, x * 2).size() == 2 && {'a': 1}.a == 1",
    ] {
        assert_eq!(problems(ok, &scope), vec![], "{ok}");
    }
}

#[test]
fn unknown_variables_and_fields_are_found_each_once() {
    let scope = input(&["limit"]);
    assert_eq!(
        problems("user.rol == 'admin'", &scope),
        vec![field("user", "rol")]
    );
    assert_eq!(
        problems(
            "usr.role == 'a' || usr.role == 'b' || tool.nme == 'x'",
            &scope
        ),
        vec![var("usr"), field("tool", "nme")]
    );
    assert_eq!(
        problems("request.sorce == 'http'", &scope),
        vec![field("request", "sorce")]
    );
    // Input rules have no `response`.
    assert_eq!(
        problems("size(response.rows) > 1", &scope),
        vec![var("response")]
    );
    // A fixed field under has() is still a mistake: it can never be there.
    assert_eq!(
        problems("has(user.rol)", &scope),
        vec![field("user", "rol")]
    );
    // Inside a comprehension, outer names are still checked; the bound name is not.
    assert_eq!(
        problems("[1].exists(x, x > 0 && user.rol == 'a')", &scope),
        vec![field("user", "rol")]
    );
    // The bound name does not leak out of its comprehension.
    assert_eq!(
        problems("[1].exists(x, x > 0) && x == 1", &scope),
        vec![var("x")]
    );
}

#[test]
fn arguments_are_the_declared_ones_unless_tested_for() {
    let scope = input(&["limit", "tier"]);
    assert_eq!(
        problems("args.limt > 5", &scope),
        vec![field("args", "limt")]
    );
    assert_eq!(problems("has(args.region)", &scope), vec![]);
    assert_eq!(
        problems("has(args.region) && args.region == 'eu'", &scope),
        vec![]
    );
    assert_eq!(
        problems("args.region == 'eu'", &scope),
        vec![field("args", "region")]
    );
}

#[test]
fn without_a_signed_in_user_user_is_unknown() {
    let scope = Scope::new(Stage::Input, false, vec![]);
    assert_eq!(problems("user.role != 'admin'", &scope), vec![var("user")]);
    assert_eq!(problems("tool.name == 'x'", &scope), vec![]);
}

/// The fields listed here are the ones the pipeline really puts in the context.
#[test]
fn fixed_fields_match_what_the_pipeline_builds() {
    use crate::identity::{Principal, Role, Scopes};
    let project = crate::project::load_str(
        "version: 1\nname: t\ndata:\n  sqlite: d.db\ntools:\n  - name: t\n    description: d\n    access: read\n    sql: SELECT 1\n",
        std::path::Path::new("p.yaml"),
        |_| None,
    )
    .unwrap();
    let caller = Principal {
        user_id: "u".into(),
        email: "u@x.example".into(),
        org: "acme".into(),
        role: Role::Member,
        scopes: Scopes::READ_WRITE,
        method: "api_key",
        credential: "k".into(),
    };
    let vars = crate::pipeline::policy_variables(
        &project.tools[0],
        None,
        Some(&caller),
        crate::pipeline::Source::Http,
    );
    let keys =
        |name: &str| -> Vec<String> { vars[name].as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys("user"), USER_FIELDS);
    assert_eq!(keys("tool"), TOOL_FIELDS);
    assert_eq!(keys("request"), REQUEST_FIELDS);
    let mut names: Vec<&str> = vars.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut scope = Scope::new(Stage::Input, true, vec![]).names();
    scope.sort_unstable();
    assert_eq!(names, scope);
}
