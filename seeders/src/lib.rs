//! The sample application's seeders. An application writes its own as [`tenancy_core::Seeder`] impls
//! and hands them to `tenancy_cli::App::seeders`.

use std::sync::Arc;

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use tenancy_core::{BoxError, Seeder, TenantContext};

/// Every seeder of the sample application; the first is the default.
pub fn all() -> Vec<Arc<dyn Seeder>> {
    vec![Arc::new(DatabaseSeeder), Arc::new(AccountsTableSeeder)]
}

/// The default: runs the other seeders in order.
pub struct DatabaseSeeder;

#[async_trait::async_trait]
impl Seeder for DatabaseSeeder {
    fn name(&self) -> &str {
        "DatabaseSeeder"
    }

    fn description(&self) -> &str {
        "runs every seeder below, in order"
    }

    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        AccountsTableSeeder.run(ctx).await
    }
}

/// The tenant's first account, named after the tenant. Running it again changes nothing.
pub struct AccountsTableSeeder;

#[async_trait::async_trait]
impl Seeder for AccountsTableSeeder {
    fn name(&self) -> &str {
        "AccountsTableSeeder"
    }

    fn description(&self) -> &str {
        "the tenant's owner account"
    }

    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        let db = ctx.db();
        let email = format!("owner@{}", ctx.tenant().primary_domain().map_or("example.invalid", |d| d.as_str()));
        let existing = Query::select().expr(Expr::val(1)).from("accounts").and_where(Expr::col("email").eq(email.as_str())).to_owned();
        if db.query_one(&existing).await?.is_none() {
            let insert = Query::insert()
                .into_table("accounts")
                .columns(["name", "email"])
                .values_panic([ctx.tenant().name.as_str().into(), email.into()])
                .to_owned();
            db.execute(&insert).await?;
        }
        Ok(())
    }
}
