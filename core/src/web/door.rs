//! What a request meets before its handler: the answers for a host that cannot be served, for a
//! tenant down for maintenance, and the [`Admission`] hook through which an application turns
//! requests away. No answer here names a tenant: a visitor of one host learns nothing about another.

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::{Tenant, TenantStatus};

/// The body of every "nothing here" answer: an unknown host and an inactive tenant look alike.
pub(crate) const NOT_FOUND: &str = "No site is served at this address.\n";

/// 404 with [`NOT_FOUND`].
pub(crate) fn not_found() -> Response {
    (StatusCode::NOT_FOUND, NOT_FOUND).into_response()
}

/// [`not_found`] as a handler, for router fallbacks.
pub(crate) async fn not_found_handler() -> Response {
    not_found()
}

/// The answer for a tenant that may not be served in its present status, if any:
/// `inactive` → 404 (as if unknown), `suspended` → 403, `creating` → 503 with `Retry-After`.
pub(crate) fn status_answer(tenant: &Tenant) -> Option<Response> {
    match tenant.status {
        TenantStatus::Active => None,
        TenantStatus::Inactive => Some(not_found()),
        TenantStatus::Suspended => Some((StatusCode::FORBIDDEN, "This site is suspended.\n").into_response()),
        TenantStatus::Creating => {
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, "This site is being set up; try again in a moment.\n").into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            Some(response)
        }
    }
}

/// The cookie that lets its holder past a tenant's maintenance: it carries the bypass secret,
/// checked against the hash in the registry on every request.
pub const BYPASS_COOKIE: &str = "tenancy_bypass";

/// How long a bypass cookie lasts: a working day.
const BYPASS_COOKIE_MAX_AGE_SECS: u32 = 12 * 60 * 60;

/// The answer for a tenant down for maintenance, if any: `GET /{secret}` sets the bypass cookie
/// and redirects to the tenant's `/`; a request carrying a valid cookie goes through; every other
/// request gets 503 with `Retry-After` and the operator's message. `prefix` is the path segment
/// path identification removed (the cookie is kept to it, so tenants sharing a host do not
/// overwrite each other's).
pub(crate) fn maintenance_answer(tenant: &Tenant, request: &Parts, prefix: Option<&str>) -> Option<Response> {
    let maintenance = tenant.maintenance.as_ref()?;
    if maintenance.has_bypass() {
        if cookies(request, BYPASS_COOKIE).any(|value| maintenance.admits(value)) {
            return None;
        }
        let visited = request.uri.path().strip_prefix('/').filter(|secret| maintenance.admits(secret));
        if let Some(secret) = visited {
            let path = prefix.unwrap_or("/");
            let cookie = format!("{BYPASS_COOKIE}={secret}; Path={path}; Max-Age={BYPASS_COOKIE_MAX_AGE_SECS}; HttpOnly; SameSite=Lax");
            let location = format!("{}/", prefix.unwrap_or(""));
            let mut response = StatusCode::SEE_OTHER.into_response();
            let headers = response.headers_mut();
            // The secret is checked to be URL- and cookie-safe characters only.
            headers.insert(header::SET_COOKIE, HeaderValue::try_from(cookie).ok()?);
            headers.insert(header::LOCATION, HeaderValue::try_from(location).ok()?);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return Some(response);
        }
    }
    let body = match &maintenance.message {
        Some(message) => format!("This site is down for maintenance.\n\n{message}\n"),
        None => "This site is down for maintenance; try again in a moment.\n".to_owned(),
    };
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(maintenance.retry_after_secs));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(response)
}

/// The values of the request's cookies called `name`.
fn cookies<'a>(request: &'a Parts, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    request
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(move |pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

/// Decides, after the status and maintenance checks, whether an identified request reaches its
/// handler (an unpaid plan's read-only mode, an IP allow-list of a tenant's own).
///
/// Return `Some(response)` to answer in place of the handler, `None` to let it through. The
/// request's path is the one the router will see (path identification's segment removed). Checks run in the order they were added to the
/// layer; the first answer wins.
pub trait Admission: Send + Sync + 'static {
    /// Looks at `tenant` and the request's head.
    fn admit(&self, tenant: &Tenant, request: &Parts) -> Option<Response>;
}

impl<F> Admission for F
where
    F: Fn(&Tenant, &Parts) -> Option<Response> + Send + Sync + 'static,
{
    fn admit(&self, tenant: &Tenant, request: &Parts) -> Option<Response> {
        self(tenant, request)
    }
}
