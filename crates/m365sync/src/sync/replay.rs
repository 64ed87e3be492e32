//! `plugin replay` (issue 18): a candidate plugin run over a tenant's stored emails beside the
//! version in force, without a live service, giving the same kind of diff a shadow run gives.
//!
//! Both plugins see the same rebuilt records, built from what the store keeps of each email:
//! its mailbox copy (Graph id, mailbox, folder), its addresses with display names, its subject,
//! and the CRM record the mapping made (direction, dates, importance, categories, ids; its
//! description stands in for the preview). Not kept, so missing from the records: the body,
//! internet headers, attachment names and sizes, the draft flag, and every email the exclusion
//! dropped (only its Graph id and rule are stored). A replay therefore shows what a candidate
//! would drop or map differently among the mail that is in the CRM now; a rule that reads a
//! header or the body is not exercised ([`MISSING`]).
//!
//! Events are replayed the same way, from the CRM event the mapping made of each stored event
//! (subject, times, organizer, attendees, location, resource calendars, recurrence, privacy,
//! reminder, show-as, the owner's response, the Teams link) and decided with the calendar's
//! call context, as a live event is. Rebuilt so, an event mapped again by the plugin in force
//! gives back its stored record; what the record does not keep (the HTML body, categories,
//! display names of resource rooms, an attendee list cut by `max-attendees` or emptied for a
//! private event) is missing, and events the exclusion dropped are not stored.

use std::collections::HashMap;
use std::sync::Arc;

use m365sync_plugin::bindings::types::{
    Address, AddressRole, Attendee, AttendeeKind, AttendeeStatus, Body, BodyType, CrmEmail,
    CrmEvent, Email, Event, Location, Response, Sensitivity, ShowAs, ShowTimeAs,
};
use m365sync_plugin::{Kind, Plugin};
use m365sync_store::shadows::{ShadowDiff, StoredEmail, StoredEvent};
use m365sync_store::tenants::Tenant;

use super::calendar::pull::calendar_context;
use super::env::SyncEnv;
use super::error::SyncError;
use super::shadow::ShadowRun;
use super::stages::{decide, Decided, Verdicted};
use super::tenant::load_stages;

/// What a replay's records lack compared with what the plugins receive live.
pub const MISSING: &str = "replayed records are rebuilt from the store: emails carry no body (the \
    CRM description stands in for the preview), no headers, no attachment names or sizes and \
    no draft flag; events carry their CRM description as a plain-text body, no categories and \
    only the attendees the CRM record kept; records the live exclusion dropped are not stored, \
    so only kept mail and events are replayed";

/// Records per plugin call, as a page of a live run.
const BATCH: usize = 100;

/// One record the candidate decides otherwise, with its tenant.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayDiff {
    /// The tenant's name.
    pub tenant: String,
    /// The record and both answers.
    #[serde(flatten)]
    pub diff: ShadowDiff,
}

/// What a replay found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplayReport {
    /// The tenants replayed (with `--tenant`, that one; else those using the org's default).
    pub tenants: Vec<String>,
    /// Stored records read: `emails` + `events`.
    pub records: usize,
    /// Stored mailbox copies of emails read.
    pub emails: usize,
    /// Stored events read.
    pub events: usize,
    /// Stored records whose CRM record could not be read back (not replayed).
    pub unreadable: usize,
    /// Records both decided alike.
    pub agreed: i64,
    /// Records they decided otherwise.
    pub disagreed: i64,
    /// Records the candidate failed on.
    pub failed: i64,
    /// Records a plugin in force failed on when replayed (those its exclusion failed on are
    /// not compared).
    pub live_failed: i64,
    /// The disagreements and the candidate's failures.
    pub diffs: Vec<ReplayDiff>,
    /// What the rebuilt records lack ([`MISSING`]).
    pub missing: &'static str,
}

fn role(r: &str) -> Option<AddressRole> {
    Some(match r {
        "from" => AddressRole::From,
        "sender" => AddressRole::Sender,
        "to" => AddressRole::To,
        "cc" => AddressRole::Cc,
        "bcc" => AddressRole::Bcc,
        "reply_to" => AddressRole::ReplyTo,
        _ => return None,
    })
}

