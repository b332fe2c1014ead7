//! Commands that `tenancy` itself does not define, from three places:
//! 1. **built-in plugins**: [`Plugin`]s linked into the binary and registered with [`crate::App`];
//! 2. **dynamic plugins**: libraries found in the plugin paths and loaded at start-up ([`dynamic`]);
//! 3. **external commands**: `tenancy-foo` executables on `PATH`, as cargo runs `cargo-foo` ([`external`]).
//!
//! All of them join the clap tree, so they show in `--help` and in completions, and an unknown
//! command stays clap's usage error. When two claim one name, the first claimant keeps it, in the
//! order above (and, among libraries, in path order), and a warning names both; the core
//! commands always win. A plugin that cannot be loaded is reported, named by its file, and every
//! other command keeps working.

pub mod dynamic;
pub mod external;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Arg, CommandFactory};
use serde::Serialize;
use tenancy_core::Config;
use tenancy_core::command::{Command, Plugin, TenantCommand, TenantFlag};
use tenancy_plugin::host::LoadedPlugin;
use tenancy_plugin::{CommandSpec, OutputOptions, PluginContext, TenantInfo};

use crate::args::{Cli, GlobalArgs};
use crate::output::Output;

/// Where a plugin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Linked into the binary.
    BuiltIn,
    /// A library loaded at run time.
    Dynamic,
    /// A `tenancy-foo` program on `PATH`.
    External,
}

impl Kind {
    /// As `plugin list` prints it.
    pub fn label(self) -> &'static str {
        match self {
            Self::BuiltIn => "built-in",
            Self::Dynamic => "dynamic",
            Self::External => "external",
        }
    }
}

/// A plugin as `tenancy plugin list` and `tenancy doctor` show it, loaded or not.
#[derive(Debug, Clone, Serialize)]
pub struct PluginEntry {
    /// Its declared name; for a library that failed to load, its file name.
    pub name: String,
    /// Its declared version, when known.
    pub version: Option<String>,
    /// Where it comes from.
    pub kind: Kind,
    /// Its file, for dynamic and external plugins.
    pub path: Option<PathBuf>,
    /// The commands it declares.
    pub commands: Vec<String>,
    /// Those of its commands another claimant has, and who.
    pub shadowed: Vec<String>,
    /// Turned off by `plugins.disabled`.
    pub disabled: bool,
    /// Why it could not be loaded.
    pub error: Option<String>,
}

impl PluginEntry {
    fn new(name: String, kind: Kind, path: Option<PathBuf>) -> Self {
        Self { name, version: None, kind, path, commands: Vec::new(), shadowed: Vec::new(), disabled: false, error: None }
    }
}

/// What runs a command that is not one of the core ones.
#[derive(Clone)]
pub enum Handler {
    /// A built-in plugin's command.
    BuiltIn(Arc<dyn Command>),
    /// A dynamic plugin's command.
    Dynamic {
        /// The library.
        plugin: Arc<LoadedPlugin>,
        /// The command, as it declared it.
        spec: CommandSpec,
    },
    /// A `tenancy-foo` program.
    External(PathBuf),
}

/// Every command beyond the core ones, and every plugin found, with what went wrong.
#[derive(Default)]
pub struct Extensions {
    core_commands: Vec<String>,
    handlers: BTreeMap<String, (Handler, String)>,
    plugins: Vec<PluginEntry>,
    searched: Vec<dynamic::Place>,
    warnings: Vec<String>,
    /// Built-in plugins' switches for `tenant create` and `tenant delete`.
    tenant_flags: Vec<TenantFlag>,
    /// The long flags `tenant create` and `tenant delete` have of their own.
    core_tenant_flags: Vec<(TenantCommand, String)>,
    /// The configuration's figures for `--concurrency`'s help, when it could be read.
    config: Option<Config>,
}

impl Extensions {
    /// Collects the built-in plugins' commands, loads the dynamic plugins the configuration and
    /// `TENANCY_PLUGIN_PATH` point at, and finds `tenancy-*` programs on `PATH`.
    pub fn discover(builtins: &[Arc<dyn Plugin>], config: Option<&Config>) -> Self {
        let core = Cli::command();
        let mut found = Self {
            core_commands: core_command_names(&core),
            core_tenant_flags: core_tenant_flags(&core),
            config: config.cloned(),
            ..Self::default()
        };
        for plugin in builtins {
            found.add_builtin(plugin.as_ref());
        }
        let search = dynamic::search(config);
        found.warnings.extend(search.warnings);
        found.searched = search.places;
        let disabled = config.map(|c| c.plugins.disabled.as_slice()).unwrap_or_default();
        for library in search.libraries {
            found.add_dynamic(library, disabled);
        }
        for (name, path) in external::scan() {
            found.add_external(name, path);
        }
        found
    }

