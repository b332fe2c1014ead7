//! Serving tenants over HTTP, through `tenancy serve`'s application on a real server on loopback:
//! which host gets which answer (and never another tenant's page), tenants at the door by status,
//! keep-alive connections reused across hosts, sessions that do not cross tenants, and registry
//! changes reaching the resolver cache, from this process at once and from another within the
//! polling bound.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tenancy_core::config::Identify;
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::web::{CurrentTenant, HostRouter, MaybeTenant, Routes, TenantLayer, TenantPathPrefix, TenantService};
use tenancy_core::{Config, Domain, Tenancy, Tenant, TenantName, TenantStatus};
use tenancy_tests::http::{self, Connection};
use tenancy_tests::{Backend, TestEnv};

/// How often the test servers read the registry's change counter.
const POLL: Duration = Duration::from_millis(200);

async fn open(env: &TestEnv, adjust: impl FnOnce(&mut Config)) -> Arc<Tenancy> {
    env.create_central_database().await;
    let mut config = env.config();
    config.web.change_poll_millis = POLL.as_millis() as u64;
    adjust(&mut config);
    Arc::new(Tenancy::builder(config).open().await.unwrap())
}

async fn tenant(tenancy: &Tenancy, name: &str, domains: &[&str]) -> Tenant {
    let mut request = TenantRequest::new(TenantName::parse(name).unwrap());
    request.domains = domains.iter().map(|domain| Domain::parse(domain).unwrap()).collect();
    tenancy.create_tenant(&request, &()).await.unwrap()
}

/// A server on a free loopback port, stopped when dropped.
struct Server {
    address: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(app: TenantService<HostRouter>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info()).await });
    Server { address, task }
}

async fn serve_tenancy(tenancy: &Arc<Tenancy>) -> Server {
    serve(tenancy_cli::serve_application(tenancy.clone(), &[]).expect("the routes build")).await
}

/// `tenancy serve`'s application with Acme on `acme.localhost` and Globex on `globex.localhost`.
async fn acme_and_globex_served(env: &TestEnv) -> (Arc<Tenancy>, Server) {
    let tenancy = open(env, |_| {}).await;
    tenant(&tenancy, "Acme", &["acme.localhost"]).await;
    tenant(&tenancy, "Globex", &["globex.localhost"]).await;
    let server = serve_tenancy(&tenancy).await;
    (tenancy, server)
}

