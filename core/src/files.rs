//! Per-tenant files: [`TenantFiles`], a folder of the tenant's own (`{files.root}/{tenant_id}/files`)
//! that code inside its context reaches through `ctx.files()`, and nothing else can be reached
//! through.
//!
//! Every path is checked before it touches the disk ([`FilePath`]): relative, `/`-separated, no
//! `.` or `..`, no empty segment, no NUL, no backslash, no drive letter. On the way down each
//! existing segment is looked at without following links, and a symbolic link anywhere under the
//! root is refused: this API never makes one, so one found there was put there to lead out.
//! Writes go to a temporary file beside the target and are renamed over it, so a reader never
//! sees half a file and a crash leaves the old one.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::{Bootstrapper, BoxError, ContextBuilder, Tenancy, Tenant, TenantId};

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

/// A tenant's files, rooted at `{files.root}/{tenant_id}/files`. Cheap to make and clone: every
/// context gets one, and the folder's path is only worked out when a call uses it.
#[derive(Debug, Clone)]
pub struct TenantFiles {
    /// `files.root`, resolved; shared by every tenant's.
    base: Arc<Path>,
    id: TenantId,
}

impl TenantFiles {
    /// The files of the tenant `id` under `base` (`files.root`, resolved).
    pub fn new(base: Arc<Path>, id: TenantId) -> Self {
        Self { base, id }
    }

    /// The tenant's folder on disk (made on the first write).
    pub fn root(&self) -> PathBuf {
        tenant_folder(&self.base, &self.id).join("files")
    }

    /// Writes `bytes` to `path` (making its folders), replacing any file there at once.
    ///
    /// # Errors
    /// A bad path, a link on the way, a folder where the file should be, or the disk refusing.
    pub async fn write(&self, path: &str, bytes: impl AsRef<[u8]>) -> Result<(), FilesError> {
        let path = FilePath::parse(path)?;
        let (root, bytes) = (self.root(), bytes.as_ref().to_vec());
        blocking(move || {
            let parent = walk(&root, &path, Walk::MakeFolders)?;
            let name = path.segments().last().unwrap_or_default();
            let target = parent.join(name);
            refuse_link(&target, &path)?;
            let partial = parent.join(format!("{PARTIAL_PREFIX}{}", uuid::Uuid::now_v7().simple()));
            let written = std::fs::write(&partial, &bytes).and_then(|()| std::fs::rename(&partial, &target));
            written.map_err(|source| {
                let _ = std::fs::remove_file(&partial);
                io_error("write", &path, source)
            })
        })
        .await
    }

    /// The contents of the file at `path`.
    ///
    /// # Errors
    /// [`FilesError::NotFound`] when there is none; a bad path or a link on the way.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, FilesError> {
        let path = FilePath::parse(path)?;
        let root = self.root();
        blocking(move || std::fs::read(existing(&root, &path)?).map_err(|source| io_error("read", &path, source))).await
    }

    /// Whether a file or folder is at `path`.
    ///
    /// # Errors
    /// A bad path or a link on the way.
    pub async fn exists(&self, path: &str) -> Result<bool, FilesError> {
        match self.metadata(path).await {
            Ok(_) => Ok(true),
            Err(FilesError::NotFound { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// What is in the folder `dir` (`""` for the root), sorted by name; an absent folder is empty.
    ///
    /// # Errors
    /// A bad path, a link on the way or in the folder, or the disk refusing.
    pub async fn list(&self, dir: &str) -> Result<Vec<FileEntry>, FilesError> {
        let (root, dir) = (self.root(), (!dir.is_empty()).then(|| FilePath::parse(dir)).transpose()?);
        blocking(move || {
            let folder = match &dir {
                None => root.to_path_buf(),
                Some(dir) => match existing(&root, dir) {
                    Ok(folder) => folder,
                    Err(FilesError::NotFound { .. }) => return Ok(Vec::new()),
                    Err(err) => return Err(err),
                },
            };
            let shown = dir.as_ref().map(FilePath::as_str).unwrap_or("");
            let entries = match std::fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(source) => return Err(FilesError::Io { action: "list", path: shown.to_owned(), source }),
            };
            let mut found = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|source| FilesError::Io { action: "list", path: shown.to_owned(), source })?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(PARTIAL_PREFIX) {
                    continue;
                }
                let path = if shown.is_empty() { name } else { format!("{shown}/{name}") };
                let meta = entry.metadata().map_err(|source| FilesError::Io { action: "list", path: path.clone(), source })?;
                if meta.file_type().is_symlink() {
                    return Err(FilesError::Link { path });
                }
                found.push(FileEntry { is_dir: meta.is_dir(), size: if meta.is_dir() { 0 } else { meta.len() }, path });
            }
            found.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(found)
        })
        .await
    }

    /// Removes the file or the folder (with everything in it) at `path`; says whether there was one.
    ///
    /// # Errors
    /// A bad path, a link on the way, or the disk refusing.
    pub async fn delete(&self, path: &str) -> Result<bool, FilesError> {
        let path = FilePath::parse(path)?;
        let root = self.root();
        blocking(move || {
            let target = match walk(&root, &path, Walk::Existing) {
                Ok(parent) => parent.join(path.segments().last().unwrap_or_default()),
                Err(FilesError::NotFound { .. }) => return Ok(false),
                Err(err) => return Err(err),
            };
            let removed = match std::fs::symlink_metadata(&target) {
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(source) => return Err(io_error("delete", &path, source)),
                // A link is removed itself, never followed (`remove_dir_all` does not follow either).
                Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&target),
                Ok(_) => std::fs::remove_file(&target),
            };
            removed.map(|()| true).map_err(|source| io_error("delete", &path, source))
        })
        .await
    }

    async fn metadata(&self, path: &str) -> Result<std::fs::Metadata, FilesError> {
        let path = FilePath::parse(path)?;
        let root = self.root();
        blocking(move || std::fs::symlink_metadata(existing(&root, &path)?).map_err(|source| io_error("read", &path, source))).await
    }
}

