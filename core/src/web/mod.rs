//! Serving tenants over HTTP with axum (the `web` feature).
//!
//! - [`TenantLayer`] finds the tenant of each request — by domain, subdomain of a central domain,
//!   first path segment or header, in the order `[web] identify_by` (or the application) sets —
//!   turns away hosts that cannot be served (400 malformed host; 404 unknown or inactive tenant;
//!   403 suspended; 503 still being created), and runs the rest of the request inside the tenant's
//!   context, so `current_tenant()`, the tenant's cache and [`crate::sessions::TenantSessionStore`]
//!   work in handlers. Inside an identified request no other tenant's context can be entered.
//! - [`Routes`] keeps central, tenant and universal routes apart; [`CurrentTenant`] and
//!   [`MaybeTenant`] hand handlers the tenant. Plugins add theirs as [`PluginRoutes`]
//!   ([`Routes::with_plugin`]); two owners of one path are an error, never a panic.
//! - [`crate::spawn_in_tenant`] carries the context into a spawned task: a plain `tokio::spawn`
//!   starts outside it.
//! - [`ResolverCache`] keeps host → tenant answers, invalidated at once by changes made through this
//!   process and within `web.change_poll_millis` by changes made anywhere else.
//!
//! The request's host comes from the URI authority or `Host`; `Forwarded` and `X-Forwarded-Host`
//! count only from `web.trusted_proxies`, which needs the peer address: serve with
//! [`TenantService::into_make_service_with_connect_info`].
//!
//! # Example
//! ```no_run
//! # async fn demo(tenancy: std::sync::Arc<tenancy_core::Tenancy>) -> std::io::Result<()> {
//! use axum::{Router, routing::get};
//! use tenancy_core::web::{CurrentTenant, Routes, TenantLayer};
//!
//! let routes = Routes::new()
//!     .central(Router::new().route("/", get(|| async { "Sign up here" })))
//!     .tenant(Router::new().route("/", get(|tenant: CurrentTenant| async move { format!("Hello, {}", tenant.tenant().name) })))
//!     .into_router();
//! let app = TenantLayer::new(tenancy).around(routes);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info()).await
//! # }
//! ```

mod cache;
mod door;
mod extract;
mod host;
mod layer;
mod routes;

pub use cache::{Lookup, ResolverCache};
pub use door::Admission;
pub use extract::{CurrentTenant, MaybeTenant, TenantRejection};
pub use host::{HostError, RequestHost, parse_host, request_host};
pub use layer::{Identified, TenantLayer, TenantPathPrefix, TenantService};
pub use routes::{HostRouter, Hosts, PluginRoutes, RouteError, Routes};

/// Resolves on Ctrl-C or SIGTERM: the graceful-shutdown signal for `axum::serve`, so a server
/// stopped by a person or by a service manager finishes its requests and closes its pools.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
