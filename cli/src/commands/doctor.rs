//! `tenancy doctor`: is everything `tenancy` needs there and working? A line per check: the
//! configuration, the registry, each database server, Redis when it is used, each plugin, and the
//! tenants' migrations. Exits with 1 if any check fails; warnings (pending migrations, a shadowed
//! plugin command) do not fail it.

use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use serde::Serialize;
use tenancy_core::config::{CacheStoreKind, SessionStoreKind};
use tenancy_core::database::manager_for;
use tenancy_core::maintenance::MaintenanceOrigin;
use tenancy_core::{Config, Tenancy, Tenant};

use crate::CliContext;
use crate::commands::Invocation;
use crate::commands::selection::ConcurrencyArg;
use crate::exit::ExitStatus;
use crate::extensions::Kind;
use crate::output::{Output, format_duration};

/// How long a check of a server may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `tenancy doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub concurrency: ConcurrencyArg,
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Ok,
    Warn,
    Fail,
    Skip,
}

/// One line of the report.
#[derive(Debug, Serialize)]
struct Check {
    check: String,
    status: Verdict,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    millis: Option<u128>,
}

/// Prints each check as it ends, and remembers whether any failed.
struct Report<'a> {
    out: &'a Output,
    failed: bool,
}

impl Report<'_> {
    fn add(&mut self, check: impl Into<String>, status: Verdict, detail: impl Into<String>, took: Option<Duration>) {
        let check = Check { check: check.into(), status, detail: detail.into(), millis: took.map(|t| t.as_millis()) };
        self.failed |= status == Verdict::Fail;
        if self.out.is_json() {
            self.out.json(&check);
            return;
        }
        let mark = match status {
            Verdict::Ok => self.out.green("ok  "),
            Verdict::Warn => "warn".to_owned(),
            Verdict::Fail => self.out.red("FAIL"),
            Verdict::Skip => self.out.dim("skip"),
        };
        let took = took.map(|t| self.out.dim(&format!("  {}", format_duration(t)))).unwrap_or_default();
        self.out.data(format!("{mark}  {:<22} {}{took}", check.check, check.detail));
    }

    /// Records the outcome of `work`, timed.
    fn timed<T>(&mut self, check: &str, started: Instant, result: anyhow::Result<T>, ok: impl FnOnce(T) -> String) {
        let took = Some(started.elapsed());
        match result {
            Ok(value) => self.add(check, Verdict::Ok, ok(value), took),
            Err(err) => self.add(check, Verdict::Fail, chain(err.as_ref()), took),
        }
    }
}

pub async fn run(args: &DoctorArgs, invocation: Invocation<'_>) -> anyhow::Result<ExitStatus> {
    let out = invocation.out;
    let extensions = invocation.extensions;
    let mut report = Report { out, failed: false };

    match &invocation.config {
        Ok(config) => {
            let source = config.file.as_ref().map_or_else(|| "defaults (no tenancy.toml)".to_owned(), |f| format!("`{}`", f.display()));
            report.add("configuration", Verdict::Ok, source, None);
            check_servers(config, &mut report).await;
            check_registry_and_tenants(args, invocation.context()?, &mut report).await;
        }
        Err(err) => {
            report.add("configuration", Verdict::Fail, chain(err), None);
            report.add("registry", Verdict::Skip, "the configuration is needed first", None);
        }
    }
    check_plugins(extensions, &mut report);
    Ok(if report.failed { ExitStatus::Failure } else { ExitStatus::Success })
}

/// Each server on its own, without the registry: a registry on a server that is down should not
/// hide whether the tenant servers are up.
async fn check_servers(config: &Config, report: &mut Report<'_>) {
    for name in config.server_names() {
        let check = format!("server `{name}`");
        let started = Instant::now();
        let manager = match manager_for(config, &name) {
            Ok(manager) => manager,
            Err(err) => {
                report.add(check, Verdict::Fail, chain(&err), None);
                continue;
            }
        };
        let result = within_timeout(manager.ping()).await;
        report.timed(&check, started, result, |()| format!("{} reachable", manager.driver()));
    }
}

