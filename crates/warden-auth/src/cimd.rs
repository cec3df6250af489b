//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, the MCP
//! authorization spec's preferred way for a client to identify itself): a `client_id` that
//! is an `https` URL names a JSON document, served there, describing the client.
//!
//! Fetching a URL an anonymous caller chose is a server-side request forgery risk, so the
//! fetch is narrow: `https` only, a domain name (no IP literal), no redirects, 5 seconds,
//! 10 KB, and no connection to a loopback, private, link-local, shared, documentation or
//! otherwise non-public address. The address check is made by the resolver the connection
//! itself uses ([`PublicOnly`]): the addresses checked are the ones connected to, so a DNS
//! answer that changes between a check and the connection (rebinding) cannot get around it.
//! A document must name itself (`client_id` equal to the URL) and pass the same checks as a
//! registration; it is cached within its HTTP caching limits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::registration::{self, AcceptedClient, ClientMetadata};

pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_DOCUMENT: usize = 10 * 1024;
/// Without caching headers a document is kept this long; never longer than a day.
const DEFAULT_CACHE: Duration = Duration::from_secs(5 * 60);
const MAX_CACHE: Duration = Duration::from_secs(24 * 60 * 60);
const MAX_CACHED: usize = 1000;

/// Why a metadata document was refused, in words for the person and the app's developer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CimdError(pub String);

fn refuse(s: impl Into<String>) -> CimdError {
    CimdError(s.into())
}

/// Whether `client_id` is meant as a metadata document URL (rather than a registered id).
pub fn is_document_url(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// The checks on the URL itself (draft section 3): https, a path, no fragment, no
/// credentials, no dot segments, a domain name rather than an address.
pub fn check_url(client_id: &str) -> Result<url::Url, CimdError> {
    let u = url::Url::parse(client_id)
        .map_err(|e| refuse(format!("client_id '{client_id}' is not a URL: {e}")))?;
    if u.scheme() != "https" {
        return Err(refuse(format!(
            "a client_id URL must be https, not {}",
            u.scheme()
        )));
    }
    if u.fragment().is_some() || !u.username().is_empty() || u.password().is_some() {
        return Err(refuse(
            "a client_id URL must not carry a fragment or credentials",
        ));
    }
    if u.path() == "/" || u.path().is_empty() {
        return Err(refuse(
            "a client_id URL must have a path (e.g. https://app.example/oauth/client.json)",
        ));
    }
    if client_id.contains("/./")
        || client_id.contains("/../")
        || client_id.ends_with("/.")
        || client_id.ends_with("/..")
    {
        return Err(refuse("a client_id URL must not contain . or .. segments"));
    }
    match u.host() {
        Some(url::Host::Domain(_)) => Ok(u),
        Some(_) => Err(refuse(
            "a client_id URL must name a host, not an IP address",
        )),
        None => Err(refuse("a client_id URL must name a host")),
    }
}

/// Whether Warden may connect to `ip` for a client's document: only public unicast
/// addresses.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // shared address space (CGNAT)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
                || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking
                || o[0] >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x64 && s[1] == 0xff9b)) // NAT64 (could reach private IPv4)
        }
    }
}

/// How names are turned into addresses (the system's resolver, or a test's).
pub trait Lookup: Send + Sync + 'static {
    fn lookup(
        &self,
        host: String,
    ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<IpAddr>>>;
}

/// The system resolver.
#[derive(Debug, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        host: String,
    ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 443))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// The resolver the fetching client connects through: it hands the connection only the
/// addresses `allow` accepts, and fails when none is left.
pub struct PublicOnly {
    lookup: Arc<dyn Lookup>,
    allow: fn(IpAddr) -> bool,
}

