//! `m365sync.toml`: how the service itself runs (database, admin API, key, workers).
//!
//! Orgs and tenants are data, not configuration: they live in the database and are declared
//! with `m365sync apply` (see [`crate::apply`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use m365sync_store::{SecretKey, SecretKeyError};

/// The default configuration file, read from the working directory when present.
pub const DEFAULT_PATH: &str = "m365sync.toml";

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`ServiceConfig`] (unknown fields are refused).
    #[error("{path} is not valid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with its position.
        message: String,
    },
    /// The key that seals secrets is missing or malformed.
    #[error(transparent)]
    Key(#[from] SecretKeyError),
}

/// The service's settings. Every field has a default, so no file is needed to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// `sqlite://m365sync.db` (default) or `postgres://user@host/db`.
    pub database_url: String,
    /// Where the admin HTTP API listens.
    pub admin_listen: SocketAddr,
    /// A file holding the base64 key that seals secrets; without it, `M365SYNC_SECRET_KEY`.
    pub key_file: Option<PathBuf>,
    /// A PEM certificate to trust besides the system roots (the simulator's local CA).
    pub extra_ca_file: Option<PathBuf>,
    /// Mailboxes synced at once by this process.
    pub workers: usize,
    /// A file holding the admin API's bearer token; without it, `M365SYNC_ADMIN_TOKEN`.
    pub admin_token_file: Option<PathBuf>,
    /// Seconds a mailbox lease lasts without renewal: how soon another process takes over
    /// the mailboxes of one that died.
    pub lease_secs: u64,
    /// Where compiled plugins are kept, so a restart does not recompile them (default:
    /// `$XDG_CACHE_HOME/m365sync/plugins`, else `~/.cache/m365sync/plugins`).
    pub plugin_cache_dir: Option<PathBuf>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            database_url: "sqlite://m365sync.db".into(),
            admin_listen: "127.0.0.1:8080".parse().expect("literal address"),
            key_file: None,
            extra_ca_file: None,
            workers: 8,
            admin_token_file: None,
            lease_secs: 30,
            plugin_cache_dir: None,
        }
    }
}

impl ServiceConfig {
    /// Reads `path`, or `m365sync.toml` if it exists, or uses the defaults.
    pub fn load(path: Option<&Path>) -> Result<ServiceConfig, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
            None => return Ok(ServiceConfig::default()),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path)
    }

    /// Parses configuration text; `path` names it in errors (which carry the line).
    pub fn parse(text: &str, path: &Path) -> Result<ServiceConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The key that seals secrets: from `key_file`, else from the environment.
    pub fn secret_key(&self) -> Result<SecretKey, ConfigError> {
        Ok(match &self.key_file {
            Some(file) => SecretKey::from_file(file)?,
            None => SecretKey::from_env()?,
        })
    }

    /// The admin API's token: from `admin_token_file`, else `M365SYNC_ADMIN_TOKEN`; `None`
    /// when neither is set (the service then refuses to start its API).
    pub fn admin_token(&self) -> Result<Option<String>, ConfigError> {
        if let Some(file) = &self.admin_token_file {
            let token = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
                path: file.clone(),
                source,
            })?;
            let token = token.trim().to_string();
            if token.len() < 16 {
                return Err(ConfigError::Parse {
                    path: file.clone(),
                    message: "the admin token must be at least 16 characters".into(),
                });
            }
            return Ok(Some(token));
        }
        Ok(std::env::var("M365SYNC_ADMIN_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()))
    }

    /// The plugin engine's settings: the defaults with the artifact cache directory.
    pub fn engine_config(&self) -> m365sync_plugin::engine::EngineConfig {
        let cache_dir = self.plugin_cache_dir.clone().or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|c| c.join("m365sync").join("plugins"))
        });
        m365sync_plugin::engine::EngineConfig {
            cache_dir,
            ..m365sync_plugin::engine::EngineConfig::default()
        }
    }

    /// The extra CA certificate's bytes, if one is configured.
    pub fn extra_ca(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        self.extra_ca_file
            .as_ref()
            .map(|p| {
                std::fs::read(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_bad_values_name_the_file_and_line() {
        let err = ServiceConfig::parse(
            "database_url = \"sqlite://x.db\"\nworkerz = 3\n",
            Path::new("m.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("m.toml") && err.contains("line 2") && err.contains("workerz"),
            "{err}"
        );
        let err = ServiceConfig::parse("admin_listen = \"nowhere\"\n", Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
        let ok = ServiceConfig::parse("workers = 2\n", Path::new("m.toml")).unwrap();
        assert_eq!(
            (ok.workers, ok.database_url.as_str()),
            (2, "sqlite://m365sync.db")
        );
    }
}