/// The registry, then what needs it: Redis (per-tenant databases are assigned there) and every
/// tenant's migrations.
async fn check_registry_and_tenants(args: &DoctorArgs, ctx: CliContext<'_>, report: &mut Report<'_>) {
    let started = Instant::now();
    let tenancy = match ctx.open_tenancy().await {
        Ok(tenancy) => tenancy,
        Err(err) => {
            report.add("registry", Verdict::Fail, chain(err.as_ref()), Some(started.elapsed()));
            report.add("redis", Verdict::Skip, "the registry is needed first", None);
            report.add("migrations", Verdict::Skip, "the registry is needed first", None);
            return;
        }
    };
    let tenants = tenancy.registry().list(None).await;
    match &tenants {
        Ok(tenants) => {
            let detail = format!("`{}`, {}", tenancy.registry().location(), tenant_count(tenants.len()));
            report.add("registry", Verdict::Ok, detail, Some(started.elapsed()));
        }
        Err(err) => report.add("registry", Verdict::Fail, chain(err), Some(started.elapsed())),
    }
    if let Ok(tenants) = &tenants {
        check_maintenance(tenants, report);
    }
    check_placement(&tenancy, report).await;
    if tenancy.config().tenant_database.provision == tenancy_core::config::Provision::Pool {
        check_pool(&tenancy, report).await;
    }
    if let Ok(tenants) = &tenants {
        check_roles(&tenancy, tenants, report).await;
    }
    check_redis(&tenancy, report).await;
    match &tenants {
        Ok(tenants) => check_migrations(&tenancy, tenants, args.concurrency.get(&tenancy), report).await,
        Err(_) => report.add("migrations", Verdict::Skip, "the registry cannot be read", None),
    }
    tenancy.close().await;
}

/// Tenants down for maintenance: a warning, so that one left down (by an interrupted
/// `db migrate --down-during`, or forgotten) is noticed.
fn check_maintenance(tenants: &[Tenant], report: &mut Report<'_>) {
    let down: Vec<String> = tenants
        .iter()
        .filter_map(|tenant| {
            let maintenance = tenant.maintenance.as_ref()?;
            let since = maintenance.since.format("%Y-%m-%d %H:%M UTC");
            Some(match maintenance.origin {
                MaintenanceOrigin::Operator => format!("{tenant} since {since}"),
                MaintenanceOrigin::Move => {
                    format!("{tenant} since {since}, by a `tenant move` that did not finish (run it again, or `--abort` it)")
                }
                MaintenanceOrigin::Migration => {
                    format!(
                        "{tenant} since {since}, by a `db migrate --down-during` that did not finish (run it again, or `tenancy tenant up`)"
                    )
                }
            })
        })
        .collect();
    if down.is_empty() {
        report.add("maintenance", Verdict::Ok, "no tenant is down", None);
    } else {
        report.add("maintenance", Verdict::Warn, format!("{} down: {}", tenant_count(down.len()), down.join("; ")), None);
    }
}

