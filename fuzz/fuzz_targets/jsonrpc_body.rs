//! Every `/mcp` POST body is checked before rmcp sees it: never panic, whatever the bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = warden_server::transport::http::check_jsonrpc(data);
});
