//! `tenancy queue work|status|failed|retry|clear|dispatch`: tenant-aware jobs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::json;
use tenancy_core::queue::{DispatchOptions, JobEvent, Outcome, RetryTarget, Worker};
use tenancy_core::{Tenancy, TenantId};

use crate::CliContext;
use crate::exit::{ExitStatus, UsageError};
use crate::output::format_duration;

/// `tenancy queue` subcommands.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Run queued jobs, each in its own tenant's context, until Ctrl-C or SIGTERM
    Work(WorkArgs),
    /// Waiting, running and failed jobs per queue and per tenant
    Status,
    /// Jobs that failed for good, with the reason
    Failed(FailedArgs),
    /// Put failed jobs back to run again (their attempts start over)
    Retry(RetryArgs),
    /// Remove a tenant's waiting and failed jobs (theirs only)
    Clear(ClearArgs),
    /// Queue a job the application registers, by name
    Dispatch(DispatchArgs),
}

/// Arguments of `tenancy queue work`.
#[derive(Debug, Args)]
pub struct WorkArgs {
    /// A queue to take jobs from (repeatable; default: the tenants' queue(s) and the central queue)
    #[arg(long = "queue", value_name = "QUEUE")]
    pub queues: Vec<String>,
    /// Jobs run at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
}

/// Arguments of `tenancy queue failed`.
#[derive(Debug, Args)]
pub struct FailedArgs {
    /// Only this tenant's jobs: id, id prefix, domain or name
    #[arg(long)]
    pub tenant: Option<String>,
}

/// Arguments of `tenancy queue retry`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RetryArgs {
    /// The failed job's id, as `queue failed` shows it
    pub id: Option<String>,
    /// Every failed job
    #[arg(long)]
    pub all_failed: bool,
}

/// Arguments of `tenancy queue clear`.
#[derive(Debug, Args)]
pub struct ClearArgs {
    /// The tenant whose jobs go: id, id prefix, domain or name
    #[arg(long, required = true)]
    pub tenant: String,
}

/// Arguments of `tenancy queue dispatch`.
#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// The job's registered name (`tenancy queue dispatch --list` shows them)
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,
    /// The tenant it runs for (tenant jobs): id, id prefix, domain or name
    #[arg(long)]
    pub tenant: Option<String>,
    /// The job's fields, as JSON
    #[arg(long, default_value = "{}")]
    pub payload: String,
    /// Run it no sooner than this many seconds from now
    #[arg(long, value_name = "SECS")]
    pub delay: Option<u64>,
    /// The queue (default: from `[queue]`)
    #[arg(long)]
    pub queue: Option<String>,
    /// Runs at most this many times (default: `queue.attempts`)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: Option<u32>,
    /// Queue it only if no job with this key is queued already
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// List the registered jobs instead
    #[arg(long, conflicts_with_all = ["tenant", "delay", "queue", "attempts", "idempotency_key"])]
    pub list: bool,
}

pub async fn run(command: QueueCommand, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    match command {
        QueueCommand::Work(args) => work(args, ctx).await,
        QueueCommand::Status => ctx.with_tenancy(async |tenancy| status(tenancy, ctx).await).await,
        QueueCommand::Failed(args) => ctx.with_tenancy(async |tenancy| failed(args, tenancy, ctx).await).await,
        QueueCommand::Retry(args) => ctx.with_tenancy(async |tenancy| retry(args, tenancy, ctx).await).await,
        QueueCommand::Clear(args) => ctx.with_tenancy(async |tenancy| clear(args, tenancy, ctx).await).await,
        QueueCommand::Dispatch(args) => ctx.with_tenancy(async |tenancy| dispatch(args, tenancy, ctx).await).await,
    }
}

