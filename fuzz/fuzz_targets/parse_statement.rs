//! Any bytes as SQL: splitting and KalamDB's statement parser must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sql) = std::str::from_utf8(data) {
        for stmt in kalamdb_sql::split_statements(sql) {
            let _ = kalamdb_sql::parse_kalam_statement(stmt);
        }
    }
});
