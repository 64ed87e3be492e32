//! What the matching job (E8, E9) reads and writes: the queue of records owed a pass, the
//! records' addresses, the contacts carrying them, the matches stored per record, and the
//! per-org lease that keeps two processes from matching the same org at once.
//!
//! Matches made by the plugin (`source = 'plugin'`) are replaced whenever a record is matched
//! again; matches a person made from the review list (`source = 'manual'`) are never touched
//! by the job.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;

use super::sync::{in_list, marker, value_rows, ROWS_PER_STATEMENT};
use super::{now_ms, Store, StoreError};

/// Values per `IN (..)` list: one statement for a whole batch's ids, and few for its addresses
/// (both databases take tens of thousands of parameters per statement).
const IN_CHUNK: usize = 1000;

/// The kinds of stored activity a contact's timeline holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityKind {
    /// An email.
    Email,
    /// A calendar event.
    Event,
}

impl ActivityKind {
    /// The name stored in `kind` columns.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Email => "email",
            ActivityKind::Event => "event",
        }
    }

    fn parse(s: &str) -> ActivityKind {
        if s == "event" {
            ActivityKind::Event
        } else {
            ActivityKind::Email
        }
    }
}

/// A stored record as the matching plugin sees it.
#[derive(Debug, Clone)]
pub struct MatchCandidate {
    /// The record's id (an email's or an event's).
    pub id: i64,
    /// The email's conversation (empty for events and for mail without one).
    pub conversation_id: String,
    /// When it happened (sent, or an event's start): a timeline's order.
    pub occurred_ms: i64,
    /// The address of the CRM user whose mailbox holds it, if one is linked.
    pub user: Option<String>,
    /// (role, address, name), addresses lower-case.
    pub addresses: Vec<(String, String, String)>,
}

/// A contact as matching needs it: every address it can be reached by.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchContact {
    /// m365sync's id of the contact.
    pub id: i64,
    /// The contact's name.
    pub name: String,
    /// The contact's entity, which a match carries.
    pub entity_id: Option<i64>,
    /// The Email field.
    pub email: Option<String>,
    /// The Alternate Email field.
    pub alt_email: Option<String>,
    /// The contact-point emails.
    pub contact_points: Vec<String>,
}

/// One link from a record to a contact, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredMatch {
    /// The contact linked.
    pub contact_id: i64,
    /// The contact's entity when the match was made.
    pub entity_id: Option<i64>,
    /// The address the link was made on.
    pub address: String,
    /// `email`, `alternate-email`, `contact-point`, `thread` or `manual`.
    pub field: String,
    /// Why, in the plugin's (or the admin's) words.
    pub reason: String,
}

/// What one record's pass produced: its matches, or the plugin's error for it.
#[derive(Debug, Clone)]
pub struct MatchOutcome {
    /// The record passed.
    pub record_id: i64,
    /// When it happened: the timeline's order.
    pub occurred_ms: i64,
    /// The record's matches, or the plugin's error for it.
    pub result: Result<Vec<StoredMatch>, String>,
}

impl Store {
    /// Takes (or keeps) the org's matching lease for `ttl_ms`; false while another holds it.
    pub async fn claim_match_lease(
        &self,
        org_id: i64,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let won = sqlx::query(
            "INSERT INTO match_leases (org_id, holder, expires_ms) VALUES ($1, $2, $3)
             ON CONFLICT (org_id) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
                 WHERE match_leases.expires_ms < $4 OR match_leases.holder = excluded.holder
             RETURNING org_id",
        )
        .bind(org_id)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        Ok(!won.is_empty())
    }

