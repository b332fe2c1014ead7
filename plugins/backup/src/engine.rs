//! One backup, made, checked or restored: the engines (PostgreSQL, MySQL, SQLite) behind one set
//! of operations.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tenancy_core::command::UsageError;
use tenancy_core::migrate::MigrationSet;
use tenancy_core::{Tenancy, Tenant};

use crate::archive::{self, Identities, Sealed, Sealing, UnsealError};
use crate::manifest::{BackupId, Checksum, DumpFormat, FORMAT_VERSION, Manifest, SourceInfo, TenantInfo, data_file_name};
use crate::source::Source;
use crate::store::{Found, Store};
use crate::{mysql, postgres, sqlite};

/// Nothing else uses a scratch copy; a wait on it is a bug, not contention.
const SCRATCH_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// What an engine's dump produced.
pub struct Dumped {
    /// The data file written.
    pub sealed: Sealed,
    /// Rows per table.
    pub tables: BTreeMap<String, u64>,
    /// Applied migrations, `migrator/name`, read from the dumped data.
    pub migrations: Vec<String>,
    /// The server's version.
    pub server_version: String,
    /// The dump program and its version.
    pub tool: String,
}

/// Backs `tenant` up into `store`; the backup is listed only once complete.
///
/// # Errors
/// When the dump or the write fails; nothing is then left in the store.
pub async fn create(tenancy: &Tenancy, store: &Store, tenant: &Tenant, sealing: Sealing) -> anyhow::Result<Manifest> {
    let source = Source::of(tenancy, tenant)?;
    let created_at = Utc::now();
    let clock = Instant::now();
    let id = BackupId::new(created_at);
    let staged = store.stage(&tenant.id, &id)?;
    let staged_path = staged.path.clone();
    let (level, encryption) = (sealing.level, sealing.encryption());
    let dumped = dump(&source, store, tenant, staged.file, tenancy.migrations(), sealing).await;
    let dumped = match dumped {
        Ok(dumped) => dumped,
        Err(err) => {
            store.discard(&staged_path);
            return Err(err);
        }
    };
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        id: id.clone(),
        tenant: TenantInfo {
            id: tenant.id,
            name: tenant.name.to_string(),
            domains: tenant.domains.iter().map(|d| d.domain.to_string()).collect(),
        },
        source: SourceInfo {
            driver: source.driver().into(),
            isolation: source.isolation().into(),
            container: source.container(),
            server_version: dumped.server_version,
            tool: dumped.tool,
            format: source.format(),
        },
        migrations: dumped.migrations,
        tables: dumped.tables,
        data_file: data_file_name(&id, source.format(), encryption.is_some()),
        encryption,
        dump_bytes: dumped.sealed.dump_bytes,
        stored_bytes: dumped.sealed.stored_bytes,
        checksum: Checksum { algorithm: "blake3".into(), hex: dumped.sealed.checksum },
        compression: "zstd".into(),
        compression_level: level,
        made_by: format!("tenancy-backup {}", env!("CARGO_PKG_VERSION")),
        created_at,
        elapsed_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    if let Err(err) = store.publish(&staged_path, &manifest).await {
        store.discard(&staged_path);
        return Err(err.into());
    }
    Ok(manifest)
}

async fn dump(
    source: &Source,
    store: &Store,
    tenant: &Tenant,
    file: std::fs::File,
    migrations: &MigrationSet,
    sealing: Sealing,
) -> anyhow::Result<Dumped> {
    match source {
        Source::Postgres { login, schema } => postgres::dump(login, schema.as_deref(), file, migrations, sealing).await,
        Source::MySql { login } => mysql::dump(login, file, migrations, sealing).await,
        Source::Sqlite { .. } => {
            let db = source.connect().await?;
            let dumped = sqlite::dump(&db, &store.staging(&tenant.id), file, migrations, sealing).await;
            db.close().await?;
            dumped
        }
    }
}

