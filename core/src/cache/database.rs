//! [`DatabaseCache`]: entries in the tenant's own database, table `tenancy_cache` (created by core's
//! tenant migrations). Isolation comes from the database itself.

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use super::{CacheError, CacheStore, incremented};

const TABLE: &str = "tenancy_cache";

/// Entries in one database's `tenancy_cache` table.
pub struct DatabaseCache {
    db: DatabaseConnection,
}

impl DatabaseCache {
    /// The cache of the database `db` is connected to (the tenant's, inside its context).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The value and expiry (Unix milliseconds) of `key`, unless missing or expired.
    async fn entry(&self, key: &str) -> Result<Option<(Vec<u8>, Option<i64>)>, CacheError> {
        let select = Query::select()
            .columns([Alias::new("value"), Alias::new("expires_at")])
            .from(Alias::new(TABLE))
            .and_where(Expr::col(Alias::new("key")).eq(key))
            .to_owned();
        let Some(row) = self.db.query_one(&select).await.map_err(failed("read", key))? else { return Ok(None) };
        let expires_at: Option<i64> = row.try_get("", "expires_at").map_err(failed("read", key))?;
        if expires_at.is_some_and(|at| at <= now_ms()) {
            // Expired: never returned, and cleaned up on the way.
            self.forget(key).await?;
            return Ok(None);
        }
        Ok(Some((row.try_get("", "value").map_err(failed("read", key))?, expires_at)))
    }

    async fn write(&self, key: &str, value: Vec<u8>, expires_at: Option<i64>) -> Result<(), CacheError> {
        let upsert = Query::insert()
            .into_table(Alias::new(TABLE))
            .columns([Alias::new("key"), Alias::new("value"), Alias::new("expires_at")])
            .values_panic([key.into(), value.into(), expires_at.into()])
            .on_conflict(OnConflict::column(Alias::new("key")).update_columns([Alias::new("value"), Alias::new("expires_at")]).to_owned())
            .to_owned();
        self.db.execute(&upsert).await.map(drop).map_err(failed("write", key))
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn failed(action: &str, key: &str) -> impl FnOnce(sea_orm::DbErr) -> CacheError {
    let action = format!("{action} `{key}`");
    move |err| CacheError::store("database", action)(err.into())
}

#[async_trait]
impl CacheStore for DatabaseCache {
    fn kind(&self) -> &'static str {
        "database"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self.entry(key).await?.map(|(value, _)| value))
    }

    async fn put(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), CacheError> {
        let expires_at = ttl.map(|ttl| now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)));
        self.write(key, value, expires_at).await
    }

    async fn forget(&self, key: &str) -> Result<bool, CacheError> {
        let delete = Query::delete().from_table(Alias::new(TABLE)).and_where(Expr::col(Alias::new("key")).eq(key)).to_owned();
        Ok(self.db.execute(&delete).await.map_err(failed("delete", key))?.rows_affected() > 0)
    }

    async fn increment(&self, key: &str, by: i64) -> Result<i64, CacheError> {
        // Callers hold the key's lock (see `Cache::increment`), so read-then-write is safe in-process.
        // The entry keeps its expiry: counting does not make an entry live longer (or for ever).
        let entry = self.entry(key).await?;
        let next = incremented(key, entry.as_ref().map(|(value, _)| value.as_slice()), by)?;
        self.write(key, serde_json::to_vec(&next).expect("an integer serialises"), entry.and_then(|(_, expires_at)| expires_at)).await?;
        Ok(next)
    }

    async fn stats(&self) -> Result<super::CacheStats, CacheError> {
        let backend = self.db.get_database_backend();
        // LENGTH of a blob/bytea is its size in bytes on every backend; the casts give one integer type.
        let integer = if backend == sea_orm::DbBackend::MySql { "SIGNED" } else { "BIGINT" };
        let sql = format!("SELECT CAST(COUNT(*) AS {integer}), CAST(COALESCE(SUM(LENGTH(value)), 0) AS {integer}) FROM {TABLE}");
        let failed = |e: sea_orm::DbErr| CacheError::store("database", "measure")(e.into());
        let row = self.db.query_one_raw(sea_orm::Statement::from_string(backend, sql)).await.map_err(failed)?;
        let (entries, bytes): (i64, i64) = match row {
            Some(row) => (row.try_get_by_index(0).map_err(failed)?, row.try_get_by_index(1).map_err(failed)?),
            None => (0, 0),
        };
        Ok(super::CacheStats { entries: Ord::max(entries, 0) as u64, bytes: Ord::max(bytes, 0) as u64 })
    }

    async fn purge_expired(&self) -> Result<u64, CacheError> {
        let delete = Query::delete().from_table(Alias::new(TABLE)).and_where(Expr::col(Alias::new("expires_at")).lte(now_ms())).to_owned();
        let result = self.db.execute(&delete).await.map_err(|e| CacheError::store("database", "purge expired entries")(e.into()))?;
        Ok(result.rows_affected())
    }

    async fn flush(&self) -> Result<u64, CacheError> {
        let delete = Query::delete().from_table(Alias::new(TABLE)).to_owned();
        Ok(self.db.execute(&delete).await.map_err(|e| CacheError::store("database", "flush")(e.into()))?.rows_affected())
    }
}
