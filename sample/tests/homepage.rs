//! The homepage plugin's commands through the real binary: `tenant create --with-homepage`,
//! `homepage create|enable|disable|show|list`, what deleting a tenant or removing a domain does to
//! its folders, and bad input (an unknown tenant, a domain it does not own, an unwritable view
//! path, a broken `[homepage]`) refused with nothing changed.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use std::path::PathBuf;

use common::Cli;

fn append_config(cli: &Cli, text: &str) {
    let file = cli.dir().join("tenancy.toml");
    let config = std::fs::read_to_string(&file).unwrap();
    std::fs::write(file, format!("{config}\n{text}\n")).unwrap();
}

fn page(cli: &Cli, domain: &str) -> PathBuf {
    cli.dir().join("homepages").join(domain).join("home.html")
}

fn homepage_enabled(cli: &Cli, tenant: &str) -> bool {
    let shown: serde_json::Value = serde_json::from_str(&cli.ok(&["tenant", "show", tenant, "--json"])).unwrap();
    shown["homepage_enabled"].as_bool().unwrap()
}

fn decisions(cli: &Cli, tenant: &str) -> Vec<(String, String)> {
    let shown: serde_json::Value = serde_json::from_str(&cli.ok(&["homepage", "show", "--tenant", tenant, "--json"])).unwrap();
    shown["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["domain"].as_str().unwrap_or("-").to_owned(), row["decision"]["outcome"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn a_homepage_from_creation_to_deletion() {
    let cli = Cli::sqlite();
    let run = cli.run(&["tenant", "create", "--name", "Acme", "--domain", "acme.test", "--domain", "www.acme.test", "--with-homepage"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("homepage"), "the step has its line: {}", run.stderr);
    assert!(std::fs::read_to_string(page(&cli, "acme.test")).unwrap().contains("{{ tenant.name }}"), "the built-in template");
    assert!(homepage_enabled(&cli, "Acme"));
    let shown = cli.ok(&["tenant", "show", "Acme"]);
    assert!(shown.contains("enabled"), "{shown}");
    assert_eq!(decisions(&cli, "Acme"), [("acme.test".into(), "own".into()), ("www.acme.test".into(), "redirect".into())]);

    // A page for the second domain; an existing page is kept unless --force.
    cli.ok(&["homepage", "create", "--tenant", "Acme", "--domain", "www.acme.test"]);
    std::fs::write(page(&cli, "www.acme.test"), "edited").unwrap();
    let kept = cli.run(&["homepage", "create", "--tenant", "Acme", "--domain", "www.acme.test"]);
    assert_eq!(kept.code, 0);
    assert!(kept.stderr.contains("Kept"), "{}", kept.stderr);
    assert_eq!(std::fs::read_to_string(page(&cli, "www.acme.test")).unwrap(), "edited");
    cli.ok(&["homepage", "create", "--tenant", "Acme", "--domain", "www.acme.test", "--force"]);
    assert_ne!(std::fs::read_to_string(page(&cli, "www.acme.test")).unwrap(), "edited");

    cli.ok(&["homepage", "disable", "--tenant", "Acme"]);
    assert!(!homepage_enabled(&cli, "Acme"));
    assert_eq!(decisions(&cli, "Acme"), [("acme.test".into(), "redirect".into()), ("www.acme.test".into(), "redirect".into())]);
    let human = cli.ok(&["homepage", "show", "--tenant", "Acme"]);
    assert!(human.contains("redirect to `/login` (the tenant's homepage is disabled)"), "{human}");
    cli.ok(&["homepage", "enable", "--tenant", "Acme"]);
    assert!(homepage_enabled(&cli, "Acme"));

    let globex = cli.create("Globex", &["globex.test"]);
    let listed: Vec<serde_json::Value> =
        cli.ok(&["homepage", "list", "--json"]).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(listed.len(), 2);
    let globex_row = listed.iter().find(|row| row["tenant"] == globex.as_str()).unwrap();
    assert_eq!((globex_row["homepage_enabled"].as_bool(), globex_row["decision"]["outcome"].as_str()), (Some(false), Some("redirect")));

    // Removing a domain leaves its folder, and says so.
    let removed = cli.run(&["tenant", "domain", "remove", "Acme", "www.acme.test"]);
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    assert!(removed.stderr.contains("homepage folder") && removed.stderr.contains("is kept"), "{}", removed.stderr);
    assert!(page(&cli, "www.acme.test").exists());
    // Its next owner does not get Acme's page.
    cli.ok(&["tenant", "domain", "add", "Globex", "www.acme.test"]);
    cli.ok(&["homepage", "enable", "--tenant", "Globex"]);
    let globex_pages = decisions(&cli, "Globex");
    assert_eq!(globex_pages[1], ("www.acme.test".into(), "redirect".into()), "{globex_pages:?}");
    let refused = cli.run(&["homepage", "create", "--tenant", "Globex", "--domain", "www.acme.test"]);
    assert_eq!(refused.code, 2, "another tenant's folder needs --force: {}", refused.stderr);

    // Deleting removes the tenant's folders, including the one of the domain it no longer has.
    let deleted = cli.run(&["tenant", "delete", "Acme", "--force"]);
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert!(!page(&cli, "acme.test").exists() && !page(&cli, "www.acme.test").exists(), "{}", deleted.stderr);
    assert!(deleted.stderr.contains("removed homepage folders"), "{}", deleted.stderr);
    // --keep-homepage keeps them.
    cli.ok(&["homepage", "create", "--tenant", "Globex"]);
    cli.ok(&["tenant", "delete", "Globex", "--force", "--keep-homepage"]);
    assert!(page(&cli, "globex.test").exists());
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let cli = Cli::sqlite();
    cli.create("Acme", &["acme.test"]);
    let homepages = cli.dir().join("homepages");
    for (args, code) in [
        (&["homepage", "create", "--tenant", "nobody"][..], 2),
        (&["homepage", "create", "--tenant", "Acme", "--domain", "other.test"], 2),
        (&["homepage", "create", "--tenant", "Acme", "--domain", "../../etc"], 2),
        (&["homepage", "create", "--tenant", "Acme", "--domain", "default"], 2),
        (&["homepage", "enable", "--tenant", "nobody"], 2),
        (&["homepage", "show", "--tenant", "nobody"], 2),
        (&["homepage"], 2),
    ] {
        let run = cli.run(args);
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"), "{args:?}: {}", run.stderr);
        assert!(!homepages.exists(), "{args:?} created the homepages folder");
        assert!(!homepage_enabled(&cli, "Acme"), "{args:?} changed the registry");
    }

    // A request the step refuses is refused before anything is made.
    for args in [
        &["tenant", "create", "--name", "Nodomain", "--with-homepage"][..],
        &["tenant", "create", "--name", "x", "--domain", "default", "--with-homepage"],
    ] {
        let run = cli.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("Registered"), "refused before the first step: {}", run.stderr);
        assert!(run.stderr.contains("homepage"), "the message says why: {}", run.stderr);
    }
    assert_eq!(cli.tenants().len(), 1);

    // An unwritable view path (a file where the folder should be): a failure, nothing changed.
    std::fs::write(&homepages, "not a folder").unwrap();
    let run = cli.run(&["homepage", "create", "--tenant", "Acme"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("homepages"), "{}", run.stderr);
    assert!(!homepage_enabled(&cli, "Acme"));
    let run = cli.run(&["tenant", "create", "--name", "Globex", "--domain", "globex.test", "--with-homepage"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("Undone"), "the steps before are undone: {}", run.stderr);
    assert_eq!(cli.tenants().len(), 1, "no half-made tenant");
    std::fs::remove_file(&homepages).unwrap();

    // A missing folder that may not be created.
    append_config(&cli, "[homepage]\nauto_create_directory = false");
    let run = cli.run(&["homepage", "create", "--tenant", "Acme"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("auto_create_directory"), "{}", run.stderr);
    assert!(!homepages.exists());
}

#[test]
fn a_broken_homepage_section_is_refused_naming_the_key() {
    for (section, key) in [
        ("[homepage]\nfallback_redirect = \"javascript:alert(1)\"", "homepage.fallback_redirect"),
        ("[homepage]\nfallback_redirect = \"//evil.example\"", "homepage.fallback_redirect"),
        ("[homepage]\ncolour = \"blue\"", "colour"),
        ("[homepage]\nreload = \"sometimes\"", "homepage.reload"),
        ("[homepage]\ntemplate = \"missing.html\"", "homepage.template"),
        ("[homepages]\nenabled = true", "homepages"),
    ] {
        let cli = Cli::sqlite();
        append_config(&cli, section);
        let run = cli.run(&["tenant", "list"]);
        assert_eq!(run.code, 2, "{section}: {}", run.stderr);
        assert!(run.stderr.contains(key) && run.stderr.contains("tenancy.toml"), "{section}: {}", run.stderr);
    }
}

#[test]
fn init_writes_the_homepage_section_and_the_flags_are_in_help() {
    let cli = Cli::sqlite();
    std::fs::remove_file(cli.dir().join("tenancy.toml")).unwrap();
    cli.ok(&["init"]);
    let written = std::fs::read_to_string(cli.dir().join("tenancy.toml")).unwrap();
    assert!(written.contains("[homepage]") && written.contains("fallback_redirect = \"/login\""), "{written}");
    cli.ok(&["tenant", "list"]); // the file init wrote is read back without complaint
    assert!(cli.ok(&["tenant", "create", "--help"]).contains("--with-homepage"));
    assert!(cli.ok(&["tenant", "delete", "--help"]).contains("--keep-homepage"));
    assert!(!cli.ok(&["tenant", "list", "--help"]).contains("homepage"), "flags only where they belong");
}

#[test]
fn removing_a_domain_says_whether_its_folder_stays_the_tenants() {
    let cli = Cli::sqlite();
    cli.create("Acme", &["acme.test", "mine.test", "handmade.test"]);
    cli.ok(&["homepage", "create", "--tenant", "Acme", "--domain", "mine.test"]);
    std::fs::create_dir_all(cli.dir().join("homepages/handmade.test")).unwrap();
    std::fs::write(page(&cli, "handmade.test"), "made by hand, no owner").unwrap();
    let marked = cli.run(&["tenant", "domain", "remove", "Acme", "mine.test"]);
    assert!(marked.stderr.contains("stays tenant"), "{}", marked.stderr);
    let unmarked = cli.run(&["tenant", "domain", "remove", "Acme", "handmade.test"]);
    assert!(unmarked.stderr.contains("names no owner"), "{}", unmarked.stderr);
    let none = cli.run(&["tenant", "domain", "add", "Acme", "other.test"]);
    assert_eq!(none.code, 0);
    let quiet = cli.run(&["tenant", "domain", "remove", "Acme", "other.test"]);
    assert!(!quiet.stderr.contains("homepage folder"), "no folder, no note: {}", quiet.stderr);
}
