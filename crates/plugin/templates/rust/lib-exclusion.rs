//! {{name}}: an exclusion plugin. It keeps or drops each email and event, and names the rule
//! that decided.
//!
//! What it does (change it to your policy):
//! - drops a record whose every address is in the org's internal domains (`internal-only`);
//! - drops a record whose subject contains the configured `drop-subject` text, if set.

mod bindings {
    wit_bindgen::generate!({ world: "exclusion", path: "wit" });
}

use bindings::exports::m365sync::plugin::exclusion_plugin::Guest;
use bindings::m365sync::plugin::host;
use bindings::m365sync::plugin::types::{
    ConfigOption, Decision, Descriptor, Email, Event, Fields, PluginKind, Verdict,
};

struct Plugin;

/// What one batch asks the host once.
struct Policy {
    internal_domains: Vec<String>,
    drop_subject: Option<String>,
}

impl Policy {
    fn new() -> Self {
        Policy {
            internal_domains: host::internal_domains(),
            drop_subject: host::config("drop-subject")
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty()),
        }
    }

    fn decide<'a>(&self, subject: &str, addresses: impl Iterator<Item = &'a str>) -> Verdict {
        if let Some(text) = &self.drop_subject {
            if subject.to_lowercase().contains(text.as_str()) {
                return verdict(Decision::Drop, Some("drop-subject"), "the subject matches");
            }
        }
        let mut any = false;
        let all_internal = addresses.into_iter().all(|a| {
            any = true;
            let domain = a.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
            self.internal_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
        });
        if any && all_internal {
            return verdict(
                Decision::Drop,
                Some("internal-only"),
                "every address is in the internal domains",
            );
        }
        verdict(Decision::Keep, None, "no rule matched")
    }
}

fn verdict(decision: Decision, rule: Option<&str>, reason: &str) -> Verdict {
    Verdict {
        decision,
        rule: rule.map(str::to_string),
        reason: reason.to_string(),
    }
}

impl Guest for Plugin {
    fn describe() -> Descriptor {
        Descriptor {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Exclusion,
            config: vec![ConfigOption {
                key: "drop-subject".into(),
                description: "drop records whose subject contains this text".into(),
                default: None,
            }],
            // The parts of a record this plugin reads; the host hands over only these (any
            // other field arrives as `None`). Add a part here before reading it.
            fields: Fields::SUBJECT | Fields::ADDRESSES,
        }
    }

    fn exclude_emails(batch: Vec<Email>) -> Vec<Result<Verdict, String>> {
        let policy = Policy::new();
        batch
            .iter()
            .map(|e| {
                let addresses = e.addresses.iter().flatten().map(|a| a.email.as_str());
                Ok(policy.decide(e.subject.as_deref().unwrap_or_default(), addresses))
            })
            .collect()
    }

    fn exclude_events(batch: Vec<Event>) -> Vec<Result<Verdict, String>> {
        let policy = Policy::new();
        batch
            .iter()
            .map(|e| {
                let organizer = e.organizer.iter().map(|o| o.email.as_str());
                let attendees = e.attendees.iter().flatten().map(|a| a.email.as_str());
                let subject = e.subject.as_deref().unwrap_or_default();
                Ok(policy.decide(subject, organizer.chain(attendees)))
            })
            .collect()
    }
}

bindings::export!(Plugin with_types_in bindings);
