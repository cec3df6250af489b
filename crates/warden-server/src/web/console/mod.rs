//! The web console at `/console`: a signed-in person's connected apps and API keys, and for
//! an Admin the organisation's members. The rules live in `warden_auth::console`; this module
//! only speaks HTTP: it finds the browser session (the one `/login` sets), checks the form's
//! CSRF token, asks `Console` for a `Member` permit and the operation, and renders the answer.
//!
//! Every POST checks the double-submit CSRF token before anything else; pages are rendered by
//! `web::page` (no script at all, no framing, `no-store`), and every redirect is `no-store`
//! too. The organisation is never read from anything but the person's own memberships: a
//! `org` field or `?org=` only picks among them. `account.rs` is the person's own page and
//! actions, `members.rs` the Admin's member list and invitations, `access.rs` the Admin's
//! view of every key and app, `tools.rs` the Admin's tools page and "why" form, `trail.rs` the member's own
//! activity and the Admin's audit pages (records, verification, signed export), and
//! `confirm.rs` the password confirmation a stale session is asked for before an action
//! that needs a recent one (the form is carried through and re-posted by the person).
//! `ConsoleError` becomes a page in `console_error`, here, and nowhere else.
//!
//! Console pages allow one script, `/console/static/console.js` (the copy button), served
//! from here: the CSP is `script-src 'self'`, so no inline script runs.

mod access;
mod account;
mod confirm;
mod members;
mod tools;
mod trail;

use std::net::SocketAddr;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use warden_auth::console::{ConsoleError, Member, Origin};

use super::oauth::{AuthState, signed_in};
use super::{message, page};

pub(crate) fn routes(state: AuthState) -> Router {
    Router::new()
        .route("/console", get(account::overview))
        .route("/console/apps/revoke", post(account::revoke_app))
        .route("/console/keys", post(account::create_key))
        .route("/console/keys/revoke", post(account::revoke_key))
        .route("/console/keys/regenerate", post(account::regenerate_key))
        .route("/console/admin/members", get(members::list))
        .route("/console/admin/members/role", post(members::set_role))
        .route("/console/admin/members/remove", post(members::remove))
        .route("/console/admin/members/add", post(members::add))
        .route("/console/admin/access", get(access::list))
        .route("/console/admin/keys/revoke", post(access::revoke_key))
        .route("/console/admin/apps/revoke", post(access::revoke_app))
        .route("/console/admin/tools", get(tools::page))
        .route("/console/confirm", post(confirm::confirm))
        .route("/console/static/console.js", get(script))
        .route("/console/activity", get(trail::activity))
        .route("/console/admin/audit", get(trail::audit))
        .route("/console/admin/audit/record", get(trail::record))
        .route("/console/admin/audit/export", post(trail::export))
        .with_state(state)
}

