//! Bearer tokens are routed by their prefix before any lookup: never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = warden_auth::token::TokenKind::of(s);
        let _ = warden_auth::token::TokenHash::of(s);
    }
});
