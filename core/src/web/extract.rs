//! Extractors for handlers: [`CurrentTenant`] (tenant routes), [`MaybeTenant`] and
//! `Option<CurrentTenant>` (universal routes), with typed rejections as axum's own extractors have.

use std::convert::Infallible;
use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::door;
use super::layer::Identified;
use crate::TenantContext;

/// The tenant of the request and its context (`db()`, `cache()`, …). Rejects requests that are no
/// tenant's with 404.
///
/// # Example
/// ```no_run
/// use tenancy_core::web::CurrentTenant;
///
/// async fn hello(tenant: CurrentTenant) -> String {
///     format!("Hello from {}", tenant.tenant().name)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct CurrentTenant(pub TenantContext);

impl Deref for CurrentTenant {
    type Target = TenantContext;

    fn deref(&self) -> &TenantContext {
        &self.0
    }
}

/// The tenant of the request, if it has one: for routes served on every host.
#[derive(Debug, Clone)]
pub struct MaybeTenant(pub Option<TenantContext>);

/// Why [`CurrentTenant`] rejected a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TenantRejection {
    /// The request's host (or path, or header) names no tenant: 404.
    #[error("no tenant is served at this address")]
    NoTenant,
    /// The handler runs outside the `TenantLayer`: a mistake in the application, 500.
    #[error("the request did not pass through tenancy's TenantLayer: wrap the whole Router in it")]
    LayerMissing,
}

impl IntoResponse for TenantRejection {
    fn into_response(self) -> Response {
        match self {
            Self::NoTenant => door::not_found(),
            Self::LayerMissing => {
                tracing::error!("{self}");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n").into_response()
            }
        }
    }
}

fn identified(parts: &Parts) -> Result<Option<TenantContext>, TenantRejection> {
    match parts.extensions.get::<Identified>() {
        Some(Identified::Tenant(ctx)) => Ok(Some(ctx.clone())),
        Some(Identified::Central | Identified::Unknown) => Ok(None),
        None => Err(TenantRejection::LayerMissing),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentTenant {
    type Rejection = TenantRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        identified(parts)?.map(CurrentTenant).ok_or(TenantRejection::NoTenant)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for CurrentTenant {
    type Rejection = TenantRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(identified(parts)?.map(CurrentTenant))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MaybeTenant {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeTenant(identified(parts).ok().flatten()))
    }
}
