//! [`TenantSessionStore`]: a tower-sessions `SessionStore` that keeps each tenant's sessions apart.
//!
//! A web framework holds one store for every request; this one looks up the tenant of the request
//! through [`crate::current_context`] (set by `Tenancy::run`) and keeps the session in that tenant's
//! own database (`tenancy_sessions`) or under its Redis prefix. A session id issued under one tenant
//! is therefore simply not found under another, which then starts a fresh, empty session.

use std::sync::Arc;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use tokio::sync::OnceCell;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{Error, Result, SessionStore};

use crate::config::{Config, RedisConfig, SessionStoreKind};
use crate::{TenantContext, current_context};

const TABLE: &str = "tenancy_sessions";

/// The session store of every tenant; see the module documentation.
#[derive(Clone)]
pub struct TenantSessionStore {
    inner: Arc<Inner>,
}

struct Inner {
    kind: SessionStoreKind,
    redis: RedisConfig,
    connection: OnceCell<ConnectionManager>,
}

impl std::fmt::Debug for TenantSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantSessionStore").field("store", &self.inner.kind).finish()
    }
}

impl TenantSessionStore {
    /// The store `config`'s `[session]` asks for.
    pub fn new(config: &Config) -> Self {
        Self { inner: Arc::new(Inner { kind: config.session.store, redis: config.redis.clone(), connection: OnceCell::new() }) }
    }

    async fn redis(&self) -> Result<ConnectionManager> {
        let url = self.inner.redis.url.expose().to_owned();
        self.inner
            .connection
            .get_or_try_init(|| async move {
                let client = redis::Client::open(url.as_str()).map_err(backend)?;
                client.get_connection_manager().await.map_err(backend)
            })
            .await
            .cloned()
    }

    /// Deletes the expired sessions of the tenant whose context this runs in, from its database
    /// (Redis expires its own); returns how many.
    ///
    /// # Errors
    /// Outside a tenant context, or when the database fails.
    pub async fn purge_expired(&self) -> Result<u64> {
        let ctx = context()?;
        if self.inner.kind != SessionStoreKind::Database {
            return Ok(0);
        }
        let delete = Query::delete().from_table(Alias::new(TABLE)).and_where(Expr::col(Alias::new("expires_at")).lte(now())).to_owned();
        Ok(ctx.db().execute(&delete).await.map_err(backend)?.rows_affected())
    }

    fn redis_key(&self, ctx: &TenantContext, id: &Id) -> String {
        format!("{}{id}", self.inner.redis.session_prefix_for(&ctx.tenant().id))
    }
}

fn backend(err: impl std::fmt::Display) -> Error {
    Error::Backend(err.to_string())
}

/// The context of the request, or an error: sessions exist only per tenant.
fn context() -> Result<TenantContext> {
    current_context().ok_or_else(|| Error::Backend("no tenant context: run the request inside Tenancy::run".into()))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[async_trait]
impl SessionStore for TenantSessionStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        // A new id that happens to exist already is replaced, never merged into another session.
        while self.load(&record.id).await?.is_some() {
            record.id = Id::default();
        }
        self.save(record).await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let ctx = context()?;
        if record.expiry_date.unix_timestamp() <= now() {
            // Saving an expired session is ending it.
            return self.delete(&record.id).await;
        }
        let json = serde_json::to_vec(record).map_err(|e| Error::Encode(e.to_string()))?;
        let expires_at = record.expiry_date.unix_timestamp();
        match self.inner.kind {
            SessionStoreKind::Database => {
                let upsert = Query::insert()
                    .into_table(Alias::new(TABLE))
                    .columns([Alias::new("id"), Alias::new("data"), Alias::new("expires_at")])
                    .values_panic([record.id.to_string().into(), json.into(), expires_at.into()])
                    .on_conflict(
                        OnConflict::column(Alias::new("id")).update_columns([Alias::new("data"), Alias::new("expires_at")]).to_owned(),
                    )
                    .to_owned();
                ctx.db().execute(&upsert).await.map(drop).map_err(backend)
            }
            SessionStoreKind::Redis => {
                let mut connection = self.redis().await?;
                let seconds = Ord::max(expires_at - now(), 1) as u64;
                connection.set_ex::<_, _, ()>(self.redis_key(&ctx, &record.id), json, seconds).await.map_err(backend)
            }
        }
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let ctx = context()?;
        let json: Option<Vec<u8>> = match self.inner.kind {
            SessionStoreKind::Database => {
                let select = Query::select()
                    .column(Alias::new("data"))
                    .from(Alias::new(TABLE))
                    .and_where(Expr::col(Alias::new("id")).eq(id.to_string()))
                    .and_where(Expr::col(Alias::new("expires_at")).gt(now()))
                    .to_owned();
                match ctx.db().query_one(&select).await.map_err(backend)? {
                    Some(row) => Some(row.try_get("", "data").map_err(backend)?),
                    None => None,
                }
            }
            SessionStoreKind::Redis => self.redis().await?.get(self.redis_key(&ctx, id)).await.map_err(backend)?,
        };
        let Some(json) = json else { return Ok(None) };
        let record: Record = serde_json::from_slice(&json).map_err(|e| Error::Decode(e.to_string()))?;
        // The stored id must be the asked one, and the record must not have expired since.
        Ok((record.id == *id && record.expiry_date.unix_timestamp() > now()).then_some(record))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        let ctx = context()?;
        match self.inner.kind {
            SessionStoreKind::Database => {
                let delete =
                    Query::delete().from_table(Alias::new(TABLE)).and_where(Expr::col(Alias::new("id")).eq(id.to_string())).to_owned();
                ctx.db().execute(&delete).await.map(drop).map_err(backend)
            }
            SessionStoreKind::Redis => self.redis().await?.del::<_, ()>(self.redis_key(&ctx, id)).await.map_err(backend),
        }
    }
}
