//! `tenancy monitor stats`: each selected tenant's figures, sorted, with totals.

use std::cmp::Reverse;
use std::time::Instant;

use clap::{Args, ValueEnum};
use futures::StreamExt;
use serde_json::json;
use tenancy_core::command::format::{format_bytes, format_count, format_duration, plural};
use tenancy_core::command::selection::{ConcurrencyArg, TenantSelection};
use tenancy_core::command::{AppContext, ExitStatus};
use tenancy_core::{Tenancy, Tenant};

use crate::census::Census;
use crate::config::MonitorConfig;
use crate::stats::{self, TenantStats};

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    selection: TenantSelection,
    #[command(flatten)]
    concurrency: ConcurrencyArg,
    /// Largest first by this figure
    #[arg(long, value_enum, default_value_t = SortBy::Size)]
    sort: SortBy,
    /// Show only the first N after sorting (the totals still count every tenant)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    top: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SortBy {
    Size,
    Connections,
    Tables,
    Rows,
    Cache,
    Migrated,
    Name,
}

pub async fn run(args: StatsArgs, app: &dyn AppContext, tenancy: &Tenancy, config: &MonitorConfig) -> anyhow::Result<ExitStatus> {
    let out = app.console();
    let tenants = args.selection.resolve(tenancy, out, "tenancy monitor stats").await?;
    let started = Instant::now();
    let census = Census::take(tenancy, &tenants, config.sample_queries).await;
    let mut inside = futures::stream::iter(tenants.iter().cloned())
        .map(|tenant: Tenant| async move { (tenant.id, stats::inside(tenancy, &tenant).await) })
        .buffer_unordered(args.concurrency.get(tenancy).max(1));
    let mut read = std::collections::HashMap::with_capacity(tenants.len());
    while let Some((id, figures)) = inside.next().await {
        read.insert(id, figures);
    }
    let mut rows: Vec<TenantStats> = tenants
        .iter()
        .map(|tenant| {
            let inside = read.remove(&tenant.id).unwrap_or_else(|| stats::Reading::Unreadable { error: "not read".into() });
            TenantStats::new(tenant.clone(), census.tenants.get(&tenant.id).copied(), inside)
        })
        .collect();
    for source in app.tenant_facts() {
        match source.collect(tenancy, &tenants).await {
            Ok(mut facts) => {
                for row in &mut rows {
                    if let Some(fact) = facts.remove(&row.tenant.id) {
                        row.facts.insert(source.name().to_owned(), fact);
                    }
                }
            }
            Err(err) => out.warn(&format!("{} figures could not be read: {err:#}", source.name())),
        }
    }
    for (server, why) in &census.unreachable {
        out.warn(&format!("server `{server}` could not be asked for sizes and connections: {why}"));
    }
    sort(&mut rows, args.sort);
    let totals = Totals::of(&rows);
    let shown = args.top.map_or(rows.len(), |n| (n as usize).min(rows.len()));
    if out.is_json() {
        for row in &rows[..shown] {
            let mut event = serde_json::to_value(row)?;
            event["event"] = json!("tenant_stats");
            event["tenant"] = json!(row.tenant.id);
            event["name"] = json!(row.tenant.name);
            out.json(&event);
        }
        out.json(&json!({"event": "totals", "tenants": rows.len(), "shown": shown, "size_bytes": totals.size_bytes,
            "tables": totals.tables, "rows": totals.rows, "connections": totals.connections, "cache_entries": totals.cache_entries,
            "cache_bytes": totals.cache_bytes, "unreadable": totals.unreadable, "elapsed_ms": started.elapsed().as_secs_f64() * 1000.0}));
    } else {
        print_table(out, &rows[..shown], &totals);
    }
    out.status(
        "Measured",
        &format!(
            "{} in {}{}",
            plural(rows.len(), "tenant"),
            format_duration(started.elapsed()),
            if shown < rows.len() { format!(", the first {shown} shown") } else { String::new() }
        ),
    );
    Ok(if totals.unreadable > 0 { ExitStatus::Failure } else { ExitStatus::Success })
}

