//! Reloading a running server's project, against the real binary: SIGHUP (and `warden
//! reload`) re-reads the file; a good one reaches an open MCP session's next request, a
//! broken one or one that changes a restart-only section changes nothing, and each outcome
//! is logged and recorded. (A call in flight across the swap finishing on the old project is
//! shown deterministically at unit level: `warden_core::pipeline::reload::tests`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Server, audit_log, init_project, run, text, warden};
use serde_json::{Value, json};

const COUNT_TOOL: &str = "  - name: vendor_count
    description: How many vendors the register holds.
    access: read
    returns: row
    sql: SELECT COUNT(*) AS vendors FROM vendors

";

fn rewrite(file: &Path, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(file).unwrap();
    let changed = edit(text.clone());
    assert_ne!(changed, text, "the edit changed nothing");
    std::fs::write(file, changed).unwrap();
}

fn with_count_tool(text: String) -> String {
    text.replacen("tools:\n", &format!("tools:\n{COUNT_TOOL}"), 1)
}

fn hangup(server: &Server) {
    let pid = server.pid().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Lines of the server's log containing `needle`.
fn log_lines(server: &Server, needle: &str) -> Vec<String> {
    server
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

/// Waits until the server has logged `needle` `count` times.
async fn wait_for_log(server: &Server, needle: &str, count: usize) {
    for _ in 0..200 {
        if log_lines(server, needle).len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the server never logged {needle:?} {count} time(s); its log:\n{}",
        server.log.lock().unwrap().join("\n")
    );
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

fn description(list: &Value, tool: &str) -> String {
    list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == tool)
        .map(|t| t["description"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

fn detail(record: &Value) -> Value {
    serde_json::from_str(record["detail"].as_str().unwrap()).unwrap()
}

/// The 1-based line of `file` that contains `needle`.
fn line_of(file: &Path, needle: &str) -> usize {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .unwrap()
        + 1
}

#[tokio::test]
async fn a_new_tool_and_a_new_description_reach_an_open_session_without_reconnecting() {
    let (_dir, file, ana) = init_project();
    let server = Server::start(&file).with_bearer(ana);
    let mut s = server.session().await;
    let before = s.request("tools/list", json!({})).await;
    assert!(!tool_names(&before).contains(&"vendor_count".to_string()));
    assert!(description(&before, "search_vendors").starts_with("Find vendors"));
    assert_eq!(
        s.call("search_vendors", json!({"limit": 1})).await["isError"],
        false
    );

    rewrite(&file, |t| {
        with_count_tool(t).replace(
            "description: Find vendors by name",
            "description: Reloaded. Find vendors by name",
        )
    });
    hangup(&server);
    wait_for_log(&server, "project reloaded", 1).await;

    // The same session, never re-initialized.
    let after = s.request("tools/list", json!({})).await;
    assert!(
        tool_names(&after).contains(&"vendor_count".to_string()),
        "{after}"
    );
    assert!(description(&after, "search_vendors").starts_with("Reloaded. Find vendors"));
    let count = s.call("vendor_count", json!({})).await;
    assert_eq!(count["isError"], false, "{count}");
    let body: Value = serde_json::from_str(&text(&count)).unwrap();
    assert!(body["vendors"].as_i64().unwrap() > 0, "{body}");
    assert_eq!(
        s.call("search_vendors", json!({"limit": 1})).await["isError"],
        false
    );

    let loaded = audit_log(&file, &["--event", "project_loaded"]);
    let reloaded = audit_log(&file, &["--event", "project_reloaded"]);
    assert_eq!(reloaded.len(), 1, "{reloaded:?}");
    let (was, now) = (detail(loaded.last().unwrap()), detail(&reloaded[0]));
    assert_eq!(now["tools"], was["tools"].as_u64().unwrap() + 1);
    assert_ne!(now["manifest_sha256"], was["manifest_sha256"]);
    assert_eq!(reloaded[0]["source"], "system");
}

#[tokio::test]
async fn a_broken_file_changes_nothing_and_the_log_names_file_and_line() {
    let (_dir, file, ana) = init_project();
    let server = Server::start(&file).with_bearer(ana);
    let mut s = server.session().await;
    let pristine = std::fs::read_to_string(&file).unwrap();
    // (the broken text, the text on the line the problem is reported at, the field named)
    let cases = [
        (
            // YAML: an unclosed flow sequence.
            "name: [unclosed\n",
            "name: [unclosed",
            "",
        ),
        (
            // A parameter type Warden does not know.
            "params:\n      - name: kind\n        type: colour\n    sql:",
            "type: colour",
            "params[0].type",
        ),
    ];
    for (i, (broken, reported_at, field)) in cases.into_iter().enumerate() {
        std::fs::write(
            &file,
            with_count_tool(pristine.clone()).replacen(
                if field.is_empty() {
                    "name: vendor-risk\n"
                } else {
                    "sql: SELECT COUNT(*) AS vendors"
                },
                &if field.is_empty() {
                    broken.to_string()
                } else {
                    format!("{broken} SELECT COUNT(*) AS vendors")
                },
                1,
            ),
        )
        .unwrap();
        let line = line_of(&file, reported_at);
        hangup(&server);
        wait_for_log(&server, "reload refused", i + 1).await;
        let at = format!("{}:{line}:", file.display());
        assert!(
            !log_lines(&server, &at).is_empty(),
            "case {i}: no log line names {at}; log:\n{}",
            server.log.lock().unwrap().join("\n")
        );
        if !field.is_empty() {
            assert!(
                log_lines(&server, &at).iter().any(|l| l.contains(field)),
                "case {i}: {field} not named"
            );
        }
        // Nothing changed: the old tools answer, the new one is not there.
        let list = s.request("tools/list", json!({})).await;
        assert!(!tool_names(&list).contains(&"vendor_count".to_string()));
        assert_eq!(
            s.call("search_vendors", json!({"limit": 1})).await["isError"],
            false
        );
        let unknown = s
            .request(
                "tools/call",
                json!({"name": "vendor_count", "arguments": {}}),
            )
            .await;
        assert!(unknown.get("error").is_some(), "{unknown}");
    }
    assert!(log_lines(&server, "project reloaded").is_empty());
    // `warden log` reads the project file too.
    std::fs::write(&file, &pristine).unwrap();
    let failed = audit_log(&file, &["--event", "project_reload_failed"]);
    assert_eq!(failed.len(), 2, "{failed:?}");
    for r in &failed {
        assert_eq!(r["decision"], "denied");
        assert_eq!(r["rule"], "invalid_file");
        assert!(
            r["reason"]
                .as_str()
                .unwrap()
                .contains("nothing was reloaded"),
            "{r}"
        );
        let problems = detail(r)["problems"].as_array().unwrap().clone();
        assert!(!problems.is_empty());
        assert!(
            problems[0]
                .as_str()
                .unwrap()
                .starts_with(&file.display().to_string())
        );
    }
    assert!(audit_log(&file, &["--event", "project_reloaded"]).is_empty());
}

#[tokio::test]
async fn a_policy_change_takes_effect_on_the_next_call_and_is_on_the_record() {
    let (_dir, file, ana) = init_project();
    let server = Server::start(&file).with_bearer(ana);
    let mut s = server.session().await;
    // Ana is an admin: the shipped rule lets her search for 60.
    assert_eq!(
        s.call("search_vendors", json!({"limit": 5})).await["isError"],
        false
    );

    rewrite(&file, |t| {
        t.replace(
            "condition: args.limit > 50 && user.role != 'admin'\n          reason: Searches of more than 50 vendors are for Admins; ask for fewer results",
            "condition: args.limit > 3\n          reason: Searches of more than 3 vendors are closed for now",
        )
    });
    hangup(&server);
    wait_for_log(&server, "project reloaded", 1).await;

    let denied = s.call("search_vendors", json!({"limit": 5})).await;
    assert_eq!(denied["isError"], true, "{denied}");
    assert!(
        text(&denied).contains("Searches of more than 3 vendors are closed for now"),
        "{}",
        text(&denied)
    );
    assert_eq!(
        s.call("search_vendors", json!({"limit": 3})).await["isError"],
        false
    );

    let loaded = detail(
        audit_log(&file, &["--event", "project_loaded"])
            .last()
            .unwrap(),
    );
    let reloaded = audit_log(&file, &["--event", "project_reloaded"]);
    assert_eq!(reloaded.len(), 1);
    let reloaded = detail(&reloaded[0]);
    let new_version = reloaded["tool_policy_versions"]["search_vendors"]
        .as_str()
        .unwrap();
    assert_ne!(
        new_version, loaded["tool_policy_versions"]["search_vendors"],
        "the policy version did not change"
    );
    // The project-wide rules did not change, nor did another tool's.
    assert_eq!(reloaded["policy_version"], loaded["policy_version"]);
    assert_eq!(
        reloaded["tool_policy_versions"]["vendor_detail"],
        loaded["tool_policy_versions"]["vendor_detail"]
    );
    let calls = audit_log(
        &file,
        &[
            "--event",
            "tool_call",
            "--tool",
            "search_vendors",
            "--policy",
            "deny",
        ],
    );
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["rule"], "bulk-search-admins-only");
    assert_eq!(detail(&calls[0])["policy"]["version"], new_version);
}

#[tokio::test]
async fn a_change_to_the_server_section_is_refused_and_recorded() {
    let (_dir, file, ana) = init_project();
    let server = Server::start(&file).with_bearer(ana);
    let mut s = server.session().await;
    rewrite(&file, |t| {
        with_count_tool(t).replace("bind: 127.0.0.1:8080", "bind: 127.0.0.1:8081")
    });
    hangup(&server);
    wait_for_log(&server, "reload refused", 1).await;
    let refused = log_lines(&server, "reload refused").join("\n");
    assert!(refused.contains("`server` section"), "{refused}");
    assert!(refused.contains("restart"), "{refused}");
    // The tool that came with the change is not served either.
    let list = s.request("tools/list", json!({})).await;
    assert!(!tool_names(&list).contains(&"vendor_count".to_string()));
    let failed = audit_log(&file, &["--event", "project_reload_failed"]);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["rule"], "restart_needed");
    assert_eq!(detail(&failed[0])["sections"], json!(["server"]));
    assert!(audit_log(&file, &["--event", "project_reloaded"]).is_empty());

    // Undone, the same reload goes through.
    rewrite(&file, |t| {
        t.replace("bind: 127.0.0.1:8081", "bind: 127.0.0.1:8080")
    });
    hangup(&server);
    wait_for_log(&server, "project reloaded", 1).await;
    let list = s.request("tools/list", json!({})).await;
    assert!(tool_names(&list).contains(&"vendor_count".to_string()));
}

fn reload_cmd(file: &Path) -> std::process::Output {
    run(&["reload", "-p", file.to_str().unwrap()])
}

#[tokio::test]
async fn warden_reload_checks_the_file_signals_the_server_and_prints_the_outcome() {
    let (_dir, file, ana) = init_project();
    let mut server = Server::start(&file).with_bearer(ana);
    let pid = server.pid().unwrap();
    let pid_file = file
        .parent()
        .unwrap()
        .join(".warden/serve")
        .join(pid.to_string());
    assert!(pid_file.exists(), "serve wrote no pid file");
    let mut s = server.session().await;

    // A broken file: reported here, and the server is not even signalled.
    rewrite(&file, |t| {
        with_count_tool(t).replacen(
            "access: read\n    returns: row",
            "access: reed\n    returns: row",
            1,
        )
    });
    let out = reload_cmd(&file);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = format!("{}:{}:", file.display(), line_of(&file, "access: reed"));
    assert!(stderr.contains(&at), "{stderr}");
    assert!(stderr.contains("no server was signalled"), "{stderr}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(log_lines(&server, "reloading the project file").is_empty());

    // A good one: signalled, reloaded, and said so.
    rewrite(&file, |t| t.replace("access: reed", "access: read"));
    let out = reload_cmd(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("sent SIGHUP to warden serve (pid {pid})")),
        "{stdout}"
    );
    assert!(stdout.contains("reloaded: 31 tools"), "{stdout}");
    let list = s.request("tools/list", json!({})).await;
    assert!(tool_names(&list).contains(&"vendor_count".to_string()));
    // The broken file left no trace in the trail: the server never saw it.
    assert!(audit_log(&file, &["--event", "project_reload_failed"]).is_empty());

    // A change that needs a restart: signalled, refused by the server, and said so.
    rewrite(&file, |t| {
        t.replacen(
            "version: 1\n",
            "version: 1\naudit:\n  retention_days: 30\n",
            1,
        )
    });
    let out = reload_cmd(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("refused, nothing changed: the `audit` section changed"),
        "{stdout}"
    );

    // Stopped, the server takes its pid file away, and nothing is left to signal.
    server.stop();
    assert!(!pid_file.exists(), "the pid file outlived the server");
    let out = reload_cmd(&file);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running `warden serve`"));
}

#[tokio::test]
async fn warden_reload_never_signals_a_pid_that_is_not_a_warden_server() {
    let (_dir, file, _ana) = init_project();
    let dir = file.parent().unwrap().join(".warden/serve");
    std::fs::create_dir_all(&dir).unwrap();
    // A live process that is not Warden (SIGHUP would end it), and a pid nobody has.
    let mut bystander = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let gone = 4_000_000u32; // above Linux's pid_max limit
    for pid in [bystander.id(), gone] {
        std::fs::write(dir.join(pid.to_string()), format!("{pid}\n")).unwrap();
    }
    let out = warden()
        .args(["reload", "-p", file.to_str().unwrap()])
        .env("WARDEN_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "pid {} is no longer a running `warden serve`",
            bystander.id()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("pid {gone} is no longer")),
        "{stdout}"
    );
    assert!(!stdout.contains("sent SIGHUP"), "{stdout}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander process was signalled"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "stale pid files remain"
    );
}

#[test]
fn a_stdio_session_sees_the_reloaded_project_on_its_next_request() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let (_dir, file, ana) = init_project();
    let mut child = warden()
        .args(["serve", "--stdio", "-p", file.to_str().unwrap()])
        .env("WARDEN_API_KEY", &ana)
        .env("WARDEN_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut send = |message: Value| {
        writeln!(stdin, "{message}").unwrap();
    };
    let mut receive = || -> Value {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    };
    send(
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
    );
    assert_eq!(receive()["result"]["serverInfo"]["name"], "warden");
    send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    send(json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}));
    assert!(!tool_names(&receive()).contains(&"vendor_count".to_string()));

    rewrite(&file, with_count_tool);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("project reloaded") => break,
            Ok(_) => {}
            Err(_) => panic!("the stdio server never logged its reload"),
        }
    }
    send(json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}));
    let after = receive();
    assert!(
        tool_names(&after).contains(&"vendor_count".to_string()),
        "{after}"
    );
    send(
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"vendor_count","arguments":{}}}),
    );
    let call = receive();
    assert_eq!(call["result"]["isError"], false, "{call}");
    let _ = child.kill();
    let _ = child.wait();
}
