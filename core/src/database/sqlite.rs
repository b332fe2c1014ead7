//! SQLite: one file per tenant in one folder, opened in WAL mode with `synchronous = NORMAL`
//! (consistent after any crash; on power loss only the last transactions can be lost).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, DatabaseConnection};

use super::manager::{PoolSettings, TemplateLock, connect};
use super::{ConnectionTarget, DatabaseError, DatabaseManager, DatabaseName, Driver, Login};

/// How long a connection waits for another one's lock, and opening waits for a busy file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A SQLite file per tenant: `{folder}/{bucket}/{name}.sqlite` (see [`bucket_of`]), or
/// `{folder}/{name}.sqlite` for a file made before tenants' files were spread over buckets.
#[derive(Debug)]
pub struct SqliteManager {
    folder: PathBuf,
    settings: PoolSettings,
    /// The options of every lazily opened pool but the file: built once, since a web server may
    /// open a pool per request when its tenants outnumber the pools it may keep.
    lazy_options: SqliteConnectOptions,
}

impl SqliteManager {
    pub(crate) fn new(folder: PathBuf, settings: PoolSettings) -> Self {
        use sea_orm::sqlx::ConnectOptions as _;
        let lazy_options = with_pragmas(SqliteConnectOptions::new(), &folder).disable_statement_logging();
        Self { folder, settings, lazy_options }
    }

    /// The file of `database`: in its bucket, unless only the flat path of an older installation
    /// holds it. Its name is a checked identifier, so it cannot leave the folder.
    pub fn path_of(&self, database: &DatabaseName) -> PathBuf {
        let bucketed = self.folder.join(bucket_of(database.as_str())).join(format!("{database}.sqlite"));
        if bucketed.exists() {
            return bucketed;
        }
        let flat = self.folder.join(format!("{database}.sqlite"));
        if flat.exists() { flat } else { bucketed }
    }

    /// Sealed templates live apart from tenants' files, in `{folder}/templates`.
    fn templates_folder(&self) -> PathBuf {
        self.folder.join("templates")
    }

    fn template_path(&self, template: &DatabaseName) -> PathBuf {
        self.templates_folder().join(format!("{template}.sqlite"))
    }
}

/// The sub-folder a tenant's file goes in: two hex digits of the FNV-1a hash of its name, so 256
/// folders share the files evenly whatever the naming (10,000 tenants make about 40 a folder, and
/// listing one stays fast at 100,000). The hash is fixed: a file's place never changes.
pub fn bucket_of(database: &str) -> String {
    let hash = database.bytes().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    format!("{:02x}", hash & 0xff)
}

