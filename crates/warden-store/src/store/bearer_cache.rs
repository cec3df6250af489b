//! A per-instance cache of successful bearer lookups, for PostgreSQL state stores, where each
//! lookup is a network round trip. It is correct only while this instance hears every change
//! that could make a cached lookup wrong, so it serves nothing unless it is listening.
//!
//! - Every such change, by any program, is announced on the channel `warden_auth` by triggers
//!   (migration `0011_auth_changes.sql`); the notification is delivered when the change
//!   commits. Any notification empties the whole cache: revocations are rare, and a full
//!   flush has no case to get wrong.
//! - The listener proves it is alive: every [`HEARTBEAT`] it sends itself a ping on the same
//!   channel and expects it back within the next one. A lost connection, a ping that does not
//!   come back, or any listener error turns the cache off (empty, bypassed) until a new
//!   connection is listening again; the cache is emptied again when it comes back.
//! - A lookup that raced with a flush is not kept: an entry is stored only if no flush
//!   happened since the lookup started (a generation number, checked under the write lock).
//! - Only successes are cached, each for at most [`ENTRY_TTL`], and an access token's entry
//!   never outlives the token. Unknown tokens always reach the database.
//!
//! The bound this gives, beside a clean "next request" on one instance: a request that
//! reaches another instance after a change committed, but before that instance received the
//! notification (usually well under a millisecond on one network; `warden-auth-bench
//! --postgres` measures it), is still admitted once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use super::bearer::PrincipalRow;
use crate::model::{ApiKey, Grant, Role};

/// The channel the triggers notify.
pub const CHANNEL: &str = "warden_auth";
/// How often the listener pings itself, and how long a ping may take to come back.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// The longest an entry is served, whatever happens.
pub const ENTRY_TTL: Duration = Duration::from_secs(60);
/// Entries kept at most; past it the cache is emptied and fills again.
const MAX_ENTRIES: usize = 100_000;
/// Pause before listening again after the connection failed.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// Flushes, and lookups answered from the cache, for `/metrics`.
pub const CACHE_FLUSHES: &str = "warden.auth.cache.flushes";
pub const CACHE_HITS: &str = "warden.auth.cache.hits";

#[derive(Debug, Clone)]
pub(super) enum Cached {
    Access {
        grant: Grant,
        holder: PrincipalRow,
        expires_at: DateTime<Utc>,
    },
    Key {
        key: ApiKey,
        holder: PrincipalRow,
        role: Role,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    value: Cached,
    stored: Instant,
}

#[derive(Debug, Default)]
struct Entries {
    generation: u64,
    map: HashMap<String, Entry>,
    /// API key id to the hash its entry is under.
    keys: HashMap<String, String>,
}

impl Entries {
    fn clear(&mut self) {
        self.generation += 1;
        self.map.clear();
        self.keys.clear();
    }
}

#[derive(Debug, Default)]
pub(super) struct BearerCache {
    /// Serving only while a listener is known to be receiving.
    live: AtomicBool,
    entries: RwLock<Entries>,
    pings: AtomicU64,
}

impl BearerCache {
    /// The cached lookup for `hash`, if the cache is live and holds a fresh one.
    pub(super) fn get(&self, hash: &str, now: DateTime<Utc>) -> Option<Cached> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let e = entries.map.get(hash)?;
        if e.stored.elapsed() >= ENTRY_TTL {
            return None;
        }
        if let Cached::Access { expires_at, .. } = &e.value
            && *expires_at <= now
        {
            return None;
        }
        metrics::counter!(CACHE_HITS).increment(1);
        Some(e.value.clone())
    }

    /// The generation to hand back to [`BearerCache::put`] after a database lookup, or `None`
    /// when the cache is off (then the lookup is not kept).
    pub(super) fn generation(&self) -> Option<u64> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        self.entries.read().ok().map(|e| e.generation)
    }

    /// Keeps a lookup made since `generation`, unless a flush came in between.
    pub(super) fn put(&self, generation: u64, hash: &str, value: Cached) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.generation != generation || !self.live.load(Ordering::Acquire) {
            return;
        }
        if entries.map.len() >= MAX_ENTRIES {
            entries.clear();
            return;
        }
        if let Cached::Key { key, .. } = &value {
            entries.keys.insert(key.id.to_string(), hash.to_string());
        }
        entries.map.insert(
            hash.to_string(),
            Entry {
                value,
                stored: Instant::now(),
            },
        );
    }

    /// Notes an API key's new last use in its entry, so the once-a-minute touch is not
    /// repeated on every request from a stale copy.
    pub(super) fn touched(&self, key_id: &str, at: DateTime<Utc>) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        let Some(hash) = entries.keys.get(key_id).cloned() else {
            return;
        };
        if let Some(Entry {
            value: Cached::Key { key, .. },
            ..
        }) = entries.map.get_mut(&hash)
        {
            key.last_used_at = Some(at);
        }
    }

    /// Empties the cache after a change this instance made (see `Store::auth_changed`).
    pub(super) fn flush_now(&self) {
        self.flush();
    }

    /// Empties the cache; lookups in flight are not kept.
    fn flush(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
        metrics::counter!(CACHE_FLUSHES).increment(1);
    }

    fn set_live(&self, live: bool) {
        // Flushed under the same lock a `put` checks `live` under, in either direction.
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
            self.live.store(live, Ordering::Release);
        }
    }

    pub(super) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }
}

