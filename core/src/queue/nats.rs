//! The distributed engine: NATS JetStream.
//!
//! Jobs are messages on `{prefix}.jobs.{queue}.{tenant id | central}` in a work-queue stream
//! (`{prefix}_jobs`), each queue read by one durable pull consumer that all workers share.
//! Whose job it is travels in headers. `ack_wait` is the visibility timeout (a running job
//! reports progress to keep it); a worker that dies leaves its jobs unacknowledged, and JetStream
//! delivers them again. `Nats-Msg-Id` de-duplicates, within the stream's duplicate window, the
//! jobs given an idempotency key and the next step of each job (see `handle`).
//!
//! The consumer's `max_deliver` is left unlimited on purpose: a message that reaches it is dropped
//! from the consumer's view with only an advisory, which would lose the job. Attempts are counted
//! in a header instead: a retry publishes the job again with the next attempt number and a
//! not-before time, then acknowledges the old message; a job that fails for good is published to
//! the failed stream (`{prefix}_failed`) with its reason.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures::{FutureExt, StreamExt};
use tokio::sync::{Semaphore, watch};

use super::engine::{
    Counts, EngineError, FailedJob, IncomingJob, JobRunner, Outcome, OutgoingJob, QueueEngine, QueueStatus, RetryTarget, Scope,
    each_queue_in_its_task,
};
use crate::TenantId;
use crate::config::QueueConfig;

mod header {
    pub const TENANT: &str = "Tenancy-Tenant";
    pub const JOB: &str = "Tenancy-Job";
    pub const ID: &str = "Tenancy-Id";
    /// Runs the job has had before this message.
    pub const ATTEMPTS: &str = "Tenancy-Attempts";
    pub const MAX_ATTEMPTS: &str = "Tenancy-Max-Attempts";
    /// Unix milliseconds before which the job is not run.
    pub const NOT_BEFORE: &str = "Tenancy-Not-Before";
    pub const REASON: &str = "Tenancy-Reason";
    pub const MSG_ID: &str = "Nats-Msg-Id";
}

pub(crate) struct NatsEngine {
    context: jetstream::Context,
    prefix: String,
    url: String,
    ack_wait: Duration,
}

