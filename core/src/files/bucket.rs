//! Tenants' files in an S3-compatible bucket: a tenant's are the objects under
//! `{prefix}/{tenant_id}/files/`, one per file, each segment of a path one segment of the key.
//!
//! A bucket has no folders and no links: a folder is the common prefix of the files in it (so an
//! empty one does not exist), and a put replaces an object whole, so a reader never sees half a
//! file. Key segments are percent-encoded by `object_store` where S3 would misread a character,
//! and decoded on the way back.

use std::collections::BTreeSet;
use std::path::Path as LocalPath;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{FileEntry, FilePath, FilesError};
use crate::TenantId;
use crate::bucket::S3Config;

/// The bucket every tenant's files are in.
#[derive(Debug)]
pub(crate) struct FilesBucket {
    client: Arc<dyn ObjectStore>,
    prefix: Path,
    described: String,
}

impl FilesBucket {
    /// A client of `config`'s bucket.
    ///
    /// # Errors
    /// The client's words when the configuration does not make one.
    pub(crate) fn new(config: &S3Config) -> Result<Self, String> {
        Ok(Self { client: config.client()?, prefix: config.prefix_path(), described: config.describe() })
    }

    /// `{prefix}/{id}/files`.
    fn folder(&self, id: &TenantId) -> Path {
        self.prefix.clone().join(id.to_string()).join("files")
    }

    fn key(&self, id: &TenantId, path: &FilePath) -> Path {
        path.segments().fold(self.folder(id), |key, segment| key.join(segment))
    }

    /// `s3://bucket/prefix/{id}/files`.
    pub(crate) fn describe(&self, id: &TenantId) -> String {
        format!("{}/{id}/files", self.described.trim_end_matches('/'))
    }

    fn remote(&self, action: &'static str, path: &str, err: &object_store::Error) -> FilesError {
        FilesError::Remote { action, path: path.to_owned(), message: format!("{}: {err}", self.described) }
    }

    pub(crate) async fn write(&self, id: &TenantId, path: &FilePath, bytes: Vec<u8>) -> Result<(), FilesError> {
        self.refuse_file_as_folder(id, path).await?;
        if !self.list(id, Some(path)).await?.is_empty() {
            let source = std::io::Error::from(std::io::ErrorKind::IsADirectory);
            return Err(FilesError::Io { action: "write", path: path.as_str().to_owned(), source });
        }
        self.client.put(&self.key(id, path), PutPayload::from(bytes)).await.map_err(|err| self.remote("write", path.as_str(), &err))?;
        Ok(())
    }

    /// A bucket would happily hold `a` and `a/b`; a file system cannot, and files must move
    /// between the two, so a file where a folder of the path should be is refused here too.
    async fn refuse_file_as_folder(&self, id: &TenantId, path: &FilePath) -> Result<(), FilesError> {
        let segments: Vec<&str> = path.segments().collect();
        for end in 1..segments.len() {
            let folder = FilePath::parse(&segments[..end].join("/"))?;
            if self.head(id, &folder).await? {
                let source = std::io::Error::from(std::io::ErrorKind::NotADirectory);
                return Err(FilesError::Io { action: "use as a folder", path: path.as_str().to_owned(), source });
            }
        }
        Ok(())
    }

    async fn head(&self, id: &TenantId, path: &FilePath) -> Result<bool, FilesError> {
        match self.client.head(&self.key(id, path)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(self.remote("read", path.as_str(), &err)),
        }
    }

    pub(crate) async fn read(&self, id: &TenantId, path: &FilePath) -> Result<Vec<u8>, FilesError> {
        let got = match self.client.get(&self.key(id, path)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Err(FilesError::NotFound { path: path.as_str().to_owned() }),
            Err(err) => return Err(self.remote("read", path.as_str(), &err)),
        };
        Ok(got.bytes().await.map_err(|err| self.remote("read", path.as_str(), &err))?.to_vec())
    }

