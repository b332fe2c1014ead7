//! PostgreSQL: `pg_dump --format=custom` in a snapshot shared with the row counts, and a restore
//! that replaces the tenant's schema in one transaction (a failure leaves it as it was).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sea_orm::{AccessMode, ConnectionTrait, IsolationLevel, Statement, TransactionTrait};
use tenancy_core::migrate::MigrationSet;

use crate::archive::Sealing;
use crate::census::{self, Dialect};
use crate::engine::Dumped;
use crate::source::ServerLogin;
use crate::sql::{quote_ident, quote_literal};
use crate::tools::{self, Running};

/// Dumps the tenant (its `schema` of the login's database, or the whole database) into `target`.
///
/// The row counts and the dump read one snapshot: a transaction exports it and `pg_dump
/// --snapshot` takes it, so the manifest's counts are exactly the dump's; they are counted while
/// the dump runs.
///
/// # Errors
/// When the server cannot be reached, `pg_dump` is missing or older than the server, or it fails.
pub async fn dump(
    login: &ServerLogin,
    schema: Option<&str>,
    target: File,
    migrations: &MigrationSet,
    sealing: Sealing,
) -> anyhow::Result<Dumped> {
    let pg_dump = tools::find(&["pg_dump"], "postgresql-client")?;
    let tool = tools::version(&pg_dump)?;
    let db = connect(login, schema).await?;
    let server_version = census::server_version(&db, Dialect::Postgres).await?;
    check_versions(&tool, &server_version).map_err(anyhow::Error::msg)?;
    let snapshot_holder = db.begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly)).await?;
    let snapshot: String = snapshot_holder
        .query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT pg_export_snapshot()"))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the server exported no snapshot"))?
        .try_get_by_index(0)?;
    let mut command = Command::new(pg_dump);
    command.args(["--format=custom", "--compress=0", "--no-password"]).arg(format!("--snapshot={snapshot}"));
    if let Some(schema) = schema {
        // Double quotes make the name a literal, not a pattern.
        command.arg(format!("--schema={}", quote_ident(schema)));
    }
    login.set_pg_env(&mut command);
    command.stdin(Stdio::null()).stdout(Stdio::piped());
    // The rows are counted while pg_dump reads the same snapshot, not before it.
    let dumping = tokio::task::spawn_blocking(move || tools::seal_output_of(command, target, &sealing));
    let tables = census::count_rows(&snapshot_holder).await;
    let applied = tenancy_core::migrate::status::read_in(&snapshot_holder, migrations).await;
    let sealed = dumping.await??;
    let (tables, migrations) = (tables?, applied?.applied_names());
    snapshot_holder.commit().await?;
    db.close().await?;
    Ok(Dumped { sealed, tables, migrations, server_version, tool })
}

/// pg_dump refuses a server newer than itself, after connecting; say so first, with what to install.
fn check_versions(tool: &str, server_version: &str) -> Result<(), String> {
    match (census::major(tool), census::major(server_version)) {
        (Some(client), Some(server)) if client < server => Err(format!(
            "`{tool}` cannot dump PostgreSQL {server_version}: pg_dump must be at least as new as the server (install postgresql-client-{server})"
        )),
        _ => Ok(()),
    }
}

async fn connect(login: &ServerLogin, schema: Option<&str>) -> anyhow::Result<sea_orm::DatabaseConnection> {
    let db = login.connect().await?;
    if let Some(schema) = schema {
        db.execute_unprepared(&format!("SET search_path TO {}", quote_ident(schema))).await?;
    }
    Ok(db)
}

/// Checks that `pg_restore` can read the archive's table of contents; returns its entry count.
///
/// # Errors
/// When it cannot.
pub fn check(dump: &Path) -> anyhow::Result<String> {
    let pg_restore = tools::find(&["pg_restore"], "postgresql-client")?;
    let mut command = Command::new(pg_restore);
    command.arg("--list").arg(dump).stdin(Stdio::null()).stdout(Stdio::piped());
    let mut running = Running::start(command)?;
    let mut listing = String::new();
    if let Some(stdout) = running.child().stdout.as_mut() {
        stdout.read_to_string(&mut listing)?;
    }
    running.wait()?;
    let entries = listing.lines().filter(|line| !line.starts_with(';') && !line.trim().is_empty()).count();
    Ok(format!("pg_restore reads its table of contents ({entries} entries)"))
}

/// Where a restore goes: the tenant's schema, or its database.
pub struct RestoreTarget<'a> {
    /// The login on the database to restore into.
    pub login: &'a ServerLogin,
    /// Under schema isolation, the schema to replace and the schema the dump was made of.
    pub schemas: Option<(&'a str, &'a str)>,
    /// How long to wait for sessions using the tenant's tables before giving up.
    pub lock_timeout: Duration,
}

