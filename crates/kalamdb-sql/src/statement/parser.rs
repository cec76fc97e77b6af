//! KalamDB's own statements, parsed from sqlparser's tokens.
//!
//! [`parse_kalam_statement`] recognises namespaces, typed CREATE TABLE, ALTER/DROP/SHOW/
//! DESCRIBE TABLE, users, EXECUTE AS and the storage/job commands, and returns `None` for
//! everything else (queries and DML), which goes to DataFusion's SQL planner.

use kalamdb_core::{DataType, Error, Result, Role, TableKind};
use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

pub(crate) use super::ast::*;
use super::cursor::Cursor;
use super::size::check_statement_size;

/// First words that can start a KalamDB statement (a superset: the full check is below).
const KALAM_FIRST_WORDS: &[&str] = &[
    "CREATE", "DROP", "SHOW", "ALTER", "DESCRIBE", "DESC", "EXECUTE", "STORAGE", "KILL",
];

/// Tokenize `sql` (one statement) and parse it if it is a KalamDB statement; otherwise hand
/// back the tokens so the SQL text is tokenized only once.
pub fn parse_statement(sql: &str) -> Result<Parsed> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| Error::invalid_sql(e.to_string()))?;
    check_statement_size(tokens.iter().map(|t| &t.token))?;
    let first = tokens
        .iter()
        .find(|t| !matches!(t.token, Token::Whitespace(_)));
    let maybe_kalam = matches!(first, Some(TokenWithSpan { token: Token::Word(w), .. })
        if w.quote_style.is_none() && KALAM_FIRST_WORDS.iter().any(|k| w.value.eq_ignore_ascii_case(k)));
    if !maybe_kalam {
        return Ok(Parsed::Sql(tokens));
    }
    match parse_kalam_tokens(tokens.iter().map(|t| t.token.clone()).collect(), sql)? {
        Some(stmt) => Ok(Parsed::Kalam(stmt)),
        None => Ok(Parsed::Sql(tokens)),
    }
}

/// Parse `sql` (one statement) if it is a KalamDB statement.
pub fn parse_kalam_statement(sql: &str) -> Result<Option<KalamStatement>> {
    match parse_statement(sql)? {
        Parsed::Kalam(stmt) => Ok(Some(stmt)),
        Parsed::Sql(_) => Ok(None),
    }
}

fn parse_kalam_tokens(tokens: Vec<Token>, sql: &str) -> Result<Option<KalamStatement>> {
    let mut c = Cursor::new(tokens);
    let first = c.peek_word_upper();
    let second = c.peek_word_upper_at(1);
    let stmt = match (first.as_deref(), second.as_deref()) {
        (Some("CREATE"), Some("NAMESPACE")) => parse_create_namespace(&mut c)?,
        (Some("DROP"), Some("NAMESPACE")) => parse_drop_namespace(&mut c)?,
        (Some("SHOW"), Some("NAMESPACES")) => {
            c.advance(2);
            KalamStatement::ShowNamespaces
        }
        (Some("CREATE"), Some("TABLE" | "SHARED" | "STREAM")) => parse_create_table(&mut c)?,
        (Some("CREATE"), Some("USER")) if c.peek_word_upper_at(2).as_deref() == Some("TABLE") => {
            parse_create_table(&mut c)?
        }
        (Some("CREATE"), Some("USER")) => parse_create_user(&mut c)?,
        (Some("ALTER"), Some("TABLE")) => parse_alter_table(&mut c)?,
        (Some("ALTER"), Some("USER")) => parse_alter_user(&mut c)?,
        (Some("DROP"), Some("TABLE")) => parse_drop_table(&mut c)?,
        (Some("DROP"), Some("USER")) => parse_drop_user(&mut c)?,
        (Some("SHOW"), Some("TABLES")) => parse_show_tables(&mut c)?,
        (Some("SHOW"), Some("FUNCTIONS")) => {
            c.advance(2);
            KalamStatement::ShowFunctions
        }
        (Some("DESCRIBE" | "DESC"), _) => parse_describe(&mut c)?,
        (Some("EXECUTE"), Some("AS")) => parse_execute_as(&mut c, sql)?,
        (Some("STORAGE"), _) => parse_storage(&mut c)?,
        (Some("KILL"), Some("JOB")) => {
            c.advance(2);
            KalamStatement::KillJob {
                job_id: c.string_or_word("a job id")?,
            }
        }
        _ => return Ok(None),
    };
    c.expect_end()?;
    Ok(Some(stmt))
}

