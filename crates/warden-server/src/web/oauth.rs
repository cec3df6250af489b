//! OAuth 2.1 endpoints (RFC 8414 and RFC 9728 metadata, RFC 7591 registration, authorize with
//! sign-in and consent, token, RFC 7009 revocation) and the bearer check in front of `/mcp`.
//! The rules live in `warden_auth::AuthServer`; this module only speaks HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use warden_auth::server::{
    AuthnError, AuthorizeError, AuthorizeParams, LoginError, TokenError, TokenResponse,
};
use warden_auth::token::{self, TokenKind, secrets_equal};
use warden_auth::{AuthServer, registration::ClientMetadata};

use super::mailer::Mailer;
use super::{Cookies, message, page};

#[derive(Debug, Clone)]
pub struct AuthState {
    pub auth: Arc<AuthServer>,
    pub(crate) cookies: Cookies,
    pub mailer: Mailer,
}

impl AuthState {
    pub fn new(auth: Arc<AuthServer>, mailer: Mailer) -> Self {
        let cookies = Cookies::new(auth.issuer());
        Self {
            auth,
            cookies,
            mailer,
        }
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
        .route("/login", post(login))
        .route("/login/magic", post(magic_request).get(magic_redeem))
        .route("/logout", post(logout))
        .route("/token", post(token_endpoint))
        .route("/revoke", post(revoke))
        .with_state(state)
}

const SCOPES: [&str; 2] = ["mcp:read", "mcp:write"];

async fn protected_resource(State(s): State<AuthState>) -> Response {
    json_no_store(
        StatusCode::OK,
        json!({
            "resource": s.auth.resource(),
            "authorization_servers": [s.auth.issuer()],
            "scopes_supported": SCOPES,
            "bearer_methods_supported": ["header"],
            "resource_name": "Warden MCP",
        }),
    )
}

async fn authorization_server(State(s): State<AuthState>) -> Response {
    let i = s.auth.issuer();
    json_no_store(
        StatusCode::OK,
        json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "registration_endpoint": format!("{i}/register"),
            "revocation_endpoint": format!("{i}/revoke"),
            "scopes_supported": SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "authorization_response_iss_parameter_supported": true,
        }),
    )
}

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

async fn register(State(s): State<AuthState>, body: axum::body::Bytes) -> Response {
    let meta: ClientMetadata = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                &format!("the body is not valid client metadata JSON: {e}"),
            );
        }
    };
    match s.auth.register(&meta).await {
        Ok(client) => json_no_store(
            StatusCode::CREATED,
            json!({
                "client_id": client.id.to_string(),
                "client_id_issued_at": client.created_at.timestamp(),
                "client_name": client.name,
                "redirect_uris": client.redirect_uris,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
                "scope": SCOPES.join(" "),
            }),
        ),
        Err(e) => oauth_error(StatusCode::BAD_REQUEST, e.code(), e.description()),
    }
}

/// A new CSRF token, and the cookie that carries it.
fn new_csrf(s: &AuthState) -> Option<(String, HeaderMap)> {
    let t = token::generate(TokenKind::Csrf).ok()?;
    let mut h = HeaderMap::new();
    h.append(
        header::SET_COOKIE,
        s.cookies.set(s.cookies.csrf_name(), t.expose(), 3600),
    );
    Some((t.expose().to_string(), h))
}

fn csrf_unavailable() -> Response {
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Warden could not create a security token.",
        Some("Try again."),
    )
}

fn csrf_ok(s: &AuthState, headers: &HeaderMap, form_token: Option<&str>) -> bool {
    match (Cookies::get(headers, s.cookies.csrf_name()), form_token) {
        (Some(cookie), Some(form)) => {
            !form.is_empty() && secrets_equal(cookie.as_bytes(), form.as_bytes())
        }
        _ => false,
    }
}

fn csrf_failed() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form was not submitted from a Warden page (its security token is missing or wrong).",
        Some("Go back, reload the page and try again."),
    )
}

