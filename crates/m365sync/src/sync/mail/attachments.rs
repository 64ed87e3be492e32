//! The attachments of a page's kept emails (E5): the list of each email's attachments, then
//! `$value` for any the list did not carry inline, each stored by SHA-256 or skipped with a
//! reason that says why.
//!
//! - The list is fetched with its `contentBytes`: Graph inlines files up to about 3 MB, so most
//!   emails cost one request, and requests (not bytes) are what Outlook's throttling counts.
//!   Files the list leaves without bytes (the large ones) come from `$value`; trusting an
//!   absent `contentBytes` as empty is how clients lose large attachments.
//! - An item attachment (an attached message or event) is stored as what its `$value` gives:
//!   the item's MIME (`message/rfc822`).
//! - A reference attachment is a link to a file elsewhere, with no bytes of its own: recorded
//!   as skipped, the link in the reason.
//! - Over the tenant's `attachment_cap_bytes` (by Graph's size, and again by the bytes
//!   themselves): recorded as skipped, naming the cap; never fetched.
//! - A fetch that fails for that attachment alone (not found, refused, a server error that
//!   outlasted the retries) is recorded as skipped with the error, and the email is stored; it
//!   is fetched again the next time the email comes through. Errors that are the tenant's or
//!   the mailbox's (no token, Graph throttling or unavailable after every retry) fail the page
//!   instead, as a failed delta request does: the next run replays it.
//!
//! Requests go through the tenant's [`GraphClient`] (its per-mailbox slots, retries and token
//! renewal), at most [`IN_FLIGHT`] at a time for a page.

use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};

use m365sync_graph::{GraphClient, GraphError};
use m365sync_store::attachments::{
    reason, AttachmentOutcome, AttachmentRecord, AttachmentSet, Blob,
};
use m365sync_store::sync::EmailRecord;

use super::folder::FolderJob;
use crate::sync::error::SyncError;

/// Attachment requests in flight for one page: Outlook's limit per app and mailbox. (The
/// client's own per-mailbox slots apply as well; this bounds what a page holds at once.)
pub const IN_FLIGHT: usize = 4;

/// Fills in the attachments of `upserts[i]` for each `i` in `wanted` (the kept emails that
/// have attachments), except those the store already holds settled: the same message seen
/// in another mailbox, or again because a flag changed, is not downloaded twice.
pub async fn fetch_for_page(
    job: &FolderJob<'_>,
    upserts: &mut [EmailRecord],
    wanted: &[usize],
) -> Result<(), SyncError> {
    if wanted.is_empty() {
        return Ok(());
    }
    let cap = job.attachment_cap;
    let keys: Vec<String> = wanted
        .iter()
        .map(|&i| upserts[i].correlation_key())
        .collect();
    let settled = job
        .store
        .settled_attachments(job.tenant_id, &keys, cap)
        .await?;
    let todo: Vec<usize> = wanted
        .iter()
        .zip(&keys)
        .filter(|(_, k)| !settled.contains(*k))
        .map(|(&i, _)| i)
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = todo.iter().map(|&i| upserts[i].graph_id.clone()).collect();
    let fetcher = Fetcher {
        client: job.client,
        mailbox_graph_id: job.mailbox_graph_id,
        mailbox: job.mailbox_address,
        cap_bytes: u64::try_from(cap).unwrap_or(0),
    };
    let sets = fetcher.fetch(&ids).await?;
    for (i, set) in todo.into_iter().zip(sets) {
        upserts[i].attachments = set;
    }
    Ok(())
}

/// Fetches and decides the attachments of one mailbox's messages.
pub struct Fetcher<'a> {
    /// The tenant's Graph client.
    pub client: &'a GraphClient,
    /// The mailbox's Graph id (or UPN), for the URLs.
    pub mailbox_graph_id: &'a str,
    /// The mailbox's address: what the client's per-mailbox slots and errors are keyed by.
    pub mailbox: &'a str,
    /// The tenant's `attachment_cap_bytes`.
    pub cap_bytes: u64,
}

/// What to do with one listed attachment.
enum Plan {
    /// The list carried the bytes.
    Inline(Bytes),
    /// Fetch `$value`.
    Value,
    Skip(String),
}

/// One listed attachment and its plan.
struct Listed {
    id: String,
    name: String,
    content_type: Option<String>,
    size: u64,
    plan: Plan,
}

