use std::path::Path;

use super::load_str;
use super::server::split_origin;
use crate::project::{Access, DataLocation, Returns};

const BASE: &str = "version: 1\nname: t\ndata:\n  sqlite: d.db\n";

fn errors(yaml: &str) -> Vec<String> {
    match load_str(yaml, Path::new("p.yaml"), |n| {
        (n == "PW").then(|| "s3cret".to_string())
    }) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_valid_project_loads_with_defaults() {
    let yaml = format!(
        "{BASE}tools:\n  - name: t\n    description: d\n    access: write\n    returns: row\n    params:\n      - {{ name: a, type: integer, default: 3, minimum: 0 }}\n    sql: UPDATE x SET a = :a RETURNING a\n"
    );
    let p = load_str(&yaml, Path::new("dir/p.yaml"), |_| None).unwrap();
    assert_eq!(p.server.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(p.server.max_body_bytes, 1024 * 1024);
    assert_eq!(
        p.server.metrics_bind, None,
        "metrics are off unless asked for"
    );
    assert!(
        matches!(&p.data.location, DataLocation::Sqlite(path) if path == Path::new("dir/d.db"))
    );
    let t = p.tool("t").unwrap();
    assert_eq!(t.access, Access::Write);
    assert_eq!(t.returns, Returns::Row);
    assert_eq!(t.statement.text, "UPDATE x SET a = ?1 RETURNING a");
    assert_eq!(t.input_schema["properties"]["a"]["default"], 3);
    assert_eq!(t.input_schema["additionalProperties"], false);
}

#[test]
fn env_is_expanded_in_data_but_not_in_sql() {
    let yaml = "version: 1\nname: t\ndata:\n  postgres: postgres://u:${PW}@h/db\ntools:\n  - name: t\n    description: d\n    access: read\n    sql: SELECT '${PW}'\n";
    let p = load_str(yaml, Path::new("p.yaml"), |n| {
        (n == "PW").then(|| "s3cret".to_string())
    })
    .unwrap();
    assert!(
        matches!(&p.data.location, DataLocation::Postgres(u) if u == "postgres://u:s3cret@h/db")
    );
    assert_eq!(p.tools[0].statement.text, "SELECT '${PW}'");
    // The URL holds a password: Debug must not show it.
    assert!(!format!("{:?}", p.data).contains("s3cret"));
}

#[test]
fn every_problem_is_reported_with_line_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "version: 2\nname: t\ndata:\n  sqlite: d.db\n",
            "p.yaml:1:10: version: unsupported version 2",
        ),
        (
            "version: 1\nname: t\ndata: {}\n",
            "data: give exactly one of `sqlite: FILE` or `postgres: URL`",
        ),
        (
            "version: 1\nname: t\ndata:\n  postgres: ${NOPE}\n",
            "p.yaml:4:13: data.postgres: environment variable NOPE is not set",
        ),
        (
            "version: 1\nname: t\ndata:\n  postgres: mysql://x\n",
            "data.postgres: must be a postgres:// or postgresql:// URL",
        ),
        (
            "version: 1\nname: t\ndata:\n  sqlite: d.db\n  query_timeout_ms: 0\n",
            "data.query_timeout_ms: must be between 1 and 600000, got 0",
        ),
        (
            "version: 1\nname: t\nserver:\n  bind: localhost\ndata:\n  sqlite: d.db\n",
            "server.bind: 'localhost' is not host:port",
        ),
        (
            "version: 1\nname: t\nserver:\n  allowed_origins: ['*']\ndata:\n  sqlite: d.db\n",
            "server.allowed_origins[0]: '*' must be an origin",
        ),
        (
            "version: 1\nname: t\nserver:\n  allowed_hosts: ['http://x']\ndata:\n  sqlite: d.db\n",
            "server.allowed_hosts[0]: 'http://x' must be a bare host name",
        ),
        (
            "version: 1\nname: t\nserver:\n  metrics:\n    bind: localhost:9090\ndata:\n  sqlite: d.db\n",
            "p.yaml:5:11: server.metrics.bind: 'localhost:9090' is not host:port with an IP address",
        ),
        (
            "version: 1\nname: t\nserver:\n  bind: 127.0.0.1:8080\n  metrics:\n    bind: 127.0.0.1:8080\ndata:\n  sqlite: d.db\n",
            "server.metrics.bind: '127.0.0.1:8080' is the MCP listener's address",
        ),
        (
            "version: 1\nname: t\nserver:\n  metrics:\n    port: 9090\ndata:\n  sqlite: d.db\n",
            "p.yaml:5:5: unknown field `port`; the fields here are bind",
        ),
        (
            "version: 1\nname: t\nserver:\n  metrics: {}\ndata:\n  sqlite: d.db\n",
            "bind",
        ),
    ];
    for (yaml, want) in cases {
        let errs = errors(yaml);
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "want {want:?} in {errs:?}"
        );
    }
}