async fn signed_in_user(s: &AuthState, headers: &HeaderMap) -> Option<warden_store::User> {
    let raw = Cookies::get(headers, s.cookies.session_name())?;
    s.auth.session_user(&raw).await.ok().flatten()
}

fn authorize_error_response(s: &AuthState, e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::NoRedirect(m) => message(
            StatusCode::BAD_REQUEST,
            "This app's request is not valid",
            &m,
            Some(
                "Nothing was shared. Tell the app's developer, or reconnect the app from its settings.",
            ),
        ),
        AuthorizeError::Redirect {
            redirect_uri,
            state,
            code,
            description,
        } => Redirect::to(&s.auth.redirect_error(
            &redirect_uri,
            state.as_deref(),
            code,
            &description,
        ))
        .into_response(),
        AuthorizeError::Internal(e) => {
            tracing::error!(error = %e, "authorization failed");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Warden could not process the request.",
                Some("Try again."),
            )
        }
    }
}

/// GET /authorize: validate, then show sign-in or consent.
async fn authorize_page(
    State(s): State<AuthState>,
    headers: HeaderMap,
    Query(p): Query<AuthorizeParams>,
) -> Response {
    let req = match s.auth.check_authorize(&p).await {
        Ok(r) => r,
        Err(e) => return authorize_error_response(&s, e),
    };
    let (csrf, cookie) = match new_csrf(&s) {
        Some(c) => c,
        None => return csrf_unavailable(),
    };
    let Some(user) = signed_in_user(&s, &headers).await else {
        let continue_to = format!(
            "/authorize?{}",
            serde_urlencoded::to_string(&p).unwrap_or_default()
        );
        return page(
            StatusCode::OK,
            "login.html",
            minijinja::context! { client_name => req.client.name, csrf_token => csrf, continue_to, email => "" },
            cookie,
        );
    };
    consent_page(&s, &user, &req, &p, csrf, cookie, None).await
}

async fn consent_page(
    s: &AuthState,
    user: &warden_store::User,
    req: &warden_auth::server::ValidAuthorize,
    p: &AuthorizeParams,
    csrf: String,
    cookie: HeaderMap,
    error: Option<&str>,
) -> Response {
    let orgs = match s.auth.connectable_orgs(user.id).await {
        Ok(o) => o,
        Err(e) => return authorize_error_response(s, AuthorizeError::from(e)),
    };
    if orgs.is_empty() {
        let url = s.auth.redirect_error(
            &req.redirect_uri,
            req.state.as_deref(),
            "access_denied",
            "your roles do not allow connecting an assistant",
        );
        return message(
            StatusCode::FORBIDDEN,
            "You cannot connect an assistant",
            "None of your organisation roles allows connecting an assistant to Warden.",
            Some(&format!(
                "Ask an Admin for access. The app will be told: {url}"
            )),
        );
    }
    let seal = match s.auth.consent_seal(user.id, &csrf, p).await {
        Ok(seal) => seal,
        Err(e) => return authorize_error_response(s, AuthorizeError::from(e)),
    };
    let orgs: Vec<minijinja::Value> = orgs
        .iter()
        .map(|(o, role)| minijinja::context! { slug => o.slug.clone(), name => o.name.clone(), role => role.to_string() })
        .collect();
    page(
        StatusCode::OK,
        "consent.html",
        minijinja::context! {
            client_name => req.client.name.clone(),
            redirect_uri => req.redirect_uri.clone(),
            email => user.email.clone(),
            csrf_token => csrf,
            consent_seal => seal,
            oauth_params => p.pairs(),
            orgs,
            write_requested => req.scopes.contains(warden_store::Scope::Write),
            error,
        },
        cookie,
    )
}

#[derive(Debug, Deserialize)]
struct ConsentForm {
    csrf_token: Option<String>,
    decision: Option<String>,
    org: Option<String>,
    write: Option<String>,
    consent_seal: Option<String>,
    #[serde(flatten)]
    params: AuthorizeParams,
}

