//! Per-tenant files: [`TenantFiles`], a tenant's own folder (`{files.root}/{tenant_id}/files`,
//! or `{prefix}/{tenant_id}/files/` in the bucket of `[files.s3]`) that code inside its context
//! reaches through `ctx.files()`, and nothing else can be reached through.
//!
//! Every path is checked before it touches the disk or the bucket ([`FilePath`]): relative,
//! `/`-separated, no `.` or `..`, no empty segment, no NUL, no backslash, no drive letter. The
//! folder keeps out links planted under it ([`disk`]); the bucket has none ([`bucket`]).

#[cfg(feature = "s3")]
mod bucket;
mod disk;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::{Bootstrapper, BoxError, Config, ConfigError, ContextBuilder, Tenancy, Tenant, TenantId};

/// The longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 1024;

/// Temporary files of unfinished writes start with this; lists leave them out.
const PARTIAL_PREFIX: &str = ".tenancy-partial-";

/// A checked relative path inside a tenant's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePath(String);

impl FilePath {
    /// Checks `input`; see the module documentation for the rules.
    ///
    /// # Errors
    /// [`FilesError::BadPath`] naming the input and the rule it breaks.
    pub fn parse(input: &str) -> Result<Self, FilesError> {
        let bad = |why: &'static str| FilesError::BadPath { path: input.escape_debug().to_string(), why };
        if input.is_empty() {
            return Err(bad("it is empty"));
        }
        if input.len() > MAX_PATH_LEN {
            return Err(bad("it is longer than 1024 bytes"));
        }
        if input.contains('\0') {
            return Err(bad("it contains a NUL byte"));
        }
        if input.contains('\\') {
            return Err(bad("it contains a backslash (use `/`)"));
        }
        if input.starts_with('/') {
            return Err(bad("it is absolute"));
        }
        if input.as_bytes().get(1) == Some(&b':') {
            return Err(bad("it starts with a drive letter"));
        }
        for segment in input.split('/') {
            match segment {
                "" => return Err(bad("it has an empty segment (`//` or a trailing `/`)")),
                "." | ".." => return Err(bad("it has a `.` or `..` segment")),
                s if s.starts_with(PARTIAL_PREFIX) => return Err(bad("that name is kept for unfinished writes")),
                s if s.chars().any(char::is_control) => return Err(bad("it contains a control character")),
                _ => {}
            }
        }
        Ok(Self(input.to_owned()))
    }

    /// The path as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last segment.
    fn name(&self) -> &str {
        self.segments().last().unwrap_or_default()
    }
}

/// One entry of [`TenantFiles::list`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileEntry {
    /// Its path from the tenant's root.
    pub path: String,
    /// Whether it is a folder.
    pub is_dir: bool,
    /// Its size in bytes (0 for a folder).
    pub size: u64,
}

/// What went wrong with a tenant's file.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The path breaks a rule; nothing was touched.
    #[error("invalid file path \"{path}\": {why}")]
    BadPath {
        /// The path as given (escaped).
        path: String,
        /// The rule.
        why: &'static str,
    },
    /// A symbolic link was found on the way: refused, whatever it points at.
    #[error("`{path}` goes through a symbolic link, which tenant files never contain")]
    Link {
        /// The path up to the link.
        path: String,
    },
    /// The file (or folder) is not there.
    #[error("no file `{path}`")]
    NotFound {
        /// The path.
        path: String,
    },
    /// The bucket could not be reached or refused.
    #[error("cannot {action} `{path}` in {message}")]
    Remote {
        /// What was being done.
        action: &'static str,
        /// The path from the tenant's root.
        path: String,
        /// The bucket and the client's words (never a credential).
        message: String,
    },
    /// The disk refused.
    #[error("cannot {action} `{path}`")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path from the tenant's root.
        path: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
}

impl FilesError {
    /// Whether this comes from the path given (a caller's bad input) rather than the disk.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::BadPath { .. } | Self::Link { .. })
    }
}

/// Where every tenant's files are: made once from `[files]`, shared by every [`TenantFiles`].
#[derive(Debug, Clone)]
pub struct FilesStorage(Storage);

#[derive(Debug, Clone)]
enum Storage {
    /// `files.root`, resolved.
    Disk(Arc<Path>),
    /// `[files.s3]`.
    #[cfg(feature = "s3")]
    Bucket(Arc<bucket::FilesBucket>),
}

