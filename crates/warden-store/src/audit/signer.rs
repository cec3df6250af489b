//! The checkpoint key: Ed25519, kept in a file outside the database, so that whoever can
//! rewrite the database still cannot sign a checkpoint for what they wrote.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    // `error`, not `source`: the message already carries it, so it is not chained twice.
    #[error("cannot read the audit signing key {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot create the audit signing key {path}: {error}")]
    Create {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} is not an audit signing key (expected 64 hex digits, as `warden` writes them)")]
    Malformed { path: PathBuf },
    #[error("'{0}' is not an Ed25519 public key (expected 64 hex digits)")]
    PublicKey(String),
}

/// Signs checkpoints.
pub struct Signer {
    key: SigningKey,
    verifier: Verifier,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("Signer")
            .field("key_id", &self.verifier.key_id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Reads the key at `path`.
    pub fn load(path: &Path) -> Result<Self, SignerError> {
        let text = std::fs::read_to_string(path).map_err(|error| SignerError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let seed: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SignerError::Malformed {
                path: path.to_path_buf(),
            })?;
        Ok(Self::from_seed(seed))
    }

    /// Reads the key at `path`, creating it (readable by its owner only) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, SignerError> {
        if path.exists() {
            return Self::load(path);
        }
        let create = |error| SignerError::Create {
            path: path.to_path_buf(),
            error,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(create)?;
        }
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut seed[..]);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(create)?;
        file.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(create)?;
        Ok(Self::from_seed(seed))
    }

    fn from_seed(seed: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let verifier = Verifier::new(key.verifying_key());
        Self { key, verifier }
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Hex signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.key.sign(message).to_bytes())
    }
}

/// Checks checkpoint signatures; all an auditor needs (the public key).
#[derive(Debug, Clone)]
pub struct Verifier {
    key: VerifyingKey,
    key_id: String,
}

impl Verifier {
    fn new(key: VerifyingKey) -> Self {
        let key_id = hex::encode(&Sha256::digest(key.as_bytes())[..8]);
        Self { key, key_id }
    }

    pub fn from_hex(public: &str) -> Result<Self, SignerError> {
        let bytes: [u8; 32] = hex::decode(public.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SignerError::PublicKey(public.to_string()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self::new)
            .map_err(|_| SignerError::PublicKey(public.to_string()))
    }

    /// The first 8 bytes of the public key's SHA-256, in hex: names the key in checkpoints.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.key.as_bytes())
    }

    pub fn verify(&self, message: &[u8], signature_hex: &str) -> bool {
        let Some(bytes) = hex::decode(signature_hex)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
        else {
            return false;
        };
        self.key
            .verify(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

/// What a checkpoint's signature covers.
pub fn checkpoint_message(chain: &str, seq: i64, hash: &str, ts: &str, kind: &str) -> Vec<u8> {
    format!("warden-audit-checkpoint/1\n{chain}\n{seq}\n{hash}\n{ts}\n{kind}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_are_created_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit.key");
        let a = Signer::load_or_create(&path).unwrap();
        let b = Signer::load_or_create(&path).unwrap();
        assert_eq!(a.verifier().public_hex(), b.verifier().public_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sig = a.sign(b"m");
        assert!(b.verifier().verify(b"m", &sig));
        assert!(!b.verifier().verify(b"n", &sig));
        let public = Verifier::from_hex(&a.verifier().public_hex()).unwrap();
        assert!(public.verify(b"m", &sig));
        assert!(!format!("{a:?}").contains(&std::fs::read_to_string(&path).unwrap()[..16]));
    }

    #[test]
    fn a_damaged_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        std::fs::write(&path, "not hex").unwrap();
        let e = Signer::load(&path).unwrap_err().to_string();
        assert!(e.contains("audit.key"), "{e}");
    }
}
