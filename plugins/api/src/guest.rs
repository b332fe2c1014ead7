//! The plugin's side of the boundary, used by [`crate::declare_plugin!`]: it turns the raw call
//! into an [`Invocation`], runs the plugin's function, and turns its result, or its panic, back
//! into a status code and a message. A panic never unwinds into the host: since Rust 1.81 that
//! would abort the whole process.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, Once};

use crate::abi::{Declaration, MessageBuffer, RunFn, StrRef, status};
use crate::{CommandSpec, PluginContext};

/// One run of one of the plugin's commands.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The command's name, e.g. `hello`.
    pub command: String,
    /// The arguments after the command's name, as the user typed them.
    pub args: Vec<String>,
    /// What the host knows: configuration, registry, the selected tenants.
    pub context: PluginContext,
}

impl Invocation {
    /// What a clap parser expects: a program name (`tenancy hello`, as usage lines should show
    /// it) followed by the arguments.
    pub fn argv(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(format!("tenancy {}", self.command)).chain(self.args.iter().cloned())
    }
}

/// Why a plugin's command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// It was called wrongly (`tenancy` exits with 2).
    #[error("{0}")]
    Usage(String),
    /// It failed (`tenancy` exits with 1).
    #[error("{0}")]
    Failed(String),
}

impl PluginError {
    /// A failure described by any error, with its causes.
    pub fn failed(err: impl std::fmt::Display) -> Self {
        Self::Failed(err.to_string())
    }
}

/// The declaration of a plugin, kept in a `static` of the plugin library: the strings it points
/// into live in the same value, so the pointers stay valid as long as the library is loaded.
#[doc(hidden)]
pub struct StaticDeclaration {
    declaration: Declaration,
    _strings: [String; 3],
}

// SAFETY: the declaration is never changed after it is built, and its pointers point into the
// strings owned by the same value, so reading it from any thread is sound.
#[allow(unsafe_code)]
unsafe impl Sync for StaticDeclaration {}
// SAFETY: as above; moving the value does not move the strings' heap buffers.
#[allow(unsafe_code)]
unsafe impl Send for StaticDeclaration {}

impl StaticDeclaration {
    /// Builds the declaration; `run` is the `extern "C"` entry `declare_plugin!` generated.
    pub fn new(name: &str, version: &str, commands: &[CommandSpec], run: RunFn) -> Self {
        let commands_json = serde_json::to_string(commands).unwrap_or_else(|_| "[]".into());
        let strings = [name.to_owned(), version.to_owned(), commands_json];
        let declaration =
            Declaration { name: StrRef::new(&strings[0]), version: StrRef::new(&strings[1]), commands_json: StrRef::new(&strings[2]), run };
        Self { declaration, _strings: strings }
    }

    /// The pointer the host receives.
    pub fn as_ptr(&self) -> *const Declaration {
        &self.declaration
    }
}

/// Builds the declaration once, and never lets a panic cross: a null pointer tells the host the
/// declaration failed.
#[doc(hidden)]
pub fn declaration(slot: &'static std::sync::OnceLock<StaticDeclaration>, build: fn() -> StaticDeclaration) -> *const Declaration {
    quiet_panics();
    catch_unwind(AssertUnwindSafe(|| slot.get_or_init(build).as_ptr())).unwrap_or(std::ptr::null())
}

/// The body of the generated `extern "C"` run entry.
///
/// # Safety
/// The pointers must be as [`RunFn`] describes: `args` points at `args_len` valid [`StrRef`]s,
/// every [`StrRef`] is readable for the call, and `message` is a valid, writable [`MessageBuffer`].
#[doc(hidden)]
#[allow(unsafe_code)]
pub unsafe fn run(
    args: *const StrRef,
    args_len: usize,
    context_json: StrRef,
    message: *mut MessageBuffer,
    command: fn(Invocation) -> Result<(), PluginError>,
) -> i32 {
    quiet_panics();
    // SAFETY: the caller's contract, passed on.
    let invocation = match unsafe { read_invocation(args, args_len, context_json) } {
        Ok(invocation) => invocation,
        Err(problem) => {
            // SAFETY: the caller's contract.
            unsafe { write_message(message, &problem) };
            return status::BAD_CONTEXT;
        }
    };
    let (code, text) = match catch_unwind(AssertUnwindSafe(|| command(invocation))) {
        Ok(Ok(())) => (status::SUCCESS, String::new()),
        Ok(Err(PluginError::Usage(text))) => (status::USAGE, text),
        Ok(Err(PluginError::Failed(text))) => (status::FAILED, text),
        Err(payload) => (status::PANICKED, take_panic_message(payload.as_ref())),
    };
    // This library's stdout is its own copy of std's, with its own buffer: empty it before the
    // host, which cannot, writes anything after us.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // SAFETY: the caller's contract.
    unsafe { write_message(message, &text) };
    code
}

