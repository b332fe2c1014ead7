//! `tenancy monitor serve`: Prometheus metrics on `/metrics`, the fleet sampled in the background.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use clap::Args;
use serde_json::json;
use tenancy_core::Tenancy;
use tenancy_core::command::{AppContext, ExitStatus};
use tenancy_core::web::shutdown_signal;

use crate::config::MonitorConfig;
use crate::exporter::{self, Sampler};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default: monitor.listen, 127.0.0.1:9464); port 0 picks a free one
    #[arg(long, value_name = "ADDRESS")]
    listen: Option<SocketAddr>,
}

pub async fn run(args: ServeArgs, app: &dyn AppContext, tenancy: Tenancy, config: MonitorConfig) -> anyhow::Result<ExitStatus> {
    let out = app.console();
    let address = args.listen.unwrap_or(config.listen);
    let prepared = async {
        let handle = exporter::recorder(&config)?;
        let listener = tokio::net::TcpListener::bind(address).await.map_err(|err| anyhow::anyhow!("cannot listen on {address}: {err}"))?;
        anyhow::Ok((handle, listener))
    };
    let (handle, listener) = match prepared.await {
        Ok(prepared) => prepared,
        Err(err) => {
            tenancy.close().await;
            return Err(err);
        }
    };
    let bound = listener.local_addr()?;
    out.status("Serving", &format!("http://{bound}/metrics (fleet sampled every {}s)", config.sample_interval_secs));
    if out.is_json() {
        out.json(&json!({"event": "listening", "address": bound.to_string()}));
    }
    let tenancy = Arc::new(tenancy);
    let sampler = Sampler::start(tenancy.clone(), config, handle.clone());
    let router = Router::new().route("/metrics", get(move || std::future::ready(exporter::scrape(&handle))));
    let served = axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await;
    sampler.stop().await;
    if let Ok(tenancy) = Arc::try_unwrap(tenancy) {
        tenancy.close().await;
    }
    served?;
    out.status("Stopped", "metrics server");
    Ok(ExitStatus::Success)
}
