//! Where backups are kept: a local folder ([`local`]) or an S3-compatible bucket ([`s3`]).
//!
//! Either way a backup is three things under `{tenant id}/`: its data file, the archive of the
//! tenant's files, and its manifest, and the manifest is written last, only once both are
//! complete: a crash, a full disk or a lost connection never leaves a backup that is listed. Data is always sealed into a local
//! staging file first (compressed, so the local disk needs the backup's size, not the
//! database's), then published. Only tenant ids and backup ids, both checked, ever name a file.

pub mod local;
pub mod s3;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tenancy_core::TenantId;

pub use local::LocalStore;
pub use s3::S3Store;

use crate::manifest::{BackupId, Manifest, ManifestError, Verification};

/// Staging files left by a killed run are removed by `prune` once they are this old.
pub const STALE_STAGING: Duration = Duration::from_secs(6 * 3600);

/// A data file being written.
#[derive(Debug)]
pub struct Staged {
    /// Where.
    pub path: PathBuf,
    /// Open for writing.
    pub file: File,
}

/// The written files of a backup, waiting to be published under the names its manifest gives.
#[derive(Debug, Clone)]
pub struct StagedBackup {
    /// The dump's: [`Manifest::data_file`].
    pub data: PathBuf,
    /// The files archive's: [`crate::manifest::FilesArchive::data_file`].
    pub files: Option<PathBuf>,
}

impl StagedBackup {
    /// Each staged file with the name it is published under.
    pub fn named<'a>(&'a self, manifest: &'a Manifest) -> Vec<(&'a Path, &'a str)> {
        let mut named = vec![(self.data.as_path(), manifest.data_file.as_str())];
        if let (Some(path), Some(files)) = (&self.files, &manifest.files) {
            named.push((path.as_path(), files.data_file.as_str()));
        }
        named
    }
}

/// Where a published backup's data is.
#[derive(Debug, Clone)]
pub enum DataRef {
    /// A file of the local store.
    File(PathBuf),
    /// An object of the bucket.
    Object(object_store::path::Path),
}

impl std::fmt::Display for DataRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Object(key) => write!(f, "{key}"),
        }
    }
}

/// A published backup.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its manifest, checked against where it was found.
    pub manifest: Manifest,
    /// Its data.
    pub data: DataRef,
    /// Its files archive, when it has one.
    pub files: Option<DataRef>,
}

impl Found {
    /// Its data file and files archive.
    pub fn parts(&self) -> impl Iterator<Item = &DataRef> {
        std::iter::once(&self.data).chain(self.files.as_ref())
    }
}

/// A backup that cannot be found or read, or a store that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No manifest of that id.
    #[error("there is no backup {id} in {root} (`tenancy backup list` shows them)")]
    Unknown {
        /// The id asked for.
        id: BackupId,
        /// The store searched.
        root: String,
    },
    /// A data file with no manifest: an interrupted backup, or a manifest deleted by hand.
    #[error(
        "backup {id} has no manifest (`{data}` is there without one): it was interrupted, or its manifest was removed; it cannot be trusted"
    )]
    NoManifest {
        /// The id.
        id: BackupId,
        /// The data file.
        data: String,
    },
    /// Its manifest is unusable.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Its data file is gone.
    #[error("backup {id}: its data file `{data}` is missing")]
    NoData {
        /// The id.
        id: BackupId,
        /// Where it should be.
        data: String,
    },
    /// The folder cannot be read or written.
    #[error("cannot {doing} `{path}`: {source}")]
    Io {
        /// What was being done.
        doing: &'static str,
        /// To what.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The bucket cannot be reached or refused a request.
    #[error("{doing} {location}: {message}")]
    Remote {
        /// What was being done.
        doing: &'static str,
        /// Bucket and key.
        location: String,
        /// The client's words, credentials never among them.
        message: String,
    },
}

/// A backup's data as a local file: the store's own file, or a copy fetched from the bucket
/// (removed when dropped).
pub enum Fetched {
    /// The local store's file.
    Local(PathBuf),
    /// Downloaded.
    Copy(tempfile::NamedTempFile),
}

impl Fetched {
    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            Self::Local(path) => path,
            Self::Copy(file) => file.path(),
        }
    }
}

/// The backups' home: always a local folder (staging and scratch files; the backups themselves
/// unless a bucket is configured), and a bucket if one is.
pub struct Store {
    local: LocalStore,
    bucket: Option<S3Store>,
}

impl Store {
    /// A store in `local`, publishing to `bucket` if given.
    pub fn new(local: LocalStore, bucket: Option<S3Store>) -> Self {
        Self { local, bucket }
    }

