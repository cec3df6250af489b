//! Requests refused for want of a valid credential (HTTP 401), on the record without letting
//! anyone fill the trail: they are counted per client address and recorded as one
//! `unauthenticated` event per address per minute (window), carrying the count. At most
//! [`MAX_ADDRESSES`] addresses are kept per window; the rest are counted together under
//! `other`. A window is recorded when it ends, or at shutdown.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::audit::{Event, Sink, Source};

/// Addresses counted separately in one window.
pub const MAX_ADDRESSES: usize = 1024;

/// The window length.
const WINDOW_SECS: i64 = 60;

/// The address under which requests beyond [`MAX_ADDRESSES`] are counted.
const OTHER: &str = "other";

#[derive(Debug, Default)]
struct Window {
    /// Start of the window, in whole minutes since the epoch.
    minute: i64,
    counts: BTreeMap<String, u64>,
}

#[derive(Debug)]
pub(super) struct Tally {
    sink: Arc<dyn Sink>,
    open: Mutex<Option<Window>>,
}

impl Tally {
    pub(super) fn new(sink: Arc<dyn Sink>) -> Arc<Self> {
        Arc::new(Self {
            sink,
            open: Mutex::new(None),
        })
    }

    /// Counts one refused request from `addr` (a socket address; only its IP is kept).
    pub(super) fn count(self: &Arc<Self>, addr: Option<&str>) {
        let ip = addr
            .map(|a| {
                a.parse::<std::net::SocketAddr>()
                    .map_or_else(|_| a.to_string(), |s| s.ip().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let now = Utc::now().timestamp().div_euclid(WINDOW_SECS);
        let Ok(mut open) = self.open.lock() else {
            return;
        };
        let ended = match open.as_ref() {
            Some(w) if w.minute != now => open.take(),
            _ => None,
        };
        let window = open.get_or_insert_with(|| {
            // The first refusal of a window: make sure it is recorded when the window ends,
            // even if no further request comes.
            let tally = self.clone();
            tokio::spawn(async move {
                let end = (now + 1) * WINDOW_SECS;
                let wait = (end - Utc::now().timestamp()).max(0) as u64;
                tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(50)).await;
                tally.flush_if(|w| w.minute == now).await;
            });
            Window {
                minute: now,
                counts: BTreeMap::new(),
            }
        });
        let key = if window.counts.contains_key(&ip) || window.counts.len() < MAX_ADDRESSES {
            ip
        } else {
            OTHER.to_string()
        };
        *window.counts.entry(key).or_default() += 1;
        drop(open);
        if let Some(w) = ended {
            let sink = self.sink.clone();
            tokio::spawn(async move { record(&*sink, w).await });
        }
    }

    /// Records the open window now (at shutdown).
    pub(super) async fn flush(&self) {
        self.flush_if(|_| true).await;
    }

    async fn flush_if(&self, which: impl Fn(&Window) -> bool) {
        let taken = match self.open.lock() {
            Ok(mut open) if open.as_ref().is_some_and(&which) => open.take(),
            _ => None,
        };
        if let Some(w) = taken {
            record(&*self.sink, w).await;
        }
    }
}

fn at(minute: i64) -> String {
    DateTime::<Utc>::from_timestamp(minute * WINDOW_SECS, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One event per address of the window.
fn events(w: &Window) -> Vec<Event> {
    let (start, end) = (at(w.minute), at(w.minute + 1));
    w.counts
        .iter()
        .map(|(addr, n)| {
            let mut e = Event::new("unauthenticated", Source::Http, "mcp")
                .denied(
                    "authenticate",
                    "authenticate.no_valid_credential",
                    format!(
                        "{n} request(s) from {addr} without a valid bearer token between {start} and {end}"
                    ),
                )
                .detail(json!({"count": n, "window_start": start, "window_end": end}));
            e.remote_addr = Some(addr.clone());
            e
        })
        .collect()
}

async fn record(sink: &dyn Sink, w: Window) {
    for e in events(&w) {
        if let Err(err) = sink.record(e).await {
            // The requests were refused already; only their count is lost.
            tracing::error!(error = %err.0, "could not record refused unauthenticated requests");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Decision, MemorySink};

    #[tokio::test]
    async fn refusals_are_counted_per_address_and_recorded_once_per_window() {
        let sink = Arc::new(MemorySink::default());
        let tally = Tally::new(sink.clone());
        for _ in 0..500 {
            tally.count(Some("127.0.0.9:40000"));
        }
        tally.count(Some("127.0.0.9:40001"));
        tally.count(Some("[::1]:5"));
        tally.count(None);
        assert!(sink.events().is_empty(), "nothing is recorded per request");
        tally.flush().await;
        let events = sink.events();
        // Summed, and each address once per window (a run that straddles a minute has two).
        let mut by_addr: BTreeMap<String, u64> = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for e in &events {
            let addr = e.remote_addr.clone().unwrap();
            let detail = e.detail.clone().unwrap();
            assert!(seen.insert((addr.clone(), detail["window_start"].to_string())));
            *by_addr.entry(addr).or_default() += detail["count"].as_u64().unwrap();
        }
        assert_eq!(by_addr.len(), 3, "{events:#?}");
        assert_eq!(by_addr["127.0.0.9"], 501);
        assert_eq!(by_addr["::1"], 1);
        assert_eq!(by_addr["unknown"], 1);
        for e in &events {
            assert_eq!(e.kind, "unauthenticated");
            assert_eq!(e.decision, Decision::Denied);
            assert_eq!(e.stage.as_deref(), Some("authenticate"));
            assert!(e.org.is_none());
        }
        let n = sink.events().len();
        tally.flush().await;
        assert_eq!(sink.events().len(), n, "a window is recorded once");
    }

    #[tokio::test]
    async fn a_flood_of_addresses_is_bounded() {
        let sink = Arc::new(MemorySink::default());
        let tally = Tally::new(sink.clone());
        for i in 0..(MAX_ADDRESSES + 500) {
            let addr = format!("10.0.{}.{}:1", i / 256, i % 256);
            tally.count(Some(&addr));
        }
        tally.flush().await;
        let events = sink.events();
        assert_eq!(events.len(), MAX_ADDRESSES + 1);
        let other = events
            .iter()
            .find(|e| e.remote_addr.as_deref() == Some(OTHER))
            .unwrap();
        assert_eq!(other.detail.clone().unwrap()["count"], 500);
    }
}
