//! `m365sync.toml`: how the service itself runs (database, admin API, key, workers).
//!
//! Every setting can also come from the environment, which wins over the file, so a container
//! or a service unit needs no file at all: `M365SYNC_` and the setting's name in capitals
//! (`M365SYNC_DATABASE_URL`, `M365SYNC_ADMIN_LISTEN`, ...; [`ENV_SETTINGS`] lists them). A
//! setting may instead be read from a file named by the same variable with `_FILE` appended
//! (`M365SYNC_DATABASE_URL_FILE=/run/secrets/db`), as container secrets are mounted: a database
//! URL carries a password and should not sit in the process's environment.
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
    /// An environment variable holds a value its setting cannot take, or names a file that
    /// cannot be read.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable, e.g. `M365SYNC_WORKERS`.
        var: String,
        /// What is wrong with it and what the setting expects.
        message: String,
    },
}

/// The settings the environment can set, by the name of their variable; each also accepts
/// `NAME_FILE` (the value read from that file, trimmed).
pub const ENV_SETTINGS: [&str; 11] = [
    "M365SYNC_DATABASE_URL",
    "M365SYNC_ADMIN_LISTEN",
    "M365SYNC_KEY_FILE",
    "M365SYNC_EXTRA_CA_FILE",
    "M365SYNC_WORKERS",
    "M365SYNC_ADMIN_TOKEN_FILE",
    "M365SYNC_LEASE_SECS",
    "M365SYNC_PLUGIN_CACHE_DIR",
    "M365SYNC_OTLP_ENDPOINT",
    "M365SYNC_OTLP_SERVICE_NAME",
    "M365SYNC_NOTIFICATION_URL",
];

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
    /// A PEM file of one or more certificates to trust besides the operating system's roots
    /// (a corporate proxy's CA, or the simulator's local CA), for Graph, the identity platform
    /// and the OTLP endpoint.
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
    /// Where OpenTelemetry traces go: an OTLP/HTTP collector's base URL such as
    /// `http://127.0.0.1:4318` (spans are POSTed, protobuf-encoded, to its `/v1/traces`).
    /// Unset (the default): no trace leaves the process.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` the traces carry (default `m365sync`), to tell deployments apart.
    pub otlp_service_name: Option<String>,
    /// The public https URL at which Microsoft Graph reaches this service's notification
    /// receiver (the admin listener's `POST /notifications`, through a reverse proxy or load
    /// balancer that forwards `/notifications` and `/notifications/lifecycle`), such as
    /// `https://sync.example.com/notifications`. Unset (the default): no subscriptions are
    /// made and the cadence alone syncs. Every process of a deployment names the same URL.
    pub notification_url: Option<String>,
    /// Marks the console's sign-in cookie `Secure` (sent over https only) whatever the request
    /// says. Set it when browsers reach the admin listener through TLS; without it the cookie
    /// is `Secure` only when the proxy sends `X-Forwarded-Proto: https`.
    pub console_secure_cookie: bool,
    /// The base URL browsers reach the admin listener at, such as `https://sync.example.com`:
    /// the console's "Sign in with Microsoft" for a delegated tenant asks the identity platform
    /// to send the browser back to `{public_url}/oauth/callback`, which the app registration
    /// must list. Unset (the default): `http://` and the admin listener's address, which the
    /// identity platform accepts for loopback (`127.0.0.1`, `localhost`) only.
    pub public_url: Option<String>,
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
            otlp_endpoint: None,
            otlp_service_name: None,
            notification_url: None,
            console_secure_cookie: false,
            public_url: None,
        }
    }
}