fn sort(rows: &mut [TenantStats], by: SortBy) {
    let inside = |row: &TenantStats| row.inside.figures().cloned();
    match by {
        SortBy::Size => rows.sort_by_key(|r| Reverse(r.size_bytes)),
        SortBy::Connections => rows.sort_by_key(|r| Reverse(r.connections)),
        SortBy::Tables => rows.sort_by_key(|r| Reverse(inside(r).map(|i| i.tables))),
        SortBy::Rows => rows.sort_by_key(|r| Reverse(inside(r).map(|i| i.rows))),
        SortBy::Cache => rows.sort_by_key(|r| Reverse(inside(r).and_then(|i| i.cache).map(|c| c.size.bytes))),
        SortBy::Migrated => rows.sort_by_key(|r| Reverse(inside(r).and_then(|i| i.last_migration_at))),
        SortBy::Name => rows.sort_by(|a, b| a.tenant.name.as_str().cmp(b.tenant.name.as_str())),
    }
}

/// Sums over every tenant, shown or not.
#[derive(Debug, Default)]
struct Totals {
    tenants: usize,
    size_bytes: u64,
    tables: u64,
    rows: u64,
    connections: u64,
    cache_entries: u64,
    cache_bytes: u64,
    unreadable: usize,
}

impl Totals {
    fn of(rows: &[TenantStats]) -> Self {
        let mut totals = Self { tenants: rows.len(), ..Self::default() };
        for row in rows {
            totals.size_bytes += row.size_bytes.unwrap_or(0);
            totals.connections += row.connections.unwrap_or(0);
            match row.inside.figures() {
                Some(inside) => {
                    totals.tables += inside.tables;
                    totals.rows += inside.rows;
                    if let Some(cache) = inside.cache {
                        totals.cache_entries += cache.size.entries;
                        totals.cache_bytes += cache.size.bytes;
                    }
                }
                None => totals.unreadable += 1,
            }
        }
        totals
    }
}

fn print_table(out: &dyn tenancy_core::command::Console, rows: &[TenantStats], totals: &Totals) {
    let mut facts: Vec<&str> = rows.iter().flat_map(|r| r.facts.keys().map(String::as_str)).collect();
    facts.sort_unstable();
    facts.dedup();
    let mut table = vec![["TENANT", "SIZE", "TABLES", "ROWS", "CONNS", "CACHE", "MIGRATED"].map(str::to_owned).to_vec()];
    table[0].extend(facts.iter().map(|f| f.to_uppercase()));
    for row in rows {
        let mut cells = vec![row.tenant.name.as_str().to_owned(), row.size_bytes.map_or_else(|| "missing".into(), format_bytes)];
        match &row.inside {
            stats::Reading::Read(inside) => {
                cells.push(format_count(inside.tables));
                cells.push(format_count(inside.rows));
                cells.push(row.connections.map_or_else(|| "-".into(), format_count));
                cells.push(
                    inside
                        .cache
                        .map_or_else(|| "-".into(), |c| format!("{} in {}", format_count(c.size.entries), format_bytes(c.size.bytes))),
                );
                cells.push(match (inside.last_migration_at, inside.pending_migrations) {
                    (_, pending) if pending > 0 => format!("{pending} pending"),
                    (Some(at), _) => at.format("%Y-%m-%d %H:%M").to_string(),
                    (None, _) => "never".into(),
                });
            }
            stats::Reading::Unreadable { .. } => {
                cells.push("unreadable".into());
                cells.extend(std::iter::repeat_n(String::new(), 4));
            }
        }
        cells.extend(facts.iter().map(|name| row.facts.get(*name).map_or_else(|| "-".into(), |f| f.text.clone())));
        table.push(cells);
    }
    let mut total = vec![
        format!("total ({})", plural(totals.tenants, "tenant")),
        format_bytes(totals.size_bytes),
        format_count(totals.tables),
        format_count(totals.rows),
        format_count(totals.connections),
        format!("{} in {}", format_count(totals.cache_entries), format_bytes(totals.cache_bytes)),
        String::new(),
    ];
    total.extend(facts.iter().map(|_| String::new()));
    table.push(total);
    let widths: Vec<usize> =
        (0..table[0].len()).map(|col| table.iter().map(|r| r.get(col).map_or(0, |c| c.chars().count())).max().unwrap_or(0)).collect();
    for row in table {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.data(line.join("  ").trim_end());
    }
    for row in rows {
        if let stats::Reading::Unreadable { error } = &row.inside {
            out.failure("Unreadable", &format!("{}: {error}", row.tenant));
        }
    }
}
