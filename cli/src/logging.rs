//! Core's `tracing` events, shown through [`Output`]: warnings always (as `warning:` lines, or JSON
//! events with `--json`), informational and debug events with `-v` and `-vv`, and whatever
//! `RUST_LOG` asks for when it is set. Nothing is written past `Output`, so plain and JSON modes
//! hold. Each line ends with the fields of the spans it happened in (`tenant.id=…`).
//! `--log-format json` writes every event as a JSON object on stderr instead, spans included, for
//! log collectors.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::args::LogFormat;
use crate::output::Output;

/// Installs the subscriber for this process; `verbose` counts `-v` flags. A second call (a test
/// running the app twice) keeps the first.
pub fn install(out: &Output, verbose: u8, format: LogFormat) {
    // `RUST_LOG` may ask for anything (span fields included), so it gets an `EnvFilter`. The
    // built-in levels are per target only, which `Targets` decides without the per-span
    // bookkeeping `EnvFilter` does on every enter, exit and close (each served request makes a
    // span).
    #[allow(clippy::disallowed_methods)] // RUST_LOG is the tracing convention, not tenancy configuration
    let (from_env, by_verbosity) = match std::env::var_os("RUST_LOG") {
        Some(_) => (Some(EnvFilter::from_default_env()), None),
        None => (None, Some(verbosity_filter(verbose))),
    };
    let registry = tracing_subscriber::registry().with(from_env).with(by_verbosity);
    let _ = match format {
        LogFormat::Text => registry.with(OutputLayer { out: out.clone() }).try_init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().with_current_span(false).with_span_list(true).with_writer(std::io::stderr))
            .try_init(),
    };
}

/// What `-v` flags show: warnings, then tenancy's information, then its debugging, then everyone's.
fn verbosity_filter(verbose: u8) -> Targets {
    let ours = |level: Level| Targets::new().with_target("tenancy_core", level).with_target("tenancy_cli", level);
    match verbose {
        0 => Targets::new().with_default(Level::WARN),
        1 => ours(Level::INFO).with_default(Level::WARN),
        2 => ours(Level::DEBUG).with_default(Level::INFO),
        _ => Targets::new().with_default(Level::DEBUG),
    }
}

/// The fields a span was created with, as ` name=value` text.
struct SpanFields(String);

/// Turns each event into one line of output.
struct OutputLayer {
    out: Output,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for OutputLayer {
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // Every identified request makes a span (` tenant.id=` and an id: 47 bytes): one
        // allocation of the right size rather than a few growing ones.
        let mut fields = Line { text: String::with_capacity(64) };
        attributes.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.text));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Line::default();
        event.record(&mut line);
        for span in ctx.event_scope(event).into_iter().flat_map(|scope| scope.from_root()) {
            if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                line.text.push_str(fields);
            }
        }
        let metadata = event.metadata();
        match *metadata.level() {
            Level::ERROR | Level::WARN => self.out.warn(line.text),
            level => self.out.line(format!("{}: {} ({})", level.as_str().to_lowercase(), line.text, metadata.target())),
        }
    }
}

/// The event's message, then its other fields as `name=value`.
#[derive(Default)]
struct Line {
    text: String,
}

impl Line {
    /// The message goes first, whenever it is recorded; other fields follow as ` name=value`.
    fn push(&mut self, field: &Field, value: impl std::fmt::Display) {
        if field.name() == "message" {
            self.text = format!("{value}{}", self.text);
        } else {
            let _ = write!(self.text, " {}={value}", field.name());
        }
    }
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, format_args!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        // Spelled out rather than formatted: every served request's span records its tenant id here.
        if field.name() == "message" {
            self.text.insert_str(0, value);
        } else {
            for part in [" ", field.name(), "=", value] {
                self.text.push_str(part);
            }
        }
    }
}
