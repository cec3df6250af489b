//! `${VAR}` and `${file:PATH}` expansion for configuration values (`server`, `data`, `state`,
//! `login` and the like). SQL and templates are never expanded, so neither an environment
//! value nor a file can change a query.

use std::path::Path;

/// Expands `${NAME}` from `lookup` (`$$` is a literal `$`; errors name the missing
/// variable), and `${file:PATH}` to the content of the file at PATH (relative to `base`),
/// with its trailing newline trimmed. The file must be readable by its owner only.
pub fn expand_with_files(
    input: &str,
    lookup: impl Fn(&str) -> Option<String>,
    base: &Path,
) -> Result<String, String> {
    expand_each(input, &|name| match name.strip_prefix("file:") {
        Some(path) => read_secret(&base.join(path)),
        None => env_value(name, &lookup),
    })
}

fn env_value(name: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`${{{name}}}` is not a valid variable name"));
    }
    lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))
}

/// A secret kept in a file: its content without the trailing newline. Refused when the file
/// is readable by group or others, or empty. Errors name the file, never its content.
pub fn read_secret(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read the secret file {}: {e}", path.display());
    // One open: the permissions checked are those of the file read.
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(cannot)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "the secret file {} is readable by group or others (mode {mode:o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(cannot)?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        return Err(format!("the secret file {} is empty", path.display()));
    }
    Ok(value.to_string())
}

fn expand_each(
    input: &str,
    resolve: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
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
            out.push_str(&resolve(&body[..end])?);
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
    use std::path::Path;

    fn expand(input: &str, env: fn(&str) -> Option<String>) -> Result<String, String> {
        super::expand_with_files(input, env, Path::new("/nonexistent"))
    }

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
    fn secrets_come_from_private_files_without_their_newline() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "hunter2 with spaces\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let got = super::expand_with_files("postgres://u:${file:pw}@h/db", env, dir.path());
        assert_eq!(got.unwrap(), "postgres://u:hunter2 with spaces@h/db");
        // Absolute paths too, and environment variables beside them.
        let abs = format!("${{file:{}}}/${{PW}}", secret.display());
        assert_eq!(
            super::expand_with_files(&abs, env, Path::new("/nowhere")).unwrap(),
            "hunter2 with spaces/s3cret"
        );
        // Readable by others: refused, naming the file and the fix, never the content.
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = super::expand_with_files("${file:pw}", env, dir.path()).unwrap_err();
        assert!(
            e.contains("chmod 600") && e.contains("pw") && !e.contains("hunter2"),
            "{e}"
        );
        // Missing or empty.
        let e = super::expand_with_files("${file:nope}", env, dir.path()).unwrap_err();
        assert!(e.contains("nope"), "{e}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            super::expand_with_files("${file:empty}", env, dir.path())
                .unwrap_err()
                .contains("empty")
        );
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
