//! Plugin libraries: where they are looked for, and how one of their commands runs.
//!
//! A library gets its arguments and a JSON [`PluginContext`], never a Rust object: it has its own
//! copy of every crate, tokio included, so it opens its own runtime and connections from the
//! URLs in the context. Its run happens on a blocking thread, so it can block as it likes.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tenancy_core::{Config, Tenant};
use tenancy_plugin::host::{LoadedPlugin, RunError};
use tenancy_plugin::{CommandSpec, TenantInfo};

use crate::CliContext;
use crate::commands::selection::TenantSelection;
use crate::exit::{ExitStatus, UsageError};
use crate::extensions::plugin_context;

/// Folders or files searched first, separated like `PATH`.
pub const PLUGIN_PATH_ENV: &str = "TENANCY_PLUGIN_PATH";

/// Whether `disabled` (the `plugins.disabled` list) names the library at `path`, by its file name
/// without extension (`libtenancy_hello`) or, once it is loaded, by its declared name.
pub fn is_disabled(disabled: &[String], path: &Path, name: Option<&str>) -> bool {
    disabled.iter().any(|entry| Some(entry.as_str()) == name || Some(entry.as_str()) == file_stem(path).as_deref())
}

/// A library's file name without its extension, e.g. `libtenancy_hello`.
pub fn file_stem(path: &Path) -> Option<String> {
    path.file_stem().map(|stem| stem.to_string_lossy().into_owned())
}

/// Where plugin libraries were looked for, and which files were found.
#[derive(Debug, Default)]
pub struct Search {
    /// The library files, in load order.
    pub libraries: Vec<PathBuf>,
    /// Paths the user named that do not exist.
    pub warnings: Vec<String>,
    /// Every place looked at, in order, for `plugin list`.
    pub places: Vec<Place>,
}

/// A folder or file in the plugin search path.
#[derive(Debug, Clone)]
pub struct Place {
    /// The folder or file.
    pub path: PathBuf,
    /// Who named it: `TENANCY_PLUGIN_PATH`, `plugins.paths` or `default`.
    pub origin: &'static str,
    /// Whether it is there.
    pub exists: bool,
}

/// Looks for library files in search order, each once: `TENANCY_PLUGIN_PATH`, then
/// `plugins.paths`, then `plugins/` beside `tenancy.toml`. A folder contributes the libraries
/// directly inside it (`.so`, `.dylib` or `.dll`, as the platform names them), sorted by name; a
/// file is taken as it is. A path the user named that does not exist is a warning; the default
/// `plugins/` folder need not exist.
pub fn search(config: Option<&Config>) -> Search {
    #[allow(clippy::disallowed_methods)] // the plugin path is read before any configuration
    let from_env = std::env::var_os(PLUGIN_PATH_ENV).map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>()).unwrap_or_default();
    let mut roots: Vec<(PathBuf, &'static str)> =
        from_env.into_iter().filter(|root| !root.as_os_str().is_empty()).map(|root| (root, PLUGIN_PATH_ENV)).collect();
    if let Some(config) = config {
        roots.extend(config.plugin_paths().into_iter().map(|root| (root, "plugins.paths")));
        roots.push((config.default_plugin_dir(), "default"));
    }

    let mut seen = HashSet::new();
    let mut search = Search::default();
    for (root, origin) in roots {
        let exists = root.exists();
        search.places.push(Place { path: root.clone(), origin, exists });
        if !exists {
            if origin != "default" {
                search.warnings.push(format!("{origin} names `{}`, which does not exist", root.display()));
            }
            continue;
        }
        for path in libraries_in(&root) {
            // The same file reached twice (two paths, a symlink) is one plugin.
            if seen.insert(std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone())) {
                search.libraries.push(path);
            }
        }
    }
    search
}

