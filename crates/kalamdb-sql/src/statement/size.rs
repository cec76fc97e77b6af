//! The caps a statement's tokens are held to before any syntax tree is built (deep
//! expressions are walked recursively by the planner; huge ones take seconds to parse).

use kalamdb_core::{Error, Result};
use sqlparser::tokenizer::Token;

/// Most operators one expression may stack (counted on the tokens: see
/// `check_statement_size`). A long chain like `1+1+...+1` parses iteratively but becomes a
/// tree as deep as the chain, which the planner, optimizer and even dropping the syntax tree
/// walk recursively (a stack overflow kills the process), and whose planning time grows
/// quadratically (4000 operators: ~50 s in a debug build). Bound it before any of that runs.
/// Items apart (IN lists, VALUES rows, select lists) do not stack and are not limited by this.
pub const MAX_OPERATORS_PER_STATEMENT: usize = 1_000;

/// Most tokens (words, literals, punctuation) one statement may have. Its syntax tree takes
/// about 500 bytes per token, built before anything else can look at it: 400,000 UNION ALL
/// branches (9.5 MB) grew the server by 5.8 GB, 2 M `concat` arguments by 2 GB. Literal
/// INSERTs are written without a syntax tree and are not limited by this.
pub const MAX_TOKENS_PER_STATEMENT: usize = 500_000;

/// Operators, tokens and SELECTs of a statement, counted on its tokens before it is parsed:
/// the planning caps that need the syntax tree (crate::statement::syntax) come too late for a statement
/// whose tree alone is too large.
// long: one pass over the tokens with its per-parenthesis counters, which are local to it.
pub(crate) fn check_statement_size<'a>(tokens: impl Iterator<Item = &'a Token>) -> Result<()> {
    // The operators that can stack into one expression tree: those of one item (between
    // commas) at each parenthesis level, plus the deepest parenthesized operand inside it.
    // Items apart (`VALUES (1.5 + 1), (1.5 + 1), ...`, select lists, IN lists) do not stack:
    // 1,001 such rows were refused as 1,001 operators.
    #[derive(Default)]
    struct Level {
        operators: usize,
        deepest_operand: usize,
        /// The deepest item before the last comma.
        deepest_item: usize,
    }
    let mut levels = vec![Level::default()];
    let mut n = 0usize;
    let mut count = 0usize;
    let mut selects = 0usize;
    // A sign right after `(` or `,` is a literal's sign (`VALUES (-1), (-2)`), not a link in a
    // chain: it does not count, so a batched INSERT of negative numbers is not refused. Signs
    // after an operator (`- - - 1`) still count.
    let mut after_open_or_comma = true;
    for t in tokens {
        let operator = match t {
            Token::Whitespace(_) => continue,
            Token::Plus | Token::Minus => !after_open_or_comma,
            Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::Eq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Ampersand
            | Token::Pipe
            | Token::Caret => true,
            Token::Word(w) => {
                selects +=
                    (w.quote_style.is_none() && w.value.eq_ignore_ascii_case("select")) as usize;
                w.quote_style.is_none()
                    && (w.value.eq_ignore_ascii_case("and") || w.value.eq_ignore_ascii_case("or"))
            }
            _ => false,
        };
        count += 1;
        after_open_or_comma = matches!(t, Token::LParen | Token::Comma);
        if let Some(level) = levels.last_mut() {
            level.operators += operator as usize;
            n = n.max(level.operators + level.deepest_operand);
        }
        match t {
            Token::LParen => levels.push(Level::default()),
            Token::RParen if levels.len() > 1 => {
                if let Some(inner) = levels.pop() {
                    let depth = inner
                        .deepest_item
                        .max(inner.operators + inner.deepest_operand);
                    if let Some(outer) = levels.last_mut() {
                        outer.deepest_operand = outer.deepest_operand.max(depth);
                    }
                }
            }
            Token::Comma => {
                if let Some(level) = levels.last_mut() {
                    let item = level.operators + level.deepest_operand;
                    *level = Level {
                        deepest_item: level.deepest_item.max(item),
                        ..Level::default()
                    };
                }
            }
            _ => {}
        }
    }
    if n > MAX_OPERATORS_PER_STATEMENT {
        return Err(Error::invalid_sql(format!(
            "an expression of the statement has {n} operators in a row; at most {MAX_OPERATORS_PER_STATEMENT} are allowed"
        )));
    }
    if count > MAX_TOKENS_PER_STATEMENT {
        return Err(Error::invalid_sql(format!(
            "the statement has {count} tokens; at most {MAX_TOKENS_PER_STATEMENT} are allowed (split it into several statements)"
        )));
    }
    if selects > crate::statement::syntax::MAX_SELECTS {
        return Err(Error::invalid_sql(format!(
            "the statement has {selects} SELECTs (UNION branches, subqueries); at most {} are allowed",
            crate::statement::syntax::MAX_SELECTS
        )));
    }
    Ok(())
}
