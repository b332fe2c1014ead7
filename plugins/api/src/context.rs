//! The data a plugin receives and declares, as serde types. They cross the boundary as JSON, so
//! a plugin never shares a Rust type's layout with the host; new fields get defaults, so an older
//! plugin keeps reading a newer host's context within one [`crate::ABI_VERSION`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One command a plugin adds to `tenancy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpec {
    /// The subcommand, e.g. `hello` for `tenancy hello`.
    pub name: String,
    /// One line for `tenancy --help`.
    pub about: String,
    /// Whether the command takes `--tenant T` (repeatable) and `--all`: if so the host resolves
    /// them against the registry before the run (an unknown tenant is the host's usage error) and
    /// puts those tenants in [`PluginContext::tenants`].
    #[serde(default)]
    pub tenants: bool,
}

impl CommandSpec {
    /// A command that takes no tenants.
    pub fn new(name: impl Into<String>, about: impl Into<String>) -> Self {
        Self { name: name.into(), about: about.into(), tenants: false }
    }

    /// The command takes `--tenant` and `--all`, resolved by the host.
    #[must_use]
    pub fn with_tenants(mut self) -> Self {
        self.tenants = true;
        self
    }
}

/// What the host tells a plugin about the run: enough to open its own connections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginContext {
    /// The `tenancy.toml` that was read, if any.
    pub config_file: Option<PathBuf>,
    /// The whole configuration, as the host loaded it (defaults and environment overrides applied).
    pub config: serde_json::Value,
    /// The central registry's connection URL; relative SQLite paths already resolved.
    pub registry_url: String,
    /// The tenants the command was given with `--tenant` or `--all`, in the order given.
    pub tenants: Vec<TenantInfo>,
    /// How the user asked for output.
    pub output: OutputOptions,
}

/// A tenant, with how to reach its database.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantInfo {
    /// The tenant's id (a UUID).
    pub id: String,
    /// Its name.
    pub name: String,
    /// `creating`, `active`, `inactive` or `suspended`.
    pub status: String,
    /// Its domains, the primary first.
    pub domains: Vec<String>,
    /// Its database's name (a schema's name under schema isolation).
    pub database: String,
    /// A connection URL for its database, credentials included: keep it out of output.
    pub database_url: String,
    /// Under PostgreSQL schema isolation, the schema to put on the `search_path`.
    pub schema: Option<String>,
}

/// The global output flags the user gave.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OutputOptions {
    /// `--json`: print JSON objects, one per line.
    pub json: bool,
    /// `--quiet`: print only data and errors.
    pub quiet: bool,
    /// Whether colour is allowed (no `--no-color`, no `NO_COLOR`).
    pub color: bool,
}
