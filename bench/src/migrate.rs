//! `migrate`: fresh tenants migrated by (a) `tenancy db migrate --all` (and on SQLite (a1) the
//! same at `--concurrency 1`), (b) the same again with nothing pending (trusting the registry's
//! record of each tenant's migrations) and (b') with `--verify` (reading every database), against
//!
//! - (d) the floor, the cheapest honest way to do the same work outside our stack: on SQLite a
//!   plain sqlx connection per file (WAL, `synchronous = NORMAL`, as tenancy opens them), one
//!   transaction per migration with its tracking row, sent as one script, tenant after tenant; on
//!   PostgreSQL the same statements through one `psql` session (`\connect` per database, or
//!   `SET search_path` per schema);
//! - (e) the peer, what a developer writes instead: sea-orm-migration's `Migrator::up` per tenant
//!   (core's tables, then the application's), `buffer_unordered` over the tenants, with the same
//!   connection options as (a), at each of `--peer-concurrency` and reported at its best.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sea_orm::DbBackend;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::sqlx::{AssertSqlSafe, Connection};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use tenancy_core::migrate::{CoreTablesMigrator, MigrationSet, SeaOrmMigrator, TenantMigrator, runner};
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Driver, Tenancy, Tenant, TenantName};
use tenancy_tests::{Backend, TestEnv};

use crate::RolesArg;

/// Core's tables as a plain `MigratorTrait`, so the peer runs the very same migrations.
struct CoreTables;

impl MigratorTrait for CoreTables {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        CoreTablesMigrator.migrations()
    }

    fn migration_table_name() -> sea_orm::DynIden {
        sea_orm::sea_query::Alias::new(CoreTablesMigrator.tracking_table()).into()
    }
}

/// What to run.
pub struct Options<'a> {
    /// The release `tenancy` binary.
    pub binary: &'a Path,
    /// `--concurrency` for (a); its own default if `None`.
    pub concurrency: Option<usize>,
    /// The peer's concurrencies to try.
    pub peer_concurrency: &'a [usize],
}

/// Runs every measure on `count` tenants of `backend` with `roles`; returns (a)'s time.
pub async fn run(backend: Backend, count: usize, roles: RolesArg, options: &Options<'_>) -> anyhow::Result<Option<Duration>> {
    let Some(env) = TestEnv::new(backend) else { return Ok(None) };
    if roles == RolesArg::Shared {
        env.use_shared_roles();
    }
    env.create_central_database().await;
    let app: Arc<dyn TenantMigrator> = Arc::new(SeaOrmMigrator::<migration::Migrator>::default());
    let tenancy = Tenancy::builder(env.config()).tenant_migrator(app.clone()).open().await?;
    let tenants = create_tenants(&tenancy, count).await?;
    let migrations = MigrationSet::new(Some(app)).migration_count();
    let secs = |d: Duration| d.as_secs_f64();

    let (a, peak) = cli_migrate(options.binary, env.dir(), options.concurrency, false)?;
    let (b, _) = cli_migrate(options.binary, env.dir(), options.concurrency, false)?;
    let (b_verify, _) = cli_migrate(options.binary, env.dir(), options.concurrency, true)?;
    let a1 = match backend {
        Backend::Sqlite => {
            recreate(&tenancy, &tenants).await?;
            Some(cli_migrate(options.binary, env.dir(), Some(1), false)?.0)
        }
        _ => None,
    };
    recreate(&tenancy, &tenants).await?;
    let script = Script::of(&tenancy).await?;
    let d = match backend {
        Backend::Sqlite => sqlite_floor(&tenancy, &tenants, &script).await?,
        _ => psql_floor(&env, backend, &tenants, &script)?,
    };
    let mut peers = Vec::new();
    for &concurrency in options.peer_concurrency {
        recreate(&tenancy, &tenants).await?;
        peers.push((concurrency, peer(&tenancy, &tenants, concurrency).await?));
    }
    let (best, e) = peers.iter().copied().min_by_key(|(_, time)| *time).unwrap_or((0, Duration::MAX));

    let roles = if backend == Backend::Sqlite { String::new() } else { format!(", {roles} roles") };
    let mut out = format!("  {:<16} N={count:<5} {migrations} migrations each{roles}\n", backend.name());
    let _ = writeln!(out, "    (a)  db migrate --all        {:>7.2}s   peak RSS {:.0} MiB", secs(a), peak as f64 / 1024.0 / 1024.0);
    if let Some(a1) = a1 {
        let _ = writeln!(out, "    (a1) … --concurrency 1       {:>7.2}s", secs(a1));
    }
    let _ = writeln!(out, "    (b)  nothing pending         {:>7.2}s   (trusting the registry's record)", secs(b));
    let _ = writeln!(out, "    (b') … --verify              {:>7.2}s   (reading every tenant's tracking tables)", secs(b_verify));
    let _ =
        writeln!(out, "    (d)  floor ({:<14})   {:>7.2}s", if backend == Backend::Sqlite { "plain sqlx" } else { "one psql" }, secs(d));
    for (concurrency, time) in &peers {
        let _ = writeln!(out, "    (e)  Migrator::up × {concurrency:<3}       {:>7.2}s", secs(*time));
    }
    let _ = write!(out, "    ratios: a/d {:.2}   a/e {:.2} (e at {best} at once)", secs(a) / secs(d), secs(a) / secs(e));
    if let Some(a1) = a1 {
        let _ = write!(out, "   a1/d {:.2}", secs(a1) / secs(d));
    }
    println!("{out}");
    tenancy.close().await;
    Ok(Some(a))
}

