//! The database: one store interface over SQLite (the embedded default) and PostgreSQL
//! (several service processes sharing the work).
//!
//! Both run the same SQL through sqlx's `Any` driver: the migrations in `migrations/` keep the
//! two schemas identical but for two column types, times are epoch milliseconds and flags 0/1,
//! so every query here is written once. The few statements that must differ (lease claims) ask
//! [`Backend`].
//!
//! The modules, one concern each (a `Store` method lives in the file named for what it does):
//! - [`address`]: what an email address and a domain are, normalised and checked;
//! - [`attachments`]: attachments of emails, their bytes content-addressed in `blobs` (E5);
//! - [`crm`]: the CRM's contacts and entities, written once over a record trait (`crm/`);
//! - [`events`]: calendar settings, rooms, CRM edits, the outbox, reads and the page commit (`events/`);
//! - [`failures`]: failed records as admins see them, parking and unparking (E10);
//! - [`folders`]: a mailbox's folder tree, the reconcile after a full round, verify's reads;
//! - [`logs`]: the run log as admins read it;
//! - [`mail_outbox`]: email sent from the CRM (E15): the outbox, claims, and sent copies met;
//! - [`mailboxes`]: CRM users and their mailboxes (own and shared), and mailbox health;
//! - [`matching`]: the matching job's queue, candidates, matches and per-org lease;
//! - [`plugins`]: the plugin registry (blobs by digest, active versions, history);
//! - [`shadows`]: shadow runs (a candidate plugin beside the version in force, its counts and diff);
//! - [`review`]: a contact's timeline, a user's review list, the mass action;
//! - [`rules`]: exclusion rules per org, tenant and user;
//! - [`schedule`]: due runs, the mailboxes a run owes, and the leases on mailboxes;
//! - [`secrets`]: encryption of credentials at rest;
//! - [`subscriptions`]: Graph change-notification subscriptions, the wake-ups notifications
//!   leave on mailboxes, the rounds they start, and the cross-process wake (LISTEN/NOTIFY);
//! - [`sync`]: cursors, runs, and the per-page commit of a mail folder's delta;
//! - [`tenants`]: orgs, tenants, their secrets and settings;
//! - [`tokens`]: the admin API's tokens for org admins and CRM users;
//! - [`wal`]: keeping SQLite's write-ahead log short under continuous writes.
//!
//! This file holds the [`Store`] handle, opening and migrating a database, and [`StoreError`].

// A rule for every module here: a statement with RETURNING is read with `fetch_all`, never
// `fetch_one`/`fetch_optional`. SQLite completes (and, outside a transaction, commits) such a
// statement only when it is stepped to the end; a half-read one leaves its connection holding
// the write lock while it idles in the pool, and every other writer waits out busy_timeout.

pub mod address;
pub mod attachments;
pub mod crm;
pub mod decisions;
pub mod events;
pub mod failures;
pub mod folders;
pub mod logs;
pub mod mail_outbox;
pub mod mailboxes;
pub mod match_failures;
pub mod matching;
pub mod plugins;
pub mod review;
pub mod rules;
pub mod schedule;
pub mod secrets;
pub mod shadows;
pub mod subscriptions;
pub mod sync;
pub mod tenants;
pub mod tokens;
pub mod wal;

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Executor};

pub use secrets::{SecretKey, SecretKeyError};

/// How long a SQLite statement waits for a lock another connection holds, in ms.
pub(crate) const BUSY_TIMEOUT_MS: u64 = 10_000;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: one file, the embedded default.
    Sqlite,
    /// PostgreSQL: a server several service processes share.
    Postgres,
}

/// Why a store operation failed. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names neither SQLite nor PostgreSQL (the URL as given).
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// The database could not be opened: one line saying which database (its password
    /// redacted), what failed and what to do. The driver's error is folded into `reason`
    /// once, not chained: its own causes repeat the same SQLite message.
    #[error("cannot open database {url}: {reason}; {advice}")]
    Connect {
        /// The URL, its password redacted.
        url: String,
        /// What failed, in the driver's or the file system's words.
        reason: String,
        /// What to do about it.
        advice: String,
    },
    /// A migration failed.
    #[error("cannot bring the database schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A statement failed: the database's own fault, not the caller's.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The record asked for does not exist, or belongs to another org or tenant; the message
    /// says which and how to find the right one.
    #[error("{0}")]
    NotFound(String),
    /// The caller's value was refused; the message names the field, the value and the fix.
    #[error("{0}")]
    Invalid(String),
    /// A worker's lease on a mailbox ran out and another worker took the mailbox over.
    #[error("mailbox {mailbox_id}: this worker's lease ran out and another worker took the mailbox over; its page was not stored")]
    LeaseLost {
        /// The mailbox whose lease was lost.
        mailbox_id: i64,
    },
    /// A stored secret could not be decrypted (a wrong key, or a damaged value).
    #[error("cannot decrypt a stored secret: {0}")]
    Secret(#[from] secrets::SecretError),
}

