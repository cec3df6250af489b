//! Signing and checking file URLs' tokens.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What a URL lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Put,
    Get,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
        }
    }
}

/// What a URL's token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub op: Op,
    pub org: String,
    pub user: String,
    pub name: String,
    /// Most bytes an upload may have (0 for a download).
    pub max: u64,
    /// Unix seconds after which the URL is refused.
    pub exp: i64,
    /// The single-use ticket redeemed when the URL is used.
    pub ticket: String,
}

/// Why a token was refused, each a rule of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("this is not a file URL this server issued")]
    Malformed,
    #[error("this file URL's signature does not match; ask for a new URL")]
    Signature,
    #[error("this file URL has expired; ask for a new one")]
    Expired,
}

impl UrlError {
    pub fn rule(self) -> &'static str {
        match self {
            Self::Malformed => "files.malformed",
            Self::Signature => "files.signature",
            Self::Expired => "files.expired",
        }
    }
}

/// Signs and checks tokens with a key kept outside the database.
#[derive(Clone)]
pub struct UrlSigner {
    key: std::sync::Arc<[u8; 32]>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(<secret>)")
    }
}

impl UrlSigner {
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key: std::sync::Arc::new(key),
        }
    }

    /// The key in `path` (64 hex digits), created (owner-only) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = text.trim();
                let mut key = [0u8; 32];
                if text.len() != 64 || !text.is_ascii() {
                    return Err(format!(
                        "{shown} does not hold a files signing key (64 hex digits); delete it to have a new one made (outstanding file URLs then stop working)"
                    ));
                }
                for (i, k) in key.iter_mut().enumerate() {
                    *k = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| {
                        format!("{shown} does not hold a files signing key (64 hex digits)")
                    })?;
                }
                Ok(Self::new(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::fill(&mut key);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                use std::io::Write;
                let mut f = options
                    .open(path)
                    .map_err(|e| format!("cannot create the files signing key {shown}: {e}"))?;
                f.write_all(super::hex(&key).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| format!("cannot write the files signing key {shown}: {e}"))?;
                Ok(Self::new(key))
            }
            Err(e) => Err(format!("cannot read the files signing key {shown}: {e}")),
        }
    }

    fn mac(&self) -> Option<Hmac<Sha256>> {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.as_slice()).ok()?;
        m.update(b"warden-file-url-v1\0");
        Some(m)
    }

    pub fn sign(&self, claims: &Claims) -> Option<String> {
        let payload = serde_json::to_vec(claims).ok()?;
        let mut m = self.mac()?;
        m.update(&payload);
        Some(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
        ))
    }

    /// The claims of a token this key signed and that has not expired at `now`.
    pub fn open(&self, token: &str, now: i64) -> Result<Claims, UrlError> {
        let (payload, mac) = token.split_once('.').ok_or(UrlError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| UrlError::Malformed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| UrlError::Malformed)?;
        let mut m = self.mac().ok_or(UrlError::Malformed)?;
        m.update(&payload);
        // Constant time.
        m.verify_slice(&mac).map_err(|_| UrlError::Signature)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| UrlError::Malformed)?;
        if now >= claims.exp {
            return Err(UrlError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            op: Op::Put,
            org: "acme".into(),
            user: "u1".into(),
            name: "rows.csv".into(),
            max: 10,
            exp,
            ticket: "t".into(),
        }
    }

    #[test]
    fn a_token_opens_only_unchanged_unexpired_and_under_its_key() {
        let s = UrlSigner::new([7; 32]);
        let t = s.sign(&claims(100)).unwrap();
        assert_eq!(s.open(&t, 99).unwrap(), claims(100));
        assert_eq!(s.open(&t, 100), Err(UrlError::Expired));
        assert_eq!(
            UrlSigner::new([8; 32]).open(&t, 1),
            Err(UrlError::Signature)
        );
        let (p, m) = t.split_once('.').unwrap();
        let other = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(1_000_000)).unwrap());
        assert_eq!(s.open(&format!("{other}.{m}"), 1), Err(UrlError::Signature));
        assert_eq!(s.open(p, 1), Err(UrlError::Malformed));
        assert_eq!(s.open("x.y", 1), Err(UrlError::Malformed));
    }
}
