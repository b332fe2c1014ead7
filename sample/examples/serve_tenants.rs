//! Serving tenants over HTTP: central, tenant and universal routes, with sessions kept in each
//! tenant's own database. Run it in a folder of its own (it uses the SQLite defaults there):
//!
//! ```text
//! cargo run -p tenancy-sample --example serve_tenants
//! curl -H 'Host: acme.localhost' http://127.0.0.1:8000/
//! ```

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::web::{CurrentTenant, MaybeTenant, Routes, TenantLayer};
use tenancy_core::{Config, Domain, Tenancy, TenantName};
use tower_sessions::{Session, SessionManagerLayer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::load(&std::env::current_dir()?, None)?;
    let tenancy = Arc::new(Tenancy::builder(config).open().await?);
    for name in ["acme", "globex"] {
        let domain = Domain::parse(&format!("{name}.localhost"))?;
        if tenancy.registry().find_by_domain(&domain).await?.is_none() {
            let mut request = TenantRequest::new(TenantName::parse(name)?);
            request.domains.push(domain);
            tenancy.create_tenant(&request, &()).await?;
        }
    }

    let routes = Routes::new()
        // Central domains only (`localhost`): 404 on a tenant's host.
        .central(Router::new().route("/", get(|| async { "Welcome! Sign up for a site of your own.\n" })))
        // Tenants' hosts only: 404 on a central or unknown host.
        .tenant(Router::new().route("/", get(dashboard)))
        // Every host.
        .universal(Router::new().route("/whoami", get(whoami)))
        .into_router()
        // Inside the tenant layer, so each session is stored in its tenant's own database.
        .layer(SessionManagerLayer::new(tenancy.session_store()).with_secure(false));
    // Around the whole router: the tenant is found before routing.
    let app = TenantLayer::new(tenancy.clone()).around(routes);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
    axum::serve(listener, app.into_make_service_with_connect_info()).await?;
    Ok(())
}

/// A tenant route: the handler runs inside the tenant's context (`tenant.db()` is its database).
async fn dashboard(tenant: CurrentTenant, session: Session) -> Result<String, StatusCode> {
    let failed = |_| StatusCode::INTERNAL_SERVER_ERROR;
    let visits = session.get::<u64>("visits").await.map_err(failed)?.unwrap_or(0) + 1;
    session.insert("visits", visits).await.map_err(failed)?;
    Ok(format!("{}: visit {visits} in this session\n", tenant.tenant().name))
}

/// A universal route: a tenant if the host has one.
async fn whoami(MaybeTenant(tenant): MaybeTenant) -> String {
    match tenant {
        Some(ctx) => format!("tenant {}\n", ctx.tenant().name),
        None => "no tenant\n".to_owned(),
    }
}
