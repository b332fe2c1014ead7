//! What tenancy records through the [`metrics`] facade, for whichever recorder the application
//! installs (the monitor plugin installs a Prometheus one). With no recorder installed every
//! call is a no-op.
//!
//! No series carries a tenant id: at ten thousand tenants a per-tenant label multiplies every
//! series ten thousand times (Prometheus' guidance on unbounded label sets). Labels here take a
//! handful of values each: a cache store's kind, a provisioning step's name, a route mode.

use std::cell::RefCell;
use std::time::Duration;

use metrics::{Counter, Unit, counter, describe_counter, describe_histogram, histogram};

/// Tenant pools opened (a cold tenant; a warm one opens none).
pub const POOL_OPENS: &str = "tenancy_pool_opens_total";
/// Leases taken on tenant pools: one per context entered.
pub const POOL_LEASES: &str = "tenancy_pool_leases_total";
/// Times a lease had to wait for the connection budget.
pub const POOL_BUDGET_WAITS: &str = "tenancy_pool_budget_waits_total";
/// How long those waits lasted.
pub const POOL_BUDGET_WAIT_SECONDS: &str = "tenancy_pool_budget_wait_seconds";
/// Idle pools closed to make room for another tenant's (`reason="budget"`) or after the idle
/// timeout (`reason="idle"`).
pub const POOL_EVICTIONS: &str = "tenancy_pool_evictions_total";
/// Migrations applied (or reverted), by `direction`.
pub const MIGRATIONS_APPLIED: &str = "tenancy_migrations_applied_total";
/// Migrations that failed.
pub const MIGRATIONS_FAILED: &str = "tenancy_migrations_failed_total";
/// How long each migration took.
pub const MIGRATION_SECONDS: &str = "tenancy_migration_duration_seconds";
/// Cache reads that found their key, by `store`.
pub const CACHE_HITS: &str = "tenancy_cache_hits_total";
/// Cache reads that did not, by `store`.
pub const CACHE_MISSES: &str = "tenancy_cache_misses_total";
/// How long each provisioning step took, by `step` and `outcome`.
pub const PROVISIONING_STEP_SECONDS: &str = "tenancy_provisioning_step_duration_seconds";
/// Requests through the web layer, by how they were identified (`central`, `tenant`, `unknown`,
/// `none` for a malformed host) and `outcome` (`served`, `bad_host`, `unavailable`, `refused`).
pub const WEB_REQUESTS: &str = "tenancy_web_requests_total";
/// Jobs queued.
pub const JOBS_DISPATCHED: &str = "tenancy_jobs_dispatched_total";
/// Jobs a worker finished with, by `outcome` (`done`, `retry`, `failed`, `waiting`).
pub const JOBS_RUN: &str = "tenancy_jobs_total";
/// How long each job ran.
pub const JOB_SECONDS: &str = "tenancy_job_duration_seconds";

/// Gives every series above its help text and unit, for recorders that show them. Call once
/// after installing a recorder.
pub fn describe() {
    describe_counter!(POOL_OPENS, "Tenant connection pools opened");
    describe_counter!(POOL_LEASES, "Leases taken on tenant connection pools");
    describe_counter!(POOL_BUDGET_WAITS, "Leases that waited for the connection budget");
    describe_histogram!(POOL_BUDGET_WAIT_SECONDS, Unit::Seconds, "Time spent waiting for the connection budget");
    describe_counter!(POOL_EVICTIONS, "Idle tenant pools closed, by reason");
    describe_counter!(MIGRATIONS_APPLIED, "Tenant migrations applied or reverted, by direction");
    describe_counter!(MIGRATIONS_FAILED, "Tenant migrations that failed");
    describe_histogram!(MIGRATION_SECONDS, Unit::Seconds, "Duration of each tenant migration");
    describe_counter!(CACHE_HITS, "Cache reads that found their key, by store");
    describe_counter!(CACHE_MISSES, "Cache reads that did not, by store");
    describe_histogram!(PROVISIONING_STEP_SECONDS, Unit::Seconds, "Duration of each tenant provisioning step, by step and outcome");
    describe_counter!(JOBS_DISPATCHED, "Jobs queued");
    describe_counter!(JOBS_RUN, "Jobs a worker finished with, by outcome");
    describe_histogram!(JOB_SECONDS, Unit::Seconds, "Duration of each job run");
    describe_counter!(WEB_REQUESTS, "Requests through the tenant layer, by identification and outcome");
}

