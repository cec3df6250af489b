//! The `server` section: bind address, public URL, allowed hosts and origins, body limit,
//! and the metrics listener.

use std::net::SocketAddr;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::Checker;
use crate::project::{AbuseLimits, ConnectionLimits, ServerConfig, TlsConfig, model};

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
            let base = self.file.parent().map(std::path::Path::to_path_buf);
            crate::project::env::expand_with_files(&node.value, self.env, &base.unwrap_or_default())
                .ok()
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
                                "'{}' is not host:port with an IP address, e.g. 127.0.0.1:8080",
                                b.value
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
                            format!("'{}' is not an http:// or https:// URL", u.value),
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
                self.err(h, field, format!("'{}' must be a bare host name such as warden.example.com (no scheme, port or wildcard)", h.value));
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
                    self.err(o, field, format!("'{}' must be an origin like https://app.example.com (scheme, host and optional port; no path or wildcard)", o.value));
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
        let tls = s.tls.as_ref().and_then(|t| {
            let cert = self.expand(&t.value.cert, "server.tls.cert")?;
            let key = self.expand(&t.value.key, "server.tls.key")?;
            Some(TlsConfig {
                cert: self.relative(&cert),
                key: self.relative(&key),
            })
        });
        if s.tls.is_some() && tls.is_none() {
            ok = false;
        }
        if let (true, Some(url), Some(u)) = (s.tls.is_some(), &public_url, &s.public_url)
            && !url.to_ascii_lowercase().starts_with("https://")
        {
            self.err(
                u,
                "server.public_url",
                format!("'{url}' is http://, but `server.tls` serves HTTPS; clients must use an https:// URL (and OAuth clients check it)"),
            );
            ok = false;
        }
        let hsts = match &s.hsts {
            None => crate::project::DEFAULT_HSTS.to_string(),
            Some(h) => match self.hsts(&h.value) {
                Some(v) => v,
                None => {
                    ok = false;
                    String::new()
                }
            },
        };
        let redirect_http = match &s.redirect_http {
            None => None,
            Some(r) => {
                let v = self.expand_server(r, "server.redirect_http");
                match v.as_deref().map(str::parse::<SocketAddr>) {
                    Some(Ok(a)) if s.tls.is_some() => Some(a),
                    Some(Ok(_)) => {
                        self.err(r, "server.redirect_http", "a redirect to HTTPS needs `server.tls`; without it, serve plain HTTP on server.bind");
                        ok = false;
                        None
                    }
                    Some(Err(_)) => {
                        self.err(
                            r,
                            "server.redirect_http",
                            format!(
                                "'{}' is not host:port with an IP address, e.g. 0.0.0.0:80",
                                r.value
                            ),
                        );
                        ok = false;
                        None
                    }
                    None => None,
                }
            }
        };
        let limits = match &s.limits {
            None => ConnectionLimits::default(),
            Some(l) => match self.limits(&l.value) {
                Some(v) => v,
                None => {
                    ok = false;
                    ConnectionLimits::default()
                }
            },
        };
        let abuse_limits = match &s.limits {
            None => AbuseLimits::default(),
            Some(l) => match self.abuse_limits(&l.value) {
                Some(v) => v,
                None => {
                    ok = false;
                    AbuseLimits::default()
                }
            },
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
                            format!("'{}' is the MCP listener's address (server.bind); give metrics a port of their own, e.g. 127.0.0.1:9090", m.bind.value),
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
                                "'{}' is not host:port with an IP address, e.g. 127.0.0.1:9090",
                                m.bind.value
                            ),
                        );
                        ok = false;
                        None
                    }
                }
            }
        };
        let stateless = match s.sessions.as_ref().map(|v| (v, v.value.as_str())) {
            None | Some((_, "stateful")) => false,
            Some((_, "stateless")) => true,
            Some((node, other)) => {
                self.err(
                    node,
                    "server.sessions",
                    format!("'{other}' is not a session mode; use stateful (one instance) or stateless (several behind a balancer)"),
                );
                ok = false;
                false
            }
        };
        self.stateless = stateless;
        let mut trusted_proxies = Vec::new();
        for (i, t) in s.trusted_proxies.iter().enumerate() {
            match t.value.trim().parse::<std::net::IpAddr>() {
                Ok(ip) => trusted_proxies.push(ip),
                Err(_) => {
                    self.err(
                        t,
                        format!("server.trusted_proxies[{i}]"),
                        format!("'{}' is not an IP address, e.g. 10.0.0.5 (the balancer's address as Warden sees it)", t.value),
                    );
                    ok = false;
                }
            }
        }
        (ok && bind.is_some()).then(|| ServerConfig {
            bind: bind.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            public_url,
            allowed_hosts,
            allowed_origins,
            max_body_bytes,
            tls,
            hsts,
            redirect_http,
            limits,
            abuse_limits,
            metrics_bind,
            stateless,
            trusted_proxies,
        })
    }

    /// The `Strict-Transport-Security` value of `server.hsts`.
    fn hsts(&mut self, h: &model::HstsSection) -> Option<String> {
        const YEAR: u64 = 31_536_000;
        let max_age = h.max_age.as_ref().map_or(YEAR, |m| m.value);
        let subdomains = h.include_subdomains.as_ref().is_none_or(|b| b.value);
        let preload = h.preload.as_ref().is_some_and(|b| b.value);
        if let Some(m) = &h.max_age
            && m.value > 2 * YEAR
        {
            self.err(
                m,
                "server.hsts.max_age",
                format!(
                    "{} seconds is more than two years; use at most {}",
                    m.value,
                    2 * YEAR
                ),
            );
            return None;
        }
        if let Some(p) = &h.preload
            && preload
            && (max_age < YEAR || !subdomains)
        {
            self.err(
                p,
                "server.hsts.preload",
                "preload lists accept only max_age of a year or more with include_subdomains: true",
            );
            return None;
        }
        let mut v = format!("max-age={max_age}");
        if subdomains {
            v.push_str("; includeSubDomains");
        }
        if preload {
            v.push_str("; preload");
        }
        Some(v)
    }

    fn limits(&mut self, l: &model::LimitsSection) -> Option<ConnectionLimits> {
        let d = ConnectionLimits::default();
        let mut ok = true;
        let mut within = |c: &mut Self,
                          v: &Option<Spanned<u64>>,
                          field: &str,
                          lo: u64,
                          hi: u64,
                          default: u64|
         -> u64 {
            match v {
                None => default,
                Some(n) if (lo..=hi).contains(&n.value) => n.value,
                Some(n) => {
                    c.err(
                        n,
                        format!("server.limits.{field}"),
                        format!("must be between {lo} and {hi}"),
                    );
                    ok = false;
                    default
                }
            }
        };
        let max = within(
            self,
            &l.max_connections,
            "max_connections",
            1,
            1_000_000,
            d.max_connections as u64,
        );
        let per = within(
            self,
            &l.max_connections_per_address,
            "max_connections_per_address",
            1,
            1_000_000,
            (d.max_connections_per_address as u64).min(max),
        );
        let header = within(
            self,
            &l.header_timeout_ms,
            "header_timeout_ms",
            100,
            600_000,
            d.header_timeout.as_millis() as u64,
        );
        let body = within(
            self,
            &l.body_timeout_ms,
            "body_timeout_ms",
            100,
            600_000,
            d.body_timeout.as_millis() as u64,
        );
        let idle = within(
            self,
            &l.idle_timeout_ms,
            "idle_timeout_ms",
            1_000,
            86_400_000,
            d.idle_timeout.as_millis() as u64,
        );
        if let Some(p) = &l.max_connections_per_address
            && per > max
        {
            self.err(
                p,
                "server.limits.max_connections_per_address",
                format!("{per} is more than max_connections ({max})"),
            );
            ok = false;
        }
        ok.then(|| ConnectionLimits {
            max_connections: max as usize,
            max_connections_per_address: per as usize,
            header_timeout: Duration::from_millis(header),
            idle_timeout: Duration::from_millis(idle),
            body_timeout: Duration::from_millis(body),
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
