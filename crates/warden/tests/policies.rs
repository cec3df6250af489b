//! CEL policies on the example project, against the real binary: input rules deny with
//! their reason, output rules filter and mask, and every policy failure denies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, add_member, init_project, run, text};
use serde_json::{Value, json};

#[tokio::test]
async fn who_sees_what() {
    let (_dir, file, ana) = init_project();
    let mo = add_member(&file, "mo@acme.example", "member", "mcp:read", false);
    let gus = add_member(&file, "gus@acme.example", "guest", "mcp:read", false);
    let server = Server::start(&file);
    let detail = |key: String| {
        let url = server.url.clone();
        async move {
            let mut s = Server::attach(url).with_bearer(key).session().await;
            s.call("vendor_detail", json!({"vendor_id": "V-001"})).await
        }
    };

    let admin = detail(ana.clone()).await;
    let body: Value = serde_json::from_str(&text(&admin)).unwrap();
    assert!(body["annual_spend"].is_number(), "{body}");
    assert!(body["owner_email"].as_str().unwrap().contains('@'));

    let member = detail(mo.clone()).await;
    let body: Value = serde_json::from_str(&text(&member)).unwrap();
    assert!(
        body.get("annual_spend").is_none(),
        "sensitive field reached a member: {body}"
    );
    assert!(body["owner_email"].as_str().unwrap().contains('@'));
    assert_eq!(
        member["structuredContent"], body,
        "structured content is filtered the same way"
    );

    let guest = detail(gus).await;
    let body: Value = serde_json::from_str(&text(&guest)).unwrap();
    assert!(body.get("annual_spend").is_none());
    assert_eq!(body["owner_email"], "****");
    assert!(
        !text(&guest).contains("@example.com"),
        "no email anywhere in the guest's result"
    );

    // Input rule: large searches are for Admins.
    let mut s = Server::attach(server.url.clone())
        .with_bearer(mo)
        .session()
        .await;
    let r = s.call("search_vendors", json!({"limit": 60})).await;
    assert_eq!(r["isError"], true);
    assert!(
        text(&r).contains("Searches of more than 50 vendors are for Admins"),
        "{}",
        text(&r)
    );
    assert!(text(&r).contains("bulk-search-admins-only"));
    assert_eq!(
        s.call("search_vendors", json!({"limit": 5})).await["isError"],
        false
    );
    let mut a = Server::attach(server.url.clone())
        .with_bearer(ana)
        .session()
        .await;
    assert_eq!(
        a.call("search_vendors", json!({"limit": 60})).await["isError"],
        false
    );
}

#[tokio::test]
async fn a_rule_over_a_missing_attribute_denies() {
    let (_dir, file, ana) = init_project();
    let yaml = std::fs::read_to_string(&file).unwrap();
    // The domain check reads an attribute nobody has: it must deny, not pass.
    let yaml = yaml.replace(
        "    policies:\n      input:\n        - name: bulk-search-admins-only",
        "    policies:\n      input:\n        - name: department-check\n          condition: user.attributes.department != 'risk'\n          reason: Only the risk department may search\n        - name: bulk-search-admins-only",
    );
    std::fs::write(&file, yaml).unwrap();
    let server = Server::start(&file).with_bearer(ana);
    let mut s = server.session().await;
    let r = s.call("search_vendors", json!({"limit": 5})).await;
    assert_eq!(r["isError"], true);
    assert!(
        text(&r).contains("policy error in rule 'department-check'"),
        "{}",
        text(&r)
    );
    // Tools without the rule are unaffected.
    assert_eq!(
        s.call("portfolio_report", json!({})).await["isError"],
        false
    );
}

