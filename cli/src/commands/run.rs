//! `tenancy run [--tenant T… | --all] -- PROGRAM ARGS…`: a program once per tenant, with that
//! tenant's environment, a few at a time.
//!
//! Each run gets `TENANCY_TENANT_ID`, `TENANCY_TENANT_NAME`, `DATABASE_URL` (under schema
//! isolation with the search path on the URL) and `TENANCY_CONFIG`. The URL's password is only
//! ever in the child's environment: never in its arguments, never in a line printed here.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use serde_json::json;
use tenancy_core::{Tenancy, Tenant};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use crate::CliContext;
use crate::commands::selection::{ConcurrencyArg, TenantSelection};
use crate::exit::{ExitStatus, UsageError};
use crate::output::{Output, format_count, format_duration, plural};

/// Arguments of `tenancy run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub selection: TenantSelection,
    #[command(flatten)]
    pub concurrency: ConcurrencyArg,
    /// Print each tenant's output as one block when its run ends, instead of line by line with
    /// the tenant's name in front
    #[arg(long)]
    pub group: bool,
    /// The program and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    pub command: Vec<OsString>,
}

/// How one tenant's run ended.
struct Finished {
    tenant: Tenant,
    /// The exit code, or why there is none (it could not start, a signal stopped it).
    outcome: Result<i32, String>,
    elapsed: Duration,
}

impl Finished {
    fn succeeded(&self) -> bool {
        matches!(self.outcome, Ok(0))
    }
}

pub async fn run(args: RunArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let (name, rest) = args.command.split_first().expect("clap requires the program");
    let program = crate::extensions::external::find_program(name).ok_or_else(|| {
        UsageError::new(
            format!("cannot find the program `{}`", name.to_string_lossy()),
            "give a path, or a program on PATH: tenancy run --all -- ./scripts/report.sh".to_owned(),
        )
    })?;
    let shown = args.command.iter().map(|arg| arg.to_string_lossy()).collect::<Vec<_>>().join(" ");
    ctx.with_tenancy(async |tenancy| {
        let tenants = args.selection.resolve(tenancy, out, "tenancy run").await?;
        let concurrency = args.concurrency.get(tenancy);
        let started = Instant::now();
        if out.is_json() {
            out.json(&json!({"event": "run_started", "program": shown, "tenants": tenants.len(), "concurrency": concurrency}));
        } else {
            out.status("Running", format!("`{shown}` for {}, {}", plural(tenants.len(), "tenant"), args.concurrency.describe(tenancy)));
        }
        let config_file = ctx.config.file.as_deref();
        let runner = Runner { out, program: &program, args: rest, config_file, group: args.group };
        let finished: Vec<Finished> =
            futures::stream::iter(tenants).map(|tenant| runner.run_for(tenancy, tenant)).buffer_unordered(concurrency).collect().await;
        Ok(summarize(out, &finished, started.elapsed()))
    })
    .await
}

/// What every tenant's run shares.
struct Runner<'a> {
    out: &'a Output,
    program: &'a Path,
    args: &'a [OsString],
    config_file: Option<&'a Path>,
    group: bool,
}

