//! `migrate`: (a) `tenancy db migrate --all` over fresh tenants, (b) the same with nothing pending,
//! (c) the loop a Rust developer writes today (`Migrator::up(&db, None)` per tenant, one after
//! another), and (d) the floor: the same SQL through a plain connection, one transaction per
//! migration with its tracking row, one tenant after another.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbErr, TransactionTrait};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use tenancy_core::migrate::{CoreTablesMigrator, MigrationSet, SeaOrmMigrator, TenantMigrator, runner, tracking};
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Tenancy, Tenant, TenantName};
use tenancy_tests::{Backend, TestEnv};

/// Core's tables as a plain `MigratorTrait`, so the baseline runs the very same migrations.
struct CoreTables;

impl MigratorTrait for CoreTables {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        CoreTablesMigrator.migrations()
    }

    fn migration_table_name() -> sea_orm::DynIden {
        sea_orm::sea_query::Alias::new(CoreTablesMigrator.tracking_table()).into()
    }
}

pub async fn run(backend: Backend, count: usize, binary: &Path, concurrency: Option<usize>) -> anyhow::Result<()> {
    let Some(env) = TestEnv::new(backend) else { return Ok(()) };
    env.create_central_database().await;
    let app: Arc<dyn TenantMigrator> = Arc::new(SeaOrmMigrator::<migration::Migrator>::default());
    let tenancy = Tenancy::builder(env.config()).tenant_migrator(app.clone()).open().await?;
    let tenants = create_tenants(&tenancy, count).await?;
    let migrations = MigrationSet::new(Some(app)).migrators().iter().map(|m| m.migrations().len()).sum::<usize>();

    let (a, peak) = cli_migrate(binary, env.dir(), concurrency)?;
    let (b, _) = cli_migrate(binary, env.dir(), concurrency)?;
    recreate(&tenancy, &tenants).await?;
    let c = baseline(&tenancy, &tenants).await?;
    recreate(&tenancy, &tenants).await?;
    let d = floor(&tenancy, &tenants).await?;

    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "  {:<16} N={count:<5} {migrations} migrations each\n    (a) db migrate --all   {:>7.2}s   peak RSS {:.0} MiB\n    (b) nothing pending    {:>7.2}s\n    (c) Migrator::up loop  {:>7.2}s\n    (d) floor              {:>7.2}s\n    ratios: a/d {:.2}   c/a {:.2}",
        backend.name(),
        secs(a),
        peak as f64 / 1024.0 / 1024.0,
        secs(b),
        secs(c),
        secs(d),
        secs(a) / secs(d),
        secs(c) / secs(a),
    );
    tenancy.close().await;
    Ok(())
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
fn cli_migrate(binary: &Path, dir: &Path, concurrency: Option<usize>) -> anyhow::Result<(Duration, u64)> {
    let mut args = vec!["db".to_owned(), "migrate".into(), "--all".into(), "--quiet".into()];
    args.extend(concurrency.map(|n| format!("--concurrency={n}")));
    let started = Instant::now();
    let mut child = Command::new(binary).args(&args).current_dir(dir).stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        // VmHWM is the peak so far; read it until the process is gone.
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib * 1024);
        }
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output()?;
    anyhow::ensure!(output.status.success(), "tenancy db migrate failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok((started.elapsed(), peak))
}

async fn recreate(tenancy: &Tenancy, tenants: &[Tenant]) -> anyhow::Result<()> {
    tenancy.connections().close_all().await;
    for tenant in tenants {
        let manager = tenancy.manager_of(tenant)?;
        manager.drop_database(&tenant.database).await?;
        manager.create_database(&tenant.database).await?;
    }
    Ok(())
}

/// (c): what a developer writes: `Database::connect` with default options (on SQLite, sqlx's
/// defaults: WAL with `synchronous = FULL`), `Migrator::up(&db, None)` for each migrator, one tenant
/// after another. On PostgreSQL it gets the same URL and options as (a), so the comparison is about
/// the migrating, not TLS.
async fn baseline(tenancy: &Tenancy, tenants: &[Tenant]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for tenant in tenants {
        let manager = tenancy.manager_of(tenant)?;
        let db = match manager.driver() {
            tenancy_core::Driver::Sqlite => sea_orm::Database::connect(format!("sqlite://{}", manager.location(&tenant.database))).await?,
            _ => manager.open(&tenant.database).await?,
        };
        CoreTables::up(&db, None).await?;
        migration::Migrator::up(&db, None).await?;
        db.close().await?;
    }
    Ok(started.elapsed())
}

/// (d): the same statements through a plain pool, one transaction per migration with its tracking
/// row (the same durability as (a)), one tenant after another.
async fn floor(tenancy: &Tenancy, tenants: &[Tenant]) -> anyhow::Result<Duration> {
    let backend = tenancy.registry().connection().get_database_backend();
    let backend =
        if tenancy.config().tenant_database.driver == tenancy_core::Driver::Sqlite { sea_orm::DbBackend::Sqlite } else { backend };
    let mut script: Vec<(String, String, Vec<String>, bool)> = Vec::new();
    for migrator in tenancy.migrations().migrators() {
        for migration in migrator.migrations() {
            let statements = runner::statements_of(migration.as_ref(), backend).await.map_err(anyhow::Error::msg)?;
            let transactional = migration.use_transaction().unwrap_or(backend != sea_orm::DbBackend::MySql);
            script.push((migrator.tracking_table(), migration.name().to_owned(), statements, transactional));
        }
    }
    let tables: Vec<String> = tenancy.migrations().migrators().iter().map(|m| m.tracking_table()).collect();
    let started = Instant::now();
    for tenant in tenants {
        let db = tenancy.manager_of(tenant)?.open(&tenant.database).await?;
        for table in &tables {
            tracking::install(&db, table).await?;
        }
        for (table, name, statements, transactional) in &script {
            apply(&db, table, name, statements, *transactional).await?;
        }
        db.close().await?;
    }
    Ok(started.elapsed())
}

async fn apply(db: &sea_orm::DatabaseConnection, table: &str, name: &str, statements: &[String], transactional: bool) -> Result<(), DbErr> {
    if !transactional {
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        return tracking::record(db, table, name).await;
    }
    let txn = db.begin().await?;
    for sql in statements {
        txn.execute_unprepared(sql).await?;
    }
    tracking::record(&txn, table, name).await?;
    txn.commit().await
}
