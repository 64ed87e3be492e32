//! The default contact-matching plugin (E8, E9): link a stored email or event to the contacts
//! whose Email, Alternate Email or a contact-point email is one of its addresses.
//!
//! One host call per batch for the sync users and one for the contacts. A sync user's own
//! address never makes a match (E9); when a contact carries one, the plugin logs a warning so
//! the admin can fix the contact.
//!
//! Threads: a record that matches nothing by its own addresses inherits its thread's matches
//! (those the host passes in `thread-matches`, or those of an earlier record of the same
//! conversation in this batch), so a reply from a colleague's new address lands on the same
//! timeline. The `inherit-thread` setting (default `true`) turns that off.

mod bindings {
    wit_bindgen::generate!({ world: "matching", path: "../../wit" });
}

use std::collections::{HashMap, HashSet};

use bindings::exports::m365sync::plugin::matching_plugin::Guest;
use bindings::m365sync::plugin::host;
use bindings::m365sync::plugin::types::{
    AddressRole, ConfigOption, ContactMatch, Descriptor, Fields, LogLevel, MatchField, MatchInput,
    PluginKind,
};

struct Plugin;

fn role_name(role: AddressRole) -> &'static str {
    match role {
        AddressRole::From => "from",
        AddressRole::Sender => "sender",
        AddressRole::To => "to",
        AddressRole::Cc => "cc",
        AddressRole::Bcc => "bcc",
        AddressRole::ReplyTo => "reply-to",
    }
}

fn field_name(field: MatchField) -> &'static str {
    match field {
        MatchField::Email => "Email",
        MatchField::AlternateEmail => "Alternate Email",
        MatchField::ContactPoint => "a contact-point email",
        MatchField::Thread => "thread",
    }
}

/// One contact reachable through one address.
struct Hit {
    contact: String,
    entity: Option<String>,
    field: MatchField,
}

impl Guest for Plugin {
    fn describe() -> Descriptor {
        Descriptor {
            name: "contact-matching".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Matching,
            config: vec![ConfigOption {
                key: "inherit-thread".into(),
                description: "A record matching no contact by itself takes its thread's matches"
                    .into(),
                default: Some("true".into()),
            }],
            // A match input is always whole; display names are not needed (contract 0.2).
            fields: Fields::empty(),
        }
    }

    fn match_records(batch: Vec<MatchInput>) -> Vec<Result<Vec<ContactMatch>, String>> {
        // Every distinct address of the batch, lower-cased, in first-seen order.
        let mut seen = HashSet::new();
        let mut unique = Vec::new();
        for input in &batch {
            for a in &input.addresses {
                let email = a.email.trim().to_ascii_lowercase();
                if seen.insert(email.clone()) {
                    unique.push(email);
                }
            }
        }
        let sync_flags = host::sync_users(&unique);
        let sync_users: HashSet<&str> = unique
            .iter()
            .zip(sync_flags.iter().chain(std::iter::repeat(&false)))
            .filter(|(_, &is)| is)
            .map(|(a, _)| a.as_str())
            .collect();

        let mut by_address: HashMap<String, Vec<Hit>> = HashMap::new();
        for c in host::contacts_by_email(&unique) {
            let mut add = |email: &Option<String>, field: MatchField| {
                if let Some(e) = email {
                    let e = e.trim().to_ascii_lowercase();
                    if sync_users.contains(e.as_str()) {
                        host::log(
                            LogLevel::Warn,
                            &format!(
                                "contact {} carries the sync user address {e} in {}; it is ignored for matching",
                                c.id,
                                field_name(field)
                            ),
                        );
                        return;
                    }
                    by_address.entry(e).or_default().push(Hit {
                        contact: c.id.clone(),
                        entity: c.entity.clone(),
                        field,
                    });
                }
            };
            add(&c.email, MatchField::Email);
            add(&c.alternate_email, MatchField::AlternateEmail);
            for p in &c.contact_points {
                add(&Some(p.clone()), MatchField::ContactPoint);
            }
        }

        let inherit = host::config("inherit-thread").as_deref() != Some("false");
        // The matches of each conversation seen so far in this batch, for replies later in it.
        let mut threads: HashMap<String, Vec<ContactMatch>> = HashMap::new();
        batch
            .into_iter()
            .map(|input| {
                let mut matched: Vec<ContactMatch> = Vec::new();
                for a in &input.addresses {
                    let email = a.email.trim().to_ascii_lowercase();
                    if sync_users.contains(email.as_str()) {
                        continue;
                    }
                    for hit in by_address.get(&email).into_iter().flatten() {
                        if matched.iter().any(|m| m.contact == hit.contact) {
                            continue;
                        }
                        matched.push(ContactMatch {
                            contact: hit.contact.clone(),
                            entity: hit.entity.clone(),
                            address: email.clone(),
                            field: hit.field,
                            reason: format!(
                                "{} address {email} is the contact's {}",
                                role_name(a.role),
                                field_name(hit.field)
                            ),
                        });
                    }
                }
                if let Some(conversation) =
                    input.conversation_id.as_deref().filter(|c| !c.is_empty())
                {
                    if matched.is_empty() && inherit {
                        let known = threads.get(conversation).cloned();
                        let from_thread = known.unwrap_or_else(|| input.thread_matches.clone());
                        matched = inherited(from_thread);
                    }
                    if !matched.is_empty() {
                        threads.insert(conversation.to_string(), matched.clone());
                    }
                }
                Ok(matched)
            })
            .collect()
    }
}

/// A thread's matches as a reply's own: one per contact, marked as inherited.
fn inherited(from_thread: Vec<ContactMatch>) -> Vec<ContactMatch> {
    let mut out: Vec<ContactMatch> = Vec::new();
    for m in from_thread {
        if out.iter().any(|o| o.contact == m.contact) {
            continue;
        }
        out.push(ContactMatch {
            reason: format!(
                "its thread is linked to contact {} ({})",
                m.contact, m.address
            ),
            field: MatchField::Thread,
            ..m
        });
    }
    out
}

bindings::export!(Plugin with_types_in bindings);
