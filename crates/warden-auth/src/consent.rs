//! The consent seal: binds a consent page to the authorization request it was shown for.
//!
//! The consent form carries the request's parameters back in hidden fields, so a person (or
//! a browser extension) can edit them before answering: widen `scope`, or add the write box
//! the page never offered. The page therefore also carries a seal, an HMAC under a key only
//! the servers know, over the signed-in user, the form's CSRF token and every parameter. An
//! answer whose parameters do not match their seal is refused and nothing is issued.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use warden_store::UserId;

use crate::server::AuthorizeParams;

/// The name of the key in the state store (shared by every instance).
pub const KEY_NAME: &str = "consent_seal";

fn mac(key: &[u8; 32], user: UserId, csrf: &str, params: &AuthorizeParams) -> Option<Hmac<Sha256>> {
    // HMAC accepts keys of any length: this never fails.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    m.update(b"warden consent seal v1\0");
    m.update(user.to_string().as_bytes());
    m.update(b"\0");
    m.update(csrf.as_bytes());
    m.update(b"\0");
    for (k, v) in params.pairs() {
        // Lengths first, so that no two different parameter lists hash the same bytes.
        m.update(&(k.len() as u64).to_be_bytes());
        m.update(k.as_bytes());
        m.update(&(v.len() as u64).to_be_bytes());
        m.update(v.as_bytes());
    }
    Some(m)
}

/// The seal to put in the consent form.
pub fn seal(key: &[u8; 32], user: UserId, csrf: &str, params: &AuthorizeParams) -> Option<String> {
    Some(hex::encode(
        mac(key, user, csrf, params)?.finalize().into_bytes(),
    ))
}

/// Whether `presented` is the seal of exactly these parameters (constant time).
pub fn verify(
    key: &[u8; 32],
    user: UserId,
    csrf: &str,
    params: &AuthorizeParams,
    presented: &str,
) -> bool {
    let Ok(tag) = hex::decode(presented) else {
        return false;
    };
    mac(key, user, csrf, params).is_some_and(|m| m.verify_slice(&tag).is_ok())
}

#[cfg(test)]
mod tests;
