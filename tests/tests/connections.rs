//! The connection cache: warm tenants reuse their pool, the budget and `max_open_pools` are never
//! exceeded (idle pools are closed to make room, busy ones are waited for), and idle pools expire.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, Statement};
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Config, Tenancy, Tenant, TenantName};
use tenancy_tests::{Backend, POSTGRES_ADDR, TestEnv};

async fn tenancy_with(env: &TestEnv, adjust: impl FnOnce(&mut Config)) -> Tenancy {
    env.create_central_database().await;
    let mut config = env.config();
    adjust(&mut config);
    Tenancy::builder(config).open().await.unwrap()
}

async fn tenants(tenancy: &Tenancy, count: usize) -> Vec<Tenant> {
    let mut created = Vec::new();
    for i in 0..count {
        let mut request = TenantRequest::new(TenantName::parse(&format!("T{i}")).unwrap());
        request.migrate = false;
        created.push(tenancy.create_tenant(&request, &()).await.unwrap());
    }
    created
}

#[tokio::test]
async fn a_warm_tenant_reuses_its_pool() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let tenancy = tenancy_with(&env, |_| {}).await;
    let [a] = tenants(&tenancy, 1).await.try_into().unwrap();
    tenancy.connections().close_all().await;
    for _ in 0..5 {
        tenancy.run(&a, |ctx| async move { ctx.db().execute_unprepared("SELECT 1").await.unwrap() }).await.unwrap();
    }
    let stats = tenancy.connections().stats();
    assert_eq!((stats.open_pools, stats.pools_in_use), (1, 0));
    let opened = stats.pools_opened;
    tenancy.run(&a, |_| async {}).await.unwrap();
    assert_eq!(tenancy.connections().stats().pools_opened, opened, "a warm tenant opened a new pool");
}

#[tokio::test]
async fn the_least_recently_used_idle_pool_makes_room() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let tenancy = tenancy_with(&env, |c| {
        c.tenant_database.pool_size = 2;
        c.tenant_database.connection_budget = 4;
    })
    .await;
    let all = tenants(&tenancy, 5).await;
    tenancy.connections().close_all().await;
    for tenant in &all {
        tenancy.run(tenant, |_| async {}).await.unwrap();
        let stats = tenancy.connections().stats();
        assert!(stats.reserved_connections <= 4, "{stats:?}");
    }
    assert_eq!(tenancy.connections().stats().open_pools, 2);
}

#[tokio::test]
async fn when_every_pool_is_busy_a_new_tenant_waits_for_one() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let tenancy = Arc::new(
        tenancy_with(&env, |c| {
            c.tenant_database.pool_size = 1;
            c.tenant_database.max_open_pools = 2;
        })
        .await,
    );
    let all = tenants(&tenancy, 3).await;
    tenancy.connections().close_all().await;
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = {
        let (tenancy, a, b) = (tenancy.clone(), all[0].clone(), all[1].clone());
        tokio::spawn(async move {
            let inner = tenancy.clone();
            tenancy
                .run(&a, |_| async move {
                    inner
                        .run(&b, |_| async move {
                            held_tx.send(()).unwrap();
                            release_rx.await.unwrap();
                        })
                        .await
                        .unwrap();
                })
                .await
                .unwrap();
        })
    };
    held_rx.await.unwrap();
    let entered = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (tenancy, c, entered) = (tenancy.clone(), all[2].clone(), entered.clone());
        tokio::spawn(async move { tenancy.run(&c, |_| async move { entered.store(true, Ordering::SeqCst) }).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!entered.load(Ordering::SeqCst), "a third pool opened while two were busy and the limit is two");
    release_tx.send(()).unwrap();
    holder.await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("the waiting tenant gets a pool").unwrap();
    assert!(entered.load(Ordering::SeqCst));
    assert!(tenancy.connections().stats().open_pools <= 2);
}