impl FilesStorage {
    /// The storage `[files]` configures.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the bucket's client cannot be made from it.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        #[cfg(feature = "s3")]
        if let Some(s3) = &config.files.s3 {
            let bucket =
                bucket::FilesBucket::new(s3).map_err(|message| ConfigError::Invalid { origin: "key `files.s3`".into(), message })?;
            return Ok(Self(Storage::Bucket(Arc::new(bucket))));
        }
        Ok(Self::on_disk(&config.resolve(&config.files.root)))
    }

    /// Files in folders under `root`.
    pub fn on_disk(root: &Path) -> Self {
        Self(Storage::Disk(Arc::from(root)))
    }
}

/// A tenant's files. Cheap to make and clone: every context gets one, and nothing is made until
/// a call needs it.
#[derive(Debug, Clone)]
pub struct TenantFiles {
    storage: FilesStorage,
    id: TenantId,
}

impl TenantFiles {
    /// The files of the tenant `id` in `storage`.
    pub fn new(storage: FilesStorage, id: TenantId) -> Self {
        Self { storage, id }
    }

    /// The tenant's folder on disk (made on the first write); `None` when its files are in a bucket.
    pub fn local_root(&self) -> Option<PathBuf> {
        match &self.storage.0 {
            Storage::Disk(base) => Some(tenant_folder(base, &self.id).join("files")),
            #[cfg(feature = "s3")]
            Storage::Bucket(_) => None,
        }
    }

    /// Where the files are, for messages: a folder, or `s3://bucket/prefix/{id}/files`.
    pub fn describe(&self) -> String {
        match &self.storage.0 {
            Storage::Disk(base) => tenant_folder(base, &self.id).join("files").display().to_string(),
            #[cfg(feature = "s3")]
            Storage::Bucket(bucket) => bucket.describe(&self.id),
        }
    }

    /// Writes `bytes` to `path` (making its folders), replacing any file there at once.
    ///
    /// # Errors
    /// A bad path, a link on the way, a folder where the file should be (or a file where a
    /// folder should be), or the disk or the bucket refusing.
    pub async fn write(&self, path: &str, bytes: impl AsRef<[u8]>) -> Result<(), FilesError> {
        let (path, bytes) = (FilePath::parse(path)?, bytes.as_ref().to_vec());
        match &self.storage.0 {
            Storage::Disk(_) => self.on_disk(move |root| disk::write(&root, &path, &bytes)).await,
            #[cfg(feature = "s3")]
            Storage::Bucket(bucket) => bucket.write(&self.id, &path, bytes).await,
        }
    }

    /// The contents of the file at `path`.
    ///
    /// # Errors
    /// [`FilesError::NotFound`] when there is none; a bad path or a link on the way.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, FilesError> {
        let path = FilePath::parse(path)?;
        match &self.storage.0 {
            Storage::Disk(_) => self.on_disk(move |root| disk::read(&root, &path)).await,
            #[cfg(feature = "s3")]
            Storage::Bucket(bucket) => bucket.read(&self.id, &path).await,
        }
    }

    /// Whether a file or folder is at `path`.
    ///
    /// # Errors
    /// A bad path or a link on the way.
    pub async fn exists(&self, path: &str) -> Result<bool, FilesError> {
        let path = FilePath::parse(path)?;
        match &self.storage.0 {
            Storage::Disk(_) => self.on_disk(move |root| disk::exists(&root, &path)).await,
            #[cfg(feature = "s3")]
            Storage::Bucket(bucket) => bucket.exists(&self.id, &path).await,
        }
    }

    /// What is in the folder `dir` (`""` for the root), sorted by name; an absent folder is empty.
    ///
    /// # Errors
    /// A bad path, a link on the way or in the folder, or the disk or the bucket refusing.
    pub async fn list(&self, dir: &str) -> Result<Vec<FileEntry>, FilesError> {
        let dir = (!dir.is_empty()).then(|| FilePath::parse(dir)).transpose()?;
        match &self.storage.0 {
            Storage::Disk(_) => self.on_disk(move |root| disk::list(&root, dir.as_ref())).await,
            #[cfg(feature = "s3")]
            Storage::Bucket(bucket) => bucket.list(&self.id, dir.as_ref()).await,
        }
    }

    /// Every file (not folder), at any depth, sorted by path: what a backup takes.
    ///
    /// # Errors
    /// A link anywhere, or the disk or the bucket refusing.
    pub async fn walk(&self) -> Result<Vec<FileEntry>, FilesError> {
        match &self.storage.0 {
            Storage::Disk(_) => self.on_disk(|root| disk::walk_all(&root)).await,
            #[cfg(feature = "s3")]
            Storage::Bucket(bucket) => bucket.walk_all(&self.id).await,
        }
    }

    /// Removes the file or the folder (with everything in it) at `path`; says whether there was one.
    ///
    /// # Errors
    /// A bad path, a link on the way, or the disk or the bucket refusing.
    pub async fn delete(&self, path: &str) -> Result<bool, FilesError> {
        let path = FilePath::parse(path)?;
        match &self.storage.0 {
            Storage::Disk(_) => self.on_disk(move |root| disk::delete(&root, &path)).await,
            #[cfg(feature = "s3")]
            Storage::Bucket(bucket) => bucket.delete(&self.id, &path).await,
        }
    }

    /// Makes the tenant's files exactly those in the local folder `source` (a restore): on disk
    /// the new folder is copied beside the old and swapped in by renames; in a bucket each file
    /// is put and the rest deleted, and a rerun after a failure finishes the job. Every name in
    /// `source` must be a valid [`FilePath`] segment, and it must hold only files and folders.
    ///
    /// # Errors
    /// A bad name or a link in `source`, or the disk or the bucket refusing.
    pub async fn replace_with(&self, source: &Path) -> Result<(), FilesError> {
        let source = source.to_owned();
        match &self.storage.0 {
            Storage::Disk(_) => {
                self.on_disk(move |root| {
                    local_tree(&source)?;
                    disk::replace_with(&root, &source)
                })
                .await
            }
            #[cfg(feature = "s3")]
            Storage::Bucket(bucket) => bucket.replace_with(&self.id, &source).await,
        }
    }

    /// Removes every file of the tenant (and its folder); there being none is not an error.
    ///
    /// # Errors
    /// The disk or the bucket refusing.
    pub async fn delete_all(&self) -> Result<(), FilesError> {
        match &self.storage.0 {
            Storage::Disk(base) => {
                let folder = tenant_folder(base, &self.id);
                match tokio::fs::remove_dir_all(&folder).await {
                    Err(err) if err.kind() != io::ErrorKind::NotFound => {
                        Err(FilesError::Io { action: "remove", path: folder.display().to_string(), source: err })
                    }
                    _ => Ok(()),
                }
            }
            #[cfg(feature = "s3")]
            Storage::Bucket(bucket) => bucket.delete_all(&self.id).await.map(drop),
        }
    }

    /// Runs `work` on the tenant's folder on a blocking thread.
    async fn on_disk<T: Send + 'static>(
        &self,
        work: impl FnOnce(PathBuf) -> Result<T, FilesError> + Send + 'static,
    ) -> Result<T, FilesError> {
        let root = self.local_root().expect("called for files on disk");
        tokio::task::spawn_blocking(move || work(root)).await.unwrap_or_else(|join| {
            Err(FilesError::Io { action: "finish", path: String::new(), source: io::Error::other(join.to_string()) })
        })
    }
}

