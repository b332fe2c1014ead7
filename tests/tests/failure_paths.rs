//! The foundation's failure paths, each tried as an unlucky operator or a hostile tenant would:
//! waits that must end, limits that must hold under concurrency, panics that must stay contained,
//! nested contexts, two migrators at once, and connection state that must not outlive a lease.
//! Every wait in these tests has a timeout, so a regression fails instead of hanging.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tenancy_core::database::DatabaseError;
use tenancy_core::migrate::SeaOrmMigrator;
use tenancy_core::migrate::fleet::{FleetOptions, Operation};
use tenancy_core::provisioning::{Provisioning, ProvisioningStep, StepOutcome, TenantRequest};
use tenancy_core::{
    BoxError, Config, ContextError, OpenError, Seeder, Tenancy, TenantContext, TenantName, current_context, current_tenant,
};
use tenancy_tests::{Backend, TestEnv};

/// Every test's waits end within this, or the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future).await.unwrap_or_else(|_| panic!("{what} did not end within {PATIENCE:?}: it hangs"))
}

async fn open(env: &TestEnv, adjust: impl FnOnce(&mut Config)) -> Tenancy {
    env.create_central_database().await;
    let mut config = env.config();
    adjust(&mut config);
    Tenancy::builder(config).tenant_migrator(Arc::new(SeaOrmMigrator::<migration::Migrator>::default())).open().await.unwrap()
}

fn request(name: &str, migrate: bool) -> TenantRequest {
    let mut request = TenantRequest::new(TenantName::parse(name).unwrap());
    request.migrate = migrate;
    request
}

async fn tenants(tenancy: &Tenancy, count: usize, migrate: bool) -> Vec<tenancy_core::Tenant> {
    let mut created = Vec::new();
    for i in 0..count {
        created.push(tenancy.create_tenant(&request(&format!("T{i}"), migrate), &()).await.unwrap());
    }
    created
}

#[tokio::test]
async fn a_failed_open_wakes_the_tenants_waiting_for_room() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    // Room for one pool at a time: every other tenant waits for it.
    let tenancy = open(&env, |c| {
        c.tenant_database.pool_size = 5;
        c.tenant_database.connection_budget = 5;
    })
    .await;
    let all = tenants(&tenancy, 4, false).await;
    tenancy.connections().close_all().await;
    std::fs::remove_file(env.sqlite_file(all[1].database.as_str())).unwrap();
    for operation in [Operation::Migrate, Operation::Pretend] {
        let reports = within(
            "a fleet run with a missing database",
            tenancy.run_fleet(
                all.clone(),
                &operation,
                FleetOptions { concurrency: 3, fail_fast: false, down_during: false, verify: false },
                Arc::new(()),
            ),
        )
        .await;
        let failed: Vec<_> = reports.iter().filter(|r| r.failure.is_some()).map(|r| r.tenant.id).collect();
        assert_eq!(failed, vec![all[1].id], "only the tenant whose database is gone fails");
    }
    assert!(tenancy.connections().stats().peak_reserved_connections <= 5);
}

#[tokio::test]
async fn max_open_pools_holds_when_cold_tenants_arrive_at_once() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let tenancy = Arc::new(
        open(&env, |c| {
            c.tenant_database.pool_size = 1;
            c.tenant_database.max_open_pools = 2;
            c.tenant_database.connection_budget = 10;
        })
        .await,
    );
    let all = tenants(&tenancy, 10, false).await;
    tenancy.connections().close_all().await;
    let most = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = all
        .into_iter()
        .map(|tenant| {
            let (tenancy, most) = (tenancy.clone(), most.clone());
            tokio::spawn(async move {
                let inner = tenancy.clone();
                tenancy
                    .run(&tenant, |ctx| async move {
                        most.fetch_max(inner.connections().stats().open_pools, Ordering::SeqCst);
                        ctx.db().execute_unprepared("SELECT 1").await.unwrap();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        most.fetch_max(inner.connections().stats().open_pools, Ordering::SeqCst);
                    })
                    .await
                    .unwrap();
            })
        })
        .collect();
    within("ten cold tenants", futures::future::join_all(workers)).await.into_iter().for_each(|joined| joined.unwrap());
    assert!(most.load(Ordering::SeqCst) <= 2, "{} pools were open at once with max_open_pools = 2", most.load(Ordering::SeqCst));
    assert_eq!(tenancy.connections().stats().pools_opened, 10);
}

