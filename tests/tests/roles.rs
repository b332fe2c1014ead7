//! Least privilege: with a role per tenant (`roles = "per_tenant"`, what every server test
//! environment uses), raw SQL run in one tenant's context cannot read, change or even list
//! another's data, nor climb to more rights; a role lives and dies with its tenant; passwords
//! rotate; tenants made before roles get theirs with `secure`; and what tenant code leaves on a
//! connection never reaches the next lease.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tenancy_core::provisioning::{DeleteOptions, Provisioning, ProvisioningStep, StepOutcome, TenantRequest};
use tenancy_core::{BoxError, Tenancy, Tenant, TenantName};
use tenancy_tests::{Backend, POSTGRES_ADDR, TestEnv, admin_execute, tenant_roles};

/// The servers, each tried on its own.
const SERVERS: [Backend; 3] = [Backend::Postgres, Backend::PostgresSchema, Backend::MySql];

async fn create(tenancy: &Tenancy, name: &str) -> Tenant {
    tenancy.create_tenant(&TenantRequest::new(TenantName::parse(name).unwrap()), &()).await.unwrap()
}

/// The first column of the first row `sql` returns on `db` as text (`None` for no row or NULL),
/// or the server's refusal.
async fn attempt(db: &DatabaseConnection, sql: &str) -> Result<Option<String>, String> {
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.map_err(|err| err.to_string())?;
    Ok(row.and_then(|row| {
        row.try_get_by_index::<Option<String>>(0)
            .ok()
            .flatten()
            .or_else(|| row.try_get_by_index::<Option<i64>>(0).ok().flatten().map(|n| n.to_string()))
    }))
}

async fn execute(db: &DatabaseConnection, sql: &str) -> Result<(), String> {
    db.execute_unprepared(sql).await.map(drop).map_err(|err| err.to_string())
}

/// What a hostile statement must get: refused by the server, or nothing at all.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Refused,
    Nothing,
}

/// The attacks tenant `a`'s code tries on tenant `b`, by server. `{b}` is b's database (schema),
/// `{a}` a's, `{central}` the registry's database.
fn attacks(backend: Backend) -> Vec<(&'static str, &'static str, Outcome)> {
    use Outcome::{Nothing, Refused};
    match backend {
        Backend::MySql => vec![
            ("select from b", "SELECT CAST(COUNT(*) AS CHAR) FROM `{b}`.accounts", Refused),
            ("insert into b", "INSERT INTO `{b}`.accounts (name, email) VALUES ('x', 'x@evil')", Refused),
            ("switch to b's database", "USE `{b}`", Refused),
            (
                "list b's tables",
                "SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.tables WHERE table_schema = '{b}' HAVING COUNT(*) > 0",
                Nothing,
            ),
            ("read the registry", "SELECT CAST(COUNT(*) AS CHAR) FROM `{central}`.tenants", Refused),
            ("read the server's users", "SELECT CAST(COUNT(*) AS CHAR) FROM mysql.user", Refused),
            ("read a server file", "SELECT LOAD_FILE('/etc/passwd')", Nothing),
            ("create a database", "CREATE DATABASE `{a}_evil`", Refused),
            ("create a user", "CREATE USER 'evil'@'%'", Refused),
            ("grant itself b", "GRANT ALL ON `{b}`.* TO CURRENT_USER", Refused),
            ("take b's role", "SET ROLE `{b}`", Refused),
        ],
        Backend::PostgresSchema => vec![
            ("select from b", "SELECT count(*) FROM \"{b}\".accounts", Refused),
            ("insert into b", "INSERT INTO \"{b}\".accounts (name, email) VALUES ('x', 'x@evil')", Refused),
            ("put b on the search path", "SET search_path = \"{b}\"; SELECT count(*) FROM accounts", Refused),
            ("list b's tables", "SELECT count(*) FROM information_schema.tables WHERE table_schema = '{b}' HAVING count(*) > 0", Nothing),
            ("read the registry", "SELECT count(*) FROM public.tenants", Refused),
            ("create in the shared schema", "CREATE TABLE public.evil (id int)", Refused),
            ("take b's schema", "ALTER SCHEMA \"{b}\" OWNER TO CURRENT_USER", Refused),
            ("take b's role", "SET ROLE \"{b}\"", Refused),
            ("become b", "SET SESSION AUTHORIZATION \"{b}\"", Refused),
            ("grant itself b", "GRANT \"{b}\" TO CURRENT_USER", Refused),
            ("become a superuser", "ALTER ROLE CURRENT_USER SUPERUSER", Refused),
            ("read a server file", "SELECT pg_read_file('/etc/passwd')", Refused),
            ("run a program", "COPY (SELECT 1) TO PROGRAM 'true'", Refused),
            ("create a database", "CREATE DATABASE \"{a}_evil\"", Refused),
            ("create a role", "CREATE ROLE evil", Refused),
        ],
        _ => vec![
            ("select from b", "SELECT count(*) FROM \"{b}\".public.accounts", Refused),
            ("take b's role", "SET ROLE \"{b}\"", Refused),
            ("become b", "SET SESSION AUTHORIZATION \"{b}\"", Refused),
            ("grant itself b", "GRANT \"{b}\" TO CURRENT_USER", Refused),
            ("become a superuser", "ALTER ROLE CURRENT_USER SUPERUSER", Refused),
            ("give itself b's database", "ALTER DATABASE \"{b}\" OWNER TO CURRENT_USER", Refused),
            ("read a server file", "SELECT pg_read_file('/etc/passwd')", Refused),
            ("run a program", "COPY (SELECT 1) TO PROGRAM 'true'", Refused),
            ("create a database", "CREATE DATABASE \"{a}_evil\"", Refused),
            ("create a role", "CREATE ROLE evil", Refused),
        ],
    }
}