/// A handle on the database. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    key: SecretKey,
    /// The URL the store was opened with, for PostgreSQL's LISTEN connection (never logged).
    url: String,
    /// Heavy commits so far, for the write-ahead log's restarts ([`wal`]).
    commits: wal::CommitCounter,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the epoch, the store's time unit.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The schema's versions, oldest first: (version, name, SQLite text, PostgreSQL text).
/// A change is a new entry (and a new file in both `migrations/` folders), never an edit.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "service",
        include_str!("../migrations/sqlite/0002_service.sql"),
        include_str!("../migrations/postgres/0002_service.sql"),
    ),
    (
        3,
        "crm",
        include_str!("../migrations/sqlite/0003_crm.sql"),
        include_str!("../migrations/postgres/0003_crm.sql"),
    ),
    (
        4,
        "calendar",
        include_str!("../migrations/sqlite/0004_calendar.sql"),
        include_str!("../migrations/postgres/0004_calendar.sql"),
    ),
    (
        5,
        "event_matching",
        include_str!("../migrations/sqlite/0005_event_matching.sql"),
        include_str!("../migrations/postgres/0005_event_matching.sql"),
    ),
    (
        6,
        "folders",
        include_str!("../migrations/sqlite/0006_folders.sql"),
        include_str!("../migrations/postgres/0006_folders.sql"),
    ),
    (
        7,
        "mail_outbox",
        include_str!("../migrations/sqlite/0007_mail_outbox.sql"),
        include_str!("../migrations/postgres/0007_mail_outbox.sql"),
    ),
    (
        8,
        "calendar_outbox",
        include_str!("../migrations/sqlite/0008_calendar_outbox.sql"),
        include_str!("../migrations/postgres/0008_calendar_outbox.sql"),
    ),
    (
        9,
        "run_figures",
        include_str!("../migrations/sqlite/0009_run_figures.sql"),
        include_str!("../migrations/postgres/0009_run_figures.sql"),
    ),
    (
        12,
        "plugin_installs",
        include_str!("../migrations/sqlite/0012_plugin_installs.sql"),
        include_str!("../migrations/postgres/0012_plugin_installs.sql"),
    ),
    (
        13,
        "subscriptions",
        include_str!("../migrations/sqlite/0013_subscriptions.sql"),
        include_str!("../migrations/postgres/0013_subscriptions.sql"),
    ),
    (
        14,
        "plugin_shadows",
        include_str!("../migrations/sqlite/0014_plugin_shadows.sql"),
        include_str!("../migrations/postgres/0014_plugin_shadows.sql"),
    ),
    (
        15,
        "mailbox_budget",
        include_str!("../migrations/sqlite/0015_mailbox_budget.sql"),
        include_str!("../migrations/postgres/0015_mailbox_budget.sql"),
    ),
    (
        16,
        "skipped_attachments",
        include_str!("../migrations/sqlite/0016_skipped_attachments.sql"),
        include_str!("../migrations/postgres/0016_skipped_attachments.sql"),
    ),
    (
        17,
        "review_index",
        include_str!("../migrations/sqlite/0017_review_index.sql"),
        include_str!("../migrations/postgres/0017_review_index.sql"),
    ),
    (
        18,
        "plugin_decisions",
        include_str!("../migrations/sqlite/0018_plugin_decisions.sql"),
        include_str!("../migrations/postgres/0018_plugin_decisions.sql"),
    ),
    (
        19,
        "match_failure_plugin",
        include_str!("../migrations/sqlite/0019_match_failure_plugin.sql"),
        include_str!("../migrations/postgres/0019_match_failure_plugin.sql"),
    ),
];

