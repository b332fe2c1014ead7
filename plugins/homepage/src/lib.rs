//! The homepage plugin: each tenant's `GET /` served from a template of its own, a shared default
//! page, or a redirect; the `tenancy homepage` commands; `tenant create --with-homepage`; and the
//! clean-up when a tenant is deleted.
//!
//! Link it into an application's binary:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     tenancy_cli::App::new().plugin(tenancy_homepage::HomepagePlugin).run()
//! }
//! ```
//!
//! Where pages live and how one is chosen: [`views`]. How they are served: the `/` and
//! `/assets/…` routes it adds to `tenancy serve` through [`Plugin::web_routes`].

mod commands;
pub mod config;
mod lifecycle;
mod render;
mod site;
pub mod views;

use std::sync::Arc;

use tenancy_core::command::{Command, Plugin, TenantCommand, TenantFlag};
use tenancy_core::provisioning::{ProvisioningStep, TenantHook};
use tenancy_core::web::PluginRoutes;
use tenancy_core::{Config, ConfigError, Tenancy};

pub use config::HomepageConfig;

/// `tenant create --with-homepage`.
pub const WITH_HOMEPAGE: &str = "with-homepage";
/// `tenant delete --keep-homepage`.
pub const KEEP_HOMEPAGE: &str = "keep-homepage";

/// The plugin; register it with `App::plugin`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HomepagePlugin;

impl Plugin for HomepagePlugin {
    fn name(&self) -> &str {
        "homepage"
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn commands(&self) -> Vec<Arc<dyn Command>> {
        vec![Arc::new(commands::HomepageCommand)]
    }

    fn provisioning_steps(&self) -> Vec<Arc<dyn ProvisioningStep>> {
        vec![Arc::new(lifecycle::CreateHomepage::default())]
    }

    fn tenant_hooks(&self) -> Vec<Arc<dyn TenantHook>> {
        vec![Arc::new(lifecycle::HomepageHook)]
    }

    fn tenant_flags(&self) -> Vec<TenantFlag> {
        vec![
            TenantFlag {
                command: TenantCommand::Create,
                name: WITH_HOMEPAGE,
                help: "Give the tenant a homepage on its primary domain, copied from `homepage.template`",
            },
            TenantFlag { command: TenantCommand::Delete, name: KEEP_HOMEPAGE, help: "Keep the tenant's homepage folders" },
        ]
    }

    fn config_section(&self) -> Option<&str> {
        Some(config::SECTION)
    }

    fn config_template(&self) -> Option<&str> {
        Some(config::TEMPLATE)
    }

    fn check_config(&self, config: &Config) -> Result<(), ConfigError> {
        HomepageConfig::load(config).map(drop)
    }

    fn web_routes(&self, tenancy: &Arc<Tenancy>) -> anyhow::Result<PluginRoutes> {
        let config = HomepageConfig::load(tenancy.config())?;
        if !config.enabled {
            return Ok(PluginRoutes::default());
        }
        let root = config.view_root(tenancy.config());
        Ok(site::routes(config, root, tenancy.registry().clone()))
    }
}