impl Fetcher<'_> {
    /// The attachments of each message (by Graph id), in order. Fails only for errors that are
    /// not any one attachment's (see the module's documentation).
    pub async fn fetch(&self, message_ids: &[String]) -> Result<Vec<AttachmentSet>, GraphError> {
        let lists = bounded(message_ids.iter().collect(), |id| self.list(id)).await;
        let mut planned: Vec<Result<Vec<Listed>, String>> = Vec::with_capacity(lists.len());
        for list in lists {
            planned.push(match list {
                Ok(items) => Ok(items.iter().map(|a| plan(a, self.cap_bytes)).collect()),
                Err(e) if is_mailbox_wide(&e) => return Err(e),
                Err(e) => Err(e.to_string()),
            });
        }
        // Every `$value` of the page, fetched with the same bound.
        let wanted: Vec<(usize, usize, String)> = planned
            .iter()
            .zip(message_ids)
            .enumerate()
            .filter_map(|(m, (p, id))| p.as_ref().ok().map(|p| (m, p, id)))
            .flat_map(|(m, p, id)| {
                p.iter()
                    .enumerate()
                    .filter(|(_, a)| matches!(a.plan, Plan::Value))
                    .map(move |(i, a)| (m, i, self.value_url(id, &a.id)))
            })
            .collect();
        let values = bounded(wanted.iter().collect(), |(_, _, url)| {
            self.client
                .get_bytes(self.mailbox, url, Some(IMMUTABLE_IDS))
        })
        .await;
        for ((m, i, _), got) in wanted.iter().zip(values) {
            let a = &mut planned[*m].as_mut().expect("only listed messages")[*i];
            a.plan = match got {
                Ok(raw) => {
                    if a.content_type.is_none() {
                        a.content_type = raw.content_type;
                    }
                    Plan::Inline(raw.bytes)
                }
                Err(e) if is_mailbox_wide(&e) => return Err(e),
                Err(e) => Plan::Skip(format!("{}: {e}", reason::FETCH_FAILED)),
            };
        }
        // Bytes over the cap (an item's MIME can outgrow the size Graph reported) are skipped.
        let cap = self.cap_bytes;
        for a in planned.iter_mut().flat_map(|p| p.iter_mut().flatten()) {
            if let Plan::Inline(b) = &a.plan {
                if b.len() as u64 > cap {
                    a.plan = Plan::Skip(over_cap(b.len() as u64, cap));
                }
            }
        }
        let buffers: Vec<Bytes> = planned
            .iter()
            .flat_map(|p| p.iter().flatten())
            .filter_map(|a| match &a.plan {
                Plan::Inline(b) => Some(b.clone()),
                _ => None,
            })
            .collect();
        let mut digests = digests(buffers).await.into_iter();
        Ok(planned
            .into_iter()
            .map(|p| match p {
                Err(e) => AttachmentSet::ListFailed(e),
                Ok(list) => AttachmentSet::Listed(
                    list.into_iter()
                        .map(|a| AttachmentRecord {
                            graph_id: a.id,
                            name: a.name,
                            content_type: a.content_type.unwrap_or_default(),
                            size: i64::try_from(a.size).unwrap_or(i64::MAX),
                            outcome: match a.plan {
                                Plan::Inline(bytes) => AttachmentOutcome::Stored(Blob {
                                    digest: digests.next().expect("one digest per buffer"),
                                    bytes,
                                }),
                                Plan::Skip(why) => AttachmentOutcome::Skipped(why),
                                Plan::Value => unreachable!("every $value was fetched"),
                            },
                        })
                        .collect(),
                ),
            })
            .collect())
    }

    fn message_url(&self, message_id: &str) -> String {
        format!(
            "{}/users/{}/messages/{}/attachments",
            self.client.graph_url().trim_end_matches('/'),
            enc(self.mailbox_graph_id),
            enc(message_id)
        )
    }

    fn value_url(&self, message_id: &str, attachment_id: &str) -> String {
        format!(
            "{}/{}/$value",
            self.message_url(message_id),
            enc(attachment_id)
        )
    }

    /// A message's attachment list, every page of it.
    async fn list(&self, message_id: &str) -> Result<Vec<Value>, GraphError> {
        let mut url = self.message_url(message_id);
        let mut items = Vec::new();
        loop {
            let mut page = self
                .client
                .get(self.mailbox, &url, Some(IMMUTABLE_IDS))
                .await?;
            match page.get_mut("value").map(Value::take) {
                Some(Value::Array(v)) => items.extend(v),
                _ => {
                    return Err(GraphError::Malformed {
                        mailbox: self.mailbox.to_string(),
                        detail: "an attachment list without a value array".into(),
                    })
                }
            }
            match page["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_string(),
                None => return Ok(items),
            }
        }
    }
}

