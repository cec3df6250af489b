//! Requested resource URIs are matched against templates: a matched value never spans `/`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let (template, uri) = s.split_once('\n').unwrap_or((s, s));
        if let Ok(t) = warden_core::project::uri_template::UriTemplate::parse(template)
            && let Some(vars) = t.matches(uri)
        {
            for (_, v) in vars {
                assert!(!v.is_empty() && !v.contains('/'));
            }
        }
    }
});
