//! [`CountriesTableSeeder`]: the ISO 3166-1 list (249 countries), from the `rust_iso3166` crate.

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, OnConflict, Query};
use tenancy_core::{BoxError, Seeder, TenantContext};

/// Every ISO 3166-1 country: alpha-2, alpha-3 and numeric codes and the English short name.
pub struct CountriesTableSeeder;

#[async_trait::async_trait]
impl Seeder for CountriesTableSeeder {
    fn name(&self) -> &str {
        "CountriesTableSeeder"
    }

    fn description(&self) -> &str {
        "the 249 countries of ISO 3166-1"
    }

    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        let mut insert = Query::insert()
            .into_table(Alias::new("countries"))
            .columns([Alias::new("code"), Alias::new("code3"), Alias::new("numeric_code"), Alias::new("name")])
            .on_conflict(OnConflict::column(Alias::new("code")).do_nothing_on([Alias::new("code")]).to_owned())
            .to_owned();
        for country in rust_iso3166::ALL {
            insert.values_panic([
                country.alpha2.into(),
                country.alpha3.into(),
                format!("{:03}", country.numeric).into(),
                country.name.into(),
            ]);
        }
        ctx.db().execute(&insert).await?;
        Ok(())
    }
}