/// Ids in answers stay the immutable ones the delta pages use.
const IMMUTABLE_IDS: &str = "IdType=\"ImmutableId\"";

/// Errors that are not one attachment's but the tenant's or the mailbox's: they fail the page.
fn is_mailbox_wide(e: &GraphError) -> bool {
    matches!(
        e,
        GraphError::Auth(_)
            | GraphError::Exhausted {
                status: 0 | 429 | 503,
                ..
            }
    )
}

fn over_cap(size: u64, cap: u64) -> String {
    format!(
        "{}: {size} bytes is more than the tenant's attachment cap (attachment_cap_bytes = {cap})",
        reason::OVER_CAP
    )
}

/// Decides what to do with one entry of an attachment list.
fn plan(a: &Value, cap: u64) -> Listed {
    let size = a["size"].as_u64().unwrap_or(0);
    let kind = a["@odata.type"]
        .as_str()
        .unwrap_or("#microsoft.graph.fileAttachment");
    let plan = match kind.trim_start_matches('#') {
        "microsoft.graph.referenceAttachment" => Plan::Skip(match a["sourceUrl"].as_str() {
            Some(url) => format!(
                "{}: a link to {url}, not a file; there are no bytes to store",
                reason::REFERENCE
            ),
            None => format!(
                "{}: a link, not a file; there are no bytes to store",
                reason::REFERENCE
            ),
        }),
        "microsoft.graph.fileAttachment" | "microsoft.graph.itemAttachment" if size > cap => {
            Plan::Skip(over_cap(size, cap))
        }
        "microsoft.graph.fileAttachment" => match a["contentBytes"].as_str() {
            // Absent (Graph leaves large files out of lists) or unreadable: ask `$value`.
            Some(b64) if !b64.is_empty() => match STANDARD.decode(b64) {
                Ok(bytes) => Plan::Inline(Bytes::from(bytes)),
                Err(_) => Plan::Value,
            },
            _ => Plan::Value,
        },
        "microsoft.graph.itemAttachment" => Plan::Value,
        other => Plan::Skip(format!("{}: attachment type {other}", reason::UNSUPPORTED)),
    };
    Listed {
        id: a["id"].as_str().unwrap_or_default().to_string(),
        name: a["name"].as_str().unwrap_or_default().to_string(),
        content_type: a["contentType"].as_str().map(str::to_string),
        size,
        plan,
    }
}

/// SHA-256 (lowercase hex) of each buffer, computed off the async workers: a page can carry
/// attachments of up to 128 MB.
async fn digests(buffers: Vec<Bytes>) -> Vec<String> {
    if buffers.is_empty() {
        return Vec::new();
    }
    let hash = |bufs: &[Bytes]| -> Vec<String> {
        bufs.iter()
            .map(|b| format!("{:x}", Sha256::digest(b)))
            .collect()
    };
    let moved = buffers.clone();
    match tokio::task::spawn_blocking(move || hash(&moved)).await {
        Ok(d) => d,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down: hash here rather than lose the page.
        Err(_) => hash(&buffers),
    }
}

/// Runs `f` over `jobs`, at most [`IN_FLIGHT`] at once, and returns the results in job order.
/// (Workers that pull from one queue: the futures borrow the client, so they cannot be
/// spawned as tasks.)
async fn bounded<J, T, F, Fut>(jobs: Vec<J>, f: F) -> Vec<T>
where
    F: Fn(J) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let total = jobs.len();
    let queue = Mutex::new(jobs.into_iter().enumerate());
    let worker = || async {
        let mut done = Vec::new();
        loop {
            let next = queue.lock().expect("queue lock").next();
            let Some((i, job)) = next else {
                return done;
            };
            done.push((i, f(job).await));
        }
    };
    const _: () = assert!(IN_FLIGHT == 4, "one worker per request in flight");
    let (a, b, c, d) = tokio::join!(worker(), worker(), worker(), worker());
    let mut all: Vec<(usize, T)> = a.into_iter().chain(b).chain(c).chain(d).collect();
    all.sort_by_key(|(i, _)| *i);
    debug_assert_eq!(all.len(), total);
    all.into_iter().map(|(_, t)| t).collect()
}

