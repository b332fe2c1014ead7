//! `tenancy hello`: an example of a plugin loaded at run time.
//!
//! Without arguments it greets; with `--tenant T` (repeatable) or `--all` it opens each selected
//! tenant's database through its own sea-orm connection and prints how many tables it has. It
//! shows what every dynamic plugin does: parse its own arguments, read the context the host sent,
//! and run its own single-threaded tokio runtime.

#![allow(clippy::print_stdout)] // a plugin talks to the user through its own stdout

use clap::Parser;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, Statement};
use tenancy_plugin::{CommandSpec, Invocation, PluginError, TenantInfo, declare_plugin};

declare_plugin! {
    name: "hello",
    version: env!("CARGO_PKG_VERSION"),
    commands: [CommandSpec::new("hello", "Greet, or count the tables of tenants' databases [plugin: hello]").with_tenants()],
    run: run,
}

/// Greet, or count the tables of tenants' databases.
#[derive(Debug, Parser)]
#[command(name = "tenancy hello", version)]
struct HelloArgs {
    /// A tenant whose tables to count (id, id prefix, domain or name); repeatable
    #[arg(long = "tenant", value_name = "TENANT")]
    tenants: Vec<String>,
    /// Count the tables of every tenant
    #[arg(long)]
    all: bool,
}

fn run(invocation: Invocation) -> Result<(), PluginError> {
    // `--help` and `--version` are not failures; clap knows which is which.
    let _args = match HelloArgs::try_parse_from(invocation.argv()) {
        Ok(args) => args,
        Err(err) if !err.use_stderr() => {
            print!("{err}");
            return Ok(());
        }
        Err(err) => return Err(PluginError::Usage(err.render().to_string())),
    };
    let context = &invocation.context;
    if context.tenants.is_empty() {
        println!("Hello from the hello plugin {}! Pass --tenant T or --all to count a tenant's tables.", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(PluginError::failed)?;
    runtime.block_on(async {
        for tenant in &context.tenants {
            let tables = count_tables(tenant).await.map_err(|err| PluginError::Failed(format!("tenant `{}`: {err}", tenant.name)))?;
            if context.output.json {
                println!("{}", serde_json::json!({"tenant": tenant.id, "name": tenant.name, "tables": tables}));
            } else {
                println!("{}: {tables} tables", tenant.name);
            }
        }
        Ok(())
    })
}

/// Counts the tables of `tenant`'s database (or schema) through a connection of our own.
async fn count_tables(tenant: &TenantInfo) -> Result<i64, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(tenant.database_url.clone());
    options.max_connections(1).sqlx_logging(false);
    if let Some(schema) = &tenant.schema {
        options.set_schema_search_path(schema.clone());
    }
    let db = Database::connect(options).await?;
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        DbBackend::Postgres => "SELECT COUNT(*)::bigint FROM information_schema.tables WHERE table_schema = current_schema()",
        _ => "SELECT CAST(COUNT(*) AS SIGNED) FROM information_schema.tables WHERE table_schema = DATABASE()",
    };
    let row = db.query_one_raw(Statement::from_string(backend, sql)).await?;
    let tables = row.map(|row| row.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0);
    db.close().await?;
    Ok(tables)
}
