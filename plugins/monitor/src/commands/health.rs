//! `tenancy monitor health`: every selected tenant checked, several at once; exit 1 if any is
//! unhealthy.

use std::time::Instant;

use clap::Args;
use futures::StreamExt;
use serde_json::json;
use tenancy_core::command::format::{format_duration, plural};
use tenancy_core::command::selection::{ConcurrencyArg, TenantSelection};
use tenancy_core::command::{AppContext, ExitStatus};
use tenancy_core::{Tenancy, Tenant};

use crate::health::{self, Check, TenantHealth};

#[derive(Debug, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    selection: TenantSelection,
    #[command(flatten)]
    concurrency: ConcurrencyArg,
}

pub async fn run(args: HealthArgs, app: &dyn AppContext, tenancy: &Tenancy) -> anyhow::Result<ExitStatus> {
    let out = app.console();
    let tenants = args.selection.resolve(tenancy, out, "tenancy monitor health").await?;
    let started = Instant::now();
    // The registry is read once for the whole fleet, not once per tenant.
    let failures = tenancy.registry().last_migration_failures().await?;
    let redis = tenancy.config().redis.per_tenant_database;
    let mut checks = futures::stream::iter(tenants.iter().cloned())
        .map(|tenant: Tenant| {
            let failure = failures.get(&tenant.id).cloned();
            async move {
                let redis_database = if redis { tenancy.registry().assigned_redis_database(&tenant.id).await.ok().flatten() } else { None };
                health::check(tenancy, &tenant, failure, redis_database).await
            }
        })
        .buffer_unordered(args.concurrency.get(tenancy).max(1));
    let mut found = Vec::with_capacity(tenants.len());
    while let Some(health) = checks.next().await {
        found.push(health);
    }
    // Shown in the order the registry lists them, whatever order they finished in.
    found.sort_by_key(|h| tenants.iter().position(|t| t.id == h.tenant.id));
    let unhealthy = found.iter().filter(|h| !h.is_healthy()).count();
    for health in &found {
        if out.is_json() {
            out.json(&health.to_json());
        } else {
            out.data(&line(health));
        }
    }
    let elapsed = started.elapsed();
    if out.is_json() {
        out.json(&json!({"event": "summary", "tenants": found.len(), "healthy": found.len() - unhealthy, "unhealthy": unhealthy,
            "elapsed_ms": elapsed.as_secs_f64() * 1000.0}));
    }
    let summary = format!(
        "{} checked in {}: {} healthy, {unhealthy} unhealthy",
        plural(found.len(), "tenant"),
        format_duration(elapsed),
        found.len() - unhealthy
    );
    if unhealthy > 0 {
        out.failure("Unhealthy", &summary);
        return Ok(ExitStatus::Failure);
    }
    out.status("Healthy", &summary);
    Ok(ExitStatus::Success)
}

/// `ok   acme (0190…)  database 0.4ms · migrations applied · cache database · homepage on`
fn line(health: &TenantHealth) -> String {
    let mut parts = Vec::new();
    if let Some(Check::Ok(round_trip)) = &health.database {
        parts.push(format!("database {}", format_duration(*round_trip)));
    }
    if health.pending_migrations == Some(0) && health.last_failure.is_none() {
        parts.push("migrations applied".to_owned());
    }
    if let Some(Check::Ok(store)) = &health.cache {
        parts.push(format!("cache {store}"));
    }
    if let Some(index) = health.redis_database {
        parts.push(format!("redis db {index}"));
    }
    parts.push(format!("homepage {}", if health.homepage { "on" } else { "off" }));
    parts.extend(health.problems());
    let verdict = if health.is_healthy() { "ok  " } else { "FAIL" };
    format!("{verdict} {}  {}", health.tenant, parts.join(" · "))
}
