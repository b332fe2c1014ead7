//! `tenancy server list|drain|activate|read-only`: the database servers tenants are placed on,
//! and whether each takes new tenants.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use tenancy_core::Tenancy;
use tenancy_core::placement::{ServerLoad, ServerState};

use crate::CliContext;
use crate::exit::{ExitStatus, UsageError};
use crate::output::aligned;

/// How long `server list` waits for a server to answer.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// `tenancy server` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// List the servers: state, weight, budget, tenants, and whether each answers
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Stop placing new tenants on a server; its tenants stay and are served
    Drain(NameArgs),
    /// Place new tenants on a server again
    Activate(NameArgs),
    /// Mark a server read-only: no new tenants, and no migrations or seeders run on its tenants
    ReadOnly(NameArgs),
}

/// Arguments of `tenancy server list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Also measure the bytes each server's tenant databases take
    #[arg(long)]
    pub bytes: bool,
}

/// A server, by name.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The server's name in `[tenant_database.servers]`
    pub name: String,
}

pub async fn run(command: ServerCommand, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    match command {
        ServerCommand::List(args) => ctx.with_tenancy(async |tenancy| list(tenancy, args.bytes, ctx).await).await,
        ServerCommand::Drain(args) => set_state(&args.name, ServerState::Draining, ctx).await,
        ServerCommand::Activate(args) => set_state(&args.name, ServerState::Active, ctx).await,
        ServerCommand::ReadOnly(args) => set_state(&args.name, ServerState::ReadOnly, ctx).await,
    }
}

async fn list(tenancy: &Tenancy, bytes: bool, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let loads = tenancy.server_loads(bytes).await?;
    let answers = futures::future::join_all(loads.iter().map(|load| reachable(tenancy, &load.name))).await;
    // Tenants recorded on a server no longer configured: they cannot be served, so say so.
    let configured: Vec<&str> = loads.iter().map(|load| load.name.as_str()).collect();
    let orphans: Vec<(String, u64)> =
        tenancy.registry().tenants_per_server().await?.into_iter().filter(|(name, _)| !configured.contains(&name.as_str())).collect();
    let budgets = tenancy.config().connection_budgets().1;
    if out.is_json() {
        for (load, answer) in loads.iter().zip(&answers) {
            out.json(&json!({"event": "server", "server": load, "connection_budget": budgets.get(&load.name),
                "main": load.name == tenancy.config().tenant_database.server, "reachable": answer.is_ok(), "error": answer.as_ref().err()}));
        }
        for (name, tenants) in &orphans {
            out.json(&json!({"event": "unconfigured_server", "server": name, "tenants": tenants}));
        }
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<Vec<String>> = loads
        .iter()
        .zip(&answers)
        .map(|(load, answer)| row(load, budgets.get(&load.name).copied(), answer, &tenancy.config().tenant_database.server))
        .collect();
    let mut header = vec!["NAME", "STATE", "WEIGHT", "BUDGET", "TENANTS", "ANSWERS"];
    if bytes {
        header.push("BYTES");
    }
    for line in aligned(&header, &rows) {
        out.data(line);
    }
    for (name, tenants) in &orphans {
        out.warn(format!(
            "{tenants} tenant(s) are recorded on server `{name}`, which is not in `tenant_database.servers`: they cannot be reached"
        ));
    }
    Ok(ExitStatus::Success)
}

fn row(load: &ServerLoad, budget: Option<u32>, answer: &Result<(), String>, main: &str) -> Vec<String> {
    let name = if load.name == main { format!("{} (main)", load.name) } else { load.name.clone() };
    let answers = match answer {
        Ok(()) => "yes".to_owned(),
        Err(why) => format!("no: {why}"),
    };
    let budget = budget.map_or_else(|| "shared".to_owned(), |b| b.to_string());
    let mut row = vec![name, load.state.to_string(), load.weight.to_string(), budget, load.tenants.to_string(), answers];
    if let Some(bytes) = load.bytes {
        row.push(crate::output::format_bytes(bytes));
    }
    row
}

async fn reachable(tenancy: &Tenancy, server: &str) -> Result<(), String> {
    let manager = tenancy.manager_on(server).map_err(|err| err.to_string())?;
    match tokio::time::timeout(PING_TIMEOUT, manager.ping()).await {
        Ok(result) => result.map_err(|err| tenancy_core::command::format::error_chain(&err)),
        Err(_) => Err(format!("no answer within {}s", PING_TIMEOUT.as_secs())),
    }
}

async fn set_state(name: &str, state: ServerState, ctx: &CliContext<'_>) -> anyhow::Result<ExitStatus> {
    let out = ctx.out;
    let config = &ctx.config;
    let names = config.server_names();
    if !names.iter().any(|known| known == name) {
        return Err(UsageError::new(
            format!("no server named `{}` in `tenant_database.servers`", name.escape_debug()),
            format!("the configured servers: {}", names.join(", ")),
        )
        .into());
    }
    ctx.with_tenancy(async |tenancy| {
        let before = tenancy.registry().server_state(name).await?;
        tenancy.registry().set_server_state(name, state).await?;
        if out.is_json() {
            out.json(&json!({"event": "server_state", "server": name, "state": state, "was": before}));
        } else if before == state {
            out.status("Unchanged", format!("server `{name}` is {state}"));
        } else {
            let meaning = match state {
                ServerState::Active => "new tenants may be placed on it",
                ServerState::Draining => "no new tenants go there; its tenants are served as before",
                ServerState::ReadOnly => "no new tenants go there, and no migration or seeder runs on its tenants",
            };
            out.status("Set", format!("server `{name}` {before} → {state}: {meaning}"));
        }
        Ok(ExitStatus::Success)
    })
    .await
}
