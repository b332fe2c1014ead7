//! Tenants over several real PostgreSQL servers (the main cluster and the two `.ci/services`
//! starts on 5433 and 5434), in database and schema isolation: placement puts each new tenant's
//! database on the server it records, a draining or read-only server takes none, `--server`
//! names one (an unknown or closed one creates nothing), and each server's own connection
//! budget bounds its tenants' pools without holding back another server's.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use tenancy_core::migrate::fleet::{FleetOptions, Operation};
use tenancy_core::placement::{PlacementError, ServerState};
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Tenancy, Tenant, TenantName};
use tenancy_tests::{Backend, SERVER_NAMES, TestEnv, admin_names};

const POSTGRES_BACKENDS: [Backend; 2] = [Backend::Postgres, Backend::PostgresSchema];

/// An environment over the three servers, or `None` where they are not running.
async fn env_over_servers(backend: Backend, settings: [&str; 3], placement: &str) -> Option<TestEnv> {
    let mut env = TestEnv::new(backend)?;
    env.add_postgres_servers(settings, placement).await?;
    Some(env)
}

async fn create(tenancy: &Tenancy, name: &str, server: Option<&str>) -> Result<Tenant, tenancy_core::provisioning::ProvisionError> {
    let mut request = TenantRequest::new(TenantName::parse(name).unwrap());
    request.server = server.map(str::to_owned);
    tenancy.create_tenant(&request, &()).await
}

/// The tenant databases (or schemas) with the test's prefix on the server `name`.
async fn databases_on(env: &TestEnv, name: &str) -> Vec<String> {
    let pattern = format!("{}%", env.prefix.replace('_', "\\_"));
    let central = env.central_database();
    match env.backend {
        // The schemas live in the database the server's URL names.
        Backend::PostgresSchema => {
            let sql = format!("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE '{pattern}'");
            admin_names(&TestEnv::postgres_server_url(name, &central), &sql).await
        }
        _ => {
            let sql = format!("SELECT datname::text FROM pg_database WHERE datname LIKE '{pattern}' AND datname <> '{central}'");
            admin_names(&TestEnv::postgres_server_url(name, "postgres"), &sql).await
        }
    }
}

/// Writes a row into the tenant's own database and reads back how many it has.
async fn write_and_count(tenancy: &Tenancy, tenant: &Tenant) -> i64 {
    tenancy
        .run(tenant, |ctx| async move {
            let db = ctx.db();
            let backend = db.get_database_backend();
            db.execute_unprepared("INSERT INTO accounts (name, email) VALUES ('x', 'x@servers.test')").await.unwrap();
            let row = db.query_one_raw(Statement::from_string(backend, "SELECT COUNT(*) FROM accounts")).await.unwrap().unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        })
        .await
        .unwrap()
}

