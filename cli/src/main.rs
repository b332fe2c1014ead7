//! The `tenancy` binary: the tool, with the sample application's migrations and seeders. An
//! application's own binary looks exactly like this, with its own crates.

fn main() -> std::process::ExitCode {
    tenancy_cli::App::new().tenant_migrator::<migration::Migrator>().seeders(seeders::all()).run()
}