#[tokio::test]
async fn idle_pools_are_closed_after_the_idle_timeout() {
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let tenancy = tenancy_with(&env, |c| c.tenant_database.idle_timeout_secs = 0).await;
    let [a, b] = tenants(&tenancy, 2).await.try_into().unwrap();
    tenancy.connections().close_all().await;
    tenancy.run(&a, |_| async {}).await.unwrap();
    tenancy.run(&b, |_| async {}).await.unwrap();
    // Opening b's pool closed a's, idle past its (zero) timeout.
    assert_eq!(tenancy.connections().stats().open_pools, 1);
    tenancy.connections().close_idle_pools().await;
    assert_eq!(tenancy.connections().stats().open_pools, 0);
}

/// Counts the server connections to this test's tenant databases (not its registry), as PostgreSQL sees them.
async fn server_connections(admin: &sea_orm::DatabaseConnection, prefix: &str) -> usize {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE '{}%' AND datname <> '{prefix}central'",
        prefix.replace('_', "\\_")
    );
    let row = admin.query_one_raw(Statement::from_string(admin.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap() as usize
}

/// `count` PostgreSQL tenants with pools of two under `budget`, none of their pools open, and an
/// admin connection to watch the server with.
async fn postgres_fleet(env: &TestEnv, budget: u32, count: usize) -> (Arc<Tenancy>, Vec<Tenant>, sea_orm::DatabaseConnection) {
    let tenancy = Arc::new(
        tenancy_with(env, |c| {
            c.tenant_database.pool_size = 2;
            c.tenant_database.connection_budget = budget;
        })
        .await,
    );
    let all = tenants(&tenancy, count).await;
    tenancy.connections().close_all().await;
    let admin = Database::connect(format!("postgres://postgres@{POSTGRES_ADDR}/postgres")).await.unwrap();
    (tenancy, all, admin)
}

#[tokio::test]
async fn concurrent_work_on_postgres_stays_within_the_budget() {
    let Some(env) = TestEnv::new(Backend::Postgres) else { return };
    const BUDGET: u32 = 6;
    let (tenancy, all, admin) = postgres_fleet(&env, BUDGET, 12).await;
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (done, peak, prefix) = (done.clone(), peak.clone(), env.prefix.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(server_connections(&admin, &prefix).await, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut workers = Vec::new();
    for round in 0..3 {
        for tenant in &all {
            let (tenancy, tenant) = (tenancy.clone(), tenant.clone());
            workers.push(tokio::spawn(async move {
                tenancy
                    .run(&tenant, |ctx| async move {
                        let db = ctx.db();
                        let sleep = if round % 2 == 0 { "SELECT pg_sleep(0.02)" } else { "SELECT 1" };
                        let (a, b) = tokio::join!(db.execute_unprepared(sleep), db.execute_unprepared(sleep));
                        a.unwrap();
                        b.unwrap();
                    })
                    .await
                    .unwrap();
            }));
        }
    }
    for worker in workers {
        worker.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak > 0, "the watcher saw no connection at all");
    assert!(peak <= BUDGET as usize, "{peak} server connections with a budget of {BUDGET}");
    // Sampling can miss a spike; the cache's own high-water mark cannot.
    let reserved = tenancy.connections().stats().peak_reserved_connections;
    assert!(reserved > 0 && reserved <= BUDGET, "{reserved} connections reserved at once with a budget of {BUDGET}");
    assert!(tenancy.connections().stats().reserved_connections <= BUDGET);
}

/// Leases `tenant`'s pool the way a web request does: made without connecting.
async fn lease_lazily(tenancy: &Tenancy, tenant: &Tenant) -> tenancy_core::connections::PoolLease {
    let manager = tenancy.manager_of(tenant).unwrap();
    tenancy.connections().lease_lazily(tenant, manager.as_ref(), None).await.unwrap()
}

#[tokio::test]
async fn lazy_pools_that_never_connected_sleep_instead_of_closing() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = tenancy_with(&env, |c| {
            c.tenant_database.pool_size = 1;
            c.tenant_database.connection_budget = 2;
        })
        .await;
        let all = tenants(&tenancy, 6).await;
        tenancy.connections().close_all().await;
        let opened = tenancy.connections().stats().pools_opened;
        for round in 0..3 {
            for tenant in &all {
                drop(lease_lazily(&tenancy, tenant).await);
                let stats = tenancy.connections().stats();
                assert!(stats.open_pools <= 2 && stats.reserved_connections <= 2, "{backend:?}: {stats:?}");
            }
            let stats = tenancy.connections().stats();
            assert_eq!(stats.pools_opened, opened + 6, "{backend:?} round {round}: a sleeping pool was made again");
            assert_eq!((stats.open_pools, stats.dormant_pools), (0, 6), "{backend:?} round {round}: they sleep as their lease ends");
        }
        // A pool woken up still works. Once connected it never sleeps: it keeps its room, and is
        // closed when room is needed and no pool can sleep instead.
        let query = |lease: tenancy_core::connections::PoolLease| async move {
            lease.connection().execute_unprepared("SELECT 1").await.unwrap();
        };
        query(lease_lazily(&tenancy, &all[0]).await).await;
        for tenant in &all[1..] {
            drop(lease_lazily(&tenancy, tenant).await);
        }
        let stats = tenancy.connections().stats();
        assert_eq!((stats.pools_opened, stats.open_pools), (opened + 6, 1), "{backend:?}: {stats:?}");
        query(lease_lazily(&tenancy, &all[5]).await).await;
        drop(lease_lazily(&tenancy, &all[1]).await);
        assert_eq!(tenancy.connections().stats().pools_opened, opened + 6, "{backend:?}: a sleeping pool was made again");
        drop(lease_lazily(&tenancy, &all[0]).await);
        assert_eq!(tenancy.connections().stats().pools_opened, opened + 7, "{backend:?}: the connected pool was not the one closed");
        assert!(tenancy.connections().stats().peak_reserved_connections <= 2);
        tenancy.connections().close_all().await;
        assert_eq!(tenancy.connections().stats().dormant_pools, 0);
    }
}

#[tokio::test]
async fn requests_over_many_tenants_on_postgres_stay_within_the_budget_with_sleeping_pools() {
    let Some(env) = TestEnv::new(Backend::Postgres) else { return };
    const BUDGET: u32 = 4;
    let (tenancy, all, admin) = postgres_fleet(&env, BUDGET, 10).await;
    let mut workers = Vec::new();
    for n in 0..200usize {
        let (tenancy, tenant) = (tenancy.clone(), all[n % all.len()].clone());
        workers.push(tokio::spawn(async move {
            let lease = lease_lazily(&tenancy, &tenant).await;
            // One request in five touches the database; the others never connect.
            if n % 5 == 0 {
                lease.connection().execute_unprepared("SELECT pg_sleep(0.005)").await.unwrap();
            } else {
                tokio::task::yield_now().await;
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        for worker in workers {
            worker.await.unwrap();
        }
    })
    .await
    .expect("leases over the budget finished");
    let stats = tenancy.connections().stats();
    assert!(stats.peak_reserved_connections <= BUDGET, "{stats:?}");
    assert!(server_connections(&admin, &env.prefix).await <= BUDGET as usize);
    assert!(stats.dormant_pools > 0, "some pools that never connected slept: {stats:?}");
    tenancy.connections().close_all().await;
    assert_eq!(server_connections(&admin, &env.prefix).await, 0);
}

#[tokio::test]
async fn closing_a_pool_whose_connection_never_comes_back_ends() {
    use sea_orm::TransactionTrait;
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let tenancy = tenancy_with(&env, |_| {}).await;
    let [a] = tenants(&tenancy, 1).await.try_into().unwrap();
    // A connection checked out for good: a transaction held by a task that never ends.
    let (held, holding) = tokio::sync::oneshot::channel();
    tenancy
        .run(&a, |ctx| async move {
            let transaction = ctx.db().begin().await.unwrap();
            tokio::spawn(async move {
                let _transaction = transaction;
                let _ = held.send(());
                std::future::pending::<()>().await;
            });
        })
        .await
        .unwrap();
    holding.await.unwrap();
    // sqlx's own close would wait for it forever; the cache stops waiting and lets the pool go.
    let closed = tokio::time::timeout(Duration::from_secs(30), tenancy.connections().close(&a.id)).await;
    assert!(closed.is_ok(), "closing the pool hung on a connection that never comes back");
    assert_eq!(tenancy.connections().stats().open_pools, 0);
}
