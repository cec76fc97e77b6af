//! Property tests: random statement text through the splitter, KalamDB's parser and
//! DataFusion's parser never panics. (Coverage-guided fuzzing of the same entry points:
//! fuzz/, see docs/TESTING.md.)

use datafusion::sql::parser::DFParserBuilder;
use proptest::prelude::*;
use sqlparser::dialect::GenericDialect;

use crate::statement::parser::parse_kalam_statement;
use crate::statement::split::split_statements;

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "CREATE",
            "USER",
            "SHARED",
            "STREAM",
            "TABLE",
            "NAMESPACE",
            "DROP",
            "ALTER",
            "ADD",
            "COLUMN",
            "SELECT",
            "INSERT",
            "INTO",
            "VALUES",
            "UPDATE",
            "SET",
            "DELETE",
            "FROM",
            "WHERE",
            "EXECUTE",
            "AS",
            "STORAGE",
            "FLUSH",
            "ALL",
            "IN",
            "WAIT",
            "KILL",
            "JOB",
            "WITH",
            "PASSWORD",
            "ROLE",
            "PRIMARY",
            "KEY",
            "NOT",
            "NULL",
            "DEFAULT",
            "NOW()",
            "SNOWFLAKE_ID()",
            "BIGINT",
            "TEXT",
            "DECIMAL",
            "TIMESTAMP",
            "IF",
            "EXISTS",
            "CASCADE",
            "SHOW",
            "TABLES",
            "DESCRIBE",
            "(",
            ")",
            ",",
            ";",
            ".",
            "=",
            "+",
            "-",
            "*",
            "/",
            "'",
            "\"",
            "--",
            "/*",
            "*/",
            "$1",
            "AND",
            "OR",
        ])
        .prop_map(|s| s.to_string()),
        "[a-z_][a-z0-9_]{0,8}",
        "'[^']{0,8}'",
        "[0-9]{1,12}",
        "\\PC{0,3}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_statements_never_panic(tokens in proptest::collection::vec(token(), 0..40)) {
        let sql = tokens.join(" ");
        for stmt in split_statements(&sql) {
            let _ = parse_kalam_statement(stmt);
            let _ = DFParserBuilder::new(stmt)
                .with_dialect(&GenericDialect {})
                .with_recursion_limit(50)
                .build()
                .and_then(|mut p| p.parse_statements());
        }
    }

    #[test]
    fn arbitrary_text_never_panics(sql in "\\PC{0,200}") {
        for stmt in split_statements(&sql) {
            let _ = parse_kalam_statement(stmt);
        }
    }
}
