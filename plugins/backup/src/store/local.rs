//! A folder of backups: `{root}/{tenant id}/{backup id}.{ext}` and `{backup id}.manifest.json`.
//!
//! The data file is renamed from its staging name, and the manifest written to a temporary name,
//! synced and renamed: whatever moment a crash or a full disk strikes, no manifest ever describes a
//! data file that is not complete.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tenancy_core::TenantId;

use super::{DataRef, Found, Staged, StagedBackup, StoreError};
use crate::manifest::{BackupId, Manifest, Verification, manifest_file_name, verification_file_name};

/// The backups folder.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

pub(super) fn io_error<'a>(doing: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { doing, path: path.display().to_string(), source }
}

impl LocalStore {
    /// The store at `root` (created on the first backup).
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A tenant's folder.
    pub fn folder(&self, tenant: &TenantId) -> PathBuf {
        self.root.join(tenant.to_string())
    }

    /// Where large temporary files go (unpacked dumps): on the store's file system, not in `/tmp`.
    ///
    /// # Errors
    /// When it cannot be created.
    pub fn scratch(&self) -> Result<PathBuf, StoreError> {
        let path = self.root.join(".scratch");
        fs::create_dir_all(&path).map_err(io_error("create the folder", &path))?;
        Ok(path)
    }

    /// Creates the staging file of `tenant`'s data file `name` (a backup id and an extension).
    ///
    /// # Errors
    /// When the folder cannot be made or written (read-only, full).
    pub fn stage(&self, tenant: &TenantId, name: &str) -> Result<Staged, StoreError> {
        let folder = self.folder(tenant);
        fs::create_dir_all(&folder).map_err(io_error("create the folder", &folder))?;
        let path = folder.join(format!(".{name}.partial"));
        let file = File::options().write(true).create_new(true).open(&path).map_err(io_error("write to", &path))?;
        Ok(Staged { path, file })
    }

    /// Publishes a written backup: the data files under their names, then the manifest.
    ///
    /// # Errors
    /// When a rename or a write fails; nothing is then listed, what was renamed is removed, and
    /// the caller removes what is still staged with [`LocalStore::discard`].
    pub fn publish(&self, staged: &StagedBackup, manifest: &Manifest) -> Result<(), StoreError> {
        let folder = self.folder(&manifest.tenant.id);
        let mut published = Vec::new();
        let unpublish = |published: &[PathBuf]| published.iter().for_each(|path| drop(fs::remove_file(path)));
        for (path, name) in staged.named(manifest) {
            let data = folder.join(name);
            if let Err(err) = fs::rename(path, &data) {
                unpublish(&published);
                return Err(io_error("rename", path)(err));
            }
            published.push(data);
        }
        let json = serde_json::to_vec_pretty(manifest).map_err(|err| StoreError::Io {
            doing: "write the manifest of",
            path: folder.display().to_string(),
            source: io::Error::other(err),
        })?;
        let temporary = folder.join(format!(".{}.manifest.partial", manifest.id));
        let written = (|| {
            let mut file = File::options().write(true).create_new(true).open(&temporary)?;
            file.write_all(&json)?;
            file.sync_all()?;
            fs::rename(&temporary, folder.join(manifest_file_name(&manifest.id)))?;
            File::open(&folder)?.sync_all()
        })();
        if let Err(source) = written {
            let _ = fs::remove_file(&temporary);
            unpublish(&published);
            return Err(StoreError::Io { doing: "write the manifest in", path: folder.display().to_string(), source });
        }
        Ok(())
    }

    /// Removes staged files after a failure (a failed [`LocalStore::publish`] removes what it
    /// renamed itself).
    pub fn discard(&self, staged: &StagedBackup) {
        for path in std::iter::once(&staged.data).chain(staged.files.as_ref()) {
            let _ = fs::remove_file(path);
        }
    }