    fn add_builtin(&mut self, plugin: &dyn Plugin) {
        let owner = format!("built-in plugin `{}`", plugin.name());
        let mut entry = PluginEntry::new(plugin.name().to_owned(), Kind::BuiltIn, None);
        entry.version = Some(plugin.version().to_owned());
        for command in plugin.commands() {
            let name = command.definition().get_name().to_owned();
            entry.commands.push(name.clone());
            self.claim(&mut entry, name, Handler::BuiltIn(command), &owner, true);
        }
        for flag in plugin.tenant_flags() {
            let taken = self.tenant_flags.iter().any(|f| f.command == flag.command && f.name == flag.name)
                || self.core_tenant_flags.iter().any(|(command, name)| *command == flag.command && name == flag.name);
            if taken {
                self.warnings.push(format!("{owner} adds `--{}`, which its command already has: ignored", flag.name));
            } else {
                self.tenant_flags.push(flag);
            }
        }
        self.plugins.push(entry);
    }

    /// The plugins' switches given in `matches` (a `tenant create` or `tenant delete` run).
    pub fn tenant_flags_given(&self, matches: &clap::ArgMatches) -> BTreeSet<String> {
        let Some(("tenant", tenant)) = matches.subcommand() else { return BTreeSet::new() };
        let Some((_, command)) = tenant.subcommand() else { return BTreeSet::new() };
        self.tenant_flags
            .iter()
            .filter(|flag| command.try_get_one::<bool>(flag.name).ok().flatten().copied().unwrap_or(false))
            .map(|flag| flag.name.to_owned())
            .collect()
    }

    fn add_dynamic(&mut self, path: PathBuf, disabled: &[String]) {
        let file_name = dynamic::file_stem(&path).unwrap_or_else(|| path.display().to_string());
        let mut entry = PluginEntry::new(file_name, Kind::Dynamic, Some(path.clone()));
        // A library turned off by its file name is not even loaded: loading runs its code.
        if dynamic::is_disabled(disabled, &path, None) {
            entry.disabled = true;
            self.plugins.push(entry);
            return;
        }
        let plugin = match LoadedPlugin::load(&path) {
            Ok(plugin) => Arc::new(plugin),
            Err(err) => {
                self.warnings.push(format!("plugin not loaded: {err}"));
                entry.error = Some(err.to_string());
                self.plugins.push(entry);
                return;
            }
        };
        entry.name = plugin.name().to_owned();
        entry.version = Some(plugin.version().to_owned());
        if dynamic::is_disabled(disabled, &path, Some(plugin.name())) {
            entry.disabled = true;
            self.plugins.push(entry);
            return;
        }
        let owner = format!("plugin `{}` (`{}`)", plugin.name(), path.display());
        for spec in plugin.commands() {
            entry.commands.push(spec.name.clone());
            let handler = Handler::Dynamic { plugin: plugin.clone(), spec: spec.clone() };
            self.claim(&mut entry, spec.name.clone(), handler, &owner, true);
        }
        self.plugins.push(entry);
    }

    fn add_external(&mut self, name: String, path: PathBuf) {
        let owner = format!("`{}`", path.display());
        let mut entry = PluginEntry::new(name.clone(), Kind::External, Some(path.clone()));
        entry.commands.push(name.clone());
        // Like cargo: a program on PATH only fills a name nothing else has, without a warning.
        self.claim(&mut entry, name, Handler::External(path), &owner, false);
        self.plugins.push(entry);
    }

    /// Gives `name` to `handler` unless a core command or an earlier claimant has it.
    fn claim(&mut self, entry: &mut PluginEntry, name: String, handler: Handler, owner: &str, warn: bool) {
        let holder = if self.core_commands.contains(&name) {
            Some(format!("the core command `{name}`"))
        } else {
            self.handlers.get(&name).map(|(_, holder)| holder.clone())
        };
        match holder {
            None => {
                self.handlers.insert(name, (handler, owner.to_owned()));
            }
            Some(holder) => {
                if warn {
                    self.warnings.push(format!(
                        "{owner} claims the command `{name}`, which {holder} provides first: `tenancy {name}` runs the latter; \
                         rename one, or turn one off with `plugins.disabled`"
                    ));
                }
                entry.shadowed.push(format!("{name} (provided by {holder})"));
            }
        }
    }