/// Asks until `check` holds, for at most `limit`; returns how long it took.
async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_host_gets_its_own_answer_and_never_another_tenants_page() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let tenancy = open(&env, |_| {}).await;
    tenant(&tenancy, "Acme", &["acme.localhost"]).await;
    tenant(&tenancy, "Globex", &["globex"]).await; // a subdomain of every central domain
    tenant(&tenancy, "Bücher", &["xn--bcher-kva.localhost"]).await;
    let suspended = tenant(&tenancy, "Hidden Suspended", &["sus.localhost"]).await;
    tenancy.registry().set_status(&suspended.id, TenantStatus::Suspended).await.unwrap();
    let inactive = tenant(&tenancy, "Hidden Inactive", &["off.localhost"]).await;
    tenancy.registry().set_status(&inactive.id, TenantStatus::Inactive).await.unwrap();
    let creating = tenant(&tenancy, "Hidden Creating", &["new.localhost"]).await;
    tenancy.registry().set_status(&creating.id, TenantStatus::Creating).await.unwrap();
    let server = serve_tenancy(&tenancy).await;
    let address = server.address;

    let long = format!("{}.localhost", "a".repeat(250));
    // (Host header, status, text the body must contain)
    let cases: &[(&str, u16, &str)] = &[
        ("acme.localhost", 200, "<h1>Acme</h1>"),
        ("ACME.LocalHost", 200, "<h1>Acme</h1>"),
        ("acme.localhost:8000", 200, "<h1>Acme</h1>"),
        ("acme.localhost.", 200, "<h1>Acme</h1>"),
        ("globex.localhost", 200, "<h1>Globex</h1>"),
        ("globex.127.0.0.1", 400, "not a valid host name"),
        ("bücher.localhost", 200, "<h1>Bücher</h1>"),
        ("xn--bcher-kva.localhost", 200, "<h1>Bücher</h1>"),
        ("localhost", 200, "central domain"),
        ("127.0.0.1:8000", 200, "central domain"),
        ("[::1]:8000", 404, "No site is served"),
        ("10.0.0.1", 404, "No site is served"),
        ("", 400, "names no host"),
        ("user@acme.localhost", 400, "not a valid host name"),
        ("acme.localhost:http", 400, "not a valid host name"),
        ("acme..localhost", 400, "not a valid host name"),
        (&long, 400, "not a valid host name"),
        ("xacme.localhost", 404, "No site is served"),
        ("acme.localhost.evil", 404, "No site is served"),
        ("a.globex.localhost", 404, "No site is served"),
        ("globexlocalhost", 404, "No site is served"),
        ("sus.localhost", 403, "suspended"),
        ("off.localhost", 404, "No site is served"),
        ("new.localhost", 503, "being set up"),
    ];
    let mut connection = Connection::open(address).await;
    for (host, status, text) in cases {
        let response = connection.get(host, "/", &[]).await;
        assert_eq!(response.status, *status, "Host: {host:?} gave {response:?}");
        assert!(response.body.contains(text), "Host: {host:?} gave {response:?}");
        assert!(!response.body.contains("Hidden"), "Host: {host:?} named a hidden tenant: {response:?}");
        if *status == 400 {
            connection = Connection::open(address).await; // the server may close after a bad request
        }
    }
    assert_eq!(connection.get("new.localhost", "/", &[]).await.header("retry-after"), Some("5"));
    // An inactive tenant looks exactly like no tenant.
    assert_eq!(http::get(address, "off.localhost", "/").await.body, http::get(address, "nobody.localhost", "/").await.body);

    let raw = |request: &'static str| async move { Connection::open(address).await.send(request.as_bytes()).await };
    assert_eq!(raw("GET / HTTP/1.1\r\n\r\n").await.status, 400, "no Host header at all");
    assert_eq!(raw("GET / HTTP/1.1\r\nHost: acme.localhost\r\nHost: globex.localhost\r\n\r\n").await.status, 400, "two Host headers");
    // An absolute URI names the host; the Host header is ignored then, as HTTP says.
    let absolute = raw("GET http://globex.localhost/ HTTP/1.1\r\nHost: acme.localhost\r\n\r\n").await;
    assert!(absolute.body.contains("<h1>Globex</h1>"), "{absolute:?}");
    // Forwarded headers from a client that is no trusted proxy change nothing.
    let forwarded = connection.get("localhost", "/", &[("X-Forwarded-Host", "acme.localhost"), ("Forwarded", "host=acme.localhost")]).await;
    assert!(forwarded.body.contains("central domain"), "{forwarded:?}");
    // Tenant routes are not on the central domain, central ones not on a tenant's host.
    assert_eq!(connection.get("localhost", "/counter", &[]).await.status, 404);
    assert!(!connection.get("acme.localhost", "/", &[]).await.body.contains("central domain"));
    for path in ["/../", "/..%2f..%2fetc", "/%2e%2e/counter"] {
        let response = connection.get("acme.localhost", path, &[]).await;
        assert_eq!(response.status, 404, "{path}: {response:?}");
    }
    assert_eq!(connection.get("globex.localhost", "/healthz", &[]).await.body, "ok\n");
    assert_eq!(connection.get("10.0.0.1", "/healthz", &[]).await.body, "ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_hosts_count_from_trusted_proxies_only() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let tenancy = open(&env, |config| config.web.trusted_proxies = vec!["127.0.0.0/8".into()]).await;
    tenant(&tenancy, "Acme", &["acme.localhost"]).await;
    let server = serve_tenancy(&tenancy).await;
    let address = server.address;
    let mut connection = Connection::open(address).await;
    let via_proxy = connection.get("proxy.internal", "/", &[("X-Forwarded-Host", "acme.localhost")]).await;
    assert!(via_proxy.body.contains("<h1>Acme</h1>"), "{via_proxy:?}");
    let standard = connection.get("proxy.internal", "/", &[("Forwarded", "for=192.0.2.1;host=\"ACME.localhost:443\"")]).await;
    assert!(standard.body.contains("<h1>Acme</h1>"), "{standard:?}");
    assert_eq!(connection.get("proxy.internal", "/", &[("X-Forwarded-Host", "us er@x")]).await.status, 400);
}

