//! Tests of the literal INSERT readers: each held to the next reader's answer.
use super::*;
use proptest::prelude::*;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::TokenWithSpan;
use sqlparser::tokenizer::Tokenizer;

/// The tokens, or none when the tokenizer refuses the text (then nothing is taken).
fn tokens(sql: &str) -> Vec<TokenWithSpan> {
    Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .unwrap_or_default()
}

/// (table name parts, column names, width, literals) as the planner would see them.
type Shape = (Vec<String>, Vec<Vec<String>>, usize, Option<Vec<String>>);

fn shape(r: &LiteralRows<'_>) -> Shape {
    (
        name_parts(&r.name).unwrap(),
        r.columns.iter().map(|c| name_parts(c).unwrap()).collect(),
        r.width,
        r.values
            .as_ref()
            .map(|v| v.iter().map(|l| format!("{l:?}")).collect()),
    )
}

/// What the parser path writes without planning (`None`: planned).
fn via_ast(sql: &str) -> Option<Shape> {
    let stmts = Parser::parse_sql(&GenericDialect {}, sql).ok()?;
    let [sqlparser::ast::Statement::Insert(insert)] = stmts.as_slice() else {
        return None;
    };
    from_ast(insert)
        .map(|r| shape(&r))
        .filter(|s| s.3.is_some())
}

fn via_tokens(sql: &str) -> Option<Shape> {
    let t = tokens(sql);
    from_tokens(&t).map(|r| shape(&r))
}

fn via_text(sql: &str) -> Option<Shape> {
    from_text(sql).map(|r| shape(&r))
}

#[test]
fn literal_inserts_read_from_tokens_as_the_parser_reads_them() {
    for sql in [
        "INSERT INTO t VALUES (1, 'a', NULL, TRUE, false, -2, 1.5, -0.25, 1e3)",
        "insert into NS.\"Mixed\" (id, \"Body\", data, value) values (1,'x''y',null,-9223372036854775807);",
        "INSERT INTO t (a) VALUES (1), (2), (3)",
        "INSERT\n\tINTO t VALUES ( 'multi\nline' , - 5 )",
    ] {
        let expected = via_ast(sql);
        assert!(expected.is_some(), "{sql}: the parser path takes it");
        assert_eq!(via_tokens(sql), expected, "{sql}");
        if !sql.contains("''") {
            assert_eq!(via_text(sql), expected, "{sql}");
        } else {
            assert_eq!(via_text(sql), None, "{sql}: escaped quotes are left to the tokenizer");
        }
    }
}

#[test]
fn anything_but_the_exact_shape_is_left_to_the_parser() {
    for sql in [
        "INSERT INTO t VALUES (1) -- trailing comment",
        "INSERT /*+ hint */ INTO t VALUES (1)",
        "INSERT INTO TABLE t VALUES (1)",
        "INSERT INTO local VALUES (1)",
        "INSERT INTO Directory VALUES (1)",
        "INSERT INTO local.t VALUES (1)",
        "INSERT INTO ns ._t VALUES (1)",
        "INSERT INTO t (SELECT 1)",
        "INSERT INTO t DEFAULT VALUES",
        "INSERT INTO t VALUES (1) RETURNING *",
        "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING",
        "INSERT INTO t VALUES (+5)",
        "INSERT INTO t VALUES (TIMESTAMP '2024-01-01 00:00:00')",
        "INSERT INTO t VALUES ('a' 'b')",
        "INSERT INTO t VALUES ('1'::int)",
        "INSERT INTO t VALUES (1), (1, 2)",
        "INSERT INTO t VALUE (1)",
        "INSERT INTO t VALUES ()",
        "INSERT INTO t VALUES (1); SELECT 1",
        "INSERT INTO t VALUES (1 + 1)",
        "INSERT INTO t VALUES (- -1)",
        "INSERT INTO t VALUES (ROW(1))",
        "INSERT INTO t VALUES (DEFAULT)",
        "INSERT INTO t VALUES (1L)",
        "INSERT INTO t VALUES (E'x')",
        "INSERT INTO t VALUES (x'00')",
        "INSERT INTO t.c.d.e VALUES (1) extra",
        "INSERT INTO t (t.a) VALUES (1)",
        "INSERT INTO t AS x VALUES (1)",
        "INSERT OR REPLACE INTO t VALUES (1)",
        "INSERT INTO `t` VALUES (1)",
        "REPLACE INTO t VALUES (1)",
        "INSERT INTO t VALUES (?)",
        "INSERT INTO t VALUES ($1)",
    ] {
        assert_eq!(via_tokens(sql), None, "{sql}");
        assert_eq!(via_text(sql), None, "{sql}");
    }
    // Valid, but spaced around the dot: the tokenizer path takes them, the text reader not.
    for sql in [
        "INSERT INTO ns. t VALUES (1)",
        "INSERT INTO ns .t VALUES (1)",
    ] {
        assert!(
            via_tokens(sql).is_some() && via_text(sql).is_none(),
            "{sql}"
        );
    }
}

