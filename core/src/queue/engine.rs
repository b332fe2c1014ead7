//! The small trait each job engine implements, and what passes through it.

use std::time::Duration;

use serde::Serialize;

use crate::TenantId;

/// Whose job it is. Engines keep it in the job's metadata (apalis) or headers (JetStream), apart
/// from the payload, and workers trust nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Runs in this tenant's context, or not at all.
    Tenant(TenantId),
    /// Runs outside any tenant.
    Central,
}

impl Scope {
    /// The form kept in metadata and headers: the tenant id, or `central`.
    pub fn encode(&self) -> String {
        match self {
            Self::Tenant(id) => id.to_string(),
            Self::Central => CENTRAL.to_owned(),
        }
    }

    /// Reads [`Scope::encode`]'s form; `None` for anything else (a job nobody can run).
    pub fn decode(text: &str) -> Option<Self> {
        if text == CENTRAL {
            return Some(Self::Central);
        }
        TenantId::parse(text).ok().map(Self::Tenant)
    }

    /// The tenant, if any.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Self::Tenant(id) => Some(id),
            Self::Central => None,
        }
    }
}

const CENTRAL: &str = "central";

/// A job on its way into an engine.
#[derive(Debug, Clone)]
pub struct OutgoingJob {
    /// The queue it goes to (checked).
    pub queue: String,
    /// The registered name of its type.
    pub name: String,
    /// Whose job it is.
    pub scope: Scope,
    /// The job itself, as JSON.
    pub payload: serde_json::Value,
    /// Not run before this much time has passed.
    pub delay: Option<Duration>,
    /// Runs at most this many times.
    pub max_attempts: u32,
    /// A second job with the same key (in the same queue) is not queued, where the engine can tell.
    pub idempotency_key: Option<String>,
}

/// A job an engine hands to a worker.
#[derive(Debug, Clone)]
pub struct IncomingJob {
    /// The engine's id for it (what `queue retry` takes).
    pub id: String,
    /// The queue it came from.
    pub queue: String,
    /// The registered name of its type, from its metadata.
    pub name: Option<String>,
    /// Whose job it is, from its metadata; `None` when missing or unreadable (it is failed).
    pub scope: Option<Scope>,
    /// The job, as JSON.
    pub payload: serde_json::Value,
    /// Which run this is, from 1.
    pub attempt: u32,
    /// The most runs it gets.
    pub max_attempts: u32,
}

/// What a worker decided about a job it was handed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and succeeded: remove it.
    Done,
    /// It failed and has runs left: run it again after `after`.
    Retry {
        /// Why it failed this time.
        error: String,
        /// The backoff.
        after: Duration,
    },
    /// It failed for good (or must never run): keep it in the failed set with the reason.
    Fail {
        /// Why, for `queue failed`.
        reason: String,
    },
    /// It cannot run yet (its tenant is suspended or still being created): look again after
    /// `after`, without counting a run.
    Wait {
        /// Why, for logs.
        reason: String,
        /// When to look again.
        after: Duration,
    },
}

/// Counts of one queue, or of one tenant's jobs.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Waiting to run (delayed ones included).
    pub pending: u64,
    /// Taken by a worker.
    pub running: u64,
    /// Failed for good.
    pub failed: u64,
    /// Seconds the oldest waiting job has waited, if any waits.
    pub oldest_pending_secs: Option<u64>,
}

/// What `queue status` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueStatus {
    /// The engine (`database` or `nats`) and where it is.
    pub engine: String,
    /// Per queue, by name.
    pub queues: Vec<(String, Counts)>,
    /// Per tenant id (`central` for central jobs).
    pub tenants: Vec<(String, Counts)>,
}

/// A job in the failed set.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FailedJob {
    /// The engine's id, for `queue retry ID`.
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// Its job type, if it had one.
    pub name: Option<String>,
    /// Its tenant id, or `central`, as recorded.
    pub tenant: Option<String>,
    /// Runs it had.
    pub attempts: u32,
    /// Why it failed.
    pub reason: String,
}

/// Which failed jobs `retry` puts back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryTarget {
    /// One, by id.
    One(String),
    /// Every failed job.
    AllFailed,
}

/// Runs the jobs an engine hands over; the engine records the outcome.
#[async_trait::async_trait]
pub trait JobRunner: Send + Sync {
    /// Runs `job` (never panics: a panicking job is a failed run).
    async fn run(&self, job: IncomingJob) -> Outcome;
}