#[tokio::test]
async fn raw_sql_in_one_tenant_cannot_reach_another_tenant_on_any_server() {
    for backend in SERVERS {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = env.open_sample().await;
        let (a, b) = (create(&tenancy, "A").await, create(&tenancy, "B").await);
        eprintln!("{}", attack(&env, &tenancy, &a, &b, attacks(backend)).await);
        tenancy.close().await;
    }
}

/// Tenants copied from the template share the role that holds the template's objects, as
/// members: that must give a tenant neither another's database nor the template's.
#[tokio::test]
async fn tenants_copied_from_the_template_cannot_reach_each_other_nor_the_template() {
    let Some(env) = TestEnv::new(Backend::Postgres) else { return };
    let tenancy = open_provisioning(&env, tenancy_core::config::Provision::Template).await;
    let (a, b) = (create(&tenancy, "A").await, create(&tenancy, "B").await);
    let template = tenancy.config().naming().template_name(tenancy.migration_fingerprint().await, false);
    // Taken over by membership, not by changing owners: the copy's tables are the template role's.
    let membership = format!("SELECT pg_has_role(current_user, '{template}', 'USAGE')::text");
    let (owner, member) = tenancy
        .run(&a, |ctx| async move {
            let owner = attempt(ctx.db(), "SELECT tableowner::text FROM pg_tables WHERE tablename = 'accounts'").await.unwrap();
            let member = attempt(ctx.db(), &membership).await.unwrap();
            (owner, member)
        })
        .await
        .unwrap();
    assert_eq!(owner.as_deref(), Some(template.as_str()), "the copy's tables changed owner");
    assert_eq!(member.as_deref(), Some("true"), "a's role is not a member of the template's role");
    let mut list = attacks(Backend::Postgres);
    list.extend([
        ("act as the template's role on b", "SET ROLE \"{template}\"; SELECT count(*) FROM \"{b}\".public.accounts", Outcome::Refused),
        ("give itself the template", "SET ROLE \"{template}\"; ALTER DATABASE \"{template}\" OWNER TO CURRENT_USER", Outcome::Refused),
        ("give the template's role on", "GRANT \"{template}\" TO PUBLIC", Outcome::Refused),
        ("drop b's database", "SET ROLE \"{template}\"; DROP DATABASE \"{b}\"", Outcome::Refused),
    ]);
    let list = list.into_iter().map(|(name, sql, outcome)| (name, sql.replace("{template}", template.as_str()), outcome)).collect();
    eprintln!("template copies: {}", attack(&env, &tenancy, &a, &b, list).await);
    // Nor can a's role connect to the template.
    assert!(connect_as(&tenancy, &a, template.as_str()).await.is_err(), "a's role connected to the template");
    // Its own migrations may still change the tables the template made.
    tenancy
        .run(&a, |ctx| async move { execute(ctx.db(), "ALTER TABLE accounts ADD COLUMN nickname varchar(40)").await })
        .await
        .unwrap()
        .unwrap();
    tenancy.close().await;
}

