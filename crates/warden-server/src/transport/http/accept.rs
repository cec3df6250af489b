//! The accept loop: every TCP connection, plain or TLS, before any HTTP is read.
//!
//! It holds the line against an unfriendly network: at most `max_connections` open at once
//! and `max_connections_per_address` from one IP (past either, a new connection is closed at
//! once and counted); a TLS handshake and each request's headers must arrive within
//! `header_timeout` (which also ends an idle HTTP/1.1 keep-alive connection); a connection
//! with no bytes either way for `idle_timeout` is closed. Established clients keep being
//! served whatever new connections do.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warden_core::project::ConnectionLimits;

use super::tls::Tls;

/// How long a shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown`, then stops accepting
/// and waits for open connections to finish what they are doing.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Tls>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let slots = Slots::new(limits);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    // No server pings on HTTP/2: they would count as activity and keep a connection that
    // does nothing open past `idle_timeout` (MCP's event streams send their own keep-alives).
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(None);
    let builder = Arc::new(builder);
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait a moment
                    // rather than spin; the loop itself never ends on an accept error.
                    tracing::warn!(error = %e, "accept failed");
                    metrics::counter!("warden_connections_refused_total", "reason" => "accept_error").increment(1);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match slots.take(peer.ip()) {
            Ok(slot) => slot,
            Err(reason) => {
                metrics::counter!("warden_connections_refused_total", "reason" => reason)
                    .increment(1);
                tracing::debug!(%peer, reason, "connection refused");
                drop(tcp);
                continue;
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            // Responses go out as several small SSE writes; Nagle would hold each ~40 ms.
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let app = app.clone();
        let tls = tls.as_ref().map(Tls::acceptor);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let activity = Activity::new();
            let io = Quiet {
                inner: tcp,
                activity: activity.clone(),
            };
            let service = hyper::service::service_fn(move |mut req| {
                req.extensions_mut().insert(ConnectInfo(peer));
                tower::ServiceExt::oneshot(app.clone(), req)
            });
            match tls {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                    activity
                        .guard(
                            watcher.watch(conn),
                            limits.idle_timeout,
                            limits.header_timeout,
                        )
                        .await;
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await;
                    let stream = match handshake {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            metrics::counter!("warden_tls_handshake_failures_total").increment(1);
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            metrics::counter!("warden_connections_closed_total", "reason" => "handshake_timeout").increment(1);
                            return;
                        }
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    activity
                        .guard(
                            watcher.watch(conn),
                            limits.idle_timeout,
                            limits.header_timeout,
                        )
                        .await;
                }
            }
        });
    }
    drop(listener);
    // In-flight requests finish; a client that never does (a body trickling in) does not hold
    // the process past this.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; closing them");
    }
    Ok(())
}

/// Open connections, in all and per address.
#[derive(Clone)]
struct Slots {
    limits: ConnectionLimits,
    open: Arc<Mutex<(usize, HashMap<IpAddr, usize>)>>,
}

/// One open connection's place; given back when dropped.
struct Slot {
    slots: Slots,
    ip: IpAddr,
}

impl Slots {
    fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            open: Arc::new(Mutex::new((0, HashMap::new()))),
        }
    }

    /// A place for a connection from `ip`, or why there is none.
    fn take(&self, ip: IpAddr) -> Result<Slot, &'static str> {
        let Ok(mut open) = self.open.lock() else {
            return Err("internal");
        };
        let (total, per) = &mut *open;
        if *total >= self.limits.max_connections {
            return Err("max_connections");
        }
        let mine = per.entry(ip).or_insert(0);
        if *mine >= self.limits.max_connections_per_address {
            return Err("max_connections_per_address");
        }
        *mine += 1;
        *total += 1;
        metrics::gauge!("warden_connections_open").set(*total as f64);
        Ok(Slot {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.slots.open.lock() {
            let (total, per) = &mut *open;
            *total = total.saturating_sub(1);
            if let Some(n) = per.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    per.remove(&self.ip);
                }
            }
            metrics::gauge!("warden_connections_open").set(*total as f64);
        }
    }
}

/// When a connection last moved a byte, in milliseconds since it opened.
#[derive(Clone)]
struct Activity {
    opened: Instant,
    last: Arc<AtomicU64>,
    /// Whether the client has sent a byte yet.
    heard: Arc<std::sync::atomic::AtomicBool>,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
            heard: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }

    /// Drives `conn` to its end, or drops it (closing the socket) once no byte has moved for
    /// `idle`, or when the client has sent nothing at all within `first_byte`.
    async fn guard<F: std::future::Future>(&self, conn: F, idle: Duration, first_byte: Duration) {
        tokio::pin!(conn);
        let check = (idle / 4)
            .min(first_byte / 2)
            .max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = &mut conn => return,
                () = tokio::time::sleep(check) => {
                    if !self.heard.load(Ordering::Relaxed) && self.opened.elapsed() >= first_byte {
                        metrics::counter!("warden_connections_closed_total", "reason" => "silent").increment(1);
                        return;
                    }
                    if self.quiet_for() >= idle {
                        metrics::counter!("warden_connections_closed_total", "reason" => "idle").increment(1);
                        return;
                    }
                }
            }
        }
    }
}

/// A stream that notes every byte it moves in its [`Activity`].
struct Quiet<T> {
    inner: T,
    activity: Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Quiet<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
            self.activity.heard.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Quiet<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
