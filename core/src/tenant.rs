//! The tenant as the rest of the code sees it: [`Tenant`], its [`TenantId`], [`TenantName`] and
//! [`TenantStatus`]. Rows in the registry are turned into these types once, in `registry`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Domain;
use crate::database::DatabaseName;
use crate::maintenance::Maintenance;

/// A tenant's id: a UUID v7, so ids sort by creation time and index well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(uuid::Uuid);

impl TenantId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// Parses a full id in its usual hyphenated (or simple) form.
    ///
    /// # Errors
    /// When `input` is not a UUID.
    pub fn parse(input: &str) -> Result<Self, uuid::Error> {
        uuid::Uuid::parse_str(input).map(Self)
    }

    /// The 32 hex digits without hyphens: the form used inside database names.
    pub fn simple(&self) -> String {
        self.0.simple().to_string()
    }

    /// The id as `Display` writes it, encoded into `buffer` without the formatting machinery:
    /// every tenant context's span records it, once per served request.
    pub(crate) fn encode<'b>(&self, buffer: &'b mut [u8; uuid::fmt::Hyphenated::LENGTH]) -> &'b str {
        self.0.hyphenated().encode_lower(buffer)
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Where a tenant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Being provisioned; a tenant left in this state by a crash can be deleted and created again.
    Creating,
    /// Serving requests.
    Active,
    /// Switched off by its operator.
    Inactive,
    /// Switched off as a sanction (unpaid bill, abuse).
    Suspended,
}

impl TenantStatus {
    /// Every status, in the order they are listed to users.
    pub const ALL: [TenantStatus; 4] = [Self::Creating, Self::Active, Self::Inactive, Self::Suspended];

    /// The status as stored and typed: `creating`, `active`, `inactive` or `suspended`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Suspended => "suspended",
        }
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a tenant status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid status `{0}`: expected one of creating, active, inactive, suspended")]
pub struct UnknownStatus(pub String);

impl std::str::FromStr for TenantStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// The most characters a tenant name may have.
pub const MAX_NAME_LEN: usize = 255;

/// A tenant's display name: not empty, at most 255 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantName(String);

/// Why a string is not a valid tenant name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantNameError {
    /// Empty, or only white space.
    #[error("invalid tenant name ``: a name cannot be empty")]
    Empty,
    /// Over [`MAX_NAME_LEN`] characters.
    #[error("invalid tenant name `{shown}…`: it is {len} characters long; a name has at most {MAX_NAME_LEN}")]
    TooLong {
        /// The start of the name.
        shown: String,
        /// Its length in characters.
        len: usize,
    },
    /// A control character (a newline, a tab, an escape).
    #[error("invalid tenant name {input:?}: it contains a control character")]
    ControlCharacter {
        /// The name as typed.
        input: String,
    },
}

impl TenantName {
    /// Trims `input` and checks it.
    ///
    /// # Errors
    /// A [`TenantNameError`] naming the input.
    pub fn parse(input: &str) -> Result<Self, TenantNameError> {
        let name = input.trim();
        if name.is_empty() {
            return Err(TenantNameError::Empty);
        }
        let len = name.chars().count();
        if len > MAX_NAME_LEN {
            return Err(TenantNameError::TooLong { shown: name.chars().take(40).collect(), len });
        }
        if name.chars().any(char::is_control) {
            return Err(TenantNameError::ControlCharacter { input: name.to_owned() });
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant as recorded in the central registry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Its display name.
    pub name: TenantName,
    /// Its life-cycle status.
    pub status: TenantStatus,
    /// Whether its homepage is served.
    pub homepage_enabled: bool,
    /// The name of its database (or schema).
    pub database: DatabaseName,
    /// The configured server its database lives on.
    pub server: String,
    /// Free-form data the application keeps with the tenant.
    pub data: serde_json::Value,
    /// Set while the tenant is down for maintenance.
    pub maintenance: Option<Maintenance>,
    /// The migration set (its fingerprint, [`crate::Tenancy::migration_fingerprint`]) `db migrate`
    /// last brought its database up to date with, trusted by the next run's "nothing pending" check
    /// unless it verifies; cleared by anything that may move its schema back.
    #[serde(skip)]
    pub migrated_set: Option<String>,
    /// Moves on whenever its schema may move back; a record is made only if it has not moved since
    /// the tenant was read.
    #[serde(skip)]
    pub schema_epoch: i64,
    /// With a role per tenant: which of its passwords is current (see
    /// [`crate::database::RoleKey::login_for`]); moved on by each rotation.
    #[serde(skip)]
    pub credentials_generation: i64,
    /// Its domains, the primary one first.
    pub domains: Vec<TenantDomain>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Tenant {
    /// The primary domain, if the tenant has any domain.
    pub fn primary_domain(&self) -> Option<&Domain> {
        self.domains.iter().find(|d| d.primary).or(self.domains.first()).map(|d| &d.domain)
    }
}

impl fmt::Display for Tenant {
    /// `name (id)`: how tenants are named in messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.id)
    }
}

/// One of a tenant's domains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantDomain {
    /// The host name.
    pub domain: Domain,
    /// Whether it is the tenant's primary domain.
    pub primary: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(TenantName::parse("  Acme  ").unwrap().as_str(), "Acme");
        assert_eq!(TenantName::parse(" ").unwrap_err(), TenantNameError::Empty);
        assert!(TenantName::parse(&"x".repeat(255)).is_ok());
        assert!(matches!(TenantName::parse(&"x".repeat(256)), Err(TenantNameError::TooLong { len: 256, .. })));
        assert!(matches!(TenantName::parse("a\nb"), Err(TenantNameError::ControlCharacter { .. })));
    }

    #[test]
    fn statuses_round_trip() {
        for status in TenantStatus::ALL {
            assert_eq!(status.as_str().parse::<TenantStatus>().unwrap(), status);
        }
        assert!("deleted".parse::<TenantStatus>().is_err());
    }

    #[test]
    fn ids_are_time_ordered() {
        let a = TenantId::new();
        let b = TenantId::new();
        assert!(a < b);
        assert_eq!(TenantId::parse(&a.to_string()).unwrap(), a);
        assert_eq!(a.encode(&mut [0; 36]), a.to_string());
        assert_eq!(a.simple().len(), 32);
    }
}