impl NatsEngine {
    pub(crate) async fn connect(config: &QueueConfig) -> Result<Self, EngineError> {
        let url = config.nats_url.clone();
        let where_ = format!("nats {url}");
        let client = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5)).retry_on_initial_connect().connect(&url);
        // `retry_on_initial_connect` returns at once and connects in the background; a first
        // request then waits for it, bounded below.
        let client = client.await.map_err(|err| EngineError::new(&where_, format!("cannot connect: {err}")))?;
        let context = jetstream::new(client);
        let engine = Self {
            context,
            prefix: config.nats_prefix.clone(),
            url: where_,
            ack_wait: Duration::from_secs(config.visibility_timeout_secs),
        };
        let set_up = async {
            engine.jobs_stream().await?;
            engine.failed_stream().await
        };
        tokio::time::timeout(Duration::from_secs(10), set_up)
            .await
            .map_err(|_| engine.error("no answer within 10 s: is the server running, with JetStream enabled (-js)?"))??;
        Ok(engine)
    }

    fn error(&self, err: impl std::fmt::Display) -> EngineError {
        EngineError::new(self.url.clone(), err)
    }

    async fn jobs_stream(&self) -> Result<stream::Stream, EngineError> {
        self.context
            .get_or_create_stream(stream::Config {
                name: format!("{}_jobs", self.prefix),
                subjects: vec![format!("{}.jobs.>", self.prefix)],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|err| self.error(format!("cannot open the jobs stream: {err}")))
    }

    async fn failed_stream(&self) -> Result<stream::Stream, EngineError> {
        self.context
            .get_or_create_stream(stream::Config {
                name: format!("{}_failed", self.prefix),
                subjects: vec![format!("{}.failed.>", self.prefix)],
                storage: stream::StorageType::File,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|err| self.error(format!("cannot open the failed stream: {err}")))
    }

    async fn consumer(&self, queue: &str) -> Result<consumer::PullConsumer, EngineError> {
        let name = format!("{}_{queue}", self.prefix);
        self.jobs_stream()
            .await?
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: format!("{}.jobs.{queue}.>", self.prefix),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    max_deliver: -1,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|err| self.error(format!("cannot open the consumer of queue `{queue}`: {err}")))
    }

    fn subject(&self, kind: &str, queue: &str, scope: &str) -> String {
        format!("{}.{kind}.{queue}.{scope}", self.prefix)
    }

    async fn publish(&self, subject: String, headers: HeaderMap, payload: bytes::Bytes) -> Result<bool, EngineError> {
        let ack = self
            .context
            .send_publish(subject, jetstream::message::PublishMessage::build().headers(headers).payload(payload))
            .await
            .map_err(|err| self.error(format!("cannot publish: {err}")))?
            .await
            .map_err(|err| self.error(format!("the server did not confirm a publish: {err}")))?;
        Ok(!ack.duplicate)
    }

    /// Every message of the failed stream matching `subject`, oldest first.
    async fn failed_messages(&self, subject: &str) -> Result<Vec<jetstream::message::StreamMessage>, EngineError> {
        let stream = self.failed_stream().await?;
        let mut messages = Vec::new();
        let mut next = 1;
        loop {
            match stream.direct_get_next_for_subject(subject, Some(next)).await {
                Ok(message) => {
                    next = message.sequence + 1;
                    messages.push(message);
                }
                Err(err) if err.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound => return Ok(messages),
                Err(err) => return Err(self.error(format!("cannot read the failed stream: {err}"))),
            }
        }
    }

    /// Puts one failed message back on its queue with its attempts reset, then removes it.
    async fn requeue_failed(&self, message: &jetstream::message::StreamMessage) -> Result<(), EngineError> {
        let (queue, scope) = queue_and_scope(message.subject.as_str()).ok_or_else(|| self.error("a failed job with a foreign subject"))?;
        let mut headers = message.headers.clone();
        headers.insert(header::ATTEMPTS, "0");
        headers.insert(header::NOT_BEFORE, "0");
        let id = text(&headers, header::ID).unwrap_or_default();
        headers.insert(header::MSG_ID, format!("{id}:retried:{}", message.sequence).as_str());
        self.publish(self.subject("jobs", queue, scope), headers, message.payload.clone()).await?;
        self.failed_stream()
            .await?
            .delete_message(message.sequence)
            .await
            .map_err(|err| self.error(format!("cannot remove failed job {}: {err}", message.sequence)))?;
        Ok(())
    }

    /// Works one queue until `stop`, from a continuous pull stream that keeps up to `batch` (its
    /// share of the worker's concurrency) messages on their way: one pull request per batch, where
    /// asking for as many messages as there were free permits cost a round trip every job or two.
    /// A message is taken from the stream only once a permit is free. One waiting in the stream's
    /// buffer counts against `ack_wait` as a running one does; batches that add up to twice the
    /// concurrency keep that wait short, and a message that waited past it is delivered again, as
    /// any unacknowledged one is (delivery is at least once). At `stop`, the messages already here
    /// and not started are handed back at once; those still on the wire come back after `ack_wait`.
    async fn work_queue(
        self: Arc<Self>,
        queue: String,
        batch: usize,
        permits: Arc<Semaphore>,
        runner: Arc<dyn JobRunner>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        let consumer = self.consumer(&queue).await?;
        let mut running = tokio::task::JoinSet::new();
        'stream: while !*stop.borrow() {
            let messages = consumer.stream().max_messages_per_batch(batch).expires(Duration::from_secs(5)).messages().await;
            let mut messages = match messages {
                Ok(messages) => messages,
                Err(err) => {
                    // The client reconnects by itself; wait a little and ask again.
                    tracing::warn!(queue = %queue, error = %err, "cannot fetch jobs from NATS; retrying");
                    tokio::select! { _ = tokio::time::sleep(Duration::from_millis(500)) => {}, _ = stop.changed() => {} }
                    continue;
                }
            };
            loop {
                let permit = tokio::select! {
                    permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                    _ = stop.changed() => break,
                };
                let message = tokio::select! {
                    message = messages.next() => message,
                    _ = stop.changed() => break,
                };
                match message {
                    Some(Ok(message)) => {
                        let engine = self.clone();
                        let runner = runner.clone();
                        let queue = queue.clone();
                        running.spawn(async move {
                            engine.handle(&queue, message, runner.as_ref()).await;
                            drop(permit);
                        });
                    }
                    Some(Err(err)) => {
                        // Missed heartbeats, a server gone away: ask for a new stream.
                        tracing::warn!(queue = %queue, error = %err, "the job stream from NATS broke; asking again");
                        tokio::select! { _ = tokio::time::sleep(Duration::from_millis(500)) => {}, _ = stop.changed() => {} }
                        continue 'stream;
                    }
                    None => continue 'stream,
                }
                while running.try_join_next().is_some() {}
            }
            // Stopping: hand back at once what arrived and was not started.
            while let Some(Some(Ok(message))) = messages.next().now_or_never() {
                let _ = message.ack_with(AckKind::Nak(None)).await;
            }
            break;
        }
        while running.join_next().await.is_some() {}
        Ok(())
    }

    async fn handle(&self, queue: &str, message: jetstream::Message, runner: &dyn JobRunner) {
        let no_headers = HeaderMap::new();
        let headers = message.headers.as_ref().unwrap_or(&no_headers);
        let not_before = text(headers, header::NOT_BEFORE).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
        let now = unix_millis();
        if not_before > now {
            let _ = message.ack_with(AckKind::Nak(Some(Duration::from_millis(not_before - now)))).await;
            return;
        }
        let attempts: u32 = text(headers, header::ATTEMPTS).and_then(|t| t.parse().ok()).unwrap_or(0);
        let job = IncomingJob {
            id: text(headers, header::ID).unwrap_or_default(),
            queue: queue.to_owned(),
            name: text(headers, header::JOB),
            scope: headers.get(header::TENANT).and_then(|scope| Scope::decode(scope.as_str())),
            payload: serde_json::from_slice(&message.payload).unwrap_or(serde_json::Value::Null),
            attempt: attempts + 1,
            max_attempts: text(headers, header::MAX_ATTEMPTS).and_then(|t| t.parse().ok()).unwrap_or(1),
        };
        // Keeps the message ours while the job runs longer than a third of ack_wait.
        let keep_alive = async {
            loop {
                tokio::time::sleep(self.ack_wait / 3).await;
                let _ = message.ack_with(AckKind::Progress).await;
            }
        };
        let (id, attempt) = (job.id.clone(), job.attempt);
        let outcome = tokio::select! { outcome = runner.run(job) => outcome, () = keep_alive => unreachable!() };
        let scope = || valid_token(headers.get(header::TENANT).map_or("none", |scope| scope.as_str()));
        // What this message leads to is published under an id derived from the message itself:
        // if we crash before acknowledging it, its redelivery publishes the same id, which
        // JetStream drops as a duplicate, and no other message can collide with it.
        let sequence = message.info().map(|info| info.stream_sequence).unwrap_or_default();
        let settled = match outcome {
            Outcome::Done => Ok(()),
            Outcome::Wait { after, .. } => {
                let _ = message.ack_with(AckKind::Nak(Some(after))).await;
                return;
            }
            Outcome::Retry { after, .. } => {
                let mut next = headers.clone();
                next.insert(header::ATTEMPTS, attempt.to_string().as_str());
                next.insert(header::NOT_BEFORE, (unix_millis() + after.as_millis() as u64).to_string().as_str());
                next.insert(header::MSG_ID, format!("{id}:after:{sequence}").as_str());
                self.publish(self.subject("jobs", queue, &scope()), next, message.payload.clone()).await.map(drop)
            }
            Outcome::Fail { reason } => {
                let mut failed = headers.clone();
                failed.insert(header::ATTEMPTS, attempt.to_string().as_str());
                failed.insert(header::REASON, one_line(&reason).as_str());
                failed.insert(header::MSG_ID, format!("{id}:failed:{sequence}").as_str());
                self.publish(self.subject("failed", queue, &scope()), failed, message.payload.clone()).await.map(drop)
            }
        };
        match settled {
            // Acknowledged only once the next step is stored: a crash in between runs it again,
            // and its next step, published under the same id, is dropped as a duplicate. An ack
            // that is lost does the same, so it is not waited for.
            Ok(()) => {
                if let Err(err) = message.ack().await {
                    tracing::warn!(job = %id, error = %err, "a finished job could not be acknowledged; it may run again");
                }
            }
            Err(err) => {
                tracing::warn!(job = %id, error = %err, "a job's outcome could not be stored; it will be delivered again");
                let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
}

/// A header's value as text.
fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|value| value.as_str().to_owned())
}

