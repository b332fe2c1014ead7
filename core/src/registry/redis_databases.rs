//! Per-tenant Redis database indexes, assigned once and remembered in the registry
//! (`tenant_redis_databases`), for `redis.per_tenant_database`.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, SqlErr};

use super::{Registry, RegistryError};
use crate::Tenant;

const TABLE: &str = "tenant_redis_databases";

impl Registry {
    /// The Redis database of `tenant`: the one it was given, or the lowest free index in
    /// `first..databases`, recorded now.
    ///
    /// # Errors
    /// [`RegistryError::RedisDatabasesExhausted`] when every index is taken.
    pub async fn redis_database_of(&self, tenant: &Tenant, first: u32, databases: u32) -> Result<u32, RegistryError> {
        let db = self.connection();
        // Two attempts: a concurrent assignment of the same index loses on the unique index and retries.
        for _ in 0..2 {
            let rows = db
                .query_all(&Query::select().columns([Alias::new("tenant_id"), Alias::new("db_index")]).from(Alias::new(TABLE)).to_owned())
                .await
                .map_err(RegistryError::query("read Redis database assignments"))?;
            let mut used = Vec::with_capacity(rows.len());
            for row in rows {
                let owner: String = row.try_get("", "tenant_id").map_err(RegistryError::query("read Redis database assignments"))?;
                let index: i32 = row.try_get("", "db_index").map_err(RegistryError::query("read Redis database assignments"))?;
                if owner == tenant.id.to_string() {
                    return Ok(index as u32);
                }
                used.push(index as u32);
            }
            let Some(free) = (first..databases).find(|index| !used.contains(index)) else {
                return Err(RegistryError::RedisDatabasesExhausted {
                    tenant: tenant.to_string(),
                    available: databases - first,
                    first,
                    last: databases - 1,
                });
            };
            let insert = Query::insert()
                .into_table(Alias::new(TABLE))
                .columns([Alias::new("tenant_id"), Alias::new("db_index")])
                .values_panic([tenant.id.to_string().into(), (free as i32).into()])
                .to_owned();
            match db.execute(&insert).await {
                Ok(_) => return Ok(free),
                Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => continue,
                Err(err) => return Err(RegistryError::query("record a Redis database assignment")(err)),
            }
        }
        Err(RegistryError::Query {
            action: "assign a Redis database".into(),
            source: crate::database::DbMessage("another process kept taking the free index".into()),
        })
    }
}

/// `DELETE` of `tenant`'s assignment, run when the tenant is deleted.
pub(super) fn release(tenant: &crate::TenantId) -> sea_orm::sea_query::DeleteStatement {
    Query::delete().from_table(Alias::new(TABLE)).and_where(Expr::col(Alias::new("tenant_id")).eq(tenant.to_string())).to_owned()
}
