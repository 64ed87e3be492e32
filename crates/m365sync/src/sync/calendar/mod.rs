//! Calendar sync (C1-C9): a user's primary calendar pulled into CRM events, within the same
//! mailbox work (and lease) as the user's email, and the user's outbox pushed after it.
//!
//! Layout: [`convert`] reads Graph event JSON into the plugin contract's `Event` and a mapped
//! `CrmEvent` into what the store keeps; [`pull`] runs a calendar's calendarView delta through
//! the product rules (C7) and the stage engine into the store; [`rooms`] keeps the tenant's
//! resource calendars. The other direction (CRM edits, the outbox, Graph writes) is
//! [`crate::outbound`]. `m365sync bench calendar` measures pull and push.
//!
//! [`sync_calendar`] is what a mailbox's work calls: it does nothing unless the mailbox is its
//! user's primary one and the user's Sync Events switch is on (C2), then pulls when the
//! tenant's direction pulls and pushes when it pushes (C1). Pulling first is what makes
//! Microsoft win a conflict: an event changed on both sides takes Microsoft's version and its
//! CRM change is dropped before the push could send it.

pub mod convert;
pub mod pull;
pub mod recurrence;
pub mod rooms;

use chrono::{Duration, TimeZone, Utc};

use m365sync_store::mailboxes::Mailbox;
use m365sync_store::schedule::Lease;

use crate::outbound::push::{self, PushCounts};
use crate::sync::stop::StopSignal;
use crate::sync::{Counts, SyncError};
use crate::sync::{SyncEnv, TenantContext};

pub use pull::PullCounts;

/// What a mailbox's calendar work did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CalendarCounts {
    /// False when the mailbox has no calendar work (not a primary mailbox, Sync Events off).
    pub ran: bool,
    /// Microsoft to CRM: the calendarView delta.
    pub pull: PullCounts,
    /// CRM to Microsoft: the outbox's writes, made after the pull.
    pub push: PushCounts,
}

impl CalendarCounts {
    /// The calendar's share of the mailbox's run totals.
    pub fn as_counts(&self) -> Counts {
        let s = &self.pull.stored;
        Counts {
            pages: self.pull.pages,
            processed: self.pull.processed,
            synced: s.inserted
                + s.updated
                + self.push.created
                + self.push.updated
                + self.push.deleted,
            excluded: self.pull.excluded,
            removed: s.deleted + s.detached,
            failed: self.pull.failed + self.push.failed,
            stage_micros: 0,
            pushed: self.push.created + self.push.updated + self.push.deleted,
            push_failed: self.push.failed,
        }
    }
}

/// Days in a year, for the inbound range.
const YEAR_DAYS: i64 = 365;

/// A mailbox's calendar work for `run_id`: nothing unless it is its user's primary mailbox and
/// the user syncs events; then pull and push as the tenant's direction says.
pub async fn sync_calendar(
    env: &SyncEnv,
    ctx: &TenantContext,
    mailbox: &Mailbox,
    run_id: i64,
    lease: Option<&Lease>,
    stop: &StopSignal,
) -> Result<CalendarCounts, SyncError> {
    let store = &env.store;
    let Some(user_id) = mailbox.user_id else {
        return Ok(CalendarCounts::default());
    };
    let user = store.calendar_user(user_id).await?;
    if !user.sync_events || user.primary_mailbox_id != Some(mailbox.id) {
        return Ok(CalendarCounts::default());
    }
    let settings = store
        .calendar_settings(ctx.tenant.org_id, ctx.tenant.id)
        .await?;
    let mut counts = CalendarCounts {
        ran: true,
        ..CalendarCounts::default()
    };
    if settings.direction.pulls() {
        rooms::sync_rooms_once(env, ctx, mailbox, run_id).await;
        let since = settings
            .commencement_ms
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .unwrap_or(ctx.since);
        // From today's midnight (UTC), so every calendar of a run shares one window.
        let today = Utc::now()
            .date_naive()
            .and_time(chrono::NaiveTime::MIN)
            .and_utc();
        let until = today + Duration::days(YEAR_DAYS * settings.inbound_years.max(0) + 1);
        let users: Vec<String> = ctx.user_email.values().cloned().collect();
        let job = pull::PullJob {
            store,
            observer: env.observer.as_ref(),
            client: &ctx.client,
            stages: &ctx.stages,
            tenant_id: ctx.tenant.id,
            mailbox_id: mailbox.id,
            mailbox_graph_id: &mailbox.graph_id,
            mailbox_address: &mailbox.address,
            user: Some(&user.email),
            user_id: Some(user_id),
            settings: &settings,
            window: (since, until),
            users: &users,
            internal_domains: &ctx.settings.internal_domains,
            page_size: ctx.settings.page_size.max(1) as usize,
            run_id: Some(run_id),
            lease,
            stop,
        };
        counts.pull = pull::pull_calendar(&job).await?;
    }
    // The outbox is drained whatever the direction: rows the direction no longer pushes are
    // resolved (and say so) rather than kept forever; rows beyond the range stay and wait.
    let job = push::PushJob {
        store,
        client: &ctx.client,
        user_id,
        mailbox_id: mailbox.id,
        mailbox_graph_id: &mailbox.graph_id,
        mailbox_address: &mailbox.address,
        settings: &settings,
        lease,
        stop,
    };
    counts.push = push::push_outbox(&job).await?;
    let (p, s, q) = (&counts.pull, &counts.pull.stored, &counts.push);
    store
        .log(
            run_id,
            ctx.tenant.id,
            Some(mailbox.id),
            "info",
            &format!(
                "calendar {}: {} read, {} new, {} updated, {} unchanged, {} excluded, {} deleted, {} kept after removal in Microsoft, {} conflicts (Microsoft's version kept), {} failed; pushed {} created, {} updated, {} deleted, {} not pushed, {} waiting, {} refused",
                mailbox.address, p.processed, s.inserted, s.updated, s.unchanged, p.excluded, s.deleted, s.detached, s.conflicts, p.failed,
                q.created, q.updated, q.deleted, q.skipped, q.waiting, q.failed
            ),
        )
        .await?;
    Ok(counts)
}
