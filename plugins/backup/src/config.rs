//! `[backup]` in `tenancy.toml`, checked when the configuration is loaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tenancy_core::bucket::S3Config;
use tenancy_core::command::UsageError;
use tenancy_core::{Config, ConfigError};

use crate::archive::Identities;

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
    /// age recipients (`age1…` public keys) every new backup is encrypted to; empty, backups are
    /// not encrypted.
    pub encrypt_to: Vec<String>,
    /// The age identity file that decrypts backups for `verify` and `restore` (`--identity`
    /// overrides it). Keep it off the machine that makes the backups, if you can.
    pub identity_file: Option<PathBuf>,
    /// Keep backups in this S3-compatible bucket instead of `path` (which then holds only
    /// staging and scratch files).
    pub s3: Option<S3Config>,
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
            encrypt_to: Vec::new(),
            identity_file: None,
            s3: None,
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
        for (index, recipient) in backup.encrypt_to.iter().enumerate() {
            if let Err(reason) = recipient.parse::<age::x25519::Recipient>() {
                return Err(invalid(&format!("encrypt_to[{index}]"), format!("`{recipient}` is not an age recipient (age1…): {reason}")));
            }
        }
        if let Some(s3) = &backup.s3 {
            s3.check().map_err(|bad| invalid(&format!("s3.{}", bad.key), bad.message))?;
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

    /// The parsed [`BackupConfig::encrypt_to`] (checked when loaded).
    pub fn recipients(&self) -> Arc<[age::x25519::Recipient]> {
        self.encrypt_to.iter().filter_map(|recipient| recipient.parse().ok()).collect()
    }

    /// The identities that decrypt backups: from `flag` if given, else from `identity_file`; none
    /// if neither is set.
    ///
    /// # Errors
    /// A [`UsageError`] when the file cannot be read or holds no identity.
    pub fn identities(&self, config: &Config, flag: Option<&Path>) -> anyhow::Result<Arc<Identities>> {
        let Some(path) = flag.map(Path::to_owned).or_else(|| self.identity_file.as_deref().map(|path| config.resolve(path))) else {
            return Ok(Arc::new(Vec::new()));
        };
        let unreadable = |reason: String| {
            UsageError::new(format!("cannot read the age identity file `{}`: {reason}", path.display()), "age-keygen -o FILE makes one")
        };
        let file = age::IdentityFile::from_file(path.display().to_string()).map_err(|err| unreadable(err.to_string()))?;
        let identities = file.into_identities().map_err(|err| unreadable(err.to_string()))?;
        if identities.is_empty() {
            return Err(unreadable("it holds no identity".into()).into());
        }
        Ok(Arc::new(identities))
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
