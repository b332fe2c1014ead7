//! The routes: `GET /` (the page, the default page or the redirect) and `GET /assets/{*path}` on
//! tenants' hosts.
//!
//! A page is rendered once per tenant, host and registry generation and then served from memory:
//! nothing reads the disk on a cached request. Any registry change (`homepage create|enable|
//! disable`, a domain or status change, seen here at once or within `web.change_poll_millis` when
//! made by another process) moves the generation, and pages are rendered again on their next
//! request. With `homepage.reload = true` every request reads the templates again.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tenancy_core::web::{CurrentTenant, PluginRoutes, RequestHost};
use tenancy_core::{Domain, Registry, Tenant, TenantId};

use crate::config::HomepageConfig;
use crate::render::render;
use crate::views::{ASSETS_FOLDER, Decision, ViewRoot, file_within, page_domain};

/// Tenants whose pages are kept in memory at most; past it, those of older generations go
/// first, then all.
const MAX_CACHED_TENANTS: usize = 100_000;
/// Hosts kept per tenant: its domains, and subdomain hosts; past it, its list starts again.
const MAX_HOSTS_PER_TENANT: usize = 64;

/// The homepage routes and their state.
pub fn routes(config: HomepageConfig, root: PathBuf, registry: Registry) -> PluginRoutes {
    let site = Arc::new(Site { config, root: ViewRoot::new(root), registry, pages: RwLock::default() });
    PluginRoutes::default().tenant("/", get(home).with_state(site.clone())).tenant("/assets/{*path}", get(asset).with_state(site))
}

struct Site {
    config: HomepageConfig,
    root: ViewRoot,
    registry: Registry,
    /// Per tenant, its hosts' answers (a tenant has a handful of hosts: a short list, looked up
    /// without building a key).
    pages: RwLock<HashMap<TenantId, Vec<Cached>>>,
}

struct Cached {
    host: Box<str>,
    generation: u64,
    answer: Answer,
}

/// What `GET /` answers, kept between requests.
#[derive(Clone)]
enum Answer {
    Page(Bytes),
    Redirect,
    /// The template failed; logged when it was rendered.
    Broken,
}

async fn home(State(site): State<Arc<Site>>, tenant: CurrentTenant, request: Request) -> Response {
    // Read in place: a tenant's request always carries the host the layer identified it by.
    let host = match request.extensions().get::<RequestHost>() {
        Some(RequestHost::Name(domain)) => Cow::Borrowed(domain.as_str()),
        Some(other) => Cow::Owned(other.to_string()),
        None => Cow::Borrowed(""),
    };
    let tenant = tenant.tenant();
    let answer =
        if site.config.reload { site.clone().answer(tenant.clone(), host.into_owned()).await } else { site.cached(tenant, &host).await };
    match answer {
        Answer::Page(html) => Html(html).into_response(),
        Answer::Redirect => redirect(&site.config.fallback_redirect),
        Answer::Broken => (StatusCode::INTERNAL_SERVER_ERROR, "This page cannot be shown right now.\n").into_response(),
    }
}

impl Site {
    async fn cached(self: &Arc<Self>, tenant: &Tenant, host: &str) -> Answer {
        let generation = self.registry.generation();
        if let Some(hosts) = self.pages.read().unwrap_or_else(|p| p.into_inner()).get(&tenant.id)
            && let Some(cached) = hosts.iter().find(|cached| &*cached.host == host)
            && cached.generation == generation
        {
            return cached.answer.clone();
        }
        let answer = self.clone().answer(tenant.clone(), host.to_owned()).await;
        let mut pages = self.pages.write().unwrap_or_else(|p| p.into_inner());
        if pages.len() >= MAX_CACHED_TENANTS {
            pages.retain(|_, hosts| hosts.iter().any(|cached| cached.generation == generation));
            if pages.len() >= MAX_CACHED_TENANTS {
                pages.clear();
            }
        }
        let hosts = pages.entry(tenant.id).or_default();
        hosts.retain(|cached| &*cached.host != host && cached.generation == generation);
        if hosts.len() >= MAX_HOSTS_PER_TENANT {
            hosts.clear(); // hosts a client made up (header or path identification): start again
        }
        hosts.push(Cached { host: host.into(), generation, answer: answer.clone() });
        answer
    }

    /// Decides and renders, off the async threads (it reads files).
    async fn answer(self: Arc<Self>, tenant: Tenant, host: String) -> Answer {
        let id = tenant.id;
        let work = tokio::task::spawn_blocking(move || {
            let domain = Domain::parse(&host).ok();
            let folder = match self.root.decide(&tenant, page_domain(&tenant, domain.as_ref())) {
                Decision::Own { folder } | Decision::Default { folder, .. } => folder,
                Decision::Redirect { .. } => return Answer::Redirect,
            };
            match render(&folder, &tenant, &host) {
                Ok(html) => Answer::Page(Bytes::from(html)),
                Err(err) => {
                    tracing::error!(tenant = %tenant.id, folder = %folder.display(), error = %err, "the homepage template failed");
                    Answer::Broken
                }
            }
        });
        work.await.unwrap_or_else(|err| {
            tracing::error!(tenant = %id, error = %err, "rendering the homepage stopped");
            Answer::Broken
        })
    }
}

/// 302 Found, as the fallback has always been; `Redirect::to` would send 303.
fn redirect(target: &str) -> Response {
    match HeaderValue::from_str(target) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        // Checked with the configuration; kept safe all the same.
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A file from `assets/` beside the page the request's tenant and host get. Whatever is not
/// plainly a file inside that folder is a 404, the same answer as a missing file.
async fn asset(
    State(site): State<Arc<Site>>,
    tenant: CurrentTenant,
    host: Option<axum::Extension<RequestHost>>,
    uri: Uri,
    UrlPath(path): UrlPath<String>,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "No such file.\n").into_response();
    // `%2F` decodes to `/` in `path`: a separator the client hid is refused, not followed.
    let raw = uri.path().to_ascii_lowercase();
    if raw.contains("%2f") || raw.contains("%5c") || raw.contains("%00") {
        return not_found();
    }
    let host = host.and_then(|axum::Extension(host)| Domain::parse(&host.to_string()).ok());
    let tenant = tenant.tenant().clone();
    let root = site.root.clone();
    let found = tokio::task::spawn_blocking(move || {
        // The default page's files are shared by every tenant it serves; a tenant's own are its alone.
        let (Decision::Own { folder } | Decision::Default { folder, .. }) = root.decide(&tenant, page_domain(&tenant, host.as_ref()))
        else {
            return None;
        };
        let file = file_within(&folder.join(ASSETS_FOLDER), &path)?;
        std::fs::read(&file).ok().map(|bytes| (file, bytes))
    })
    .await
    .ok()
    .flatten();
    let Some((file, bytes)) = found else { return not_found() };
    let kind = mime_guess::from_path(&file).first_or_octet_stream();
    let mut response = Response::new(Body::from(bytes));
    if let Ok(kind) = HeaderValue::from_str(kind.as_ref()) {
        response.headers_mut().insert(header::CONTENT_TYPE, kind);
    }
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
