//! [`ServerAdmin`]: the small connection pool PostgreSQL and MySQL managers use for `CREATE` and
//! `DROP`, opened on first use and shared by every operation on that server.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection, Statement, Value};
use tokio::sync::OnceCell;

use super::manager::{PoolSettings, connect, connect_unprobed};
use super::{DatabaseError, DbMessage, ServerUrl};

#[derive(Debug)]
pub(crate) struct ServerAdmin {
    pub url: ServerUrl,
    pub settings: PoolSettings,
    pool: OnceCell<DatabaseConnection>,
    /// When a connection to this server last succeeded.
    reached_at: Mutex<Option<Instant>>,
}

/// How long a successful connection vouches for the server, sparing the next ones the TCP probe.
const REACHABLE_FOR: Duration = Duration::from_secs(10);

impl ServerAdmin {
    pub fn new(url: ServerUrl, settings: PoolSettings) -> Self {
        Self { url, settings, pool: OnceCell::new(), reached_at: Mutex::new(None) }
    }

    /// Opens a pool with `options`; probes the server first unless it answered moments ago.
    pub async fn open(&self, options: ConnectOptions, location: String) -> Result<DatabaseConnection, DatabaseError> {
        let recently = self.reached_at.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|at| at.elapsed() < REACHABLE_FOR);
        let pool = if recently {
            connect_unprobed(options, Some(&self.url), location).await
        } else {
            connect(options, Some(&self.url), location).await
        }?;
        *self.reached_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        Ok(pool)
    }

    /// The administration pool, on the database the server URL names. A failed connect is not
    /// remembered, so the next call tries again.
    pub async fn pool(&self) -> Result<&DatabaseConnection, DatabaseError> {
        self.pool.get_or_try_init(|| self.open(self.settings.admin_options(self.url.connection_url()), self.url.to_string())).await
    }

    /// Runs one statement; `describe` turns a driver error into the right [`DatabaseError`].
    pub async fn execute(&self, sql: &str, describe: impl FnOnce(DbMessage) -> DatabaseError) -> Result<(), DatabaseError> {
        let pool = self.pool().await?;
        pool.execute_unprepared(sql).await.map(drop).map_err(|err| describe(DbMessage::scrubbed(Some(&self.url), &err)))
    }

    /// Whether `sql` with `values` returns at least one row.
    pub async fn any_row(&self, sql: &str, values: Vec<Value>, action: String) -> Result<bool, DatabaseError> {
        let pool = self.pool().await?;
        let statement = Statement::from_sql_and_values(pool.get_database_backend(), sql, values);
        pool.query_one_raw(statement).await.map(|row| row.is_some()).map_err(|err| self.query_failed(&action, &err))
    }

    /// A query of `action` failed with `err`: said with the server's address, never its password.
    fn query_failed(&self, action: &str, err: &sea_orm::DbErr) -> DatabaseError {
        DatabaseError::Query {
            action: action.to_owned(),
            location: self.url.to_string(),
            source: DbMessage::scrubbed(Some(&self.url), err),
        }
    }

    /// The first column of the one row `sql` with `values` returns, as an integer.
    pub async fn integer(&self, sql: &str, values: Vec<Value>, action: String) -> Result<i64, DatabaseError> {
        let pool = self.pool().await?;
        let statement = Statement::from_sql_and_values(pool.get_database_backend(), sql, values);
        let failed = |err: sea_orm::DbErr| self.query_failed(&action, &err);
        let row = pool.query_one_raw(statement).await.map_err(failed)?;
        row.map_or(Ok(0), |row| row.try_get_by_index::<i64>(0).map_err(failed))
    }

    /// Column `column` of the first row `sql` returns, as text (empty when there is no row).
    pub async fn text(&self, sql: &str, column: usize, action: String) -> Result<String, DatabaseError> {
        let pool = self.pool().await?;
        let statement = Statement::from_string(pool.get_database_backend(), sql);
        let failed = |err: sea_orm::DbErr| self.query_failed(&action, &err);
        let Some(row) = pool.query_one_raw(statement).await.map_err(failed)? else { return Ok(String::new()) };
        // MySQL answers some text columns of its status as bytes.
        match row.try_get_by_index::<String>(column) {
            Ok(text) => Ok(text),
            Err(_) => row.try_get_by_index::<Vec<u8>>(column).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).map_err(failed),
        }
    }

    /// The first column of every row `sql` returns, as text.
    pub async fn names(&self, sql: &str, action: String) -> Result<Vec<String>, DatabaseError> {
        let pool = self.pool().await?;
        let statement = Statement::from_string(pool.get_database_backend(), sql);
        let failed = |err: sea_orm::DbErr| self.query_failed(&action, &err);
        let rows = pool.query_all_raw(statement).await.map_err(failed)?;
        rows.iter().map(|row| row.try_get_by_index::<String>(0).map_err(failed)).collect()
    }

    pub async fn ping(&self) -> Result<(), DatabaseError> {
        let pool = self.pool().await?;
        pool.ping()
            .await
            .map_err(|err| DatabaseError::Connect { location: self.url.to_string(), source: DbMessage::scrubbed(Some(&self.url), &err) })
    }
}
