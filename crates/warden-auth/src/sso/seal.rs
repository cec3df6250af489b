//! Sealing providers' refresh tokens for the state store: AES-256-GCM under a key kept in a
//! file outside the database (`login.secrets_key`), so a copy of the database alone does
//! not carry usable provider tokens. Each sealed value is bound to the identity it belongs
//! to (associated data), so it cannot be moved to another row.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use rand::TryRngCore;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the sign-in secrets key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("a sealed provider token cannot be opened (another key, or altered)")]
    Open,
    #[error("no randomness available")]
    Random,
}

pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// Reads the key from `path` (64 hex characters), creating it (mode 0600) when the file
    /// does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let fail = |reason: String| SealError::Key {
            path: path.display().to_string(),
            reason,
        };
        let bytes = match std::fs::read_to_string(path) {
            Ok(text) => hex::decode(text.trim())
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| fail("is not 64 hex characters (32 bytes); restore the right file or move it away to start over (providers' stored tokens are then lost and people sign in again)".into()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng
                    .try_fill_bytes(&mut key)
                    .map_err(|_| SealError::Random)?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create its folder: {e}")))?;
                }
                write_private(path, &hex::encode(key)).map_err(|e| fail(format!("cannot be created: {e}")))?;
                key.to_vec()
            }
            Err(e) => return Err(fail(format!("cannot be read: {e}"))),
        };
        Self::from_bytes(&bytes).ok_or_else(|| fail("is not a usable AES-256 key".into()))
    }

    pub fn from_bytes(key: &[u8]) -> Option<Self> {
        let key = UnboundKey::new(&AES_256_GCM, key).ok()?;
        Some(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// `plain` sealed for `owner`: base64url of nonce || ciphertext || tag.
    pub fn seal(&self, owner: &str, plain: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens what [`Self::seal`] made for the same `owner`.
    pub fn open(&self, owner: &str, sealed: &str) -> Result<String, SealError> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| SealError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(owner.as_bytes()), &mut buf)
            .map_err(|_| SealError::Open)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Open)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_only_for_its_owner_and_unaltered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/sso.key");
        let s = Sealer::load_or_create(&path).unwrap();
        let sealed = s.seal("id-1", "rt-secret").unwrap();
        assert!(!sealed.contains("rt-secret"));
        assert_eq!(s.open("id-1", &sealed).unwrap(), "rt-secret");
        assert!(s.open("id-2", &sealed).is_err(), "bound to its identity");
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&sealed)
            .unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert!(s.open("id-1", &altered).is_err(), "altered");
        // The same file gives the same key; another key cannot open it.
        let again = Sealer::load_or_create(&path).unwrap();
        assert_eq!(again.open("id-1", &sealed).unwrap(), "rt-secret");
        let other = Sealer::from_bytes(&[7u8; 32]).unwrap();
        assert!(other.open("id-1", &sealed).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "short").unwrap();
        assert!(
            Sealer::load_or_create(&path).is_err(),
            "a bad key file is refused, not replaced"
        );
    }
}
