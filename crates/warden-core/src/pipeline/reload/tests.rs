//! Reload at unit level: which sections a reload may change, what a reloaded pipeline
//! shares with the old one, and a call in flight across the swap finishing on the project
//! it started with.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::audit::{MemorySink, Peer};
use crate::confirm::{Binding, Ledger, LedgerError};
use crate::pipeline::{CallError, CallRequest, ClientChannel, Elicited, Source};

#[derive(Debug, Default)]
struct NoLedger;

impl Ledger for NoLedger {
    fn mint(&self, _: Binding) -> BoxFuture<'_, Result<String, LedgerError>> {
        Box::pin(async { Err(LedgerError::Internal("unused".into())) })
    }
    fn redeem<'a>(&'a self, _: &'a str, _: &'a Binding) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async { Err(LedgerError::Internal("unused".into())) })
    }
}

const TOOLS: &str = r#"
tools:
  - name: list
    description: lists items
    access: read
    log: ["listing"]
    sql: SELECT n FROM items ORDER BY n
    policies:
      output:
        - name: hide-n
          action: mask_fields
          fields: [n]
"#;

fn yaml(head: &str, data_extra: &str, tools: &str) -> String {
    format!("version: 1\nname: t\nauth: none\n{head}data:\n  sqlite: data.db\n{data_extra}{tools}")
}

fn load(text: &str) -> Arc<Project> {
    Arc::new(
        crate::project::load_str(text, Path::new("/nowhere/p.yaml"), |_| None)
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

async fn open(project: Arc<Project>) -> (tempfile::TempDir, Pipeline, Arc<MemorySink>) {
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
    let data = crate::exec::DataSource::open(&crate::project::DataConfig {
        location: crate::project::DataLocation::Sqlite(file),
        ..project.data.clone()
    })
    .await
    .unwrap();
    let sink = Arc::new(MemorySink::default());
    let p = Pipeline::new(project, data, Arc::new(NoLedger), sink.clone());
    (dir, p, sink)
}

#[test]
fn each_section_only_a_restart_applies_is_named_and_nothing_else_is() {
    let old = load(&yaml("", "", TOOLS));
    let cases: &[(&str, &str, &str, Option<RestartSection>)] = &[
        (
            "server:\n  bind: 127.0.0.1:9999\n",
            "",
            TOOLS,
            Some(RestartSection::Server),
        ),
        (
            "server:\n  max_body_bytes: 2048\n",
            "",
            TOOLS,
            Some(RestartSection::Server),
        ),
        (
            "state:\n  sqlite: other.db\n",
            "",
            TOOLS,
            Some(RestartSection::State),
        ),
        (
            "tokens:\n  access_minutes: 5\n",
            "",
            TOOLS,
            Some(RestartSection::Tokens),
        ),
        (
            "login:\n  outbox: elsewhere\n",
            "",
            TOOLS,
            Some(RestartSection::Login),
        ),
        (
            "audit:\n  retention_days: 30\n",
            "",
            TOOLS,
            Some(RestartSection::Audit),
        ),
        ("", "  max_rows: 5\n", TOOLS, Some(RestartSection::Data)),
        // Reloadable: descriptions, instructions, tools, policies, and where fields are written.
        ("description: changed\ninstructions: new\n", "", TOOLS, None),
        ("# a comment\n\n\n", "", TOOLS, None),
        ("", "", "tools: []\n", None),
        (
            "policies:\n  input:\n    - name: no\n      condition: 'true'\n      reason: closed\n",
            "",
            TOOLS,
            None,
        ),
    ];
    for (head, data_extra, tools, expected) in cases {
        let new = load(&yaml(head, data_extra, tools));
        let changed = restart_sections_changed(&old, &new);
        assert_eq!(
            changed,
            expected.iter().copied().collect::<Vec<_>>(),
            "{head}{data_extra}"
        );
    }
    let auth = load(&yaml("", "", TOOLS).replace("auth: none\n", ""));
    assert_eq!(
        restart_sections_changed(&old, &auth),
        vec![RestartSection::Auth]
    );
}

#[test]
fn the_refusal_names_every_section_and_says_to_restart() {
    let one = RestartNeeded {
        sections: vec![RestartSection::Server],
    };
    assert!(
        one.to_string()
            .starts_with("the `server` section changed, which only a restart applies; nothing was reloaded: restart `warden serve`"),
        "{one}"
    );
    let three = RestartNeeded {
        sections: vec![
            RestartSection::Server,
            RestartSection::Auth,
            RestartSection::Audit,
        ],
    };
    assert!(
        three
            .to_string()
            .starts_with("the `server`, `auth` and `audit` sections changed"),
        "{three}"
    );
}

#[tokio::test]
async fn a_reload_that_needs_a_restart_builds_nothing() {
    let (_dir, p, _sink) = open(load(&yaml("", "", TOOLS))).await;
    let err = p
        .reloaded(load(&yaml(
            "server:\n  bind: 127.0.0.1:9999\n",
            "",
            "tools: []\n",
        )))
        .unwrap_err();
    assert_eq!(err.sections, vec![RestartSection::Server]);
}

#[tokio::test]
async fn a_reloaded_pipeline_shares_pools_ledger_trail_and_tally_but_not_the_project() {
    let (_dir, p, _sink) = open(load(&yaml("", "", TOOLS))).await;
    let next = p.reloaded(load(&yaml("", "", "tools: []\n"))).unwrap();
    assert!(Arc::ptr_eq(&p.confirmations, &next.confirmations));
    assert!(Arc::ptr_eq(&p.audit, &next.audit));
    assert!(Arc::ptr_eq(&p.unauthenticated, &next.unauthenticated));
    assert!(!Arc::ptr_eq(&p.project, &next.project));
    assert!(!Arc::ptr_eq(&p.templates, &next.templates));
    use crate::exec::DataSource;
    use crate::pipeline::data::Data;
    match (&p.data, &next.data) {
        (
            Data::Shared(DataSource::Sqlite { read: a, .. }),
            Data::Shared(DataSource::Sqlite { read: b, .. }),
        ) => assert!(
            Arc::ptr_eq(a, b),
            "the reloaded pipeline opened new data pools"
        ),
        _ => panic!("expected one shared SQLite source"),
    }
    assert_eq!(next.tools().count(), 0);
    assert_eq!(p.tools().count(), 1);
}

/// Holds a call at its first log line until the test lets it go.
#[derive(Default)]
struct Held {
    entered: Notify,
    release: Notify,
}

impl ClientChannel for Held {
    fn progress(&self, _: u32, _: u32, _: String) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn log(&self, _: String) -> BoxFuture<'_, ()> {
        Box::pin(async {
            self.entered.notify_one();
            self.release.notified().await;
        })
    }
    fn elicit(&self, _: String, _: Map<String, Value>) -> BoxFuture<'_, Result<Elicited, String>> {
        Box::pin(async { Err("no".to_string()) })
    }
    fn sample(&self, _: String, _: u32) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async { Err("no".to_string()) })
    }
}

