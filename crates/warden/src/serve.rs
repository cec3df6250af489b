//! `warden serve`: serves an opened project over Streamable HTTP until a signal, or to one
//! client over stdio (with authentication on, as the owner of the API key in
//! `WARDEN_API_KEY`). `demo` serves through `serve_http` too. SIGHUP reloads the project
//! (`reload.rs`) and, over HTTPS, the certificate; over HTTP, `serve` leaves a pid file for
//! `warden reload` to find (`reload_cmd.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use warden_core::project::AuthMode;

use crate::open::{Opened, open};
use crate::reload::Reload;

/// `--tls-cert` and `--tls-key`, which override `server.tls`.
#[derive(Debug, Default)]
pub(crate) struct TlsFlags {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

pub(crate) async fn run(
    project: PathBuf,
    stdio: bool,
    bind: Option<SocketAddr>,
    tls_flags: TlsFlags,
) -> anyhow::Result<ExitCode> {
    if stdio {
        return serve_stdio(project).await;
    }
    let opened = open(&project).await?;
    let pipeline = opened.pipeline.current();
    let server_cfg = &pipeline.project().server;
    let tls_paths = match (tls_flags.cert, tls_flags.key) {
        (Some(cert), Some(key)) => Some(warden_core::project::TlsConfig { cert, key }),
        (None, None) => server_cfg.tls.clone(),
        _ => anyhow::bail!("give both --tls-cert and --tls-key, or neither"),
    };
    let tls = match &tls_paths {
        None => None,
        Some(paths) => {
            if let Some(url) = &server_cfg.public_url
                && !url.to_ascii_lowercase().starts_with("https://")
            {
                anyhow::bail!(
                    "server.public_url is '{url}', but Warden serves HTTPS here; make it https:// (OAuth clients check it)"
                );
            }
            Some(warden_server::Tls::load(paths).context("cannot serve HTTPS")?)
        }
    };
    if pipeline.project().auth.mode == AuthMode::OAuth
        && let Some(hint) = crate::admin::nobody_can_connect(&opened.state, &project).await?
    {
        tracing::warn!("{hint}");
    }
    let addr = bind.unwrap_or(pipeline.project().server.bind);
    if pipeline.project().auth.mode == AuthMode::None && !addr.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve {addr}: the project says `auth: none`, which is for local development and binds only to loopback"
        );
    }
    // Only the first project's settings are read here; requests take the current one.
    drop(pipeline);
    let metrics = crate::metrics::start(&opened).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut pid_file = None;
    serve_http(&opened, addr, tls, |a| {
        // Written once SIGHUP is answered (before, the signal would end the process).
        pid_file = crate::reload_cmd::PidFile::create(&project)
            .inspect_err(|e| tracing::warn!("{e:#}; `warden reload` will not find this server"))
            .ok();
        // File URLs start with the address people use, or else this one.
        let base = opened
            .pipeline
            .current()
            .project()
            .server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{a}"));
        opened.pipeline.current().set_files_base_url(base);
        tracing::info!("serving MCP on {scheme}://{a}/mcp")
    })
    .await?;
    drop(pid_file);
    drop(metrics);
    Ok(ExitCode::SUCCESS)
}

/// Serves one client over stdio. Anything that stops Warden before the protocol starts (a
/// project that does not load, a missing or refused key) is also the answer to the client's
/// first request, as a JSON-RPC error: desktop clients hide stderr and would show only
/// "connection closed".
async fn serve_stdio(project: PathBuf) -> anyhow::Result<ExitCode> {
    let opened = match open(&project).await {
        Ok(o) => o,
        Err(e) => return refuse_stdio(format!("{e:#}")).await,
    };
    let pipeline = opened.pipeline.current();
    let key = match pipeline.project().auth.mode {
        AuthMode::OAuth => match stdio_identity(&opened).await {
            Ok(k) => Some(k),
            Err(e) => {
                opened.close().await;
                return refuse_stdio(format!("{e:#}")).await;
            }
        },
        AuthMode::None => None,
    };
    drop(pipeline);
    reload_on_hangup(Reload::of(&opened));
    warden_server::serve_stdio(opened.pipeline.clone(), key).await?;
    opened.close().await;
    Ok(ExitCode::SUCCESS)
}

