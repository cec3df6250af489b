//! `warden check`: loads a project file and lists every problem in it, with its line and
//! field; then, once the file itself is valid, prepares every tool's and resource's
//! statement on the configured database (`database.rs`), so that a missing table or column,
//! a syntax error or a missing data file is found here rather than on the first call.
//! Nothing is served, run, written or created.

mod database;

use std::path::PathBuf;
use std::process::ExitCode;

use warden_core::project::{self, ProjectError};

pub(crate) use database::missing_data_file;

/// Exit status 0 when the project is valid, 1 otherwise.
pub(crate) async fn run(project: PathBuf) -> anyhow::Result<ExitCode> {
    let p = match project::load_file(&project) {
        Ok(p) => p,
        Err(e) => return Ok(failed(&e.errors)),
    };
    let report = database::check(&p).await;
    if !report.problems.is_empty() {
        return Ok(failed(&report.problems));
    }
    println!(
        "{}: ok ({} tools, {} resources, {} prompts; {})",
        project.display(),
        p.tools.len(),
        p.resources.len(),
        p.prompts.len(),
        report.summary
    );
    sign_in(&p);
    Ok(ExitCode::SUCCESS)
}

/// Each identity provider and the redirect URI to register at it.
fn sign_in(p: &project::Project) {
    let base = p
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", p.server.bind));
    for provider in &p.auth.sign_in.providers {
        let preset = match &provider.kind {
            project::ProviderKind::Oidc { preset, .. } => preset,
            project::ProviderKind::GitHub { .. } => &"github",
        };
        println!(
            "sign-in: {} ({preset}, {}, {} mapping rule(s)); register the redirect URI {base}/login/sso/{}/callback",
            provider.name,
            provider.kind.issuer(),
            provider.map.len(),
            provider.name
        );
    }
    if !p.auth.sign_in.providers.is_empty() && p.server.public_url.is_none() {
        println!(
            "note: server.public_url is not set, so the redirect URI above assumes the bind address; set public_url to the address people use"
        );
    }
}

fn failed(problems: &[ProjectError]) -> ExitCode {
    for p in problems {
        eprintln!("{p}");
    }
    eprintln!("{} problem(s) found; nothing was served.", problems.len());
    ExitCode::FAILURE
}
