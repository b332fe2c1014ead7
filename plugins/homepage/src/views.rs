//! The homepages folder: which page serves a tenant's domain, and making and removing pages.
//!
//! ```text
//! homepages/
//!   default/home.html          served to tenants without a page of their own
//!   acme.example/home.html     Acme's page on acme.example
//!   acme.example/assets/…      its files, at /assets/… on that host
//!   acme.example/.tenant       the id of the tenant the folder belongs to
//! ```
//!
//! Folder names are [`Domain`]s, which hold no `/`, no `..` and no leading `-`; every file read
//! is canonicalized and must stay under the folder it was asked from, so a symlink pointing
//! outside is refused like a `..`. The `.tenant` marker keeps a folder its owner's: a domain
//! removed from one tenant and given to another does not hand over the first one's page.

use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use tenancy_core::{Domain, Tenant, TenantId};

/// The folder of the page served to tenants without one of their own.
pub const DEFAULT_FOLDER: &str = "default";
/// The page's file in each folder.
pub const PAGE_FILE: &str = "home.html";
/// The folder of a page's static files.
pub const ASSETS_FOLDER: &str = "assets";
/// The file naming the tenant a folder belongs to.
const OWNER_FILE: &str = ".tenant";

/// The page made for new homepages when `homepage.template` is not set.
pub const BUILT_IN_TEMPLATE: &str = include_str!("built_in_home.html");

/// What `GET /` on one of a tenant's hosts gets, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Decision {
    /// The page in the domain's own folder.
    Own {
        /// The folder the page and its includes are read from.
        folder: PathBuf,
    },
    /// The default page.
    Default {
        /// `{view_path}/default`.
        folder: PathBuf,
        /// Why not a page of its own.
        reason: String,
    },
    /// A redirect to `homepage.fallback_redirect`.
    Redirect {
        /// Why.
        reason: String,
    },
}

/// The homepages folder.
#[derive(Debug, Clone)]
pub struct ViewRoot {
    path: PathBuf,
}

impl ViewRoot {
    /// The folder at `path` (which need not exist yet).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder of `domain`'s page, or `None` for the one domain name the default page's folder
    /// takes.
    pub fn folder_of(&self, domain: &Domain) -> Option<PathBuf> {
        (domain.as_str() != DEFAULT_FOLDER).then(|| self.path.join(domain.as_str()))
    }

    /// The tenant a folder belongs to, when it says.
    pub fn owner(folder: &Path) -> Option<TenantId> {
        let text = std::fs::read_to_string(folder.join(OWNER_FILE)).ok()?;
        TenantId::parse(text.trim()).ok()
    }

    /// Which folder of the tenant's pages answers a request on `domain` (the request's host when
    /// it is one of the tenant's domains; see [`page_domain`]), reading the disk.
    pub fn decide(&self, tenant: &Tenant, domain: Option<&Domain>) -> Decision {
        if !tenant.homepage_enabled {
            return Decision::Redirect { reason: "the tenant's homepage is disabled".into() };
        }
        let reason = match domain.and_then(|d| self.folder_of(d).map(|folder| (d, folder))) {
            None if domain.is_some() => format!("`{DEFAULT_FOLDER}` is the default page's folder, not a domain's"),
            None => "the tenant has no domain".into(),
            Some((domain, folder)) => match (Self::owner(&folder), self.page_in(&folder)) {
                (Some(owner), Some(_)) if owner != tenant.id => {
                    format!("`{}` belongs to tenant {owner}, not to this one", self.show(&folder, domain))
                }
                (_, Some(folder)) => return Decision::Own { folder },
                (_, None) => format!("no `{}`", self.show(&folder.join(PAGE_FILE), domain)),
            },
        };
        match self.page_in(&self.path.join(DEFAULT_FOLDER)) {
            Some(folder) => Decision::Default { folder, reason },
            None => Decision::Redirect { reason: format!("{reason}, and no default page `{DEFAULT_FOLDER}/{PAGE_FILE}`") },
        }
    }

    /// The canonical folder if it holds a page that stays inside the root (no symlink out).
    fn page_in(&self, folder: &Path) -> Option<PathBuf> {
        let root = self.path.canonicalize().ok()?;
        let folder = folder.canonicalize().ok()?;
        let page = folder.join(PAGE_FILE).canonicalize().ok()?;
        (folder.starts_with(&root) && folder != root && page.starts_with(&folder) && page.is_file()).then_some(folder)
    }

