//! Tenant caches on every store (each tenant's database, memory, Redis): tests that try to make one
//! tenant read, overwrite or flush another's entries, and fail to.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use tenancy_core::cache::{Cache, CacheError};
use tenancy_core::config::CacheStoreKind;
use tenancy_core::provisioning::{DeleteOptions, TenantRequest};
use tenancy_core::{Tenancy, Tenant, TenantName};
use tenancy_tests::{Backend, REDIS_ADDR, TestEnv, service_available};

/// A world on `backend` whose caches use `store`; Redis keys get the test's own prefix.
async fn world(backend: Backend, store: CacheStoreKind, tenants: usize) -> Option<(TestEnv, Tenancy, Vec<Tenant>)> {
    if store == CacheStoreKind::Redis && !service_available("redis", REDIS_ADDR) {
        return None;
    }
    let env = TestEnv::new(backend)?;
    env.create_central_database().await;
    let mut config = env.config();
    config.cache.store = store;
    config.redis.prefix = format!("{}tenant_{{tenant_id}}_", env.prefix);
    config.redis.central_prefix = format!("{}central_", env.prefix);
    let migrator = Arc::new(tenancy_core::migrate::SeaOrmMigrator::<migration::Migrator>::default());
    let tenancy = Tenancy::builder(config).tenant_migrator(migrator).open().await.unwrap();
    let mut created = Vec::new();
    for i in 0..tenants {
        created.push(tenancy.create_tenant(&TenantRequest::new(TenantName::parse(&format!("T{i}")).unwrap()), &()).await.unwrap());
    }
    Some((env, tenancy, created))
}

/// A tenant's cache handle, taken out of its context. Only for worlds of three tenants or fewer,
/// whose pools are never evicted; real code uses the cache inside `Tenancy::run`.
async fn cache_of(tenancy: &Tenancy, tenant: &Tenant) -> Cache {
    tenancy.run(tenant, |ctx| async move { ctx.cache().unwrap().clone() }).await.unwrap()
}

async fn redis_keys(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(format!("redis://{REDIS_ADDR}")).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = connection.keys(format!("{prefix}*")).await.unwrap();
    keys.sort();
    keys
}

async fn drop_redis_keys(prefix: &str) {
    let keys = redis_keys(prefix).await;
    if !keys.is_empty() {
        let client = redis::Client::open(format!("redis://{REDIS_ADDR}")).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = connection.del(keys).await.unwrap();
    }
}

/// Keys chosen to collide: another tenant's prefix inside a key, separators, empty, long, odd bytes.
fn tricky_keys(others: &[Tenant]) -> Vec<String> {
    let mut keys = vec![
        "".to_owned(),
        "a".into(),
        "a:b".into(),
        "_".into(),
        "tenant_".into(),
        "central_x".into(),
        "\u{1}\u{7f}\n\t".into(),
        "*".into(),
        "[x]?".into(),
        "é€😀".into(),
        "k".repeat(250),
    ];
    for other in others.iter().take(3) {
        keys.push(format!("tenant_{}_a", other.id));
        keys.push(format!("{}_a", other.id));
    }
    keys
}

const STORES: [(Backend, CacheStoreKind); 4] = [
    (Backend::Sqlite, CacheStoreKind::Database),
    (Backend::Postgres, CacheStoreKind::Database),
    (Backend::Sqlite, CacheStoreKind::Memory),
    (Backend::Sqlite, CacheStoreKind::Redis),
];