/// Many keep-alive connections, each alternating between two tenants' hosts, at once: every answer
/// is its own host's tenant's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_hammered_at_once_over_shared_connections_never_mix() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let (_tenancy, server) = acme_and_globex_served(&env).await;
    let address = server.address;
    let clients = (0..16).map(|client| {
        tokio::spawn(async move {
            let mut connection = Connection::open(address).await;
            for request in 0..100 {
                let (host, name) = if (client + request) % 2 == 0 { ("acme.localhost", "Acme") } else { ("globex.localhost", "Globex") };
                let path = if request % 10 == 0 { "/counter" } else { "/" };
                let response = connection.get(host, path, &[]).await;
                assert_eq!(response.status, 200, "{host}{path}: {response:?}");
                assert!(response.body.contains(name), "{host}{path} answered {:?}", response.body);
            }
        })
    });
    for client in futures::future::join_all(clients).await {
        client.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_of_one_tenant_is_refused_by_another() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let (_tenancy, server) = acme_and_globex_served(&env).await;
    let address = server.address;
    let mut connection = Connection::open(address).await;
    let first = connection.get("acme.localhost", "/counter", &[]).await;
    let cookie = first.cookie().expect("a session cookie");
    let second = connection.get("acme.localhost", "/counter", &[("Cookie", &cookie)]).await;
    assert!(second.body.contains("session visits: 2"), "{second:?}");
    let elsewhere = connection.get("globex.localhost", "/counter", &[("Cookie", &cookie)]).await;
    assert!(elsewhere.body.contains("session visits: 1") && elsewhere.body.contains("tenant visits: 1"), "{elsewhere:?}");
    let fresh = elsewhere.cookie().expect("Globex starts its own session");
    assert_ne!(fresh, cookie, "Globex must not reuse Acme's session id");
    let back = connection.get("acme.localhost", "/counter", &[("Cookie", &cookie)]).await;
    assert!(back.body.contains("session visits: 3") && back.body.contains("tenant visits: 3"), "{back:?}");
}

/// Registry changes reach the resolver cache: made through the serving process, at once; made by
/// another process (here a second `Tenancy` on the same registry), within the polling bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_domain_or_suspended_tenant_stops_being_served_within_the_bound() {
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = open(&env, |_| {}).await;
        let acme = tenant(&tenancy, "Acme", &["acme.localhost", "acme2.localhost"]).await;
        tenant(&tenancy, "Globex", &["globex.localhost"]).await;
        let server = serve_tenancy(&tenancy).await;
        let address = server.address;
        let mut connection = Connection::open(address).await;
        assert_eq!(connection.get("acme.localhost", "/", &[]).await.status, 200, "{}", backend.name());
        assert_eq!(connection.get("acme2.localhost", "/", &[]).await.status, 200);
        assert_eq!(connection.get("later.localhost", "/", &[]).await.status, 404); // cached as missing

        // In this process: the very next request sees the change.
        let acme = tenancy.registry().remove_domain(&acme, &Domain::parse("acme2.localhost").unwrap()).await.unwrap();
        assert_eq!(connection.get("acme2.localhost", "/", &[]).await.status, 404, "{}", backend.name());

        // In another process: within the poll interval (plus the time of one poll).
        let other = Tenancy::builder(tenancy.config().clone()).open().await.unwrap();
        other.registry().set_status(&acme.id, TenantStatus::Suspended).await.unwrap();
        let took = within(POLL * 10, async || connection.get("acme.localhost", "/", &[]).await.status == 403).await;
        assert!(took <= POLL * 3, "{}: a suspended tenant was served for {took:?}", backend.name());
        let globex = other.registry().find_by_domain(&Domain::parse("globex.localhost").unwrap()).await.unwrap().unwrap();
        other.registry().add_domain(&globex, &Domain::parse("later.localhost").unwrap(), false).await.unwrap();
        within(POLL * 10, async || connection.get("later.localhost", "/", &[]).await.body.contains("<h1>Globex</h1>")).await;
        other.registry().remove_domain(&globex, &Domain::parse("globex.localhost").unwrap()).await.unwrap();
        let took = within(POLL * 10, async || connection.get("globex.localhost", "/", &[]).await.status == 404).await;
        assert!(took <= POLL * 3, "{}: a removed domain was served for {took:?}", backend.name());
        other.close().await;
        drop(server);
        tenancy.connections().close_all().await;
    }
}

