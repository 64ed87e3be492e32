//! Resource calendars (C6): the tenant's rooms, read from Graph's room list once per run and
//! process before its events, so locations resolve to the same unique names; rooms met in
//! event locations are added by the pull in the page's transaction.

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::Value;

use crate::sync::{SyncEnv, TenantContext};
use m365sync_store::mailboxes::Mailbox;

/// (tenant, run) pairs whose room list this process has read.
static DONE: Mutex<Option<HashSet<(i64, i64)>>> = Mutex::new(None);

/// Reads the tenant's room list once per run (from the first calendar that syncs). A failure
/// is a warning in the run log, never the calendar's failure: rooms still come from locations.
pub async fn sync_rooms_once(env: &SyncEnv, ctx: &TenantContext, mailbox: &Mailbox, run_id: i64) {
    {
        let mut done = DONE.lock().expect("rooms lock");
        if !done
            .get_or_insert_with(HashSet::new)
            .insert((ctx.tenant.id, run_id))
        {
            return;
        }
    }
    let result = async {
        let v = ctx
            .client
            .get(&mailbox.address, "places/microsoft.graph.room", None)
            .await?;
        let rooms: Vec<(String, String)> = v["value"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|r: &Value| {
                let address = r["emailAddress"].as_str()?.trim().to_ascii_lowercase();
                let name = r["displayName"].as_str().unwrap_or(&address).to_string();
                address.contains('@').then_some((address, name))
            })
            .collect();
        env.store.upsert_rooms(ctx.tenant.id, &rooms).await?;
        Ok::<usize, crate::sync::error::SyncError>(rooms.len())
    }
    .await;
    if let Err(e) = result {
        let _ = env
            .store
            .log(
                run_id,
                ctx.tenant.id,
                Some(mailbox.id),
                "warning",
                &format!("tenant {}: the room list could not be read ({e}); rooms come from event locations only", ctx.tenant.name),
            )
            .await;
    }
}
