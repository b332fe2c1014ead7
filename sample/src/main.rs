//! The `tenancy` binary: the tool, with the sample application's migrations and seeders and the
//! built-in plugins. An application's own binary looks exactly like this, with its own crates.

/// jemalloc: fast with many threads, and it counts each thread's allocations, which is how
/// migrations and seeders report the memory they used.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod jobs;

fn main() -> std::process::ExitCode {
    tenancy_cli::App::new()
        .tenant_migrator::<migration::Migrator>()
        .seeders(seeders::all())
        .jobs(jobs::all())
        .plugin(tenancy_homepage::HomepagePlugin)
        .plugin(tenancy_backup::BackupPlugin)
        .plugin(tenancy_monitor::MonitorPlugin)
        .run()
}