/// JSON-RPC error code for a stdio session Warden cannot start (server-defined range).
const STDIO_REFUSED: i64 = -32001;

/// Most requests a refused stdio session answers before it stops waiting for `initialize`
/// (a client may first probe with other methods, such as `server/discover`).
const STDIO_REFUSED_ANSWERS: usize = 8;

/// Prints `message` on stderr, answers the client's requests with it as a JSON-RPC error
/// until it sends `initialize` (a client that probes first, with `server/discover`, falls
/// back to `initialize` on an error), and exits with status 1. Notifications and lines that
/// are not JSON-RPC requests are skipped; end of input ends it too.
async fn refuse_stdio(message: String) -> anyhow::Result<ExitCode> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    eprintln!("error: {message}");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut answered = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(request) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let (Some(id), Some(method)) = (request.get("id"), request.get("method")) else {
            continue;
        };
        let answer = serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": { "code": STDIO_REFUSED, "message": format!("Warden cannot start: {message}") },
        });
        let mut out = tokio::io::stdout();
        out.write_all(format!("{answer}\n").as_bytes()).await?;
        out.flush().await?;
        answered += 1;
        if method == "initialize" || answered >= STDIO_REFUSED_ANSWERS {
            break;
        }
    }
    Ok(ExitCode::FAILURE)
}