/// Level 1: the stored file has the manifest's size and checksum.
///
/// # Errors
/// When it cannot be read or does not match.
pub async fn verify_checksum(store: &Store, found: &Found) -> anyhow::Result<()> {
    let fetched = store.fetch(found).await?;
    let data = fetched.path().to_owned();
    let (checksum, bytes) = tokio::task::spawn_blocking(move || archive::checksum_of(&data)).await??;
    drop(fetched);
    let manifest = &found.manifest;
    if bytes != manifest.stored_bytes {
        anyhow::bail!("its data file has {bytes} bytes, the manifest says {} (truncated or replaced)", manifest.stored_bytes);
    }
    if checksum != manifest.checksum.hex {
        anyhow::bail!("its data file's BLAKE3 checksum does not match the manifest's: the file is corrupted");
    }
    Ok(())
}

/// The dump of a backup, decompressed into a temporary file on the store's file system and
/// checked against the manifest before anything reads it.
pub struct Unpacked {
    file: tempfile::NamedTempFile,
}

impl Unpacked {
    /// Decompresses `found`, decrypting it with `identities` if it is encrypted.
    ///
    /// # Errors
    /// When it cannot be read, decrypted or decompressed, or its checksum or size is not the
    /// manifest's. A missing or wrong identity is a [`UsageError`].
    pub async fn new(store: &Store, found: &Found, identities: Arc<Identities>) -> anyhow::Result<Self> {
        let scratch = store.scratch()?;
        let file = tempfile::Builder::new().prefix(".unpacked-").tempfile_in(scratch)?;
        let fetched = store.fetch(found).await?;
        let (data, mut writer, encryption) = (fetched.path().to_owned(), file.reopen()?, found.manifest.encryption.clone());
        let unsealed = tokio::task::spawn_blocking(move || {
            let mut buffered = std::io::BufWriter::new(&mut writer);
            let result = archive::unseal(&data, encryption.as_ref(), &identities, &mut buffered);
            std::io::Write::flush(&mut buffered).map_err(|err| UnsealError::Damaged(err.to_string()))?;
            result
        })
        .await?;
        drop(fetched);
        let manifest = &found.manifest;
        let (checksum, written) = unsealed.map_err(|err| match err {
            UnsealError::Damaged(_) => anyhow::Error::new(err),
            _ => {
                UsageError::new(err.to_string(), "age-keygen makes identity files; `age-keygen -y FILE` shows the public key of one").into()
            }
        })?;
        if checksum != manifest.checksum.hex {
            anyhow::bail!("its data file's BLAKE3 checksum does not match the manifest's: the file is corrupted");
        }
        if written != manifest.dump_bytes {
            anyhow::bail!("it decompresses to {written} bytes, the manifest says {}", manifest.dump_bytes);
        }
        Ok(Self { file })
    }