/// Percent-encodes a path segment (ids carry `/`, `+` and `=`).
fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MB: u64 = 1024 * 1024;

    fn planned(a: Value, cap: u64) -> Plan {
        plan(&a, cap).plan
    }

    #[test]
    fn a_file_with_inline_bytes_needs_no_second_request() {
        let a = json!({"@odata.type": "#microsoft.graph.fileAttachment", "id": "A", "name": "a.txt",
            "contentType": "text/plain", "size": 5, "contentBytes": STANDARD.encode(b"hello")});
        assert!(matches!(planned(a, 5 * MB), Plan::Inline(b) if b.as_ref() == b"hello"));
    }

    #[test]
    fn a_file_listed_without_bytes_is_fetched_through_value() {
        let a = json!({"@odata.type": "#microsoft.graph.fileAttachment", "id": "A", "name": "big.pdf",
            "contentType": "application/pdf", "size": 4 * MB});
        assert!(matches!(planned(a.clone(), 5 * MB), Plan::Value));
        let mut empty = a;
        empty["contentBytes"] = json!("");
        assert!(matches!(planned(empty, 5 * MB), Plan::Value));
    }

    #[test]
    fn over_the_cap_is_skipped_naming_the_cap() {
        let a = json!({"@odata.type": "#microsoft.graph.fileAttachment", "id": "A", "name": "huge.zip",
            "size": 6 * MB, "contentBytes": "AAAA"});
        match planned(a, 5 * MB) {
            Plan::Skip(why) => {
                assert!(why.starts_with("over-cap: "), "{why}");
                assert!(why.contains("attachment_cap_bytes = 5242880"), "{why}");
            }
            _ => panic!("not skipped"),
        }
    }

    #[test]
    fn a_reference_is_skipped_with_its_link_and_an_item_is_fetched() {
        let r = json!({"@odata.type": "#microsoft.graph.referenceAttachment", "id": "R", "name": "Plans",
            "size": 0, "sourceUrl": "https://contoso.sharepoint.example/plans.docx"});
        assert!(
            matches!(planned(r, 5 * MB), Plan::Skip(why) if why.starts_with("reference: ") && why.contains("plans.docx"))
        );
        let i = json!({"@odata.type": "#microsoft.graph.itemAttachment", "id": "I", "name": "Fwd", "size": 900});
        assert!(matches!(planned(i, 5 * MB), Plan::Value));
        let u = json!({"@odata.type": "#microsoft.graph.somethingNew", "id": "U", "name": "?", "size": 1});
        assert!(matches!(planned(u, 5 * MB), Plan::Skip(why) if why.starts_with("unsupported: ")));
    }

    #[test]
    fn only_errors_beyond_one_attachment_fail_the_page() {
        let exhausted = |status| GraphError::Exhausted {
            mailbox: "m".into(),
            status,
            attempts: 8,
            message: String::new(),
            ids: Default::default(),
        };
        assert!(is_mailbox_wide(&exhausted(429)));
        assert!(is_mailbox_wide(&exhausted(503)));
        assert!(is_mailbox_wide(&exhausted(0)));
        assert!(!is_mailbox_wide(&exhausted(500)));
        assert!(!is_mailbox_wide(&GraphError::NotFound {
            mailbox: "m".into(),
            code: "ErrorItemNotFound".into(),
            message: String::new(),
            ids: Default::default(),
        }));
    }

    #[tokio::test]
    async fn bounded_keeps_job_order_and_the_bound() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let out = bounded((0..20u64).collect(), |i| {
            let (now, peak) = (&now, &peak);
            async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20 - i)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                i * 2
            }
        })
        .await;
        assert_eq!(out, (0..20u64).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), IN_FLIGHT);
    }

    #[tokio::test]
    async fn digests_are_sha256_hex() {
        let d = digests(vec![Bytes::from_static(b"abc")]).await;
        assert_eq!(
            d,
            ["ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]
        );
    }
}
