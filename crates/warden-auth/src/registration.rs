//! Dynamic client registration (RFC 7591): which client metadata Warden accepts.
//!
//! Every client is public (no client secret: assistants cannot keep one) and uses the
//! authorization-code grant with PKCE. Redirect URIs must be HTTPS, or HTTP on a loopback
//! address (native apps, RFC 8252 §7.3); anything else could leak a code.

use serde::Deserialize;

/// The metadata a client sends. Unknown fields are ignored, as RFC 7591 asks.
#[derive(Debug, Deserialize)]
pub struct ClientMetadata {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    /// `native` or `web` (OpenID Connect Dynamic Client Registration; MCP 2026-07-28 asks
    /// clients to send it). Warden is not an OpenID provider: its redirect URI rules are the
    /// same for both (https, or loopback http), so the value is checked and echoed back.
    #[serde(default)]
    pub application_type: Option<String>,
}

/// RFC 7591 §3.2.2 error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(String),
    #[error("invalid_client_metadata: {0}")]
    InvalidMetadata(String),
}

impl RegistrationError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRedirectUri(_) => "invalid_redirect_uri",
            Self::InvalidMetadata(_) => "invalid_client_metadata",
        }
    }

    pub fn description(&self) -> &str {
        match self {
            Self::InvalidRedirectUri(d) | Self::InvalidMetadata(d) => d,
        }
    }
}

/// What Warden will store for an accepted registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
}

const MAX_REDIRECT_URIS: usize = 10;
const MAX_NAME: usize = 100;

/// Checks one redirect URI: absolute, no fragment, HTTPS or loopback HTTP.
pub fn check_redirect_uri(uri: &str) -> Result<(), RegistrationError> {
    let bad = |why: &str| RegistrationError::InvalidRedirectUri(format!("'{uri}' {why}"));
    let parsed = url::Url::parse(uri).map_err(|_| bad("is not an absolute URL"))?;
    if parsed.fragment().is_some() {
        return Err(bad("must not contain a fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("must not contain credentials"));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => match parsed.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Domain("localhost")) => Ok(()),
            _ => Err(bad(
                "uses http on a non-loopback host; use https, or http://127.0.0.1 for a native app",
            )),
        },
        other => Err(bad(&format!(
            "uses the scheme '{other}'; use https or loopback http"
        ))),
    }
}

pub fn validate(meta: &ClientMetadata) -> Result<AcceptedClient, RegistrationError> {
    if meta.redirect_uris.is_empty() {
        return Err(RegistrationError::InvalidRedirectUri(
            "redirect_uris must list at least one URI".into(),
        ));
    }
    if meta.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(RegistrationError::InvalidRedirectUri(format!(
            "at most {MAX_REDIRECT_URIS} redirect_uris are allowed"
        )));
    }
    for uri in &meta.redirect_uris {
        check_redirect_uri(uri)?;
    }
    if let Some(grants) = &meta.grant_types {
        if let Some(g) = grants
            .iter()
            .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
        {
            return Err(RegistrationError::InvalidMetadata(format!(
                "grant type '{g}' is not supported; use authorization_code (and refresh_token)"
            )));
        }
        if !grants.iter().any(|g| g == "authorization_code") {
            return Err(RegistrationError::InvalidMetadata(
                "grant_types must include authorization_code".into(),
            ));
        }
    }
    if let Some(types) = &meta.response_types
        && types.iter().any(|t| t != "code")
    {
        return Err(RegistrationError::InvalidMetadata(
            "only the response type 'code' is supported".into(),
        ));
    }
    if let Some(t) = &meta.application_type
        && t != "native"
        && t != "web"
    {
        return Err(RegistrationError::InvalidMetadata(format!(
            "application_type '{t}' is not one of native (desktop, mobile and command-line apps, and apps served from localhost) or web"
        )));
    }
    if let Some(m) = &meta.token_endpoint_auth_method
        && m != "none"
    {
        return Err(RegistrationError::InvalidMetadata(format!(
            "token_endpoint_auth_method '{m}' is not supported; Warden registers public clients ('none') that prove themselves with PKCE"
        )));
    }
    let name = meta
        .client_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("Unnamed client");
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(RegistrationError::InvalidMetadata(format!(
            "client_name must be at most {MAX_NAME} printable characters"
        )));
    }
    Ok(AcceptedClient {
        name: name.to_string(),
        redirect_uris: meta.redirect_uris.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uris: &[&str]) -> ClientMetadata {
        ClientMetadata {
            redirect_uris: uris.iter().map(|u| u.to_string()).collect(),
            client_name: Some("Assistant".into()),
            grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
            response_types: Some(vec!["code".into()]),
            token_endpoint_auth_method: Some("none".into()),
            scope: None,
            application_type: None,
        }
    }

    #[test]
    fn redirect_uris() {
        for ok in [
            "https://app.example/cb",
            "http://127.0.0.1:3000/callback",
            "http://localhost/cb",
            "http://[::1]:9/cb",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example/cb",
            "http://127.0.0.1.evil.example/cb",
            "https://app.example/cb#frag",
            "javascript:alert(1)",
            "/relative",
            "https://user:pw@app.example/cb",
            "custom-scheme://cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn application_type_is_native_or_web_with_the_same_redirect_rules() {
        for t in ["native", "web"] {
            let mut m = meta(&["http://127.0.0.1:9/cb", "https://a.example/cb"]);
            m.application_type = Some(t.into());
            assert!(validate(&m).is_ok(), "{t}");
        }
        let mut m = meta(&["https://a.example/cb"]);
        m.application_type = Some("browser".into());
        let e = validate(&m).unwrap_err();
        assert_eq!(e.code(), "invalid_client_metadata");
        assert!(e.description().contains("'browser'"), "{}", e.description());
    }

    #[test]
    fn metadata() {
        assert_eq!(
            validate(&meta(&["https://a.example/cb"])).unwrap().name,
            "Assistant"
        );
        assert!(matches!(
            validate(&meta(&[])),
            Err(RegistrationError::InvalidRedirectUri(_))
        ));
        let mut m = meta(&["https://a.example/cb"]);
        m.grant_types = Some(vec!["client_credentials".into()]);
        assert_eq!(validate(&m).unwrap_err().code(), "invalid_client_metadata");
        let mut m = meta(&["https://a.example/cb"]);
        m.token_endpoint_auth_method = Some("client_secret_basic".into());
        assert!(
            validate(&m)
                .unwrap_err()
                .description()
                .contains("public clients")
        );
        let mut m = meta(&["https://a.example/cb"]);
        m.response_types = Some(vec!["token".into()]);
        assert!(validate(&m).is_err());
    }
}
