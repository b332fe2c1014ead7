//! `cache`: get/put operations per second on each cache store, a raw Redis client doing the same
//! with a hand-made prefix, and the cost of entering a warm tenant's context.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use sea_orm::ConnectionTrait;
use tenancy_core::cache::Cache;
use tenancy_core::config::CacheStoreKind;
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Tenancy, TenantName};
use tenancy_tests::{Backend, REDIS_ADDR, TestEnv, service_available};

pub async fn run(operations: usize) -> anyhow::Result<()> {
    println!("cache: {operations} puts then {operations} gets, one after another, per store");
    for store in [CacheStoreKind::Memory, CacheStoreKind::Database, CacheStoreKind::Redis] {
        if store == CacheStoreKind::Redis && !service_available("redis", REDIS_ADDR) {
            continue;
        }
        let Some(env) = TestEnv::new(Backend::Sqlite) else { continue };
        let mut config = env.config();
        config.cache.store = store;
        config.redis.prefix = format!("{}tenant_{{tenant_id}}_", env.prefix);
        let tenancy = Tenancy::builder(config).open().await?;
        let tenant = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("Bench")?), &()).await?;
        let (put, get) = tenancy.run(&tenant, |ctx| async move { measure(ctx.cache().expect("installed"), operations).await }).await??;
        println!("  {:<10} put {:>9.0}/s   get {:>9.0}/s", format!("{store:?}").to_lowercase(), put, get);
        if store == CacheStoreKind::Redis {
            let (raw_put, raw_get) = raw_redis(&format!("{}raw_", env.prefix), operations).await?;
            println!(
                "  {:<10} put {:>9.0}/s   get {:>9.0}/s   (tenant-scoped Redis at {:.0}% / {:.0}% of it)",
                "raw redis",
                raw_put,
                raw_get,
                put / raw_put * 100.0,
                get / raw_get * 100.0
            );
            let client = redis::Client::open(format!("redis://{REDIS_ADDR}"))?;
            let mut connection = client.get_multiplexed_async_connection().await?;
            let keys: Vec<String> = connection.keys(format!("{}*", env.prefix)).await?;
            if !keys.is_empty() {
                let _: () = connection.del(keys).await?;
            }
        }
        if store == CacheStoreKind::Memory {
            warm_context(&tenancy, &tenant, "sqlite").await?;
        }
        tenancy.close().await;
    }
    warm_context_by_roles().await
}

/// A warm PostgreSQL tenant's context, entered and with one query in it, with tenants sharing the
/// server's user and with a role each: the role must cost nothing once the pool is open.
async fn warm_context_by_roles() -> anyhow::Result<()> {
    for roles in ["shared", "per_tenant"] {
        let Some(env) = TestEnv::new(Backend::Postgres) else { return Ok(()) };
        if roles == "shared" {
            env.use_shared_roles();
        }
        env.create_central_database().await;
        let tenancy = Tenancy::builder(env.config()).open().await?;
        let tenant = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("Bench")?), &()).await?;
        warm_context(&tenancy, &tenant, &format!("postgres, {roles} roles")).await?;
        let mut times: Vec<Duration> = Vec::with_capacity(5_000);
        for _ in 0..5_000 {
            let started = Instant::now();
            tenancy.run(&tenant, |ctx| async move { ctx.db().execute_unprepared("SELECT 1").await }).await??;
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "  postgres, {roles} roles: a warm context and one query: median {:.1} µs, p99 {:.1} µs (5,000 runs)",
            times[2_500].as_secs_f64() * 1e6,
            times[4_950].as_secs_f64() * 1e6
        );
        tenancy.close().await;
    }
    Ok(())
}

async fn measure(cache: &Cache, operations: usize) -> Result<(f64, f64), tenancy_core::cache::CacheError> {
    let started = Instant::now();
    for i in 0..operations {
        cache.put(&format!("key{i}"), &i, None).await?;
    }
    let put = operations as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for i in 0..operations {
        let _: Option<usize> = cache.get(&format!("key{i}")).await?;
    }
    Ok((put, operations as f64 / started.elapsed().as_secs_f64()))
}

/// The same operations through a plain multiplexed connection, the prefix joined by hand.
async fn raw_redis(prefix: &str, operations: usize) -> anyhow::Result<(f64, f64)> {
    let client = redis::Client::open(format!("redis://{REDIS_ADDR}"))?;
    let mut connection = client.get_connection_manager().await?;
    let started = Instant::now();
    for i in 0..operations {
        let _: () = connection.set(format!("{prefix}key{i}"), serde_json::to_vec(&i)?).await?;
    }
    let put = operations as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for i in 0..operations {
        let value: Option<Vec<u8>> = connection.get(format!("{prefix}key{i}")).await?;
        let _: Option<usize> = value.map(|v| serde_json::from_slice(&v)).transpose()?;
    }
    Ok((put, operations as f64 / started.elapsed().as_secs_f64()))
}

/// `Tenancy::run` on a tenant whose pool is open: median and 99th percentile.
async fn warm_context(tenancy: &Tenancy, tenant: &tenancy_core::Tenant, what: &str) -> anyhow::Result<()> {
    tenancy.run(tenant, |_| async {}).await?;
    let mut times: Vec<Duration> = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let started = Instant::now();
        tenancy.run(tenant, |_| async {}).await?;
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "  entering a warm tenant's context ({what}): median {:.1} µs, p99 {:.1} µs (10,000 runs)",
        times[5_000].as_secs_f64() * 1e6,
        times[9_900].as_secs_f64() * 1e6
    );
    Ok(())
}