#[test]
fn tool_problems_are_all_collected() {
    let yaml = format!(
        "{BASE}tools:\n  - name: bad name\n    description: ''\n    access: admin\n    params:\n      - {{ name: 1x, type: string }}\n      - {{ name: n, type: integer, min_length: 2 }}\n      - {{ name: s, type: string, pattern: '(' }}\n      - {{ name: e, type: integer, enum: [1, two] }}\n      - {{ name: r, type: integer, required: true, default: 1 }}\n      - {{ name: d, type: integer, default: 500, maximum: 10 }}\n    sql: SELECT ?\n  - name: dup\n    description: d\n    access: read\n    sql: SELECT 1\n  - name: dup\n    description: d\n    access: read\n    sql: SELECT 1; SELECT 2\n"
    );
    let errs = errors(&yaml).join("\n");
    for want in [
        "tools[0].name: 'bad name' is not a valid tool name",
        "tools[0].description: must not be empty",
        "tools[0].access: 'admin' is not an access kind",
        "tools[0].params[0].name: '1x' is not a valid parameter name",
        "tools[0].params[1].min_length: applies only to string parameters, not integer",
        "tools[0].params[2].pattern: invalid regular expression",
        "tools[0].params[3].enum: value \"two\" is not a integer",
        "tools[0].params[4].default: a required parameter cannot have a default",
        "tools[0].params[5].default: the default fails its own rules: must be at most 10",
        "tools[0].sql: `?` is a positional placeholder",
        "tools[2].name: duplicate tool name 'dup'",
        "tools[2].sql: only one statement is allowed per tool",
    ] {
        assert!(errs.contains(want), "want {want:?} in:\n{errs}");
    }
}

#[test]
fn placeholders_must_match_declared_params() {
    let yaml = format!(
        "{BASE}tools:\n  - name: t\n    description: d\n    access: read\n    params:\n      - {{ name: used, type: string }}\n      - {{ name: unused, type: string }}\n    sql: SELECT :used, :undeclared\n"
    );
    let errs = errors(&yaml).join("\n");
    assert!(
        errs.contains("uses :undeclared, which is not declared in params"),
        "{errs}"
    );
    assert!(
        errs.contains("never uses the declared parameter :unused"),
        "{errs}"
    );
}

#[test]
fn resources_and_prompts_are_checked() {
    let yaml = format!(
        "{BASE}resources:\n  - uri_template: 'v://{{id}}'\n    name: v\n    sql: SELECT :other\n  - uri: 'v://a'\n    uri_template: 'v://{{b}}'\n    name: both\n    sql: SELECT 1\nprompts:\n  - name: p\n    arguments: [{{ name: a }}]\n    template: '{{{{ a }}}} {{{{ b }}}}'\n  - name: q\n    messages:\n      - resource: 'v://missing/x'\n  - name: r\n    template: '{{% if %}}'\n"
    );
    let errs = errors(&yaml).join("\n");
    for want in [
        "resources[0].sql: uses :other, which is not a variable of the URI",
        "resources[1]: give exactly one of `uri` or `uri_template`",
        "prompts[0].template: uses {{ b }}, which is not a declared argument",
        "prompts[1].messages[0].resource: 'v://missing/x' is not one of this project's resources",
        "prompts[2].template: template error",
    ] {
        assert!(errs.contains(want), "want {want:?} in:\n{errs}");
    }
}

