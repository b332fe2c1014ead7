//! What a backup is: its id, and the manifest that describes (and publishes) its data file.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenancy_core::TenantId;

/// The manifest format this version writes; newer ones are refused rather than misread. Format 2
/// added the tenant's files ([`Manifest::files`]): a format-1 reader would restore the database
/// and silently leave the files, so it refuses them.
pub const FORMAT_VERSION: u32 = 2;

/// A backup's id: its UTC creation time to the millisecond and a random suffix,
/// `20261202T170501.123Z-3f9a1c`. Sorting ids sorts backups by age. Only ASCII letters, digits,
/// `.` and `-`: it names files, so it is checked wherever it is read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

impl BackupId {
    /// A new id for a backup made `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        let random = uuid::Uuid::now_v7().simple().to_string();
        Self(format!("{}-{}", at.format("%Y%m%dT%H%M%S%.3fZ"), &random[random.len() - 6..]))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Text that is not a backup id.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a backup id (they look like 20261202T170501.123Z-3f9a1c; `tenancy backup list` shows them)")]
pub struct BadBackupId(pub String);

impl FromStr for BackupId {
    type Err = BadBackupId;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let well_formed = (8..=64).contains(&input.len())
            && input.starts_with(|c: char| c.is_ascii_digit())
            && input.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !input.contains("..");
        if well_formed { Ok(Self(input.to_owned())) } else { Err(BadBackupId(input.escape_debug().to_string())) }
    }
}

impl TryFrom<String> for BackupId {
    type Error = BadBackupId;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> Self {
        id.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the dump inside the data file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpFormat {
    /// `pg_dump --format=custom`.
    PgCustom,
    /// `mariadb-dump` SQL text.
    MysqlSql,
    /// A SQLite database file made by `VACUUM INTO`.
    SqliteFile,
}

impl DumpFormat {
    /// The data file's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::PgCustom => "pgdump.zst",
            Self::MysqlSql => "sql.zst",
            Self::SqliteFile => "sqlite.zst",
        }
    }
}

/// The tenant a backup was made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantInfo {
    /// Its id: the folder the backup is in.
    pub id: TenantId,
    /// Its name then.
    pub name: String,
    /// Its domains then, primary first.
    pub domains: Vec<String>,
}

/// Where the data came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// `postgres`, `mysql` or `sqlite`.
    pub driver: String,
    /// `database`, `schema` or `file`.
    pub isolation: String,
    /// The database, schema or file name the data was in (a restore renames the schema).
    pub container: String,
    /// The server's version (`15.20`, `10.11.6-MariaDB`, SQLite `3.46.0`).
    pub server_version: String,
    /// The dump program and its version, or `VACUUM INTO`.
    pub tool: String,
    /// How the dump is written.
    pub format: DumpFormat,
}

/// The stored file's checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    /// Always `blake3` in this format version.
    pub algorithm: String,
    /// Lower-case hex.
    pub hex: String,
}

/// How a data file is encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// `age` (age-encryption.org/v1).
    pub scheme: String,
    /// The public keys it is encrypted to: one of their identities decrypts it.
    pub recipients: Vec<String>,
}

/// The tenant's files (`ctx.files()`), as a tar archive sealed as the dump is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesArchive {
    /// The archive's name in the tenant's folder.
    pub data_file: String,
    /// How many files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes of the archive before compression.
    pub archive_bytes: u64,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// Of the stored bytes.
    pub checksum: Checksum,
}

