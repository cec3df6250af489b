//! The person's own page (`GET /console`): connected apps and API keys in one organisation;
//! and its actions: revoke an app, create, revoke and regenerate a key. Each action answers
//! with a redirect back to the page and a fixed notice, except a new secret, which is shown
//! once on a page of its own (never in a URL).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use warden_auth::console::{Admin, ConsoleError, CreatedKey, Member};

use super::{confirm, console_error, console_page, console_url, member, see_other, shown};
use crate::web::oauth::{AuthState, csrf_failed, csrf_ok, csrf_unavailable, new_csrf};

#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    pub(super) org: Option<String>,
    pub(super) done: Option<String>,
}

/// The notice a finished action asks the page to show: fixed words only.
pub(super) fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "app_revoked" => "App revoked. Its tokens stop working on their next request.",
        "key_revoked" => "Key revoked. It stops working on its next request.",
        "role_changed" => "Role changed.",
        "member_removed" => "Member removed; their connected apps here are revoked.",
        "member_added" => "Member added. Their role applies from their next request.",
        _ => return None,
    })
}

pub(super) async fn overview(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let back_to = match &q.org {
        Some(o) => console_url("/console", o, None),
        None => "/console".to_string(),
    };
    let m = match member(&s, &headers, addr, q.org.as_deref(), &back_to).await {
        Ok(m) => m,
        Err(page) => return page,
    };
    let console = s.auth.console();
    let (apps, keys) = match (console.apps(&m).await, console.keys(&m).await) {
        (Ok(a), Ok(k)) => (a, k),
        (Err(e), _) | (_, Err(e)) => return console_error(e),
    };
    let Some((csrf, cookie)) = new_csrf(&s) else {
        return csrf_unavailable();
    };
    let apps: Vec<minijinja::Value> = apps
        .iter()
        .map(|a| {
            minijinja::context! {
                grant => a.grant.to_string(),
                client_name => a.client_name.as_str(),
                scopes => a.scopes.to_string(),
                role => a.role.title(),
                created => shown(a.created_at),
            }
        })
        .collect();
    let keys: Vec<minijinja::Value> = keys
        .iter()
        .map(|k| {
            minijinja::context! {
                id => k.id.to_string(),
                prefix => k.display_prefix.as_str(),
                name => k.name.as_str(),
                scopes => k.scopes.to_string(),
                created => shown(k.created_at),
                last_used => k.last_used_at.map_or_else(|| "never".to_string(), shown),
                revoked => k.revoked_at.map(shown),
            }
        })
        .collect();
    let orgs: Vec<minijinja::Value> = m
        .orgs()
        .iter()
        .map(|(o, r)| minijinja::context! { slug => o.slug.as_str(), name => o.name.as_str(), role => r.title() })
        .collect();
    console_page(
        StatusCode::OK,
        "console.html",
        minijinja::context! {
            csrf_token => csrf,
            email => m.user().email.as_str(),
            org => m.org().slug.as_str(),
            org_name => m.org().name.as_str(),
            role => m.role().title(),
            is_admin => m.role() == warden_store::Role::Admin,
            orgs,
            apps,
            keys,
            notice => notice(q.done.as_deref()),
        },
        cookie,
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct AppForm {
    csrf_token: Option<String>,
    org: Option<String>,
    grant: Option<String>,
}

/// The member a console form for `action` acts as, once its CSRF token matched. A form
/// without the token is refused, and, when someone is signed in, the refusal recorded.
pub(super) async fn form_member(
    s: &AuthState,
    headers: &HeaderMap,
    addr: SocketAddr,
    csrf: Option<&str>,
    org: Option<&str>,
    action: &str,
) -> Result<Member, Response> {
    if !csrf_ok(s, headers, csrf) {
        if let Ok(m) = member(s, headers, addr, org, "/console").await
            && let Err(e) = s.auth.console().refuse_forged(&m, action).await
        {
            return Err(console_error(e));
        }
        return Err(csrf_failed());
    }
    member(s, headers, addr, org, "/console").await
}

/// The Admin a console form for `action` acts as: `form_member`, then the Admin permit
/// (refused with 403 and recorded for anyone else).
pub(super) async fn form_admin(
    s: &AuthState,
    headers: &HeaderMap,
    addr: SocketAddr,
    csrf: Option<&str>,
    org: Option<&str>,
    action: &str,
) -> Result<(Member, Admin), Response> {
    let m = form_member(s, headers, addr, csrf, org, action).await?;
    let admin = s
        .auth
        .console()
        .admin(&m, action)
        .await
        .map_err(console_error)?;
    Ok((m, admin))
}

/// A form's fields as a confirmation carries them.
pub(super) fn pairs(fields: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    fields
        .iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string())))
        .collect()
}

