//! Delta paging of a mail folder: the first request carries the query options (they are baked
//! into the links Graph returns), every request sends `IdType="ImmutableId"` so ids survive
//! moves, and a page is either mid-round (nextLink) or the end of a round (deltaLink).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::GraphClient;
use super::error::GraphError;

/// One item of a page as Graph sent it: JSON text, checked but not yet read. Each sink reads
/// it into its own typed record (borrowing from the text), and keeps the text itself only
/// where a record must be stored or retried as Graph sent it (a failed record's payload).
pub type RawItem = Box<RawValue>;

/// `items` read as value trees, for callers that index them freely (a folder tree, a
/// calendar's series). An item that is not JSON cannot occur: a page is checked whole.
pub fn values(items: &[RawItem]) -> Vec<serde_json::Value> {
    items
        .iter()
        .filter_map(|i| serde_json::from_str(i.get()).ok())
        .collect()
}

/// One page of a delta round.
#[derive(Debug)]
pub struct DeltaPage {
    /// Messages (or events, or folders) and `@removed` entries, as Graph sent them.
    pub items: Vec<RawItem>,
    /// Set mid-round.
    pub next_link: Option<String>,
    /// Set on the round's last page.
    pub delta_link: Option<String>,
}

impl DeltaPage {
    /// The link to store as the cursor: the nextLink, or the deltaLink after the last page.
    pub fn cursor_link(&self) -> Option<&str> {
        self.next_link.as_deref().or(self.delta_link.as_deref())
    }
}

/// The first URL of a folder's round: everything since `since` (the commencement date).
pub fn initial_url(
    graph_url: &str,
    mailbox_graph_id: &str,
    folder: &str,
    since: Option<DateTime<Utc>>,
) -> String {
    let mut url = format!(
        "{}/users/{}/mailFolders/{}/messages/delta",
        graph_url.trim_end_matches('/'),
        enc(mailbox_graph_id),
        enc(folder)
    );
    if let Some(since) = since {
        url.push_str("?$filter=receivedDateTime+ge+");
        url.push_str(&since.to_rfc3339_opts(SecondsFormat::Secs, true));
    }
    url
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A delta page as it is read off the wire: the items stay text.
#[derive(Deserialize)]
struct WirePage {
    value: Option<Vec<RawItem>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

impl GraphClient {
    /// Fetches one delta page of a mail folder (or of its folder tree).
    pub async fn delta_page(
        &self,
        mailbox: &str,
        url: &str,
        page_size: usize,
    ) -> Result<DeltaPage, GraphError> {
        let prefer = format!("odata.maxpagesize={page_size}, IdType=\"ImmutableId\"");
        self.delta_page_with(mailbox, url, &prefer).await
    }

    /// Fetches one delta page with the given `Prefer` header (a calendar's adds its time
    /// zone), checked to carry a value array and exactly one of its two links.
    pub async fn delta_page_with(
        &self,
        mailbox: &str,
        url: &str,
        prefer: &str,
    ) -> Result<DeltaPage, GraphError> {
        let page: WirePage = self.get_as(mailbox, url, Some(prefer)).await?;
        let malformed = |detail: &str| GraphError::Malformed {
            mailbox: mailbox.to_string(),
            detail: detail.into(),
        };
        let items = page
            .value
            .ok_or_else(|| malformed("a delta page without a value array"))?;
        if page.next_link.is_some() == page.delta_link.is_some() {
            return Err(malformed(
                "a delta page must carry exactly one of nextLink and deltaLink",
            ));
        }
        Ok(DeltaPage {
            items,
            next_link: page.next_link,
            delta_link: page.delta_link,
        })
    }
}