/// `{root}/{tenant_id}`: everything of the tenant's on disk outside its database.
fn tenant_folder(root: &Path, id: &TenantId) -> PathBuf {
    root.join(id.to_string())
}

/// The files under the local folder `source`, each name checked as a [`FilePath`]; a link or a
/// special file is refused.
fn local_tree(source: &Path) -> Result<Vec<FilePath>, FilesError> {
    disk::walk_all(source)?.into_iter().map(|entry| FilePath::parse(&entry.path)).collect()
}

/// Attaches the tenant's [`TenantFiles`] to every context (`ctx.files()`). Always installed:
/// nothing is made on disk until the first write.
pub struct FilesBootstrapper {
    storage: FilesStorage,
}

impl FilesBootstrapper {
    /// Tenants' files in `storage`.
    pub fn new(storage: FilesStorage) -> Self {
        Self { storage }
    }
}

#[async_trait]
impl Bootstrapper for FilesBootstrapper {
    fn name(&self) -> &str {
        "files"
    }

    fn attaches_only(&self) -> bool {
        true
    }

    async fn bootstrap(&self, ctx: &mut ContextBuilder) -> Result<(), BoxError> {
        let files = TenantFiles::new(self.storage.clone(), ctx.tenant().id);
        ctx.insert(files);
        Ok(())
    }
}

impl Tenancy {
    /// The files of `tenant`, outside any context (an operator's script, a backup).
    pub fn files_of(&self, tenant: &Tenant) -> TenantFiles {
        TenantFiles::new(self.files_storage().clone(), tenant.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_the_root_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            ".",
            "..",
            "a//b",
            "a/",
            "a\\b",
            "..\\x",
            "C:x",
            "c:/x",
            "a\0b",
            "a/\u{1b}b",
            ".tenancy-partial-x",
        ] {
            assert!(matches!(FilePath::parse(bad), Err(FilesError::BadPath { .. })), "{bad:?} was accepted");
        }
        assert!(FilePath::parse(&"a".repeat(1025)).is_err());
        for good in ["a", "invoices/2026/03.pdf", ".hidden", "a..b", "ünï/cödé.txt", "xy:z"] {
            assert_eq!(FilePath::parse(good).unwrap().as_str(), good);
        }
    }
}
