//! PostgreSQL dialects: a database per tenant ([`PostgresDatabase`]) or a schema per tenant in the
//! one database the server URL names ([`PostgresSchema`]).

use sea_orm::ConnectOptions;

use super::manager::PoolSettings;
use super::server::{Dialect, ServerManager};
use super::{ConnectionTarget, DatabaseName, Driver, ServerUrl};

/// A database per tenant on one PostgreSQL server.
pub type PostgresDatabaseManager = ServerManager<PostgresDatabase>;
/// A schema per tenant in one PostgreSQL database.
pub type PostgresSchemaManager = ServerManager<PostgresSchema>;

/// PostgreSQL's SQLSTATEs for "database already exists" and "schema already exists".
const DUPLICATE_DATABASE: &str = "42P04";
const DUPLICATE_SCHEMA: &str = "42P06";
/// SQLSTATE `invalid_catalog_name`: no database of that name.
const UNDEFINED_DATABASE: &str = "3D000";
/// SQLSTATE `invalid_schema_name`: no schema of that name.
const UNDEFINED_SCHEMA: &str = "3F000";

/// See [`PostgresDatabaseManager`].
#[derive(Debug)]
pub struct PostgresDatabase;

impl Dialect for PostgresDatabase {
    const DRIVER: Driver = Driver::Postgres;
    const EXISTS_SQL: &'static str = "SELECT 1 FROM pg_database WHERE datname = $1";
    const TEMPLATES: bool = true;
    const NAMES_SQL: Option<&'static str> = Some("SELECT datname::text FROM pg_database");
    const BYTES_SQL: &'static str =
        "SELECT COALESCE(SUM(pg_database_size(oid)), 0)::bigint FROM pg_database WHERE datname = ANY(string_to_array($1, ','))";
    const BUSY_SQL: &'static str = "SELECT count(*)::bigint FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() \
         AND backend_type = 'client backend' AND state IS DISTINCT FROM 'idle'";

    fn rename_sql(from: &DatabaseName, to: &DatabaseName) -> Option<String> {
        Some(format!("ALTER DATABASE {} RENAME TO {}", from.pg_quoted(), to.pg_quoted()))
    }

    fn is_missing(message: &str) -> bool {
        message.contains(UNDEFINED_DATABASE) || message.contains("does not exist")
    }

    fn create_sql(database: &DatabaseName) -> String {
        format!("CREATE DATABASE {}", database.pg_quoted())
    }

    fn drop_sql(database: &DatabaseName) -> String {
        // FORCE ends sessions still connected (a pool of another process), which would otherwise block the drop.
        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database.pg_quoted())
    }

    fn is_already_exists(message: &str) -> bool {
        message.contains(DUPLICATE_DATABASE) || message.contains("already exists")
    }

    fn location(server: &ServerUrl, database: &DatabaseName) -> String {
        format!("postgres://{}/{database}", server.host_port())
    }

    fn connect_options(settings: &PoolSettings, server: &ServerUrl, database: &DatabaseName) -> ConnectOptions {
        settings.tenant_options(server.connection_url_for(database.as_str()))
    }
}

/// See [`PostgresSchemaManager`].
#[derive(Debug)]
pub struct PostgresSchema;

impl Dialect for PostgresSchema {
    const DRIVER: Driver = Driver::Postgres;
    const EXISTS_SQL: &'static str = "SELECT 1 FROM pg_namespace WHERE nspname = $1";
    const NAMES_SQL: Option<&'static str> = Some("SELECT nspname::text FROM pg_namespace");
    const BYTES_SQL: &'static str = "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname = ANY(string_to_array($1, ','))";
    // Sessions share the database, and a session's search_path is not visible: a session is busy
    // in the schema while it holds a lock on one of its relations (from its first statement on a
    // table to the end of its transaction).
    const BUSY_SQL: &'static str = "SELECT count(DISTINCT l.pid)::bigint FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND l.pid <> pg_backend_pid() AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";

    fn rename_sql(from: &DatabaseName, to: &DatabaseName) -> Option<String> {
        Some(format!("ALTER SCHEMA {} RENAME TO {}", from.pg_quoted(), to.pg_quoted()))
    }

    fn is_missing(message: &str) -> bool {
        message.contains(UNDEFINED_SCHEMA) || message.contains("does not exist")
    }

    fn create_sql(database: &DatabaseName) -> String {
        format!("CREATE SCHEMA {}", database.pg_quoted())
    }

    fn drop_sql(database: &DatabaseName) -> String {
        format!("DROP SCHEMA IF EXISTS {} CASCADE", database.pg_quoted())
    }

    fn is_already_exists(message: &str) -> bool {
        message.contains(DUPLICATE_SCHEMA) || message.contains("already exists")
    }

    fn location(server: &ServerUrl, database: &DatabaseName) -> String {
        format!("postgres://{}/{} (schema {database})", server.host_port(), server.database())
    }

    fn connect_options(settings: &PoolSettings, server: &ServerUrl, database: &DatabaseName) -> ConnectOptions {
        let mut options = settings.tenant_options(server.connection_url());
        // Only the tenant's schema is on the path, so unqualified names never reach another schema
        // (nor the registry's tables, when it shares the database). Given as a startup option it
        // is the session's default, which `RESET ALL` and `DISCARD ALL` return to; a plain
        // `SET search_path` after connecting would be undone by them, falling back to `public`.
        let schema = database.as_str().to_owned();
        options.map_sqlx_postgres_opts(move |opts| opts.options([("search_path", schema.as_str())]));
        // Whatever tenant code `SET` on a connection (its search path included) is reset before
        // the connection goes back to the pool, so the next lease starts from the defaults.
        options.map_sqlx_postgres_pool_opts(|pool| pool.after_release(|connection, _| Box::pin(reset_session(connection))));
        options
    }

    fn connection_target(server: &ServerUrl, database: &DatabaseName) -> ConnectionTarget {
        ConnectionTarget { url: server.connection_url(), schema: Some(database.as_str().to_owned()) }
    }
}

/// Puts a connection back as it was opened: `RESET ALL` returns every setting to the session's
/// defaults (the startup `search_path` among them). In the same round trip it counts the prepared
/// statements the server still has: fewer than the driver has cached means tenant code ran
/// `DISCARD ALL` (or `DEALLOCATE ALL`), and the cache is cleared so that no statement is executed
/// by a name the server forgot. Keeps the connection (`true`) unless the reset fails.
async fn reset_session(connection: &mut sea_orm::sqlx::PgConnection) -> Result<bool, sea_orm::sqlx::Error> {
    use sea_orm::sqlx::{Connection, Row};
    let row = sea_orm::sqlx::raw_sql("RESET ALL; SELECT count(*) FROM pg_prepared_statements").fetch_one(&mut *connection).await?;
    let on_server: i64 = row.try_get(0)?;
    if usize::try_from(on_server).unwrap_or(0) < connection.cached_statements_size() {
        connection.clear_cached_statements().await?;
    }
    Ok(true)
}