/// `{root}/{tenant_id}`: everything of the tenant's on disk outside its database.
pub(crate) fn tenant_folder(root: &Path, id: &TenantId) -> PathBuf {
    root.join(id.to_string())
}

/// Removes a deleted tenant's folder, files and all; a folder already gone is not an error.
pub(crate) async fn remove_tenant_folder(root: &Path, id: &TenantId) -> io::Result<()> {
    match tokio::fs::remove_dir_all(tenant_folder(root, id)).await {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// How [`walk`] treats a missing folder.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    MakeFolders,
    Existing,
}

/// The folder `path`'s last segment is in, each segment on the way checked not to be a link
/// (and made, with [`Walk::MakeFolders`]).
fn walk(root: &Path, path: &FilePath, mode: Walk) -> Result<PathBuf, FilesError> {
    if mode == Walk::MakeFolders {
        std::fs::create_dir_all(root).map_err(|source| io_error("make the folder for", path, source))?;
    }
    let segments: Vec<&str> = path.segments().collect();
    let mut folder = root.to_path_buf();
    for (index, segment) in segments[..segments.len() - 1].iter().enumerate() {
        folder.push(segment);
        let so_far = segments[..=index].join("/");
        match std::fs::symlink_metadata(&folder) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(FilesError::Link { path: so_far }),
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(io_error("use as a folder", path, io::Error::from(io::ErrorKind::NotADirectory))),
            Err(err) if err.kind() == io::ErrorKind::NotFound && mode == Walk::MakeFolders => {
                match std::fs::create_dir(&folder) {
                    Ok(()) => {}
                    // Made by a concurrent write: checked again below on the next segment's walk.
                    Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(source) => return Err(io_error("make the folder for", path, source)),
                }
                if std::fs::symlink_metadata(&folder).is_ok_and(|meta| meta.file_type().is_symlink()) {
                    return Err(FilesError::Link { path: so_far });
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(FilesError::NotFound { path: path.as_str().to_owned() }),
            Err(source) => return Err(io_error("read", path, source)),
        }
    }
    Ok(folder)
}

/// Where `path` is on disk, with no link on the way or at the end (the target itself may be
/// missing: the caller's read reports it).
fn existing(root: &Path, path: &FilePath) -> Result<PathBuf, FilesError> {
    let target = walk(root, path, Walk::Existing)?.join(path.segments().last().unwrap_or_default());
    refuse_link(&target, path)?;
    Ok(target)
}

/// Refuses `target` if it is a link; a missing target passes (the caller reports it).
fn refuse_link(target: &Path, path: &FilePath) -> Result<(), FilesError> {
    match std::fs::symlink_metadata(target) {
        Ok(meta) if meta.file_type().is_symlink() => Err(FilesError::Link { path: path.as_str().to_owned() }),
        _ => Ok(()),
    }
}

fn io_error(action: &'static str, path: &FilePath, source: io::Error) -> FilesError {
    if source.kind() == io::ErrorKind::NotFound {
        return FilesError::NotFound { path: path.as_str().to_owned() };
    }
    FilesError::Io { action, path: path.as_str().to_owned(), source }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, FilesError> + Send + 'static) -> Result<T, FilesError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join| Err(FilesError::Io { action: "finish", path: String::new(), source: io::Error::other(join.to_string()) }))
}

/// Attaches the tenant's [`TenantFiles`] to every context (`ctx.files()`). Always installed:
/// nothing is made on disk until the first write.
pub struct FilesBootstrapper {
    base: Arc<Path>,
}

impl FilesBootstrapper {
    /// Tenants' files under `base` (`files.root`, resolved).
    pub fn new(base: &Path) -> Self {
        Self { base: Arc::from(base) }
    }
}

#[async_trait]
impl Bootstrapper for FilesBootstrapper {
    fn name(&self) -> &str {
        "files"
    }

    async fn bootstrap(&self, ctx: &mut ContextBuilder) -> Result<(), BoxError> {
        let files = TenantFiles::new(self.base.clone(), ctx.tenant().id);
        ctx.insert(files);
        Ok(())
    }
}

impl Tenancy {
    /// The files of `tenant`, outside any context (an operator's script, a backup).
    pub fn files_of(&self, tenant: &Tenant) -> TenantFiles {
        TenantFiles::new(Arc::from(self.config().resolve(&self.config().files.root)), tenant.id)
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
