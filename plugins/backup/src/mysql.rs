//! MySQL and MariaDB: `mariadb-dump --single-transaction` (or `mysqldump`), and a restore that loads
//! the dump into a scratch database and swaps its tables in with one `RENAME TABLE`, so a load that
//! fails half-way never touches the tenant.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sea_orm::{AccessMode, ConnectionTrait, DatabaseConnection, IsolationLevel, Statement, TransactionTrait};
use tenancy_core::migrate::MigrationSet;

use crate::archive::Sealing;
use crate::census::{self, Dialect};
use crate::engine::Dumped;
use crate::source::ServerLogin;
use crate::sql::{quote_literal, quote_mysql};
use crate::tools::{self, Running};

/// The last line `mariadb-dump` writes when it finished.
const COMPLETED: &str = "-- Dump completed";

/// Dumps the login's database into `target`.
///
/// # Errors
/// When the server cannot be reached, the dump program is missing, or it fails.
pub async fn dump(login: &ServerLogin, target: File, migrations: &MigrationSet, sealing: Sealing) -> anyhow::Result<Dumped> {
    let program = tools::find(&["mariadb-dump", "mysqldump"], "mariadb-client")?;
    let tool = tools::version(&program)?;
    let db = login.connect().await?;
    let server_version = census::server_version(&db, Dialect::MySql).await?;
    // MySQL cannot share a snapshot with another session: count in one taken just before the dump's.
    let snapshot = db.begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly)).await?;
    let tables = census::count_rows(&snapshot).await?;
    let migrations = tenancy_core::migrate::status::read_in(&snapshot, migrations).await?.applied_names();
    snapshot.commit().await?;
    db.close().await?;
    let defaults = login.mysql_defaults()?;
    let mut command = Command::new(program);
    // The option file must come first.
    command
        .arg(format!("--defaults-extra-file={}", defaults.path().display()))
        .args(["--single-transaction", "--routines", "--triggers", "--events", "--hex-blob", "--no-tablespaces"])
        .args(["--default-character-set=utf8mb4", "--skip-dump-date", "--"])
        .arg(login.database())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let sealed = tokio::task::spawn_blocking(move || tools::seal_output_of(command, target, &sealing)).await??;
    drop(defaults);
    Ok(Dumped { sealed, tables, migrations, server_version, tool })
}

/// Checks that the dump ends with the line `mariadb-dump` writes last.
///
/// # Errors
/// When it does not: the dump was cut short.
pub fn check(dump: &Path) -> anyhow::Result<String> {
    let mut file = File::open(dump)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(512)))?;
    let mut tail = String::new();
    file.read_to_string(&mut tail)?;
    if tail.contains(COMPLETED) {
        Ok(format!("the SQL dump is complete (it ends with `{COMPLETED}`)"))
    } else {
        anyhow::bail!("the SQL dump does not end with `{COMPLETED}`: it was cut short")
    }
}

/// Loads the dump into `database` (which must exist) with the `mariadb` client.
///
/// # Errors
/// When the client is missing or fails.
pub fn load(login: &ServerLogin, database: &str, dump: &Path) -> anyhow::Result<()> {
    let client = tools::find(&["mariadb", "mysql"], "mariadb-client")?;
    let defaults = login.mysql_defaults()?;
    let mut command = Command::new(client);
    command
        .arg(format!("--defaults-extra-file={}", defaults.path().display()))
        .args(["--batch", "--binary-mode", "--default-character-set=utf8mb4"])
        .arg(format!("--database={database}"))
        .stdin(File::open(dump)?)
        .stdout(Stdio::null());
    Running::start(command)?.wait()?;
    Ok(())
}

/// Replaces the tables of the login's database with the dump's.
///
/// The dump is loaded into a scratch database first; then one `RENAME TABLE` moves the tenant's
/// tables aside and the loaded ones in, atomically. A dump holding views, triggers or routines
/// (which cannot move between databases) is loaded into the emptied database instead, and the
/// returned note says that this load was not atomic.
///
/// # Errors
/// When the load or the swap fails; the tenant's tables are then untouched (or, in the
/// non-atomic case, partly loaded: run the restore again).
pub async fn restore(login: &ServerLogin, dump: &Path, lock_timeout: Duration) -> anyhow::Result<Option<String>> {
    let target = login.database();
    let scratch = crate::sql::scratch_name("restore");
    let admin = login.connect().await?;
    // RENAME TABLE waits for the metadata locks of sessions using the tables: not forever.
    admin.execute_unprepared(&format!("SET SESSION lock_wait_timeout = {}", lock_timeout.as_secs().max(1))).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE {}", quote_mysql(&scratch))).await?;
    let outcome = load_and_swap(login, &admin, &target, &scratch, dump).await;
    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {}", quote_mysql(&scratch))).await;
    admin.close().await?;
    outcome
}

