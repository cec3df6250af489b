//! `warden why`: explains, from the state store and the project file, whether a user may use
//! a tool through an assistant and which rule of the authorize stage decides.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use warden_core::project;

use crate::admin;

/// `warden why`: the authorize stage's own decision, spelled out.
pub(crate) async fn run(
    project_file: &Path,
    email: &str,
    tool: &str,
    org: Option<&str>,
    scope: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let project = project::load_file(project_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let t = project.tool(tool).ok_or_else(|| {
        let names: Vec<&str> = project.tools.iter().map(|t| t.name.as_str()).collect();
        anyhow::anyhow!(
            "no tool '{tool}' in {}; its tools are: {}",
            project_file.display(),
            names.join(", ")
        )
    })?;
    let store = admin::open_state_at(&project.auth.state).await?;
    let user = store
        .user_by_email(email)
        .await?
        .with_context(|| format!("no user '{email}'"))?;
    let memberships = store.orgs_of_user(user.id).await?;
    let (o, m) = match (org, memberships.as_slice()) {
        (Some(slug), _) => memberships
            .iter()
            .find(|(o, _)| o.slug == slug)
            .with_context(|| format!("{email} is not a member of '{slug}'"))?,
        (None, [one]) => one,
        (None, []) => {
            anyhow::bail!("{email} belongs to no organisation, so it cannot use any tool")
        }
        (None, _) => anyhow::bail!("{email} belongs to several organisations; name one with --org"),
    };
    let scope_sets: Vec<warden_store::Scopes> = match scope {
        Some(s) => vec![s.parse().map_err(|e| anyhow::anyhow!("--scope: {e}"))?],
        None => vec![warden_store::Scopes::READ, warden_store::Scopes::READ_WRITE],
    };
    println!(
        "{email} is {} in {}; {tool} is a {} tool.",
        m.role.title(),
        o.slug,
        t.access.as_str()
    );
    let mut any_allowed = false;
    for scopes in scope_sets {
        let caller = warden_core::identity::Principal {
            user_id: user.id.to_string(),
            email: user.email.clone(),
            org: o.slug.clone(),
            role: m.role,
            scopes,
            method: "explain",
            credential: String::new(),
        };
        match warden_core::authz::decide(&caller, t.access) {
            Ok(p) => {
                any_allowed = true;
                println!("  with {scopes}: ALLOWED by rule {}", p.rule());
            }
            Err(d) => println!(
                "  with {scopes}: DENIED at the {} stage by rule {}: {}",
                d.stage.as_str(),
                d.rule,
                d.reason
            ),
        }
    }
    store.close().await;
    Ok(if any_allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
