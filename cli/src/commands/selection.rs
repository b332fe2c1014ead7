//! The tenant-selection and fleet flags live in core, so plugins' commands share them; here the
//! CLI writes the default `--concurrency` into every command's help.

use tenancy_core::Config;
pub use tenancy_core::command::selection::{CONCURRENCY, ConcurrencyArg, FleetArgs, TenantSelection};
use tenancy_core::migrate::fleet::FleetOptions;

/// Writes the default `--concurrency` this configuration gives into the help of every command
/// that has the flag: `[default: 12 (connection_budget 64 / pool_size 5)]`.
pub fn show_default_concurrency(command: clap::Command, config: &Config) -> clap::Command {
    let help = format!(
        "Tenants worked on at once [default: {} ({})]",
        FleetOptions::default_concurrency(config),
        FleetOptions::default_concurrency_reason(config)
    );
    with_concurrency_help(command, &help)
}

fn with_concurrency_help(mut command: clap::Command, help: &str) -> clap::Command {
    if command.get_arguments().any(|arg| arg.get_id() == CONCURRENCY) {
        command = command.mut_arg(CONCURRENCY, |arg| arg.help(help.to_owned()));
    }
    let names: Vec<String> = command.get_subcommands().map(|sub| sub.get_name().to_owned()).collect();
    for name in names {
        command = command.mut_subcommand(name, |sub| with_concurrency_help(sub, help));
    }
    command
}
