//! Administration from the command line: organisations, users, memberships, API keys and
//! connected apps. Every command works on the project's state store.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::Subcommand;
use warden_auth::password::PasswordHasher;
use warden_auth::token::{self, TokenKind};
use warden_core::audit::{Event, Source};
use warden_core::project::{self, DataLocation};
use warden_store::audit::AuditLog;
use warden_store::{ApiKeyId, ClientId, Organization, Role, Scopes, Store, User};

/// An administrative change made from the command line, in `org`.
fn cli_event(kind: &'static str, org: &Organization, action: impl Into<String>) -> Event {
    let mut e = Event::new(kind, Source::Cli, action).org(org.slug.clone());
    e.auth_method = Some("cli".into());
    // Who ran the command, as far as the operating system says.
    e.credential = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .map(|u| format!("os-user:{u}"));
    e
}

/// Records a change that was just made. It cannot be undone here, so a failure is reported
/// loudly: the operator must know the trail lacks it.
async fn record(audit: &AuditLog, e: Event) -> anyhow::Result<()> {
    audit.append(e).await.map(|_| ()).map_err(|err| {
        anyhow::anyhow!("the change was made, but the audit trail could not record it: {err}")
    })
}

const ROLES: &str = "admin, member, siloed_member, guest, auxiliary_member or service_account";

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// List the organisations, with how many members each has.
    #[command(after_help = "Example:\n  warden org list")]
    List,
    /// Add an organisation.
    #[command(
        alias = "create",
        after_help = "Examples:\n  warden org add acme --name \"Acme Corp\"\n  warden org add acme            the name defaults to the slug"
    )]
    Add {
        /// URL-safe name: lowercase letters, digits and '-'.
        slug: String,
        /// The name people see, e.g. on the consent page.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the members of an organisation (the same as `warden member list --org SLUG`).
    #[command(after_help = "Example:\n  warden org members acme")]
    Members { slug: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List users, with their organisations and roles.
    #[command(after_help = "Examples:\n  warden user list\n  warden user list --org acme")]
    List {
        /// Only the members of this organisation.
        #[arg(long)]
        org: Option<String>,
    },
    /// Add a user, optionally with a password (read from standard input) and a membership.
    #[command(
        after_help = "Examples:\n  warden user add ana@acme.example --org acme --role member\n  printf '%s' \"$PW\" | warden user add ana@acme.example --org acme --role admin --password-stdin\n\nTo add an existing user to another organisation: warden member add EMAIL --role ROLE --org SLUG"
    )]
    Add {
        email: String,
        /// The name shown in lists (default: the part of the email before '@').
        #[arg(long)]
        name: Option<String>,
        /// Organisation to add the user to.
        #[arg(long)]
        org: Option<String>,
        /// The role in --org: admin, member, siloed_member, guest, auxiliary_member or
        /// service_account.
        #[arg(long, default_value = "member", requires = "org")]
        role: String,
        /// Read a password for sign-in from standard input (at least 10 characters).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new sign-in password: read from standard input, or generated and printed once.
    #[command(
        after_help = "Examples:\n  warden user reset-password ana@acme.example                 prints a new random password once\n  printf '%s' \"$PW\" | warden user reset-password ana@acme.example --password-stdin\n\nA running server keeps locking an account for 15 minutes after 10 failed sign-ins in a row;\na new password does not lift a lockout already in force."
    )]
    ResetPassword {
        email: String,
        /// Read the new password from standard input (at least 10 characters).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user: the account is disabled (kept, so the audit trail still names it), every
    /// membership is removed and every connected app and API key revoked.
    #[command(after_help = "Example:\n  warden user remove ana@acme.example")]
    Remove { email: String },
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// List the members of an organisation and their roles.
    #[command(after_help = "Example:\n  warden member list --org acme")]
    List {
        /// The organisation's slug, e.g. acme.
        #[arg(long)]
        org: String,
    },
    /// Add an existing user to an organisation with a role. Recorded as `member_added`.
    #[command(
        after_help = "Examples:\n  warden member add ana@acme.example --role member --org acme\n  warden member add ana@acme.example member --org acme      the role may also come second"
    )]
    Add {
        email: String,
        #[arg(hide = true)]
        role_positional: Option<String>,
        /// admin, member, siloed_member, guest, auxiliary_member or service_account.
        #[arg(long)]
        role: Option<String>,
        /// The organisation's slug, e.g. acme.
        #[arg(long)]
        org: String,
    },
    /// Give an existing member a new role (never adds anyone: see `member add`). OAuth
    /// connections take it at their next refresh; API keys at their next request.
    #[command(
        after_help = "Examples:\n  warden member set-role ana@acme.example --role guest --org acme\n  warden member set-role ana@acme.example guest --org acme"
    )]
    SetRole {
        email: String,
        #[arg(hide = true)]
        role_positional: Option<String>,
        /// admin, member, siloed_member, guest, auxiliary_member or service_account.
        #[arg(long)]
        role: Option<String>,
        /// The organisation's slug, e.g. acme.
        #[arg(long)]
        org: String,
    },
    /// Remove a member; their connected apps and API keys in the organisation are revoked at
    /// once (adding them back later does not revive them).
    #[command(after_help = "Example:\n  warden member remove ana@acme.example --org acme")]
    Remove {
        email: String,
        /// The organisation's slug, e.g. acme.
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List an organisation's API keys (never the keys themselves).
    #[command(
        after_help = "Examples:\n  warden key list --org acme\n  warden key list --org acme --user ana@acme.example"
    )]
    List {
        /// The organisation's slug, e.g. acme.
        #[arg(long)]
        org: String,
        /// Only this user's keys.
        #[arg(long)]
        user: Option<String>,
    },
    /// Add an API key. The key is printed once and never stored; keep it safe.
    #[command(
        alias = "create",
        after_help = "Examples:\n  warden key add --org acme --user ana@acme.example --name laptop\n  warden key add --org acme --user ana@acme.example --name agent --scope \"mcp:read mcp:write\"\n\nThe key alone goes to standard output, so `KEY=$(warden key add ...)` keeps it."
    )]
    Add {
        /// The organisation's slug, e.g. acme.
        #[arg(long)]
        org: String,
        /// The user's email.
        #[arg(long)]
        user: String,
        /// A name to recognise the key by in `warden key list`.
        #[arg(long)]
        name: String,
        /// mcp:read, or "mcp:read mcp:write".
        #[arg(long, default_value = "mcp:read")]
        scope: String,
    },
    /// Revoke an API key; it stops working on the next request.
    #[command(
        alias = "remove",
        after_help = "Example:\n  warden key revoke 6f1c...-... --org acme      the id is in `warden key list --org acme`"
    )]
    Revoke {
        id: String,
        /// The organisation's slug, e.g. acme.
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// List the apps connected in an organisation, per user.
    #[command(after_help = "Example:\n  warden apps list --org acme")]
    List {
        /// The organisation's slug, e.g. acme.
        #[arg(long)]
        org: String,
    },
    /// Revoke a connected app in an organisation: all its tokens stop working at once.
    #[command(
        alias = "remove",
        after_help = "Example:\n  warden apps revoke 2b7e...-... --org acme      the client id is in `warden apps list --org acme`"
    )]
    Revoke {
        client_id: String,
        /// The organisation's slug, e.g. acme.
        #[arg(long)]
        org: String,
    },
}

