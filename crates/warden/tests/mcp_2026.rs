//! MCP 2026-07-28 requests (no initialize; the revision, client and capabilities in each
//! request's `_meta`): the methods that revision removed answer 404 with -32601, whatever
//! their params, and calls still work. Older clients keep them (`http_edge.rs`, `stdio.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, init_project, sse_response};
use serde_json::{Value, json};

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "warden-tests", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    })
}

async fn post(server: &Server, key: &str, method: &str, mut params: Value) -> (u16, Value) {
    params["_meta"] = meta();
    // 2026-07-28's standard headers: the method, and the tool or resource it names.
    let name = params["name"]
        .as_str()
        .or(params["uri"].as_str())
        .map(str::to_string);
    let mut req = server.client().post(&server.url);
    if let Some(name) = name {
        req = req.header("mcp-name", name);
    }
    let r = req
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    (status, sse_response(&body, 7))
}

#[tokio::test]
async fn methods_removed_in_2026_07_28_are_not_found_and_calls_still_work() {
    let (_dir, file, key) = init_project();
    let server = Server::start(&file);
    for (method, params) in [
        ("initialize", json!({})),
        ("logging/setLevel", json!({})),
        ("logging/setLevel", json!({"level": "debug"})),
        ("resources/subscribe", json!({})),
        ("resources/subscribe", json!({"uri": "vendor://V-001"})),
        ("resources/unsubscribe", json!({"uri": "vendor://V-001"})),
        ("ping", json!({})),
    ] {
        let (status, answer) = post(&server, &key, method, params.clone()).await;
        assert_eq!(status, 404, "{method} {params}: {answer}");
        assert_eq!(
            answer["error"]["code"], -32601,
            "{method} {params}: {answer}"
        );
    }
    let (status, answer) = post(
        &server,
        &key,
        "tools/call",
        json!({"name": "search_vendors", "arguments": {"limit": 1}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert_eq!(answer["result"]["resultType"], "complete", "{answer}");
}

const ASKING_TOOL: &str = r#"tools:
  - name: approve_note
    description: Asks who approves, then says so
    access: read
    params:
      - { name: note, type: string, required: true, max_length: 100 }
    elicit:
      message: Who approves this note?
      schema:
        type: object
        properties:
          approver: { type: string }
        required: [approver]
    sql: |
      SELECT 'approved by ' || json_extract(:elicit_content, '$.approver') || ': ' || :note AS text
    content: [{ type: text, column: text }]
"#;

/// The example project with `yaml` written at the head of its `section` (`tools`,
/// `prompts`): its directory, file and the Admin's API key.
fn project_with(section: &str, yaml: &str) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let (dir, file, key) = init_project();
    let text = std::fs::read_to_string(&file).unwrap();
    let head = format!("{section}:\n");
    std::fs::write(&file, text.replacen(&head, yaml, 1)).unwrap();
    (dir, file, key)
}

/// One MCP 2026-07-28 request: `_meta` naming these client capabilities, the revision's
/// standard headers (`Mcp-Name` is `name`) and any `extra` ones; its status and response.
async fn send_2026(
    server: &Server,
    key: &str,
    method: &str,
    name: &str,
    mut params: Value,
    caps: Value,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    params["_meta"] = meta();
    params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = caps;
    let mut req = server
        .client()
        .post(&server.url)
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .header("mcp-name", name);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, sse_response(&r.text().await.unwrap(), 7))
}

/// A 2026-07-28 `tools/call` from a client that can be asked (elicitation), with the
/// answers and state of the round before, if any.
async fn tool_call(
    server: &Server,
    key: &str,
    tool: &str,
    args: Value,
    responses: Option<Value>,
    state: Option<&str>,
) -> (u16, Value) {
    let mut params = json!({"name": tool, "arguments": args});
    if let Some(r) = responses {
        params["inputResponses"] = r;
    }
    if let Some(s) = state {
        params["requestState"] = json!(s);
    }
    send_2026(
        server,
        key,
        "tools/call",
        tool,
        params,
        json!({"elicitation": {}}),
        &[],
    )
    .await
}

async fn call(
    server: &Server,
    key: &str,
    args: Value,
    responses: Option<Value>,
    state: Option<&str>,
) -> (u16, Value) {
    tool_call(server, key, "approve_note", args, responses, state).await
}

fn answer(who: &str) -> Value {
    json!({"elicit": {"action": "accept", "content": {"approver": who}}})
}

fn ran(server_answer: &Value) -> bool {
    server_answer["result"]["content"][0]["text"]
        .as_str()
        .is_some_and(|t| t.starts_with("approved by"))
}

/// Multi round-trip requests: a question comes back as `input_required` with a state; the
/// answer with that state completes the call. The state is single-use and bound to the
/// caller, the tool and the arguments: a tampered, replayed, foreign or re-targeted state
/// is refused (-32602) and nothing runs; answers without a state are taken as they are.
#[tokio::test]
async fn a_question_round_trips_and_its_state_cannot_be_abused() {
    let (_dir, file, key) = project_with("tools", ASKING_TOOL);
    let bo_key = common::add_member(&file, "bo@acme.example", "member", "mcp:read", false);
    let server = Server::start(&file);
    let args = json!({"note": "renewal"});

    // Round 1: a question and a state; nothing ran.
    let (status, first) = call(&server, &key, args.clone(), None, None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    assert_eq!(
        first["result"]["inputRequests"]["elicit"]["method"], "elicitation/create",
        "{first}"
    );
    let state = first["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_string();

    // Every abuse of a state: refused with -32602, and nothing runs.
    let (_, fresh) = call(&server, &key, args.clone(), None, None).await;
    let tampered = format!("{}x", fresh["result"]["requestState"].as_str().unwrap());
    let (_, r) = call(
        &server,
        &key,
        args.clone(),
        Some(answer("Ana")),
        Some(&tampered),
    )
    .await;
    assert_eq!(r["error"]["code"], -32602, "tampered: {r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not one this server issued"),
        "{r}"
    );
    let (_, other) = call(&server, &key, args.clone(), None, None).await;
    let other = other["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, r) = call(
        &server,
        &bo_key,
        args.clone(),
        Some(answer("Bo")),
        Some(&other),
    )
    .await;
    assert_eq!(r["error"]["code"], -32602, "another principal: {r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another user"),
        "{r}"
    );
    let (_, moved) = call(&server, &key, args.clone(), None, None).await;
    let moved = moved["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, r) = call(
        &server,
        &key,
        json!({"note": "something else"}),
        Some(answer("Ana")),
        Some(&moved),
    )
    .await;
    assert_eq!(r["error"]["code"], -32602, "other arguments: {r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("other arguments"),
        "{r}"
    );
    assert!(![&r].iter().any(|r| ran(r)));

    // Expired: a state minted six minutes ago (written straight into the state store).
    let expired = {
        let store =
            warden_store::Store::open_sqlite(file.parent().unwrap().join(".warden/state.db"))
                .await
                .unwrap();
        let raw =
            warden_auth::token::generate(warden_auth::token::TokenKind::Confirmation).unwrap();
        let past = chrono::Utc::now() - chrono::Duration::minutes(1);
        let c = warden_store::Confirmation {
            user_id: "whoever".into(),
            org: "acme".into(),
            tool: "input-state:approve_note".into(),
            args_hash: "x".into(),
            expires_at: past,
            used_at: None,
        };
        store
            .insert_confirmation(raw.hash().as_str(), &c, past - chrono::Duration::minutes(5))
            .await
            .unwrap();
        store.close().await;
        raw.expose().to_string()
    };
    let (_, r) = call(
        &server,
        &key,
        args.clone(),
        Some(answer("Ana")),
        Some(&expired),
    )
    .await;
    assert_eq!(r["error"]["code"], -32602, "expired: {r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("expired"),
        "{r}"
    );

    // Answers without a state are taken as they are (an answer adds no authority: the
    // same client could give it when asked); a malformed one is asked again.
    let (_, r) = call(&server, &key, args.clone(), Some(answer("Bea")), None).await;
    assert_eq!(
        r["result"]["content"][0]["text"], "approved by Bea: renewal",
        "{r}"
    );
    let bad = json!({"elicit": {"action": "accept", "content": "not an object"}});
    let (_, r) = call(&server, &key, args.clone(), Some(bad), None).await;
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");

    // Round 2 with the first state: the call completes with the answer.
    let (status, done) = call(
        &server,
        &key,
        args.clone(),
        Some(answer("Ana")),
        Some(&state),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert_eq!(
        done["result"]["content"][0]["text"], "approved by Ana: renewal",
        "{done}"
    );
    // Replayed: refused, nothing runs again.
    let (_, r) = call(
        &server,
        &key,
        args.clone(),
        Some(answer("Eve")),
        Some(&state),
    )
    .await;
    assert_eq!(r["error"]["code"], -32602, "replayed: {r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{r}"
    );

    // The trail: questions asked, refusals by rule, two completed calls (Bea's, Ana's).
    let records = common::audit_log(&file, &[]);
    let calls: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "approve_note")
        .collect();
    assert!(
        calls.iter().any(|r| r["outcome"] == "input_required"),
        "{calls:?}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|r| r["rule"] == "input.request_state")
            .count(),
        5,
        "{calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|r| r["outcome"] == "success").count(),
        2,
        "{calls:?}"
    );
}

/// A client that did not declare elicitation is not asked: -32021 naming it, HTTP 400.
#[tokio::test]
async fn a_client_without_the_capability_is_told_which_it_lacks() {
    let (_dir, file, key) = project_with("tools", ASKING_TOOL);
    let server = Server::start(&file);
    let (status, r) = post(
        &server,
        &key,
        "tools/call",
        json!({"name": "approve_note", "arguments": {"note": "x"}}),
    )
    .await;
    assert_eq!(status, 400, "{r}");
    assert_eq!(r["error"]["code"], -32021, "{r}");
    assert!(
        r["error"]["data"]["requiredCapabilities"]["elicitation"].is_object(),
        "{r}"
    );
}

async fn write(
    server: &Server,
    key: &str,
    args: Value,
    confirm: Option<bool>,
    state: Option<&str>,
) -> Value {
    let responses =
        confirm.map(|c| json!({"confirm": {"action": "accept", "content": {"confirm": c}}}));
    tool_call(server, key, "update_finding_status", args, responses, state)
        .await
        .1
}

/// A write for a 2026-07-28 client that can be asked: the preview is a question, and its
/// state is a confirmation token for exactly that call. "Yes" under it makes the change
/// once; a refusal, another call's arguments, a replay or an altered state change nothing.
#[tokio::test]
async fn a_write_is_confirmed_through_the_round_trip_and_only_for_the_call_previewed() {
    let (_dir, file, key) = init_project();
    let server = Server::start(&file);
    let args = json!({"finding_id": 1, "status": "in_progress", "note": "vendor is on it"});
    let first = write(&server, &key, args.clone(), None, None).await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let ask = &first["result"]["inputRequests"]["confirm"];
    assert_eq!(ask["method"], "elicitation/create", "{first}");
    assert!(
        ask["params"]["message"]
            .as_str()
            .unwrap()
            .contains("would change 1 row(s)"),
        "{first}"
    );
    let state = first["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_string();

    // Another call's arguments under this state, or an altered state: refused.
    let other = json!({"finding_id": 2, "status": "in_progress", "note": "vendor is on it"});
    let r = write(&server, &key, other, Some(true), Some(&state)).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = write(
        &server,
        &key,
        args.clone(),
        Some(true),
        Some(&format!("{state}x")),
    )
    .await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    // A "no": nothing changes (and the state is spent).
    let second = write(&server, &key, args.clone(), None, None).await;
    let no_state = second["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_string();
    let r = write(&server, &key, args.clone(), Some(false), Some(&no_state)).await;
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("did not confirm"),
        "{r}"
    );

    // "Yes" under the first state: the change, once.
    let done = write(&server, &key, args.clone(), Some(true), Some(&state)).await;
    assert_eq!(done["result"]["isError"], false, "{done}");
    assert!(
        done["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("in_progress"),
        "{done}"
    );
    let again = write(&server, &key, args, Some(true), Some(&state)).await;
    assert_eq!(again["error"]["code"], -32602, "replayed: {again}");
    let records = common::audit_log(&file, &["--tool", "update_finding_status"]);
    assert_eq!(
        records.iter().filter(|r| r["outcome"] == "success").count(),
        1,
        "{records:?}"
    );
}

const TWO_ROUNDS: &str = r#"tools:
  - name: plan_trip
    description: Asks where, then when, then the client's roots
    access: read
    elicit:
      - key: where
        message: Where to?
        schema: { type: object, properties: { city: { type: string } }, required: [city] }
      - key: when
        round: 2
        message: When?
        schema: { type: object, properties: { day: { type: string } }, required: [day] }
    roots: { key: folders, round: 2 }
    sql: |
      SELECT json_extract(:answers, '$.where.content.city') || ' on ' || json_extract(:answers, '$.when.content.day') || ' from ' || json_extract(:roots, '$[0].uri') AS text
    content: [{ type: text, column: text }]
"#;

/// Questions in rounds: the second round is asked only once the first is answered, and its
/// state carries the first round's answers, bound into it: an edited carried answer is
/// refused like an edited token, and the call completes with every round's answers.
#[tokio::test]
async fn rounds_carry_earlier_answers_that_cannot_be_edited() {
    let (_dir, file, key) = project_with("tools", TWO_ROUNDS);
    let server = Server::start(&file);
    let send = |responses: Option<Value>, state: Option<String>| {
        let mut params = json!({"name": "plan_trip", "arguments": {}});
        if let Some(r) = responses {
            params["inputResponses"] = r;
        }
        if let Some(s) = state {
            params["requestState"] = json!(s);
        }
        let (server, key) = (&server, &key);
        async move {
            let caps = json!({"elicitation": {}, "roots": {}});
            send_2026(server, key, "tools/call", "plan_trip", params, caps, &[])
                .await
                .1
        }
    };
    let first = send(None, None).await;
    let asked: Vec<&String> = first["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(asked, ["where"], "round 1 asks only round 1: {first}");
    let state1 = first["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_string();

    let second = send(
        Some(json!({"where": {"action": "accept", "content": {"city": "Lisbon"}}})),
        Some(state1),
    )
    .await;
    let mut asked: Vec<&String> = second["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    asked.sort();
    assert_eq!(asked, ["folders", "when"], "{second}");
    assert_eq!(
        second["result"]["inputRequests"]["folders"]["method"],
        "roots/list"
    );
    let state2 = second["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_string();
    let (token, carried) = state2.split_once('.').expect("the state carries round 1");

    // The carried answers edited (Lisbon becomes Paris): refused, nothing runs.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let edited = String::from_utf8(b64.decode(carried).unwrap())
        .unwrap()
        .replace("Lisbon", "Paris");
    let forged = format!("{token}.{}", b64.encode(edited));
    let answers = json!({
        "when": {"action": "accept", "content": {"day": "Friday"}},
        "folders": {"roots": [{"uri": "file:///work/trips", "name": "trips"}]},
    });
    let r = send(Some(answers.clone()), Some(forged)).await;
    assert_eq!(r["error"]["code"], -32602, "edited carried answers: {r}");

    // The genuine state still completes the call, with every round's answers, once.
    let done = send(Some(answers.clone()), Some(state2.clone())).await;
    assert_eq!(
        done["result"]["content"][0]["text"], "Lisbon on Friday from file:///work/trips",
        "{done}"
    );
    let again = send(Some(answers), Some(state2)).await;
    assert_eq!(again["error"]["code"], -32602, "replayed: {again}");
}

const TASK_TOOL: &str = r#"tools:
  - name: vendor_review
    description: Reviews a vendor as a task, asking the reviewer's verdict on the way
    access: read
    task: optional
    ask: during
    params:
      - { name: vendor, type: string, required: true, max_length: 20 }
    elicit:
      key: verdict
      message: "Verdict on {{ vendor }}?"
      schema: { type: object, properties: { ok: { type: boolean } }, required: [ok] }
    sql: |
      SELECT 'review of ' || :vendor || ': ' || json_extract(:elicit_content, '$.ok') AS text
    content: [{ type: text, column: text }]
"#;

/// One 2026-07-28 request from a client of the tasks extension (and elicitation); the
/// `Mcp-Name` header is the tool's name or the task id.
async fn task_rpc(server: &Server, key: &str, method: &str, params: Value) -> Value {
    let name = params["name"]
        .as_str()
        .or(params["taskId"].as_str())
        .unwrap()
        .to_string();
    let caps = json!({
        "elicitation": {},
        "extensions": {"io.modelcontextprotocol/tasks": {}},
    });
    send_2026(server, key, method, &name, params, caps, &[])
        .await
        .1
}

/// Polls `tasks/get` until the task reaches `status` (or a final one), for at most 10 s.
async fn until(server: &Server, key: &str, id: &str, status: &str) -> Value {
    for _ in 0..100 {
        let got = task_rpc(server, key, "tasks/get", json!({"taskId": id})).await;
        let s = got["result"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if s == status || ["completed", "failed", "cancelled"].contains(&s.as_str()) {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("task {id} never reached {status}");
}

/// The tasks extension: a call becomes a task owned by its caller. To anyone else, its id
/// is unknown, exactly like an id that does not exist: they cannot read it, answer its
/// questions or cancel it. Its owner answers its question through `tasks/update` and reads
/// the result; each round is a call on the record. A client without the extension gets
/// the call answered directly.
#[tokio::test]
async fn a_task_belongs_to_its_caller() {
    let (_dir, file, key) = project_with("tools", TASK_TOOL);
    let bo_key = common::add_member(&file, "bo@acme.example", "member", "mcp:read", false);
    let server = Server::start(&file);
    let call = json!({"name": "vendor_review", "arguments": {"vendor": "V-001"}});

    let created = task_rpc(&server, &key, "tools/call", call.clone()).await;
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    assert!(created["result"].get("requestState").is_none(), "{created}");
    let id = created["result"]["taskId"].as_str().unwrap().to_string();
    let parked = until(&server, &key, &id, "input_required").await;
    assert_eq!(parked["result"]["status"], "input_required", "{parked}");
    assert_eq!(
        parked["result"]["inputRequests"]["verdict"]["params"]["message"], "Verdict on V-001?",
        "{parked}"
    );

    // Bo, of the same organisation: the task is not his. Same answer as for no task at all.
    let nothing = task_rpc(
        &server,
        &bo_key,
        "tasks/get",
        json!({"taskId": "no-such-task"}),
    )
    .await;
    assert_eq!(nothing["error"]["code"], -32602, "{nothing}");
    let answer = json!({"verdict": {"action": "accept", "content": {"ok": false}}});
    for (method, params) in [
        ("tasks/get", json!({"taskId": id})),
        (
            "tasks/update",
            json!({"taskId": id, "inputResponses": answer}),
        ),
        ("tasks/cancel", json!({"taskId": id})),
    ] {
        let r = task_rpc(&server, &bo_key, method, params).await;
        assert_eq!(r["error"]["code"], -32602, "{method}: {r}");
        assert!(r.get("result").is_none(), "{method}: {r}");
    }
    let still = task_rpc(&server, &key, "tasks/get", json!({"taskId": id})).await;
    assert_eq!(
        still["result"]["status"], "input_required",
        "Bo changed nothing: {still}"
    );

    // Ana answers; the task completes with her answer.
    let answer = json!({"verdict": {"action": "accept", "content": {"ok": true}}});
    let ack = task_rpc(
        &server,
        &key,
        "tasks/update",
        json!({"taskId": id, "inputResponses": answer}),
    )
    .await;
    assert_eq!(ack["result"], json!({"resultType": "complete"}), "{ack}");
    let done = until(&server, &key, &id, "completed").await;
    assert_eq!(done["result"]["status"], "completed", "{done}");
    assert_eq!(
        done["result"]["result"]["content"][0]["text"], "review of V-001: 1",
        "{done}"
    );

    // A cancelled task stops, and says so.
    let created = task_rpc(&server, &key, "tools/call", call.clone()).await;
    let id2 = created["result"]["taskId"].as_str().unwrap().to_string();
    until(&server, &key, &id2, "input_required").await;
    let ack = task_rpc(&server, &key, "tasks/cancel", json!({"taskId": id2})).await;
    assert_eq!(ack["result"], json!({"resultType": "complete"}), "{ack}");
    let cancelled = until(&server, &key, &id2, "cancelled").await;
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");

    // Without the extension, the call is answered directly (here: its question).
    let (_, direct) = tool_call(
        &server,
        &key,
        "vendor_review",
        json!({"vendor": "V-001"}),
        None,
        None,
    )
    .await;
    assert_eq!(direct["result"]["resultType"], "input_required", "{direct}");

    // The record: each round of the task is a call of Ana's.
    let records = common::audit_log(&file, &[]);
    let rounds: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "vendor_review" && r["user_email"] == "ana@acme.example")
        .collect();
    assert!(
        rounds.iter().any(|r| r["outcome"] == "input_required"),
        "{rounds:?}"
    );
    assert!(
        rounds.iter().any(|r| r["outcome"] == "success"),
        "{rounds:?}"
    );
    assert!(
        records
            .iter()
            .all(|r| r["user_email"] != "bo@acme.example" || r["action"] != "vendor_review"),
        "Bo ran nothing"
    );
}

/// A runaway agent cannot pile up tasks: past 32 unfinished ones, the next call is refused
/// (-32029) until one finishes or is cancelled.
#[tokio::test]
async fn unfinished_tasks_are_capped_per_caller() {
    let (_dir, file, key) = project_with("tools", TASK_TOOL);
    let server = Server::start(&file);
    let call = json!({"name": "vendor_review", "arguments": {"vendor": "V-001"}});
    let mut ids = Vec::new();
    for _ in 0..32 {
        let r = task_rpc(&server, &key, "tools/call", call.clone()).await;
        ids.push(r["result"]["taskId"].as_str().unwrap().to_string());
    }
    let refused = task_rpc(&server, &key, "tools/call", call.clone()).await;
    assert_eq!(refused["error"]["code"], -32029, "{refused}");
    task_rpc(&server, &key, "tasks/cancel", json!({"taskId": ids[0]})).await;
    until(&server, &key, &ids[0], "cancelled").await;
    let again = task_rpc(&server, &key, "tools/call", call).await;
    assert_eq!(again["result"]["resultType"], "task", "{again}");
}

const ASKING_PROMPT: &str = r#"prompts:
  - name: brief_for
    description: A brief, after asking what it is for
    arguments:
      - { name: vendor, required: true }
    elicit:
      key: purpose
      message: "What is the brief on {{ vendor }} for?"
      schema: { type: object, properties: { purpose: { type: string } }, required: [purpose] }
    template: "Brief on {{ vendor }} for {{ answers.purpose.content.purpose }}."
"#;

const HEADER_TOOL: &str = r#"tools:
  - name: vendor_by_region
    description: Counts vendors, with the region also in an HTTP header
    access: read
    params:
      - { name: region, type: string, required: true, header: Region, max_length: 20 }
    sql: SELECT :region AS region
"#;

/// A prompt asks too: its question comes back as `input_required`, and its answer under the
/// state renders it. The state is bound to the prompt's arguments: another vendor's call
/// under it is refused.
#[tokio::test]
async fn a_prompt_asks_through_the_result() {
    let (_dir, file, key) = project_with("prompts", ASKING_PROMPT);
    let server = Server::start(&file);
    let get = |arguments: Value, responses: Option<Value>, state: Option<String>| {
        let mut params = json!({"name": "brief_for", "arguments": arguments});
        if let Some(r) = responses {
            params["inputResponses"] = r;
        }
        if let Some(s) = state {
            params["requestState"] = json!(s);
        }
        let (server, key) = (&server, &key);
        async move {
            let caps = json!({"elicitation": {}});
            send_2026(server, key, "prompts/get", "brief_for", params, caps, &[])
                .await
                .1
        }
    };
    let first = get(json!({"vendor": "V-001"}), None, None).await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    assert_eq!(
        first["result"]["inputRequests"]["purpose"]["params"]["message"],
        "What is the brief on V-001 for?"
    );
    let state = first["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = json!({"purpose": {"action": "accept", "content": {"purpose": "renewal"}}});
    let moved = get(
        json!({"vendor": "V-002"}),
        Some(answer.clone()),
        Some(state.clone()),
    )
    .await;
    assert_eq!(moved["error"]["code"], -32602, "other arguments: {moved}");
    let done = get(json!({"vendor": "V-001"}), Some(answer), Some(state)).await;
    assert_eq!(
        done["result"]["messages"][0]["content"]["text"], "Brief on V-001 for renewal.",
        "{done}"
    );
}

/// A parameter with `header` is advertised with `x-mcp-header`, and a 2026-07-28 request
/// whose `Mcp-Param-` header is missing or disagrees with the body is refused (400, -32020)
/// before anything runs; a base64-wrapped header that matches is accepted.
#[tokio::test]
async fn a_parameter_header_must_match_the_body() {
    let (_dir, file, key) = project_with("tools", HEADER_TOOL);
    let server = Server::start(&file);
    let (_, list) = post(&server, &key, "tools/list", json!({})).await;
    let tool = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "vendor_by_region")
        .unwrap()
        .clone();
    assert_eq!(
        tool["inputSchema"]["properties"]["region"]["x-mcp-header"],
        "Region"
    );
    let call = |header: Option<&'static str>| {
        let (server, key) = (&server, &key);
        async move {
            let params = json!({"name": "vendor_by_region", "arguments": {"region": "emea"}});
            let extra: Vec<(&str, &str)> = header
                .map(|h| ("mcp-param-region", h))
                .into_iter()
                .collect();
            send_2026(
                server,
                key,
                "tools/call",
                "vendor_by_region",
                params,
                json!({}),
                &extra,
            )
            .await
        }
    };
    let (status, ok) = call(Some("emea")).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["result"]["isError"], false, "{ok}");
    let (status, ok) = call(Some("=?base64?ZW1lYQ==?=")).await;
    assert_eq!(status, 200, "base64 form: {ok}");
    for header in [None, Some("apac"), Some("=?base64?ZW1lYQ?=")] {
        let (status, r) = call(header).await;
        assert_eq!(status, 400, "{header:?}: {r}");
        assert_eq!(r["error"]["code"], -32020, "{header:?}: {r}");
    }
}

/// A task's rounds run as its owner is when each round runs: an Admin demoted to member
/// while the task waits for an answer gets the member's answer on the next round (here an
/// input rule for Admins only refuses it), not the Admin's of the task's start.
#[tokio::test]
async fn a_task_round_runs_with_the_owners_rights_of_its_moment() {
    let tool = TASK_TOOL.replace(
        "    content: [{ type: text, column: text }]\n",
        "    content: [{ type: text, column: text }]\n    policies:\n      input:\n        - name: admins-only\n          condition: user.role != 'admin'\n          reason: Reviews are for Admins\n",
    );
    let (_dir, file, key) = project_with("tools", &tool);
    let server = Server::start(&file);
    let call = json!({"name": "vendor_review", "arguments": {"vendor": "V-001"}});
    let created = task_rpc(&server, &key, "tools/call", call).await;
    let id = created["result"]["taskId"].as_str().unwrap().to_string();
    until(&server, &key, &id, "input_required").await;

    let out = common::run(&[
        "member",
        "set-role",
        "ana@acme.example",
        "--role",
        "member",
        "--org",
        "acme",
        "-p",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer = json!({"verdict": {"action": "accept", "content": {"ok": true}}});
    task_rpc(
        &server,
        &key,
        "tasks/update",
        json!({"taskId": id, "inputResponses": answer}),
    )
    .await;
    let done = until(&server, &key, &id, "completed").await;
    assert_eq!(done["result"]["result"]["isError"], true, "{done}");
    assert!(
        done["result"]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Reviews are for Admins"),
        "{done}"
    );
}
