//! Where write confirmations are minted and redeemed: the state store (shared by every
//! instance), or memory for `auth: none` development servers.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::Utc;
use futures::future::BoxFuture;
use warden_core::confirm::{Binding, Ledger, LedgerError, Refusal, TTL, compare};
use warden_store::{Confirmation, Store};

use crate::token::{self, RawToken, TokenKind};

fn expiry() -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(TTL).unwrap_or(chrono::Duration::minutes(5))
}

/// Confirmations in the state store; only their hashes are kept.
#[derive(Debug, Clone)]
pub struct StoreLedger {
    store: Store,
}

impl StoreLedger {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn internal(e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Internal(e.to_string())
}

impl Ledger for StoreLedger {
    fn mint(&self, b: Binding) -> BoxFuture<'_, Result<String, LedgerError>> {
        Box::pin(async move {
            let raw = token::generate(TokenKind::Confirmation).map_err(internal)?;
            let now = Utc::now();
            let c = Confirmation {
                user_id: b.user,
                org: b.org,
                tool: b.tool,
                args_hash: b.args_hash,
                expires_at: expiry(),
                used_at: None,
            };
            self.store
                .insert_confirmation(raw.hash().as_str(), &c, now)
                .await
                .map_err(internal)?;
            self.store
                .purge_confirmations(now)
                .await
                .map_err(internal)?;
            Ok(raw.expose().to_string())
        })
    }

    fn redeem<'a>(
        &'a self,
        token: &'a str,
        b: &'a Binding,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let raw = RawToken::from_client(token);
            if raw.kind() != Some(TokenKind::Confirmation) {
                return Err(Refusal::Unknown.into());
            }
            let hash = raw.hash();
            let now = Utc::now();
            let stored = self
                .store
                .confirmation(hash.as_str())
                .await
                .map_err(internal)?
                .ok_or(Refusal::Unknown)?;
            if stored.used_at.is_some() {
                return Err(Refusal::Used.into());
            }
            if stored.expires_at <= now {
                return Err(Refusal::Expired.into());
            }
            let s = Binding {
                user: stored.user_id,
                org: stored.org,
                tool: stored.tool,
                args_hash: stored.args_hash,
            };
            compare(&s, b)?;
            // Atomic: of two concurrent confirmations with one token, one wins.
            if self
                .store
                .use_confirmation(hash.as_str(), now)
                .await
                .map_err(internal)?
            {
                Ok(())
            } else {
                Err(Refusal::Used.into())
            }
        })
    }
}

/// Confirmations in memory, for one process (`auth: none`).
/// A minted confirmation: what it is bound to, when it expires, whether it was used.
type MemoryEntry = (Binding, chrono::DateTime<Utc>, bool);

#[derive(Debug, Default)]
pub struct MemoryLedger {
    entries: Mutex<HashMap<String, MemoryEntry>>,
}

impl Ledger for MemoryLedger {
    fn mint(&self, b: Binding) -> BoxFuture<'_, Result<String, LedgerError>> {
        Box::pin(async move {
            let raw = token::generate(TokenKind::Confirmation).map_err(internal)?;
            let mut map = self.entries.lock().map_err(internal)?;
            let now = Utc::now();
            map.retain(|_, (_, exp, _)| *exp > now - chrono::Duration::hours(1));
            map.insert(raw.hash().as_str().to_string(), (b, expiry(), false));
            Ok(raw.expose().to_string())
        })
    }

    fn redeem<'a>(
        &'a self,
        token: &'a str,
        b: &'a Binding,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let hash = RawToken::from_client(token).hash();
            let mut map = self.entries.lock().map_err(internal)?;
            let (stored, exp, used) = map.get_mut(hash.as_str()).ok_or(Refusal::Unknown)?;
            if *used {
                return Err(Refusal::Used.into());
            }
            if *exp <= Utc::now() {
                return Err(Refusal::Expired.into());
            }
            compare(stored, b)?;
            *used = true;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_core::confirm::args_hash;

    fn binding(user: &str, tool: &str) -> Binding {
        Binding {
            user: user.into(),
            org: "acme".into(),
            tool: tool.into(),
            args_hash: args_hash(tool, &[]),
        }
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path().join("s.db")).await.unwrap();
        store.migrate().await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn store_ledger_refusals() {
        let (_d, store) = store().await;
        let ledger = StoreLedger::new(store.clone());
        let b = binding("u1", "t");
        let token = ledger.mint(b.clone()).await.unwrap();
        assert!(token.starts_with("wdn_cf_"));
        let refusal = |r: Result<(), LedgerError>| match r {
            Err(LedgerError::Refused(x)) => x,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refusal(ledger.redeem(&token, &binding("u2", "t")).await),
            Refusal::OtherUser
        );
        assert_eq!(
            refusal(ledger.redeem(&token, &binding("u1", "other")).await),
            Refusal::OtherTool
        );
        assert_eq!(
            refusal(ledger.redeem("wdn_cf_nope", &b).await),
            Refusal::Unknown
        );
        ledger.redeem(&token, &b).await.unwrap();
        assert_eq!(refusal(ledger.redeem(&token, &b).await), Refusal::Used);

        // An expired confirmation (written directly, as if minted 6 minutes ago).
        let raw = token::generate(TokenKind::Confirmation).unwrap();
        let past = Utc::now() - chrono::Duration::minutes(1);
        let c = Confirmation {
            user_id: "u1".into(),
            org: "acme".into(),
            tool: "t".into(),
            args_hash: b.args_hash.clone(),
            expires_at: past,
            used_at: None,
        };
        store
            .insert_confirmation(raw.hash().as_str(), &c, past - chrono::Duration::minutes(5))
            .await
            .unwrap();
        assert_eq!(
            refusal(ledger.redeem(raw.expose(), &b).await),
            Refusal::Expired
        );
    }

    #[tokio::test]
    async fn memory_ledger_is_single_use() {
        let ledger = MemoryLedger::default();
        let b = binding("local", "t");
        let token = ledger.mint(b.clone()).await.unwrap();
        ledger.redeem(&token, &b).await.unwrap();
        assert!(matches!(
            ledger.redeem(&token, &b).await,
            Err(LedgerError::Refused(Refusal::Used))
        ));
    }
}
