//! `tenancy serve`: a small web application on tenancy's `web` layer. Central domains get a
//! page about the installation, each tenant's hosts a page with its name and a counter kept in its
//! session and its cache, and every host `/healthz`. Plugins will add routes here.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use clap::Args;
use serde_json::json;
use tenancy_core::Tenancy;
use tenancy_core::command::Plugin;
use tenancy_core::web::{CurrentTenant, HostRouter, Hosts, Routes, TenantLayer, TenantService, shutdown_signal};
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use crate::CliContext;
use crate::exit::ExitStatus;
use crate::output::format_duration;

/// Arguments of `tenancy serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default: `web.listen`, 127.0.0.1:8000); port 0 picks a free one
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<SocketAddr>,
}

pub async fn run(args: &ServeArgs, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let tenancy = Arc::new(ctx.open_tenancy().await?);
    let address = args.listen.unwrap_or(ctx.config.web.listen);
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(err) => {
            close(tenancy).await;
            anyhow::bail!("cannot listen on {address}: {err}");
        }
    };
    let bound = listener.local_addr()?;
    let web = &ctx.config.web;
    let ways: Vec<String> = web.identify_by.iter().map(|way| format!("{way:?}").to_lowercase()).collect();
    out.status("Serving", format!("http://{bound} (central: {}; tenants by {})", web.central_domains.join(", "), ways.join(", ")));
    if out.is_json() {
        out.json(&json!({"event": "listening", "address": bound.to_string()}));
    }
    out.line("Press Ctrl-C to stop.");
    let started = Instant::now();
    let app = match application(tenancy.clone(), ctx.plugins()) {
        Ok(app) => app.into_make_service_with_connect_info(),
        Err(err) => {
            close(tenancy).await;
            return Err(err);
        }
    };
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await;
    close(tenancy).await;
    served?;
    out.status("Stopped", format!("after {}", format_duration(started.elapsed())));
    if out.is_json() {
        out.json(&json!({"event": "stopped", "seconds": started.elapsed().as_secs_f64()}));
    }
    Ok(ExitStatus::Success)
}

/// The service `tenancy serve` runs: the plugins' routes, the default pages where no plugin
/// serves the path, sessions, and the tenant layer around them all.
///
/// # Errors
/// When a plugin's routes cannot be built or clash with another's.
pub fn application(tenancy: Arc<Tenancy>, plugins: &[Arc<dyn Plugin>]) -> anyhow::Result<TenantService<HostRouter>> {
    let mut routes = Routes::new();
    for plugin in plugins {
        let added = plugin.web_routes(&tenancy).with_context(|| format!("plugin `{}` cannot add its routes", plugin.name()))?;
        routes = routes.with_plugin(plugin.name(), added)?;
    }
    let sessions = SessionManagerLayer::new(tenancy.session_store())
        .with_name("tenancy_session")
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(tower_sessions::cookie::time::Duration::hours(12)));
    let routes = routes
        .route_if_free(Hosts::Central, "/", get(central_home))?
        .route_if_free(Hosts::Tenant, "/", get(tenant_home))?
        // Sessions only where they are used: a page that needs none pays nothing for them.
        .route_if_free(Hosts::Tenant, "/counter", get(counter).layer(sessions))?
        .route_if_free(Hosts::Universal, "/healthz", get(healthz))?
        .into_router();
    Ok(TenantLayer::new(tenancy).around(routes))
}

/// Closes a tenancy shared with tasks: fully if this is the last handle, else its pools.
pub(crate) async fn close(tenancy: Arc<Tenancy>) {
    match Arc::try_unwrap(tenancy) {
        Ok(tenancy) => tenancy.close().await,
        Err(shared) => shared.connections().close_all().await,
    }
}

async fn central_home() -> Html<&'static str> {
    Html(
        "<!doctype html><title>tenancy</title><h1>tenancy</h1><p>This is the central domain. Tenants are served on their own domains.</p>\n",
    )
}

async fn tenant_home(tenant: CurrentTenant) -> Html<String> {
    Html(format!("<!doctype html><title>{0}</title><h1>{0}</h1>\n", escape(tenant.tenant().name.as_str())))
}

/// Counts visits twice: in the visitor's session (this browser) and in the tenant's cache (everyone).
async fn counter(tenant: CurrentTenant, session: Session) -> impl IntoResponse {
    let visits: i64 = match session.get::<i64>("visits").await {
        Ok(count) => count.unwrap_or(0) + 1,
        Err(err) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("session: {err}\n")).into_response(),
    };
    if let Err(err) = session.insert("visits", visits).await {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("session: {err}\n")).into_response();
    }
    let Some(cache) = tenant.cache() else { return (StatusCode::INTERNAL_SERVER_ERROR, "no cache\n").into_response() };
    match cache.increment("visits", 1).await {
        Ok(total) => format!("tenant: {}\nsession visits: {visits}\ntenant visits: {total}\n", tenant.tenant().name).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cache: {err}\n")).into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Escapes text for HTML, in one pass; most names need nothing and are not copied.
fn escape(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(|byte| matches!(byte, b'&' | b'<' | b'>' | b'"' | b'\'')) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tenant_names_are_escaped_for_html() {
        assert_eq!(super::escape(r#"<b>"Tom" & 'Jerry'</b> ü"#), "&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt; ü");
        assert_eq!(super::escape("Tenant 1 ü"), "Tenant 1 ü");
    }
}