#[test]
fn policy_mistakes_are_load_errors_with_line_and_rule() {
    let (_dir, file, _) = init_project();
    let yaml = std::fs::read_to_string(&file).unwrap().replace(
        "          condition: args.limit > 50 && user.role != 'admin'",
        "          condition: size(response.rows) > 50",
    );
    std::fs::write(&file, &yaml).unwrap();
    let out = run(&["check", "-p", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tools[0].policies.input[0].condition: an input rule runs before the tool, so it cannot read `response`"), "{err}");
    assert!(err.contains("warden.yaml:"), "{err}");

    let yaml = yaml.replace(
        "          condition: size(response.rows) > 50",
        "          condition: args.limit >>> 50",
    );
    std::fs::write(&file, yaml).unwrap();
    let err =
        String::from_utf8_lossy(&run(&["check", "-p", file.to_str().unwrap()]).stderr).to_string();
    assert!(
        err.contains("invalid CEL in rule 'bulk-search-admins-only'"),
        "{err}"
    );
}

#[test]
fn policy_tests_pass_on_the_example_and_fail_readably_on_a_wrong_case() {
    let (dir, file, _) = init_project();
    let f = file.to_str().unwrap();
    let out = run(&["policy", "test", "-p", f]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("5 passed, 0 failed"));

    let wrong = dir.path().join("wrong.yaml");
    std::fs::write(
        &wrong,
        "cases:\n  - name: guests see owner emails (wrong on purpose)\n    user: { role: guest }\n    tool: vendor_detail\n    args: { vendor_id: V-001 }\n    response: { id: V-001, owner_email: a@x.example, annual_spend: 5 }\n    expect:\n      output: { id: V-001, owner_email: a@x.example }\n  - name: guests may search in bulk (wrong on purpose)\n    user: { role: guest }\n    tool: search_vendors\n    args: { limit: 60 }\n    expect:\n      allow: true\n",
    )
    .unwrap();
    let out = run(&["policy", "test", "-p", f, wrong.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAIL  guests see owner emails (wrong on purpose)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"-   "owner_email": "a@x.example""#),
        "{stdout}"
    );
    assert!(stdout.contains(r#"+   "owner_email": "****""#), "{stdout}");
    assert!(
        stdout.contains(
            "expected the call to be allowed, but it was denied: Searches of more than 50 vendors"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("0 passed, 2 failed"), "{stdout}");
}

#[tokio::test]
async fn project_wide_policies_govern_resources_and_prompts_too() {
    let (_dir, file, admin) = init_project();
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!(
            "{yaml}\npolicies:\n  input:\n    - name: no-prompts-for-guests\n      condition: tool.kind == 'prompt' && user.role == 'guest'\n      reason: Guests cannot use prompts\n    - name: no-v002-for-guests\n      condition: tool.kind == 'resource' && user.role == 'guest' && args.vendor_id == 'V-002'\n      reason: Guests cannot read V-002\n  output:\n    - name: guests-see-no-country\n      condition: user.role == 'guest'\n      action: filter_fields\n      fields: [country]\n"
        ),
    )
    .unwrap();
    let guest = add_member(&file, "gus@acme.example", "guest", "mcp:read", false);
    let server = Server::start(&file);
    let mut g = Server::attach(server.url.clone())
        .with_bearer(guest)
        .session()
        .await;
    let mut a = Server::attach(server.url.clone())
        .with_bearer(admin)
        .session()
        .await;

    let read = |v: &Value| -> Value {
        serde_json::from_str(v["result"]["contents"][0]["text"].as_str().unwrap()).unwrap()
    };
    let as_guest = read(
        &g.request("resources/read", json!({"uri": "vendor://V-001"}))
            .await,
    );
    assert!(as_guest.get("country").is_none(), "{as_guest}");
    assert!(as_guest["name"].is_string());
    let as_admin = read(
        &a.request("resources/read", json!({"uri": "vendor://V-001"}))
            .await,
    );
    assert!(as_admin["country"].is_string(), "{as_admin}");

    // A URI that matches the template but names no row says so (not "no resource has it").
    let missing = a
        .request("resources/read", json!({"uri": "vendor://V-999"}))
        .await;
    let said = missing["error"]["message"].as_str().unwrap();
    assert!(
        said.contains("matches the resource") && said.contains("nothing exists at that URI"),
        "{missing}"
    );

    let p = g
        .request(
            "prompts/get",
            json!({"name": "vendor_review", "arguments": {"vendor_id": "V-001"}}),
        )
        .await;
    assert!(
        p["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Guests cannot use prompts"),
        "{p}"
    );
    assert!(
        a.request(
            "prompts/get",
            json!({"name": "vendor_review", "arguments": {"vendor_id": "V-001"}})
        )
        .await
        .get("error")
        .is_none()
    );

    // A denied read: refused with the rule's words.
    let denied = g
        .request("resources/read", json!({"uri": "vendor://V-002"}))
        .await;
    assert!(
        denied["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Guests cannot read V-002"),
        "{denied}"
    );

    // Both refusals are on the record, found by `warden log --policy deny`.
    let refusals = common::audit_log(&file, &["--policy", "deny"]);
    let denied_read = refusals
        .iter()
        .find(|r| r["event"] == "resource_read")
        .unwrap_or_else(|| panic!("no denied resource read in {refusals:#?}"));
    assert_eq!(denied_read["action"], "vendor://V-002");
    assert_eq!(denied_read["user_email"], "gus@acme.example");
    assert_eq!(denied_read["stage"], "policy");
    assert_eq!(denied_read["rule"], "no-v002-for-guests");
    let prompt = refusals
        .iter()
        .find(|r| r["event"] == "prompt_get")
        .unwrap_or_else(|| panic!("no denied prompt in {refusals:#?}"));
    assert_eq!(prompt["action"], "vendor_review");
    assert_eq!(prompt["stage"], "policy");
    assert_eq!(prompt["rule"], "no-prompts-for-guests");
    assert_eq!(
        refusals.len(),
        2,
        "exactly one record per refusal: {refusals:#?}"
    );

    // The same project-wide rule reaches tool results.
    let rows: Value =
        serde_json::from_str(&text(&g.call("search_vendors", json!({"limit": 3})).await)).unwrap();
    assert!(
        rows["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("country").is_none()),
        "{rows}"
    );
}