    /// The tenant ids that have a folder.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(io_error("read", &self.root)(err)),
        };
        let mut tenants: Vec<TenantId> =
            entries.flatten().filter_map(|entry| entry.file_name().to_str().and_then(|name| TenantId::parse(name).ok())).collect();
        tenants.sort();
        Ok(tenants)
    }

    /// The ids of `tenant`'s published backups (those with a manifest), oldest first.
    ///
    /// # Errors
    /// When the folder cannot be read.
    pub fn ids(&self, tenant: &TenantId) -> Result<Vec<BackupId>, StoreError> {
        let folder = self.folder(tenant);
        let entries = match fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(io_error("read", &folder)(err)),
        };
        let mut ids: Vec<BackupId> = entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str().and_then(|name| name.strip_suffix(".manifest.json")?.parse().ok()))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Backup `id` of `tenant`, its manifest read and checked.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn open(&self, tenant: &TenantId, id: &BackupId) -> Result<Found, StoreError> {
        let folder = self.folder(tenant);
        let path = folder.join(manifest_file_name(id));
        let bytes = fs::read(&path).map_err(io_error("read", &path))?;
        let manifest = Manifest::parse(&bytes, id, tenant)?;
        let present = |name: &str| {
            let data = folder.join(name);
            if data.is_file() {
                Ok(DataRef::File(data))
            } else {
                Err(StoreError::NoData { id: id.clone(), data: data.display().to_string() })
            }
        };
        let data = present(&manifest.data_file)?;
        let files = manifest.files.as_ref().map(|files| present(&files.data_file)).transpose()?;
        Ok(Found { manifest, data, files })
    }

    /// Backup `id`, whichever tenant's it is.
    ///
    /// # Errors
    /// [`StoreError::Unknown`], [`StoreError::NoManifest`], or what [`LocalStore::open`] says.
    pub fn find(&self, id: &BackupId) -> Result<Found, StoreError> {
        let tenants = self.tenants()?;
        for tenant in &tenants {
            if self.folder(tenant).join(manifest_file_name(id)).is_file() {
                return self.open(tenant, id);
            }
        }
        for tenant in &tenants {
            let folder = self.folder(tenant);
            let prefix = format!("{id}.");
            let orphan = fs::read_dir(&folder)
                .into_iter()
                .flatten()
                .flatten()
                .find(|entry| entry.file_name().to_str().is_some_and(|name| name.starts_with(&prefix)));
            if let Some(orphan) = orphan {
                return Err(StoreError::NoManifest { id: id.clone(), data: orphan.path().display().to_string() });
            }
        }
        Err(StoreError::Unknown { id: id.clone(), root: self.root.display().to_string() })
    }

    /// Deletes a backup: the manifest first, so a crash between the two leaves an unlisted file,
    /// never a listed backup without data.
    ///
    /// # Errors
    /// When a file cannot be removed.
    pub fn delete(&self, found: &Found) -> Result<(), StoreError> {
        let manifest = self.folder(&found.manifest.tenant.id).join(manifest_file_name(&found.manifest.id));
        fs::remove_file(&manifest).map_err(io_error("remove", &manifest))?;
        for part in found.parts() {
            if let DataRef::File(data) = part {
                fs::remove_file(data).map_err(io_error("remove", data))?;
            }
        }
        let _ = fs::remove_file(self.folder(&found.manifest.tenant.id).join(verification_file_name(&found.manifest.id)));
        Ok(())
    }

    /// Records that `found` verified, replacing an earlier record.
    ///
    /// # Errors
    /// When the record cannot be written.
    pub fn record_verification(&self, found: &Found, verification: &Verification) -> Result<(), StoreError> {
        let folder = self.folder(&found.manifest.tenant.id);
        let path = folder.join(verification_file_name(&found.manifest.id));
        let temporary = folder.join(format!(".{}.verified.partial", found.manifest.id));
        let json = serde_json::to_vec(verification).map_err(|err| StoreError::Io {
            doing: "write",
            path: path.display().to_string(),
            source: io::Error::other(err),
        })?;
        fs::write(&temporary, json).and_then(|()| fs::rename(&temporary, &path)).map_err(|err| {
            let _ = fs::remove_file(&temporary);
            io_error("write", &path)(err)
        })
    }

    /// The last verification of backup `id` of `tenant`, if it has one that can be read.
    pub fn verification(&self, tenant: &TenantId, id: &BackupId) -> Option<Verification> {
        let bytes = fs::read(self.folder(tenant).join(verification_file_name(id))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Removes staging files older than `age` in `tenant`'s folder (left by killed runs); returns
    /// how many.
    pub fn sweep_staging(&self, tenant: &TenantId, age: Duration) -> usize {
        let Ok(entries) = fs::read_dir(self.folder(tenant)) else { return 0 };
        let cutoff = SystemTime::now().checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
        entries
            .flatten()
            .filter(|entry| entry.file_name().to_str().is_some_and(|name| name.starts_with('.') && name.ends_with(".partial")))
            .filter(|entry| entry.metadata().and_then(|m| m.modified()).is_ok_and(|modified| modified < cutoff))
            .filter(|entry| fs::remove_file(entry.path()).is_ok())
            .count()
    }
}
