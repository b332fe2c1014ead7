//! The dump programs: found on `PATH`, run without a shell and without secrets on their command
//! line, and their errors reported in their own words.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

/// A program that could not be run, or that failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// None of its names is on `PATH`.
    #[error("`{0}` was not found on PATH: install it (Debian: {1}) or put it on PATH")]
    Missing(String, &'static str),
    /// It could not be started.
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        /// Which.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It exited with an error.
    #[error("`{program}` failed ({status}): {stderr}")]
    Failed {
        /// Which.
        program: String,
        /// How it exited.
        status: ExitStatus,
        /// The end of what it printed on stderr.
        stderr: String,
    },
}

/// The first of `names` found on `PATH`.
///
/// # Errors
/// [`ToolError::Missing`] naming the first and the Debian package that has it.
pub fn find(names: &[&str], package: &'static str) -> Result<PathBuf, ToolError> {
    #[allow(clippy::disallowed_methods)] // PATH is the operating system's, not tenancy configuration
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(ToolError::Missing(names[0].to_owned(), package))
}

/// A running program whose stderr is collected on a thread (so a chatty program never blocks on
/// a full pipe).
pub struct Running {
    program: String,
    child: Child,
    stderr: Option<JoinHandle<String>>,
}

impl Running {
    /// Starts `command` with stdin and stdout as set on it and stderr collected.
    ///
    /// # Errors
    /// [`ToolError::Spawn`].
    pub fn start(mut command: Command) -> Result<Self, ToolError> {
        let program = command.get_program().to_string_lossy().rsplit('/').next().unwrap_or_default().to_owned();
        command.stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| ToolError::Spawn { program: program.clone(), source })?;
        let stderr = child.stderr.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        });
        Ok(Self { program, child, stderr })
    }

    /// The child, for its stdin and stdout.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits for it to exit; an error unless it exited with 0.
    ///
    /// # Errors
    /// [`ToolError::Failed`] with the last lines of its stderr.
    pub fn wait(mut self) -> Result<String, ToolError> {
        drop(self.child.stdin.take());
        let status = self.child.wait().map_err(|source| ToolError::Spawn { program: self.program.clone(), source })?;
        let stderr = self.stderr.take().and_then(|handle| handle.join().ok()).unwrap_or_default();
        if status.success() { Ok(stderr) } else { Err(ToolError::Failed { program: self.program, status, stderr: last_lines(&stderr) }) }
    }

    /// Stops it (after a failure on our side), so no dump runs on unattended.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last few lines of `text`, trimmed: enough to say why, never a wall of output.
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|line| !line.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(4)..];
    if tail.is_empty() { "no message".to_owned() } else { tail.join(" / ") }
}

/// What `program --version` prints, first line; asked once per program and process (a run over
/// many tenants would otherwise start it once per tenant).
///
/// # Errors
/// When it cannot be run or fails.
pub fn version(program: &std::path::Path) -> Result<String, ToolError> {
    static KNOWN: std::sync::Mutex<Vec<(PathBuf, String)>> = std::sync::Mutex::new(Vec::new());
    if let Some((_, known)) = KNOWN.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|(path, _)| path == program) {
        return Ok(known.clone());
    }
    let version = ask_version(program)?;
    KNOWN.lock().unwrap_or_else(|p| p.into_inner()).push((program.to_owned(), version.clone()));
    Ok(version)
}

fn ask_version(program: &std::path::Path) -> Result<String, ToolError> {
    let mut command = Command::new(program);
    command.arg("--version").stdin(Stdio::null()).stdout(Stdio::piped());
    let mut running = Running::start(command)?;
    let mut out = String::new();
    if let Some(stdout) = running.child().stdout.as_mut() {
        let _ = stdout.read_to_string(&mut out);
    }
    running.wait()?;
    Ok(out.lines().next().unwrap_or_default().trim().to_owned())
}

/// Runs the dump program `command` and seals what it writes on stdout into `target`.
///
/// # Errors
/// When it cannot be started, fails, or its output cannot be written (it is then stopped).
pub fn seal_output_of(command: Command, target: File, sealing: &crate::archive::Sealing) -> anyhow::Result<crate::archive::Sealed> {
    let mut running = Running::start(command)?;
    let mut stdout = running.child().stdout.take().ok_or_else(|| anyhow::anyhow!("the dump program has no output"))?;
    match crate::archive::seal(&mut stdout, target, sealing) {
        Ok(sealed) => {
            // A program that failed half-way has closed its output too: its exit status decides.
            running.wait()?;
            Ok(sealed)
        }
        Err(err) => {
            running.kill();
            Err(anyhow::Error::new(err).context("cannot write the backup"))
        }
    }
}