    /// Gives the org's matching lease up, if `holder` still has it.
    pub async fn release_match_lease(&self, org_id: i64, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM match_leases WHERE org_id = $1 AND holder = $2")
            .bind(org_id)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Up to `limit` records of a tenant still owed a matching pass after record `after`,
    /// oldest first.
    pub async fn queued_for_matching(
        &self,
        tenant_id: i64,
        kind: ActivityKind,
        after: i64,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT record_id FROM match_queue WHERE tenant_id = $1 AND kind = $2 AND record_id > $3
             ORDER BY record_id LIMIT $4",
        )
        .bind(tenant_id)
        .bind(kind.as_str())
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("record_id"))
            .collect::<Result<_, _>>()?)
    }

    /// How many records of a tenant are owed a matching pass.
    pub async fn match_queue_len(&self, tenant_id: i64) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM match_queue WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_one(self.pool())
                .await?
                .try_get("n")?,
        )
    }

    /// How many records of every tenant are owed a matching pass: the `/metrics` gauge of the
    /// matching job's backlog.
    pub async fn match_queue_depth(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM match_queue")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?)
    }

    /// Queues records for another pass (a re-match), in one statement per chunk.
    pub async fn queue_for_matching(
        &self,
        tenant_id: i64,
        kind: ActivityKind,
        ids: &[i64],
    ) -> Result<(), StoreError> {
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO match_queue (tenant_id, kind, record_id) VALUES {} ON CONFLICT DO NOTHING",
                value_rows(self.backend(), chunk.len(), 3)
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(tenant_id).bind(kind.as_str()).bind(*id);
            }
            q.execute(self.pool()).await?;
        }
        Ok(())
    }

    /// The records `ids` of a tenant (emails or events) with their addresses, thread and
    /// owning user, in id order.
    pub async fn match_candidates(
        &self,
        tenant_id: i64,
        kind: ActivityKind,
        ids: &[i64],
    ) -> Result<Vec<MatchCandidate>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = in_list(self.backend(), 1, ids.len());
        // By primary key only: with `tenant_id = ?` in the WHERE, SQLite walks the tenant's
        // conversation (or start) index over every record it has. The tenant is checked here.
        let (records, addresses) = match kind {
            ActivityKind::Email => (
                format!(
                    "SELECT e.id, e.tenant_id, e.conversation_id, e.sent_ms AS occurred_ms,
                        (SELECT MIN(u.email) FROM email_mailboxes em JOIN mailboxes m ON m.id = em.mailbox_id
                            JOIN users u ON u.id = m.user_id WHERE em.email_id = e.id) AS user_email
                     FROM emails e WHERE e.id IN ({list})"
                ),
                format!(
                    "SELECT email_id AS record_id, role, address, name FROM email_recipients WHERE email_id IN ({list})"
                ),
            ),
            ActivityKind::Event => (
                format!(
                    "SELECT e.id, e.tenant_id, '' AS conversation_id, e.start_ms AS occurred_ms, u.email AS user_email
                     FROM events e LEFT JOIN users u ON u.id = e.user_id WHERE e.id IN ({list})"
                ),
                format!(
                    "SELECT event_id AS record_id, role, address, name FROM event_addresses WHERE event_id IN ({list})"
                ),
            ),
        };
        let mut by_id: HashMap<i64, MatchCandidate> = HashMap::with_capacity(ids.len());
        let mut q = sqlx::query(&records);
        for id in ids {
            q = q.bind(*id);
        }
        for r in q.fetch_all(self.pool()).await? {
            if r.try_get::<i64, _>("tenant_id")? != tenant_id {
                continue;
            }
            let id: i64 = r.try_get("id")?;
            by_id.insert(
                id,
                MatchCandidate {
                    id,
                    conversation_id: r.try_get("conversation_id")?,
                    occurred_ms: r.try_get("occurred_ms")?,
                    // The owning user: for an email, the first linked mailbox holding a copy.
                    user: r.try_get("user_email")?,
                    addresses: Vec::new(),
                },
            );
        }
        let mut q = sqlx::query(&addresses);
        for id in ids {
            q = q.bind(*id);
        }
        for r in q.fetch_all(self.pool()).await? {
            let id: i64 = r.try_get("record_id")?;
            if let Some(c) = by_id.get_mut(&id) {
                c.addresses.push((
                    r.try_get("role")?,
                    r.try_get("address")?,
                    r.try_get("name")?,
                ));
            }
        }
        let mut out: Vec<MatchCandidate> = by_id.into_values().collect();
        out.sort_by_key(|c| c.id);
        for c in &mut out {
            c.addresses.sort();
        }
        Ok(out)
    }

    /// The ids of a tenant's stored records (emails or events) that carry any of `addresses`
    /// (lower-case): what a contact change can affect. Through the address index (recipients'
    /// or attendees'), never a scan.
    pub async fn records_with_addresses(
        &self,
        tenant_id: i64,
        kind: ActivityKind,
        addresses: &[String],
    ) -> Result<Vec<i64>, StoreError> {
        let b = self.backend();
        let (table, column, parent) = match kind {
            ActivityKind::Email => ("email_recipients", "email_id", "emails"),
            ActivityKind::Event => ("event_addresses", "event_id", "events"),
        };
        let mut ids = Vec::new();
        for chunk in addresses.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT DISTINCT a.{column} AS record_id FROM {table} a CROSS JOIN {parent} p
                 WHERE p.id = a.{column} AND p.tenant_id = {} AND a.address IN ({})",
                marker(b, 1),
                in_list(b, 2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(tenant_id);
            for a in chunk {
                q = q.bind(a.as_str());
            }
            for r in q.fetch_all(self.pool()).await? {
                ids.push(r.try_get("record_id")?);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The org's contacts reachable by any of `addresses` (lower-case), by Email, Alternate
    /// Email or a contact-point email, each once, with all of its addresses.
    pub async fn contacts_for_matching(
        &self,
        org_id: i64,
        addresses: &[String],
    ) -> Result<Vec<MatchContact>, StoreError> {
        let b = self.backend();
        let mut ids: Vec<i64> = Vec::new();
        for chunk in addresses.chunks(IN_CHUNK) {
            let n = chunk.len();
            let sql = format!(
                "SELECT id FROM contacts WHERE org_id = {o} AND email IN ({l1})
                 UNION SELECT id FROM contacts WHERE org_id = {o} AND alt_email IN ({l2})
                 UNION SELECT c.id FROM contact_emails p CROSS JOIN contacts c
                     WHERE c.id = p.contact_id AND c.org_id = {o} AND p.address IN ({l3})",
                o = marker(b, 1),
                l1 = in_list(b, 2, n),
                l2 = in_list(b, 2 + n, n),
                l3 = in_list(b, 2 + 2 * n, n),
            );
            // CROSS JOIN keeps SQLite's planner on the address index (without statistics it
            // would walk every contact of the org); PostgreSQL plans it as an inner join.
            // SQLite's anonymous markers bind in order of appearance: the org id is bound
            // before each list there, once for PostgreSQL's numbered markers.
            let mut q = sqlx::query(&sql);
            match b {
                super::Backend::Sqlite => {
                    for _ in 0..3 {
                        q = q.bind(org_id);
                        for a in chunk {
                            q = q.bind(a.as_str());
                        }
                    }
                }
                super::Backend::Postgres => {
                    q = q.bind(org_id);
                    for _ in 0..3 {
                        for a in chunk {
                            q = q.bind(a.as_str());
                        }
                    }
                }
            }
            for r in q.fetch_all(self.pool()).await? {
                ids.push(r.try_get("id")?);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        self.match_contacts_by_id(&ids).await
    }

    /// Contacts with every address, by id.
    pub async fn match_contacts_by_id(&self, ids: &[i64]) -> Result<Vec<MatchContact>, StoreError> {
        let b = self.backend();
        let mut out: Vec<MatchContact> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let list = in_list(b, 1, chunk.len());
            let sql = format!(
                "SELECT id, name, entity_id, email, alt_email FROM contacts WHERE id IN ({list}) ORDER BY id"
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            let first = out.len();
            for r in q.fetch_all(self.pool()).await? {
                out.push(MatchContact {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    entity_id: r.try_get("entity_id")?,
                    email: r.try_get("email")?,
                    alt_email: r.try_get("alt_email")?,
                    contact_points: Vec::new(),
                });
            }
            let sql = format!(
                "SELECT contact_id, address FROM contact_emails WHERE contact_id IN ({list}) ORDER BY contact_id, address"
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            let index: HashMap<i64, usize> = out[first..]
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id, first + i))
                .collect();
            for r in q.fetch_all(self.pool()).await? {
                let id: i64 = r.try_get("contact_id")?;
                if let Some(&i) = index.get(&id) {
                    out[i].contact_points.push(r.try_get("address")?);
                }
            }
        }
        Ok(out)
    }

    /// The direct matches (by an address, or made by a person; never ones inherited from a
    /// thread, so links cannot feed on each other) stored for the emails of each of
    /// `conversations` (a tenant's threads), with the email each belongs to.
    pub async fn thread_matches(
        &self,
        tenant_id: i64,
        conversations: &[String],
    ) -> Result<HashMap<String, Vec<(i64, StoredMatch)>>, StoreError> {
        let b = self.backend();
        let mut out: HashMap<String, Vec<(i64, StoredMatch)>> = HashMap::new();
        for chunk in conversations.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT e.conversation_id, m.record_id, m.contact_id, m.entity_id, m.address, m.field, m.reason
                 FROM emails e CROSS JOIN activity_matches m
                 WHERE m.kind = 'email' AND m.record_id = e.id
                   AND e.tenant_id = {} AND m.field <> 'thread' AND e.conversation_id IN ({})
                 ORDER BY e.conversation_id, e.sent_ms, m.contact_id",
                marker(b, 1),
                in_list(b, 2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(tenant_id);
            for c in chunk {
                q = q.bind(c.as_str());
            }
            for r in q.fetch_all(self.pool()).await? {
                out.entry(r.try_get("conversation_id")?).or_default().push((
                    r.try_get("record_id")?,
                    StoredMatch {
                        contact_id: r.try_get("contact_id")?,
                        entity_id: r.try_get("entity_id")?,
                        address: r.try_get("address")?,
                        field: r.try_get("field")?,
                        reason: r.try_get("reason")?,
                    },
                ));
            }
        }
        Ok(out)
    }

    /// Stores a batch's outcomes in one transaction: each matched record's plugin matches are
    /// replaced (manual ones kept), each failed record is kept for a retry, and every record of
    /// the batch leaves the queue.
    pub async fn save_matches(
        &self,
        tenant_id: i64,
        kind: ActivityKind,
        decided_by: &str,
        outcomes: &[MatchOutcome],
        hide_unmatched_events: bool,
    ) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let b = self.backend();
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let ids: Vec<i64> = outcomes.iter().map(|o| o.record_id).collect();
        let matched: Vec<i64> = outcomes
            .iter()
            .filter(|o| o.result.is_ok())
            .map(|o| o.record_id)
            .collect();
        for chunk in matched.chunks(IN_CHUNK) {
            let sql = format!(
                "DELETE FROM activity_matches WHERE kind = {} AND source = 'plugin' AND record_id IN ({})",
                marker(b, 1),
                in_list(b, 2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(kind.as_str());
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        let rows: Vec<(&MatchOutcome, &StoredMatch)> = outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().ok().map(|ms| (o, ms)))
            .flat_map(|(o, ms)| ms.iter().map(move |m| (o, m)))
            .collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT / 2) {
            let sql = format!(
                "INSERT INTO activity_matches (kind, record_id, tenant_id, contact_id, entity_id, address, field, source,
                     reason, decided_by, occurred_ms, at_ms)
                 VALUES {} ON CONFLICT DO NOTHING",
                value_rows(b, chunk.len(), 12)
            );
            let mut q = sqlx::query(&sql);
            for (o, m) in chunk {
                q = q
                    .bind(kind.as_str())
                    .bind(o.record_id)
                    .bind(tenant_id)
                    .bind(m.contact_id)
                    .bind(m.entity_id)
                    .bind(m.address.as_str())
                    .bind(m.field.as_str())
                    .bind("plugin")
                    .bind(m.reason.as_str())
                    .bind(decided_by)
                    .bind(o.occurred_ms)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in matched.chunks(IN_CHUNK) {
            let sql = format!(
                "DELETE FROM match_failures WHERE tenant_id = {} AND kind = {} AND record_id IN ({})",
                marker(b, 1),
                marker(b, 2),
                in_list(b, 3, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(tenant_id).bind(kind.as_str());
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        for o in outcomes {
            if let Err(error) = &o.result {
                sqlx::query(
                    "INSERT INTO match_failures (tenant_id, kind, record_id, error, attempts, at_ms) VALUES ($1, $2, $3, $4, 1, $5)
                     ON CONFLICT (tenant_id, kind, record_id) DO UPDATE SET error = excluded.error,
                         attempts = match_failures.attempts + 1, at_ms = excluded.at_ms",
                )
                .bind(tenant_id)
                .bind(kind.as_str())
                .bind(o.record_id)
                .bind(error.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        if kind == ActivityKind::Event {
            // C3: an event from Microsoft related to no CRM record is kept out of the CRM
            // unless the tenant syncs unmatched events; it comes back as soon as a contact
            // matches it. An event made in the CRM is the CRM's whatever the plugin found.
            let (mut hidden, mut shown) = (Vec::new(), Vec::new());
            for o in outcomes {
                match &o.result {
                    Ok(ms) if ms.is_empty() && hide_unmatched_events => hidden.push(o.record_id),
                    Ok(_) => shown.push(o.record_id),
                    Err(_) => {}
                }
            }
            for (flag, ids) in [(1i64, hidden), (0, shown)] {
                for chunk in ids.chunks(IN_CHUNK) {
                    let sql = format!(
                        "UPDATE events SET unmatched = {} WHERE tenant_id = {} AND origin = 'microsoft' AND id IN ({})",
                        marker(b, 1),
                        marker(b, 2),
                        in_list(b, 3, chunk.len())
                    );
                    let mut q = sqlx::query(&sql).bind(flag).bind(tenant_id);
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    q.execute(&mut *tx).await?;
                }
            }
        }
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "DELETE FROM match_queue WHERE tenant_id = {} AND kind = {} AND record_id IN ({})",
                marker(b, 1),
                marker(b, 2),
                in_list(b, 3, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(tenant_id).bind(kind.as_str());
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the matching plugin failed on, to queue again at the start of the next job.
    pub async fn match_failures(
        &self,
        tenant_id: i64,
    ) -> Result<Vec<(ActivityKind, i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, record_id, error FROM match_failures WHERE tenant_id = $1 ORDER BY record_id",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    ActivityKind::parse(&r.try_get::<String, _>("kind")?),
                    r.try_get("record_id")?,
                    r.try_get("error")?,
                ))
            })
            .collect()
    }

    /// The addresses whose contacts changed since the last job, with when each was recorded.
    pub async fn contact_changes(&self, org_id: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT address, at_ms FROM contact_changes WHERE org_id = $1 ORDER BY address",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("address")?, r.try_get("at_ms")?)))
            .collect()
    }

    /// Forgets the changes a job has handled; one recorded again meanwhile (a later `at_ms`)
    /// stays for the next job.
    pub async fn forget_contact_changes(
        &self,
        org_id: i64,
        handled: &[(String, i64)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for (address, at_ms) in handled {
            sqlx::query(
                "DELETE FROM contact_changes WHERE org_id = $1 AND address = $2 AND at_ms = $3",
            )
            .bind(org_id)
            .bind(address.as_str())
            .bind(*at_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The addresses of every sync user of the org (users' own addresses and their linked
    /// mailboxes'), lower-case: never a reason to match (E9).
    pub async fn org_sync_user_addresses(&self, org_id: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT LOWER(u.email) AS address FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE t.org_id = $1
             UNION SELECT LOWER(m.address) AS address FROM mailboxes m JOIN tenants t ON t.id = m.tenant_id
                 WHERE t.org_id = $1 AND m.user_id IS NOT NULL",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("address"))
            .collect::<Result<_, _>>()?)
    }

    /// The matches of one record (an email's or event's), manual and plugin.
    pub async fn record_matches(
        &self,
        kind: ActivityKind,
        record_id: i64,
    ) -> Result<Vec<(StoredMatch, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT contact_id, entity_id, address, field, reason, source FROM activity_matches
             WHERE kind = $1 AND record_id = $2 ORDER BY contact_id",
        )
        .bind(kind.as_str())
        .bind(record_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    StoredMatch {
                        contact_id: r.try_get("contact_id")?,
                        entity_id: r.try_get("entity_id")?,
                        address: r.try_get("address")?,
                        field: r.try_get("field")?,
                        reason: r.try_get("reason")?,
                    },
                    r.try_get("source")?,
                ))
            })
            .collect()
    }
}

/// How far a tenant's activities reach its org's contacts (the sandbox's first-run summary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LinkedCounts {
    /// Emails linked to at least one contact.
    pub emails: i64,
    /// Events linked to at least one contact.
    pub events: i64,
    /// Contacts with at least one email or event linked.
    pub contacts: i64,
    /// The contact with the most linked activities (its timeline is the one to look at).
    pub busiest_contact: Option<i64>,
}

impl Store {
    /// How many of a tenant's emails and events are linked to contacts, and to how many.
    pub async fn linked_counts(&self, tenant_id: i64) -> Result<LinkedCounts, StoreError> {
        let mut out = LinkedCounts::default();
        let rows = sqlx::query(
            "SELECT kind, COUNT(DISTINCT record_id) AS n FROM activity_matches WHERE tenant_id = $1 GROUP BY kind",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        for r in rows {
            let kind: String = r.try_get("kind")?;
            let n: i64 = r.try_get("n")?;
            match kind.as_str() {
                "email" => out.emails = n,
                _ => out.events = n,
            }
        }
        out.contacts = sqlx::query(
            "SELECT COUNT(DISTINCT contact_id) AS n FROM activity_matches WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_one(self.pool())
        .await?
        .try_get("n")?;
        out.busiest_contact = sqlx::query(
            "SELECT contact_id, COUNT(*) AS n FROM activity_matches WHERE tenant_id = $1
             GROUP BY contact_id ORDER BY n DESC, contact_id LIMIT 1",
        )
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await?
        .map(|r| r.try_get("contact_id"))
        .transpose()?;
        Ok(out)
    }

    /// The orgs whose matching job has work: records queued or contacts changed.
    pub async fn orgs_with_match_work(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.name FROM orgs o
             WHERE EXISTS (SELECT 1 FROM match_queue q JOIN tenants t ON t.id = q.tenant_id WHERE t.org_id = o.id)
                OR EXISTS (SELECT 1 FROM contact_changes c WHERE c.org_id = o.id)
             ORDER BY o.name",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("name"))
            .collect::<Result<_, _>>()?)
    }
}
