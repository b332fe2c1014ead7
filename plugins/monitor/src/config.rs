//! `[monitor]` in `tenancy.toml`, checked when the configuration is loaded.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tenancy_core::{Config, ConfigError};

/// The section's name.
pub const SECTION: &str = "monitor";

/// The section as `tenancy init` writes it: the defaults, explained.
pub const TEMPLATE: &str = include_str!("monitor.toml.template");

/// The most per-tenant series `tenant_series` may ask for.
pub const MAX_TENANT_SERIES: usize = 100;

/// `[monitor]`: where metrics are served and how the fleet is sampled for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Where `monitor serve` listens.
    pub listen: SocketAddr,
    /// Seconds between fleet samples.
    pub sample_interval_secs: u64,
    /// Queries at once while sampling.
    pub sample_queries: usize,
    /// Per-tenant series for the largest tenants; 0 for none.
    pub tenant_series: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([127, 0, 0, 1], 9464)), sample_interval_secs: 15, sample_queries: 2, tenant_series: 0 }
    }
}

impl MonitorConfig {
    /// Reads and checks `[monitor]`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the file or variable and the key.
    pub fn load(config: &Config) -> Result<Self, ConfigError> {
        let monitor: Self = config.section(SECTION)?;
        let invalid = |key: &str, message: String| ConfigError::Invalid { origin: config.origin_of(&format!("{SECTION}.{key}")), message };
        if !(1..=3600).contains(&monitor.sample_interval_secs) {
            return Err(invalid("sample_interval_secs", format!("{} is not between 1 and 3600 seconds", monitor.sample_interval_secs)));
        }
        if !(1..=64).contains(&monitor.sample_queries) {
            return Err(invalid("sample_queries", format!("{} is not between 1 and 64", monitor.sample_queries)));
        }
        if monitor.tenant_series > MAX_TENANT_SERIES {
            return Err(invalid(
                "tenant_series",
                format!(
                    "{} is more than {MAX_TENANT_SERIES}: per-tenant series are for the largest few tenants, the rest are summed",
                    monitor.tenant_series
                ),
            ));
        }
        Ok(monitor)
    }

    /// Time between samples.
    pub fn sample_interval(&self) -> Duration {
        Duration::from_secs(self.sample_interval_secs)
    }
}
