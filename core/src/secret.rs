//! Passwords kept out of output: [`SecretUrl`], a URL whose `Debug` and `Display` hide its
//! password, and [`scrub`], which removes every password tenancy knows of (and any
//! `scheme://user:password@` form) from a driver's message before it becomes an error.
//!
//! Every URL that can hold a password is a `SecretUrl` from the moment it is read, and every
//! [`crate::database::ServerUrl`] made from one registers its password here, so an error message
//! can be scrubbed without knowing which server it came from.

use std::fmt;
use std::sync::{LazyLock, RwLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A URL that may hold a password. Shown as `scheme://user:***@host/…`; [`SecretUrl::expose`]
/// hands the real one to a driver.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps `url`, remembering its password so that [`scrub`] removes it wherever it turns up.
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        if let Ok(parsed) = url::Url::parse(&url)
            && let Some(password) = parsed.password()
        {
            remember(password);
        }
        Self(url)
    }

    /// The URL with its password: for a driver, never for output.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hide_credentials(&self.0))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({self})")
    }
}

impl Serialize for SecretUrl {
    /// As the plain string: the configuration is written back (`tenancy init`) with what was read.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// Passwords seen so far, in every form a message might quote them.
static KNOWN: LazyLock<RwLock<Vec<String>>> = LazyLock::new(RwLock::default);

/// Remembers `password` (as it stands in a URL, percent-encoded) and its decoded form.
pub(crate) fn remember(password: &str) {
    let decoded = percent_encoding::percent_decode_str(password).decode_utf8_lossy().into_owned();
    let decoded = Some(decoded).filter(|decoded| decoded != password);
    let mut known = KNOWN.write().unwrap_or_else(|p| p.into_inner());
    for form in std::iter::once(password.to_owned()).chain(decoded) {
        if !form.is_empty() && !known.contains(&form) {
            known.push(form);
        }
    }
    // Longest first, so a password containing another is replaced whole.
    known.sort_by_key(|form| std::cmp::Reverse(form.len()));
}

/// `text` with every known password, and the password of any URL in it, replaced by `***`.
pub fn scrub(text: &str) -> String {
    let mut text = hide_credentials(text);
    for password in KNOWN.read().unwrap_or_else(|p| p.into_inner()).iter() {
        text = text.replace(password.as_str(), "***");
    }
    text
}

/// Replaces the password of every `scheme://user:password@` in `text` with `***`.
fn hide_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (before, after) = rest.split_at(start + 3);
        out.push_str(before);
        // The authority ends at the first `/`, `?`, `#` or white space; its userinfo at the last `@`.
        let end = after.find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace()).unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@').and_then(|at| authority[..at].find(':').map(|colon| (colon, at))) {
            Some((colon, at)) => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_show_no_password_in_any_form() {
        // `p@ss:w/rd?#%` percent-encoded, as it must stand in a URL.
        let url = SecretUrl::new("postgres://admin:p%40ss%3Aw%2Frd%3F%23%25@db.internal:5432/app");
        for shown in [url.to_string(), format!("{url:?}")] {
            assert!(!shown.contains("p%40ss") && !shown.contains("p@ss"), "{shown}");
            assert!(shown.contains("admin:***@db.internal:5432/app"), "{shown}");
        }
        let message = "connect failed for postgres://admin:p%40ss%3Aw%2Frd%3F%23%25@db.internal/app; password p@ss:w/rd?#% rejected";
        let scrubbed = scrub(message);
        assert!(!scrubbed.contains("p%40ss") && !scrubbed.contains("p@ss"), "{scrubbed}");
        assert_eq!(scrubbed, "connect failed for postgres://admin:***@db.internal/app; password *** rejected");
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        assert_eq!(scrub("mysql://root@127.0.0.1:3306/x: no route"), "mysql://root@127.0.0.1:3306/x: no route");
        assert_eq!(scrub("plain words"), "plain words");
    }
}
