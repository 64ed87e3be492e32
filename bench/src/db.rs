//! Fresh databases for each measured run: a SQLite file in the work directory or a new
//! PostgreSQL database (created beside the one `--postgres` names, dropped afterwards), with
//! the simulator's tenants declared in it exactly as an operator would declare them.

use std::path::{Path, PathBuf};

use sqlx::Connection;

use m365sync_store::mailboxes::{MailboxKind, NewMailbox};
use m365sync_store::tenants::{AuthMode, NewTenant, SecretKind, Tenant};
use m365sync_store::{SecretKey, Store};

use super::host::SimTenant;
use super::BenchError;

/// The org every benchmark tenant belongs to.
pub const ORG: &str = "bench";

/// Which database a run writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    /// A SQLite file in the work directory.
    Sqlite,
    /// A new database beside the one `--postgres` names, dropped afterwards.
    Postgres,
}

impl DbKind {
    /// The name used in reports and file names.
    pub fn name(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }
}

/// A database made for one run, with the key that seals its secrets in a file beside it.
pub struct BenchDb {
    /// Which database it is.
    pub kind: DbKind,
    /// The URL the harness and the children open it by.
    pub url: String,
    /// The file holding the key that seals its secrets (children read it too).
    pub key_file: PathBuf,
    /// (admin URL, database name) to drop afterwards (PostgreSQL).
    drop: Option<(String, String)>,
    dir: Option<PathBuf>,
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl BenchDb {
    /// Creates an empty database named after `label` (migrated when first opened).
    pub async fn create(
        kind: DbKind,
        label: &str,
        work: &Path,
        postgres_admin: &str,
    ) -> Result<BenchDb, BenchError> {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key_file = work.join(format!("{label}-{n}.key"));
        std::fs::write(&key_file, SecretKey::generate().to_base64() + "\n")
            .map_err(|e| BenchError::Setup(format!("{}: {e}", key_file.display())))?;
        match kind {
            DbKind::Sqlite => {
                let dir = work.join(format!("{label}-{n}"));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| BenchError::Setup(format!("{}: {e}", dir.display())))?;
                Ok(BenchDb {
                    kind,
                    url: format!("sqlite://{}", dir.join("bench.db").display()),
                    key_file,
                    drop: None,
                    dir: Some(dir),
                })
            }
            DbKind::Postgres => {
                let name = format!(
                    "m365sync_bench_{}_{}_{n}",
                    std::process::id(),
                    label.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
                );
                let pg = |e: sqlx::Error| {
                    BenchError::Setup(format!(
                        "PostgreSQL at {postgres_admin}: {e}; start it or pass --postgres URL \
                         (or --db sqlite)"
                    ))
                };
                let mut conn = sqlx::PgConnection::connect(postgres_admin)
                    .await
                    .map_err(pg)?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&mut conn)
                    .await
                    .map_err(pg)?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .map_err(pg)?;
                let _ = conn.close().await;
                let base = postgres_admin
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(postgres_admin);
                Ok(BenchDb {
                    kind,
                    url: format!("{base}/{name}"),
                    key_file,
                    drop: Some((postgres_admin.to_string(), name)),
                    dir: None,
                })
            }
        }
    }

    /// Opens the store (running the migrations).
    pub async fn open(&self) -> Result<Store, BenchError> {
        open(&self.url, &self.key_file).await
    }

    /// Removes the database and its files.
    pub async fn remove(self) {
        if let Some((admin, name)) = &self.drop {
            if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = std::fs::remove_file(&self.key_file);
    }
}

/// Opens a benchmark store from its URL and key file (what a child process does).
pub async fn open(url: &str, key_file: &Path) -> Result<Store, BenchError> {
    let key = SecretKey::from_file(key_file)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", key_file.display())))?;
    Store::open(url, key)
        .await
        .map_err(|e| BenchError::Setup(format!("cannot open {url}: {e}")))
}

/// How a declared tenant syncs.
#[derive(Debug, Clone)]
pub struct Declare {
    /// Delta page size (`Prefer: odata.maxpagesize`).
    pub page_size: i64,
    /// Minutes between scheduled runs.
    pub cadence_minutes: i64,
    /// Requests in flight for the whole tenant.
    pub max_concurrency: i64,
}

/// Declares one simulator tenant (named `name` in org [`ORG`]) with every mailbox linked to its
/// own user, everything the simulator holds in scope (commencement at the epoch), and activates
/// it so its initial sync is due now.
pub async fn declare(
    store: &Store,
    base_url: &str,
    t: &SimTenant,
    name: &str,
    how: &Declare,
) -> Result<Tenant, BenchError> {
    let err = |e: m365sync_store::StoreError| BenchError::Setup(format!("tenant {name}: {e}"));
    let tenant = store
        .upsert_tenant(&NewTenant {
            org: ORG.into(),
            name: name.into(),
            ms_tenant: t.ms_tenant.clone(),
            authority: base_url.to_string(),
            graph_url: format!("{base_url}/v1.0"),
            client_id: t.client_id.clone(),
            auth_mode: AuthMode::App,
        })
        .await
        .map_err(err)?;
    store
        .put_secret(tenant.id, SecretKind::ClientSecret, "bench", &t.secret)
        .await
        .map_err(err)?;
    let mut settings = store.settings(tenant.id).await.map_err(err)?;
    settings.internal_domains = vec![t.domain.clone()];
    settings.commencement_ms = Some(0);
    settings.page_size = how.page_size;
    settings.cadence_minutes = how.cadence_minutes;
    settings.max_concurrency = how.max_concurrency;
    store
        .set_settings(tenant.id, &settings)
        .await
        .map_err(err)?;
    for (graph_id, upn, display) in &t.mailboxes {
        let mailbox_id = store
            .upsert_mailbox(&NewMailbox {
                tenant_id: tenant.id,
                graph_id: graph_id.clone(),
                address: upn.clone(),
                display_name: display.clone(),
                kind: MailboxKind::Person,
            })
            .await
            .map_err(err)?;
        let user_id = store
            .upsert_user(tenant.id, upn, display)
            .await
            .map_err(err)?;
        store.link_mailbox(mailbox_id, user_id).await.map_err(err)?;
    }
    store.activate_tenant(tenant.id).await.map_err(err)?;
    store.tenant_by_id(tenant.id).await.map_err(err)
}
