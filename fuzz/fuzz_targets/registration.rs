//! Dynamic client registration bodies come from anyone: parse and validate without panicking.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(meta) = serde_json::from_slice::<warden_auth::registration::ClientMetadata>(data)
        && let Ok(accepted) = warden_auth::registration::validate(&meta)
    {
        for uri in &accepted.redirect_uris {
            assert!(warden_auth::registration::check_redirect_uri(uri).is_ok());
        }
    }
});
