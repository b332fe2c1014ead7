//! [`Routes`]: central, tenant and universal routes in one `Router`, chosen by what the
//! [`super::TenantLayer`] found. The same path may exist in several groups (`/` as the sign-up
//! page on the central domain and as each tenant's home page).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use axum::routing::{MethodRouter, Route};
use tower::{Layer, Service};

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
    /// Paths added one by one ([`Routes::with_plugin`], [`Routes::route_if_free`]) and by whom.
    claimed: BTreeMap<(Hosts, String), String>,
}

/// Which hosts a route answers on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hosts {
    /// Central domains only.
    Central,
    /// Tenants' hosts only.
    Tenant,
    /// Every host.
    Universal,
}

impl std::fmt::Display for Hosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Central => "central domains",
            Self::Tenant => "tenant hosts",
            Self::Universal => "every host",
        })
    }
}

/// The routes a plugin adds to a server (its [`crate::command::Plugin::web_routes`]): paths with
/// their handlers, by the hosts they answer on. Handlers use [`super::CurrentTenant`] as any.
///
/// ```
/// use axum::routing::get;
/// use tenancy_core::web::PluginRoutes;
///
/// let routes = PluginRoutes::default().universal("/metrics", get(|| async { "up 1\n" }));
/// ```
#[derive(Default)]
pub struct PluginRoutes {
    routes: Vec<(Hosts, String, MethodRouter)>,
}

impl PluginRoutes {
    /// Adds a route answering on `hosts`.
    pub fn route(mut self, hosts: Hosts, path: &str, handler: MethodRouter) -> Self {
        self.routes.push((hosts, path.to_owned(), handler));
        self
    }

    /// Adds a route answering on tenants' hosts.
    pub fn tenant(self, path: &str, handler: MethodRouter) -> Self {
        self.route(Hosts::Tenant, path, handler)
    }

    /// Adds a route answering on central domains.
    pub fn central(self, path: &str, handler: MethodRouter) -> Self {
        self.route(Hosts::Central, path, handler)
    }

    /// Adds a route answering on every host.
    pub fn universal(self, path: &str, handler: MethodRouter) -> Self {
        self.route(Hosts::Universal, path, handler)
    }
}

/// A route could not be added.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Two owners want the same path on the same hosts.
    #[error("{owner} and {other} both serve `{path}` on {hosts}")]
    Conflict {
        /// Who added it second.
        owner: String,
        /// Who had it.
        other: String,
        /// The path.
        path: String,
        /// Where.
        hosts: Hosts,
    },
    /// axum refused the path (no leading `/`, or a pattern clashing with another).
    #[error("{owner} cannot serve `{path}` on {hosts}: {reason}")]
    Invalid {
        /// Who added it.
        owner: String,
        /// The path.
        path: String,
        /// Where.
        hosts: Hosts,
        /// axum's words.
        reason: String,
    },
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

    /// Adds a plugin's routes, named `plugin` in errors.
    ///
    /// # Errors
    /// [`RouteError`] when a path is already served on the same hosts or axum refuses it; the
    /// routes are then left as they were before the failing one.
    pub fn with_plugin(mut self, plugin: &str, routes: PluginRoutes) -> Result<Self, RouteError> {
        for (hosts, path, handler) in routes.routes {
            self = self.claim(&format!("plugin `{plugin}`"), hosts, &path, handler)?;
        }
        Ok(self)
    }

    /// Adds `handler` at `path` unless [`Routes::with_plugin`] already gave that path to a
    /// plugin: how a server keeps a default page that a plugin may replace.
    ///
    /// # Errors
    /// [`RouteError::Invalid`] when axum refuses the path.
    pub fn route_if_free(self, hosts: Hosts, path: &str, handler: MethodRouter) -> Result<Self, RouteError> {
        if self.serves(hosts, path) {
            return Ok(self);
        }
        self.claim("the application", hosts, path, handler)
    }

    /// Whether a path was added on these hosts through [`Routes::with_plugin`] or
    /// [`Routes::route_if_free`].
    pub fn serves(&self, hosts: Hosts, path: &str) -> bool {
        self.claimed.contains_key(&(hosts, path.to_owned()))
    }

    fn claim(mut self, owner: &str, hosts: Hosts, path: &str, handler: MethodRouter) -> Result<Self, RouteError> {
        let key = (hosts, path.to_owned());
        if let Some(other) = self.claimed.get(&key) {
            return Err(RouteError::Conflict { owner: owner.to_owned(), other: other.clone(), path: path.to_owned(), hosts });
        }
        let invalid = |reason: String| RouteError::Invalid { owner: owner.to_owned(), path: path.to_owned(), hosts, reason };
        if !path.starts_with('/') {
            return Err(invalid("a path must begin with `/`".into()));
        }
        let group = match hosts {
            Hosts::Central => &mut self.central,
            Hosts::Tenant => &mut self.tenant,
            Hosts::Universal => &mut self.universal,
        };
        // axum reports a clash between patterns (`/{a}` beside `/{b}`) only by panicking.
        let router = std::mem::take(group);
        let added = std::panic::catch_unwind(AssertUnwindSafe(|| router.clone().route(path, handler)));
        match added {
            Ok(router) => *group = router,
            Err(panic) => {
                *group = router;
                let reason = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()));
                return Err(invalid(reason.unwrap_or_else(|| "axum refused it".into())));
            }
        }
        self.claimed.insert(key, owner.to_owned());
        Ok(self)
    }

    /// The router to wrap in the [`super::TenantLayer`].
    pub fn into_router(self) -> HostRouter {
        let universal = self.universal.fallback(door::not_found_handler);
        let without_tenant = match self.tenant_missing {
            Some(missing) => universal.clone().fallback_service(missing),
            None => universal.clone(),
        };
        HostRouter(Arc::new(ByHost {
            tenant: self.tenant.fallback_service(universal),
            central: self.central.fallback_service(without_tenant.clone()),
            other: without_tenant,
        }))
    }
}

