//! [`FleetView`]: how a run over many tenants looks. On a terminal, an overall bar (tenants done,
//! rate, ETA, how many had nothing to do) and a live line per tenant in flight, with a line per
//! migration or seeder, and per tenant that changed or failed, printed above them: a no-op run over
//! 10,000 tenants is a bar, not 10,000 lines (`-v` prints them). Piped, a line per tenant and no
//! bars; with `--json`, one event per line.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;
use tenancy_core::migrate::fleet::{FleetReporter, SeederRun, TenantReport};
use tenancy_core::migrate::runner::PretendedMigration;
use tenancy_core::migrate::{Direction, MigrationName, MigrationRun};
use tenancy_core::{Tenant, TenantId};

use crate::output::{Output, format_bytes, format_count, format_duration};

/// Draws a fleet run.
pub struct FleetView {
    out: Output,
    /// "Migrated", "Rolled back", "Seeded": the verb of a tenant's closing line.
    verb: &'static str,
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    in_flight: Mutex<HashMap<TenantId, ProgressBar>>,
    /// Tenants that had nothing to do, counted on the bar instead of a line each (unless `-v`).
    folded: Option<AtomicU64>,
}

impl FleetView {
    /// A view of a run over `total` tenants whose closing lines say `verb`.
    pub fn new(out: &Output, total: usize, verb: &'static str) -> Self {
        let bars = out.start_bars().map(|multi| {
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(
                ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} tenants  {rate}  ETA {eta}  [{elapsed_precise}]  {msg}")
                    .expect("the template is valid")
                    .with_key("rate", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{}", tenants_per_second(state.per_sec()));
                    })
                    .progress_chars("█▉▊▋▌▍▎▏ "),
            );
            overall.enable_steady_tick(Duration::from_millis(200));
            let folded = (!out.is_verbose()).then(|| AtomicU64::new(0));
            Bars { multi, overall, in_flight: Mutex::new(HashMap::new()), folded }
        });
        Self { out: out.clone(), verb, bars }
    }

    /// Removes the bars; call before printing the summary.
    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            bars.overall.finish_and_clear();
        }
        self.out.stop_bars();
    }

    fn live_line(&self, tenant: &Tenant, message: String) {
        if let Some(bars) = &self.bars
            && let Some(bar) = bars.in_flight.lock().unwrap_or_else(|p| p.into_inner()).get(&tenant.id)
        {
            bar.set_message(message);
        }
    }
}

/// `1,129 tenants/s`, or `0.4 tenants/s` while it is slow.
fn tenants_per_second(rate: f64) -> String {
    if rate >= 10.0 || rate == 0.0 { format!("{} tenants/s", format_count(rate.round() as u64)) } else { format!("{rate:.1} tenants/s") }
}

fn tenant_label(tenant: &Tenant) -> String {
    let name: String = tenant.name.as_str().chars().take(24).collect();
    format!("{name:<24}")
}

fn memory(bytes: Option<u64>) -> String {
    bytes.map(|b| format!("+{}", format_bytes(b))).unwrap_or_default()
}

impl FleetReporter for FleetView {
    fn on_tenant_started(&self, tenant: &Tenant) {
        if self.out.is_json() {
            self.out.json(&json!({"event": "tenant_started", "tenant": tenant.id, "name": tenant.name}));
        }
        if let Some(bars) = &self.bars {
            let bar = bars.multi.add(ProgressBar::new_spinner());
            bar.set_style(ProgressStyle::with_template("  {spinner:.cyan} {prefix} {wide_msg}").expect("the template is valid"));
            bar.set_prefix(tenant_label(tenant));
            bar.enable_steady_tick(Duration::from_millis(100));
            bars.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(tenant.id, bar);
        }
    }

    fn on_migration_started(&self, tenant: &Tenant, migration: &MigrationName, direction: Direction) {
        let doing = if direction == Direction::Up { "applying" } else { "rolling back" };
        self.live_line(tenant, format!("{doing} {migration}"));
    }

    fn on_migration_finished(&self, tenant: &Tenant, run: &MigrationRun) {
        if self.out.is_json() {
            let event = if run.direction == Direction::Up { "migration_applied" } else { "migration_rolled_back" };
            self.out.json(&json!({"event": event, "tenant": tenant.id, "migration": run.migration.to_string(),
                "elapsed_ms": run.elapsed.as_secs_f64() * 1000.0, "allocated_bytes": run.allocated_bytes}));
            return;
        }
        let arrow = if run.direction == Direction::Up { "" } else { "↓ " };
        self.out.line(format!(
            "  ✅ {} {arrow}{:<52} {:>8}  {}",
            tenant_label(tenant),
            run.migration.to_string(),
            format_duration(run.elapsed),
            memory(run.allocated_bytes)
        ));
    }

