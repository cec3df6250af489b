//! Requests refused by an abuse limit, on the record without letting a flood fill the trail:
//! the first refusal of an address at an endpoint in a window (a minute) is recorded at once
//! as one `rate_limited` event; the rest of that window are only counted, and recorded as one
//! event carrying their count when the window ends. At most [`MAX_KEYS`] (endpoint, address)
//! pairs are kept per window; refusals beyond are counted together under the address `other`.
//! (The same shape as the pipeline's tally of 401s.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use warden_core::audit::{Event, Sink, Source};

/// (endpoint, address) pairs kept separately in one window.
pub const MAX_KEYS: usize = 1024;
const WINDOW_SECS: i64 = 60;
const OTHER: &str = "other";

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Limit {
    /// The endpoint's request rate per address.
    Rate,
    /// Clients registered from the address and never authorized.
    UnusedClientsPerAddress,
    /// Clients registered and never authorized, in all.
    UnusedClientsTotal,
}

impl Limit {
    /// The rule's name in the trail, and the metric's `limit` label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rate => "rate",
            Self::UnusedClientsPerAddress => "unused_clients_per_address",
            Self::UnusedClientsTotal => "unused_clients_total",
        }
    }
}

type Key = (&'static str, Limit, String);

#[derive(Debug, Default)]
struct Window {
    minute: i64,
    /// Refusals after the first, per key (the first was recorded at once).
    further: BTreeMap<Key, u64>,
}

#[derive(Debug)]
pub(super) struct Floods {
    sink: Arc<dyn Sink>,
    open: Mutex<Option<Window>>,
}

impl Floods {
    pub(super) fn new(sink: Arc<dyn Sink>) -> Arc<Self> {
        Arc::new(Self {
            sink,
            open: Mutex::new(None),
        })
    }

    /// Notes one refusal at `endpoint` (`/register`, ...) from `addr` (an IP address); records
    /// it at once if it is the first of its key in this window.
    pub(super) async fn refused(
        self: &Arc<Self>,
        endpoint: &'static str,
        limit: Limit,
        addr: &str,
    ) {
        let minute = Utc::now().timestamp().div_euclid(WINDOW_SECS);
        let (first, ended) = {
            let mut open = match self.open.lock() {
                Ok(o) => o,
                Err(p) => p.into_inner(),
            };
            let ended = match open.as_ref() {
                Some(w) if w.minute != minute => open.take(),
                _ => None,
            };
            let window = open.get_or_insert_with(|| {
                let floods = self.clone();
                tokio::spawn(async move {
                    let end = (minute + 1) * WINDOW_SECS;
                    let wait = u64::try_from(end - Utc::now().timestamp()).unwrap_or(0);
                    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(50)).await;
                    floods.flush_if(minute).await;
                });
                Window {
                    minute,
                    further: BTreeMap::new(),
                }
            });
            let mut key = (endpoint, limit, addr.to_string());
            if !window.further.contains_key(&key) && window.further.len() >= MAX_KEYS {
                key.2 = OTHER.to_string();
            }
            let first = match window.further.get_mut(&key) {
                Some(n) => {
                    *n += 1;
                    false
                }
                None => {
                    window.further.insert(key, 0);
                    true
                }
            };
            (first, ended)
        };
        if first {
            let mut e = Event::new("rate_limited", Source::Dashboard, endpoint).denied(
                "rate_limit",
                &format!("rate_limit.{}", limit.name()),
                format!("refused at {endpoint}: {}", reason(limit)),
            );
            e.remote_addr = Some(addr.to_string());
            e.detail = Some(json!({"endpoint": endpoint, "limit": limit.name(), "count": 1}));
            self.record(e).await;
        }
        if let Some(w) = ended {
            self.record_window(w).await;
        }
    }

    async fn flush_if(&self, minute: i64) {
        let taken = match self.open.lock() {
            Ok(mut open) if open.as_ref().is_some_and(|w| w.minute == minute) => open.take(),
            _ => None,
        };
        if let Some(w) = taken {
            self.record_window(w).await;
        }
    }

    /// One event per key that was refused more than once in the window.
    async fn record_window(&self, w: Window) {
        let (start, end) = (at(w.minute), at(w.minute + 1));
        for ((endpoint, limit, addr), n) in w.further {
            if n == 0 {
                continue;
            }
            let mut e = Event::new("rate_limited", Source::Dashboard, endpoint)
                .denied(
                    "rate_limit",
                    &format!("rate_limit.{}", limit.name()),
                    format!(
                        "{n} further request(s) refused at {endpoint} between {start} and {end}: {}",
                        reason(limit)
                    ),
                )
                .detail(json!({
                    "endpoint": endpoint,
                    "limit": limit.name(),
                    "count": n,
                    "window_start": start,
                    "window_end": end,
                }));
            e.remote_addr = Some(addr);
            self.record(e).await;
        }
    }

    async fn record(&self, e: Event) {
        if let Err(err) = self.sink.record(e).await {
            // The requests were refused already; only the record of them is lost.
            tracing::error!(error = %err.0, "could not record requests refused by a rate limit");
        }
    }
}

fn reason(limit: Limit) -> &'static str {
    match limit {
        Limit::Rate => "too many requests from this address",
        Limit::UnusedClientsPerAddress => {
            "too many clients registered from this address and never authorized"
        }
        Limit::UnusedClientsTotal => "too many clients registered and never authorized",
    }
}

fn at(minute: i64) -> String {
    DateTime::<Utc>::from_timestamp(minute * WINDOW_SECS, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use warden_core::audit::MemorySink;

    #[tokio::test]
    async fn a_flood_is_one_record_then_one_count_per_window() {
        let sink = Arc::new(MemorySink::default());
        let floods = Floods::new(sink.clone());
        for _ in 0..500 {
            floods.refused("/register", Limit::Rate, "10.0.0.1").await;
        }
        floods.refused("/token", Limit::Rate, "10.0.0.1").await;
        // One record for each (endpoint, address), at once.
        assert_eq!(sink.events().len(), 2);
        let minute = floods.open.lock().unwrap().as_ref().unwrap().minute;
        floods.flush_if(minute).await;
        let events = sink.events();
        let total: u64 = events
            .iter()
            .filter(|e| e.action == "/register")
            .map(|e| e.detail.clone().unwrap()["count"].as_u64().unwrap())
            .sum();
        // A run that straddles a minute splits the count, never changes the sum.
        assert_eq!(total, 500);
        assert!(events.len() <= 5, "{events:#?}");
        assert!(events.iter().all(|e| e.kind == "rate_limited"));
    }

    #[tokio::test]
    async fn many_addresses_are_bounded() {
        let sink = Arc::new(MemorySink::default());
        let floods = Floods::new(sink.clone());
        for i in 0..(MAX_KEYS + 300) {
            let addr = format!("10.1.{}.{}", i / 256, i % 256);
            floods.refused("/token", Limit::Rate, &addr).await;
        }
        assert!(
            sink.events().len() <= MAX_KEYS + 2,
            "{}",
            sink.events().len()
        );
    }
}