/// Listens on [`CHANNEL`] for as long as `pool` is open, keeping `cache` live only while it
/// provably receives.
pub(super) async fn listen(pool: PgPool, cache: Arc<BearerCache>) {
    let instance: u64 = rand::random();
    loop {
        if pool.is_closed() {
            cache.set_live(false);
            return;
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "bearer cache off: cannot open a listening connection");
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "bearer cache off: LISTEN failed (a pooler in transaction mode cannot LISTEN)");
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        }
        // Reading runs in a task of its own so that a dead connection can be dropped without
        // waiting on it.
        let (tx, mut rx) = mpsc::channel::<Option<String>>(256);
        let reader = tokio::spawn(async move {
            loop {
                let msg = match listener.try_recv().await {
                    Ok(Some(n)) => Some(n.payload().to_string()),
                    // The connection was lost (and reopened): anything may have been missed.
                    Ok(None) => None,
                    Err(_) => return,
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
        });
        cache.set_live(true);
        tracing::debug!("bearer cache live");
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut waiting_for: Option<String> = None;
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Some(payload)) if waiting_for.as_deref() == Some(payload.as_str()) => {
                        waiting_for = None;
                    }
                    Some(Some(p)) if p.starts_with("ping:") => {}
                    Some(_) => cache.flush(),
                    None => break,
                },
                _ = beat.tick() => {
                    if waiting_for.is_some() {
                        tracing::warn!("bearer cache off: the listener's heartbeat did not come back");
                        break;
                    }
                    let n = cache.pings.fetch_add(1, Ordering::Relaxed);
                    let payload = format!("ping:{instance:016x}:{n}");
                    let sent = sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(CHANNEL)
                        .bind(&payload)
                        .execute(&pool)
                        .await;
                    if let Err(e) = sent {
                        tracing::warn!(error = %e, "bearer cache off: cannot send the listener's heartbeat");
                        break;
                    }
                    waiting_for = Some(payload);
                }
            }
        }
        cache.set_live(false);
        reader.abort();
        if pool.is_closed() {
            return;
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::{ClientId, GrantId, OrgId, Scopes, UserId};

    fn access(expires_at: DateTime<Utc>) -> Cached {
        let now = Utc::now();
        Cached::Access {
            grant: Grant {
                id: GrantId::new_random(),
                org_id: OrgId::new_random(),
                user_id: UserId::new_random(),
                client_id: ClientId::new_random(),
                scopes: Scopes::READ,
                role: Role::Member,
                resource: "r".into(),
                created_at: now,
                updated_at: now,
                revoked_at: None,
                revoked_reason: None,
            },
            holder: PrincipalRow {
                email: "a@b.c".into(),
                org_slug: "o".into(),
                user_disabled: false,
            },
            expires_at,
        }
    }

    #[test]
    fn serves_nothing_unless_live() {
        let c = BearerCache::default();
        assert_eq!(c.generation(), None);
        c.put(0, "h", access(Utc::now() + chrono::Duration::hours(1)));
        assert!(c.get("h", Utc::now()).is_none());
        c.set_live(true);
        let g = c.generation().unwrap();
        c.put(g, "h", access(Utc::now() + chrono::Duration::hours(1)));
        assert!(c.get("h", Utc::now()).is_some());
        c.set_live(false);
        assert!(c.get("h", Utc::now()).is_none());
        c.set_live(true);
        assert!(
            c.get("h", Utc::now()).is_none(),
            "going live again starts empty"
        );
    }

    #[test]
    fn a_lookup_that_raced_a_flush_is_not_kept() {
        let c = BearerCache::default();
        c.set_live(true);
        let g = c.generation().unwrap();
        c.flush();
        c.put(g, "h", access(Utc::now() + chrono::Duration::hours(1)));
        assert!(c.get("h", Utc::now()).is_none());
    }

    #[test]
    fn an_expired_token_is_never_served() {
        let c = BearerCache::default();
        c.set_live(true);
        let g = c.generation().unwrap();
        let now = Utc::now();
        c.put(g, "h", access(now + chrono::Duration::seconds(1)));
        assert!(c.get("h", now).is_some());
        assert!(c.get("h", now + chrono::Duration::seconds(1)).is_none());
    }
}
