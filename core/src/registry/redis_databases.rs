//! Per-tenant Redis database indexes, assigned once and remembered in the registry
//! (`tenant_redis_databases`), for `redis.per_tenant_database`.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, SqlErr};

use super::{Registry, RegistryError};
use crate::Tenant;

const TABLE: &str = "tenant_redis_databases";

impl Registry {
    /// The Redis database of `tenant`: the one it was given, or a free index in
    /// `first..databases`, recorded now. Concurrent callers each get their own index: one that
    /// loses a race for an index tries the next free one, so only running out is an error.
    ///
    /// # Errors
    /// [`RegistryError::RedisDatabasesExhausted`] when every index is taken.
    pub async fn redis_database_of(&self, tenant: &Tenant, first: u32, databases: u32) -> Result<u32, RegistryError> {
        loop {
            let assignments = self.redis_database_assignments().await?;
            if let Some((_, index)) = assignments.iter().find(|(owner, _)| owner == &tenant.id.to_string()) {
                return Ok(*index);
            }
            let free: Vec<u32> = (first..databases).filter(|index| !assignments.iter().any(|(_, used)| used == index)).collect();
            if free.is_empty() {
                return Err(RegistryError::RedisDatabasesExhausted {
                    tenant: tenant.to_string(),
                    available: databases.saturating_sub(first),
                    first,
                    last: databases.saturating_sub(1),
                });
            }
            for index in free {
                let insert = Query::insert()
                    .into_table(Alias::new(TABLE))
                    .columns([Alias::new("tenant_id"), Alias::new("db_index")])
                    .values_panic([tenant.id.to_string().into(), (index as i32).into()])
                    .to_owned();
                match self.connection().execute(&insert).await {
                    Ok(_) => return Ok(index),
                    // Taken meanwhile: by another tenant (try the next index) or for this one
                    // (read again, and find it).
                    Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => continue,
                    Err(err) => return Err(RegistryError::query("record a Redis database assignment")(err)),
                }
            }
            // Every index seen free was taken meanwhile; each lost race means another tenant got
            // one, so this ends: with an index, or with none left.
        }
    }

    /// The Redis database `tenant` was given, if any; never assigns one.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn assigned_redis_database(&self, tenant: &crate::TenantId) -> Result<Option<u32>, RegistryError> {
        Ok(self.redis_database_assignments().await?.into_iter().find(|(owner, _)| owner == &tenant.to_string()).map(|(_, index)| index))
    }

    async fn redis_database_assignments(&self) -> Result<Vec<(String, u32)>, RegistryError> {
        let read = || RegistryError::query("read Redis database assignments");
        let select = Query::select().columns([Alias::new("tenant_id"), Alias::new("db_index")]).from(Alias::new(TABLE)).to_owned();
        let rows = self.connection().query_all(&select).await.map_err(read())?;
        rows.iter()
            .map(|row| {
                let owner: String = row.try_get("", "tenant_id").map_err(read())?;
                let index: i32 = row.try_get("", "db_index").map_err(read())?;
                Ok((owner, index as u32))
            })
            .collect()
    }
}

/// `DELETE` of `tenant`'s assignment, run when the tenant is deleted.
pub(super) fn release(tenant: &crate::TenantId) -> sea_orm::sea_query::DeleteStatement {
    Query::delete().from_table(Alias::new(TABLE)).and_where(Expr::col(Alias::new("tenant_id")).eq(tenant.to_string())).to_owned()
}
