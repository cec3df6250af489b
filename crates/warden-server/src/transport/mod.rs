//! Transport: the first stage of the pipeline. Turns bytes on the wire (HTTP or stdio) into
//! MCP requests, checks Origin, Host and body shape, and hands each request to the pipeline.

pub mod http;
pub mod mcp;
pub mod session;
pub mod stdio;
