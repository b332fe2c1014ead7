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
/// one query: every table at once with `UNION ALL`. Only if that fails (a table is missing) are the
/// tables looked up one by one, in a transaction that keeps the queries on one connection.
pub async fn applied(db: &DatabaseConnection, tables: &[String]) -> Result<Vec<HashMap<String, i64>>, DbErr> {
    let Some(union) = tables.iter().enumerate().map(|(index, table)| select_versions(index, table)).reduce(|mut all, next| {
        all.union(UnionType::All, next);
        all
    }) else {
        return Ok(Vec::new());
    };
    if let Ok(rows) = db.query_all(&union.to_owned()).await {
        let mut all = vec![HashMap::new(); tables.len()];
        for row in rows {
            let index: i32 = row.try_get("", "migrator")?;
            all[index as usize].insert(row.try_get::<String>("", "version")?, row.try_get::<i64>("", "applied_at")?);
        }
        return Ok(all);
    }
    let txn = db.begin().await?;
    // Checked first: on PostgreSQL a failed SELECT would abort the transaction.
    let existing = existing_tables(&txn, tables).await?;
    let mut all = Vec::with_capacity(tables.len());
    for (index, table) in tables.iter().enumerate() {
        let mut versions = HashMap::new();
        if existing.contains(table) {
            for row in txn.query_all(&select_versions(index, table)).await? {
                versions.insert(row.try_get::<String>("", "version")?, row.try_get::<i64>("", "applied_at")?);
            }
        }
        all.push(versions);
    }
    txn.commit().await?;
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
