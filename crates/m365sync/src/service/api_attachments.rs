//! A tenant's skipped attachments through the admin API (issue 16: "attachments skipped and
//! why"): `GET /api/tenants/{org}/{tenant}/attachments/skipped[?after=EMAIL:GRAPH_ID&limit=N]`
//! (the service admin or that org's admin) answers the counts by reason code and one page of
//! the skipped attachments, the most recently stored email first, each with its email's subject and mailbox and
//! the reason in words (what to do included: raise `attachment_cap_bytes`, follow the link).
//! Files over the cap are fetched again once the cap allows them, and failed fetches the next
//! time their email comes through (docs/architecture.md, "Attachments").

use std::collections::HashMap;

use serde_json::json;

use super::api_crm::{bad, ok, Handled};
use super::Shared;

/// The default and the largest page.
const PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

/// The counts and one page. `next` is the cursor of the page after (`after=` it), absent on
/// the last page.
pub(super) async fn skipped(
    shared: &Shared,
    org: &str,
    tenant: &str,
    q: &HashMap<String, String>,
) -> Handled {
    let store = &shared.env.store;
    let t = store.tenant(org, tenant).await?;
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        None => PAGE,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(bad(format!("limit must be a number from 1 to {MAX_PAGE}"))),
        },
    };
    let after = match q.get("after").filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => match a.split_once(':').map(|(e, g)| (e.parse::<i64>(), g)) {
            Some((Ok(email), graph)) => Some((email, graph.to_string())),
            _ => {
                return Err(bad(
                    "after must be the `next` value of the previous page (EMAIL_ID:GRAPH_ID)",
                ))
            }
        },
    };
    let page = store
        .skipped_attachments(t.id, after.as_ref().map(|(e, g)| (*e, g.as_str())), limit)
        .await?;
    let counts: serde_json::Map<String, serde_json::Value> = store
        .skipped_attachment_counts(t.id)
        .await?
        .into_iter()
        .map(|(code, n)| (code, n.into()))
        .collect();
    let next = (page.len() as i64 == limit)
        .then(|| {
            page.last()
                .map(|a| format!("{}:{}", a.email_id, a.graph_id))
        })
        .flatten();
    ok(json!({ "counts": counts, "attachments": page, "next": next }))
}

/// The route's handler: [`skipped`] for a caller with rights over the path's org.
pub(super) async fn skipped_route(
    axum::extract::State(shared): axum::extract::State<std::sync::Arc<Shared>>,
    scope: super::extract::OrgScope,
    axum::extract::Path((_, tenant)): axum::extract::Path<(String, String)>,
    super::extract::Q(q): super::extract::Q,
) -> super::api::Answer {
    super::api_crm::answer(skipped(&shared, &scope.org, &tenant, &q).await)
}
