//! [`Tenancy::for_each`]: the same work in the context of each of many tenants, a few at a time —
//! the library's twin of `tenancy run`.

use std::future::Future;

use futures::StreamExt;

use crate::unwind::{Panicked, contain};
use crate::{ContextError, Tenancy, Tenant, TenantContext};

/// Why the work did not finish for one tenant.
#[derive(Debug, thiserror::Error)]
pub enum EachError {
    /// Its context could not be entered (its database is unreachable, it is being deleted).
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The work panicked; the other tenants went on.
    #[error(transparent)]
    Panicked(#[from] Panicked),
}

impl Tenancy {
    /// Runs `work` inside each tenant's context ([`Tenancy::run`]), at most `concurrency` at once,
    /// and returns every tenant with its outcome, in the order the tenants were given. A tenant
    /// that cannot be entered, or whose work panics, fails alone.
    ///
    /// ```no_run
    /// # async fn demo(tenancy: &tenancy_core::Tenancy) -> anyhow::Result<()> {
    /// use sea_orm::ConnectionTrait;
    /// let tenants = tenancy.registry().list(Some(tenancy_core::TenantStatus::Active)).await?;
    /// let outcomes = tenancy.for_each(tenants, 4, |ctx| async move {
    ///     ctx.db().execute_unprepared("DELETE FROM sessions WHERE expires_at < CURRENT_TIMESTAMP").await
    /// }).await;
    /// for (tenant, outcome) in outcomes {
    ///     if !matches!(outcome, Ok(Ok(_))) { eprintln!("{tenant}: {outcome:?}") }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn for_each<T, F, Fut>(&self, tenants: Vec<Tenant>, concurrency: usize, work: F) -> Vec<(Tenant, Result<T, EachError>)>
    where
        F: Fn(TenantContext) -> Fut,
        Fut: Future<Output = T>,
    {
        let work = &work;
        let mut outcomes: Vec<(usize, Tenant, Result<T, EachError>)> = futures::stream::iter(tenants.into_iter().enumerate())
            .map(|(index, tenant)| async move {
                let outcome = match self.run(&tenant, |ctx| contain(work(ctx))).await {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(panicked)) => Err(EachError::Panicked(panicked)),
                    Err(err) => Err(EachError::Context(err)),
                };
                (index, tenant, outcome)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        outcomes.sort_by_key(|(index, ..)| *index);
        outcomes.into_iter().map(|(_, tenant, outcome)| (tenant, outcome)).collect()
    }
}
