//! Between stored records and the matching plugin: the `match-input` of each record with its
//! thread's matches, the tenant view holding exactly the contacts the batch can reach, and the
//! check of the plugin's answers.

use std::collections::{HashMap, HashSet};

use m365sync_plugin::bindings::types::{
    Address, AddressRole, Contact, ContactMatch, MatchField, MatchInput,
};
use m365sync_plugin::host::TenantData;
use m365sync_store::matching::{MatchCandidate, MatchContact, StoredMatch, ThreadLink};

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
fn thread_of(c: &MatchCandidate, threads: &HashMap<String, Vec<ThreadLink>>) -> Vec<ContactMatch> {
    let mut out: Vec<ContactMatch> = Vec::new();
    for t in threads.get(&c.conversation_id).into_iter().flatten() {
        if t.record_id != c.id
            && !out
                .iter()
                .any(|o| o.contact == t.link.contact_id.to_string())
        {
            out.push(contract_match(&t.link));
        }
    }
    out
}

/// The thread links as the store holds them once `part`'s outcomes are saved: each record
/// matched anew loses its plugin links and gains its new direct ones (a link inherited from the
/// thread never feeds another, as [`Store::thread_matches`] leaves them out), a manual link
/// is kept and a new link to the same contact gives way to it (`ON CONFLICT DO NOTHING`), a
/// failed record keeps what it had. The next part of a batch read at once is thus shown what
/// it would have read after this part's commit.
///
/// [`Store::thread_matches`]: m365sync_store::Store::thread_matches
pub fn carry_thread_links(
    threads: &mut HashMap<String, Vec<ThreadLink>>,
    part: &[MatchCandidate],
    outcomes: &[Result<Vec<StoredMatch>, String>],
) {
    for (c, outcome) in part.iter().zip(outcomes) {
        let Ok(links) = outcome else { continue };
        if c.conversation_id.is_empty() {
            continue;
        }
        let thread = threads.entry(c.conversation_id.clone()).or_default();
        thread.retain(|t| t.record_id != c.id || t.manual);
        for m in links.iter().filter(|m| m.field != "thread") {
            if !thread
                .iter()
                .any(|t| t.record_id == c.id && t.link.contact_id == m.contact_id)
            {
                thread.push(ThreadLink {
                    record_id: c.id,
                    sent_ms: c.occurred_ms,
                    manual: false,
                    link: m.clone(),
                });
            }
        }
        // The store's order: by the email's sent time, then the contact.
        thread.sort_by_key(|t| (t.sent_ms, t.link.contact_id));
    }
}

/// The contacts of a batch's `contacts` that the addresses of `part` reach (by Email,
/// Alternate Email or a contact point, as [`Store::match_batch`] joins them), in id order:
/// what the plugin is shown for that part.
///
/// [`Store::match_batch`]: m365sync_store::Store::match_batch
pub fn contacts_for(part: &[MatchCandidate], contacts: &[MatchContact]) -> Vec<MatchContact> {
    let addresses: HashSet<&str> = part
        .iter()
        .flat_map(|c| c.addresses.iter().map(|(_, a, _)| a.as_str()))
        .collect();
    let reached = |a: &Option<String>| a.as_deref().is_some_and(|a| addresses.contains(a));
    contacts
        .iter()
        .filter(|c| {
            reached(&c.email)
                || reached(&c.alt_email)
                || c.contact_points
                    .iter()
                    .any(|p| addresses.contains(p.as_str()))
        })
        .cloned()
        .collect()
}

/// The plugin's inputs for a batch: each record with its thread's stored matches.
pub fn match_inputs(
    batch: &[MatchCandidate],
    threads: &HashMap<String, Vec<ThreadLink>>,
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

    fn candidate(id: i64, conversation: &str, sent: i64, addresses: &[&str]) -> MatchCandidate {
        MatchCandidate {
            id,
            conversation_id: conversation.into(),
            occurred_ms: sent,
            user: None,
            addresses: addresses
                .iter()
                .map(|a| ("to".to_string(), a.to_string(), String::new()))
                .collect(),
        }
    }

    fn link(contact_id: i64, field: &str) -> StoredMatch {
        StoredMatch {
            contact_id,
            entity_id: None,
            address: format!("c{contact_id}@x.example"),
            field: field.into(),
            reason: "r".into(),
        }
    }

    fn stored(record_id: i64, sent_ms: i64, manual: bool, contact_id: i64) -> ThreadLink {
        ThreadLink {
            record_id,
            sent_ms,
            manual,
            link: link(contact_id, if manual { "manual" } else { "email" }),
        }
    }

    /// The next part of a batch sees the thread as the store would hold it after this part's
    /// commit: a matched record's plugin links replaced by its new direct ones (inherited ones
    /// left out), its manual links kept, a failed record's links untouched, in sent order.
    #[test]
    fn a_part_carries_its_links_into_the_thread_as_the_store_would() {
        let mut threads = HashMap::from([(
            "t".to_string(),
            vec![
                stored(1, 10, false, 7),
                stored(1, 10, true, 8),
                stored(3, 30, false, 9),
            ],
        )]);
        let part = [
            candidate(1, "t", 10, &[]),
            candidate(2, "t", 5, &[]),
            candidate(3, "t", 30, &[]),
            candidate(4, "u", 40, &[]),
            candidate(5, "", 50, &[]),
        ];
        let outcomes = vec![
            Ok(vec![link(8, "email"), link(6, "email")]),
            Ok(vec![link(5, "email"), link(9, "thread")]),
            Err("failed".to_string()),
            Ok(vec![link(4, "contact-point")]),
            Ok(vec![link(3, "email")]),
        ];
        carry_thread_links(&mut threads, &part, &outcomes);
        let t: Vec<(i64, i64, bool)> = threads["t"]
            .iter()
            .map(|t| (t.record_id, t.link.contact_id, t.manual))
            .collect();
        assert_eq!(
            t,
            vec![(2, 5, false), (1, 6, false), (1, 8, true), (3, 9, false)]
        );
        let u: Vec<(i64, i64)> = threads["u"]
            .iter()
            .map(|t| (t.record_id, t.link.contact_id))
            .collect();
        assert_eq!(u, vec![(4, 4)]);
        assert!(!threads.contains_key(""), "no thread for mail without one");
    }

    /// A part is shown the batch's contacts its own addresses reach, by any of their fields.
    #[test]
    fn a_part_is_shown_the_contacts_its_addresses_reach() {
        let contact = |id: i64, email: &str, alt: Option<&str>, points: &[&str]| MatchContact {
            id,
            name: format!("C{id}"),
            entity_id: None,
            email: Some(email.into()),
            alt_email: alt.map(Into::into),
            contact_points: points.iter().map(|p| p.to_string()).collect(),
        };
        let contacts = vec![
            contact(1, "a@x.example", None, &[]),
            contact(2, "b@x.example", Some("b@home.example"), &[]),
            contact(3, "c@x.example", None, &["c@work.example"]),
            contact(4, "d@x.example", None, &[]),
        ];
        let part = [
            candidate(1, "", 0, &["a@x.example", "b@home.example"]),
            candidate(2, "", 0, &["c@work.example", "e@x.example"]),
        ];
        let ids: Vec<i64> = contacts_for(&part, &contacts)
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, vec![1, 2, 3]);
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
