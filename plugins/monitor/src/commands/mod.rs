//! `tenancy monitor …`.

mod health;
mod serve;
mod stats;
mod watch;

use async_trait::async_trait;
use clap::{FromArgMatches, Subcommand};
use tenancy_core::command::{AppContext, Command, ExitStatus};

use crate::config::MonitorConfig;

/// `tenancy monitor`.
pub struct MonitorCommand;

#[derive(Debug, Subcommand)]
enum Action {
    /// Check tenants: database reachable and its round trip, migrations applied, none failed, cache reachable
    Health(health::HealthArgs),
    /// Each tenant's size, tables, rows, connections, cache and last migration; totals
    Stats(stats::StatsArgs),
    /// A live view of the fleet: totals, the largest and busiest tenants, connections, recent failures
    Watch(watch::WatchArgs),
    /// Serve Prometheus metrics on /metrics
    Serve(serve::ServeArgs),
}

#[async_trait]
impl Command for MonitorCommand {
    fn definition(&self) -> clap::Command {
        Action::augment_subcommands(
            clap::Command::new("monitor").about("Tenant health, figures and metrics (monitor plugin)").subcommand_required(true),
        )
    }

    async fn run(&self, app: &dyn AppContext, args: &clap::ArgMatches) -> anyhow::Result<ExitStatus> {
        let action = Action::from_arg_matches(args)?;
        let config = MonitorConfig::load(app.config())?;
        let tenancy = app.open_tenancy().await?;
        let result = match action {
            Action::Health(args) => health::run(args, app, &tenancy).await,
            Action::Stats(args) => stats::run(args, app, &tenancy, &config).await,
            Action::Watch(args) => watch::run(args, app, &tenancy, &config).await,
            Action::Serve(args) => return serve::run(args, app, tenancy, config).await,
        };
        tenancy.close().await;
        result
    }
}
