//! The backup plugin end to end, through the real binary, on every backend: what is backed up comes
//! back row for row, and every damaged backup, bad request and fault is refused with its reason,
//! leaving tenants and the store as they were.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports failure

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Cli;
use sea_orm::{ConnectionTrait, FromQueryResult, JsonValue, Statement};
use tenancy_tests::Backend;
use tenancy_tests::bucket::TestBucket;

/// A seeded tenant and one backup of it; returns the tenant's id and the backup's id.
fn seeded_tenant_with_backup(cli: &Cli, name: &str, domain: &str) -> (String, String) {
    let id = cli.create(name, &[domain]);
    cli.ok(&["db", "seed", "--tenant", &id]);
    let backup = backup(cli, &id);
    (id, backup)
}

/// Backs `tenant` up; returns the backup id.
fn backup(cli: &Cli, tenant: &str) -> String {
    let out = cli.ok(&["backup", "create", "--tenant", tenant, "--json"]);
    events(&out)
        .into_iter()
        .find(|event| event["event"] == "backup_created")
        .and_then(|event| event["backup"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no backup_created event in {out}"))
}

fn events(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"))).collect()
}

/// The backups `backup list --json` shows.
fn listed(cli: &Cli) -> Vec<serde_json::Value> {
    events(&cli.ok(&["backup", "list", "--json"])).into_iter().filter(|row| row.get("error").is_none()).collect()
}

/// Every row of every table of a tenant, as JSON, in primary-key order: what a byte-for-byte
/// comparison of two tenants compares.
fn all_rows(cli: &Cli, reference: &str) -> BTreeMap<String, Vec<JsonValue>> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tenancy = tenancy_core::Tenancy::builder(cli.env.config()).open().await.unwrap();
        let tenant = tenancy.registry().resolve(reference).await.unwrap();
        let rows = tenancy
            .run(&tenant, |ctx| async move {
                let db = ctx.db();
                let mut all = BTreeMap::new();
                for table in tenancy_tests::table_names(db).await {
                    let quoted =
                        if db.get_database_backend() == sea_orm::DbBackend::MySql { format!("`{table}`") } else { format!("\"{table}\"") };
                    let statement = Statement::from_string(db.get_database_backend(), format!("SELECT * FROM {quoted} ORDER BY 1"));
                    all.insert(table, JsonValue::find_by_statement(statement).all(db).await.unwrap());
                }
                all
            })
            .await
            .unwrap();
        tenancy.close().await;
        rows
    })
}

fn status_of(cli: &Cli, reference: &str) -> String {
    let tenant = cli.tenants().into_iter().find(|t| t["id"] == reference).expect("the tenant exists");
    tenant["status"].as_str().unwrap().to_owned()
}

fn tenant_folder(cli: &Cli, tenant: &str) -> PathBuf {
    cli.dir().join("backups").join(tenant)
}

fn data_file(cli: &Cli, tenant: &str, backup: &str) -> PathBuf {
    std::fs::read_dir(tenant_folder(cli, tenant))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with(backup)
                && !name.ends_with(".manifest.json")
                && !name.ends_with(".verified.json")
                && !name.contains(".files.tar.zst")
        })
        .expect("the data file")
}

#[test]
fn a_backup_restored_into_a_new_tenant_has_every_row_on_every_backend() {
    for backend in Backend::ALL {
        let Some(cli) = Cli::new(backend) else { continue };
        if backend != Backend::Sqlite {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(cli.env.create_central_database());
        }
        let (acme, backup) = seeded_tenant_with_backup(&cli, "Acme", "acme.test");
        let original = all_rows(&cli, &acme);
        assert!(original.get("airports").is_some_and(|rows| rows.len() > 1000), "{backend:?}: the seeders filled airports");

        let run = cli.run(&["backup", "restore", &backup, "--into-new", "Copy", "--domain", "copy.test"]);
        assert_eq!(run.code, 0, "{backend:?}: {}", run.stderr);
        assert_eq!(all_rows(&cli, "copy.test"), original, "{backend:?}: the new tenant has other rows");
        assert_eq!(status_of(&cli, cli.tenants().iter().find(|t| t["name"] == "Copy").unwrap()["id"].as_str().unwrap()), "active");

        let run = cli.run(&["backup", "verify", &backup, "--restore-test"]);
        assert_eq!(run.code, 0, "{backend:?}: {}", run.stderr);
        assert!(run.stderr.contains("trial restore has the same"), "{backend:?}: {}", run.stderr);

        // Damage the tenant, then restore it in place.
        cli.execute(&acme, "DELETE FROM airports");
        cli.execute(&acme, "CREATE TABLE stray (id INTEGER PRIMARY KEY)");
        let run = cli.run(&["backup", "restore", &backup, "--force"]);
        assert_eq!(run.code, 0, "{backend:?}: {}", run.stderr);
        assert_eq!(all_rows(&cli, &acme), original, "{backend:?}: the restore did not bring the rows back");
        assert_eq!(status_of(&cli, &acme), "active", "{backend:?}: the tenant's status came back");
        assert_eq!(listed(&cli).len(), 1);
    }
}

