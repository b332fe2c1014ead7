//! Maintenance mode: a tenant taken down for a while (a long migration, a data fix), recorded in
//! the registry so every process serving it answers 503 with `Retry-After` and the operator's
//! message, while people holding the bypass secret still get through.
//!
//! The secret itself is never stored: the registry keeps its BLAKE3 hash, and the bypass cookie
//! carries the secret, so reading the registry does not let anyone past the door.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How long clients are told to wait when the operator did not say.
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 60;

/// The longest message kept, in characters: it is shown on every refused request.
pub const MAX_MESSAGE_LEN: usize = 500;

/// A tenant's maintenance: since when, what visitors are told, and how they get past.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    /// When the tenant went down.
    pub since: DateTime<Utc>,
    /// Shown to visitors under the standard sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The `Retry-After` answered, in seconds.
    pub retry_after_secs: u32,
    /// Who put the tenant down, so a rerun of an interrupted migration knows it may bring it up.
    pub origin: MaintenanceOrigin,
    /// The bypass secret's hash; shown to users only as whether there is one.
    #[serde(default, rename = "bypass", skip_serializing_if = "Option::is_none", serialize_with = "only_presence")]
    secret_hash: Option<String>,
}

/// Who put a tenant down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceOrigin {
    /// `tenancy tenant down` (or the library): only `tenant up` ends it.
    Operator,
    /// `db migrate --down-during`: ended by that run, or by the next one if it was interrupted.
    Migration,
    /// `tenancy tenant move`: ended when the move is done (or aborted).
    Move,
}

impl Maintenance {
    /// Maintenance starting now.
    pub fn new(origin: MaintenanceOrigin) -> Self {
        Self { since: Utc::now(), message: None, retry_after_secs: DEFAULT_RETRY_AFTER_SECS, origin, secret_hash: None }
    }

    /// With this message for visitors.
    ///
    /// # Errors
    /// When it is longer than [`MAX_MESSAGE_LEN`] or holds control characters other than newlines.
    pub fn with_message(mut self, message: &str) -> Result<Self, MaintenanceError> {
        let message = message.trim();
        if message.chars().count() > MAX_MESSAGE_LEN {
            return Err(MaintenanceError::MessageTooLong);
        }
        if message.chars().any(|c| c.is_control() && c != '\n') {
            return Err(MaintenanceError::MessageControlCharacter);
        }
        self.message = (!message.is_empty()).then(|| message.to_owned());
        Ok(self)
    }

    /// Telling clients to come back after `secs` seconds.
    pub fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = secs;
        self
    }

    /// Letting requests that carry `secret` through.
    pub fn with_bypass(mut self, secret: &BypassSecret) -> Self {
        self.secret_hash = Some(secret.hash());
        self
    }

    /// Whether a bypass secret was set.
    pub fn has_bypass(&self) -> bool {
        self.secret_hash.is_some()
    }

    /// Whether `candidate` is this maintenance's bypass secret.
    pub fn admits(&self, candidate: &str) -> bool {
        match (&self.secret_hash, BypassSecret::parse(candidate)) {
            (Some(hash), Ok(secret)) => *hash == secret.hash(),
            _ => false,
        }
    }

    /// As stored in the registry (with the secret's hash, unlike `Serialize` for users).
    pub(crate) fn to_stored(&self) -> serde_json::Value {
        serde_json::json!({
            "since": self.since,
            "message": self.message,
            "retry_after_secs": self.retry_after_secs,
            "origin": self.origin,
            "bypass": self.secret_hash,
        })
    }

    /// Reads what [`Maintenance::to_stored`] wrote.
    pub(crate) fn from_stored(value: &serde_json::Value) -> Result<Self, serde_json::Error> {
        Self::deserialize(value)
    }
}

fn only_presence<S: serde::Serializer>(hash: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bool(hash.is_some())
}

/// A bypass secret: 8 to 128 characters of `A–Z a–z 0–9 _ -`, because it is typed into a URL
/// (`https://acme.example/{secret}`) and kept in a cookie.
#[derive(Clone, PartialEq, Eq)]
pub struct BypassSecret(String);

impl BypassSecret {
    /// Checks `input`.
    ///
    /// # Errors
    /// [`MaintenanceError::Secret`] when it is too short, too long or has other characters.
    pub fn parse(input: &str) -> Result<Self, MaintenanceError> {
        let fits = (8..=128).contains(&input.len()) && input.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if fits { Ok(Self(input.to_owned())) } else { Err(MaintenanceError::Secret) }
    }

    /// The secret, for the cookie.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> String {
        blake3::hash(self.0.as_bytes()).to_hex().to_string()
    }
}

impl fmt::Debug for BypassSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BypassSecret(***)")
    }
}

/// Why a maintenance setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaintenanceError {
    /// See [`BypassSecret`].
    #[error("invalid bypass secret: use 8 to 128 characters of A-Z, a-z, 0-9, `_` and `-` (it becomes part of a URL)")]
    Secret,
    /// See [`MAX_MESSAGE_LEN`].
    #[error("the maintenance message is longer than {MAX_MESSAGE_LEN} characters")]
    MessageTooLong,
    /// Tabs, escapes and the like would be sent to every visitor as they are.
    #[error("the maintenance message contains a control character (only newlines are allowed)")]
    MessageControlCharacter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_checked_and_only_their_hash_is_kept() {
        for bad in ["short", "has space in it", "slash/in/it1", "dots..dots", &"x".repeat(129), "ünïcödé-secret"] {
            assert_eq!(BypassSecret::parse(bad), Err(MaintenanceError::Secret), "{bad}");
        }
        let secret = BypassSecret::parse("let-me-in_2026").unwrap();
        let down = Maintenance::new(MaintenanceOrigin::Operator).with_bypass(&secret);
        assert!(down.admits("let-me-in_2026"));
        assert!(!down.admits("let-me-in_2027"));
        assert!(!down.admits(""));
        let stored = down.to_stored().to_string();
        assert!(!stored.contains("let-me-in"), "{stored}");
        assert_eq!(Maintenance::from_stored(&down.to_stored()).unwrap(), down);
        let shown = serde_json::to_value(&down).unwrap();
        assert_eq!(shown["bypass"], serde_json::Value::Bool(true));
        assert!(!Maintenance::new(MaintenanceOrigin::Operator).admits("let-me-in_2026"));
    }

    #[test]
    fn messages_are_bounded_and_plain() {
        let down = Maintenance::new(MaintenanceOrigin::Operator);
        assert_eq!(down.clone().with_message("  Back at 14:00.\nSorry!  ").unwrap().message.as_deref(), Some("Back at 14:00.\nSorry!"));
        assert_eq!(down.clone().with_message(" ").unwrap().message, None);
        assert_eq!(down.clone().with_message("\x1b[31mred").unwrap_err(), MaintenanceError::MessageControlCharacter);
        assert_eq!(down.with_message(&"x".repeat(501)).unwrap_err(), MaintenanceError::MessageTooLong);
    }
}
