//! `tenancy serve` as a user runs it: it says where it listens, serves tenants by host, stops
//! cleanly on SIGTERM, and refuses an address in use or a broken `[web]` section with a clear
//! message. The identification rules themselves are tested through the library (tests/tests/web.rs).

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::Cli;

#[test]
fn serve_answers_by_host_and_stops_cleanly_on_sigterm() {
    let cli = Cli::sqlite();
    cli.ok(&["tenant", "create", "--name", "Acme", "--domain", "acme.localhost", "--with-homepage"]);
    cli.create("Beta", &["beta.localhost"]);
    let mut server = cli.tenancy_process().args(["serve", "--json", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).spawn().unwrap();
    let (lines, received) = mpsc::channel();
    let stdout = server.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = lines.send(line.unwrap());
        }
    });
    let listening: serde_json::Value = serde_json::from_str(&received.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!(listening["event"], "listening");
    let address = listening["address"].as_str().unwrap().parse().unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (acme, beta, central) = runtime.block_on(async {
        use tenancy_tests::http::get;
        (get(address, "acme.localhost", "/").await, get(address, "beta.localhost", "/").await, get(address, "localhost", "/").await)
    });
    // The homepage plugin's `/`: Acme's page; Beta has none and is sent to the fallback.
    assert!(acme.body.contains("<h1>Acme</h1>"), "{acme:?}");
    assert_eq!((beta.status, beta.header("location")), (302, Some("/login")), "{beta:?}");
    assert!(central.body.contains("central domain"), "{central:?}");

    let terminated = std::process::Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(terminated.success());
    let stopped: serde_json::Value = serde_json::from_str(&received.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!(stopped["event"], "stopped");
    assert_eq!(server.wait().unwrap().code(), Some(0));
}

#[test]
fn an_address_in_use_is_refused_with_exit_code_1() {
    let cli = Cli::sqlite();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let run = cli.run(&["serve", "--listen", &address]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains(&format!("cannot listen on {address}")), "{}", run.stderr);
    let bad = cli.run(&["serve", "--listen", "localhost"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

#[test]
fn a_broken_web_section_is_refused_before_anything_runs() {
    let cli = Cli::sqlite();
    let base = std::fs::read_to_string(cli.dir().join("tenancy.toml")).unwrap();
    for (section, key) in [
        ("[web]\nidentify_by = [\"cookie\"]\n", "identify_by"),
        ("[web]\nidentify_by = [\"domain\", \"domain\"]\n", "identify_by"),
        ("[web]\nidentify_by = [\"subdomain\"]\ncentral_domains = [\"127.0.0.1\"]\n", "identify_by"),
        ("[web]\ncentral_domains = [\"../etc\"]\n", "central_domains"),
        ("[web]\ntrusted_proxies = [\"proxy.example.com\"]\n", "trusted_proxies"),
        ("[web]\nidentify_by = [\"header\"]\ntenant_header = \"X Tenant\"\n", "tenant_header"),
        ("[web]\ntenant_header = \"\"\n", "tenant_header"),
        ("[web]\nchange_poll_millis = 0\n", "change_poll_millis"),
    ] {
        std::fs::write(cli.dir().join("tenancy.toml"), format!("{base}\n{section}")).unwrap();
        let run = cli.run(&["serve", "--listen", "127.0.0.1:0"]);
        assert_eq!(run.code, 2, "{section}: {}", run.stderr);
        assert!(run.stderr.contains(key), "{section}: {}", run.stderr);
    }
}

#[test]
fn the_readme_shows_the_web_example_as_it_is() {
    let readme = include_str!("../../README.md");
    let example = include_str!("../examples/serve_tenants.rs");
    assert!(
        readme.contains(example),
        "README.md's \"Serving tenants over HTTP\" section differs from sample/examples/serve_tenants.rs: copy the file in again"
    );
}