    fn show(&self, path: &Path, domain: &Domain) -> String {
        path.strip_prefix(&self.path).map(|p| p.display().to_string()).unwrap_or_else(|_| domain.to_string())
    }

    /// Makes `domain`'s page for `tenant` from `template` (keeping an existing page unless
    /// `force`), marks the folder the tenant's, and says what it did. Files are written whole
    /// (a temporary file renamed), so a server never reads half a page.
    ///
    /// # Errors
    /// [`PageError`]: the folder is another tenant's (without `force`), the root is missing and
    /// may not be created, or the disk refused.
    pub fn create_page(&self, tenant: &TenantId, domain: &Domain, template: &str, options: CreateOptions) -> Result<Created, PageError> {
        let folder = self.folder_of(domain).ok_or_else(|| PageError::ReservedName(domain.clone()))?;
        if !self.path.is_dir() {
            if !options.create_root {
                return Err(PageError::NoRoot(self.path.clone()));
            }
            std::fs::create_dir_all(&self.path).map_err(|source| PageError::Io { path: self.path.clone(), source })?;
        }
        let root = self.path.canonicalize().map_err(|source| PageError::Io { path: self.path.clone(), source })?;
        let previous_owner = Self::owner(&folder);
        match previous_owner {
            Some(owner) if owner != *tenant && !options.force => return Err(PageError::OtherOwner { folder, owner }),
            _ => {}
        }
        let made_folder = !folder.exists();
        if made_folder {
            std::fs::create_dir(&folder).map_err(|source| PageError::Io { path: folder.clone(), source })?;
        }
        // A folder that is a symlink out of the root is not ours to write into.
        let canonical = folder.canonicalize().map_err(|source| PageError::Io { path: folder.clone(), source })?;
        if !canonical.starts_with(&root) || canonical == root {
            return Err(PageError::OutsideRoot(folder));
        }
        let page = folder.join(PAGE_FILE);
        let kept = page.exists() && !options.force;
        if !kept {
            write_whole(&page, template.as_bytes())?;
        }
        write_whole(&folder.join(OWNER_FILE), format!("{tenant}\n").as_bytes())?;
        Ok(Created { page, made_folder, kept, previous_owner })
    }

    /// Removes the page folders that belong to `tenant`: those marked as its own, and those of
    /// its domains that name no owner. Returns the folders removed.
    ///
    /// # Errors
    /// When a folder cannot be read or removed; those removed before stay removed, and running
    /// it again finishes the work.
    pub fn remove_pages_of(&self, tenant: &Tenant) -> Result<Vec<PathBuf>, PageError> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(PageError::Io { path: self.path.clone(), source }),
        };
        let own_domains: Vec<&str> = tenant.domains.iter().map(|d| d.domain.as_str()).collect();
        let mut removed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| PageError::Io { path: self.path.clone(), source })?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // A symlinked folder is never followed, so never removed through.
            if name == DEFAULT_FOLDER || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let folder = entry.path();
            let theirs = match Self::owner(&folder) {
                Some(owner) => owner == tenant.id,
                None => own_domains.contains(&name),
            };
            if theirs {
                std::fs::remove_dir_all(&folder).map_err(|source| PageError::Io { path: folder.clone(), source })?;
                removed.push(folder);
            }
        }
        Ok(removed)
    }

    /// Undoes a [`ViewRoot::create_page`] that made a new page: removes what it wrote.
    ///
    /// # Errors
    /// When the disk refuses.
    pub fn undo_create(&self, created: &Created) -> Result<(), PageError> {
        let Some(folder) = created.page.parent() else { return Ok(()) };
        let io = |source| PageError::Io { path: folder.to_path_buf(), source };
        let gone_already = |result: io::Result<()>| match result {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        };
        if created.made_folder {
            return gone_already(std::fs::remove_dir_all(folder)).map_err(io);
        }
        if !created.kept {
            gone_already(std::fs::remove_file(&created.page)).map_err(io)?;
        }
        match created.previous_owner {
            Some(owner) => write_whole(&folder.join(OWNER_FILE), format!("{owner}\n").as_bytes()),
            None => gone_already(std::fs::remove_file(folder.join(OWNER_FILE))).map_err(io),
        }
    }
}

