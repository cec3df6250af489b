//! Jobs that must run on one instance at a time among several sharing a state store (the
//! retention purge, periodic checkpoints). Each instance keeps trying to hold the job's lease
//! (a row in `job_leases`, see `Store::take_lease`); the one that holds it runs the job, and
//! when it dies its lease runs out and another instance takes over.
//!
//! Timing: the holder renews every [`RENEW_EVERY`] for [`LEASE_FOR`]. It counts itself the
//! holder only until [`LEASE_FOR`] minus [`MARGIN`] after it asked, so a holder whose renewals
//! fail stops running the job before the lease can pass to anyone else (instances' clocks must
//! agree to within the margin; NTP does far better). A killed holder is replaced within about
//! `LEASE_FOR + RENEW_EVERY`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::Store;

pub const RENEW_EVERY: Duration = Duration::from_secs(5);
pub const LEASE_FOR: Duration = Duration::from_secs(15);
pub const MARGIN: Duration = Duration::from_secs(5);

/// This instance's claim on one job's lease, kept up by a background task.
#[derive(Debug)]
pub struct Lease {
    name: &'static str,
    holder: String,
    held_until: Mutex<Option<Instant>>,
    /// Set by [`Lease::release`]: no more renewals.
    released: AtomicBool,
}

impl Lease {
    /// Starts trying to hold `name`'s lease, now and every [`RENEW_EVERY`], for as long as the
    /// returned handle (or a clone) lives. `holder` names this instance in the lease row and
    /// in the records its jobs leave.
    pub fn keep(store: Store, name: &'static str, holder: String) -> Arc<Lease> {
        let lease = Arc::new(Lease {
            name,
            holder,
            held_until: Mutex::new(None),
            released: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&lease);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RENEW_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(lease) = weak.upgrade() else { return };
                if lease.released.load(Ordering::Acquire) {
                    return;
                }
                lease.renew(&store).await;
            }
        });
        lease
    }

    async fn renew(&self, store: &Store) {
        let asked = Instant::now();
        let now = Utc::now().timestamp_millis();
        let until = now + LEASE_FOR.as_millis() as i64;
        let was = self.held();
        match store.take_lease(self.name, &self.holder, now, until).await {
            Ok(true) => {
                if let Ok(mut h) = self.held_until.lock() {
                    *h = Some(asked + LEASE_FOR - MARGIN);
                }
                if !was {
                    tracing::info!(job = self.name, holder = %self.holder, "this instance now runs the job");
                }
            }
            Ok(false) => {
                if let Ok(mut h) = self.held_until.lock() {
                    *h = None;
                }
                if was {
                    tracing::warn!(job = self.name, "another instance took over the job");
                }
            }
            // The claim runs out on its own.
            Err(e) => tracing::warn!(job = self.name, error = %e, "cannot renew the job lease"),
        }
    }

    /// Whether this instance holds the lease now (and will for at least [`MARGIN`] more).
    pub fn held(&self) -> bool {
        self.held_until
            .lock()
            .ok()
            .and_then(|h| *h)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Who this instance is in the lease row.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The job's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Gives the lease up now (at shutdown), so that another instance takes over at once.
    pub async fn release(&self, store: &Store) {
        self.released.store(true, Ordering::Release);
        if let Ok(mut h) = self.held_until.lock() {
            *h = None;
        }
        if let Err(e) = store.release_lease(self.name, &self.holder).await {
            tracing::warn!(job = self.name, error = %e, "could not release the job lease; it runs out on its own");
        }
    }
}