    /// A file at `path`, or a folder (files under it).
    pub(crate) async fn exists(&self, id: &TenantId, path: &FilePath) -> Result<bool, FilesError> {
        Ok(self.head(id, path).await? || !self.list(id, Some(path)).await?.is_empty())
    }

    pub(crate) async fn list(&self, id: &TenantId, dir: Option<&FilePath>) -> Result<Vec<FileEntry>, FilesError> {
        let shown = dir.map(FilePath::as_str).unwrap_or("");
        let prefix = dir.map_or_else(|| self.folder(id), |dir| self.key(id, dir));
        let listed = self.client.list_with_delimiter(Some(&prefix)).await.map_err(|err| self.remote("list", shown, &err))?;
        let path_of = |key: &Path| {
            let name = decode(key.filename().unwrap_or_default());
            if shown.is_empty() { name } else { format!("{shown}/{name}") }
        };
        let mut found: Vec<FileEntry> = listed
            .common_prefixes
            .iter()
            .map(|folder| FileEntry { path: path_of(folder), is_dir: true, size: 0 })
            .chain(listed.objects.iter().map(|object| FileEntry { path: path_of(&object.location), is_dir: false, size: object.size }))
            .collect();
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// Every file of the tenant, sorted by path.
    pub(crate) async fn walk_all(&self, id: &TenantId) -> Result<Vec<FileEntry>, FilesError> {
        let folder = self.folder(id);
        let objects: Vec<_> = self.client.list(Some(&folder)).try_collect().await.map_err(|err| self.remote("list", "", &err))?;
        let mut files: Vec<FileEntry> = objects
            .iter()
            .filter_map(|object| {
                let parts: Vec<String> = object.location.prefix_match(&folder)?.map(|part| decode(part.as_ref())).collect();
                Some(FileEntry { path: parts.join("/"), is_dir: false, size: object.size })
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Removes the file at `path`, or every file under it.
    pub(crate) async fn delete(&self, id: &TenantId, path: &FilePath) -> Result<bool, FilesError> {
        if self.head(id, path).await? {
            self.client.delete(&self.key(id, path)).await.map_err(|err| self.remote("delete", path.as_str(), &err))?;
            return Ok(true);
        }
        self.delete_under(&self.key(id, path), path.as_str()).await
    }

    /// Removes every object of the tenant's files.
    pub(crate) async fn delete_all(&self, id: &TenantId) -> Result<bool, FilesError> {
        self.delete_under(&self.folder(id), "").await
    }

    async fn delete_under(&self, prefix: &Path, shown: &str) -> Result<bool, FilesError> {
        let objects: Vec<_> = self.client.list(Some(prefix)).try_collect().await.map_err(|err| self.remote("list", shown, &err))?;
        for object in &objects {
            match self.client.delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(self.remote("delete", shown, &err)),
            }
        }
        Ok(!objects.is_empty())
    }

    /// Makes the tenant's files exactly those of the folder `source`: each is put (replacing the
    /// object whole), then the objects it does not have are deleted. Not one step: a failure
    /// part-way leaves some files new and some old, and a rerun finishes the job.
    pub(crate) async fn replace_with(&self, id: &TenantId, source: &LocalPath) -> Result<(), FilesError> {
        let incoming = super::local_tree(source)?;
        let mut kept = BTreeSet::new();
        for path in incoming {
            let bytes = tokio::fs::read(source.join(path.as_str())).await.map_err(|source| FilesError::Io {
                action: "read",
                path: path.as_str().to_owned(),
                source,
            })?;
            self.client
                .put(&self.key(id, &path), PutPayload::from(bytes))
                .await
                .map_err(|err| self.remote("write", path.as_str(), &err))?;
            kept.insert(path.as_str().to_owned());
        }
        for old in self.walk_all(id).await? {
            if !kept.contains(&old.path) {
                self.delete(id, &FilePath::parse(&old.path)?).await?;
            }
        }
        Ok(())
    }
}

/// A key segment as the file's name.
fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part).decode_utf8_lossy().into_owned()
}