impl std::fmt::Debug for PublicOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicOnly(..)")
    }
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let lookup = self.lookup.clone();
        let allow = self.allow;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all = lookup.lookup(host.clone()).await?;
            let ok: Vec<SocketAddr> = all
                .iter()
                .filter(|ip| allow(**ip))
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect();
            if ok.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = format!(
                    "{host} resolves only to addresses Warden does not connect to for a client's document ({})",
                    all.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                )
                .into();
                return Err(err);
            }
            let addrs: Addrs = Box::new(ok.into_iter());
            Ok(addrs)
        })
    }
}

/// A client described by its metadata document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentClient {
    /// The URL (the client_id).
    pub url: String,
    /// Its host, shown on the consent page: the one thing about the client Warden checked.
    pub host: String,
    pub accepted: AcceptedClient,
}

#[derive(Debug, Deserialize)]
struct Document {
    client_id: Option<String>,
    #[serde(flatten)]
    metadata: ClientMetadata,
}

/// Fetches and caches metadata documents.
pub struct CimdFetcher {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, (DocumentClient, Instant)>>,
}

impl std::fmt::Debug for CimdFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CimdFetcher(..)")
    }
}

impl CimdFetcher {
    /// The production fetcher: the system resolver, public addresses only, the system's
    /// trusted roots.
    pub fn new() -> Result<Self, CimdError> {
        Self::with(Arc::new(SystemLookup), is_public, None)
    }

