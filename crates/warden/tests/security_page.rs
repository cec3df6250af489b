//! Keeps `docs/security.md` true: every guarantee names at least one test, every test it
//! names exists (a `#[test]` or `#[tokio::test]` function of that name in that file), and
//! every field it lists for a call's record is in the records of a real read, denial and
//! confirmed write.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{Server, add_member, audit_log, init_project};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn page() -> String {
    std::fs::read_to_string(repo().join("docs/security.md")).expect("docs/security.md")
}

/// The rows of the markdown table under `heading`, split into cells.
fn table(page: &str, heading: &str) -> Vec<Vec<String>> {
    let start = page
        .find(heading)
        .unwrap_or_else(|| panic!("no '{heading}' in docs/security.md"));
    page[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// Whether `file` (relative to the repository) has a test function called `name`: a Rust
/// `#[test]` or `#[tokio::test]`, a pytest `def test_...`, or a `node:test` `test('...'`
/// whose name is given with its spaces as `_` (the page cannot hold quotes in a reference).
fn test_exists(root: &Path, file: &str, name: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(root.join(file)) else {
        return false;
    };
    let lines: Vec<&str> = text.lines().collect();
    if file.ends_with(".mjs") {
        return lines.iter().any(|l| {
            let l = l.trim_start();
            ['\'', '"', '`'].iter().any(|&quote| {
                l.strip_prefix(&format!("test({quote}"))
                    .is_some_and(|rest| {
                        let title: String = rest.chars().take_while(|&c| c != quote).collect();
                        title.replace(' ', "_") == name
                    })
            })
        });
    }
    if file.ends_with(".py") {
        // A pytest test: a top-level `def test_...(` function.
        return name.starts_with("test_")
            && lines.iter().any(|l| l.starts_with(&format!("def {name}(")));
    }
    lines.iter().enumerate().any(|(i, l)| {
        let l = l.trim_start();
        let declares = [format!("fn {name}("), format!("async fn {name}(")]
            .iter()
            .any(|d| l.starts_with(d.as_str()));
        declares
            && lines[i.saturating_sub(3)..i]
                .iter()
                .any(|a| a.contains("#[test]") || a.contains("#[tokio::test"))
    })
}

/// Every problem with the guarantees table of `page`, in words.
fn check_guarantees(root: &Path, page: &str) -> Vec<String> {
    let rows = table(page, "## Guarantees");
    let mut problems = Vec::new();
    if rows.is_empty() {
        problems.push("the guarantees table is empty".to_string());
    }
    for row in rows {
        let [id, _guarantee, proofs] = row.as_slice() else {
            problems.push(format!("a row does not have three cells: {row:?}"));
            continue;
        };
        let refs: Vec<&str> = proofs
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|r| r.contains("::"))
            .collect();
        if refs.is_empty() {
            problems.push(format!("{id} names no test"));
        }
        for r in refs {
            let (file, name) = r.rsplit_once("::").unwrap_or((r, ""));
            if !test_exists(root, file, name) {
                problems.push(format!("{id} names `{r}`, which is not a test in {file}"));
            }
        }
    }
    problems
}

#[test]
fn every_guarantee_names_tests_that_exist() {
    let problems = check_guarantees(&repo(), &page());
    assert!(problems.is_empty(), "docs/security.md: {problems:#?}");
    assert!(table(&page(), "## Guarantees").len() >= 20);
}

#[test]
fn a_misspelt_or_missing_test_is_caught() {
    let page = page();
    let misspelt = page.replacen("consent_attack_table", "consent_atack_table", 1);
    let problems = check_guarantees(&repo(), &misspelt);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("consent_atack_table"), "{problems:#?}");

    let wrong_file = page.replacen(
        "crates/warden/tests/sessions.rs::",
        "crates/warden/tests/session.rs::",
        1,
    );
    assert_eq!(check_guarantees(&repo(), &wrong_file).len(), 1);

    // A guarantee whose proof cell names nothing.
    let row = page
        .lines()
        .find(|l| l.starts_with("| G13 |"))
        .unwrap()
        .to_string();
    let cells: Vec<&str> = row.rsplitn(3, " | ").collect();
    let unproved = page.replace(&row, &format!("{} | {} | (none) |", cells[2], cells[1]));
    let problems = check_guarantees(&repo(), &unproved);
    assert!(
        problems.iter().any(|p| p == "G13 names no test"),
        "{problems:#?}"
    );
}

#[tokio::test]
async fn every_field_the_page_lists_is_in_real_records() {
    let fields: Vec<String> = table(&page(), "## What a call's record contains")
        .into_iter()
        .map(|row| row[0].trim_matches('`').to_string())
        .collect();
    assert!(fields.len() >= 20, "{fields:?}");

    let (_d, project, admin) = init_project();
    let guest = add_member(&project, "gus@acme.example", "guest", "mcp:read", false);
    let server = Server::start(&project);
    let mut a = Server::attach(server.url.clone())
        .with_bearer(admin)
        .session()
        .await;
    let r = a
        .call("search_vendors", json!({"query": "Cloud", "limit": 2}))
        .await;
    assert_ne!(r["isError"], true, "{r}");
    let r = a
        .call_confirmed(
            "update_finding_status",
            json!({"finding_id": 3, "status": "in_progress", "note": "security page"}),
        )
        .await;
    assert_ne!(r["isError"], true, "{r}");
    let mut g = Server::attach(server.url.clone())
        .with_bearer(guest)
        .session()
        .await;
    let r = g
        .call(
            "update_finding_status",
            json!({"finding_id": 3, "status": "open", "note": "guest"}),
        )
        .await;
    assert_eq!(r["isError"], true, "{r}");

    let records = audit_log(&project, &["--event", "tool_call"]);
    let find = |what: &str, pick: &dyn Fn(&Value) -> bool| -> Value {
        records
            .iter()
            .find(|r| pick(r))
            .cloned()
            .unwrap_or_else(|| panic!("no {what} record in {records:#?}"))
    };
    let read = find("read", &|r| {
        r["action"] == "search_vendors" && r["outcome"] == "success"
    });
    let write = find("write", &|r| {
        r["action"] == "update_finding_status" && r["outcome"] == "success"
    });
    let denial = find("denial", &|r| r["decision"] == "denied");
    for (kind, r) in [("read", &read), ("write", &write), ("denial", &denial)] {
        for f in &fields {
            assert!(
                r.get(f).is_some(),
                "the {kind} record has no field '{f}': {r:#}"
            );
        }
    }
    // Each listed field is filled where the page says it applies.
    for f in &fields {
        let applies = match f.as_str() {
            "stage" | "rule" | "reason" => vec![&denial],
            "affected" => vec![&write],
            "detail" => vec![&write],
            _ => vec![&read, &write, &denial],
        };
        for r in applies {
            assert!(!r[f].is_null(), "'{f}' is empty in {r:#}");
        }
    }
    assert_eq!(denial["stage"], "role");
    assert_eq!(read["source"], "mcp_http");
    assert_eq!(read["user_agent"], "warden-tests");
}
