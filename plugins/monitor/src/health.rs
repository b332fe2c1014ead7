//! `monitor health`'s checks of one tenant: its database answers (and how fast), its migrations
//! are all applied, none failed last time, its cache answers.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use serde_json::json;
use tenancy_core::command::format::{error_chain, plural};
use tenancy_core::registry::RecordedFailure;
use tenancy_core::{ContextError, Tenancy, Tenant, migrate};

/// A key no application writes: reading it proves the cache store answers for this tenant's
/// scope without touching any of its entries.
const CACHE_PROBE_KEY: &str = "tenancy:monitor:probe";

/// What was found about one tenant.
#[derive(Debug, Clone)]
pub struct TenantHealth {
    /// The tenant.
    pub tenant: Tenant,
    /// The database: a round trip's time, or why it cannot be reached; `None` when it was reached
    /// but the tenant's context could not be entered ([`TenantHealth::context`]).
    pub database: Option<Check<Duration>>,
    /// Why the tenant's context could not be entered past its database (a bootstrapper failed:
    /// the cache's Redis is down, say).
    pub context: Option<String>,
    /// Migrations this binary has that the database has not applied (unknown while unreachable).
    pub pending_migrations: Option<usize>,
    /// The last migration failure the registry remembers.
    pub last_failure: Option<RecordedFailure>,
    /// The cache store: its kind, or why it cannot be reached; `None` when the tenant has no cache.
    pub cache: Option<Check<&'static str>>,
    /// The Redis database index the tenant was given, if any.
    pub redis_database: Option<u32>,
    /// Whether its homepage is served.
    pub homepage: bool,
}

/// A check's result.
#[derive(Debug, Clone)]
pub enum Check<T> {
    /// It answered.
    Ok(T),
    /// It did not; why.
    Failed(String),
}

impl TenantHealth {
    /// Why the tenant is unhealthy; empty when it is not.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(Check::Failed(why)) = &self.database {
            problems.push(format!("database unreachable: {why}"));
        }
        if let Some(why) = &self.context {
            problems.push(format!("cannot enter its context: {why}"));
        }
        if let Some(pending) = self.pending_migrations.filter(|&n| n > 0) {
            problems.push(plural(pending, "pending migration"));
        }
        if let Some(failure) = &self.last_failure {
            problems.push(format!("migration {} failed at {}", failure.migration, failure.failed_at.format("%Y-%m-%d %H:%M:%S UTC")));
        }
        if let Some(Check::Failed(why)) = &self.cache {
            problems.push(format!("cache unreachable: {why}"));
        }
        problems
    }

    /// Whether nothing is wrong.
    pub fn is_healthy(&self) -> bool {
        self.problems().is_empty()
    }

    /// The `tenant_health` event of `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        let database = match &self.database {
            Some(Check::Ok(round_trip)) => json!({"ok": true, "round_trip_ms": round_trip.as_secs_f64() * 1000.0}),
            Some(Check::Failed(error)) => json!({"ok": false, "error": error}),
            None => serde_json::Value::Null,
        };
        let cache = match &self.cache {
            Some(Check::Ok(store)) => json!({"ok": true, "store": store}),
            Some(Check::Failed(error)) => json!({"ok": false, "error": error}),
            None => serde_json::Value::Null,
        };
        json!({
            "event": "tenant_health", "tenant": self.tenant.id, "name": self.tenant.name, "healthy": self.is_healthy(),
            "problems": self.problems(), "database": database, "context_error": self.context,
            "pending_migrations": self.pending_migrations, "last_failure": self.last_failure, "cache": cache,
            "redis_database": self.redis_database, "homepage": self.homepage,
        })
    }
}

/// Checks `tenant` with one connection; `last_failure` and `redis_database` come from the
/// registry, read once for the whole run.
pub async fn check(tenancy: &Tenancy, tenant: &Tenant, last_failure: Option<RecordedFailure>, redis_database: Option<u32>) -> TenantHealth {
    let migrations = tenancy.migrations();
    let entered = tenancy
        .run_with_one_connection(tenant, |ctx| async move {
            let db = ctx.db();
            let started = Instant::now();
            let round_trip = match is_there(db).await {
                Ok(true) => Check::Ok(started.elapsed()),
                Ok(false) => return (Check::Failed(MISSING_SCHEMA.to_owned()), None, None),
                Err(err) => return (Check::Failed(error_chain(&err)), None, None),
            };
            let pending = migrate::status::read(db, migrations).await.ok().map(|status| status.pending());
            let cache = match ctx.cache() {
                Some(cache) => Some(match cache.get::<serde_json::Value>(CACHE_PROBE_KEY).await {
                    Ok(_) => Check::Ok(cache.kind()),
                    Err(err) => Check::Failed(error_chain(&err)),
                }),
                None => None,
            };
            (round_trip, pending, cache)
        })
        .await;
    let (database, context, pending_migrations, cache) = match entered {
        Ok((database, pending, cache)) => (Some(database), None, pending, cache),
        // The pool was leased before the bootstrappers ran: the database answered.
        Err(err @ ContextError::Bootstrap { .. }) => (None, Some(error_chain(&err)), None, None),
        Err(err) => (Some(Check::Failed(error_chain(&err))), None, None, None),
    };
    TenantHealth {
        tenant: tenant.clone(),
        database,
        context,
        pending_migrations,
        last_failure,
        cache,
        redis_database,
        homepage: tenant.homepage_enabled,
    }
}

/// Why a PostgreSQL schema tenant whose connection works is unreachable all the same.
pub const MISSING_SCHEMA: &str = "its schema does not exist";

/// One round trip that also tells whether the tenant's data is there: a connection to a
/// PostgreSQL schema tenant succeeds even when the schema was dropped, but `current_schema()` is
/// then NULL.
pub async fn is_there(db: &DatabaseConnection) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "SELECT current_schema() IS NOT NULL",
        _ => "SELECT 1 = 1",
    };
    let row = db.query_one_raw(Statement::from_string(backend, sql)).await?;
    Ok(row.map(|row| row.try_get_by_index::<bool>(0)).transpose()?.unwrap_or(false))
}
