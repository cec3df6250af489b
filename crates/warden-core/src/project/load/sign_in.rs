//! `login.password`, `login.secrets_key` and `login.providers`: who may sign in, and how,
//! to the web pages. Each provider's preset fills in what it can (issuer, scopes, label);
//! its mapping rules are compiled here and may read only `claims`.

use std::sync::Arc;

use serde_saphyr::Spanned;

use super::Checker;
use crate::identity::Role;
use crate::policy::Condition;
use crate::project::{LoginProvider, MapRule, ProviderKind, SignInConfig, model};

const PRESETS: [&str; 7] = [
    "oidc",
    "google",
    "microsoft",
    "okta",
    "keycloak",
    "auth0",
    "github",
];

impl Checker<'_> {
    pub(super) fn sign_in(&mut self, login: &model::LoginSection) -> SignInConfig {
        let password = login.password.as_ref().is_none_or(|p| p.value);
        let secrets_key = self.relative(
            login
                .secrets_key
                .as_ref()
                .map_or(".warden/sso.key", |k| k.value.as_str()),
        );
        let mut providers: Vec<Arc<LoginProvider>> = Vec::new();
        for (i, p) in login.providers.iter().enumerate() {
            let at = format!("login.providers[{i}]");
            if let Some(provider) = self.provider(&p.value, &at) {
                if providers.iter().any(|q| q.name == provider.name) {
                    self.err(
                        &p.value.name,
                        format!("{at}.name"),
                        format!(
                            "'{}' names two providers; each needs its own name",
                            provider.name
                        ),
                    );
                    continue;
                }
                providers.push(Arc::new(provider));
            }
        }
        if !password
            && login.providers.is_empty()
            && let Some(p) = &login.password
        {
            self.err(
                p,
                "login.password",
                "with password sign-in off and no `providers`, nobody could sign in; add a provider or remove `password: false`",
            );
        }
        let mut provider_only = Vec::new();
        for (i, slug) in login.provider_only.iter().enumerate() {
            if login.providers.is_empty() {
                self.err(slug, format!("login.provider_only[{i}]"), format!("'{}' would have no way to sign in: add a provider under login.providers first", slug.value));
                continue;
            }
            provider_only.push(slug.value.trim().to_string());
        }
        SignInConfig {
            password,
            secrets_key,
            providers,
            provider_only,
        }
    }

    fn provider(&mut self, p: &model::ProviderSection, at: &str) -> Option<LoginProvider> {
        let before = self.errors.len();
        let name = p.name.value.clone();
        if name.is_empty()
            || name.len() > 32
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            self.err(
                &p.name,
                format!("{at}.name"),
                format!("'{name}' is not a provider name; use 1 to 32 lowercase letters, digits or '-' (it is part of the redirect URI)"),
            );
        }
        let preset = match p.preset.as_ref() {
            None => "oidc",
            Some(s) => match PRESETS.iter().find(|k| **k == s.value) {
                Some(k) => k,
                None => {
                    self.err(
                        s,
                        format!("{at}.preset"),
                        format!(
                            "'{}' is not a preset; use one of {}",
                            s.value,
                            PRESETS.join(", ")
                        ),
                    );
                    "oidc"
                }
            },
        };
        let kind = self.provider_kind(p, preset, at);
        let client_id = p.client_id.value.trim().to_string();
        if client_id.is_empty() {
            self.err(
                &p.client_id,
                format!("{at}.client_id"),
                "is empty; copy the client id from the provider's app settings",
            );
        }
        let client_secret = self
            .expand(&p.client_secret, &format!("{at}.client_secret"))
            .unwrap_or_default();
        if client_secret.is_empty() && self.errors.len() == before {
            self.err(
                &p.client_secret,
                format!("{at}.client_secret"),
                "is empty; give it as ${VAR} and set VAR in Warden's environment",
            );
        }
        let scopes = match &p.scopes {
            Some(s) => s.value.clone(),
            None if preset == "github" => {
                vec!["read:user".into(), "user:email".into(), "read:org".into()]
            }
            None => vec!["openid".into(), "email".into(), "profile".into()],
        };
        let mut scopes = scopes;
        // These providers give a refresh token, which resync needs, only for offline_access.
        if p.resync.as_ref().is_some_and(|r| r.value)
            && matches!(preset, "microsoft" | "okta" | "auth0" | "keycloak")
            && !scopes.iter().any(|s| s == "offline_access")
        {
            scopes.push("offline_access".into());
        }
        if preset != "github"
            && !scopes.iter().any(|s| s == "openid")
            && let Some(s) = &p.scopes
        {
            self.err(
                s,
                format!("{at}.scopes"),
                "an OpenID Connect provider needs the `openid` scope; add it",
            );
        }
        if p.map.is_empty() {
            self.err(
                &p.name,
                format!("{at}.map"),
                "no `map` rules: nobody signing in here could be given an organisation; add at least one rule (when, org, role)",
            );
        }
        let mut map = Vec::new();
        for (i, rule) in p.map.iter().enumerate() {
            let field = format!("{at}.map[{i}]");
            let r = &rule.value;
            let when = match Condition::compile(&r.when.value) {
                Ok(c) => c,
                Err(e) => {
                    self.err(
                        &r.when,
                        format!("{field}.when"),
                        format!("is not valid CEL: {e}"),
                    );
                    continue;
                }
            };
            if let Some(v) = when.variables().iter().find(|v| v.as_str() != "claims") {
                self.err(
                    &r.when,
                    format!("{field}.when"),
                    format!("names `{v}`; a mapping rule sees only `claims` (the ID token's and userinfo's claims)"),
                );
                continue;
            }
            let role = match r.role.value.parse::<Role>() {
                Ok(role) => role,
                Err(e) => {
                    self.err(&r.role, format!("{field}.role"), e.to_string());
                    continue;
                }
            };
            let org = r.org.value.trim().to_string();
            if org.is_empty() {
                self.err(
                    &r.org,
                    format!("{field}.org"),
                    "is empty; name an organisation by its slug",
                );
                continue;
            }
            map.push(MapRule {
                index: i,
                when,
                org,
                role,
            });
        }
        if self.errors.len() > before {
            return None;
        }
        let label = p.label.as_ref().map_or_else(
            || {
                match preset {
                    "google" => "Google",
                    "microsoft" => "Microsoft",
                    "okta" => "Okta",
                    "keycloak" => "Keycloak",
                    "auth0" => "Auth0",
                    "github" => "GitHub",
                    _ => name.as_str(),
                }
                .to_string()
            },
            |l| l.value.clone(),
        );
        Some(LoginProvider {
            name,
            label,
            kind: kind?,
            client_id,
            client_secret,
            scopes,
            link_verified_email: p.link_verified_email.as_ref().is_some_and(|v| v.value),
            provision: p.provision.as_ref().is_some_and(|v| v.value),
            resync: p.resync.as_ref().is_some_and(|v| v.value),
            map,
        })
    }

    fn provider_kind(
        &mut self,
        p: &model::ProviderSection,
        preset: &'static str,
        at: &str,
    ) -> Option<ProviderKind> {
        if preset == "github" {
            if let Some(i) = &p.issuer {
                self.err(
                    i,
                    format!("{at}.issuer"),
                    "GitHub is not an OpenID provider and has no issuer; for GitHub Enterprise Server give api_url and web_url",
                );
                return None;
            }
            let api_url = self.url_field(
                p.api_url.as_ref(),
                "https://api.github.com",
                &format!("{at}.api_url"),
            )?;
            let web_url = self.url_field(
                p.web_url.as_ref(),
                "https://github.com",
                &format!("{at}.web_url"),
            )?;
            return Some(ProviderKind::GitHub { api_url, web_url });
        }
        for (f, v) in [("api_url", &p.api_url), ("web_url", &p.web_url)] {
            if let Some(v) = v {
                self.err(v, format!("{at}.{f}"), "is for the github preset only");
                return None;
            }
        }
        let issuer = match (&p.issuer, preset) {
            (None, "google") => "https://accounts.google.com".to_string(),
            (None, _) => {
                let hint = match preset {
                    "microsoft" => "https://login.microsoftonline.com/<tenant-id>/v2.0",
                    "okta" => "https://<your-org>.okta.com/oauth2/default",
                    "keycloak" => "https://<host>/realms/<realm>",
                    "auth0" => "https://<tenant>.auth0.com/",
                    _ => {
                        "the provider's issuer URL (its /.well-known/openid-configuration lives under it)"
                    }
                };
                self.err(
                    &p.name,
                    format!("{at}.issuer"),
                    format!("is missing; give {hint}"),
                );
                return None;
            }
            (Some(i), _) => {
                let field = format!("{at}.issuer");
                let issuer = self.url_field(Some(i), "", &field)?;
                if preset == "microsoft" {
                    let tenant = issuer
                        .strip_prefix("https://login.microsoftonline.com/")
                        .and_then(|r| r.strip_suffix("/v2.0"));
                    match tenant {
                        Some("common" | "organizations" | "consumers") => {
                            self.err(i, field, "a multi-tenant issuer (common, organizations, consumers) cannot be checked against the ID token; use your tenant's id: https://login.microsoftonline.com/<tenant-id>/v2.0");
                            return None;
                        }
                        Some(t) if !t.is_empty() && !t.contains('/') => {}
                        _ => {
                            self.err(i, field, "a Microsoft Entra ID issuer looks like https://login.microsoftonline.com/<tenant-id>/v2.0");
                            return None;
                        }
                    }
                }
                issuer
            }
        };
        Some(ProviderKind::Oidc { issuer, preset })
    }

    /// An https URL (or http to a loopback host, for tests and local providers), with no
    /// trailing slash unless it is the whole path (issuers are compared exactly).
    fn url_field(
        &mut self,
        node: Option<&Spanned<String>>,
        default: &str,
        field: &str,
    ) -> Option<String> {
        let Some(node) = node else {
            return Some(default.to_string());
        };
        let value = self.expand(node, field)?;
        match url::Url::parse(&value) {
            Ok(u) if u.scheme() == "https" && u.host_str().is_some() => Some(value),
            Ok(u)
                if u.scheme() == "http"
                    && u.host().is_some_and(|h| match h {
                        url::Host::Domain(d) => d == "localhost",
                        url::Host::Ipv4(ip) => ip.is_loopback(),
                        url::Host::Ipv6(ip) => ip.is_loopback(),
                    }) =>
            {
                Some(value)
            }
            Ok(_) => {
                self.err(
                    node,
                    field,
                    format!("'{value}' must be an https URL (http only to a loopback host)"),
                );
                None
            }
            Err(e) => {
                self.err(node, field, format!("'{value}' is not a URL: {e}"));
                None
            }
        }
    }
}
