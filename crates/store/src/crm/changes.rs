//! `contact_changes`, the matching job's work list: which addresses a change of a contact can
//! re-match (the rules are in [`super`]'s documentation), and writing them in the change's
//! own transaction.

use std::collections::BTreeSet;

use super::contacts::ContactInput;
use super::record::{Tx, ROWS_PER_STATEMENT};
use crate::StoreError;

/// Every address of a (validated) contact with its field.
fn address_fields(c: &ContactInput) -> BTreeSet<(String, &'static str)> {
    let mut out = BTreeSet::new();
    if let Some(e) = &c.email {
        out.insert((e.clone(), "email"));
    }
    if let Some(e) = &c.alt_email {
        out.insert((e.clone(), "alt_email"));
    }
    for p in &c.contact_points {
        out.insert((p.clone(), "contact_point"));
    }
    out
}

/// The addresses whose matches a change from `old` to `new` can alter (`None`: the contact
/// does not exist on that side of the change).
pub(crate) fn affected_addresses(
    old: Option<&ContactInput>,
    new: Option<&ContactInput>,
) -> BTreeSet<String> {
    let before = old.map(address_fields).unwrap_or_default();
    let after = new.map(address_fields).unwrap_or_default();
    let entity_changed = old.map(|c| c.entity_id) != new.map(|c| c.entity_id);
    if entity_changed || old.is_none() || new.is_none() {
        before.union(&after).map(|(a, _)| a.clone()).collect()
    } else {
        before
            .symmetric_difference(&after)
            .map(|(a, _)| a.clone())
            .collect()
    }
}

/// Writes addresses to `contact_changes` for the matching job.
pub(crate) async fn queue_changes(
    tx: &mut Tx<'_>,
    org_id: i64,
    addresses: &BTreeSet<String>,
    now: i64,
) -> Result<(), StoreError> {
    let all: Vec<&String> = addresses.iter().collect();
    for chunk in all.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, ${}, $2)", i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO contact_changes (org_id, address, at_ms) VALUES {}
             ON CONFLICT (org_id, address) DO UPDATE SET at_ms = excluded.at_ms",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(org_id).bind(now);
        for a in chunk {
            q = q.bind(*a);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(
        email: Option<&str>,
        alt: Option<&str>,
        points: &[&str],
        entity: Option<i64>,
    ) -> ContactInput {
        ContactInput {
            external_id: None,
            name: "A".into(),
            email: email.map(Into::into),
            alt_email: alt.map(Into::into),
            contact_points: points.iter().map(|p| p.to_string()).collect(),
            entity_id: entity,
        }
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_change_affects_the_addresses_whose_field_or_entity_changed() {
        let old = contact(
            Some("a@x.example"),
            Some("b@x.example"),
            &["c@x.example"],
            None,
        );
        let moved = contact(
            Some("a@x.example"),
            Some("c@x.example"),
            &["d@x.example"],
            None,
        );
        assert_eq!(
            affected_addresses(Some(&old), Some(&moved)),
            set(&["b@x.example", "c@x.example", "d@x.example"])
        );
        let renamed = ContactInput {
            name: "B".into(),
            ..old.clone()
        };
        assert!(affected_addresses(Some(&old), Some(&renamed)).is_empty());
        let rehomed = ContactInput {
            entity_id: Some(3),
            ..old.clone()
        };
        assert_eq!(
            affected_addresses(Some(&old), Some(&rehomed)),
            set(&["a@x.example", "b@x.example", "c@x.example"])
        );
        assert_eq!(
            affected_addresses(None, Some(&old)),
            affected_addresses(Some(&old), None)
        );
    }
}
