//! Tool SQL with named parameters (`:vendor_id`), compiled once at load into the backend's
//! positional form (`?1` for SQLite, `$1` for PostgreSQL). Values are always bound, never
//! spliced into the text; this scanner only finds where the placeholders are.

use crate::project::Dialect;

/// A compiled statement: text with positional placeholders, and the parameter name behind
/// each position (`names[0]` is `?1`/`$1`). A name used twice shares one position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("the SQL is empty")]
    Empty,
    #[error("unterminated {0} in the SQL")]
    Unterminated(&'static str),
    #[error("`{0}` is a positional placeholder; name every parameter instead, e.g. `:vendor_id`")]
    Positional(String),
    #[error("only one statement is allowed per tool; remove the `;` and what follows it")]
    MultipleStatements,
}

/// Finds `:name` placeholders, skipping string literals, quoted identifiers, comments,
/// PostgreSQL `::` casts and dollar-quoted strings.
pub fn compile(sql: &str, dialect: Dialect) -> Result<Statement, SqlError> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut names: Vec<String> = Vec::new();
    let mut i = 0;
    let mut copied = 0;
    let mut ended = false; // saw a top-level `;`
    let mut meaningful = false;

    while i < bytes.len() {
        let c = bytes[i];
        let rest_starts = |s: &str| sql[i..].starts_with(s);
        if ended && !c.is_ascii_whitespace() && !rest_starts("--") && !rest_starts("/*") {
            return Err(SqlError::MultipleStatements);
        }
        match c {
            b'\'' | b'"' | b'`' => {
                let what = if c == b'\'' {
                    "string literal"
                } else {
                    "quoted identifier"
                };
                i = skip_quoted(bytes, i, c).ok_or(SqlError::Unterminated(what))?;
                meaningful = true;
            }
            b'-' if rest_starts("--") => {
                i = sql[i..].find('\n').map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if rest_starts("/*") => {
                i = sql[i + 2..]
                    .find("*/")
                    .map(|p| i + 2 + p + 2)
                    .ok_or(SqlError::Unterminated("block comment"))?;
            }
            b';' => {
                // Whatever follows may only be whitespace and comments; drop it.
                out.push_str(&sql[copied..i]);
                copied = bytes.len();
                ended = true;
                i += 1;
            }
            b':' if bytes.get(i + 1) == Some(&b':') => i += 2,
            b':' if bytes.get(i + 1).is_some_and(|b| is_ident_start(*b)) => {
                let start = i + 1;
                let mut end = start;
                while end < bytes.len() && is_ident_char(bytes[end]) {
                    end += 1;
                }
                let name = &sql[start..end];
                let position = match names.iter().position(|n| n == name) {
                    Some(p) => p + 1,
                    None => {
                        names.push(name.to_string());
                        names.len()
                    }
                };
                out.push_str(&sql[copied..i]);
                match dialect {
                    Dialect::Sqlite => out.push('?'),
                    Dialect::Postgres => out.push('$'),
                }
                out.push_str(&position.to_string());
                copied = end;
                i = end;
                meaningful = true;
            }
            b'$' if dialect == Dialect::Postgres => {
                let tag_end = sql[i + 1..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .map(|p| i + 1 + p);
                match tag_end {
                    Some(e)
                        if bytes[e] == b'$'
                            && !sql[i + 1..e].starts_with(|ch: char| ch.is_ascii_digit()) =>
                    {
                        let tag = &sql[i..=e];
                        let close = sql[e + 1..]
                            .find(tag)
                            .ok_or(SqlError::Unterminated("dollar-quoted string"))?;
                        i = e + 1 + close + tag.len();
                    }
                    _ if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                        return Err(SqlError::Positional(positional_at(sql, i)));
                    }
                    _ => i += 1,
                }
                meaningful = true;
            }
            b'?' | b'@' | b'$' if dialect == Dialect::Sqlite => {
                return Err(SqlError::Positional(positional_at(sql, i)));
            }
            _ => {
                if !c.is_ascii_whitespace() {
                    meaningful = true;
                }
                i += 1;
            }
        }
    }
    if !meaningful {
        return Err(SqlError::Empty);
    }
    out.push_str(&sql[copied..]);
    let text = out.trim().to_string();
    Ok(Statement { text, names })
}

fn positional_at(sql: &str, i: usize) -> String {
    sql[i..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ')' && *c != ',')
        .take(16)
        .collect()
}

fn skip_quoted(bytes: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            // A doubled quote is an escaped quote inside the literal.
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests;