/// The answer to a consent page whose fields were changed after Warden sent it.
fn consent_tampered() -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "Request refused",
        "This answer does not match the consent page Warden showed (its fields were changed), so nothing was granted.",
        Some("Start the connection again from the app, and answer on the page as Warden shows it."),
    )
}

/// POST /authorize: the consent decision.
async fn consent(
    State(s): State<AuthState>,
    headers: HeaderMap,
    Form(f): Form<ConsentForm>,
) -> Response {
    if !csrf_ok(&s, &headers, f.csrf_token.as_deref()) {
        return csrf_failed();
    }
    let Some(user) = signed_in_user(&s, &headers).await else {
        return message(
            StatusCode::UNAUTHORIZED,
            "Signed out",
            "Your session ended before you answered.",
            Some("Start the connection again from the app."),
        );
    };
    // Grant at most what the page offered: its parameters, unchanged since it was shown.
    let csrf = f.csrf_token.as_deref().unwrap_or_default();
    let seal = f.consent_seal.as_deref().unwrap_or_default();
    match s.auth.consent_seal_ok(user.id, csrf, &f.params, seal).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(user = %user.id, "refused a consent answer whose fields were changed");
            return consent_tampered();
        }
        Err(e) => return authorize_error_response(&s, AuthorizeError::from(e)),
    }
    let req = match s.auth.check_authorize(&f.params).await {
        Ok(r) => r,
        Err(e) => return authorize_error_response(&s, e),
    };
    // The write box is offered only when the client asked for mcp:write, and sends "1".
    let write = match f.write.as_deref() {
        None => false,
        Some("1") if req.scopes.contains(warden_store::Scope::Write) => true,
        Some(_) => {
            tracing::warn!(user = %user.id, "refused a consent answer with a write field the page did not offer");
            return consent_tampered();
        }
    };
    if f.decision.as_deref() != Some("allow") {
        let url = s.auth.redirect_error(
            &req.redirect_uri,
            req.state.as_deref(),
            "access_denied",
            "the user denied the request",
        );
        return Redirect::to(&url).into_response();
    }
    let org = f.org.unwrap_or_default();
    match s.auth.approve(user.id, &org, &req, write).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => authorize_error_response(&s, e),
    }
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    csrf_token: Option<String>,
    email: Option<String>,
    password: Option<String>,
    #[serde(rename = "continue")]
    continue_to: Option<String>,
}

