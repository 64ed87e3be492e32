//! A mapping plugin that maps otherwise than the default on purpose, for the live mapping
//! shadow test: each email's CRM subject is `[remapped] SUBJECT` and its description empty,
//! and an email whose subject contains `unmappable` is that record's error. Events are mapped
//! the same way. Nothing else of the record is carried beyond what the test compares.

mod bindings {
    wit_bindgen::generate!({ world: "mapping", path: "../../../wit/0.1" });
}

use bindings::exports::m365sync::plugin::mapping_plugin::Guest;
use bindings::m365sync::plugin::types::{
    AttendeeStatus, CrmEmail, CrmEvent, Descriptor, Email, Event, PluginKind, ShowTimeAs,
};

struct Plugin;

const UNMAPPABLE: &str = "unmappable";

fn subject(s: &str) -> Result<String, String> {
    if s.contains(UNMAPPABLE) {
        Err(format!("remap refuses the subject {s:?}"))
    } else {
        Ok(format!("[remapped] {s}"))
    }
}

fn email(e: Email) -> Result<CrmEmail, String> {
    Ok(CrmEmail {
        subject: subject(&e.subject)?,
        external_id: e.id,
        internet_message_id: e.internet_message_id,
        conversation_id: e.conversation_id,
        mailbox: e.mailbox,
        direction: e.direction,
        from: None,
        to: Vec::new(),
        cc: Vec::new(),
        bcc: Vec::new(),
        description: String::new(),
        sent: e.sent,
        received: e.received,
        importance: e.importance,
        categories: e.categories,
        attachment_count: 0,
        attachment_bytes: 0,
    })
}

fn event(e: Event) -> Result<CrmEvent, String> {
    Ok(CrmEvent {
        subject: subject(&e.subject)?,
        external_id: e.id,
        description: String::new(),
        all_day: e.is_all_day,
        start: e.start,
        end: e.end,
        assigned_to: None,
        attendees: Vec::new(),
        location: e.location,
        resources: Vec::new(),
        recurring: e.recurrence,
        private: false,
        reminder_set: false,
        reminder_at: None,
        show_time_as: ShowTimeAs::Busy,
        status: AttendeeStatus::New,
        teams_meeting: false,
        teams_url: None,
    })
}

impl Guest for Plugin {
    fn describe() -> Descriptor {
        Descriptor {
            name: "remap".into(),
            version: "0.0.1".into(),
            kind: PluginKind::Mapping,
            config: Vec::new(),
        }
    }

    fn map_emails(batch: Vec<Email>) -> Vec<Result<CrmEmail, String>> {
        batch.into_iter().map(email).collect()
    }

    fn map_events(batch: Vec<Event>) -> Vec<Result<CrmEvent, String>> {
        batch.into_iter().map(event).collect()
    }
}

bindings::export!(Plugin with_types_in bindings);
