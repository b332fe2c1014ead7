//! An S3-compatible bucket, through `object_store`: `{prefix}/{tenant id}/{backup id}.{ext}` and
//! `{backup id}.manifest.json`.
//!
//! The data is uploaded from its local staging file in parts (memory stays at a part or two
//! whatever the backup's size), then the manifest is put with `If-None-Match: *`: it is created
//! once, never overwritten, and only after the data is complete. A failed upload is aborted (no
//! parts left billed in the bucket).

use std::path::Path as LocalPath;
use std::sync::Arc;

use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tenancy_core::TenantId;
use tenancy_core::bucket::S3Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{DataRef, Found, StagedBackup, StoreError};
use crate::manifest::{BackupId, Manifest, Verification, manifest_file_name, verification_file_name};

/// Bytes per uploaded part.
const PART: usize = 8 * 1024 * 1024;

/// A bucket of backups.
pub struct S3Store {
    client: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: Path,
}

impl S3Store {
    /// A client of the bucket `config` names. Credentials come from the configuration, else from
    /// the standard `AWS_*` variables.
    ///
    /// # Errors
    /// When the configuration does not make a client.
    pub fn new(config: &S3Config) -> Result<Self, StoreError> {
        let client = config.client().map_err(|message| StoreError::Remote {
            doing: "configure the bucket",
            location: config.bucket.clone(),
            message,
        })?;
        Ok(Self { client, bucket: config.bucket.clone(), prefix: config.prefix_path() })
    }

