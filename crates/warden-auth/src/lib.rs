//! Warden's authentication stage: who is calling.
//!
//! Pipeline position: after transport, before authorization. The edge hands this crate a
//! bearer (or a login form's fields) and gets back a [`principal::Principal`] or a typed
//! refusal; it never sees a stored secret, and this crate never sees HTTP.

#![forbid(unsafe_code)]

pub mod cimd;
pub mod confirm;
pub mod consent;
pub mod console;
pub mod limiter;
pub mod password;
pub mod pkce;
pub mod principal;
pub mod rate;
pub mod registration;
pub mod server;
pub mod sso;
pub mod token;

pub use principal::AuthMethod;
pub use server::AuthServer;
