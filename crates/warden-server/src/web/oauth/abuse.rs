//! The abuse limits' answer on the wire: every request to `/register`, `/authorize`,
//! `/token`, `/revoke` and the sign-in pages is first put to `AuthServer::admit_address` with
//! the client's address (the connection's, or the one a trusted proxy names). A refusal is
//! HTTP 429 with `Retry-After` (seconds, rounded up): an OAuth error body on the JSON
//! endpoints, a page on the browser ones; a limit that cannot be checked is 503.
//!
//! The OAuth error code is `temporarily_unavailable`: RFC 6749 defines it for a server that
//! cannot handle a request for now, and no code means "too many requests" (`slow_down` is
//! the device flow's polling signal). The status, 429, and `Retry-After` say the rest.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use warden_auth::server::{AbuseRefusal, Endpoint, whole_seconds};

use super::{AuthState, oauth_error};
use crate::web::message;

fn endpoint(path: &str) -> Option<Endpoint> {
    match path {
        "/register" => Some(Endpoint::Register),
        "/authorize" => Some(Endpoint::Authorize),
        "/token" => Some(Endpoint::Token),
        "/revoke" => Some(Endpoint::Revoke),
        "/login" | "/login/magic" => Some(Endpoint::SignIn),
        p if p.starts_with("/login/sso/") => Some(Endpoint::SignIn),
        _ => None,
    }
}

pub(super) async fn limit_by_address(
    State(s): State<AuthState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(endpoint) = endpoint(req.uri().path()) else {
        return next.run(req).await;
    };
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    match s.auth.admit_address(endpoint, &addr).await {
        Ok(()) => next.run(req).await,
        Err(refusal) => refused(endpoint, refusal),
    }
}

/// The answer to a request an abuse limit refused.
pub(super) fn refused(endpoint: Endpoint, refusal: AbuseRefusal) -> Response {
    let json = matches!(
        endpoint,
        Endpoint::Register | Endpoint::Token | Endpoint::Revoke
    );
    let (status, retry) = match refusal {
        AbuseRefusal::TooMany { retry_after } => {
            (StatusCode::TOO_MANY_REQUESTS, whole_seconds(retry_after))
        }
        AbuseRefusal::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, 60),
    };
    let text = refusal.to_string();
    let mut res = if json {
        oauth_error(status, "temporarily_unavailable", &text)
    } else {
        message(
            status,
            "Too many requests",
            &text,
            Some("If you did not send these requests, someone at your network address may have."),
        )
    };
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry));
    res
}
