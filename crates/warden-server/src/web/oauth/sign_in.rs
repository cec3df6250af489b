//! Sign-in pages: `/login` (password), `/login/magic` (ask for and redeem a sign-in link)
//! and `/logout`. A successful sign-in sets the session cookie and continues to the
//! authorization request it interrupted, if any.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use warden_auth::server::LoginError;

use super::{AuthState, csrf_failed, csrf_ok, csrf_unavailable, new_csrf, signed_in_user};
use crate::web::{Cookies, message, page};

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    csrf_token: Option<String>,
    email: Option<String>,
    password: Option<String>,
    #[serde(rename = "continue")]
    continue_to: Option<String>,
}

/// Only same-site paths under /authorize and /console may be continued to (no open
/// redirect), written in visible ASCII (a header value); anything else goes to the console.
pub(super) fn safe_continue(c: Option<&str>) -> String {
    match c {
        Some(c)
            if (c.starts_with("/authorize?")
                || c == "/console"
                || c.starts_with("/console/")
                || c.starts_with("/console?"))
                && !c.contains("//")
                && !c.contains('\\')
                && c.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            c.to_string()
        }
        _ => "/console".to_string(),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    #[serde(rename = "continue")]
    continue_to: Option<String>,
}

/// GET /login: the sign-in page, continuing to `continue` (checked as above) once signed
/// in; someone already signed in goes straight on.
pub(super) async fn login_page(
    State(s): State<AuthState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let continue_to = safe_continue(q.continue_to.as_deref());
    if signed_in_user(&s, &headers).await.is_some() {
        return Redirect::to(&continue_to).into_response();
    }
    login_again(&s, &continue_to, "", None, None, StatusCode::OK).await
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
    let (password, providers) = sign_in_choices(s, continue_to);
    page(
        status,
        "login.html",
        minijinja::context! { csrf_token => csrf, continue_to, email, error, notice, client_name, password, providers },
        cookie,
    )
}

/// What the sign-in page offers: password and link sign-in (unless `login.password` is
/// off), and a "Continue with" link per identity provider, continuing to `continue_to`.
pub(super) fn sign_in_choices(s: &AuthState, continue_to: &str) -> (bool, Vec<minijinja::Value>) {
    let next = url::form_urlencoded::byte_serialize(continue_to.as_bytes()).collect::<String>();
    match s.auth.federation() {
        Some(f) => (
            f.config().password,
            f.config()
                .providers
                .iter()
                .map(|p| {
                    minijinja::context! {
                        href => format!("/login/sso/{}?continue={next}", p.name),
                        label => p.label.clone(),
                    }
                })
                .collect(),
        ),
        None => (true, Vec::new()),
    }
}

/// Whether password and link sign-in are on (`login.password`).
fn password_on(s: &AuthState) -> bool {
    s.auth.federation().is_none_or(|f| f.config().password)
}

fn password_off() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Password sign-in is off",
        "This Warden signs people in through their organisation's identity provider only.",
        Some("Go back to the sign-in page and choose your provider."),
    )
}

pub(super) fn session_redirect(
    s: &AuthState,
    session: &warden_auth::token::RawToken,
    to: &str,
) -> Response {
    let mut res = Redirect::to(to).into_response();
    let ttl = warden_auth::server::SESSION_TTL.as_secs();
    res.headers_mut().append(
        header::SET_COOKIE,
        s.cookies
            .set(s.cookies.session_name(), session.expose(), ttl),
    );
    res
}

pub(super) async fn login(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if !csrf_ok(&s, &headers, f.csrf_token.as_deref()) {
        return csrf_failed();
    }
    if !password_on(&s) {
        return password_off();
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
            let status = match e {
                LoginError::Locked { .. } | LoginError::Busy => StatusCode::TOO_MANY_REQUESTS,
                LoginError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNAUTHORIZED,
            };
            login_again(&s, &continue_to, &email, Some(&e.to_string()), None, status).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct MagicForm {
    csrf_token: Option<String>,
    email: Option<String>,
    #[serde(rename = "continue")]
    continue_to: Option<String>,
}

pub(super) async fn magic_request(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<MagicForm>,
) -> Response {
    if !csrf_ok(&s, &headers, f.csrf_token.as_deref()) {
        return csrf_failed();
    }
    if !password_on(&s) {
        return password_off();
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
        Err(e @ LoginError::Unavailable) => {
            login_again(
                &s,
                &continue_to,
                "",
                Some(&e.to_string()),
                None,
                StatusCode::SERVICE_UNAVAILABLE,
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
pub(super) struct MagicRedeem {
    token: Option<String>,
    #[serde(rename = "continue")]
    continue_to: Option<String>,
}

pub(super) async fn magic_redeem(
    State(s): State<AuthState>,
    Query(q): Query<MagicRedeem>,
) -> Response {
    if !password_on(&s) {
        return password_off();
    }
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
pub(super) struct LogoutForm {
    csrf_token: Option<String>,
}

pub(super) async fn logout(
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
