//! Operations over many tenants: a concurrent migrate on PostgreSQL never holds more server
//! connections than the budget, and the reporter sees every tenant start and finish.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, Statement};
use tenancy_core::migrate::fleet::{FleetOptions, FleetReporter, Operation, TenantReport};
use tenancy_core::migrate::{MigrationRun, SeaOrmMigrator};
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
    let reports =
        tenancy.run_fleet(tenants, &Operation::Migrate, FleetOptions { concurrency: 10, fail_fast: false }, recorder.clone()).await;
    done.store(true, Ordering::SeqCst);
    watcher.await.unwrap();

    assert!(reports.iter().all(|r| r.failure.is_none()), "{reports:?}");
    assert_eq!(recorder.started.load(Ordering::SeqCst), 10);
    assert_eq!(recorder.finished.lock().unwrap().len(), 10);
    assert_eq!(recorder.applied.load(Ordering::SeqCst), 10 * 13);
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak > 0, "the watcher saw no connection");
    assert!(peak <= BUDGET as usize, "{peak} server connections with a budget of {BUDGET}");
}
