//! [`CacheBootstrapper`]: gives every tenant context its [`Cache`] on the configured store, and
//! the central scope its own.

use std::sync::Arc;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use sea_orm::DatabaseConnection;
use tokio::sync::OnceCell;

use super::{Cache, CacheError, DatabaseCache, KeyLocks, MemoryStore, RedisCache};
use crate::config::{CacheStoreKind, Config, RedisConfig};
use crate::{Bootstrapper, BoxError, ContextBuilder, TenantId};

/// Builds the caches of the configured store.
pub struct CacheBootstrapper {
    kind: CacheStoreKind,
    memory: MemoryStore,
    redis: RedisConfig,
    connection: OnceCell<ConnectionManager>,
    locks: Arc<KeyLocks>,
}

/// Whose cache.
#[derive(Debug, Clone, Copy)]
pub enum CacheScope<'a> {
    /// A tenant's.
    Tenant(&'a TenantId),
    /// Code outside any tenant.
    Central,
}

impl CacheBootstrapper {
    /// The bootstrapper for `config`'s `[cache]` and `[redis]`. Connects to Redis on first use.
    pub fn new(config: &Config) -> Self {
        Self {
            kind: config.cache.store,
            memory: MemoryStore::new(config.cache.memory_capacity),
            redis: config.redis.clone(),
            connection: OnceCell::new(),
            locks: Arc::default(),
        }
    }

    /// The shared Redis connection (multiplexed; it reconnects after the server restarts).
    async fn redis(&self) -> Result<ConnectionManager, CacheError> {
        let url = self.redis.url.clone();
        self.connection
            .get_or_try_init(|| async move {
                let client = redis::Client::open(url.as_str()).map_err(|e| CacheError::store("redis", "parse `redis.url`")(Box::new(e)))?;
                client
                    .get_connection_manager()
                    .await
                    .map_err(|e| CacheError::store("redis", format!("connect to `{}`", redis_location(&url)))(Box::new(e)))
            })
            .await
            .cloned()
    }

    /// The cache of `scope`; `db` is the database a `database` store keeps it in (the tenant's, or
    /// the registry's for the central scope).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn cache_for(&self, scope: CacheScope<'_>, db: &DatabaseConnection) -> Result<Cache, CacheError> {
        let name = match scope {
            CacheScope::Tenant(id) => id.to_string(),
            CacheScope::Central => "central".to_owned(),
        };
        let store: Arc<dyn super::CacheStore> = match self.kind {
            CacheStoreKind::Database => Arc::new(DatabaseCache::new(db.clone())),
            CacheStoreKind::Memory => Arc::new(self.memory.scope(&name)),
            CacheStoreKind::Redis => {
                let prefix = match scope {
                    CacheScope::Tenant(id) => self.redis.prefix_for(id),
                    CacheScope::Central => self.redis.central_prefix.clone(),
                };
                Arc::new(RedisCache::new(self.redis().await?, prefix))
            }
        };
        Ok(Cache::new(store, &name, self.locks.clone()))
    }

    /// Whether the store lives outside tenant databases, so deleting a tenant must flush it.
    pub fn outlives_tenant_databases(&self) -> bool {
        self.kind != CacheStoreKind::Database
    }
}

/// `redis://host:port/db` without credentials, for messages.
fn redis_location(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => {
            format!("{}://{}:{}{}", parsed.scheme(), parsed.host_str().unwrap_or_default(), parsed.port().unwrap_or(6379), parsed.path())
        }
        Err(_) => "redis.url".to_owned(),
    }
}

#[async_trait]
impl Bootstrapper for CacheBootstrapper {
    fn name(&self) -> &str {
        "cache"
    }

    async fn bootstrap(&self, ctx: &mut ContextBuilder) -> Result<(), BoxError> {
        let id = ctx.tenant().id;
        let cache = self.cache_for(CacheScope::Tenant(&id), ctx.db()).await?;
        ctx.insert(cache);
        Ok(())
    }
}
