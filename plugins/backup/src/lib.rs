//! The backup plugin: `tenancy backup create|list|verify|restore|prune`.
//!
//! A backup is one tenant's data, dumped by the engine's own tool (`pg_dump`, `mariadb-dump`,
//! SQLite's `VACUUM INTO`), streamed through zstd and BLAKE3 into a data file, with its files
//! (`ctx.files()`) packed into a tar archive sealed the same way, both published by a manifest
//! written last ([`manifest`], [`store`]). Link it into an application's binary:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     tenancy_cli::App::new().plugin(tenancy_backup::BackupPlugin).run()
//! }
//! ```

mod archive;
mod census;
mod commands;
pub mod config;
mod copier;
mod engine;
mod facts;
mod files;
pub mod manifest;
mod mysql;
mod postgres;
pub mod prune;
mod source;
mod sql;
mod sqlite;
pub mod store;
mod tools;

use std::sync::Arc;

use tenancy_core::command::{Command, Plugin, TenantFacts};
use tenancy_core::{Config, ConfigError};

pub use config::BackupConfig;

/// The plugin; register it with `App::plugin`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackupPlugin;

impl Plugin for BackupPlugin {
    fn name(&self) -> &str {
        "backup"
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn commands(&self) -> Vec<Arc<dyn Command>> {
        vec![Arc::new(commands::BackupCommand)]
    }

    fn config_section(&self) -> Option<&str> {
        Some(config::SECTION)
    }

    fn config_template(&self) -> Option<&str> {
        Some(config::TEMPLATE)
    }

    fn check_config(&self, config: &Config) -> Result<(), ConfigError> {
        BackupConfig::load(config).map(drop)
    }

    fn tenant_facts(&self) -> Vec<Arc<dyn TenantFacts>> {
        vec![Arc::new(facts::BackupFacts)]
    }

    fn tenant_copier(&self) -> Option<Arc<dyn tenancy_core::moves::TenantCopier>> {
        Some(Arc::new(copier::BackupCopier))
    }
}
