//! Warden's control-plane storage; not on the tool-data path.
//!
//! This crate holds who may use Warden: organizations, users and their
//! memberships (later grants, tokens and audit records). Authentication and
//! authorization read it; tool calls and their payloads never pass through it.
//!
//! # Layout
//! - [`model`]: the domain records ([`Organization`], [`User`], [`Membership`],
//!   [`Role`]) and the input rules checked before a write.
//! - `store`: [`Store`], one async API over SQLite and PostgreSQL (sqlx).
//!   Each query is written once and run on either backend's pool.
//! - [`error`]: [`StoreError`]; constraint violations arrive as
//!   [`StoreError::Conflict`] / [`StoreError::NotFound`], never as backend codes.
//! - `migrations/{sqlite,postgres}/`: the schema per backend, embedded at
//!   compile time and applied by [`Store::migrate`].
//!
//! # Invariants
//! - Knows nothing of HTTP, MCP or JSON-RPC.
//! - No SQL is assembled from strings; every value is a bound parameter.
//! - Timestamps are set by the application, in UTC, stored as unix
//!   milliseconds; ids are application-generated UUIDs stored as text.
//! - Emails are stored lowercased, so uniqueness ignores case.
//! - `Debug` never prints a password hash.

#![forbid(unsafe_code)]

pub mod error;
pub mod model;
mod store;

pub use error::StoreError;
pub use model::{Membership, OrgId, Organization, Role, UnknownRole, User, UserId};
pub use store::Store;