#[test]
fn yaml_errors_and_unknown_fields_have_positions() {
    let errs = errors("version: 1\nname: t\ndata:\n  sqlite: d.db\n  sqlit: x\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("p.yaml:5:"), "{errs:?}");
    assert!(errs[0].contains("sqlit"), "{errs:?}");
    let errs = errors("version: 1\nname: [unclosed\n");
    assert!(errs[0].starts_with("p.yaml:"), "{errs:?}");
    assert!(
        !errs[0].contains("error: line"),
        "position repeated: {errs:?}"
    );
}

#[test]
fn origins_are_split_safely() {
    assert_eq!(
        split_origin("https://A.example.com:8443/x"),
        Some(("https://a.example.com:8443".into(), "a.example.com".into()))
    );
    assert_eq!(
        split_origin("http://[::1]:8080"),
        Some(("http://[::1]:8080".into(), "[::1]".into()))
    );
    assert_eq!(split_origin("http://user@evil.example"), None);
    assert_eq!(split_origin("ftp://x"), None);
}

#[test]
fn auth_defaults_to_oauth_and_none_is_loopback_only() {
    let p = load_str(BASE, Path::new("dir/p.yaml"), |_| None).unwrap();
    assert_eq!(p.auth.mode, crate::project::AuthMode::OAuth);
    assert!(
        matches!(&p.auth.state, DataLocation::Sqlite(s) if s == Path::new("dir/.warden/state.db"))
    );
    assert_eq!(p.auth.access_ttl.as_secs(), 15 * 60);

    let none = format!("{BASE}auth: none\n");
    assert_eq!(
        load_str(&none, Path::new("p.yaml"), |_| None)
            .unwrap()
            .auth
            .mode,
        crate::project::AuthMode::None
    );

    let exposed =
        "version: 1\nname: t\nauth: none\nserver:\n  bind: 0.0.0.0:8080\ndata:\n  sqlite: d.db\n";
    let errs = errors(exposed).join("\n");
    assert!(
        errs.contains("server.bind: `auth: none` serves without authentication"),
        "{errs}"
    );

    let errs = errors(&format!("{BASE}auth: basic\n")).join("\n");
    assert!(
        errs.contains("auth: 'basic' is not an authentication mode"),
        "{errs}"
    );
    let errs = errors(&format!("{BASE}tokens:\n  access_minutes: 0\n")).join("\n");
    assert!(
        errs.contains("tokens.access_minutes: must be between 1 and 1440"),
        "{errs}"
    );
}

const POLICED: &str = "tools:\n  - name: search\n    description: d\n    access: read\n    params:\n      - { name: limit, type: integer }\n    sql: SELECT :limit\n    policies:\n      input:\n        - name: bulk\n          condition: args.limit > 50 && user.rol != 'admin'\n          reason: too many\n      output:\n        - name: mask\n          condition: user.role == 'guest' && args.limt > 1\n          action: mask_fields\n          fields: [x]\n";

#[test]
fn rules_name_only_what_their_stage_provides() {
    let errs = errors(&format!("{BASE}{POLICED}"));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with("p.yaml:15:22: tools[0].policies.input[0].condition: rule 'bulk' reads `user.rol`, but `user` has no field `rol`; did you mean `role`? its fields are id, email, role, org, scopes and attributes"),
        "{errs:#?}"
    );
    assert!(
        errs[1].contains("tools[0].policies.output[0].condition: rule 'mask' reads `args.limt`, but tool 'search' has no parameter `limt`; did you mean `limit`? its parameters are limit"),
        "{errs:#?}"
    );

    // Project-wide rules see every tool, resource and prompt: an argument one of them
    // declares is fine (the rule narrows with `tool.name` or `has()`); one nobody declares
    // is not, nor is an unknown variable.
    let global = format!(
        "{BASE}policies:\n  input:\n    - name: a\n      condition: tool.kind == 'resource' && args.vendor_id == 'V-002'\n      reason: r\n    - name: b\n      condition: has(args.region) && args.region == 'eu'\n      reason: r\n    - name: c\n      condition: args.nowhere == 1 || requst.source == 'http'\n      reason: r\nresources:\n  - uri_template: 'v://{{vendor_id}}'\n    name: v\n    sql: SELECT :vendor_id\n"
    );
    let errs = errors(&global);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].contains("policies.input[2].condition: rule 'c' reads `args.nowhere`, but no tool, resource or prompt has an argument `nowhere`"), "{errs:#?}");
    assert!(errs[1].contains("rule 'c' reads `requst`, which is not a variable here; did you mean `request`? input rules can read user, args, tool and request"), "{errs:#?}");
}

