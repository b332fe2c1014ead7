//! How migrations are applied, on every backend: a database with none applied gets them all in
//! one transaction (all or nothing) where DDL is transactional, an existing one gets one
//! transaction per migration (a failure keeps the ones before it), and a fleet run opens one
//! connection per tenant, not a pool's worth.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;
use tenancy_core::migrate::fleet::{FleetOptions, FleetReporter, Operation, TenantReport};
use tenancy_core::migrate::{MigrationRun, SeaOrmMigrator, TenantMigrator};
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Tenancy, Tenant, TenantName};
use tenancy_tests::migrators::{BrokenMigrator, NoMigrations, OlderMigrator};
use tenancy_tests::{Backend, TestEnv};

async fn open<M: MigratorTrait + 'static>(env: &TestEnv) -> Tenancy {
    env.create_central_database().await;
    let app: Arc<dyn TenantMigrator> = Arc::new(SeaOrmMigrator::<M>::default());
    Tenancy::builder(env.config()).tenant_migrator(app).open().await.unwrap()
}

async fn unmigrated_tenant(tenancy: &Tenancy) -> Tenant {
    let mut request = TenantRequest::new(TenantName::parse("Acme").unwrap());
    request.migrate = false;
    tenancy.create_tenant(&request, &()).await.unwrap()
}

/// Records which migrations were reported finished.
#[derive(Default)]
struct Finished(Mutex<Vec<String>>);

impl FleetReporter for Finished {
    fn on_migration_finished(&self, _tenant: &Tenant, run: &MigrationRun) {
        self.0.lock().unwrap().push(run.migration.to_string());
    }
}

async fn migrate_one(tenancy: &Tenancy, tenant: &Tenant, reporter: Arc<dyn FleetReporter>) -> TenantReport {
    let options = FleetOptions { concurrency: 1, fail_fast: false, down_during: false, verify: false };
    tenancy.run_fleet(vec![tenant.clone()], &Operation::Migrate, options, reporter).await.pop().unwrap()
}

/// Whether `table` exists in the tenant's database (or schema).
async fn has_table(tenancy: &Tenancy, tenant: &Tenant, table: &str) -> bool {
    let table = table.to_owned();
    tenancy.run(tenant, |ctx| async move { tenancy_tests::table_names(ctx.db()).await.contains(&table) }).await.unwrap()
}

async fn tracked(tenancy: &Tenancy, tenant: &Tenant) -> Vec<String> {
    tenancy
        .run(tenant, |ctx| async move {
            let db = ctx.db();
            let sql = "SELECT version FROM seaql_migrations ORDER BY version";
            match db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await {
                Ok(rows) => rows.iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect(),
                Err(_) => Vec::new(), // no tracking table: nothing recorded
            }
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_database_gets_all_its_migrations_or_none() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = open::<BrokenMigrator>(&env).await;
        let tenant = unmigrated_tenant(&tenancy).await;
        let finished = Arc::new(Finished::default());
        let report = migrate_one(&tenancy, &tenant, finished.clone()).await;

        let failure = report.failure.as_ref().expect("the second migration fails");
        assert_eq!(failure.step, "app/m2_broken", "{backend:?}");
        let transactional_ddl = tenancy.registry().connection().get_database_backend() != DbBackend::MySql;
        if transactional_ddl {
            // One transaction for the new database: its rollback takes the first migration too.
            assert!(report.migrations.is_empty(), "{backend:?}: nothing stays applied: {:?}", report.migrations);
            assert!(finished.0.lock().unwrap().is_empty(), "{backend:?}: nothing is reported finished before the commit");
            assert!(!has_table(&tenancy, &tenant, "things").await, "{backend:?}: the first migration's table is gone");
            assert!(tracked(&tenancy, &tenant).await.is_empty(), "{backend:?}: no tracking row");
        } else {
            // MySQL commits DDL as it goes: one transaction per migration, the first one stays.
            assert_eq!(report.migrations.len(), 5, "{backend:?}: core's four and the first");
            assert!(has_table(&tenancy, &tenant, "things").await, "{backend:?}");
            assert_eq!(tracked(&tenancy, &tenant).await, ["m1_create_things"], "{backend:?}");
        }
        let recorded = tenancy.registry().last_migration_failures().await.unwrap();
        assert!(recorded.contains_key(&tenant.id), "{backend:?}: the failure is recorded in the registry");
        tenancy.close().await;
    }
}

#[tokio::test]
async fn an_existing_database_keeps_each_migration_that_succeeded() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        // An older release migrated the tenant; this one adds a migration that fails.
        let older = open::<OlderMigrator>(&env).await;
        let tenant = unmigrated_tenant(&older).await;
        let first = migrate_one(&older, &tenant, Arc::new(())).await;
        assert!(first.failure.is_none(), "{backend:?}: {:?}", first.failure);
        assert_eq!(first.migrations.len(), 5, "{backend:?}: core's four and the application's one");
        older.close().await;

        let newer = open::<BrokenMigrator>(&env).await;
        let finished = Arc::new(Finished::default());
        let report = migrate_one(&newer, &tenant, finished.clone()).await;
        assert_eq!(report.failure.as_ref().map(|f| f.step.as_str()), Some("app/m2_broken"), "{backend:?}");
        assert!(has_table(&newer, &tenant, "things").await, "{backend:?}: the earlier migration stays");
        assert_eq!(tracked(&newer, &tenant).await, ["m1_create_things"], "{backend:?}: and its tracking row");
        assert!(finished.0.lock().unwrap().is_empty(), "{backend:?}: the failing one is not reported finished");
        newer.close().await;
    }
}

