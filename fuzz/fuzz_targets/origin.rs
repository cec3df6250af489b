//! The `Origin` header is attacker-controlled; only loopback and listed origins may pass.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(origin) = std::str::from_utf8(data) {
        let allowed = vec!["https://app.example.com".to_string()];
        if warden_server::transport::http::origin_allowed(origin, &allowed) {
            let o = origin.trim().to_ascii_lowercase();
            assert!(
                o == "https://app.example.com"
                    || o.starts_with("http://localhost")
                    || o.starts_with("https://localhost")
                    || o.starts_with("http://127.0.0.1")
                    || o.starts_with("https://127.0.0.1")
                    || o.starts_with("http://[::1]")
                    || o.starts_with("https://[::1]"),
                "accepted {origin:?}"
            );
        }
    }
});
