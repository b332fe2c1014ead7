//! `tenancy cache clear|stats` through the binary: a clear touches only the tenants named.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use common::Cli;

/// Puts `count` entries into the cache of the tenant `reference` names, through the library.
fn fill(cli: &Cli, reference: &str, count: usize) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let tenancy = tenancy_core::Tenancy::builder(cli.env.config()).open().await.unwrap();
        let tenant = tenancy.registry().resolve(reference).await.unwrap();
        tenancy
            .run(&tenant, |ctx| async move {
                for i in 0..count {
                    ctx.cache().unwrap().put(&format!("k{i}"), &"value", None).await.unwrap();
                }
            })
            .await
            .unwrap();
        tenancy.close().await;
    });
}

fn entries(cli: &Cli) -> Vec<(String, u64)> {
    let run = cli.run(&["cache", "stats", "--all", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|v| v["tenant"].is_string())
        .map(|v| (v["name"].as_str().unwrap().to_owned(), v["entries"].as_u64().unwrap()))
        .collect()
}

#[test]
fn clear_empties_only_the_tenants_named_and_stats_count_entries() {
    let cli = Cli::sqlite();
    let a = cli.create("Alpha", &[]);
    cli.create("Beta", &[]);
    fill(&cli, "Alpha", 3);
    fill(&cli, "Beta", 5);
    assert_eq!(entries(&cli), vec![("Alpha".to_owned(), 3), ("Beta".to_owned(), 5)]);
    let human = cli.run(&["cache", "stats", "--all"]);
    assert!(human.stdout.contains("entries        3") && human.stderr.contains("8 entries"), "{}{}", human.stdout, human.stderr);

    let clear = cli.run(&["cache", "clear", "--tenant", &a]);
    assert_eq!(clear.code, 0, "{}", clear.stderr);
    assert!(clear.stderr.contains("3 entries"), "{}", clear.stderr);
    assert_eq!(entries(&cli), vec![("Alpha".to_owned(), 0), ("Beta".to_owned(), 5)], "Beta's entries are untouched");

    assert_eq!(cli.run(&["cache", "clear"]).code, 2, "no selection off a terminal is a usage error");
    assert_eq!(entries(&cli)[1].1, 5);
    let central = cli.run(&["cache", "clear", "--central"]);
    assert_eq!(central.code, 0, "{}", central.stderr);
    assert!(central.stderr.contains("the central cache"), "{}", central.stderr);
}
