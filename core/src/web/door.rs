//! What a request meets before its handler: the answers for a host that cannot be served, and
//! the [`Admission`] hook through which later features (maintenance mode) turn requests away.
//! No answer here names a tenant: a visitor of one host learns nothing about another.

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

/// Decides, after the status check, whether an identified request reaches its handler.
///
/// Return `Some(response)` to answer in place of the handler (maintenance mode: 503 with
/// `Retry-After`), `None` to let it through. Checks run in the order they were added to the
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