/// Header values are one line.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// A scope as a subject token; anything odd (a forged header) becomes `invalid`.
fn valid_token(scope: &str) -> String {
    if !scope.is_empty() && scope.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        scope.to_owned()
    } else {
        "invalid".into()
    }
}

/// `{prefix}.{kind}.{queue}.{scope}` → (queue, scope).
fn queue_and_scope(subject: &str) -> Option<(&str, &str)> {
    let mut parts = subject.rsplitn(3, '.');
    let scope = parts.next()?;
    let queue = parts.next()?;
    Some((queue, scope))
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

#[async_trait::async_trait]
impl QueueEngine for NatsEngine {
    fn describe(&self) -> String {
        self.url.clone()
    }

    async fn push(&self, job: OutgoingJob) -> Result<Option<String>, EngineError> {
        let id = uuid::Uuid::now_v7().to_string();
        let mut headers = HeaderMap::new();
        headers.insert(header::TENANT, job.scope.encode().as_str());
        headers.insert(header::JOB, job.name.as_str());
        headers.insert(header::ID, id.as_str());
        headers.insert(header::MAX_ATTEMPTS, job.max_attempts.to_string().as_str());
        // A first attempt and no delay are what a missing header means.
        if let Some(delay) = job.delay {
            headers.insert(header::NOT_BEFORE, (unix_millis() + delay.as_millis() as u64).to_string().as_str());
        }
        // Only a key makes a message id worth its place in the server's duplicate window: a fresh
        // job's id is new by construction, and nothing publishes it twice.
        if let Some(key) = &job.idempotency_key {
            headers.insert(header::MSG_ID, format!("key:{}:{key}", job.queue).as_str());
        }
        let payload = serde_json::to_vec(&job.payload).map_err(|err| self.error(err))?;
        let stored = self.publish(self.subject("jobs", &job.queue, &job.scope.encode()), headers, payload.into()).await?;
        Ok(stored.then_some(id))
    }

    async fn work(
        &self,
        queues: &[String],
        concurrency: usize,
        runner: Arc<dyn JobRunner>,
        stop: watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        let engine =
            Arc::new(Self { context: self.context.clone(), prefix: self.prefix.clone(), url: self.url.clone(), ack_wait: self.ack_wait });
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        // The queues share the permits, so they share the messages kept on their way too: about
        // twice the concurrency in all (one batch running while the next arrives). With a queue
        // per tenant, a batch of `concurrency` each would hold many jobs waiting here (against
        // their `ack_wait`) that another worker could run.
        let batch = (2 * concurrency.max(1)).div_ceil(queues.len().max(1));
        let workers =
            queues.iter().map(|queue| engine.clone().work_queue(queue.clone(), batch, permits.clone(), runner.clone(), stop.clone()));
        each_queue_in_its_task(workers).await
    }

    async fn status(&self) -> Result<QueueStatus, EngineError> {
        let mut status = QueueStatus { engine: self.url.clone(), ..Default::default() };
        let mut queues = std::collections::BTreeMap::<String, Counts>::new();
        let mut tenants = std::collections::BTreeMap::<String, Counts>::new();
        let jobs = self.jobs_stream().await?;
        let mut waiting = jobs.info_with_subjects(format!("{}.jobs.>", self.prefix)).await.map_err(|err| self.error(err))?;
        while let Some(entry) = waiting.next().await {
            let (subject, count) = entry.map_err(|err| self.error(err))?;
            if let Some((queue, scope)) = queue_and_scope(&subject) {
                queues.entry(queue.to_owned()).or_default().pending += count as u64;
                tenants.entry(scope.to_owned()).or_default().pending += count as u64;
            }
        }
        // Delivered and not yet acknowledged: running (or waiting for a not-before time).
        let mut consumers = jobs.consumers();
        while let Some(info) = consumers.next().await {
            let info = info.map_err(|err| self.error(err))?;
            if let Some(queue) = info.name.strip_prefix(&format!("{}_", self.prefix)) {
                let counts = queues.entry(queue.to_owned()).or_default();
                counts.running = info.num_ack_pending as u64;
                counts.pending = counts.pending.saturating_sub(counts.running);
                if let Ok(first) = jobs.get_first_raw_message_by_subject(format!("{}.jobs.{queue}.>", self.prefix), 0).await {
                    let age = time::OffsetDateTime::now_utc() - first.time;
                    counts.oldest_pending_secs = Some(age.whole_seconds().max(0) as u64);
                }
            }
        }
        let mut failed =
            self.failed_stream().await?.info_with_subjects(format!("{}.failed.>", self.prefix)).await.map_err(|err| self.error(err))?;
        while let Some(entry) = failed.next().await {
            let (subject, count) = entry.map_err(|err| self.error(err))?;
            if let Some((queue, scope)) = queue_and_scope(&subject) {
                queues.entry(queue.to_owned()).or_default().failed += count as u64;
                tenants.entry(scope.to_owned()).or_default().failed += count as u64;
            }
        }
        status.queues = queues.into_iter().collect();
        status.tenants = tenants.into_iter().collect();
        Ok(status)
    }

    async fn failed(&self, tenant: Option<&TenantId>) -> Result<Vec<FailedJob>, EngineError> {
        let scope = tenant.map_or_else(|| "*".to_owned(), ToString::to_string);
        let messages = self.failed_messages(&format!("{}.failed.*.{scope}", self.prefix)).await?;
        Ok(messages
            .into_iter()
            .map(|message| FailedJob {
                id: message.sequence.to_string(),
                queue: queue_and_scope(message.subject.as_str()).map(|(queue, _)| queue.to_owned()).unwrap_or_default(),
                name: text(&message.headers, header::JOB),
                tenant: text(&message.headers, header::TENANT),
                attempts: text(&message.headers, header::ATTEMPTS).and_then(|t| t.parse().ok()).unwrap_or(0),
                reason: text(&message.headers, header::REASON).unwrap_or_else(|| "no reason recorded".into()),
            })
            .collect())
    }

    async fn retry(&self, target: &RetryTarget) -> Result<u64, EngineError> {
        let messages = match target {
            RetryTarget::AllFailed => self.failed_messages(&format!("{}.failed.>", self.prefix)).await?,
            RetryTarget::One(id) => {
                let Ok(sequence) = id.parse::<u64>() else { return Ok(0) };
                match self.failed_stream().await?.get_raw_message(sequence).await {
                    Ok(message) => vec![message],
                    Err(_) => return Ok(0),
                }
            }
        };
        for message in &messages {
            self.requeue_failed(message).await?;
        }
        Ok(messages.len() as u64)
    }

    async fn clear(&self, tenant: &TenantId) -> Result<u64, EngineError> {
        let purge = |stream: stream::Stream, kind: &'static str| {
            let subject = format!("{}.{kind}.*.{tenant}", self.prefix);
            async move { stream.purge().filter(subject).await.map(|response| response.purged) }
        };
        let waiting = purge(self.jobs_stream().await?, "jobs").await.map_err(|err| self.error(err))?;
        let failed = purge(self.failed_stream().await?, "failed").await.map_err(|err| self.error(err))?;
        Ok(waiting + failed)
    }
}
