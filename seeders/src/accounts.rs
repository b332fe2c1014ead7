//! [`AccountsTableSeeder`] (demo accounts) and [`TenantDatabaseSeeder`] (the tenant's own account
//! and owner user).

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use tenancy_core::{BoxError, Seeder, TenantContext};

/// How many demo accounts.
const DEMO_ACCOUNTS: usize = 25;

/// Demo accounts on the three price plans.
pub struct AccountsTableSeeder;

#[async_trait::async_trait]
impl Seeder for AccountsTableSeeder {
    fn name(&self) -> &str {
        "AccountsTableSeeder"
    }

    fn description(&self) -> &str {
        "25 demo accounts on the free, pro and team plans"
    }

    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        let mut insert = accounts_insert();
        for n in 1..=DEMO_ACCOUNTS {
            let plan = ["free", "pro", "team"][n % 3];
            insert.values_panic([format!("Demo account {n}").into(), format!("demo{n}@example.test").into(), plan.into()]);
        }
        ctx.db().execute(&insert).await?;
        Ok(())
    }
}

/// The tenant's own account, named after it, with its owner user.
pub struct TenantDatabaseSeeder;

#[async_trait::async_trait]
impl Seeder for TenantDatabaseSeeder {
    fn name(&self) -> &str {
        "TenantDatabaseSeeder"
    }

    fn description(&self) -> &str {
        "the tenant's own account and its owner user"
    }

    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        let tenant = ctx.tenant();
        let email = format!("owner@{}", tenant.primary_domain().map_or("example.invalid", |d| d.as_str()));
        let db = ctx.db();
        let mut account = accounts_insert();
        account.values_panic([tenant.name.as_str().into(), email.clone().into(), "team".into()]);
        db.execute(&account).await?;
        let find = Query::select()
            .column(Alias::new("id"))
            .from(Alias::new("accounts"))
            .and_where(Expr::col(Alias::new("email")).eq(email.as_str()))
            .to_owned();
        let account_id: i32 = db.query_one(&find).await?.ok_or("the owner account was not stored")?.try_get("", "id")?;
        let user = Query::insert()
            .into_table(Alias::new("users"))
            .columns(["account_id", "name", "email", "password_hash"].map(Alias::new))
            .values_panic([account_id.into(), format!("{} owner", tenant.name).into(), email.into(), "!".into()])
            .on_conflict(OnConflict::column(Alias::new("email")).do_nothing_on([Alias::new("email")]).to_owned())
            .to_owned();
        db.execute(&user).await?;
        Ok(())
    }
}

/// `INSERT INTO accounts (name, email, plan) … ON CONFLICT (email) DO NOTHING`, values to be added.
fn accounts_insert() -> sea_orm::sea_query::InsertStatement {
    Query::insert()
        .into_table(Alias::new("accounts"))
        .columns(["name", "email", "plan"].map(Alias::new))
        .on_conflict(OnConflict::column(Alias::new("email")).do_nothing_on([Alias::new("email")]).to_owned())
        .to_owned()
}
