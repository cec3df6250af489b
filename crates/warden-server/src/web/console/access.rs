//! The Admin's view of every API key and connected app in the organisation
//! (`GET /console/admin/access`), and revoking any one of them. An id from another
//! organisation changes nothing and is refused on the record.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::account::{PageQuery, form_admin};
use super::{admin_page, console_error, console_page, console_url, see_other, shown};
use crate::web::oauth::{AuthState, csrf_unavailable, new_csrf};

const PAGE: &str = "/console/admin/access";

fn done(d: Option<&str>) -> Option<&'static str> {
    Some(match d? {
        "key_revoked" => "Key revoked. It stops working on its next request.",
        "app_revoked" => "App revoked. Its tokens stop working on their next request.",
        _ => return None,
    })
}

pub(super) async fn list(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response, Response> {
    let (m, admin) = admin_page(&s, &headers, addr, q.org.as_deref(), PAGE).await?;
    let console = s.auth.console();
    let keys = console.org_keys(&admin).await.map_err(console_error)?;
    let apps = console.org_apps(&admin).await.map_err(console_error)?;
    let Some((csrf, cookie)) = new_csrf(&s) else {
        return Err(csrf_unavailable());
    };
    let keys: Vec<minijinja::Value> = keys
        .iter()
        .map(|(k, owner)| {
            minijinja::context! {
                id => k.id.to_string(),
                prefix => k.display_prefix.as_str(),
                name => k.name.as_str(),
                owner => owner.as_str(),
                scopes => k.scopes.to_string(),
                created => shown(k.created_at),
                last_used => k.last_used_at.map_or_else(|| "never".to_string(), shown),
                revoked => k.revoked_at.map(shown),
            }
        })
        .collect();
    let apps: Vec<minijinja::Value> = apps
        .iter()
        .map(|a| {
            minijinja::context! {
                grant => a.grant.to_string(),
                client_name => a.client_name.as_str(),
                owner => a.user_email.as_str(),
                scopes => a.scopes.to_string(),
                role => a.role.title(),
                created => shown(a.created_at),
            }
        })
        .collect();
    Ok(console_page(
        StatusCode::OK,
        "console_access.html",
        minijinja::context! {
            csrf_token => csrf,
            email => m.user().email.as_str(),
            org => m.org().slug.as_str(),
            org_name => m.org().name.as_str(),
            keys,
            apps,
            notice => done(q.done.as_deref()),
        },
        cookie,
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct RevokeForm {
    csrf_token: Option<String>,
    org: Option<String>,
    key: Option<String>,
    grant: Option<String>,
}

pub(super) async fn revoke_key(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<RevokeForm>,
) -> Result<Response, Response> {
    const ACTION: &str = "/console/admin/keys/revoke";
    let (m, admin) = form_admin(
        &s,
        &headers,
        addr,
        f.csrf_token.as_deref(),
        f.org.as_deref(),
        ACTION,
    )
    .await?;
    let console = s.auth.console();
    console
        .revoke_org_key(&admin, f.key.as_deref().unwrap_or_default())
        .await
        .map_err(console_error)?;
    Ok(see_other(&console_url(
        PAGE,
        &m.org().slug,
        Some("key_revoked"),
    )))
}

pub(super) async fn revoke_app(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<RevokeForm>,
) -> Result<Response, Response> {
    const ACTION: &str = "/console/admin/apps/revoke";
    let (m, admin) = form_admin(
        &s,
        &headers,
        addr,
        f.csrf_token.as_deref(),
        f.org.as_deref(),
        ACTION,
    )
    .await?;
    let console = s.auth.console();
    console
        .revoke_org_app(&admin, f.grant.as_deref().unwrap_or_default())
        .await
        .map_err(console_error)?;
    Ok(see_other(&console_url(
        PAGE,
        &m.org().slug,
        Some("app_revoked"),
    )))
}