/// A backup's manifest, stored beside its data file and written last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// The backup.
    pub id: BackupId,
    /// Whose.
    pub tenant: TenantInfo,
    /// From where, with what.
    pub source: SourceInfo,
    /// The tenant's applied migrations, `migrator/name`, in apply order.
    pub migrations: Vec<String>,
    /// Rows per table in the dumped snapshot (PostgreSQL and SQLite exactly; MySQL counted in a
    /// consistent snapshot taken just before the dump's).
    pub tables: BTreeMap<String, u64>,
    /// The data file's name in the tenant's folder.
    pub data_file: String,
    /// Bytes of the dump before compression.
    pub dump_bytes: u64,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// Of the stored bytes.
    pub checksum: Checksum,
    /// `zstd`.
    pub compression: String,
    /// The zstd level.
    pub compression_level: i32,
    /// Set when the data file is encrypted (the files archive is too).
    #[serde(default)]
    pub encryption: Option<Encryption>,
    /// The tenant's files; absent from backups of format 1, made before files were backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesArchive>,
    /// `tenancy-backup` and its version.
    pub made_by: String,
    /// When the dump started.
    pub created_at: DateTime<Utc>,
    /// How long the backup took.
    pub elapsed_ms: u64,
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of this shape.
    #[error("the manifest of backup {id} cannot be read: {reason}")]
    Malformed {
        /// Which backup (from the file name).
        id: String,
        /// The parser's words.
        reason: String,
    },
    /// Written by a newer version.
    #[error("backup {id} has manifest format {found}; this tenancy reads format {FORMAT_VERSION} (upgrade tenancy to use it)")]
    TooNew {
        /// Which backup.
        id: BackupId,
        /// Its format.
        found: u32,
    },
    /// Its contents do not match where it was found.
    #[error("backup {id} is inconsistent: {reason}")]
    Inconsistent {
        /// Which backup.
        id: BackupId,
        /// What does not match.
        reason: String,
    },
}

impl Manifest {
    /// Bytes stored: the data file's and the files archive's.
    pub fn stored_total(&self) -> u64 {
        self.stored_bytes + self.files.as_ref().map_or(0, |files| files.stored_bytes)
    }

    /// Reads the manifest of backup `id`, found in the folder of tenant `folder`, and checks that it
    /// says so: a manifest copied or moved into another tenant's folder is refused, and its data
    /// file name cannot point anywhere but beside it.
    ///
    /// # Errors
    /// [`ManifestError`].
    pub fn parse(bytes: &[u8], id: &BackupId, folder: &TenantId) -> Result<Self, ManifestError> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|err| ManifestError::Malformed { id: id.to_string(), reason: err.to_string() })?;
        if manifest.format_version > FORMAT_VERSION {
            return Err(ManifestError::TooNew { id: id.clone(), found: manifest.format_version });
        }
        let inconsistent = |reason: String| ManifestError::Inconsistent { id: id.clone(), reason };
        if &manifest.id != id {
            return Err(inconsistent(format!("its manifest names backup {}", manifest.id)));
        }
        if &manifest.tenant.id != folder {
            return Err(inconsistent(format!(
                "its manifest is for tenant {}, but it is in the folder of tenant {folder}",
                manifest.tenant.id
            )));
        }
        let expected = data_file_name(id, manifest.source.format, manifest.encryption.is_some());
        if manifest.data_file != expected {
            return Err(inconsistent(format!("its data file is `{}`, expected `{expected}`", manifest.data_file.escape_debug())));
        }
        if let Some(files) = &manifest.files {
            let expected = files_file_name(id, manifest.encryption.is_some());
            if files.data_file != expected {
                return Err(inconsistent(format!("its files archive is `{}`, expected `{expected}`", files.data_file.escape_debug())));
            }
        }
        Ok(manifest)
    }
}

/// `{id}.{extension}`, and `.age` when encrypted.
pub fn data_file_name(id: &BackupId, format: DumpFormat, encrypted: bool) -> String {
    format!("{id}.{}{}", format.extension(), if encrypted { ".age" } else { "" })
}

/// `{id}.files.tar.zst`, and `.age` when encrypted.
pub fn files_file_name(id: &BackupId, encrypted: bool) -> String {
    format!("{id}.files.tar.zst{}", if encrypted { ".age" } else { "" })
}

/// `{id}.manifest.json`.
pub fn manifest_file_name(id: &BackupId) -> String {
    format!("{id}.manifest.json")
}

/// The file recording that backup `id` was last verified: `{id}.verified.json`.
pub fn verification_file_name(id: &BackupId) -> String {
    format!("{id}.verified.json")
}

/// What `backup verify` records about a backup it found sound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// When.
    pub verified_at: DateTime<Utc>,
    /// Whether a trial restore was part of it.
    pub restore_test: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_never_leave_the_folder() {
        let earlier = BackupId::new(DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        let later = BackupId::new(DateTime::from_timestamp(1_700_000_001, 0).unwrap());
        assert!(earlier < later);
        assert_eq!(earlier.as_str().parse::<BackupId>().unwrap(), earlier);
        for bad in ["../etc/passwd", "2026/x", "", "20261202T170501Z-..", "abc", "2026 1202", "2026120\0"] {
            assert!(bad.parse::<BackupId>().is_err(), "{bad:?} was accepted");
        }
    }
}
