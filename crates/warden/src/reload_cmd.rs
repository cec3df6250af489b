//! `warden reload`: asks every running `warden serve` of a project to re-read its file.
//!
//! `serve` (over HTTP) writes its pid to `.warden/serve/<pid>` beside the project file once it
//! answers SIGHUP, and removes it when it stops ([`PidFile`]). `reload` checks the file
//! first (a file with problems is reported and nobody is signalled), then sends SIGHUP to
//! each pid found there that is still a `warden serve` process (a stale file is removed,
//! and a pid now used by another program is never signalled), and reads the outcome each
//! server recorded (`project_reloaded` or `project_reload_failed`) from the audit trail.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use warden_store::audit::Filter;

/// How long `reload` waits for the servers to record what they did.
const OUTCOME_WAIT: Duration = Duration::from_secs(10);

/// Where the servers of `project_file` leave their pids.
fn pid_dir(project_file: &Path) -> PathBuf {
    project_file
        .parent()
        .unwrap_or(Path::new("."))
        .join(".warden")
        .join("serve")
}

/// This process's pid in the project's pid directory, for as long as it lives.
#[derive(Debug)]
pub(crate) struct PidFile(PathBuf);

impl PidFile {
    pub(crate) fn create(project_file: &Path) -> anyhow::Result<Self> {
        let dir = pid_dir(project_file);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let pid = std::process::id();
        let path = dir.join(pid.to_string());
        std::fs::write(&path, format!("{pid}\n"))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What a pid in the directory turned out to be.
enum Found {
    Serving(u32),
    /// No such process any more, or another program now: the file is left over.
    Stale(u32),
}

/// Whether `pid` is a running `warden serve`. Where `/proc` is missing (not Linux), a
/// listed pid is trusted.
fn is_warden_serve(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let program = args
        .first()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .unwrap_or_default();
    let is_warden = Path::new(&program)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("warden"));
    is_warden && args.iter().skip(1).any(|a| *a == b"serve")
}

fn servers(project_file: &Path) -> anyhow::Result<Vec<Found>> {
    let dir = pid_dir(project_file);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && is_warden_serve(pid) {
            found.push(Found::Serving(pid));
        } else {
            let _ = std::fs::remove_file(entry.path());
            found.push(Found::Stale(pid));
        }
    }
    found.sort_by_key(|f| match f {
        Found::Serving(p) | Found::Stale(p) => *p,
    });
    Ok(found)
}

fn send_hangup(pid: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .context("cannot run `kill`")?;
    anyhow::ensure!(status.success(), "`kill -HUP {pid}` failed ({status})");
    Ok(())
}

pub(crate) async fn run(project: PathBuf) -> anyhow::Result<ExitCode> {
    // The same checks the server makes, except that a `${VAR}` in `server` may be set only
    // in the server's environment; the server checks again with its own.
    let checked = match warden_core::project::load_file_offline(&project) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "{} problem(s) in {}; no server was signalled, and each keeps serving the project it has. Fix them and run `warden reload` again.",
                e.errors.len(),
                project.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let since = warden_core::audit::now();
    let mut signalled = Vec::new();
    for found in servers(&project)? {
        match found {
            Found::Stale(pid) => {
                println!("pid {pid} is no longer a running `warden serve`; removed its pid file")
            }
            Found::Serving(pid) => match send_hangup(pid) {
                Ok(()) => {
                    println!("sent SIGHUP to warden serve (pid {pid})");
                    signalled.push(pid);
                }
                Err(e) => eprintln!("could not signal pid {pid}: {e:#}"),
            },
        }
    }
    if signalled.is_empty() {
        eprintln!(
            "no running `warden serve` of {} was found (they list themselves in {}); start one with `warden serve -p {}`",
            project.display(),
            pid_dir(&project).display(),
            project.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if !checked.audit.enabled {
        println!(
            "the audit trail is off (`audit: {{ enabled: false }}`), so the outcome is only in each server's log"
        );
        return Ok(ExitCode::SUCCESS);
    }
    report_outcomes(&project, signalled.len(), since).await
}

/// Waits for each signalled server's record of its reload and prints it. Exit status 0
/// when every server reloaded.
async fn report_outcomes(
    project: &Path,
    servers: usize,
    since: String,
) -> anyhow::Result<ExitCode> {
    let store = crate::admin::open_state(project).await?;
    let deadline = tokio::time::Instant::now() + OUTCOME_WAIT;
    let records = loop {
        let mut records = Vec::new();
        for event in ["project_reloaded", "project_reload_failed"] {
            records.extend(
                store
                    .audit_query(&Filter {
                        since: Some(since.clone()),
                        event: Some(event.to_string()),
                        limit: 100,
                        ..Filter::default()
                    })
                    .await?,
            );
        }
        if records.len() >= servers || tokio::time::Instant::now() >= deadline {
            break records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    store.close().await;
    let mut ok = records.len() >= servers;
    for r in &records {
        if r.event == "project_reloaded" {
            let detail: serde_json::Value = r
                .detail
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or_default();
            println!(
                "reloaded: {} tools, {} resources, {} prompts, policy version {}",
                detail["tools"], detail["resources"], detail["prompts"], detail["policy_version"]
            );
        } else {
            ok = false;
            println!(
                "refused, nothing changed: {}",
                r.reason.as_deref().unwrap_or("see the server's log")
            );
        }
    }
    if records.len() < servers {
        println!(
            "{} of {servers} server(s) recorded no outcome within {} s; see their logs",
            servers - records.len(),
            OUTCOME_WAIT.as_secs()
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
