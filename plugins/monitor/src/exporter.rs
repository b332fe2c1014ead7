//! Prometheus metrics: the recorder core's counters go to, and the fleet gauges a background
//! sampler refreshes. A scrape renders what is recorded and runs no query, so it costs the same
//! at ten tenants as at ten thousand; the sampler asks the registry and one query per database
//! server every `sample_interval_secs`, at most `sample_queries` at once.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use metrics::{counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use tenancy_core::{Tenancy, TenantStatus};

use crate::census::Census;
use crate::config::MonitorConfig;

/// Tenants by `status`.
pub const TENANTS: &str = "tenancy_tenants";
/// Bytes of every tenant database together.
pub const FLEET_BYTES: &str = "tenancy_fleet_database_bytes";
/// Sessions connected to tenant databases, by `server` (all processes, as the server counts).
pub const SERVER_CONNECTIONS: &str = "tenancy_server_connections";
/// Whether the sampler could ask a `server`: 1 or 0.
pub const SERVER_UP: &str = "tenancy_server_up";
/// Tenants whose last migration run failed.
pub const FAILING_TENANTS: &str = "tenancy_tenants_with_migration_failures";
/// This process's open tenant pools.
pub const POOLS_OPEN: &str = "tenancy_pools_open";
/// Connections this process's pools may hold, reserved from its budget.
pub const POOL_CONNECTIONS_RESERVED: &str = "tenancy_pool_connections_reserved";
/// The connection budget of this process.
pub const CONNECTION_BUDGET: &str = "tenancy_connection_budget";
/// Bytes of the largest tenants' databases, by `tenant` id, and of the rest as `tenant="other"`
/// (only with `tenant_series` above 0).
pub const TENANT_BYTES: &str = "tenancy_tenant_database_bytes";
/// Tenants summed into `tenant="other"` rather than given a series.
pub const TENANT_SERIES_FOLDED: &str = "tenancy_tenant_series_folded";
/// Samples taken.
pub const SAMPLES: &str = "tenancy_monitor_samples_total";
/// Samples that could not read the registry.
pub const SAMPLE_ERRORS: &str = "tenancy_monitor_sample_errors_total";
/// How long the last sample took.
pub const SAMPLE_SECONDS: &str = "tenancy_monitor_sample_duration_seconds";
/// When the last sample was taken (Unix time).
pub const SAMPLE_TIME: &str = "tenancy_monitor_last_sample_timestamp_seconds";

/// The label of the series that sums the tenants without one of their own.
pub const OTHER: &str = "other";

/// Histogram buckets for durations, in seconds: a lease wait to a long migration.
const DURATION_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use. Gauges not refreshed for three
/// sample intervals are dropped (a server no longer in the configuration, say).
///
/// # Errors
/// When the application installed another `metrics` recorder first.
pub fn recorder(config: &MonitorConfig) -> anyhow::Result<PrometheusHandle> {
    let installed = RECORDER.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .idle_timeout(MetricKindMask::GAUGE, Some(config.sample_interval() * 3))
            .set_buckets(&DURATION_BUCKETS)
            .map_err(|err| err.to_string())?;
        let handle = builder.install_recorder().map_err(|err| format!("cannot install the Prometheus recorder: {err}"))?;
        tenancy_core::metrics::describe();
        describe();
        Ok(handle)
    });
    installed.clone().map_err(anyhow::Error::msg)
}

fn describe() {
    describe_gauge!(TENANTS, "Tenants by status");
    describe_gauge!(FLEET_BYTES, metrics::Unit::Bytes, "Bytes of all tenant databases");
    describe_gauge!(SERVER_CONNECTIONS, "Sessions connected to tenant databases, by server");
    describe_gauge!(SERVER_UP, "Whether the sampler could query the server");
    describe_gauge!(FAILING_TENANTS, "Tenants whose last migration run failed");
    describe_gauge!(POOLS_OPEN, "Tenant pools open in this process");
    describe_gauge!(POOL_CONNECTIONS_RESERVED, "Connections reserved by this process's pools");
    describe_gauge!(CONNECTION_BUDGET, "Connection budget of this process");
    describe_gauge!(TENANT_SERIES_FOLDED, "Tenants summed into tenant=\"other\"");
    describe_counter!(SAMPLES, "Fleet samples taken");
    describe_counter!(SAMPLE_ERRORS, "Fleet samples that failed");
    describe_gauge!(SAMPLE_SECONDS, metrics::Unit::Seconds, "Duration of the last fleet sample");
    describe_gauge!(SAMPLE_TIME, metrics::Unit::Seconds, "Unix time of the last fleet sample");
}

