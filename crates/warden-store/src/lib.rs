//! Warden's control-plane storage; not on the tool-data path.
//!
//! This crate holds who may use Warden and how they proved it: organizations,
//! users and their memberships; OAuth clients, grants, authorization codes,
//! access and refresh tokens; API keys, browser sessions and magic links.
//! Authentication and authorization read it; tool calls and their payloads
//! never pass through it.
//!
//! # Layout
//! - [`model`]: the domain records ([`Organization`], [`User`], [`Membership`],
//!   [`Role`]) and the input rules checked before a write; [`model::identity`]:
//!   [`OAuthClient`], [`Grant`], [`ApiKey`], [`BrowserSession`], [`Scopes`]
//!   and the outcomes of redeeming a code or refresh token ([`CodeOutcome`],
//!   [`RotateOutcome`]).
//! - `store`: [`Store`], one async API over SQLite and PostgreSQL (sqlx).
//!   Each query is written once and run on either backend's pool; `store`
//!   itself has organizations and users, `store/oauth.rs` clients, grants,
//!   codes and tokens, `store/credentials.rs` API keys, sessions and magic
//!   links, `store/auth_failures.rs` the failure counters behind sign-in
//!   delays and lockouts.
//! - [`error`]: [`StoreError`]; constraint violations arrive as
//!   [`StoreError::Conflict`] / [`StoreError::NotFound`], never as backend codes.
//! - `migrations/{sqlite,postgres}/`: the schema per backend, embedded at
//!   compile time and applied by [`Store::migrate`]. `0001_init`:
//!   organizations, users, memberships. `0002_identity`: `oauth_clients`,
//!   `grants`, `auth_codes`, `access_tokens`, `refresh_tokens`, `api_keys`,
//!   `browser_sessions`, `magic_links`. `0009_auth_failures`: the failure
//!   counters (keys arrive as keyed hashes: no email or address in clear).
//!
//! # Invariants
//! - Knows nothing of HTTP, MCP, JSON-RPC or OAuth wire formats; it stores
//!   and answers, the authorization server decides.
//! - No SQL is assembled from strings; every value is a bound parameter.
//! - Timestamps are set by the application, in UTC, stored as unix
//!   milliseconds; ids are application-generated UUIDs stored as text.
//!   Every method whose outcome depends on the time takes `now`.
//! - Emails are stored lowercased, so uniqueness ignores case.
//! - Secrets never reach the store. Tokens, codes, API keys, sessions and
//!   magic links arrive as the lowercase hex SHA-256 of the raw value (a
//!   malformed hash is refused, so a raw token cannot be stored by mistake)
//!   and are only ever looked up by that hash; no record read back carries a
//!   hash. The raw values have 256 bits of entropy, so an indexed lookup by
//!   hash leaks nothing useful through timing.
//! - `Debug` never prints a password hash; a refused password hash, token
//!   hash or key prefix is never echoed in an error.
//! - A grant is the root of everything OAuth issued from it. A code or token
//!   works only while it, its grant and the grant's client are unrevoked;
//!   every check joins all three, so revoking the grant (or client) is
//!   immediate and final. Revocation also marks the tokens revoked and the
//!   codes used, in the same transaction.
//! - Resolving a credential never consults memberships or `users.disabled_at`:
//!   the caller re-checks the user's live membership on every request (API
//!   keys, sessions) or refresh (grants), so the store cannot go stale on it.
//! - Codes, refresh tokens, magic links and write confirmations are
//!   single-use, enforced by one conditional `UPDATE ... RETURNING` so that
//!   concurrent redemptions cannot both win. Presenting a used refresh token
//!   revokes its whole grant. Whether such an `UPDATE` changed a row is read
//!   from its `RETURNING` row, never from the affected-row count: on SQLite,
//!   sqlx can report a previous statement's count on the same connection.
//! - A failure counter changes only by one `INSERT ... ON CONFLICT DO UPDATE
//!   ... RETURNING` per statement, so concurrent failures from several
//!   instances are each counted once and exactly one of them sets the lock.
//! - A shared token bucket changes only by one such upsert that refills it and
//!   takes from it together, so concurrent takers never get more than it held.
//! - At most the capped number of never-used clients is registered, per address
//!   and in all (counted and inserted in one transaction holding a lock row).
//! - The audit trail (`audit`, `audit_*` tables): appends lock each chain's
//!   head row, so a chain's `seq` has no gaps or duplicates across processes.
//! - Operations of several statements run in one transaction; on SQLite it
//!   takes the write lock first (`BEGIN IMMEDIATE`).

#![forbid(unsafe_code)]

pub mod audit;
pub mod error;
pub mod jobs;
pub mod model;
mod store;

pub use error::StoreError;
pub use model::{
    ApiKey, ApiKeyId, BrowserSession, ClientId, CodeOutcome, Grant, GrantId, Membership,
    OAuthClient, OrgId, Organization, Role, RotateOutcome, Scope, Scopes, UnknownRole,
    UnknownScope, User, UserId, normalize_email, validate_slug,
};
pub use store::auth_failures::{FailureCount, FailureRule};
pub use store::bearer::PrincipalRow;
pub use store::confirm::Confirmation;
pub use store::rate_buckets::TakeOutcome;
pub use store::unused_clients::{ClientCap, Registration};
pub use store::{AuditSigner, Endorsement, FederatedIdentity, SsoFlow, Store, endorsement_message};
