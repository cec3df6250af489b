//! The password confirmation a console action asks for when the session's last proof of the
//! password is older than `REAUTH_WINDOW`. The refused form's fields are carried in the
//! confirmation form (only the fields console actions use, only to the actions that need
//! it); once the password is right, a page shows the action again with a fresh CSRF token,
//! and the person posts it. Nothing is done on their behalf without that second click.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use warden_auth::console::Member;
use warden_auth::server::LoginError;

use super::{console_page, see_other};
use crate::web::message;
use crate::web::oauth::{AuthState, csrf_unavailable, new_csrf, session_cookie};

/// The actions that may need a confirmation, with what the button says.
const ACTIONS: &[(&str, &str)] = &[
    ("/console/keys", "Create the key"),
    ("/console/keys/regenerate", "Regenerate the key"),
    ("/console/admin/members/role", "Change the role"),
    ("/console/admin/members/remove", "Remove the member"),
    ("/console/admin/members/add", "Add the member"),
];

/// The form fields carried through a confirmation.
const FIELDS: &[&str] = &[
    "org",
    "key",
    "user",
    "role",
    "name",
    "scopes",
    "email",
    "confirmed",
];

fn label(action: &str) -> Option<&'static str> {
    ACTIONS.iter().find(|(a, _)| *a == action).map(|(_, l)| *l)
}

/// The fields of `form` a confirmation carries, in a fixed order.
fn carried(form: &[(String, String)]) -> Vec<(String, String)> {
    form.iter()
        .filter(|(k, _)| FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.chars().take(512).collect()))
        .collect()
}

fn fields_ctx(fields: &[(String, String)]) -> Vec<minijinja::Value> {
    fields
        .iter()
        .map(|(k, v)| minijinja::context! { name => k.as_str(), value => v.as_str() })
        .collect()
}

/// The page asking for the password before `action`, carrying `form`.
pub(super) fn ask(
    s: &AuthState,
    m: &Member,
    action: &'static str,
    form: &[(String, String)],
    error: Option<&str>,
) -> Response {
    let Some((csrf, cookie)) = new_csrf(s) else {
        return csrf_unavailable();
    };
    let has_password = m.user().password_hash.is_some();
    console_page(
        if error.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        },
        "console_confirm.html",
        minijinja::context! {
            csrf_token => csrf,
            email => m.user().email.as_str(),
            org => m.org().slug.as_str(),
            then => action,
            label => label(action).unwrap_or("Continue"),
            fields => fields_ctx(&carried(form)),
            has_password,
            error,
        },
        cookie,
    )
}

pub(super) async fn confirm(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, Response> {
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let org = get("org");
    let m = super::account::form_member(
        &s,
        &headers,
        addr,
        get("csrf_token"),
        org,
        "/console/confirm",
    )
    .await?;
    let Some((then, label)) = get("then").and_then(|t| ACTIONS.iter().find(|(a, _)| *a == t))
    else {
        return Err(message(
            StatusCode::BAD_REQUEST,
            "Check the form",
            "This confirmation names no console action.",
            Some("Go back to /console and try again."),
        ));
    };
    let Some(raw) = session_cookie(&s, &headers) else {
        return Err(see_other("/login?continue=%2Fconsole"));
    };
    let password = get("password").unwrap_or_default();
    match s
        .auth
        .confirm_password(&raw, password, &addr.ip().to_string())
        .await
    {
        Ok(_) => {}
        Err(LoginError::BadCredentials) => {
            return Ok(ask(
                &s,
                &m,
                then,
                &form,
                Some("That password is not right."),
            ));
        }
        Err(LoginError::Internal(e)) => {
            tracing::error!(error = %e, "password confirmation failed");
            return Err(message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Warden could not check the password.",
                Some("Try again."),
            ));
        }
        Err(e) => {
            let e = e.to_string();
            return Ok(ask(&s, &m, then, &form, Some(&e)));
        }
    }
    let Some((csrf, cookie)) = new_csrf(&s) else {
        return Err(csrf_unavailable());
    };
    Ok(console_page(
        StatusCode::OK,
        "console_confirmed.html",
        minijinja::context! {
            csrf_token => csrf,
            email => m.user().email.as_str(),
            org => m.org().slug.as_str(),
            then => *then,
            label => *label,
            fields => fields_ctx(&carried(&form)),
        },
        cookie,
    ))
}
