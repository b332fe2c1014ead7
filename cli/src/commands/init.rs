//! `tenancy init`: writes a commented `tenancy.toml` (unless one exists) and creates the registry.

use std::path::Path;

use anyhow::Context;
use clap::Args;
use tenancy_core::command::UsageError;
use tenancy_core::config::FILE_NAME;
use tenancy_core::{Config, Registry};

use crate::exit::ExitStatus;
use crate::extensions::Extensions;
use crate::output::Output;
use crate::{App, CliContext};

/// Arguments of `tenancy init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing configuration file
    #[arg(long)]
    pub force: bool,
    /// Also write an example tenant migration (`migrations/`) and seeder (`seeders/`) as SQL files
    #[arg(long)]
    pub sql: bool,
}

/// What `init --sql` writes: one migration (with the engines' own ways to number rows) and the
/// default seeder. Existing files are never replaced.
const SQL_EXAMPLES: &[(&str, &str)] = &[
    (
        "migrations/0001_create_notes.up.sql",
        "-- Every tenant database gets this table. Migrations run in number order, each once, each in a\n\
         -- transaction where the engine allows (PostgreSQL, SQLite). Engines differ? Add\n\
         -- 0001_create_notes.postgres.up.sql (or .mysql., .sqlite.): it is used there instead.\n\
         CREATE TABLE notes (\n    id INTEGER PRIMARY KEY,\n    body TEXT NOT NULL\n);\n",
    ),
    (
        "migrations/0001_create_notes.postgres.up.sql",
        "CREATE TABLE notes (\n    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n    body TEXT NOT NULL\n);\n",
    ),
    (
        "migrations/0001_create_notes.mysql.up.sql",
        "CREATE TABLE notes (\n    id BIGINT AUTO_INCREMENT PRIMARY KEY,\n    body TEXT NOT NULL\n);\n",
    ),
    ("migrations/0001_create_notes.down.sql", "-- What `tenancy db rollback` runs.\nDROP TABLE notes;\n"),
    (
        "seeders/default.sql",
        "-- `tenancy db seed` (and `tenant create --seed`) run this in each tenant, in one transaction.\nINSERT INTO notes (body) VALUES ('Welcome to your new tenant.');\n",
    ),
];

pub async fn run(
    args: &InitArgs,
    config_file: Option<&Path>,
    cwd: &Path,
    app: &App,
    extensions: &Extensions,
    out: &Output,
) -> anyhow::Result<ExitStatus> {
    if args.sql && !app.sql_files {
        return Err(UsageError::new(
            "this tenancy's migrations and seeders are written in Rust, so SQL examples would not be used",
            "tenancy init  (without --sql), or the stock `tenancy` binary for SQL files",
        )
        .into());
    }
    let path = cwd.join(config_file.unwrap_or(Path::new(FILE_NAME)));
    if path.exists() && !args.force {
        out.status("Keeping", format!("`{}`, which exists already (--force overwrites it)", path.display()));
    } else {
        let mut template = Config::TEMPLATE.to_owned();
        for section in app.plugins.iter().filter_map(|plugin| plugin.config_template()) {
            template.push('\n');
            template.push_str(section);
        }
        std::fs::write(&path, template).with_context(|| format!("failed to write `{}`", path.display()))?;
        out.status("Created", format!("`{}`", path.display()));
    }
    let config = app.load_config(cwd, Some(&path))?;
    if args.sql {
        write_sql_examples(&config.root, out)?;
    }
    if Registry::create_database_if_missing(&config).await? {
        out.status("Created", "the registry database");
    }
    if config.per_tenant_roles() {
        make_role_key(&config, out)?;
    }
    let ctx = CliContext { out, config, app, extensions, tenant_flags: Default::default() };
    let tenancy = ctx.open_tenancy().await?;
    if ctx.config.per_tenant_roles() {
        check_role_rights(&tenancy, out).await;
    }
    out.status("Ready", format!("tenant registry at `{}`", tenancy.registry().location()));
    if out.is_json() {
        out.json(&serde_json::json!({"event": "initialized", "config": path, "registry": tenancy.registry().location()}));
    }
    tenancy.close().await;
    Ok(ExitStatus::Success)
}

/// Writes a new role key to `tenant_database.role_key_file` unless one is there (or
/// `TENANCY_ROLE_KEY` gives it): readable by its owner only, never replaced, as the tenants'
/// passwords come from it.
fn make_role_key(config: &Config, out: &Output) -> anyhow::Result<()> {
    let path = config.role_key_path();
    if tenancy_core::config::role_key_from_env().is_some() || path.exists() {
        return Ok(());
    }
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).with_context(|| format!("failed to create `{}`", folder.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).with_context(|| format!("failed to create the role key file `{}`", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{}\n", tenancy_core::database::RoleKey::generate()).as_bytes())
        .with_context(|| format!("failed to write the role key file `{}`", path.display()))?;
    out.status("Created", format!("the role key `{}` (keep it secret, and with your backups)", path.display()));
    Ok(())
}

/// Says, for each server whose user may not make tenant roles, what to grant or to set instead.
async fn check_role_rights(tenancy: &tenancy_core::Tenancy, out: &Output) {
    for (name, manager) in tenancy.managers() {
        match manager.may_create_roles().await {
            Ok(true) => {}
            Ok(false) => out.warn(format!(
                "the user of server `{name}` may not create roles, which `roles = \"per_tenant\"` needs: {}; or set `tenant_database.roles = \"shared\"`",
                grant_hint(manager.driver())
            )),
            Err(err) => out.warn(format!("could not ask server `{name}` whether its user may create roles: {err}")),
        }
    }
}

/// What to grant the server's user so it can make tenant roles.
pub(crate) fn grant_hint(driver: tenancy_core::database::Driver) -> &'static str {
    match driver {
        tenancy_core::database::Driver::MySql => {
            "GRANT CREATE USER ON *.* TO it WITH GRANT OPTION (and ALL on the tenant databases WITH GRANT OPTION)"
        }
        _ => "ALTER ROLE it CREATEROLE CREATEDB (or make it a superuser)",
    }
}

fn write_sql_examples(root: &Path, out: &Output) -> anyhow::Result<()> {
    for (name, text) in SQL_EXAMPLES {
        let path = root.join(name);
        if path.exists() {
            out.status("Keeping", format!("`{}`, which exists already", path.display()));
            continue;
        }
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).with_context(|| format!("failed to create `{}`", folder.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("failed to write `{}`", path.display()))?;
        out.status("Created", format!("`{}`", path.display()));
    }
    Ok(())
}
