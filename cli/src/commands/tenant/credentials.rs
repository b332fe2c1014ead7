//! `tenancy tenant secure` and `tenancy tenant rotate-credentials`: tenant roles
//! (`tenant_database.roles = "per_tenant"`) for tenants made before roles, and new passwords.

use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tenancy_core::{Tenancy, Tenant, TenantStatus};

use crate::CliContext;
use crate::exit::ExitStatus;
use crate::output::{Output, format_duration};

/// Which tenants `secure` and `rotate-credentials` work on: some, or all.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["tenants", "all"])))]
pub struct RoleArgs {
    /// Tenants: id, id prefix (8+ characters), domain or name
    #[arg(value_name = "TENANT")]
    pub tenants: Vec<String>,
    /// Every tenant, whatever its status (except those still being created)
    #[arg(long)]
    pub all: bool,
}

/// What is done to each tenant.
#[derive(Debug, Clone, Copy)]
pub enum RoleWork {
    /// Make its role, set its password, give it its database.
    Secure,
    /// A new password.
    Rotate,
}

impl RoleWork {
    fn verb(self) -> &'static str {
        match self {
            Self::Secure => "Secured",
            Self::Rotate => "Rotated",
        }
    }

    /// Does the work on `tenant`; what was done, for its line.
    async fn apply(self, tenancy: &Tenancy, tenant: &Tenant) -> anyhow::Result<String> {
        Ok(match self {
            Self::Secure => {
                let login = tenancy.secure_tenant(tenant).await?;
                format!("role `{}` owns its database", login.role)
            }
            Self::Rotate => {
                let rotated = tenancy.rotate_credentials(tenant).await?;
                format!("role `{}` has a new password (generation {})", rotated.database, rotated.credentials_generation)
            }
        })
    }
}

pub async fn run(args: RoleArgs, work: RoleWork, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    ctx.with_tenancy(async |tenancy| {
        // Refused before any tenant is looked at: SQLite, or no role key.
        tenancy.check_roles_possible()?;
        let tenants = chosen(tenancy, &args).await?;
        let view = View::new(out, tenants.len());
        let mut failed = 0;
        for tenant in &tenants {
            let started = Instant::now();
            match work.apply(tenancy, tenant).await {
                Ok(detail) => view.done(work, tenant, &detail, started.elapsed()),
                Err(err) => {
                    failed += 1;
                    view.failed(tenant, &err);
                }
            }
        }
        view.finish();
        if failed > 0 {
            out.failure("Failed", format!("{failed} of {} tenants; running the command again is safe", tenants.len()));
            return Ok(ExitStatus::Failure);
        }
        if !out.is_json() && tenants.len() > 1 {
            out.status(work.verb(), format!("{} tenants", tenants.len()));
        }
        Ok(ExitStatus::Success)
    })
    .await
}

/// The tenants named, or with `--all` every one not being created (which has no database yet).
async fn chosen(tenancy: &Tenancy, args: &RoleArgs) -> anyhow::Result<Vec<Tenant>> {
    if args.all {
        let tenants = tenancy.registry().list(None).await?;
        return Ok(tenants.into_iter().filter(|tenant| tenant.status != TenantStatus::Creating).collect());
    }
    let mut tenants: Vec<Tenant> = Vec::new();
    for reference in &args.tenants {
        let tenant = super::provisioned(tenancy, reference).await?;
        if !tenants.iter().any(|t| t.id == tenant.id) {
            tenants.push(tenant);
        }
    }
    Ok(tenants)
}

/// A bar on a terminal, a line per tenant when piped, events with `--json`.
struct View<'a> {
    out: &'a Output,
    bar: Option<ProgressBar>,
}

impl<'a> View<'a> {
    fn new(out: &'a Output, total: usize) -> Self {
        let bar = (total > 1).then(|| out.start_bars()).flatten().map(|multi| {
            let bar = multi.add(ProgressBar::new(total as u64));
            bar.set_style(
                ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} tenants  ETA {eta}  [{elapsed_precise}]")
                    .expect("the template is valid")
                    .progress_chars("█▉▊▋▌▍▎▏ "),
            );
            bar
        });
        Self { out, bar }
    }

    fn done(&self, work: RoleWork, tenant: &Tenant, detail: &str, took: Duration) {
        if self.out.is_json() {
            let event = match work {
                RoleWork::Secure => "tenant_secured",
                RoleWork::Rotate => "tenant_credentials_rotated",
            };
            self.out
                .json(&json!({"event": event, "tenant": tenant.id, "role": tenant.database, "elapsed_ms": took.as_secs_f64() * 1000.0}));
        } else if let Some(bar) = &self.bar {
            bar.inc(1);
        } else {
            self.out.status(work.verb(), format!("tenant {tenant}: {detail} ({})", format_duration(took)));
        }
    }

    fn failed(&self, tenant: &Tenant, err: &anyhow::Error) {
        let reason = err.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ");
        if self.out.is_json() {
            self.out.json(&json!({"event": "tenant_failed", "tenant": tenant.id, "error": reason}));
            return;
        }
        let line = format!("tenant {tenant}: {reason}");
        match &self.bar {
            Some(bar) => bar.suspend(|| self.out.failure("Failed", &line)),
            None => self.out.failure("Failed", &line),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
