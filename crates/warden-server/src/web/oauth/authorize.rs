//! `/authorize`: `GET` checks the request and shows the sign-in or the consent page; `POST`
//! is the consent answer, accepted only with its CSRF token and a seal proving its fields
//! are the ones the page was shown with.

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use warden_auth::server::{AuthorizeError, AuthorizeParams};

use super::{
    AuthState, csrf_failed, csrf_ok, csrf_unavailable, new_csrf, signed_in, signed_in_user,
};
use crate::web::{message, page};

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
pub(super) async fn authorize_page(
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
        let (password, providers) = super::sign_in::sign_in_choices(&s, &continue_to);
        return page(
            StatusCode::OK,
            "login.html",
            minijinja::context! { client_name => req.client.name, csrf_token => csrf, continue_to, email => "", password, providers },
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
    let write_requested = req.scopes.contains(warden_store::Scope::Write);
    let step_up = if write_requested {
        match s.auth.is_step_up(user.id, &req.client.id).await {
            Ok(b) => b,
            Err(e) => return authorize_error_response(s, AuthorizeError::from(e)),
        }
    } else {
        false
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
            client_host => req.document.as_ref().map(|d| d.host.clone()),
            redirect_uri => req.redirect_uri.clone(),
            email => user.email.clone(),
            csrf_token => csrf,
            consent_seal => seal,
            oauth_params => p.pairs(),
            orgs,
            write_requested,
            step_up,
            error,
        },
        cookie,
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct ConsentForm {
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
pub(super) async fn consent(
    State(s): State<AuthState>,
    headers: HeaderMap,
    Form(f): Form<ConsentForm>,
) -> Response {
    if !csrf_ok(&s, &headers, f.csrf_token.as_deref()) {
        return csrf_failed();
    }
    let Some(signed_in) = signed_in(&s, &headers).await else {
        return message(
            StatusCode::UNAUTHORIZED,
            "Signed out",
            "Your session ended before you answered.",
            Some("Start the connection again from the app."),
        );
    };
    let user = &signed_in.user;
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
        // The person has answered: the app's older grants refresh again as they are.
        if let Err(e) = s.auth.step_up_answered(user.id, &req.client.id).await {
            return authorize_error_response(&s, AuthorizeError::from(e));
        }
        let url = s.auth.redirect_error(
            &req.redirect_uri,
            req.state.as_deref(),
            "access_denied",
            "the user denied the request",
        );
        return Redirect::to(&url).into_response();
    }
    let org = f.org.unwrap_or_default();
    match s
        .auth
        .approve(user.id, &org, &req, write, signed_in.identity.as_deref())
        .await
    {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => authorize_error_response(&s, e),
    }
}
