//! [`TenantLayer`]: the tower layer that finds a request's tenant and runs the rest of the
//! request inside its context. Wrap it around the whole `Router` (`layer.layer(router)` or
//! `ServiceExt::layer`), not with `Router::layer`: it must run before routing, so that path
//! identification can remove the tenant's segment before the router sees the path.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderName, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tower::{Layer, Service};

use super::cache::{Lookup, ResolverCache};
use super::door::{self, Admission};
use super::host::{HostError, RequestHost, request_host};
use crate::config::{CentralHost, Identify, IpRange};
use crate::{Tenancy, Tenant, TenantContext};

/// What the layer found out about a request, in its extensions for extractors and routing. A
/// tenant's request also carries the [`RequestHost`] it was identified on (after the trusted
/// proxies' forwarded headers), so handlers need not parse the host again.
#[derive(Debug, Clone)]
pub enum Identified {
    /// A tenant's request, running in its context.
    Tenant(TenantContext),
    /// A central domain, no tenant.
    Central,
    /// Neither a central domain nor a tenant's.
    Unknown,
}

/// The path segment path identification removed (`/0195…` or `/acme.example`), so handlers can
/// build links that keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPathPrefix(pub String);

/// Identifies tenants of requests; see the module documentation.
#[derive(Clone)]
pub struct TenantLayer {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    tenancy: Arc<Tenancy>,
    ways: Vec<Identify>,
    central: Vec<CentralHost>,
    trusted_proxies: Vec<IpRange>,
    header: HeaderName,
    cache: ResolverCache,
    admissions: Vec<Arc<dyn Admission>>,
}

impl TenantLayer {
    /// A layer configured by `[web]` of the tenancy's configuration. Call it inside the Tokio
    /// runtime, so the resolver cache hears of other processes' registry changes.
    pub fn new(tenancy: Arc<Tenancy>) -> Self {
        let web = &tenancy.config().web;
        let shared = Shared {
            ways: web.identify_by.clone(),
            central: web.central_hosts(),
            trusted_proxies: web.trusted_proxy_ranges(),
            // Checked when the configuration was loaded; the default stands in for one built in code.
            header: HeaderName::try_from(web.tenant_header.as_str()).unwrap_or(HeaderName::from_static("x-tenant")),
            cache: ResolverCache::new(tenancy.registry().clone(), web),
            admissions: Vec::new(),
            tenancy,
        };
        Self { shared: Arc::new(shared) }
    }

    /// Identifies by these ways, in this order, instead of `web.identify_by`.
    pub fn identify_by(mut self, ways: impl IntoIterator<Item = Identify>) -> Self {
        Arc::make_mut(&mut self.shared).ways = ways.into_iter().collect();
        self
    }

    /// Adds a check every identified request passes after the status check (see [`Admission`]).
    pub fn admission(mut self, check: impl Admission) -> Self {
        Arc::make_mut(&mut self.shared).admissions.push(Arc::new(check));
        self
    }

    /// `routes` (a [`super::HostRouter`] or any `axum::Router`) behind this layer: the service to
    /// serve, with [`TenantService::into_make_service_with_connect_info`] so trusted proxies can
    /// be recognised. The layer runs before `routes` routes, as it must.
    pub fn around<S>(self, routes: S) -> TenantService<S> {
        self.layer(routes)
    }

    /// The host → tenant cache.
    pub fn resolver_cache(&self) -> &ResolverCache {
        &self.shared.cache
    }
}

impl<S> Layer<S> for TenantLayer {
    type Service = TenantService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenantService { inner, shared: self.shared.clone() }
    }
}

/// The service [`TenantLayer`] makes.
#[derive(Clone)]
pub struct TenantService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> TenantService<S>
where
    Self: Service<Request<axum::body::Body>>,
{
    /// What `axum::serve` takes: a service per connection that knows the peer's address (which
    /// `web.trusted_proxies` is checked against).
    pub fn into_make_service_with_connect_info(self) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Self, SocketAddr> {
        axum::ServiceExt::<Request<axum::body::Body>>::into_make_service_with_connect_info::<SocketAddr>(self)
    }
}

