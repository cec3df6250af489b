//! RFC 6570 level-1 URI templates (`vendor://{id}/findings`): enough to name a resource by
//! its key. Values are matched out of a requested URI and then bound as SQL parameters.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    raw: String,
    parts: Vec<Part>,
}

impl UriTemplate {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = raw;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or("unclosed `{` in the URI template")?
                + open;
            let name = &rest[open + 1..close];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`{{{name}}}` is not a simple variable; use letters, digits and _"
                ));
            }
            if matches!(parts.last(), Some(Part::Var(_))) {
                return Err(
                    "two variables in a row cannot be told apart; put text between them".into(),
                );
            }
            parts.push(Part::Var(name.to_string()));
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err("stray `}` in the URI template".into());
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        if !parts.iter().any(|p| matches!(p, Part::Var(_))) {
            return Err(
                "a URI template needs at least one {variable}; use `uri` for a fixed URI".into(),
            );
        }
        Ok(Self {
            raw: raw.to_string(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The variables' values if `uri` fits this template. A value is never empty and never
    /// spans a `/`.
    pub fn matches(&self, uri: &str) -> Option<Vec<(String, String)>> {
        let mut rest = uri;
        let mut out = Vec::new();
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(l) => rest = rest.strip_prefix(l.as_str())?,
                Part::Var(name) => {
                    let end = match self.parts.get(i + 1) {
                        Some(Part::Literal(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    let value = &rest[..end];
                    if value.is_empty() || value.contains('/') {
                        return None;
                    }
                    out.push((name.clone(), value.to_string()));
                    rest = &rest[end..];
                }
            }
        }
        rest.is_empty().then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::UriTemplate;

    #[test]
    fn matches_variables_between_literals() {
        let t = UriTemplate::parse("test://template/{id}/data").unwrap();
        assert_eq!(
            t.matches("test://template/42/data"),
            Some(vec![("id".into(), "42".into())])
        );
        assert_eq!(t.matches("test://template//data"), None);
        assert_eq!(t.matches("test://template/a/b/data"), None);
        assert_eq!(t.matches("test://template/42/data/extra"), None);
        let v = UriTemplate::parse("vendor://{id}").unwrap();
        assert_eq!(
            v.matches("vendor://V-7"),
            Some(vec![("id".into(), "V-7".into())])
        );
    }

    #[test]
    fn rejects_bad_templates() {
        for bad in ["x://{", "x://{a b}", "x://{a}{b}", "x://plain", "x://}"] {
            assert!(UriTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
