//! The stock `tenancy` binary (`cargo install tenancy`): the tool for any application, whatever
//! its language. Tenant migrations and seeders are SQL files beside `tenancy.toml` (`migrations/`,
//! `seeders/`; `tenancy init --sql` writes an example of each), and the built-in plugins are
//! linked. An application with Rust migrations and seeders builds its own binary the same way,
//! with `tenant_migrator` and `seeders` instead of `sql_files` (see `sample/`).

/// jemalloc: fast with many threads, and it counts each thread's allocations, which is how
/// migrations and seeders report the memory they used.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    tenancy_cli::App::new()
        .sql_files()
        .plugin(tenancy_homepage::HomepagePlugin)
        .plugin(tenancy_backup::BackupPlugin)
        .plugin(tenancy_monitor::MonitorPlugin)
        .run()
}