fn literal_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        (0u32..1000, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
        (0u32..100).prop_map(|a| format!("- {a}.5e1")),
        "[a-z' ]{0,6}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
        prop::sample::select(vec!["NULL", "null", "TRUE", "False"]).prop_map(String::from),
    ]
}

fn blank() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", " ", "  ", "\n", "\t "]).prop_map(String::from)
}

proptest! {
    /// Random literal INSERTs (case, spacing, quoting, row counts): the token reader takes
    /// exactly those the parser path writes without planning, with the same literals.
    #[test]
    fn the_token_reader_agrees_with_the_parser(
        quoted in any::<bool>(),
        upper in any::<bool>(),
        columns in prop::option::of(prop::collection::vec("[a-z][a-z0-9_]{0,5}", 1..4)),
        rows in prop::collection::vec(prop::collection::vec(literal_text(), 3), 1..5),
        b in blank(),
    ) {
        let name = if quoted { "\"Tbl\"".to_string() } else { "ns.tbl".to_string() };
        let cols = columns.map(|c| format!("({})", c.join(&format!(",{b}")))).unwrap_or_default();
        let rows: Vec<String> = rows.iter().map(|r| format!("({b}{}{b})", r.join(&format!("{b},")))).collect();
        let kw = |k: &str| if upper { k.to_uppercase() } else { k.to_lowercase() };
        let sql = format!("{} {} {name}{b}{cols} {}{b}{}", kw("insert"), kw("into"), kw("values"), rows.join(","));
        prop_assert_eq!(via_tokens(&sql), via_ast(&sql), "{}", sql);
        // The text reader takes all of these unless a string holds a quote.
        let text = via_text(&sql);
        if sql.matches('\'').count() % 2 == 0 && !sql.contains("''") {
            prop_assert!(text.is_some(), "{}", sql);
        }
        if text.is_some() {
            prop_assert_eq!(text, via_tokens(&sql), "{}", sql);
        }
    }

    /// Near-misses built from pieces the tokenizer treats specially: whatever the text
    /// reader accepts, the token reader accepts the same way.
    #[test]
    fn the_text_reader_never_disagrees_with_the_token_reader(
        pieces in prop::collection::vec(prop::sample::select(vec![
            "INSERT", "insert", "INTO", "into", "VALUES", "values", "t", "ns", ".", "\"Q\"", "\"a\"\"b\"", "(", ")", ",", ";",
            "1", "-", "- ", "1.5", "1.", ".5", "1e5", "1e", "1_0", "0x1F", "'s'", "''", "'a''b'", "'x\\y'", "'é'", "é", "NULL", "TRUE",
            "false", "--c\n", "/*c*/", "#", "@a", "a$", "$1", "?", "+", "::", "E'x'", "N'x'", "X'00'", "TABLE", "SELECT", "DEFAULT",
            " ", "\n", "\t", "", "local", "directory", "._t", "FUNCTION",
        ]), 0..24),
    ) {
        let sql = pieces.concat();
        let tokens = via_tokens(&sql);
        if let Some(text) = via_text(&sql) {
            prop_assert_eq!(Some(text), tokens.clone(), "{}", sql);
        }
        if tokens.is_some() {
            prop_assert_eq!(tokens, via_ast(&sql), "{}", sql);
        }
    }

    /// The same, on statements that are right but for one spliced piece.
    #[test]
    fn spliced_statements_never_disagree(
        at in 0usize..60,
        piece in prop::sample::select(vec!["'", "\"", "-", "--", "/*", "e", ".", "é", "#", "$", "''", "\\", "1", ",", "(", ")", " ", "x"]),
    ) {
        let base = "INSERT INTO ns.t (a, \"B\") VALUES (1, 'x'), (-2.5e3, NULL)";
        let at = at.min(base.len());
        let sql = format!("{}{piece}{}", &base[..at], &base[at..]);
        if let Some(text) = via_text(&sql) {
            prop_assert_eq!(Some(text), via_tokens(&sql), "{}", sql);
        }
    }
}
