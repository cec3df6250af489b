//! Warden's domain: the project file, the call pipeline, and tool execution.
//!
//! This crate knows nothing about MCP, HTTP, JSON-RPC, rmcp or axum. The edge
//! (`warden-server`) turns wire requests into the plain types here and turns the results
//! back into wire responses.

#![forbid(unsafe_code)]

pub mod audit;
pub mod authz;
pub mod confirm;
pub mod exec;
pub mod files;
pub mod identity;
pub mod pipeline;
pub mod policy;
pub mod project;
pub mod tables;
