//! The migration lock of one tenant database, so that two processes migrating the same tenant at
//! once (two deploy jobs) never run the same migration twice: each migration is applied holding the
//! lock, after checking again that nobody applied it meanwhile.
//!
//! - PostgreSQL: a transaction-level advisory lock keyed by the schema (advisory locks are per
//!   database, and schemas share one), released by the migration's commit or rollback; a migration
//!   that runs outside a transaction holds the session-level twin on a pinned connection.
//! - MySQL/MariaDB: `GET_LOCK` named after the database (named locks are server-wide), on the
//!   connection that runs the migration, whose result is checked: 1 is the lock, 0 a timeout.
//! - SQLite: an exclusive lock on a file beside the tenant's database file (never the database
//!   file itself: closing another descriptor of it would drop SQLite's own locks).
//!
//! Every wait ends after [`LOCK_WAIT`] with an error naming what was waited for.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// How long a process waits for another one's migration to finish.
pub const LOCK_WAIT: Duration = Duration::from_secs(300);

/// How often a busy lock is tried again.
const RETRY: Duration = Duration::from_millis(50);

/// Whether the lock ends with the transaction it was taken in, or lives as long as its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Transaction,
    Session,
}

/// A lock taken; give it back with [`release`].
#[must_use = "release the lock when the migration is done"]
pub(crate) enum Held {
    /// PostgreSQL (transaction scope): released by the commit or rollback.
    ByTransaction,
    /// PostgreSQL (session scope) or MySQL: released by a statement on the same connection.
    BySession,
}

/// The lock file of one SQLite tenant database, found and opened once per run and locked for
/// each migration.
pub(crate) struct LockFile {
    path: PathBuf,
    file: std::fs::File,
}

impl LockFile {
    /// Opens (creating it if missing) the lock file beside the database `conn` is connected to.
    pub(crate) async fn open(conn: &impl ConnectionTrait) -> Result<Self, DbErr> {
        let database = scalar::<String>(conn, "SELECT file FROM pragma_database_list WHERE name = 'main'").await?;
        let path = PathBuf::from(format!("{database}.migrate.lock"));
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| io("open", &path, e))?;
        Ok(Self { path, file })
    }

    /// Takes the lock, waiting at most [`LOCK_WAIT`] for another process to give it back.
    pub(crate) async fn lock(&self) -> Result<FileLockGuard<'_>, DbErr> {
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match self.file.try_lock() {
                Ok(()) => return Ok(FileLockGuard(self)),
                Err(std::fs::TryLockError::WouldBlock) => wait_or_give_up(deadline, "the migration lock file").await?,
                Err(std::fs::TryLockError::Error(err)) => return Err(io("lock", &self.path, err)),
            }
        }
    }
}

/// Unlocks the lock file when dropped, on every path out of a migration.
#[must_use = "the lock is released when this is dropped"]
pub(crate) struct FileLockGuard<'a>(&'a LockFile);

impl Drop for FileLockGuard<'_> {
    fn drop(&mut self) {
        // Closing the file would unlock it too; it stays open for the next migration of the run.
        let _ = self.0.file.unlock();
    }
}

/// Takes the migration lock of the server database `conn` is connected to (PostgreSQL, MySQL).
pub(crate) async fn acquire(conn: &impl ConnectionTrait, scope: Scope) -> Result<Held, DbErr> {
    match conn.get_database_backend() {
        DbBackend::Postgres => {
            let function = if scope == Scope::Transaction { "pg_try_advisory_xact_lock" } else { "pg_try_advisory_lock" };
            let sql = format!("SELECT {function}({POSTGRES_CLASS}, hashtext(current_schema()))");
            let deadline = Instant::now() + LOCK_WAIT;
            while !scalar::<bool>(conn, &sql).await? {
                wait_or_give_up(deadline, "the PostgreSQL advisory lock").await?;
            }
            Ok(if scope == Scope::Transaction { Held::ByTransaction } else { Held::BySession })
        }
        DbBackend::MySql => {
            let sql = format!("SELECT GET_LOCK({MYSQL_NAME}, {})", LOCK_WAIT.as_secs());
            match scalar::<Option<i64>>(conn, &sql).await? {
                Some(1) => Ok(Held::BySession),
                Some(_) => Err(gave_up("the MySQL named lock")),
                None => Err(DbErr::Custom("GET_LOCK failed for the migration lock".into())),
            }
        }
        _ => Err(DbErr::Custom("a SQLite database is locked through its `LockFile`".into())),
    }
}

/// Gives `held` back (on the connection it was taken on).
pub(crate) async fn release(conn: &impl ConnectionTrait, held: Held) -> Result<(), DbErr> {
    match (held, conn.get_database_backend()) {
        (Held::BySession, DbBackend::Postgres) => {
            conn.execute_unprepared(&format!("SELECT pg_advisory_unlock({POSTGRES_CLASS}, hashtext(current_schema()))")).await.map(drop)
        }
        (Held::BySession, _) => conn.execute_unprepared(&format!("SELECT RELEASE_LOCK({MYSQL_NAME})")).await.map(drop),
        (Held::ByTransaction, _) => Ok(()),
    }
}

/// The first key of tenancy's two-key PostgreSQL advisory locks ("tenancy migrate").
const POSTGRES_CLASS: i32 = 730_586_002;
/// A MySQL lock name at most 64 characters long, whatever the database is called.
const MYSQL_NAME: &str = "CONCAT('tenancy_migrate:', SHA1(DATABASE()))";

async fn scalar<T: sea_orm::TryGetable>(conn: &impl ConnectionTrait, sql: &str) -> Result<T, DbErr> {
    let backend = conn.get_database_backend();
    let row =
        conn.query_one_raw(Statement::from_string(backend, sql)).await?.ok_or_else(|| DbErr::Custom(format!("`{sql}` returned no row")))?;
    row.try_get_by_index(0)
}

async fn wait_or_give_up(deadline: Instant, what: &str) -> Result<(), DbErr> {
    if Instant::now() >= deadline {
        return Err(gave_up(what));
    }
    tokio::time::sleep(RETRY).await;
    Ok(())
}

fn gave_up(what: &str) -> DbErr {
    DbErr::Custom(format!(
        "another process held {what} on this tenant's migrations for more than {}s; try again when it has finished",
        LOCK_WAIT.as_secs()
    ))
}

fn io(action: &str, path: &std::path::Path, err: std::io::Error) -> DbErr {
    DbErr::Custom(format!("cannot {action} `{}`: {err}", path.display()))
}
