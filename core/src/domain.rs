//! `Domain`: a validated, lower-cased host name that routes requests to a tenant.
//!
//! A domain is built once, from user input, through [`Domain::parse`]; everything below takes a
//! `Domain` and may trust it. A valid domain is also safe to use as a single path component
//! (it has no `/`, no `..` and no leading `-`), which later features (homepages, files) rely on.

use std::fmt;

/// The longest host name DNS allows, in characters, without the trailing dot.
const MAX_DOMAIN_LEN: usize = 253;
/// The longest label (the part between two dots) DNS allows.
const MAX_LABEL_LEN: usize = 63;

/// A host name such as `acme.example.com`, lower-cased and checked against RFC 1123.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Domain(String);

/// Why a string is not a valid domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The input was empty (or only white space).
    #[error("invalid domain ``: a domain cannot be empty")]
    Empty,
    /// The input is longer than DNS allows.
    #[error("invalid domain `{input}`: it is {len} characters long; a domain has at most {MAX_DOMAIN_LEN}")]
    TooLong {
        /// What the user typed, shortened for display.
        input: String,
        /// Its length in characters.
        len: usize,
    },
    /// Two dots in a row, or a dot at either end.
    #[error("invalid domain `{input}`: it has an empty label (two dots in a row, or a dot at the start or end)")]
    EmptyLabel {
        /// What the user typed.
        input: String,
    },
    /// One label is longer than 63 characters.
    #[error("invalid domain `{input}`: the label `{label}` is longer than {MAX_LABEL_LEN} characters")]
    LabelTooLong {
        /// What the user typed.
        input: String,
        /// The offending label.
        label: String,
    },
    /// A label starts or ends with a hyphen.
    #[error("invalid domain `{input}`: the label `{label}` starts or ends with `-`")]
    HyphenAtEdge {
        /// What the user typed.
        input: String,
        /// The offending label.
        label: String,
    },
    /// A character outside `a-z`, `0-9`, `-` and `.`.
    #[error("invalid domain `{input}`: {found:?} is not allowed; a domain has only letters, digits, `-` and `.`")]
    InvalidCharacter {
        /// What the user typed.
        input: String,
        /// The first character that is not allowed.
        found: char,
    },
    /// The last label is all digits: an IP address, not a host name.
    #[error("invalid domain `{input}`: it looks like an IP address; tenants are found by host name")]
    NumericTopLabel {
        /// What the user typed.
        input: String,
    },
}

