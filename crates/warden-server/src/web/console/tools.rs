//! The Admin's tools page (`GET /console/admin/tools`): what each role sees and may call,
//! and the "why" form (a member's e-mail, a tool, optional arguments), answered by the
//! function `warden why` uses. Reading only: the form is a GET and changes nothing.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use warden_auth::console::ConsoleError;
use warden_store::Role;

use super::{admin_page, console_error, console_page};
use crate::web::message;
use crate::web::oauth::AuthState;

const PAGE: &str = "/console/admin/tools";

#[derive(Debug, Deserialize)]
pub(super) struct ToolsQuery {
    org: Option<String>,
    who: Option<String>,
    tool: Option<String>,
    args: Option<String>,
}

pub(super) async fn page(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<ToolsQuery>,
) -> Result<Response, Response> {
    let (m, admin) = admin_page(&s, &headers, addr, q.org.as_deref(), PAGE).await?;
    let console = s.auth.console();
    let Some(live) = &s.pipeline else {
        return Err(message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Tools unavailable",
            "This server does not show its tools in the console.",
            None,
        ));
    };
    let pipeline = live.current();
    let project = pipeline.project();
    let tools: Vec<minijinja::Value> = console
        .tools(&admin, project)
        .iter()
        .map(|t| {
            let roles: Vec<minijinja::Value> = t
                .roles
                .iter()
                .map(|r| minijinja::context! { sees => r.sees, may_call => r.may_call })
                .collect();
            minijinja::context! {
                name => t.name.as_str(),
                description => t.description.as_str(),
                access => t.access.as_str(),
                roles,
            }
        })
        .collect();
    let asked = q.who.as_deref().is_some_and(|w| !w.trim().is_empty())
        && q.tool.as_deref().is_some_and(|t| !t.trim().is_empty());
    let (why, why_error) = if asked {
        match console
            .why(
                &admin,
                project,
                q.who.as_deref().unwrap_or_default(),
                q.tool.as_deref().unwrap_or_default(),
                q.args.as_deref().unwrap_or_default(),
            )
            .await
        {
            Ok(a) => {
                let verdicts: Vec<minijinja::Value> = a
                    .verdicts
                    .iter()
                    .map(|(scopes, allowed, text)| {
                        minijinja::context! { scopes => scopes.as_str(), allowed => *allowed, text => text.as_str() }
                    })
                    .collect();
                (
                    Some(minijinja::context! {
                        email => a.email.as_str(),
                        role => a.role.title(),
                        tool => a.tool.as_str(),
                        verdicts,
                    }),
                    None,
                )
            }
            Err(e @ (ConsoleError::Invalid(_) | ConsoleError::NotFound(_))) => {
                (None, Some(e.to_string()))
            }
            Err(e) => return Err(console_error(e)),
        }
    } else {
        (None, None)
    };
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.title()).collect();
    let status = if why_error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(console_page(
        status,
        "console_tools.html",
        minijinja::context! {
            email => m.user().email.as_str(),
            org => m.org().slug.as_str(),
            org_name => m.org().name.as_str(),
            project_name => project.name.as_str(),
            roles,
            tools,
            who => q.who.as_deref().unwrap_or_default(),
            tool => q.tool.as_deref().unwrap_or_default(),
            args => q.args.as_deref().unwrap_or_default(),
            why,
            why_error,
        },
        HeaderMap::new(),
    ))
}
