//! `tenancy tenant create`: validates the name and domains, then runs the provisioning pipeline with
//! a line (and, on a terminal, a spinner) per step.

use std::time::{Duration, Instant};

use clap::Args;
use tenancy_core::provisioning::{ProvisionReporter, StepOutcome, TenantRequest};
use tenancy_core::{BoxError, Domain, TenantName, TenantStatus};

use crate::CliContext;
use crate::exit::{ExitStatus, UsageError};
use crate::output::{Output, format_duration};
use crate::prompt;

/// Arguments of `tenancy tenant create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The tenant's name [default: its first domain]
    #[arg(long)]
    pub name: Option<String>,
    /// A domain of the tenant; repeat for more (the first is primary)
    #[arg(long = "domain", value_name = "DOMAIN", allow_hyphen_values = true)]
    pub domains: Vec<String>,
    /// The status the new tenant gets
    #[arg(long, default_value = "active", value_parser = ["active", "inactive", "suspended"])]
    pub status: String,
    /// Create the database without running the tenant migrations
    #[arg(long)]
    pub no_migrate: bool,
    /// Seed after migrating: with the default seeder, or `--seed=A,B` for those seeders in order
    #[arg(long, conflicts_with = "no_migrate", num_args = 0..=1, require_equals = true, default_missing_value = "", value_name = "SEEDERS")]
    pub seed: Option<String>,
    /// The server to put it on [default: the one `tenant_database.placement` chooses]
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
}

pub async fn run(args: CreateArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let (name, domain_inputs) = ask_for_missing(args.name, args.domains, out)?;
    let mut domains: Vec<Domain> = Vec::new();
    for input in &domain_inputs {
        let domain = Domain::parse(input)?;
        if domains.contains(&domain) {
            return Err(UsageError::new(format!("domain `{domain}` is given twice"), "give each domain once").into());
        }
        domains.push(domain);
    }
    let name = match name {
        Some(name) => TenantName::parse(&name)?,
        None => TenantName::parse(domains.first().map(Domain::as_str).unwrap_or_default())?,
    };
    let mut request = TenantRequest::new(name);
    request.domains = domains;
    request.status = args.status.parse::<TenantStatus>()?;
    request.migrate = !args.no_migrate;
    request.flags = ctx.tenant_flags().clone();
    request.server = args.server;
    if let Some(names) = &args.seed {
        let names: Vec<String> = names.split(',').map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect();
        request.seeders = crate::commands::db::seed::choose_off_terminal(&names, ctx.seeders())?;
    }

    let started = Instant::now();
    let tenant = ctx
        .with_tenancy(async |tenancy| {
            // Checked before provisioning so the message is about the domain, not a failed step;
            // the registry checks again, and its unique index catches a race.
            for domain in &request.domains {
                tenancy.registry().ensure_domain_free(domain).await?;
            }
            tenancy.create_tenant(&request, &StepLines { out }).await.map_err(|err| {
                for (step, reason) in &err.undo_failures {
                    out.warn(format!("could not undo step `{step}`: {reason}"));
                }
                if !err.undo_failures.is_empty() {
                    out.warn(format!(
                        "tenant `{}` may be left with status `creating`; remove it with `tenancy tenant delete {} --force`",
                        err.id, err.id
                    ));
                }
                err.into()
            })
        })
        .await?;
    if out.is_json() {
        out.json(&serde_json::json!({"event": "tenant_created", "elapsed_ms": millis(started.elapsed()), "tenant": tenant}));
    } else {
        out.status("Created", format!("tenant {tenant} in {}", format_duration(started.elapsed())));
        out.data(tenant.id);
    }
    Ok(ExitStatus::Success)
}

/// Fills in a missing name or domain by asking, on a terminal; elsewhere a missing name and domain
/// is a usage error, since nobody can answer.
fn ask_for_missing(name: Option<String>, mut domains: Vec<String>, out: &Output) -> anyhow::Result<(Option<String>, Vec<String>)> {
    if name.is_some() || !domains.is_empty() {
        return Ok((name, domains));
    }
    if !out.is_interactive() {
        return Err(UsageError::new(
            "`tenant create` needs --name or --domain when not run on a terminal",
            "tenancy tenant create --name Acme --domain acme.example.com",
        )
        .into());
    }
    let name = prompt::text("Tenant name:", "shown in listings; need not be unique")?;
    let domain = prompt::text("Domain:", "e.g. acme.example.com; leave empty for none")?;
    if let Some(domain) = domain.filter(|d| !d.trim().is_empty()) {
        domains.push(domain);
    }
    if name.as_deref().is_none_or(|n| n.trim().is_empty()) && domains.is_empty() {
        return Err(UsageError::new("no name and no domain given", "a tenant needs at least a name").into());
    }
    Ok((name.filter(|n| !n.trim().is_empty()), domains))
}

/// Draws provisioning: a spinner while a step runs, then its line with the time it took.
struct StepLines<'a> {
    out: &'a Output,
}

impl ProvisionReporter for StepLines<'_> {
    fn on_step_started(&self, step: &str) {
        self.out.spin(format!("{step}…"));
    }

    fn on_step_finished(&self, step: &str, outcome: &StepOutcome, elapsed: Duration) {
        self.out.clear_spinner();
        let (state, detail) = match outcome {
            StepOutcome::Done(detail) => ("done", detail),
            StepOutcome::Skipped(reason) => ("skipped", reason),
        };
        if self.out.is_json() {
            self.out
                .json(&serde_json::json!({"event": "step", "step": step, "state": state, "detail": detail, "elapsed_ms": millis(elapsed)}));
        } else if state == "skipped" {
            self.out.status("Skipped", format!("{step} ({detail})"));
        } else {
            self.out.status(&past_tense(step), format!("{detail} {}", self.out.dim(&format_duration(elapsed))));
        }
    }

    fn on_step_failed(&self, step: &str, _error: &BoxError) {
        self.out.clear_spinner();
        if self.out.is_json() {
            self.out.json(&serde_json::json!({"event": "step", "step": step, "state": "failed"}));
        } else {
            self.out.status("Failed", format!("{step}; undoing the steps before it"));
        }
    }

    fn on_step_undone(&self, step: &str, result: Result<(), &BoxError>) {
        if self.out.is_json() {
            self.out
                .json(&serde_json::json!({"event": "step", "step": step, "state": if result.is_ok() { "undone" } else { "undo_failed" }}));
        } else if result.is_ok() {
            self.out.status("Undone", step);
        }
    }
}

/// "create database" → "Created", "migrate" → "Migrated"; plugin steps keep their own name.
fn past_tense(step: &str) -> String {
    match step {
        "register" => "Registered".into(),
        "create database" => "Created".into(),
        "migrate" => "Migrated".into(),
        "seed" => "Seeded".into(),
        "activate" => "Activated".into(),
        other => other.to_owned(),
    }
}

pub(super) fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}
