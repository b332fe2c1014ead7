//! Quoting for the few statements built from names (tables, schemas, databases). The names come
//! from catalogs and from tenancy's own naming, but are quoted anyway: a table named `a"b` must
//! not end a statement.

/// `"name"` for PostgreSQL and SQLite.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `` `name` `` for MySQL.
pub fn quote_mysql(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `'text'` for any of them (standard strings: PostgreSQL's `standard_conforming_strings`, and
/// no backslash in the paths and names quoted here on MySQL).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A database name for a scratch copy, `tenancy_{purpose}_{12 random hex}`: short enough for
/// MySQL and PostgreSQL, and never a tenant's (theirs end in 32 hex digits).
pub fn scratch_name(purpose: &str) -> String {
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!("tenancy_{purpose}_{}", &random[random.len() - 12..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_mysql("a`b"), "`a``b`");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
