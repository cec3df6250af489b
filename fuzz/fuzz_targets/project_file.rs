//! The project loader reports errors for any input; it never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = warden_core::project::load_str(text, std::path::Path::new("fuzz.yaml"), |_| None);
    }
});
