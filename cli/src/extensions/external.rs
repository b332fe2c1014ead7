//! External commands: `tenancy foo ARGS` runs `tenancy-foo ARGS` from `PATH` when nothing else
//! claims `foo`, as cargo runs `cargo-foo`. The program learns about the run from `TENANCY_*`
//! variables and its exit code becomes ours.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tenancy_core::Config;
use tenancy_plugin::host::is_command_name;

use crate::exit::ExitStatus;
use crate::extensions::plugin_context;
use crate::output::Output;

/// The prefix of external command programs.
const PREFIX: &str = "tenancy-";

/// The `tenancy-*` programs on `PATH`, by command name; the first on `PATH` wins, as the shell's would.
pub fn scan() -> BTreeMap<String, PathBuf> {
    #[allow(clippy::disallowed_methods)] // PATH is the operating system's, not tenancy configuration
    let Some(path) = std::env::var_os("PATH") else { return BTreeMap::new() };
    let mut found = BTreeMap::new();
    for dir in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|name| name.strip_prefix(PREFIX)) else { continue };
            let name = name.strip_suffix(std::env::consts::EXE_SUFFIX).unwrap_or(name);
            if is_command_name(name) && !found.contains_key(name) && is_executable(&entry.path()) {
                found.insert(name.to_owned(), entry.path());
            }
        }
    }
    found
}

/// Where `program` is: as given when it names a path (`./tool`, `/usr/bin/env`), else the first
/// executable of that name on `PATH`, as the shell would find it.
pub fn find_program(program: &std::ffi::OsStr) -> Option<PathBuf> {
    let given = Path::new(program);
    if given.components().count() > 1 {
        return is_executable(given).then(|| given.to_owned());
    }
    #[allow(clippy::disallowed_methods)] // PATH is the operating system's, not tenancy configuration
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Runs the program with `args`, stdin, stdout and stderr inherited, and passes its exit code on.
///
/// It gets `TENANCY_BIN` (this program, to call back), `TENANCY_CONFIG` (the file read, if any),
/// `TENANCY_REGISTRY_URL`, `TENANCY_CONTEXT` (the JSON a dynamic plugin gets, without tenants),
/// and `TENANCY_JSON=1` / `TENANCY_QUIET=1` for `--json` / `--quiet`. None of these has the `__`
/// of a setting override, so a `tenancy` the program runs reads them as nothing but context.
pub fn run(program: &Path, args: &[String], config: Option<&Config>, out: &Output) -> anyhow::Result<ExitStatus> {
    let mut command = std::process::Command::new(program);
    command.args(args);
    if let Ok(me) = std::env::current_exe() {
        command.env("TENANCY_BIN", me);
    }
    if let Some(config) = config {
        let context = plugin_context(config, Vec::new(), out);
        if let Some(file) = &config.file {
            command.env(tenancy_core::config::CONFIG_ENV, file);
        }
        command.env("TENANCY_REGISTRY_URL", &context.registry_url);
        command.env("TENANCY_CONTEXT", serde_json::to_string(&context).context("cannot write the context")?);
    }
    if out.is_json() {
        command.env("TENANCY_JSON", "1");
    }
    if out.is_quiet() {
        command.env("TENANCY_QUIET", "1");
    }
    let status = command.status().with_context(|| format!("cannot run `{}`", program.display()))?;
    match status.code() {
        Some(code) => Ok(ExitStatus::Code(u8::try_from(code).unwrap_or(1))),
        None => Err(anyhow::anyhow!("`{}` was stopped by a signal ({status})", program.display())),
    }
}
