//! The Admin's member list (`GET /console/admin/members`): every member with their role,
//! and the actions to add someone (an invitation link, shown once, when they have no
//! account), change a role or remove a member. Reached by anyone else, it answers 403 and
//! the refusal is recorded (`Console::admin`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use warden_auth::console::Added;
use warden_store::Role;

use super::account::{PageQuery, form_admin, gated_error, notice};
use super::{admin_page, console_error, console_page, console_url, see_other, shown};
use crate::web::oauth::{AuthState, csrf_unavailable, new_csrf};

const PAGE: &str = "/console/admin/members";

pub(super) async fn list(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let (m, admin) = match admin_page(&s, &headers, addr, q.org.as_deref(), PAGE).await {
        Ok(pair) => pair,
        Err(page) => return page,
    };
    let console = s.auth.console();
    let members = match console.members(&admin).await {
        Ok(list) => list,
        Err(e) => return console_error(e),
    };
    let Some((csrf, cookie)) = new_csrf(&s) else {
        return csrf_unavailable();
    };
    let members: Vec<minijinja::Value> = members
        .iter()
        .map(|x| {
            minijinja::context! {
                id => x.user.to_string(),
                email => x.email.as_str(),
                name => x.name.as_str(),
                role => x.role.title(),
                role_value => x.role.as_str(),
                since => shown(x.since),
                is_you => x.user == m.user().id,
            }
        })
        .collect();
    let roles: Vec<minijinja::Value> = Role::ALL
        .iter()
        .map(|r| minijinja::context! { value => r.as_str(), title => r.title() })
        .collect();
    console_page(
        StatusCode::OK,
        "console_members.html",
        minijinja::context! {
            csrf_token => csrf,
            email => m.user().email.as_str(),
            org => m.org().slug.as_str(),
            org_name => m.org().name.as_str(),
            members,
            roles,
            notice => notice(q.done.as_deref()),
        },
        cookie,
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct MemberForm {
    csrf_token: Option<String>,
    org: Option<String>,
    user: Option<String>,
    role: Option<String>,
    /// `yes` once the person saw what removal does.
    confirmed: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct AddForm {
    csrf_token: Option<String>,
    org: Option<String>,
    email: Option<String>,
    role: Option<String>,
}

pub(super) async fn add(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<AddForm>,
) -> Result<Response, Response> {
    const ACTION: &str = "/console/admin/members/add";
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
    let result = console
        .add_member(
            &admin,
            f.email.as_deref().unwrap_or_default(),
            f.role.as_deref().unwrap_or_default(),
        )
        .await;
    Ok(match result {
        Ok(Added::Existing { .. }) => {
            see_other(&console_url(PAGE, &m.org().slug, Some("member_added")))
        }
        Ok(Added::Invited { email, role, link }) => {
            let query =
                serde_urlencoded::to_string([("token", link.expose()), ("continue", "/console")])
                    .unwrap_or_default();
            let url = format!("{}/login/magic?{query}", s.auth.issuer());
            console_page(
                StatusCode::OK,
                "console_invited.html",
                minijinja::context! {
                    email => email.as_str(),
                    role => role.title(),
                    org => m.org().slug.as_str(),
                    org_name => m.org().name.as_str(),
                    link => url,
                },
                HeaderMap::new(),
            )
        }
        Err(e) => gated_error(
            &s,
            &m,
            ACTION,
            &[
                ("org", f.org.as_deref()),
                ("email", f.email.as_deref()),
                ("role", f.role.as_deref()),
            ],
            e,
        ),
    })
}

pub(super) async fn set_role(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<MemberForm>,
) -> Result<Response, Response> {
    let (m, admin) = form_admin(
        &s,
        &headers,
        addr,
        f.csrf_token.as_deref(),
        f.org.as_deref(),
        "/console/admin/members/role",
    )
    .await?;
    let console = s.auth.console();
    let result = console
        .set_role(
            &admin,
            f.user.as_deref().unwrap_or_default(),
            f.role.as_deref().unwrap_or_default(),
        )
        .await;
    Ok(match result {
        Ok(_) => see_other(&console_url(PAGE, &m.org().slug, Some("role_changed"))),
        Err(e) => gated_error(
            &s,
            &m,
            "/console/admin/members/role",
            &[
                ("org", f.org.as_deref()),
                ("user", f.user.as_deref()),
                ("role", f.role.as_deref()),
            ],
            e,
        ),
    })
}

pub(super) async fn remove(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<MemberForm>,
) -> Result<Response, Response> {
    let (m, admin) = form_admin(
        &s,
        &headers,
        addr,
        f.csrf_token.as_deref(),
        f.org.as_deref(),
        "/console/admin/members/remove",
    )
    .await?;
    let console = s.auth.console();
    if f.confirmed.as_deref() != Some("yes") {
        let wanted = f.user.as_deref().unwrap_or_default();
        let members = console.members(&admin).await.map_err(console_error)?;
        // Someone who is not a member falls through to `remove_member`, which refuses it on
        // the record.
        if let Some(x) = members.iter().find(|x| x.user.to_string() == wanted) {
            let Some((csrf, cookie)) = new_csrf(&s) else {
                return Err(csrf_unavailable());
            };
            return Ok(console_page(
                StatusCode::OK,
                "console_remove.html",
                minijinja::context! {
                    csrf_token => csrf,
                    org => m.org().slug.as_str(),
                    org_name => m.org().name.as_str(),
                    user => wanted,
                    member_email => x.email.as_str(),
                    member_role => x.role.title(),
                },
                cookie,
            ));
        }
    }
    let result = console
        .remove_member(&admin, f.user.as_deref().unwrap_or_default())
        .await;
    Ok(match result {
        Ok(_) => see_other(&console_url(PAGE, &m.org().slug, Some("member_removed"))),
        Err(e) => gated_error(
            &s,
            &m,
            "/console/admin/members/remove",
            &[
                ("org", f.org.as_deref()),
                ("user", f.user.as_deref()),
                ("confirmed", f.confirmed.as_deref()),
            ],
            e,
        ),
    })
}
