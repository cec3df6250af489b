//! Files: each organisation's stored objects (uploads to ingest, files to download) and the
//! short-lived signed URLs that move them.
//!
//! Pipeline position: the tools `request_upload_url`, `request_download_url` and
//! `list_files` (`pipeline/files.rs`) issue URLs after the usual stages; the edge's
//! `/files/{token}` route hands a URL's use to `Pipeline::upload` or `Pipeline::download`,
//! which check it and record it.
//!
//! A URL's token is `<base64url(JSON claims)>.<base64url(HMAC-SHA256)>`, signed with a key
//! kept in a file outside the database (`files.signing_key`) and checked in constant time.
//! The claims name the operation, the organisation, the principal, the object, the size
//! limit (uploads), the expiry (300 s for an upload, 120 s for a download) and a
//! single-use ticket from the confirmation ledger, which every instance on the state store
//! shares: a URL works once.
//!
//! Storage is behind [`ObjectStore`]; [`Directory`] keeps each organisation's objects in a
//! directory of its own, each beside a sidecar with its SHA-256.

mod directory;
mod url;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

pub use directory::Directory;
pub use url::{Claims, Op, UrlError, UrlSigner};

/// How long an upload URL lives.
pub const UPLOAD_TTL: std::time::Duration = std::time::Duration::from_secs(300);
/// How long a download URL lives.
pub const DOWNLOAD_TTL: std::time::Duration = std::time::Duration::from_secs(120);

/// What is known of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub name: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The body turned out larger than allowed; nothing was kept.
    #[error("the body is larger than the {0} bytes this URL allows; nothing was stored")]
    TooLarge(u64),
    #[error("the upload was interrupted: {0}; nothing was stored")]
    Body(String),
    #[error(
        "'{0}' is not an object name (letters, digits, '.', '_' and '-', at most 128, starting with a letter or digit)"
    )]
    BadName(String),
    #[error("storage failed: {0}")]
    Io(String),
}

/// A chunk of a body as it arrives.
pub type Body = BoxStream<'static, Result<Vec<u8>, String>>;

/// Where an organisation's objects live. Every method names the organisation: an
/// implementation keeps them apart, and refuses a name that is not [`valid_name`].
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Stores `body` as `name`, replacing any object of that name only once the whole body
    /// arrived within `max` bytes; otherwise nothing is kept.
    fn put<'a>(
        &'a self,
        org: &'a str,
        name: &'a str,
        body: Body,
        max: u64,
    ) -> BoxFuture<'a, Result<Stored, StoreError>>;
    fn stat<'a>(
        &'a self,
        org: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Stored>, StoreError>>;
    /// The whole object (ingest and downloads read objects up to the upload limit).
    fn read<'a>(
        &'a self,
        org: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>>;
    fn list<'a>(&'a self, org: &'a str) -> BoxFuture<'a, Result<Vec<Stored>, StoreError>>;
    fn delete<'a>(&'a self, org: &'a str, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// An object name: one path component, never `.` or `..`, nothing hidden.
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.contains("..")
}

/// An organisation slug as the pipeline accepts it.
pub(crate) fn valid_org(org: &str) -> bool {
    !org.is_empty()
        && org
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
