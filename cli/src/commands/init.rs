//! `tenancy init`: writes a commented `tenancy.toml` (unless one exists) and creates the registry.

use std::path::Path;

use anyhow::Context;
use clap::Args;
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
}

pub async fn run(
    args: &InitArgs,
    config_file: Option<&Path>,
    cwd: &Path,
    app: &App,
    extensions: &Extensions,
    out: &Output,
) -> anyhow::Result<ExitStatus> {
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
    if Registry::create_database_if_missing(&config).await? {
        out.status("Created", "the registry database");
    }
    let ctx = CliContext { out, config, app, extensions, tenant_flags: Default::default() };
    let tenancy = ctx.open_tenancy().await?;
    out.status("Ready", format!("tenant registry at `{}`", tenancy.registry().location()));
    if out.is_json() {
        out.json(&serde_json::json!({"event": "initialized", "config": path, "registry": tenancy.registry().location()}));
    }
    tenancy.close().await;
    Ok(ExitStatus::Success)
}
