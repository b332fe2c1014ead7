//! `tenancy-plugin`: write a plugin that `tenancy` loads at run time, as a `cdylib`.
//!
//! A plugin declares its name, version and commands with [`declare_plugin!`] and gets each run
//! as an [`Invocation`]: the command's arguments (parse them with clap, as a program would) and a
//! [`PluginContext`] with the configuration, the registry's URL and the tenants the user selected,
//! each with its database URL. The plugin opens its own connections, and if it needs async, its
//! own runtime: a library has its own copy of tokio, and the host's runtime does not exist inside it.
//!
//! ```no_run
//! use tenancy_plugin::{CommandSpec, Invocation, PluginError, declare_plugin};
//!
//! declare_plugin! {
//!     name: "greet",
//!     version: env!("CARGO_PKG_VERSION"),
//!     commands: [CommandSpec::new("greet", "Print a greeting").with_tenants()],
//!     run: run,
//! }
//!
//! fn run(invocation: Invocation) -> Result<(), PluginError> {
//!     for tenant in &invocation.context.tenants {
//!         println!("hello, {}", tenant.name);
//!     }
//!     Ok(())
//! }
//! ```
//!
//! Only `#[repr(C)]` data and `extern "C"` functions cross the boundary ([`abi`]); a panic in the
//! plugin is caught inside it and reported by the host as an error naming the plugin. With the
//! `host` feature, [`host`] is the loading side the `tenancy` binary uses.

pub mod abi;
mod context;
#[doc(hidden)]
pub mod guest;
#[cfg(feature = "host")]
pub mod host;

pub use abi::ABI_VERSION;
pub use context::{CommandSpec, OutputOptions, PluginContext, TenantInfo};
pub use guest::{Invocation, PluginError};

/// Exports a plugin: its name, its version, its commands, and the function that runs them.
///
/// `run` is a `fn(Invocation) -> Result<(), PluginError>`; [`Invocation::command`] says which of
/// the commands was called. Put it once in the crate's `lib.rs`, and build the crate with
/// `crate-type = ["cdylib"]`.
#[macro_export]
macro_rules! declare_plugin {
    (name: $name:expr, version: $version:expr, commands: [$($command:expr),* $(,)?], run: $run:path $(,)?) => {
        /// The plugin ABI this library speaks; the host checks it before anything else.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn tenancy_plugin_abi_version() -> u32 {
            $crate::ABI_VERSION
        }

        /// The plugin's declaration; valid as long as the library is loaded.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn tenancy_plugin_declaration() -> *const $crate::abi::Declaration {
            #[allow(unsafe_code)]
            unsafe extern "C" fn __tenancy_plugin_run(
                args: *const $crate::abi::StrRef,
                args_len: usize,
                context_json: $crate::abi::StrRef,
                message: *mut $crate::abi::MessageBuffer,
            ) -> i32 {
                // SAFETY: the host calls this entry as `RunFn` documents.
                unsafe { $crate::guest::run(args, args_len, context_json, message, $run) }
            }
            static DECLARATION: ::std::sync::OnceLock<$crate::guest::StaticDeclaration> = ::std::sync::OnceLock::new();
            $crate::guest::declaration(&DECLARATION, || {
                $crate::guest::StaticDeclaration::new($name, $version, &[$($command),*], __tenancy_plugin_run)
            })
        }
    };
}
