//! Sessions per tenant: a session id issued under one tenant is not found under another (which
//! then starts a fresh session), expiry is honoured, and sessions need a tenant context.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::sync::Arc;

use tenancy_core::config::SessionStoreKind;
use tenancy_core::provisioning::{DeleteOptions, TenantRequest};
use tenancy_core::{Tenancy, TenantName};
use tenancy_tests::{Backend, REDIS_ADDR, TestEnv, service_available};
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::SessionStore;

const STORES: [(Backend, SessionStoreKind); 5] = [
    (Backend::Sqlite, SessionStoreKind::Database),
    (Backend::Postgres, SessionStoreKind::Database),
    (Backend::PostgresSchema, SessionStoreKind::Database),
    (Backend::MySql, SessionStoreKind::Database),
    (Backend::Sqlite, SessionStoreKind::Redis),
];

fn record(user: &str, expires_in: time::Duration) -> Record {
    let mut data = std::collections::HashMap::new();
    data.insert("user".to_owned(), serde_json::json!(user));
    Record { id: Id::default(), data, expiry_date: time::OffsetDateTime::now_utc() + expires_in }
}

#[tokio::test]
async fn a_session_id_from_one_tenant_is_unknown_to_another() {
    for (backend, kind) in STORES {
        if kind == SessionStoreKind::Redis && !service_available("redis", REDIS_ADDR) {
            continue;
        }
        let Some(env) = TestEnv::new(backend) else { continue };
        env.create_central_database().await;
        let mut config = env.config();
        config.session.store = kind;
        config.redis.prefix = format!("{}tenant_{{tenant_id}}_", env.prefix);
        let migrator = Arc::new(tenancy_core::migrate::SeaOrmMigrator::<migration::Migrator>::default());
        let tenancy = Tenancy::builder(config).tenant_migrator(migrator).open().await.unwrap();
        let a = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("A").unwrap()), &()).await.unwrap();
        let b = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("B").unwrap()), &()).await.unwrap();
        let store = tenancy.session_store();

        let mut alice = record("alice", time::Duration::hours(1));
        tenancy.run(&a, |_| async { store.create(&mut alice).await.unwrap() }).await.unwrap();
        let id = alice.id;
        let in_a = tenancy.run(&a, |_| async { store.load(&id).await.unwrap() }).await.unwrap();
        assert_eq!(in_a.unwrap().data["user"], "alice", "{backend:?}/{kind:?}");
        let in_b = tenancy.run(&b, |_| async { store.load(&id).await.unwrap() }).await.unwrap();
        assert!(in_b.is_none(), "{backend:?}/{kind:?}: tenant B accepted tenant A's session id");
        // B saving under that id makes B's own session; A's stays A's.
        let mut mallory = record("mallory", time::Duration::hours(1));
        mallory.id = id;
        tenancy.run(&b, |_| async { store.save(&mallory).await.unwrap() }).await.unwrap();
        let in_a = tenancy.run(&a, |_| async { store.load(&id).await.unwrap() }).await.unwrap();
        assert_eq!(in_a.unwrap().data["user"], "alice", "{backend:?}/{kind:?}: B overwrote A's session");

        let expired = record("old", time::Duration::seconds(-5));
        let expired_id = expired.id;
        tenancy.run(&a, |_| async { store.save(&expired).await.unwrap() }).await.unwrap();
        assert!(tenancy.run(&a, |_| async { store.load(&expired_id).await.unwrap() }).await.unwrap().is_none(), "{kind:?}: expired");

        tenancy.run(&a, |_| async { store.delete(&id).await.unwrap() }).await.unwrap();
        assert!(tenancy.run(&a, |_| async { store.load(&id).await.unwrap() }).await.unwrap().is_none());
        assert!(store.load(&id).await.is_err(), "outside a tenant context there are no sessions");

        tenancy.delete_tenant(&b, DeleteOptions::default()).await.unwrap();
        if kind == SessionStoreKind::Redis {
            let client = redis::Client::open(format!("redis://{REDIS_ADDR}")).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            let left: Vec<String> = redis::AsyncCommands::keys(&mut connection, format!("{}*", env.prefix)).await.unwrap();
            assert!(left.is_empty(), "deleting B removed its session, and A's was deleted above: {left:?}");
        }
        tenancy.close().await;
    }
}

#[tokio::test]
async fn expired_sessions_in_a_database_are_swept() {
    for (backend, kind) in STORES {
        if kind != SessionStoreKind::Database {
            continue;
        }
        let Some(env) = TestEnv::new(backend) else { continue };
        env.create_central_database().await;
        let tenancy = Tenancy::builder(env.config()).open().await.unwrap();
        let a = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("A").unwrap()), &()).await.unwrap();
        let store = tenancy.session_store();
        let purged = tenancy
            .run(&a, |_| async move {
                let mut short = record("soon gone", time::Duration::seconds(1));
                let mut long = record("stays", time::Duration::hours(1));
                store.create(&mut short).await.unwrap();
                store.create(&mut long).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
                let purged = store.purge_expired().await.unwrap();
                assert!(store.load(&long.id).await.unwrap().is_some(), "{backend:?}: a live session stays");
                purged
            })
            .await
            .unwrap();
        assert_eq!(purged, 1, "{backend:?}: the expired session was swept");
    }
}