#[test]
fn without_sign_in_a_rule_cannot_read_user() {
    let errs = errors(&format!(
        "{BASE}auth: none\n{}",
        POLICED
            .replace("user.rol", "user.role")
            .replace("args.limt", "args.limit")
    ));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    for e in &errs {
        assert!(
            e.contains("reads `user`, but with `auth: none` nobody signs in, so there is no user"),
            "{errs:#?}"
        );
        assert!(e.contains("use `auth: oauth`"), "{errs:#?}");
    }
    // A rule that reads only what exists without sign-in is fine.
    let ok = format!(
        "{BASE}auth: none\n{}",
        POLICED
            .replace("user.rol != 'admin'", "request.source == 'stdio'")
            .replace(
                "user.role == 'guest' && args.limt > 1",
                "tool.name == 'search'"
            )
    );
    assert_eq!(errors(&ok), Vec::<String>::new());
}

#[test]
fn an_unknown_type_is_one_problem() {
    let errs = errors(&format!(
        "{BASE}tools:\n  - name: t\n    description: d\n    access: read\n    params:\n      - name: limit\n        type: int\n        minimum: 1\n        maximum: 100\n        default: 20\n    sql: SELECT :limit\n"
    ));
    assert_eq!(
        errs,
        vec![
            "p.yaml:11:15: tools[0].params[0].type: unknown type 'int'; did you mean `integer`? use string, integer, number, boolean, object or array"
        ]
    );
}

#[test]
fn a_tool_with_a_problem_still_has_its_rules_checked() {
    let errs = errors(&format!(
        "{BASE}{}",
        POLICED.replace("access: read", "access: reed")
    ));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs[0].contains("'reed' is not an access kind"),
        "{errs:#?}"
    );
}

#[test]
fn server_metrics_bind_turns_metrics_on() {
    let yaml = "version: 1\nname: t\nserver:\n  metrics:\n    bind: 127.0.0.1:9090\ndata:\n  sqlite: d.db\n";
    let p = load_str(yaml, Path::new("p.yaml"), |_| None).unwrap();
    assert_eq!(
        p.server.metrics_bind.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9090")
    );
    // Port 0 on both (tests): the system picks two different ports.
    let yaml = "version: 1\nname: t\nserver:\n  bind: 127.0.0.1:0\n  metrics: { bind: '127.0.0.1:0' }\ndata:\n  sqlite: d.db\n";
    assert!(load_str(yaml, Path::new("p.yaml"), |_| None).is_ok());
}

