//! A foreign `Origin` is refused (403): a page on another site must not drive a server on
//! this machine (DNS rebinding).

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::{EdgeConfig, jsonrpc_error};

/// True when `origin` is a loopback page or one of the configured origins. Browsers send
/// `Origin` on cross-site requests; refusing foreign ones stops DNS-rebinding pages from
/// driving a local server. Requests without `Origin` (non-browser clients) pass.
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let origin = origin.trim().to_ascii_lowercase();
    if allowed.iter().any(|a| a == &origin) {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    if scheme != "http" && scheme != "https" {
        return false;
    }
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let port_ok = match authority.strip_prefix(host) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())),
        None => false,
    };
    port_ok && matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

pub(super) async fn check_origin(
    State(edge): State<EdgeConfig>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .is_ok_and(|o| origin_allowed(o, &edge.allowed_origins));
        if !ok {
            let shown = String::from_utf8_lossy(origin.as_bytes())
                .chars()
                .take(200)
                .collect::<String>();
            tracing::warn!(origin = %shown, "refused a request from a foreign origin");
            return jsonrpc_error(
                StatusCode::FORBIDDEN,
                -32600,
                format!(
                    "Origin '{shown}' is not allowed; add it to server.allowed_origins in the project file if it is yours"
                ),
            );
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    #[test]
    fn origins() {
        let allowed = vec!["https://app.example.com".to_string()];
        let cases = [
            ("http://localhost:6274", true),
            ("http://127.0.0.1", true),
            ("http://[::1]:8080", true),
            ("https://app.example.com", true),
            ("HTTPS://APP.EXAMPLE.COM", true),
            ("https://app.example.com:444", false),
            ("http://evil.example", false),
            ("http://localhost.evil.example", false),
            ("http://127.0.0.1.nip.io", false),
            ("http://localhost:80@evil.example", false),
            ("null", false),
            ("file://", false),
        ];
        for (origin, want) in cases {
            assert_eq!(origin_allowed(origin, &allowed), want, "{origin}");
        }
    }
}
