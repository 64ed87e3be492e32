//! E9: the org's contacts that carry a sync user's address, which the matching job never
//! matches mail on, so an admin should fix the contact.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sqlx::Row;

use super::contacts::Contact;
use crate::{Store, StoreError};

/// A contact carrying a sync user's address (E9): the matching job never matches mail on that
/// address, and an admin should fix the contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncAddressWarning {
    /// The contact that carries the address.
    pub contact: Contact,
    /// The address, normalised.
    pub address: String,
    /// Which of the contact's fields holds it: `email`, `alt_email` or `contact_point`.
    pub field: String,
    /// The tenant the sync user belongs to.
    pub tenant: String,
    /// The sync user's own address (`users.email`).
    pub user_email: String,
    /// `user` when the address is the user's own, `mailbox` when it is a mailbox linked to
    /// the user (a shared mailbox, or an alias mailbox).
    pub via: String,
}

impl Store {
    /// The org's contacts that carry a sync user's address (E9): a user's own address
    /// (`users.email`) or the address of a mailbox linked to a user, in any tenant of the org.
    /// One warning per (contact, address, user), by contact id then address.
    pub async fn contacts_with_sync_user_addresses(
        &self,
        org_id: i64,
    ) -> Result<Vec<SyncAddressWarning>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.contact_id, a.address, a.field, o.user_email, o.tenant, o.via FROM (
                 SELECT c.id AS contact_id, c.email AS address, 'email' AS field FROM contacts c
                   WHERE c.org_id = $1 AND c.email IS NOT NULL
                 UNION ALL SELECT c.id, c.alt_email, 'alt_email' FROM contacts c
                   WHERE c.org_id = $1 AND c.alt_email IS NOT NULL
                 UNION ALL SELECT c.id, p.address, 'contact_point' FROM contacts c
                   JOIN contact_emails p ON p.contact_id = c.id WHERE c.org_id = $1
             ) a JOIN (
                 SELECT u.email AS address, u.email AS user_email, t.name AS tenant, 'user' AS via
                   FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE t.org_id = $1
                 UNION ALL SELECT m.address, u.email, t.name, 'mailbox'
                   FROM mailboxes m JOIN users u ON u.id = m.user_id JOIN tenants t ON t.id = m.tenant_id
                   WHERE t.org_id = $1
             ) o ON o.address = a.address
             ORDER BY a.contact_id, a.address, a.field, o.tenant, o.user_email, o.via DESC",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        let mut seen = BTreeSet::new();
        let mut hits = Vec::new();
        for r in &rows {
            let contact_id: i64 = r.try_get("contact_id")?;
            let address: String = r.try_get("address")?;
            let field: String = r.try_get("field")?;
            let tenant: String = r.try_get("tenant")?;
            let user_email: String = r.try_get("user_email")?;
            // `user` sorts before `mailbox` (via DESC): a user's own address mailbox is one hit.
            if seen.insert((
                contact_id,
                address.clone(),
                field.clone(),
                tenant.clone(),
                user_email.clone(),
            )) {
                hits.push((
                    contact_id,
                    address,
                    field,
                    tenant,
                    user_email,
                    r.try_get::<String, _>("via")?,
                ));
            }
        }
        let mut contacts: BTreeMap<i64, Contact> = BTreeMap::new();
        let mut out = Vec::new();
        for (contact_id, address, field, tenant, user_email, via) in hits {
            let contact = match contacts.get(&contact_id) {
                Some(c) => c.clone(),
                None => {
                    let c = self.contact(org_id, contact_id).await?;
                    contacts.insert(contact_id, c.clone());
                    c
                }
            };
            out.push(SyncAddressWarning {
                contact,
                address,
                field,
                tenant,
                user_email,
                via,
            });
        }
        Ok(out)
    }
}