/// # Safety
/// As for [`run`].
#[allow(unsafe_code)]
unsafe fn read_invocation(args: *const StrRef, args_len: usize, context_json: StrRef) -> Result<Invocation, String> {
    let raw: &[StrRef] = if args_len == 0 || args.is_null() {
        &[]
    } else {
        // SAFETY: the caller promises `args_len` valid `StrRef`s at `args`.
        unsafe { std::slice::from_raw_parts(args, args_len) }
    };
    let mut strings = Vec::with_capacity(raw.len());
    for arg in raw {
        // SAFETY: each `StrRef` is readable for the call.
        let text = unsafe { arg.as_str() }.map_err(|_| "an argument is not UTF-8".to_owned())?;
        strings.push(text.to_owned());
    }
    let mut strings = strings.into_iter();
    let command = strings.next().ok_or("the host passed no command name")?;
    // SAFETY: as above.
    let json = unsafe { context_json.as_str() }.map_err(|_| "the context is not UTF-8".to_owned())?;
    let context = serde_json::from_str(json).map_err(|err| format!("cannot read the host's context: {err}"))?;
    Ok(Invocation { command, args: strings.collect(), context })
}

/// Copies as much of `text` as fits, cut at a character boundary.
///
/// # Safety
/// `message` must be null or a valid, writable [`MessageBuffer`].
#[allow(unsafe_code)]
unsafe fn write_message(message: *mut MessageBuffer, text: &str) {
    // SAFETY: the caller promises `message` is valid or null.
    let Some(buffer) = (unsafe { message.as_mut() }) else { return };
    let mut len = text.len().min(buffer.capacity);
    while !text.is_char_boundary(len) {
        len -= 1;
    }
    if len > 0 {
        // SAFETY: `ptr` has room for `capacity` bytes, and `len <= capacity`; the regions cannot
        // overlap, the host's buffer being its own allocation.
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), buffer.ptr, len) };
    }
    buffer.len = len;
}

/// Where the last panic happened and what it said, recorded by the quiet hook.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Replaces this library's panic hook (its own copy of std's, not the host's) with one that
/// records the panic instead of printing it: the host prints it once, as a plugin error, so the
/// user never sees a raw panic dump.
fn quiet_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            let text = payload_text(info.payload());
            if let Ok(mut last) = LAST_PANIC.lock() {
                *last = Some(format!("{text}{place}"));
            }
        }));
    });
}

fn take_panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    LAST_PANIC.lock().ok().and_then(|mut last| last.take()).unwrap_or_else(|| payload_text(payload))
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with no message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is how a test reports failure

    use super::*;

    #[allow(unsafe_code)]
    fn written(text: &str, capacity: usize) -> String {
        let mut bytes = vec![0_u8; capacity];
        let mut buffer = MessageBuffer { ptr: bytes.as_mut_ptr(), capacity, len: 0 };
        // SAFETY: the buffer points at `capacity` writable bytes that outlive the call.
        unsafe { write_message(&mut buffer, text) };
        String::from_utf8(bytes[..buffer.len].to_vec()).unwrap()
    }

    #[test]
    fn messages_are_cut_to_the_hosts_buffer_at_a_character_boundary() {
        assert_eq!(written("plain", 64), "plain");
        assert_eq!(written("abcdef", 3), "abc");
        // "é" is two bytes: a cut in its middle would hand the host invalid UTF-8.
        assert_eq!(written("aé", 2), "a");
        assert_eq!(written("anything", 0), "");
    }

    #[test]
    #[allow(unsafe_code)]
    fn arguments_and_context_are_read_into_an_invocation() {
        let args = ["hello", "--tenant", "acme"];
        let refs: Vec<StrRef> = args.iter().map(|arg| StrRef::new(arg)).collect();
        let context = r#"{"registry_url": "sqlite:///x", "tenants": [{"id": "1", "name": "Acme"}]}"#;
        // SAFETY: every `StrRef` borrows a string that outlives the call.
        let invocation = unsafe { read_invocation(refs.as_ptr(), refs.len(), StrRef::new(context)) }.unwrap();
        assert_eq!(invocation.command, "hello");
        assert_eq!(invocation.args, ["--tenant", "acme"]);
        assert_eq!(invocation.argv().next().unwrap(), "tenancy hello");
        assert_eq!(invocation.context.tenants[0].name, "Acme");
        // Fields this plugin does not know yet are ignored; missing ones take their defaults.
        assert!(!invocation.context.output.json);

        // SAFETY: as above.
        let bad = unsafe { read_invocation(refs.as_ptr(), refs.len(), StrRef::new("{not json")) };
        assert!(bad.unwrap_err().contains("cannot read the host's context"));
    }
}