impl Runner<'_> {
    async fn run_for(&self, tenancy: &Tenancy, tenant: Tenant) -> Finished {
        let started = Instant::now();
        let mut block = Vec::new();
        let outcome = self.spawn_and_wait(tenancy, &tenant, &mut block).await;
        let finished = Finished { tenant, outcome, elapsed: started.elapsed() };
        self.report(&finished);
        for (stream, line) in block {
            self.print(&finished.tenant, stream, &line, false);
        }
        finished
    }

    /// Runs the program for `tenant`, printing its output as it comes, or keeping it in `block`
    /// with `--group`.
    async fn spawn_and_wait(&self, tenancy: &Tenancy, tenant: &Tenant, block: &mut Vec<(Stream, String)>) -> Result<i32, String> {
        // The program is tenant code: it logs in as the tenant's role, where tenants have roles.
        let login = tenancy.login_of(tenant).map_err(|err| err.to_string())?;
        let target = tenancy.manager_of(tenant).map_err(|err| err.to_string())?.connection_target(&tenant.database, login.as_ref());
        let mut command = Command::new(self.program);
        command
            .args(self.args)
            .env("TENANCY_TENANT_ID", tenant.id.to_string())
            .env("TENANCY_TENANT_NAME", tenant.name.as_str())
            .env("DATABASE_URL", target.database_url())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(file) = self.config_file {
            command.env(tenancy_core::config::CONFIG_ENV, file);
        }
        if let Some(schema) = &target.schema {
            command.env("TENANCY_TENANT_SCHEMA", schema);
        }
        let mut child = command.spawn().map_err(|err| format!("cannot start `{}`: {err}", self.program.display()))?;
        let (mut outs, mut errs) = (lines(child.stdout.take()), lines(child.stderr.take()));
        // Both pipes are drained together, so a program filling one while we wait on the other cannot stall.
        loop {
            tokio::select! {
                Some(line) = outs.next() => self.output(tenant, Stream::Stdout, line, block),
                Some(line) = errs.next() => self.output(tenant, Stream::Stderr, line, block),
                else => break,
            }
        }
        let status = child.wait().await.map_err(|err| format!("cannot wait for `{}`: {err}", self.program.display()))?;
        status.code().ok_or_else(|| format!("stopped by a signal ({status})"))
    }

    /// One line of the program's output: printed now, or kept for the tenant's block.
    fn output(&self, tenant: &Tenant, stream: Stream, line: String, block: &mut Vec<(Stream, String)>) {
        if self.group && !self.out.is_json() {
            block.push((stream, line));
        } else {
            self.print(tenant, stream, &line, true);
        }
    }

    fn print(&self, tenant: &Tenant, stream: Stream, line: &str, prefixed: bool) {
        if self.out.is_json() {
            let stream = match stream {
                Stream::Stdout => "stdout",
                Stream::Stderr => "stderr",
            };
            self.out.json(&json!({"event": "output", "tenant": tenant.id, "name": tenant.name, "stream": stream, "line": line}));
            return;
        }
        let line = if prefixed { format!("{} {line}", self.out.dim(&format!("[{}]", tenant.name))) } else { line.to_owned() };
        match stream {
            Stream::Stdout => self.out.data(line),
            Stream::Stderr => self.out.program_stderr(&line),
        }
    }

    /// The tenant's line: exit code and time.
    fn report(&self, finished: &Finished) {
        let Finished { tenant, outcome, elapsed } = finished;
        if self.out.is_json() {
            let (code, error) = match outcome {
                Ok(code) => (Some(*code), None),
                Err(error) => (None, Some(error)),
            };
            let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
            self.out.json(&json!({"event": "tenant_finished", "tenant": tenant.id, "name": tenant.name, "exit_code": code, "error": error, "elapsed_ms": elapsed_ms}));
            return;
        }
        let took = self.out.dim(&format_duration(*elapsed));
        match outcome {
            Ok(0) => self.out.status("Done", format!("{tenant}: exit 0 {took}")),
            Ok(code) => self.out.failure("Failed", format!("{tenant}: exit {code} {took}")),
            Err(error) => self.out.failure("Failed", format!("{tenant}: {error} {took}")),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// The lines of a child's pipe (none if it has no pipe); bytes that are not UTF-8 are replaced.
/// Fused: the loop reading both pipes asks an ended one again.
fn lines(pipe: Option<impl AsyncRead + Unpin + Send + 'static>) -> futures::stream::Fuse<futures::stream::BoxStream<'static, String>> {
    let Some(pipe) = pipe else { return futures::stream::empty().boxed().fuse() };
    futures::stream::unfold(BufReader::new(pipe), |mut reader| async move {
        let mut bytes = Vec::new();
        match reader.read_until(b'\n', &mut bytes).await {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let line = String::from_utf8_lossy(&bytes).trim_end_matches(['\n', '\r']).to_owned();
                Some((line, reader))
            }
        }
    })
    .boxed()
    .fuse()
}

fn summarize(out: &Output, finished: &[Finished], elapsed: Duration) -> ExitStatus {
    let failed: Vec<&Finished> = finished.iter().filter(|f| !f.succeeded()).collect();
    if out.is_json() {
        let failures: Vec<_> = failed.iter().map(|f| json!({"tenant": f.tenant.id, "name": f.tenant.name})).collect();
        out.json(&json!({"event": "summary", "tenants": finished.len(), "succeeded": finished.len() - failed.len(),
            "failed": failed.len(), "elapsed_ms": elapsed.as_secs_f64() * 1000.0, "failures": failures}));
    } else {
        let line = format!(
            "{} in {}: {} succeeded, {} failed",
            plural(finished.len(), "tenant"),
            format_duration(elapsed),
            format_count((finished.len() - failed.len()) as u64),
            format_count(failed.len() as u64)
        );
        if failed.is_empty() {
            out.status("Finished", line);
        } else {
            out.failure("Finished", line);
            for f in &failed {
                let why = match &f.outcome {
                    Ok(code) => format!("exit {code}"),
                    Err(error) => error.clone(),
                };
                out.failure("Failed", format!("{}: {why}", f.tenant));
            }
        }
    }
    if failed.is_empty() { ExitStatus::Success } else { ExitStatus::Failure }
}