impl<S, B> Service<Request<B>> for TenantService<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request; the fresh one waits for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move { Ok(shared.serve(inner, request).await) })
    }
}

/// A tenant found, and how the request must change for it.
struct Found {
    tenant: Arc<Tenant>,
    /// The path segment to remove, for path identification.
    strip: Option<String>,
}

impl Shared {
    async fn serve<S, B>(&self, mut inner: S, request: Request<B>) -> Response
    where
        S: Service<Request<B>, Response = Response, Error = Infallible>,
    {
        let (mut parts, body) = request.into_parts();
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(address)| address.ip());
        let host = match request_host(&parts.uri, &parts.headers, peer, &self.trusted_proxies) {
            Ok(host) => host,
            Err(err @ (HostError::Missing | HostError::Malformed)) => {
                crate::metrics::web_request("none", "bad_host");
                return (StatusCode::BAD_REQUEST, format!("{err}.\n")).into_response();
            }
        };
        let central = self.is_central(&host);
        let Some(Found { tenant, strip }) = (match self.find(&host, central, &parts).await {
            Ok(found) => found,
            Err(response) => {
                crate::metrics::web_request(if central { "central" } else { "unknown" }, "unavailable");
                return response;
            }
        }) else {
            crate::metrics::web_request(if central { "central" } else { "unknown" }, "served");
            parts.extensions.insert(if central { Identified::Central } else { Identified::Unknown });
            return call(&mut inner, Request::from_parts(parts, body)).await;
        };
        let prefix = strip.map(|segment| {
            let original = parts.uri.clone();
            parts.uri = without_first_segment(&original, &segment);
            parts.extensions.insert(OriginalUri(original));
            let prefix = format!("/{segment}");
            parts.extensions.insert(TenantPathPrefix(prefix.clone()));
            prefix
        });
        let answer = door::status_answer(&tenant)
            .or_else(|| door::maintenance_answer(&tenant, &parts, prefix.as_deref()))
            .or_else(|| self.admissions.iter().find_map(|check| check.admit(&tenant, &parts)));
        if let Some(answer) = answer {
            crate::metrics::web_request("tenant", "refused");
            return answer;
        }
        let id = tenant.id;
        parts.extensions.insert(host);
        // A future is moved whole (every byte of its largest state) each time it is wrapped, and
        // the context wraps the handler's in half a dozen layers (scope, span, lease, ...). So
        // the request travels boxed and the handler's future is boxed where it is made: each
        // layer moves a few words, not the request and the router's future again (a 3.7 KB
        // future copied at each layer was most of the 4.5% of a server's CPU spent in `memcpy`).
        let mut request = Box::new(Request::from_parts(parts, body));
        let entered = self
            .tenancy
            .run_pinned(tenant, move |ctx| {
                request.extensions_mut().insert(Identified::Tenant(ctx));
                Box::pin(async move {
                    // A panicking handler answers 500 and the context is still left properly.
                    crate::unwind::contain(call(&mut inner, *request)).await.unwrap_or_else(|panicked| {
                        tracing::error!(tenant = %id, error = %panicked, "a request handler panicked");
                        StatusCode::INTERNAL_SERVER_ERROR.into_response()
                    })
                })
            })
            .await;
        crate::metrics::web_request("tenant", if entered.is_ok() { "served" } else { "unavailable" });
        entered.unwrap_or_else(|err| {
            tracing::error!(tenant = %id, error = crate::migrate::fleet::error_chain(&err), "cannot enter the tenant's context for a request");
            (StatusCode::SERVICE_UNAVAILABLE, "This site cannot be served right now; try again in a moment.\n").into_response()
        })
    }

    fn is_central(&self, host: &RequestHost) -> bool {
        self.central.iter().any(|central| match (central, host) {
            (CentralHost::Name(central), RequestHost::Name(name)) => central == name,
            (CentralHost::Ip(central), RequestHost::Ip(ip)) => central == ip,
            _ => false,
        })
    }

    /// Tries each way in order; the first that finds a tenant wins.
    async fn find(&self, host: &RequestHost, central: bool, request: &Parts) -> Result<Option<Found>, Response> {
        for way in &self.ways {
            let (lookup, strip) = match (way, host) {
                // A central host is never a tenant's, whatever the registry holds.
                (Identify::Domain, RequestHost::Name(name)) if !central => (Lookup::Domain(name.clone()), None),
                (Identify::Subdomain, RequestHost::Name(name)) => match self.subdomain_label(name) {
                    Some(label) => (Lookup::Domain(label), None),
                    None => continue,
                },
                (Identify::Path, _) => match first_segment(&request.uri).and_then(|s| Some((Lookup::parse_reference(s)?, s))) {
                    Some((lookup, segment)) => (lookup, Some(segment.to_owned())),
                    None => continue,
                },
                (Identify::Header, _) => {
                    let value = request.headers.get(&self.header);
                    match value.and_then(|v| v.to_str().ok()).and_then(|v| Lookup::parse_reference(v.trim())) {
                        Some(lookup) => (lookup, None),
                        None => continue,
                    }
                }
                _ => continue,
            };
            match self.cache.resolve(&lookup).await {
                Ok(Some(tenant)) => return Ok(Some(Found { tenant, strip })),
                Ok(None) => {}
                Err(err) => {
                    tracing::error!(error = crate::migrate::fleet::error_chain(err.as_ref()), "cannot resolve a request's tenant");
                    return Err(
                        (StatusCode::SERVICE_UNAVAILABLE, "This site cannot be served right now; try again in a moment.\n").into_response()
                    );
                }
            }
        }
        Ok(None)
    }

    /// `acme` for `acme.example.com` when `example.com` is central: exactly one label, matched
    /// on a label boundary (`test1-tms.test` is no subdomain of `tms.test`).
    fn subdomain_label(&self, host: &crate::Domain) -> Option<crate::Domain> {
        self.central.iter().find_map(|central| {
            let CentralHost::Name(central) = central else { return None };
            let label = host.as_str().strip_suffix(central.as_str())?.strip_suffix('.')?;
            if label.is_empty() || label.contains('.') {
                return None;
            }
            crate::Domain::parse(label).ok()
        })
    }
}

