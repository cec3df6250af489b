//! `warden serve --stdio` when it cannot start: the reason reaches the client as the JSON-RPC
//! error answering its `initialize`, not only on stderr (which desktop clients hide).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{init_project, warden};
use serde_json::Value;

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":7,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// Runs `warden serve --stdio` on `project` with `key` (or none), sends a notification, a
/// non-JSON line, a `server/discover` probe and `initialize`; returns the answer to
/// `initialize` (after checking that the probe was answered the same way), stderr and the
/// exit status.
fn refused(project: &std::path::Path, key: Option<&str>) -> (Value, String, i32) {
    let mut cmd = warden();
    cmd.args(["serve", "--stdio", "-p", project.to_str().unwrap()])
        .env_remove("WARDEN_API_KEY")
        .env_remove("WARDEN_API_KEY_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(k) = key {
        cmd.env("WARDEN_API_KEY", k);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{}}}}"#
    )
    .unwrap();
    writeln!(stdin, "not json").unwrap();
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","id":"probe","method":"server/discover","params":{{}}}}"#
    )
    .unwrap();
    writeln!(stdin, "{INITIALIZE}").unwrap();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":9,"method":"tools/list"}}"#).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "the probe and initialize are answered, then it stops: {stdout}"
    );
    let probe: Value = serde_json::from_str(lines[0]).unwrap();
    let answer: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(probe["id"], "probe");
    assert_eq!(probe["error"], answer["error"]);
    (
        answer,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap(),
    )
}

#[test]
fn a_missing_or_refused_key_answers_initialize_with_the_reason() {
    let (_d, file, _key) = init_project();
    let cases = [
        (None, "set WARDEN_API_KEY"),
        (Some("wdn_key_nonsense"), "WARDEN_API_KEY was refused"),
        (Some("not-a-warden-token"), "WARDEN_API_KEY was refused"),
    ];
    for (key, says) in cases {
        let (answer, stderr, status) = refused(&file, key);
        assert_eq!(status, 1, "{stderr}");
        assert_eq!(answer["id"], 7);
        assert_eq!(answer["error"]["code"], -32001);
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{key:?}: {message}");
        assert!(stderr.contains(says), "the same reason on stderr: {stderr}");
    }
    // A role that may not connect: refused at admission, on the record.
    let aux = common::add_member(
        &file,
        "aux@acme.example",
        "auxiliary_member",
        "mcp:read",
        false,
    );
    let (answer, _, status) = refused(&file, Some(&aux));
    assert_eq!(status, 1);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("WARDEN_API_KEY was refused"), "{message}");
    assert!(
        message.contains("cannot use Warden through an assistant"),
        "{message}"
    );
}

#[test]
fn a_project_that_does_not_load_answers_initialize_with_its_problems() {
    let (dir, file, key) = init_project();
    std::fs::write(&file, "version: 1\ntools: [\n").unwrap();
    let (answer, _, status) = refused(&file, Some(&key));
    assert_eq!(status, 1);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("warden.yaml"), "{message}");
    drop(dir);
}

#[test]
fn the_key_can_come_from_a_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, file, key) = init_project();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut child = warden()
        .args(["serve", "--stdio", "-p", file.to_str().unwrap()])
        .env_remove("WARDEN_API_KEY")
        .env("WARDEN_API_KEY_FILE", &key_file)
        .env("WARDEN_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{INITIALIZE}").unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let answer: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(answer["result"]["serverInfo"]["name"], "warden", "{answer}");
    drop(stdin);
    child.wait().unwrap();

    // Readable by others: refused, with the fix, and the key never shown.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = warden();
    cmd.args(["serve", "--stdio", "-p", file.to_str().unwrap()])
        .env_remove("WARDEN_API_KEY")
        .env("WARDEN_API_KEY_FILE", &key_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{INITIALIZE}").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("chmod 600"), "{stdout}");
    assert!(!stdout.contains(&key) && !String::from_utf8_lossy(&out.stderr).contains(&key));
}