#[tokio::test]
async fn a_nested_context_starts_in_its_own_tenant_and_never_deadlocks() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let tenancy = open(&env, |_| {}).await;
    let [a, b]: [tenancy_core::Tenant; 2] = tenants(&tenancy, 2, true).await.try_into().unwrap();
    let (b_id, inner, nested_b) = (b.id, &tenancy, b.clone());
    tenancy
        .run(&a, |_| async move {
            inner
                .run(&nested_b, |ctx| {
                    // The closure's synchronous part already runs in B.
                    assert_eq!(current_tenant().unwrap().id, b_id);
                    let cache = current_context().unwrap().cache().unwrap().clone();
                    assert_eq!(ctx.tenant().id, b_id);
                    async move { cache.put("seen", &"by B", None).await.unwrap() }
                })
                .await
                .unwrap();
        })
        .await
        .unwrap();
    let in_b: Option<String> = tenancy.run(&b, |ctx| async move { ctx.cache().unwrap().get("seen").await.unwrap() }).await.unwrap();
    let in_a: Option<String> = tenancy.run(&a, |ctx| async move { ctx.cache().unwrap().get("seen").await.unwrap() }).await.unwrap();
    assert_eq!((in_a, in_b.as_deref()), (None, Some("by B")), "the put landed in B's cache, not A's");

    // A budget of one pool: B cannot open while A holds the only one, and never will.
    let Some(small) = TestEnv::new(Backend::Sqlite) else { return };
    let tenancy = open(&small, |c| {
        c.tenant_database.pool_size = 5;
        c.tenant_database.connection_budget = 5;
    })
    .await;
    let [a, b]: [tenancy_core::Tenant; 2] = tenants(&tenancy, 2, false).await.try_into().unwrap();
    let inner = &tenancy;
    let nested =
        within("a nested context over a full budget", tenancy.run(&a, |_| async move { inner.run(&b, |_| async {}).await })).await.unwrap();
    match nested {
        Err(ContextError::Database { source: DatabaseError::NestedOverBudget { .. }, .. }) => {}
        other => panic!("expected a refusal naming the nesting, got {other:?}"),
    }
    // The same tenant nested in itself needs no room: its pool is warm.
    let a2 = a.clone();
    tenancy.run(&a, |_| async move { inner.run(&a2, |_| async {}).await.unwrap() }).await.unwrap();
}

/// A provisioning step that panics.
struct PanickingStep;

#[async_trait]
impl ProvisioningStep for PanickingStep {
    fn name(&self) -> &str {
        "panicking step"
    }

    async fn run(&self, _job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
        panic!("the step broke")
    }
}

/// A seeder that panics for one tenant only.
struct PanicsFor(String);

#[async_trait]
impl Seeder for PanicsFor {
    fn name(&self) -> &str {
        "PanicsFor"
    }

    fn description(&self) -> &str {
        "panics in one tenant"
    }

    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        assert_ne!(ctx.tenant().name.as_str(), self.0, "seeding {} broke", self.0);
        Ok(())
    }
}

#[tokio::test]
async fn a_panic_fails_its_step_or_tenant_and_nothing_else() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        env.create_central_database().await;
        let tenancy = Tenancy::builder(env.config()).provisioning_step(Arc::new(PanickingStep)).open().await.unwrap();
        let err = tenancy.create_tenant(&request("Doomed", true), &()).await.unwrap_err();
        assert_eq!(err.step, "panicking step", "{backend:?}");
        assert_eq!(err.source.to_string(), "panicked: the step broke");
        assert!(err.undo_failures.is_empty(), "{backend:?}: {:?}", err.undo_failures);
        assert!(tenancy.registry().list(None).await.unwrap().is_empty(), "{backend:?}: no `creating` row is left");
        assert_eq!(env.count_tenant_databases().await, 0, "{backend:?}: no database is left");
        tenancy.close().await;

        let tenancy = open(&env, |_| {}).await;
        let all = tenants(&tenancy, 3, false).await;
        let seed = Operation::Seed(vec![Arc::new(PanicsFor("T1".into()))]);
        let reports = within(
            "a fleet run with a panicking seeder",
            tenancy.run_fleet(
                all,
                &seed,
                FleetOptions { concurrency: 3, fail_fast: false, down_during: false, verify: false },
                Arc::new(()),
            ),
        )
        .await;
        assert_eq!(reports.len(), 3, "{backend:?}: every tenant is reported");
        for report in &reports {
            match report.tenant.name.as_str() {
                "T1" => {
                    let failure = report.failure.as_ref().expect("T1 failed");
                    assert_eq!(failure.step, "PanicsFor");
                    assert!(failure.error.starts_with("panicked: "), "{backend:?}: {}", failure.error);
                }
                _ => assert!(report.failure.is_none(), "{backend:?}: {report:?}"),
            }
        }
        tenancy.close().await;
    }
}

