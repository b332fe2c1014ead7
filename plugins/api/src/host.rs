//! The host's side: load a plugin library, check it, read its declaration, run its commands.
//! Every way a library can be wrong becomes a [`LoadError`] naming the file; the host carries on.
//!
//! A loaded library is never unloaded: its code may have registered thread-local destructors or
//! left threads running, and the declaration points into it. Plugins are few and load once per
//! process, so nothing is lost by keeping them.

use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};

use libloading::Library;

use crate::CommandSpec;
use crate::abi::{self, ABI_VERSION, Declaration, MessageBuffer, RunFn, StrRef, status};

/// The room the host gives a plugin for its error message.
const MESSAGE_CAPACITY: usize = 16 * 1024;

/// A plugin library that passed every check.
#[derive(Debug)]
pub struct LoadedPlugin {
    path: PathBuf,
    name: String,
    version: String,
    commands: Vec<CommandSpec>,
    run: RunFn,
    _library: ManuallyDrop<Library>,
}

/// Why a file could not be used as a plugin. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The system loader refused it: not a shared library, wrong architecture, missing dependency.
    #[error("`{}` is not a loadable plugin library: {reason}", path.display())]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// A symbol every plugin exports is missing: not a `tenancy` plugin, or not made with `declare_plugin!`.
    #[error("`{}` is not a tenancy plugin: it has no `{symbol}` symbol (plugins are built with `tenancy_plugin::declare_plugin!`)", path.display())]
    MissingSymbol {
        /// The file.
        path: PathBuf,
        /// The symbol.
        symbol: String,
    },
    /// The plugin was built for another version of the ABI.
    #[error("`{}` was built for plugin ABI version {found}, but this tenancy speaks version {expected}: rebuild it against this tenancy-plugin", path.display())]
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// The version the plugin reported.
        found: u32,
        /// Ours.
        expected: u32,
    },
    /// The declaration is missing or unreadable.
    #[error("`{}` has an unreadable declaration: {reason}", path.display())]
    BadDeclaration {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a plugin's command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plugin says it was called wrongly.
    #[error("{0}")]
    Usage(String),
    /// The plugin reports a failure.
    #[error("{0}")]
    Failed(String),
    /// The plugin panicked; the panic was caught inside it.
    #[error("the plugin panicked: {0}")]
    Panicked(String),
    /// The plugin could not read what the host sent.
    #[error("the plugin could not read its context: {0}")]
    BadContext(String),
    /// The plugin returned a status this host does not know.
    #[error("the plugin returned an unknown status {code}: {message}")]
    UnknownStatus {
        /// The status.
        code: i32,
        /// Its message, if any.
        message: String,
    },
}

impl LoadedPlugin {
    /// Loads the library at `path` and reads its declaration.
    ///
    /// Loading runs the library's initialisers: a plugin is code the user installed and trusts,
    /// like any other program they run. A library that crashes while loading still takes the
    /// process down; nothing in-process can prevent that.
    ///
    /// # Errors
    /// A [`LoadError`] naming `path` and what is wrong.
    #[allow(unsafe_code)]
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        // SAFETY: see above: loading a library runs its initialisers, which we trust as installed code.
        let library =
            unsafe { Library::new(path) }.map_err(|err| LoadError::NotALibrary { path: path.into(), reason: loader_reason(&err, path) })?;
        let missing =
            |symbol: &std::ffi::CStr| LoadError::MissingSymbol { path: path.into(), symbol: symbol.to_string_lossy().into_owned() };

        // SAFETY: the ABI fixes this symbol's type as `extern "C" fn() -> u32`.
        let abi_version = unsafe { library.get::<unsafe extern "C" fn() -> u32>(abi::ABI_VERSION_SYMBOL) }
            .map_err(|_| missing(abi::ABI_VERSION_SYMBOL))?;
        // SAFETY: a no-argument function returning a plain integer.
        let found = unsafe { abi_version() };
        if found != ABI_VERSION {
            // Nothing else is read: the declaration's layout may differ in another version.
            return Err(LoadError::AbiMismatch { path: path.into(), found, expected: ABI_VERSION });
        }