/// Replaces the tenant's tables with the dump's in one transaction: `pg_restore` writes SQL,
/// `psql --single-transaction` runs it after dropping what is there. A failure (or a lock that
/// cannot be had within `lock_timeout`) rolls everything back.
///
/// # Errors
/// When a program is missing or fails.
pub fn restore(target: &RestoreTarget<'_>, dump: &Path) -> anyhow::Result<()> {
    let pg_restore = tools::find(&["pg_restore"], "postgresql-client")?;
    let psql = tools::find(&["psql"], "postgresql-client")?;
    let (before, after) = restore_statements(target.schemas, target.lock_timeout);
    let mut sql = Command::new(pg_restore);
    sql.args(["--no-owner", "--no-privileges", "--file=-"]).arg(dump).stdin(Stdio::null()).stdout(Stdio::piped());
    let mut session = Command::new(psql);
    session.args(["--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1", "--single-transaction", "--file=-"]);
    target.login.set_pg_env(&mut session);
    session.stdin(Stdio::piped()).stdout(Stdio::null());
    let mut psql = Running::start(session)?;
    let mut producer = match Running::start(sql) {
        Ok(producer) => producer,
        Err(err) => {
            psql.kill();
            return Err(err.into());
        }
    };
    let fed = feed(&mut psql, &mut producer, &before, &after);
    let produced = producer.wait();
    // psql's own error says why a write to it failed; ask it first.
    psql.wait()?;
    produced?;
    fed?;
    Ok(())
}

fn feed(psql: &mut Running, producer: &mut Running, before: &str, after: &str) -> std::io::Result<()> {
    let mut stdin = psql.child().stdin.take().ok_or_else(|| std::io::Error::other("psql has no input"))?;
    let mut stdout = producer.child().stdout.take().ok_or_else(|| std::io::Error::other("pg_restore has no output"))?;
    stdin.write_all(before.as_bytes())?;
    std::io::copy(&mut stdout, &mut stdin)?;
    stdin.write_all(after.as_bytes())
}

/// The statements around the dump's: drop what the dump replaces; under schema isolation, when
/// the dump was made of another schema (a new tenant, a scratch copy), let it create that schema
/// and rename it, setting aside any schema of that name meanwhile.
fn restore_statements(schemas: Option<(&str, &str)>, lock_timeout: Duration) -> (String, String) {
    let mut before = format!("SET lock_timeout = '{}ms';\n", lock_timeout.as_millis());
    let mut after = String::new();
    match schemas {
        None => {
            // A database of its own: every schema but the system's goes, and `public` (which
            // pg_dump leaves to the target database) comes back empty for the dump to fill.
            before.push_str(
                "DO $tenancy$ DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace \
                 WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' LOOP \
                 EXECUTE format('DROP SCHEMA %I CASCADE', s); END LOOP; END $tenancy$;\nCREATE SCHEMA public;\n",
            );
        }
        Some((schema, dumped)) => {
            before.push_str(&format!("DROP SCHEMA IF EXISTS {} CASCADE;\n", quote_ident(schema)));
            if schema != dumped {
                let aside = format!("{dumped}_aside");
                before.push_str(&rename_if_exists(dumped, &aside));
                after.push_str(&format!("ALTER SCHEMA {} RENAME TO {};\n", quote_ident(dumped), quote_ident(schema)));
                after.push_str(&rename_if_exists(&aside, dumped));
            }
        }
    }
    (before, after)
}

fn rename_if_exists(from: &str, to: &str) -> String {
    format!(
        "DO $tenancy$ BEGIN IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = {}) THEN EXECUTE {}; END IF; END $tenancy$;\n",
        quote_literal(from),
        quote_literal(&format!("ALTER SCHEMA {} RENAME TO {}", quote_ident(from), quote_ident(to)))
    )
}

/// Creates database `name` on the login's server (for a restore test).
///
/// # Errors
/// When it cannot.
pub async fn create_database(login: &ServerLogin, name: &str) -> anyhow::Result<()> {
    login.execute(&format!("CREATE DATABASE {}", quote_ident(name))).await
}

/// Drops database `name`, closing what is connected to it.
///
/// # Errors
/// When it cannot.
pub async fn drop_database(login: &ServerLogin, name: &str) -> anyhow::Result<()> {
    login.execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name))).await
}

/// The row counts of a restored copy: `schema` of the login's database, or its search path.
///
/// # Errors
/// When it cannot be read.
pub async fn census_of(login: &ServerLogin, schema: Option<&str>) -> anyhow::Result<(sea_orm::DatabaseConnection, BTreeMap<String, u64>)> {
    let db = connect(login, schema).await?;
    let counts = census::count_rows(&db).await?;
    Ok((db, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_pg_dump_is_refused_with_what_to_install() {
        let refused = check_versions("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", "16.4").unwrap_err();
        assert!(refused.contains("postgresql-client-16"), "{refused}");
        assert!(check_versions("pg_dump (PostgreSQL) 16.1", "15.20 (Debian 15.20-0+deb12u1)").is_ok());
        assert!(check_versions("pg_dump (PostgreSQL) 15.20", "15.2").is_ok());
    }

    #[test]
    fn a_restore_replaces_only_what_the_dump_replaces() {
        let (before, after) = restore_statements(Some(("tenant_b", "tenant_a")), Duration::from_secs(3));
        assert!(before.starts_with("SET lock_timeout = '3000ms'"), "{before}");
        assert!(before.contains(r#"DROP SCHEMA IF EXISTS "tenant_b" CASCADE"#), "{before}");
        assert!(
            before.contains(r#"RENAME TO "tenant_a_aside""#) && after.contains(r#"ALTER SCHEMA "tenant_a" RENAME TO "tenant_b""#),
            "{after}"
        );
        let (before, after) = restore_statements(Some(("tenant_a", "tenant_a")), Duration::from_secs(3));
        assert!(!before.contains("RENAME") && after.is_empty(), "{before}{after}");
    }
}
