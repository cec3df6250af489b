//! The placeholder compiler: never panics, and positional output only ever replaces names.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(sql) = std::str::from_utf8(data) {
        for dialect in [warden_core::project::Dialect::Sqlite, warden_core::project::Dialect::Postgres] {
            if let Ok(stmt) = warden_core::exec::sql::compile(sql, dialect) {
                assert!(stmt.text.len() <= sql.len() + 8 * stmt.names.len().max(1) + 8);
            }
        }
    }
});