/// The API key a stdio session runs as: `WARDEN_API_KEY`, or the content of the file named
/// by `WARDEN_API_KEY_FILE` (readable by its owner only), so that a desktop assistant's
/// configuration need not hold the key itself.
fn stdio_key() -> anyhow::Result<String> {
    let direct = std::env::var("WARDEN_API_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let file = std::env::var_os("WARDEN_API_KEY_FILE").filter(|f| !f.is_empty());
    match (direct, file) {
        (Some(_), Some(_)) => {
            anyhow::bail!("both WARDEN_API_KEY and WARDEN_API_KEY_FILE are set; set one of them")
        }
        (Some(key), None) => Ok(key),
        (None, Some(path)) => warden_core::project::read_secret(std::path::Path::new(&path))
            .map_err(|e| anyhow::anyhow!("WARDEN_API_KEY_FILE: {e}")),
        (None, None) => anyhow::bail!(
            "set WARDEN_API_KEY to an API key, or WARDEN_API_KEY_FILE to a file holding one (`warden key add --org ORG --user EMAIL --name NAME` prints one): over stdio the caller is the key's owner"
        ),
    }
}

/// Over stdio the caller is whoever holds the API key in WARDEN_API_KEY.
async fn stdio_identity(
    opened: &Opened,
) -> anyhow::Result<warden_server::transport::mcp::StdioKey> {
    let pipeline = opened.pipeline.current();
    let key = stdio_key()?;
    let cfg = &pipeline.project().auth;
    let auth = warden_auth::AuthServer::new(
        opened.state.clone(),
        opened.sink(),
        "stdio://local",
        cfg.access_ttl,
        cfg.refresh_ttl,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let principal = auth
        .authenticate(&key)
        .await
        .map_err(|e| anyhow::anyhow!("WARDEN_API_KEY was refused: {e}"))?;
    pipeline
        .admit(
            &principal,
            warden_core::pipeline::Source::Stdio,
            warden_core::audit::Peer::default,
        )
        .await
        .map_err(|e| anyhow::anyhow!("WARDEN_API_KEY was refused: {e}"))?;
    tracing::info!(user = %principal.email, org = %principal.org, role = %principal.role, "stdio caller authenticated");
    Ok(warden_server::transport::mcp::StdioKey {
        auth: Arc::new(auth),
        key,
    })
}

/// The fetcher for Client ID Metadata Documents. Without one (no TLS roots, say), a URL
/// `client_id` is refused and dynamic registration still works.
fn client_documents() -> anyhow::Result<Option<Arc<warden_auth::cimd::CimdFetcher>>> {
    if let Some(hooked) = crate::test_hooks::client_documents()? {
        return Ok(Some(hooked));
    }
    Ok(match warden_auth::cimd::CimdFetcher::new() {
        Ok(f) => Some(Arc::new(f)),
        Err(e) => {
            tracing::warn!(error = %e, "client metadata documents are off: a URL client_id will be refused");
            None
        }
    })
}

/// The identity providers of `login.providers`, with the key that seals their refresh
/// tokens (read from `login.secrets_key`, created on first start); none without providers.
fn federation(
    sign_in: &Arc<warden_core::project::SignInConfig>,
    issuer: &str,
) -> anyhow::Result<Option<Arc<warden_auth::sso::Federation>>> {
    if sign_in.providers.is_empty() && sign_in.password {
        return Ok(None);
    }
    let sealer = warden_auth::sso::Sealer::load_or_create(&sign_in.secrets_key)?;
    let federation = warden_auth::sso::Federation::new(sign_in.clone(), sealer, issuer)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for p in &sign_in.providers {
        tracing::info!(provider = %p.name, redirect_uri = %federation.redirect_uri(&p.name), "identity provider ready");
    }
    Ok(Some(Arc::new(federation)))
}

pub(crate) async fn serve_http(
    opened: &Opened,
    addr: SocketAddr,
    tls: Option<warden_server::Tls>,
    on_ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let pipeline = opened.pipeline.current();
    let mut server = warden_server::HttpServer::bind(opened.pipeline.clone(), addr).await.with_context(|| {
        format!("cannot listen on {addr}; is another server using that port? pick another with --bind or --port")
    })?;
    let local = server.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(t) = &tls {
        server = server.with_tls(t.clone());
    }
    let auth = match pipeline.project().auth.mode {
        AuthMode::None => None,
        AuthMode::OAuth => {
            let cfg = &pipeline.project().auth;
            let issuer = pipeline
                .project()
                .server
                .public_url
                .clone()
                .unwrap_or_else(|| format!("{scheme}://{local}"));
            let auth = warden_auth::AuthServer::new(
                opened.state.clone(),
                opened.sink(),
                &issuer,
                cfg.access_ttl,
                cfg.refresh_ttl,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_code_ttl(cfg.code_ttl)
            .with_abuse_limits(pipeline.project().server.abuse_limits)
            .with_audit_signer(opened.signer())
            .with_federation(federation(&cfg.sign_in, &issuer)?)
            .with_client_documents(client_documents()?);
            let mailer = warden_server::web::mailer::Mailer::new(cfg.mailer.clone());
            Some(
                warden_server::web::oauth::AuthState::new(Arc::new(auth), mailer)
                    .with_pipeline(opened.pipeline.clone()),
            )
        }
    };
    let shutdown = CancellationToken::new();
    if auth.is_some() {
        let unused = pipeline.project().server.abuse_limits.unused_clients;
        tokio::spawn(purge_unused_clients(
            opened.state.clone(),
            opened.sink(),
            opened.job_lease("unused_clients"),
            unused.expire_after,
            unused.purge_every,
            shutdown.clone(),
        ));
    }
    // Call limits and the per-address limits leave a bucket per key; a full one means
    // nothing, so they go, whatever traffic this instance sees (one instance at a time).
    tokio::spawn(purge_full_rate_buckets(
        opened.state.clone(),
        opened.job_lease("rate_buckets"),
        shutdown.clone(),
    ));
    let redirect = match (pipeline.project().server.redirect_http, &tls) {
        (Some(raddr), Some(_)) => {
            let r = warden_server::RedirectServer::bind(raddr).await.with_context(|| {
                format!("cannot listen on {raddr} (server.redirect_http); is another server using that port?")
            })?;
            let target = pipeline
                .project()
                .server
                .public_url
                .clone()
                .unwrap_or_else(|| format!("https://{local}"));
            tracing::info!("redirecting http://{}/ to {target}", r.local_addr()?);
            let limits = pipeline.project().server.limits;
            let stop = shutdown.clone();
            Some(tokio::spawn(
                async move { r.serve(target, limits, stop).await },
            ))
        }
        _ => None,
    };
    if let Some(t) = &tls {
        t.watch(std::time::Duration::from_secs(2), shutdown.clone());
    }
    drop(pipeline);
    let mut signals = Signals::install();
    on_ready(local);
    let signal = shutdown.clone();
    let reload = Reload::of(opened);
    tokio::spawn(async move {
        loop {
            match signals.next().await {
                Signal::Stop => break,
                Signal::Reload => {
                    if let Some(t) = &tls {
                        t.reload_and_log("SIGHUP");
                    }
                    reload.run("SIGHUP").await;
                }
            }
        }
        tracing::info!("shutting down: finishing in-flight requests");
        signal.cancel();
    });
    server
        .serve(auth, shutdown)
        .await
        .context("the HTTP server failed")?;
    if let Some(r) = redirect {
        let _ = r.await;
    }
    opened.close().await;
    Ok(())
}

/// What a signal asks of the server.
enum Signal {
    /// Ctrl-C or SIGTERM: finish in-flight requests and stop.
    Stop,
    /// SIGHUP: re-read what can change without a restart.
    Reload,
}

/// The signals `serve_http` answers, registered once, before it says it is ready: until a
/// handler is registered, SIGHUP's default action ends the process.
struct Signals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let unix = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(term), Ok(hup)) => Some((term, hup)),
                _ => None,
            };
            Self { unix }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        if let Some((term, hup)) = &mut self.unix {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                _ = term.recv() => Signal::Stop,
                _ = hup.recv() => Signal::Reload,
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        Signal::Stop
    }
}

