//! [`Output`]: the one place that writes to the terminal.
//!
//! It decides once whether output is for a person on a terminal (colour, spinners), for a pipe (plain
//! lines, no escape codes) or for a machine (`--json`: one JSON object per line on stdout), and every
//! command goes through it. Data goes to stdout; status, warnings and errors go to stderr.

#![allow(clippy::print_stdout, clippy::print_stderr)] // this module is where printing happens

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// Who reads the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A person at a terminal: colour (unless `NO_COLOR`), spinners, prompts.
    Terminal,
    /// A pipe or a file: plain lines.
    Plain,
    /// A program: JSON lines on stdout.
    Json,
}

/// The terminal, owned. Cheap to clone: clones share the spinner and the progress bars.
#[derive(Clone)]
pub struct Output {
    mode: Mode,
    color: bool,
    quiet: bool,
    verbose: u8,
    interactive: bool,
    live: Arc<Live>,
}

/// What is drawn on the terminal right now; lines are printed above it.
#[derive(Default)]
struct Live {
    spinner: Mutex<Option<ProgressBar>>,
    bars: Mutex<Option<MultiProgress>>,
}

impl Output {
    /// Decides the mode from the flags and what stdin and stderr are connected to.
    pub fn new(json: bool, quiet: bool, no_color_flag: bool) -> Self {
        let stderr_tty = std::io::stderr().is_terminal();
        let mode = if json {
            Mode::Json
        } else if stderr_tty {
            Mode::Terminal
        } else {
            Mode::Plain
        };
        #[allow(clippy::disallowed_methods)] // NO_COLOR is a cross-tool convention, not tenancy configuration
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            mode,
            color: mode == Mode::Terminal && !no_color_env && !no_color_flag,
            quiet,
            verbose: 0,
            interactive: stderr_tty && std::io::stdin().is_terminal(),
            live: Arc::default(),
        }
    }

    /// Sets how many `-v` were given.
    #[must_use]
    pub fn verbosity(mut self, verbose: u8) -> Self {
        self.verbose = verbose;
        self
    }

    /// Whether `-v` was given: list what a summary would fold.
    pub fn is_verbose(&self) -> bool {
        self.verbose > 0
    }

    /// The output mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether a person can answer prompts (stdin and stderr are terminals).
    pub fn is_interactive(&self) -> bool {
        self.interactive
    }

    /// Whether `--json` was given.
    pub fn is_json(&self) -> bool {
        self.mode == Mode::Json
    }

    /// Whether `--quiet` was given.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// Whether output is painted (a terminal, no `--no-color`, no `NO_COLOR`).
    pub fn has_color(&self) -> bool {
        self.color
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }

    fn stderr_line(&self, line: &str) {
        if let Some(bars) = self.live.bars.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            // Printed above the bars, which are redrawn below it.
            let _ = bars.println(line);
            return;
        }
        let spinner = self.live.spinner.lock().unwrap_or_else(|p| p.into_inner());
        match spinner.as_ref() {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// A line another program wrote to its stderr, passed on to ours (above any bars), even with
    /// `--quiet`: it may be the only word of why that program failed.
    pub fn program_stderr(&self, line: &str) {
        self.stderr_line(line);
    }

    /// A line on stderr for people (not shown with `--json` or `--quiet`), printed above any bars.
    pub fn line(&self, line: impl std::fmt::Display) {
        if self.quiet || self.is_json() {
            return;
        }
        self.stderr_line(&line.to_string());
    }

    /// Progress bars for long work, on a terminal only (`None` when piped, with `--json` or `--quiet`).
    /// While they are shown, every status line is printed above them.
    pub fn start_bars(&self) -> Option<MultiProgress> {
        if self.mode != Mode::Terminal || self.quiet {
            return None;
        }
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        *self.live.bars.lock().unwrap_or_else(|p| p.into_inner()) = Some(bars.clone());
        Some(bars)
    }

    /// Removes the bars started with [`Output::start_bars`].
    pub fn stop_bars(&self) {
        if let Some(bars) = self.live.bars.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = bars.clear();
        }
    }

    /// Paints `text` green (success) on a colour terminal.
    pub fn green(&self, text: &str) -> String {
        self.paint(text, "32")
    }

    /// Paints `text` red (failure) on a colour terminal.
    pub fn red(&self, text: &str) -> String {
        self.paint(text, "31")
    }

    /// A cargo-style status line in red, for a failure: shown even with `--quiet`, not with `--json`.
    pub fn failure(&self, verb: &str, message: impl std::fmt::Display) {
        if self.is_json() {
            return;
        }
        let verb = self.paint(&format!("{verb:>12}"), "1;31");
        self.stderr_line(&format!("{verb} {message}"));
    }

    /// A cargo-style status line: the verb right-aligned in 12 columns, bold green on a terminal.
    /// Not shown with `--json` or `--quiet`.
    pub fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if self.quiet || self.is_json() {
            return;
        }
        let verb = self.paint(&format!("{verb:>12}"), "1;32");
        self.stderr_line(&format!("{verb} {message}"));
    }

    /// A warning, always shown (as a JSON event with `--json`).
    pub fn warn(&self, message: impl std::fmt::Display) {
        if self.is_json() {
            self.json(&serde_json::json!({"event": "warning", "message": message.to_string()}));
            return;
        }
        let label = self.paint("warning", "1;33");
        self.stderr_line(&format!("{label}: {message}"));
    }

    /// An error and its causes, then hints: printed once, by `main`.
    pub fn error(&self, message: &str, causes: &[String], hints: &[String]) {
        self.clear_spinner();
        if self.is_json() {
            self.json(&serde_json::json!({"event": "error", "message": message, "causes": causes, "hints": hints}));
        }
        let mut text = format!("{}: {message}", self.paint("error", "1;31"));
        if !causes.is_empty() {
            text.push_str("\n\nCaused by:");
            for cause in causes {
                for line in cause.lines() {
                    text.push_str(&format!("\n  {line}"));
                }
            }
        }
        if !hints.is_empty() {
            text.push('\n');
            for hint in hints {
                text.push_str(&format!("\n{}: {hint}", self.paint("hint", "1;36")));
            }
        }
        eprintln!("{text}");
    }

    /// One JSON object on its own line on stdout.
    pub fn json<T: Serialize>(&self, value: &T) {
        let line = serde_json::to_string(value).expect("output values serialise");
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
    }

    /// Data as it is, on stdout (a completion script).
    pub fn raw(&self, bytes: &[u8]) {
        let _ = std::io::stdout().lock().write_all(bytes);
    }

    /// A clap error, or the help or version clap answered with: clap knows whether it goes to
    /// stdout or stderr, and how to colour it.
    pub fn clap_message(&self, message: &clap::Error) {
        let _ = message.print();
    }

    /// A line of data on stdout (tables, ids): what a pipe receives.
    pub fn data(&self, line: impl std::fmt::Display) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
    }

    /// Shows a spinner with `message` on a terminal until [`Output::clear_spinner`]; nothing elsewhere.
    pub fn spin(&self, message: impl Into<String>) {
        if self.mode != Mode::Terminal || self.quiet {
            return;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}").expect("the template is valid"));
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(80));
        *self.live.spinner.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar);
    }

    /// Removes the spinner, if any.
    pub fn clear_spinner(&self) {
        if let Some(bar) = self.live.spinner.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
    }

    /// Dims `text` on a colour terminal (timings, ids).
    pub fn dim(&self, text: &str) -> String {
        self.paint(text, "2")
    }
}