/// A gated action's failure: the confirmation page when the password is due, else the
/// usual page.
pub(super) fn gated_error(
    s: &AuthState,
    m: &Member,
    action: &'static str,
    fields: &[(&str, Option<&str>)],
    e: ConsoleError,
) -> Response {
    match e {
        ConsoleError::Reauthenticate => confirm::ask(s, m, action, &pairs(fields), None),
        e => console_error(e),
    }
}

pub(super) async fn revoke_app(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<AppForm>,
) -> Result<Response, Response> {
    let m = form_member(
        &s,
        &headers,
        addr,
        f.csrf_token.as_deref(),
        f.org.as_deref(),
        "/console/apps/revoke",
    )
    .await?;
    Ok(
        match s
            .auth
            .console()
            .revoke_app(&m, f.grant.as_deref().unwrap_or_default())
            .await
        {
            Ok(_) => see_other(&console_url("/console", &m.org().slug, Some("app_revoked"))),
            Err(e) => console_error(e),
        },
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct CreateKeyForm {
    csrf_token: Option<String>,
    org: Option<String>,
    name: Option<String>,
    scopes: Option<String>,
}

/// The page that shows a new secret, once.
fn secret_page(m: &Member, created: &CreatedKey, replaced: Option<&str>) -> Response {
    console_page(
        StatusCode::OK,
        "console_key.html",
        minijinja::context! {
            name => created.key.name.as_str(),
            secret => created.secret.expose(),
            scopes => created.key.scopes.to_string(),
            org => m.org().slug.as_str(),
            org_name => m.org().name.as_str(),
            replaced,
        },
        HeaderMap::new(),
    )
}

pub(super) async fn create_key(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CreateKeyForm>,
) -> Result<Response, Response> {
    let m = form_member(
        &s,
        &headers,
        addr,
        f.csrf_token.as_deref(),
        f.org.as_deref(),
        "/console/keys",
    )
    .await?;
    Ok(
        match s
            .auth
            .console()
            .create_key(
                &m,
                f.name.as_deref().unwrap_or_default(),
                f.scopes.as_deref().unwrap_or("mcp:read"),
            )
            .await
        {
            Ok(created) => secret_page(&m, &created, None),
            Err(e) => gated_error(
                &s,
                &m,
                "/console/keys",
                &[
                    ("org", f.org.as_deref()),
                    ("name", f.name.as_deref()),
                    ("scopes", f.scopes.as_deref()),
                ],
                e,
            ),
        },
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct KeyForm {
    csrf_token: Option<String>,
    org: Option<String>,
    key: Option<String>,
}

pub(super) async fn revoke_key(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<KeyForm>,
) -> Result<Response, Response> {
    let m = form_member(
        &s,
        &headers,
        addr,
        f.csrf_token.as_deref(),
        f.org.as_deref(),
        "/console/keys/revoke",
    )
    .await?;
    Ok(
        match s
            .auth
            .console()
            .revoke_key(&m, f.key.as_deref().unwrap_or_default())
            .await
        {
            Ok(_) => see_other(&console_url("/console", &m.org().slug, Some("key_revoked"))),
            Err(e) => console_error(e),
        },
    )
}

pub(super) async fn regenerate_key(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<KeyForm>,
) -> Result<Response, Response> {
    let m = form_member(
        &s,
        &headers,
        addr,
        f.csrf_token.as_deref(),
        f.org.as_deref(),
        "/console/keys/regenerate",
    )
    .await?;
    Ok(
        match s
            .auth
            .console()
            .regenerate_key(&m, f.key.as_deref().unwrap_or_default())
            .await
        {
            Ok(r) => secret_page(&m, &r.new, Some(&r.old.display_prefix)),
            Err(e) => gated_error(
                &s,
                &m,
                "/console/keys/regenerate",
                &[("org", f.org.as_deref()), ("key", f.key.as_deref())],
                e,
            ),
        },
    )
}