#[tokio::test]
async fn fifty_tenants_at_random_never_see_each_others_entries() {
    for (backend, store) in STORES {
        let Some((env, tenancy, tenants)) = world(backend, store, 50).await else { continue };
        let keys = Arc::new(tricky_keys(&tenants));
        let tenancy = Arc::new(tenancy);
        let mut workers = Vec::new();
        for (index, tenant) in tenants.iter().cloned().enumerate() {
            let (tenancy, keys) = (tenancy.clone(), keys.clone());
            workers.push(tokio::spawn(async move {
                let context = tenancy.clone();
                context
                    .run(&tenant, |ctx| async move {
                        let cache = ctx.cache().unwrap().clone();
                        let mine = tenant.id.to_string();
                        let mut model: HashMap<String, String> = HashMap::new();
                        let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ index as u64;
                        for n in 0..120 {
                            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                            let key = &keys[(seed >> 33) as usize % keys.len()];
                            match (seed >> 20) % 10 {
                                0..=3 => {
                                    let value = format!("{mine}:{n}");
                                    cache.put(key, &value, None).await.unwrap();
                                    model.insert(key.clone(), value);
                                }
                                4..=6 => {
                                    let got: Option<String> = cache.get(key).await.unwrap();
                                    assert_eq!(got.as_ref(), model.get(key), "tenant {mine} read {got:?} under {key:?}");
                                }
                                7 => {
                                    let value = cache.remember(key, None, || async { Ok(format!("{mine}:r{n}")) }).await.unwrap();
                                    assert!(value.starts_with(&mine), "tenant {mine} remembered {value}");
                                    model.entry(key.clone()).or_insert(value);
                                }
                                8 => {
                                    cache.forget(key).await.unwrap();
                                    model.remove(key);
                                }
                                _ if n % 40 == 9 => {
                                    cache.flush().await.unwrap();
                                    model.clear();
                                }
                                _ => {}
                            }
                        }
                        model
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut finals = Vec::new();
        for (tenant, worker) in tenants.iter().zip(workers) {
            finals.push((tenant, worker.await.unwrap()));
        }
        for (tenant, model) in &finals {
            let keys = keys.clone();
            tenancy
                .run(tenant, |ctx| async move {
                    let cache = ctx.cache().unwrap();
                    for key in keys.iter() {
                        let got: Option<String> = cache.get(key).await.unwrap();
                        assert_eq!(
                            got.as_ref(),
                            model.get(key),
                            "{:?}/{}: surviving entries are exactly the tenant's own",
                            backend,
                            cache.kind()
                        );
                    }
                })
                .await
                .unwrap();
        }
        if store == CacheStoreKind::Redis {
            drop_redis_keys(&env.prefix).await;
        }
    }
}

#[tokio::test]
async fn a_flush_removes_only_its_own_tenants_entries_while_others_write() {
    for (backend, store) in STORES {
        let Some((env, tenancy, tenants)) = world(backend, store, 3).await else { continue };
        let caches = [cache_of(&tenancy, &tenants[0]).await, cache_of(&tenancy, &tenants[1]).await, cache_of(&tenancy, &tenants[2]).await];
        let central = tenancy.central_cache().await.unwrap();
        central.put("shared", &"central", None).await.unwrap();
        for i in 0..50 {
            caches[0].put(&format!("k{i}"), &i, None).await.unwrap();
        }
        let writers: Vec<_> = caches[1..]
            .iter()
            .cloned()
            .map(|cache| {
                tokio::spawn(async move {
                    for i in 0..200 {
                        cache.put(&format!("k{i}"), &i, None).await.unwrap();
                    }
                })
            })
            .collect();
        caches[0].flush().await.unwrap();
        for writer in writers {
            writer.await.unwrap();
        }
        for i in 0..200 {
            assert_eq!(caches[0].get::<i32>(&format!("k{i}")).await.unwrap(), None);
            for cache in &caches[1..] {
                assert_eq!(cache.get::<i32>(&format!("k{i}")).await.unwrap(), Some(i), "{backend:?}/{store:?}: entry k{i} of a bystander");
            }
        }
        assert_eq!(central.get::<String>("shared").await.unwrap().as_deref(), Some("central"), "the central cache is untouched");
        let stats = caches[1].stats().await.unwrap();
        assert_eq!(stats.entries, 200, "{backend:?}/{store:?}");
        assert!(stats.bytes >= 200, "{backend:?}/{store:?}: {stats:?}");
        assert_eq!(caches[0].stats().await.unwrap().entries, 0);
        if store == CacheStoreKind::Redis {
            drop_redis_keys(&env.prefix).await;
        }
    }
}

#[tokio::test]
async fn expiry_remember_increment_and_limits() {
    for (backend, store) in STORES {
        let Some((env, tenancy, tenants)) = world(backend, store, 1).await else { continue };
        let cache = cache_of(&tenancy, &tenants[0]).await;
        cache.put("short", &1, Some(Duration::from_millis(50))).await.unwrap();
        assert_eq!(cache.get::<i32>("short").await.unwrap(), Some(1));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(cache.get::<i32>("short").await.unwrap(), None, "{store:?}: an expired entry is never returned");

        let computed = Arc::new(AtomicUsize::new(0));
        let racers: Vec<_> = (0..20)
            .map(|_| {
                let (cache, computed) = (cache.clone(), computed.clone());
                tokio::spawn(async move {
                    cache
                        .remember("slow", None, || async move {
                            computed.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            Ok(42)
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for racer in racers {
            assert_eq!(racer.await.unwrap(), 42);
        }
        assert_eq!(computed.load(Ordering::SeqCst), 1, "{store:?}: concurrent misses compute once");

        assert_eq!(cache.increment("hits", 1).await.unwrap(), 1);
        assert_eq!(cache.increment("hits", 5).await.unwrap(), 6);
        assert_eq!(cache.get::<i64>("hits").await.unwrap(), Some(6));
        cache.put("word", &"text", None).await.unwrap();
        assert!(matches!(cache.increment("word", 1).await, Err(CacheError::NotAnInteger { .. })), "{store:?}");
        assert!(matches!(cache.put(&"x".repeat(251), &1, None).await, Err(CacheError::KeyTooLong { len: 251 })));
        assert!(matches!(cache.get::<i32>("a\u{0}b").await, Err(CacheError::NulInKey { .. })));
        assert!(
            matches!(cache.get::<i32>("word").await, Err(CacheError::Decode { .. })),
            "a value of another type is an error, not garbage"
        );
        if store == CacheStoreKind::Redis {
            drop_redis_keys(&env.prefix).await;
        }
    }
}

#[tokio::test]
async fn deleting_a_tenant_removes_its_entries_from_shared_stores() {
    for store in [CacheStoreKind::Memory, CacheStoreKind::Redis] {
        let Some((env, tenancy, tenants)) = world(Backend::Sqlite, store, 2).await else { continue };
        let (gone, kept) = (cache_of(&tenancy, &tenants[0]).await, cache_of(&tenancy, &tenants[1]).await);
        gone.put("a", &1, None).await.unwrap();
        kept.put("a", &2, None).await.unwrap();
        tenancy.delete_tenant(&tenants[0], DeleteOptions::default()).await.unwrap();
        assert_eq!(gone.get::<i32>("a").await.unwrap(), None, "{store:?}");
        assert_eq!(kept.get::<i32>("a").await.unwrap(), Some(2), "{store:?}");
        if store == CacheStoreKind::Redis {
            let left = redis_keys(&env.prefix).await;
            assert_eq!(left, vec![format!("{}tenant_{}_a", env.prefix, tenants[1].id)], "only the kept tenant's key is left in Redis");
            drop_redis_keys(&env.prefix).await;
        }
    }
}

#[tokio::test]
async fn per_tenant_redis_databases_are_assigned_remembered_and_refused_when_exhausted() {
    if !service_available("redis", REDIS_ADDR) {
        return;
    }
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let mut config = env.config();
    config.cache.store = CacheStoreKind::Redis;
    config.redis.prefix = format!("{}tenant_{{tenant_id}}_", env.prefix);
    config.redis.per_tenant_database = true;
    config.redis.database_offset = 14;
    config.redis.databases = 16; // two databases for tenants: 14 and 15
    let tenancy = Tenancy::builder(config).open().await.unwrap();
    let mut tenants = Vec::new();
    for name in ["A", "B", "C"] {
        let mut request = TenantRequest::new(TenantName::parse(name).unwrap());
        request.migrate = false;
        tenants.push(tenancy.create_tenant(&request, &()).await.unwrap());
    }
    let put = |tenant: Tenant| {
        let tenancy = &tenancy;
        async move {
            let name = tenant.name.to_string();
            tenancy.run(&tenant, |ctx| async move { ctx.cache().unwrap().put("k", &name, None).await }).await
        }
    };
    put(tenants[0].clone()).await.unwrap().unwrap();
    put(tenants[1].clone()).await.unwrap().unwrap();
    let refused = put(tenants[2].clone()).await.expect_err("a third tenant gets no database");
    let message = anyhow_like(&refused);
    assert!(message.contains("every Redis database for tenants is taken"), "{message}");

    let client = redis::Client::open(format!("redis://{REDIS_ADDR}")).unwrap();
    for (index, tenant) in [(14, &tenants[0]), (15, &tenants[1])] {
        let mut connection =
            redis::Client::open(format!("redis://{REDIS_ADDR}/{index}")).unwrap().get_multiplexed_async_connection().await.unwrap();
        let value: Option<String> = connection.get(format!("{}tenant_{}_k", env.prefix, tenant.id)).await.unwrap();
        assert_eq!(value.as_deref(), Some(format!("\"{}\"", tenant.name).as_str()), "tenant {} lives in database {index}", tenant.name);
    }
    // The assignment is remembered: A gets database 14 again.
    put(tenants[0].clone()).await.unwrap().unwrap();
    // Deleting A frees database 14 for C (after removing A's keys there).
    tenancy.delete_tenant(&tenants[0], DeleteOptions::default()).await.unwrap();
    put(tenants[2].clone()).await.unwrap().unwrap();
    let mut fourteen = redis::Client::open(format!("redis://{REDIS_ADDR}/14")).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = fourteen.keys(format!("{}*", env.prefix)).await.unwrap();
    assert_eq!(keys, vec![format!("{}tenant_{}_k", env.prefix, tenants[2].id)], "only C's key is in database 14 now");
    for index in [14, 15] {
        let mut connection =
            redis::Client::open(format!("redis://{REDIS_ADDR}/{index}")).unwrap().get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = connection.keys(format!("{}*", env.prefix)).await.unwrap();
        if !keys.is_empty() {
            let _: () = connection.del(keys).await.unwrap();
        }
    }
    drop(client);
}

/// The error and its causes on one line.
fn anyhow_like(err: &tenancy_core::ContextError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