async fn work(args: WorkArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    if ctx.jobs().is_empty() {
        return Err(UsageError::new(
            "this binary registers no jobs, so a worker would fail every job it took",
            "register job types with `App::jobs`",
        )
        .into());
    }
    let tenancy = Arc::new(ctx.open_tenancy().await?);
    let queues = if args.queues.is_empty() { tenancy.queue().default_queues(&tenancy).await? } else { args.queues };
    for queue in &queues {
        if let Err(err) = tenancy_core::config::check_queue_name(queue) {
            super::serve::close(tenancy).await;
            return Err(UsageError::new(format!("queue `{queue}`: {err}"), "").into());
        }
    }
    let engine = match tenancy.queue().engine().await {
        Ok(engine) => engine.describe(),
        Err(err) => {
            super::serve::close(tenancy).await;
            return Err(err.into());
        }
    };
    out.status("Working", format!("{} ({}), {} at once, on {engine}", queues.join(", "), ctx.jobs().names().join(", "), args.concurrency));
    if out.is_json() {
        out.json(&json!({"event": "working", "queues": queues, "concurrency": args.concurrency, "engine": engine}));
    }
    out.line("Press Ctrl-C to stop; running jobs finish first.");
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<JobEvent>();
    let worker = Worker::new(tenancy.clone(), ctx.jobs().clone()).on_job(move |event| {
        let _ = events_tx.send(event.clone());
    });
    let started = Instant::now();
    // Boxed so it can be dropped (with its handle on the tenancy) before the tenancy is closed.
    let mut working = Box::pin(worker.work(&queues, usize::from(args.concurrency), stop));
    let mut shutdown = std::pin::pin!(tenancy_core::web::shutdown_signal());
    let mut counts = Counts::default();
    let result = loop {
        tokio::select! {
            result = &mut working => break result,
            () = &mut shutdown, if !*stop_tx.borrow() => {
                out.status("Stopping", "no new jobs; waiting for the running ones");
                let _ = stop_tx.send(true);
            }
            Some(event) = events.recv() => counts.report(&event, out),
        }
    };
    while let Ok(event) = events.try_recv() {
        counts.report(&event, out);
    }
    drop(working);
    super::serve::close(tenancy).await;
    result?;
    out.status(
        "Stopped",
        format!(
            "after {}: {} done, {} retried, {} failed, {} waiting",
            format_duration(started.elapsed()),
            counts.done,
            counts.retried,
            counts.failed,
            counts.waiting
        ),
    );
    if out.is_json() {
        out.json(&json!({"event": "stopped", "seconds": started.elapsed().as_secs_f64(), "done": counts.done, "retried": counts.retried, "failed": counts.failed, "waiting": counts.waiting}));
    }
    Ok(ExitStatus::Success)
}

#[derive(Default)]
struct Counts {
    done: u64,
    retried: u64,
    failed: u64,
    waiting: u64,
}

impl Counts {
    fn report(&mut self, event: &JobEvent, out: &crate::output::Output) {
        let job = event.name.as_deref().unwrap_or("?");
        let tenant = event.tenant.as_deref().unwrap_or("no tenant");
        let took = format_duration(event.took);
        let (outcome, detail) = match &event.outcome {
            Outcome::Done => {
                self.done += 1;
                out.status("Done", format!("{job} for {tenant} ({took})"));
                ("done", None)
            }
            Outcome::Retry { error, after } => {
                self.retried += 1;
                out.warn(format!(
                    "{job} for {tenant} failed (attempt {}), retrying in {}: {error}",
                    event.attempt,
                    format_duration(*after)
                ));
                ("retry", Some(error.clone()))
            }
            Outcome::Fail { reason } => {
                self.failed += 1;
                out.failure("Failed", format!("{job} for {tenant}: {reason}"));
                ("failed", Some(reason.clone()))
            }
            Outcome::Wait { reason, after } => {
                self.waiting += 1;
                out.line(format!("{job} for {tenant} waits {}: {reason}", format_duration(*after)));
                ("waiting", Some(reason.clone()))
            }
        };
        if out.is_json() {
            out.json(&json!({
                "event": "job", "id": event.id, "queue": event.queue, "job": event.name, "tenant": event.tenant,
                "attempt": event.attempt, "outcome": outcome, "detail": detail, "seconds": event.took.as_secs_f64(),
            }));
        }
    }
}

/// Tenant ids to `Name (id)`, for people.
async fn tenant_names(tenancy: &Tenancy) -> anyhow::Result<std::collections::HashMap<String, String>> {
    Ok(tenancy.registry().list(None).await?.into_iter().map(|tenant| (tenant.id.to_string(), tenant.to_string())).collect())
}

async fn status(tenancy: &Tenancy, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let status = tenancy.queue().engine().await?.status().await?;
    if out.is_json() {
        let counts = |list: &[(String, tenancy_core::queue::Counts)]| {
            list.iter().map(|(name, counts)| json!({"name": name, "pending": counts.pending, "running": counts.running, "failed": counts.failed, "oldest_pending_secs": counts.oldest_pending_secs})).collect::<Vec<_>>()
        };
        out.json(&json!({"engine": status.engine, "queues": counts(&status.queues), "tenants": counts(&status.tenants)}));
        return Ok(ExitStatus::Success);
    }
    let names = tenant_names(tenancy).await?;
    out.data(format!("engine: {}", status.engine));
    if status.queues.is_empty() {
        out.data("no jobs waiting, running or failed");
        return Ok(ExitStatus::Success);
    }
    let row = |name: &str, counts: &tenancy_core::queue::Counts| {
        let oldest = counts.oldest_pending_secs.map_or("-".to_owned(), |secs| format_duration(Duration::from_secs(secs)));
        format!("{name:<48} {:>8} {:>8} {:>8} {oldest:>10}", counts.pending, counts.running, counts.failed)
    };
    out.data(format!("{:<48} {:>8} {:>8} {:>8} {:>10}", "QUEUE", "PENDING", "RUNNING", "FAILED", "OLDEST"));
    for (queue, counts) in &status.queues {
        out.data(row(queue, counts));
    }
    out.data("");
    out.data(format!("{:<48} {:>8} {:>8} {:>8} {:>10}", "TENANT", "PENDING", "RUNNING", "FAILED", "OLDEST"));
    for (tenant, counts) in &status.tenants {
        let name = names
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| if tenant == "central" { "(central)".into() } else { format!("{tenant} (deleted)") });
        out.data(row(&name, counts));
    }
    Ok(ExitStatus::Success)
}