/// A job engine: apalis' SQL storage in the registry database, or NATS JetStream. Each keeps its
/// jobs, hands them to workers, redelivers those of a worker that died, and keeps the failed set.
#[async_trait::async_trait]
pub trait QueueEngine: Send + Sync {
    /// `database` or `nats`, and where: for messages.
    fn describe(&self) -> String;

    /// Queues `job`; returns its id (for an idempotency key already queued, the id is `None`).
    async fn push(&self, job: OutgoingJob) -> Result<Option<String>, EngineError>;

    /// Runs jobs from `queues`, `concurrency` at a time, through `runner`, until `stop` turns
    /// true; then lets the running jobs finish (or hands them back) and returns.
    async fn work(
        &self,
        queues: &[String],
        concurrency: usize,
        runner: std::sync::Arc<dyn JobRunner>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), EngineError>;

    /// Counts per queue and per tenant.
    async fn status(&self) -> Result<QueueStatus, EngineError>;

    /// The failed set, optionally one tenant's (by id), oldest first.
    async fn failed(&self, tenant: Option<&TenantId>) -> Result<Vec<FailedJob>, EngineError>;

    /// Puts failed jobs back to run again (attempts start over); returns how many.
    async fn retry(&self, target: &RetryTarget) -> Result<u64, EngineError>;

    /// Removes every job of `tenant` (waiting or failed; running ones finish); returns how many.
    async fn clear(&self, tenant: &TenantId) -> Result<u64, EngineError>;
}

/// An engine could not do what it was asked.
#[derive(Debug, thiserror::Error)]
#[error("{engine}: {message}")]
pub struct EngineError {
    /// `database` or `nats`, and where.
    pub engine: String,
    /// What went wrong.
    pub message: String,
}

impl EngineError {
    pub(crate) fn new(engine: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self { engine: engine.into(), message: message.to_string() }
    }
}

/// Resolves once `stop` says stop (or its sender is gone).
pub(crate) async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Runs each queue's worker as a task of its own, until all have returned; the first error is
/// returned, a panic goes on unwinding here. Not `join_all`: that polls every future whenever one
/// is woken, and an idle apalis worker polled fetches again, so each wake of a busy queue cost a
/// query per idle queue (measured: 127 fetches of the empty central queue during one benchmark
/// run of 300 jobs).
pub(crate) async fn each_queue_in_its_task<W>(workers: impl IntoIterator<Item = W>) -> Result<(), EngineError>
where
    W: Future<Output = Result<(), EngineError>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for worker in workers {
        tasks.spawn(worker);
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                first_error.get_or_insert(err);
            }
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // Cancelled: only by dropping this future, which aborts the rest too.
            Err(_) => {}
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The wait before run `attempt + 1` after run `attempt` failed: doubling from `first`, at most `max`.
pub fn backoff(first: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    first.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// An idle queue's worker is polled when it is woken, not whenever a busy one is.
    #[tokio::test]
    async fn an_idle_queues_worker_is_not_polled_when_a_busy_one_wakes() {
        let idle_polls = Arc::new(AtomicUsize::new(0));
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let idle = {
            let polls = idle_polls.clone();
            let mut finished = finished;
            async move {
                std::future::poll_fn(|cx| {
                    polls.fetch_add(1, Ordering::Relaxed);
                    std::pin::Pin::new(&mut finished).poll(cx).map(|_| ())
                })
                .await;
                Ok(())
            }
        };
        let busy = async move {
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
            let _ = done.send(());
            Ok(())
        };
        let workers: Vec<futures::future::BoxFuture<'static, Result<(), EngineError>>> = vec![Box::pin(idle), Box::pin(busy)];
        tokio::time::timeout(Duration::from_secs(10), each_queue_in_its_task(workers)).await.unwrap().unwrap();
        // Once to start waiting, once when the busy one is done; `join_all` made it 100 more.
        assert!(idle_polls.load(Ordering::Relaxed) <= 3, "polled {} times", idle_polls.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn every_worker_runs_to_its_end_and_the_first_error_is_returned() {
        let finished = Arc::new(AtomicUsize::new(0));
        let worker = |fails: bool| {
            let finished = finished.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(if fails { 1 } else { 50 })).await;
                finished.fetch_add(1, Ordering::Relaxed);
                if fails { Err(EngineError::new("nats", "gone")) } else { Ok(()) }
            }
        };
        let err = each_queue_in_its_task([worker(false), worker(true), worker(false)]).await.unwrap_err();
        assert_eq!(err.to_string(), "nats: gone");
        assert_eq!(finished.load(Ordering::Relaxed), 3, "a failing queue does not cut the others short");
    }
}