/// Creates the folder `path` goes in.
async fn create_parent(path: &Path) -> Result<(), DatabaseError> {
    let folder = path.parent().unwrap_or(path);
    tokio::fs::create_dir_all(folder).await.map_err(io_error("create the folder", folder))
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DatabaseError {
    let path = path.to_path_buf();
    move |source| DatabaseError::Io { action, path, source }
}

/// A URL for the existing SQLite file at `path`, for another program to open.
pub(crate) fn sqlite_url(path: &Path) -> String {
    // The characters a URL would read as syntax are escaped; sqlx decodes them back.
    let path = path.to_string_lossy().replace('%', "%25").replace('?', "%3F").replace('#', "%23");
    format!("sqlite://{path}?mode=rw")
}

/// The pragmas every connection of every SQLite pool gets, tenant and central alike.
pub(crate) fn sqlite_connect_options(path: &Path, options: &mut ConnectOptions) {
    let path = path.to_path_buf();
    options.map_sqlx_sqlite_opts(move |opts: SqliteConnectOptions| with_pragmas(opts, &path));
}

fn with_pragmas(options: SqliteConnectOptions, path: &Path) -> SqliteConnectOptions {
    options
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
}

#[async_trait]
impl DatabaseManager for SqliteManager {
    fn driver(&self) -> Driver {
        Driver::Sqlite
    }

    fn location(&self, database: &DatabaseName) -> String {
        self.path_of(database).display().to_string()
    }

    fn connect_options(&self, database: &DatabaseName, _login: Option<&Login>) -> ConnectOptions {
        // The URL only selects the driver; the file is set in the map below, so no path is ever parsed as a URL.
        let mut options = self.settings.tenant_options("sqlite://tenant.sqlite".into());
        sqlite_connect_options(&self.path_of(database), &mut options);
        options
    }

    fn connection_target(&self, database: &DatabaseName, _login: Option<&Login>) -> ConnectionTarget {
        ConnectionTarget { url: sqlite_url(&self.path_of(database)), schema: None }
    }

    async fn open(&self, database: &DatabaseName) -> Result<DatabaseConnection, DatabaseError> {
        self.open_sized(database, None, self.settings.pool_size).await
    }

    async fn open_lazy(
        &self,
        database: &DatabaseName,
        _login: Option<&Login>,
        connections: u32,
    ) -> Result<DatabaseConnection, DatabaseError> {
        // Built on sqlx directly: sea-orm's connect asks SQLite for its version even when told to
        // connect lazily, which would open the file.
        let options = self.lazy_options.clone().filename(self.path_of(database));
        // No idle timeout or lifetime: sqlx would start a maintenance task for each pool, and a web
        // request may make one; the connection cache closes idle pools itself.
        let pool = self
            .settings
            .sqlx_pool_options::<sea_orm::sqlx::Sqlite>(connections)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options);
        Ok(sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
    }

    async fn open_sized(
        &self,
        database: &DatabaseName,
        login: Option<&Login>,
        connections: u32,
    ) -> Result<DatabaseConnection, DatabaseError> {
        let mut options = self.connect_options(database, login);
        options.max_connections(connections);
        // Switching a new file to WAL takes a lock that SQLite does not wait for: when another
        // process opens the same new tenant at that moment (two `db migrate` at once), the open is
        // refused as busy. Such an open is tried again, as long as a busy connection would wait.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match connect(options.clone(), None, self.location(database)).await {
                Err(DatabaseError::Connect { source, .. })
                    if source.0.contains("database is locked") && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                opened => return opened,
            }
        }
    }

    async fn bytes_of(&self, databases: &[DatabaseName]) -> Result<u64, DatabaseError> {
        let mut bytes = 0;
        for database in databases {
            let path = self.path_of(database);
            // The database file and its write-ahead log; a file that is not there counts nothing.
            for file in [path.clone(), path.with_extension("sqlite-wal")] {
                bytes += tokio::fs::metadata(&file).await.map_or(0, |meta| meta.len());
            }
        }
        Ok(bytes)
    }

    async fn database_exists(&self, database: &DatabaseName) -> Result<bool, DatabaseError> {
        let path = self.path_of(database);
        tokio::fs::try_exists(&path).await.map_err(|source| DatabaseError::Io { action: "look for", path, source })
    }

    async fn create_database(&self, database: &DatabaseName) -> Result<(), DatabaseError> {
        let path = self.path_of(database);
        create_parent(&path).await?;
        // `create_new` makes creation atomic: an existing file is never adopted.
        match tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(DatabaseError::AlreadyExists { database: database.clone(), location: path.display().to_string() })
            }
            Err(source) => Err(DatabaseError::Io { action: "create", path, source }),
        }
    }

    async fn drop_database(&self, database: &DatabaseName) -> Result<(), DatabaseError> {
        let path = self.path_of(database);
        // With SQLite's own files goes the lock file the migration runner keeps beside them.
        for suffix in ["", "-wal", "-shm", ".migrate.lock"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            match tokio::fs::remove_file(&file).await {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(DatabaseError::Io { action: "delete", path: file, source }),
            }
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), DatabaseError> {
        tokio::fs::create_dir_all(&self.folder).await.map_err(|source| DatabaseError::Io {
            action: "create the folder",
            path: self.folder.clone(),
            source,
        })
    }

    fn supports_templates(&self) -> bool {
        true
    }

    async fn template_ready(&self, template: &DatabaseName) -> Result<bool, DatabaseError> {
        let path = self.template_path(template);
        tokio::fs::try_exists(&path).await.map_err(io_error("look for", &path))
    }

    async fn lock_template(&self, template: &DatabaseName) -> Result<TemplateLock, DatabaseError> {
        let folder = self.templates_folder();
        let path = folder.join(format!("{template}.lock"));
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&folder).map_err(io_error("create the folder", &folder))?;
            let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_error("open", &path))?;
            file.lock().map_err(io_error("lock", &path))?;
            Ok(TemplateLock::File(file))
        })
        .await
        .unwrap_or_else(|join| Err(DatabaseError::Io { action: "lock", path: PathBuf::new(), source: std::io::Error::other(join) }))
    }

    async fn seal_template(&self, building: &DatabaseName, template: &DatabaseName) -> Result<(), DatabaseError> {
        // Every connection is closed, so SQLite has folded its write-ahead log into the file: the
        // file alone is the database. A rename is atomic: the template is complete or absent.
        let (from, to) = (self.path_of(building), self.template_path(template));
        tokio::fs::rename(&from, &to).await.map_err(io_error("move the finished template", &from))?;
        // What is left of the build: the migration runner's lock file.
        self.drop_database(building).await
    }

    async fn create_from_template(&self, template: &DatabaseName, database: &DatabaseName) -> Result<(), DatabaseError> {
        let (source, target) = (self.template_path(template), self.path_of(database));
        create_parent(&target).await?;
        // Copied beside the target, then linked into place: the link fails if the target exists
        // (never adopted, as `create_database`), and a reader never sees half a copy.
        let partial = target.with_file_name(format!(".{database}.partial-{}", uuid::Uuid::now_v7().simple()));
        tokio::fs::copy(&source, &partial).await.map_err(io_error("copy the template", &source))?;
        let linked = tokio::fs::hard_link(&partial, &target).await;
        let _ = tokio::fs::remove_file(&partial).await;
        match linked {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(DatabaseError::AlreadyExists { database: database.clone(), location: target.display().to_string() })
            }
            Err(source) => Err(DatabaseError::Io { action: "create", path: target, source }),
        }
    }

    async fn template_names(&self, naming: &super::DatabaseNaming) -> Result<Vec<DatabaseName>, DatabaseError> {
        let folder = self.templates_folder();
        let mut entries = match tokio::fs::read_dir(&folder).await {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(DatabaseError::Io { action: "list", path: folder, source }),
        };
        let mut names = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io_error("list", &folder))? {
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file.strip_suffix(".sqlite").filter(|name| naming.is_template_name(name)) {
                names.extend(DatabaseName::parse(name).ok());
            }
        }
        Ok(names)
    }

    async fn drop_template(&self, template: &DatabaseName) -> Result<(), DatabaseError> {
        for path in [self.template_path(template), self.templates_folder().join(format!("{template}.lock"))] {
            match tokio::fs::remove_file(&path).await {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    return Err(DatabaseError::Io { action: "delete", path, source: err });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_fixed_and_spread_names_evenly() {
        // Fixed values: a file made by this version must be found by every later one.
        assert_eq!(bucket_of(""), "c5");
        assert_eq!(bucket_of("tenant_0195e6f2a1b47d3c9e8f001122334455"), bucket_of("tenant_0195e6f2a1b47d3c9e8f001122334455"));
        let mut counts = std::collections::HashMap::new();
        for i in 0..10_000 {
            *counts.entry(bucket_of(&format!("tenant_{:032x}", uuid::Uuid::now_v7().as_u128() + i))).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 256, "every bucket is used");
        assert!(counts.values().all(|&n| (10..=90).contains(&n)), "uneven: {counts:?}");
    }

    #[tokio::test]
    async fn new_files_go_in_buckets_and_flat_files_are_still_found() {
        let folder = tempfile::tempdir().unwrap();
        let manager =
            SqliteManager::new(folder.path().to_path_buf(), PoolSettings::from_config(&crate::Config::defaults_at(folder.path())));
        let new = DatabaseName::parse("tenant_new").unwrap();
        manager.create_database(&new).await.unwrap();
        assert_eq!(manager.path_of(&new), folder.path().join(bucket_of("tenant_new")).join("tenant_new.sqlite"));
        assert!(manager.path_of(&new).is_file());

        // A file an older version made at the flat path is the tenant's database, not a new one.
        let old = DatabaseName::parse("tenant_old").unwrap();
        std::fs::write(folder.path().join("tenant_old.sqlite"), b"").unwrap();
        assert_eq!(manager.path_of(&old), folder.path().join("tenant_old.sqlite"));
        assert!(manager.database_exists(&old).await.unwrap());
        assert!(matches!(manager.create_database(&old).await, Err(DatabaseError::AlreadyExists { .. })));
        manager.drop_database(&old).await.unwrap();
        assert!(!folder.path().join("tenant_old.sqlite").exists());
        assert!(!manager.database_exists(&old).await.unwrap());
    }
}
