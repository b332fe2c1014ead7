//! Operations over many tenants: a concurrent migrate on PostgreSQL never holds more server
//! connections than the budget, the reporter sees every tenant start and finish, and
//! `down_during` keeps a tenant down for maintenance exactly while its schema changes.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, Statement};
use tenancy_core::maintenance::{Maintenance, MaintenanceOrigin};
use tenancy_core::migrate::fleet::{FleetOptions, FleetReporter, Operation, TenantReport};
use tenancy_core::migrate::{Direction, MigrationName, MigrationRun, SeaOrmMigrator};
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Tenancy, Tenant, TenantName};
use tenancy_tests::{Backend, POSTGRES_ADDR, TestEnv};

#[derive(Default)]
struct Recorder {
    started: AtomicUsize,
    applied: AtomicUsize,
    finished: Mutex<Vec<String>>,
}

impl FleetReporter for Recorder {
    fn on_tenant_started(&self, _tenant: &Tenant) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }
    fn on_migration_finished(&self, _tenant: &Tenant, _run: &MigrationRun) {
        self.applied.fetch_add(1, Ordering::SeqCst);
    }
    fn on_tenant_finished(&self, report: &TenantReport) {
        self.finished.lock().unwrap().push(report.tenant.name.to_string());
    }
}

#[tokio::test]
async fn a_concurrent_migrate_on_postgres_stays_within_the_budget() {
    let Some(env) = TestEnv::new(Backend::Postgres) else { return };
    const BUDGET: u32 = 4;
    env.create_central_database().await;
    let mut config = env.config();
    config.tenant_database.pool_size = 2;
    config.tenant_database.connection_budget = BUDGET;
    let tenancy =
        Tenancy::builder(config).tenant_migrator(Arc::new(SeaOrmMigrator::<migration::Migrator>::default())).open().await.unwrap();
    let mut tenants = Vec::new();
    for i in 0..10 {
        let mut request = TenantRequest::new(TenantName::parse(&format!("T{i}")).unwrap());
        request.migrate = false;
        tenants.push(tenancy.create_tenant(&request, &()).await.unwrap());
    }
    tenancy.connections().close_all().await;

    let admin = Database::connect(format!("postgres://postgres@{POSTGRES_ADDR}/postgres")).await.unwrap();
    let (done, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let watcher = {
        let (done, peak, prefix) = (done.clone(), peak.clone(), env.prefix.clone());
        tokio::spawn(async move {
            let sql = format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE '{}%' AND datname <> '{prefix}central'",
                prefix.replace('_', "\\_")
            );
            while !done.load(Ordering::SeqCst) {
                let row = admin.query_one_raw(Statement::from_string(admin.get_database_backend(), sql.clone())).await.unwrap().unwrap();
                peak.fetch_max(row.try_get_by_index::<i64>(0).unwrap() as usize, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let recorder = Arc::new(Recorder::default());
    let reports = tenancy
        .run_fleet(
            tenants,
            &Operation::Migrate,
            FleetOptions { concurrency: 10, fail_fast: false, down_during: false, verify: false },
            recorder.clone(),
        )
        .await;
    done.store(true, Ordering::SeqCst);
    watcher.await.unwrap();

    assert!(reports.iter().all(|r| r.failure.is_none()), "{reports:?}");
    assert_eq!(recorder.started.load(Ordering::SeqCst), 10);
    assert_eq!(recorder.finished.lock().unwrap().len(), 10);
    assert_eq!(recorder.applied.load(Ordering::SeqCst), 10 * 15);
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak > 0, "the watcher saw no connection");
    assert!(peak <= BUDGET as usize, "{peak} server connections with a budget of {BUDGET}");
    // Sampling can miss a spike; the cache's own high-water mark cannot.
    let reserved = tenancy.connections().stats().peak_reserved_connections;
    assert!(reserved > 0 && reserved <= BUDGET, "{reserved} connections reserved at once with a budget of {BUDGET}");
}

#[tokio::test]
async fn three_hundred_tenants_working_at_once_hold_at_most_twenty_connections() {
    // A schema per tenant: creating and dropping 300 schemas is quick, where 300 databases would
    // cost minutes of checkpoints. Tenant connections are told apart by their application_name.
    let Some(env) = TestEnv::new(Backend::PostgresSchema) else { return };
    const BUDGET: u32 = 20;
    env.create_central_database().await;
    let mut config = env.config();
    let application_name = format!("{}tenants", env.prefix);
    config.tenant_database.application_name = application_name.clone();
    config.tenant_database.pool_size = 2;
    config.tenant_database.connection_budget = BUDGET;
    config.tenant_database.idle_timeout_secs = 1;
    let tenancy = Arc::new(Tenancy::builder(config).open().await.unwrap());
    let mut tenants = Vec::new();
    for i in 0..300 {
        let mut request = TenantRequest::new(TenantName::parse(&format!("T{i}")).unwrap());
        request.migrate = false; // empty databases keep the set-up short; the work below needs no table
        tenants.push(tenancy.create_tenant(&request, &()).await.unwrap());
    }
    tenancy.connections().close_all().await;

    let admin = Database::connect(format!("postgres://postgres@{POSTGRES_ADDR}/postgres")).await.unwrap();
    let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application_name}'");
    let count = |admin: sea_orm::DatabaseConnection, sql: String| async move {
        let row = admin.query_one_raw(Statement::from_string(admin.get_database_backend(), sql)).await.unwrap().unwrap();
        row.try_get_by_index::<i64>(0).unwrap() as usize
    };
    let (done, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let watcher = {
        let (done, peak, admin, sql) = (done.clone(), peak.clone(), admin.clone(), sql.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(count(admin.clone(), sql.clone()).await, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let workers: Vec<_> = tenants
        .iter()
        .cloned()
        .map(|tenant| {
            let tenancy = tenancy.clone();
            tokio::spawn(async move {
                tenancy
                    .run(&tenant, |ctx| async move {
                        let db = ctx.db();
                        let (a, b) = tokio::join!(db.execute_unprepared("SELECT pg_sleep(0.005)"), db.execute_unprepared("SELECT 1"));
                        a.unwrap();
                        b.unwrap();
                    })
                    .await
                    .unwrap();
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak > 0, "the watcher saw no connection");
    assert!(peak <= BUDGET as usize, "{peak} server connections with a budget of {BUDGET}");
    // Sampling can miss a spike; the cache's own high-water mark cannot.
    let reserved = tenancy.connections().stats().peak_reserved_connections;
    assert!(reserved > 0 && reserved <= BUDGET, "{reserved} connections reserved at once with a budget of {BUDGET}");

    // Idle pools are released.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    tenancy.connections().close_idle_pools().await;
    assert_eq!(tenancy.connections().stats().open_pools, 0);
    let mut left = usize::MAX;
    for _ in 0..50 {
        left = count(admin.clone(), sql.clone()).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0, "server connections of idle tenants were closed");
}

/// Records, as each migration starts, how the registry has its tenant's maintenance.
///
/// It reads through a registry of its own, on a thread and runtime of its own: the reporter is
/// called synchronously inside the run, and a read on the run's runtime and registry pool would
/// wait on the very tasks it holds up.
struct MaintenanceWitness {
    ask: Mutex<std::sync::mpsc::Sender<(tenancy_core::TenantId, std::sync::mpsc::Sender<Option<MaintenanceOrigin>>)>>,
    seen: Mutex<Vec<(String, Option<MaintenanceOrigin>)>>,
}

impl MaintenanceWitness {
    fn new(config: tenancy_core::config::Config) -> Self {
        let (ask, asked) = std::sync::mpsc::channel::<(tenancy_core::TenantId, std::sync::mpsc::Sender<Option<MaintenanceOrigin>>)>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let registry = runtime.block_on(tenancy_core::Registry::open(&config)).unwrap();
            for (tenant, answer) in asked {
                let now = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(30), registry.require(&tenant)).await });
                let now = now.expect("the registry answered within 30 s").unwrap();
                let _ = answer.send(now.maintenance.map(|m| m.origin));
            }
        });
        Self { ask: Mutex::new(ask), seen: Mutex::default() }
    }
}

impl FleetReporter for MaintenanceWitness {
    fn on_migration_started(&self, tenant: &Tenant, _migration: &MigrationName, _direction: Direction) {
        // Called synchronously in the middle of the migration: exactly the moment to look.
        let (answer, answered) = std::sync::mpsc::channel();
        self.ask.lock().unwrap().send((tenant.id, answer)).unwrap();
        let origin = answered.recv_timeout(Duration::from_secs(60)).expect("the witness answered");
        self.seen.lock().unwrap().push((tenant.name.to_string(), origin));
    }
}

/// What every session on the test's PostgreSQL server is doing: said when a run hangs.
async fn server_activity(backend: Backend) -> String {
    if !matches!(backend, Backend::Postgres | Backend::PostgresSchema) {
        return String::new();
    }
    let Ok(admin) = Database::connect(format!("postgres://postgres@{POSTGRES_ADDR}/postgres")).await else { return String::new() };
    let sql = "SELECT string_agg(format('%s %s %s/%s [%s] %s', pid, usename, state, wait_event_type, wait_event, left(query, 120)), E'\\n') \
               FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";
    let rows = admin.query_one_raw(Statement::from_string(admin.get_database_backend(), sql)).await;
    rows.ok().flatten().and_then(|row| row.try_get_by_index::<Option<String>>(0).ok().flatten()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_during_takes_a_tenant_down_only_while_its_schema_changes_and_always_brings_it_up() {
    use tenancy_tests::migrators::{BrokenMigrator, OlderMigrator};
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let name = backend.name();
        env.create_central_database().await;
        let mut config = env.config();
        config.web.change_poll_millis = 50;
        let older =
            Tenancy::builder(config.clone()).tenant_migrator(Arc::new(SeaOrmMigrator::<OlderMigrator>::default())).open().await.unwrap();
        let create = async |name: &str, migrate: bool| {
            let mut request = TenantRequest::new(TenantName::parse(name).unwrap());
            request.migrate = migrate;
            older.create_tenant(&request, &()).await.unwrap()
        };
        let fresh = create("Fresh", false).await;
        let by_operator = create("Operator", false).await;
        let left_down = create("Left", true).await;
        older.registry().set_maintenance(&by_operator.id, Some(&Maintenance::new(MaintenanceOrigin::Operator))).await.unwrap();
        older.registry().set_maintenance(&left_down.id, Some(&Maintenance::new(MaintenanceOrigin::Migration))).await.unwrap();
        let tenants = older.registry().list(None).await.unwrap();
        let options = FleetOptions { concurrency: 3, fail_fast: false, down_during: true, verify: false };

        let witness = Arc::new(MaintenanceWitness::new(config.clone()));
        let run = older.run_fleet(tenants.clone(), &Operation::Migrate, options, witness.clone());
        // A hang fails the test, with what the connection cache held and the server was doing.
        let Ok(reports) = tokio::time::timeout(Duration::from_secs(120), run).await else {
            panic!(
                "{name}: the run hung; connection cache: {:?}; sessions:\n{}",
                older.connections().stats(),
                server_activity(backend).await
            )
        };
        assert!(reports.iter().all(|r| r.failure.is_none()), "{name}: {reports:?}");
        let mut seen = witness.seen.lock().unwrap().clone();
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        let expected =
            [("Fresh".to_owned(), Some(MaintenanceOrigin::Migration)), ("Operator".to_owned(), Some(MaintenanceOrigin::Operator))];
        // Core's tables migrate first: each tenant is seen at several migrations, always down.
        assert!(seen.iter().all(|s| expected.contains(s)), "{name}: {seen:?}");
        assert!(seen.contains(&expected[0]) && seen.contains(&expected[1]), "{name}: {seen:?}");
        let origin = async |id| older.registry().require(id).await.unwrap().maintenance.map(|m| m.origin);
        assert_eq!(origin(&fresh.id).await, None, "{name}: up again after migrating");
        assert_eq!(origin(&by_operator.id).await, Some(MaintenanceOrigin::Operator), "{name}: the operator's maintenance is theirs to end");
        assert_eq!(origin(&left_down.id).await, None, "{name}: what an interrupted run left down is brought up");

        // The next release's migration fails: the tenant still comes back up.
        let broken =
            Tenancy::builder(config.clone()).tenant_migrator(Arc::new(SeaOrmMigrator::<BrokenMigrator>::default())).open().await.unwrap();
        let witness = Arc::new(MaintenanceWitness::new(config.clone()));
        let run =
            broken.run_fleet(vec![broken.registry().require(&fresh.id).await.unwrap()], &Operation::Migrate, options, witness.clone());
        let Ok(reports) = tokio::time::timeout(Duration::from_secs(120), run).await else {
            panic!(
                "{name}: the run hung; connection cache: {:?}; sessions:\n{}",
                broken.connections().stats(),
                server_activity(backend).await
            )
        };
        assert_eq!(reports[0].failure.as_ref().map(|f| f.step.as_str()), Some("app/m2_broken"), "{name}: {reports:?}");
        assert_eq!(witness.seen.lock().unwrap().clone(), [("Fresh".to_owned(), Some(MaintenanceOrigin::Migration))], "{name}");
        assert_eq!(origin(&fresh.id).await, None, "{name}: up again after a failed migration");
        broken.close().await;
        older.close().await;
    }
}

/// The tenants of `tenancy`, fresh from the registry.
async fn listed(tenancy: &Tenancy) -> Vec<Tenant> {
    tenancy.registry().list(None).await.unwrap()
}

async fn migrate(tenancy: &Tenancy, verify: bool) -> Vec<TenantReport> {
    let options = FleetOptions { concurrency: 3, fail_fast: false, down_during: false, verify };
    tenancy.run_fleet(listed(tenancy).await, &Operation::Migrate, options, Arc::new(())).await
}

#[tokio::test]
async fn a_run_trusts_the_recorded_migration_set_until_something_moves_a_schema_back() {
    for backend in [Backend::Sqlite, Backend::PostgresSchema] {
        let Some(env) = TestEnv::new(backend) else { continue };
        env.create_central_database().await;
        let tenancy = Tenancy::builder(env.config())
            .tenant_migrator(Arc::new(SeaOrmMigrator::<migration::Migrator>::default()))
            .open()
            .await
            .unwrap();
        for i in 0..4 {
            tenancy.create_tenant(&TenantRequest::new(TenantName::parse(&format!("T{i}")).unwrap()), &()).await.unwrap();
        }
        let fingerprint = tenancy.migration_fingerprint().await.to_owned();
        assert!(listed(&tenancy).await.iter().all(|t| t.migrated_set.is_none()), "nothing is recorded before a run");

        // The first run reads every database and records them up to date.
        assert!(migrate(&tenancy, false).await.iter().all(|r| r.failure.is_none() && r.had_nothing_to_do()));
        assert!(listed(&tenancy).await.iter().all(|t| t.migrated_set.as_deref() == Some(&fingerprint)), "{backend:?}");

        // A database changed behind tenancy's back: a plain run trusts the record (it reads no
        // database), a verifying run finds the missing migration and applies it.
        let victim = listed(&tenancy).await.remove(0);
        let last = "m20260101_000009_add_accounts_plan";
        tenancy
            .run(&victim, |ctx| async move {
                let db = ctx.db();
                db.execute_unprepared("ALTER TABLE accounts DROP COLUMN plan").await.unwrap();
                db.execute_unprepared(&format!("DELETE FROM seaql_migrations WHERE version = '{last}'")).await.unwrap();
            })
            .await
            .unwrap();
        tenancy.connections().close_all().await;
        assert!(migrate(&tenancy, false).await.iter().all(|r| r.had_nothing_to_do()), "{backend:?}: the record stands in for reading");
        let verified = migrate(&tenancy, true).await;
        let fixed: Vec<_> = verified.iter().filter(|r| !r.migrations.is_empty()).collect();
        assert_eq!(fixed.len(), 1, "{backend:?}: {verified:?}");
        assert_eq!((fixed[0].tenant.id, fixed[0].migrations[0].migration.name == last), (victim.id, true));

        // A rollback forgets the record (and moves the epoch on), so the next run reads and re-applies.
        let options = FleetOptions { concurrency: 1, fail_fast: false, down_during: false, verify: false };
        let rolled = tenancy.run_fleet(vec![victim.clone()], &Operation::Rollback { steps: 1 }, options, Arc::new(())).await;
        assert!(rolled[0].failure.is_none(), "{rolled:?}");
        let after = tenancy.registry().require(&victim.id).await.unwrap();
        assert_eq!(after.migrated_set, None);
        assert!(after.schema_epoch >= victim.schema_epoch + 2, "moved on before and after the rollback");
        let again = migrate(&tenancy, false).await;
        assert_eq!(again.iter().map(|r| r.migrations.len()).sum::<usize>(), 1, "{backend:?}: the rolled-back migration is applied again");
        assert_eq!(tenancy.registry().require(&victim.id).await.unwrap().migrated_set.as_deref(), Some(fingerprint.as_str()));

        // A record made with an epoch read before a forget is refused: a `db migrate` that finishes
        // after a concurrent rollback never marks the rolled-back tenant up to date.
        let before = tenancy.registry().require(&victim.id).await.unwrap();
        tenancy.registry().forget_migrated_set(&victim.id).await.unwrap();
        tenancy.registry().record_migrated_set(&fingerprint, &[(victim.id, before.schema_epoch)]).await.unwrap();
        assert_eq!(tenancy.registry().require(&victim.id).await.unwrap().migrated_set, None);
        tenancy.close().await;
    }
}
