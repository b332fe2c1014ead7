//! Runs a program and measures it: wall time and peak resident memory (VmHWM, read from /proc
//! until it exits).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a run took.
pub struct Measured {
    /// Wall time.
    pub elapsed: Duration,
    /// Peak resident memory of the process itself (not of its children), in bytes.
    pub peak_rss: u64,
    /// What it printed on stdout.
    pub stdout: String,
}

/// Runs `command` to the end; an error unless it exits with 0.
pub fn run_measured(mut command: Command) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let status_file = format!("/proc/{}/status", child.id());
    // stdout is read on a thread, so a chatty program never blocks on a full pipe.
    let mut stdout_pipe = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = stdout_pipe.as_mut() {
            let _ = std::io::Read::read_to_string(pipe, &mut text);
        }
        text
    });
    let mut peak_rss = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_rss = peak_rss.max(kib * 1024);
        }
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output()?;
    let elapsed = started.elapsed();
    let stdout = reader.join().unwrap_or_default();
    anyhow::ensure!(output.status.success(), "{:?} failed: {}", command.get_program(), String::from_utf8_lossy(&output.stderr));
    Ok(Measured { elapsed, peak_rss, stdout })
}

/// Runs the `tenancy` binary at `binary` in `dir`.
pub fn tenancy_cli(binary: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<crate::measure::Measured> {
    let mut command = Command::new(binary);
    command.args(args).current_dir(dir);
    run_measured(command)
}

/// Runs a bash script with `env`; its wall time.
pub fn shell(env: &[(&'static str, String)], script: &str) -> anyhow::Result<Duration> {
    let mut command = Command::new("bash");
    command.args(["-c", &format!("set -o pipefail; {script}")]).envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    Ok(run_measured(command)?.elapsed)
}

/// The median.
pub fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// libpq's variables for `database` on the test server (which trusts local connections).
pub fn pg_env(database: &str) -> Vec<(&'static str, String)> {
    let (host, port) = tenancy_tests::POSTGRES_ADDR.split_once(':').unwrap_or((tenancy_tests::POSTGRES_ADDR, "5432"));
    vec![("PGHOST", host.to_owned()), ("PGPORT", port.to_owned()), ("PGUSER", "postgres".into()), ("PGDATABASE", database.to_owned())]
}
