//! A mailbox's folder tree and what keeps each synced folder equal to Graph (E1, E4, issue 14):
//! the tree as Graph's folder delta reports it, with each folder's path and whether it is
//! synced; the reconcile that ends a full round (what the round did not touch since it began
//! is gone); a folder leaving the synced set; and the per-folder reads `mailbox verify`
//! compares with Graph.
//!
//! Folders are named by a *key* everywhere the store keeps per-folder state (cursors, email
//! links, exclusions, failed records): the well-known name (`inbox`, `sentitems`, ...) for
//! Graph's well-known folders, so keys written before folder trees existed keep their meaning,
//! and the folder's Graph id for every other folder.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use sqlx::Row;

use super::schedule::Lease;
use super::sync::{fence_lease, write_cursor, Cursor};
use super::{now_ms, Store, StoreError};

/// The cursor key of a mailbox's folder-tree delta (`mailFolders/delta`).
pub const FOLDER_TREE_CURSOR: &str = "@folders";

/// The cursor key of a folder's listing backfill (the messages a filtered delta round left
/// out because of Graph's cap), beside the folder's own delta cursor.
pub fn listing_key(folder_key: &str) -> String {
    format!("{folder_key}#list")
}

/// One folder of a mailbox's tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailFolder {
    /// Graph's id of the folder (stable: folders keep their id across renames and moves).
    pub graph_id: String,
    /// What per-folder state names it by: the well-known name, else the Graph id.
    pub folder_key: String,
    /// The parent's Graph id; `None` (or an id not in the tree) for a top-level folder.
    pub parent_graph_id: Option<String>,
    /// The name the user sees.
    pub display_name: String,
    /// `inbox`, `sentitems`, ... for Graph's well-known folders.
    pub well_known: Option<String>,
    /// Display names from the top: `Inbox/Clients/Acme`.
    pub path: String,
    /// Graph's `totalItemCount` at the last discovery (all messages, any date).
    pub total_items: i64,
    /// Graph's `isHidden`.
    pub hidden: bool,
    /// In the synced set (settings `folders` and `excluded_folders`) at the last discovery.
    pub synced: bool,
    /// Graph reported the folder deleted.
    pub removed: bool,
}

/// What a folder holds in the store: the Graph ids it keeps, excluded and failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FolderHoldings {
    /// Emails linked to the folder and not removed.
    pub kept: Vec<String>,
    /// Records the exclusion rules dropped in this folder.
    pub excluded: Vec<String>,
    /// Records a stage failed on in this folder (parked ones included).
    pub failed: Vec<String>,
}

impl FolderHoldings {
    /// Every id the folder accounts for.
    pub fn all(&self) -> HashSet<&str> {
        self.kept
            .iter()
            .chain(&self.excluded)
            .chain(&self.failed)
            .map(String::as_str)
            .collect()
    }
}

fn folder_from(r: &sqlx::any::AnyRow) -> Result<MailFolder, sqlx::Error> {
    Ok(MailFolder {
        graph_id: r.try_get("graph_id")?,
        folder_key: r.try_get("folder_key")?,
        parent_graph_id: r.try_get("parent_graph_id")?,
        display_name: r.try_get("display_name")?,
        well_known: r.try_get("well_known")?,
        path: r.try_get("path")?,
        total_items: r.try_get("total_items")?,
        hidden: r.try_get::<i64, _>("hidden")? != 0,
        synced: r.try_get::<i64, _>("synced")? != 0,
        removed: r.try_get::<i64, _>("removed")? != 0,
    })
}