/// Only same-site paths under /authorize may be continued to (no open redirect).
fn safe_continue(c: Option<&str>) -> String {
    match c {
        Some(c) if c.starts_with("/authorize?") && !c.contains("//") && !c.contains('\\') => {
            c.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The name of the client an `/authorize?...` continuation belongs to, to show on the page.
async fn client_name_of(s: &AuthState, continue_to: &str) -> Option<String> {
    let query = continue_to.split_once('?')?.1;
    let client_id = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "client_id")?
        .1
        .into_owned();
    let id: warden_store::ClientId = client_id.parse().ok()?;
    s.auth
        .store()
        .client(&id)
        .await
        .ok()
        .flatten()
        .filter(|c| c.revoked_at.is_none())
        .map(|c| c.name)
}

async fn login_again(
    s: &AuthState,
    continue_to: &str,
    email: &str,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let (csrf, cookie) = match new_csrf(s) {
        Some(c) => c,
        None => return csrf_unavailable(),
    };
    let client_name = client_name_of(s, continue_to).await;
    page(
        status,
        "login.html",
        minijinja::context! { csrf_token => csrf, continue_to, email, error, notice, client_name },
        cookie,
    )
}

fn session_redirect(s: &AuthState, session: &warden_auth::token::RawToken, to: &str) -> Response {
    let mut res = Redirect::to(to).into_response();
    let ttl = warden_auth::server::SESSION_TTL.as_secs();
    res.headers_mut().append(
        header::SET_COOKIE,
        s.cookies
            .set(s.cookies.session_name(), session.expose(), ttl),
    );
    res
}

async fn login(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if !csrf_ok(&s, &headers, f.csrf_token.as_deref()) {
        return csrf_failed();
    }
    let continue_to = safe_continue(f.continue_to.as_deref());
    let email = f.email.unwrap_or_default();
    match s
        .auth
        .login_password(
            &email,
            &f.password.unwrap_or_default(),
            &addr.ip().to_string(),
        )
        .await
    {
        Ok((_, session)) => session_redirect(&s, &session, &continue_to),
        Err(LoginError::Internal(e)) => {
            tracing::error!(error = %e, "sign-in failed internally");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Warden could not check your sign-in.",
                Some("Try again."),
            )
        }
        Err(e) => {
            let status = if matches!(e, LoginError::Locked { .. }) {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            };
            login_again(&s, &continue_to, &email, Some(&e.to_string()), None, status).await
        }
    }
}

#[derive(Debug, Deserialize)]
struct MagicForm {
    csrf_token: Option<String>,
    email: Option<String>,
    #[serde(rename = "continue")]
    continue_to: Option<String>,
}

async fn magic_request(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<MagicForm>,
) -> Response {
    if !csrf_ok(&s, &headers, f.csrf_token.as_deref()) {
        return csrf_failed();
    }
    let continue_to = safe_continue(f.continue_to.as_deref());
    let email = f.email.unwrap_or_default();
    let sent = "If an account uses that address, a sign-in link is on its way. It works once, for 15 minutes.";
    match s.auth.magic_link(&email, &addr.ip().to_string()).await {
        Ok(Some((user, link))) => {
            let query = serde_urlencoded::to_string([
                ("token", link.expose()),
                ("continue", continue_to.as_str()),
            ])
            .unwrap_or_default();
            let url = format!("{}/login/magic?{query}", s.auth.issuer());
            if let Err(e) = s.mailer.send_sign_in_link(&user.email, &url).await {
                tracing::error!(error = %e, "cannot send a sign-in link");
                return login_again(
                    &s,
                    &continue_to,
                    "",
                    Some("The sign-in link could not be sent; use your password or try later."),
                    None,
                    StatusCode::SERVICE_UNAVAILABLE,
                )
                .await;
            }
            login_again(&s, &continue_to, "", None, Some(sent), StatusCode::OK).await
        }
        Ok(None) => login_again(&s, &continue_to, "", None, Some(sent), StatusCode::OK).await,
        Err(LoginError::Locked { retry_after }) => {
            login_again(
                &s,
                &continue_to,
                "",
                Some(&format!(
                    "Too many requests; try again in {} minutes.",
                    retry_after.as_secs().div_ceil(60)
                )),
                None,
                StatusCode::TOO_MANY_REQUESTS,
            )
            .await
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in link request failed");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Warden could not create a sign-in link.",
                Some("Try again."),
            )
        }
    }
}

#[derive(Debug, Deserialize)]
struct MagicRedeem {
    token: Option<String>,
    #[serde(rename = "continue")]
    continue_to: Option<String>,
}

async fn magic_redeem(State(s): State<AuthState>, Query(q): Query<MagicRedeem>) -> Response {
    let continue_to = safe_continue(q.continue_to.as_deref());
    match s.auth.redeem_magic_link(&q.token.unwrap_or_default()).await {
        Ok((_, session)) => session_redirect(&s, &session, &continue_to),
        Err(LoginError::Internal(e)) => {
            tracing::error!(error = %e, "sign-in link redemption failed");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Warden could not check the link.",
                Some("Try again."),
            )
        }
        Err(e) => message(
            StatusCode::BAD_REQUEST,
            "Sign-in link not valid",
            &e.to_string(),
            None,
        ),
    }
}

#[derive(Debug, Deserialize)]
struct LogoutForm {
    csrf_token: Option<String>,
}

