//! Which checkpoint signers a verification trusts. Trust starts from a key the verifier
//! holds (the anchor: an operator's `--public-key`, the project's key file, or the running
//! server's own key), never from the database, and follows endorsements signed by keys
//! already trusted; a signer row written into the database without a signing key is never
//! trusted. Used by `warden audit verify`, the offline export check and the console.

use super::Verifier;
use crate::{AuditSigner, Endorsement, Store, StoreError, endorsement_message};

/// The keys trusted from `anchor`: it, and every registered signer an endorsement signed by
/// a key already trusted reaches. Also the registered signers left out.
pub fn endorsed_from(
    anchor: Verifier,
    registered: &[AuditSigner],
    endorsements: &[Endorsement],
) -> (Vec<Verifier>, Vec<String>) {
    let anchor_id = anchor.key_id().to_string();
    let mut trusted = vec![anchor];
    let mut pending: Vec<(&AuditSigner, Verifier)> = registered
        .iter()
        .filter(|s| s.key_id != anchor_id)
        .filter_map(|s| {
            Verifier::from_hex(&s.public_key)
                .ok()
                .filter(|k| k.key_id() == s.key_id)
                .map(|k| (s, k))
        })
        .collect();
    loop {
        let before = pending.len();
        let mut newly = Vec::new();
        pending.retain(|(s, key)| {
            let message = endorsement_message(&s.key_id, &s.public_key);
            let endorsed = endorsements.iter().any(|e| {
                e.endorsee == s.key_id
                    && trusted
                        .iter()
                        .any(|t| t.key_id() == e.endorser && t.verify(&message, &e.signature))
            });
            if endorsed {
                newly.push(key.clone());
            }
            !endorsed
        });
        trusted.extend(newly);
        if pending.len() == before {
            break;
        }
    }
    let left_out = registered
        .iter()
        .filter(|s| !trusted.iter().any(|t| t.key_id() == s.key_id))
        .map(|s| s.key_id.clone())
        .collect();
    (trusted, left_out)
}

/// [`endorsed_from`] over the store's registered signers and endorsements.
pub async fn trusted_from(
    store: &Store,
    anchor: Verifier,
) -> Result<(Vec<Verifier>, Vec<String>), StoreError> {
    let registered = store.audit_signers().await?;
    let endorsements = store.audit_endorsements().await?;
    Ok(endorsed_from(anchor, &registered, &endorsements))
}
