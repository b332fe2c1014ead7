//! `tenancy tenant move T --to SERVER` (and `--abort`, `--all-from SERVER`, `--cleanup`): moving
//! tenants between database servers, a line per step with its time.

use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use serde_json::json;
use tenancy_core::moves::{MoveError, MoveOptions, MoveReporter};
use tenancy_core::{Tenancy, Tenant};

use super::create::millis;
use crate::CliContext;
use crate::exit::{ExitStatus, UsageError};
use crate::output::{Output, format_duration, plural};

/// Arguments of `tenancy tenant move`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["to", "abort", "all_from", "cleanup"])))]
pub struct MoveArgs {
    /// The tenant: id, unique id prefix, exact name or domain
    #[arg(required_unless_present_any = ["all_from", "cleanup"], conflicts_with_all = ["all_from", "cleanup"])]
    pub tenant: Option<String>,
    /// The server to move it to (a key of `tenant_database.servers`); resumes a move that stopped
    #[arg(long, value_name = "SERVER")]
    pub to: Option<String>,
    /// Stop a move that has not switched yet: drop the copy, bring the tenant up
    #[arg(long, conflicts_with_all = ["to", "all_from", "cleanup"])]
    pub abort: bool,
    /// Move every tenant off SERVER (drain it first), each to the server placement chooses
    #[arg(long, value_name = "SERVER", conflicts_with_all = ["to", "cleanup"])]
    pub all_from: Option<String>,
    /// With --all-from: tenants moved at once
    #[arg(long, default_value_t = 1, requires = "all_from", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Drop the old databases of finished moves (those kept --keep-source-for once that is over), and forget the moves
    #[arg(long)]
    pub cleanup: bool,
    /// Keep the old database this long (`0`, `12h`, `7days`), then let --cleanup drop it
    /// [default: until --cleanup]
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with_all = ["abort", "cleanup"])]
    pub keep_source_for: Option<Duration>,
    /// Once the tenant is down, wait this long for sessions still busy in its database (a request
    /// that began before) before giving up the copy
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "30s", conflicts_with_all = ["abort", "cleanup"])]
    pub wait_for_sessions: Duration,
}

impl MoveArgs {
    fn options(&self) -> MoveOptions {
        MoveOptions { keep_source_for: self.keep_source_for, wait_for_sessions: self.wait_for_sessions }
    }
}

pub async fn run(args: MoveArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    ctx.with_tenancy(async |tenancy| {
        if args.cleanup {
            return clean_up(tenancy, out).await;
        }
        if let Some(server) = &args.all_from {
            return move_all_from(tenancy, server, usize::from(args.concurrency), &args.options(), out).await;
        }
        let tenant = tenancy.registry().resolve(args.tenant.as_deref().unwrap_or_default()).await?;
        if args.abort {
            let record = tenancy.abort_move(&tenant).await.map_err(edge)?;
            out.status(
                "Aborted",
                format!("the move of tenant {tenant} to `{}`: its copy dropped, served from `{}`", record.to, record.from),
            );
            if out.is_json() {
                out.json(&json!({"event": "move_aborted", "tenant": tenant.id, "move": record}));
            }
            return Ok(ExitStatus::Success);
        }
        let to = args.to.as_deref().unwrap_or_default();
        move_one(tenancy, &tenant, to, &args.options(), out).await.map_err(edge)?;
        Ok(ExitStatus::Success)
    })
    .await
}

async fn move_one(tenancy: &Tenancy, tenant: &Tenant, to: &str, options: &MoveOptions, out: &Output) -> Result<(), MoveError> {
    let started = Instant::now();
    let record = tenancy.move_tenant(tenant, to, options, &StepLines { out, tenant }).await?;
    if out.is_json() {
        out.json(&json!({"event": "tenant_moved", "tenant": tenant.id, "move": record, "elapsed_ms": millis(started.elapsed())}));
    }
    let kept = match record.keep_source_until {
        Some(until) if until <= chrono::Utc::now() => "its old database is dropped".to_owned(),
        Some(until) => {
            format!("its old database is kept until {} (then `tenancy tenant move --cleanup`)", until.format("%Y-%m-%d %H:%M UTC"))
        }
        None => "its old database is kept until `tenancy tenant move --cleanup`".to_owned(),
    };
    out.status(
        "Moved",
        format!("tenant {tenant} from `{}` to `{}` in {}; {kept}", record.from, record.to, format_duration(started.elapsed())),
    );
    Ok(())
}