fn parse_storage(c: &mut Cursor) -> Result<KalamStatement> {
    c.expect_kw("STORAGE")?;
    c.expect_kw("FLUSH")?;
    if c.eat_kw("ALL") {
        let namespace = if c.eat_kw("IN") {
            Some(c.ident("a namespace name")?)
        } else {
            None
        };
        let wait = c.eat_kw("WAIT");
        return Ok(KalamStatement::FlushAll { namespace, wait });
    }
    c.expect_kw("TABLE")?;
    let table = c.table_name()?;
    let wait = c.eat_kw("WAIT");
    Ok(KalamStatement::FlushTable { table, wait })
}

fn parse_create_namespace(c: &mut Cursor) -> Result<KalamStatement> {
    c.advance(2);
    let if_not_exists = c.eat_kws(&["IF", "NOT", "EXISTS"]);
    let name = c.ident("a namespace name")?;
    Ok(KalamStatement::CreateNamespace {
        name,
        if_not_exists,
    })
}

fn parse_drop_namespace(c: &mut Cursor) -> Result<KalamStatement> {
    c.advance(2);
    let if_exists = c.eat_kws(&["IF", "EXISTS"]);
    let name = c.ident("a namespace name")?;
    let cascade = c.eat_kw("CASCADE");
    Ok(KalamStatement::DropNamespace {
        name,
        if_exists,
        cascade,
    })
}

// long: the grammar of CREATE TABLE, clause after clause, as it reads.
fn parse_create_table(c: &mut Cursor) -> Result<KalamStatement> {
    c.expect_kw("CREATE")?;
    let kind = if c.eat_kw("USER") {
        TableKind::User
    } else if c.eat_kw("SHARED") {
        TableKind::Shared
    } else if c.eat_kw("STREAM") {
        TableKind::Stream
    } else {
        TableKind::Shared
    };
    c.expect_kw("TABLE")?;
    let if_not_exists = c.eat_kws(&["IF", "NOT", "EXISTS"]);
    let table = c.table_name()?;
    if c.is_kw("AS") {
        return Err(Error::Unsupported(
            "CREATE TABLE ... AS SELECT is not supported; create the table, then INSERT ... SELECT"
                .into(),
        ));
    }
    c.expect(&Token::LParen)?;
    let mut columns = Vec::new();
    let mut primary_key = None;
    loop {
        if c.eat_kws(&["PRIMARY", "KEY"]) {
            c.expect(&Token::LParen)?;
            let col = c.ident("a column name")?;
            if c.eat(&Token::Comma) {
                return Err(Error::Unsupported(
                    "composite primary keys are not supported".into(),
                ));
            }
            c.expect(&Token::RParen)?;
            if primary_key.replace(col).is_some() {
                return Err(Error::invalid_sql("more than one PRIMARY KEY clause"));
            }
        } else if c.is_kw("CONSTRAINT")
            || c.is_kw("UNIQUE")
            || c.is_kw("FOREIGN")
            || c.is_kw("CHECK")
        {
            return Err(Error::Unsupported(format!(
                "table constraint {} is not supported",
                c.found()
            )));
        } else {
            columns.push(parse_column(c)?);
        }
        if c.eat(&Token::Comma) {
            continue;
        }
        c.expect(&Token::RParen)?;
        break;
    }
    let mut options = Vec::new();
    if c.eat_kw("WITH") {
        c.expect(&Token::LParen)?;
        loop {
            let key = c.ident("an option name")?.to_ascii_uppercase();
            c.expect(&Token::Eq)?;
            let value = match c.peek() {
                Some(Token::SingleQuotedString(s)) => s.clone(),
                Some(Token::Number(n, _)) => n.clone(),
                Some(Token::Word(w)) => w.value.clone(),
                _ => return c.error("an option value"),
            };
            c.advance(1);
            options.push((key, value));
            if c.eat(&Token::Comma) {
                continue;
            }
            c.expect(&Token::RParen)?;
            break;
        }
    }
    Ok(KalamStatement::CreateTable(CreateTable {
        kind,
        if_not_exists,
        table,
        columns,
        primary_key,
        options,
    }))
}

/// Words that may continue a multi-word type name.
const TYPE_CONTINUATIONS: &[&str] = &["PRECISION", "WITH", "WITHOUT", "TIME", "ZONE", "VARYING"];

