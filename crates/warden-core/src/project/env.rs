//! `${VAR}` expansion for the `server` and `data` sections. SQL and templates are never
//! expanded, so an environment value cannot change a query.

/// Expands `${NAME}` from `lookup`; `$$` is a literal `$`. Errors name the missing variable.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unclosed `${` (write `$$` for a literal `$`)".to_string())?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a valid variable name"));
            }
            let value =
                lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn env(name: &str) -> Option<String> {
        (name == "PW").then(|| "s3cret".to_string())
    }

    #[test]
    fn expands_and_escapes() {
        assert_eq!(
            expand("postgres://u:${PW}@h/db", env).unwrap(),
            "postgres://u:s3cret@h/db"
        );
        assert_eq!(expand("a$$b", env).unwrap(), "a$b");
        assert_eq!(expand("cost $5", env).unwrap(), "cost $5");
    }

    #[test]
    fn missing_and_malformed_are_errors() {
        assert_eq!(
            expand("${NOPE}", env).unwrap_err(),
            "environment variable NOPE is not set"
        );
        assert!(expand("${PW", env).unwrap_err().contains("unclosed"));
        assert!(expand("${A-B}", env).unwrap_err().contains("not a valid"));
    }
}
