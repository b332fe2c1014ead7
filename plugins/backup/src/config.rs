//! `[backup]` in `tenancy.toml`, checked when the configuration is loaded.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tenancy_core::{Config, ConfigError};

use crate::prune::Retention;

/// The section's name.
pub const SECTION: &str = "backup";

/// The section as `tenancy init` writes it: the defaults, explained.
pub const TEMPLATE: &str = include_str!("backup.toml.template");

/// `[backup]`: where backups go, how they are compressed, and what `prune` keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// The folder of backups, relative to `tenancy.toml`'s folder.
    pub path: PathBuf,
    /// zstd level, 1–19.
    pub compression_level: i32,
    /// How long a restore waits for sessions using the tenant's tables, in seconds, before it
    /// gives up and changes nothing.
    pub lock_timeout_secs: u64,
    /// `prune`'s defaults.
    pub keep_last: u32,
    /// Days of which the newest backup is kept.
    pub keep_daily: u32,
    /// ISO weeks of which the newest backup is kept.
    pub keep_weekly: u32,
    /// Months of which the newest backup is kept.
    pub keep_monthly: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("backups"),
            compression_level: 3,
            lock_timeout_secs: 10,
            keep_last: 7,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 6,
        }
    }
}

impl BackupConfig {
    /// Reads and checks `[backup]`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the file or variable and the key.
    pub fn load(config: &Config) -> Result<Self, ConfigError> {
        let backup: Self = config.section(SECTION)?;
        let invalid = |key: &str, message: String| ConfigError::Invalid { origin: config.origin_of(&format!("{SECTION}.{key}")), message };
        if backup.path.as_os_str().is_empty() {
            return Err(invalid("path", "`path` must name a folder".into()));
        }
        if !(1..=19).contains(&backup.compression_level) {
            return Err(invalid("compression_level", format!("{} is not a zstd level from 1 to 19", backup.compression_level)));
        }
        if backup.lock_timeout_secs == 0 {
            return Err(invalid("lock_timeout_secs", "a restore must be allowed some time to take its locks: give 1 or more".into()));
        }
        Ok(backup)
    }

    /// The backups folder, resolved against the configuration's folder.
    pub fn root(&self, config: &Config) -> PathBuf {
        config.resolve(&self.path)
    }

    /// [`BackupConfig::lock_timeout_secs`].
    pub fn lock_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lock_timeout_secs)
    }

    /// What `prune` keeps without flags.
    pub fn retention(&self) -> Retention {
        Retention { last: self.keep_last, daily: self.keep_daily, weekly: self.keep_weekly, monthly: self.keep_monthly }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_template_holds_the_defaults() {
        #[derive(Deserialize)]
        struct File {
            backup: BackupConfig,
        }
        let file: File = toml::from_str(TEMPLATE).unwrap();
        assert_eq!(file.backup, BackupConfig::default());
    }

    #[test]
    fn defaults_are_valid() {
        let config = Config::defaults_at(Path::new("/srv/app"));
        let backup = BackupConfig::load(&config).unwrap();
        assert_eq!(backup.root(&config), Path::new("/srv/app/backups"));
    }
}
