//! HTTPS: the certificate and key from PEM files, TLS 1.2 and 1.3 only (rustls with
//! aws-lc-rs, whose suites are all forward-secret AEAD), ALPN `h2` and `http/1.1`.
//!
//! The pair is re-read by [`Tls::reload`] (on `SIGHUP`, and when [`Tls::watch`] sees either
//! file change); new connections get the new pair, open ones keep theirs. A new pair that
//! does not load leaves the old one serving, and the reason is logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;
use warden_core::project::TlsConfig;

/// Why a certificate and key cannot be served. Each names the file to look at.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { file: PathBuf },
    #[error("{file} holds no PEM private key (expected -----BEGIN PRIVATE KEY-----, RSA or EC)")]
    NoKey { file: PathBuf },
    #[error(
        "{file} is readable by group or others (mode {mode:o}); a private key must be private: run `chmod 600 {file}`"
    )]
    Permissions { file: PathBuf, mode: u32 },
    #[error("the key in {key} is not one this server can sign with: {reason}")]
    UnusableKey { key: PathBuf, reason: String },
    #[error("the key in {key} does not belong to the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
}

/// The server's TLS configuration and the certificate it currently serves.
#[derive(Debug, Clone)]
pub struct Tls {
    config: Arc<rustls::ServerConfig>,
    current: Arc<Current>,
}

#[derive(Debug)]
struct Current {
    paths: TlsConfig,
    provider: Arc<CryptoProvider>,
    key: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times and sizes when last loaded.
    stamp: Mutex<Option<Stamp>>,
}

type Stamp = [(Option<SystemTime>, u64); 2];

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.key.read().ok().map(|k| Arc::clone(&k))
    }
}

impl Tls {
    /// Loads the pair; every problem is an error naming its file.
    pub fn load(paths: &TlsConfig) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let stamp = stamp(paths);
        let key = certified_key(paths, &provider)?;
        let current = Arc::new(Current {
            paths: paths.clone(),
            provider: provider.clone(),
            key: RwLock::new(Arc::new(key)),
            stamp: Mutex::new(stamp),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            current,
        })
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }

    /// Re-reads the pair. On success new connections get it; on failure the old pair stays
    /// and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let c = &self.current;
        let stamp = stamp(&c.paths);
        let key = certified_key(&c.paths, &c.provider)?;
        if let Ok(mut k) = c.key.write() {
            *k = Arc::new(key);
        }
        if let Ok(mut s) = c.stamp.lock() {
            *s = stamp;
        }
        Ok(())
    }

    /// Polls the two files every `every` until `stop`, and reloads when either changed.
    pub fn watch(&self, every: Duration, stop: CancellationToken) {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let now = stamp(&tls.current.paths);
                let changed = tls.current.stamp.lock().is_ok_and(|s| *s != now);
                if changed {
                    tls.reload_and_log("the files changed");
                    // Whatever the outcome, this version of the files has been tried.
                    if let Ok(mut s) = tls.current.stamp.lock() {
                        *s = now;
                    }
                }
            }
        });
    }

    /// [`Tls::reload`], with the outcome logged (`why` says what prompted it).
    pub fn reload_and_log(&self, why: &str) {
        match self.reload() {
            Ok(()) => tracing::info!(
                cert = %self.current.paths.cert.display(),
                "reloaded the TLS certificate and key ({why}); new connections use them"
            ),
            Err(e) => tracing::error!("kept the previous TLS certificate and key ({why}): {e}"),
        }
    }
}

fn stamp(paths: &TlsConfig) -> Option<Stamp> {
    let one = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    Some([one(&paths.cert)?, one(&paths.key)?])
}

fn read(file: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|source| TlsError::Read {
        file: file.to_path_buf(),
        source,
    })
}

/// The key file may be read by its owner only.
fn check_private(file: &Path) -> Result<(), TlsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(file).map_err(|source| TlsError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TlsError::Permissions {
                file: file.to_path_buf(),
                mode,
            });
        }
    }
    Ok(())
}

fn certified_key(paths: &TlsConfig, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(&paths.cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            file: paths.cert.clone(),
        });
    }
    check_private(&paths.key)?;
    let key_pem = read(&paths.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        file: paths.key.clone(),
    })?;
    let signing =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::UnusableKey {
                key: paths.key.clone(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(_) => Err(TlsError::Mismatch {
            cert: paths.cert.clone(),
            key: paths.key.clone(),
        }),
    }
}