#[tokio::test]
async fn a_configuration_broken_in_code_is_refused_when_opened() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let mut config = env.config();
    config.tenant_database.servers.insert("eu".into(), "postgres://postgres@127.0.0.1:5432/postgres".into());
    match Tenancy::builder(config).open().await {
        Err(OpenError::Config(err)) => assert!(err.to_string().contains("tenant_database.servers"), "{err}"),
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("a sqlite configuration with servers was accepted"),
    }
    let mut config = env.config();
    config.tenant_database.prefix = "Bad Prefix".into();
    assert!(matches!(Tenancy::builder(config).open().await, Err(OpenError::Config(_))));
}

/// Rows of a tracking table, through the tenant's connection.
async fn tracked(db: &sea_orm::DatabaseConnection, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test]
async fn two_processes_migrating_the_same_tenants_apply_each_migration_once() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let first = open(&env, |_| {}).await;
        let all = tenants(&first, 4, false).await;
        // A second `Tenancy` stands for a second process (a second deploy job).
        let second = open(&env, |_| {}).await;
        let options = FleetOptions { concurrency: 4, fail_fast: false, down_during: false, verify: false };
        let (a, b) = within(
            "two migrators at once",
            futures::future::join(
                first.run_fleet(all.clone(), &Operation::Migrate, options, Arc::new(())),
                second.run_fleet(all.clone(), &Operation::Migrate, options, Arc::new(())),
            ),
        )
        .await;
        for report in a.iter().chain(&b) {
            assert!(report.failure.is_none(), "{backend:?}: {:?}", report.failure);
        }
        let applied: usize = a.iter().chain(&b).map(|r| r.migrations.len()).sum();
        assert_eq!(applied, 4 * 15, "{backend:?}: every migration ran exactly once, in one process or the other");
        assert!(first.registry().last_migration_failures().await.unwrap().is_empty(), "{backend:?}: no failure was recorded");
        for tenant in &all {
            let (app, core) = first
                .run(
                    tenant,
                    |ctx| async move { (tracked(ctx.db(), "seaql_migrations").await, tracked(ctx.db(), "tenancy_migrations").await) },
                )
                .await
                .unwrap();
            assert_eq!((app, core), (11, 4), "{backend:?}: one tracking row per migration");
        }
        first.close().await;
        second.close().await;
    }
}

#[tokio::test]
async fn schema_mode_keeps_the_tenant_schema_whatever_tenant_code_resets() {
    let Some(env) = TestEnv::new(Backend::PostgresSchema) else { return };
    // One connection per pool: every statement below meets the state the one before left.
    let tenancy = open(&env, |c| c.tenant_database.pool_size = 1).await;
    let [tenant]: [tenancy_core::Tenant; 1] = tenants(&tenancy, 1, true).await.try_into().unwrap();
    let schema = tenant.database.as_str().to_owned();
    let current = |ctx: TenantContext| async move {
        let db = ctx.db();
        let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT current_schema()::text")).await.unwrap().unwrap();
        row.try_get_by_index::<String>(0).unwrap()
    };
    for reset in ["RESET ALL", "DISCARD ALL", "SET search_path = public", "SET search_path TO DEFAULT"] {
        let seen = tenancy
            .run(&tenant, |ctx| async move {
                ctx.db().execute_unprepared(reset).await.unwrap();
                // The same (only) connection, right after.
                current(ctx).await
            })
            .await
            .unwrap();
        assert_eq!(seen, schema, "after `{reset}`");
        // The next lease, whatever the last one set.
        assert_eq!(tenancy.run(&tenant, current).await.unwrap(), schema, "the lease after `{reset}`");
        let put = tenancy.run(&tenant, |ctx| async move { ctx.cache().unwrap().put("k", &reset, None).await }).await.unwrap();
        put.unwrap();
    }
    // The central cache (the registry's `tenancy_cache`, in `public` of the same database) saw none of it.
    assert_eq!(tenancy.central_cache().await.unwrap().get::<String>("k").await.unwrap(), None);
}
