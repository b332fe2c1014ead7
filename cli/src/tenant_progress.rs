//! [`ProgressView`]: how a plugin's run over many tenants looks (a backup of every tenant). On a
//! terminal, an overall bar and a live line per tenant in flight with the bytes done and the rate;
//! piped, a line per finished tenant; with `--json`, nothing (the command writes its own events).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tenancy_core::command::TenantProgress;
use tenancy_core::{Tenant, TenantId};

use crate::output::{Output, format_bytes};

/// Draws a plugin's run over tenants.
pub struct ProgressView {
    out: Output,
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    in_flight: Mutex<HashMap<TenantId, (ProgressBar, Instant)>>,
}

impl ProgressView {
    /// A view of a run over `total` tenants.
    pub fn new(out: &Output, total: usize) -> Self {
        let bars = out.start_bars().map(|multi| {
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(
                ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} tenants  ETA {eta}  [{elapsed_precise}]")
                    .expect("the template is valid")
                    .progress_chars("█▉▊▋▌▍▎▏ "),
            );
            overall.enable_steady_tick(Duration::from_millis(200));
            Bars { multi, overall, in_flight: Mutex::new(HashMap::new()) }
        });
        Self { out: out.clone(), bars }
    }

    fn done_with(&self, tenant: &Tenant) {
        if let Some(bars) = &self.bars {
            if let Some((bar, _)) = bars.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&tenant.id) {
                bar.finish_and_clear();
                bars.multi.remove(&bar);
            }
            bars.overall.inc(1);
        }
    }
}

impl TenantProgress for ProgressView {
    fn started(&self, tenant: &Tenant, doing: &str) {
        if let Some(bars) = &self.bars {
            let bar = bars.multi.add(ProgressBar::new_spinner());
            bar.set_style(ProgressStyle::with_template("  {spinner:.cyan} {prefix} {wide_msg}").expect("the template is valid"));
            let name: String = tenant.name.as_str().chars().take(24).collect();
            bar.set_prefix(format!("{name:<24}"));
            bar.set_message(doing.to_owned());
            bar.enable_steady_tick(Duration::from_millis(100));
            bars.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(tenant.id, (bar, Instant::now()));
        }
    }

    fn advanced(&self, tenant: &Tenant, doing: &str, bytes: u64) {
        if let Some(bars) = &self.bars
            && let Some((bar, started)) = bars.in_flight.lock().unwrap_or_else(|p| p.into_inner()).get(&tenant.id)
        {
            let seconds = started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!("{doing} {}  {}/s", format_bytes(bytes), format_bytes((bytes as f64 / seconds) as u64)));
        }
    }

    fn finished(&self, tenant: &Tenant, verb: &str, message: &str) {
        self.done_with(tenant);
        self.out.status(verb, message);
    }

    fn failed(&self, tenant: &Tenant, error: &str) {
        self.done_with(tenant);
        self.out.failure("Failed", format!("{tenant}: {error}"));
    }

    fn finish(&self) {
        if let Some(bars) = &self.bars {
            bars.overall.finish_and_clear();
        }
        self.out.stop_bars();
    }
}