        // SAFETY: version 1 of the ABI fixes this symbol's type.
        let declare = unsafe { library.get::<unsafe extern "C" fn() -> *const Declaration>(abi::DECLARATION_SYMBOL) }
            .map_err(|_| missing(abi::DECLARATION_SYMBOL))?;
        // SAFETY: it takes nothing and returns a pointer that is null or lives as long as the library.
        let declaration = unsafe { declare().as_ref() }
            .ok_or_else(|| LoadError::BadDeclaration { path: path.into(), reason: "the declaration function failed".into() })?;
        let bad = |reason: String| LoadError::BadDeclaration { path: path.into(), reason };
        let text = |field: &str, value: StrRef| {
            // SAFETY: the declaration's strings live as long as the library, which we keep.
            unsafe { value.as_str() }.map(str::to_owned).map_err(|_| bad(format!("its {field} is not UTF-8")))
        };
        let name = text("name", declaration.name)?;
        let version = text("version", declaration.version)?;
        let commands: Vec<CommandSpec> = serde_json::from_str(&text("command list", declaration.commands_json)?)
            .map_err(|err| bad(format!("its command list: {err}")))?;
        if name.trim().is_empty() {
            return Err(bad("its name is empty".into()));
        }
        if let Some(command) = commands.iter().find(|c| !is_command_name(&c.name)) {
            return Err(bad(format!("`{}` is not a valid command name (lower-case letters, digits and `-`)", command.name)));
        }
        let run = declaration.run;
        Ok(Self { path: path.into(), name, version, commands, run, _library: ManuallyDrop::new(library) })
    }

    /// Runs the command `args[0]` with the arguments after it, giving the plugin `context_json`.
    ///
    /// # Errors
    /// What the plugin reported, as a [`RunError`].
    #[allow(unsafe_code)]
    pub fn run(&self, args: &[String], context_json: &str) -> Result<(), RunError> {
        let arg_refs: Vec<StrRef> = args.iter().map(|arg| StrRef::new(arg)).collect();
        let mut bytes = vec![0_u8; MESSAGE_CAPACITY];
        let mut message = MessageBuffer { ptr: bytes.as_mut_ptr(), capacity: bytes.len(), len: 0 };
        // SAFETY: every pointer is valid for the call: `arg_refs` and the strings it borrows, the
        // context, and `bytes` behind `message` all outlive it.
        let code = unsafe { (self.run)(arg_refs.as_ptr(), arg_refs.len(), StrRef::new(context_json), &mut message) };
        let text = String::from_utf8_lossy(&bytes[..message.len.min(MESSAGE_CAPACITY)]).into_owned();
        match code {
            status::SUCCESS => Ok(()),
            status::FAILED => Err(RunError::Failed(text)),
            status::USAGE => Err(RunError::Usage(text)),
            status::PANICKED => Err(RunError::Panicked(text)),
            status::BAD_CONTEXT => Err(RunError::BadContext(text)),
            code => Err(RunError::UnknownStatus { code, message: text }),
        }
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its declared name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its declared version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Its commands.
    pub fn commands(&self) -> &[CommandSpec] {
        &self.commands
    }
}

/// Whether `name` can be a subcommand: lower-case ASCII letters, digits and inner dashes.
pub fn is_command_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The loader's message (libloading keeps the system's in the error's source), without the path
/// it repeats: ours is in the error already.
fn loader_reason(err: &libloading::Error, path: &Path) -> String {
    let text = std::error::Error::source(err).map_or_else(|| err.to_string(), ToString::to_string);
    let path = path.display().to_string();
    let trimmed = text.find(&path).map(|at| text[at + path.len()..].trim_start_matches(':').trim()).unwrap_or(&text);
    if trimmed.is_empty() { text } else { trimmed.to_owned() }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is how a test reports failure

    use super::*;

    #[test]
    fn command_names_are_what_a_shell_and_clap_accept() {
        for good in ["hello", "db-backup", "x2"] {
            assert!(is_command_name(good), "{good}");
        }
        for bad in ["", "-x", "x-", "Hello", "a b", "a/b", "é"] {
            assert!(!is_command_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_missing_file_is_a_load_error_naming_it() {
        let err = LoadedPlugin::load(Path::new("/nonexistent/libnothing.so")).unwrap_err();
        assert!(matches!(err, LoadError::NotALibrary { .. }));
        assert!(err.to_string().contains("/nonexistent/libnothing.so"), "{err}");
    }
}
