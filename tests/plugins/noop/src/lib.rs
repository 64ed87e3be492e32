//! An exclusion plugin of contract 0.2 that declares no fields and keeps everything: the floor
//! of a 0.2 call (`m365sync plugin bench --also exclusion=noop.wasm`), and the 0.2 side of the
//! tests that run both contract versions on one host. With the configuration `echo = "true"`
//! its reason lists the optional fields that arrived (none should: it declared none).

mod bindings {
    wit_bindgen::generate!({ world: "exclusion", path: "../../../wit" });
}

use bindings::exports::m365sync::plugin::exclusion_plugin::Guest;
use bindings::m365sync::plugin::host;
use bindings::m365sync::plugin::types::{
    Decision, Descriptor, Email, Event, Fields, PluginKind, Verdict,
};

struct Plugin;

fn echo() -> bool {
    host::config("echo").as_deref() == Some("true")
}

/// `keep`, its reason `ID:` and the names of the fields that arrived, comma-separated.
fn listed(id: &str, present: &[(&str, bool)]) -> Verdict {
    let names: Vec<&str> = present
        .iter()
        .filter(|(_, p)| *p)
        .map(|(n, _)| *n)
        .collect();
    Verdict {
        decision: Decision::Keep,
        rule: None,
        reason: format!("{id}:{}", names.join(",")),
    }
}

fn keep() -> Verdict {
    Verdict {
        decision: Decision::Keep,
        rule: None,
        reason: String::new(),
    }
}

impl Guest for Plugin {
    fn describe() -> Descriptor {
        Descriptor {
            name: "noop".into(),
            version: "0.2.0".into(),
            kind: PluginKind::Exclusion,
            config: Vec::new(),
            fields: Fields::empty(),
        }
    }

    fn exclude_emails(batch: Vec<Email>) -> Vec<Result<Verdict, String>> {
        if !echo() {
            return batch.iter().map(|_| Ok(keep())).collect();
        }
        batch
            .iter()
            .map(|e| {
                let present = [
                    ("mailbox", e.mailbox.is_some()),
                    ("user", e.user.is_some()),
                    ("folder", e.folder.is_some()),
                    ("addresses", e.addresses.is_some()),
                    ("subject", e.subject.is_some()),
                    ("body", e.body.is_some()),
                    ("preview", e.preview.is_some()),
                    ("sent", e.sent.is_some()),
                    ("received", e.received.is_some()),
                    ("categories", e.categories.is_some()),
                    ("headers", e.headers.is_some()),
                    ("attachments", e.attachments.is_some()),
                    ("internet-message-id", e.internet_message_id.is_some()),
                    ("conversation-id", e.conversation_id.is_some()),
                ];
                Ok(listed(&e.id, &present))
            })
            .collect()
    }

    fn exclude_events(batch: Vec<Event>) -> Vec<Result<Verdict, String>> {
        if !echo() {
            return batch.iter().map(|_| Ok(keep())).collect();
        }
        batch
            .iter()
            .map(|e| {
                let present = [
                    ("mailbox", e.mailbox.is_some()),
                    ("user", e.user.is_some()),
                    ("subject", e.subject.is_some()),
                    ("body", e.body.is_some()),
                    ("start", e.start.is_some()),
                    ("end", e.end.is_some()),
                    ("organizer", e.organizer.is_some()),
                    ("attendees", e.attendees.is_some()),
                    ("location", e.location.is_some()),
                    ("locations", e.locations.is_some()),
                    ("recurrence", e.recurrence.is_some()),
                    (
                        "online-meeting-provider",
                        e.online_meeting_provider.is_some(),
                    ),
                    ("online-meeting-url", e.online_meeting_url.is_some()),
                    ("categories", e.categories.is_some()),
                ];
                Ok(listed(&e.id, &present))
            })
            .collect()
    }
}

bindings::export!(Plugin with_types_in bindings);