impl ReplayReport {
    /// Adds one batch's comparison: the records the plugins in force failed on (not
    /// compared, as in a shadow run) and the candidate's page.
    fn add<R: super::stages::StageRecord>(&mut self, tenant: &str, decided: Decided<R>) {
        self.live_failed += decided
            .verdicts
            .iter()
            .filter(|v| matches!(v, Verdicted::Failed(..)))
            .count() as i64;
        for page in decided.shadows {
            self.agreed += page.agreed;
            for diff in page.diffs {
                if diff.outcome == "failed" {
                    self.failed += 1;
                } else {
                    self.disagreed += 1;
                }
                self.diffs.push(ReplayDiff {
                    tenant: tenant.to_string(),
                    diff,
                });
            }
        }
    }
}

/// The contract's email rebuilt from a stored copy, or `None` when its CRM record does not read.
pub fn email_from_store(s: &StoredEmail, user: Option<String>) -> Option<Email> {
    let crm: CrmEmail = serde_json::from_str(&s.record).ok()?;
    Some(Email {
        id: s.graph_id.clone(),
        mailbox: s.mailbox.to_ascii_lowercase(),
        user,
        folder: s.folder.clone(),
        direction: crm.direction,
        addresses: s
            .recipients
            .iter()
            .filter_map(|(r, email, name)| {
                Some(Address {
                    role: role(r)?,
                    email: email.clone(),
                    name: name.clone(),
                })
            })
            .collect(),
        subject: s.subject.clone(),
        body: Body {
            content_type: BodyType::Text,
            content: String::new(),
            truncated: false,
        },
        preview: crm.description,
        sent: crm.sent,
        received: crm.received,
        categories: crm.categories,
        importance: crm.importance,
        headers: Vec::new(),
        attachments: Vec::new(),
        internet_message_id: crm.internet_message_id,
        conversation_id: crm.conversation_id,
        is_draft: false,
    })
}

/// The contract's event rebuilt from a stored event and its CRM record, or `None` when the
/// record does not read. Each field is what the default mapping would map back to the stored
/// value (an `accepted` status is `accepted`, a `free` show-as `free`), so the plugin in force
/// agrees with the store on its own output.
pub fn event_from_store(s: &StoredEvent, user: Option<String>) -> Option<Event> {
    let crm: CrmEvent = serde_json::from_str(&s.record).ok()?;
    let response = |status: AttendeeStatus| match status {
        AttendeeStatus::New => Response::None,
        AttendeeStatus::Accepted => Response::Accepted,
        AttendeeStatus::Declined => Response::Declined,
    };
    let reminder = crm.reminder_at.as_deref().and_then(|at| {
        let start = chrono::DateTime::parse_from_rfc3339(&crm.start).ok()?;
        let at = chrono::DateTime::parse_from_rfc3339(at).ok()?;
        u32::try_from((start - at).num_minutes()).ok()
    });
    Some(Event {
        id: s.graph_id.clone(),
        mailbox: s.mailbox.to_ascii_lowercase(),
        user,
        subject: crm.subject,
        body: Body {
            content_type: BodyType::Text,
            content: crm.description,
            truncated: false,
        },
        is_all_day: crm.all_day,
        start: crm.start,
        end: crm.end,
        organizer: crm.assigned_to.map(|email| Address {
            role: AddressRole::From,
            email,
            name: String::new(),
        }),
        attendees: crm
            .attendees
            .into_iter()
            .map(|a| Attendee {
                kind: if a.optional {
                    AttendeeKind::Optional
                } else {
                    AttendeeKind::Required
                },
                response: response(a.status),
                email: a.email,
                name: a.name,
            })
            .collect(),
        location: crm.location,
        locations: crm
            .resources
            .into_iter()
            .map(|email| Location {
                display_name: String::new(),
                email: Some(email),
                location_type: "conferenceRoom".into(),
            })
            .collect(),
        recurrence: crm.recurring,
        sensitivity: if crm.private {
            Sensitivity::Private
        } else {
            Sensitivity::Normal
        },
        reminder_minutes_before_start: if crm.reminder_set { reminder } else { None },
        show_as: match crm.show_time_as {
            ShowTimeAs::Busy => ShowAs::Busy,
            ShowTimeAs::OutOfOffice => ShowAs::Oof,
            ShowTimeAs::Free => ShowAs::Free,
        },
        response_status: response(crm.status),
        is_online_meeting: crm.teams_meeting,
        online_meeting_provider: crm.teams_meeting.then(|| "teamsForBusiness".to_string()),
        online_meeting_url: crm.teams_url,
        categories: Vec::new(),
        is_cancelled: s.cancelled,
        is_draft: false,
    })
}

