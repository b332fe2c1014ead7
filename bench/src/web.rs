//! `web`: requests per second and latency of `tenancy serve`'s tenant route against plain axum
//! returning the same small page, both as release processes on loopback, driven by `wrk` with
//! keep-alive connections whose requests are spread over every tenant's host; and the cost of a
//! warm host → tenant lookup, in-process.
//!
//! (a) is the peer and the floor at once: an axum server with no tenancy at all, answering the
//! same bytes. (b) identifies the tenant from the host (resolver cache), checks its status,
//! enters its context (its connection pool leased, the cache bootstrapped) and answers its page
//! (the homepage plugin turned off, so `/` is the built-in tenant page). (c) is the same with the
//! homepage plugin serving `/`: each tenant's own template, rendered once and then served from
//! memory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tenancy_core::command::Plugin;
use tenancy_core::migrate::SeaOrmMigrator;
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::web::{Lookup, ResolverCache, parse_host};
use tenancy_core::{Config, Domain, Tenancy, TenantName};
use tenancy_homepage::HomepagePlugin;

/// What a run is asked to do.
pub struct Options<'a> {
    pub binary: &'a Path,
    pub tenants: usize,
    pub seconds: u64,
    pub connections: usize,
    pub runs: usize,
    /// Skip the load runs: only the in-process figures.
    pub in_process_only: bool,
}

/// The page both servers answer: what `tenancy serve` answers for a tenant named `Tenant 1`.
pub const PAGE: &str = "<!doctype html><title>Tenant 1</title><h1>Tenant 1</h1>\n";

pub async fn run(options: &Options<'_>) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.binary.is_file(),
        "no tenancy binary at `{}`: build it with `cargo build --release -p tenancy-sample`",
        options.binary.display()
    );
    anyhow::ensure!(Command::new("wrk").arg("--version").output().is_ok(), "`wrk` is not installed: `cargo xtask bench web` installs it");
    // Absolute: the servers run in the tenants' folder.
    let binary = options.binary.canonicalize()?;
    let home = tempfile::tempdir()?;
    let config = Config::defaults_at(home.path());
    println!(
        "web: wrk, 1 thread, {} keep-alive connections, {} s per run after {WARM_UP_SECONDS} s unmeasured, {} runs interleaved; requests spread over {} tenant hosts (SQLite, default configuration); servers on CPU 0, wrk on CPU 1 where taskset can pin them",
        options.connections, options.seconds, options.runs, options.tenants
    );
    let hosts = create_tenants(config.clone(), options.tenants).await?;
    write_homepages(home.path(), &hosts)?;
    let script = home.path().join("hosts.lua");
    std::fs::write(&script, wrk_script(&hosts))?;
    if options.in_process_only {
        return micro(config, &hosts).await;
    }
    let (mut plain, mut tenant_page, mut homepage) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.runs {
        let mut server = Server::start(pinned(SERVER_CPU, &std::env::current_exe()?).arg("plain-axum"))?;
        load(server.address, &script, options.connections, WARM_UP_SECONDS)?;
        plain.push(load(server.address, &script, options.connections, options.seconds)?);
        server.stop();
        for (homepages_on, loads) in [(false, &mut tenant_page), (true, &mut homepage)] {
            let mut command = pinned(SERVER_CPU, &binary);
            command.args(["serve", "--json", "--listen", "127.0.0.1:0"]).current_dir(home.path());
            command.env("TENANCY_HOMEPAGE__ENABLED", homepages_on.to_string());
            let mut server = Server::start(&mut command)?;
            check_answers(server.address, &hosts).await?;
            load(server.address, &script, options.connections, WARM_UP_SECONDS)?;
            loads.push(load(server.address, &script, options.connections, options.seconds)?);
            server.stop();
        }
    }
    let (a, b, c) = (Load::median(plain), Load::median(tenant_page), Load::median(homepage));
    println!("  (a) plain axum, same page         {:>9.0} req/s   p50 {:>6.3} ms   p99 {:>6.3} ms", a.rate, a.p50, a.p99);
    println!("  (b) tenancy serve, tenant page    {:>9.0} req/s   p50 {:>6.3} ms   p99 {:>6.3} ms", b.rate, b.p50, b.p99);
    println!("  (c) tenancy serve, homepage       {:>9.0} req/s   p50 {:>6.3} ms   p99 {:>6.3} ms", c.rate, c.p50, c.p99);
    println!("  b/a {:.2} (target ≥ 0.80); c/a {:.2} (target ≥ 0.70)", b.rate / a.rate, c.rate / a.rate);

    micro(config, &hosts).await
}

