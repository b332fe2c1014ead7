//! The sample application's jobs.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use serde::{Deserialize, Serialize};
use tenancy_core::queue::{Job, JobSet};
use tenancy_core::{BoxError, TenantContext};

/// Counts the tenant's airports and keeps the figure in its cache (`airports:count`), as a
/// dashboard would after an import. Idempotent: running it twice writes the same figure.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecountAirports {
    /// Waits this long before counting (milliseconds): a slow import, for trying out workers.
    #[serde(default)]
    pub pause_ms: u64,
}

impl Job for RecountAirports {
    const NAME: &'static str = "recount-airports";

    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        tokio::time::sleep(Duration::from_millis(self.pause_ms)).await;
        let db = ctx.db();
        let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) FROM airports")).await?;
        let count: i64 = row.map(|row| row.try_get_by_index(0)).transpose()?.unwrap_or(0);
        let cache = ctx.cache().ok_or("the tenant has no cache")?;
        cache.put("airports:count", &count, None).await?;
        Ok(())
    }
}

/// Every job of the sample application.
pub fn all() -> JobSet {
    JobSet::new().tenant::<RecountAirports>()
}
