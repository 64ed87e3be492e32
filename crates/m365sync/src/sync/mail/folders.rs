//! Which folders of a mailbox are synced: the tree discovered through Graph's folder delta
//! (`mailFolders/delta`: every folder with its parent, then only what changed: created,
//! renamed, moved, deleted), the well-known folders recognised by the ids their aliases
//! resolve to, and the tenant's `folders` and `excluded_folders` settings applied to each
//! folder with its ancestors (an excluded folder takes its subfolders with it).
//!
//! Mail filed by a user or an inbox rule into Archive or a folder of their own never shows in
//! Inbox's delta; only a round over the folder it lives in finds it. So every folder is
//! followed by default, a folder created between runs is picked up at the next one, and a
//! folder that leaves the synced set (deleted, moved under Deleted Items, excluded by a
//! setting) is retired: its emails' links are marked removed (the emails stay) and its
//! cursors dropped ([`Store::save_folder_tree`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use m365sync_graph::folders::{folder_delta_url, WELL_KNOWN_FOLDERS};
use m365sync_graph::{GraphClient, GraphError};
use m365sync_store::folders::{MailFolder, FOLDER_TREE_CURSOR};
use m365sync_store::schedule::Lease;
use m365sync_store::sync::Cursor;
use m365sync_store::tenants::ALL_FOLDERS;
use m365sync_store::{now_ms, Store};

use crate::sync::error::SyncError;
use crate::sync::stop::StopSignal;

/// What a discovery needs.
pub struct DiscoverJob<'a> {
    /// The database.
    pub store: &'a Store,
    /// The tenant's Graph client.
    pub client: &'a GraphClient,
    /// The mailbox.
    pub mailbox_id: i64,
    /// The mailbox's Graph id (or UPN).
    pub mailbox_graph_id: &'a str,
    /// The mailbox's primary address.
    pub mailbox_address: &'a str,
    /// The tenant's `folders` setting.
    pub folders: &'a [String],
    /// The tenant's `excluded_folders` setting.
    pub excluded: &'a [String],
    /// Folders per delta page.
    pub page_size: usize,
    /// The worker's lease, fenced in the tree's transaction.
    pub lease: Option<&'a Lease>,
    /// Stops the discovery between pages.
    pub stop: &'a StopSignal,
}

/// A folder to sync in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedFolder {
    /// What its cursors, links and failures are stored under.
    pub key: String,
    /// Its path from the top (`Inbox/Clients/Acme`), for logs.
    pub path: String,
}

/// What a discovery found.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// The folders to sync, well-known ones first (Inbox, Sent Items, Archive), then by path.
    pub synced: Vec<SyncedFolder>,
    /// Keys of folders that left the synced set in this discovery.
    pub retired: Vec<String>,
}

/// Brings the mailbox's folder tree up to date and says which folders to sync.
pub async fn discover(job: &DiscoverJob<'_>) -> Result<Discovery, SyncError> {
    let stored = job.store.mail_folders(job.mailbox_id).await?;
    let mut tree: BTreeMap<String, MailFolder> = stored
        .into_iter()
        .map(|f| (f.graph_id.clone(), f))
        .collect();
    let (changes, cursor, full) = folder_round(job).await?;
    if full {
        // A round from the first URL lists the whole tree: what it does not list is gone.
        for f in tree.values_mut() {
            f.removed = true;
        }
    }
    for change in changes {
        match change {
            FolderChange::Removed(id) => {
                if let Some(f) = tree.get_mut(&id) {
                    f.removed = true;
                }
            }
            FolderChange::Upsert(v) => {
                let Some(id) = v["id"].as_str() else { continue };
                let f = tree.entry(id.to_string()).or_insert_with(|| MailFolder {
                    graph_id: id.to_string(),
                    folder_key: id.to_string(),
                    parent_graph_id: None,
                    display_name: String::new(),
                    well_known: None,
                    path: String::new(),
                    total_items: 0,
                    hidden: false,
                    synced: false,
                    removed: false,
                });
                f.removed = false;
                f.parent_graph_id = v["parentFolderId"].as_str().map(str::to_string);
                f.display_name = v["displayName"].as_str().unwrap_or_default().to_string();
                f.total_items = v["totalItemCount"].as_i64().unwrap_or(f.total_items);
                f.hidden = v["isHidden"].as_bool().unwrap_or(false);
            }
        }
    }
    if !tree.values().any(|f| f.well_known.is_some()) {
        // v1.0 gives folders no well-known name: resolve the aliases once per mailbox (ids
        // never change).
        let ids = job
            .client
            .well_known_folder_ids(job.mailbox_address, job.mailbox_graph_id)
            .await?;
        for (name, id) in ids {
            if let Some(f) = tree.get_mut(&id) {
                f.well_known = Some(name);
            }
        }
    }
    let folders = select(tree, job.folders, job.excluded);
    let retired = job
        .store
        .save_folder_tree(job.mailbox_id, &folders, cursor.as_ref(), job.lease)
        .await?;
    let rank = |f: &MailFolder| {
        f.well_known
            .as_deref()
            .and_then(|w| WELL_KNOWN_FOLDERS.iter().position(|k| *k == w))
            .unwrap_or(WELL_KNOWN_FOLDERS.len())
    };
    let mut synced: Vec<&MailFolder> = folders.iter().filter(|f| f.synced).collect();
    synced.sort_by(|a, b| (rank(a), &a.path).cmp(&(rank(b), &b.path)));
    Ok(Discovery {
        synced: synced
            .into_iter()
            .map(|f| SyncedFolder {
                key: f.folder_key.clone(),
                path: f.path.clone(),
            })
            .collect(),
        retired,
    })
}

