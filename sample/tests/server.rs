//! `tenancy server list|drain|activate|read-only` and `tenant create --server` through the real
//! binary: on SQLite (one server, the folder) and over three real PostgreSQL servers.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use common::Cli;
use tenancy_tests::Backend;

fn servers(cli: &Cli) -> Vec<serde_json::Value> {
    let out = cli.ok(&["server", "list", "--json"]);
    out.lines().map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()).filter(|e| e["event"] == "server").collect()
}

#[test]
fn the_one_sqlite_server_can_be_drained_and_opened_again() {
    let cli = Cli::sqlite();
    cli.ok(&["init"]);
    let listed = servers(&cli);
    assert_eq!(listed.len(), 1);
    let default = &listed[0];
    assert_eq!((&default["server"]["name"], &default["server"]["state"]), (&"default".into(), &"active".into()));
    assert_eq!((&default["main"], &default["reachable"]), (&true.into(), &true.into()));

    cli.ok(&["server", "drain", "default"]);
    let refused = cli.run(&["tenant", "create", "--name", "Acme"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("no server takes new tenants") && refused.stderr.contains("tenancy server activate"),
        "{}",
        refused.stderr
    );
    assert!(cli.tenants().is_empty(), "nothing registered");
    assert!(std::fs::read_dir(cli.env.sqlite_dir()).map_or(true, |mut files| files.next().is_none()), "no database file made");
    assert_eq!(servers(&cli)[0]["server"]["state"], "draining");

    cli.ok(&["server", "activate", "default"]);
    let id = cli.create("Acme", &[]);
    assert_eq!(servers(&cli)[0]["server"]["tenants"], 1);

    // Read-only: nothing is written there; `db migrate` says why it skipped the tenant.
    cli.ok(&["server", "read-only", "default"]);
    let migrate = cli.run(&["db", "migrate", "--all", "--verify"]);
    assert_eq!(migrate.code, 0, "{}", migrate.stderr);
    let said = format!("{}{}", migrate.stdout, migrate.stderr);
    assert!(said.contains("read-only"), "{said}");
    assert!(cli.run(&["tenant", "create", "--name", "Other"]).code == 1);
    cli.ok(&["server", "activate", "default"]);
    cli.ok(&["tenant", "delete", &id, "--force"]);
    let table = cli.ok(&["server", "list"]);
    assert!(table.starts_with("NAME") && table.contains("default (main)  active"), "{table}");
}

#[test]
fn unknown_servers_are_bad_usage_and_change_nothing() {
    let cli = Cli::sqlite();
    cli.ok(&["init"]);
    for name in ["nope", "../default", "default; DROP TABLE tenants", ""] {
        for args in [vec!["server", "drain", name], vec!["tenant", "create", "--name", "Acme", "--server", name]] {
            let run = cli.run(&args);
            assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
            assert!(run.stderr.contains("no server named"), "{args:?}: {}", run.stderr);
            assert!(!run.stderr.contains("panicked") && !run.stderr.contains("internal error"), "{}", run.stderr);
        }
    }
    assert!(cli.tenants().is_empty());
    assert_eq!(servers(&cli)[0]["server"]["state"], "active", "an unknown name changed no state");
}

/// The binary in an environment over three PostgreSQL servers, or `None` where they do not run.
fn cli_over_three_servers(backend: Backend) -> Option<Cli> {
    let mut cli = Cli::new(backend)?;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(cli.env.add_postgres_servers(["", "", ""], "least_tenants"))?;
    Some(cli)
}

/// Servers `default` and `second` (and, on PostgreSQL, `third`) of the backend.
fn cli_over_servers(backend: Backend) -> Option<Cli> {
    if backend != Backend::MySql {
        return cli_over_three_servers(backend);
    }
    let mut cli = Cli::new(backend)?;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(cli.env.add_mysql_servers())?;
    Some(cli)
}

#[test]
fn tenants_are_placed_over_three_postgres_servers() {
    let Some(cli) = cli_over_three_servers(Backend::Postgres) else { return };
    cli.ok(&["init"]);
    for name in ["A", "B", "C"] {
        cli.create(name, &[]);
    }
    let mut placed: Vec<String> = cli.tenants().iter().map(|t| t["server"].as_str().unwrap().to_owned()).collect();
    placed.sort();
    assert_eq!(placed, ["default", "second", "third"]);
    let id = cli.ok(&["tenant", "create", "--name", "D", "--server", "third"]);
    let shown: serde_json::Value = serde_json::from_str(&cli.ok(&["tenant", "show", id.trim(), "--json"])).unwrap();
    assert_eq!(shown["server"], "third");
    let listed = servers(&cli);
    let tenants: Vec<(String, u64)> =
        listed.iter().map(|s| (s["server"]["name"].as_str().unwrap().to_owned(), s["server"]["tenants"].as_u64().unwrap())).collect();
    assert_eq!(tenants, [("default".to_owned(), 1), ("second".to_owned(), 1), ("third".to_owned(), 2)]);
    assert!(listed.iter().all(|s| s["reachable"] == true), "{listed:?}");

    cli.ok(&["server", "drain", "second"]);
    let refused = cli.run(&["tenant", "create", "--name", "E", "--server", "second"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("server `second` is draining"), "{}", refused.stderr);
    // The next goes to the emptiest server still open, not to the drained one.
    cli.ok(&["tenant", "create", "--name", "F"]);
    let f = cli.tenants().into_iter().find(|t| t["name"] == "F").unwrap();
    assert_eq!(f["server"], "default");
    // Every tenant's database is served from its own server.
    for tenant in cli.tenants() {
        let id = tenant["id"].as_str().unwrap();
        cli.execute(id, "INSERT INTO accounts (name, email) VALUES ('a', 'a@servers.test')");
        assert_eq!(cli.scalar(id, "SELECT COUNT(*) FROM accounts"), Some(1), "{tenant}");
    }
}

/// Parsed `--json` lines.
fn events(stdout: &str) -> Vec<serde_json::Value> {
    stdout.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

#[test]
fn a_stopped_server_fails_exactly_its_tenants_and_the_rest_go_on() {
    let Some(cli) = Cli::new(Backend::Postgres) else { return };
    let Some(cluster) = tenancy_tests::cluster::TestCluster::start() else { return };
    // The main server, and one of the test's own that it can stop.
    let base = cli.env.config_toml();
    let base = base.split("\n[tenant_database.servers]").next().unwrap();
    let main = format!("postgres://postgres@{}/postgres", tenancy_tests::POSTGRES_ADDR);
    let toml = format!("{base}\n[tenant_database.servers]\ndefault = \"{main}\"\nlost = \"{}\"\n", cluster.url("postgres"));
    std::fs::write(cli.dir().join("tenancy.toml"), toml).unwrap();
    cli.ok(&["init"]);
    let mut on = std::collections::BTreeMap::new();
    for (name, server) in [("A", "default"), ("B", "default"), ("C", "lost"), ("D", "lost")] {
        let id = cli.ok(&["tenant", "create", "--name", name, "--server", server]).trim().to_owned();
        on.insert(id, server);
    }
    let lost: Vec<&String> = on.iter().filter(|(_, server)| **server == "lost").map(|(id, _)| id).collect();
    cluster.stop();

    // db migrate --all: the lost server's tenants fail, each with why; the others are read and succeed.
    let started = std::time::Instant::now();
    let run = cli.run(&["db", "migrate", "--all", "--verify", "--json"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let finished: Vec<serde_json::Value> = events(&run.stdout).into_iter().filter(|e| e["event"] == "tenant_finished").collect();
    assert_eq!(finished.len(), 4, "{}", run.stdout);
    for event in &finished {
        let id = event["tenant"].as_str().unwrap();
        let expected = if lost.iter().any(|l| l.as_str() == id) { "failed" } else { "succeeded" };
        assert_eq!(event["state"], expected, "{event}");
        if expected == "failed" {
            assert!(
                event["error"].as_str().unwrap().contains(&format!("127.0.0.1:{}", cluster.port)),
                "the error names the server: {event}"
            );
        }
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "no hang on a server that is down: {:?}", started.elapsed());

    // doctor: that server fails, the main one does not.
    let doctor = cli.run(&["doctor"]);
    assert_eq!(doctor.code, 1, "{}", doctor.stdout);
    let line = |check: &str| doctor.stdout.lines().find(|l| l.contains(check)).unwrap_or_default().to_owned();
    assert!(line("server `lost`").starts_with("FAIL"), "{}", doctor.stdout);
    assert!(line("server `default`").starts_with("ok"), "{}", doctor.stdout);

    // monitor health: exactly the lost server's tenants are unhealthy, their database unreachable.
    let health = cli.run(&["monitor", "health", "--all", "--json"]);
    assert_eq!(health.code, 1, "{}{}", health.stdout, health.stderr);
    let mut unhealthy: Vec<String> = events(&health.stdout)
        .into_iter()
        .filter(|e| e["event"] == "tenant_health" && e["healthy"] == false)
        .map(|e| {
            assert!(e["problems"][0].as_str().unwrap().starts_with("database unreachable"), "{e}");
            e["tenant"]["id"].as_str().or(e["tenant"].as_str()).unwrap().to_owned()
        })
        .collect();
    unhealthy.sort();
    assert_eq!(unhealthy.iter().collect::<Vec<_>>(), lost, "{}", health.stdout);

    // `server list` says it does not answer; placement still works on the servers that do.
    let listed = servers(&cli);
    let lost_server = listed.iter().find(|s| s["server"]["name"] == "lost").unwrap();
    assert_eq!(lost_server["reachable"], false, "{lost_server}");
    cli.ok(&["server", "drain", "lost"]);
    cli.ok(&["tenant", "create", "--name", "E"]);

    // Back up: the next run migrates everything.
    cluster.start_again();
    let run = cli.run(&["db", "migrate", "--all", "--verify"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

fn tenant_json(cli: &Cli, reference: &str) -> serde_json::Value {
    serde_json::from_str(&cli.ok(&["tenant", "show", reference, "--json"])).unwrap()
}

/// Databases (or schemas) with the test's prefix on the cluster at `admin` (a URL of the database
/// holding the schemas, under schema isolation).
fn tenant_databases_at(cli: &Cli, admin: &str) -> Vec<String> {
    let pattern = format!("{}%", cli.env.prefix.replace('_', "\\_"));
    let central = cli.env.central_database();
    let sql = match cli.env.backend {
        Backend::PostgresSchema => format!("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE '{pattern}'"),
        _ => format!("SELECT datname::text FROM pg_database WHERE datname LIKE '{pattern}' AND datname <> '{central}'"),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut names = rt.block_on(tenancy_tests::admin_names(admin, &sql));
    names.sort();
    names
}

#[test]
fn a_tenant_moves_to_another_server_with_its_data_and_an_interrupted_move_resumes_or_aborts() {
    for backend in [Backend::Postgres, Backend::PostgresSchema] {
        let Some(cli) = cli_over_three_servers(backend) else { continue };
        let rt = tokio::runtime::Runtime::new().unwrap();
        let Some(cluster) = tenancy_tests::cluster::TestCluster::start() else { return };
        // A fourth server the test can stop: the target of the moves that are interrupted.
        let holder = if backend == Backend::PostgresSchema { cli.env.central_database() } else { "postgres".to_owned() };
        if backend == Backend::PostgresSchema {
            rt.block_on(tenancy_tests::admin_execute(&cluster.url("postgres"), &format!("CREATE DATABASE \"{holder}\"")));
        }
        let toml = std::fs::read_to_string(cli.dir().join("tenancy.toml")).unwrap();
        std::fs::write(
            cli.dir().join("tenancy.toml"),
            format!("{toml}\n[tenant_database.servers.lost]\nurl = \"{}\"\n", cluster.url(&holder)),
        )
        .unwrap();
        let at = |server: &str| match server {
            "lost" => cluster.url(&holder),
            name => tenancy_tests::TestEnv::postgres_server_url(name, &holder),
        };
        cli.ok(&["init"]);
        let acme = cli.ok(&["tenant", "create", "--name", "Acme", "--server", "default", "--domain", "acme.test"]).trim().to_owned();
        cli.execute(&acme, "INSERT INTO accounts (name, email) SELECT 'n' || g, 'a' || g || '@move.test' FROM generate_series(1, 500) g");
        let database = tenant_json(&cli, &acme)["database"].as_str().unwrap().to_owned();

        // The move: a line per step; then served from `second`, every row there, the old copy kept.
        let run = cli.run(&["tenant", "move", "acme.test", "--to", "second"]);
        assert_eq!(run.code, 0, "{}: {}{}", backend.name(), run.stdout, run.stderr);
        for step in ["Started", "Down", "Copied", "Switched", "Up", "Moved"] {
            assert!(run.stderr.contains(step), "{}: no `{step}` line: {}", backend.name(), run.stderr);
        }
        // The copy was checked, every row of `accounts` among those counted.
        let checked = run.stderr.split("checked: ").nth(1).unwrap_or_else(|| panic!("no check reported: {}", run.stderr));
        let rows: u64 = checked.split(" tables, ").nth(1).and_then(|rest| rest.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
        assert!(rows >= 500, "{}", run.stderr);
        let moved = tenant_json(&cli, &acme);
        assert_eq!(moved["server"], "second", "{moved}");
        assert!(moved["maintenance"].is_null(), "{}: up again: {moved}", backend.name());
        assert_eq!(cli.scalar(&acme, "SELECT COUNT(*) FROM accounts"), Some(500));
        assert!(tenant_databases_at(&cli, &at("second")).contains(&database));
        assert!(tenant_databases_at(&cli, &at("default")).contains(&database), "the old database is kept until --cleanup");
        let status = cli.status(&acme);
        assert_eq!(common::applied_pending(&status).1, 0, "{status}");
        // Writes go to the new server; the backup the move made is listed.
        cli.execute(&acme, "INSERT INTO accounts (name, email) VALUES ('after', 'after@move.test')");
        assert_eq!(cli.scalar(&acme, "SELECT COUNT(*) FROM accounts"), Some(501));
        assert!(cli.ok(&["backup", "list", "--tenant", &acme, "--json"]).lines().count() >= 1);
        // A second move of a moved tenant waits for the cleanup; the cleanup drops the old copy only.
        let again = cli.run(&["tenant", "move", &acme, "--to", "third"]);
        assert_eq!(again.code, 2, "{}", again.stderr);
        cli.ok(&["tenant", "move", "--cleanup"]);
        assert!(!tenant_databases_at(&cli, &at("default")).contains(&database), "{}", backend.name());
        assert_eq!(cli.scalar(&acme, "SELECT COUNT(*) FROM accounts"), Some(501));

        // --keep-source-for 0 drops the old database at once; a longer keep outlives --cleanup.
        let run = cli.run(&["tenant", "move", &acme, "--to", "third", "--keep-source-for", "0"]);
        assert!(run.code == 0 && run.stderr.contains("old database is dropped"), "{}", run.stderr);
        assert!(!tenant_databases_at(&cli, &at("second")).contains(&database));
        let run = cli.run(&["tenant", "move", &acme, "--to", "second", "--keep-source-for", "7days"]);
        assert!(run.code == 0 && run.stderr.contains("kept until"), "{}", run.stderr);
        cli.ok(&["tenant", "move", "--cleanup"]);
        assert!(tenant_databases_at(&cli, &at("third")).contains(&database), "kept for 7 days, --cleanup or not");
        assert_eq!(cli.run(&["tenant", "move", &acme, "--to", "third", "--keep-source-for", "soon"]).code, 2);
        assert_eq!(cli.scalar(&acme, "SELECT COUNT(*) FROM accounts"), Some(501));

        // A tenant whose old copy is kept moves again once it is dropped.
        let run = cli.run(&["tenant", "move", &acme, "--to", "default"]);
        assert!(run.code == 2 && run.stderr.contains("kept until"), "{}", run.stderr);

        // Refused before anything is done: exit 2.
        let hooli = cli.ok(&["tenant", "create", "--name", "Hooli", "--server", "default"]).trim().to_owned();
        for (to, says) in [("nope", "no server named"), ("default", "already"), ("../x", "no server named")] {
            let run = cli.run(&["tenant", "move", &hooli, "--to", to]);
            assert_eq!(run.code, 2, "{to}: {}", run.stderr);
            assert!(run.stderr.contains(says), "{to}: {}", run.stderr);
        }
        cli.ok(&["server", "drain", "third"]);
        let run = cli.run(&["tenant", "move", &hooli, "--to", "third"]);
        assert!(run.code == 2 && run.stderr.contains("takes no tenants"), "{}", run.stderr);
        cli.ok(&["server", "activate", "third"]);

        // Interrupted: the target stops answering. The move fails at its copy; the tenant is still
        // served from its server (with all its data), down for maintenance, and the move recorded.
        let globex = cli.ok(&["tenant", "create", "--name", "Globex", "--server", "default"]).trim().to_owned();
        cli.execute(&globex, "INSERT INTO accounts (name, email) VALUES ('g', 'g@move.test')");
        cluster.stop();
        let run = cli.run(&["tenant", "move", &globex, "--to", "lost"]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stderr.contains("at step `copy`"), "{}", run.stderr);
        let stuck = tenant_json(&cli, &globex);
        assert_eq!(stuck["server"], "default");
        assert_eq!(stuck["maintenance"]["origin"], "move", "{stuck}");
        // A run of db migrate leaves it alone, and says why.
        let migrate = cli.run(&["db", "migrate", "--all", "--verify"]);
        assert!(format!("{}{}", migrate.stdout, migrate.stderr).contains("being moved"), "{}{}", migrate.stdout, migrate.stderr);
        // Another target while this move is recorded: refused, naming it.
        let run = cli.run(&["tenant", "move", &globex, "--to", "third"]);
        assert!(run.code != 0 && run.stderr.contains("`lost` already"), "{}", run.stderr);
        // The server is back: the same command resumes the move and finishes it.
        cluster.start_again();
        cli.ok(&["tenant", "move", &globex, "--to", "lost"]);
        assert_eq!(tenant_json(&cli, &globex)["server"], "lost");
        assert_eq!(cli.scalar(&globex, "SELECT COUNT(*) FROM accounts"), Some(1));

        // Aborted: after a failed copy, --abort drops what was copied and brings the tenant up.
        let initech = cli.ok(&["tenant", "create", "--name", "Initech", "--server", "default"]).trim().to_owned();
        cluster.stop();
        assert_eq!(cli.run(&["tenant", "move", &initech, "--to", "lost"]).code, 1);
        cluster.start_again();
        cli.ok(&["tenant", "move", &initech, "--abort"]);
        let back = tenant_json(&cli, &initech);
        assert!(back["server"] == "default" && back["maintenance"].is_null(), "{back}");
        assert!(!tenant_databases_at(&cli, &cluster.url(&holder)).contains(&back["database"].as_str().unwrap().to_owned()));
        assert_eq!(cli.run(&["tenant", "move", &initech, "--abort"]).code, 2, "nothing to abort");
        // Deleting a tenant whose old copy is kept drops both.
        cli.ok(&["tenant", "move", &initech, "--to", "third"]);
        let initech_db = tenant_json(&cli, &initech)["database"].as_str().unwrap().to_owned();
        cli.ok(&["tenant", "delete", &initech, "--force"]);
        for server in ["default", "third"] {
            assert!(!tenant_databases_at(&cli, &at(server)).contains(&initech_db), "{server}");
        }
        drop(cluster);
    }
}

/// What one request of the poller got.
struct Seen {
    status: u16,
    body: String,
}

#[test]
fn a_tenant_moved_under_load_answers_503_or_its_own_data_and_loses_no_write() {
    let Some(cli) = cli_over_three_servers(Backend::PostgresSchema) else { return };
    cli.ok(&["init"]);
    cli.ok(&["tenant", "create", "--name", "Moving", "--domain", "moving.localhost", "--server", "default"]);
    cli.ok(&["tenant", "create", "--name", "Staying", "--domain", "staying.localhost", "--server", "default"]);
    let mut server =
        cli.tenancy_process().args(["serve", "--json", "--listen", "127.0.0.1:0"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let stdout = server.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let _ = lines.send(line.unwrap());
        }
    });
    let listening: serde_json::Value = serde_json::from_str(&received.recv_timeout(std::time::Duration::from_secs(30)).unwrap()).unwrap();
    let address: std::net::SocketAddr = listening["address"].as_str().unwrap().parse().unwrap();

    // Two pollers: each request to /counter adds one to its tenant's count (in its own database)
    // and answers the count.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poll = |host: &'static str| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || seen.len() < 5 {
                let response = rt.block_on(tenancy_tests::http::get(address, host, "/counter"));
                seen.push(Seen { status: response.status, body: response.body });
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            seen
        })
    };
    let (moving, staying) = (poll("moving.localhost"), poll("staying.localhost"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let run = cli.run(&["tenant", "move", "moving.localhost", "--to", "second"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Until the serving process has seen the switch (one poll), then some more requests.
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (moving, staying) = (moving.join().unwrap(), staying.join().unwrap());
    let _ = std::process::Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();

    // The staying tenant never noticed.
    assert!(
        staying.iter().all(|s| s.status == 200 && s.body.contains("tenant: Staying")),
        "{:?}",
        staying.iter().map(|s| s.status).collect::<Vec<_>>()
    );
    // The moving one answered its own data or 503, nothing else, and its count went up by one a
    // request with no gap or repeat across the move: no write landed on the old copy.
    let statuses: Vec<u16> = moving.iter().map(|s| s.status).collect();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    assert!(statuses.contains(&503), "the move took it down: {statuses:?}");
    let last_down = statuses.iter().rposition(|s| *s == 503).unwrap();
    assert!(statuses[last_down..].contains(&200), "it answered again after the move: {statuses:?}");
    let counts: Vec<u64> = moving
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| {
            assert!(s.body.contains("tenant: Moving"), "{}", s.body);
            let line = s.body.lines().find_map(|l| l.strip_prefix("tenant visits: ")).unwrap();
            line.trim().parse().unwrap()
        })
        .collect();
    assert!(counts.windows(2).all(|pair| pair[1] == pair[0] + 1), "{counts:?}");
    assert_eq!(tenant_json(&cli, "moving.localhost")["server"], "second");
}

/// A session of another program, in a transaction on `tenant`'s database (or schema) on the
/// main server, that has written one row to `accounts` and not committed yet.
async fn open_writer(cli: &Cli, database: &str) -> sea_orm::DatabaseTransaction {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let (url, table) = match cli.env.backend {
        Backend::PostgresSchema => {
            (tenancy_tests::TestEnv::postgres_server_url("default", &cli.env.central_database()), format!("\"{database}\".accounts"))
        }
        Backend::MySql => (format!("mysql://root@{}/{database}", tenancy_tests::MYSQL_ADDR), "accounts".to_owned()),
        _ => (tenancy_tests::TestEnv::postgres_server_url("default", database), "accounts".to_owned()),
    };
    let db = sea_orm::Database::connect(url).await.unwrap();
    let transaction = db.begin().await.unwrap();
    transaction.execute_unprepared(&format!("INSERT INTO {table} (name, email) VALUES ('late', 'late@move.test')")).await.unwrap();
    transaction
}

#[test]
fn a_move_waits_for_a_transaction_that_began_before_it_and_copies_its_write() {
    for backend in [Backend::Postgres, Backend::PostgresSchema, Backend::MySql] {
        let Some(cli) = cli_over_servers(backend) else { continue };
        cli.ok(&["init"]);
        let acme = cli.ok(&["tenant", "create", "--name", "Acme", "--server", "default"]).trim().to_owned();
        let database = tenant_json(&cli, &acme)["database"].as_str().unwrap().to_owned();
        let rt = tokio::runtime::Runtime::new().unwrap();
        // An open transaction dropped by a failing assertion must be dropped inside the runtime.
        let _in_runtime = rt.enter();

        // Still busy when the wait is over: the move stops before copying, the tenant stays down
        // and on its server, and the uncommitted row is nowhere.
        let writer = rt.block_on(open_writer(&cli, &database));
        let run = cli.run(&["tenant", "move", &acme, "--to", "second", "--wait-for-sessions", "1s"]);
        assert_eq!(run.code, 1, "{}: {}", backend.name(), run.stderr);
        assert!(run.stderr.contains("at step `quiet`") && run.stderr.contains("1 session(s) still busy"), "{}", run.stderr);
        let stuck = tenant_json(&cli, &acme);
        assert!(stuck["server"] == "default" && stuck["maintenance"]["origin"] == "move", "{stuck}");
        rt.block_on(writer.rollback()).unwrap();

        // Busy when the move begins, committing while it waits: the commit is in the copy.
        let writer = rt.block_on(open_writer(&cli, &database));
        let mut mover =
            cli.tenancy_process().args(["tenant", "move", &acme, "--to", "second"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1_500));
        if let Some(status) = mover.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut mover.stderr.take().unwrap(), &mut stderr).unwrap();
            panic!("{}: the move did not wait for the open transaction ({status}): {stderr}", backend.name());
        }
        rt.block_on(writer.commit()).unwrap();
        let started = std::time::Instant::now();
        let finished = loop {
            if let Some(status) = mover.try_wait().unwrap() {
                break status;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(60), "the move did not finish");
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut mover.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(finished.success(), "{}: {stderr}", backend.name());
        assert!(stderr.contains("Quiet"), "{stderr}");
        assert_eq!(tenant_json(&cli, &acme)["server"], "second");
        assert_eq!(cli.scalar(&acme, "SELECT COUNT(*) FROM accounts WHERE email = 'late@move.test'"), Some(1), "{}", backend.name());
    }
}

#[test]
fn a_mariadb_tenant_moves_to_another_server_with_its_data() {
    let Some(cli) = cli_over_servers(Backend::MySql) else { return };
    cli.ok(&["init"]);
    let acme = cli.ok(&["tenant", "create", "--name", "Acme", "--server", "default", "--domain", "acme.test"]).trim().to_owned();
    cli.ok(&["db", "seed", "--tenant", &acme]);
    cli.execute(&acme, "INSERT INTO accounts (name, email) VALUES ('m', 'm@move.test')");
    let accounts = cli.scalar(&acme, "SELECT COUNT(*) FROM accounts").unwrap();
    let database = tenant_json(&cli, &acme)["database"].as_str().unwrap().to_owned();
    let on = |address: &str| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let sql = format!("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{database}'");
        !rt.block_on(tenancy_tests::admin_names(&format!("mysql://root@{address}/mysql"), &sql)).is_empty()
    };

    let run = cli.run(&["tenant", "move", "acme.test", "--to", "second"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for step in ["Down", "Quiet", "Copied", "Switched", "Up", "Moved"] {
        assert!(run.stderr.contains(step), "no `{step}` line: {}", run.stderr);
    }
    let moved = tenant_json(&cli, &acme);
    assert!(moved["server"] == "second" && moved["maintenance"].is_null(), "{moved}");
    assert_eq!(cli.scalar(&acme, "SELECT COUNT(*) FROM accounts"), Some(accounts));
    assert_eq!(common::applied_pending(&cli.status(&acme)).1, 0);
    assert!(on(tenancy_tests::EXTRA_MYSQL_ADDR) && on(tenancy_tests::MYSQL_ADDR), "the new copy, and the old one kept");
    // Writes go to the new server only.
    cli.execute(&acme, "INSERT INTO accounts (name, email) VALUES ('after', 'after@move.test')");
    assert_eq!(cli.scalar(&acme, "SELECT COUNT(*) FROM accounts"), Some(accounts + 1));
    cli.ok(&["tenant", "move", "--cleanup"]);
    assert!(!on(tenancy_tests::MYSQL_ADDR) && on(tenancy_tests::EXTRA_MYSQL_ADDR));
    // And back, dropping the old copy at once.
    cli.ok(&["tenant", "move", &acme, "--to", "default", "--keep-source-for", "0"]);
    assert!(on(tenancy_tests::MYSQL_ADDR) && !on(tenancy_tests::EXTRA_MYSQL_ADDR));
    assert_eq!(cli.scalar(&acme, "SELECT COUNT(*) FROM accounts"), Some(accounts + 1));
}
