//! Test hooks, compiled into debug builds only: end-to-end tests serve a client's metadata
//! document on loopback (over HTTPS, with a test CA), which the production fetcher refuses
//! to reach by design. A release build has none of this; it warns when the variables are set.
//!
//! - `WARDEN_TEST_CIMD_RESOLVE=name=ip[,name=ip]`: the only names the fetcher resolves, and
//!   to exactly these loopback addresses; any other name fails without a DNS query.
//! - `WARDEN_TEST_CIMD_CA=path`: a PEM root trusted besides the system's.

use std::sync::Arc;

use warden_auth::cimd::CimdFetcher;

const RESOLVE: &str = "WARDEN_TEST_CIMD_RESOLVE";
const CA: &str = "WARDEN_TEST_CIMD_CA";

/// The fetcher the test variables ask for; `Ok(None)` when neither is set.
#[cfg(debug_assertions)]
pub(crate) fn client_documents() -> anyhow::Result<Option<Arc<CimdFetcher>>> {
    use std::collections::HashMap;
    use std::net::IpAddr;

    use anyhow::{Context, bail};
    use warden_auth::cimd::Lookup;

    struct Pinned(HashMap<String, Vec<IpAddr>>);
    impl Lookup for Pinned {
        fn lookup(
            &self,
            host: String,
        ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
            let found = self
                .0
                .get(&host.to_ascii_lowercase())
                .cloned()
                .ok_or_else(|| std::io::Error::other(format!("{host} is not named in {RESOLVE}")));
            Box::pin(async move { found })
        }
    }
    // The lookup answers only the pinned names with their pinned (loopback) addresses.
    fn loopback(ip: IpAddr) -> bool {
        ip.is_loopback()
    }

    let resolve = std::env::var(RESOLVE).ok();
    let ca = std::env::var_os(CA);
    if resolve.is_none() && ca.is_none() {
        return Ok(None);
    }
    let mut pinned: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for pair in resolve
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let Some((name, ip)) = pair.split_once('=') else {
            bail!("{RESOLVE}: '{pair}' is not name=ip (e.g. cimd.test=127.0.0.1)");
        };
        let ip: IpAddr = ip
            .parse()
            .with_context(|| format!("{RESOLVE}: '{ip}' is not an IP address"))?;
        if !ip.is_loopback() {
            bail!("{RESOLVE}: {ip} is not a loopback address; the hook keeps tests on loopback");
        }
        pinned
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(ip);
    }
    let pem = match &ca {
        Some(path) => Some(std::fs::read(path).with_context(|| {
            format!("{CA}: cannot read {}", std::path::Path::new(path).display())
        })?),
        None => None,
    };
    tracing::warn!(
        names = ?pinned.keys().collect::<Vec<_>>(),
        "TEST HOOK ({RESOLVE}, {CA}): client metadata documents are fetched from loopback"
    );
    let fetcher = CimdFetcher::with(Arc::new(Pinned(pinned)), loopback, pem.as_deref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(Arc::new(fetcher)))
}

/// A release build has no test hooks; it says so when their variables are set.
#[cfg(not(debug_assertions))]
pub(crate) fn client_documents() -> anyhow::Result<Option<Arc<CimdFetcher>>> {
    if std::env::var_os(RESOLVE).is_some() || std::env::var_os(CA).is_some() {
        tracing::warn!("{RESOLVE} and {CA} are ignored: test hooks exist only in debug builds");
    }
    Ok(None)
}