/// A tenant's files folder (`ctx.files()`, on disk by default).
fn files_of(cli: &Cli, tenant: &str) -> PathBuf {
    cli.dir().join("storage/tenants").join(tenant).join("files")
}

/// Every file under `folder`, path → contents.
fn files_in(folder: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, folder: &Path, found: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, found);
            } else {
                let name = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                found.insert(name, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut found = BTreeMap::new();
    walk(folder, folder, &mut found);
    found
}

fn write_file(folder: &Path, path: &str, contents: &str) {
    let path = folder.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

#[test]
fn a_tenants_files_are_backed_up_and_restored_with_its_data() {
    let cli = Cli::sqlite();
    let acme = cli.create("Acme", &["acme.test"]);
    let other = cli.create("Other", &["other.test"]);
    let files = files_of(&cli, &acme);
    write_file(&files, "invoices/2026/03.pdf", "March");
    write_file(&files, "logo.svg", "<svg/>");
    write_file(&files_of(&cli, &other), "theirs.txt", "Other's");
    let out = cli.ok(&["backup", "create", "--tenant", &acme, "--json"]);
    let created = events(&out).into_iter().find(|event| event["event"] == "backup_created").unwrap();
    assert_eq!((created["files"].as_u64(), created["files_bytes"].as_u64()), (Some(2), Some(11)), "{created}");
    let backup = created["backup"].as_str().unwrap().to_owned();
    let at_backup = files_in(&files);
    let rows = all_rows(&cli, &acme);

    let run = cli.run(&["backup", "verify", &backup]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("its 2 files") && run.stderr.contains("checksums match"), "{}", run.stderr);

    // Changed, deleted and added files all go back to how they were; the other tenant's stay.
    write_file(&files, "logo.svg", "<svg>new</svg>");
    std::fs::remove_dir_all(files.join("invoices")).unwrap();
    write_file(&files, "added later.txt", "new");
    cli.ok(&["backup", "restore", &backup, "--force"]);
    assert_eq!(files_in(&files), at_backup);
    assert_eq!(all_rows(&cli, &acme), rows);
    assert_eq!(files_in(&files_of(&cli, &other)), BTreeMap::from([("theirs.txt".into(), "Other's".into())]));
    let left: Vec<_> = std::fs::read_dir(files.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, ["files"], "nothing of the swap is left beside the files");

    // A new tenant from the backup gets the files too.
    cli.ok(&["backup", "restore", &backup, "--into-new", "Copy", "--domain", "copy.test"]);
    let copy = cli.tenants().into_iter().find(|t| t["name"] == "Copy").unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(files_in(&files_of(&cli, &copy)), at_backup);

    // A damaged files archive: caught by verify, and a restore changes neither data nor files.
    let archive = std::fs::read_dir(tenant_folder(&cli, &acme))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.to_string_lossy().ends_with(".files.tar.zst"))
        .expect("the files archive");
    let pristine = std::fs::read(&archive).unwrap();
    let mut flipped = pristine.clone();
    flipped[pristine.len() / 2] ^= 0x01;
    std::fs::write(&archive, &flipped).unwrap();
    let run = cli.run(&["backup", "verify", &backup, "--level", "1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("files archive"), "{}", run.stderr);
    write_file(&files, "logo.svg", "changed again");
    cli.execute(&acme, "DELETE FROM airports");
    let changed_rows = all_rows(&cli, &acme);
    let run = cli.run(&["backup", "restore", &backup, "--force"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(files_in(&files).get("logo.svg").map(String::as_str), Some("changed again"));
    assert_eq!(all_rows(&cli, &acme), changed_rows);
    std::fs::write(&archive, &pristine).unwrap();

    // A backup made before backups held files (format 1, no archive) leaves the files alone, and says so.
    let manifest_path = tenant_folder(&cli, &acme).join(format!("{backup}.manifest.json"));
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest.as_object_mut().unwrap().remove("files");
    manifest["format_version"] = 1.into();
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    std::fs::remove_file(&archive).unwrap();
    let run = cli.run(&["backup", "restore", &backup, "--force"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("were left as they are"), "{}", run.stderr);
    assert_eq!(files_in(&files).get("logo.svg").map(String::as_str), Some("changed again"));
}

#[test]
fn files_in_a_bucket_are_backed_up_and_restored() {
    let cli = Cli::sqlite();
    let Some(bucket) = TestBucket::new(&format!("files-{}", cli.env.prefix.trim_end_matches('_').replace('_', "-"))) else { return };
    std::fs::write(cli.dir().join("tenancy.toml"), format!("{}{}", cli.env.config_toml(), bucket.toml("files", "app"))).unwrap();
    let acme = cli.create("Acme", &["acme.test"]);
    bucket.put(&format!("app/{acme}/files/docs/a.txt"), b"A".to_vec());
    bucket.put(&format!("app/{acme}/files/b.txt"), b"B".to_vec());
    let backup = backup(&cli, &acme);
    bucket.put(&format!("app/{acme}/files/b.txt"), b"changed".to_vec());
    bucket.put(&format!("app/{acme}/files/new.txt"), b"new".to_vec());
    cli.ok(&["backup", "restore", &backup, "--force"]);
    let mut keys = bucket.keys();
    keys.sort();
    assert_eq!(keys, [format!("app/{acme}/files/b.txt"), format!("app/{acme}/files/docs/a.txt")]);
    assert_eq!(bucket.get(&format!("app/{acme}/files/b.txt")), b"B");
    assert!(!files_of(&cli, &acme).exists(), "nothing went to the disk");
}

#[test]
fn an_older_backup_restores_and_migrate_brings_it_up_to_date() {
    for backend in [Backend::Sqlite, Backend::PostgresSchema, Backend::MySql] {
        let Some(cli) = Cli::new(backend) else { continue };
        if backend != Backend::Sqlite {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(cli.env.create_central_database());
        }
        let id = cli.create("Acme", &["acme.test"]);
        cli.ok(&["db", "rollback", "--tenant", &id, "--step", "2"]);
        let backup = backup(&cli, &id);
        cli.ok(&["db", "migrate", "--tenant", &id]);
        let run = cli.run(&["backup", "restore", &backup, "--force"]);
        assert_eq!(run.code, 0, "{backend:?}: {}", run.stderr);
        assert!(run.stderr.contains("2 migrations behind"), "{backend:?}: {}", run.stderr);
        assert_eq!(common::applied_pending(&cli.status(&id)).1, 2, "{backend:?}: the restore brought the old migration state");
        cli.ok(&["db", "migrate", "--tenant", &id]);
        assert_eq!(common::applied_pending(&cli.status(&id)).1, 0, "{backend:?}");
    }
}

#[test]
fn damaged_backups_are_refused_with_the_reason_and_change_nothing() {
    let cli = Cli::sqlite();
    let (acme, backup) = seeded_tenant_with_backup(&cli, "Acme", "acme.test");
    let before = all_rows(&cli, &acme);
    let data = data_file(&cli, &acme, &backup);
    let pristine = std::fs::read(&data).unwrap();

    // One flipped byte.
    let mut flipped = pristine.clone();
    flipped[pristine.len() / 2] ^= 0x01;
    std::fs::write(&data, &flipped).unwrap();
    let run = cli.run(&["backup", "verify", &backup, "--level", "1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains(&backup) && run.stderr.contains("checksum"), "{}", run.stderr);
    let run = cli.run(&["backup", "restore", &backup, "--force"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("corrupted"), "{}", run.stderr);
    assert_eq!(all_rows(&cli, &acme), before);
    assert_eq!(status_of(&cli, &acme), "active");

    // Truncated.
    std::fs::write(&data, &pristine[..pristine.len() / 3]).unwrap();
    let run = cli.run(&["backup", "verify", &backup]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);
    let run = cli.run(&["backup", "restore", &backup, "--force"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(all_rows(&cli, &acme), before);
    std::fs::write(&data, &pristine).unwrap();
    cli.ok(&["backup", "verify", &backup]);

    // A manifest moved into another tenant's folder.
    let other = cli.create("Other", &["other.test"]);
    let manifest = tenant_folder(&cli, &acme).join(format!("{backup}.manifest.json"));
    std::fs::create_dir_all(tenant_folder(&cli, &other)).unwrap();
    std::fs::rename(&manifest, tenant_folder(&cli, &other).join(format!("{backup}.manifest.json"))).unwrap();
    std::fs::copy(&data, tenant_folder(&cli, &other).join(data.file_name().unwrap())).unwrap();
    let run = cli.run(&["backup", "list"]);
    assert!(run.stderr.contains(&format!("is for tenant {acme}")), "{}", run.stderr);
    let run = cli.run(&["backup", "restore", &backup, "--force"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains(&format!("but it is in the folder of tenant {other}")), "{}", run.stderr);

    // The manifest gone: the data file alone is no backup.
    std::fs::remove_dir_all(tenant_folder(&cli, &other)).unwrap();
    assert!(listed(&cli).is_empty());
    let run = cli.run(&["backup", "verify", &backup]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("has no manifest"), "{}", run.stderr);

    // Ids that are not there, or not ids.
    let run = cli.run(&["backup", "restore", "20200101T000000.000Z-000000", "--force"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("there is no backup 20200101T000000.000Z-000000"), "{}", run.stderr);
    let run = cli.run(&["backup", "restore", "../../etc/passwd", "--force"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("is not a backup id"), "{}", run.stderr);
    assert_eq!(all_rows(&cli, &acme), before);
}

#[test]
fn bad_requests_exit_2_and_change_nothing() {
    let cli = Cli::sqlite();
    let (acme, backup) = seeded_tenant_with_backup(&cli, "Acme", "acme.test");
    let before = all_rows(&cli, &acme);
    for (args, expected) in [
        (vec!["backup", "create"], "no tenant given"),
        (vec!["backup", "restore", backup.as_str()], "--force"),
        (vec!["backup", "verify"], "no backup given"),
        (vec!["backup", "prune", "--all", "--keep-last", "0"], "keeps no backup"),
        (vec!["backup", "create", "--tenant", "nobody.test"], "nobody.test"),
        (vec!["backup", "restore", backup.as_str(), "--into-new", "Twin", "--domain", "acme.test"], "acme.test"),
        (vec!["backup", "restore", backup.as_str(), "--into-new", "Fresh", "--domain", "not a domain"], "not a domain"),
    ] {
        let run = cli.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
    }
    assert_eq!(cli.tenants().len(), 1, "no tenant was created by a refused --into-new");
    assert_eq!(listed(&cli).len(), 1);
    assert_eq!(all_rows(&cli, &acme), before);

    std::fs::write(cli.dir().join("tenancy.toml"), format!("{}\n[backup]\ncompression_level = 40\n", cli.env.config_toml())).unwrap();
    let run = cli.run(&["backup", "list"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("backup.compression_level"), "{}", run.stderr);
}

#[test]
fn a_target_that_cannot_be_written_leaves_nothing_behind() {
    let cli = Cli::sqlite();
    let acme = cli.create("Acme", &["acme.test"]);
    cli.ok(&["db", "seed", "--tenant", &acme]);

    // A folder on a read-only file system (root ignores permission bits; /proc it cannot write).
    let run =
        cli.command().args(["backup", "create", "--tenant", &acme]).env("TENANCY_BACKUP__PATH", "/proc/tenancy-backups").output().unwrap();
    let run = common::Run::from(run);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("/proc/tenancy-backups"), "{}", run.stderr);

    // A full disk: the file size limit makes writes fail with EFBIG (SIGXFSZ ignored, as the
    // shell leaves it for the program it starts).
    let tenancy = env!("CARGO_BIN_EXE_tenancy-sample");
    let output = cli
        .process(Path::new("sh"))
        .args(["-c", &format!("trap '' XFSZ; ulimit -f 256; exec '{tenancy}' backup create --tenant {acme}")])
        .output()
        .unwrap();
    let run = common::Run::from(output);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("Failed"), "{}", run.stderr);
    let left: Vec<_> = std::fs::read_dir(tenant_folder(&cli, &acme)).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "a failed backup left {left:?}");
    assert!(listed(&cli).is_empty());
    backup(&cli, &acme);
}

#[test]
fn prune_keeps_what_the_policy_says_and_the_newest_backup_that_verifies() {
    let cli = Cli::sqlite();
    let acme = cli.create("Acme", &["acme.test"]);
    let backups: Vec<String> = (0..4).map(|_| backup(&cli, &acme)).collect();

    let run = cli.run(&["backup", "prune", "--all", "--keep-last", "2", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr.matches("Would delete").count(), 2, "{}", run.stderr);
    assert_eq!(listed(&cli).len(), 4, "a dry run deletes nothing");

    cli.ok(&["backup", "prune", "--all", "--keep-last", "2"]);
    let left: Vec<String> = listed(&cli).iter().map(|b| b["backup"].as_str().unwrap().to_owned()).collect();
    assert_eq!(left, backups[2..].to_vec());

    // The newest is corrupted: the policy keeps it, and the newest good one stays too.
    let newest = data_file(&cli, &acme, &backups[3]);
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&newest, bytes).unwrap();
    cli.ok(&["backup", "prune", "--all", "--keep-last", "1"]);
    let left: Vec<String> = listed(&cli).iter().map(|b| b["backup"].as_str().unwrap().to_owned()).collect();
    assert_eq!(left, backups[2..].to_vec(), "the newest verified backup was deleted");
}

/// A PostgreSQL tenant with a table big enough that a dump takes a moment (about 40 MB).
fn big_postgres_tenant() -> Option<(Cli, String)> {
    let cli = Cli::new(Backend::Postgres)?;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(cli.env.create_central_database());
    let acme = cli.create("Acme", &["acme.test"]);
    cli.execute(&acme, "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b FROM generate_series(1, 400000) g");
    Some((cli, acme))
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_killed_or_cut_off_backup_is_never_listed_and_a_rerun_works() {
    let Some((cli, acme)) = big_postgres_tenant() else { return };
    let folder = tenant_folder(&cli, &acme);
    let staging =
        || std::fs::read_dir(&folder).into_iter().flatten().flatten().any(|e| e.file_name().to_string_lossy().ends_with(".partial"));

    // SIGKILL while the dump streams.
    let mut child = cli.tenancy_process().args(["backup", "create", "--tenant", &acme]).spawn().unwrap();
    wait_for("the backup to start writing", Duration::from_secs(30), staging);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(listed(&cli).is_empty(), "a killed backup is listed");

    // The server ends the dump's session.
    let child = cli.tenancy_process().args(["backup", "create", "--tenant", &acme]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let admin = format!("postgres://postgres@{}/postgres", tenancy_tests::POSTGRES_ADDR);
    // Only this test's databases: other tests back up in parallel on the same server.
    let terminate = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'tenancy-backup' AND datname LIKE '{}'",
        tenancy_tests::like_prefix(&cli.env.prefix)
    );
    wait_for("pg_dump's session to be ended", Duration::from_secs(30), || admin_scalar(&admin, &terminate) > 0);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(listed(&cli).is_empty(), "a cut-off backup is listed");

    let backup = backup(&cli, &acme);
    cli.ok(&["backup", "verify", &backup]);
    assert_eq!(listed(&cli).len(), 1);
}

#[test]
fn a_missing_dump_tool_and_a_busy_tenant_are_clear_failures() {
    let Some(cli) = Cli::new(Backend::Postgres) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(cli.env.create_central_database());
    let acme = cli.create("Acme", &["acme.test"]);
    cli.ok(&["db", "seed", "--tenant", &acme]);

    let output = cli.command().args(["backup", "create", "--tenant", &acme]).env("PATH", "/nonexistent").output().unwrap();
    let run = common::Run::from(output);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("`pg_dump` was not found on PATH"), "{}", run.stderr);
    assert!(listed(&cli).is_empty());

    // A session holds a lock on one of the tenant's tables: the restore waits lock_timeout_secs,
    // then gives up with the tenant as it was.
    let backup = backup(&cli, &acme);
    cli.execute(&acme, "DELETE FROM airports WHERE id % 2 = 0");
    let before = all_rows(&cli, &acme);
    let database = cli.tenants()[0]["database"].as_str().unwrap().to_owned();
    let url = format!("postgres://postgres@{}/{database}", tenancy_tests::POSTGRES_ADDR);
    restore_while_held(&cli, &backup, &url, "LOCK TABLE airports IN ACCESS SHARE MODE", "lock timeout");
    assert_eq!(all_rows(&cli, &acme), before, "a failed restore changed the tenant");
    assert_eq!(status_of(&cli, &acme), "active", "a failed restore left the tenant inactive");
    cli.ok(&["backup", "restore", &backup, "--force"]);
    assert_ne!(all_rows(&cli, &acme), before);
}

#[test]
fn encrypted_backups_open_with_their_key_only() {
    use age::secrecy::ExposeSecret;
    let cli = Cli::sqlite();
    let key = age::x25519::Identity::generate();
    let stranger = age::x25519::Identity::generate();
    std::fs::write(cli.dir().join("key.txt"), format!("{}\n", key.to_string().expose_secret())).unwrap();
    std::fs::write(cli.dir().join("stranger.txt"), format!("{}\n", stranger.to_string().expose_secret())).unwrap();
    std::fs::write(
        cli.dir().join("tenancy.toml"),
        format!("{}\n[backup]\nencrypt_to = [\"{}\"]\n", cli.env.config_toml(), key.to_public()),
    )
    .unwrap();
    let (acme, backup) = seeded_tenant_with_backup(&cli, "Acme", "acme.test");
    let before = all_rows(&cli, &acme);
    let data = data_file(&cli, &acme, &backup);
    assert!(data.to_string_lossy().ends_with(".sqlite.zst.age"), "{}", data.display());

    // The checksum needs no key; reading the dump does.
    cli.ok(&["backup", "verify", &backup, "--level", "1"]);
    for (args, expected) in [
        (vec!["backup", "verify", backup.as_str()], "give an identity file"),
        (vec!["backup", "verify", backup.as_str(), "--identity", "stranger.txt"], "none of the given age identities"),
        (vec!["backup", "restore", backup.as_str(), "--force", "--identity", "stranger.txt"], "none of the given age identities"),
        (vec!["backup", "restore", backup.as_str(), "--force", "--identity", "missing.txt"], "missing.txt"),
    ] {
        let run = cli.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
    }
    cli.execute(&acme, "DELETE FROM airports");
    cli.ok(&["backup", "verify", &backup, "--identity", "key.txt", "--restore-test"]);
    cli.ok(&["backup", "restore", &backup, "--force", "--identity", "key.txt"]);
    assert_eq!(all_rows(&cli, &acme), before);
    assert_eq!(status_of(&cli, &acme), "active");

    let run =
        common::Run::from(cli.command().args(["backup", "list"]).env("TENANCY_BACKUP__ENCRYPT_TO", "[\"age1notakey\"]").output().unwrap());
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("encrypt_to[0]"), "{}", run.stderr);
}

#[test]
fn backups_in_an_s3_bucket_are_listed_verified_restored_and_pruned() {
    let cli = Cli::sqlite();
    let Some(bucket) = TestBucket::new(&format!("tenancy-{}", cli.env.prefix.trim_end_matches('_'))) else { return };
    std::fs::write(cli.dir().join("tenancy.toml"), format!("{}{}", cli.env.config_toml(), bucket.toml("backup", "tenancy"))).unwrap();
    let (acme, first) = seeded_tenant_with_backup(&cli, "Acme", "acme.test");
    let second = backup(&cli, &acme);
    let before = all_rows(&cli, &acme);

    let keys = bucket.keys();
    assert_eq!(keys.len(), 6, "two data files, two files archives and two manifests: {keys:?}");
    assert!(keys.iter().all(|key| key.starts_with(&format!("tenancy/{acme}/"))), "{keys:?}");
    let local: Vec<_> = std::fs::read_dir(tenant_folder(&cli, &acme)).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(local.is_empty(), "the staging files stay behind: {local:?}");
    assert_eq!(listed(&cli).len(), 2);

    cli.ok(&["backup", "verify", &second, "--restore-test"]);
    cli.execute(&acme, "DELETE FROM airports");
    cli.ok(&["backup", "restore", &second, "--force"]);
    assert_eq!(all_rows(&cli, &acme), before);

    // A flipped byte in the bucket is caught.
    let data_key =
        keys.iter().find(|key| key.contains(&first) && !key.ends_with(".manifest.json") && !key.contains(".files.")).unwrap().clone();
    let mut bytes = bucket.get(&data_key);
    bytes[100] ^= 0x01;
    bucket.put(&data_key, bytes);
    let run = cli.run(&["backup", "verify", &first, "--level", "1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("checksum"), "{}", run.stderr);

    cli.ok(&["backup", "prune", "--all", "--keep-last", "1"]);
    let left: Vec<String> = listed(&cli).iter().map(|b| b["backup"].as_str().unwrap().to_owned()).collect();
    assert_eq!(left, vec![second.clone()]);
    let kept = bucket.keys();
    assert_eq!(kept.len(), 4, "the kept backup's data, files, manifest and verification record: {kept:?}");
    assert!(kept.iter().all(|key| key.contains(&second)), "nothing of the pruned backup is left: {kept:?}");

    // Wrong credentials: a clear failure naming the bucket, never the secret.
    let run = common::Run::from(
        cli.command().args(["backup", "list"]).env("TENANCY_BACKUP__S3__ENDPOINT", "http://127.0.0.1:9").output().unwrap(),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains(&bucket.name) && !run.stderr.contains("secret_access_key = "), "{}", run.stderr);
}

#[test]
fn a_busy_mysql_tenant_is_left_as_it_was_and_no_scratch_database_stays() {
    let Some(cli) = Cli::new(Backend::MySql) else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(cli.env.create_central_database());
    let (acme, backup) = seeded_tenant_with_backup(&cli, "Acme", "acme.test");
    cli.execute(&acme, "DELETE FROM airports WHERE id % 2 = 0");
    let before = all_rows(&cli, &acme);
    let database = cli.tenants()[0]["database"].as_str().unwrap().to_owned();
    let admin = format!("mysql://root@{}/mysql", tenancy_tests::MYSQL_ADDR);
    let scratch_databases = || {
        admin_scalar(
            &admin,
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE 'tenancy\\_restore\\_%' OR schema_name LIKE 'tenancy\\_aside\\_%'",
        )
    };
    let scratch_before = scratch_databases();
    // A session in a transaction that read a table holds its metadata lock until it ends: the
    // swap's RENAME TABLE must wait for it, and gives up after lock_timeout_secs.
    let url = format!("mysql://root@{}/{database}", tenancy_tests::MYSQL_ADDR);
    restore_while_held(&cli, &backup, &url, "SELECT COUNT(*) FROM airports", "Lock wait timeout");
    assert_eq!(all_rows(&cli, &acme), before, "a failed restore changed the tenant");
    assert_eq!(status_of(&cli, &acme), "active", "a failed restore left the tenant inactive");
    assert_eq!(scratch_databases(), scratch_before, "a failed restore left a scratch database");
    cli.ok(&["backup", "restore", &backup, "--force"]);
    assert_ne!(all_rows(&cli, &acme), before);
}

/// The first column of the first row of `sql`, run on its own connection to `url`.
fn admin_scalar(url: &str, sql: &str) -> i64 {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = sea_orm::Database::connect(url).await.unwrap();
        let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
        let _ = db.close().await;
        row.try_get_by_index::<i64>(0).unwrap()
    })
}

/// Restores `backup` in place while another session, in a transaction on the tenant's database at
/// `url`, has run `hold` (and so holds its locks): the restore must give up after a second, exit 1
/// and say `expected`.
fn restore_while_held(cli: &Cli, backup: &str, url: &str, hold: &str, expected: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let holder = sea_orm::Database::connect(url).await.unwrap();
        let holding = sea_orm::TransactionTrait::begin(&holder).await.unwrap();
        holding.execute_unprepared(hold).await.unwrap();
        let run = common::Run::from(
            cli.command().args(["backup", "restore", backup, "--force"]).env("TENANCY_BACKUP__LOCK_TIMEOUT_SECS", "1").output().unwrap(),
        );
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stderr.contains(expected), "{}", run.stderr);
        holding.rollback().await.unwrap();
        let _ = holder.close().await;
    });
}
