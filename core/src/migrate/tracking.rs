//! Tracking tables in sea-orm-migration's format: one row (`version`, `applied_at` in Unix seconds)
//! per applied migration.

use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SelectStatement, UnionType};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Schema, Statement, TransactionTrait, Value};
use sea_orm_migration::seaql_migrations;

/// Applied migrations of each tracking table in `tables`: version → applied at (Unix seconds). A
/// missing table means nothing is applied; reading never creates one.
///
/// Checking a tenant that is up to date is mostly the cost of its connection, so the usual case is
/// one query ([`applied_in_one_query`]). Only if that fails (a table is missing) is the catalog
/// asked first, in a transaction that keeps the queries on one connection.
pub async fn applied(db: &DatabaseConnection, tables: &[String]) -> Result<Vec<HashMap<String, i64>>, DbErr> {
    if let Ok(all) = applied_in_one_query(db, tables).await {
        return Ok(all);
    }
    let txn = db.begin().await?;
    let all = applied_checking_catalog(&txn, tables).await?;
    txn.commit().await?;
    Ok(all)
}

/// [`applied`] in one query over every table at once (`UNION ALL`), which fails if one is missing.
pub async fn applied_in_one_query(db: &impl ConnectionTrait, tables: &[String]) -> Result<Vec<HashMap<String, i64>>, DbErr> {
    let indexed: Vec<(usize, &str)> = tables.iter().map(String::as_str).enumerate().collect();
    read_versions(db, &indexed, tables.len()).await
}

/// [`applied`], asking the catalog which tables exist first: safe inside a transaction, where a
/// failed query would abort it on PostgreSQL.
pub async fn applied_checking_catalog(db: &impl ConnectionTrait, tables: &[String]) -> Result<Vec<HashMap<String, i64>>, DbErr> {
    let existing = existing_tables(db, tables).await?;
    let indexed: Vec<(usize, &str)> = tables.iter().map(String::as_str).enumerate().filter(|(_, t)| existing.contains(*t)).collect();
    read_versions(db, &indexed, tables.len()).await
}

/// The rows of the tables in `indexed` (index into the result, table), in one query.
async fn read_versions(db: &impl ConnectionTrait, indexed: &[(usize, &str)], count: usize) -> Result<Vec<HashMap<String, i64>>, DbErr> {
    let mut all = vec![HashMap::new(); count];
    let union = indexed.iter().map(|(index, table)| select_versions(*index, table)).reduce(|mut all, next| {
        all.union(UnionType::All, next);
        all
    });
    let Some(union) = union else { return Ok(all) };
    for row in db.query_all(&union).await? {
        let index: i32 = row.try_get("", "migrator")?;
        all[index as usize].insert(row.try_get::<String>("", "version")?, row.try_get::<i64>("", "applied_at")?);
    }
    Ok(all)
}

/// `SELECT index AS migrator, version, applied_at FROM table`.
fn select_versions(index: usize, table: &str) -> SelectStatement {
    Query::select()
        .expr_as(Expr::val(index as i32), Alias::new("migrator"))
        .columns([Alias::new("version"), Alias::new("applied_at")])
        .from(Alias::new(table))
        .to_owned()
}

/// Which of `tables` exist in the current database (or schema), asked of the system catalog directly:
/// on a new PostgreSQL connection the `information_schema` views cost milliseconds to warm up.
async fn existing_tables(db: &impl ConnectionTrait, tables: &[String]) -> Result<HashSet<String>, DbErr> {
    let backend = db.get_database_backend();
    let placeholders: Vec<String> =
        (1..=tables.len()).map(|i| if backend == DbBackend::Postgres { format!("${i}") } else { "?".to_owned() }).collect();
    let list = placeholders.join(", ");
    let sql = match backend {
        DbBackend::Postgres => {
            format!(
                "SELECT relname::text FROM pg_catalog.pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r' AND relname IN ({list})"
            )
        }
        DbBackend::Sqlite => format!("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({list})"),
        _ => format!(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name IN ({list})"
        ),
    };
    let values = tables.iter().map(|t| Value::from(t.as_str()));
    let rows = db.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
    rows.iter().map(|row| row.try_get_by_index::<String>(0)).collect()
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

/// Whether `version` is recorded as applied.
pub async fn is_recorded(db: &impl ConnectionTrait, table: &str, version: &str) -> Result<bool, DbErr> {
    let select =
        Query::select().expr(Expr::val(1)).from(Alias::new(table)).and_where(Expr::col(Alias::new("version")).eq(version)).to_owned();
    Ok(db.query_one(&select).await?.is_some())
}

/// Forgets `version`.
pub async fn forget(db: &impl ConnectionTrait, table: &str, version: &str) -> Result<(), DbErr> {
    let delete = Query::delete().from_table(Alias::new(table)).and_where(Expr::col(Alias::new("version")).eq(version)).to_owned();
    db.execute(&delete).await.map(drop)
}
