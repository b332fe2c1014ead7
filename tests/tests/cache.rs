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
    let mut config = redis_config(&env);
    config.cache.store = store;
    let migrator = Arc::new(tenancy_core::migrate::SeaOrmMigrator::<migration::Migrator>::default());
    let tenancy = Tenancy::builder(config).tenant_migrator(migrator).open().await.unwrap();
    let mut created = Vec::new();
    for i in 0..tenants {
        created.push(tenancy.create_tenant(&TenantRequest::new(TenantName::parse(&format!("T{i}")).unwrap()), &()).await.unwrap());
    }
    Some((env, tenancy, created))
}

/// `env`'s configuration with the Redis cache, its keys under the test's own prefixes.
fn redis_config(env: &TestEnv) -> tenancy_core::Config {
    let mut config = env.config();
    config.cache.store = CacheStoreKind::Redis;
    config.redis.prefix = format!("{}tenant_{{tenant_id}}_", env.prefix);
    config.redis.central_prefix = format!("{}central_", env.prefix);
    config.redis.central_prefix = format!("{}central_", env.prefix);
    config
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

const STORES: [(Backend, CacheStoreKind); 6] = [
    (Backend::Sqlite, CacheStoreKind::Database),
    (Backend::Postgres, CacheStoreKind::Database),
    (Backend::PostgresSchema, CacheStoreKind::Database),
    (Backend::MySql, CacheStoreKind::Database),
    (Backend::Sqlite, CacheStoreKind::Memory),
    (Backend::Sqlite, CacheStoreKind::Redis),
];

#[tokio::test]
async fn fifty_tenants_at_random_never_see_each_others_entries() {
    for (backend, store) in STORES {
        // MariaDB's DDL is slow: fewer tenants there keep the suite's time, and still share every key.
        let count = if backend == Backend::MySql { 12 } else { 50 };
        let Some((env, tenancy, tenants)) = world(backend, store, count).await else { continue };
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
            assert_eq!(
                left,
                vec![format!("{}tenant_{}_cache:a", env.prefix, tenants[1].id)],
                "only the kept tenant's key is left in Redis"
            );
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
    let mut config = redis_config(&env);
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
        let value: Option<String> = connection.get(format!("{}tenant_{}_cache:k", env.prefix, tenant.id)).await.unwrap();
        assert_eq!(value.as_deref(), Some(format!("\"{}\"", tenant.name).as_str()), "tenant {} lives in database {index}", tenant.name);
    }
    // The assignment is remembered: A gets database 14 again.
    put(tenants[0].clone()).await.unwrap().unwrap();
    // Deleting A frees database 14 for C (after removing A's keys there).
    tenancy.delete_tenant(&tenants[0], DeleteOptions::default()).await.unwrap();
    put(tenants[2].clone()).await.unwrap().unwrap();
    let mut fourteen = redis::Client::open(format!("redis://{REDIS_ADDR}/14")).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = fourteen.keys(format!("{}*", env.prefix)).await.unwrap();
    assert_eq!(keys, vec![format!("{}tenant_{}_cache:k", env.prefix, tenants[2].id)], "only C's key is in database 14 now");
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

#[tokio::test]
async fn keys_that_a_collation_would_merge_stay_apart() {
    for (backend, store) in STORES {
        let Some((env, tenancy, tenants)) = world(backend, store, 1).await else { continue };
        let cache = cache_of(&tenancy, &tenants[0]).await;
        // Equal under utf8mb4_unicode_ci, and under any case- or accent-insensitive or padding comparison.
        let pairs = [("profile:Bob", "profile:bob"), ("résumé", "resume"), ("a", "a "), ("", "\u{1}\u{7f}"), ("ß", "ss")];
        for (index, (one, other)) in pairs.iter().enumerate() {
            cache.put(one, &format!("one {index}"), None).await.unwrap();
            cache.put(other, &format!("other {index}"), None).await.unwrap();
        }
        for (index, (one, other)) in pairs.iter().enumerate() {
            assert_eq!(cache.get::<String>(one).await.unwrap(), Some(format!("one {index}")), "{backend:?}/{store:?}: `{one:?}`");
            assert_eq!(cache.get::<String>(other).await.unwrap(), Some(format!("other {index}")), "{backend:?}/{store:?}: `{other:?}`");
        }
        assert_eq!(cache.stats().await.unwrap().entries, 2 * pairs.len() as u64, "{backend:?}/{store:?}");
        if store == CacheStoreKind::Redis {
            drop_redis_keys(&env.prefix).await;
        }
    }
}

#[tokio::test]
async fn overlong_ttls_mean_for_ever_and_counters_keep_their_ttl_and_range() {
    for (backend, store) in STORES {
        let Some((env, tenancy, tenants)) = world(backend, store, 1).await else { continue };
        let cache = cache_of(&tenancy, &tenants[0]).await;
        for (key, ttl) in
            [("u64", Duration::from_secs(u64::MAX)), ("max", Duration::MAX), ("century", Duration::from_secs(200 * 365 * 86_400))]
        {
            cache.put(key, &key, Some(ttl)).await.unwrap();
            assert_eq!(cache.get::<String>(key).await.unwrap().as_deref(), Some(key), "{backend:?}/{store:?}: a TTL of {ttl:?} kept it");
        }
        cache.put("top", &i64::MAX, None).await.unwrap();
        assert!(matches!(cache.increment("top", 1).await, Err(CacheError::Overflow { .. })), "{backend:?}/{store:?}");
        cache.put("bottom", &i64::MIN, None).await.unwrap();
        assert!(matches!(cache.increment("bottom", -1).await, Err(CacheError::Overflow { .. })), "{backend:?}/{store:?}");
        assert_eq!(cache.get::<i64>("top").await.unwrap(), Some(i64::MAX), "an overflow leaves the entry as it was");
        cache.put("counter", &1, Some(Duration::from_millis(300))).await.unwrap();
        assert_eq!(cache.increment("counter", 1).await.unwrap(), 2);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(cache.get::<i64>("counter").await.unwrap(), None, "{backend:?}/{store:?}: incrementing kept the entry's TTL");
        if store == CacheStoreKind::Redis {
            drop_redis_keys(&env.prefix).await;
        }
    }
}

#[tokio::test]
async fn redis_cache_entries_and_sessions_live_in_separate_namespaces() {
    use tower_sessions_core::session::{Id, Record};
    use tower_sessions_core::session_store::SessionStore;
    if !service_available("redis", REDIS_ADDR) {
        return;
    }
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let mut config = redis_config(&env);
    config.session.store = tenancy_core::config::SessionStoreKind::Redis;
    let tenancy = Tenancy::builder(config).open().await.unwrap();
    let tenant = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("A").unwrap()), &()).await.unwrap();
    let store = tenancy.session_store();
    let (cleared, stats, read, loaded) = tenancy
        .run(&tenant, |ctx| async move {
            let mut record = Record {
                id: Id::default(),
                data: Default::default(),
                expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            };
            store.create(&mut record).await.unwrap();
            let cache = ctx.cache().unwrap();
            cache.put("entry", &1, None).await.unwrap();
            let read = cache.get::<serde_json::Value>(&format!("session:{}", record.id)).await.unwrap();
            let stats = cache.stats().await.unwrap();
            let cleared = cache.flush().await.unwrap();
            (cleared, stats, read, store.load(&record.id).await.unwrap())
        })
        .await
        .unwrap();
    assert_eq!(read, None, "the cache cannot read a session record");
    assert_eq!(stats.entries, 1, "stats count cache entries only");
    assert_eq!(cleared, 1, "a flush removes the cache entry only");
    assert!(loaded.is_some(), "clearing the cache logged nobody out");
    // Deleting the tenant sweeps both.
    tenancy.delete_tenant(&tenant, DeleteOptions::default()).await.unwrap();
    assert_eq!(redis_keys(&env.prefix).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_delete_racing_its_tenants_own_writes_leaves_no_key_behind() {
    if !service_available("redis", REDIS_ADDR) {
        return;
    }
    for per_tenant_database in [false, true] {
        let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
        let mut config = redis_config(&env);
        config.redis.per_tenant_database = per_tenant_database;
        // Indexes no other test uses, since a freed index is swept whole.
        config.redis.database_offset = 6;
        config.redis.databases = 8;
        let tenancy = Arc::new(Tenancy::builder(config).open().await.unwrap());
        let tenant = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("Racer").unwrap()), &()).await.unwrap();
        let writers: Vec<_> = (0..8)
            .map(|writer| {
                let (tenancy, tenant) = (tenancy.clone(), tenant.clone());
                tokio::spawn(async move {
                    for i in 0.. {
                        let put = tenancy
                            .run(&tenant, |ctx| async move { ctx.cache().unwrap().put(&format!("w{writer}-{i}"), &i, None).await })
                            .await;
                        match put {
                            Ok(written) => written.unwrap(),
                            Err(tenancy_core::ContextError::Closed { .. }) => return i,
                            Err(other) => panic!("{other}"),
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokio::time::timeout(Duration::from_secs(60), tenancy.delete_tenant(&tenant, DeleteOptions::default())).await.unwrap().unwrap();
        let written: i32 = futures::future::join_all(writers).await.into_iter().map(|w| w.unwrap()).sum();
        assert!(written > 0, "the writers wrote before the delete");
        let databases: &[u32] = if per_tenant_database { &[0, 6, 7] } else { &[0] };
        for index in databases {
            let mut connection =
                redis::Client::open(format!("redis://{REDIS_ADDR}/{index}")).unwrap().get_multiplexed_async_connection().await.unwrap();
            let left: Vec<String> = connection.keys(format!("{}*", env.prefix)).await.unwrap();
            assert!(left.is_empty(), "per_tenant_database = {per_tenant_database}: {} keys left in database {index}", left.len());
        }
    }
}

#[tokio::test]
async fn concurrent_creates_each_get_a_redis_database_or_the_clear_refusal() {
    if !service_available("redis", REDIS_ADDR) {
        return;
    }
    let Some(env) = TestEnv::new(Backend::Sqlite) else { return };
    let mut config = redis_config(&env);
    config.redis.per_tenant_database = true;
    // Six databases, 8 to 13, that no other test uses.
    config.redis.database_offset = 8;
    config.redis.databases = 14;
    let tenancy = Arc::new(Tenancy::builder(config).open().await.unwrap());
    let creates: Vec<_> = (0..10)
        .map(|i| {
            let tenancy = tenancy.clone();
            tokio::spawn(async move { tenancy.create_tenant(&TenantRequest::new(TenantName::parse(&format!("T{i}")).unwrap()), &()).await })
        })
        .collect();
    let results: Vec<_> = tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(creates)).await.unwrap();
    let (mut created, mut refused) = (Vec::new(), 0);
    for result in results {
        match result.unwrap() {
            Ok(tenant) => created.push(tenant),
            Err(err) => {
                let mut chain = err.to_string();
                let mut source = std::error::Error::source(&err);
                while let Some(cause) = source {
                    chain.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                assert!(chain.contains("every Redis database for tenants is taken (6 of them, indexes 8 to 13)"), "{chain}");
                refused += 1;
            }
        }
    }
    assert_eq!((created.len(), refused), (6, 4));
    let mut indexes = Vec::new();
    for tenant in &created {
        indexes.push(tenancy.registry().assigned_redis_database(&tenant.id).await.unwrap().unwrap());
    }
    indexes.sort();
    assert_eq!(indexes, vec![8, 9, 10, 11, 12, 13], "each tenant has its own database");
    for tenant in &created {
        tenancy.delete_tenant(tenant, DeleteOptions::default()).await.unwrap();
    }
}

#[tokio::test]
async fn a_refused_delete_touches_nothing() {
    if !service_available("redis", REDIS_ADDR) {
        return;
    }
    let Some((env, tenancy, tenants)) = world(Backend::Sqlite, CacheStoreKind::Redis, 1).await else { return };
    let cache = cache_of(&tenancy, &tenants[0]).await;
    cache.put("kept", &1, None).await.unwrap();
    // A registry row edited by hand to name a database that is not this tenant's.
    use sea_orm::ConnectionTrait;
    let registry = tenancy.registry().connection();
    let sql = format!("UPDATE tenants SET database = 'tenant_someone_else' WHERE id = '{}'", tenants[0].id);
    registry.execute_unprepared(&sql).await.unwrap();
    let edited = tenancy.registry().require(&tenants[0].id).await.unwrap();
    let refused = tenancy.delete_tenant(&edited, DeleteOptions::default()).await.unwrap_err();
    assert!(matches!(refused, tenancy_core::provisioning::DeleteError::NotATenantDatabase { .. }), "{refused}");
    assert_eq!(cache.get::<i32>("kept").await.unwrap(), Some(1), "the refusal came before any flush");
    assert!(tenancy.run(&edited, |_| async {}).await.is_ok(), "and the tenant can still be entered");
    drop_redis_keys(&env.prefix).await;
}
