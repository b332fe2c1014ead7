//! The monitor plugin: `tenancy monitor health|stats|watch|serve`.
//!
//! Every figure is measured: a round trip to each tenant's database, sizes from the servers'
//! catalogs (one query per server: [`census`]), rows and cache entries from inside each tenant.
//! Core records counters and histograms through the `metrics` facade ([`tenancy_core::metrics`]);
//! this plugin installs the Prometheus recorder, samples fleet gauges in the background and
//! serves `/metrics`, by `monitor serve` and on the central domains of `tenancy serve`. Link it
//! into an application's binary:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     tenancy_cli::App::new().plugin(tenancy_monitor::MonitorPlugin).run()
//! }
//! ```

pub mod census;
mod commands;
pub mod config;
pub mod exporter;
pub mod health;
pub mod snapshot;
pub mod stats;
mod view;

use std::sync::Arc;

use axum::routing::get;
use tenancy_core::command::{Command, Plugin};
use tenancy_core::web::PluginRoutes;
use tenancy_core::{Config, ConfigError, Tenancy};

pub use config::MonitorConfig;

/// The plugin; register it with `App::plugin`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MonitorPlugin;

impl Plugin for MonitorPlugin {
    fn name(&self) -> &str {
        "monitor"
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn commands(&self) -> Vec<Arc<dyn Command>> {
        vec![Arc::new(commands::MonitorCommand)]
    }

    fn config_section(&self) -> Option<&str> {
        Some(config::SECTION)
    }

    fn config_template(&self) -> Option<&str> {
        Some(config::TEMPLATE)
    }

    fn check_config(&self, config: &Config) -> Result<(), ConfigError> {
        MonitorConfig::load(config).map(drop)
    }

    /// `/metrics` on the central domains (never on a tenant's: the figures are the fleet's), with
    /// the fleet sampled while the server runs.
    fn web_routes(&self, tenancy: &Arc<Tenancy>) -> anyhow::Result<PluginRoutes> {
        let config = MonitorConfig::load(tenancy.config())?;
        let handle = exporter::recorder(&config)?;
        let sampler = Arc::new(exporter::Sampler::start(tenancy.clone(), config, handle.clone()));
        Ok(PluginRoutes::default().central(
            "/metrics",
            get(move || {
                // The route holds the sampler: it samples as long as the server can be scraped.
                let _sampling = &sampler;
                std::future::ready(exporter::scrape(&handle))
            }),
        ))
    }
}