impl Store {
    /// A mailbox's folder tree as last discovered (removed folders included), by path.
    pub async fn mail_folders(&self, mailbox_id: i64) -> Result<Vec<MailFolder>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM mail_folders WHERE mailbox_id = $1 ORDER BY path, graph_id")
                .bind(mailbox_id)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.iter().map(folder_from).collect::<Result<_, _>>()?)
    }

    /// Saves a mailbox's whole folder tree after a discovery, with the folder-tree cursor, in
    /// one transaction under the worker's lease. Folders that were synced and are not any more
    /// (deleted, moved under an excluded folder, excluded by a setting) leave the synced set:
    /// their emails' links are marked removed, their cursors and failed records dropped, so
    /// the store holds what the synced folders hold. Returns the keys of the folders retired.
    pub async fn save_folder_tree(
        &self,
        mailbox_id: i64,
        folders: &[MailFolder],
        cursor: Option<&Cursor>,
        lease: Option<&Lease>,
    ) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let before: BTreeMap<String, MailFolder> = self
            .mail_folders(mailbox_id)
            .await?
            .into_iter()
            .map(|f| (f.graph_id.clone(), f))
            .collect();
        let synced_now: HashSet<&str> = folders
            .iter()
            .filter(|f| f.synced && !f.removed)
            .map(|f| f.folder_key.as_str())
            .collect();
        let retired: Vec<String> = before
            .values()
            .filter(|f| f.synced && !f.removed)
            .map(|f| f.folder_key.clone())
            .filter(|k| !synced_now.contains(k.as_str()))
            .collect();
        let tx = self.pool().begin().await?;
        let mut tx = fence_lease(tx, mailbox_id, lease, now).await?;
        for f in folders {
            sqlx::query(
                "INSERT INTO mail_folders (mailbox_id, graph_id, folder_key, parent_graph_id, display_name, well_known,
                     path, total_items, hidden, synced, removed, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (mailbox_id, graph_id) DO UPDATE SET folder_key = excluded.folder_key,
                     parent_graph_id = excluded.parent_graph_id, display_name = excluded.display_name,
                     well_known = excluded.well_known, path = excluded.path, total_items = excluded.total_items,
                     hidden = excluded.hidden, synced = excluded.synced, removed = excluded.removed,
                     updated_ms = excluded.updated_ms",
            )
            .bind(mailbox_id)
            .bind(&f.graph_id)
            .bind(&f.folder_key)
            .bind(&f.parent_graph_id)
            .bind(&f.display_name)
            .bind(&f.well_known)
            .bind(&f.path)
            .bind(f.total_items)
            .bind(f.hidden as i64)
            .bind(f.synced as i64)
            .bind(f.removed as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for key in &retired {
            retire_in(&mut tx, mailbox_id, key, now).await?;
        }
        if let Some(cursor) = cursor {
            write_cursor(&mut tx, mailbox_id, FOLDER_TREE_CURSOR, cursor, now).await?;
        }
        tx.commit().await?;
        Ok(retired)
    }

    /// Ends a full round of a folder: every link, exclusion and failed record of the folder
    /// that the round did not touch since `round_started_ms` is of a message no longer in the
    /// folder (deleted or moved while the delta state was lost, a 410): links are marked
    /// removed, exclusions and failures dropped. Returns how many links were marked removed.
    pub async fn reconcile_folder(
        &self,
        mailbox_id: i64,
        folder: &str,
        round_started_ms: i64,
        lease: Option<&Lease>,
    ) -> Result<u64, StoreError> {
        let now = now_ms();
        let tx = self.pool().begin().await?;
        let mut tx = fence_lease(tx, mailbox_id, lease, now).await?;
        let removed = sqlx::query(
            "UPDATE email_mailboxes SET removed = 1, updated_ms = $1
             WHERE mailbox_id = $2 AND folder = $3 AND removed = 0 AND updated_ms < $4",
        )
        .bind(now)
        .bind(mailbox_id)
        .bind(folder)
        .bind(round_started_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM exclusions WHERE mailbox_id = $1 AND folder = $2 AND at_ms < $3")
            .bind(mailbox_id)
            .bind(folder)
            .bind(round_started_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM failed_records WHERE mailbox_id = $1 AND folder = $2 AND last_ms < $3",
        )
        .bind(mailbox_id)
        .bind(folder)
        .bind(round_started_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// Of `graph_ids`, those the folder's records were written for at or after `since_ms`
    /// (kept, excluded or failed): what a listing backfill need not pass through the stages
    /// again because this round's delta pages already did.
    pub async fn seen_in_folder_since(
        &self,
        mailbox_id: i64,
        folder: &str,
        since_ms: i64,
        graph_ids: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        let mut seen = HashSet::new();
        let b = self.backend();
        let tables = [
            ("email_mailboxes", "updated_ms", " AND removed = 0"),
            ("exclusions", "at_ms", ""),
            ("failed_records", "last_ms", ""),
        ];
        for chunk in graph_ids.chunks(super::sync::ROWS_PER_STATEMENT) {
            let list: Vec<String> = (0..chunk.len())
                .map(|i| super::sync::marker(b, i + 4))
                .collect();
            for (table, at, extra) in tables {
                // Every marker from `marker`, in bind order: SQLite's are anonymous.
                let sql = format!(
                    "SELECT graph_id FROM {table} WHERE mailbox_id = {} AND folder = {} AND {at} >= {}{extra} AND graph_id IN ({})",
                    super::sync::marker(b, 1),
                    super::sync::marker(b, 2),
                    super::sync::marker(b, 3),
                    list.join(", ")
                );
                let mut q = sqlx::query(&sql)
                    .bind(mailbox_id)
                    .bind(folder)
                    .bind(since_ms);
                for id in chunk {
                    q = q.bind(id);
                }
                for r in q.fetch_all(self.pool()).await? {
                    seen.insert(r.try_get::<String, _>("graph_id")?);
                }
            }
        }
        Ok(seen)
    }

    /// What a folder holds in the store, for `mailbox verify`.
    pub async fn folder_holdings(
        &self,
        mailbox_id: i64,
        folder: &str,
    ) -> Result<FolderHoldings, StoreError> {
        let ids = |sql: &'static str| async move {
            let rows = sqlx::query(sql)
                .bind(mailbox_id)
                .bind(folder)
                .fetch_all(self.pool())
                .await?;
            rows.iter()
                .map(|r| r.try_get::<String, _>("graph_id"))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(FolderHoldings {
            kept: ids("SELECT graph_id FROM email_mailboxes WHERE mailbox_id = $1 AND folder = $2 AND removed = 0 ORDER BY graph_id").await?,
            excluded: ids("SELECT graph_id FROM exclusions WHERE mailbox_id = $1 AND folder = $2 ORDER BY graph_id").await?,
            failed: ids("SELECT graph_id FROM failed_records WHERE mailbox_id = $1 AND folder = $2 ORDER BY graph_id").await?,
        })
    }

    /// Marks that a full round of a folder began at `started_ms`: the cursor `key` (the
    /// folder's `FOLDER#list`) holds an empty link, not complete, until the listing backfill
    /// and the reconcile that follow the round are done.
    pub async fn begin_full_round(
        &self,
        mailbox_id: i64,
        key: &str,
        started_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let cursor = Cursor {
            link: String::new(),
            complete: false,
            round_started_ms: started_ms,
            full: true,
        };
        write_cursor(&mut tx, mailbox_id, key, &cursor, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes a cursor outside a page's transaction (a listing backfill's plan or its end).
    pub async fn put_cursor(
        &self,
        mailbox_id: i64,
        key: &str,
        cursor: &Cursor,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        write_cursor(&mut tx, mailbox_id, key, cursor, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes a folder's next round a full one: its delta and listing cursors are forgotten,
    /// so the next run reads the folder from its first URL and reconciles the store with it
    /// (`mailbox verify --repair`).
    pub async fn resync_folder(&self, mailbox_id: i64, folder: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM sync_cursors WHERE mailbox_id = $1 AND (folder = $2 OR folder = $3)",
        )
        .bind(mailbox_id)
        .bind(folder)
        .bind(listing_key(folder))
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// A folder leaves the synced set: its links are marked removed, its cursors and failed
/// records dropped (its exclusions stay: they record decisions already made).
async fn retire_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    mailbox_id: i64,
    key: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE email_mailboxes SET removed = 1, updated_ms = $1 WHERE mailbox_id = $2 AND folder = $3 AND removed = 0",
    )
    .bind(now)
    .bind(mailbox_id)
    .bind(key)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM sync_cursors WHERE mailbox_id = $1 AND (folder = $2 OR folder = $3)")
        .bind(mailbox_id)
        .bind(key)
        .bind(listing_key(key))
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM failed_records WHERE mailbox_id = $1 AND folder = $2")
        .bind(mailbox_id)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
