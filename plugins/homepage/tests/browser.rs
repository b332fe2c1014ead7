//! Homepages in a real browser: Debian's headless Chromium, driven through chromedriver
//! (WebDriver) with fantoccini, reaching real host names (`*.test`, mapped to loopback by
//! Chromium's host-resolver rules) on `tenancy serve`'s application. Two tenants' pages render
//! their own names, a stylesheet from a tenant's assets applies, and a tenant whose homepage is
//! disabled lands on the fallback. A screenshot of each is kept under a temporary folder, whose
//! paths the test prints.
//!
//! `.ci/services` installs `chromium` and `chromium-driver`; without them the test is skipped,
//! except under `CI`, where it fails.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // test code

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::World;
use fantoccini::{Client, ClientBuilder, Locator};
use tenancy_tests::{Backend, on_ci};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, killed when dropped.
struct Driver {
    url: String,
    _process: tokio::process::Child,
}

impl Driver {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let started = Instant::now();
        while tokio::net::TcpStream::connect(address).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not listen within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { url: format!("http://{address}"), _process: process }
    }

    async fn browser(&self) -> Client {
        let options = serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1024,768",
                // Real host names, served by the loopback server; plain http, as typed.
                "--host-resolver-rules=MAP *.test 127.0.0.1", "--disable-features=HttpsUpgrades",
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        // Two crypto back-ends are linked (ring and aws-lc-rs): rustls cannot pick one itself.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = ClientBuilder::rustls().unwrap();
        let connect = builder.capabilities(capabilities).connect(&self.url);
        tokio::time::timeout(Duration::from_secs(60), connect).await.expect("chromium starts in time").expect("a WebDriver session")
    }
}

fn browser_installed() -> bool {
    if !tenancy_tests::selected("browser") {
        return false;
    }
    let installed = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !installed {
        assert!(!on_ci(), "chromium and chromedriver are missing under CI: `.ci/services` installs them");
        eprintln!("skipped: the browser test needs Debian's chromium and chromium-driver (`bash .ci/services` installs them)");
    }
    installed
}

async fn screenshot(browser: &Client, folder: &Path, name: &str) -> PathBuf {
    let path = folder.join(format!("{name}.png"));
    std::fs::write(&path, browser.screenshot().await.unwrap()).unwrap();
    println!("screenshot: {}", path.display());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_homepages_render_in_chromium() {
    if !browser_installed() {
        return;
    }
    let world = World::new(Backend::Sqlite, "fallback_redirect = \"/login\"").await.unwrap();
    let page = "<!doctype html><html><head><title>{{ tenant.name }}</title><link rel=stylesheet href=\"/assets/site.css\"></head>\
                <body><h1>{{ tenant.name }}</h1><p id=host>{{ host }}</p></body></html>";
    for (name, domain, enabled) in [("Acme", "acme.test", true), ("Globex", "globex.test", true), ("Initech", "initech.test", false)] {
        let tenant = world.tenant(name, &[domain], enabled).await;
        world.write(&format!("{domain}/home.html"), page);
        world.write(&format!("{domain}/.tenant"), &tenant.id.to_string());
    }
    world.write("acme.test/assets/site.css", "h1 { color: rgb(200, 30, 30) }");
    world.write("globex.test/assets/site.css", "h1 { color: rgb(30, 30, 200) }");
    let server = world.serve().await;
    let port = server.address.port();
    let shots = tempfile::Builder::new().prefix("tenancy-browser-").tempdir().unwrap().keep();

    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let step = tokio::time::timeout(Duration::from_secs(120), async {
        for (name, domain, color) in [("Acme", "acme.test", "rgb(200, 30, 30)"), ("Globex", "globex.test", "rgb(30, 30, 200)")] {
            browser.goto(&format!("http://{domain}:{port}/")).await.unwrap();
            assert_eq!(browser.title().await.unwrap(), name);
            assert_eq!(browser.find(Locator::Css("h1")).await.unwrap().text().await.unwrap(), name);
            assert_eq!(browser.find(Locator::Css("#host")).await.unwrap().text().await.unwrap(), domain);
            // The stylesheet came from this tenant's own assets.
            let applied = browser.execute("return getComputedStyle(document.querySelector('h1')).color", vec![]).await.unwrap();
            assert_eq!(applied, color, "{domain}: its own stylesheet applies");
            screenshot(&browser, &shots, domain).await;
        }
        // Disabled: sent to the fallback.
        browser.goto(&format!("http://initech.test:{port}/")).await.unwrap();
        let landed = browser.current_url().await.unwrap();
        assert_eq!((landed.host_str(), landed.path()), (Some("initech.test"), "/login"));
        screenshot(&browser, &shots, "initech.test").await;
    })
    .await;
    browser.close().await.unwrap();
    step.expect("the browser steps finish within two minutes");
}