fn libraries_in(root: &Path) -> Vec<PathBuf> {
    if root.is_file() {
        return vec![root.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut libraries: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && path.extension() == Some(OsStr::new(std::env::consts::DLL_EXTENSION)))
        .collect();
    libraries.sort();
    libraries
}

/// Runs `spec`, a command of `plugin`, with the arguments after its name.
pub async fn run(plugin: &Arc<LoadedPlugin>, spec: &CommandSpec, args: Vec<String>, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let tenants = if spec.tenants { selected_tenants(&spec.name, &args, ctx).await? } else { Vec::new() };
    let context = serde_json::to_string(&plugin_context(&ctx.config, tenants, ctx.out)).context("cannot write the plugin's context")?;
    let mut argv = vec![spec.name.clone()];
    argv.extend(args);
    let runner = plugin.clone();
    let result = tokio::task::spawn_blocking(move || runner.run(&argv, &context)).await.context("the plugin's thread was lost")?;
    let who = format!("plugin `{}` (`{}`)", plugin.name(), plugin.path().display());
    match result {
        Ok(()) => Ok(ExitStatus::Success),
        Err(RunError::Usage(message)) => {
            // A plugin using clap hands back clap's rendered error; ours already says "error:".
            let message = message.trim().trim_start_matches("error:").trim().to_owned();
            Err(UsageError::new(message, format!("see `tenancy {} --help`", spec.name)).into())
        }
        Err(RunError::Panicked(message)) => Err(anyhow::anyhow!(message).context(format!("{who} panicked while running `{}`", spec.name))),
        Err(err) => Err(anyhow::Error::new(err).context(format!("{who} failed to run `{}`", spec.name))),
    }
}

/// The tenants named by `--tenant`/`-t` and `--all` (with `--status`) in a plugin's arguments,
/// resolved as the core commands resolve them. None given means none: the plugin decides.
async fn selected_tenants(command: &str, args: &[String], ctx: &CliContext<'_>) -> anyhow::Result<Vec<TenantInfo>> {
    let selection = scan_selection(args)?;
    if selection.tenants.is_empty() && !selection.all {
        return Ok(Vec::new());
    }
    ctx.with_tenancy(async |tenancy| {
        let tenants = selection.resolve(tenancy, ctx.out, &format!("tenancy {command}")).await?;
        tenants
            .into_iter()
            .map(|tenant| {
                let target = tenancy.manager_of(&tenant)?.connection_target(&tenant.database, tenancy.login_of(&tenant)?.as_ref());
                Ok(tenant_info(tenant, target.url, target.schema))
            })
            .collect()
    })
    .await
}

fn scan_selection(args: &[String]) -> Result<TenantSelection, UsageError> {
    let mut selection = TenantSelection { tenants: Vec::new(), all: false, status: "active".into() };
    let mut args = args.iter();
    let value = |flag: &str, value: Option<&String>| {
        value.cloned().ok_or_else(|| UsageError::new(format!("`{flag}` needs a value"), format!("{flag} acme.example.com")))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--" => break,
            "--all" => selection.all = true,
            "--tenant" | "-t" => selection.tenants.push(value(arg, args.next())?),
            "--status" => selection.status = value(arg, args.next())?,
            other => {
                if let Some(tenant) = other.strip_prefix("--tenant=") {
                    selection.tenants.push(tenant.to_owned());
                } else if let Some(status) = other.strip_prefix("--status=") {
                    selection.status = status.to_owned();
                }
            }
        }
    }
    if selection.all && !selection.tenants.is_empty() {
        return Err(UsageError::new("`--all` and `--tenant` cannot be used together", "pass one or the other"));
    }
    Ok(selection)
}

fn tenant_info(tenant: Tenant, database_url: String, schema: Option<String>) -> TenantInfo {
    TenantInfo {
        id: tenant.id.to_string(),
        name: tenant.name.to_string(),
        status: tenant.status.to_string(),
        domains: tenant.domains.iter().map(|d| d.domain.to_string()).collect(),
        database: tenant.database.to_string(),
        database_url,
        schema,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn selection_is_read_from_the_plugin_arguments() {
        let selection = scan_selection(&strings(&["--loud", "--tenant", "acme", "-t", "b.example.com", "--tenant=c"])).unwrap();
        assert_eq!(selection.tenants, ["acme", "b.example.com", "c"]);
        assert!(!selection.all);
        let selection = scan_selection(&strings(&["--all", "--status=inactive", "--", "--tenant", "ignored"])).unwrap();
        assert!(selection.all && selection.tenants.is_empty());
        assert_eq!(selection.status, "inactive");
    }

    #[test]
    fn a_bad_selection_is_a_usage_error() {
        assert!(scan_selection(&strings(&["--tenant"])).is_err());
        assert!(scan_selection(&strings(&["--all", "--tenant", "acme"])).is_err());
    }
}
