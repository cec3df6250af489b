//! Parsing the YAML, with every unknown field reported, not just the first.
//!
//! serde stops at the first unknown field. To find the others, the text is parsed again with
//! that key replaced by the field it most likely misspells (so the rest of the file is checked
//! as meant, without follow-on errors), or removed when nothing is close or the replacement
//! does not fit. Lines never move, so every position reported is the file's own.

use std::path::Path;

use serde_saphyr::{Error, Location};

use super::suggest::{closest, listed};
use super::{ProjectError, first_line};
use crate::project::model::ProjectFile;

/// More unknown fields than this in one file, and the rest is not looked for.
const MOST_UNKNOWN_FIELDS: usize = 100;

/// The parsed file, if it could be read as one (possibly with unknown keys replaced), and
/// every problem found on the way.
pub(super) fn parse(text: &str, file: &Path) -> (Option<ProjectFile>, Vec<ProjectError>) {
    let mut errors = Vec::new();
    let mut text = text.to_string();
    // The last key replaced by a guess: (text before, where, key), to undo if the guess fails.
    let mut guessed: Option<(String, Location, String)> = None;
    // Fields guessed or removed so far: a later "missing field" naming one is their echo.
    let mut echoes: Vec<&'static str> = Vec::new();
    loop {
        let e = match serde_saphyr::from_str::<ProjectFile>(&text) {
            Ok(raw) => return (Some(raw), errors),
            Err(e) => e,
        };
        let e = e.without_snippet();
        match e {
            Error::SerdeUnknownField {
                field,
                expected,
                location,
            } if errors.len() < MOST_UNKNOWN_FIELDS => {
                let suggestion = closest(field, expected.iter().copied());
                let hint = suggestion
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                errors.push(ProjectError {
                    file: file.to_path_buf(),
                    line: Some(location.line() as u32),
                    column: Some(location.column() as u32),
                    field: String::new(),
                    message: format!(
                        "unknown field `{field}`; {hint}the fields here are {}",
                        listed(expected)
                    ),
                });
                let renamed = suggestion.and_then(|s| {
                    echoes.push(s);
                    replace_key(&text, *location, field, Some(s))
                });
                let next = match renamed {
                    Some(t) => {
                        guessed = Some((text.clone(), *location, field.clone()));
                        t
                    }
                    None => {
                        guessed = None;
                        match replace_key(&text, *location, field, None) {
                            Some(t) => t,
                            None => return (None, errors),
                        }
                    }
                };
                text = next;
            }
            other => {
                // A guess that does not fit (a duplicate key, a value of another type):
                // remove the key instead and parse again.
                if let Some((before, location, field)) = guessed.take()
                    && let Some(t) = replace_key(&before, location, &field, None)
                {
                    text = t;
                    continue;
                }
                let echo = matches!(other, Error::SerdeMissingField { field, .. } if echoes.contains(field));
                if errors.is_empty() || !echo {
                    let loc = other.location();
                    errors.push(ProjectError {
                        file: file.to_path_buf(),
                        line: loc.map(|l| l.line() as u32),
                        column: loc.map(|l| l.column() as u32),
                        field: String::new(),
                        message: parse_message(&other.to_string()),
                    });
                }
                return (None, errors);
            }
        }
    }
}

/// The YAML parser's message without its own `error: line N column M:` prefix, which
/// `ProjectError` already shows in `file:line:col` form.
pub(super) fn parse_message(s: &str) -> String {
    let line = first_line(s);
    let rest = line.strip_prefix("error: ").unwrap_or(&line);
    let msg = match rest.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((loc, msg)) if loc.contains(" column ") => msg.to_string(),
        _ => rest.to_string(),
    };
    // The parser's own words suggest a parser option; say what to do with the file instead.
    match msg
        .strip_prefix("duplicate mapping key: ")
        .and_then(|k| k.split(',').next())
    {
        Some(key) => format!(
            "`{}` is written twice in the same mapping; write it once, with everything under one `{}:`",
            key.trim(),
            key.trim()
        ),
        None => msg,
    }
}

/// `text` with the mapping key `key` at `at` renamed to `with`, or, without `with`, removed
/// with its value. `None` when the key is not where the parser said.
fn replace_key(text: &str, at: Location, key: &str, with: Option<&str>) -> Option<String> {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line = usize::try_from(at.line()).ok()?.checked_sub(1)?;
    let line_start = *starts.get(line)?;
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let column = usize::try_from(at.column()).ok()?.checked_sub(1)?;
    let start = line_start
        + text[line_start..line_end]
            .char_indices()
            .nth(column)
            .map(|(i, _)| i)?;
    let rest = &text[start..];
    let len = if rest.starts_with(key) {
        key.len()
    } else {
        let quote = rest.chars().next().filter(|c| matches!(c, '"' | '\''))?;
        let inner = rest[1..].strip_prefix(key)?;
        inner.strip_prefix(quote)?;
        key.len() + 2
    };
    let mut out = text.to_string();
    if let Some(new) = with {
        // Padded to the old length, so the columns after it stay where they were.
        let padded = format!("{new:<len$}");
        out.replace_range(start..start + len, &padded);
        return Some(out);
    }
    let before = text[line_start..start].trim_end();
    if before.ends_with('{') || before.ends_with(',') {
        return remove_flow_entry(text, start);
    }
    // A block mapping entry: the key's line from the key on, then every line indented
    // deeper than the key (its value), and, when the value starts on the next line, a
    // sequence written at the key's own indentation.
    let indent = text[line_start..start].chars().count();
    let after_key = text[start + len..line_end].trim_start_matches([' ', ':']);
    let value_on_next_line = after_key.is_empty() || after_key.starts_with('#');
    let mut cuts = vec![(start, line_end)];
    for (i, &s) in starts.iter().enumerate().skip(line + 1) {
        let e = starts.get(i + 1).map_or(text.len(), |n| n - 1);
        let l = &text[s..e.max(s)];
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let own = l.len() - trimmed.len();
        let compact_seq = own == indent && value_on_next_line && trimmed.starts_with('-');
        if own > indent || compact_seq {
            cuts.push((s, e.max(s)));
        } else {
            break;
        }
    }
    for (s, e) in cuts.into_iter().rev() {
        out.replace_range(s..e, &" ".repeat(text[s..e].chars().count()));
    }
    Some(out)
}