fn per_server(tenants: &[Tenant]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for tenant in tenants {
        *counts.entry(tenant.server.clone()).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn new_tenants_spread_over_the_servers_and_live_where_the_registry_says() {
    for backend in POSTGRES_BACKENDS {
        let Some(env) = env_over_servers(backend, ["", "", ""], "least_tenants").await else { continue };
        let tenancy = env.open_sample().await;
        let mut tenants = Vec::new();
        for index in 0..6 {
            tenants.push(create(&tenancy, &format!("T{index}"), None).await.unwrap());
        }
        assert_eq!(per_server(&tenants), SERVER_NAMES.iter().map(|name| ((*name).to_owned(), 2)).collect(), "{}", backend.name());
        for name in SERVER_NAMES {
            let mut expected: Vec<String> = tenants.iter().filter(|t| t.server == name).map(|t| t.database.as_str().to_owned()).collect();
            expected.sort();
            let mut found = databases_on(&env, name).await;
            found.sort();
            assert_eq!(found, expected, "{}: the databases on `{name}` are exactly its tenants'", backend.name());
        }
        // Each tenant's context reaches its own database on its own server: one row each.
        for tenant in &tenants {
            assert_eq!(write_and_count(&tenancy, tenant).await, 1, "{}: {tenant}", backend.name());
        }
        // Deleting a tenant drops its database on its own server.
        let gone = &tenants[5];
        tenancy.delete_tenant(gone, Default::default()).await.unwrap();
        assert!(!databases_on(&env, &gone.server).await.contains(&gone.database.as_str().to_owned()), "{}", backend.name());
        tenancy.close().await;
    }
}

#[tokio::test]
async fn a_draining_or_read_only_server_takes_no_new_tenant_and_keeps_serving_its_own() {
    for backend in POSTGRES_BACKENDS {
        let Some(env) = env_over_servers(backend, ["", "", ""], "least_tenants").await else { continue };
        let tenancy = env.open_sample().await;
        let on_second = create(&tenancy, "OnSecond", Some("second")).await.unwrap();
        let on_third = create(&tenancy, "OnThird", Some("third")).await.unwrap();
        assert_eq!((on_second.server.as_str(), on_third.server.as_str()), ("second", "third"));
        tenancy.registry().set_server_state("second", ServerState::Draining).await.unwrap();
        tenancy.registry().set_server_state("third", ServerState::ReadOnly).await.unwrap();
        // Every new tenant goes to the one active server, though it holds the most.
        for index in 0..3 {
            assert_eq!(create(&tenancy, &format!("New{index}"), None).await.unwrap().server, "default", "{}", backend.name());
        }
        // Asking for a closed server creates nothing, and says why.
        for closed in ["second", "third"] {
            let before = databases_on(&env, closed).await;
            let err = create(&tenancy, "Refused", Some(closed)).await.unwrap_err();
            assert!(err.to_string().contains("place") || err.step == "place", "{err}");
            assert!(tenancy_core::command::format::error_chain(&err).contains("takes no new tenants"), "{err:?}");
            assert_eq!(databases_on(&env, closed).await, before, "{}: nothing made on `{closed}`", backend.name());
        }
        assert_eq!(tenancy.registry().list(None).await.unwrap().len(), 5, "{}: no registry row for a refused tenant", backend.name());
        // Their tenants are served as before.
        assert_eq!(write_and_count(&tenancy, &on_second).await, 1);
        assert_eq!(write_and_count(&tenancy, &on_third).await, 1);
        // Nothing is written on the read-only server: its tenant is skipped, with the reason; the rest migrate.
        let tenants = tenancy.registry().list(None).await.unwrap();
        let options = FleetOptions { concurrency: 4, fail_fast: false, down_during: false, verify: true };
        let reports = tenancy.run_fleet(tenants.clone(), &Operation::Migrate, options, Arc::new(())).await;
        let skipped: Vec<&str> = reports.iter().filter_map(|r| r.skipped.as_deref().map(|_| r.tenant.name.as_str())).collect();
        assert_eq!(skipped, vec!["OnThird"], "{}", backend.name());
        assert!(reports.iter().find(|r| r.tenant.id == on_third.id).unwrap().skipped.as_deref().unwrap().contains("read-only"));
        assert!(reports.iter().all(|r| r.failure.is_none()), "{}", backend.name());
        // No server active: a clear error naming each state, and nothing made.
        tenancy.registry().set_server_state("default", ServerState::Draining).await.unwrap();
        let err = create(&tenancy, "Nowhere", None).await.unwrap_err();
        let chain = tenancy_core::command::format::error_chain(&err);
        assert!(chain.contains("default is draining") && chain.contains("third is read_only"), "{chain}");
        // Open again: the emptiest active server gets the next one.
        tenancy.registry().set_server_state("second", ServerState::Active).await.unwrap();
        assert_eq!(create(&tenancy, "Back", None).await.unwrap().server, "second", "{}", backend.name());
        tenancy.close().await;
    }
}

#[tokio::test]
async fn an_unknown_server_is_bad_input_and_creates_nothing() {
    let Some(env) = env_over_servers(Backend::Postgres, ["", "", ""], "least_tenants").await else { return };
    let tenancy = env.open_sample().await;
    for name in ["nope", "../default", "default; DROP DATABASE postgres"] {
        let err = create(&tenancy, "Lost", Some(name)).await.unwrap_err();
        assert_eq!(err.step, "place");
        let usage = err.source.downcast_ref::<tenancy_core::command::UsageError>();
        assert!(usage.is_some(), "an unknown server is the request's mistake: {err:?}");
        assert!(tenancy_core::command::format::error_chain(&err).contains("no server named"), "{err:?}");
    }
    assert!(tenancy.registry().list(None).await.unwrap().is_empty());
    for name in SERVER_NAMES {
        assert!(databases_on(&env, name).await.is_empty(), "{name}");
    }
    // The error type itself says so.
    let err = tenancy.place_new_tenant(Some("nope")).await.unwrap_err();
    assert!(matches!(err, PlacementError::UnknownServer { .. }) && err.is_bad_input());
    tenancy.close().await;
}

#[tokio::test]
async fn weighted_placement_follows_the_weights_and_least_bytes_the_bytes() {
    let Some(env) = env_over_servers(Backend::Postgres, ["weight = 3", "weight = 1", "weight = 2"], "weighted").await else { return };
    let tenancy = env.open_sample().await;
    let mut tenants = Vec::new();
    for index in 0..12 {
        tenants.push(create(&tenancy, &format!("W{index}"), None).await.unwrap());
    }
    let expected: BTreeMap<String, usize> = [("default", 6), ("second", 2), ("third", 4)].map(|(n, c)| (n.to_owned(), c)).into();
    assert_eq!(per_server(&tenants), expected);
    tenancy.close().await;

    let Some(env) = env_over_servers(Backend::Postgres, ["", "", ""], "least_bytes").await else { return };
    let tenancy = env.open_sample().await;
    let first = create(&tenancy, "Big", Some("default")).await.unwrap();
    let second = create(&tenancy, "Small", Some("second")).await.unwrap();
    let third = create(&tenancy, "Smaller", Some("third")).await.unwrap();
    // Make the default server's tenant big, and the third's a little bigger than the second's.
    for (tenant, rows) in [(&first, 20_000), (&third, 2_000)] {
        tenancy
            .run(tenant, |ctx| async move {
                let sql = format!(
                    "INSERT INTO accounts (name, email) SELECT 'n' || g, 'e' || g || '@bytes.test' FROM generate_series(1, {rows}) g"
                );
                ctx.db().execute_unprepared(&sql).await.unwrap();
            })
            .await
            .unwrap();
    }
    let loads = tenancy.server_loads(true).await.unwrap();
    let bytes = |name: &str| loads.iter().find(|l| l.name == name).unwrap().bytes.unwrap();
    assert!(bytes("default") > bytes("third") && bytes("third") > bytes("second"), "{loads:?}");
    assert_eq!(create(&tenancy, "Next", None).await.unwrap().server, second.server, "{loads:?}");
    tenancy.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_server_budget_bounds_its_own_pools_only() {
    // pool_size 5 (the default): the main server has room for one pool, `second` for two.
    let settings = ["connection_budget = 5", "connection_budget = 10", "connection_budget = 5"];
    let Some(env) = env_over_servers(Backend::Postgres, settings, "least_tenants").await else { return };
    let tenancy = Arc::new(env.open_sample().await);
    let a = create(&tenancy, "A", Some("default")).await.unwrap();
    let b = create(&tenancy, "B", Some("default")).await.unwrap();
    let c = create(&tenancy, "C", Some("second")).await.unwrap();
    tenancy.connections().close_all().await;
    // A holds the main server's only room while it runs.
    let (release, hold) = tokio::sync::oneshot::channel::<()>();
    let (entered, in_a) = tokio::sync::oneshot::channel::<()>();
    let holder = {
        let (tenancy, a) = (tenancy.clone(), a.clone());
        tokio::spawn(async move {
            tenancy
                .run(&a, |ctx| async move {
                    ctx.db().execute_unprepared("SELECT 1").await.unwrap();
                    entered.send(()).unwrap();
                    hold.await.unwrap();
                })
                .await
                .unwrap();
        })
    };
    tokio::time::timeout(Duration::from_secs(30), in_a).await.unwrap().unwrap();
    // B (same server) waits; C (another server, room of its own) does not.
    let waiting = {
        let (tenancy, b) = (tenancy.clone(), b.clone());
        tokio::spawn(async move { tenancy.run(&b, |ctx| async move { ctx.db().execute_unprepared("SELECT 1").await.unwrap() }).await })
    };
    let on_second = tenancy.run(&c, |ctx| async move { ctx.db().execute_unprepared("SELECT 1").await.map(drop) });
    tokio::time::timeout(Duration::from_secs(30), on_second)
        .await
        .expect("C is not held back by the main server's budget")
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "B ran beside A though their server's budget has room for one pool");
    release.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), holder).await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(30), waiting).await.expect("B runs once A is done").unwrap().unwrap();
    // The total is the servers' sum, and was never exceeded.
    assert!(tenancy.connections().stats().peak_reserved_connections <= 20);
    Arc::try_unwrap(tenancy).ok().expect("the only handle").close().await;
}