    /// `backups/` or `s3://bucket/prefix/`, for messages.
    pub fn describe(&self) -> String {
        match &self.bucket {
            Some(bucket) => bucket.describe(),
            None => format!("`{}`", self.local.root().display()),
        }
    }

    /// The local folder of `tenant` (staging files, SQLite snapshots).
    pub fn staging(&self, tenant: &TenantId) -> PathBuf {
        self.local.folder(tenant)
    }

    /// A local folder for large temporary files.
    ///
    /// # Errors
    /// When it cannot be created.
    pub fn scratch(&self) -> Result<PathBuf, StoreError> {
        self.local.scratch()
    }

    /// Creates the staging file of `tenant`'s data file `name`.
    ///
    /// # Errors
    /// When the local folder cannot be made or written (read-only, full).
    pub fn stage(&self, tenant: &TenantId, name: &str) -> Result<Staged, StoreError> {
        self.local.stage(tenant, name)
    }

    /// Publishes a sealed backup: the data files, then the manifest. The staging files are gone after.
    ///
    /// # Errors
    /// When a write fails; nothing is then listed.
    pub async fn publish(&self, staged: &StagedBackup, manifest: &Manifest) -> Result<(), StoreError> {
        match &self.bucket {
            None => self.local.publish(staged, manifest),
            Some(bucket) => {
                let published = bucket.publish(staged, manifest).await;
                self.local.discard(staged);
                published
            }
        }
    }

    /// Removes staging files after a failure.
    pub fn discard(&self, staged: &StagedBackup) {
        self.local.discard(staged);
    }

    /// Tenants that have backups.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        match &self.bucket {
            None => self.local.tenants(),
            Some(bucket) => bucket.tenants().await,
        }
    }

    /// The ids of `tenant`'s published backups, oldest first.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn ids(&self, tenant: &TenantId) -> Result<Vec<BackupId>, StoreError> {
        match &self.bucket {
            None => self.local.ids(tenant),
            Some(bucket) => bucket.ids(tenant).await,
        }
    }

    /// Backup `id` of `tenant`, its manifest read and checked.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn open(&self, tenant: &TenantId, id: &BackupId) -> Result<Found, StoreError> {
        match &self.bucket {
            None => self.local.open(tenant, id),
            Some(bucket) => bucket.open(tenant, id).await,
        }
    }

    /// Backup `id`, whichever tenant's it is.
    ///
    /// # Errors
    /// [`StoreError::Unknown`], [`StoreError::NoManifest`], or what [`Store::open`] says.
    pub async fn find(&self, id: &BackupId) -> Result<Found, StoreError> {
        match &self.bucket {
            None => self.local.find(id),
            Some(bucket) => bucket.find(id).await,
        }
    }

    /// Deletes a backup, manifest first.
    ///
    /// # Errors
    /// When it cannot be removed.
    pub async fn delete(&self, found: &Found) -> Result<(), StoreError> {
        match &self.bucket {
            None => self.local.delete(found),
            Some(bucket) => bucket.delete(found).await,
        }
    }

    /// Records that `found` verified.
    ///
    /// # Errors
    /// When the record cannot be written.
    pub async fn record_verification(&self, found: &Found, verification: &Verification) -> Result<(), StoreError> {
        match &self.bucket {
            None => self.local.record_verification(found, verification),
            Some(bucket) => bucket.record_verification(found, verification).await,
        }
    }

    /// The last verification of backup `id` of `tenant`, if any.
    pub async fn verification(&self, tenant: &TenantId, id: &BackupId) -> Option<Verification> {
        match &self.bucket {
            None => self.local.verification(tenant, id),
            Some(bucket) => bucket.verification(tenant, id).await,
        }
    }

    /// A data file or files archive as a local file.
    ///
    /// # Errors
    /// When it cannot be fetched.
    pub async fn fetch(&self, data: &DataRef) -> Result<Fetched, StoreError> {
        match (data, &self.bucket) {
            (DataRef::File(path), _) => Ok(Fetched::Local(path.clone())),
            (DataRef::Object(key), Some(bucket)) => bucket.fetch(key, &self.scratch()?).await.map(Fetched::Copy),
            (DataRef::Object(key), None) => {
                Err(StoreError::Remote { doing: "fetch", location: key.to_string(), message: "no bucket is configured".into() })
            }
        }
    }

    /// Removes staging files older than `age` in `tenant`'s local folder.
    pub fn sweep_staging(&self, tenant: &TenantId, age: Duration) -> usize {
        self.local.sweep_staging(tenant, age)
    }
}
