//! Passwords: Argon2id, computed on blocking threads behind a semaphore, so a burst of login
//! attempts queues instead of exhausting memory (each hash uses ~19 MiB).

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("passwords must be at least {0} characters")]
    TooShort(usize),
    #[error("the password hasher failed: {0}")]
    Hasher(String),
}

pub const MIN_LENGTH: usize = 10;

/// Hashes and verifies passwords with a bounded number running at once.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    slots: Arc<Semaphore>,
    /// A valid hash checked when the account does not exist, so that the response time does
    /// not reveal which emails have accounts.
    dummy: Arc<str>,
}

fn argon2() -> Result<Argon2<'static>, PasswordError> {
    // OWASP's Argon2id baseline: 19 MiB, 2 passes, 1 lane.
    let params =
        Params::new(19 * 1024, 2, 1, None).map_err(|e| PasswordError::Hasher(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    // The salt comes from the operating system's CSPRNG (argon2's `getrandom` feature).
    Ok(argon2()?
        .hash_password(password.as_bytes())
        .map_err(|e| PasswordError::Hasher(e.to_string()))?
        .to_string())
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2().is_ok_and(|a| a.verify_password(password.as_bytes(), &parsed).is_ok())
}

impl PasswordHasher {
    /// `concurrency` hashes may run at once; more wait their turn.
    pub fn new(concurrency: usize) -> Result<Self, PasswordError> {
        let dummy = hash_blocking("warden-dummy-password-for-timing")?;
        Ok(Self {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: dummy.into(),
        })
    }

    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        if password.chars().count() < MIN_LENGTH {
            return Err(PasswordError::TooShort(MIN_LENGTH));
        }
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| PasswordError::Hasher(e.to_string()))?;
        let password = password.to_string();
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .map_err(|e| PasswordError::Hasher(e.to_string()))?
    }

    /// Verifies `password` against `phc`; with `None` (no such account, or no password set)
    /// it spends the same time and returns false.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> bool {
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        let (password, phc, known) = match phc {
            Some(p) => (password.to_string(), p.to_string(), true),
            None => (password.to_string(), self.dummy.to_string(), false),
        };
        let ok = tokio::task::spawn_blocking(move || verify_blocking(&password, &phc))
            .await
            .unwrap_or(false);
        ok && known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let h = PasswordHasher::new(2).unwrap();
        let phc = h.hash("correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(h.verify("correct horse battery", Some(&phc)).await);
        assert!(!h.verify("wrong horse battery", Some(&phc)).await);
        assert!(!h.verify("correct horse battery", None).await);
        assert!(!h.verify("x", Some("not a phc string")).await);
        assert!(matches!(
            h.hash("short").await,
            Err(PasswordError::TooShort(_))
        ));
    }
}