    /// The dump.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Level 2: the dump program can read the dump.
///
/// # Errors
/// When it cannot.
pub async fn check_readable(format: DumpFormat, unpacked: &Unpacked) -> anyhow::Result<String> {
    let path = unpacked.path().to_owned();
    match format {
        DumpFormat::PgCustom => tokio::task::spawn_blocking(move || postgres::check(&path)).await?,
        DumpFormat::MysqlSql => tokio::task::spawn_blocking(move || mysql::check(&path)).await?,
        DumpFormat::SqliteFile => sqlite::check(&path).await,
    }
}

/// Refuses a backup that cannot go where `target` is: another engine, or another isolation.
///
/// # Errors
/// A message saying which.
pub fn check_compatible(manifest: &Manifest, target: &Source) -> Result<(), String> {
    if manifest.source.driver != target.driver() || manifest.source.isolation != target.isolation() {
        return Err(format!(
            "backup {} is of a {} {} and cannot be restored into a {} {}",
            manifest.id,
            manifest.source.driver,
            manifest.source.isolation,
            target.driver(),
            target.isolation()
        ));
    }
    Ok(())
}

/// Replaces the data of the database at `target` with the backup's. Returns a note when the
/// engine had to do it less safely than usual.
///
/// # Errors
/// When the restore fails; PostgreSQL and SQLite then leave the data as it was, MySQL too unless
/// the note case applies.
pub async fn restore_into(target: &Source, manifest: &Manifest, dump: &Path, lock_timeout: Duration) -> anyhow::Result<Option<String>> {
    let path = dump.to_owned();
    match target {
        Source::Postgres { login, schema } => {
            let (login, schema, dumped) = (login.clone(), schema.clone(), manifest.source.container.clone());
            tokio::task::spawn_blocking(move || {
                let schemas = schema.as_deref().map(|schema| (schema, dumped.as_str()));
                postgres::restore(&postgres::RestoreTarget { login: &login, schemas, lock_timeout }, &path)
            })
            .await??;
            Ok(None)
        }
        Source::MySql { login } => mysql::restore(login, &path, lock_timeout).await,
        Source::Sqlite { .. } => {
            let db = target.connect().await?;
            let restored = sqlite::restore(&db, &path, lock_timeout).await;
            db.close().await?;
            restored.map(|()| None)
        }
    }
}

/// What a restore test found in the scratch copy.
pub struct Restored {
    /// Rows per table.
    pub tables: BTreeMap<String, u64>,
    /// Applied migrations, `migrator/name`.
    pub migrations: Vec<String>,
}

/// Restores the backup into a scratch database beside the tenant's (a temporary file for SQLite),
/// reads its tables and migrations, and drops it.
///
/// # Errors
/// When the restore or a read fails; the scratch database is dropped anyway.
pub async fn restore_test(
    tenancy: &Tenancy,
    store: &Store,
    tenant_source: &Source,
    manifest: &Manifest,
    unpacked: &Unpacked,
) -> anyhow::Result<Restored> {
    let set = tenancy.migrations();
    let read = |db: sea_orm::DatabaseConnection, tables: BTreeMap<String, u64>| async move {
        let status = tenancy_core::migrate::status::read(&db, set).await;
        db.close().await?;
        let migrations = status?.applied_names();
        Ok::<_, anyhow::Error>(Restored { tables, migrations })
    };
    match tenant_source {
        Source::Postgres { login, schema } => {
            let scratch = crate::sql::scratch_name("restoretest");
            postgres::create_database(login, &scratch).await?;
            let on_scratch = login.on(&scratch);
            let result = async {
                let (path, dumped, schema) = (unpacked.path().to_owned(), manifest.source.container.clone(), schema.is_some());
                let target_login = on_scratch.clone();
                tokio::task::spawn_blocking(move || {
                    let schemas = schema.then_some((dumped.as_str(), dumped.as_str()));
                    postgres::restore(&postgres::RestoreTarget { login: &target_login, schemas, lock_timeout: SCRATCH_LOCK_TIMEOUT }, &path)
                })
                .await??;
                let (db, tables) = postgres::census_of(&on_scratch, schema.then_some(manifest.source.container.as_str())).await?;
                read(db, tables).await
            }
            .await;
            postgres::drop_database(login, &scratch).await?;
            result
        }
        Source::MySql { login } => {
            let scratch = crate::sql::scratch_name("restoretest");
            mysql::create_database(login, &scratch).await?;
            let result = async {
                let (owned_login, owned_scratch, path) = (login.clone(), scratch.clone(), unpacked.path().to_owned());
                tokio::task::spawn_blocking(move || mysql::load(&owned_login, &owned_scratch, &path)).await??;
                let (db, tables) = mysql::census_of(login, &scratch).await?;
                read(db, tables).await
            }
            .await;
            mysql::drop_database(login, &scratch).await?;
            result
        }
        Source::Sqlite { .. } => {
            let scratch = tempfile::Builder::new().prefix(".restoretest-").suffix(".sqlite").tempfile_in(store.scratch()?)?;
            let target = Source::Sqlite { path: scratch.path().to_owned() };
            let db = target.connect().await?;
            sqlite::restore(&db, unpacked.path(), SCRATCH_LOCK_TIMEOUT).await?;
            let tables = crate::census::count_rows(&db, crate::census::Dialect::Sqlite).await?;
            read(db, tables).await
        }
    }
}
