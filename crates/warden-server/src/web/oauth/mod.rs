//! OAuth 2.1 endpoints (RFC 8414 and RFC 9728 metadata, RFC 7591 registration, authorize with
//! sign-in and consent, token, RFC 7009 revocation) and the bearer check in front of `/mcp`.
//! The rules live in `warden_auth::AuthServer`; this module only speaks HTTP.
//!
//! One file per job: `metadata.rs` serves the `/.well-known` documents, `register.rs`
//! `/register`, `authorize.rs` the authorize and consent pages, `sign_in.rs` sign-in by
//! password or link and sign-out, `sso.rs` sign-in through an identity provider, `token_endpoints.rs` `/token` and `/revoke`, and
//! `bearer.rs` the gate in front of `/mcp`; `abuse.rs` puts every request to the endpoints
//! anyone may call to the per-address limits first. What they share (state, JSON answers, CSRF
//! tokens, the signed-in user) is here.

mod abuse;
mod authorize;
mod bearer;
mod metadata;
mod register;
mod sign_in;
mod sso;
mod token_endpoints;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use warden_auth::AuthServer;
use warden_auth::token::{self, TokenKind, secrets_equal};

use super::mailer::Mailer;
use super::{Cookies, message};

pub(crate) use bearer::{OAuthGrant, require_bearer};

use authorize::{authorize_page, consent};
use metadata::{authorization_server, protected_resource};
use register::register;
use sign_in::{login, login_page, logout, magic_redeem, magic_request};
use sso::{sso_callback, sso_start};
use token_endpoints::{revoke, token_endpoint};

#[derive(Debug, Clone)]
pub struct AuthState {
    pub auth: Arc<AuthServer>,
    pub(crate) cookies: Cookies,
    pub mailer: Mailer,
    /// The pipeline serving now, for the console's tools page (none in tests that only
    /// exercise sign-in).
    pub(crate) pipeline: Option<warden_core::pipeline::LivePipeline>,
}

impl AuthState {
    pub fn new(auth: Arc<AuthServer>, mailer: Mailer) -> Self {
        let cookies = Cookies::new(auth.issuer());
        Self {
            auth,
            cookies,
            mailer,
            pipeline: None,
        }
    }

    /// Lets the console show the tools `pipeline` serves.
    pub fn with_pipeline(mut self, pipeline: warden_core::pipeline::LivePipeline) -> Self {
        self.pipeline = Some(pipeline);
        self
    }

    pub(crate) fn prm_url(&self) -> String {
        format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            self.auth.issuer()
        )
    }
}

pub(crate) fn routes(state: AuthState) -> Router {
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(protected_resource),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(protected_resource),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(authorization_server),
        )
        .route("/register", post(register))
        .route("/authorize", get(authorize_page).post(consent))
        .route("/login", get(login_page).post(login))
        .route("/login/magic", post(magic_request).get(magic_redeem))
        .route("/login/sso/{name}", get(sso_start))
        .route("/login/sso/{name}/callback", get(sso_callback))
        .route("/logout", post(logout))
        .route("/token", post(token_endpoint))
        .route("/revoke", post(revoke))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            abuse::limit_by_address,
        ))
        .with_state(state)
}

const SCOPES: [&str; 2] = ["mcp:read", "mcp:write"];

fn json_no_store(status: StatusCode, body: serde_json::Value) -> Response {
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    json_no_store(
        status,
        json!({ "error": code, "error_description": description }),
    )
}

/// A new CSRF token, and the cookie that carries it.
pub(crate) fn new_csrf(s: &AuthState) -> Option<(String, HeaderMap)> {
    let t = token::generate(TokenKind::Csrf).ok()?;
    let mut h = HeaderMap::new();
    h.append(
        header::SET_COOKIE,
        s.cookies.set(s.cookies.csrf_name(), t.expose(), 3600),
    );
    Some((t.expose().to_string(), h))
}

pub(crate) fn csrf_unavailable() -> Response {
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Warden could not create a security token.",
        Some("Try again."),
    )
}

pub(crate) fn csrf_ok(s: &AuthState, headers: &HeaderMap, form_token: Option<&str>) -> bool {
    match (Cookies::get(headers, s.cookies.csrf_name()), form_token) {
        (Some(cookie), Some(form)) => {
            !form.is_empty() && secrets_equal(cookie.as_bytes(), form.as_bytes())
        }
        _ => false,
    }
}

pub(crate) fn csrf_failed() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form was not submitted from a Warden page (its security token is missing or wrong).",
        Some("Go back, reload the page and try again."),
    )
}

/// The live session behind the request's cookie (counted as used now).
pub(crate) async fn signed_in(
    s: &AuthState,
    headers: &HeaderMap,
) -> Option<warden_auth::server::SignedIn> {
    let raw = Cookies::get(headers, s.cookies.session_name())?;
    s.auth.signed_in(&raw).await.ok().flatten()
}

/// The raw session cookie, for a password confirmation.
pub(crate) fn session_cookie(s: &AuthState, headers: &HeaderMap) -> Option<String> {
    Cookies::get(headers, s.cookies.session_name())
}

pub(crate) async fn signed_in_user(
    s: &AuthState,
    headers: &HeaderMap,
) -> Option<warden_store::User> {
    let raw = Cookies::get(headers, s.cookies.session_name())?;
    s.auth.session_user(&raw).await.ok().flatten()
}
