//! A homepage world for the tests: a [`TestEnv`] whose `tenancy.toml` has a `[homepage]` section,
//! tenants made through the library, pages written by hand, and `tenancy serve`'s application
//! with the plugin on a real loopback server.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses a different part; a panic is how a test fails

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tenancy_core::command::Plugin;
use tenancy_core::provisioning::TenantRequest;
use tenancy_core::{Config, Domain, Tenancy, Tenant, TenantName};
use tenancy_homepage::HomepagePlugin;
use tenancy_tests::{Backend, TestEnv};

pub struct World {
    pub env: TestEnv,
    pub tenancy: Arc<Tenancy>,
}

impl World {
    /// A tenancy on `backend` with `homepage` appended to its `tenancy.toml` (its lines of the
    /// `[homepage]` section), or `None` when the backend's server is missing.
    pub async fn new(backend: Backend, homepage: &str) -> Option<Self> {
        let env = TestEnv::new(backend)?;
        env.create_central_database().await; // reads the file as tenancy itself would, before it has a plugin's section
        let file = env.dir().join("tenancy.toml");
        let toml = format!("{}\n[homepage]\n{homepage}\n[web]\nchange_poll_millis = 100\n", env.config_toml());
        std::fs::write(&file, toml).unwrap();
        let tenancy = Arc::new(Tenancy::builder(Self::config_of(&env)).open().await.unwrap());
        Some(Self { env, tenancy })
    }

    fn config_of(env: &TestEnv) -> Config {
        let sections: Vec<&str> = HomepagePlugin.config_section().into_iter().collect();
        Config::load_with_sections(env.dir(), Some(&env.dir().join("tenancy.toml")), &sections).unwrap()
    }

    pub fn homepages(&self) -> PathBuf {
        self.env.dir().join("homepages")
    }

    /// Writes `text` to `homepages/{relative}`, making folders.
    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.homepages().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A tenant with these domains and its homepage on or off.
    pub async fn tenant(&self, name: &str, domains: &[&str], homepage: bool) -> Tenant {
        let mut request = TenantRequest::new(TenantName::parse(name).unwrap());
        request.domains = domains.iter().map(|domain| Domain::parse(domain).unwrap()).collect();
        request.homepage_enabled = homepage;
        request.data = serde_json::json!({"plan": "gold"});
        request.migrate = false;
        self.tenancy.create_tenant(&request, &()).await.unwrap()
    }

    /// `tenancy serve`'s application with the plugin, on a free loopback port.
    pub async fn serve(&self) -> Server {
        let plugins: Vec<Arc<dyn Plugin>> = vec![Arc::new(HomepagePlugin)];
        let app = tenancy_cli::serve_application(self.tenancy.clone(), &plugins).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info()).await });
        Server { address, task }
    }
}

/// A server on loopback, stopped when dropped.
pub struct Server {
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `path` exists, for assertions that read well.
pub fn exists(path: &Path) -> bool {
    path.exists()
}