    /// The whole command line: the core commands and every extension's.
    pub fn command(&self) -> clap::Command {
        let mut root = Cli::command();
        for flag in &self.tenant_flags {
            let arg = Arg::new(flag.name).long(flag.name).help(flag.help).action(clap::ArgAction::SetTrue);
            root = root.mut_subcommand("tenant", |tenant| tenant.mut_subcommand(subcommand_name(flag.command), |command| command.arg(arg)));
        }
        for (name, (handler, _)) in &self.handlers {
            root = root.subcommand(match handler {
                Handler::BuiltIn(command) => command.definition(),
                Handler::Dynamic { spec, .. } => passthrough(name, &spec.about),
                Handler::External(path) => passthrough(name, &format!("Run `{}`", path.display())),
            });
        }
        match &self.config {
            Some(config) => crate::commands::selection::show_default_concurrency(root, config),
            None => root,
        }
    }

    /// The handler of the command `name`, unless it is a core command.
    pub fn handler(&self, name: &str) -> Option<&Handler> {
        self.handlers.get(name).map(|(handler, _)| handler)
    }

    /// Every plugin found, in the order they were found.
    pub fn plugins(&self) -> &[PluginEntry] {
        &self.plugins
    }

    /// The arguments after an extension's command name, if `matches` chose one.
    ///
    /// clap stops reading flags at an extension's first argument, so a global flag typed after it
    /// (`tenancy hello --all --json`) arrives among the extension's arguments. For a dynamic plugin
    /// the host's global flags are the host's wherever they appear: they are taken out and recorded in
    /// `global`. An external program gets its arguments untouched, as cargo does.
    pub fn arguments_of(&self, matches: &clap::ArgMatches, global: &mut GlobalArgs) -> Vec<String> {
        let Some((name, sub_matches)) = matches.subcommand() else { return Vec::new() };
        let dynamic = match self.handler(name) {
            None | Some(Handler::BuiltIn(_)) => return Vec::new(),
            Some(handler) => matches!(handler, Handler::Dynamic { .. }),
        };
        let args: Vec<String> = sub_matches.get_many::<String>("args").map(|args| args.cloned().collect()).unwrap_or_default();
        if !dynamic {
            return args;
        }
        let mut kept = Vec::with_capacity(args.len());
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--" => {
                    kept.push(arg);
                    kept.extend(args.by_ref());
                }
                "--json" => global.json = true,
                "--quiet" | "-q" => global.quiet = true,
                "--no-color" => global.no_color = true,
                // Already read by `args::config_flag`, before parsing.
                "--config" => drop(args.next()),
                other if other.starts_with("--config=") => {}
                _ => kept.push(arg),
            }
        }
        kept
    }

    /// Where plugin libraries were looked for.
    pub fn searched(&self) -> &[dynamic::Place] {
        &self.searched
    }

    /// Prints what went wrong while finding plugins.
    pub fn print_warnings(&self, out: &Output) {
        for warning in &self.warnings {
            out.warn(warning);
        }
    }
}

/// What every plugin, dynamic or external, is told about the run.
pub fn plugin_context(config: &Config, tenants: Vec<TenantInfo>, out: &Output) -> PluginContext {
    PluginContext {
        config_file: config.file.clone(),
        config: serde_json::to_value(config).unwrap_or_default(),
        registry_url: config
            .central_location()
            .map(|location| location.connection_url())
            .unwrap_or_else(|_| config.central.url.expose().to_owned()),
        tenants,
        output: OutputOptions { json: out.is_json(), quiet: out.is_quiet(), color: out.has_color() },
    }
}

/// A subcommand that hands every argument, flags and `--help` included, to its program.
fn passthrough(name: &str, about: &str) -> clap::Command {
    clap::Command::new(name.to_owned())
        .about(about.to_owned())
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(Arg::new("args").num_args(0..).trailing_var_arg(true).allow_hyphen_values(true))
}

/// The long flags of `tenant create` and `tenant delete` in the core command line.
fn core_tenant_flags(root: &clap::Command) -> Vec<(TenantCommand, String)> {
    let Some(tenant) = root.find_subcommand("tenant") else { return Vec::new() };
    [TenantCommand::Create, TenantCommand::Delete]
        .into_iter()
        .filter_map(|command| tenant.find_subcommand(subcommand_name(command)).map(|sub| (command, sub)))
        .flat_map(|(command, sub)| {
            sub.get_arguments().filter_map(|arg| arg.get_long()).map(move |long| (command, long.to_owned())).collect::<Vec<_>>()
        })
        .collect()
}

fn subcommand_name(command: TenantCommand) -> &'static str {
    match command {
        TenantCommand::Create => "create",
        TenantCommand::Delete => "delete",
    }
}

/// The names of the core commands (and clap's `help`), which no extension can take.
fn core_command_names(root: &clap::Command) -> Vec<String> {
    let mut names: Vec<String> =
        root.get_subcommands().flat_map(|sub| std::iter::once(sub.get_name()).chain(sub.get_all_aliases())).map(str::to_owned).collect();
    names.push("help".into());
    names
}
