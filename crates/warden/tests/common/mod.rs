//! Black-box harness: runs the real `warden` binary on port 0 and talks MCP to it over HTTP.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod browser;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection};

pub fn warden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warden"))
}

pub fn run(args: &[&str]) -> Output {
    warden()
        .args(args)
        .env("WARDEN_LOG", "warn")
        .output()
        .expect("run warden")
}

/// A `warden init` project in a fresh temporary directory, with an organisation `acme`, an
/// admin `ana@acme.example` (password [`PASSWORD`]) and a read-write API key for her.
pub fn init_project() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p");
    let out = run(&["init", project.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = project.join("warden.yaml");
    let key = add_member(
        &file,
        "ana@acme.example",
        "admin",
        "mcp:read mcp:write",
        true,
    );
    (dir, file, key)
}

pub const PASSWORD: &str = "correct horse battery staple";

/// Adds `email` to org `acme` (created if needed) with `role`, and returns a new API key.
pub fn add_member(file: &Path, email: &str, role: &str, scope: &str, password: bool) -> String {
    add_member_in(file, "acme", email, role, scope, password)
}

/// [`add_member`] in organisation `org` (created if needed).
pub fn add_member_in(
    file: &Path,
    org: &str,
    email: &str,
    role: &str,
    scope: &str,
    password: bool,
) -> String {
    let f = file.to_str().unwrap();
    // `acme` is named "Acme", `globex` "Globex".
    let name = format!("{}{}", org[..1].to_uppercase(), &org[1..]);
    let _ = run(&["org", "create", org, "--name", &name, "-p", f]);
    let mut add = warden();
    add.args(["user", "add", email, "--org", org, "--role", role, "-p", f])
        .env("WARDEN_LOG", "warn");
    if password {
        add.arg("--password-stdin").stdin(Stdio::piped());
    }
    let mut child = add
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if password {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(PASSWORD.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "key", "create", "--org", org, "--user", email, "--name", "tests", "--scope", scope, "-p",
        f,
    ]);
    assert!(
        out.status.success(),
        "key create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `warden log --json` (every record, or those `args` select), parsed.
pub fn audit_log(file: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec![
        "log",
        "-p",
        file.to_str().unwrap(),
        "--json",
        "--limit",
        "1000000",
    ];
    all.extend_from_slice(args);
    let out = run(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub struct Server {
    child: Option<Child>,
    pub url: String,
    /// Sent as `Authorization: Bearer ...` by [`Server::session`].
    pub bearer: Option<String>,
    /// Every line the server wrote to stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(project: &Path) -> Server {
        Server::start_with(project, &[])
    }

    /// `warden serve` on port 0 with `extra` arguments (e.g. `--tls-cert`).
    pub fn start_with(project: &Path, extra: &[&str]) -> Server {
        let mut child = warden()
            .args([
                "serve",
                "-p",
                project.to_str().unwrap(),
                "--bind",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("WARDEN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn warden serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line.clone());
                if !sent && let Some(i) = line.find("serving MCP on ") {
                    let _ = tx.send(line[i + "serving MCP on ".len()..].trim().to_string());
                    sent = true;
                }
                if std::env::var_os("WARDEN_TEST_SERVER_LOG").is_some() {
                    eprintln!("[warden] {line}");
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("warden did not report its address");
        Server {
            child: Some(child),
            url,
            bearer: None,
            log,
        }
    }

    /// The server's process id (to signal it or read its memory).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Kills the server with SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server with SIGTERM, as an operator would, and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// A server started by someone else, e.g. `warden demo`.
    pub fn attach(url: String) -> Server {
        Server {
            child: None,
            url,
            bearer: None,
            log: Default::default(),
        }
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    pub fn with_bearer(mut self, bearer: impl Into<String>) -> Self {
        self.bearer = Some(bearer.into());
        self
    }

    /// A new MCP session (initialize + initialized).
    /// A session on this server as `bearer`.
    pub async fn session_as(&self, bearer: &str) -> Session {
        Server::attach(self.url.clone())
            .with_bearer(bearer)
            .session()
            .await
    }

    pub async fn session(&self) -> Session {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(b) = &self.bearer {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {b}").parse().unwrap(),
            );
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent("warden-tests")
            .default_headers(headers)
            .build()
            .unwrap();
        let res = http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"warden-tests","version":"1"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let id = res
            .headers()
            .get("mcp-session-id")
            .expect("session id")
            .to_str()
            .unwrap()
            .to_string();
        let init = sse_response(&res.text().await.unwrap(), 0);
        assert_eq!(init["result"]["serverInfo"]["name"], "warden");
        let s = Session {
            http,
            url: self.url.clone(),
            id,
            next: 1,
        };
        let status = s
            .post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await
            .status();
        assert_eq!(status, 202);
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The JSON-RPC message with `id` from an SSE body (or a plain JSON body).
pub fn sse_response(body: &str, id: i64) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return v;
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v["id"] == json!(id))
        .unwrap_or_else(|| panic!("no response with id {id} in: {body}"))
}

pub struct Session {
    pub http: reqwest::Client,
    pub url: String,
    pub id: String,
    next: i64,
}

impl Session {
    pub async fn post(&self, body: Value) -> reqwest::Response {
        self.http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Sends a request and returns the whole JSON-RPC response.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let res = self
            .post(json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}))
            .await;
        assert_eq!(res.status(), 200, "{method}");
        sse_response(&res.text().await.unwrap(), id)
    }

    /// `tools/call`, returning the `result` (panics on a JSON-RPC error).
    pub async fn call(&mut self, tool: &str, args: Value) -> Value {
        let r = self
            .request("tools/call", json!({"name": tool, "arguments": args}))
            .await;
        assert!(r.get("error").is_none(), "unexpected error: {r}");
        r["result"].clone()
    }
}

/// The confirmation token in a write preview, if `result` is one.
pub fn confirmation_token(result: &Value) -> Option<String> {
    let t = text(result);
    if result["isError"] != true || !t.starts_with("Confirmation required") {
        return None;
    }
    let start = t.find("wdn_cf_")?;
    Some(
        t[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect(),
    )
}

impl Session {
    /// A write as a user who approves the preview: call, then confirm with its token.
    pub async fn call_confirmed(&mut self, tool: &str, args: Value) -> Value {
        let preview = self.call(tool, args.clone()).await;
        let Some(token) = confirmation_token(&preview) else {
            return preview;
        };
        let mut args = args.as_object().cloned().unwrap_or_default();
        args.insert("confirm".into(), Value::Bool(true));
        args.insert("confirmation_token".into(), Value::String(token));
        self.call(tool, Value::Object(args)).await
    }
}

pub fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A fresh PostgreSQL database for one test, dropped when the value is.
pub struct PgDatabase {
    pub url: String,
    admin: String,
    name: String,
}

impl PgDatabase {
    /// `None` (and a note on stderr) without `WARDEN_TEST_POSTGRES_URL`.
    pub async fn create(test: &str) -> Option<PgDatabase> {
        let Some(admin) = std::env::var("WARDEN_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("PostgreSQL half NOT run: set WARDEN_TEST_POSTGRES_URL");
            return None;
        };
        let name = format!("warden_{test}_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("WARDEN_TEST_POSTGRES_URL has no database: {admin}"),
        };
        Some(PgDatabase { admin, name, url })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Dropped outside the test's runtime, which may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}