/// Creates `count` tenants with the sample migrations, eight at a time; returns their hosts.
async fn create_tenants(config: Config, count: usize) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let tenancy = Tenancy::builder(config).tenant_migrator(Arc::new(SeaOrmMigrator::<migration::Migrator>::default())).open().await?;
    let hosts: Vec<String> = (1..=count).map(|i| format!("t{i}.localhost")).collect();
    let created = futures::stream::iter(hosts.iter().enumerate())
        .map(|(i, host)| {
            let tenancy = &tenancy;
            async move {
                let mut request = TenantRequest::new(TenantName::parse(&format!("Tenant {}", i + 1))?);
                request.domains.push(Domain::parse(host)?);
                request.homepage_enabled = true;
                tenancy.create_tenant(&request, &()).await.map(drop).map_err(anyhow::Error::from)
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    created.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    tenancy.close().await;
    println!("  ({count} tenants created in {:.1} s)", started.elapsed().as_secs_f64());
    Ok(hosts)
}

/// Gives every tenant a page of its own that renders as [`PAGE`] does for tenant 1.
fn write_homepages(home: &Path, hosts: &[String]) -> anyhow::Result<()> {
    for host in hosts {
        let folder = home.join("homepages").join(host);
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join("home.html"), HOMEPAGE)?;
    }
    Ok(())
}

/// The homepage template: [`PAGE`] with the tenant's name.
const HOMEPAGE: &str = "<!doctype html><title>{{ tenant.name }}</title><h1>{{ tenant.name }}</h1>\n";

/// A wrk script sending each request to the next host, round robin.
fn wrk_script(hosts: &[String]) -> String {
    let list: Vec<String> = hosts.iter().map(|host| format!("\"{host}\"")).collect();
    format!(
        "local hosts = {{{}}}\nlocal i = math.random(#hosts)\nrequest = function()\n  i = i % #hosts + 1\n  return wrk.format(\"GET\", \"/\", {{[\"Host\"] = hosts[i]}})\nend\n",
        list.join(",")
    )
}

/// Every tenant host answers its own page before anything is measured.
async fn check_answers(address: SocketAddr, hosts: &[String]) -> anyhow::Result<()> {
    for (i, host) in hosts.iter().enumerate().step_by(97) {
        let response = tenancy_tests::http::get(address, host, "/").await;
        let expected = format!("<h1>Tenant {}</h1>", i + 1);
        anyhow::ensure!(response.status == 200 && response.body.contains(&expected), "{host} answered {response:?}");
    }
    Ok(())
}

struct Load {
    rate: f64,
    p50: f64,
    p99: f64,
}

impl Load {
    fn median(mut runs: Vec<Load>) -> Load {
        runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        runs.swap_remove(runs.len() / 2)
    }
}

/// The CPU the servers run on, and the one wrk runs on: on this two-core machine a server and the
/// load generator otherwise fight over both cores, and the figures swing by a fifth run to run.
const SERVER_CPU: usize = 0;
const LOAD_CPU: usize = 1;

/// `program` to be run on one CPU only, through `taskset` when the machine has it and two CPUs.
fn pinned(cpu: usize, program: &Path) -> Command {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus >= 2 && Command::new("taskset").arg("--version").output().is_ok() {
        let mut command = Command::new("taskset");
        command.args(["--cpu-list", &cpu.to_string()]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Each server is first loaded this long, unmeasured: the first request to each of 1,000 hosts
/// reads the registry, and a run is about serving, not about starting (both servers are warmed).
const WARM_UP_SECONDS: u64 = 1;

/// Runs wrk once against `address`; refuses a run with errors or non-2xx answers.
fn load(address: SocketAddr, script: &Path, connections: usize, seconds: u64) -> anyhow::Result<Load> {
    let output = pinned(LOAD_CPU, Path::new("wrk"))
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(format!("http://{address}/"))
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    anyhow::ensure!(!text.contains("Non-2xx") && !text.contains("Socket errors"), "errors under load:\n{text}");
    let field = |label: &str| -> anyhow::Result<&str> {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(label).map(str::trim))
            .ok_or_else(|| anyhow::anyhow!("no `{label}` in wrk's output:\n{text}"))
    };
    Ok(Load { rate: field("Requests/sec:")?.parse()?, p50: millis(field("50%")?)?, p99: millis(field("99%")?)? })
}

/// wrk's `812.00us`, `1.20ms` or `2.01s`, in milliseconds.
fn millis(text: &str) -> anyhow::Result<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        anyhow::bail!("cannot read the latency `{text}`")
    };
    Ok(number.parse::<f64>()? * factor)
}

/// A server process, killed when stopped or dropped; its address is the first line it prints.
struct Server {
    child: Child,
    address: SocketAddr,
}

impl Server {
    fn start(command: &mut Command) -> anyhow::Result<Self> {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let address = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|event| event["address"].as_str().and_then(|a| a.parse().ok()))
            .or_else(|| line.trim().parse().ok());
        match address {
            Some(address) => Ok(Self { child, address }),
            None => {
                let _ = child.kill();
                anyhow::bail!("the server did not say where it listens: {line:?}")
            }
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The plain axum server of row (a): prints its address, then serves [`PAGE`] on every path.
pub async fn plain_axum() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(|| async { axum::response::Html(PAGE) });
    axum::serve(listener, app).await?;
    Ok(())
}

/// Requests handed to a service in-process, no network: what the layers add per request.
async fn per_request<S>(app: S, hosts: &[String], rounds: usize) -> anyhow::Result<Duration>
where
    S: tower::Service<axum::extract::Request, Response = axum::response::Response, Error = std::convert::Infallible> + Clone,
{
    use tower::ServiceExt;
    let started = Instant::now();
    for i in 0..rounds {
        let request = axum::http::Request::get("/").header("host", &hosts[i % hosts.len()]).body(axum::body::Body::empty())?;
        let response = app.clone().oneshot(request).await?;
        anyhow::ensure!(response.status() == 200, "{} answered {}", hosts[i % hosts.len()], response.status());
    }
    Ok(started.elapsed())
}

/// A warm resolver hit and host parsing, in-process.
async fn micro(config: Config, hosts: &[String]) -> anyhow::Result<()> {
    const REQUESTS: usize = 200_000;
    let plain = axum::Router::new().fallback(|| async { axum::response::Html(PAGE) });
    let plain = per_request(plain, hosts, REQUESTS).await?;
    let tenancy = Arc::new(Tenancy::builder(config.clone()).open().await?);
    let app = tenancy_cli::serve_application(tenancy.clone(), &[])?;
    per_request(app.clone(), hosts, hosts.len()).await?; // warm the resolver cache
    let served = per_request(app, hosts, REQUESTS).await?;
    let plugins: Vec<Arc<dyn Plugin>> = vec![Arc::new(HomepagePlugin)];
    let with_homepages = tenancy_cli::serve_application(tenancy.clone(), &plugins)?;
    per_request(with_homepages.clone(), hosts, hosts.len()).await?; // render each page once
    let homepages = per_request(with_homepages, hosts, REQUESTS).await?;
    let layer_only =
        tenancy_core::web::TenantLayer::new(tenancy.clone()).around(axum::Router::new().fallback(|| async { axum::response::Html(PAGE) }));
    per_request(layer_only.clone(), hosts, hosts.len()).await?;
    let one_host = per_request(layer_only.clone(), &hosts[..1], REQUESTS).await?;
    let spread = per_request(layer_only, hosts, REQUESTS).await?;
    let per = |total: Duration| total.as_nanos() as f64 / REQUESTS as f64;
    println!(
        "  in-process, no network, ns/request: plain axum {:.0}; tenant layer around it, one host {:.0}, {} hosts {:.0}; tenancy serve's app, {} hosts {:.0}, with homepages {:.0}",
        per(plain),
        per(one_host),
        hosts.len(),
        per(spread),
        hosts.len(),
        per(served),
        per(homepages)
    );
    let tenancy = match Arc::try_unwrap(tenancy) {
        Ok(tenancy) => tenancy,
        Err(_) => anyhow::bail!("the application still holds the tenancy"),
    };
    let cache = ResolverCache::new(tenancy.registry().clone(), &config.web);
    let lookups: Vec<Lookup> = hosts.iter().map(|host| Lookup::Domain(Domain::parse(host).expect("a valid host"))).collect();
    for lookup in &lookups {
        anyhow::ensure!(cache.resolve(lookup).await.map_err(|e| anyhow::anyhow!("{e}"))?.is_some(), "no tenant for {lookup:?}");
    }
    const ROUNDS: usize = 1_000_000;
    let started = Instant::now();
    for i in 0..ROUNDS {
        std::hint::black_box(cache.resolve(&lookups[i % lookups.len()]).await.ok());
    }
    let hit = started.elapsed();
    let raw: Vec<String> = hosts.iter().map(|host| format!("{}:8000", host.to_uppercase())).collect();
    let started = Instant::now();
    for i in 0..ROUNDS {
        std::hint::black_box(parse_host(&raw[i % raw.len()]).ok());
    }
    let parse = started.elapsed();
    let per = |total: Duration| total.as_nanos() as f64 / ROUNDS as f64;
    println!("  warm resolver hit (map, generation check) {:>6.0} ns   target ≤ 2,000 ns", per(hit));
    println!("  host parse and normalise (`T1.LOCALHOST:8000`) {:>6.0} ns", per(parse));
    tenancy.close().await;
    Ok(())
}
