//! The `auth` mode and the sections it reads: `state` (where users and tokens are kept),
//! `tokens` (lifetimes) and `login` (how sign-in links are mailed).

use std::time::Duration;

use serde_saphyr::Spanned;

use super::{Checker, ProjectError};
use crate::project::{AuthConfig, AuthMode, DataLocation, MailerConfig, ServerConfig, model};

impl Checker<'_> {
    pub(super) fn auth(
        &mut self,
        mode: Option<Spanned<String>>,
        state: Option<Spanned<model::StateSection>>,
        tokens: Option<Spanned<model::TokensSection>>,
        login: Option<Spanned<model::LoginSection>>,
        server: Option<&ServerConfig>,
    ) -> Option<AuthConfig> {
        let before = self.errors.len();
        let mode = match mode.as_ref().map(|m| m.value.as_str()) {
            None | Some("oauth") => AuthMode::OAuth,
            Some("none") => AuthMode::None,
            Some(other) => {
                if let Some(m) = &mode {
                    self.err(m, "auth", format!("'{other}' is not an authentication mode; use oauth, or none for local development"));
                }
                AuthMode::OAuth
            }
        };
        if mode == AuthMode::None
            && let Some(server) = server
            && !server.bind.ip().is_loopback()
        {
            self.errors.push(ProjectError {
                file: self.file.clone(),
                line: None,
                column: None,
                field: "server.bind".into(),
                message: format!(
                    "`auth: none` serves without authentication, so Warden binds only to loopback; {} is not a loopback address",
                    server.bind
                ),
            });
        }
        let state = state.map(|s| s.value).unwrap_or_default();
        let state = match (&state.sqlite, &state.postgres) {
            (None, None) => Some(DataLocation::Sqlite(self.relative(".warden/state.db"))),
            (Some(p), None) => self
                .expand(p, "state.sqlite")
                .map(|v| DataLocation::Sqlite(self.relative(&v))),
            (None, Some(u)) => match self.expand(u, "state.postgres") {
                Some(v) if v.starts_with("postgres://") || v.starts_with("postgresql://") => {
                    Some(DataLocation::Postgres(v))
                }
                Some(_) => {
                    self.err(
                        u,
                        "state.postgres",
                        "must be a postgres:// or postgresql:// URL",
                    );
                    None
                }
                None => None,
            },
            (Some(p), Some(_)) => {
                self.err(p, "state", "give only one of `sqlite` or `postgres`");
                None
            }
        };
        let tokens = tokens.map(|t| t.value).unwrap_or_default();
        let minutes = match &tokens.access_minutes {
            None => 15,
            Some(m) if (1..=1440).contains(&m.value) => m.value,
            Some(m) => {
                self.err(
                    m,
                    "tokens.access_minutes",
                    format!("must be between 1 and 1440, got {}", m.value),
                );
                15
            }
        };
        let days = match &tokens.refresh_days {
            None => 30,
            Some(d) if (1..=365).contains(&d.value) => d.value,
            Some(d) => {
                self.err(
                    d,
                    "tokens.refresh_days",
                    format!("must be between 1 and 365, got {}", d.value),
                );
                30
            }
        };
        let code_seconds = match &tokens.code_seconds {
            None => 300,
            Some(c) if (1..=300).contains(&c.value) => c.value,
            Some(c) => {
                self.err(
                    c,
                    "tokens.code_seconds",
                    format!("must be between 1 and 300, got {}", c.value),
                );
                300
            }
        };
        let login = login.map(|l| l.value).unwrap_or_default();
        let sign_in = self.sign_in(&login);
        let mailer = match (&login.outbox, &login.smtp) {
            (Some(o), Some(_)) => {
                self.err(o, "login", "give only one of `outbox` or `smtp`");
                None
            }
            (None, Some(smtp)) => {
                let s = &smtp.value;
                let host = self.expand(&s.host, "login.smtp.host");
                let from = self.expand(&s.from, "login.smtp.from");
                let username = s
                    .username
                    .as_ref()
                    .and_then(|u| self.expand(u, "login.smtp.username"));
                let password = s
                    .password
                    .as_ref()
                    .and_then(|p| self.expand(p, "login.smtp.password"));
                {
                    let tls = match s.tls.as_ref().map(|t| t.value.as_str()) {
                        None if s.port == Some(465) => Some(crate::project::SmtpTls::Implicit),
                        None | Some("starttls") => Some(crate::project::SmtpTls::StartTls),
                        Some("implicit") => Some(crate::project::SmtpTls::Implicit),
                        Some("none") => Some(crate::project::SmtpTls::None),
                        Some(other) => {
                            if let Some(t) = &s.tls {
                                self.err(t, "login.smtp.tls", format!("'{other}' is not a TLS mode; use starttls, implicit or none"));
                            }
                            None
                        }
                    };
                    let loopback = |h: &str| {
                        h == "localhost"
                            || h.parse::<std::net::IpAddr>()
                                .is_ok_and(|ip| ip.is_loopback())
                    };
                    if tls == Some(crate::project::SmtpTls::None)
                        && let (Some(h), Some(t)) = (&host, &s.tls)
                        && !loopback(h)
                    {
                        self.err(t, "login.smtp.tls", format!("`none` sends mail and credentials in clear; it is allowed only for a loopback relay, not {h}"));
                    }
                    Some(MailerConfig::Smtp {
                        host: host?,
                        port: s
                            .port
                            .unwrap_or(if tls == Some(crate::project::SmtpTls::Implicit) {
                                465
                            } else {
                                587
                            }),
                        username,
                        password,
                        from: from?,
                        tls: tls?,
                    })
                }
            }
            (Some(o), None) => self
                .expand(o, "login.outbox")
                .map(|v| MailerConfig::Outbox(self.relative(&v))),
            (None, None) => Some(MailerConfig::Outbox(self.relative(".warden/outbox"))),
        };
        if self.errors.len() > before {
            return None;
        }
        Some(AuthConfig {
            mode,
            state: state?,
            access_ttl: Duration::from_secs(minutes * 60),
            refresh_ttl: Duration::from_secs(days * 86_400),
            code_ttl: Duration::from_secs(code_seconds),
            mailer: mailer?,
            sign_in: std::sync::Arc::new(sign_in),
        })
    }
}
