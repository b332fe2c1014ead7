//! Database names: `prefix + tenant id + suffix`, checked against a strict identifier pattern so that
//! a name can be quoted into SQL or used as a file name without any escaping.

use std::fmt;

use serde::Serialize;

use crate::TenantId;

/// The most characters a database name may have (PostgreSQL's identifier limit; MySQL allows 64).
pub const MAX_LEN: usize = 63;

/// A checked database (or schema, or file) name: `[a-z_][a-z0-9_]*`, at most 63 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DatabaseName(String);

/// A string that is not a valid database name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid database name `{0}`: a name has 1 to 63 characters from a-z, 0-9 and _, and does not start with a digit")]
pub struct InvalidDatabaseName(pub String);

impl DatabaseName {
    /// Checks `input` against the identifier pattern.
    ///
    /// # Errors
    /// [`InvalidDatabaseName`] when it does not match.
    pub fn parse(input: &str) -> Result<Self, InvalidDatabaseName> {
        let valid = !input.is_empty()
            && input.len() <= MAX_LEN
            && input.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !input.starts_with(|c: char| c.is_ascii_digit());
        if valid { Ok(Self(input.to_owned())) } else { Err(InvalidDatabaseName(input.to_owned())) }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this name was made for `tenant`: it contains the tenant's id. Dropping a database is
    /// refused unless this holds, so a registry row edited by hand cannot make us drop `postgres`.
    pub fn belongs_to(&self, tenant: &TenantId) -> bool {
        self.0.contains(&tenant.simple())
    }

    /// The name as a PostgreSQL identifier. The pattern rules out quotes, so quoting is enough.
    pub fn pg_quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }

    /// The name as a MySQL identifier.
    pub fn mysql_quoted(&self) -> String {
        format!("`{}`", self.0)
    }
}

impl fmt::Display for DatabaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The rule that turns a tenant id into its database name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseNaming {
    prefix: String,
    suffix: String,
}

/// A prefix or suffix that would make invalid names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    /// The prefix is empty or has characters outside `a-z`, `0-9`, `_`, or starts with a digit.
    #[error("invalid database prefix `{prefix}`: it must start with a letter or _ and contain only a-z, 0-9 and _")]
    Prefix {
        /// The prefix.
        prefix: String,
    },
    /// The suffix has characters outside `a-z`, `0-9`, `_`.
    #[error("invalid database suffix `{suffix}`: it may contain only a-z, 0-9 and _")]
    Suffix {
        /// The suffix.
        suffix: String,
    },
    /// Prefix + 32-digit id + suffix is longer than 63 characters.
    #[error("prefix `{prefix}` and suffix `{suffix}` make names of {len} characters; the limit is {MAX_LEN}")]
    TooLong {
        /// The prefix.
        prefix: String,
        /// The suffix.
        suffix: String,
        /// The resulting length.
        len: usize,
    },
}