fn parse_column(c: &mut Cursor) -> Result<ColumnSpec> {
    let name = c.ident("a column name")?;
    let Some(first) = c.peek_word_upper() else {
        return c.error("a column type");
    };
    c.advance(1);
    let mut words = vec![first];
    while let Some(w) = c.peek_word_upper() {
        // `TIMESTAMP WITH TIME ZONE` etc.; stop before column options such as NOT/DEFAULT.
        if TYPE_CONTINUATIONS.contains(&w.as_str()) {
            words.push(w);
            c.advance(1);
        } else {
            break;
        }
    }
    let mut args = Vec::new();
    if c.eat(&Token::LParen) {
        loop {
            args.push(c.number("a type argument")?);
            if c.eat(&Token::Comma) {
                continue;
            }
            c.expect(&Token::RParen)?;
            break;
        }
    }
    if c.peek() == Some(&Token::LBracket) || c.peek_word_upper().as_deref() == Some("ARRAY") {
        return Err(Error::Unsupported(format!(
            "array column types ({}[]) are not supported; store a JSON column instead",
            words.join(" ")
        )));
    }
    let data_type = DataType::from_sql(&words, &args).map_err(Error::Unsupported)?;
    let mut spec = ColumnSpec {
        name,
        data_type,
        not_null: false,
        primary_key: false,
        default: None,
    };
    let (mut said_null, mut said_not_null) = (false, false);
    loop {
        if c.eat_kws(&["NOT", "NULL"]) {
            spec.not_null = true;
            said_not_null = true;
        } else if c.eat_kw("NULL") {
            // Allowed with PRIMARY KEY (the key stays NOT NULL), as in PostgreSQL.
            said_null = true;
        } else if c.eat_kws(&["PRIMARY", "KEY"]) {
            spec.primary_key = true;
        } else if c.eat_kw("DEFAULT") {
            spec.default = Some(parse_default(c)?);
        } else if c.is_kw("UNIQUE") || c.is_kw("REFERENCES") || c.is_kw("CHECK") {
            return Err(Error::Unsupported(format!(
                "column constraint {} is not supported",
                c.found()
            )));
        } else {
            break;
        }
        if said_null && said_not_null {
            return Err(Error::invalid_sql(format!(
                "conflicting NULL/NOT NULL declarations for column '{}'",
                spec.name
            )));
        }
    }
    Ok(spec)
}

/// The bytes of an `X'...'` literal: an even number of hex digits.
fn hex_bytes(h: &str) -> Result<Vec<u8>> {
    if h.len() % 2 != 0 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::TypeMismatch(format!(
            "X'{}' is not a BYTEA literal: it needs an even number of hex digits",
            kalamdb_core::truncate_for_message(h)
        )));
    }
    Ok((0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap_or(0))
        .collect())
}

fn parse_default(c: &mut Cursor) -> Result<DefaultSpec> {
    let call = |c: &mut Cursor| -> Result<()> {
        if c.eat(&Token::LParen) {
            c.expect(&Token::RParen)?;
        }
        Ok(())
    };
    if let Some(w) = c.peek_word_upper() {
        c.advance(1);
        return match w.as_str() {
            "NOW" | "CURRENT_TIMESTAMP" => {
                call(c)?;
                Ok(DefaultSpec::Now)
            }
            "SNOWFLAKE_ID" => {
                call(c)?;
                Ok(DefaultSpec::SnowflakeId)
            }
            "UUID_V7" => {
                call(c)?;
                Ok(DefaultSpec::UuidV7)
            }
            "NULL" => Ok(DefaultSpec::Null),
            "TRUE" | "FALSE" => Ok(DefaultSpec::Literal(w.to_lowercase())),
            _ => Err(Error::Unsupported(format!(
                "DEFAULT {w} is not supported; use a literal, NOW(), SNOWFLAKE_ID() or UUID_V7()"
            ))),
        };
    }
    let negative = c.eat(&Token::Minus);
    match c.peek().cloned() {
        Some(Token::Number(n, _)) => {
            c.advance(1);
            Ok(DefaultSpec::Literal(if negative {
                format!("-{n}")
            } else {
                n
            }))
        }
        Some(Token::SingleQuotedString(s)) if !negative => {
            c.advance(1);
            Ok(DefaultSpec::Literal(s))
        }
        Some(Token::HexStringLiteral(h)) if !negative => {
            c.advance(1);
            Ok(DefaultSpec::Bytes(hex_bytes(&h)?))
        }
        _ => c.error("a DEFAULT value"),
    }
}

fn parse_alter_table(c: &mut Cursor) -> Result<KalamStatement> {
    c.advance(2);
    let table = c.table_name()?;
    let op = if c.eat_kw("ADD") {
        c.eat_kw("COLUMN");
        let if_not_exists = c.eat_kws(&["IF", "NOT", "EXISTS"]);
        let spec = parse_column(c)?;
        AlterTableOp::AddColumn {
            spec,
            if_not_exists,
        }
    } else if c.eat_kw("DROP") {
        c.eat_kw("COLUMN");
        let if_exists = c.eat_kws(&["IF", "EXISTS"]);
        let name = c.ident("a column name")?;
        AlterTableOp::DropColumn { name, if_exists }
    } else {
        return Err(Error::Unsupported(format!(
            "ALTER TABLE supports ADD COLUMN and DROP COLUMN; found {}",
            c.found()
        )));
    };
    Ok(KalamStatement::AlterTable { table, op })
}

