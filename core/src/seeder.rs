//! [`Seeder`]: code that fills a tenant's database with data, run inside the tenant's context.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{BoxError, TenantContext};

/// Fills a tenant database with data. Seeders run inside the tenant's context, so `ctx.db()` is the
/// tenant's own database.
///
/// # Errors
/// Any error; the run reports it with the seeder's name.
///
/// # Example
/// ```
/// use sea_orm::ConnectionTrait;
/// use tenancy_core::{BoxError, Seeder, TenantContext};
///
/// struct Plans;
///
/// #[async_trait::async_trait]
/// impl Seeder for Plans {
///     fn name(&self) -> &str { "PlansSeeder" }
///     fn description(&self) -> &str { "the three price plans" }
///     async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
///         ctx.db().execute_unprepared("INSERT INTO plans (name) VALUES ('free'), ('pro'), ('team')").await?;
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Seeder: Send + Sync {
    /// The name users type after `--class`.
    fn name(&self) -> &str;

    /// One line saying what it seeds.
    fn description(&self) -> &str;

    /// Seeds the tenant of `ctx`.
    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError>;

    /// The seeders this one is made of, if it is only a list of others (like a `DatabaseSeeder`).
    /// Runners then run and report each of them on its own, in order, instead of calling `run`.
    fn parts(&self) -> Vec<Arc<dyn Seeder>> {
        Vec::new()
    }
}

/// `seeders` with every composite seeder replaced by its parts, recursively: what actually runs.
pub fn expand(seeders: &[Arc<dyn Seeder>]) -> Vec<Arc<dyn Seeder>> {
    seeders
        .iter()
        .flat_map(|seeder| {
            let parts = seeder.parts();
            if parts.is_empty() { vec![seeder.clone()] } else { expand(&parts) }
        })
        .collect()
}