    fn on_pretended(&self, tenant: &Tenant, migration: &PretendedMigration) {
        if self.out.is_json() {
            self.out.json(&json!({"event": "migration_pretended", "tenant": tenant.id, "migration": migration.migration.to_string(),
                "statements": migration.statements.as_ref().ok(), "error": migration.statements.as_ref().err()}));
            return;
        }
        self.out.data(format!("-- {} {}", tenant.name, migration.migration));
        match &migration.statements {
            // A SQL file's script usually ends with its own semicolon.
            Ok(statements) => statements.iter().for_each(|sql| {
                let sql = sql.trim_end();
                self.out.data(if sql.ends_with(';') { sql.to_owned() } else { format!("{sql};") });
            }),
            Err(reason) => self.out.data(format!("-- cannot show: {reason}")),
        }
    }

    fn on_seeder_started(&self, tenant: &Tenant, seeder: &str) {
        self.live_line(tenant, format!("seeding {seeder}"));
    }

    fn on_seeder_progress(&self, tenant: &Tenant, seeder: &str, done: u64, total: u64) {
        if let Some(bars) = &self.bars
            && let Some(bar) = bars.in_flight.lock().unwrap_or_else(|p| p.into_inner()).get(&tenant.id)
        {
            if bar.length() != Some(total) {
                bar.set_style(
                    ProgressStyle::with_template("  {spinner:.cyan} {prefix} {msg} {bar:25.cyan/blue} {pos}/{len}")
                        .expect("the template is valid"),
                );
                bar.set_length(total);
                bar.set_message(seeder.to_owned());
            }
            bar.set_position(done);
        }
    }

    fn on_seeder_finished(&self, tenant: &Tenant, run: &SeederRun) {
        if self.out.is_json() {
            self.out.json(&json!({"event": "seeder_finished", "tenant": tenant.id, "seeder": run.seeder,
                "elapsed_ms": run.elapsed.as_secs_f64() * 1000.0, "allocated_bytes": run.allocated_bytes}));
            return;
        }
        self.out.line(format!(
            "  ✅ {} {:<52} {:>8}  {}",
            tenant_label(tenant),
            run.seeder,
            format_duration(run.elapsed),
            memory(run.allocated_bytes)
        ));
    }

    fn on_tenant_finished(&self, report: &TenantReport) {
        if let Some(bars) = &self.bars {
            if let Some(bar) = bars.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&report.tenant.id) {
                bar.finish_and_clear();
                bars.multi.remove(&bar);
            }
            bars.overall.inc(1);
        }
        let tenant = &report.tenant;
        if report.had_nothing_to_do()
            && report.warnings.is_empty()
            && let Some(bars) = &self.bars
            && let Some(folded) = &bars.folded
        {
            let count = folded.fetch_add(1, Ordering::Relaxed) + 1;
            bars.overall.set_message(format!("{} with nothing to do", format_count(count)));
            return;
        }
        for warning in &report.warnings {
            self.out.warn(format!("{tenant}: {warning}"));
        }
        if self.out.is_json() {
            if let Some(failure) = &report.failure {
                self.out.json(&json!({"event": "migration_failed", "tenant": tenant.id, "step": failure.step, "error": failure.error}));
            }
            let state = match (&report.failure, &report.skipped) {
                (Some(_), _) => "failed",
                (None, Some(_)) => "skipped",
                _ => "succeeded",
            };
            self.out.json(&json!({"event": "tenant_finished", "tenant": tenant.id, "name": tenant.name, "state": state,
                "migrations": report.migrations.len(), "seeders": report.seeders.len(), "error": report.failure.as_ref().map(|f| &f.error),
                "elapsed_ms": report.elapsed.as_secs_f64() * 1000.0}));
            return;
        }
        if let Some(failure) = &report.failure {
            self.out.line(format!("  ❌ {} {:<52} {}", tenant_label(tenant), failure.step, self.out.red(&failure.error)));
            self.out.failure("Failed", format!("{tenant} at {}", failure.step));
        } else if let Some(reason) = &report.skipped {
            self.out.status("Skipped", format!("{tenant}: {reason}"));
        } else if report.had_nothing_to_do() {
            self.out.status("Up to date", format!("{tenant}: nothing to do"));
        } else {
            let count = report.migrations.len() + report.seeders.len() + report.pretended.len();
            let unit = if report.seeders.is_empty() { "migration" } else { "seeder" };
            self.out.status(self.verb, format!("{tenant}: {} in {}", crate::output::plural(count, unit), format_duration(report.elapsed)));
        }
    }
}