/// A handler for the tests below: the request's tenant, what `current_tenant()` says, and what a
/// spawned task sees with and without `spawn_in_tenant`.
async fn who(tenant: CurrentTenant) -> String {
    let current = tenancy_core::current_tenant().map(|t| t.name.to_string());
    let carried =
        tenancy_core::spawn_in_tenant(async { tenancy_core::current_tenant().map(|t| t.name.to_string()) }).unwrap().await.unwrap();
    let lost = tokio::spawn(async { tenancy_core::current_tenant().map(|t| t.name.to_string()) }).await.unwrap();
    format!("{} current={current:?} spawned_in_tenant={carried:?} plain_spawn={lost:?}", tenant.tenant().name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_runs_in_its_tenants_context_and_cannot_leave_it() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let tenancy = open(&env, |_| {}).await;
    tenant(&tenancy, "Acme", &["acme.localhost"]).await;
    let globex = tenant(&tenancy, "Globex", &["globex.localhost"]).await;
    let escape = {
        let tenancy = tenancy.clone();
        move || async move {
            match tenancy.run(&globex, |_| async { "entered Globex" }).await {
                Ok(text) => text.to_owned(),
                Err(err) => format!("refused: {err}"),
            }
        }
    };
    let routes = Routes::new()
        .tenant(Router::new().route("/who", get(who)).route("/escape", get(escape)))
        .universal(
            Router::new()
                .route("/maybe", get(|tenant: MaybeTenant| async move { format!("{:?}", tenant.0.map(|t| t.tenant().name.to_string())) })),
        )
        .into_router();
    let server = serve(TenantLayer::new(tenancy.clone()).around(routes)).await;
    let address = server.address;
    let who = http::get(address, "acme.localhost", "/who").await.body;
    assert_eq!(who, r#"Acme current=Some("Acme") spawned_in_tenant=Some("Acme") plain_spawn=None"#);
    let escaped = http::get(address, "acme.localhost", "/escape").await.body;
    assert!(escaped.starts_with("refused: cannot enter tenant Globex"), "{escaped}");
    assert_eq!(http::get(address, "globex.localhost", "/maybe").await.body, r#"Some("Globex")"#);
    assert_eq!(http::get(address, "localhost", "/maybe").await.body, "None");
    assert_eq!(http::get(address, "localhost", "/who").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_and_header_identification() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let tenancy = open(&env, |config| config.web.identify_by = vec![Identify::Path, Identify::Header]).await;
    let acme = tenant(&tenancy, "Acme", &["acme.localhost"]).await;
    tenant(&tenancy, "Globex", &["globex.localhost"]).await;
    let page = async |tenant: CurrentTenant, prefix: Option<axum::Extension<TenantPathPrefix>>, uri: axum::http::Uri| {
        format!("{} at {uri} under {:?}", tenant.tenant().name, prefix.map(|p| p.0.0))
    };
    let routes = Routes::new().tenant(Router::new().route("/", get(page)).route("/orders/{id}", get(page))).into_router();
    let server = serve(TenantLayer::new(tenancy.clone()).around(routes)).await;
    let address = server.address;
    let mut connection = Connection::open(address).await;
    let by_id = connection.get("localhost", &format!("/{}/orders/7?x=1", acme.id), &[]).await;
    assert_eq!(by_id.body, format!("Acme at /orders/7?x=1 under Some(\"/{}\")", acme.id));
    let by_domain = connection.get("localhost", "/globex.localhost/", &[]).await;
    assert_eq!(by_domain.body, "Globex at / under Some(\"/globex.localhost\")");
    for path in ["/nobody.localhost/", "/../acme.localhost/", "/%61cme.localhost/", "/"] {
        assert_eq!(connection.get("localhost", path, &[]).await.status, 404, "{path}");
    }
    let by_header = connection.get("localhost", "/", &[("X-Tenant", "globex.localhost")]).await;
    assert_eq!(by_header.body, "Globex at / under None");
    // The path is tried first: it wins over the header.
    let both = connection.get("localhost", "/acme.localhost/", &[("X-Tenant", "globex.localhost")]).await;
    assert!(both.body.starts_with("Acme"), "{both:?}");
}

async fn boom() -> &'static str {
    panic!("boom")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_500_and_the_server_goes_on() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let tenancy = open(&env, |_| {}).await;
    tenant(&tenancy, "Acme", &["acme.localhost"]).await;
    let routes = Routes::new().tenant(Router::new().route("/boom", get(boom)).route("/who", get(who))).into_router();
    let server = serve(TenantLayer::new(tenancy.clone()).around(routes)).await;
    let address = server.address;
    assert_eq!(http::get(address, "acme.localhost", "/boom").await.status, 500);
    assert!(http::get(address, "acme.localhost", "/who").await.body.starts_with("Acme"));
    assert_eq!(tenancy.connections().stats().pools_in_use, 0, "the panicking request's lease was returned");
}

/// A request's pool connects on its first query: a page that never touches the database is served
/// even when the database cannot be opened, and one that does fails with 500, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_opens_its_database_only_when_it_uses_it() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let tenancy = open(&env, |_| {}).await;
    let acme = tenant(&tenancy, "Acme", &["acme.localhost"]).await;
    let file = env.sqlite_file(acme.database.as_str());
    std::fs::remove_file(&file).unwrap();
    let server = serve_tenancy(&tenancy).await;
    let mut connection = Connection::open(server.address).await;
    let page = connection.get("acme.localhost", "/", &[]).await;
    assert!(page.body.contains("<h1>Acme</h1>"), "{page:?}");
    assert_eq!(connection.get("acme.localhost", "/counter", &[]).await.status, 500);
    assert!(!file.exists(), "a request must never create a tenant's database");
}

/// A tenant route asked for on a host with no tenant gets the application's answer; a path no
/// group has is still 404, and central routes still answer on central hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_routes_on_a_host_without_a_tenant_get_the_applications_answer() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let tenancy = open(&env, |_| {}).await;
    tenant(&tenancy, "Acme", &["acme.localhost"]).await;
    let to_signup = || async { axum::response::Redirect::to("http://localhost/signup") };
    let routes = Routes::new()
        .central(Router::new().route("/signup", get(|| async { "sign up" })))
        .tenant(Router::new().route("/dashboard", get(|tenant: CurrentTenant| async move { tenant.tenant().name.to_string() })))
        .tenant_missing(to_signup)
        .into_router();
    let server = serve(TenantLayer::new(tenancy.clone()).around(routes)).await;
    let mut connection = Connection::open(server.address).await;
    assert_eq!(connection.get("acme.localhost", "/dashboard", &[]).await.body, "Acme");
    for host in ["localhost", "nobody.localhost"] {
        let redirected = connection.get(host, "/dashboard", &[]).await;
        assert_eq!((redirected.status, redirected.header("location")), (303, Some("http://localhost/signup")), "{host}");
        assert_eq!(connection.get(host, "/nothing-here", &[]).await.status, 404, "{host}");
    }
    assert_eq!(connection.get("localhost", "/signup", &[]).await.body, "sign up");
    assert_eq!(connection.get("acme.localhost", "/signup", &[]).await.status, 404);
}

/// An admission check (the hook maintenance mode will use) answers for the tenants it refuses only,
/// before their handlers run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_check_turns_away_only_the_tenants_it_refuses() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let tenancy = open(&env, |_| {}).await;
    tenant(&tenancy, "Acme", &["acme.localhost"]).await;
    tenant(&tenancy, "Down", &["down.localhost"]).await;
    let routes = Routes::new().tenant(Router::new().route("/", get(|| async { "handler ran" }))).into_router();
    let layer = TenantLayer::new(tenancy.clone()).admission(|tenant: &Tenant, request: &axum::http::request::Parts| {
        use axum::response::IntoResponse;
        let bypass = request.headers.contains_key("x-bypass");
        (tenant.name.as_str() == "Down" && !bypass).then(|| (axum::http::StatusCode::SERVICE_UNAVAILABLE, "back soon").into_response())
    });
    let server = serve(layer.around(routes)).await;
    let mut connection = Connection::open(server.address).await;
    assert_eq!(connection.get("acme.localhost", "/", &[]).await.body, "handler ran");
    let down = connection.get("down.localhost", "/", &[]).await;
    assert_eq!((down.status, down.body.as_str()), (503, "back soon"));
    assert_eq!(connection.get("down.localhost", "/", &[("X-Bypass", "1")]).await.body, "handler ran");
}

