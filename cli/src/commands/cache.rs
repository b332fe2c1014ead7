//! `tenancy cache clear|stats`: a tenant's cache entries, on whichever store is configured.

use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::json;
use tenancy_core::cache::{Cache, CacheError, CacheStats};
use tenancy_core::config::CacheStoreKind;
use tenancy_core::{Tenancy, Tenant};

use crate::CliContext;
use crate::commands::selection::{ConcurrencyArg, TenantSelection};
use crate::exit::{ExitStatus, UsageError};
use crate::output::{Output, format_bytes};

/// `tenancy cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Remove every cache entry of the chosen tenants (theirs only)
    Clear(ClearArgs),
    /// Entries and bytes of each chosen tenant's cache
    Stats(StatsArgs),
}

/// Arguments of `tenancy cache clear`.
#[derive(Debug, Args)]
pub struct ClearArgs {
    #[command(flatten)]
    pub selection: TenantSelection,
    #[command(flatten)]
    pub concurrency: ConcurrencyArg,
    /// Clear the central cache (alone, or with the tenants chosen)
    #[arg(long)]
    pub central: bool,
    /// Remove only expired cache entries and expired sessions, the ones a database keeps until swept
    #[arg(long)]
    pub expired: bool,
}

/// Arguments of `tenancy cache stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub selection: TenantSelection,
    #[command(flatten)]
    pub concurrency: ConcurrencyArg,
}

pub async fn run(command: CacheCommand, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    if ctx.config.cache.store == CacheStoreKind::Memory {
        let name = match command {
            CacheCommand::Clear(_) => "clear",
            CacheCommand::Stats(_) => "stats",
        };
        return Err(UsageError::new(
            format!(
                "`cache.store` is `memory`: each process keeps its own cache in its own memory, which `tenancy cache {name}`, a process of its own, cannot reach"
            ),
            "call `Cache::flush` or `Cache::stats` inside the application, or set `cache.store = \"redis\"` to share one cache between processes",
        )
        .into());
    }
    ctx.with_tenancy(async |tenancy| match command {
        CacheCommand::Clear(args) => {
            let only_central = args.central && args.selection.tenants.is_empty() && !args.selection.all;
            let tenants = if only_central { Vec::new() } else { args.selection.resolve(tenancy, out, "tenancy cache clear").await? };
            let sessions = tenancy.session_store();
            let (verb, what) = if args.expired { ("Purged", "expired entries") } else { ("Cleared", "entries") };
            let mut failed = each(
                tenancy,
                tenants,
                args.concurrency.get(tenancy),
                out,
                async |cache: &Cache| {
                    if !args.expired {
                        return Ok((cache.flush().await?, 0));
                    }
                    let entries = cache.purge_expired().await?;
                    // Inside the tenant's context: the session store finds the tenant there.
                    let sessions = sessions.purge_expired().await.map_err(|err| CacheError::Store {
                        store: "database",
                        action: "purge expired sessions".into(),
                        source: err.into(),
                    })?;
                    Ok((entries, sessions))
                },
                |out, tenant, (removed, sessions)| {
                    if out.is_json() {
                        out.json(&json!({"event": "cache_cleared", "tenant": tenant.id, "entries": removed, "expired_only": args.expired, "sessions": sessions}));
                    } else if args.expired {
                        out.status(verb, format!("{tenant}: {removed} {what}, {sessions} expired sessions"));
                    } else {
                        out.status(verb, format!("{tenant}: {removed} {what}"));
                    }
                },
            )
            .await;
            if args.central {
                let central = tenancy.central_cache().await?;
                let result = if args.expired { central.purge_expired().await } else { central.flush().await };
                match result {
                    Ok(removed) if out.is_json() => {
                        out.json(&json!({"event": "cache_cleared", "central": true, "entries": removed, "expired_only": args.expired}))
                    }
                    Ok(removed) => out.status(verb, format!("the central cache: {removed} {what}")),
                    Err(err) => {
                        failed += 1;
                        out.failure(
                            "Failed",
                            format!(
                                "the central cache: {}",
                                anyhow::Error::new(err).chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
                            ),
                        );
                    }
                }
            }
            Ok(if failed == 0 { ExitStatus::Success } else { ExitStatus::Failure })
        }
        CacheCommand::Stats(args) => {
            let tenants = args.selection.resolve(tenancy, out, "tenancy cache stats").await?;
            let totals = std::sync::Mutex::new(CacheStats { entries: 0, bytes: 0 });
            let failed = each(
                tenancy,
                tenants,
                args.concurrency.get(tenancy),
                out,
                async |cache: &Cache| cache.stats().await,
                |out, tenant, stats: CacheStats| {
                    let mut sum = totals.lock().unwrap_or_else(|p| p.into_inner());
                    sum.entries += stats.entries;
                    sum.bytes += stats.bytes;
                    if out.is_json() {
                        out.json(&json!({"tenant": tenant.id, "name": tenant.name, "entries": stats.entries, "bytes": stats.bytes}));
                    } else {
                        out.data(format!("{:<60} entries {:>8}  {:>10}", tenant.to_string(), stats.entries, format_bytes(stats.bytes)));
                    }
                },
            )
            .await;
            let sum = *totals.lock().unwrap_or_else(|p| p.into_inner());
            if out.is_json() {
                out.json(&json!({"event": "totals", "entries": sum.entries, "bytes": sum.bytes}));
            } else {
                out.status("Total", format!("{} entries, {}", sum.entries, format_bytes(sum.bytes)));
            }
            Ok(if failed == 0 { ExitStatus::Success } else { ExitStatus::Failure })
        }
    })
    .await
}

/// Runs `work` on each tenant's cache, `concurrency` at a time, reporting each result with `show`;
/// returns how many tenants failed (each reported).
async fn each<T>(
    tenancy: &Tenancy,
    tenants: Vec<Tenant>,
    concurrency: usize,
    out: &Output,
    work: impl AsyncFn(&Cache) -> Result<T, CacheError>,
    show: impl Fn(&Output, &Tenant, T),
) -> usize {
    let work = &work;
    let mut results: Vec<(Tenant, anyhow::Result<T>)> = futures::stream::iter(tenants)
        .map(|tenant| async move {
            let result = tenancy
                .run(&tenant, |ctx| async move {
                    let cache = ctx.cache().expect("the cache bootstrapper is always installed");
                    work(cache).await
                })
                .await;
            let result = match result {
                Ok(inner) => inner.map_err(anyhow::Error::new),
                Err(err) => Err(anyhow::Error::new(err)),
            };
            (tenant, result)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.sort_by_key(|(tenant, _)| tenant.id);
    let mut failed = 0;
    for (tenant, result) in results {
        match result {
            Ok(value) => show(out, &tenant, value),
            Err(err) => {
                failed += 1;
                out.failure("Failed", format!("{tenant}: {}", err.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")));
            }
        }
    }
    failed
}
