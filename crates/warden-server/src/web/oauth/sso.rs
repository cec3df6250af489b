//! `/login/sso/{name}` sends the person to identity provider `name`; its callback,
//! `/login/sso/{name}/callback`, signs them in. The state travels in a cookie of its own
//! (SameSite=Lax, so it comes back on the provider's redirect) and must match the one the
//! flow was stored with; the rules are `AuthServer::sso_begin` and `sso_finish`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use warden_auth::server::{SSO_FLOW_TTL, SsoCallback, SsoError};

use super::AuthState;
use super::sign_in::{safe_continue, session_redirect};
use crate::web::{Cookies, message};

#[derive(Debug, Deserialize)]
pub(super) struct StartQuery {
    #[serde(rename = "continue")]
    continue_to: Option<String>,
}

/// GET /login/sso/{name}: off to the provider.
pub(super) async fn sso_start(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    Query(q): Query<StartQuery>,
) -> Response {
    let continue_to = safe_continue(q.continue_to.as_deref());
    match s
        .auth
        .sso_begin(&name, &continue_to, &addr.ip().to_string())
        .await
    {
        Ok(start) => {
            let mut res = Redirect::to(&start.redirect).into_response();
            res.headers_mut().append(
                header::SET_COOKIE,
                s.cookies
                    .set(s.cookies.sso_name(), &start.state, SSO_FLOW_TTL.as_secs()),
            );
            res
        }
        Err(e) => refused(e, &continue_to),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// GET /login/sso/{name}/callback: back from the provider.
pub(super) async fn sso_callback(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let cookie = Cookies::get(&headers, s.cookies.sso_name());
    let cb = SsoCallback {
        code: q.code.as_deref(),
        state: q.state.as_deref(),
        iss: q.iss.as_deref(),
        error: q.error.as_deref(),
        error_description: q.error_description.as_deref(),
    };
    let result = s
        .auth
        .sso_finish(&name, cb, cookie.as_deref(), &addr.ip().to_string())
        .await;
    let mut res = match result {
        Ok(done) => session_redirect(&s, &done.session, &safe_continue(Some(&done.continue_to))),
        // The flow (and where it was going) is spent; the page says where to start again.
        Err(e) => refused(e, "/login"),
    };
    // The state is spent either way.
    res.headers_mut()
        .append(header::SET_COOKIE, s.cookies.clear(s.cookies.sso_name()));
    res
}

fn refused(e: SsoError, continue_to: &str) -> Response {
    let again = if continue_to.starts_with("/authorize") {
        "Start again from the app you were connecting, or ask an Admin.".to_string()
    } else {
        "Start again from the sign-in page (/login), or ask an Admin.".to_string()
    };
    match e {
        SsoError::Refused(f) => message(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            &f.reason,
            Some(&again),
        ),
        SsoError::Internal(e) => {
            tracing::error!(error = %e, "identity-provider sign-in failed internally");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Warden could not complete the sign-in.",
                Some(&again),
            )
        }
    }
}