/// A database of the pool comes with a role of its own holding what is in it: the tenant that
/// takes it gets that role, renamed, so nothing in it needs a new owner.
#[tokio::test]
async fn a_database_from_the_pool_comes_with_its_own_role_renamed_for_its_tenant() {
    let Some(env) = TestEnv::new(Backend::Postgres) else { return };
    let tenancy = open_provisioning(&env, tenancy_core::config::Provision::Pool).await;
    tenancy.fill_pool(3, &|_, _| {}).await.unwrap();
    assert_eq!(env.roles().await.len(), 3, "a role per database of the pool");
    let (a, b) = (create(&tenancy, "A").await, create(&tenancy, "B").await);
    let mut roles = env.roles().await;
    roles.sort();
    let mut expected = vec![a.database.to_string(), b.database.to_string()];
    // The one left in the pool keeps its own, and no tenant's role may connect to it meanwhile.
    let left: Vec<String> = roles.iter().filter(|role| !expected.contains(role)).cloned().collect();
    assert_eq!(left.len(), 1, "{roles:?}");
    let refused = connect_as(&tenancy, &a, &left[0]).await.expect_err("a's role connected to a database of the pool");
    assert!(refused.contains("permission denied"), "{refused}");
    roles.retain(|role| expected.contains(role));
    expected.sort();
    assert_eq!(roles, expected, "the tenants' roles are the pool's, renamed");
    assert_eq!(accounts_owner(&tenancy, &a).await, a.database.as_str(), "a's tables are its role's");
    eprintln!("pool databases: {}", attack(&env, &tenancy, &a, &b, attacks(Backend::Postgres)).await);
    tenancy
        .run(&a, |ctx| async move { execute(ctx.db(), "ALTER TABLE accounts ADD COLUMN nickname varchar(40)").await })
        .await
        .unwrap()
        .unwrap();
    // Draining the pool takes the roles of its databases with them.
    assert_eq!(tenancy.drain_pool().await.unwrap(), 1);
    assert_eq!(env.roles().await.len(), 2, "the drained database's role is left");
    tenancy.close().await;
}

