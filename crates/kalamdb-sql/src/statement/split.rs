//! Splitting a request's SQL text into statements at top-level `;`.
//!
//! Semicolons inside string literals, quoted identifiers, comments and dollar-quoted bodies
//! do not split. Empty statements (only whitespace/comments) are dropped.

/// Split `sql` into trimmed, non-empty statement texts.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' | b'`' => {
                let q = bytes[i];
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == q {
                        if i + 1 < bytes.len() && bytes[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    if bytes[i] == b'\\' && q == b'\'' {
                        // Tolerate backslash escapes inside strings.
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b';' => {
                push_statement(sql, start, i, &mut out);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push_statement(sql, start, bytes.len(), &mut out);
    out
}

fn push_statement<'a>(sql: &'a str, start: usize, end: usize, out: &mut Vec<&'a str>) {
    let end = end.min(sql.len());
    if start >= end {
        return;
    }
    // Byte positions found above are all at ASCII characters or the end, so they are
    // char boundaries; check anyway rather than risk a panic on odd input.
    let Some(text) = sql.get(start..end) else {
        return;
    };
    let text = text.trim();
    if !is_only_comments(text) {
        out.push(text);
    }
}

fn is_only_comments(text: &str) -> bool {
    let mut rest = text.trim_start();
    loop {
        if rest.is_empty() {
            return true;
        }
        if let Some(r) = rest.strip_prefix("--") {
            rest = r
                .split_once('\n')
                .map(|(_, r)| r)
                .unwrap_or("")
                .trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r
                .split_once("*/")
                .map(|(_, r)| r)
                .unwrap_or("")
                .trim_start();
        } else {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let s = "INSERT INTO t VALUES ('a;b'); -- c;d\nSELECT \"x;y\" FROM t; /* ; */ ;";
        assert_eq!(
            split_statements(s),
            vec![
                "INSERT INTO t VALUES ('a;b')",
                "-- c;d\nSELECT \"x;y\" FROM t"
            ]
        );
    }

    #[test]
    fn empty_and_comment_only_input_has_no_statements() {
        assert!(split_statements("  ;; -- nothing\n").is_empty());
        assert!(split_statements("").is_empty());
    }

    #[test]
    fn unterminated_quote_does_not_panic() {
        assert_eq!(split_statements("SELECT 'abc; é"), vec!["SELECT 'abc; é"]);
    }
}