enum FolderChange {
    Upsert(Value),
    Removed(String),
}

/// One round of the folder delta to its deltaLink: the changes, the cursor to store, and
/// whether the round began from its first URL (then it listed the whole tree). A lost state
/// (410) starts the tree over once. The round is short (folders, not messages), so it is
/// stored whole at its end rather than page by page.
async fn folder_round(
    job: &DiscoverJob<'_>,
) -> Result<(Vec<FolderChange>, Option<Cursor>, bool), SyncError> {
    let first = folder_delta_url(job.client.graph_url(), job.mailbox_graph_id);
    let stored = job
        .store
        .cursor(job.mailbox_id, FOLDER_TREE_CURSOR)
        .await?
        .filter(|c| c.complete);
    let mut full = stored.is_none();
    let mut url = stored.map(|c| c.link).unwrap_or_else(|| first.clone());
    let mut restarted = false;
    let mut changes = Vec::new();
    let started = now_ms();
    loop {
        if job.stop.is_stopping() {
            return Err(SyncError::Stopped);
        }
        let page = match job
            .client
            .delta_page(job.mailbox_address, &url, job.page_size)
            .await
        {
            Ok(p) => p,
            Err(GraphError::SyncStateNotFound { .. }) if !restarted => {
                restarted = true;
                full = true;
                changes.clear();
                url = first.clone();
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for item in m365sync_graph::delta::values(&page.items) {
            match item.get("@removed") {
                Some(_) => {
                    if let Some(id) = item["id"].as_str() {
                        changes.push(FolderChange::Removed(id.to_string()));
                    }
                }
                None => changes.push(FolderChange::Upsert(item)),
            }
        }
        match (page.next_link, page.delta_link) {
            (Some(next), _) => url = next,
            (None, Some(delta)) => {
                let cursor = Cursor {
                    link: delta,
                    complete: true,
                    round_started_ms: started,
                    full,
                };
                return Ok((changes, Some(cursor), full));
            }
            (None, None) => {
                return Err(SyncError::Graph(GraphError::Malformed {
                    mailbox: job.mailbox_address.to_string(),
                    detail: "a folder delta page without a nextLink or deltaLink".into(),
                }))
            }
        }
    }
}

/// Paths, keys and the synced set for every folder of the tree.
fn select(
    tree: BTreeMap<String, MailFolder>,
    folders: &[String],
    excluded: &[String],
) -> Vec<MailFolder> {
    let parents: HashMap<&str, Option<&str>> = tree
        .values()
        .map(|f| (f.graph_id.as_str(), f.parent_graph_id.as_deref()))
        .collect();
    // A folder and its ancestors, itself first; a parent outside the tree (the root,
    // `msgfolderroot`) ends the chain, and so does a cycle.
    let chain = |id: &str| -> Vec<String> {
        let mut out = vec![id.to_string()];
        let mut seen = HashSet::from([id.to_string()]);
        let mut at = id;
        while let Some(Some(p)) = parents.get(at) {
            if !tree.contains_key(*p) || !seen.insert(p.to_string()) {
                break;
            }
            out.push(p.to_string());
            at = p;
        }
        out
    };
    let paths: HashMap<String, String> = tree
        .keys()
        .map(|id| {
            let mut names: Vec<&str> = chain(id)
                .iter()
                .map(|a| tree[a].display_name.as_str())
                .collect();
            names.reverse();
            (id.clone(), names.join("/"))
        })
        .collect();
    let names = |list: &[String]| -> Vec<String> {
        list.iter()
            .map(|f| f.trim().trim_matches('/').to_ascii_lowercase())
            .collect()
    };
    let (wanted, unwanted) = (names(folders), names(excluded));
    let all = wanted.iter().any(|w| w == ALL_FOLDERS);
    let named = |id: &str, list: &[String]| {
        chain(id).iter().any(|a| {
            let f = &tree[a];
            list.iter().any(|entry| {
                f.well_known.as_deref() == Some(entry.as_str())
                    || paths[a].to_ascii_lowercase() == *entry
            })
        })
    };
    let removed_above = |id: &str| chain(id).iter().any(|a| tree[a].removed);
    let mut out = Vec::with_capacity(tree.len());
    for (id, f) in &tree {
        let explicitly = named(id, &wanted);
        let included = (all && !f.hidden) || explicitly;
        let removed = removed_above(id);
        let mut f = f.clone();
        f.path = paths[id].clone();
        f.folder_key = f.well_known.clone().unwrap_or_else(|| f.graph_id.clone());
        f.synced = included && !named(id, &unwanted) && !removed;
        f.removed = f.removed || removed;
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(id: &str, parent: Option<&str>, name: &str, well_known: Option<&str>) -> MailFolder {
        MailFolder {
            graph_id: id.into(),
            folder_key: id.into(),
            parent_graph_id: parent.map(str::to_string),
            display_name: name.into(),
            well_known: well_known.map(str::to_string),
            path: String::new(),
            total_items: 0,
            hidden: false,
            synced: false,
            removed: false,
        }
    }

    fn tree(folders: Vec<MailFolder>) -> BTreeMap<String, MailFolder> {
        folders
            .into_iter()
            .map(|f| (f.graph_id.clone(), f))
            .collect()
    }

    fn synced(out: &[MailFolder]) -> Vec<String> {
        let mut v: Vec<String> = out
            .iter()
            .filter(|f| f.synced)
            .map(|f| f.path.clone())
            .collect();
        v.sort();
        v
    }

    fn sample() -> BTreeMap<String, MailFolder> {
        tree(vec![
            folder("i", Some("root"), "Inbox", Some("inbox")),
            folder("c", Some("i"), "Clients", None),
            folder("a", Some("c"), "Acme", None),
            folder("s", Some("root"), "Sent Items", Some("sentitems")),
            folder("d", Some("root"), "Deleted Items", Some("deleteditems")),
            folder("old", Some("d"), "Old project", None),
            folder("j", Some("root"), "Junk Email", Some("junkemail")),
            folder("p", Some("i"), "Personal", None),
        ])
    }

    #[test]
    fn every_folder_but_the_excluded_ones_and_their_subfolders() {
        let excluded: Vec<String> = vec!["deleteditems".into(), "junkemail".into()];
        let out = select(sample(), &["*".into()], &excluded);
        assert_eq!(
            synced(&out),
            vec![
                "Inbox",
                "Inbox/Clients",
                "Inbox/Clients/Acme",
                "Inbox/Personal",
                "Sent Items"
            ]
        );
        let key = |p: &str| out.iter().find(|f| f.path == p).unwrap().folder_key.clone();
        assert_eq!(key("Inbox"), "inbox");
        assert_eq!(key("Inbox/Clients/Acme"), "a");
    }

    #[test]
    fn paths_and_names_are_case_insensitive_and_include_subfolders() {
        let out = select(
            sample(),
            &["INBOX/clients".into(), "sentitems".into()],
            &["inbox/personal".into()],
        );
        assert_eq!(
            synced(&out),
            vec!["Inbox/Clients", "Inbox/Clients/Acme", "Sent Items"]
        );
    }

    #[test]
    fn a_removed_folder_takes_its_subfolders_and_cycles_end() {
        let mut t = sample();
        t.get_mut("c").unwrap().removed = true;
        // A cycle (never in Graph, but a bad answer must not hang the sync).
        t.insert("x".into(), folder("x", Some("y"), "X", None));
        t.insert("y".into(), folder("y", Some("x"), "Y", None));
        let out = select(t, &["*".into()], &[]);
        let acme = out.iter().find(|f| f.graph_id == "a").unwrap();
        assert!(acme.removed && !acme.synced);
        assert!(out.iter().any(|f| f.graph_id == "x" && f.synced));
    }
}