fn parse_drop_table(c: &mut Cursor) -> Result<KalamStatement> {
    c.advance(2);
    let if_exists = c.eat_kws(&["IF", "EXISTS"]);
    let table = c.table_name()?;
    Ok(KalamStatement::DropTable { table, if_exists })
}

fn parse_show_tables(c: &mut Cursor) -> Result<KalamStatement> {
    c.advance(2);
    let namespace = if c.eat_kw("IN") || c.eat_kw("FROM") {
        Some(c.ident("a namespace name")?)
    } else {
        None
    };
    Ok(KalamStatement::ShowTables { namespace })
}

fn parse_describe(c: &mut Cursor) -> Result<KalamStatement> {
    c.advance(1);
    c.eat_kw("TABLE");
    let table = c.table_name()?;
    Ok(KalamStatement::DescribeTable { table })
}

fn parse_create_user(c: &mut Cursor) -> Result<KalamStatement> {
    c.advance(2);
    let if_not_exists = c.eat_kws(&["IF", "NOT", "EXISTS"]);
    let user_id = c.string_or_word("a user name")?;
    let password = if c.eat_kw("WITH") {
        c.expect_kw("PASSWORD")?;
        Some(c.string("a password in quotes")?)
    } else {
        None
    };
    let role = if c.eat_kw("ROLE") {
        c.string_or_word("a role")?.parse::<Role>()?
    } else {
        Role::User
    };
    Ok(KalamStatement::CreateUser {
        user_id,
        password,
        role,
        if_not_exists,
    })
}

fn parse_alter_user(c: &mut Cursor) -> Result<KalamStatement> {
    c.advance(2);
    let user_id = c.string_or_word("a user name")?;
    c.expect_kw("SET")?;
    let op = if c.eat_kw("PASSWORD") {
        AlterUserOp::Password(c.string("a password in quotes")?)
    } else if c.eat_kw("ROLE") {
        AlterUserOp::Role(c.string_or_word("a role")?.parse::<Role>()?)
    } else {
        return c.error("PASSWORD or ROLE");
    };
    Ok(KalamStatement::AlterUser { user_id, op })
}

fn parse_drop_user(c: &mut Cursor) -> Result<KalamStatement> {
    c.advance(2);
    let if_exists = c.eat_kws(&["IF", "EXISTS"]);
    let user_id = c.string_or_word("a user name")?;
    Ok(KalamStatement::DropUser { user_id, if_exists })
}

/// `EXECUTE AS USER 'u' ( <statement> )`. The inner statement is taken from the text between
/// the first '(' after the user name and the statement's final ')'.
fn parse_execute_as(c: &mut Cursor, sql: &str) -> Result<KalamStatement> {
    c.advance(2);
    c.expect_kw("USER")?;
    let user_id = c.string_or_word("a user name")?;
    if c.peek() != Some(&Token::LParen) {
        return c.error("'(' and a statement");
    }
    // No account has a name outside [A-Za-z0-9_.@-] (quotes included: 'a'' OR 1=1'), so such a
    // name is an unknown user, as any other.
    if !user_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
    {
        return Err(Error::InvalidParameter(format!(
            "user '{}' does not exist",
            kalamdb_core::truncate_for_message(&user_id)
        )));
    }
    // Locate the parenthesised body in the original text: the user name is quoted or a plain
    // word and cannot contain '(' (user ids are [A-Za-z0-9_.@-]), so the first '(' after it
    // opens the body.
    let after_user = sql
        .find(&user_id)
        .map(|i| i + user_id.len())
        .ok_or_else(|| Error::invalid_sql("cannot locate the user name in EXECUTE AS"))?;
    let open = sql[after_user..]
        .find('(')
        .map(|i| after_user + i)
        .ok_or_else(|| Error::invalid_sql("expected '(' after EXECUTE AS USER"))?;
    let trimmed = sql.trim_end().trim_end_matches(';').trim_end();
    if !trimmed.ends_with(')') || trimmed.len() <= open + 1 {
        return Err(Error::invalid_sql("EXECUTE AS USER body must end with ')'"));
    }
    let statement = trimmed[open + 1..trimmed.len() - 1].trim().to_string();
    if statement.is_empty() {
        return Err(Error::invalid_sql("EXECUTE AS USER needs a statement"));
    }
    // The body has been taken from the text; skip its tokens.
    c.pos = c.tokens.len();
    Ok(KalamStatement::ExecuteAs { user_id, statement })
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