#[test]
fn server_limits_tls_hsts_and_sessions_are_checked() {
    let ok = |server: &str| {
        let yaml = format!("{BASE}server:\n{server}");
        load_str(&yaml, Path::new("dir/p.yaml"), |_| None)
    };
    let p = ok("  sessions: stateless\n  limits:\n    max_connections: 10\n    max_connections_per_address: 5\n    header_timeout_ms: 2000\n  hsts:\n    max_age: 600\n    include_subdomains: false\n  tls:\n    cert: c.pem\n    key: k.pem\n").unwrap();
    assert!(p.server.stateless);
    assert_eq!(p.server.limits.max_connections, 10);
    assert_eq!(p.server.limits.max_connections_per_address, 5);
    assert_eq!(p.server.limits.header_timeout.as_millis(), 2000);
    assert_eq!(p.server.hsts, "max-age=600");
    let tls = p.server.tls.unwrap();
    assert_eq!(tls.cert, Path::new("dir/c.pem"));
    let d = ok("").unwrap();
    assert!(!d.server.stateless);
    assert_eq!(d.server.hsts, "max-age=31536000; includeSubDomains");
    assert!(d.server.tls.is_none());

    let problems = errors(&format!(
        "{BASE}server:\n  sessions: sticky\n  limits:\n    max_connections: 4\n    max_connections_per_address: 8\n    header_timeout_ms: 5\n  hsts:\n    max_age: 60\n    preload: true\n  redirect_http: 0.0.0.0:80\n"
    ));
    for want in [
        "server.sessions",
        "server.limits.max_connections_per_address",
        "server.limits.header_timeout_ms",
        "server.hsts.preload",
        "server.redirect_http",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{want} in {problems:#?}"
        );
    }
    // Without sessions, no tool may ask the client anything mid-call.
    let problems = errors(&format!(
        "{BASE}server:\n  sessions: stateless\ntools:\n  - name: t\n    description: d\n    access: read\n    sql: SELECT :elicit_action AS a\n    elicit:\n      message: Sure?\n      schema:\n        type: object\n        properties: {{}}\n"
    ));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("tools[0].elicit") && p.contains("stateless")),
        "{problems:#?}"
    );
}

#[test]
fn abuse_limits_are_read_checked_and_misspellings_named() {
    let yaml = format!(
        "{BASE}server:\n  limits:\n    unauthenticated:\n      register: {{ burst: 5, per_minute: 2 }}\n    unused_clients: {{ per_address: 3, expire_after_seconds: 60 }}\n"
    );
    let p = load_str(&yaml, Path::new("p.yaml"), |_| None).unwrap();
    let l = p.server.abuse_limits;
    assert_eq!((l.register.burst, l.register.per_minute), (5, 2));
    assert_eq!(l.token, crate::project::AbuseLimits::default().token);
    assert_eq!(l.unused_clients.per_address, 3);
    assert_eq!(l.unused_clients.total, 10_000);
    assert_eq!(l.unused_clients.expire_after.as_secs(), 60);

    let problems = errors(&format!(
        "{BASE}server:\n  limits:\n    unauthenticated:\n      token: {{ burst: 0 }}\n      registr: {{ burst: 1 }}\n    unused_clients: {{ per_address: 50, total: 10 }}\n"
    ));
    for want in [
        "server.limits.unauthenticated.token.burst",
        "did you mean `register`?",
        "server.limits.unused_clients.per_address",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{want} in {problems:#?}"
        );
    }
}

#[test]
fn a_section_written_twice_is_named_with_what_to_do() {
    let errs = errors(
        "version: 1\nname: x\ndata:\n  sqlite: x.db\naudit:\n  retention_days: 3\naudit:\n  retention_days: 4\n",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("`audit` is written twice") && !errs[0].contains("DuplicateKeyPolicy"),
        "{errs:?}"
    );
}

#[test]
fn call_limits_are_read_and_bad_names_are_named() {
    let base = "version: 1\nname: x\ndata:\n  sqlite: x.db\ntools:\n  - name: t\n    description: d\n    access: read\n    sql: SELECT 1\n";
    let errs = errors(&format!(
        "{base}limits:\n  per_user: {{ burst: 0, per_minute: 10 }}\n  per_org: {{ burst: 5 }}\n  roles:\n    gest: {{ per_minute: 5 }}\n  tools:\n    tt: {{ per_minute: 5 }}\n"
    ));
    let all = errs.join("\n");
    assert!(all.contains("limits.per_user.burst"), "{all}");
    assert!(
        all.contains("limits.per_org.per_minute") && all.contains("is required"),
        "{all}"
    );
    assert!(all.contains("did you mean `guest`"), "{all}");
    assert!(
        all.contains("no tool is named `tt`") && all.contains("did you mean `t`"),
        "{all}"
    );
}

