//! An application's own `tenancy` binary: its migrations, its seeders, and one plugin linked in.
//! The README's "Your own binary" section shows this file whole; the tests run it.
//!
//! The `notes` plugin gives every tenant database a `notes` table (under its own tracking table),
//! writes a welcome note while a tenant is created, and adds `my_app notes --tenant T [--add TEXT]`.

use std::sync::Arc;

use clap::{Arg, ArgMatches};
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};
use tenancy_core::BoxError;
use tenancy_core::command::{AppContext, Command, ExitStatus, Plugin};
use tenancy_core::migrate::{SeaOrmMigrator, TenantMigrator};
use tenancy_core::provisioning::{Provisioning, ProvisioningStep, StepOutcome};

fn main() -> std::process::ExitCode {
    tenancy_cli::App::new().tenant_migrator::<migration::Migrator>().seeders(seeders::all()).plugin(NotesPlugin).run()
}

/// Notes kept in each tenant's own database.
struct NotesPlugin;

impl Plugin for NotesPlugin {
    fn name(&self) -> &str {
        "notes"
    }
    fn version(&self) -> &str {
        "1.0.0"
    }
    fn commands(&self) -> Vec<Arc<dyn Command>> {
        vec![Arc::new(NotesCommand)]
    }
    fn migrators(&self) -> Vec<Arc<dyn TenantMigrator>> {
        vec![Arc::new(SeaOrmMigrator::<NotesMigrator>::named("notes"))]
    }
    fn provisioning_steps(&self) -> Vec<Arc<dyn ProvisioningStep>> {
        vec![Arc::new(WelcomeNote)]
    }
}

/// The plugin's migrations, tracked in `notes_migrations`, apart from the application's.
struct NotesMigrator;

impl MigratorTrait for NotesMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateNotes)]
    }
    fn migration_table_name() -> DynIden {
        "notes_migrations".into_iden()
    }
}

struct CreateNotes;

impl MigrationName for CreateNotes {
    fn name(&self) -> &str {
        "m20260101_000001_create_notes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateNotes {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let notes = Table::create()
            .table("notes")
            .col(ColumnDef::new("id").integer().not_null().auto_increment().primary_key())
            .col(ColumnDef::new("body").string().not_null())
            .to_owned();
        manager.create_table(notes).await
    }
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("notes").to_owned()).await
    }
}

/// Runs while a tenant is created, after its migrations: a failure here undoes the whole creation.
struct WelcomeNote;

#[async_trait::async_trait]
impl ProvisioningStep for WelcomeNote {
    fn name(&self) -> &str {
        "welcome note"
    }
    async fn run(&self, job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
        let tenant = job.tenant()?.clone();
        let body = format!("Welcome, {}!", tenant.name);
        job.tenancy.run(&tenant, |ctx| async move { add_note(ctx.db(), &body).await }).await??;
        Ok(StepOutcome::Done("1 note".into()))
    }
}

/// `notes --tenant T [--add TEXT]`: adds a note, then lists the tenant's notes.
struct NotesCommand;

#[async_trait::async_trait]
impl Command for NotesCommand {
    fn definition(&self) -> clap::Command {
        clap::Command::new("notes")
            .about("List a tenant's notes, or add one [plugin: notes]")
            .arg(Arg::new("tenant").long("tenant").value_name("TENANT").required(true).help("id, id prefix, domain or name"))
            .arg(Arg::new("add").long("add").value_name("TEXT").help("Add this note first"))
    }

    async fn run(&self, app: &dyn AppContext, args: &ArgMatches) -> anyhow::Result<ExitStatus> {
        let tenancy = app.open_tenancy().await?;
        let reference = args.get_one::<String>("tenant").map_or("", String::as_str);
        let tenant = tenancy.registry().resolve(reference).await?;
        let add = args.get_one::<String>("add").cloned();
        let notes = tenancy
            .run(&tenant, |ctx| async move {
                if let Some(body) = add {
                    add_note(ctx.db(), &body).await?;
                }
                let rows = ctx
                    .db()
                    .query_all_raw(Statement::from_string(ctx.db().get_database_backend(), "SELECT body FROM notes ORDER BY id"))
                    .await?;
                rows.iter().map(|row| row.try_get_by_index::<String>(0)).collect::<Result<Vec<_>, DbErr>>()
            })
            .await??;
        tenancy.close().await;
        for note in notes {
            app.console().data(&note);
        }
        Ok(ExitStatus::Success)
    }
}

async fn add_note(db: &impl ConnectionTrait, body: &str) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "INSERT INTO notes (body) VALUES ($1)",
        _ => "INSERT INTO notes (body) VALUES (?)",
    };
    db.execute_raw(Statement::from_sql_and_values(backend, sql, [body.into()])).await.map(drop)
}
