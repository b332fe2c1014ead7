//! `[homepage]` in `tenancy.toml`, checked when the configuration is loaded.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tenancy_core::{Config, ConfigError};

/// The section's name.
pub const SECTION: &str = "homepage";

/// The section as `tenancy init` writes it: the defaults, explained.
pub const TEMPLATE: &str = include_str!("homepage.toml.template");

/// `[homepage]`: where tenants' homepages live and what happens without one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HomepageConfig {
    /// Serve homepages at all: off, the plugin adds no route and `--with-homepage` is refused.
    pub enabled: bool,
    /// The folder holding `{domain}/home.html` and `default/home.html`, relative to
    /// `tenancy.toml`'s folder.
    pub view_path: PathBuf,
    /// Create `view_path` when a homepage is created and it is missing; off, a missing folder is
    /// an error (a mount that is not there should not be papered over).
    pub auto_create_directory: bool,
    /// Where a tenant without a homepage is sent (302): a path on the same host, or an http(s) URL.
    pub fallback_redirect: String,
    /// The file new homepages are copied from; unset, a built-in page.
    pub template: Option<PathBuf>,
    /// Read templates from disk on every request, for development; off, each page is rendered
    /// once per registry change and served from memory.
    pub reload: bool,
}

impl Default for HomepageConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            view_path: PathBuf::from("homepages"),
            auto_create_directory: true,
            fallback_redirect: "/login".into(),
            template: None,
            reload: false,
        }
    }
}

impl HomepageConfig {
    /// Reads and checks `[homepage]`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the file or variable and the key.
    pub fn load(config: &Config) -> Result<Self, ConfigError> {
        let homepage: Self = config.section(SECTION)?;
        homepage.check(config)?;
        Ok(homepage)
    }

    fn check(&self, config: &Config) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid { origin: config.origin_of(&format!("{SECTION}.{key}")), message };
        if self.view_path.as_os_str().is_empty() {
            return Err(invalid("view_path", "`view_path` must name a folder".into()));
        }
        check_redirect(&self.fallback_redirect).map_err(|message| invalid("fallback_redirect", message))?;
        if let Some(template) = &self.template {
            let path = config.resolve(template);
            if !path.is_file() {
                return Err(invalid("template", format!("`{}` is not a file", path.display())));
            }
        }
        Ok(())
    }

    /// The homepages folder, resolved against the configuration's folder.
    pub fn view_root(&self, config: &Config) -> PathBuf {
        config.resolve(&self.view_path)
    }

    /// The template file, resolved, if one is configured.
    pub fn template_file(&self, config: &Config) -> Option<PathBuf> {
        self.template.as_deref().map(|path: &Path| config.resolve(path))
    }
}

/// A redirect target must be a path on the same site or an absolute http(s) URL: anything else
/// (`//evil.example`, `javascript:`, a header-splitting newline) is refused.
fn check_redirect(target: &str) -> Result<(), String> {
    if target.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("`{}` holds spaces or control characters", target.escape_debug()));
    }
    if target.starts_with('/') && !target.starts_with("//") && !target.starts_with("/\\") {
        return Ok(());
    }
    match url::Url::parse(target) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(format!("`{target}` is neither a path beginning with `/` nor an http(s) URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_paths_or_web_urls() {
        for good in ["/login", "/", "/a/b?c=d", "https://example.com/welcome", "http://localhost:8000/"] {
            check_redirect(good).unwrap_or_else(|err| panic!("{good}: {err}"));
        }
        for bad in ["login", "//evil.example", "/\\evil.example", "javascript:alert(1)", "/a\r\nSet-Cookie: x", "ftp://x/", ""] {
            assert!(check_redirect(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_template_holds_the_defaults() {
        #[derive(Deserialize)]
        struct File {
            homepage: HomepageConfig,
        }
        let file: File = toml::from_str(TEMPLATE).unwrap();
        assert_eq!(file.homepage, HomepageConfig::default());
    }

    #[test]
    fn defaults_are_valid() {
        let config = Config::defaults_at(Path::new("/srv/app"));
        let homepage = HomepageConfig::load(&config).unwrap();
        assert_eq!(homepage, HomepageConfig::default());
        assert_eq!(homepage.view_root(&config), Path::new("/srv/app/homepages"));
    }
}
