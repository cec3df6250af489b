//! `warden why`: explains, from the state store and the project file, whether a user may use
//! a tool through an assistant, stage by stage as the pipeline decides (role and scope, then
//! the arguments, then the input policies), and which rule decides.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::admin;

/// `warden why`: the authorize stage's own decision, spelled out.
pub(crate) async fn run(
    project_file: &Path,
    email: &str,
    tool: &str,
    org: Option<&str>,
    scope: Option<&str>,
    args: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let args: Option<serde_json::Map<String, serde_json::Value>> = match args {
        None => None,
        Some(text) => match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            Ok(_) => anyhow::bail!(
                "--args must be a JSON object, e.g. --args '{{\"query\":\"Cloud\",\"limit\":20}}'"
            ),
            Err(e) => anyhow::bail!("--args is not valid JSON: {e}"),
        },
    };
    let (project, _) = warden_core::tables::load_file(project_file, true)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
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
        match warden_core::pipeline::explain(t, &caller, args.as_ref()) {
            Ok(verdict) => {
                any_allowed = true;
                println!("  with {scopes}: ALLOWED {verdict}");
            }
            Err(verdict) => println!("  with {scopes}: DENIED {verdict}"),
        }
    }
    if let Some(a) = &args {
        println!(
            "(for the arguments {})",
            serde_json::Value::Object(a.clone())
        );
    }
    print_limits(&project, t, &user, o, m, &store).await;
    store.close().await;
    Ok(if any_allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The `limits` that apply to this user calling this tool, and how many calls each has left
/// now (from the buckets every instance shares).
async fn print_limits(
    project: &warden_core::project::Project,
    tool: &warden_core::project::Tool,
    user: &warden_store::User,
    org: &warden_store::Organization,
    m: &warden_store::Membership,
    store: &warden_store::Store,
) {
    use warden_core::pipeline::limits;
    if project.limits.is_empty() {
        println!("  limits: none (no `limits` in the project file)");
        return;
    }
    let caller = warden_core::identity::Principal {
        user_id: user.id.to_string(),
        email: user.email.clone(),
        org: org.slug.clone(),
        role: m.role,
        scopes: warden_store::Scopes::READ_WRITE,
        method: "explain",
        credential: String::new(),
    };
    let now = chrono::Utc::now();
    let mut applied = limits::applicable(&project.limits, &caller, tool, now);
    applied.extend(limits::row_quotas(&project.limits, &caller, tool, now));
    let buckets = warden_auth::rate::SharedLimiter::new(store.clone());
    println!("  limits:");
    for a in &applied {
        let rule = warden_auth::rate::Rule {
            rate_per_sec: a.rate.per_sec,
            burst: a.rate.burst,
        };
        match buckets.left(&a.key, rule, now).await {
            Ok(left) => println!(
                "    {}: {}; {} left now",
                a.name,
                a.describe(),
                left.floor()
            ),
            Err(e) => println!(
                "    {}: {}; cannot read what is left: {e}",
                a.name,
                a.describe()
            ),
        }
    }
    if applied.is_empty() {
        println!("    none apply to this user and tool");
    }
    if let Some(b) = project.limits.per_client {
        println!(
            "    limits.per_client: {} per API key or connected app, counted for whichever one calls",
            limits::Rate::from(b).describe()
        );
    }
}