impl ServiceConfig {
    /// Reads `path`, or `m365sync.toml` if it exists, or uses the defaults; then the
    /// environment's settings replace the file's ([`ServiceConfig::with_env`]).
    pub fn load(path: Option<&Path>) -> Result<ServiceConfig, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
            None => return ServiceConfig::default().with_env(|v| std::env::var(v).ok()),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path)?.with_env(|v| std::env::var(v).ok())
    }

    /// These settings with every one `var` (the environment, or a map in tests) sets replaced:
    /// `M365SYNC_<SETTING>` holds the value, `M365SYNC_<SETTING>_FILE` a file holding it. An
    /// empty variable counts as unset; setting both forms of one is refused, as is a value the
    /// setting cannot take, with the variable named.
    pub fn with_env(
        mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<ServiceConfig, ConfigError> {
        let bad = |name: &str, message: String| ConfigError::Env {
            var: name.to_string(),
            message,
        };
        let value = |name: &str| -> Result<Option<String>, ConfigError> {
            let direct = var(name).filter(|v| !v.trim().is_empty());
            let file_var = format!("{name}_FILE");
            let from_file = var(&file_var).filter(|v| !v.trim().is_empty());
            match (direct, from_file) {
                (Some(_), Some(_)) => Err(bad(
                    name,
                    format!("set either {name} or {file_var}, not both"),
                )),
                (Some(v), None) => Ok(Some(v.trim().to_string())),
                (None, Some(file)) => std::fs::read_to_string(file.trim())
                    .map(|v| Some(v.trim().to_string()))
                    .map_err(|e| bad(&file_var, format!("cannot read {}: {e}", file.trim()))),
                (None, None) => Ok(None),
            }
        };
        let number = |name: &str, v: String| -> Result<u64, ConfigError> {
            v.parse::<u64>()
                .map_err(|_| bad(name, format!("'{v}' is not a whole number")))
        };
        if let Some(v) = value("M365SYNC_DATABASE_URL")? {
            self.database_url = v;
        }
        if let Some(v) = value("M365SYNC_ADMIN_LISTEN")? {
            self.admin_listen = v.parse().map_err(|_| {
                bad(
                    "M365SYNC_ADMIN_LISTEN",
                    format!("'{v}' is not an address and port such as 0.0.0.0:8080"),
                )
            })?;
        }
        if let Some(v) = value("M365SYNC_KEY_FILE")? {
            self.key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = value("M365SYNC_EXTRA_CA_FILE")? {
            self.extra_ca_file = Some(PathBuf::from(v));
        }
        if let Some(v) = value("M365SYNC_WORKERS")? {
            let n = number("M365SYNC_WORKERS", v)?;
            if n == 0 {
                return Err(bad("M365SYNC_WORKERS", "must be at least 1".into()));
            }
            self.workers = n as usize;
        }
        if let Some(v) = value("M365SYNC_ADMIN_TOKEN_FILE")? {
            self.admin_token_file = Some(PathBuf::from(v));
        }
        if let Some(v) = value("M365SYNC_LEASE_SECS")? {
            self.lease_secs = number("M365SYNC_LEASE_SECS", v)?;
        }
        if let Some(v) = value("M365SYNC_PLUGIN_CACHE_DIR")? {
            self.plugin_cache_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = value("M365SYNC_OTLP_ENDPOINT")? {
            self.otlp_endpoint = Some(v);
        }
        if let Some(v) = value("M365SYNC_OTLP_SERVICE_NAME")? {
            self.otlp_service_name = Some(v);
        }
        if let Some(v) = value("M365SYNC_CONSOLE_SECURE_COOKIE")? {
            self.console_secure_cookie = match v.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(bad(
                        "M365SYNC_CONSOLE_SECURE_COOKIE",
                        format!("'{v}' is not true or false"),
                    ))
                }
            };
        }
        if let Some(v) = value("M365SYNC_NOTIFICATION_URL")? {
            self.notification_url = Some(v);
        }
        if let Some(v) = value("M365SYNC_PUBLIC_URL")? {
            self.public_url = Some(v);
        }
        self.check_notification_url()?;
        self.check_public_url()?;
        Ok(self)
    }

    /// A notification URL must be an absolute http(s) URL without a query (Graph appends
    /// `?validationToken=`).
    pub fn check_notification_url(&self) -> Result<(), ConfigError> {
        let Some(url) = &self.notification_url else {
            return Ok(());
        };
        let ok = (url.starts_with("https://") || url.starts_with("http://"))
            && !url.contains('?')
            && url.len() > "https://".len();
        if ok {
            return Ok(());
        }
        Err(ConfigError::Env {
            var: "notification_url (M365SYNC_NOTIFICATION_URL)".into(),
            message: format!(
                "'{url}' is not a URL Graph can post to: give the public https address of the receiver, such as https://sync.example.com/notifications, without a query"
            ),
        })
    }

    /// A public URL must be an absolute http(s) URL without a path beyond `/`, query or
    /// fragment: the callback's path is appended to it.
    pub fn check_public_url(&self) -> Result<(), ConfigError> {
        let Some(url) = &self.public_url else {
            return Ok(());
        };
        let ok = reqwest::Url::parse(url).is_ok_and(|u| {
            matches!(u.scheme(), "https" | "http")
                && u.host().is_some()
                && u.query().is_none()
                && u.fragment().is_none()
        });
        if ok {
            return Ok(());
        }
        Err(ConfigError::Env {
            var: "public_url (M365SYNC_PUBLIC_URL)".into(),
            message: format!(
                "'{url}' is not the address browsers reach the admin listener at: give it as https://sync.example.com, without a query"
            ),
        })
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
                let pem = std::fs::read(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?;
                // A file without a certificate would silently trust nothing more.
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(ConfigError::Parse {
                        path: p.clone(),
                        message: "extra_ca_file holds no PEM certificate (-----BEGIN CERTIFICATE-----); point it at the CA's certificate in PEM form".into(),
                    });
                }
                Ok(pem)
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

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_public_url_is_a_base_address() {
        let file = ServiceConfig::parse(
            "public_url = \"https://sync.example.com\"\n",
            Path::new("m.toml"),
        )
        .unwrap()
        .with_env(vars(&[]))
        .unwrap();
        assert_eq!(file.public_url.as_deref(), Some("https://sync.example.com"));
        let env = ServiceConfig::default()
            .with_env(vars(&[("M365SYNC_PUBLIC_URL", "http://127.0.0.1:8080")]))
            .unwrap();
        assert_eq!(env.public_url.as_deref(), Some("http://127.0.0.1:8080"));
        for bad in [
            "sync.example.com",
            "ftp://x.example",
            "https://x.example/?a=1",
        ] {
            let err = ServiceConfig::default()
                .with_env(vars(&[("M365SYNC_PUBLIC_URL", bad)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("M365SYNC_PUBLIC_URL"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_console_cookie_is_made_secure_by_file_or_environment() {
        let file = ServiceConfig::parse("console_secure_cookie = true\n", Path::new("m.toml"));
        assert!(file.unwrap().console_secure_cookie);
        let env =
            ServiceConfig::default().with_env(vars(&[("M365SYNC_CONSOLE_SECURE_COOKIE", "1")]));
        assert!(env.unwrap().console_secure_cookie);
        assert!(!ServiceConfig::default().console_secure_cookie);
        let err = ServiceConfig::default()
            .with_env(vars(&[("M365SYNC_CONSOLE_SECURE_COOKIE", "yes")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("M365SYNC_CONSOLE_SECURE_COOKIE"), "{err}");
    }

    #[test]
    fn the_environment_wins_over_the_file_and_names_a_bad_variable() {
        let file = ServiceConfig::parse(
            "database_url = \"sqlite://file.db\"\nworkers = 2\n",
            Path::new("m.toml"),
        )
        .unwrap();
        let secret = std::env::temp_dir().join(format!("m365sync-db-url-{}", std::process::id()));
        std::fs::write(&secret, "postgres://app:pw@db/m365sync\n").unwrap();
        let cfg = file
            .clone()
            .with_env(vars(&[
                ("M365SYNC_DATABASE_URL_FILE", secret.to_str().unwrap()),
                ("M365SYNC_ADMIN_LISTEN", "0.0.0.0:9090"),
                ("M365SYNC_WORKERS", "4"),
                ("M365SYNC_LEASE_SECS", ""),
            ]))
            .unwrap();
        std::fs::remove_file(&secret).unwrap();
        assert_eq!(cfg.database_url, "postgres://app:pw@db/m365sync");
        assert_eq!(cfg.admin_listen.to_string(), "0.0.0.0:9090");
        assert_eq!(cfg.workers, 4);
        assert_eq!(cfg.lease_secs, 30, "an empty variable counts as unset");
        for (pairs, expect) in [
            (
                vec![("M365SYNC_WORKERS", "many")],
                "M365SYNC_WORKERS: 'many'",
            ),
            (vec![("M365SYNC_WORKERS", "0")], "M365SYNC_WORKERS: must be"),
            (
                vec![("M365SYNC_ADMIN_LISTEN", "8080")],
                "M365SYNC_ADMIN_LISTEN",
            ),
            (
                vec![
                    ("M365SYNC_DATABASE_URL", "sqlite://a.db"),
                    ("M365SYNC_DATABASE_URL_FILE", "/x"),
                ],
                "not both",
            ),
            (
                vec![("M365SYNC_DATABASE_URL_FILE", "/nonexistent/m365sync-db")],
                "M365SYNC_DATABASE_URL_FILE: cannot read /nonexistent/m365sync-db",
            ),
        ] {
            let err = file.clone().with_env(vars(&pairs)).unwrap_err().to_string();
            assert!(err.contains(expect), "{err}");
        }
    }
}
