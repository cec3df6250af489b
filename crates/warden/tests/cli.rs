//! The command line a newcomer meets in the first hour: `init` and what it says to do next,
//! one grammar for `org`, `user`, `member`, `key` and `apps` (list, add, remove, set-role, a
//! password reset), `why` with arguments, examples in every `--help`, and the small things
//! that used to surprise (an unset `${VAR}` in `server.bind` stopping `warden log`, sqlx's
//! INFO notices on PostgreSQL, a policy-test YAML error naming `<input>`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use common::{init_project, warden};

/// `warden ARGS -p FILE` with the default log level (what a person sees).
fn cli(file: &Path, args: &[&str]) -> Output {
    cli_in(file, args, None)
}

fn cli_in(file: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut cmd = warden();
    cmd.args(args)
        .args(["-p", file.to_str().unwrap()])
        .env_remove("WARDEN_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// A fresh `warden init` project with nobody in it.
fn empty_project() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = warden()
        .args(["init", dir.path().join("p").to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    ok(&out);
    let file = dir.path().join("p/warden.yaml");
    (dir, file)
}

#[test]
fn init_prints_the_exact_next_commands_and_they_work() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("vr");
    let out = warden()
        .args(["init", project.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(text.contains("Nobody can connect yet"), "{text}");
    let steps: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  warden "))
        .collect();
    assert_eq!(steps.len(), 5, "{text}");
    assert!(steps[4].starts_with("serve -p "), "{text}");
    let mut key = String::new();
    for step in &steps[..4] {
        // The printed commands are plain words but for one quoted scope.
        let args = shell_words(step);
        let out = warden()
            .args(&args)
            .env("WARDEN_LOG", "warn")
            .output()
            .unwrap();
        let stdout = ok(&out);
        if args[0] == "key" {
            key = stdout.trim().to_string();
        }
    }
    assert!(key.starts_with("wdn_key_"), "{key}");
    let file = project.join("warden.yaml");
    let users = ok(&cli(&file, &["user", "list"]));
    assert!(
        users.contains("admin@example.com") && users.contains("acme (admin)"),
        "{users}"
    );
}

/// Splits a printed command line: words, and "double quoted" words.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap();
            words.push(r[..end].to_string());
            rest = r[end + 1..].trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            words.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    words
}

#[test]
fn init_with_org_and_admin_creates_them_and_refuses_bad_values_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("vr");
    let p = project.to_str().unwrap();
    for (args, says) in [
        (
            vec![
                "init",
                p,
                "--org",
                "Not A Slug",
                "--admin",
                "ana@acme.example",
            ],
            "--org",
        ),
        (
            vec!["init", p, "--org", "acme", "--admin", "not-an-email"],
            "--admin",
        ),
    ] {
        let out = warden().args(&args).stdin(Stdio::null()).output().unwrap();
        let err = fails(&out);
        assert!(err.contains(says), "{err}");
        assert!(!project.exists(), "nothing is written on bad input");
    }
    let out = warden()
        .args(["init", p, "--org", "acme", "--admin", "ana@acme.example"])
        .env("WARDEN_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = ok(&out);
    let key = text
        .split_whitespace()
        .find(|w| w.starts_with("wdn_key_"))
        .unwrap();
    assert!(text.contains("password"), "{text}");
    let file = project.join("warden.yaml");
    let keys = ok(&cli(&file, &["key", "list", "--org", "acme"]));
    assert!(
        keys.contains(&key[..12]) && keys.contains("mcp:read mcp:write"),
        "{keys}"
    );
}

#[test]
fn serve_with_nobody_in_it_says_what_to_do() {
    let (_d, file) = empty_project();
    let mut child = warden()
        .args([
            "serve",
            "-p",
            file.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ])
        .env_remove("WARDEN_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut said = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if line.contains("serving MCP on") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(said.contains("nobody can connect yet"), "{said}");
    assert!(said.contains("warden org add acme"), "{said}");
    assert!(said.contains("warden key add"), "{said}");
}

#[test]
fn one_grammar_for_orgs_users_members_keys_and_apps() {
    let (_d, file) = empty_project();
    assert!(ok(&cli(&file, &["org", "list"])).contains("No organisations yet"));
    ok(&cli(&file, &["org", "add", "acme", "--name", "Acme Corp"]));
    ok(&cli(&file, &["org", "create", "beta"]));
    let orgs = ok(&cli(&file, &["org", "list"]));
    assert!(
        orgs.contains("acme") && orgs.contains("Acme Corp") && orgs.contains("beta"),
        "{orgs}"
    );

    ok(&cli(
        &file,
        &[
            "user",
            "add",
            "ana@acme.example",
            "--org",
            "acme",
            "--role",
            "admin",
        ],
    ));
    // Adding her again names the command that does what was meant.
    let err = fails(&cli(
        &file,
        &[
            "user",
            "add",
            "ana@acme.example",
            "--org",
            "beta",
            "--role",
            "guest",
        ],
    ));
    assert!(
        err.contains("warden member add ana@acme.example --role guest --org beta"),
        "{err}"
    );
    ok(&cli(
        &file,
        &[
            "member",
            "add",
            "ana@acme.example",
            "--role",
            "guest",
            "--org",
            "beta",
        ],
    ));
    let users = ok(&cli(&file, &["user", "list"]));
    assert!(users.contains("acme (admin), beta (guest)"), "{users}");
    let only = ok(&cli(&file, &["user", "list", "--org", "beta"]));
    assert!(only.contains("ana@acme.example"), "{only}");

    // The role by flag or, as before, second; two different ones, or none, are refused.
    ok(&cli(
        &file,
        &[
            "member",
            "set-role",
            "ana@acme.example",
            "--role",
            "member",
            "--org",
            "beta",
        ],
    ));
    ok(&cli(
        &file,
        &[
            "member",
            "set-role",
            "ana@acme.example",
            "siloed_member",
            "--org",
            "beta",
        ],
    ));
    let err = fails(&cli(
        &file,
        &[
            "member",
            "set-role",
            "ana@acme.example",
            "guest",
            "--role",
            "admin",
            "--org",
            "beta",
        ],
    ));
    assert!(err.contains("two roles"), "{err}");
    let err = fails(&cli(
        &file,
        &["member", "set-role", "ana@acme.example", "--org", "beta"],
    ));
    assert!(
        err.contains("--role") && err.contains("siloed_member"),
        "{err}"
    );
    let members = ok(&cli(&file, &["member", "list", "--org", "beta"]));
    assert!(
        members.contains("ana@acme.example") && members.contains("siloed_member"),
        "{members}"
    );

    // Keys: add (or create), list (per user), revoke (or remove).
    ok(&cli(
        &file,
        &[
            "user",
            "add",
            "bo@acme.example",
            "--org",
            "acme",
            "--role",
            "member",
        ],
    ));
    let ana_key = ok(&cli(
        &file,
        &[
            "key",
            "add",
            "--org",
            "acme",
            "--user",
            "ana@acme.example",
            "--name",
            "laptop",
        ],
    ));
    ok(&cli(
        &file,
        &[
            "key",
            "create",
            "--org",
            "acme",
            "--user",
            "bo@acme.example",
            "--name",
            "bos",
        ],
    ));
    let listed = ok(&cli(
        &file,
        &["key", "list", "--org", "acme", "--user", "ana@acme.example"],
    ));
    assert!(
        listed.contains("laptop") && !listed.contains("bos"),
        "{listed}"
    );
    let id = listed
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(
        ana_key.trim().starts_with(
            &listed
                .lines()
                .nth(1)
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .to_string()
        )
    );
    ok(&cli(&file, &["key", "remove", &id, "--org", "acme"]));
    assert!(ok(&cli(&file, &["key", "list", "--org", "acme"])).contains("revoked"));
    assert!(ok(&cli(&file, &["apps", "list", "--org", "acme"])).contains("CLIENT ID"));

    // A password reset: generated and shown once, or read from standard input.
    let out = cli(&file, &["user", "reset-password", "bo@acme.example"]);
    let password = ok(&out);
    assert_eq!(password.trim().len(), 20, "{password}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown once"));
    ok(&cli_in(
        &file,
        &[
            "user",
            "reset-password",
            "bo@acme.example",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    ));
    let err = fails(&cli_in(
        &file,
        &[
            "user",
            "reset-password",
            "bo@acme.example",
            "--password-stdin",
        ],
        Some("short\n"),
    ));
    assert!(err.to_lowercase().contains("password"), "{err}");
    let trail = common::audit_log(&file, &[]);
    assert!(
        trail
            .iter()
            .filter(|e| e["event"] == "password_reset")
            .count()
            >= 2,
        "{trail:?}"
    );

    // Removing a user: disabled, out of every organisation.
    let out = ok(&cli(&file, &["user", "remove", "ana@acme.example"]));
    assert!(out.contains("acme, beta"), "{out}");
    let users = ok(&cli(&file, &["user", "list"]));
    let ana = users
        .lines()
        .find(|l| l.contains("ana@acme.example"))
        .unwrap();
    assert!(
        ana.contains("disabled") && ana.trim_end().ends_with('-'),
        "{ana}"
    );
    assert!(!ok(&cli(&file, &["member", "list", "--org", "acme"])).contains("ana@"));
    let err = fails(&cli(&file, &["user", "remove", "ana@acme.example"]));
    assert!(err.contains("already removed"), "{err}");
}

/// The command a `--help` line lists (not a wrapped description line).
fn command_name(line: &str) -> Option<String> {
    let rest = line.strip_prefix("  ")?;
    if rest.starts_with(' ') {
        return None;
    }
    rest.split_whitespace().next().map(str::to_string)
}

#[test]
fn every_command_help_has_examples() {
    let top = String::from_utf8(warden().arg("--help").output().unwrap().stdout).unwrap();
    let commands: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(command_name)
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 12, "{commands:?}");
    let mut missing = Vec::new();
    for c in &commands {
        let help =
            String::from_utf8(warden().args([c, "--help"]).output().unwrap().stdout).unwrap();
        let subs: Vec<String> = help
            .split("Commands:")
            .nth(1)
            .map(|rest| {
                rest.split("Options:")
                    .next()
                    .unwrap()
                    .lines()
                    .filter_map(command_name)
                    .filter(|c| c != "help")
                    .collect()
            })
            .unwrap_or_default();
        if subs.is_empty() {
            if !help.contains("Example") {
                missing.push(c.clone());
            }
            continue;
        }
        for s in subs {
            let help = String::from_utf8(warden().args([c, &s, "--help"]).output().unwrap().stdout)
                .unwrap();
            if !help.contains("Example") {
                missing.push(format!("{c} {s}"));
            }
        }
    }
    assert!(missing.is_empty(), "no examples in: {missing:?}");
}

#[test]
fn commands_that_never_serve_ignore_an_unset_variable_in_server_bind() {
    let (_d, file, _) = init_project();
    let yaml = std::fs::read_to_string(&file).unwrap();
    assert!(yaml.contains("bind: 127.0.0.1:8080"), "{yaml}");
    std::fs::write(
        &file,
        yaml.replace(
            "bind: 127.0.0.1:8080",
            "bind: 127.0.0.1:${WARDEN_TEST_UNSET_PORT_VAR}",
        ),
    )
    .unwrap();
    for args in [vec!["log"], vec!["org", "list"], vec!["audit", "verify"]] {
        let out = cli(&file, &args);
        ok(&out);
    }
    // Serving still needs it, and says which.
    let out = cli(&file, &["check"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && err.contains("WARDEN_TEST_UNSET_PORT_VAR"),
        "{err}"
    );
}

#[test]
fn a_policy_test_yaml_error_names_the_file() {
    let (dir, file, _) = init_project();
    let cases = dir.path().join("cases.yaml");
    std::fs::write(&cases, "cases:\n  - name: x\n    tool: [\n").unwrap();
    let out = warden()
        .args([
            "policy",
            "test",
            "-p",
            file.to_str().unwrap(),
            cases.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = fails(&out);
    assert!(!err.contains("<input>"), "{err}");
    assert!(err.contains(&format!("{}:3:11", cases.display())), "{err}");
}

#[test]
fn why_explains_the_input_policies_for_given_arguments() {
    let (_d, file, _) = init_project();
    common::add_member(&file, "gus@acme.example", "guest", "mcp:read", false);
    let why = |args: &[&str]| {
        let mut all = vec![
            "why",
            "--user",
            "gus@acme.example",
            "--tool",
            "search_vendors",
            "--scope",
            "mcp:read",
        ];
        all.extend_from_slice(args);
        cli(&file, &all)
    };
    let out = why(&["--args", r#"{"query":"Cloud","limit":60}"#]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("DENIED at the input policy stage by rule 'bulk-search-admins-only'"),
        "{text}"
    );
    let out = why(&["--args", r#"{"query":"Cloud","limit":20}"#]);
    let text = ok(&out);
    assert!(
        text.contains("ALLOWED") && text.contains("no input policy denies"),
        "{text}"
    );
    let out = why(&["--args", r#"{"query":"Cloud","limit":"many"}"#]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("DENIED at the arguments stage"));
    let err = fails(&why(&["--args", "[1]"]));
    assert!(err.contains("--args must be a JSON object"), "{err}");
}

/// On PostgreSQL, no command prints sqlx's INFO notices (such as "relation already exists,
/// skipping" each time the migrations are checked).
#[tokio::test]
async fn postgres_state_commands_print_no_sqlx_notices() {
    use sqlx::Connection;
    let Some(admin) = std::env::var("WARDEN_TEST_POSTGRES_URL").ok() else {
        eprintln!("PostgreSQL half NOT run: set WARDEN_TEST_POSTGRES_URL");
        return;
    };
    let name = format!("warden_cli_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("WARDEN_TEST_POSTGRES_URL has no database: {admin}"),
    };
    let (_d, file) = empty_project();
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{yaml}\nstate:\n  postgres: {url}\n")).unwrap();
    let first = cli(&file, &["org", "add", "acme"]);
    let second = cli(&file, &["org", "list"]);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    ok(&first);
    assert!(ok(&second).contains("acme"));
    for out in [&first, &second] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("INFO"), "{err}");
    }
}

#[test]
fn configuration_secrets_can_come_from_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, file) = empty_project();
    let dir = file.parent().unwrap();
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    let secret = dir.join("secrets/public_url");
    std::fs::write(&secret, "https://warden.example.com\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        yaml.replace(
            "  # public_url: https://warden.example.com",
            "  public_url: ${file:secrets/public_url}",
        ),
    )
    .unwrap();
    ok(&cli(&file, &["check"]));
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = cli(&file, &["check"]);
    let err = fails(&out);
    assert!(
        err.contains("server.public_url") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!err.contains("warden.example.com"), "{err}");
}