impl Domain {
    /// Checks `input` and lower-cases it.
    ///
    /// # Errors
    /// A [`DomainError`] naming the input and what is wrong with it.
    ///
    /// # Example
    /// ```
    /// use tenancy_core::Domain;
    /// assert_eq!(Domain::parse("Acme.Example.COM").unwrap().as_str(), "acme.example.com");
    /// assert!(Domain::parse("../../etc").is_err());
    /// ```
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(DomainError::Empty);
        }
        let len = trimmed.chars().count();
        if len > MAX_DOMAIN_LEN {
            let shown: String = trimmed.chars().take(40).collect();
            return Err(DomainError::TooLong { input: format!("{shown}…"), len });
        }
        let lower = trimmed.to_ascii_lowercase();
        let owned = || trimmed.to_owned();
        if let Some(found) = lower.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.')) {
            return Err(DomainError::InvalidCharacter { input: owned(), found });
        }
        for label in lower.split('.') {
            if label.is_empty() {
                return Err(DomainError::EmptyLabel { input: owned() });
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(DomainError::LabelTooLong { input: owned(), label: label.to_owned() });
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(DomainError::HyphenAtEdge { input: owned(), label: label.to_owned() });
            }
        }
        let top = lower.rsplit('.').next().unwrap_or_default();
        if top.chars().all(|c| c.is_ascii_digit()) {
            return Err(DomainError::NumericTopLabel { input: owned() });
        }
        Ok(Self(lower))
    }

    /// [`Domain::parse`] for the host of every request served: one pass over the bytes, one
    /// allocation. `None` for anything but a valid name of plain ASCII labels (surrounding white
    /// space, an IP address, an internationalised name, an `xn--` label, an invalid name): the
    /// caller then takes the full path, which decides. What this accepts, `Domain::parse` accepts
    /// and makes the same.
    pub(crate) fn parse_plain_ascii(host: &str) -> Option<Self> {
        if host.is_empty() || host.len() > MAX_DOMAIN_LEN {
            return None;
        }
        let (mut label_len, mut label_all_digits, mut previous) = (0, true, b'.');
        for &byte in host.as_bytes() {
            match byte {
                b'.' if label_len > 0 && previous != b'-' => (label_len, label_all_digits) = (0, true),
                b'-' if label_len > 0 => label_len += 1,
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => {
                    label_len += 1;
                    label_all_digits &= byte.is_ascii_digit();
                }
                _ => return None,
            }
            if label_len > MAX_LABEL_LEN {
                return None;
            }
            previous = byte;
        }
        if label_len == 0 || previous == b'-' || label_all_digits {
            return None;
        }
        let mut lower = host.to_owned();
        lower.make_ascii_lowercase();
        (!lower.contains("xn--")).then_some(Self(lower))
    }

    /// The domain as a lower-case string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Domain {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_for_request_hosts_accepts_only_what_parse_accepts_and_makes_the_same() {
        let long_label = "a".repeat(63);
        let too_long_label = "a".repeat(64);
        let long_name = ["a"; 127].join(".");
        let too_long_name = format!("{long_name}.ab");
        let plain = [
            "acme.test",
            "ACME.Test",
            "a-b.c1.example",
            "localhost",
            "t1.localhost",
            "1.example",
            "x1",
            long_label.as_str(),
            long_name.as_str(),
        ];
        for host in plain {
            assert_eq!(Domain::parse_plain_ascii(host), Some(Domain::parse(host).unwrap()), "{host}");
        }
        let others = [
            "",
            " acme.test",
            "acme.test ",
            "127.0.0.1",
            "1.2",
            "a.123",
            "a..b",
            ".a",
            "a.",
            "-a.b",
            "a-.b",
            "a.b-",
            "a_b.c",
            "xn--bcher-kva.example",
            "a.XN--bcher-kva.example",
            "bücher.example",
            "a@b",
            "a:80",
            too_long_label.as_str(),
            too_long_name.as_str(),
        ];
        for host in others {
            assert_eq!(Domain::parse_plain_ascii(host), None, "{host}");
        }
    }

    #[test]
    fn accepts_and_lowercases_host_names() {
        assert_eq!(Domain::parse("ACME.test").unwrap().as_str(), "acme.test");
        assert_eq!(Domain::parse(" a-b.c1.example ").unwrap().as_str(), "a-b.c1.example");
        assert_eq!(Domain::parse("localhost").unwrap().as_str(), "localhost");
        assert!(Domain::parse(&format!("{}.com", "a".repeat(63))).is_ok());
    }

    #[test]
    fn rejects_what_is_not_a_host_name() {
        let long = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        type Expectation = fn(&DomainError) -> bool;
        let cases: &[(&str, Expectation)] = &[
            ("", |e| matches!(e, DomainError::Empty)),
            ("   ", |e| matches!(e, DomainError::Empty)),
            ("../../etc", |e| matches!(e, DomainError::InvalidCharacter { found: '/', .. })),
            ("a..b", |e| matches!(e, DomainError::EmptyLabel { .. })),
            (".a.b", |e| matches!(e, DomainError::EmptyLabel { .. })),
            ("a.b.", |e| matches!(e, DomainError::EmptyLabel { .. })),
            ("-x.com", |e| matches!(e, DomainError::HyphenAtEdge { .. })),
            ("x-.com", |e| matches!(e, DomainError::HyphenAtEdge { .. })),
            ("a b.com", |e| matches!(e, DomainError::InvalidCharacter { found: ' ', .. })),
            ("a_b.com", |e| matches!(e, DomainError::InvalidCharacter { found: '_', .. })),
            ("bücher.de", |e| matches!(e, DomainError::InvalidCharacter { found: 'ü', .. })),
            ("10.0.0.1", |e| matches!(e, DomainError::NumericTopLabel { .. })),
            (&long, |e| matches!(e, DomainError::TooLong { .. })),
        ];
        for (input, expected) in cases {
            let err = Domain::parse(input).unwrap_err();
            assert!(expected(&err), "{input:?} gave {err:?}");
        }
        let label = format!("{}.com", "a".repeat(64));
        assert!(matches!(Domain::parse(&label), Err(DomainError::LabelTooLong { .. })));
    }

    #[test]
    fn errors_name_the_input() {
        let err = Domain::parse("a..b").unwrap_err();
        assert_eq!(err.to_string(), "invalid domain `a..b`: it has an empty label (two dots in a row, or a dot at the start or end)");
    }
}