async fn load_and_swap(
    login: &ServerLogin,
    admin: &DatabaseConnection,
    target: &str,
    scratch: &str,
    dump: &Path,
) -> anyhow::Result<Option<String>> {
    let (owned_login, owned_scratch, owned_dump) = (login.clone(), scratch.to_owned(), dump.to_owned());
    tokio::task::spawn_blocking(move || load(&owned_login, &owned_scratch, &owned_dump)).await??;
    let movable = objects(admin, scratch, "table_type = 'BASE TABLE'").await?;
    let immovable = count(
        admin,
        &format!(
            "SELECT (SELECT COUNT(*) FROM information_schema.views WHERE table_schema = {s}) \
             + (SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = {s}) \
             + (SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = {s}) \
             + (SELECT COUNT(*) FROM information_schema.events WHERE event_schema = {s})",
            s = quote_literal(scratch)
        ),
    )
    .await?;
    if immovable > 0 {
        empty(admin, target).await?;
        let (owned_login, owned_target, owned_dump) = (login.clone(), target.to_owned(), dump.to_owned());
        tokio::task::spawn_blocking(move || load(&owned_login, &owned_target, &owned_dump)).await??;
        return Ok(Some(
            "the backup holds views, triggers or routines, so it was loaded into the emptied database (not atomically)".into(),
        ));
    }
    let current = objects(admin, target, "table_type = 'BASE TABLE'").await?;
    let aside = crate::sql::scratch_name("aside");
    admin.execute_unprepared(&format!("CREATE DATABASE {}", quote_mysql(&aside))).await?;
    let mut renames: Vec<String> = current
        .iter()
        .map(|table| format!("{}.{} TO {}.{}", quote_mysql(target), quote_mysql(table), quote_mysql(&aside), quote_mysql(table)))
        .collect();
    renames.extend(
        movable
            .iter()
            .map(|table| format!("{}.{} TO {}.{}", quote_mysql(scratch), quote_mysql(table), quote_mysql(target), quote_mysql(table))),
    );
    let swapped =
        if renames.is_empty() { Ok(()) } else { admin.execute_unprepared(&format!("RENAME TABLE {}", renames.join(", "))).await.map(drop) };
    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {}", quote_mysql(&aside))).await;
    swapped?;
    Ok(None)
}

/// Drops every table and view of `database`.
async fn empty(admin: &DatabaseConnection, database: &str) -> anyhow::Result<()> {
    admin.execute_unprepared("SET FOREIGN_KEY_CHECKS = 0").await?;
    for view in objects(admin, database, "table_type = 'VIEW'").await? {
        admin.execute_unprepared(&format!("DROP VIEW {}.{}", quote_mysql(database), quote_mysql(&view))).await?;
    }
    for table in objects(admin, database, "table_type = 'BASE TABLE'").await? {
        admin.execute_unprepared(&format!("DROP TABLE {}.{}", quote_mysql(database), quote_mysql(&table))).await?;
    }
    admin.execute_unprepared("SET FOREIGN_KEY_CHECKS = 1").await?;
    Ok(())
}

async fn objects(admin: &DatabaseConnection, database: &str, filter: &str) -> anyhow::Result<Vec<String>> {
    let query = format!(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = {} AND {filter} ORDER BY 1",
        quote_literal(database)
    );
    let rows = admin.query_all_raw(Statement::from_string(admin.get_database_backend(), query)).await?;
    Ok(rows.iter().map(|row| row.try_get_by_index::<String>(0)).collect::<Result<_, _>>()?)
}

async fn count(admin: &DatabaseConnection, query: &str) -> anyhow::Result<i64> {
    let row = admin.query_one_raw(Statement::from_string(admin.get_database_backend(), query)).await?;
    Ok(row.map(|row| row.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0))
}

/// Creates database `name` on the login's server.
///
/// # Errors
/// When it cannot.
pub async fn create_database(login: &ServerLogin, name: &str) -> anyhow::Result<()> {
    login.execute(&format!("CREATE DATABASE {}", quote_mysql(name))).await
}

/// Drops database `name`.
///
/// # Errors
/// When it cannot.
pub async fn drop_database(login: &ServerLogin, name: &str) -> anyhow::Result<()> {
    login.execute(&format!("DROP DATABASE IF EXISTS {}", quote_mysql(name))).await
}

/// The row counts of database `name`, and a connection to it.
///
/// # Errors
/// When it cannot be read.
pub async fn census_of(login: &ServerLogin, name: &str) -> anyhow::Result<(DatabaseConnection, BTreeMap<String, u64>)> {
    let db = login.on(name).connect().await?;
    let counts = census::count_rows(&db).await?;
    Ok((db, counts))
}