/// How [`ViewRoot::create_page`] may proceed.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateOptions {
    /// Replace an existing page, and take the folder over from another tenant.
    pub force: bool,
    /// Create the root folder when it is missing (`homepage.auto_create_directory`).
    pub create_root: bool,
}

/// What [`ViewRoot::create_page`] did.
#[derive(Debug, Clone)]
pub struct Created {
    /// The page file.
    pub page: PathBuf,
    /// Whether the folder was made now.
    pub made_folder: bool,
    /// Whether an existing page was kept.
    pub kept: bool,
    /// The folder's owner before, restored by [`ViewRoot::undo_create`].
    pub previous_owner: Option<TenantId>,
}

/// A page could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The folder is marked as another tenant's.
    #[error("`{}` belongs to tenant {owner}", folder.display())]
    OtherOwner {
        /// The folder.
        folder: PathBuf,
        /// Its owner.
        owner: TenantId,
    },
    /// `view_path` is missing and `auto_create_directory` is off.
    #[error("the homepages folder `{}` does not exist, and `homepage.auto_create_directory` is off", .0.display())]
    NoRoot(PathBuf),
    /// A folder leads out of the homepages folder.
    #[error("`{}` leads out of the homepages folder", .0.display())]
    OutsideRoot(PathBuf),
    /// The domain is the name of the default page's folder.
    #[error("`{0}` cannot have a page of its own: its folder would be the default page's")]
    ReservedName(Domain),
    /// The disk refused.
    #[error("cannot write `{}`", path.display())]
    Io {
        /// What was being written or read.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The domain whose folder answers a request on `host`: the host when it is one of the tenant's
/// domains, else (identified by subdomain, path or header) the tenant's primary domain. A folder
/// is never chosen by a name the tenant does not own.
pub fn page_domain<'a>(tenant: &'a Tenant, host: Option<&Domain>) -> Option<&'a Domain> {
    host.and_then(|host| tenant.domains.iter().map(|d| &d.domain).find(|d| *d == host)).or_else(|| tenant.primary_domain())
}

/// Resolves `name` (a template name, or an asset path from a URL) inside `folder`: relative,
/// plain segments only (no `..`, `.`, empty or hidden segments, no backslash or NUL), and after
/// following symlinks still inside `folder`. `None` when it is not, or when there is no such file.
pub fn file_within(folder: &Path, name: &str) -> Option<PathBuf> {
    if name.is_empty() || name.contains(['\\', '\0']) {
        return None;
    }
    let relative = Path::new(name);
    let plain = relative.components().all(|part| matches!(part, Component::Normal(s) if !s.to_string_lossy().starts_with('.')));
    if !plain || name.split('/').any(str::is_empty) {
        return None;
    }
    let root = folder.canonicalize().ok()?;
    let file = root.join(relative).canonicalize().ok()?;
    (file.starts_with(&root) && file.is_file()).then_some(file)
}

fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), PageError> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let io = |source| PageError::Io { path: path.to_path_buf(), source };
    // Unique per process and write: two writers never share a temporary file.
    let serial = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = path.with_extension(format!("tmp-{}-{serial}", std::process::id()));
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_names_inside_the_folder_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("acme.test");
        std::fs::create_dir_all(folder.join("assets/css")).unwrap();
        std::fs::write(folder.join("assets/css/site.css"), "body{}").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
        std::fs::write(folder.join(".tenant"), "x").unwrap();
        assert!(file_within(&folder, "assets/css/site.css").is_some());
        for hostile in [
            "../secret.txt",
            "assets/../../secret.txt",
            "/etc/passwd",
            "assets//css/site.css",
            "./assets/css/site.css",
            ".tenant",
            "assets\\css\\site.css",
            "assets/css/site.css\0",
            "",
            "assets",
            "missing.css",
        ] {
            assert!(file_within(&folder, hostile).is_none(), "{hostile:?} resolved");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret.txt"), folder.join("assets/leak.txt")).unwrap();
            std::os::unix::fs::symlink(dir.path(), folder.join("assets/up")).unwrap();
            assert!(file_within(&folder, "assets/leak.txt").is_none(), "a symlink out of the folder was followed");
            assert!(file_within(&folder, "assets/up/secret.txt").is_none());
            std::os::unix::fs::symlink(folder.join("assets/css/site.css"), folder.join("assets/inside.css")).unwrap();
            assert!(file_within(&folder, "assets/inside.css").is_some(), "a symlink within the folder is fine");
        }
    }
}
