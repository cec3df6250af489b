//! "Did you mean ...?": the known name closest to a misspelt one, if any is close.

/// The candidate closest to `word`: within a small edit distance (about one edit per three
/// letters), or one starting with it (`int` for `integer`). `None` when nothing is close.
pub(super) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        let d = distance(&word_lower, &c.to_ascii_lowercase());
        let prefix = word.len() >= 3 && c.starts_with(word);
        let score = if prefix { 1 } else { d };
        if (d <= limit || prefix) && best.is_none_or(|(b, _)| score < b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance, with a swap of two neighbouring letters counted as one edit.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    if let Some(first) = d.first_mut() {
        for (j, cell) in first.iter_mut().enumerate() {
            *cell = j;
        }
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// `did you mean `x`? ` when something is close, else nothing.
pub(super) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    closest(word, candidates)
        .map(|c| format!("did you mean `{c}`? "))
        .unwrap_or_default()
}

/// `a, b and c`.
pub(super) fn listed<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [rest @ .., last] => format!(
            "{} and {}",
            rest.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let fields = ["id", "email", "role", "org", "scopes", "attributes"];
        assert_eq!(closest("rol", fields), Some("role"));
        assert_eq!(closest("rloe", fields), Some("role"));
        assert_eq!(closest("emial", fields), Some("email"));
        assert_eq!(closest("Role", fields), Some("role"));
        assert_eq!(closest("department", fields), None);
        assert_eq!(
            closest("titel", ["name", "title", "description"]),
            Some("title")
        );
        let types = ["string", "integer", "number", "boolean"];
        assert_eq!(closest("int", types), Some("integer"));
        assert_eq!(closest("bool", types), Some("boolean"));
        assert_eq!(closest("strng", types), Some("string"));
        assert_eq!(closest("float", types), None);
    }

    #[test]
    fn lists_read_as_prose() {
        assert_eq!(listed(&["a"]), "a");
        assert_eq!(listed(&["a", "b", "c"]), "a, b and c");
    }
}
