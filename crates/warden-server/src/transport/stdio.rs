//! Transport, stdio layer: MCP over standard input and output for local clients. Logs go to
//! standard error; standard output carries only protocol messages.

use rmcp::ServiceExt;
use warden_core::pipeline::{LivePipeline, Source};

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("the client did not complete the MCP handshake: {0}")]
    Handshake(String),
    #[error("the stdio session ended abnormally: {0}")]
    Session(String),
}

/// Serves one client on stdin/stdout until it disconnects. With `key`, every request is
/// made as that API key's owner, re-checked each time.
pub async fn serve_stdio(
    pipeline: LivePipeline,
    key: Option<super::mcp::StdioKey>,
) -> Result<(), StdioError> {
    let mut handler = super::mcp::handler_for(pipeline, Source::Stdio);
    if let Some(key) = key {
        handler = handler.with_stdio_key(key);
    }
    let running = handler
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| StdioError::Handshake(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| StdioError::Session(e.to_string()))?;
    Ok(())
}
