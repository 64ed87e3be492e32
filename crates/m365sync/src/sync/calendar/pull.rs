//! Microsoft to CRM: one primary calendar's calendarView delta over
//! [commencement, now + the inbound range], page by page through the product rules (C7), the
//! exclusion and mapping plugins, into the store with the calendar's cursor in the page's
//! transaction.
//!
//! Occurrences arrive as ids and times only: their series master is fetched (once per pass)
//! for the details, and its pattern is the "Recurring in M365" text of every occurrence and
//! exception. Drafts are skipped; cancelled events and `@removed` items are removals, applied
//! by the delete setting (C3); private events are skipped when private sync is off (the mapping
//! plugin drops their attendees otherwise); internal events only when enabled.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use m365sync_graph::delta::{DeltaPage, RawItem};
use m365sync_graph::{GraphClient, GraphError};
use m365sync_plugin::bindings::types::{AttendeeKind, Event, Sensitivity};
use m365sync_plugin::call::CallContext;
use m365sync_store::events::{
    CalendarSettings, EventPage, PageOutcome, PulledEvent, SeriesRecord, CALENDAR_FOLDER,
};
use m365sync_store::schedule::Lease;
use m365sync_store::shadows::ShadowPage;
use m365sync_store::sync::{Cursor, Exclusion, FailedRecord};
use m365sync_store::Store;

use crate::sync::error::SyncError;
use crate::sync::round::{retry_failed, run_round, PageSink, Round};
use crate::sync::stages::{decide, Stage, StageSlot};
use crate::sync::stop::StopSignal;

use super::convert::{event_from_graph, fields_of, is_internal, ConvertError, GraphEvent};

/// Everything one calendar's pull needs.
pub struct PullJob<'a> {
    /// The database.
    pub store: &'a Store,
    /// Told how long each page's commit took (the service's metrics).
    pub observer: &'a dyn crate::sync::env::SyncObserver,
    /// The tenant's Graph client.
    pub client: &'a GraphClient,
    /// The tenant's plugins.
    pub stages: &'a StageSlot,
    /// The tenant the mailbox belongs to.
    pub tenant_id: i64,
    /// The (primary) mailbox whose calendar is read.
    pub mailbox_id: i64,
    /// The mailbox's Graph id (or UPN).
    pub mailbox_graph_id: &'a str,
    /// The mailbox's primary address.
    pub mailbox_address: &'a str,
    /// The CRM user owning the calendar's events, by address, if linked.
    pub user: Option<&'a str>,
    /// The same CRM user's id, which the stored events are assigned to.
    pub user_id: Option<i64>,
    /// The tenant's calendar settings: private and internal events, deletes from Microsoft.
    pub settings: &'a CalendarSettings,
    /// [commencement, now + inbound years]: sealed into the round's links by Graph.
    pub window: (DateTime<Utc>, DateTime<Utc>),
    /// Addresses of the tenant's CRM users (internal events, C3).
    pub users: &'a [String],
    /// The tenant's internal domains (internal events, C3).
    pub internal_domains: &'a [String],
    /// Events per delta page (`Prefer: odata.maxpagesize`).
    pub page_size: usize,
    /// The run the work counts toward (failed records remember it for `m365sync retry`).
    pub run_id: Option<i64>,
    /// The worker's lease on the mailbox, fenced in every page's transaction.
    pub lease: Option<&'a Lease>,
    /// Stops the round between pages.
    pub stop: &'a StopSignal,
}

/// What a calendar's pull did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PullCounts {
    /// Delta pages read.
    pub pages: u64,
    /// Items read (removals included).
    pub processed: u64,
    /// What the store made of the pages: inserted, updated, unchanged, conflicts, deleted.
    pub stored: PageOutcome,
    /// Events left out by the product rules (drafts, private, internal; C7) or the exclusion
    /// plugin.
    pub excluded: u64,
    /// Events that failed a stage (conversion, series master, plugins); kept for retry.
    pub failed: u64,
    /// Series masters fetched for their occurrences' details.
    pub masters_fetched: u64,
}