/// Many requests for one host that is not cached yet ask the registry once between them, and a
/// warm host does not ask it at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_for_one_host_ask_the_registry_once() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let tenancy = open(&env, |_| {}).await;
    tenant(&tenancy, "Acme", &["acme.localhost"]).await;
    let cache = tenancy_core::web::ResolverCache::new(tenancy.registry().clone(), &tenancy.config().web);
    let lookup = tenancy_core::web::Lookup::Domain(Domain::parse("acme.localhost").unwrap());
    let answers = futures::future::join_all((0..64).map(|_| cache.resolve(&lookup))).await;
    assert!(answers.iter().all(|answer| answer.as_ref().unwrap().as_ref().unwrap().name.as_str() == "Acme"));
    assert_eq!(cache.registry_lookups(), 1);
    for _ in 0..100 {
        cache.resolve(&lookup).await.unwrap();
    }
    assert_eq!(cache.registry_lookups(), 1, "a warm host must not ask the registry");
    let missing = tenancy_core::web::Lookup::Domain(Domain::parse("nobody.localhost").unwrap());
    futures::future::join_all((0..64).map(|_| cache.resolve(&missing))).await;
    cache.resolve(&missing).await.unwrap();
    assert_eq!(cache.registry_lookups(), 2, "no tenant here is cached too");
}