/// The tenants a replay at this level covers: the one named, or every tenant of the org that
/// uses the org's default in `slot` (no plugin of its own there).
pub async fn replay_tenants(
    env: &SyncEnv,
    org: &str,
    tenant: Option<&str>,
    slot: Kind,
) -> Result<Vec<Tenant>, SyncError> {
    if let Some(t) = tenant {
        return Ok(vec![env.store.tenant(org, t).await?]);
    }
    let mut out = Vec::new();
    for t in env.store.tenants(Some(org)).await? {
        let active = env
            .store
            .active_plugin(t.org_id, t.id, slot.world())
            .await?;
        if active.is_none_or(|a| !a.tenant_level) {
            out.push(t);
        }
    }
    Ok(out)
}

/// Runs `candidate` in `slot` beside each tenant's plugins in force over its stored emails
/// received since `since_ms` (at most `limit` per tenant) and compares, as a shadow would.
pub async fn replay(
    env: &SyncEnv,
    tenants: Vec<Tenant>,
    slot: Kind,
    candidate: Arc<Plugin>,
    since_ms: i64,
    limit: i64,
) -> Result<ReplayReport, SyncError> {
    let mut report = ReplayReport {
        missing: MISSING,
        ..ReplayReport::default()
    };
    for tenant in tenants {
        let settings = env.store.settings(tenant.id).await?;
        let mut stages = load_stages(env, &tenant, &settings).await?;
        stages.shadows = vec![ShadowRun {
            slot,
            plugin: Arc::clone(&candidate),
            org_id: tenant.org_id,
            tenant_scope: 0,
            tenant_id: tenant.id,
        }];
        let users: HashMap<i64, String> = env.store.users(tenant.id).await?.into_iter().collect();
        let user_of = |id: Option<i64>| id.and_then(|u| users.get(&u).cloned());
        let stored = env
            .store
            .emails_for_replay(tenant.id, since_ms, limit)
            .await?;
        report.emails += stored.len();
        let mut emails = Vec::with_capacity(stored.len());
        for s in &stored {
            match email_from_store(s, user_of(s.user_id)) {
                Some(e) => emails.push(e),
                None => report.unreadable += 1,
            }
        }
        for chunk in emails.chunks(BATCH) {
            let decided = decide(&stages, None, chunk.to_vec()).await?;
            report.add(&tenant.name, decided);
        }
        let stored = env
            .store
            .events_for_replay(tenant.id, since_ms, limit)
            .await?;
        report.events += stored.len();
        let mut events = Vec::with_capacity(stored.len());
        for s in &stored {
            match event_from_store(s, user_of(s.user_id)) {
                Some(e) => events.push(e),
                None => report.unreadable += 1,
            }
        }
        // Decided as the calendar decides a live event (C3 rather than E7 for internal ones).
        let ctx = calendar_context(&stages.ctx);
        for chunk in events.chunks(BATCH) {
            let decided = decide(&stages, Some(ctx.clone()), chunk.to_vec()).await?;
            report.add(&tenant.name, decided);
        }
        report.records = report.emails + report.events;
        report.tenants.push(tenant.name);
    }
    Ok(report)
}