/// The embedded migrations of one backend, as sqlx's public [`MigrationSource`]: the SQL is
/// compiled into the binary (no `migrations/` directory at run time) and each backend reads
/// its own dialect of every version.
#[derive(Debug, Clone, Copy)]
struct Embedded(Backend);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        let migrations = MIGRATIONS
            .iter()
            .map(|(version, name, sqlite, postgres)| {
                let sql = match self.0 {
                    Backend::Sqlite => sqlite,
                    Backend::Postgres => postgres,
                };
                Migration::new(
                    *version,
                    (*name).into(),
                    MigrationType::Simple,
                    (*sql).into(),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

/// sqlx's migrator over [`Embedded`], built through its public constructor (locking on, so
/// processes starting together on one PostgreSQL migrate once).
async fn migrator(backend: Backend) -> Result<Migrator, StoreError> {
    Ok(Migrator::new(Embedded(backend)).await?)
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`.
    pub async fn open(url: &str, key: SecretKey) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let connect_url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&connect_url)
            .map_err(|e| connect_error(url, backend, &e))?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 10 })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; NORMAL sync is durable
                        // across process crashes; foreign keys are off in SQLite by default; the
                        // log is kept short under continuous writes ([`wal`]).
                        conn.execute(&*format!("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout={}; PRAGMA journal_size_limit={}; PRAGMA wal_autocheckpoint={};", BUSY_TIMEOUT_MS, wal::SIZE_LIMIT, wal::AUTOCHECKPOINT_PAGES)).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| connect_error(url, backend, &e))?;
        migrator(backend).await?.run(&pool).await?;
        Ok(Store {
            pool,
            backend,
            key,
            url: connect_url,
            commits: wal::CommitCounter::default(),
        })
    }

    /// The database kind.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool: for the store's own modules, and for bulk fixtures written
    /// directly in SQL (the matching benchmark's million emails). Product code goes through
    /// the store's methods.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The URL the store was opened with (it may hold a password: never log it).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The key secrets are encrypted with.
    pub(crate) fn key(&self) -> &SecretKey {
        &self.key
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Why `url` could not be opened and what to do, said once: for SQLite, a missing directory
/// or a path that is a directory is named before the driver's words; for PostgreSQL, the
/// server's message with the fix its code calls for.
fn connect_error(url: &str, backend: Backend, e: &sqlx::Error) -> StoreError {
    const SET_URL: &str = "or set database_url (M365SYNC_DATABASE_URL) to another database";
    let db = e.as_database_error();
    let driver_reason = match (db, e) {
        (Some(d), _) => d.message().to_string(),
        (None, sqlx::Error::Io(io)) => io.to_string(),
        (None, sqlx::Error::PoolTimedOut) => "no connection could be made within 30 s".into(),
        (None, other) => other.to_string(),
    };
    let (reason, advice) = match backend {
        Backend::Sqlite => {
            let path = sqlite_path(url);
            let file = std::path::Path::new(&path);
            let dir = file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            if path == ":memory:" || path.is_empty() {
                (driver_reason, format!("check the URL, {SET_URL}"))
            } else if !dir.is_dir() {
                (
                    format!("directory {} does not exist", dir.display()),
                    format!("create it, {SET_URL}"),
                )
            } else if file.is_dir() {
                (
                    format!("{} is a directory", file.display()),
                    format!("name a file in it (sqlite:///path/m365sync.db), {SET_URL}"),
                )
            } else if db.and_then(|d| d.code()).as_deref() == Some("26") {
                (
                    format!("{} is not a SQLite database", file.display()),
                    format!("point database_url at m365sync's database file, {SET_URL}"),
                )
            } else {
                (
                    driver_reason,
                    format!(
                        "check that this user may read and write {} and its directory {}, {SET_URL}",
                        file.display(),
                        dir.display()
                    ),
                )
            }
        }
        Backend::Postgres => {
            let code = db.and_then(|d| d.code()).map(|c| c.to_string());
            let advice = match code.as_deref() {
                Some("3D000") => format!("create it (createdb), {SET_URL}"),
                Some("28P01" | "28000") => "check the user and password in database_url (or the file M365SYNC_DATABASE_URL_FILE names)".to_string(),
                Some("42501") => "grant the user CONNECT and CREATE on the database, or use another user in database_url".to_string(),
                Some(_) => format!("see the server's log, {SET_URL}"),
                None if matches!(e, sqlx::Error::Configuration(_)) => "fix database_url: postgres://USER:PASSWORD@HOST:PORT/DATABASE".to_string(),
                None if matches!(e, sqlx::Error::Tls(_)) || driver_reason.contains("certificate") => "check the server's TLS certificate, and sslmode and sslrootcert in database_url".to_string(),
                None => "check that PostgreSQL is running and accepts connections at the host and port in database_url".to_string(),
            };
            (driver_reason, advice)
        }
    };
    StoreError::Connect {
        url: redact(url),
        reason,
        advice,
    }
}

/// The file a `sqlite:` URL names (`sqlite://x.db`, `sqlite:///abs/x.db`, `sqlite:x.db`),
/// without its query string.
fn sqlite_path(url: &str) -> String {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    rest.split('?').next().unwrap_or("").to_string()
}

/// A database URL with any password replaced, fit for errors and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_dialects_hold_the_same_schema() {
        // The store writes its SQL once, which is only sound while the two schemas differ in
        // nothing but the identity column and the binary type. Comments may differ (each file
        // names the other), and a shipped migration is never edited to make them agree: sqlx
        // keeps its checksum, and a database that ran it would refuse to open.
        fn statements(sql: &str) -> String {
            sql.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        for (version, _, sqlite, postgres) in super::MIGRATIONS {
            let sqlite = statements(sqlite)
                .replace("INTEGER PRIMARY KEY", "@ID@")
                .replace("BLOB", "@BIN@");
            let postgres = statements(postgres)
                .replace(
                    "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                    "@ID@",
                )
                .replace("BYTEA", "@BIN@")
                // One-off backfills (0018, 0019) find a substring: the same function, SQLite's
                // `instr(haystack, needle)` and PostgreSQL's `strpos(haystack, needle)` (both
                // 1-based, 0 when absent), never in the store's own SQL.
                .replace("strpos(", "instr(");
            assert_eq!(sqlite, postgres, "migration {version} differs");
        }
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            super::redact("postgres://app:hunter2@db/x"),
            "postgres://app:***@db/x"
        );
        assert_eq!(super::redact("sqlite://a.db"), "sqlite://a.db");
    }
}