/// Removes the flow-mapping entry (`key: value`) starting at `start`, with the comma that
/// separates it from its neighbours; newlines stay.
fn remove_flow_entry(text: &str, start: usize) -> Option<String> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut end = None;
    let mut with_comma = false;
    for (i, c) in text[start..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') if depth > 0 => depth -= 1,
            (None, '}' | ']') => {
                end = Some(start + i);
                break;
            }
            (None, ',') if depth == 0 => {
                end = Some(start + i + 1);
                with_comma = true;
                break;
            }
            _ => {}
        }
    }
    let end = end?;
    let mut from = start;
    if !with_comma {
        // The last entry: take the comma before it instead.
        let before = text[..start].trim_end();
        if before.ends_with(',') {
            from = before.len() - 1;
        }
    }
    let blank: String = text[from..end]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    let mut out = text.to_string();
    out.replace_range(from..end, &blank);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        parse(yaml, Path::new("p.yaml"))
            .1
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const TOOL: &str = "version: 1\nname: t\ndata:\n  sqlite: d.db\ntools:\n";

    #[test]
    fn every_unknown_field_is_reported_with_a_guess() {
        let yaml = format!(
            "{TOOL}  - name: a\n    titel: A\n    description: d\n    access: read\n    sql: SELECT 1\n  - name: b\n    description: d\n    acess: read\n    sql: SELECT 1\n    policies:\n      input:\n        - {{ name: r, condition: 'true', reasn: nope }}\n"
        );
        let (raw, errors) = parse(&yaml, Path::new("p.yaml"));
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 3, "{shown:#?}");
        assert!(
            shown[0].starts_with("p.yaml:7:5: unknown field `titel`; did you mean `title`?"),
            "{shown:#?}"
        );
        assert!(
            shown[1].starts_with("p.yaml:13:5: unknown field `acess`; did you mean `access`?"),
            "{shown:#?}"
        );
        assert!(
            shown[2].starts_with("p.yaml:17:41: unknown field `reasn`; did you mean `reason`?"),
            "{shown:#?}"
        );
        // With the guesses, the file reads as meant: the rest of it can be checked.
        let raw = raw.unwrap();
        assert_eq!(raw.tools[0].value.title.as_deref(), Some("A"));
        assert_eq!(raw.tools[1].value.access.value, "read");
    }

    #[test]
    fn a_key_with_no_close_field_is_removed_with_its_value() {
        let yaml = format!(
            "{TOOL}  - name: a\n    description: d\n    whatever:\n      - x\n      - y\n    access: read\n    sql: SELECT 1\n  - zzz: 1\n    name: b\n    description: d\n    access: read\n    sql: SELECT 1\n"
        );
        let (raw, errors) = parse(&yaml, Path::new("p.yaml"));
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(
            errors[0]
                .message
                .starts_with("unknown field `whatever`; the fields here are name, title")
        );
        let raw = raw.unwrap();
        assert_eq!(raw.tools.len(), 2);
        assert_eq!(raw.tools[1].value.name.value, "b");
        assert_eq!(raw.tools[1].value.name.referenced.line(), 14);
    }

    #[test]
    fn a_guess_that_does_not_fit_is_removed_instead() {
        // `nam` is close to `name`, which is already there.
        let yaml = format!(
            "{TOOL}  - name: a\n    nam: x\n    description: d\n    access: read\n    sql: SELECT 1\n"
        );
        let (raw, errors) = parse(&yaml, Path::new("p.yaml"));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(raw.unwrap().tools[0].value.name.value, "a");
    }

    #[test]
    fn a_missing_required_field_that_a_guess_would_have_filled_is_not_repeated() {
        // `sqll` → `sql` fits; `zql` is too far from anything, so `sql` is then missing,
        // which is the same problem.
        let ok = format!(
            "{TOOL}  - name: a\n    description: d\n    access: read\n    sqll: SELECT 1\n"
        );
        assert_eq!(problems(&ok).len(), 1, "{:#?}", problems(&ok));
        let far = format!(
            "{TOOL}  - name: a\n    description: d\n    access: read\n    qqqqqq: SELECT 1\n"
        );
        let shown = problems(&far);
        assert_eq!(shown.len(), 2, "{shown:#?}");
        assert!(shown[1].contains("missing field `sql`"), "{shown:#?}");
    }
}
