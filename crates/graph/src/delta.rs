//! Delta paging of a mail folder: the first request carries the query options (they are baked
//! into the links Graph returns), every request sends `IdType="ImmutableId"` so ids survive
//! moves, and a page is either mid-round (nextLink) or the end of a round (deltaLink).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::client::GraphClient;
use super::error::GraphError;

/// One page of a delta round.
#[derive(Debug, Clone)]
pub struct DeltaPage {
    /// Messages and `@removed` entries, as Graph sent them.
    pub items: Vec<Value>,
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

impl GraphClient {
    /// Fetches one delta page.
    pub async fn delta_page(
        &self,
        mailbox: &str,
        url: &str,
        page_size: usize,
    ) -> Result<DeltaPage, GraphError> {
        let prefer = format!("odata.maxpagesize={page_size}, IdType=\"ImmutableId\"");
        let mut v = self.get(mailbox, url, Some(&prefer)).await?;
        let items = match v.get_mut("value").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(GraphError::Malformed {
                    mailbox: mailbox.to_string(),
                    detail: "a delta page without a value array".into(),
                })
            }
        };
        let link = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let (next_link, delta_link) = (link("@odata.nextLink"), link("@odata.deltaLink"));
        if next_link.is_some() == delta_link.is_some() {
            return Err(GraphError::Malformed {
                mailbox: mailbox.to_string(),
                detail: "a delta page must carry exactly one of nextLink and deltaLink".into(),
            });
        }
        Ok(DeltaPage {
            items,
            next_link,
            delta_link,
        })
    }
}