/// A database of the pool filled while tenants shared the server's user has no role of its own:
/// after the switch to roles it is stale, never handed out, and the next fill replaces it.
#[tokio::test]
async fn a_pool_filled_before_the_switch_to_roles_is_stale_and_never_handed_out() {
    let Some(env) = TestEnv::new(Backend::Postgres) else { return };
    env.use_shared_roles();
    let shared = open_provisioning(&env, tenancy_core::config::Provision::Pool).await;
    shared.fill_pool(2, &|_, _| {}).await.unwrap();
    assert!(env.roles().await.is_empty(), "a pool without roles made one: {:?}", env.roles().await);
    shared.close().await;
    let path = env.dir().join("tenancy.toml");
    std::fs::write(&path, std::fs::read_to_string(&path).unwrap().replace("roles = \"shared\"", "roles = \"per_tenant\"")).unwrap();
    let tenancy = open_provisioning(&env, tenancy_core::config::Provision::Pool).await;
    let status = tenancy.pool_status().await.unwrap();
    assert_eq!((status.ready, status.stale), (0, 2));
    // Its tables are the server user's: a signup copies the template instead.
    let a = create(&tenancy, "A").await;
    assert_eq!(tenancy.pool_status().await.unwrap().stale, 2, "a was made from the stale pool");
    let who = tenancy.run(&a, |ctx| async move { attempt(ctx.db(), "SELECT current_user::text").await }).await.unwrap().unwrap();
    assert_eq!(who.as_deref(), Some(a.database.as_str()));
    let fill = tenancy.fill_pool(1, &|_, _| {}).await.unwrap();
    assert_eq!((fill.dropped, fill.made), (2, 1), "the next fill replaces the stale ones");
    let b = create(&tenancy, "B").await;
    assert_eq!(tenancy.pool_status().await.unwrap().ready, 0, "b took the new one");
    assert_eq!(accounts_owner(&tenancy, &b).await, b.database.as_str(), "b's tables are its role's");
    tenancy.close().await;
}

/// Takes the role name of the tenant being made before its database is: a role a crash left,
/// say. Taking a database from the pool then fails at renaming the pool's role.
struct SquatTheRole;

#[async_trait::async_trait]
impl ProvisioningStep for SquatTheRole {
    fn name(&self) -> &str {
        "squat the role"
    }

    async fn run(&self, job: &mut Provisioning<'_>) -> Result<StepOutcome, BoxError> {
        let admin = format!("postgres://postgres@{POSTGRES_ADDR}/postgres");
        admin_execute(&admin, &format!("CREATE ROLE \"{}\" NOLOGIN", job.database)).await;
        Ok(StepOutcome::Done("squatted".into()))
    }
}

/// A database of the pool is taken and given to the tenant's role in one transaction: when the
/// role part fails, the rename is undone with it, and the database is back in the pool, held by
/// its own role, for the next signup.
#[tokio::test]
async fn a_pool_database_that_cannot_be_given_to_its_tenant_stays_in_the_pool_as_it_was() {
    let Some(env) = TestEnv::new(Backend::Postgres) else { return };
    let tenancy = open_provisioning(&env, tenancy_core::config::Provision::Pool).await;
    tenancy.fill_pool(1, &|_, _| {}).await.unwrap();
    let pooled = env.roles().await;
    let mut provisioner = tenancy.provisioner();
    provisioner.insert_after("register", std::sync::Arc::new(SquatTheRole));
    let request = TenantRequest::new(TenantName::parse("A").unwrap());
    let err = provisioner.provision(&tenancy, &request, &()).await.expect_err("the role's name is taken");
    assert_eq!(err.step, "create database");
    let reason = tenancy_core::migrate::fleet::error_chain(&err);
    assert!(reason.contains("already exists"), "{reason}");
    assert!(tenancy.registry().list(None).await.unwrap().is_empty(), "the tenant was never made");
    assert_eq!(tenancy.pool_status().await.unwrap().ready, 1, "the database is back in the pool");
    let squatter: Vec<String> = env.roles().await.into_iter().filter(|role| !pooled.contains(role)).collect();
    assert_eq!(squatter.len(), 1, "the pool's role is there as it was, beside the squatter: {:?}", env.roles().await);
    env.execute_on_server(&format!("DROP ROLE \"{}\"", squatter[0])).await;
    // The next signup takes it, with its role and the tables that role holds.
    let a = create(&tenancy, "A").await;
    assert_eq!(tenancy.pool_status().await.unwrap().ready, 0, "a took the pool's database");
    assert_eq!(env.roles().await, vec![a.database.to_string()]);
    assert_eq!(accounts_owner(&tenancy, &a).await, a.database.as_str(), "a's tables are its role's");
    tenancy.close().await;
}

