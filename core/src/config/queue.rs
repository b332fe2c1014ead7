//! `[queue]`: where tenant-aware jobs are kept and how workers treat them.

use serde::{Deserialize, Serialize};

/// `[queue]`: the job engine, queue naming, retries and what happens to a suspended tenant's jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Where jobs are kept: `database` (the registry database, through apalis) or `nats`
    /// (NATS JetStream, for workers on several machines).
    pub engine: QueueEngineKind,
    /// The queue a job goes to when it names none. `{tenant_id}` in it gives every tenant a
    /// queue of its own (`tenant_{tenant_id}`); without it all tenants share one queue.
    pub default_queue: String,
    /// The queue of central jobs (those that run outside any tenant).
    pub central_queue: String,
    /// How many times a job runs before it is failed for good (first run included).
    pub attempts: u32,
    /// The wait before the first retry; each further retry waits twice as long as the one before.
    pub backoff_secs: u64,
    /// The most a retry waits.
    pub max_backoff_secs: u64,
    /// How long a job may run before another worker takes it as abandoned (its worker died):
    /// JetStream's `ack_wait`; on the database engine, how long a worker's heartbeats (one a
    /// second) may be missed.
    pub visibility_timeout_secs: u64,
    /// What a worker does with a job of a suspended tenant: `fail` it (shown by `queue failed`)
    /// or `wait` until the tenant is reactivated, looking again every `wait_secs`.
    pub suspended: SuspendedJobs,
    /// How long a waiting job (suspended or still-being-created tenant) waits before it is looked at again.
    pub wait_secs: u64,
    /// The NATS server (`nats` engine).
    pub nats_url: String,
    /// Names the JetStream streams (`{PREFIX}_JOBS`, `{PREFIX}_FAILED`) and subjects (`{prefix}.jobs.…`):
    /// installations sharing a NATS server need different prefixes. Letters, digits, `_` and `-`.
    pub nats_prefix: String,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            engine: QueueEngineKind::Database,
            default_queue: "default".into(),
            central_queue: "central".into(),
            attempts: 3,
            backoff_secs: 5,
            max_backoff_secs: 600,
            visibility_timeout_secs: 60,
            suspended: SuspendedJobs::Fail,
            wait_secs: 60,
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_prefix: "tenancy".into(),
        }
    }
}

/// Where jobs are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueEngineKind {
    /// The registry database (SQLite or PostgreSQL) through apalis' SQL storage.
    Database,
    /// NATS JetStream.
    Nats,
}

/// What becomes of a suspended tenant's jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SuspendedJobs {
    /// Failed, with the reason; `queue retry` runs them again once the tenant is active.
    Fail,
    /// Kept, and looked at again every `wait_secs`.
    Wait,
}

/// The longest queue name: a NATS subject token and an apalis queue, with room for a tenant id.
pub const MAX_QUEUE_NAME: usize = 80;

/// Checks a queue name (after `{tenant_id}` is filled in): letters, digits, `_` and `-`, so it is
/// one NATS subject token and safe in every message.
///
/// # Errors
/// What is wrong with it.
pub fn check_queue_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_QUEUE_NAME {
        return Err(format!("a queue name has 1 to {MAX_QUEUE_NAME} characters"));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        return Err(format!("`{bad}` is not allowed in a queue name: use letters, digits, `_` and `-`"));
    }
    Ok(())
}

impl QueueConfig {
    /// Checks what serde cannot; returns the key at fault and the problem.
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let key = |k: &str| format!("queue.{k}");
        let example_id = "0190f5c2-7a3e-7cc1-9a55-0d5c3e1f2a4b";
        check_queue_name(&self.default_queue.replace("{tenant_id}", example_id)).map_err(|err| (key("default_queue"), err))?;
        check_queue_name(&self.central_queue).map_err(|err| (key("central_queue"), err))?;
        if self.central_queue.contains("{tenant_id}") {
            return Err((key("central_queue"), "the central queue belongs to no tenant: remove `{tenant_id}`".into()));
        }
        if self.default_queue == self.central_queue {
            return Err((key("central_queue"), "central jobs need a queue of their own, not `default_queue`".into()));
        }
        check_queue_name(&self.nats_prefix).map_err(|err| (key("nats_prefix"), err))?;
        for (name, value) in [
            ("attempts", u64::from(self.attempts)),
            ("visibility_timeout_secs", self.visibility_timeout_secs),
            ("wait_secs", self.wait_secs),
        ] {
            if value == 0 {
                return Err((key(name), format!("`{name}` must be at least 1")));
            }
        }
        if self.max_backoff_secs < self.backoff_secs {
            return Err((key("max_backoff_secs"), "the longest wait is shorter than the first one (`backoff_secs`)".into()));
        }
        url::Url::parse(&self.nats_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "nats" | "tls") && url.host_str().is_some())
            .ok_or_else(|| (key("nats_url"), format!("`{}` is not a NATS address such as nats://127.0.0.1:4222", self.nats_url)))?;
        Ok(())
    }

    /// The queue of `tenant`'s jobs that name none.
    pub fn tenant_queue(&self, tenant: &crate::TenantId) -> String {
        self.default_queue.replace("{tenant_id}", &tenant.to_string())
    }

    /// Whether every tenant has a queue of its own.
    pub fn per_tenant_queues(&self) -> bool {
        self.default_queue.contains("{tenant_id}")
    }
}