#[tokio::test]
async fn every_backend_measures_its_tenants_bytes_for_placement() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = env.open_sample().await;
        let tenant = create(&tenancy, "Measured", None).await.unwrap();
        let empty = tenancy.server_loads(true).await.unwrap()[0].bytes.unwrap();
        assert!(empty > 0, "{}: a migrated tenant takes room", backend.name());
        tenancy
            .run(&tenant, |ctx| async move {
                for chunk in 0..20 {
                    let values: Vec<String> = (0..100).map(|i| format!("('n', '{chunk}_{i}_{}@bytes.test')", "e".repeat(200))).collect();
                    ctx.db().execute_unprepared(&format!("INSERT INTO accounts (name, email) VALUES {}", values.join(", "))).await.unwrap();
                }
            })
            .await
            .unwrap();
        if backend == Backend::MySql {
            // InnoDB's table statistics lag behind a load until they are recalculated.
            tenancy
                .run(&tenant, |ctx| async move { ctx.db().execute_unprepared("ANALYZE TABLE accounts").await.map(drop) })
                .await
                .unwrap()
                .unwrap();
        }
        let loaded = tenancy.server_loads(true).await.unwrap();
        assert!(loaded[0].bytes.unwrap() > empty, "{}: {empty} then {loaded:?}", backend.name());
        assert_eq!(loaded[0].tenants, 1);
        tenancy.close().await;
    }
}

