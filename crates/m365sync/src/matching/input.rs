//! Between stored records and the matching plugin: the `match-input` of each record with its
//! thread's matches, the tenant view holding exactly the contacts the batch can reach, and the
//! check of the plugin's answers.

use std::collections::{HashMap, HashSet};

use m365sync_plugin::bindings::types::{
    Address, AddressRole, Contact, ContactMatch, MatchField, MatchInput,
};
use m365sync_plugin::host::TenantData;
use m365sync_store::matching::{MatchCandidate, MatchContact, StoredMatch};

/// The plugin contract's role for a stored role name.
fn role(name: &str) -> AddressRole {
    match name {
        "from" => AddressRole::From,
        "sender" => AddressRole::Sender,
        "cc" => AddressRole::Cc,
        "bcc" => AddressRole::Bcc,
        "reply_to" => AddressRole::ReplyTo,
        // Events: the organizer sends, attendees receive.
        "organizer" => AddressRole::From,
        _ => AddressRole::To,
    }
}

/// The stored name of a matched field.
pub fn field_name(field: MatchField) -> &'static str {
    match field {
        MatchField::Email => "email",
        MatchField::AlternateEmail => "alternate-email",
        MatchField::ContactPoint => "contact-point",
        MatchField::Thread => "thread",
    }
}

fn field_from_name(name: &str) -> MatchField {
    match name {
        "alternate-email" => MatchField::AlternateEmail,
        "contact-point" => MatchField::ContactPoint,
        "email" => MatchField::Email,
        _ => MatchField::Thread,
    }
}

/// The conversations of a batch, each once.
pub fn batch_conversations(batch: &[MatchCandidate]) -> Vec<String> {
    let mut seen = HashSet::new();
    batch
        .iter()
        .filter(|c| !c.conversation_id.is_empty())
        .filter(|c| seen.insert(c.conversation_id.as_str()))
        .map(|c| c.conversation_id.clone())
        .collect()
}

/// A stored match as the plugin contract's `contact-match`.
fn contract_match(m: &StoredMatch) -> ContactMatch {
    ContactMatch {
        contact: m.contact_id.to_string(),
        entity: m.entity_id.map(|e| e.to_string()),
        address: m.address.clone(),
        field: field_from_name(&m.field),
        reason: m.reason.clone(),
    }
}

/// The matches a record's thread holds from its other records, each contact once.
fn thread_of(
    c: &MatchCandidate,
    threads: &HashMap<String, Vec<(i64, StoredMatch)>>,
) -> Vec<ContactMatch> {
    let mut out: Vec<ContactMatch> = Vec::new();
    for (record, m) in threads.get(&c.conversation_id).into_iter().flatten() {
        if *record != c.id && !out.iter().any(|o| o.contact == m.contact_id.to_string()) {
            out.push(contract_match(m));
        }
    }
    out
}

/// The plugin's inputs for a batch: each record with its thread's stored matches.
pub fn match_inputs(
    batch: &[MatchCandidate],
    threads: &HashMap<String, Vec<(i64, StoredMatch)>>,
) -> Vec<MatchInput> {
    batch
        .iter()
        .map(|c| MatchInput {
            record_id: c.id.to_string(),
            user: c.user.clone(),
            addresses: c
                .addresses
                .iter()
                .map(|(r, email, name)| Address {
                    role: role(r),
                    email: email.clone(),
                    name: name.clone(),
                })
                .collect(),
            conversation_id: (!c.conversation_id.is_empty()).then(|| c.conversation_id.clone()),
            thread_matches: thread_of(c, threads),
        })
        .collect()
}

/// What the plugin may read for one batch: the contacts its addresses reach and the org's sync
/// users. Nothing else of the org is visible.
pub fn tenant_view(
    org: &str,
    tenant: &str,
    contacts: &[MatchContact],
    sync_users: &[String],
) -> TenantData {
    TenantData {
        org: org.to_string(),
        tenant: tenant.to_string(),
        contacts: contacts
            .iter()
            .map(|c| Contact {
                id: c.id.to_string(),
                name: c.name.clone(),
                entity: c.entity_id.map(|e| e.to_string()),
                email: c.email.clone(),
                alternate_email: c.alt_email.clone(),
                contact_points: c.contact_points.clone(),
            })
            .collect(),
        sync_users: sync_users.to_vec(),
        ..TenantData::default()
    }
}

/// Checks one record's answer and turns it into stored matches. A plugin may only name the
/// contacts it was shown (the batch's or the thread's); the entity comes from the contact
/// itself, never from the plugin.
pub fn accept(
    answer: Vec<ContactMatch>,
    shown: &HashMap<i64, Option<i64>>,
) -> Result<Vec<StoredMatch>, String> {
    let mut out: Vec<StoredMatch> = Vec::with_capacity(answer.len());
    for m in answer {
        let id: i64 = m
            .contact
            .parse()
            .map_err(|_| format!("the plugin answered an unknown contact id '{}'", m.contact))?;
        let Some(entity) = shown.get(&id) else {
            return Err(format!(
                "the plugin answered contact {id}, which it was not shown for this record"
            ));
        };
        if out.iter().any(|o| o.contact_id == id) {
            continue;
        }
        out.push(StoredMatch {
            contact_id: id,
            entity_id: *entity,
            address: m.address.trim().to_ascii_lowercase(),
            field: field_name(m.field).to_string(),
            reason: m.reason,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact_match(contact: &str) -> ContactMatch {
        ContactMatch {
            contact: contact.into(),
            entity: Some("999".into()),
            address: "Pat@Client.example".into(),
            field: MatchField::Email,
            reason: "r".into(),
        }
    }

    #[test]
    fn a_plugin_can_only_link_contacts_it_was_shown() {
        let shown = HashMap::from([(7, Some(3))]);
        let ok = accept(vec![contact_match("7"), contact_match("7")], &shown).unwrap();
        assert_eq!(ok.len(), 1, "one link per contact");
        assert_eq!(ok[0].entity_id, Some(3), "the entity is the contact's own");
        assert_eq!(ok[0].address, "pat@client.example");
        assert!(accept(vec![contact_match("8")], &shown).is_err());
        assert!(accept(vec![contact_match("x")], &shown).is_err());
    }

    #[test]
    fn roles_and_fields_round_trip() {
        for f in [
            MatchField::Email,
            MatchField::AlternateEmail,
            MatchField::ContactPoint,
            MatchField::Thread,
        ] {
            assert_eq!(field_from_name(field_name(f)), f);
        }
        assert_eq!(role("organizer"), AddressRole::From);
        assert_eq!(role("reply_to"), AddressRole::ReplyTo);
    }
}
