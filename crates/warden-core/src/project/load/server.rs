//! The `server` section: bind address, public URL, allowed hosts and origins, body limit,
//! and the metrics listener.

use std::net::SocketAddr;

use super::Checker;
use crate::project::{ServerConfig, model};

const DEFAULT_BIND: &str = "127.0.0.1:8080";
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl Checker<'_> {
    /// `${VAR}` in a `server` field. Offline (a command that never serves), an unset variable
    /// is no error: the field keeps its default.
    fn expand_server(
        &mut self,
        node: &serde_saphyr::Spanned<String>,
        field: &str,
    ) -> Option<String> {
        if self.offline {
            crate::project::env::expand(&node.value, self.env).ok()
        } else {
            self.expand(node, field)
        }
    }

    pub(super) fn server(&mut self, s: model::ServerSection) -> Option<ServerConfig> {
        let mut ok = true;
        let bind = match &s.bind {
            None => DEFAULT_BIND.parse().ok(),
            Some(b) => {
                let v = match self.expand_server(b, "server.bind") {
                    Some(v) => v,
                    None if self.offline => DEFAULT_BIND.to_string(),
                    None => return None,
                };
                match v.parse::<SocketAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        self.err(
                            b,
                            "server.bind",
                            format!(
                                "'{v}' is not host:port with an IP address, e.g. 127.0.0.1:8080"
                            ),
                        );
                        None
                    }
                }
            }
        };
        let mut allowed_hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect();
        let mut allowed_origins = Vec::new();
        let public_url = match &s.public_url {
            None => None,
            Some(u) => {
                let v = match self.expand_server(u, "server.public_url") {
                    Some(v) => v,
                    None if self.offline => String::new(),
                    None => return None,
                };
                match split_origin(&v) {
                    None if self.offline && v.is_empty() => None,
                    Some((origin, host)) => {
                        allowed_hosts.push(host);
                        allowed_origins.push(origin);
                        Some(v.trim_end_matches('/').to_string())
                    }
                    None => {
                        self.err(
                            u,
                            "server.public_url",
                            format!("'{v}' is not an http:// or https:// URL"),
                        );
                        ok = false;
                        None
                    }
                }
            }
        };
        for (i, h) in s.allowed_hosts.iter().enumerate() {
            let field = format!("server.allowed_hosts[{i}]");
            let Some(v) = self.expand_server(h, &field) else {
                continue;
            };
            if v.is_empty() || v.contains(['/', '*', ' ', ':']) && !v.starts_with('[') {
                self.err(h, field, format!("'{v}' must be a bare host name such as warden.example.com (no scheme, port or wildcard)"));
                ok = false;
            } else {
                allowed_hosts.push(v.to_ascii_lowercase());
            }
        }
        for (i, o) in s.allowed_origins.iter().enumerate() {
            let field = format!("server.allowed_origins[{i}]");
            let Some(v) = self.expand_server(o, &field) else {
                continue;
            };
            match split_origin(&v) {
                Some((origin, _)) if origin == v.trim_end_matches('/') => {
                    allowed_origins.push(origin)
                }
                _ => {
                    self.err(o, field, format!("'{v}' must be an origin like https://app.example.com (scheme, host and optional port; no path or wildcard)"));
                    ok = false;
                }
            }
        }
        let max_body_bytes = match &s.max_body_bytes {
            None => 1024 * 1024,
            Some(m) if (1024..=64 * 1024 * 1024).contains(&m.value) => m.value as usize,
            Some(m) => {
                self.err(
                    m,
                    "server.max_body_bytes",
                    "must be between 1024 and 67108864",
                );
                ok = false;
                0
            }
        };
        let metrics_bind = match &s.metrics {
            None => None,
            Some(m) => {
                let v = match self.expand_server(&m.bind, "server.metrics.bind") {
                    Some(v) => v,
                    None if self.offline => String::new(),
                    None => return None,
                };
                match v.parse::<SocketAddr>() {
                    Ok(a)
                        if bind.is_some_and(|b| {
                            b.port() == a.port()
                                && a.port() != 0
                                && (b.ip() == a.ip()
                                    || b.ip().is_unspecified()
                                    || a.ip().is_unspecified())
                        }) =>
                    {
                        self.err(
                            &m.bind,
                            "server.metrics.bind",
                            format!("'{v}' is the MCP listener's address (server.bind); give metrics a port of their own, e.g. 127.0.0.1:9090"),
                        );
                        ok = false;
                        None
                    }
                    Ok(a) => Some(a),
                    Err(_) if self.offline && v.is_empty() => None,
                    Err(_) => {
                        self.err(
                            &m.bind,
                            "server.metrics.bind",
                            format!(
                                "'{v}' is not host:port with an IP address, e.g. 127.0.0.1:9090"
                            ),
                        );
                        ok = false;
                        None
                    }
                }
            }
        };
        (ok && bind.is_some()).then(|| ServerConfig {
            bind: bind.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            public_url,
            allowed_hosts,
            allowed_origins,
            max_body_bytes,
            metrics_bind,
        })
    }
}

/// `(origin, lowercase host)` of an http(s) URL, e.g. `("https://a.example:8443", "a.example")`.
pub(crate) fn split_origin(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next()?.to_string()
    } else {
        authority.split(':').next()?.to_string()
    };
    Some((format!("{scheme}://{authority}"), host))
}
