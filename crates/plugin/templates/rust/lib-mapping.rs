//! {{name}}: a mapping plugin. It turns each Graph email and event into the CRM's record.
//!
//! A starting point, not the full C8 table (m365sync's default `field-mapping` plugin has it):
//! an HTML body is replaced by Graph's plain-text preview rather than converted, and the
//! reminder's date is left for you to compute from `start` and the minutes.

mod bindings {
    wit_bindgen::generate!({ world: "mapping", path: "wit" });
}

use bindings::exports::m365sync::plugin::mapping_plugin::Guest;
use bindings::m365sync::plugin::types::{
    AddressRole, AttendeeKind, AttendeeStatus, Body, BodyType, CrmAttendee, CrmEmail, CrmEvent,
    Descriptor, Email, Event, Fields, PluginKind, Response, Sensitivity, ShowAs, ShowTimeAs,
};

struct Plugin;

fn text(body: &Option<Body>, preview: &str) -> String {
    match body {
        Some(b) if b.content_type == BodyType::Text => b.content.trim().to_string(),
        _ => preview.trim().to_string(),
    }
}

fn status(response: Response) -> AttendeeStatus {
    match response {
        Response::Accepted | Response::Organizer => AttendeeStatus::Accepted,
        Response::Declined => AttendeeStatus::Declined,
        Response::None | Response::TentativelyAccepted | Response::NotResponded => {
            AttendeeStatus::New
        }
    }
}

fn map_email(e: &Email) -> CrmEmail {
    let with_role = |role: AddressRole| -> Vec<String> {
        e.addresses
            .iter()
            .flatten()
            .filter(|a| a.role == role)
            .map(|a| a.email.clone())
            .collect()
    };
    let from = with_role(AddressRole::From)
        .into_iter()
        .chain(with_role(AddressRole::Sender))
        .next();
    CrmEmail {
        external_id: e.id.clone(),
        internet_message_id: e.internet_message_id.clone(),
        conversation_id: e.conversation_id.clone(),
        mailbox: e.mailbox.clone().unwrap_or_default(),
        direction: e.direction,
        from,
        to: with_role(AddressRole::To),
        cc: with_role(AddressRole::Cc),
        bcc: with_role(AddressRole::Bcc),
        subject: e.subject.clone().unwrap_or_default(),
        description: text(&e.body, e.preview.as_deref().unwrap_or_default()),
        sent: e.sent.clone(),
        received: e.received.clone(),
        importance: e.importance,
        categories: e.categories.clone().unwrap_or_default(),
        attachment_count: e.attachments.iter().flatten().count() as u32,
        attachment_bytes: e.attachments.iter().flatten().map(|a| a.size).sum(),
    }
}

fn map_event(e: &Event) -> CrmEvent {
    CrmEvent {
        external_id: e.id.clone(),
        subject: e.subject.clone().unwrap_or_default(),
        description: text(&e.body, ""),
        all_day: e.is_all_day,
        start: e.start.clone().unwrap_or_default(),
        end: e.end.clone().unwrap_or_default(),
        assigned_to: e.organizer.as_ref().map(|o| o.email.clone()),
        attendees: e
            .attendees
            .iter()
            .flatten()
            .map(|a| CrmAttendee {
                email: a.email.clone(),
                name: a.name.clone().unwrap_or_default(),
                status: status(a.response),
                optional: a.kind == AttendeeKind::Optional,
            })
            .collect(),
        location: e.location.clone().unwrap_or_default(),
        resources: e
            .locations
            .iter()
            .flatten()
            .filter_map(|l| l.email.clone())
            .collect(),
        recurring: e.recurrence.clone(),
        private: matches!(
            e.sensitivity,
            Sensitivity::Private | Sensitivity::Confidential
        ),
        reminder_set: e.reminder_minutes_before_start.is_some(),
        reminder_at: None,
        show_time_as: match e.show_as {
            ShowAs::Free => ShowTimeAs::Free,
            ShowAs::Oof => ShowTimeAs::OutOfOffice,
            ShowAs::Tentative | ShowAs::Busy | ShowAs::WorkingElsewhere | ShowAs::Unknown => {
                ShowTimeAs::Busy
            }
        },
        status: status(e.response_status),
        teams_meeting: e.is_online_meeting
            && e.online_meeting_provider.as_deref() == Some("teamsForBusiness"),
        teams_url: e.online_meeting_url.clone(),
    }
}

impl Guest for Plugin {
    fn describe() -> Descriptor {
        Descriptor {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Mapping,
            config: Vec::new(),
            // The parts of a record this plugin reads; the host hands over only these (any
            // other field arrives as `None`). A part left out here costs nothing per record.
            fields: Fields::MAILBOX
                | Fields::ADDRESSES
                | Fields::NAMES
                | Fields::SUBJECT
                | Fields::BODY
                | Fields::PREVIEW
                | Fields::DATES
                | Fields::CATEGORIES
                | Fields::ATTACHMENTS
                | Fields::THREAD
                | Fields::LOCATION
                | Fields::RECURRENCE
                | Fields::ONLINE_MEETING,
        }
    }

    fn map_emails(batch: Vec<Email>) -> Vec<Result<CrmEmail, String>> {
        batch.iter().map(|e| Ok(map_email(e))).collect()
    }

    fn map_events(batch: Vec<Event>) -> Vec<Result<CrmEvent, String>> {
        batch.iter().map(|e| Ok(map_event(e))).collect()
    }
}

bindings::export!(Plugin with_types_in bindings);