#[test]
fn identity_providers_load_with_presets_and_every_mistake_is_named() {
    let good = format!(
        "{BASE}login:\n  providers:\n    - name: corp\n      preset: keycloak\n      issuer: https://sso.acme.example/realms/acme\n      client_id: warden\n      client_secret: ${{PW}}\n      resync: true\n      map:\n        - when: \"'admins' in claims.groups\"\n          org: acme\n          role: admin\n    - name: gh\n      preset: github\n      client_id: Iv1.abc\n      client_secret: x\n      map:\n        - when: \"'acme/platform' in claims.teams\"\n          org: acme\n          role: member\n"
    );
    let p = load_str(&good, Path::new("dir/p.yaml"), |n| {
        (n == "PW").then(|| "s3cret".into())
    })
    .unwrap();
    let s = &p.auth.sign_in;
    assert!(s.password, "password sign-in stays on unless switched off");
    assert_eq!(s.secrets_key, Path::new("dir/.warden/sso.key"));
    let corp = s.provider("corp").unwrap();
    assert_eq!(corp.client_secret, "s3cret", "${{VAR}} is expanded");
    assert_eq!(corp.label, "Keycloak");
    assert!(
        corp.scopes.contains(&"offline_access".to_string()),
        "resync asks for a refresh token: {:?}",
        corp.scopes
    );
    assert!(
        !corp.provision && !corp.link_verified_email,
        "safe defaults"
    );
    assert!(
        !format!("{corp:?}").contains("s3cret"),
        "the secret stays out of Debug"
    );
    let gh = s.provider("gh").unwrap();
    assert_eq!(
        gh.kind,
        crate::project::ProviderKind::GitHub {
            api_url: "https://api.github.com".into(),
            web_url: "https://github.com".into()
        }
    );
    assert_eq!(gh.scopes, ["read:user", "user:email", "read:org"]);

    let provider = |body: &str| {
        format!(
            "{BASE}login:\n  providers:\n    - name: corp\n      client_id: w\n      client_secret: s\n{body}"
        )
    };
    let rule = "      map:\n        - { when: 'true', org: acme, role: member }\n";
    for (body, expected) in [
        (format!("      issuer: https://x.example\n      preset: okt\n{rule}"), "login.providers[0].preset: 'okt' is not a preset"),
        (format!("      preset: okta\n{rule}"), "login.providers[0].issuer: is missing; give https://<your-org>.okta.com/oauth2/default"),
        (format!("      preset: microsoft\n      issuer: https://login.microsoftonline.com/common/v2.0\n{rule}"), "a multi-tenant issuer"),
        (format!("      issuer: http://sso.acme.example\n{rule}"), "must be an https URL (http only to a loopback host)"),
        (format!("      preset: github\n      issuer: https://github.com\n{rule}"), "GitHub is not an OpenID provider"),
        ("      issuer: https://x.example\n".to_string(), "login.providers[0].map: no `map` rules"),
        ("      issuer: https://x.example\n      map:\n        - { when: 'true', org: acme, role: owner }\n".to_string(), "login.providers[0].map[0].role:"),
        ("      issuer: https://x.example\n      map:\n        - { when: \"user.role == 'admin'\", org: acme, role: member }\n".to_string(), "names `user`; a mapping rule sees only `claims`"),
        ("      issuer: https://x.example\n      map:\n        - { when: 'claims.groups +', org: acme, role: member }\n".to_string(), "map[0].when: is not valid CEL"),
        (format!("      issuer: https://x.example\n      scopes: [email]\n{rule}"), "needs the `openid` scope"),
    ] {
        let errs = errors(&provider(&body)).join("\n");
        assert!(errs.contains(expected), "expected {expected:?} in:\n{errs}");
    }
    let errs = errors(&format!("{BASE}login:\n  password: false\n")).join("\n");
    assert!(
        errs.contains(
            "login.password: with password sign-in off and no `providers`, nobody could sign in"
        ),
        "{errs}"
    );
    let twice = format!(
        "{BASE}login:\n  providers:\n    - {{ name: a, issuer: 'https://x.example', client_id: w, client_secret: s, map: [{{ when: 'true', org: o, role: member }}] }}\n    - {{ name: a, issuer: 'https://y.example', client_id: w, client_secret: s, map: [{{ when: 'true', org: o, role: member }}] }}\n"
    );
    assert!(
        errors(&twice)
            .join("\n")
            .contains("'a' names two providers")
    );
}

