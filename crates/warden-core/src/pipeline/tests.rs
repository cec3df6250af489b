//! The pipeline's decision table: tools, resources and prompts × every role × both scopes ×
//! read and write, each asserting the outcome and that exactly one record was made, with the
//! refusing stage and rule. An in-memory sink stands in for the trail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::audit::{Decision, Event, MemorySink, Outcome, Peer};
use crate::confirm::{Binding, Ledger, LedgerError};
use crate::identity::Principal;
use crate::identity::{Role, Scopes};

/// Mints tokens and never redeems any: the table stops at the preview.
#[derive(Debug, Default)]
struct PreviewOnly;

impl Ledger for PreviewOnly {
    fn mint(&self, _: Binding) -> BoxFuture<'_, Result<String, LedgerError>> {
        Box::pin(async { Ok("preview-token".to_string()) })
    }
    fn redeem<'a>(&'a self, _: &'a str, _: &'a Binding) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async { Err(crate::confirm::Refusal::Unknown.into()) })
    }
}

fn project_yaml(data: &Path, auth: &str) -> String {
    format!(
        r#"
version: 1
name: table
{auth}
data:
  sqlite: {data}
tools:
  - name: list
    description: lists items
    access: read
    sql: SELECT n FROM items ORDER BY n
  - name: add
    description: adds an item
    access: write
    params:
      - {{ name: n, type: integer, required: true }}
    sql: INSERT INTO items(n) VALUES (:n) RETURNING n
resources:
  - uri: items://count
    name: count
    sql: SELECT count(*) AS c FROM items
prompts:
  - name: summary
    description: summarise
    arguments:
      - {{ name: topic, required: true }}
    messages:
      - text: "Summarise {{{{ topic }}}}"
      - resource: items://count
"#,
        data = data.display()
    )
}