async fn call<S, B>(inner: &mut S, request: Request<B>) -> Response
where
    S: Service<Request<B>, Response = Response, Error = Infallible>,
{
    match inner.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The first segment of the path, if it is a plain one (not empty, not `.` or `..`).
fn first_segment(uri: &Uri) -> Option<&str> {
    let segment = uri.path().strip_prefix('/')?.split('/').next()?;
    (!segment.is_empty() && segment != "." && segment != "..").then_some(segment)
}

/// `uri` with `/{segment}` removed from the front of its path (`/` if nothing is left).
fn without_first_segment(uri: &Uri, segment: &str) -> Uri {
    let rest = &uri.path()[1 + segment.len()..];
    let path = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_identification_removes_one_segment() {
        let uri: Uri = "/acme.test/orders/7?page=2".parse().unwrap();
        assert_eq!(first_segment(&uri), Some("acme.test"));
        assert_eq!(without_first_segment(&uri, "acme.test").to_string(), "/orders/7?page=2");
        let bare: Uri = "/acme.test".parse().unwrap();
        assert_eq!(without_first_segment(&bare, "acme.test").to_string(), "/");
        for uri in ["/", "//x", "/../acme.test/", "/./x"] {
            assert_eq!(first_segment(&uri.parse().unwrap()), None, "{uri}");
        }
    }
}