/// Over stdio, SIGHUP reloads the project too; the session's next request sees it.
fn reload_on_hangup(reload: Reload) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        reload.run("SIGHUP").await;
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot answer SIGHUP; the project will not reload")
            }
        }
    }
    #[cfg(not(unix))]
    drop(reload);
}

/// Deletes registered clients never authorized once they are `expire_after` old, every
/// `every`, until `stop`, on whichever instance holds the `unused_clients` lease.
/// How often the holder of the `rate_buckets` lease deletes full buckets, and how many at
/// most in one statement and in one round.
const BUCKET_PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
const BUCKET_PURGE_BATCH: u32 = 1_000;
const BUCKET_PURGE_MAX_BATCHES: u32 = 100;

/// Deletes full rate buckets every [`BUCKET_PURGE_EVERY`] while this instance holds `lease`,
/// in batches, so a table grown by many keys shrinks without one long statement.
async fn purge_full_rate_buckets(
    store: warden_store::Store,
    lease: Arc<warden_store::jobs::Lease>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(BUCKET_PURGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !lease.held() {
            continue;
        }
        let now = chrono::Utc::now().timestamp_millis();
        let mut deleted = 0;
        for _ in 0..BUCKET_PURGE_MAX_BATCHES {
            match store.purge_full_buckets(now, BUCKET_PURGE_BATCH).await {
                Ok(n) => {
                    deleted += n;
                    if n < u64::from(BUCKET_PURGE_BATCH) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not delete full rate buckets");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::debug!(deleted, "deleted full rate buckets");
        }
    }
}

async fn purge_unused_clients(
    store: warden_store::Store,
    audit: Arc<dyn warden_core::audit::Sink>,
    lease: Arc<warden_store::jobs::Lease>,
    expire_after: std::time::Duration,
    every: std::time::Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !lease.held() {
            continue;
        }
        let now = chrono::Utc::now();
        match warden_auth::server::purge_unused_clients_once(&store, &*audit, expire_after, now)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "purged registered clients never authorized"),
            Err(e) => tracing::warn!(error = %e, "could not purge unused clients"),
        }
    }
}