/// Tenant roles, on servers: with `per_tenant`, the role key and each server user's right to make
/// roles (failures: every signup would fail), and tenants without a role yet (a warning: they
/// cannot connect); with `shared`, a warning that tenants can reach each other's data.
async fn check_roles(tenancy: &Tenancy, tenants: &[Tenant], report: &mut Report<'_>) {
    let config = tenancy.config();
    if config.tenant_database.driver == tenancy_core::database::Driver::Sqlite {
        return;
    }
    if !config.per_tenant_roles() {
        let detail = "tenants log in as the server's user, so SQL run in one can reach another's data: `tenancy tenant secure --all`, then `tenant_database.roles = \"per_tenant\"`";
        return report.add("roles", Verdict::Warn, detail, None);
    }
    let started = Instant::now();
    if let Err(err) = tenancy.check_role_key() {
        return report.add("roles", Verdict::Fail, chain(&err), Some(started.elapsed()));
    }
    for (name, manager) in tenancy.managers() {
        match within_timeout(manager.may_create_roles()).await {
            Ok(true) => {}
            Ok(false) => {
                let detail = format!("the user of server `{name}` may not create roles: {}", super::init::grant_hint(manager.driver()));
                return report.add("roles", Verdict::Fail, detail, Some(started.elapsed()));
            }
            Err(err) => return report.add("roles", Verdict::Fail, chain(err.as_ref()), Some(started.elapsed())),
        }
    }
    let mut missing = 0;
    for tenant in tenants.iter().filter(|tenant| tenant.status != tenancy_core::TenantStatus::Creating) {
        let exists = match tenancy.manager_of(tenant) {
            Ok(manager) => within_timeout(manager.role_exists(&tenant.database)).await,
            Err(err) => Err(err.into()),
        };
        match exists {
            Ok(true) => {}
            Ok(false) => missing += 1,
            Err(err) => return report.add("roles", Verdict::Fail, chain(err.as_ref()), Some(started.elapsed())),
        }
    }
    if missing > 0 {
        let detail = format!("{} without a role of its own cannot connect: `tenancy tenant secure --all`", tenant_count(missing));
        report.add("roles", Verdict::Warn, detail, Some(started.elapsed()));
    } else {
        report.add("roles", Verdict::Ok, "a role per tenant; the server users may make them", Some(started.elapsed()));
    }
}

/// Where new tenants can go: a failure when no server takes them (every signup would fail), a
/// warning for tenants recorded on a server no longer configured (they cannot be reached).
async fn check_placement(tenancy: &Tenancy, report: &mut Report<'_>) {
    let loads = match tenancy.server_loads(false).await {
        Ok(loads) => loads,
        Err(err) => return report.add("placement", Verdict::Fail, chain(&err), None),
    };
    let states =
        loads.iter().map(|load| format!("{} {} ({})", load.name, load.state, tenant_count(load.tenants as usize))).collect::<Vec<_>>();
    let unconfigured = match tenancy.registry().tenants_per_server().await {
        Ok(counts) => counts.into_iter().filter(|(name, _)| !loads.iter().any(|load| &load.name == name)).collect::<Vec<_>>(),
        Err(err) => return report.add("placement", Verdict::Fail, chain(&err), None),
    };
    if !loads.iter().any(|load| load.state.takes_new_tenants()) {
        let detail =
            format!("no server takes new tenants, so `tenant create` fails: {}; `tenancy server activate NAME`", states.join(", "));
        report.add("placement", Verdict::Fail, detail, None);
    } else if !unconfigured.is_empty() {
        let lost = unconfigured.iter().map(|(name, count)| format!("{} on `{name}`", tenant_count(*count as usize))).collect::<Vec<_>>();
        report.add("placement", Verdict::Warn, format!("{} (not in `tenant_database.servers`: unreachable)", lost.join(", ")), None);
    } else {
        report.add("placement", Verdict::Ok, format!("{}, by {}", states.join(", "), tenancy.config().tenant_database.placement), None);
    }
}

/// The pool of ready databases (`provision = "pool"`): a warning when it is empty (signups are
/// then made the slow way) or holds databases of older migrations.
async fn check_pool(tenancy: &Tenancy, report: &mut Report<'_>) {
    let started = Instant::now();
    match within_timeout(tenancy.pool_status()).await {
        Ok(status) if status.ready == 0 => report.add(
            "pool",
            Verdict::Warn,
            "no ready database: signups are made the slow way until `tenancy tenant pool --fill N`",
            Some(started.elapsed()),
        ),
        Ok(status) if status.stale + status.filling > 0 => report.add(
            "pool",
            Verdict::Warn,
            format!(
                "{} ready; {} of older migrations and {} half-made, dropped by the next `tenancy tenant pool --fill N`",
                status.ready, status.stale, status.filling
            ),
            Some(started.elapsed()),
        ),
        Ok(status) => report.add("pool", Verdict::Ok, format!("{} ready", status.ready), Some(started.elapsed())),
        Err(err) => report.add("pool", Verdict::Fail, chain(err.as_ref()), Some(started.elapsed())),
    }
}

