//! Tracking tables in sea-orm-migration's format: one row (`version`, `applied_at` in Unix seconds)
//! per applied migration.

use std::collections::HashMap;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Schema};
use sea_orm_migration::SchemaManager;
use sea_orm_migration::seaql_migrations;

/// Applied migrations of one tracking table: version → applied at (Unix seconds). A missing table
/// means nothing is applied; reading never creates it.
pub async fn applied(db: &DatabaseConnection, table: &str) -> Result<HashMap<String, i64>, DbErr> {
    let select = Query::select().columns([Alias::new("version"), Alias::new("applied_at")]).from(Alias::new(table)).to_owned();
    match db.query_all(&select).await {
        Ok(rows) => rows.iter().map(|row| Ok((row.try_get::<String>("", "version")?, row.try_get::<i64>("", "applied_at")?))).collect(),
        // The common case of a new database, checked only after the query failed, so the usual
        // path costs one query.
        Err(err) => match SchemaManager::new(db).has_table(table).await {
            Ok(false) => Ok(HashMap::new()),
            _ => Err(err),
        },
    }
}

/// Creates the tracking table if it is missing.
pub async fn install(db: &impl ConnectionTrait, table: &str) -> Result<(), DbErr> {
    let mut create = Schema::new(db.get_database_backend()).create_table_from_entity(seaql_migrations::Entity);
    create.table(Alias::new(table)).if_not_exists();
    db.execute(&create).await.map(drop)
}

/// Records `version` as applied now.
pub async fn record(db: &impl ConnectionTrait, table: &str, version: &str) -> Result<(), DbErr> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let insert = Query::insert()
        .into_table(Alias::new(table))
        .columns([Alias::new("version"), Alias::new("applied_at")])
        .values_panic([version.into(), now.into()])
        .to_owned();
    db.execute(&insert).await.map(drop)
}

/// Forgets `version`.
pub async fn forget(db: &impl ConnectionTrait, table: &str, version: &str) -> Result<(), DbErr> {
    let delete = Query::delete().from_table(Alias::new(table)).and_where(Expr::col(Alias::new("version")).eq(version)).to_owned();
    db.execute(&delete).await.map(drop)
}