/// [`Routes`] made into one service: each request goes to the routes of its host's kind, as the
/// [`super::TenantLayer`] found it. It is the service itself, not a route of an outer `Router`:
/// that would look up a path and clone a boxed service on every request to reach it.
#[derive(Clone)]
pub struct HostRouter(Arc<ByHost>);

struct ByHost {
    central: Router,
    tenant: Router,
    other: Router,
}

impl HostRouter {
    /// Wraps every route, on every kind of host, in `layer`, as [`Router::layer`] does: a
    /// request passes through it once, whichever routes answer it.
    pub fn layer<L>(self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request<Body>> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<Body>>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request<Body>>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request<Body>>>::Future: Send + 'static,
    {
        let routes = &*self.0;
        Self(Arc::new(ByHost {
            central: routes.central.clone().layer(layer.clone()),
            tenant: routes.tenant.clone().layer(layer.clone()),
            other: routes.other.clone().layer(layer),
        }))
    }
}

impl Service<Request<Body>> for HostRouter {
    type Response = Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let routes = &*self.0;
        let router = match request.extensions().get::<Identified>() {
            Some(Identified::Tenant(_)) => &routes.tenant,
            Some(Identified::Central) => &routes.central,
            Some(Identified::Unknown) | None => &routes.other,
        };
        router.clone().call(request)
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;

    use super::*;

    #[test]
    fn a_path_has_one_owner_per_host_kind_and_bad_paths_are_errors() {
        let homepage = PluginRoutes::default().tenant("/", get(|| async { "home" })).tenant("/assets/{*path}", get(|| async { "" }));
        let routes = Routes::new().with_plugin("homepage", homepage).unwrap();
        assert!(routes.serves(Hosts::Tenant, "/") && !routes.serves(Hosts::Central, "/"));

        let clash = PluginRoutes::default().tenant("/", get(|| async { "mine" }));
        let err = Routes::new()
            .with_plugin("homepage", PluginRoutes::default().tenant("/", get(|| async { "" })))
            .unwrap()
            .with_plugin("other", clash);
        let message = err.err().unwrap().to_string();
        assert_eq!(message, "plugin `other` and plugin `homepage` both serve `/` on tenant hosts");

        // The application's default steps aside for the plugin's page, and keeps a free path.
        let routes = routes.route_if_free(Hosts::Tenant, "/", get(|| async { "default" })).unwrap();
        let routes = routes.route_if_free(Hosts::Central, "/", get(|| async { "central" })).unwrap();
        assert!(routes.serves(Hosts::Central, "/"));

        for bad in ["no-slash", "/{a}/{*b}/c"] {
            let added = Routes::new().with_plugin("broken", PluginRoutes::default().universal(bad, get(|| async { "" })));
            assert!(matches!(added, Err(RouteError::Invalid { .. })), "{bad} was accepted");
        }
        // axum's clash between two captures is an error too, not a panic.
        let twins = PluginRoutes::default().universal("/{a}", get(|| async { "" })).universal("/{b}", get(|| async { "" }));
        assert!(matches!(Routes::new().with_plugin("twins", twins), Err(RouteError::Invalid { .. })));
    }

    #[tokio::test]
    async fn a_layer_on_the_host_router_wraps_each_request_once_whichever_routes_answer() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use axum::middleware::{Next, from_fn};
        use tower::ServiceExt as _;

        let passes = Arc::new(AtomicUsize::new(0));
        let counted = passes.clone();
        let counting = from_fn(move |request: Request<Body>, next: Next| {
            counted.fetch_add(1, Ordering::SeqCst);
            next.run(request)
        });
        let router = Routes::new()
            .central(Router::new().route("/", get(|| async { "central" })))
            .universal(Router::new().route("/healthz", get(|| async { "ok" })))
            .into_router()
            .layer(counting);
        let cases = [
            (Identified::Central, "/", "central", 200),
            (Identified::Central, "/healthz", "ok", 200),
            (Identified::Unknown, "/healthz", "ok", 200),
            (Identified::Unknown, "/", "", 404),
        ];
        for (round, (identified, path, body, status)) in cases.into_iter().enumerate() {
            let mut request = Request::get(path).body(Body::empty()).unwrap();
            request.extensions_mut().insert(identified);
            let response = router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), status, "{path}");
            let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
            if status == 200 {
                assert_eq!(bytes, body, "{path}");
            }
            assert_eq!(passes.load(Ordering::SeqCst), round + 1, "{path} went through the layer once");
        }
    }
}