/// Plugin commands write through the same output as the core ones.
impl tenancy_core::command::Console for Output {
    fn status(&self, verb: &str, message: &str) {
        Output::status(self, verb, message);
    }

    fn failure(&self, verb: &str, message: &str) {
        Output::failure(self, verb, message);
    }

    fn warn(&self, message: &str) {
        Output::warn(self, message);
    }

    fn data(&self, line: &str) {
        Output::data(self, line);
    }

    fn json(&self, value: &serde_json::Value) {
        Output::json(self, value);
    }

    fn is_json(&self) -> bool {
        Output::is_json(self)
    }

    fn is_interactive(&self) -> bool {
        Output::is_interactive(self)
    }

    fn confirm(&self, question: &str) -> anyhow::Result<bool> {
        if !Output::is_interactive(self) {
            return Ok(false);
        }
        crate::prompt::confirm(question)
    }

    fn pick_tenants(&self, candidates: Vec<tenancy_core::Tenant>) -> anyhow::Result<Vec<tenancy_core::Tenant>> {
        if !Output::is_interactive(self) {
            return Ok(Vec::new());
        }
        crate::prompt::pick_tenants(candidates)
    }

    fn tenant_progress(&self, total: usize) -> Box<dyn tenancy_core::command::TenantProgress + '_> {
        Box::new(crate::tenant_progress::ProgressView::new(self, total))
    }
}

pub use tenancy_core::command::format::{format_bytes, format_count, format_duration, plural};

/// `header` and `rows` as lines of left-aligned columns two spaces apart.
pub fn aligned(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    std::iter::once(&header)
        .chain(rows)
        .map(|row| {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(Duration::from_micros(1234)), "1.2ms");
        assert_eq!(format_duration(Duration::from_millis(340)), "340ms");
        assert_eq!(format_duration(Duration::from_millis(2414)), "2.41s");
    }

    #[test]
    fn counts_read_well() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1129), "1,129");
        assert_eq!(format_count(10_000), "10,000");
        assert_eq!(format_count(1_234_567), "1,234,567");
        assert_eq!(plural(1, "tenant"), "1 tenant");
        assert_eq!(plural(0, "migration"), "0 migrations");
        assert_eq!(plural(12_000, "tenant"), "12,000 tenants");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(3 * 1024 * 1024 + 400 * 1024), "3.4 MiB");
    }
}
