//! Web pages (sign-in, consent, the console at `/console`) and the OAuth endpoints that
//! serve them.
//!
//! Server-rendered HTML with no JavaScript. Forms carry a CSRF token that must equal the
//! value of an HttpOnly, SameSite=Lax cookie (double submit), compared in constant time.
//! Pages cannot be framed. Cookies are `__Host-` and `Secure` when the server's URL is HTTPS;
//! over plain HTTP (local development) browsers refuse `__Host-` cookies, so the names drop
//! the prefix there.

pub mod console;
pub mod files;
pub mod mailer;
pub mod oauth;

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Names end in .html, so minijinja escapes every value.
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("consent.html", include_str!("templates/consent.html")),
            ("message.html", include_str!("templates/message.html")),
            ("console.html", include_str!("templates/console.html")),
            (
                "console_key.html",
                include_str!("templates/console_key.html"),
            ),
            (
                "console_members.html",
                include_str!("templates/console_members.html"),
            ),
            ("admin_nav.html", include_str!("templates/admin_nav.html")),
            (
                "console_access.html",
                include_str!("templates/console_access.html"),
            ),
            (
                "console_tools.html",
                include_str!("templates/console_tools.html"),
            ),
            (
                "console_confirm.html",
                include_str!("templates/console_confirm.html"),
            ),
            (
                "console_confirmed.html",
                include_str!("templates/console_confirmed.html"),
            ),
            (
                "console_remove.html",
                include_str!("templates/console_remove.html"),
            ),
            (
                "console_invited.html",
                include_str!("templates/console_invited.html"),
            ),
            (
                "trail_filters.html",
                include_str!("templates/trail_filters.html"),
            ),
            (
                "console_activity.html",
                include_str!("templates/console_activity.html"),
            ),
            (
                "console_audit.html",
                include_str!("templates/console_audit.html"),
            ),
            (
                "console_record.html",
                include_str!("templates/console_record.html"),
            ),
        ] {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "built-in template does not compile");
            }
        }
        env
    })
}

/// Renders a page; a template failure is a plain 500, never a half page.
pub(crate) fn page(
    status: StatusCode,
    name: &str,
    ctx: minijinja::Value,
    extra: HeaderMap,
) -> Response {
    let html = templates().get_template(name).and_then(|t| t.render(ctx));
    match html {
        Ok(body) => {
            let mut res = (status, body).into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                "content-security-policy",
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self' http: https:",
                ),
            );
            h.extend(extra);
            res
        }
        Err(e) => {
            tracing::error!(template = name, error = %e, "cannot render a page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

pub(crate) fn message(
    status: StatusCode,
    title: &str,
    message: &str,
    hint: Option<&str>,
) -> Response {
    page(
        status,
        "message.html",
        minijinja::context! { title, message, hint, error => status.is_client_error() || status.is_server_error() },
        HeaderMap::new(),
    )
}

/// Cookie names and attributes for this server's scheme.
#[derive(Debug, Clone)]
pub(crate) struct Cookies {
    secure: bool,
}

impl Cookies {
    pub(crate) fn new(issuer: &str) -> Self {
        Self {
            secure: issuer.starts_with("https://"),
        }
    }

    pub(crate) fn session_name(&self) -> &'static str {
        if self.secure {
            "__Host-warden_session"
        } else {
            "warden_session"
        }
    }

    pub(crate) fn csrf_name(&self) -> &'static str {
        if self.secure {
            "__Host-warden_csrf"
        } else {
            "warden_csrf"
        }
    }

    /// The state of a sign-in under way at an identity provider.
    pub(crate) fn sso_name(&self) -> &'static str {
        if self.secure {
            "__Host-warden_sso"
        } else {
            "warden_sso"
        }
    }

    pub(crate) fn set(&self, name: &str, value: &str, max_age_secs: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let v = format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
        );
        HeaderValue::from_str(&v)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
    }

    pub(crate) fn clear(&self, name: &str) -> HeaderValue {
        self.set(name, "", 0)
    }

    /// The value of cookie `name` in the request.
    pub(crate) fn get(headers: &HeaderMap, name: &str) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}
