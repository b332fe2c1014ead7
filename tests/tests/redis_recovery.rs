//! The Redis cache when its connection dies (as in a server restart): operations fail with a clear
//! error, then the connection comes back by itself. Alone in its file, because it kills every
//! Redis client connection of the machine.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::time::Duration;

use redis::AsyncCommands;
use tenancy_core::cache::CacheError;
use tenancy_core::config::CacheStoreKind;
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Tenancy, TenantName};
use tenancy_tests::{Backend, REDIS_ADDR, TestEnv, service_available};

#[tokio::test]
async fn redis_errors_clearly_when_its_connection_is_killed_and_then_recovers() {
    if !service_available("redis", REDIS_ADDR) {
        return;
    }
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let mut config = env.config();
    config.cache.store = CacheStoreKind::Redis;
    config.redis.prefix = format!("{}tenant_{{tenant_id}}_", env.prefix);
    let tenancy = Tenancy::builder(config).open().await.unwrap();
    let mut request = TenantRequest::new(TenantName::parse("R").unwrap());
    request.migrate = false;
    let tenant = tenancy.create_tenant(&request, &()).await.unwrap();
    let cache = tenancy.run(&tenant, |ctx| async move { ctx.cache().unwrap().clone() }).await.unwrap();
    cache.put("before", &1, None).await.unwrap();
    // Kill every client connection but this admin one, as a server restart would. This file holds
    // only this test, so no other test's connection is in the way.
    let client = redis::Client::open(format!("redis://{REDIS_ADDR}")).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").arg("SKIPME").arg("yes").query_async(&mut admin).await.unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        match cache.get::<i32>("before").await {
            Ok(value) => {
                assert_eq!(value, Some(1), "the entry survived the connection");
                recovered = true;
                break;
            }
            Err(err) => {
                assert!(matches!(err, CacheError::Store { store: "redis", .. }), "a clear store error, not a panic: {err:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(recovered, "the cache reconnected");
    cache.put("after", &2, None).await.unwrap();
    assert_eq!(cache.get::<i32>("after").await.unwrap(), Some(2));
    let keys: Vec<String> = admin.keys(format!("{}*", env.prefix)).await.unwrap();
    let _: () = admin.del(keys).await.unwrap();
}
