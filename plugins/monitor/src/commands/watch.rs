//! `tenancy monitor watch`: the fleet redrawn every `--interval` seconds on a terminal (ratatui:
//! it owns the screen, restores it on exit, error and panic, and has a test backend); elsewhere,
//! or with `--json`, one JSON object per interval.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use tenancy_core::Tenancy;
use tenancy_core::command::{AppContext, ExitStatus};
use tenancy_core::web::shutdown_signal;
use tokio::sync::mpsc;

use crate::config::MonitorConfig;
use crate::snapshot::Snapshot;
use crate::view;

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Seconds between refreshes
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    interval: u64,
    /// Stop after this many refreshes (default: until `q`, Ctrl-C or SIGTERM)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
}

pub async fn run(args: WatchArgs, app: &dyn AppContext, tenancy: &Tenancy, config: &MonitorConfig) -> anyhow::Result<ExitStatus> {
    let out = app.console();
    let on_terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal() && !out.is_json();
    if on_terminal { on_screen(&args, tenancy, config).await } else { as_lines(&args, app, tenancy, config).await }
}

/// One JSON object per interval on stdout.
async fn as_lines(args: &WatchArgs, app: &dyn AppContext, tenancy: &Tenancy, config: &MonitorConfig) -> anyhow::Result<ExitStatus> {
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut ticks = ticks(args.interval);
    for _ in 0..args.count.unwrap_or(u64::MAX) {
        tokio::select! {
            _ = ticks.tick() => {}
            () = &mut stop => break,
        }
        let snapshot = Snapshot::take(tenancy, config.sample_queries).await;
        app.console().json(&serde_json::to_value(&snapshot)?);
    }
    Ok(ExitStatus::Success)
}

/// What the key reader asks for.
enum Key {
    Quit,
    Refresh,
    Redraw,
}

async fn on_screen(args: &WatchArgs, tenancy: &Tenancy, config: &MonitorConfig) -> anyhow::Result<ExitStatus> {
    let mut terminal = ratatui::try_init()?;
    // Restores the screen however this function ends (ratatui's own hook covers a panic).
    let _restore = Restore;
    let (_keys, mut keys_rx) = KeyReader::start();
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut ticks = ticks(args.interval);
    let mut snapshot: Option<Snapshot> = None;
    let mut refreshes = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if args.count.is_some_and(|count| refreshes >= count) {
                    break;
                }
                snapshot = Some(Snapshot::take(tenancy, config.sample_queries).await);
                refreshes += 1;
            }
            key = keys_rx.recv() => match key {
                Some(Key::Quit) | None => break,
                Some(Key::Refresh) => ticks.reset_immediately(),
                Some(Key::Redraw) => {}
            },
            () = &mut stop => break,
        }
        if let Some(snapshot) = &snapshot {
            terminal.draw(|frame| view::draw(frame, snapshot, args.interval))?;
        }
    }
    Ok(ExitStatus::Success)
}

fn ticks(interval: u64) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(Duration::from_secs(interval));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks
}

struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Reads keys on a thread of its own (crossterm's reads block), until dropped.
struct KeyReader {
    stop: Arc<AtomicBool>,
}

impl KeyReader {
    fn start() -> (Self, mpsc::UnboundedReceiver<Key>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                // Polled, not read, so the thread notices `stop` within 100 ms.
                let Ok(ready) = event::poll(Duration::from_millis(100)) else { break };
                if !ready {
                    continue;
                }
                let key = match event::read() {
                    Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => match key.code {
                        KeyCode::Char('q') | KeyCode::Esc => Key::Quit,
                        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Key::Quit,
                        KeyCode::Char('r') => Key::Refresh,
                        _ => continue,
                    },
                    Ok(Event::Resize(..)) => Key::Redraw,
                    Ok(_) => continue,
                    Err(_) => Key::Quit,
                };
                if sender.send(key).is_err() {
                    break;
                }
            }
        });
        (Self { stop }, receiver)
    }
}

impl Drop for KeyReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
