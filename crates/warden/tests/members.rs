//! Black-box: `warden member add|set-role` change exactly what they say, and the trail names
//! what happened (`member_added` for an addition, `role_changed` for a change).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{audit_log, init_project, run};

fn warden(file: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend(["-p", file.to_str().unwrap()]);
    run(&all)
}

/// The records of event `kind`, with `detail` parsed.
fn events(file: &std::path::Path, kind: &str) -> Vec<serde_json::Value> {
    audit_log(file, &[])
        .into_iter()
        .filter(|r| r["event"] == kind)
        .map(|mut r| {
            if let Some(d) = r["detail"].as_str() {
                r["detail"] = serde_json::from_str(d).unwrap();
            }
            r
        })
        .collect()
}

#[test]
fn set_role_changes_members_only_and_add_is_explicit() {
    let (_d, file, _key) = init_project();
    // A user with no organisation yet.
    let out = warden(&file, &["user", "add", "nia@acme.example"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added_before = events(&file, "member_added").len();

    // set-role on someone who is not a member: refused, nothing added, nothing recorded.
    let out = warden(
        &file,
        &[
            "member",
            "set-role",
            "nia@acme.example",
            "admin",
            "--org",
            "acme",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a member of acme") && err.contains("warden member add"),
        "{err}"
    );
    assert!(events(&file, "role_changed").is_empty());
    let out = warden(
        &file,
        &["member", "remove", "nia@acme.example", "--org", "acme"],
    );
    assert!(!out.status.success(), "set-role must not have added nia");

    // add: recorded as member_added with the role.
    let out = warden(
        &file,
        &[
            "member",
            "add",
            "nia@acme.example",
            "guest",
            "--org",
            "acme",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added = events(&file, "member_added");
    assert_eq!(added.len(), added_before + 1);
    assert_eq!(added.last().unwrap()["detail"]["role"], "guest");

    // add again: refused, pointing at set-role.
    let out = warden(
        &file,
        &[
            "member",
            "add",
            "nia@acme.example",
            "member",
            "--org",
            "acme",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("set-role"));

    // set-role on a member: recorded as role_changed, from and to.
    let out = warden(
        &file,
        &[
            "member",
            "set-role",
            "nia@acme.example",
            "member",
            "--org",
            "acme",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changed = events(&file, "role_changed");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["detail"]["from"], "guest");
    assert_eq!(changed[0]["detail"]["to"], "member");
}
