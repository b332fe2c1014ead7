//! The copier behind `tenancy tenant move`: a backup of the tenant, made and kept in the store like
//! any other (so a move always leaves one behind), then restored into the tenant's empty database
//! on the target server. The backup's checksums are checked on the way, as a restore checks them.

use std::sync::Arc;

use async_trait::async_trait;
use tenancy_core::command::format::format_bytes;
use tenancy_core::moves::TenantCopier;
use tenancy_core::{BoxError, Tenancy, Tenant};

use crate::archive::Sealing;
use crate::config::BackupConfig;
use crate::engine::{self, Unpacked};
use crate::source::Source;
use crate::store::{LocalStore, S3Store, Store};

/// Copies a tenant's database to another server as a backup restored there.
pub struct BackupCopier;

#[async_trait]
impl TenantCopier for BackupCopier {
    async fn copy(&self, tenancy: &Tenancy, tenant: &Tenant, target: &Tenant) -> Result<String, BoxError> {
        let config = BackupConfig::load(tenancy.config())?;
        let bucket = config.s3.as_ref().map(S3Store::new).transpose()?;
        let store = Store::new(LocalStore::new(config.root(tenancy.config())), bucket);
        // An encrypted backup must be readable here, or the move would stop half-way: check first.
        let identities = config.identities(tenancy.config(), None)?;
        let sealing = Sealing { level: config.compression_level, recipients: config.recipients(), progress: Arc::new(|_| {}) };
        let manifest = Box::pin(engine::create(tenancy, &store, tenant, sealing)).await?;
        let found = store.find(&manifest.id).await?;
        let unpacked = Unpacked::dump(&store, &found, identities).await?;
        let destination = Source::of(tenancy, target)?;
        engine::check_compatible(&manifest, &destination)?;
        let note = engine::restore_into(&destination, &manifest, unpacked.path(), config.lock_timeout()).await?;
        let mut detail = format!("backup {} ({}) restored on `{}`", manifest.id, format_bytes(manifest.stored_total()), target.server);
        if let Some(note) = note {
            detail.push_str(&format!(" ({note})"));
        }
        Ok(detail)
    }
}