/// Samples the fleet every interval until dropped, and keeps the recorder's histograms drained.
pub struct Sampler {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling (the first sample at once).
    pub fn start(tenancy: Arc<Tenancy>, config: MonitorConfig, handle: PrometheusHandle) -> Self {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(config.sample_interval());
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // A server that stops answering must not stop the samples: each gets an interval.
                if tokio::time::timeout(config.sample_interval(), sample(&tenancy, &config)).await.is_err() {
                    counter!(SAMPLE_ERRORS).increment(1);
                    tracing::warn!("a fleet sample took longer than sample_interval_secs and was abandoned");
                }
                handle.run_upkeep();
            }
        });
        Self { task: Some(task) }
    }
}

impl Sampler {
    /// Stops sampling, and waits until the task (and its hold on the tenancy) is gone.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// One sample: the registry (two queries) and the servers (one query each).
pub async fn sample(tenancy: &Tenancy, config: &MonitorConfig) {
    let started = Instant::now();
    counter!(SAMPLES).increment(1);
    let tenants = match tenancy.registry().list(None).await {
        Ok(tenants) => tenants,
        Err(err) => {
            counter!(SAMPLE_ERRORS).increment(1);
            tracing::warn!(error = %tenancy_core::command::format::error_chain(&err), "the monitor cannot read the registry");
            return;
        }
    };
    let failing = tenancy.registry().last_migration_failures().await;
    let census = Census::take(tenancy, &tenants, config.sample_queries).await;
    record_largest(&census, config.tenant_series);
    gauge!(FLEET_BYTES).set(census.total_bytes() as f64);
    for (server, connections) in &census.servers {
        gauge!(SERVER_UP, "server" => server.clone()).set(1.0);
        gauge!(SERVER_CONNECTIONS, "server" => server.clone()).set(*connections as f64);
    }
    for server in census.unreachable.keys() {
        gauge!(SERVER_UP, "server" => server.clone()).set(0.0);
    }
    let pools = tenancy.connections().stats();
    gauge!(POOLS_OPEN).set(pools.open_pools as f64);
    gauge!(POOL_CONNECTIONS_RESERVED).set(f64::from(pools.reserved_connections));
    gauge!(CONNECTION_BUDGET).set(f64::from(tenancy.config().tenant_database.connection_budget));
    // The tenant counts last: a scrape that sees this sample's counts sees the rest of it too
    // (its sizes and per-tenant series), never the counts alone.
    for status in TenantStatus::ALL {
        gauge!(TENANTS, "status" => status.as_str()).set(tenants.iter().filter(|t| t.status == status).count() as f64);
    }
    match failing {
        Ok(failures) => gauge!(FAILING_TENANTS).set(failures.len() as f64),
        Err(_) => counter!(SAMPLE_ERRORS).increment(1),
    }
    gauge!(SAMPLE_SECONDS).set(started.elapsed().as_secs_f64());
    gauge!(SAMPLE_TIME).set(chrono::Utc::now().timestamp() as f64);
}

/// The per-tenant series of the last sample, in the text format. Kept here rather than as
/// gauges of the recorder, which cannot remove a series: a tenant that leaves the top K must
/// lose its series at once, not show a stale figure until an idle timeout.
static LARGEST: RwLock<String> = RwLock::new(String::new());

/// The `k` largest tenants get a series each; the rest are summed under `tenant="other"`.
fn record_largest(census: &Census, k: usize) {
    if k == 0 {
        return;
    }
    let mut sizes: Vec<_> = census.tenants.iter().map(|(id, footprint)| (footprint.size_bytes, *id)).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let folded = sizes.split_off(k.min(sizes.len()));
    let mut text = format!(
        "# HELP {TENANT_BYTES} Bytes of the largest tenants' databases; the rest as tenant=\"{OTHER}\"\n# TYPE {TENANT_BYTES} gauge\n"
    );
    for (bytes, id) in &sizes {
        // Tenant ids are UUIDs: nothing in them needs escaping.
        let _ = writeln!(text, "{TENANT_BYTES}{{tenant=\"{id}\"}} {bytes}");
    }
    let _ = writeln!(text, "{TENANT_BYTES}{{tenant=\"{OTHER}\"}} {}", folded.iter().map(|(bytes, _)| bytes).sum::<u64>());
    *LARGEST.write().unwrap_or_else(PoisonError::into_inner) = text;
    gauge!(TENANT_SERIES_FOLDED).set(folded.len() as f64);
}

/// The exposition: what the recorder holds, then the per-tenant series of the last sample.
pub fn render(handle: &PrometheusHandle) -> String {
    let mut text = handle.render();
    text.push_str(&LARGEST.read().unwrap_or_else(PoisonError::into_inner));
    text
}

/// The `/metrics` handler's answer: the text format, version 0.0.4.
pub fn scrape(handle: &PrometheusHandle) -> axum::response::Response {
    use axum::response::IntoResponse;
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render(handle)).into_response()
}