async fn failed(args: FailedArgs, tenancy: &Tenancy, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let tenant: Option<TenantId> = match &args.tenant {
        Some(reference) => Some(tenancy.registry().resolve(reference).await?.id),
        None => None,
    };
    let jobs = tenancy.queue().engine().await?.failed(tenant.as_ref()).await?;
    if out.is_json() {
        out.json(&jobs);
        return Ok(ExitStatus::Success);
    }
    if jobs.is_empty() {
        out.data("no failed jobs");
        return Ok(ExitStatus::Success);
    }
    let names = tenant_names(tenancy).await?;
    for job in &jobs {
        let tenant =
            job.tenant.as_deref().map(|id| names.get(id).cloned().unwrap_or_else(|| id.to_owned())).unwrap_or_else(|| "no tenant".into());
        out.data(format!(
            "{}  {}  {}  {}  after {} attempt(s): {}",
            job.id,
            job.queue,
            job.name.as_deref().unwrap_or("?"),
            tenant,
            job.attempts,
            job.reason
        ));
    }
    out.line(format!("{} failed job(s); `tenancy queue retry ID` or `--all-failed` runs them again", jobs.len()));
    Ok(ExitStatus::Success)
}

async fn retry(args: RetryArgs, tenancy: &Tenancy, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let target = match args.id {
        Some(id) => RetryTarget::One(id),
        None => RetryTarget::AllFailed,
    };
    let requeued = tenancy.queue().engine().await?.retry(&target).await?;
    if out.is_json() {
        out.json(&json!({"requeued": requeued}));
    }
    match (&target, requeued) {
        (RetryTarget::One(id), 0) => {
            Err(UsageError::new(format!("no failed job has the id `{id}`"), "`tenancy queue failed` lists them").into())
        }
        _ => {
            out.status("Requeued", format!("{requeued} job(s)"));
            Ok(ExitStatus::Success)
        }
    }
}

async fn clear(args: ClearArgs, tenancy: &Tenancy, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let tenant = tenancy.registry().resolve(&args.tenant).await?;
    let removed = tenancy.queue().engine().await?.clear(&tenant.id).await?;
    if out.is_json() {
        out.json(&json!({"tenant": tenant.id, "removed": removed}));
    }
    out.status("Cleared", format!("{removed} job(s) of {tenant}"));
    Ok(ExitStatus::Success)
}

async fn dispatch(args: DispatchArgs, tenancy: &Tenancy, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let jobs = ctx.jobs();
    if args.list {
        for name in jobs.names() {
            let kind = if jobs.is_central(name) == Some(true) { "central" } else { "tenant" };
            out.data(format!("{name}  ({kind} job)"));
        }
        return Ok(ExitStatus::Success);
    }
    let name = args.name.as_deref().unwrap_or_default();
    let payload: serde_json::Value = serde_json::from_str(&args.payload).map_err(|err| {
        UsageError::new(format!("--payload is not JSON: {err}"), "give the job's fields as a JSON object, e.g. '{\"invoice\": 42}'")
    })?;
    let tenant = match &args.tenant {
        Some(reference) => Some(tenancy.registry().resolve(reference).await?),
        None => None,
    };
    let options = DispatchOptions {
        queue: args.queue,
        delay: args.delay.map(Duration::from_secs),
        attempts: args.attempts,
        idempotency_key: args.idempotency_key,
    };
    let id = tenancy.queue().dispatch_named(jobs, name, tenant.as_ref(), payload, options).await?;
    if out.is_json() {
        out.json(&json!({"job": name, "tenant": tenant.as_ref().map(|t| t.id), "id": id, "queued": id.is_some()}));
    }
    let whose = tenant.as_ref().map_or_else(|| "central".to_owned(), ToString::to_string);
    match id {
        Some(id) => out.status("Queued", format!("{name} for {whose} (job {id})")),
        None => out.status("Skipped", format!("{name} for {whose}: a job with that idempotency key is already queued")),
    }
    Ok(ExitStatus::Success)
}
