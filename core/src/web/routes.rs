//! [`Routes`]: central, tenant and universal routes in one `Router`, chosen by what the
//! [`super::TenantLayer`] found. The same path may exist in several groups (`/` as the sign-up
//! page on the central domain and as each tenant's home page).

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use tower::Service;

use super::door;
use super::layer::Identified;

/// Routes by host kind; see the module documentation.
///
/// - central routes answer on central domains only (404 on a tenant's host);
/// - tenant routes answer on tenants' hosts only (404 elsewhere, or the response of
///   [`Routes::tenant_missing`]);
/// - universal routes answer everywhere (use [`super::MaybeTenant`] in them).
///
/// Groups are tried in that order of specificity: the host's own group, then universal.
#[derive(Default)]
pub struct Routes {
    central: Router,
    tenant: Router,
    universal: Router,
    tenant_missing: Option<Router>,
}

impl Routes {
    /// No routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds routes served on central domains only.
    pub fn central(mut self, routes: Router) -> Self {
        self.central = self.central.merge(routes);
        self
    }

    /// Adds routes served on tenants' hosts only.
    pub fn tenant(mut self, routes: Router) -> Self {
        self.tenant = self.tenant.merge(routes);
        self
    }

    /// Adds routes served on every host.
    pub fn universal(mut self, routes: Router) -> Self {
        self.universal = self.universal.merge(routes);
        self
    }

    /// What a tenant route answers on a host with no tenant (default: 404), e.g. a redirect to the
    /// sign-up page.
    pub fn tenant_missing<H, T>(mut self, handler: H) -> Self
    where
        H: axum::handler::Handler<T, ()>,
        T: 'static,
    {
        self.tenant_missing = Some(self.tenant.clone().fallback(door::not_found_handler).route_layer(axum::middleware::from_fn(
            move |request: Request<Body>, _next: axum::middleware::Next| {
                let handler = handler.clone();
                async move { handler.call(request, ()).await }
            },
        )));
        self
    }

    /// The router to wrap in the [`super::TenantLayer`].
    pub fn into_router(self) -> Router {
        let universal = self.universal.fallback(door::not_found_handler);
        let without_tenant = match self.tenant_missing {
            Some(missing) => universal.clone().fallback_service(missing),
            None => universal.clone(),
        };
        let dispatch = ByHost {
            tenant: self.tenant.fallback_service(universal),
            central: self.central.fallback_service(without_tenant.clone()),
            other: without_tenant,
        };
        Router::new().fallback_service(dispatch)
    }
}

#[derive(Clone)]
struct ByHost {
    central: Router,
    tenant: Router,
    other: Router,
}

impl Service<Request<Body>> for ByHost {
    type Response = Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let router = match request.extensions().get::<Identified>() {
            Some(Identified::Tenant(_)) => &mut self.tenant,
            Some(Identified::Central) => &mut self.central,
            Some(Identified::Unknown) | None => &mut self.other,
        };
        router.call(request)
    }
}