/// The role named by `--role ROLE` or, for compatibility, as the argument after the email.
fn role_arg(flag: Option<String>, positional: Option<String>) -> anyhow::Result<Role> {
    match (flag, positional) {
        (Some(f), Some(p)) if f != p => {
            bail!("two roles given ('{p}' and --role {f}); name one, with --role")
        }
        (Some(r), _) | (None, Some(r)) => role(&r),
        (None, None) => bail!("name the role with --role ROLE, one of: {ROLES}"),
    }
}

/// A password from standard input, hashed; or, without `from_stdin`, a new random one,
/// returned so it can be shown once.
async fn new_password(from_stdin: bool) -> anyhow::Result<(String, Option<String>)> {
    let (password, shown) = if from_stdin {
        let mut p = String::new();
        std::io::stdin()
            .read_to_string(&mut p)
            .context("cannot read the password from standard input")?;
        (p.trim_end_matches(['\r', '\n']).to_string(), None)
    } else {
        let p = token::generate(TokenKind::Csrf)?.expose()["wdn_csrf_".len()..][..20].to_string();
        (p.clone(), Some(p))
    };
    let hasher = PasswordHasher::new(1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let phc = hasher
        .hash(&password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((phc, shown))
}

/// Opens (creating and migrating if needed) the state store named by the project file.
pub async fn open_state(project_file: &Path) -> anyhow::Result<Store> {
    let project = project::load_file_offline(project_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    open_state_at(&project.auth.state).await
}

pub async fn open_state_at(location: &DataLocation) -> anyhow::Result<Store> {
    let store = match location {
        DataLocation::Sqlite(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            Store::open_sqlite(path)
                .await
                .with_context(|| format!("cannot open the state store {}", path.display()))?
        }
        DataLocation::Postgres(url) => Store::connect(url)
            .await
            .context("cannot open the PostgreSQL state store")?,
    };
    store
        .migrate()
        .await
        .context("cannot prepare the state store's tables")?;
    Ok(store)
}

async fn org(store: &Store, slug: &str) -> anyhow::Result<Organization> {
    store.org_by_slug(slug).await?.with_context(|| {
        format!(
            "no organisation '{slug}'; add it with `warden org add {slug}` (see `warden org list`)"
        )
    })
}

async fn user(store: &Store, email: &str) -> anyhow::Result<User> {
    store.user_by_email(email).await?.with_context(|| {
        format!("no user '{email}'; add it with `warden user add {email}` (see `warden user list`)")
    })
}

fn role(s: &str) -> anyhow::Result<Role> {
    s.parse::<Role>().map_err(|e| anyhow::anyhow!("{e}"))
}

pub async fn run_org(store: &Store, audit: &AuditLog, cmd: OrgCommand) -> anyhow::Result<()> {
    match cmd {
        OrgCommand::List => {
            let orgs = store.list_orgs().await?;
            if orgs.is_empty() {
                println!(
                    "No organisations yet. Add one with `warden org add SLUG --name \"NAME\"`."
                );
                return Ok(());
            }
            println!("{:<24}  {:<32}  MEMBERS", "SLUG", "NAME");
            for o in orgs {
                let members = store.list_members(o.id).await?.len();
                println!("{:<24}  {:<32}  {members}", o.slug, o.name);
            }
        }
        OrgCommand::Add { slug, name } => {
            let o = store
                .create_org(&slug, name.as_deref().unwrap_or(&slug))
                .await?;
            record(audit, cli_event("org_created", &o, o.slug.clone())).await?;
            println!("Created organisation {} ({})", o.slug, o.name);
        }
        OrgCommand::Members { slug } => list_members(store, &slug).await?,
    }
    Ok(())
}

async fn list_members(store: &Store, slug: &str) -> anyhow::Result<()> {
    let o = org(store, slug).await?;
    println!("{:<36}  {:<16}  SINCE", "EMAIL", "ROLE");
    for (u, m) in store.list_members(o.id).await? {
        println!(
            "{:<36}  {:<16}  {}",
            u.email,
            m.role,
            m.created_at.format("%Y-%m-%d")
        );
    }
    Ok(())
}

pub async fn run_user(store: &Store, audit: &AuditLog, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::List { org: slug } => {
            let only = match &slug {
                Some(s) => Some(org(store, s).await?),
                None => None,
            };
            println!(
                "{:<36}  {:<10}  {:<8}  ORGANISATIONS",
                "EMAIL", "STATUS", "PASSWORD"
            );
            for u in store.list_users().await? {
                let orgs = store.orgs_of_user(u.id).await?;
                if let Some(o) = &only
                    && !orgs.iter().any(|(x, _)| x.id == o.id)
                {
                    continue;
                }
                let orgs: Vec<String> = orgs
                    .iter()
                    .map(|(o, m)| format!("{} ({})", o.slug, m.role))
                    .collect();
                println!(
                    "{:<36}  {:<10}  {:<8}  {}",
                    u.email,
                    if u.disabled_at.is_some() {
                        "disabled"
                    } else {
                        "active"
                    },
                    if u.password_hash.is_some() {
                        "set"
                    } else {
                        "none"
                    },
                    if orgs.is_empty() {
                        "-".to_string()
                    } else {
                        orgs.join(", ")
                    }
                );
            }
        }
        UserCommand::Add {
            email,
            name,
            org: org_slug,
            role: role_name,
            password_stdin,
        } => {
            let role = role(&role_name)?;
            // Check everything before writing anything.
            let o = match &org_slug {
                Some(s) => Some(org(store, s).await?),
                None => None,
            };
            if let Some(existing) = store.user_by_email(&email).await? {
                let member_of = match &o {
                    Some(o) => store.membership(o.id, existing.id).await?,
                    None => None,
                };
                let hint = match (&o, member_of) {
                    (Some(o), Some(m)) => format!(
                        "They are already a member of {} ({}); to change that, run `warden member set-role {} --role {role} --org {}`",
                        o.slug, m.role, existing.email, o.slug
                    ),
                    (Some(o), None) => format!(
                        "To add them to {}, run `warden member add {} --role {role} --org {}`",
                        o.slug, existing.email, o.slug
                    ),
                    (None, _) => format!(
                        "To add them to an organisation, run `warden member add {} --role ROLE --org SLUG`",
                        existing.email
                    ),
                };
                bail!(
                    "user {} already exists; nothing was changed. {hint}",
                    existing.email
                );
            }
            let password = if password_stdin {
                Some(new_password(true).await?.0)
            } else {
                None
            };
            let display =
                name.unwrap_or_else(|| email.split('@').next().unwrap_or(&email).to_string());
            let u = store.create_user(&email, &display).await?;
            if let Some(phc) = password {
                store.set_password_hash(u.id, &phc).await?;
            }
            if let Some(o) = o {
                store.set_membership(o.id, u.id, role).await?;
                let mut e = cli_event("member_added", &o, u.email.clone())
                    .user(u.id.to_string(), u.email.clone());
                e.detail = Some(
                    serde_json::json!({"role": role.to_string(), "password_set": password_stdin}),
                );
                record(audit, e).await?;
                println!("Added {} to {} as {role}", u.email, o.slug);
            } else {
                println!(
                    "Added {} (no organisation yet: `warden member add {} --role ROLE --org SLUG`)",
                    u.email, u.email
                );
            }
        }
        UserCommand::ResetPassword {
            email,
            password_stdin,
        } => {
            let u = user(store, &email).await?;
            let (phc, shown) = new_password(password_stdin).await?;
            store.set_password_hash(u.id, &phc).await?;
            // Whoever signed in with the old password is signed out.
            let ended = store.revoke_user_sessions(u.id, Utc::now()).await?;
            if ended > 0 {
                eprintln!("Signed {} out of {ended} browser session(s)", u.email);
            }
            for (o, _) in store.orgs_of_user(u.id).await? {
                let e = cli_event("password_reset", &o, u.email.clone())
                    .user(u.id.to_string(), u.email.clone());
                record(audit, e).await?;
            }
            match shown {
                Some(p) => {
                    eprintln!(
                        "New password for {} (shown once; share it safely):",
                        u.email
                    );
                    println!("{p}");
                }
                None => println!("Set a new password for {}", u.email),
            }
        }
        UserCommand::Remove { email } => {
            let u = user(store, &email).await?;
            if u.disabled_at.is_some() {
                bail!("{} was already removed; nothing was changed", u.email);
            }
            let now = Utc::now();
            store.set_user_disabled(u.id, Some(now)).await?;
            store.revoke_user_sessions(u.id, now).await?;
            let mut left = Vec::new();
            for (o, _) in store.orgs_of_user(u.id).await? {
                store.remove_membership(o.id, u.id).await?;
                let revoked = store
                    .revoke_grants_of_member(o.id, u.id, "user removed", now)
                    .await?;
                let mut e = cli_event("member_removed", &o, u.email.clone())
                    .user(u.id.to_string(), u.email.clone());
                e.detail =
                    Some(serde_json::json!({"grants_revoked": revoked, "user_removed": true}));
                record(audit, e).await?;
                left.push(o.slug);
            }
            println!(
                "Removed {}: the account is disabled{}",
                u.email,
                if left.is_empty() {
                    String::new()
                } else {
                    format!(" and no longer a member of {}", left.join(", "))
                }
            );
        }
    }
    Ok(())
}

pub async fn run_member(store: &Store, audit: &AuditLog, cmd: MemberCommand) -> anyhow::Result<()> {
    match cmd {
        MemberCommand::List { org: slug } => list_members(store, &slug).await?,
        MemberCommand::Add {
            email,
            role_positional,
            role: role_flag,
            org: slug,
        } => {
            let role = role_arg(role_flag, role_positional)?;
            let (o, u) = (org(store, &slug).await?, user(store, &email).await?);
            if store.add_membership(o.id, u.id, role).await?.is_none() {
                bail!(
                    "{} is already a member of {}; nothing was changed. To change their role, run `warden member set-role {} --role {role} --org {}`",
                    u.email,
                    o.slug,
                    u.email,
                    o.slug
                );
            }
            let mut e = cli_event("member_added", &o, u.email.clone())
                .user(u.id.to_string(), u.email.clone());
            e.detail = Some(serde_json::json!({"role": role.to_string()}));
            record(audit, e).await?;
            println!("Added {} to {} as {role}", u.email, o.slug);
        }
        MemberCommand::SetRole {
            email,
            role_positional,
            role: role_flag,
            org: slug,
        } => {
            let role = role_arg(role_flag, role_positional)?;
            let (o, u) = (org(store, &slug).await?, user(store, &email).await?);
            // The role before, for the record; the change itself touches members only.
            let before = store.membership(o.id, u.id).await?.map(|m| m.role);
            let (Some(before), Some(_)) = (before, store.change_role(o.id, u.id, role).await?)
            else {
                bail!(
                    "{} is not a member of {}; nothing was changed. To add them, run `warden member add {} --role {role} --org {}`",
                    u.email,
                    o.slug,
                    u.email,
                    o.slug
                );
            };
            let mut e = cli_event("role_changed", &o, u.email.clone())
                .user(u.id.to_string(), u.email.clone());
            e.detail = Some(serde_json::json!({
                "from": before.to_string(),
                "to": role.to_string(),
            }));
            record(audit, e).await?;
            println!("{} in {}: {before} -> {role}", u.email, o.slug);
        }
        MemberCommand::Remove { email, org: slug } => {
            let o = org(store, &slug).await?;
            let u = user(store, &email).await?;
            if !store.remove_membership(o.id, u.id).await? {
                bail!("{} is not a member of {}", u.email, o.slug);
            }
            let revoked = store
                .revoke_grants_of_member(o.id, u.id, "member removed", Utc::now())
                .await?;
            let mut e = cli_event("member_removed", &o, u.email.clone())
                .user(u.id.to_string(), u.email.clone());
            e.detail = Some(serde_json::json!({"grants_revoked": revoked}));
            record(audit, e).await?;
            println!(
                "Removed {} from {}; revoked {revoked} connected app(s)",
                u.email, o.slug
            );
        }
    }
    Ok(())
}

pub async fn run_key(store: &Store, audit: &AuditLog, cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Add {
            org: slug,
            user: email,
            name,
            scope,
        } => {
            let scopes: Scopes = scope.parse().map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
            let o = org(store, &slug).await?;
            let u = user(store, &email).await?;
            if store.membership(o.id, u.id).await?.is_none() {
                bail!(
                    "{} is not a member of {}; add them first with `warden member add {} --role member --org {}`",
                    u.email,
                    o.slug,
                    u.email,
                    o.slug
                );
            }
            let raw = token::generate(TokenKind::ApiKey)?;
            let key = store
                .create_api_key(
                    raw.hash().as_str(),
                    &raw.display_prefix(),
                    o.id,
                    u.id,
                    &name,
                    scopes,
                    Utc::now(),
                )
                .await?;
            let mut e =
                cli_event("key_created", &o, name.clone()).user(u.id.to_string(), u.email.clone());
            e.detail =
                Some(serde_json::json!({"key": key.id.to_string(), "scopes": scopes.to_string()}));
            record(audit, e).await?;
            eprintln!(
                "Created API key {} ({name}) for {} in {} with {scopes}.",
                key.id, u.email, o.slug
            );
            eprintln!("This is the only time it is shown:");
            println!("{}", raw.expose());
        }
        KeyCommand::List {
            org: slug,
            user: only,
        } => {
            let o = org(store, &slug).await?;
            let only = match &only {
                Some(e) => Some(user(store, e).await?.id),
                None => None,
            };
            println!(
                "{:<36}  {:<12}  {:<16}  {:<28}  {:<18}  STATUS",
                "ID", "PREFIX", "NAME", "USER", "SCOPES"
            );
            for (k, u) in store.list_api_keys(o.id).await? {
                if only.is_some_and(|id| id != u.id) {
                    continue;
                }
                let status = match (k.revoked_at, k.last_used_at) {
                    (Some(r), _) => format!("revoked {}", r.format("%Y-%m-%d")),
                    (None, Some(l)) => format!("last used {}", l.format("%Y-%m-%d %H:%M")),
                    (None, None) => "never used".into(),
                };
                println!(
                    "{:<36}  {:<12}  {:<16}  {:<28}  {:<18}  {status}",
                    k.id,
                    k.display_prefix,
                    k.name,
                    u.email,
                    k.scopes.to_string()
                );
            }
        }
        KeyCommand::Revoke { id, org: slug } => {
            let o = org(store, &slug).await?;
            let key_id: ApiKeyId = id.parse().map_err(|_| {
                anyhow::anyhow!("'{id}' is not an API key id; see `warden key list --org {slug}`")
            })?;
            if !store.revoke_api_key(o.id, &key_id, Utc::now()).await? {
                bail!("no active API key {id} in {slug}");
            }
            let mut e = cli_event("key_revoked", &o, id.clone());
            e.detail = Some(serde_json::json!({"key": id}));
            record(audit, e).await?;
            println!("Revoked API key {id}");
        }
    }
    Ok(())
}

pub async fn run_apps(store: &Store, audit: &AuditLog, cmd: AppsCommand) -> anyhow::Result<()> {
    match cmd {
        AppsCommand::List { org: slug } => {
            let o = org(store, &slug).await?;
            println!(
                "{:<36}  {:<24}  {:<28}  {:<18}  CONNECTED",
                "CLIENT ID", "APP", "USER", "SCOPES"
            );
            for (g, c, u) in store.list_grants(o.id).await? {
                println!(
                    "{:<36}  {:<24}  {:<28}  {:<18}  {}",
                    c.id,
                    c.name,
                    u.email,
                    g.scopes.to_string(),
                    g.created_at.format("%Y-%m-%d %H:%M")
                );
            }
        }
        AppsCommand::Revoke {
            client_id,
            org: slug,
        } => {
            let o = org(store, &slug).await?;
            let id: ClientId = client_id.parse().map_err(|_| {
                anyhow::anyhow!(
                    "'{client_id}' is not a client id; see `warden apps list --org {slug}`"
                )
            })?;
            let n = store.revoke_client_in_org(o.id, &id, Utc::now()).await?;
            if n == 0 {
                bail!("no connection of app {client_id} in {slug}");
            }
            let mut e = cli_event("app_revoked", &o, client_id.clone());
            e.detail = Some(serde_json::json!({"client": client_id, "connections_revoked": n}));
            record(audit, e).await?;
            println!(
                "Revoked {n} connection(s) of app {client_id} in {slug}; their tokens stop working now"
            );
        }
    }
    Ok(())
}

/// The exact commands that give project `file` its first organisation, admin and key.
pub fn first_steps(file: &Path, org: &str, admin: &str) -> Vec<String> {
    let p = shell_word(&file.display().to_string());
    vec![
        format!("warden org add {org} -p {p}"),
        format!("warden user add {admin} --org {org} --role admin -p {p}"),
        format!("warden user reset-password {admin} -p {p}"),
        format!(
            "warden key add --org {org} --user {admin} --name first-key --scope \"mcp:read mcp:write\" -p {p}"
        ),
        format!("warden serve -p {p}"),
    ]
}

/// `s` quoted for a POSIX shell when it needs quoting.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@=,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What `serve` says at start when nobody could connect: no organisation, or none with a
/// member. `None` when someone can.
pub async fn nobody_can_connect(store: &Store, file: &Path) -> anyhow::Result<Option<String>> {
    if store.any_membership().await? {
        return Ok(None);
    }
    let orgs = store.list_orgs().await?;
    let org = orgs.first().map_or("acme", |o| o.slug.as_str());
    let mut steps = first_steps(file, org, "admin@example.com");
    steps.pop();
    if !orgs.is_empty() {
        steps.remove(0);
    }
    Ok(Some(format!(
        "nobody can connect yet: {}. Add an admin and a key (they work at once, no restart needed):\n  {}",
        if orgs.is_empty() {
            "there is no organisation".to_string()
        } else {
            format!(
                "no organisation has a member ({})",
                orgs.iter()
                    .map(|o| o.slug.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        steps.join("\n  ")
    )))
}

/// What `warden init --org --admin` seeds: the organisation, its admin with a new password,
/// and a read-write API key.
pub struct FirstAdmin {
    pub password: String,
    pub key: String,
}

pub async fn seed_first_admin(
    store: &Store,
    audit: &AuditLog,
    slug: &str,
    name: &str,
    email: &str,
) -> anyhow::Result<FirstAdmin> {
    let o = store.create_org(slug, name).await?;
    record(audit, cli_event("org_created", &o, o.slug.clone())).await?;
    let display = email.split('@').next().unwrap_or(email).to_string();
    let u = store.create_user(email, &display).await?;
    let (phc, password) = new_password(false).await?;
    store.set_password_hash(u.id, &phc).await?;
    store.set_membership(o.id, u.id, Role::Admin).await?;
    let mut e =
        cli_event("member_added", &o, u.email.clone()).user(u.id.to_string(), u.email.clone());
    e.detail = Some(serde_json::json!({"role": "admin", "password_set": true}));
    record(audit, e).await?;
    let raw = token::generate(TokenKind::ApiKey)?;
    let key = store
        .create_api_key(
            raw.hash().as_str(),
            &raw.display_prefix(),
            o.id,
            u.id,
            "first-key",
            Scopes::READ_WRITE,
            Utc::now(),
        )
        .await?;
    let mut e = cli_event("key_created", &o, "first-key").user(u.id.to_string(), u.email.clone());
    e.detail = Some(
        serde_json::json!({"key": key.id.to_string(), "scopes": Scopes::READ_WRITE.to_string()}),
    );
    record(audit, e).await?;
    Ok(FirstAdmin {
        password: password.unwrap_or_default(),
        key: raw.expose().to_string(),
    })
}

/// What `warden demo` seeds: an organisation, an admin who can sign in, a read-only key and
/// a read-write key.
pub struct DemoIdentity {
    pub org: String,
    pub admin_email: String,
    pub admin_password: String,
    pub read_key: String,
    pub write_key: String,
}

pub async fn seed_demo(store: &Store) -> anyhow::Result<DemoIdentity> {
    let o = store.create_org("demo", "Demo Organisation").await?;
    let admin = store
        .create_user("admin@demo.example", "Demo Admin")
        .await?;
    store.set_membership(o.id, admin.id, Role::Admin).await?;
    let (phc, password) = new_password(false).await?;
    store.set_password_hash(admin.id, &phc).await?;
    let mut keys = Vec::new();
    for (name, scopes) in [
        ("demo read-only", Scopes::READ),
        ("demo read-write", Scopes::READ_WRITE),
    ] {
        let key = token::generate(TokenKind::ApiKey)?;
        store
            .create_api_key(
                key.hash().as_str(),
                &key.display_prefix(),
                o.id,
                admin.id,
                name,
                scopes,
                Utc::now(),
            )
            .await?;
        keys.push(key.expose().to_string());
    }
    let [read_key, write_key] = <[String; 2]>::try_from(keys)
        .map_err(|_| anyhow::anyhow!("the demo keys could not be created"))?;
    Ok(DemoIdentity {
        org: o.slug,
        admin_email: admin.email,
        admin_password: password.unwrap_or_default(),
        read_key,
        write_key,
    })
}
