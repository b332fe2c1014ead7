//! Everything that crosses between the `tenancy` binary and a plugin library: `#[repr(C)]` data
//! and `extern "C"` functions, nothing else. Rust has no stable ABI, so a Rust type (a `String`, a
//! `Vec`, a trait object) never crosses; strings go over as a pointer and a length, borrowed for
//! the length of one call.
//!
//! The host reads the library in this order, and stops at the first thing that is wrong:
//! 1. [`ABI_VERSION_SYMBOL`], an `extern "C" fn() -> u32`, must return [`ABI_VERSION`];
//! 2. [`DECLARATION_SYMBOL`], an `extern "C" fn() -> *const Declaration`, must return a
//!    declaration that lives as long as the library;
//! 3. the declaration's [`RunFn`] is called once per command run.

use std::ffi::CStr;

/// The version of this ABI. A host refuses a library reporting any other, before reading
/// anything else from it. Bump it on any change to the types or symbols of this module.
pub const ABI_VERSION: u32 = 1;

/// `extern "C" fn() -> u32`: the library's [`ABI_VERSION`].
pub const ABI_VERSION_SYMBOL: &CStr = c"tenancy_plugin_abi_version";

/// `extern "C" fn() -> *const Declaration`: what the library declares.
pub const DECLARATION_SYMBOL: &CStr = c"tenancy_plugin_declaration";

/// A UTF-8 string borrowed across the boundary: valid only while the call that received it runs.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StrRef {
    /// The first byte.
    pub ptr: *const u8,
    /// The length in bytes.
    pub len: usize,
}

impl StrRef {
    /// Borrows `text`; the `StrRef` must not outlive it.
    pub fn new(text: &str) -> Self {
        Self { ptr: text.as_ptr(), len: text.len() }
    }

    /// The string, if it is UTF-8.
    ///
    /// # Safety
    /// `ptr` must point at `len` readable bytes that stay unchanged for `'a`.
    #[allow(unsafe_code)]
    pub unsafe fn as_str<'a>(self) -> Result<&'a str, std::str::Utf8Error> {
        if self.len == 0 {
            return Ok("");
        }
        // SAFETY: the caller promises `ptr..ptr+len` is readable for 'a.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        std::str::from_utf8(bytes)
    }
}

/// A buffer the host owns and the plugin writes its error message into: at most `capacity`
/// bytes from `ptr`, then it sets `len`. Memory is freed on the side that allocated it, so the
/// plugin never hands the host an allocation of its own.
#[repr(C)]
#[derive(Debug)]
pub struct MessageBuffer {
    /// The host's bytes.
    pub ptr: *mut u8,
    /// How many bytes may be written.
    pub capacity: usize,
    /// How many bytes were written.
    pub len: usize,
}

/// How a run ended, as [`RunFn`] returns it.
pub mod status {
    /// The command worked.
    pub const SUCCESS: i32 = 0;
    /// The command failed; the message says why.
    pub const FAILED: i32 = 1;
    /// The command was called wrongly; the message says how to call it.
    pub const USAGE: i32 = 2;
    /// The command panicked; the message is the panic's, caught inside the plugin.
    pub const PANICKED: i32 = 3;
    /// The host's context could not be read by the plugin.
    pub const BAD_CONTEXT: i32 = 4;
}

/// Runs one command: `args[0]` is the command's name, the rest its arguments; `context_json` is a
/// [`crate::PluginContext`] as JSON. Returns a [`status`] code, with a message in `message` unless
/// it is [`status::SUCCESS`].
pub type RunFn = unsafe extern "C" fn(args: *const StrRef, args_len: usize, context_json: StrRef, message: *mut MessageBuffer) -> i32;

/// What a library declares: its name, its version and its commands, and the entry that runs them.
/// Returned by [`DECLARATION_SYMBOL`]; it must stay valid, unchanged, as long as the library is loaded.
#[repr(C)]
#[derive(Debug)]
pub struct Declaration {
    /// The plugin's name, e.g. `hello`.
    pub name: StrRef,
    /// Its version, e.g. `0.1.0`.
    pub version: StrRef,
    /// Its commands: a JSON array of [`crate::CommandSpec`].
    pub commands_json: StrRef,
    /// Runs a command.
    pub run: RunFn,
}
