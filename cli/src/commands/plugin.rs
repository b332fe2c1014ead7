//! `tenancy plugin list`: every plugin found, built-in, dynamic or external, with its commands,
//! and for those that did not load, why.

use clap::Subcommand;

use crate::exit::ExitStatus;
use crate::extensions::{Extensions, PluginEntry};
use crate::output::Output;

/// `tenancy plugin …`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List plugins: name, version, kind, commands, file, and any load error
    List,
}

pub fn run(command: &PluginCommand, extensions: &Extensions, out: &Output) -> anyhow::Result<ExitStatus> {
    match command {
        PluginCommand::List => list(extensions, out),
    }
    Ok(ExitStatus::Success)
}

fn list(extensions: &Extensions, out: &Output) {
    let plugins = extensions.plugins();
    if out.is_json() {
        for plugin in plugins {
            out.json(plugin);
        }
        return;
    }
    let searched: Vec<String> = extensions
        .searched()
        .iter()
        .map(|place| format!("{} ({}{})", place.path.display(), place.origin, if place.exists { "" } else { ", missing" }))
        .collect();
    let searched = if searched.is_empty() { "nowhere: the configuration could not be read".to_owned() } else { searched.join(", ") };
    if plugins.is_empty() {
        out.status(
            "None",
            "no plugins found: libraries go in `plugins/` beside tenancy.toml, or in a folder named by \
             `plugins.paths` or TENANCY_PLUGIN_PATH; programs named `tenancy-NAME` on PATH add `tenancy NAME`",
        );
        out.status("Searched", searched);
        return;
    }
    out.data(format!("{:<20} {:<10} {:<9} {:<28} PATH", "NAME", "VERSION", "KIND", "COMMANDS"));
    for plugin in plugins {
        out.data(row(plugin));
        if plugin.disabled {
            out.data("    disabled by `plugins.disabled`");
        }
        if let Some(error) = &plugin.error {
            out.data(format!("    error: {error}"));
        }
        for shadowed in &plugin.shadowed {
            out.data(format!("    not used: {shadowed}"));
        }
    }
    out.status("Searched", searched);
}

fn row(plugin: &PluginEntry) -> String {
    let commands = if plugin.commands.is_empty() { "-".to_owned() } else { plugin.commands.join(", ") };
    format!(
        "{:<20} {:<10} {:<9} {:<28} {}",
        plugin.name,
        plugin.version.as_deref().unwrap_or("-"),
        plugin.kind.label(),
        commands,
        plugin.path.as_ref().map_or_else(|| "-".to_owned(), |path| path.display().to_string())
    )
}
