//! The sample application's seeders. An application writes its own as [`tenancy_core::Seeder`] impls
//! and hands them to `tenancy_cli::App::seeders`; the first one is the default.
//!
//! Every seeder here can run any number of times: rows are keyed (country code, ICAO code, airport
//! ident, e-mail) and existing ones are left as they are.

mod accounts;
mod airlines;
mod airports;
mod countries;

use std::sync::Arc;

use tenancy_core::{BoxError, Seeder, TenantContext};

pub use accounts::{AccountsTableSeeder, TenantDatabaseSeeder};
pub use airlines::AirlinesTableSeeder;
pub use airports::AirportsTableSeeder;
pub use countries::CountriesTableSeeder;

/// Every seeder of the sample application; the first is the default.
pub fn all() -> Vec<Arc<dyn Seeder>> {
    vec![
        Arc::new(DatabaseSeeder),
        Arc::new(TenantDatabaseSeeder),
        Arc::new(AccountsTableSeeder),
        Arc::new(AirlinesTableSeeder),
        Arc::new(AirportsTableSeeder),
        Arc::new(CountriesTableSeeder),
    ]
}

/// The default: every other seeder, in the order their data depends on each other.
pub struct DatabaseSeeder;

#[async_trait::async_trait]
impl Seeder for DatabaseSeeder {
    fn name(&self) -> &str {
        "DatabaseSeeder"
    }

    fn description(&self) -> &str {
        "countries, airlines, airports, accounts, then the tenant's own account"
    }

    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        for seeder in self.parts() {
            seeder.run(ctx).await?;
        }
        Ok(())
    }

    fn parts(&self) -> Vec<Arc<dyn Seeder>> {
        vec![
            Arc::new(CountriesTableSeeder),
            Arc::new(AirlinesTableSeeder),
            Arc::new(AirportsTableSeeder),
            Arc::new(AccountsTableSeeder),
            Arc::new(TenantDatabaseSeeder),
        ]
    }
}

/// Country ids by ISO alpha-2 code, or an error saying to seed countries first.
pub(crate) async fn country_ids(ctx: &TenantContext, needed_by: &str) -> Result<std::collections::HashMap<String, i32>, BoxError> {
    use sea_orm::ConnectionTrait;
    use sea_orm::sea_query::{Alias, Query};
    let select = Query::select().columns([Alias::new("id"), Alias::new("code")]).from(Alias::new("countries")).to_owned();
    let rows = ctx.db().query_all(&select).await?;
    if rows.is_empty() {
        return Err(format!("{needed_by} needs the countries table filled: run CountriesTableSeeder first (DatabaseSeeder does)").into());
    }
    rows.iter().map(|row| Ok((row.try_get::<String>("", "code")?.trim().to_owned(), row.try_get::<i32>("", "id")?))).collect()
}