#[tokio::test]
async fn a_call_in_flight_across_a_reload_finishes_on_the_project_it_started_with() {
    let (_dir, p, sink) = open(load(&yaml("", "", TOOLS))).await;
    let old_version = p.project().tool("list").unwrap().policies.version.clone();
    // The new project has no `list` tool at all.
    let next = p.reloaded(load(&yaml("", "", "tools: []\n"))).unwrap();
    let live = LivePipeline::new(p);
    let channel = Held::default();
    let request = |channel: &'static dyn ClientChannel| CallRequest {
        tool: "list",
        caller: None,
        arguments: None,
        source: Source::Http,
        peer: Peer::default(),
        cancel: CancellationToken::new(),
        channel,
    };
    let channel: &'static Held = Box::leak(Box::new(channel));
    let in_flight = live.current();
    let call = in_flight.call_tool(request(channel));
    let swap = async {
        channel.entered.notified().await;
        let old = live.replace(next);
        assert!(old.project().tool("list").is_some());
        channel.release.notify_one();
    };
    let (result, ()) = tokio::join!(call, swap);
    let result = result.unwrap_or_else(|e| panic!("the call in flight failed: {e}"));
    assert_eq!(result.policy.version, old_version);
    assert_eq!(result.policy.fired, vec!["hide-n".to_string()]);
    let recorded = sink.events();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].action, "list");
    // The next request takes the new project, where the tool is gone.
    let after = live.current().call_tool(request(channel)).await;
    assert!(
        matches!(after, Err(CallError::UnknownTool { .. })),
        "{after:?}"
    );
}
