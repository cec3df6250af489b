//! An audit export file (the console's one-file bundle, or what `warden audit verify
//! --export` is handed) is read and checked against a fixed key: never panic, and nothing
//! not signed by that key verifies.
#![no_main]

use warden_store::audit::Verifier;
use warden_store::audit::export::{self, ExportVerdict};

/// RFC 8032's first Ed25519 test key: a fuzzer cannot forge a signature by it, so whatever
/// the input, no manifest in it is signed by the anchor.
const ANCHOR: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parts) = export::parse_bundle(text) else {
        return;
    };
    let Ok(anchor) = Verifier::from_hex(ANCHOR) else {
        return;
    };
    if let Ok(ExportVerdict::Checked { reports, .. }) = export::verify(&parts, anchor) {
        panic!("an export not signed by the anchor verified: {reports:?}");
    }
});