/// The cache keeps at most `resolver_cache_capacity` answers, and an answer lives no longer than its
/// lifetime: with a zero lifetime for "no tenant here", every request for an unknown host asks again.
#[tokio::test]
async fn the_resolver_cache_is_bounded_and_its_answers_expire() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let tenancy = open(&env, |c| {
        c.web.resolver_cache_capacity = 4;
        c.web.resolver_negative_ttl_secs = 0;
    })
    .await;
    tenant(&tenancy, "Acme", &["acme.localhost"]).await;
    let cache = tenancy_core::web::ResolverCache::new(tenancy.registry().clone(), &tenancy.config().web);
    let acme = tenancy_core::web::Lookup::Domain(Domain::parse("acme.localhost").unwrap());
    for n in 0..20 {
        let stranger = tenancy_core::web::Lookup::Domain(Domain::parse(&format!("stranger{n}.localhost")).unwrap());
        assert!(cache.resolve(&stranger).await.unwrap().is_none());
        assert!(cache.entry_count() <= 4, "{} answers kept with room for 4", cache.entry_count());
    }
    let asked = cache.registry_lookups();
    let stranger = tenancy_core::web::Lookup::Domain(Domain::parse("stranger0.localhost").unwrap());
    cache.resolve(&stranger).await.unwrap();
    cache.resolve(&stranger).await.unwrap();
    assert_eq!(cache.registry_lookups(), asked + 2, "an expired answer was served");
    assert_eq!(cache.resolve(&acme).await.unwrap().unwrap().name.as_str(), "Acme");
    cache.resolve(&acme).await.unwrap();
    assert_eq!(cache.registry_lookups(), asked + 3, "a found tenant is kept for its lifetime");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_down_for_maintenance_answers_503_except_to_holders_of_its_secret() {
    use tenancy_core::maintenance::{BypassSecret, Maintenance, MaintenanceOrigin};
    for backend in Backend::ALL {
        let Some(env) = TestEnv::new(backend) else { continue };
        let name = backend.name();
        let (tenancy, server) = acme_and_globex_served(&env).await;
        let mut connection = Connection::open(server.address).await;
        assert_eq!(connection.get("acme.localhost", "/", &[]).await.status, 200, "{name}");

        // Taken down by another process (as `tenancy tenant down` is): seen within the bound.
        let other = Tenancy::builder(tenancy.config().clone()).open().await.unwrap();
        let acme = other.registry().find_by_domain(&Domain::parse("acme.localhost").unwrap()).await.unwrap().unwrap();
        let secret = BypassSecret::parse("let-me-in-2026").unwrap();
        let down =
            Maintenance::new(MaintenanceOrigin::Operator).with_message("Back at 14:00.").unwrap().with_retry_after(90).with_bypass(&secret);
        other.registry().set_maintenance(&acme.id, Some(&down)).await.unwrap();
        let took = within(POLL * 10, async || connection.get("acme.localhost", "/", &[]).await.status == 503).await;
        assert!(took <= POLL * 3, "{name}: served for {took:?} after going down");
        let refused = connection.get("acme.localhost", "/counter", &[]).await;
        assert_eq!((refused.status, refused.header("retry-after")), (503, Some("90")), "{name}: {refused:?}");
        assert!(refused.body.contains("down for maintenance") && refused.body.contains("Back at 14:00."), "{refused:?}");
        assert_eq!(refused.header("cache-control"), Some("no-store"));
        assert!(!refused.body.contains("Acme"), "the answer names no tenant: {refused:?}");
        assert_eq!(connection.get("globex.localhost", "/", &[]).await.status, 200, "{name}: other tenants are served");

        // The secret: a wrong one is just another refused path; the right one sets the cookie.
        assert_eq!(connection.get("acme.localhost", "/let-me-in-2025", &[]).await.status, 503);
        let visit = connection.get("acme.localhost", "/let-me-in-2026", &[]).await;
        assert_eq!((visit.status, visit.header("location")), (303, Some("/")), "{name}: {visit:?}");
        let cookie = visit.cookie().unwrap();
        assert_eq!(cookie, "tenancy_bypass=let-me-in-2026");
        assert!(visit.header("set-cookie").unwrap().contains("HttpOnly"), "{visit:?}");
        let through = connection.get("acme.localhost", "/", &[("Cookie", &format!("theme=dark; {cookie}"))]).await;
        assert!(through.body.contains("<h1>Acme</h1>"), "{name}: {through:?}");
        for wrong in ["tenancy_bypass=let-me-in-2025", "tenancy_bypass=", "tenancy_bypass", "xtenancy_bypass=let-me-in-2026"] {
            assert_eq!(connection.get("acme.localhost", "/", &[("Cookie", wrong)]).await.status, 503, "{wrong}");
        }
        // Acme's secret opens nothing of Globex's, down with a secret of its own.
        let globex = other.registry().find_by_domain(&Domain::parse("globex.localhost").unwrap()).await.unwrap().unwrap();
        let globex_down = Maintenance::new(MaintenanceOrigin::Operator).with_bypass(&BypassSecret::parse("globex-only-key").unwrap());
        other.registry().set_maintenance(&globex.id, Some(&globex_down)).await.unwrap();
        within(POLL * 10, async || connection.get("globex.localhost", "/", &[]).await.status == 503).await;
        assert_eq!(connection.get("globex.localhost", "/", &[("Cookie", &cookie)]).await.status, 503, "{name}");
        assert_eq!(connection.get("globex.localhost", "/let-me-in-2026", &[]).await.status, 503, "{name}");

        // Up again: served to everyone.
        other.registry().set_maintenance(&acme.id, None).await.unwrap();
        within(POLL * 10, async || connection.get("acme.localhost", "/", &[]).await.status == 200).await;
        other.close().await;
        drop(server);
        tenancy.connections().close_all().await;
    }
}

