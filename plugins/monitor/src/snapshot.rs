//! What `monitor watch` shows at one moment: the fleet's totals, its largest and busiest
//! tenants, connections against the budget, and recent failures. Taken with the registry's two
//! queries and one query per server, so refreshing every second costs the same at any fleet size.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenancy_core::command::format::error_chain;
use tenancy_core::{Tenancy, TenantId, TenantStatus};

use crate::census::Census;

/// How many tenants the largest and busiest lists hold, and how many failures are shown.
pub const LIST_LENGTH: usize = 10;

/// The fleet at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// How long taking it took.
    pub took_ms: f64,
    /// Tenants, by status.
    pub tenants: BTreeMap<&'static str, usize>,
    /// Bytes of every tenant database.
    pub total_bytes: u64,
    /// Sessions connected to tenant databases, all processes, by server (where the server can
    /// tell: not SQLite, not PostgreSQL schemas).
    pub connections: BTreeMap<String, u64>,
    /// The connection budget of each process.
    pub connection_budget: u32,
    /// The largest tenants, largest first.
    pub largest: Vec<TenantFigure>,
    /// The tenants with the most connections, most first.
    pub busiest: Vec<TenantFigure>,
    /// Registered tenants whose database was not found.
    pub missing: Vec<String>,
    /// The newest migration failures, newest first.
    pub failures: Vec<Failure>,
    /// What could not be read.
    pub problems: Vec<String>,
}

/// A tenant and one figure.
#[derive(Debug, Clone, Serialize)]
pub struct TenantFigure {
    /// Its id.
    pub id: TenantId,
    /// Its name.
    pub name: String,
    /// Bytes or connections.
    pub value: u64,
}

/// A recorded migration failure.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The tenant's name.
    pub tenant: String,
    /// `migrator/name`.
    pub migration: String,
    /// The database's message.
    pub error: String,
    /// When.
    pub failed_at: DateTime<Utc>,
}

impl Snapshot {
    /// Takes one, asking at most `queries` servers at once.
    pub async fn take(tenancy: &Tenancy, queries: usize) -> Self {
        let started = Instant::now();
        let mut problems = Vec::new();
        let tenants = tenancy.registry().list(None).await.unwrap_or_else(|err| {
            problems.push(format!("registry: {}", error_chain(&err)));
            Vec::new()
        });
        let census = Census::take(tenancy, &tenants, queries).await;
        problems.extend(census.unreachable.iter().map(|(server, why)| format!("server {server}: {why}")));
        let name_of = |id: &TenantId| tenants.iter().find(|t| t.id == *id).map_or_else(|| id.to_string(), |t| t.name.to_string());
        let mut failures: Vec<Failure> = match tenancy.registry().last_migration_failures().await {
            Ok(failures) => failures
                .into_iter()
                .map(|(id, f)| Failure { tenant: name_of(&id), migration: f.migration, error: f.error, failed_at: f.failed_at })
                .collect(),
            Err(err) => {
                problems.push(format!("registry: {}", error_chain(&err)));
                Vec::new()
            }
        };
        failures.sort_by_key(|f| std::cmp::Reverse(f.failed_at));
        failures.truncate(LIST_LENGTH);
        let top = |figure: &dyn Fn(&crate::census::Footprint) -> Option<u64>| {
            let mut figures: Vec<TenantFigure> = census
                .tenants
                .iter()
                .filter_map(|(id, f)| Some(TenantFigure { id: *id, name: name_of(id), value: figure(f)? }))
                .filter(|f| f.value > 0)
                .collect();
            figures.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
            figures.truncate(LIST_LENGTH);
            figures
        };
        let missing = tenants
            .iter()
            .filter(|t| {
                t.status != TenantStatus::Creating && !census.tenants.contains_key(&t.id) && !census.unreachable.contains_key(&t.server)
            })
            .map(|t| t.name.to_string())
            .collect();
        Self {
            taken_at: Utc::now(),
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
            tenants: TenantStatus::ALL.iter().map(|s| (s.as_str(), tenants.iter().filter(|t| t.status == *s).count())).collect(),
            total_bytes: census.total_bytes(),
            connections: census.servers.clone(),
            connection_budget: tenancy.config().tenant_database.connection_budget,
            largest: top(&|f| Some(f.size_bytes)),
            busiest: top(&|f| f.connections),
            missing,
            failures,
            problems,
        }
    }

    /// Tenants of every status.
    pub fn tenant_count(&self) -> usize {
        self.tenants.values().sum()
    }

    /// Sessions connected to tenant databases on every server.
    pub fn total_connections(&self) -> u64 {
        self.connections.values().sum()
    }

    /// How long taking it took.
    pub fn took(&self) -> Duration {
        Duration::from_secs_f64(self.took_ms / 1000.0)
    }
}
