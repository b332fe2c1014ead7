//! `tenancy backup create`: every selected tenant, several at once, each backup published only
//! when complete.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use serde_json::json;
use tenancy_core::Tenant;
use tenancy_core::command::ExitStatus;
use tenancy_core::command::format::{format_bytes, format_duration, plural};
use tenancy_core::command::selection::{FleetArgs, TenantSelection};

use super::{Context, emit};
use crate::archive::Sealing;
use crate::engine;

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    selection: TenantSelection,
    #[command(flatten)]
    fleet: FleetArgs,
}

pub async fn run(args: CreateArgs, cx: &Context<'_>) -> anyhow::Result<ExitStatus> {
    let out = cx.out();
    let tenants = args.selection.resolve(cx.tenancy, out, "tenancy backup create").await?;
    let options = args.fleet.options(cx.tenancy);
    let started = Instant::now();
    emit(out, json!({"event": "backup_run_started", "tenants": tenants.len(), "concurrency": options.concurrency}));
    if tenants.len() > 1 {
        out.status("Backing up", &format!("{}, {}", plural(tenants.len(), "tenant"), args.fleet.concurrency.describe(cx.tenancy)));
    }
    let recipients = cx.config.recipients();
    let view = out.tenant_progress(tenants.len());
    let view = &*view;
    let failed = Arc::new(AtomicBool::new(false));
    let mut outcomes = futures::stream::iter(tenants.iter().cloned())
        .map(|tenant: Tenant| {
            let (failed, recipients) = (failed.clone(), recipients.clone());
            async move {
                if options.fail_fast && failed.load(Ordering::SeqCst) {
                    return (tenant, None);
                }
                let outcome = back_up(cx, &tenant, recipients, view).await;
                if outcome.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                (tenant, Some(outcome))
            }
        })
        .buffer_unordered(options.concurrency.max(1));
    let (mut succeeded, mut failures, mut skipped, mut stored) = (0usize, Vec::new(), 0usize, 0u64);
    while let Some((tenant, outcome)) = outcomes.next().await {
        match outcome {
            Some(Ok(bytes)) => {
                succeeded += 1;
                stored += bytes;
            }
            Some(Err(err)) => failures.push((tenant, err)),
            None => skipped += 1,
        }
    }
    view.finish();
    let elapsed = started.elapsed();
    emit(
        out,
        json!({"event": "summary", "tenants": tenants.len(), "succeeded": succeeded, "failed": failures.len(), "skipped": skipped,
            "stored_bytes": stored, "elapsed_ms": elapsed.as_secs_f64() * 1000.0,
            "failures": failures.iter().map(|(t, e)| json!({"tenant": t.id, "name": t.name, "error": format!("{e:#}")})).collect::<Vec<_>>()}),
    );
    let line = format!(
        "{} in {}: {succeeded} succeeded, {} failed, {skipped} skipped; {} stored",
        plural(tenants.len(), "tenant"),
        format_duration(elapsed),
        failures.len(),
        format_bytes(stored)
    );
    if failures.is_empty() {
        out.status("Backed up", &line);
        Ok(ExitStatus::Success)
    } else {
        out.failure("Backed up", &line);
        Ok(ExitStatus::Failure)
    }
}

/// Backs one tenant up; returns the bytes stored.
async fn back_up(
    cx: &Context<'_>,
    tenant: &Tenant,
    recipients: Arc<[age::x25519::Recipient]>,
    view: &dyn tenancy_core::command::TenantProgress,
) -> anyhow::Result<u64> {
    let out = cx.out();
    emit(out, json!({"event": "backup_started", "tenant": tenant.id, "name": tenant.name}));
    view.started(tenant, "dumping");
    // The dump reports from a blocking thread; the view is drawn from here, a few times a second.
    let dumped = Arc::new(AtomicU64::new(0));
    let sealing = Sealing {
        level: cx.config.compression_level,
        recipients,
        progress: {
            let dumped = dumped.clone();
            Arc::new(move |bytes| dumped.store(bytes, Ordering::Relaxed))
        },
    };
    let started = Instant::now();
    // Boxed: the whole dump pipeline is one deep future, too deep to lay out inline in release.
    let mut work = Box::pin(engine::create(cx.tenancy, cx.store, tenant, sealing));
    let mut redraw = tokio::time::interval(Duration::from_millis(250));
    let outcome = loop {
        tokio::select! {
            outcome = &mut work => break outcome,
            _ = redraw.tick() => view.advanced(tenant, "dumping", dumped.load(Ordering::Relaxed)),
        }
    };
    match outcome {
        Ok(manifest) => {
            let elapsed = started.elapsed();
            let rate = throughput(manifest.dump_bytes, elapsed);
            emit(
                out,
                json!({"event": "backup_created", "tenant": tenant.id, "name": tenant.name, "backup": manifest.id,
                    "dump_bytes": manifest.dump_bytes, "stored_bytes": manifest.stored_total(), "elapsed_ms": elapsed.as_secs_f64() * 1000.0,
                    "bytes_per_second": rate, "checksum": manifest.checksum.hex,
                    "files": manifest.files.as_ref().map_or(0, |files| files.files), "files_bytes": manifest.files.as_ref().map_or(0, |files| files.bytes)}),
            );
            view.finished(
                tenant,
                "Backed up",
                &format!(
                    "{tenant}: {} ({} dumped{}) in {}, {}/s → {}",
                    format_bytes(manifest.stored_total()),
                    format_bytes(manifest.dump_bytes),
                    manifest.files.as_ref().filter(|files| files.files > 0).map_or(String::new(), |files| format!(
                        ", {} of {}",
                        plural(files.files as usize, "file"),
                        format_bytes(files.bytes)
                    )),
                    format_duration(elapsed),
                    format_bytes(rate),
                    manifest.id
                ),
            );
            Ok(manifest.stored_total())
        }
        Err(err) => {
            let message = format!("{err:#}");
            emit(out, json!({"event": "backup_failed", "tenant": tenant.id, "name": tenant.name, "error": message}));
            view.failed(tenant, &message);
            Err(err)
        }
    }
}

fn throughput(bytes: u64, elapsed: Duration) -> u64 {
    (bytes as f64 / elapsed.as_secs_f64().max(0.001)) as u64
}
