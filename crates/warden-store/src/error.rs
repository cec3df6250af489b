//! Errors of the control-plane store.
//!
//! Constraint violations are mapped to [`StoreError::Conflict`] and
//! [`StoreError::NotFound`] here, so callers never inspect backend error codes.

use sqlx::error::ErrorKind;

/// Everything that can go wrong in the store. The edge maps these to HTTP
/// statuses or JSON-RPC errors in one place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL names no backend this store speaks. Only the scheme is
    /// kept: the rest of a URL may hold a password.
    #[error(
        "unsupported database URL scheme {scheme:?}; use sqlite://PATH?mode=rwc, sqlite::memory: \
         or postgres://USER@HOST:PORT/DATABASE"
    )]
    UnsupportedUrl {
        /// The part of the URL before the first `:`.
        scheme: String,
    },

    /// The database could not be opened or reached.
    #[error(
        "cannot open the {backend} database: {source}; check the database URL, that the server \
         is running and accepts this user, or that the SQLite file's directory exists and is writable"
    )]
    Connect {
        /// `"sqlite"` or `"postgres"`.
        backend: &'static str,
        /// What sqlx reported.
        #[source]
        source: sqlx::Error,
    },

    /// Applying the schema migrations failed.
    #[error(
        "cannot migrate the {backend} database schema: {source}; if the database was migrated by \
         a newer or modified Warden, restore it from backup or point Warden at a fresh database"
    )]
    Migrate {
        /// `"sqlite"` or `"postgres"`.
        backend: &'static str,
        /// What sqlx reported.
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// An input value was rejected before reaching the database.
    #[error("invalid {field} {value:?}: {rule}")]
    Invalid {
        /// Which input, e.g. `"organization slug"`.
        field: &'static str,
        /// The rejected value, as given.
        value: String,
        /// The rule it broke, phrased as what to do instead.
        rule: &'static str,
    },

    /// A record with this unique key already exists.
    #[error("{entity} with {field} {value:?} already exists; {hint}")]
    Conflict {
        /// E.g. `"an organization"`.
        entity: &'static str,
        /// The unique column, e.g. `"slug"`.
        field: &'static str,
        /// The clashing value.
        value: String,
        /// What to do about it.
        hint: &'static str,
    },

    /// A record this operation refers to does not exist.
    #[error("no {entity} with id {id}; create it first or check the id")]
    NotFound {
        /// E.g. `"organization"`.
        entity: &'static str,
        /// The id that was looked up.
        id: String,
    },

    /// A stored row could not be turned into a domain value: the database was
    /// edited outside Warden or by an incompatible version.
    #[error(
        "stored {entity} row is invalid ({detail}); the database was changed outside Warden, \
         restore it from backup"
    )]
    Corrupt {
        /// Which kind of row.
        entity: &'static str,
        /// What was wrong with it.
        detail: String,
    },

    /// Any other database failure (I/O, lost connection, pool timeout, ...).
    #[error("database operation failed: {0}; check that the database is reachable and not full")]
    Database(#[from] sqlx::Error),
    /// The same, from a path that drives SQLite directly (the audit appender).
    #[error("database operation failed: {0}; check that the database is reachable and not full")]
    Sqlite(String),
}

/// The constraint kind behind a database error, if any.
pub(crate) fn violation(err: &sqlx::Error) -> Option<ErrorKind> {
    match err {
        sqlx::Error::Database(db) => Some(db.kind()),
        _ => None,
    }
}
