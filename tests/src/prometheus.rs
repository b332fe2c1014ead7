//! Checks Prometheus text with a real parser: the official Python client's
//! (`prometheus_client.parser`, installed by `.ci/services`), not a reading of our own.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// One sample of a parsed exposition.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Sample {
    /// The family's name.
    pub family: String,
    /// The sample's own name (`_bucket`, `_count` … for histograms).
    pub name: String,
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        samples.append({"family": family.name, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(samples))
"#;

/// The samples of `text`, or `None` when the parser is not installed (a failure under CI).
///
/// # Panics
/// When the parser refuses the text, or is missing under CI.
pub fn parse(text: &str) -> Option<Vec<Sample>> {
    let available = Command::new("python3").args(["-c", "import prometheus_client.parser"]).status().is_ok_and(|s| s.success());
    if !available {
        assert!(!crate::on_ci(), "prometheus-client (Python) is not installed: .ci/services installs it");
        let _ = writeln!(std::io::stderr(), "SKIPPED the Prometheus parser check: `pip install prometheus-client` to run it");
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("the text is written");
    let output = child.wait_with_output().expect("python3 ends");
    assert!(output.status.success(), "the Prometheus parser refused the text: {}\n{text}", String::from_utf8_lossy(&output.stderr));
    Some(serde_json::from_slice(&output.stdout).expect("the parser's JSON"))
}

/// The value of the one sample named `name` whose labels include `labels`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples.iter().find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))).map(|s| s.value)
}