/// Connects with `tenant`'s own login to the PostgreSQL database `database`; the server's
/// refusal if it refuses.
async fn connect_as(tenancy: &Tenancy, tenant: &Tenant, database: &str) -> Result<(), String> {
    let login = tenancy.login_of(tenant).unwrap().unwrap();
    let url = format!("postgres://{}:{}@{POSTGRES_ADDR}/{database}", login.role, login.password());
    let db = sea_orm::Database::connect(&url).await.map_err(|err| err.to_string())?;
    db.close().await.ok();
    Ok(())
}

/// Who owns `tenant`'s `accounts` table, as its own role sees it.
async fn accounts_owner(tenancy: &Tenancy, tenant: &Tenant) -> String {
    let sql = "SELECT tableowner::text FROM pg_tables WHERE tablename = 'accounts'";
    tenancy.run(tenant, |ctx| async move { attempt(ctx.db(), sql).await }).await.unwrap().unwrap().expect("an accounts table")
}

/// The sample application, making tenants' databases the way `provision` says.
async fn open_provisioning(env: &TestEnv, provision: tenancy_core::config::Provision) -> Tenancy {
    env.create_central_database().await;
    let mut config = env.config();
    config.tenant_database.provision = provision;
    Tenancy::builder(config)
        .tenant_migrator(std::sync::Arc::new(tenancy_core::migrate::SeaOrmMigrator::<migration::Migrator>::default()))
        .open()
        .await
        .unwrap()
}

