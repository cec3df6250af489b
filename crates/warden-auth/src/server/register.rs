//! Dynamic client registration (RFC 7591): accepted metadata becomes a stored OAuth client,
//! unless too many clients registered and never authorized exist, from the caller's address
//! or in all (`server.limits.unused_clients`). Those clients expire: see
//! [`purge_unused_clients_once`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use warden_core::audit::{Event, Sink, Source};
use warden_store::{ClientCap, OAuthClient, Registration, Store};

use super::abuse::{AbuseRefusal, Endpoint};
use super::flood::Limit;
use super::{AuthServer, InternalError};
use crate::registration::{self, ClientMetadata, RegistrationError};

/// Unused clients deleted per statement, and statements per purge at most.
const PURGE_BATCH: u32 = 1_000;
const PURGE_BATCHES: u32 = 100;

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Invalid(#[from] RegistrationError),
    /// Too many requests, or too many unused clients, from this address.
    #[error(transparent)]
    Refused(AbuseRefusal),
    /// Too many unused clients in all.
    #[error("Too many apps are registered and not yet used; try again later.")]
    Full,
}

impl AuthServer {
    /// Registers a client for a caller at `addr` (an IP address).
    pub async fn register(
        &self,
        meta: &ClientMetadata,
        addr: &str,
    ) -> Result<OAuthClient, RegisterError> {
        let accepted = registration::validate(meta)?;
        let Some(from) = self.address_key("addr", addr).await else {
            return Err(RegisterError::Refused(AbuseRefusal::Unavailable));
        };
        let unused = self.abuse_limits.unused_clients;
        let cap = ClientCap {
            per_address: unused.per_address,
            total: unused.total,
        };
        let now = Utc::now();
        let outcome = self
            .store
            .create_client_capped(&accepted.name, &accepted.redirect_uris, &from, cap, now)
            .await;
        match outcome {
            Ok(Registration::Registered(c)) => Ok(c),
            Ok(Registration::AddressFull { oldest }) => {
                self.note_refusal(Endpoint::Register, Limit::UnusedClientsPerAddress, addr)
                    .await;
                // The oldest of them expires first.
                let expires = oldest
                    + chrono::Duration::from_std(unused.expire_after)
                        .unwrap_or(chrono::Duration::MAX);
                // A concurrent registration may have stamped `oldest` after this one's `now`.
                let retry_after = (expires - now)
                    .to_std()
                    .unwrap_or(Duration::from_secs(1))
                    .min(unused.expire_after);
                Err(RegisterError::Refused(AbuseRefusal::TooMany {
                    retry_after,
                }))
            }
            Ok(Registration::TotalFull) => {
                self.note_refusal(Endpoint::Register, Limit::UnusedClientsTotal, addr)
                    .await;
                Err(RegisterError::Full)
            }
            Err(e @ warden_store::StoreError::Invalid { .. }) => Err(RegisterError::Invalid(
                RegistrationError::InvalidMetadata(e.to_string()),
            )),
            Err(e) => {
                tracing::error!(error = %e, "cannot store a client registration");
                Err(RegisterError::Refused(AbuseRefusal::Unavailable))
            }
        }
    }
}

/// Deletes the clients registered before `now - expire_after` that no one ever authorized
/// (a bounded number per run), and records how many in the trail (one record, when any were
/// deleted). Returns how many were deleted.
pub async fn purge_unused_clients_once(
    store: &Store,
    audit: &dyn Sink,
    expire_after: Duration,
    now: DateTime<Utc>,
) -> Result<u64, InternalError> {
    let before = now - chrono::Duration::from_std(expire_after).unwrap_or(chrono::Duration::MAX);
    let mut deleted = 0;
    for _ in 0..PURGE_BATCHES {
        let n = store.purge_unused_clients(before, PURGE_BATCH).await?;
        deleted += n;
        if n < u64::from(PURGE_BATCH) {
            break;
        }
    }
    if deleted > 0 {
        let e = Event::new("unused_clients_purged", Source::System, "purge").detail(json!({
            "count": deleted,
            "registered_before": before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }));
        audit
            .record(e)
            .await
            .map_err(|e| InternalError::Other(e.0))?;
    }
    Ok(deleted)
}