/// The signed-in person acting in the organisation `org` picks among their own, or the page
/// to answer with instead: the sign-in page (continuing to `back_to`) when nobody is signed
/// in, or the refusal.
async fn member(
    s: &AuthState,
    headers: &HeaderMap,
    addr: SocketAddr,
    org: Option<&str>,
    back_to: &str,
) -> Result<Member, Response> {
    let Some(user) = signed_in(s, headers).await else {
        let query = serde_urlencoded::to_string([("continue", back_to)]).unwrap_or_default();
        return Err(see_other(&format!("/login?{query}")));
    };
    let origin = Origin {
        remote_addr: Some(addr.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
    };
    s.auth
        .console()
        .member(user, org, origin)
        .await
        .map_err(console_error)
}

/// Where sign-in continues to for the console page `path` (of `org`, if named).
fn back_to(path: &str, org: Option<&str>) -> String {
    match org {
        Some(o) => console_url(path, o, None),
        None => path.to_string(),
    }
}

/// The signed-in person on the Admin page `page` of `org` (a browser without a session is
/// sent to sign in and back here), with their Admin permit: refused with 403, and recorded,
/// for anyone else.
async fn admin_page(
    s: &AuthState,
    headers: &HeaderMap,
    addr: SocketAddr,
    org: Option<&str>,
    page: &str,
) -> Result<(Member, warden_auth::console::Admin), Response> {
    let m = member(s, headers, addr, org, &back_to(page, org)).await?;
    let admin = s
        .auth
        .console()
        .admin(&m, page)
        .await
        .map_err(console_error)?;
    Ok((m, admin))
}

/// Where a console page for `org` lives, with a fixed notice `done` (never text from the
/// request).
fn console_url(path: &str, org: &str, done: Option<&str>) -> String {
    let mut q = vec![("org", org)];
    if let Some(d) = done {
        q.push(("done", d));
    }
    format!(
        "{path}?{}",
        serde_urlencoded::to_string(q).unwrap_or_default()
    )
}

/// The console's one script: the copy button on a new secret. Written here, no CDN.
const SCRIPT: &str = include_str!("console.js");

async fn script() -> Response {
    let mut res = SCRIPT.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// A console page: `web::page` with the CSP widened to the console's own script.
fn console_page(
    status: StatusCode,
    name: &str,
    ctx: minijinja::Value,
    mut extra: HeaderMap,
) -> Response {
    extra.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    page(status, name, ctx, extra)
}

/// A 303 that no cache keeps.
fn see_other(to: &str) -> Response {
    let mut res = Redirect::to(to).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The one place a console refusal or failure becomes a page.
fn console_error(e: ConsoleError) -> Response {
    let back = Some("Go back to your access page at /console, reload it and try again.");
    match e {
        ConsoleError::NoMembership => message(
            StatusCode::FORBIDDEN,
            "No organisation yet",
            &e.to_string(),
            Some(
                "An Admin can add you with `warden member add` on the server, or from their console.",
            ),
        ),
        ConsoleError::NotYourOrg(_) => message(
            StatusCode::NOT_FOUND,
            "Organisation not found",
            &e.to_string(),
            Some("Open /console and pick one of your organisations."),
        ),
        ConsoleError::ProviderOnly(_) => message(
            StatusCode::FORBIDDEN,
            "Sign in with your identity provider",
            &e.to_string(),
            Some("Sign out, then choose your organisation's provider on the sign-in page."),
        ),
        ConsoleError::NotAdmin(_) => message(
            StatusCode::FORBIDDEN,
            "Admins only",
            &e.to_string(),
            Some(
                "This was refused and recorded. If you need it, ask an Admin of your organisation.",
            ),
        ),
        ConsoleError::NotFound(ref m) => message(StatusCode::NOT_FOUND, "Not found", m, back),
        ConsoleError::Invalid(ref m) => message(StatusCode::BAD_REQUEST, "Check the form", m, back),
        // Gated handlers answer this with the confirmation page; this is the fallback.
        ConsoleError::Reauthenticate => message(
            StatusCode::UNAUTHORIZED,
            "Confirm it is you",
            &e.to_string(),
            Some("Go back to /console and try again; you will be asked for your password."),
        ),
        ConsoleError::Audit(ref a) => {
            tracing::error!(error = %a, "a console refusal could not be recorded");
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Refused",
                &e.to_string(),
                Some("Try again in a moment."),
            )
        }
        ConsoleError::Unrecorded(ref a) => {
            tracing::error!(error = %a, "a console change was made but could not be recorded");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Changed, but not recorded",
                &e.to_string(),
                back,
            )
        }
        ConsoleError::Store(ref err) => {
            tracing::error!(error = %err, "console request failed");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Warden could not read or change its records.",
                Some("Try again; if it keeps failing, tell your Warden operator."),
            )
        }
        ConsoleError::Randomness(ref err) => {
            tracing::error!(error = %err, "console request failed");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Warden could not create a secret.",
                Some("Try again."),
            )
        }
    }
}

/// A time as the pages show it.
fn shown(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}