impl DatabaseNaming {
    /// Checks that `prefix + id + suffix` is always a valid [`DatabaseName`].
    ///
    /// # Errors
    /// [`NamingError`] saying which part is wrong.
    pub fn new(prefix: &str, suffix: &str) -> Result<Self, NamingError> {
        let allowed = |s: &str| s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if prefix.is_empty() || !allowed(prefix) || prefix.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(NamingError::Prefix { prefix: prefix.to_owned() });
        }
        if !allowed(suffix) {
            return Err(NamingError::Suffix { suffix: suffix.to_owned() });
        }
        let len = prefix.len() + 32 + suffix.len();
        if len > MAX_LEN {
            return Err(NamingError::TooLong { prefix: prefix.to_owned(), suffix: suffix.to_owned(), len });
        }
        Ok(Self { prefix: prefix.to_owned(), suffix: suffix.to_owned() })
    }

    /// The database name of `tenant`.
    pub fn name_for(&self, tenant: &TenantId) -> DatabaseName {
        DatabaseName::parse(&format!("{}{}{}", self.prefix, tenant.simple(), self.suffix))
            .expect("prefix and suffix were checked in DatabaseNaming::new")
    }

    /// The template for the migration set whose fingerprint is `fingerprint` (16 hex digits), or
    /// the name it is built under before it is complete. Never a tenant's: no tenant id in it.
    pub fn template_name(&self, fingerprint: &str, building: bool) -> DatabaseName {
        let building = if building { "_new" } else { "" };
        // prefix + suffix leave room for 32 characters of id: this takes at most 29.
        DatabaseName::parse(&format!("{}template_{fingerprint}{building}{}", self.prefix, self.suffix))
            .expect("prefix and suffix were checked in DatabaseNaming::new, the fingerprint is hex")
    }

    /// Whether `name` is one of this naming's sealed templates, of any migration set (not a
    /// template being built: that is its builder's).
    pub fn is_template_name(&self, name: &str) -> bool {
        name.strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_suffix(&self.suffix))
            .and_then(|rest| rest.strip_prefix("template_"))
            .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    }

    /// A database of the pool of ready databases for the migration set `fingerprint` (16 hex
    /// digits), `{prefix}pool_{fingerprint}{10 random hex}{suffix}`; while it is being made,
    /// `fill_` in place of `pool_`. Never a tenant's: no tenant id in it.
    pub fn pool_name(&self, fingerprint: &str, filling: bool) -> DatabaseName {
        let random = uuid::Uuid::new_v4().simple().to_string();
        let kind = if filling { "fill_" } else { "pool_" };
        // prefix + suffix leave room for 32 characters of id: this takes 31.
        DatabaseName::parse(&format!("{}{kind}{fingerprint}{}{}", self.prefix, &random[..10], self.suffix))
            .expect("prefix and suffix were checked in DatabaseNaming::new, the rest is hex")
    }

    /// What `name` is in the pool, if it is one of this naming's pool databases: its migration
    /// set's fingerprint, and whether it is still being made.
    pub fn pooled(&self, name: &str) -> Option<Pooled> {
        let rest = name.strip_prefix(&self.prefix)?.strip_suffix(&self.suffix)?;
        let (filling, hex) = match rest.split_at_checked(5)? {
            ("pool_", hex) => (false, hex),
            ("fill_", hex) => (true, hex),
            _ => return None,
        };
        let well_formed = hex.len() == 26 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return None;
        }
        Some(Pooled { name: DatabaseName::parse(name).ok()?, fingerprint: hex[..16].to_owned(), filling })
    }

    /// The name the pool's lock is taken under (never a database).
    pub fn pool_lock_name(&self) -> DatabaseName {
        DatabaseName::parse(&format!("{}pool_lock{}", self.prefix, self.suffix)).expect("prefix and suffix were checked")
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// A database of the pool of ready databases, as [`DatabaseNaming::pooled`] reads its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pooled {
    /// Its name.
    pub name: DatabaseName,
    /// The migration set it was migrated with.
    pub fingerprint: String,
    /// Whether it is still being made (or its maker died).
    pub filling: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_are_told_apart_from_tenants_and_templates() {
        let naming = DatabaseNaming::new("tenant_", "_db").unwrap();
        let ready = naming.pool_name("0123456789abcdef", false);
        let pooled = naming.pooled(ready.as_str()).unwrap();
        assert_eq!((pooled.fingerprint.as_str(), pooled.filling, &pooled.name), ("0123456789abcdef", false, &ready));
        assert!(naming.pooled(naming.pool_name("0123456789abcdef", true).as_str()).unwrap().filling);
        assert_ne!(naming.pool_name("0123456789abcdef", false), ready, "each is named apart");
        assert!(ready.as_str().len() <= 63);
        for other in [naming.name_for(&TenantId::new()), naming.template_name("0123456789abcdef", false), naming.pool_lock_name()] {
            assert!(naming.pooled(other.as_str()).is_none(), "{other}");
        }
        assert!(DatabaseNaming::new("other_", "_db").unwrap().pooled(ready.as_str()).is_none());
    }

    #[test]
    fn names_are_prefix_id_suffix() {
        let naming = DatabaseNaming::new("tenant_", "_db").unwrap();
        let id = TenantId::new();
        let name = naming.name_for(&id);
        assert_eq!(name.as_str(), format!("tenant_{}_db", id.simple()));
        assert!(name.belongs_to(&id));
        assert!(!name.belongs_to(&TenantId::new()));
    }

    #[test]
    fn bad_prefixes_and_suffixes_are_refused() {
        for prefix in ["", "1x", "a-b", "a\"b", "A", "x;drop", "a b", "é"] {
            assert!(matches!(DatabaseNaming::new(prefix, ""), Err(NamingError::Prefix { .. })), "{prefix:?}");
        }
        for suffix in ["-", "\"", "`", "a.b", "A"] {
            assert!(matches!(DatabaseNaming::new("t_", suffix), Err(NamingError::Suffix { .. })), "{suffix:?}");
        }
        assert!(matches!(DatabaseNaming::new(&"p".repeat(31), "x"), Err(NamingError::TooLong { len: 63.., .. })));
    }

    #[test]
    fn parse_refuses_anything_that_would_need_escaping() {
        for bad in ["", "postgres\"; drop", "../etc", "a-b", "1abc", &"a".repeat(64)] {
            assert!(DatabaseName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(DatabaseName::parse("tenant_x").unwrap().pg_quoted(), "\"tenant_x\"");
    }
}