async fn logout(
    State(s): State<AuthState>,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Response {
    if !csrf_ok(&s, &headers, f.csrf_token.as_deref()) {
        return csrf_failed();
    }
    if let Some(raw) = Cookies::get(&headers, s.cookies.session_name()) {
        let _ = s.auth.logout(&raw).await;
    }
    let mut res = message(
        StatusCode::OK,
        "Signed out",
        "You are signed out of Warden.",
        None,
    );
    res.headers_mut().append(
        header::SET_COOKIE,
        s.cookies.clear(s.cookies.session_name()),
    );
    res
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    code_verifier: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    refresh_token: Option<String>,
    resource: Option<String>,
}

fn token_response(r: Result<TokenResponse, TokenError>) -> Response {
    match r {
        Ok(t) => json_no_store(
            StatusCode::OK,
            json!({
                "access_token": t.access_token.expose(),
                "token_type": "Bearer",
                "expires_in": t.expires_in,
                "refresh_token": t.refresh_token.expose(),
                "scope": t.scopes.to_string(),
            }),
        ),
        Err(e) => {
            let status = match (e.internal, e.code) {
                (true, _) => StatusCode::INTERNAL_SERVER_ERROR,
                (false, "invalid_client") => StatusCode::UNAUTHORIZED,
                _ => StatusCode::BAD_REQUEST,
            };
            oauth_error(status, e.code, &e.description)
        }
    }
}

async fn token_endpoint(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Form(f): Form<TokenForm>,
) -> Response {
    let addr = addr.ip().to_string();
    let r = match f.grant_type.as_deref() {
        Some("authorization_code") => {
            s.auth
                .exchange_code(
                    f.code.as_deref(),
                    f.code_verifier.as_deref(),
                    f.redirect_uri.as_deref(),
                    f.client_id.as_deref(),
                    f.resource.as_deref(),
                    &addr,
                )
                .await
        }
        Some("refresh_token") => {
            s.auth
                .refresh(
                    f.refresh_token.as_deref(),
                    f.client_id.as_deref(),
                    f.resource.as_deref(),
                    &addr,
                )
                .await
        }
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!(
                    "grant_type '{other}' is not supported; use authorization_code or refresh_token"
                ),
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is missing",
            );
        }
    };
    token_response(r)
}

#[derive(Debug, Deserialize)]
struct RevokeForm {
    token: Option<String>,
}

async fn revoke(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Form(f): Form<RevokeForm>,
) -> Response {
    let Some(t) = f.token.filter(|t| !t.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is missing",
        );
    };
    match s.auth.revoke(&t, &addr.ip().to_string()).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "revocation failed");
            oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the token could not be revoked; try again",
            )
        }
    }
}

/// Authentication for `/mcp`: every request needs a valid bearer. The principal travels in
/// the request's extensions to the MCP handler. Failures never reach rmcp.
pub(crate) async fn require_bearer(
    State(s): State<AuthState>,
    mut req: Request,
    next: Next,
) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .map(str::to_string);
    let challenge = |error: Option<&str>, description: &str| {
        let mut v = format!(
            r#"Bearer resource_metadata="{}", scope="mcp:read""#,
            s.prm_url()
        );
        if let Some(e) = error {
            v.push_str(&format!(
                r#", error="{e}", error_description="{}""#,
                description.replace('"', "'")
            ));
        }
        let mut res = (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32001, "message": description}}).to_string(),
        )
            .into_response();
        if let Ok(h) = HeaderValue::from_str(&v) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, h);
        }
        res
    };
    let Some(bearer) = bearer else {
        return challenge(
            None,
            "authentication required: send an OAuth access token or API key as a Bearer token",
        );
    };
    match s.auth.authenticate(&bearer).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(AuthnError::Unauthenticated(m)) => challenge(Some("invalid_token"), &m),
        Err(AuthnError::Forbidden(m)) => (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32003, "message": m}})
                .to_string(),
        )
            .into_response(),
        Err(AuthnError::Internal(e)) => {
            // Fail closed: a store outage refuses the call.
            tracing::error!(error = %e, "authentication failed internally");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "authentication is temporarily unavailable",
            )
                .into_response()
        }
    }
}