#[test]
fn questions_in_rounds_and_tasks_are_checked() {
    let tool = |extra: &str| {
        format!(
            "{BASE}tools:\n  - name: t\n    description: d\n    access: read\n    sql: SELECT :answers AS a\n{extra}"
        )
    };
    // A list of questions in two rounds, roots, a task asked during: all well.
    let good = tool(
        "    elicit:\n      - { key: a, message: 'A for {{ x }}?', schema: { type: object } }\n      - { key: b, round: 2, message: B?, schema: { type: object } }\n    roots: { key: r }\n    task: optional\n    ask: during\n",
    );
    let project = load_str(&good, Path::new("p.yaml"), |_| None).unwrap();
    let t = &project.tools[0];
    let keys: Vec<(&str, u32)> = t
        .questions
        .iter()
        .map(|q| (q.key.as_str(), q.round))
        .collect();
    assert_eq!(keys, [("a", 1), ("r", 1), ("b", 2)]);
    assert_eq!(t.task, Some(crate::project::TaskMode::Optional));
    assert!(!t.ask_before_task);
    for (extra, want) in [
        (
            "    elicit:\n      - { key: a, message: A?, schema: { type: object } }\n      - { key: a, message: B?, schema: { type: object } }\n",
            "two questions use the key 'a'",
        ),
        (
            "    elicit: { message: A?, schema: { type: object }, round: 2 }\n",
            "no question is asked in round 1",
        ),
        ("    elicit: []\n", "an empty list asks nothing"),
        (
            "    elicit: { message: '{{ x', schema: { type: object } }\n",
            "template error",
        ),
        ("    task: sometimes\n", "'sometimes' is not a task mode"),
        ("    ask: during\n", "only a tool with `task`"),
        (
            "    task: optional\n    ask: during\n",
            "this tool asks nothing",
        ),
        (
            "    task: optional\n    ask: later\n",
            "'later' is not a choice",
        ),
    ] {
        let problems = errors(&tool(extra));
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{want} in {problems:#?}"
        );
    }
    // A write asks nothing: its confirmation covers exactly what runs.
    let problems = errors(&format!(
        "{BASE}tools:\n  - name: t\n    description: d\n    access: write\n    sql: DELETE FROM x WHERE y = :elicit_action\n    elicit: {{ message: Sure?, schema: {{ type: object }} }}\n"
    ));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("a write tool cannot `elicit`")),
        "{problems:#?}"
    );
    // A write runs once confirmed, never as a task; nor does any tool with several instances.
    let problems = errors(&format!(
        "{BASE}tools:\n  - name: t\n    description: d\n    access: write\n    sql: DELETE FROM x\n    task: optional\n"
    ));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("tools[0].task") && p.contains("read tools")),
        "{problems:#?}"
    );
    let problems = errors(&format!(
        "{BASE}server:\n  sessions: stateless\ntools:\n  - name: t\n    description: d\n    access: read\n    sql: SELECT 1 AS a\n    task: optional\n"
    ));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("tools[0].task") && p.contains("stateless")),
        "{problems:#?}"
    );
}

