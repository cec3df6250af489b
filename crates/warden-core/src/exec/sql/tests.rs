use super::{SqlError, compile};
use crate::project::Dialect::{Postgres, Sqlite};

#[test]
fn names_become_positions_and_repeat_shares_one() {
    let s = compile(
        "SELECT * FROM v WHERE a = :a AND (b = :b OR :a IS NULL)",
        Sqlite,
    )
    .unwrap();
    assert_eq!(
        s.text,
        "SELECT * FROM v WHERE a = ?1 AND (b = ?2 OR ?1 IS NULL)"
    );
    assert_eq!(s.names, ["a", "b"]);
    let p = compile("SELECT * FROM v WHERE a = :a AND b = :b", Postgres).unwrap();
    assert_eq!(p.text, "SELECT * FROM v WHERE a = $1 AND b = $2");
}

#[test]
fn literals_comments_and_casts_are_not_placeholders() {
    let s = compile(
        "SELECT ':no', \"x:y\", ':it''s :no' -- :no\n FROM t /* :no */ WHERE d = :since::date",
        Postgres,
    )
    .unwrap();
    assert_eq!(s.names, ["since"]);
    assert!(s.text.ends_with("WHERE d = $1::date"), "{}", s.text);
    let d = compile("SELECT $q$ :no $q$ || :yes", Postgres).unwrap();
    assert_eq!(d.names, ["yes"]);
}

#[test]
fn attacks_and_mistakes_are_refused() {
    let cases: &[(&str, crate::project::Dialect, SqlError)] = &[
        ("", Sqlite, SqlError::Empty),
        ("  -- only a comment\n", Sqlite, SqlError::Empty),
        (
            "SELECT 'open",
            Sqlite,
            SqlError::Unterminated("string literal"),
        ),
        (
            "SELECT 1 /* open",
            Sqlite,
            SqlError::Unterminated("block comment"),
        ),
        (
            "SELECT * FROM t WHERE a = ?",
            Sqlite,
            SqlError::Positional("?".into()),
        ),
        (
            "SELECT * FROM t WHERE a = $1",
            Postgres,
            SqlError::Positional("$1".into()),
        ),
        (
            "SELECT * FROM t WHERE a = @a",
            Sqlite,
            SqlError::Positional("@a".into()),
        ),
        (
            "SELECT 1; DROP TABLE t",
            Sqlite,
            SqlError::MultipleStatements,
        ),
        (
            "SELECT 1; -- trailing comment is fine\n; x",
            Sqlite,
            SqlError::MultipleStatements,
        ),
    ];
    for (sql, dialect, want) in cases {
        assert_eq!(compile(sql, *dialect).unwrap_err(), *want, "sql: {sql}");
    }
}

#[test]
fn one_trailing_semicolon_is_allowed() {
    let s = compile("SELECT 1;  -- done\n", Sqlite).unwrap();
    assert_eq!(s.text, "SELECT 1");
}
