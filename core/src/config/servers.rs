//! `[tenant_database.servers.NAME]`: the database servers tenants are placed on.
//!
//! A server is written `NAME = "URL"` or, to give it a weight or a connection budget of its own,
//! as a table: `[tenant_database.servers.eu] url = "…" weight = 2 connection_budget = 40`.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::secret::SecretUrl;

/// The longest server name: it is kept in the registry beside each tenant.
pub const MAX_SERVER_NAME: usize = 64;

/// One database server tenants can be placed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// For the administrative connection: the database used to create others (database per
    /// tenant) or the one holding the schemas (schema per tenant).
    pub url: SecretUrl,
    /// Its share of new tenants under `placement = "weighted"`: a server of weight 2 is given
    /// twice the tenants of a server of weight 1.
    pub weight: u32,
    /// The most connections its tenants' pools hold together. When servers set it, every server
    /// must, and the budget of all tenant pools is their sum.
    pub connection_budget: Option<u32>,
}

impl ServerConfig {
    /// A server at `url` with weight 1 and no budget of its own.
    pub fn new(url: impl Into<SecretUrl>) -> Self {
        Self { url: url.into(), weight: 1, connection_budget: None }
    }
}

impl From<&str> for ServerConfig {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

impl From<String> for ServerConfig {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

/// A server name is a key in the configuration, a value in the registry and an argument on the
/// command line: letters, digits, `_` and `-`, up to [`MAX_SERVER_NAME`].
///
/// # Errors
/// What is wrong with `name`.
pub fn check_server_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_SERVER_NAME {
        return Err(format!("a server name has 1 to {MAX_SERVER_NAME} characters"));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        return Err(format!("`{}` has {bad:?}: a server name has only letters, digits, `_` and `-`", name.escape_debug()));
    }
    Ok(())
}

/// The table form's keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    url: SecretUrl,
    #[serde(default = "one")]
    weight: u32,
    #[serde(default)]
    connection_budget: Option<u32>,
}

fn one() -> u32 {
    1
}

impl<'de> Deserialize<'de> for ServerConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Server;

        impl<'de> Visitor<'de> for Server {
            type Value = ServerConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL, or a table with `url` and optionally `weight` and `connection_budget`")
            }

            fn visit_str<E: de::Error>(self, url: &str) -> Result<ServerConfig, E> {
                Ok(ServerConfig::new(url))
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<ServerConfig, M::Error> {
                let table = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ServerConfig { url: table.url, weight: table.weight, connection_budget: table.connection_budget })
            }
        }

        deserializer.deserialize_any(Server)
    }
}

impl Serialize for ServerConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The short form when it says everything, so a configuration reads back as it was written.
        if self.weight == 1 && self.connection_budget.is_none() {
            return self.url.serialize(serializer);
        }
        #[derive(Serialize)]
        struct Full<'a> {
            url: &'a SecretUrl,
            weight: u32,
            #[serde(skip_serializing_if = "Option::is_none")]
            connection_budget: Option<u32>,
        }
        Full { url: &self.url, weight: self.weight, connection_budget: self.connection_budget }.serialize(serializer)
    }
}

/// Which server `tenant create` puts a new tenant on, among the active ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// The server with the fewest tenants.
    #[default]
    LeastTenants,
    /// The server whose tenant databases take the fewest bytes.
    LeastBytes,
    /// The server with the fewest tenants for its `weight`.
    Weighted,
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LeastTenants => "least_tenants",
            Self::LeastBytes => "least_bytes",
            Self::Weighted => "weighted",
        })
    }
}
