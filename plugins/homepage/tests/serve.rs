//! The homepage routes through a real server on loopback: the four outcomes of `GET /`, a tenant
//! with a page on one of its two domains, disabled and suspended tenants, escaping, template
//! errors as a plain 500 with a log line, hostile template names and asset paths, and when pages
//! are read from disk (once per registry change; every request with `reload`).

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::World;
use tenancy_core::TenantStatus;
use tenancy_tests::Backend;
use tenancy_tests::http::{self, Connection};

const PAGE: &str = "<h1>{{ tenant.name }}</h1><p>{{ host }} {{ tenant.data.plan }} {{ tenant.domains|join(',') }}</p>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_host_gets_its_page_the_default_or_the_redirect() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(world) = World::new(backend, "fallback_redirect = \"/welcome\"").await else { continue };
        let acme = world.tenant("Acme <b>&</b>", &["acme.test", "acme-two.test"], true).await;
        world.tenant("Globex", &["globex.test"], true).await;
        world.tenant("Initech", &["initech.test"], false).await;
        world.tenant("Bücher", &["xn--bcher-kva.test"], true).await;
        world.write("xn--bcher-kva.test/home.html", "<p>{{ tenant.name }} on {{ host }}</p>");
        let hidden = world.tenant("Hidden", &["hidden.test"], true).await;
        world.tenancy.registry().set_status(&hidden.id, TenantStatus::Suspended).await.unwrap();
        world.write("acme.test/home.html", PAGE);
        world.write("acme.test/.tenant", &acme.id.to_string());
        world.write("hidden.test/home.html", "secret page of Hidden");
        world.write("default/home.html", "<h1>Default for {{ tenant.name }}</h1>");
        let server = world.serve().await;

        // Its own page, escaped whatever the name holds, with the host it was asked on.
        let own = http::get(server.address, "acme.test", "/").await;
        assert_eq!(own.status, 200, "{}", backend.name());
        assert_eq!(own.body, "<h1>Acme &lt;b&gt;&amp;&lt;&#x2f;b&gt;</h1><p>acme.test gold acme.test,acme-two.test</p>");
        assert!(own.header("content-type").unwrap().starts_with("text/html"));
        // The same tenant's other domain has no page: the default one.
        let second = http::get(server.address, "acme-two.test", "/").await;
        assert_eq!((second.status, second.body.as_str()), (200, "<h1>Default for Acme &lt;b&gt;&amp;&lt;&#x2f;b&gt;</h1>"));
        let globex = http::get(server.address, "globex.test", "/").await;
        assert_eq!((globex.status, globex.body.as_str()), (200, "<h1>Default for Globex</h1>"));
        // An internationalised host reaches the folder of its ASCII form.
        let idn = http::get(server.address, "BÜCHER.test", "/").await;
        assert_eq!((idn.status, idn.body.as_str()), (200, "<p>Bücher on xn--bcher-kva.test</p>"), "{}", backend.name());
        // Disabled: the configured redirect, 302.
        let initech = http::get(server.address, "initech.test", "/").await;
        assert_eq!((initech.status, initech.header("location")), (302, Some("/welcome")));
        // Suspended: the door answers; the page is never rendered.
        let suspended = http::get(server.address, "hidden.test", "/").await;
        assert_eq!(suspended.status, 403);
        assert!(!suspended.body.contains("secret"));

        // No default page any more: once the registry moves, tenants without a page are redirected.
        std::fs::remove_file(world.homepages().join("default/home.html")).unwrap();
        world.tenancy.registry().set_homepage_enabled(&acme.id, true).await.unwrap();
        let none = http::get(server.address, "globex.test", "/").await;
        assert_eq!((none.status, none.header("location")), (302, Some("/welcome")));
        assert_eq!(http::get(server.address, "acme.test", "/").await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_read_once_per_registry_change_unless_reload_is_on() {
    let world = World::new(Backend::Sqlite, "").await.unwrap();
    let acme = world.tenant("Acme", &["acme.test"], true).await;
    world.write("acme.test/home.html", "first");
    let server = world.serve().await;
    assert_eq!(http::get(server.address, "acme.test", "/").await.body, "first");
    // Served from memory: the disk is not read again...
    world.write("acme.test/home.html", "second");
    assert_eq!(http::get(server.address, "acme.test", "/").await.body, "first");
    // ...until the registry changes (what `homepage create|enable` do).
    world.tenancy.registry().set_homepage_enabled(&acme.id, true).await.unwrap();
    assert_eq!(http::get(server.address, "acme.test", "/").await.body, "second");
    drop(server);

    let world = World::new(Backend::Sqlite, "reload = true").await.unwrap();
    world.tenant("Acme", &["acme.test"], true).await;
    world.write("acme.test/home.html", "first");
    let server = world.serve().await;
    assert_eq!(http::get(server.address, "acme.test", "/").await.body, "first");
    world.write("acme.test/home.html", "second {{ 1 + 1 }}");
    assert_eq!(http::get(server.address, "acme.test", "/").await.body, "second 2", "reload reads every request");
}

/// Records the events the server logs.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Logs {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_errors_are_a_plain_500_and_a_log_line() {
    use tracing_subscriber::layer::SubscriberExt;
    let logs = Logs::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(logs.clone())).unwrap();

    let world = World::new(Backend::Sqlite, "").await.unwrap();
    world.tenant("Syntax", &["syntax.test"], true).await;
    world.tenant("Missing", &["missing.test"], true).await;
    world.tenant("Runaway", &["runaway.test"], true).await;
    world.write("syntax.test/home.html", "<h1>{{ tenant.name </h1>");
    world.write("missing.test/home.html", "{% include 'nowhere.html' %}");
    world.write("runaway.test/home.html", "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}");
    let server = world.serve().await;

    for host in ["syntax.test", "missing.test", "runaway.test"] {
        let started = Instant::now();
        let answer = http::get(server.address, host, "/").await;
        assert_eq!(answer.status, 500, "{host}");
        assert_eq!(answer.body, "This page cannot be shown right now.\n", "{host}: no details, no trace");
        assert!(started.elapsed() < Duration::from_secs(10), "{host}: a runaway template is stopped");
    }
    let logged = logs.0.lock().unwrap().join("\n");
    assert!(logged.contains("the homepage template failed") && logged.contains("syntax.test"), "{logged}");
    assert!(logged.contains("nowhere.html"), "the log says what was missing: {logged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_template_names_and_asset_paths_are_refused() {
    let world = World::new(Backend::Sqlite, "").await.unwrap();
    let acme = world.tenant("Acme", &["acme.test"], true).await;
    let globex = world.tenant("Globex", &["globex.test"], true).await;
    world.write("acme.test/.tenant", &acme.id.to_string());
    world.write("globex.test/.tenant", &globex.id.to_string());
    world.write("globex.test/home.html", "globex secret page");
    world.write("globex.test/assets/secret.css", "globex secret asset");
    world.write("acme.test/assets/site.css", "h1 { color: red }");
    world.write("acme.test/assets/nested/logo.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>");
    std::fs::write(world.env.dir().join("outside.txt"), "outside the root").unwrap();
    let assets = world.homepages().join("acme.test/assets");
    std::os::unix::fs::symlink(world.env.dir().join("outside.txt"), assets.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(world.homepages().join("globex.test"), assets.join("globex")).unwrap();

    // Templates: only names inside the page's own folder load, so another tenant's page cannot be pulled in.
    for include in ["../globex.test/home.html", "/etc/passwd", "assets/link.txt", "assets/globex/home.html", ".tenant"] {
        world.write("acme.test/home.html", &format!("{{% include '{include}' %}}"));
        world.tenancy.registry().set_homepage_enabled(&acme.id, true).await.unwrap(); // render again
        let server = world.serve().await;
        let answer = http::get(server.address, "acme.test", "/").await;
        assert_eq!(answer.status, 500, "include {include}: {}", answer.body);
        assert!(!answer.body.contains("secret") && !answer.body.contains("outside"), "{include}");
    }

    let server = world.serve().await;
    let css = http::get(server.address, "acme.test", "/assets/site.css").await;
    assert_eq!((css.status, css.body.as_str(), css.header("content-type")), (200, "h1 { color: red }", Some("text/css")));
    assert_eq!(css.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(http::get(server.address, "acme.test", "/assets/nested/logo.svg").await.header("content-type"), Some("image/svg+xml"));
    // A tenant's files are for its own hosts only.
    assert_eq!(http::get(server.address, "globex.test", "/assets/site.css").await.status, 404);
    let mut connection = Connection::open(server.address).await;
    for path in [
        "/assets/../globex.test/assets/secret.css",
        "/assets/%2e%2e/%2e%2e/globex.test/assets/secret.css",
        "/assets/..%2F..%2Fglobex.test%2Fassets%2Fsecret.css",
        "/assets/..%5C..%5Cglobex.test%5Cassets%5Csecret.css",
        "/assets//etc/passwd",
        "/assets/%2Fetc%2Fpasswd",
        "/assets/link.txt",
        "/assets/globex/assets/secret.css",
        "/assets/../.tenant",
        "/assets/.%2e/home.html",
        "/assets/site.css%00.png",
    ] {
        let answer = connection.get("acme.test", path, &[]).await;
        assert!(matches!(answer.status, 400 | 404), "{path}: {} {}", answer.status, answer.body);
        assert!(
            !answer.body.contains("secret") && !answer.body.contains("outside") && !answer.body.contains(&acme.id.to_string()),
            "{path}"
        );
    }
}
