//! Least privilege on servers: each tenant's connections log in as a role of its own
//! (`tenant_database.roles = "per_tenant"`), which owns its database or schema and nothing else.
//!
//! A role is named as its database is (role and database names live apart on both engines, and
//! the database name is already a checked identifier made from the tenant id). Its password is
//! never stored: it is derived from the role key and the tenant's credentials generation, so every
//! process with the key computes it, and a rotation (a new generation) changes it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DatabaseName;

/// The environment variable that holds the role key, over `tenant_database.role_key_file`.
pub const ROLE_KEY_ENV: &str = "TENANCY_ROLE_KEY";

/// The fewest characters a role key may have: 32, as many as the 256 bits it is turned into.
pub const MIN_KEY_LEN: usize = 32;

/// Who tenant connections log in as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Roles {
    /// Every tenant connects as the configured server user: isolation is the database (or
    /// schema) a connection points at. For servers whose user may not create roles.
    #[default]
    Shared,
    /// Each tenant connects as a role of its own that can reach its database (or schema) only.
    PerTenant,
}

/// The secret tenant passwords are derived from. Never printed.
#[derive(Clone)]
pub struct RoleKey([u8; 32]);

impl fmt::Debug for RoleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoleKey(<hidden>)")
    }
}

/// Why the role key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum RoleKeyError {
    /// Neither the variable nor the file is there.
    #[error(
        "`tenant_database.roles = \"per_tenant\"` needs a role key: set {ROLE_KEY_ENV}, or write one to `{}` (`tenancy init` makes one)",
        path.display()
    )]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// The file is there but cannot be read.
    #[error("cannot read the role key file `{}`", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key is too short to be a secret.
    #[error("the role key from {whence} has {len} characters; a role key has at least {MIN_KEY_LEN}")]
    TooShort {
        /// Where it came from.
        whence: String,
        /// Its length.
        len: usize,
    },
}

impl RoleKey {
    /// The key from [`ROLE_KEY_ENV`] if set, else from the file `path`.
    ///
    /// # Errors
    /// [`RoleKeyError`] when neither holds a key of at least [`MIN_KEY_LEN`] characters.
    pub fn load(path: &Path) -> Result<Self, RoleKeyError> {
        if let Some(key) = crate::config::role_key_from_env() {
            return Self::from_secret(key.trim(), ROLE_KEY_ENV.to_owned());
        }
        match std::fs::read_to_string(path) {
            Ok(key) => Self::from_secret(key.trim(), format!("`{}`", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(RoleKeyError::Missing { path: path.to_owned() }),
            Err(source) => Err(RoleKeyError::Unreadable { path: path.to_owned(), source }),
        }
    }

    /// A key made from `secret`.
    ///
    /// # Errors
    /// [`RoleKeyError::TooShort`] under [`MIN_KEY_LEN`] characters.
    pub fn from_secret(secret: &str, whence: String) -> Result<Self, RoleKeyError> {
        if secret.len() < MIN_KEY_LEN {
            return Err(RoleKeyError::TooShort { whence, len: secret.len() });
        }
        Ok(Self(blake3::derive_key("tenancy 2026 tenant role passwords", secret.as_bytes())))
    }

    /// A new random key, as the text of a key file: 64 hex digits.
    pub fn generate() -> String {
        let bytes: [u8; 32] = blake3::hash(uuid::Uuid::new_v4().as_bytes()).into();
        let more: [u8; 32] = blake3::keyed_hash(&bytes, uuid::Uuid::new_v4().as_bytes()).into();
        hex(&more)
    }

    /// How the tenant whose database is `database` logs in at credentials generation
    /// `generation`: a keyed BLAKE3 hash (a MAC, as HMAC is) of both, so knowing one tenant's
    /// password tells nothing of another's, nor of its next one.
    pub fn login_for(&self, database: &DatabaseName, generation: i64) -> Login {
        let message = format!("{database}\n{generation}");
        let password = hex(blake3::keyed_hash(&self.0, message.as_bytes()).as_bytes());
        Login { role: database.clone(), password }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A tenant role and its password. The password is 64 hex digits, so it goes into SQL and URLs
/// without escaping; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// The role (user) name: the tenant's database name.
    pub role: DatabaseName,
    password: String,
}

impl Login {
    /// The password: for the driver and the server, never for output.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login").field("role", &self.role).field("password", &"<hidden>").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RoleKey {
        RoleKey::from_secret(&"k".repeat(40), "test".into()).unwrap()
    }

    #[test]
    fn passwords_differ_by_tenant_and_generation_and_are_stable() {
        let (a, b) = (DatabaseName::parse("tenant_a").unwrap(), DatabaseName::parse("tenant_b").unwrap());
        let key = key();
        assert_eq!(key.login_for(&a, 0), key.login_for(&a, 0));
        assert_ne!(key.login_for(&a, 0).password(), key.login_for(&b, 0).password());
        assert_ne!(key.login_for(&a, 0).password(), key.login_for(&a, 1).password());
        let other = RoleKey::from_secret(&"j".repeat(40), "test".into()).unwrap();
        assert_ne!(key.login_for(&a, 0).password(), other.login_for(&a, 0).password());
        let login = key.login_for(&a, 0);
        assert_eq!(login.role.as_str(), "tenant_a");
        assert_eq!(login.password().len(), 64);
        assert!(login.password().bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!format!("{login:?}").contains(login.password()));
    }

    #[test]
    fn short_keys_are_refused_and_generated_keys_are_long_and_fresh() {
        assert!(matches!(RoleKey::from_secret("short", "x".into()), Err(RoleKeyError::TooShort { len: 5, .. })));
        let (one, two) = (RoleKey::generate(), RoleKey::generate());
        assert_eq!(one.len(), 64);
        assert_ne!(one, two);
        assert!(RoleKey::from_secret(&one, "generated".into()).is_ok());
    }
}
