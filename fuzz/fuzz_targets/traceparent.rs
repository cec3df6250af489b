//! The `traceparent` header is attacker-controlled; what it yields ends up in the audit
//! trail, so only 32 lowercase hex digits (not all zero) may come out.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data)
        && let Some(id) = warden_server::transport::trace::trace_id(header)
    {
        assert_eq!(id.len(), 32, "{header:?}");
        assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(id.bytes().any(|b| b != b'0'));
        assert!(header.contains(&id));
    }
});