async fn create_tenants(tenancy: &Tenancy, count: usize) -> anyhow::Result<Vec<Tenant>> {
    let mut tenants = Vec::with_capacity(count);
    for i in 0..count {
        let mut request = TenantRequest::new(TenantName::parse(&format!("Tenant {i}"))?);
        request.migrate = false;
        tenants.push(tenancy.create_tenant(&request, &()).await?);
    }
    tenancy.connections().close_all().await;
    Ok(tenants)
}

/// Runs the release binary, output discarded, and returns its wall time and peak resident memory.
fn cli_migrate(binary: &Path, dir: &Path, concurrency: Option<usize>, verify: bool) -> anyhow::Result<(Duration, u64)> {
    let mut command = Command::new(binary);
    command
        .args(["db", "migrate", "--all", "--quiet"])
        .args(concurrency.map(|n| format!("--concurrency={n}")))
        .args(verify.then_some("--verify"))
        .current_dir(dir);
    let measured = crate::measure::run_measured(command)?;
    Ok((measured.elapsed, measured.peak_rss))
}

async fn recreate(tenancy: &Tenancy, tenants: &[Tenant]) -> anyhow::Result<()> {
    tenancy.connections().close_all().await;
    for tenant in tenants {
        let manager = tenancy.manager_of(tenant)?;
        manager.drop_database(&tenant.database).await?;
        manager.create_database(&tenant.database).await?;
        // Made by the server's user: where tenants have roles, it is given to the tenant's.
        tenancy.give_to_role(tenant, None).await?;
        // Recreated behind tenancy's back: what the registry records of its migrations is void.
        tenancy.registry().forget_migrated_set(&tenant.id).await?;
    }
    Ok(())
}

/// Every migration's statements on the tenants' backend, with its tracking row: what the floor sends.
struct Script {
    /// `CREATE TABLE IF NOT EXISTS` of each tracking table.
    tracking_tables: Vec<String>,
    /// Per migration: `BEGIN; its statements; INSERT INTO its tracking table …; COMMIT;`.
    migrations: Vec<String>,
}

impl Script {
    async fn of(tenancy: &Tenancy) -> anyhow::Result<Self> {
        let backend = match tenancy.config().tenant_database.driver {
            Driver::Sqlite => DbBackend::Sqlite,
            Driver::Postgres => DbBackend::Postgres,
            Driver::MySql => DbBackend::MySql,
        };
        let mut script = Self { tracking_tables: Vec::new(), migrations: Vec::new() };
        for migrator in tenancy.migrations().migrators() {
            let table = migrator.tracking_table();
            script.tracking_tables.push(format!(
                "CREATE TABLE IF NOT EXISTS \"{table}\" (\"version\" varchar NOT NULL PRIMARY KEY, \"applied_at\" bigint NOT NULL);"
            ));
            for migration in migrator.migrations() {
                let statements = runner::statements_of(migration.as_ref(), backend).await.map_err(anyhow::Error::msg)?;
                let mut sql = String::from("BEGIN;\n");
                for statement in statements {
                    let _ = writeln!(sql, "{statement};");
                }
                let _ = writeln!(
                    sql,
                    "INSERT INTO \"{table}\" (\"version\", \"applied_at\") VALUES ('{}', 1764633600);\nCOMMIT;",
                    migration.name()
                );
                script.migrations.push(sql);
            }
        }
        Ok(script)
    }
}

/// (d) on SQLite: one plain sqlx connection per file, the same pragmas as tenancy's, one
/// transaction per migration, each sent as one script; tenant after tenant.
async fn sqlite_floor(tenancy: &Tenancy, tenants: &[Tenant], script: &Script) -> anyhow::Result<Duration> {
    let tracking = script.tracking_tables.concat();
    let started = Instant::now();
    for tenant in tenants {
        let path = tenancy.manager_of(tenant)?.location(&tenant.database);
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true);
        let mut connection = sea_orm::sqlx::SqliteConnection::connect_with(&options).await?;
        sea_orm::sqlx::raw_sql(AssertSqlSafe(tracking.clone())).execute(&mut connection).await?;
        for migration in &script.migrations {
            sea_orm::sqlx::raw_sql(AssertSqlSafe(migration.clone())).execute(&mut connection).await?;
        }
        connection.close().await?;
    }
    Ok(started.elapsed())
}

/// (d) on PostgreSQL: the whole script through one `psql` session.
fn psql_floor(env: &TestEnv, backend: Backend, tenants: &[Tenant], script: &Script) -> anyhow::Result<Duration> {
    let mut sql = String::new();
    for tenant in tenants {
        match backend {
            Backend::PostgresSchema => writeln!(sql, "SET search_path TO \"{}\";", tenant.database)?,
            _ => writeln!(sql, "\\connect {}", tenant.database)?,
        }
        sql.extend(script.tracking_tables.iter().map(|s| format!("{s}\n")));
        sql.extend(script.migrations.iter().cloned());
    }
    let file = env.dir().join("floor.sql");
    std::fs::write(&file, sql)?;
    let started = Instant::now();
    let output = Command::new("psql")
        .args(["--quiet", "--no-psqlrc", "--set", "ON_ERROR_STOP=1", "--file"])
        .arg(&file)
        .arg(env.central_url())
        .stdout(Stdio::null())
        .output()?;
    let elapsed = started.elapsed();
    anyhow::ensure!(output.status.success(), "psql failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(elapsed)
}

/// (e): `Migrator::up` for each migrator, `concurrency` tenants at once, with the connection
/// options of (a).
async fn peer(tenancy: &Tenancy, tenants: &[Tenant], concurrency: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(tenants)
        .map(|tenant| async move {
            let db = tenancy.manager_of(tenant)?.open(&tenant.database).await?;
            CoreTables::up(&db, None).await?;
            migration::Migrator::up(&db, None).await?;
            db.close().await?;
            Ok(())
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(started.elapsed())
}