#[tokio::test]
async fn a_new_tenant_is_created_with_every_migration_applied_and_recorded() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = open::<migration::Migrator>(&env).await;
        let tenant = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("Acme").unwrap()), &()).await.unwrap();
        assert_eq!(tracked(&tenancy, &tenant).await.len(), 11, "{backend:?}");
        let status = tenancy.migration_status(&tenant).await.unwrap();
        assert_eq!((status.status.applied(), status.status.pending()), (15, 0), "{backend:?}");
        // Run again, nothing is left to do.
        let again = migrate_one(&tenancy, &tenant, Arc::new(())).await;
        assert!(again.failure.is_none() && again.migrations.is_empty(), "{backend:?}: {again:?}");
        tenancy.close().await;
    }
}

#[tokio::test]
async fn an_application_without_migrations_migrates_core_tables_and_is_then_up_to_date() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = open::<NoMigrations>(&env).await;
        let tenant = unmigrated_tenant(&tenancy).await;
        let report = migrate_one(&tenancy, &tenant, Arc::new(())).await;
        assert_eq!((report.failure.is_none(), report.migrations.len()), (true, 4), "{backend:?}: {:?}", report.failure);
        let again = migrate_one(&tenancy, &tenant, Arc::new(())).await;
        assert!(again.failure.is_none() && again.migrations.is_empty(), "{backend:?}: {again:?}");
        // The application's tracking table was never needed, so never made.
        assert!(!has_table(&tenancy, &tenant, "seaql_migrations").await, "{backend:?}");
        tenancy.close().await;
    }
}

#[tokio::test]
async fn a_fleet_migration_holds_one_connection_per_tenant_and_a_context_gets_a_full_pool_after() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = open::<migration::Migrator>(&env).await;
        let mut all = Vec::new();
        for i in 0..3 {
            let mut request = TenantRequest::new(TenantName::parse(&format!("T{i}")).unwrap());
            request.migrate = false;
            all.push(tenancy.create_tenant(&request, &()).await.unwrap());
        }
        tenancy.connections().close_all().await;
        let options = FleetOptions { concurrency: 3, fail_fast: false, down_during: false, verify: false };
        let reports = tenancy.run_fleet(all.clone(), &Operation::Migrate, options, Arc::new(())).await;
        assert!(reports.iter().all(|r| r.failure.is_none()), "{backend:?}");
        let stats = tenancy.connections().stats();
        assert_eq!((stats.open_pools, stats.reserved_connections), (3, 3), "{backend:?}: one connection per tenant pool");

        // A context needs a pool: the idle one-connection pool is replaced by a full one.
        let pool_size = tenancy.config().tenant_database.pool_size;
        tenancy.run(&all[0], |ctx| async move { ctx.db().execute_unprepared("SELECT 1").await.unwrap() }).await.unwrap();
        let stats = tenancy.connections().stats();
        assert_eq!((stats.open_pools, stats.reserved_connections), (3, 2 + pool_size), "{backend:?}");
        assert!(stats.peak_reserved_connections <= tenancy.config().tenant_database.connection_budget, "{backend:?}");
        tenancy.close().await;
    }
}