async fn pipeline(auth: &str) -> (tempfile::TempDir, Pipeline, Arc<MemorySink>) {
    use sqlx::{ConnectOptions, Connection};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.db");
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql("CREATE TABLE items (n INTEGER NOT NULL); INSERT INTO items VALUES (1), (2);")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let project =
        crate::project::load_str(&project_yaml(&file, auth), Path::new("table.yaml"), |_| {
            None
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let sink = Arc::new(MemorySink::default());
    let p = Pipeline::open(Arc::new(project), Arc::new(PreviewOnly), sink.clone())
        .await
        .unwrap();
    (dir, p, sink)
}

fn caller(role: Role, scopes: Scopes) -> Principal {
    Principal {
        user_id: "u1".into(),
        email: "u1@acme.example".into(),
        org: "acme".into(),
        role,
        scopes,
        method: "api_key",
        credential: "k1".into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Item {
    ReadTool,
    WriteTool,
    Resource,
    Prompt,
}

/// How one request ended, in the table's words.
#[derive(Debug, Clone, PartialEq)]
enum Got {
    Ok,
    /// A write's preview: allowed, nothing changed yet.
    Preview,
    Denied {
        stage: String,
        rule: String,
    },
}

/// Runs `item` as `who`, and returns how it ended with the records it made.
async fn run(
    p: &Pipeline,
    sink: &MemorySink,
    item: Item,
    who: Option<&Principal>,
) -> (Got, Vec<Event>) {
    let before = sink.events().len();
    let peer = Peer::default();
    let cancel = CancellationToken::new();
    let denied = |stage: &str, rule: &str| Got::Denied {
        stage: stage.into(),
        rule: rule.into(),
    };
    let got = match item {
        Item::ReadTool | Item::WriteTool => {
            let (tool, args) = match item {
                Item::ReadTool => ("list", None),
                _ => ("add", Some(json!({"n": 7}).as_object().cloned().unwrap())),
            };
            let req = CallRequest {
                tool,
                caller: who,
                arguments: args.as_ref(),
                source: Source::Http,
                peer: peer.clone(),
                cancel,
                channel: &NoChannel,
            };
            match p.call_tool(req).await {
                Ok(_) => Got::Ok,
                Err(CallError::ConfirmationRequired(_)) => Got::Preview,
                Err(CallError::Denied(d)) => denied(d.stage.as_str(), d.rule),
                Err(e) => panic!("{item:?}: unexpected {e}"),
            }
        }
        Item::Resource => {
            match p
                .read_resource("items://count", who, Source::Http, &peer, &cancel)
                .await
            {
                Ok(_) => Got::Ok,
                Err(ResourceError::Denied(d)) => denied(d.stage.as_str(), d.rule),
                Err(e) => panic!("resource: unexpected {e}"),
            }
        }
        Item::Prompt => {
            let mut args = Map::new();
            args.insert("topic".into(), Value::String("risk".into()));
            match p
                .get_prompt(super::PromptRequest {
                    name: "summary",
                    arguments: &args,
                    caller: who,
                    source: Source::Http,
                    peer: &peer,
                    cancel: &cancel,
                    channel: &super::NoChannel,
                })
                .await
            {
                Ok(m) => {
                    assert_eq!(m.len(), 2);
                    assert_eq!(m[0].content, Content::Text("Summarise risk".into()));
                    Got::Ok
                }
                Err(PromptError::Resource(ResourceError::Denied(d))) => {
                    denied(d.stage.as_str(), d.rule)
                }
                Err(e) => panic!("prompt: unexpected {e}"),
            }
        }
    };
    (got, sink.events()[before..].to_vec())
}

/// What the role matrix and the scopes say `item` should do.
fn expected(role: Role, scopes: Scopes, item: Item) -> Got {
    let denied = |stage: &str, rule: &str| Got::Denied {
        stage: stage.into(),
        rule: rule.into(),
    };
    if !role.can_connect() {
        return denied("connect", "role.cannot_connect");
    }
    match item {
        Item::WriteTool if !role.can_write() => denied("role", "role.read_only"),
        Item::WriteTool if !scopes.allows_write() => denied("scope", "scope.write_missing"),
        Item::WriteTool => Got::Preview,
        _ => Got::Ok,
    }
}

#[tokio::test]
async fn every_role_scope_and_kind_ends_as_the_matrix_says_with_one_record() {
    let (_d, p, sink) = pipeline("").await;
    let items = [
        Item::ReadTool,
        Item::WriteTool,
        Item::Resource,
        Item::Prompt,
    ];
    let mut cases = 0;
    for role in Role::ALL {
        for scopes in [Scopes::READ, Scopes::READ_WRITE] {
            let who = caller(role, scopes);
            for item in items {
                let (got, records) = run(&p, &sink, item, Some(&who)).await;
                let want = expected(role, scopes, item);
                let case = format!("{role:?} {scopes} {item:?}");
                assert_eq!(got, want, "{case}");
                assert_eq!(
                    records.len(),
                    1,
                    "{case}: exactly one record, got {records:#?}"
                );
                let r = &records[0];
                assert_eq!(r.user_id.as_deref(), Some("u1"), "{case}");
                match &want {
                    Got::Denied { stage, rule } => {
                        assert_eq!(r.decision, Decision::Denied, "{case}");
                        assert_eq!(r.outcome, Outcome::Denied, "{case}");
                        assert_eq!(r.stage.as_deref(), Some(stage.as_str()), "{case}");
                        assert_eq!(r.rule.as_deref(), Some(rule.as_str()), "{case}");
                        assert!(r.reason.as_deref().is_some_and(|s| !s.is_empty()), "{case}");
                    }
                    Got::Ok => {
                        assert_eq!(r.decision, Decision::Allowed, "{case}");
                        assert_eq!(r.outcome, Outcome::Success, "{case}");
                    }
                    Got::Preview => {
                        assert_eq!(r.decision, Decision::Allowed, "{case}");
                        assert_eq!(r.outcome, Outcome::ConfirmationRequired, "{case}");
                    }
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 6 * 2 * 4);
}

#[tokio::test]
async fn no_caller_on_an_authenticated_project_is_refused_and_recorded() {
    let (_d, p, sink) = pipeline("").await;
    for item in [
        Item::ReadTool,
        Item::WriteTool,
        Item::Resource,
        Item::Prompt,
    ] {
        let (got, records) = run(&p, &sink, item, None).await;
        assert_eq!(
            got,
            Got::Denied {
                stage: "authenticate".into(),
                rule: "authenticate.missing".into()
            },
            "{item:?}"
        );
        assert_eq!(records.len(), 1, "{item:?}");
        assert_eq!(records[0].stage.as_deref(), Some("authenticate"));
        assert_eq!(records[0].auth_method.as_deref(), Some("none"));
    }
    assert_eq!(p.visible_tools(None).count(), 0);
}

#[tokio::test]
async fn auth_none_is_an_explicit_permit() {
    let (_d, p, sink) = pipeline("auth: none").await;
    for item in [Item::ReadTool, Item::Resource, Item::Prompt] {
        let (got, records) = run(&p, &sink, item, None).await;
        assert_eq!(got, Got::Ok, "{item:?}");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].decision, Decision::Allowed);
    }
    let (got, _) = run(&p, &sink, Item::WriteTool, None).await;
    assert_eq!(got, Got::Preview);
    assert_eq!(p.visible_tools(None).count(), 2);
    let permit = crate::authz::decide_unauthenticated(
        crate::project::AuthMode::None,
        crate::project::Access::Read,
    )
    .unwrap();
    assert!(permit.rule().starts_with("auth.none"), "{}", permit.rule());
}

#[tokio::test]
async fn the_edge_questions_are_decided_and_recorded_here() {
    let (_d, p, sink) = pipeline("").await;
    let peer = Peer::default();

    // Connecting: refused for roles that cannot connect, with one record each.
    for role in Role::ALL {
        let before = sink.events().len();
        let r = p
            .admit(&caller(role, Scopes::READ_WRITE), Source::Http, || {
                peer.clone()
            })
            .await;
        let records = &sink.events()[before..];
        if role.can_connect() {
            assert!(r.is_ok(), "{role:?}");
            assert!(records.is_empty(), "{role:?}: an admission is not a call");
        } else {
            assert!(
                matches!(r, Err(Rejection::Denied(ref d)) if d.stage == crate::authz::Stage::Connect)
            );
            assert_eq!(records.len(), 1, "{role:?}");
            assert_eq!(records[0].stage.as_deref(), Some("connect"));
        }
    }

    // Step-up: only a scope refusal is answered (and recorded) before the call is read.
    let cases = [
        (Role::Member, Scopes::READ, "add", Some("scope")),
        (Role::Member, Scopes::READ_WRITE, "add", None),
        (Role::Member, Scopes::READ, "list", None),
        // The role refusal is the pipeline's to explain at the call, not the step-up's.
        (Role::Guest, Scopes::READ, "add", None),
        (Role::Member, Scopes::READ, "no_such_tool", None),
    ];
    for (role, scopes, tool, want) in cases {
        let before = sink.events().len();
        let r = p
            .step_up(&caller(role, scopes), tool, Source::Http, || peer.clone())
            .await;
        let records = &sink.events()[before..];
        match want {
            Some(stage) => {
                assert!(matches!(r, Err(Rejection::Denied(_))), "{role:?} {tool}");
                assert_eq!(records.len(), 1, "{role:?} {tool}");
                assert_eq!(records[0].stage.as_deref(), Some(stage));
                assert_eq!(records[0].action, tool);
                assert_eq!(records[0].kind, "tool_call");
            }
            None => {
                assert!(r.is_ok(), "{role:?} {tool}");
                assert!(records.is_empty(), "{role:?} {tool}");
            }
        }
    }

    // Listing resources or prompts: a refusal is recorded.
    let before = sink.events().len();
    let r = p
        .may_list(
            Some(&caller(Role::ServiceAccount, Scopes::READ)),
            "prompts/list",
            Source::Stdio,
            &peer,
        )
        .await;
    assert!(r.is_err());
    let records = &sink.events()[before..];
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, "prompts/list");
    assert_eq!(records[0].stage.as_deref(), Some("connect"));
}

#[tokio::test]
async fn a_refusal_that_cannot_be_recorded_is_still_a_refusal() {
    let (_d, p, sink) = pipeline("").await;
    sink.fail(true);
    let r = p
        .step_up(
            &caller(Role::Member, Scopes::READ),
            "add",
            Source::Http,
            Peer::default,
        )
        .await;
    assert!(matches!(r, Err(Rejection::Audit(_))), "{r:?}");
    let (got, _) = {
        let who = caller(Role::Guest, Scopes::READ);
        let req = CallRequest {
            tool: "list",
            caller: Some(&who),
            arguments: None,
            source: Source::Http,
            peer: Peer::default(),
            cancel: CancellationToken::new(),
            channel: &NoChannel,
        };
        (p.call_tool(req).await, ())
    };
    assert!(
        matches!(got, Err(CallError::Audit(_))),
        "an allowed read the trail cannot take is refused"
    );
}
