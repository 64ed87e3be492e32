//! {{name}}: a matching plugin. It links each stored email or event to the CRM contacts whose
//! Email, Alternate Email or contact-point email is one of its addresses. A sync user's own
//! address never matches, and each contact is matched once, through its first address.

mod bindings {
    wit_bindgen::generate!({ world: "matching", path: "wit" });
}

use bindings::exports::m365sync::plugin::matching_plugin::Guest;
use bindings::m365sync::plugin::host;
use bindings::m365sync::plugin::types::{
    Contact, ContactMatch, Descriptor, Fields, MatchField, MatchInput, PluginKind,
};

struct Plugin;

/// Which field of `contact` carries `address` (lower-case), if any.
fn field(contact: &Contact, address: &str) -> Option<(MatchField, &'static str)> {
    let is = |e: &Option<String>| {
        e.as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(address))
    };
    if is(&contact.email) {
        Some((MatchField::Email, "Email"))
    } else if is(&contact.alternate_email) {
        Some((MatchField::AlternateEmail, "Alternate Email"))
    } else if contact
        .contact_points
        .iter()
        .any(|p| p.eq_ignore_ascii_case(address))
    {
        Some((MatchField::ContactPoint, "contact-point email"))
    } else {
        None
    }
}

fn match_one(input: &MatchInput) -> Vec<ContactMatch> {
    let mut addresses: Vec<String> = Vec::new();
    for a in &input.addresses {
        let a = a.email.trim().to_ascii_lowercase();
        if !addresses.contains(&a) {
            addresses.push(a);
        }
    }
    // A sync user's own address is the firm's, never a client's.
    let own = host::sync_users(&addresses);
    let addresses: Vec<String> = addresses
        .into_iter()
        .zip(own)
        .filter(|(_, own)| !own)
        .map(|(a, _)| a)
        .collect();
    if addresses.is_empty() {
        return Vec::new();
    }
    let contacts = host::contacts_by_email(&addresses);
    let mut matches: Vec<ContactMatch> = Vec::new();
    for address in &addresses {
        for contact in &contacts {
            if matches.iter().any(|m| m.contact == contact.id) {
                continue;
            }
            if let Some((field, label)) = field(contact, address) {
                matches.push(ContactMatch {
                    contact: contact.id.clone(),
                    entity: contact.entity.clone(),
                    address: address.clone(),
                    field,
                    reason: format!("{address} is the contact's {label}"),
                });
            }
        }
    }
    matches
}

impl Guest for Plugin {
    fn describe() -> Descriptor {
        Descriptor {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Matching,
            config: Vec::new(),
            // A match input is always whole; `Fields::NAMES` would add display names.
            fields: Fields::empty(),
        }
    }

    fn match_records(batch: Vec<MatchInput>) -> Vec<Result<Vec<ContactMatch>, String>> {
        batch.iter().map(|r| Ok(match_one(r))).collect()
    }
}

bindings::export!(Plugin with_types_in bindings);
