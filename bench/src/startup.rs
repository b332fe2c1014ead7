//! `startup`: what loading plugin libraries adds to every run of `tenancy`. It times
//! `tenancy --help` (start, read the configuration, find and load plugins, build the command
//! line, print) with no library in the plugin path and with N copies of the hello plugin, runs
//! interleaved so drift on the machine hits both alike.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn run(binary: &Path, library: &Path, plugins: usize, runs: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        binary.is_file(),
        "no tenancy binary at `{}`: build it with `cargo build --release -p tenancy-sample`",
        binary.display()
    );
    anyhow::ensure!(library.is_file(), "no plugin library at `{}`: build it with `cargo xtask plugins --release`", library.display());
    let home = tempfile::tempdir()?;
    let empty = tempfile::tempdir()?;
    let full = tempfile::tempdir()?;
    for i in 0..plugins {
        // Separate files, as separate plugins would be: the loader maps and relocates each.
        std::fs::copy(library, full.path().join(format!("libhello_{i}.{}", std::env::consts::DLL_EXTENSION)))?;
    }
    let time = |plugin_path: &Path| -> anyhow::Result<Duration> {
        let started = Instant::now();
        let status = Command::new(binary)
            .arg("--help")
            .current_dir(home.path())
            .env("TENANCY_PLUGIN_PATH", plugin_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "tenancy --help failed: {status}");
        Ok(started.elapsed())
    };
    // Warm the page cache for the binary and the libraries.
    time(empty.path())?;
    time(full.path())?;
    let (mut without, mut with) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        without.push(time(empty.path())?);
        with.push(time(full.path())?);
    }
    let (without, with) = (Summary::of(without), Summary::of(with));
    println!("startup: `tenancy --help`, {runs} runs each, interleaved; the plugin is {}", human_size(std::fs::metadata(library)?.len()));
    println!("  no plugin libraries     median {:>7.2} ms   p95 {:>7.2} ms", ms(without.median), ms(without.p95));
    println!("  {plugins:>2} plugin libraries    median {:>7.2} ms   p95 {:>7.2} ms", ms(with.median), ms(with.p95));
    println!(
        "  added by {plugins} libraries     {:>7.2} ms at the median ({:.2} ms each); target ≤ 20 ms for ten",
        ms(with.median.saturating_sub(without.median)),
        ms(with.median.saturating_sub(without.median)) / plugins.max(1) as f64
    );
    Ok(())
}

struct Summary {
    median: Duration,
    p95: Duration,
}

impl Summary {
    fn of(mut times: Vec<Duration>) -> Self {
        times.sort();
        let at = |fraction: f64| times[((times.len() - 1) as f64 * fraction).round() as usize];
        Self { median: at(0.5), p95: at(0.95) }
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn human_size(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
