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
use crate::files::UnpackedFiles;
use crate::manifest::{
    BackupId, Checksum, DumpFormat, Encryption, FORMAT_VERSION, FilesArchive, Manifest, SourceInfo, TenantInfo, data_file_name,
    files_file_name,
};
use crate::source::Source;
use crate::store::{DataRef, Found, StagedBackup, Store};
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

/// Backs `tenant` up into `store`: its database, then its files. The backup is listed only once
/// both are complete.
///
/// # Errors
/// When the dump, the files or a write fail; nothing is then left in the store.
pub async fn create(tenancy: &Tenancy, store: &Store, tenant: &Tenant, sealing: Sealing) -> anyhow::Result<Manifest> {
    let source = Source::of(tenancy, tenant)?;
    let created_at = Utc::now();
    let clock = Instant::now();
    let id = BackupId::new(created_at);
    let (level, encryption) = (sealing.level, sealing.encryption());
    let staged = store.stage(&tenant.id, &data_file_name(&id, source.format(), encryption.is_some()))?;
    let mut parts = StagedBackup { data: staged.path.clone(), files: None };
    let made = async {
        let dumped = dump(&source, store, tenant, staged.file, tenancy.migrations(), sealing.clone()).await?;
        let staged_files = store.stage(&tenant.id, &files_file_name(&id, encryption.is_some()))?;
        parts.files = Some(staged_files.path.clone());
        // The files' bytes count on from the dump's, so the progress shown keeps growing.
        let (progress, offset) = (sealing.progress.clone(), dumped.sealed.dump_bytes);
        let files_sealing = Sealing { progress: std::sync::Arc::new(move |bytes| progress(offset + bytes)), ..sealing };
        let packed = crate::files::pack(&tenancy.files_of(tenant), staged_files.file, &files_sealing).await?;
        anyhow::Ok((dumped, packed))
    }
    .await;
    let (dumped, packed) = match made {
        Ok(made) => made,
        Err(err) => {
            store.discard(&parts);
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
        files: Some(FilesArchive {
            data_file: files_file_name(&id, encryption.is_some()),
            files: packed.files,
            bytes: packed.bytes,
            archive_bytes: packed.sealed.dump_bytes,
            stored_bytes: packed.sealed.stored_bytes,
            checksum: blake3(packed.sealed.checksum),
        }),
        encryption,
        dump_bytes: dumped.sealed.dump_bytes,
        stored_bytes: dumped.sealed.stored_bytes,
        checksum: blake3(dumped.sealed.checksum),
        compression: "zstd".into(),
        compression_level: level,
        made_by: format!("tenancy-backup {}", env!("CARGO_PKG_VERSION")),
        created_at,
        elapsed_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    if let Err(err) = store.publish(&parts, &manifest).await {
        store.discard(&parts);
        return Err(err.into());
    }
    Ok(manifest)
}

fn blake3(hex: String) -> Checksum {
    Checksum { algorithm: "blake3".into(), hex }
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

/// One stored file of a backup and what its manifest says of it.
struct Part<'a> {
    /// `data file` or `files archive`, for messages.
    what: &'static str,
    data: &'a DataRef,
    stored_bytes: u64,
    checksum: &'a str,
    /// Bytes once decompressed.
    plain_bytes: u64,
    encryption: Option<&'a Encryption>,
}

impl Found {
    fn stored_parts(&self) -> Vec<Part<'_>> {
        let m = &self.manifest;
        let mut parts = vec![Part {
            what: "data file",
            data: &self.data,
            stored_bytes: m.stored_bytes,
            checksum: &m.checksum.hex,
            plain_bytes: m.dump_bytes,
            encryption: m.encryption.as_ref(),
        }];
        if let (Some(data), Some(files)) = (&self.files, &m.files) {
            parts.push(Part {
                what: "files archive",
                data,
                stored_bytes: files.stored_bytes,
                checksum: &files.checksum.hex,
                plain_bytes: files.archive_bytes,
                encryption: m.encryption.as_ref(),
            });
        }
        parts
    }
}

/// Level 1: each stored file has the manifest's size and checksum.
///
/// # Errors
/// When one cannot be read or does not match.
pub async fn verify_checksum(store: &Store, found: &Found) -> anyhow::Result<()> {
    for part in found.stored_parts() {
        let fetched = store.fetch(part.data).await?;
        let data = fetched.path().to_owned();
        let (checksum, bytes) = tokio::task::spawn_blocking(move || archive::checksum_of(&data)).await??;
        drop(fetched);
        if bytes != part.stored_bytes {
            anyhow::bail!("its {} has {bytes} bytes, the manifest says {} (truncated or replaced)", part.what, part.stored_bytes);
        }
        if checksum != part.checksum {
            anyhow::bail!("its {}'s BLAKE3 checksum does not match the manifest's: the file is corrupted", part.what);
        }
    }
    Ok(())
}

/// A stored file of a backup, decompressed into a temporary file on the store's file system and
/// checked against the manifest before anything reads it.
pub struct Unpacked {
    file: tempfile::NamedTempFile,
}

impl Unpacked {
    /// The dump of `found`, decrypted with `identities` if it is encrypted.
    ///
    /// # Errors
    /// When it cannot be read, decrypted or decompressed, or its checksum or size is not the
    /// manifest's. A missing or wrong identity is a [`UsageError`].
    pub async fn dump(store: &Store, found: &Found, identities: Arc<Identities>) -> anyhow::Result<Self> {
        let parts = found.stored_parts();
        Self::new(store, &parts[0], identities).await
    }

    /// The files of `found`, unpacked into a scratch folder; `None` for a backup made before
    /// files were backed up.
    ///
    /// # Errors
    /// As [`Unpacked::dump`], and an archive whose entries are not the tenant's files.
    pub async fn files(store: &Store, found: &Found, identities: Arc<Identities>) -> anyhow::Result<Option<UnpackedFiles>> {
        let (parts, Some(archive)) = (found.stored_parts(), &found.manifest.files) else { return Ok(None) };
        let Some(part) = parts.get(1) else { return Ok(None) };
        let tar = Self::new(store, part, identities).await?;
        Ok(Some(UnpackedFiles::new(tar.path(), &store.scratch()?, archive).await?))
    }

    async fn new(store: &Store, part: &Part<'_>, identities: Arc<Identities>) -> anyhow::Result<Self> {
        let scratch = store.scratch()?;
        let file = tempfile::Builder::new().prefix(".unpacked-").tempfile_in(scratch)?;
        let fetched = store.fetch(part.data).await?;
        let (data, mut writer, encryption) = (fetched.path().to_owned(), file.reopen()?, part.encryption.cloned());
        let unsealed = tokio::task::spawn_blocking(move || {
            let mut buffered = std::io::BufWriter::new(&mut writer);
            let result = archive::unseal(&data, encryption.as_ref(), &identities, &mut buffered);
            std::io::Write::flush(&mut buffered).map_err(|err| UnsealError::Damaged(err.to_string()))?;
            result
        })
        .await?;
        drop(fetched);
        let (checksum, written) = unsealed.map_err(|err| match err {
            UnsealError::Damaged(_) => anyhow::Error::new(err),
            _ => {
                UsageError::new(err.to_string(), "age-keygen makes identity files; `age-keygen -y FILE` shows the public key of one").into()
            }
        })?;
        if checksum != part.checksum {
            anyhow::bail!("its {}'s BLAKE3 checksum does not match the manifest's: the file is corrupted", part.what);
        }
        if written != part.plain_bytes {
            anyhow::bail!("its {} decompresses to {written} bytes, the manifest says {}", part.what, part.plain_bytes);
        }
        Ok(Self { file })
    }

    /// The decompressed file.
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
            let tables = crate::census::count_rows(&db).await?;
            read(db, tables).await
        }
    }
}
