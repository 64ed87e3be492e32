//! The default field-mapping plugin: Graph email -> CRM email record, Graph event -> CRM event
//! record following the table of C8 (and the attendee rules of C7).

mod bindings {
    wit_bindgen::generate!({ world: "mapping", path: "../../wit" });
}

pub mod html;
pub mod time;

use bindings::exports::m365sync::plugin::mapping_plugin::Guest;
use bindings::m365sync::plugin::host;
use bindings::m365sync::plugin::types::{
    AddressRole, AttendeeKind, AttendeeStatus, Body, BodyType, ConfigOption, CrmAttendee, CrmEmail,
    CrmEvent, Descriptor, Email, Event, Fields, PluginKind, Response, Sensitivity, ShowAs,
    ShowTimeAs,
};

struct Plugin;

/// C7: at most this many attendees, the first ones alphabetically.
const DEFAULT_MAX_ATTENDEES: usize = 50;

/// What the mapping reads (contract 0.2): nearly everything but headers, folder, preview and
/// the user; display names for the attendees.
fn fields() -> Fields {
    Fields::MAILBOX
        | Fields::ADDRESSES
        | Fields::NAMES
        | Fields::SUBJECT
        | Fields::BODY
        | Fields::DATES
        | Fields::CATEGORIES
        | Fields::ATTACHMENTS
        | Fields::THREAD
        | Fields::LOCATION
        | Fields::RECURRENCE
        | Fields::ONLINE_MEETING
}

fn plain(body: &Option<Body>) -> String {
    let Some(body) = body else {
        return String::new();
    };
    match body.content_type {
        BodyType::Html => html::to_text(&body.content),
        BodyType::Text => body.content.trim().to_string(),
    }
}

fn map_email(e: Email) -> CrmEmail {
    let mut from = None;
    let mut sender = None;
    let (mut to, mut cc, mut bcc) = (Vec::new(), Vec::new(), Vec::new());
    for a in e.addresses.into_iter().flatten() {
        match a.role {
            AddressRole::From => from = from.or(Some(a.email)),
            AddressRole::Sender => sender = sender.or(Some(a.email)),
            AddressRole::To => to.push(a.email),
            AddressRole::Cc => cc.push(a.email),
            AddressRole::Bcc => bcc.push(a.email),
            AddressRole::ReplyTo => {}
        }
    }
    CrmEmail {
        description: plain(&e.body),
        external_id: e.id,
        internet_message_id: e.internet_message_id,
        conversation_id: e.conversation_id,
        mailbox: e.mailbox.unwrap_or_default(),
        direction: e.direction,
        from: from.or(sender),
        to,
        cc,
        bcc,
        subject: e.subject.unwrap_or_default(),
        sent: e.sent,
        received: e.received,
        importance: e.importance,
        categories: e.categories.unwrap_or_default(),
        attachment_count: e.attachments.iter().flatten().count() as u32,
        attachment_bytes: e.attachments.iter().flatten().map(|a| a.size).sum(),
    }
}

/// Attendee status <- responseStatus.
fn status(r: Response) -> AttendeeStatus {
    match r {
        Response::None | Response::NotResponded => AttendeeStatus::New,
        Response::Organizer | Response::TentativelyAccepted | Response::Accepted => {
            AttendeeStatus::Accepted
        }
        Response::Declined => AttendeeStatus::Declined,
    }
}

/// Show Time As <- showAs.
fn show_time_as(s: ShowAs) -> ShowTimeAs {
    match s {
        ShowAs::Busy => ShowTimeAs::Busy,
        ShowAs::Oof | ShowAs::WorkingElsewhere => ShowTimeAs::OutOfOffice,
        ShowAs::Free | ShowAs::Tentative | ShowAs::Unknown => ShowTimeAs::Free,
    }
}

fn map_event(e: Event, max_attendees: usize) -> Result<CrmEvent, String> {
    let private = e.sensitivity == Sensitivity::Private;
    let (start, end) = (e.start.unwrap_or_default(), e.end.unwrap_or_default());
    let reminder_at = match e.reminder_minutes_before_start {
        Some(minutes) => Some(
            time::minus_minutes(&start, minutes)
                .map_err(|err| format!("start {start:?}: {err}"))?,
        ),
        None => None,
    };
    let start = time::normalize(&start).map_err(|err| format!("start {start:?}: {err}"))?;
    let end = time::normalize(&end).map_err(|err| format!("end {end:?}: {err}"))?;
    // C7: private events sync without attendees; at most `max_attendees`, alphabetically.
    let mut attendees: Vec<CrmAttendee> = if private {
        Vec::new()
    } else {
        e.attendees
            .into_iter()
            .flatten()
            .filter(|a| a.kind != AttendeeKind::Resource)
            .map(|a| CrmAttendee {
                status: status(a.response),
                optional: a.kind == AttendeeKind::Optional,
                email: a.email,
                name: a.name.unwrap_or_default(),
            })
            .collect()
    };
    attendees.sort_by(|a, b| a.email.cmp(&b.email));
    attendees.truncate(max_attendees);
    let teams =
        e.is_online_meeting && e.online_meeting_provider.as_deref() == Some("teamsForBusiness");
    Ok(CrmEvent {
        description: plain(&e.body),
        external_id: e.id,
        subject: e.subject.unwrap_or_default(),
        all_day: e.is_all_day,
        start,
        end,
        assigned_to: e.organizer.map(|o| o.email),
        attendees,
        location: e.location.unwrap_or_default(),
        resources: e
            .locations
            .into_iter()
            .flatten()
            .filter_map(|l| l.email)
            .collect(),
        recurring: e.recurrence,
        private,
        reminder_set: e.reminder_minutes_before_start.is_some(),
        reminder_at,
        show_time_as: show_time_as(e.show_as),
        status: status(e.response_status),
        teams_meeting: teams,
        teams_url: if teams { e.online_meeting_url } else { None },
    })
}

impl Guest for Plugin {
    fn describe() -> Descriptor {
        Descriptor {
            name: "field-mapping".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Mapping,
            config: vec![ConfigOption {
                key: "max-attendees".into(),
                description: "attendees kept per event, the first alphabetically (C7)".into(),
                default: Some(DEFAULT_MAX_ATTENDEES.to_string()),
            }],
            fields: fields(),
        }
    }

    fn map_emails(batch: Vec<Email>) -> Vec<Result<CrmEmail, String>> {
        batch.into_iter().map(|e| Ok(map_email(e))).collect()
    }

    fn map_events(batch: Vec<Event>) -> Vec<Result<CrmEvent, String>> {
        let max = host::config("max-attendees")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_MAX_ATTENDEES);
        batch.into_iter().map(|e| map_event(e, max)).collect()
    }
}

bindings::export!(Plugin with_types_in bindings);