impl std::ops::AddAssign for PullCounts {
    fn add_assign(&mut self, o: PullCounts) {
        self.pages += o.pages;
        self.processed += o.processed;
        self.excluded += o.excluded;
        self.failed += o.failed;
        self.masters_fetched += o.masters_fetched;
        self.stored += o.stored;
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn graph_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The first URL of a calendar's round.
pub fn initial_url(
    graph_url: &str,
    mailbox_graph_id: &str,
    window: (DateTime<Utc>, DateTime<Utc>),
) -> String {
    format!(
        "{}/users/{}/calendarView/delta?startDateTime={}&endDateTime={}",
        graph_url.trim_end_matches('/'),
        enc(mailbox_graph_id),
        graph_time(window.0),
        graph_time(window.1)
    )
}

fn prefer(page_size: usize) -> String {
    format!("odata.maxpagesize={page_size}, IdType=\"ImmutableId\", outlook.timezone=\"UTC\"")
}

/// One delta page, checked to carry a value array and exactly one of its two links.
async fn fetch_page(job: &PullJob<'_>, url: &str) -> Result<DeltaPage, GraphError> {
    job.client
        .delta_page_with(job.mailbox_address, url, &prefer(job.page_size))
        .await
}

/// Runs the calendar's failed records again, then its delta round to the deltaLink.
pub async fn pull_calendar(job: &PullJob<'_>) -> Result<PullCounts, SyncError> {
    let mut counts = PullCounts::default();
    let mut masters = Masters::new();
    let round = Round {
        store: job.store,
        mailbox_id: job.mailbox_id,
        folder: CALENDAR_FOLDER,
        stop: job.stop,
        initial_url: initial_url(job.client.graph_url(), job.mailbox_graph_id, job.window),
        full_round_marker: None,
    };
    let mut sink = CalendarPages {
        job,
        masters: &mut masters,
        counts: &mut counts,
    };
    // Failed records first (E10): their stored JSON, no refetch.
    retry_failed(&round, job.page_size, &mut sink).await?;
    let fetch = |url: String| async move { fetch_page(job, &url).await };
    let outcome = run_round(&round, fetch, &mut sink).await?;
    counts.pages += outcome.pages;
    Ok(counts)
}

/// A calendar's pages on their way through the rules and the stages into the store.
struct CalendarPages<'a, 'j> {
    job: &'a PullJob<'j>,
    masters: &'a mut Masters,
    counts: &'a mut PullCounts,
}

impl PageSink for CalendarPages<'_, '_> {
    async fn store(
        &mut self,
        items: Vec<RawItem>,
        cursor: Option<Cursor>,
    ) -> Result<(), SyncError> {
        // Events are read as value trees still (series masters and exceptions are matched
        // across the page); only mail, the bulk, is read typed.
        let items = m365sync_graph::delta::values(&items);
        let mut shadows = Vec::new();
        let page = process_page(
            self.job,
            items,
            cursor,
            self.masters,
            self.counts,
            &mut shadows,
        )
        .await?;
        let started = std::time::Instant::now();
        self.counts.stored += self.job.store.commit_event_page(&page).await?;
        self.job
            .observer
            .page_committed("calendar", started.elapsed());
        // The shadows' comparison of the page, once the page is committed and apart from it.
        crate::sync::shadow::record(self.job.store, shadows).await;
        Ok(())
    }
}

/// A series master as its occurrences use it: its JSON, and its pattern as the "Recurring in
/// M365" text, made once for all of them.
struct Master {
    json: Value,
    /// The readable text ([`super::recurrence::describe`]).
    recurrence: Option<String>,
    /// Graph's `recurrence` JSON, kept with the series for code that needs the pattern.
    pattern: Option<String>,
}

/// The series masters met in one pass, by Graph id (`None`: gone).
type Masters = HashMap<String, Option<Arc<Master>>>;

/// The series master of an occurrence or exception, fetched once per pass; `None` when it is
/// gone (the occurrence's removal follows in the same round).
async fn master(
    job: &PullJob<'_>,
    id: &str,
    masters: &mut Masters,
    counts: &mut PullCounts,
) -> Result<Option<Arc<Master>>, SyncError> {
    if let Some(m) = masters.get(id) {
        return Ok(m.clone());
    }
    let url = format!("users/{}/events/{}", enc(job.mailbox_graph_id), enc(id));
    let prefer = "IdType=\"ImmutableId\", outlook.timezone=\"UTC\"";
    let fetched = match job
        .client
        .get(job.mailbox_address, &url, Some(prefer))
        .await
    {
        Ok(json) => Some(Arc::new(Master {
            recurrence: json.get("recurrence").and_then(super::recurrence::describe),
            pattern: json
                .get("recurrence")
                .filter(|r| r.is_object())
                .map(Value::to_string),
            json,
        })),
        Err(GraphError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    counts.masters_fetched += 1;
    masters.insert(id.to_string(), fetched.clone());
    Ok(fetched)
}

/// What the store needs of an event that passed the product rules, besides the event itself
/// (which goes to the plugins' thread and comes back).
struct Candidate {
    payload: Value,
    series: Option<String>,
    kind: String,
    ical_uid: Option<String>,
    change_key: Option<String>,
    transaction_id: Option<String>,
}

async fn process_page(
    job: &PullJob<'_>,
    items: Vec<Value>,
    cursor: Option<Cursor>,
    masters: &mut Masters,
    counts: &mut PullCounts,
    shadows: &mut Vec<ShadowPage>,
) -> Result<EventPage, SyncError> {
    let mut page = EventPage {
        tenant_id: job.tenant_id,
        mailbox_id: job.mailbox_id,
        user_id: job.user_id,
        upserts: Vec::new(),
        removals: Vec::new(),
        delete_removed: job.settings.delete_from_microsoft,
        series: Vec::new(),
        rooms: Vec::new(),
        exclusions: Vec::new(),
        failures: Vec::new(),
        cursor,
        run_id: job.run_id,
        lease: job.lease.cloned(),
    };
    let mut candidates = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut series_seen: BTreeMap<String, SeriesRecord> = BTreeMap::new();
    let exclude = |page: &mut EventPage, counts: &mut PullCounts, id: &str, rule: &str| {
        counts.excluded += 1;
        page.exclusions.push(Exclusion {
            graph_id: id.to_string(),
            rule: rule.to_string(),
            decided_by: "m365sync calendar rules (C7)".into(),
        });
    };
    for item in items {
        counts.processed += 1;
        let id = item["id"].as_str().unwrap_or_default().to_string();
        if item.get("@removed").is_some() {
            page.removals.push(id);
            continue;
        }
        let kind = item["type"]
            .as_str()
            .unwrap_or("singleInstance")
            .to_string();
        if kind == "seriesMaster" {
            continue;
        }
        let master_id = item["seriesMasterId"].as_str().map(str::to_string);
        let series = match &master_id {
            None => None,
            Some(mid) => match master(job, mid, masters, counts).await? {
                None => {
                    counts.failed += 1;
                    page.failures.push(FailedRecord {
                        graph_id: id.clone(),
                        stage: Stage::Series.as_str().into(),
                        subject: item["subject"].as_str().unwrap_or_default().to_string(),
                        plugin: String::new(),
                        error: format!("event {id}: its series master {mid} was not found"),
                        payload: item.to_string(),
                    });
                    continue;
                }
                Some(m) => {
                    if let Some(r) = &m.recurrence {
                        series_seen
                            .entry(mid.clone())
                            .or_insert_with(|| SeriesRecord {
                                graph_id: mid.clone(),
                                subject: m.json["subject"].as_str().unwrap_or_default().to_string(),
                                recurrence: r.clone(),
                                pattern: m.pattern.clone().unwrap_or_default(),
                            });
                    }
                    Some(m)
                }
            },
        };
        let full = match &series {
            Some(m) if kind == "occurrence" || item.get("subject").is_none() => {
                GraphEvent::occurrence(&item, &m.json)
            }
            _ => GraphEvent::whole(&item),
        };
        if full.field("isDraft").as_bool() == Some(true) {
            exclude(&mut page, counts, &id, "draft");
            continue;
        }
        let recurrence = series.as_ref().and_then(|m| m.recurrence.clone());
        let event = match event_from_graph(full, job.mailbox_address, job.user, recurrence) {
            Ok(e) => e,
            Err(ConvertError { what, .. }) => {
                counts.failed += 1;
                page.failures.push(FailedRecord {
                    graph_id: id.clone(),
                    stage: Stage::Convert.as_str().into(),
                    subject: item["subject"].as_str().unwrap_or_default().to_string(),
                    plugin: String::new(),
                    error: format!("event {id}: {what}"),
                    payload: item.to_string(),
                });
                continue;
            }
        };
        let ical_uid = full.field("iCalUId").as_str().map(str::to_string);
        let transaction_id = full.field("transactionId").as_str().map(str::to_string);
        if event.is_cancelled {
            page.removals.push(id);
            continue;
        }
        if event.sensitivity == Sensitivity::Private && !job.settings.sync_private_events {
            exclude(&mut page, counts, &id, "private");
            continue;
        }
        if !job.settings.sync_internal_events
            && is_internal(&event, job.users, job.internal_domains)
        {
            exclude(&mut page, counts, &id, "internal-event");
            continue;
        }
        for l in &event.locations {
            if let Some(email) = &l.email {
                page.rooms.push((email.clone(), l.display_name.clone()));
            }
        }
        for a in &event.attendees {
            if a.kind == AttendeeKind::Resource {
                page.rooms.push((a.email.clone(), a.name.clone()));
            }
        }
        events.push(event);
        candidates.push(Candidate {
            series: master_id,
            kind,
            ical_uid,
            change_key: super::convert::change_key(&item),
            transaction_id,
            payload: item,
        });
    }
    page.series = series_seen.into_values().collect();
    if candidates.is_empty() {
        return Ok(page);
    }
    let stages = job.stages.current();
    let mut decided = decide(&stages, Some(calendar_context(&stages.ctx)), events).await?;
    *shadows = std::mem::take(&mut decided.shadows);
    let folded = decided.fold(
        candidates,
        |c: &Candidate| c.payload.to_string(),
        |event, crm, c, decided_by| match fields_of(&event, &crm) {
            Err(e) => Err((format!("event {}: {e}", event.id), Box::new(c))),
            Ok(fields) => Ok(PulledEvent {
                graph_id: event.id.clone(),
                series_graph_id: c.series,
                kind: c.kind,
                ical_uid: c.ical_uid,
                change_key: c.change_key,
                transaction_id: c.transaction_id,
                cancelled: false,
                fields,
                decided_by: decided_by.to_string(),
            }),
        },
    );
    counts.excluded += folded.exclusions.len() as u64;
    counts.failed += folded.failures.len() as u64;
    page.upserts = folded.kept;
    page.exclusions.extend(folded.exclusions);
    page.failures.extend(folded.failures);
    Ok(page)
}

/// The plugins' call context for events: the tenant's, with the exclusion plugin's
/// `internal-only` rule off, because internal events are decided by the C3 setting before the
/// plugins see them, not by the plugin's E7 rule. `plugin replay` uses it too, so a replayed
/// event is decided as a live one.
pub(crate) fn calendar_context(ctx: &CallContext) -> CallContext {
    let mut config = (*ctx.config).clone();
    config.insert("internal-only".into(), "false".into());
    CallContext {
        tenant: Arc::clone(&ctx.tenant),
        config: Arc::new(config),
        limits: ctx.limits.clone(),
    }
}
