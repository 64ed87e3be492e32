//! A mailbox's folder tree and the reads a complete backfill needs beside message delta:
//! the folder delta (`mailFolders/delta`, every folder of the tree with its parent), the
//! well-known folders' ids, message listings with `$filter`/`$orderby`/`$top` (not capped as
//! a filtered delta round is) and `$count`.
//!
//! Every request sends `IdType="ImmutableId"`, so a message keeps its id across folders and a
//! listing's ids are the delta's.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::client::GraphClient;
use super::error::GraphError;

/// Graph's well-known folder names that m365sync recognises (v1.0 gives folders no
/// `wellKnownName`; a folder is well-known when its id is the one the alias resolves to).
pub const WELL_KNOWN_FOLDERS: [&str; 10] = [
    "inbox",
    "sentitems",
    "archive",
    "drafts",
    "deleteditems",
    "junkemail",
    "outbox",
    "conversationhistory",
    "syncissues",
    "clutter",
];

/// The most a listing page may hold (`$top`).
pub const MAX_LISTING_PAGE: usize = 1000;

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A Graph time literal for `$filter`.
pub fn filter_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The first URL of a mailbox's folder-tree round.
pub fn folder_delta_url(graph_url: &str, mailbox_graph_id: &str) -> String {
    format!(
        "{}/users/{}/mailFolders/delta",
        graph_url.trim_end_matches('/'),
        enc(mailbox_graph_id)
    )
}

/// A folder's messages received in `[from, to]` (either end open), newest first, `top` at a
/// time, from the `skip`th on: the keyset pages of a listing backfill and of `verify`.
/// `select` limits the fields (`id,receivedDateTime` for verify); `None` reads whole messages.
pub fn listing_url(
    graph_url: &str,
    mailbox_graph_id: &str,
    folder: &str,
    range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    top: usize,
    skip: usize,
    select: Option<&str>,
) -> String {
    let mut filter = Vec::new();
    if let Some(from) = range.0 {
        filter.push(format!("receivedDateTime ge {}", filter_time(from)));
    }
    if let Some(to) = range.1 {
        filter.push(format!("receivedDateTime le {}", filter_time(to)));
    }
    let mut url = format!(
        "{}/users/{}/mailFolders/{}/messages?$orderby={}&$top={}",
        graph_url.trim_end_matches('/'),
        enc(mailbox_graph_id),
        enc(folder),
        enc("receivedDateTime desc"),
        top.clamp(1, MAX_LISTING_PAGE)
    );
    if !filter.is_empty() {
        url.push_str("&$filter=");
        url.push_str(&enc(&filter.join(" and ")));
    }
    if skip > 0 {
        url.push_str(&format!("&$skip={skip}"));
    }
    if let Some(select) = select {
        url.push_str("&$select=");
        url.push_str(&enc(select));
    }
    url
}

/// How many messages of a folder were received in `[from, to]` (either end open).
pub fn count_url(
    graph_url: &str,
    mailbox_graph_id: &str,
    folder: &str,
    range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
) -> String {
    let mut url = format!(
        "{}/users/{}/mailFolders/{}/messages?$count=true&$top=1&$select=id",
        graph_url.trim_end_matches('/'),
        enc(mailbox_graph_id),
        enc(folder)
    );
    let mut filter = Vec::new();
    if let Some(from) = range.0 {
        filter.push(format!("receivedDateTime ge {}", filter_time(from)));
    }
    if let Some(to) = range.1 {
        filter.push(format!("receivedDateTime le {}", filter_time(to)));
    }
    if !filter.is_empty() {
        url.push_str("&$filter=");
        url.push_str(&enc(&filter.join(" and ")));
    }
    url
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// The messages, as Graph sent them.
    pub items: Vec<Value>,
    /// Graph's link to the next page, when there is one.
    pub next_link: Option<String>,
}

fn malformed(mailbox: &str, detail: &str) -> GraphError {
    GraphError::Malformed {
        mailbox: mailbox.to_string(),
        detail: detail.to_string(),
    }
}

impl GraphClient {
    /// One page of a listing (`value` and an optional `@odata.nextLink`).
    pub async fn list_page(&self, mailbox: &str, url: &str) -> Result<ListPage, GraphError> {
        let mut v = self
            .get(mailbox, url, Some("IdType=\"ImmutableId\""))
            .await?;
        let items = match v.get_mut("value").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => return Err(malformed(mailbox, "a listing page without a value array")),
        };
        let next_link = v
            .get("@odata.nextLink")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(ListPage { items, next_link })
    }

    /// The `@odata.count` of a `$count=true` listing ([`count_url`]).
    pub async fn count(&self, mailbox: &str, url: &str) -> Result<u64, GraphError> {
        let v = self.get(mailbox, url, None).await?;
        v.get("@odata.count")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed(mailbox, "a $count listing without @odata.count"))
    }

    /// The ids of a mailbox's well-known folders, by name, in one `$batch` request: the
    /// names Graph does not know for this mailbox (no archive provisioned, say) are left out.
    /// A sub-request Graph could not answer now (throttled, 5xx) is asked for again alone.
    pub async fn well_known_folder_ids(
        &self,
        mailbox: &str,
        mailbox_graph_id: &str,
    ) -> Result<Vec<(String, String)>, GraphError> {
        let requests: Vec<Value> = WELL_KNOWN_FOLDERS
            .iter()
            .enumerate()
            .map(|(i, name)| {
                json!({
                    "id": i.to_string(),
                    "method": "GET",
                    "url": format!("/users/{}/mailFolders/{name}?$select=id", enc(mailbox_graph_id)),
                })
            })
            .collect();
        let answer = self
            .send(
                mailbox,
                reqwest::Method::POST,
                "$batch",
                Some(&json!({ "requests": requests })),
            )
            .await?;
        let responses = answer
            .get("responses")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(mailbox, "a $batch answer without responses"))?;
        let mut found = Vec::new();
        let mut again = Vec::new();
        for r in responses {
            let Some(i) = r
                .get("id")
                .and_then(Value::as_str)
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|i| *i < WELL_KNOWN_FOLDERS.len())
            else {
                continue;
            };
            let name = WELL_KNOWN_FOLDERS[i];
            match r.get("status").and_then(Value::as_u64) {
                Some(200) => {
                    if let Some(id) = r["body"]["id"].as_str() {
                        found.push((name.to_string(), id.to_string()));
                    }
                }
                Some(400 | 404) => {}
                _ => again.push(name),
            }
        }
        for name in again {
            let url = format!(
                "users/{}/mailFolders/{name}?$select=id",
                enc(mailbox_graph_id)
            );
            match self.get(mailbox, &url, None).await {
                Ok(v) => {
                    if let Some(id) = v["id"].as_str() {
                        found.push((name.to_string(), id.to_string()));
                    }
                }
                // Not provisioned in this mailbox: 404, or 400 for an alias Graph does not
                // know here (as in the batch above).
                Err(GraphError::NotFound { .. }) | Err(GraphError::Other { status: 400, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }
}