/// Runs each of `attacks` in `a`'s context against `b` and checks the server's answer; then that
/// `a`'s login cannot reach `b`'s database, and that `b`'s data is as it was.
async fn attack<S: AsRef<str>>(
    env: &TestEnv,
    tenancy: &Tenancy,
    a: &Tenant,
    b: &Tenant,
    attacks: Vec<(&'static str, S, Outcome)>,
) -> String {
    let backend = env.backend;
    tenancy
        .run(b, |ctx| async move { execute(ctx.db(), "INSERT INTO accounts (name, email) VALUES ('Bea', 'bea@b.test')").await })
        .await
        .unwrap()
        .unwrap();
    let central = env.central_database();
    let mut report = Vec::new();
    for (name, sql, expected) in attacks {
        let sql = sql.as_ref().replace("{b}", b.database.as_str()).replace("{a}", a.database.as_str()).replace("{central}", &central);
        let got = tenancy
            .run(a, |ctx| async move {
                // Several statements go as one simple query, as an injected `; …` would.
                if sql.contains(';') { execute(ctx.db(), &sql).await.map(|()| Some("done".into())) } else { attempt(ctx.db(), &sql).await }
            })
            .await
            .unwrap();
        let outcome = match &got {
            Err(_) => Outcome::Refused,
            Ok(None) => Outcome::Nothing,
            Ok(Some(value)) => panic!("{}: `{name}` got through and answered {value}", backend.name()),
        };
        assert_eq!(outcome, expected, "{}: `{name}` answered {got:?}", backend.name());
        report.push(format!("{name}: {}", got.err().map_or("nothing".into(), |err| first_line(&err))));
    }
    // Reconnecting with a's login to b's database (database isolation), as a's code could.
    if backend != Backend::PostgresSchema {
        let login = tenancy.login_of(a).unwrap().unwrap();
        let url = match backend {
            Backend::MySql => format!("mysql://{}:{}@{}/{}", login.role, login.password(), tenancy_tests::MYSQL_ADDR, b.database),
            _ => format!("postgres://{}:{}@{POSTGRES_ADDR}/{}", login.role, login.password(), b.database),
        };
        let refused = sea_orm::Database::connect(&url).await.err().map(|err| err.to_string());
        assert!(refused.is_some(), "{}: a's role connected to b's database", backend.name());
        report.push(format!("connect to b's database as a: {}", first_line(&refused.unwrap())));
    }
    let rows = tenancy.run(b, |ctx| async move { attempt(ctx.db(), "SELECT CAST(COUNT(*) AS CHAR) FROM accounts").await }).await.unwrap();
    assert_eq!(rows.unwrap().as_deref(), Some("1"), "{}: b's data changed", backend.name());
    format!("{} attacks from tenant a on tenant b, all refused:\n  {}", backend.name(), report.join("\n  "))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().chars().take(160).collect()
}

#[tokio::test]
async fn a_role_is_made_with_its_tenant_and_dropped_with_it_even_mid_connection() {
    for backend in SERVERS {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = env.open_sample().await;
        let tenant = create(&tenancy, "Acme").await;
        let admin = admin_url(backend);
        assert_eq!(tenant_roles(backend, &admin, &env.prefix).await, vec![tenant.database.to_string()], "{}", backend.name());
        // The tenant's code holds a connection of its own when the tenant is deleted.
        let target = tenancy.manager_of(&tenant).unwrap().connection_target(&tenant.database, tenancy.login_of(&tenant).unwrap().as_ref());
        let held = sea_orm::Database::connect(target.database_url()).await.unwrap();
        assert!(attempt(&held, "SELECT CAST(COUNT(*) AS CHAR) FROM accounts").await.is_ok(), "{}", backend.name());
        tokio::time::timeout(Duration::from_secs(60), tenancy.delete_tenant(&tenant, DeleteOptions::default())).await.unwrap().unwrap();
        assert!(tenant_roles(backend, &admin, &env.prefix).await.is_empty(), "{}: the role outlived its tenant", backend.name());
        assert!(
            attempt(&held, "SELECT CAST(COUNT(*) AS CHAR) FROM accounts").await.is_err(),
            "{}: the held session lived on",
            backend.name()
        );
        assert!(sea_orm::Database::connect(target.database_url()).await.is_err(), "{}: the deleted role connected", backend.name());
        let _ = held.close().await;
        tenancy.close().await;
    }
}

fn admin_url(backend: Backend) -> String {
    match backend {
        Backend::MySql => format!("mysql://root@{}/mysql", tenancy_tests::MYSQL_ADDR),
        _ => format!("postgres://postgres@{POSTGRES_ADDR}/postgres"),
    }
}

#[tokio::test]
async fn a_rotated_password_replaces_the_old_one_which_the_server_then_refuses() {
    // The second PostgreSQL cluster checks tenant roles' passwords (the main one trusts every
    // local login), so a PostgreSQL tenant goes there; MariaDB checks them.
    for backend in SERVERS {
        let Some(mut env) = TestEnv::new(backend) else { continue };
        let mut request = TenantRequest::new(TenantName::parse("Acme").unwrap());
        if backend != Backend::MySql {
            if env.add_postgres_servers(["", "", ""], "least_tenants").await.is_none() {
                continue;
            }
            request.server = Some("second".into());
        }
        let tenancy = env.open_sample().await;
        let tenant = tenancy.create_tenant(&request, &()).await.unwrap();
        let old = tenancy.manager_of(&tenant).unwrap().connection_target(&tenant.database, tenancy.login_of(&tenant).unwrap().as_ref());
        let wrong = old.database_url().replace(tenancy.login_of(&tenant).unwrap().unwrap().password(), &"0".repeat(64));
        assert!(sea_orm::Database::connect(&wrong).await.is_err(), "{}: a wrong password was let in", backend.name());
        let held = sea_orm::Database::connect(old.database_url()).await.unwrap();

        let rotated = tenancy.rotate_credentials(&tenant).await.unwrap();
        assert_eq!(rotated.credentials_generation, 1);
        assert!(sea_orm::Database::connect(old.database_url()).await.is_err(), "{}: the old password still works", backend.name());
        assert!(attempt(&held, "SELECT 'still here'").await.is_ok(), "{}: an open session was cut by the rotation", backend.name());
        let count = tenancy.run(&rotated, |ctx| async move { attempt(ctx.db(), "SELECT CAST(COUNT(*) AS CHAR) FROM accounts").await });
        assert_eq!(
            count.await.unwrap().unwrap().as_deref(),
            Some("0"),
            "{}: the tenant's pool did not take the new password",
            backend.name()
        );
        let _ = held.close().await;
        tenancy.close().await;
    }
}

#[tokio::test]
async fn tenants_made_before_roles_get_them_with_secure_and_keep_working() {
    for backend in SERVERS {
        let Some(env) = TestEnv::new(backend) else { continue };
        env.use_shared_roles();
        let shared = env.open_sample().await;
        let tenant = create(&shared, "Old").await;
        shared
            .run(&tenant, |ctx| async move { execute(ctx.db(), "INSERT INTO accounts (name, email) VALUES ('Ola', 'ola@old.test')").await })
            .await
            .unwrap()
            .unwrap();
        assert!(tenant_roles(backend, &admin_url(backend), &env.prefix).await.is_empty(), "{}: shared roles made one", backend.name());
        // Made before the switch, so that no tenant is ever without its role; twice, as a rerun.
        for _ in 0..2 {
            shared.secure_tenant(&tenant).await.unwrap();
        }
        shared.close().await;

        let path = env.dir().join("tenancy.toml");
        let toml = std::fs::read_to_string(&path).unwrap().replace("roles = \"shared\"", "roles = \"per_tenant\"");
        std::fs::write(&path, toml).unwrap();
        let tenancy = env.open_sample().await;
        let tenant = tenancy.registry().require(&tenant.id).await.unwrap();
        let (who, rows) = tenancy
            .run(&tenant, |ctx| async move {
                // A table the server's user made, now the role's: written, altered, read.
                execute(ctx.db(), "INSERT INTO accounts (name, email) VALUES ('Ines', 'ines@old.test')").await.unwrap();
                execute(ctx.db(), "ALTER TABLE accounts ADD COLUMN nickname VARCHAR(40)").await.unwrap();
                let who = match ctx.db().get_database_backend() {
                    DbBackend::MySql => attempt(ctx.db(), "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)").await,
                    _ => attempt(ctx.db(), "SELECT current_user::text").await,
                };
                (who.unwrap(), attempt(ctx.db(), "SELECT CAST(COUNT(*) AS CHAR) FROM accounts").await.unwrap())
            })
            .await
            .unwrap();
        assert_eq!(who.as_deref(), Some(tenant.database.as_str()), "{}: not logged in as the tenant's role", backend.name());
        assert_eq!(rows.as_deref(), Some("2"), "{}", backend.name());
        tenancy.close().await;
    }
}

#[tokio::test]
async fn what_tenant_code_sets_on_a_connection_never_reaches_the_next_lease() {
    for backend in SERVERS {
        let Some(env) = TestEnv::new(backend) else { continue };
        let tenancy = env.open_sample().await;
        let tenant = create(&tenancy, "Acme").await;
        let (seen, sessions) = tenancy
            .run_with_one_connection(&tenant, |ctx| async move {
                let db = ctx.db();
                // Each statement leases the one connection and gives it back; each probe, run
                // right after what it looks for was left, sees the connection it was left on,
                // unless that one had to be closed (a transaction left open).
                let left = match db.get_database_backend() {
                    DbBackend::MySql => vec![
                        ("SET @secret = 'a tenant''s'", "SELECT @secret"),
                        ("SET SESSION sql_mode = ''", "SELECT IF(@@session.sql_mode = '', 'changed', NULL)"),
                        ("START TRANSACTION", "SELECT IF(@@in_transaction = 1, 'in a transaction', NULL)"),
                    ],
                    _ => vec![
                        ("SET search_path = public", "SELECT CASE WHEN current_setting('search_path') = 'public' THEN 'changed' END"),
                        ("SET statement_timeout = 1", "SELECT CASE WHEN current_setting('statement_timeout') = '1ms' THEN 'changed' END"),
                        (
                            "SELECT pg_advisory_lock(42)",
                            "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) \
                             THEN 'an advisory lock held' END",
                        ),
                        ("LISTEN tenancy_probe", "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_listening_channels()) THEN 'listening' END"),
                        // A savepoint is refused outside a transaction block.
                        ("BEGIN", "SAVEPOINT probe"),
                    ],
                };
                let session = match db.get_database_backend() {
                    DbBackend::MySql => "SELECT CAST(CONNECTION_ID() AS CHAR)",
                    _ => "SELECT pg_backend_pid()::text",
                };
                let (mut seen, mut sessions) = (Vec::new(), Vec::new());
                for (sql, probe) in &left {
                    execute(db, sql).await.unwrap();
                    seen.push(match probe.strip_prefix("SAVEPOINT") {
                        Some(_) => execute(db, probe).await.ok().map(|()| "in a transaction".to_owned()),
                        None => attempt(db, probe).await.unwrap(),
                    });
                    sessions.push(attempt(db, session).await.unwrap());
                }
                (seen, sessions)
            })
            .await
            .unwrap();
        let name = backend.name();
        assert!(seen.iter().all(Option::is_none), "{name}: a lease after tenant code saw {seen:?}");
        // PostgreSQL resets the connection, so the probes above looked at the very session tenant
        // code changed; only the one left in a transaction is closed. MySQL has no reset: a
        // connection whose session changed is closed instead.
        if backend != Backend::MySql {
            let kept = &sessions[..sessions.len() - 1];
            assert!(kept.iter().all(|s| s == &kept[0]), "{name}: the connection was replaced, not reset: {sessions:?}");
        }
        tenancy.close().await;
    }
}

#[tokio::test]
async fn a_server_user_that_may_not_create_roles_is_told_apart() {
    for backend in [Backend::Postgres, Backend::MySql] {
        let Some(env) = TestEnv::new(backend) else { continue };
        let admin = admin_url(backend);
        let limited = format!("{}limited", env.prefix);
        let (make, url) = match backend {
            Backend::MySql => (
                format!("CREATE USER '{limited}'@'%' IDENTIFIED BY 'limited-pw'"),
                format!("mysql://{limited}:limited-pw@{}/information_schema", tenancy_tests::MYSQL_ADDR),
            ),
            _ => (format!("CREATE ROLE \"{limited}\" LOGIN CREATEDB"), format!("postgres://{limited}@{POSTGRES_ADDR}/postgres")),
        };
        tenancy_tests::admin_execute(&admin, &make).await;
        let mut config = env.config();
        config.tenant_database.servers.get_mut("default").unwrap().url = url.as_str().into();
        let manager = tenancy_core::database::manager_for(&config, "default").unwrap();
        assert!(!manager.may_create_roles().await.unwrap(), "{}: a user without the right was said to have it", backend.name());
        let root = tenancy_core::database::manager_for(&env.config(), "default").unwrap();
        assert!(root.may_create_roles().await.unwrap(), "{}: the server's admin was said to lack the right", backend.name());
    }
}

#[tokio::test]
async fn a_migration_that_needs_more_than_its_tenant_fails_clearly_and_leaves_nothing() {
    use std::sync::Arc;
    use tenancy_core::migrate::SeaOrmMigrator;
    for backend in SERVERS {
        let Some(env) = TestEnv::new(backend) else { continue };
        env.create_central_database().await;
        let tenancy = Tenancy::builder(env.config())
            .tenant_migrator(Arc::new(SeaOrmMigrator::<tenancy_tests::migrators::OverreachingMigrator>::default()))
            .open()
            .await
            .unwrap();
        let err = tenancy.create_tenant(&TenantRequest::new(TenantName::parse("Greedy").unwrap()), &()).await.unwrap_err();
        let said = format!("{:?}", err.source);
        assert_eq!(err.step, "migrate", "{}", backend.name());
        assert!(said.contains("run as the tenant's own role"), "{}: {said}", backend.name());
        assert!(tenancy.registry().list(None).await.unwrap().is_empty(), "{}", backend.name());
        assert!(env.tenant_databases().await.is_empty() && env.roles().await.is_empty(), "{}: left behind", backend.name());
        tenancy.close().await;
    }
}