    /// A fetcher with another resolver, address rule and extra trusted root (PEM): for
    /// tests, which serve documents on loopback with a test CA and simulate DNS.
    pub fn with(
        lookup: Arc<dyn Lookup>,
        allow: fn(IpAddr) -> bool,
        extra_root_pem: Option<&[u8]>,
    ) -> Result<Self, CimdError> {
        let mut b = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(true)
            .user_agent(concat!(
                "warden/",
                env!("CARGO_PKG_VERSION"),
                " (client metadata)"
            ))
            .dns_resolver(Arc::new(PublicOnly { lookup, allow }));
        if let Some(pem) = extra_root_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| refuse(format!("test root: {e}")))?;
            b = b.add_root_certificate(cert);
        }
        let http = b
            .build()
            .map_err(|e| refuse(format!("no HTTP client: {e}")))?;
        Ok(Self {
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The client `client_id` names: from the cache while it is fresh, else fetched.
    pub async fn client(&self, client_id: &str) -> Result<DocumentClient, CimdError> {
        let url = check_url(client_id)?;
        if let Some((c, until)) = self.cache.lock().await.get(client_id)
            && Instant::now() < *until
        {
            return Ok(c.clone());
        }
        let (client, keep) = self.fetch(client_id, &url).await?;
        let mut cache = self.cache.lock().await;
        if cache.len() >= MAX_CACHED {
            let now = Instant::now();
            cache.retain(|_, (_, until)| *until > now);
        }
        if !keep.is_zero() && cache.len() < MAX_CACHED {
            cache.insert(
                client_id.to_string(),
                (client.clone(), Instant::now() + keep),
            );
        }
        Ok(client)
    }

    async fn fetch(
        &self,
        client_id: &str,
        url: &url::Url,
    ) -> Result<(DocumentClient, Duration), CimdError> {
        let host = url.host_str().unwrap_or_default().to_string();
        let res = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    why = s.to_string();
                    source = s.source();
                }
                if e.is_timeout() {
                    why = format!("no answer within {} seconds", FETCH_TIMEOUT.as_secs());
                }
                refuse(format!(
                    "the client's metadata document at {client_id} could not be fetched: {why}"
                ))
            })?;
        let status = res.status();
        if status.is_redirection() {
            return Err(refuse(format!(
                "the client's metadata document at {client_id} answered with a redirect (HTTP {status}); Warden does not follow redirects for it"
            )));
        }
        if !status.is_success() {
            return Err(refuse(format!(
                "the client's metadata document at {client_id} answered HTTP {status}"
            )));
        }
        if res
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT as u64)
        {
            return Err(refuse(format!(
                "the client's metadata document at {client_id} is larger than {MAX_DOCUMENT} bytes"
            )));
        }
        let keep = cache_lifetime(res.headers());
        let mut body = Vec::new();
        let mut res = res;
        loop {
            let chunk = tokio::time::timeout(FETCH_TIMEOUT, res.chunk())
                .await
                .map_err(|_| refuse(format!("the client's metadata document at {client_id} was not sent within {} seconds", FETCH_TIMEOUT.as_secs())))?
                .map_err(|e| {
                    if e.is_timeout() {
                        refuse(format!("the client's metadata document at {client_id} was not sent within {} seconds", FETCH_TIMEOUT.as_secs()))
                    } else {
                        refuse(format!("the client's metadata document at {client_id} broke off: {e}"))
                    }
                })?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(refuse(format!(
                    "the client's metadata document at {client_id} is larger than {MAX_DOCUMENT} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let doc: Document = serde_json::from_slice(&body)
            .map_err(|e| refuse(format!("the client's metadata document at {client_id} is not a JSON client description: {e}")))?;
        if doc.client_id.as_deref() != Some(client_id) {
            return Err(refuse(format!(
                "the client's metadata document at {client_id} names client_id {:?}; it must name its own URL",
                doc.client_id.unwrap_or_default()
            )));
        }
        let accepted = registration::validate(&doc.metadata).map_err(|e| {
            refuse(format!(
                "the client's metadata document at {client_id} is not acceptable: {}",
                e.description()
            ))
        })?;
        Ok((
            DocumentClient {
                url: client_id.to_string(),
                host,
                accepted,
            },
            keep,
        ))
    }
}

/// How long a document may be kept, from its `Cache-Control` (no-store and no-cache: not
/// at all; `max-age`: that long, at most a day; nothing: five minutes).
fn cache_lifetime(h: &reqwest::header::HeaderMap) -> Duration {
    let Some(cc) = h
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
    else {
        return DEFAULT_CACHE;
    };
    let mut max_age = None;
    for d in cc.split(',').map(str::trim) {
        let lower = d.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" || lower == "private" {
            return Duration::ZERO;
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            max_age = v.trim_matches('"').parse::<u64>().ok();
        }
    }
    max_age.map_or(DEFAULT_CACHE, |s| Duration::from_secs(s).min(MAX_CACHE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_allowed() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "192.0.0.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "203.0.113.9",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(!is_public(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(good.parse().unwrap()), "{good}");
        }
    }

    #[test]
    fn the_url_itself_is_checked_first() {
        assert!(check_url("https://app.example/oauth/client.json").is_ok());
        for (bad, words) in [
            ("http://app.example/c.json", "must be https"),
            ("https://app.example/", "must have a path"),
            ("https://app.example", "must have a path"),
            ("https://127.0.0.1/c.json", "not an IP address"),
            ("https://[::1]/c.json", "not an IP address"),
            ("https://u:p@app.example/c.json", "credentials"),
            ("https://app.example/c.json#x", "fragment"),
            ("https://app.example/a/../c.json", ". or .."),
        ] {
            let e = check_url(bad).unwrap_err().0;
            assert!(e.contains(words), "{bad}: {e}");
        }
    }

    #[test]
    fn caching_follows_the_headers() {
        let h = |v: &str| {
            let mut m = reqwest::header::HeaderMap::new();
            m.insert(reqwest::header::CACHE_CONTROL, v.parse().unwrap());
            m
        };
        assert_eq!(
            cache_lifetime(&reqwest::header::HeaderMap::new()),
            DEFAULT_CACHE
        );
        assert_eq!(cache_lifetime(&h("max-age=60")), Duration::from_secs(60));
        assert_eq!(cache_lifetime(&h("public, max-age=999999")), MAX_CACHE);
        assert_eq!(cache_lifetime(&h("no-store")), Duration::ZERO);
        assert_eq!(cache_lifetime(&h("max-age=60, no-cache")), Duration::ZERO);
    }
}