/// Moves every tenant off `server` (which must take no new tenants, or placement could choose it
/// again), `concurrency` at a time; one failure does not stop the others.
async fn move_all_from(
    tenancy: &Tenancy,
    server: &str,
    concurrency: usize,
    options: &MoveOptions,
    out: &Output,
) -> anyhow::Result<ExitStatus> {
    if !tenancy.config().server_names().iter().any(|name| name == server) {
        return Err(UsageError::new(
            format!("no server named `{}` in `tenant_database.servers`", server.escape_debug()),
            format!("the configured servers: {}", tenancy.config().server_names().join(", ")),
        )
        .into());
    }
    if tenancy.registry().server_state(server).await?.takes_new_tenants() {
        return Err(UsageError::new(
            format!("server `{server}` still takes new tenants, so its tenants could be placed on it again"),
            format!("tenancy server drain {server}, then move them"),
        )
        .into());
    }
    let tenants: Vec<Tenant> = tenancy.registry().list(None).await?.into_iter().filter(|tenant| tenant.server == server).collect();
    out.status("Moving", format!("{} off `{server}`, {concurrency} at once", plural(tenants.len(), "tenant")));
    let started = Instant::now();
    let results: Vec<(Tenant, Result<(), String>)> = futures::stream::iter(tenants)
        .map(|tenant| async move {
            let moved = async {
                // A move recorded already goes where it was going; else where placement says.
                let to = match tenancy.registry().move_of(&tenant.id).await? {
                    Some(record) => record.to,
                    None => tenancy.place_new_tenant(None).await?,
                };
                move_one(tenancy, &tenant, &to, options, out).await?;
                anyhow::Ok(())
            }
            .await;
            let moved = moved.map_err(|err| format!("{err:#}"));
            if let Err(reason) = &moved {
                out.failure("Failed", format!("to move tenant {tenant}: {reason}"));
            }
            (tenant, moved)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let failed = results.iter().filter(|(_, result)| result.is_err()).count();
    let line = format!(
        "{} in {}: {} moved, {failed} failed",
        plural(results.len(), "tenant"),
        format_duration(started.elapsed()),
        results.len() - failed
    );
    if out.is_json() {
        out.json(&json!({"event": "summary", "tenants": results.len(), "failed": failed, "elapsed_ms": millis(started.elapsed())}));
    }
    if failed == 0 {
        out.status("Moved", line);
        Ok(ExitStatus::Success)
    } else {
        out.failure("Moved", line);
        Ok(ExitStatus::Failure)
    }
}

async fn clean_up(tenancy: &Tenancy, out: &Output) -> anyhow::Result<ExitStatus> {
    let (cleaned, failed) = tenancy.clean_up_moves().await.map_err(edge)?;
    for record in &cleaned {
        out.status("Dropped", format!("the old database of tenant {} on `{}`", record.tenant, record.from));
        if out.is_json() {
            out.json(&json!({"event": "move_cleaned_up", "move": record}));
        }
    }
    for (record, reason) in &failed {
        out.failure("Kept", format!("the old database of tenant {} on `{}`: {reason}", record.tenant, record.from));
    }
    if cleaned.is_empty() && failed.is_empty() {
        out.status("Nothing", "to clean up: no finished move keeps an old database");
    }
    Ok(if failed.is_empty() { ExitStatus::Success } else { ExitStatus::Failure })
}

/// A request the move refused is bad usage (exit 2); a failed step is a failure (exit 1).
fn edge(err: MoveError) -> anyhow::Error {
    if err.is_bad_input() {
        UsageError::new(err.to_string(), "tenancy server list shows the servers and their states").into()
    } else {
        err.into()
    }
}

/// A line per step with its time; events with `--json`.
struct StepLines<'a> {
    out: &'a Output,
    tenant: &'a Tenant,
}

impl MoveReporter for StepLines<'_> {
    fn on_step(&self, step: &str, detail: &str, elapsed: Duration) {
        if self.out.is_json() {
            self.out.json(
                &json!({"event": "move_step", "tenant": self.tenant.id, "step": step, "detail": detail, "elapsed_ms": millis(elapsed)}),
            );
            return;
        }
        let verb = match step {
            "start" => "Started",
            "down" => "Down",
            "quiet" => "Quiet",
            "copy" => "Copied",
            "switch" => "Switched",
            "up" => "Up",
            "cleanup" => "Dropped",
            other => other,
        };
        self.out.status(verb, format!("{detail} {}", self.out.dim(&format_duration(elapsed))));
    }
}