#[test]
fn parameter_headers_are_checked() {
    let tool = |params: &str| {
        format!(
            "{BASE}tools:\n  - name: t\n    description: d\n    access: read\n    sql: SELECT :a AS a, :b AS b\n    params:\n{params}"
        )
    };
    let good = tool(
        "      - { name: a, type: string, header: Region }\n      - { name: b, type: integer, header: Shard-Id }\n",
    );
    let project = load_str(&good, Path::new("p.yaml"), |_| None).unwrap();
    let schema = &project.tools[0].input_schema;
    assert_eq!(schema["properties"]["a"]["x-mcp-header"], "Region");
    assert_eq!(schema["properties"]["b"]["x-mcp-header"], "Shard-Id");
    for (params, want) in [
        (
            "      - { name: a, type: string, header: 'Bad Name' }\n      - { name: b, type: string }\n",
            "cannot end a header name",
        ),
        (
            "      - { name: a, type: number, header: Amount }\n      - { name: b, type: string }\n",
            "not number",
        ),
        (
            "      - { name: a, type: string, header: Token, sensitive: true }\n      - { name: b, type: string }\n",
            "must not travel in an HTTP header",
        ),
        (
            "      - { name: a, type: string, header: Region }\n      - { name: b, type: string, header: region }\n",
            "already uses the header",
        ),
    ] {
        let problems = errors(&tool(params));
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{want} in {problems:#?}"
        );
    }
}

#[test]
fn an_own_input_schema_must_advertise_exactly_the_parameters() {
    let tool = |schema: &str| {
        format!(
            "{BASE}tools:\n  - name: t\n    description: d\n    access: read\n    sql: SELECT :a AS a, :b AS b\n    params:\n      - {{ name: a, type: string }}\n      - {{ name: b, type: object }}\n    input_schema: {schema}\n"
        )
    };
    let good = tool(
        "{ type: object, $defs: { x: { type: object } }, properties: { a: { type: string }, b: { $ref: '#/$defs/x' } }, if: { required: [a] }, then: { required: [b] } }",
    );
    let project = load_str(&good, Path::new("p.yaml"), |_| None).unwrap();
    let schema = &project.tools[0].input_schema;
    assert!(
        schema.contains_key("$defs") && schema.contains_key("if"),
        "{schema:?}"
    );
    for (schema, want) in [
        ("{ type: array }", "`type: object`"),
        (
            "{ type: object, properties: { a: { type: string } } }",
            "'b' is missing",
        ),
        (
            "{ type: object, properties: { a: { type: string }, b: { type: object }, c: { type: string } } }",
            "'c' is not a declared parameter",
        ),
        (
            "{ type: object, properties: { a: { type: integer }, b: { type: object } } }",
            "is integer, but the parameter is declared string",
        ),
        (
            "{ type: object, properties: { a: { type: string, x-mcp-header: 'No Spaces' }, b: { type: object } } }",
            "must be 1 to 64 letters",
        ),
        (
            "{ type: object, properties: { a: { type: string }, b: { type: object, x-mcp-header: B } } }",
            "not object",
        ),
        (
            "{ type: object, properties: { a: { x-mcp-header: A }, b: { type: object } } }",
            "must state its `type`",
        ),
        (
            "{ type: object, properties: { a: { type: string }, b: { type: object, properties: { pw: { type: string, x-mcp-header: Pw } } } } }",
            "only be on a parameter's own property",
        ),
        (
            "{ type: object, properties: { a: { type: string }, b: { type: object } }, $defs: { x: { x-mcp-header: X } } }",
            "only be on a parameter's own property",
        ),
    ] {
        let problems = errors(&tool(schema));
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{want} in {problems:#?}"
        );
    }
}

#[test]
fn a_prompt_that_asks_reserves_the_answer_names() {
    let yaml = format!(
        "{BASE}prompts:\n  - name: p\n    arguments:\n      - {{ name: answers }}\n    elicit: {{ message: Why?, schema: {{ type: object }} }}\n    template: 'For {{{{ elicit_action }}}}'\n"
    );
    let problems = errors(&yaml);
    assert!(
        problems.iter().any(|p| p.contains("'answers' is reserved")),
        "{problems:#?}"
    );
}