#[tokio::test]
async fn a_bypass_cookie_under_path_identification_is_kept_to_its_tenants_path() {
    use tenancy_core::maintenance::{BypassSecret, Maintenance, MaintenanceOrigin};
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let tenancy = open(&env, |config| config.web.identify_by = vec![Identify::Path]).await;
    let acme = tenant(&tenancy, "Acme", &["acme.localhost"]).await;
    let down = Maintenance::new(MaintenanceOrigin::Operator).with_bypass(&BypassSecret::parse("let-me-in-2026").unwrap());
    tenancy.registry().set_maintenance(&acme.id, Some(&down)).await.unwrap();
    let routes = Routes::new().tenant(Router::new().route("/", get(async |t: CurrentTenant| t.tenant().name.to_string()))).into_router();
    let server = serve(TenantLayer::new(tenancy.clone()).around(routes)).await;
    let mut connection = Connection::open(server.address).await;
    assert_eq!(connection.get("localhost", "/acme.localhost/", &[]).await.status, 503);
    let visit = connection.get("localhost", "/acme.localhost/let-me-in-2026", &[]).await;
    assert_eq!((visit.status, visit.header("location")), (303, Some("/acme.localhost/")), "{visit:?}");
    assert!(visit.header("set-cookie").unwrap().contains("Path=/acme.localhost;"), "{visit:?}");
    let through = connection.get("localhost", "/acme.localhost/", &[("Cookie", &visit.cookie().unwrap())]).await;
    assert_eq!(through.body, "Acme");
}