    /// `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn tenant_prefix(&self, tenant: &TenantId) -> Path {
        self.prefix.clone().join(tenant.to_string())
    }

    fn key(&self, tenant: &TenantId, name: &str) -> Path {
        self.tenant_prefix(tenant).join(name)
    }

    fn location(&self, key: &Path) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// Uploads the staged data files, then creates the manifest.
    ///
    /// # Errors
    /// When a request fails; what was uploaded is then removed.
    pub async fn publish(&self, staged: &StagedBackup, manifest: &Manifest) -> Result<(), StoreError> {
        let mut uploaded = Vec::new();
        let mut outcome = Ok(());
        for (path, name) in staged.named(manifest) {
            let data = self.key(&manifest.tenant.id, name);
            outcome = self.upload(path, &data).await;
            if outcome.is_err() {
                break;
            }
            uploaded.push(data);
        }
        if outcome.is_ok() {
            outcome = self.create_manifest(manifest).await;
        }
        if outcome.is_err() {
            for data in &uploaded {
                let _ = self.client.delete(data).await;
            }
        }
        outcome
    }

    /// Puts the manifest if there is none of that id yet (`If-None-Match: *`).
    async fn create_manifest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(manifest).map_err(|err| remote("write the manifest", &self.describe(), &err))?;
        let key = self.key(&manifest.tenant.id, &manifest_file_name(&manifest.id));
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        self.client.put_opts(&key, PutPayload::from(json), options).await.map_err(|err| remote("put", &self.location(&key), &err))?;
        Ok(())
    }

    async fn upload(&self, staged: &LocalPath, key: &Path) -> Result<(), StoreError> {
        let mut file = tokio::fs::File::open(staged).await.map_err(super::local::io_error("read", staged))?;
        let mut writer = BufWriter::with_capacity(self.client.clone(), key.clone(), PART);
        let mut buffer = vec![0u8; 1024 * 1024];
        let copied: Result<(), String> = async {
            loop {
                let read = file.read(&mut buffer).await.map_err(|err| format!("cannot read `{}`: {err}", staged.display()))?;
                if read == 0 {
                    break;
                }
                writer.write_all(&buffer[..read]).await.map_err(|err| err.to_string())?;
            }
            writer.shutdown().await.map_err(|err| err.to_string())
        }
        .await;
        if let Err(message) = copied {
            let _ = writer.abort().await;
            return Err(StoreError::Remote { doing: "upload", location: self.location(key), message });
        }
        Ok(())
    }

    /// Tenants with a folder in the bucket.
    ///
    /// # Errors
    /// When the bucket cannot be listed.
    pub async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let listed = self.client.list_with_delimiter(Some(&self.prefix)).await.map_err(|err| remote("list", &self.describe(), &err))?;
        let mut tenants: Vec<TenantId> =
            listed.common_prefixes.iter().filter_map(|prefix| prefix.filename().and_then(|name| TenantId::parse(name).ok())).collect();
        tenants.sort();
        Ok(tenants)
    }

    async fn names(&self, tenant: &TenantId) -> Result<Vec<String>, StoreError> {
        let prefix = self.tenant_prefix(tenant);
        let listed = self.client.list_with_delimiter(Some(&prefix)).await.map_err(|err| remote("list", &self.location(&prefix), &err))?;
        Ok(listed.objects.iter().filter_map(|object| object.location.filename().map(str::to_owned)).collect())
    }

    /// The ids of `tenant`'s published backups, oldest first.
    ///
    /// # Errors
    /// When the bucket cannot be listed.
    pub async fn ids(&self, tenant: &TenantId) -> Result<Vec<BackupId>, StoreError> {
        let mut ids: Vec<BackupId> =
            self.names(tenant).await?.iter().filter_map(|name| name.strip_suffix(".manifest.json")?.parse().ok()).collect();
        ids.sort();
        Ok(ids)
    }

    /// Backup `id` of `tenant`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn open(&self, tenant: &TenantId, id: &BackupId) -> Result<Found, StoreError> {
        let key = self.key(tenant, &manifest_file_name(id));
        let bytes = match self.client.get(&key).await {
            Ok(got) => got.bytes().await.map_err(|err| remote("read", &self.location(&key), &err))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::Unknown { id: id.clone(), root: self.describe() });
            }
            Err(err) => return Err(remote("read", &self.location(&key), &err)),
        };
        let manifest = Manifest::parse(&bytes, id, tenant)?;
        let data = self.present(id, tenant, &manifest.data_file).await?;
        let files = match &manifest.files {
            Some(files) => Some(self.present(id, tenant, &files.data_file).await?),
            None => None,
        };
        Ok(Found { manifest, data, files })
    }

    async fn present(&self, id: &BackupId, tenant: &TenantId, name: &str) -> Result<DataRef, StoreError> {
        let data = self.key(tenant, name);
        match self.client.head(&data).await {
            Ok(_) => Ok(DataRef::Object(data)),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::NoData { id: id.clone(), data: self.location(&data) }),
            Err(err) => Err(remote("read", &self.location(&data), &err)),
        }
    }

    /// Backup `id`, whichever tenant's it is.
    ///
    /// # Errors
    /// [`StoreError::Unknown`], [`StoreError::NoManifest`], or what [`S3Store::open`] says.
    pub async fn find(&self, id: &BackupId) -> Result<Found, StoreError> {
        let manifest = manifest_file_name(id);
        let prefix = format!("{id}.");
        let mut orphan = None;
        for tenant in self.tenants().await? {
            let names = self.names(&tenant).await?;
            if names.contains(&manifest) {
                return self.open(&tenant, id).await;
            }
            if let Some(name) = names.iter().find(|name| name.starts_with(&prefix)) {
                orphan = Some(self.location(&self.key(&tenant, name)));
            }
        }
        match orphan {
            Some(data) => Err(StoreError::NoManifest { id: id.clone(), data }),
            None => Err(StoreError::Unknown { id: id.clone(), root: self.describe() }),
        }
    }

    /// Deletes a backup, manifest first.
    ///
    /// # Errors
    /// When a request fails.
    pub async fn delete(&self, found: &Found) -> Result<(), StoreError> {
        let manifest = self.key(&found.manifest.tenant.id, &manifest_file_name(&found.manifest.id));
        self.client.delete(&manifest).await.map_err(|err| remote("delete", &self.location(&manifest), &err))?;
        for part in found.parts() {
            if let DataRef::Object(data) = part {
                self.client.delete(data).await.map_err(|err| remote("delete", &self.location(data), &err))?;
            }
        }
        let _ = self.client.delete(&self.key(&found.manifest.tenant.id, &verification_file_name(&found.manifest.id))).await;
        Ok(())
    }

    /// Records that `found` verified, replacing an earlier record.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn record_verification(&self, found: &Found, verification: &Verification) -> Result<(), StoreError> {
        let key = self.key(&found.manifest.tenant.id, &verification_file_name(&found.manifest.id));
        let json = serde_json::to_vec(verification).map_err(|err| remote("write", &self.location(&key), &err))?;
        self.client.put(&key, PutPayload::from(json)).await.map_err(|err| remote("put", &self.location(&key), &err))?;
        Ok(())
    }

    /// The last verification of backup `id` of `tenant`, if it has one that can be read.
    pub async fn verification(&self, tenant: &TenantId, id: &BackupId) -> Option<Verification> {
        let got = self.client.get(&self.key(tenant, &verification_file_name(id))).await.ok()?;
        serde_json::from_slice(&got.bytes().await.ok()?).ok()
    }

    /// Downloads `key` into a temporary file in `scratch`.
    ///
    /// # Errors
    /// When the download fails.
    pub async fn fetch(&self, key: &Path, scratch: &LocalPath) -> Result<tempfile::NamedTempFile, StoreError> {
        let copy =
            tempfile::Builder::new().prefix(".fetched-").tempfile_in(scratch).map_err(super::local::io_error("write to", scratch))?;
        let mut file = tokio::fs::File::from_std(copy.reopen().map_err(super::local::io_error("write to", copy.path()))?);
        let got = self.client.get(key).await.map_err(|err| remote("download", &self.location(key), &err))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| remote("download", &self.location(key), &err))?;
            file.write_all(&chunk).await.map_err(super::local::io_error("write to", copy.path()))?;
        }
        file.flush().await.map_err(super::local::io_error("write to", copy.path()))?;
        Ok(copy)
    }
}

fn remote(doing: &'static str, location: &str, err: &dyn std::fmt::Display) -> StoreError {
    StoreError::Remote { doing, location: location.to_owned(), message: err.to_string() }
}
