//! Opaque bearer secrets: how they look, how they are made, and how they are stored.
//!
//! A raw secret is `wdn_<kind>_<43 chars of base64url>` (256 random bits). The prefix lets a
//! secret scanner recognise a leaked Warden secret and lets Warden route a bearer to the
//! right table without a lookup. Only the SHA-256 of a raw secret is ever stored: the secrets
//! are high-entropy, so a plain hash is as hard to reverse as the secret is to guess.

use std::fmt;

use base64::Engine;
use rand::TryRngCore;
use sha2::{Digest, Sha256};

/// What a secret is for; each kind has its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    AccessToken,
    RefreshToken,
    AuthorizationCode,
    ApiKey,
    Session,
    MagicLink,
    Csrf,
    Confirmation,
}

impl TokenKind {
    pub const ALL: [TokenKind; 8] = [
        Self::AccessToken,
        Self::RefreshToken,
        Self::AuthorizationCode,
        Self::ApiKey,
        Self::Session,
        Self::MagicLink,
        Self::Csrf,
        Self::Confirmation,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            Self::AccessToken => "wdn_at_",
            Self::RefreshToken => "wdn_rt_",
            Self::AuthorizationCode => "wdn_ac_",
            Self::ApiKey => "wdn_key_",
            Self::Session => "wdn_ses_",
            Self::MagicLink => "wdn_ml_",
            Self::Csrf => "wdn_csrf_",
            Self::Confirmation => "wdn_cf_",
        }
    }

    /// The kind a raw secret claims by its prefix, if its shape is right.
    pub fn of(raw: &str) -> Option<TokenKind> {
        Self::ALL.into_iter().find(|k| {
            raw.strip_prefix(k.prefix()).is_some_and(|body| {
                body.len() == BODY_LEN
                    && body
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        })
    }
}

const SECRET_BYTES: usize = 32;
/// base64url without padding of 32 bytes.
const BODY_LEN: usize = 43;

/// A raw secret. It exists only between its creation and the response that hands it out,
/// and between a request's arrival and its hashing; `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct RawToken(String);

impl RawToken {
    /// Wraps a secret received from a client.
    pub fn from_client(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> Option<TokenKind> {
        TokenKind::of(&self.0)
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }

    /// The first characters, safe to show in listings (prefix plus 4).
    pub fn display_prefix(&self) -> String {
        let kind_len = self.kind().map_or(0, |k| k.prefix().len());
        self.0.chars().take(kind_len + 4).collect()
    }
}

impl fmt::Debug for RawToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawToken(<redacted>)")
    }
}

/// The stored form of a secret: lowercase hex SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(raw: &str) -> Self {
        let digest = Sha256::digest(raw.as_bytes());
        let mut hex = String::with_capacity(64);
        for b in digest.iter() {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomnessError(String);

/// A new secret of `kind` from the operating system's CSPRNG.
pub fn generate(kind: TokenKind) -> Result<RawToken, RandomnessError> {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| RandomnessError(e.to_string()))?;
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Ok(RawToken(format!("{}{body}", kind.prefix())))
}

/// An opaque identifier (client ids, grant ids): 128 random bits, base64url.
pub fn random_id(prefix: &str) -> Result<String, RandomnessError> {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| RandomnessError(e.to_string()))?;
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Constant-time equality for secrets.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_carry_their_kind_and_differ() {
        for kind in TokenKind::ALL {
            let a = generate(kind).unwrap();
            let b = generate(kind).unwrap();
            assert_ne!(a, b);
            assert_eq!(a.kind(), Some(kind), "{}", a.expose());
            assert_eq!(a.expose().len(), kind.prefix().len() + BODY_LEN);
        }
    }

    #[test]
    fn malformed_bearers_have_no_kind() {
        let good = generate(TokenKind::AccessToken).unwrap();
        let body = &good.expose()["wdn_at_".len()..];
        for bad in [
            String::new(),
            "wdn_at_".to_string(),
            format!("wdn_at_{}", &body[1..]),
            format!("wdn_at_{body}x"),
            format!("wdn_xx_{body}"),
            format!("wdn_at_{}!", &body[1..]),
            body.to_string(),
        ] {
            assert_eq!(TokenKind::of(&bad), None, "{bad}");
        }
    }

    #[test]
    fn hashes_are_sha256_hex_and_debug_redacts() {
        assert_eq!(
            TokenHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let t = generate(TokenKind::ApiKey).unwrap();
        assert!(!format!("{t:?}").contains(&t.expose()[8..]));
        assert_eq!(t.display_prefix().len(), "wdn_key_".len() + 4);
    }

    #[test]
    fn constant_time_compare() {
        assert!(secrets_equal(b"same", b"same"));
        assert!(!secrets_equal(b"same", b"sane"));
        assert!(!secrets_equal(b"short", b"longer"));
    }
}
