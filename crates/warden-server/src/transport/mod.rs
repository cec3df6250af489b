//! Transport: the first stage of the pipeline. Turns bytes on the wire (HTTP or stdio) into
//! MCP requests, checks Origin, Host, body shape and whose MCP session a request names, and
//! hands each request to the pipeline, asking it (never deciding itself) whether a
//! principal may connect and whether a connection's scopes cover a tool.

pub mod http;
pub mod mcp;
pub mod session;
pub mod stdio;
pub mod tasks;
pub mod trace;