/// The port of the server the tenant's context reaches.
async fn server_port(tenancy: &Tenancy, tenant: &Tenant) -> i32 {
    tenancy
        .run(tenant, |ctx| async move {
            let db = ctx.db();
            let row =
                db.query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT inet_server_port()")).await.unwrap().unwrap();
            row.try_get_by_index::<i32>(0).unwrap()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_pool_follows_its_tenant_to_a_new_server() {
    for backend in POSTGRES_BACKENDS {
        let Some(env) = env_over_servers(backend, ["", "", ""], "least_tenants").await else { continue };
        let tenancy = env.open_sample().await;
        let tenant = create(&tenancy, "Moving", Some("default")).await.unwrap();
        assert_eq!(server_port(&tenancy, &tenant).await, 5432, "{}", backend.name());
        // Another process moved it: its database is on `second` now, and the registry says so.
        tenancy.manager_on("second").unwrap().create_database(&tenant.database).await.unwrap();
        tenancy.give_to_role(&tenant, Some("second")).await.unwrap();
        tenancy.registry().switch_server(&tenant.id, "default", "second").await.unwrap();
        let moved = tenancy.registry().require(&tenant.id).await.unwrap();
        assert_eq!(moved.server, "second");
        // This process's pool still points at `default`; the tenant as read now goes to `second`.
        assert_eq!(server_port(&tenancy, &moved).await, 5433, "{}: the old pool was used", backend.name());
        // A switch from a server the tenant is no longer on changes nothing.
        assert!(tenancy.registry().switch_server(&tenant.id, "default", "third").await.is_err());
        assert_eq!(tenancy.registry().require(&tenant.id).await.unwrap().server, "second");
        tenancy.close().await;
    }
}