async fn check_redis(tenancy: &Tenancy, report: &mut Report<'_>) {
    let config = tenancy.config();
    let used =
        config.cache.store == CacheStoreKind::Redis || config.session.store == SessionStoreKind::Redis || config.redis.per_tenant_database;
    if !used {
        let detail = match config.cache.store {
            CacheStoreKind::Memory => "not used (the cache lives in each process's memory, sessions in tenant databases)",
            _ => "not used (cache and sessions live in tenant databases)",
        };
        report.add("redis", Verdict::Skip, detail, None);
        return;
    }
    let started = Instant::now();
    let result = within_timeout(tenancy.caches().ping_redis()).await;
    report.timed("redis", started, result, |()| "answers PING".to_owned());
}

async fn check_migrations(tenancy: &Tenancy, tenants: &[Tenant], concurrency: usize, report: &mut Report<'_>) {
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(tenants)
        .map(|tenant| async move { (tenant, tenancy.migration_status(tenant).await) })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let (mut pending, mut failed, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
    for (tenant, result) in results {
        match result {
            Ok(status) if status.last_failure.is_some() => failed.push(tenant.to_string()),
            Ok(status) if status.status.pending() > 0 => pending.push(tenant.to_string()),
            Ok(_) => {}
            Err(err) => unreadable.push(format!("{tenant}: {}", chain(&err))),
        }
    }
    let took = Some(started.elapsed());
    if !failed.is_empty() || !unreadable.is_empty() {
        let mut problems: Vec<String> =
            failed.iter().map(|t| format!("{t}: a migration failed (see `tenancy db status --tenant …`)")).collect();
        problems.extend(unreadable);
        report.add("migrations", Verdict::Fail, format!("{} of {} tenants: {}", problems.len(), tenants.len(), problems.join("; ")), took);
    } else if !pending.is_empty() {
        report.add(
            "migrations",
            Verdict::Warn,
            format!(
                "{} of {} tenants have pending migrations ({}); run `tenancy db migrate --all`",
                pending.len(),
                tenants.len(),
                sample(&pending)
            ),
            took,
        );
    } else {
        report.add(
            "migrations",
            Verdict::Ok,
            match tenants.len() {
                0 => "no tenants yet".to_owned(),
                n => format!("{} up to date", tenant_count(n)),
            },
            took,
        );
    }
}

fn check_plugins(extensions: &crate::extensions::Extensions, report: &mut Report<'_>) {
    let plugins: Vec<_> = extensions.plugins().iter().filter(|plugin| plugin.kind != Kind::External).collect();
    if plugins.is_empty() {
        report.add("plugins", Verdict::Ok, "none installed", None);
    }
    for plugin in plugins {
        let check = format!("plugin `{}`", plugin.name);
        let place = plugin.path.as_ref().map_or_else(|| plugin.kind.label().to_owned(), |path| format!("`{}`", path.display()));
        if let Some(error) = &plugin.error {
            report.add(check, Verdict::Fail, error.clone(), None);
        } else if plugin.disabled {
            report.add(check, Verdict::Skip, format!("disabled by `plugins.disabled` ({place})"), None);
        } else if !plugin.shadowed.is_empty() {
            report.add(check, Verdict::Warn, format!("{place}: commands not used: {}", plugin.shadowed.join("; ")), None);
        } else {
            let version = plugin.version.as_deref().unwrap_or("-");
            report.add(check, Verdict::Ok, format!("{version}, {} from {place}", plugin.commands.join(", ")), None);
        }
    }
}

/// A server check that takes longer than [`CHECK_TIMEOUT`] fails.
async fn within_timeout<T, E>(check: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(result) => result.map_err(anyhow::Error::new),
        Err(_) => Err(anyhow::anyhow!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
    }
}

/// `1 tenant`, `3 tenants`.
fn tenant_count(count: usize) -> String {
    if count == 1 { "1 tenant".to_owned() } else { format!("{count} tenants") }
}

/// The first few names of a long list.
fn sample(names: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// An error and its causes on one line.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(err), |err| err.source()).map(ToString::to_string).collect::<Vec<_>>().join(": ")
}
