//! `tenancy tenant pool [--fill N | --drain]`: the pool of ready databases signups take
//! (`tenant_database.provision = "pool"`).

use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tenancy_core::config::Provision;
use tenancy_core::pool::PoolStatus;

use crate::CliContext;
use crate::exit::{ExitStatus, UsageError};
use crate::output::{Output, format_duration};

/// Arguments of `tenancy tenant pool`.
#[derive(Debug, Args)]
pub struct PoolArgs {
    /// Make ready databases until there are N (dropping those of older migrations first)
    #[arg(long, value_name = "N", conflicts_with = "drain", value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub fill: Option<u32>,
    /// Drop every database of the pool
    #[arg(long)]
    pub drain: bool,
}

pub async fn run(args: PoolArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    ctx.with_tenancy(async |tenancy| {
        if tenancy.config().tenant_database.provision != Provision::Pool {
            return Err(UsageError::new(
                "signups take no database from the pool unless `tenant_database.provision = \"pool\"`",
                "set it in tenancy.toml (PostgreSQL only), then `tenancy tenant pool --fill N`",
            )
            .into());
        }
        if args.drain {
            let dropped = tenancy.drain_pool().await?;
            out.status("Drained", format!("the pool: {dropped} databases dropped"));
        } else if let Some(target) = args.fill {
            let started = Instant::now();
            let before = tenancy.pool_status().await?;
            let to_make = (target as usize).saturating_sub(before.ready);
            let view = FillView::new(out, to_make);
            let fill = tenancy.fill_pool(target as usize, &|database, took| view.made(database.as_str(), took)).await;
            view.finish();
            let fill = fill?;
            if out.is_json() {
                out.json(&json!({"event": "pool_filled", "made": fill.made, "dropped": fill.dropped, "ready": fill.ready,
                    "elapsed_ms": started.elapsed().as_secs_f64() * 1000.0}));
            }
            out.status(
                "Filled",
                format!(
                    "the pool: {} ready ({} made, {} stale or half-made dropped) in {}",
                    fill.ready,
                    fill.made,
                    fill.dropped,
                    format_duration(started.elapsed())
                ),
            );
        }
        let status = tenancy.pool_status().await?;
        show(out, &status);
        Ok(())
    })
    .await?;
    Ok(ExitStatus::Success)
}

fn show(out: &Output, status: &PoolStatus) {
    if out.is_json() {
        out.json(&json!({"event": "pool_status", "pool": status}));
        return;
    }
    out.data(format!("ready     {}", status.ready));
    out.data(format!("stale     {}", status.stale));
    out.data(format!("filling   {}", status.filling));
    out.data(format!("migrations {}", status.fingerprint));
}

/// How a fill looks: a bar on a terminal, a line per database piped, events with `--json`.
struct FillView<'a> {
    out: &'a Output,
    bar: Option<ProgressBar>,
    total: usize,
    made: std::sync::atomic::AtomicUsize,
}

impl<'a> FillView<'a> {
    fn new(out: &'a Output, total: usize) -> Self {
        let bar = (total > 0).then(|| out.start_bars()).flatten().map(|multi| {
            let bar = multi.add(ProgressBar::new(total as u64));
            bar.set_style(
                ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} databases  ETA {eta}  [{elapsed_precise}]")
                    .expect("the template is valid")
                    .progress_chars("█▉▊▋▌▍▎▏ "),
            );
            bar
        });
        Self { out, bar, total, made: Default::default() }
    }

    fn made(&self, database: &str, took: Duration) {
        let made = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if self.out.is_json() {
            self.out.json(&json!({"event": "pool_database_made", "database": database, "elapsed_ms": took.as_secs_f64() * 1000.0}));
        } else if let Some(bar) = &self.bar {
            bar.inc(1);
        } else {
            self.out.status("Made", format!("{database} ({made}/{}) in {}", self.total, format_duration(took)));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