pub(crate) fn pool_opened() {
    counter!(POOL_OPENS).increment(1);
}

pub(crate) fn pool_leased() {
    with_hot_counters(|hot| hot.pool_leases.increment(1));
}

pub(crate) fn budget_waited(waited: Duration) {
    counter!(POOL_BUDGET_WAITS).increment(1);
    histogram!(POOL_BUDGET_WAIT_SECONDS).record(waited.as_secs_f64());
}

pub(crate) fn pools_evicted(reason: &'static str, pools: usize) {
    counter!(POOL_EVICTIONS, "reason" => reason).increment(pools as u64);
}

pub(crate) fn migration_ran(direction: &'static str, took: Duration) {
    counter!(MIGRATIONS_APPLIED, "direction" => direction).increment(1);
    histogram!(MIGRATION_SECONDS).record(took.as_secs_f64());
}

pub(crate) fn migration_failed() {
    counter!(MIGRATIONS_FAILED).increment(1);
}

pub(crate) fn cache_read(store: &'static str, hit: bool) {
    if hit {
        counter!(CACHE_HITS, "store" => store).increment(1);
    } else {
        counter!(CACHE_MISSES, "store" => store).increment(1);
    }
}

pub(crate) fn provisioning_step(step: &str, outcome: &'static str, took: Duration) {
    histogram!(PROVISIONING_STEP_SECONDS, "step" => step.to_owned(), "outcome" => outcome).record(took.as_secs_f64());
}

#[cfg(feature = "web")]
pub(crate) fn web_request(identified: &'static str, outcome: &'static str) {
    match WEB_OUTCOMES.iter().position(|&pair| pair == (identified, outcome)) {
        Some(index) => with_hot_counters(|hot| hot.web_requests[index].increment(1)),
        None => counter!(WEB_REQUESTS, "identified" => identified, "outcome" => outcome).increment(1),
    }
}

/// The label pairs of [`WEB_REQUESTS`] the web layer records.
#[cfg(feature = "web")]
const WEB_OUTCOMES: [(&str, &str); 8] = [
    ("tenant", "served"),
    ("tenant", "refused"),
    ("tenant", "unavailable"),
    ("central", "served"),
    ("central", "unavailable"),
    ("unknown", "served"),
    ("unknown", "unavailable"),
    ("none", "bad_host"),
];

/// The counters every request moves, registered once per thread and recorder. Registering looks
/// the series up by its name and labels (building and hashing the key), which costs far more
/// than counting; a recorder installed later (or a test's own) is noticed by its address.
struct HotCounters {
    recorder: *const (),
    pool_leases: Counter,
    #[cfg(feature = "web")]
    web_requests: [Counter; WEB_OUTCOMES.len()],
}

impl HotCounters {
    fn register(recorder: *const ()) -> Self {
        Self {
            recorder,
            pool_leases: counter!(POOL_LEASES),
            #[cfg(feature = "web")]
            web_requests: WEB_OUTCOMES
                .map(|(identified, outcome)| counter!(WEB_REQUESTS, "identified" => identified, "outcome" => outcome)),
        }
    }
}

fn with_hot_counters(count: impl FnOnce(&HotCounters)) {
    thread_local! {
        static HOT: RefCell<Option<HotCounters>> = const { RefCell::new(None) };
    }
    let recorder = metrics::with_recorder(|recorder| std::ptr::from_ref(recorder).cast::<()>());
    HOT.with_borrow_mut(|hot| {
        if hot.as_ref().is_none_or(|counters| counters.recorder != recorder) {
            *hot = Some(HotCounters::register(recorder));
        }
        if let Some(counters) = hot {
            count(counters);
        }
    });
}

#[cfg(feature = "queue")]
pub(crate) fn job_dispatched() {
    counter!(JOBS_DISPATCHED).increment(1);
}

#[cfg(feature = "queue")]
pub(crate) fn job_ran(outcome: &'static str, took: Duration) {
    counter!(JOBS_RUN, "outcome" => outcome).increment(1);
    histogram!(JOB_SECONDS).record(took.as_secs_f64());
}
