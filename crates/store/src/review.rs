//! What people see of matching: a contact's timeline, each user's review list of unmatched
//! emails, and the mass action that maps reviewed emails to a contact (E8, E12).
//!
//! Every read and write here takes the org (and, for a user, the user) it acts for, and an id
//! outside that scope answers NotFound, the same as an id that does not exist: the admin API's
//! isolation rests on these signatures.

use std::collections::BTreeSet;

use serde::Serialize;
use sqlx::Row;

use super::matching::ActivityKind;
use super::sync::{in_list, marker};
use super::{now_ms, Store, StoreError};

/// A timeline entry: one activity linked to the contact.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineItem {
    /// An email or an event.
    pub kind: ActivityKind,
    /// The email's or event's id.
    pub record_id: i64,
    /// When it happened (an email's sent time, an event's start), epoch ms.
    pub occurred_ms: i64,
    /// The subject.
    pub subject: String,
    /// The email's sender or the event's organizer.
    pub from: String,
    /// How it was linked: `email`, `alternate-email`, `contact-point`, `thread` or `manual`.
    pub field: String,
    /// Who made the link: `plugin` or `manual`.
    pub source: String,
    /// Why, in the plugin's (or the admin's) words.
    pub reason: String,
    /// Every stored record this entry stands for, `record_id` first. The same message received
    /// in mailboxes of several tenants of the org is one email per tenant (emails are unique
    /// per tenant on their correlation key); the timeline shows it once and lists them here.
    pub records: Vec<i64>,
    /// Where it was seen: each tenant and mailbox holding a copy (tenant, then mailbox order).
    pub seen_in: Vec<SeenIn>,
}

/// One mailbox an activity on a timeline was seen in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SeenIn {
    /// The tenant's name within the org.
    pub tenant: String,
    /// The mailbox's address.
    pub mailbox: String,
}

/// Where a timeline page starts: strictly older than this (occurred_ms, record id).
pub type TimelineCursor = (i64, i64);

/// Which unmatched emails a review list shows.
#[derive(Debug, Clone, Default)]
pub struct ReviewFilter {
    /// Sent at or after (epoch ms).
    pub since_ms: Option<i64>,
    /// Sent before (epoch ms).
    pub until_ms: Option<i64>,
    /// Only senders of this domain (`client.example`).
    pub sender_domain: Option<String>,
    /// Strictly older than this (sent_ms, email id): the next page.
    pub before: Option<(i64, i64)>,
    /// The most emails to return.
    pub limit: i64,
}

/// An email waiting in a review list.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewItem {
    /// The email's id.
    pub email_id: i64,
    /// The subject.
    pub subject: String,
    /// The sender's address.
    pub sender: String,
    /// When it was sent, epoch ms.
    pub sent_ms: i64,
    /// The user's mailbox that holds it.
    pub mailbox: String,
}

/// Who a mass action acts for: an org's admin, or one of its users (their own mail only).
#[derive(Debug, Clone, Copy)]
pub struct ReviewScope {
    /// The org.
    pub org_id: i64,
    /// The user acting, or `None` for the org's admin.
    pub user_id: Option<i64>,
}

/// What a mass mapping did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MapReport {
    /// Emails newly linked to the contact.
    pub mapped: u64,
    /// Already linked to that contact.
    pub already: u64,
    /// Addresses added to the contact as contact-point emails.
    pub added_addresses: Vec<String>,
    /// Addresses not added: a sync user's own (E9) or already the contact's.
    pub refused_addresses: Vec<(String, String)>,
}

impl Store {
    /// The contact's id if it belongs to the org, NotFound otherwise (whatever the reason).
    async fn contact_in_org(
        &self,
        org_id: i64,
        contact_id: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT entity_id FROM contacts WHERE id = $1 AND org_id = $2")
            .bind(contact_id)
            .bind(org_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no contact {contact_id} in this org")))?;
        Ok(row.try_get("entity_id")?)
    }

    /// A contact's activities, newest first, `limit` at a time from `before`. An email the
    /// org's tenants each stored (one record per tenant, one correlation key) is one entry: the
    /// lowest email id among those linked to the contact stands for the others, which are
    /// listed in its `records`, with every tenant and mailbox it was seen in (`seen_in`).
    pub async fn timeline(
        &self,
        org_id: i64,
        contact_id: i64,
        before: Option<TimelineCursor>,
        limit: i64,
    ) -> Result<Vec<TimelineItem>, StoreError> {
        self.contact_in_org(org_id, contact_id).await?;
        let (at, id) = before.unwrap_or((i64::MAX, i64::MAX));
        let rows = sqlx::query(
            "SELECT a.kind, a.record_id, a.occurred_ms, a.field, a.source, a.reason,
                    COALESCE(e.subject, ev.subject, '') AS subject,
                    COALESCE(e.sender, (SELECT MIN(o.address) FROM event_addresses o
                        WHERE o.event_id = ev.id AND o.role = 'organizer'), '') AS sender
             FROM activity_matches a
                 LEFT JOIN emails e ON a.kind = 'email' AND e.id = a.record_id
                 LEFT JOIN events ev ON a.kind = 'event' AND ev.id = a.record_id
             WHERE a.contact_id = $1 AND (ev.id IS NULL OR ev.deleted = 0) AND (a.occurred_ms < $2 OR (a.occurred_ms = $2 AND a.record_id < $3))
               AND NOT EXISTS (SELECT 1 FROM emails e2 CROSS JOIN activity_matches a2
                   WHERE e.id IS NOT NULL AND e2.org_id = e.org_id AND e2.correlation_key = e.correlation_key
                     AND e2.id < e.id AND a2.kind = 'email' AND a2.record_id = e2.id AND a2.contact_id = a.contact_id)
             ORDER BY a.occurred_ms DESC, a.record_id DESC LIMIT $4",
        )
        .bind(contact_id)
        .bind(at)
        .bind(id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.pool())
        .await?;
        let mut items = rows
            .iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(TimelineItem {
                    kind: if kind == "event" {
                        ActivityKind::Event
                    } else {
                        ActivityKind::Email
                    },
                    record_id: r.try_get("record_id")?,
                    occurred_ms: r.try_get("occurred_ms")?,
                    subject: r.try_get("subject")?,
                    from: r.try_get("sender")?,
                    field: r.try_get("field")?,
                    source: r.try_get("source")?,
                    reason: r.try_get("reason")?,
                    records: Vec::new(),
                    seen_in: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.timeline_copies(&mut items).await?;
        Ok(items)
    }

    /// Fills each timeline entry's `records` and `seen_in`: for an email, every email of the
    /// org with its correlation key and their mailboxes; for an event, its own mailbox.
    async fn timeline_copies(&self, items: &mut [TimelineItem]) -> Result<(), StoreError> {
        let b = self.backend();
        let ids = |kind: ActivityKind| -> Vec<i64> {
            items
                .iter()
                .filter(|i| i.kind == kind)
                .map(|i| i.record_id)
                .collect()
        };
        let (emails, events) = (ids(ActivityKind::Email), ids(ActivityKind::Event));
        // (kind is email, representative id) -> copies and mailboxes.
        let mut copies: std::collections::HashMap<(bool, i64), (BTreeSet<i64>, BTreeSet<SeenIn>)> =
            std::collections::HashMap::new();
        for chunk in emails.chunks(500) {
            let sql = format!(
                "SELECT r.id AS rep, e2.id AS copy, t.name AS tenant, m.address AS mailbox
                 FROM emails r CROSS JOIN emails e2 CROSS JOIN email_mailboxes em CROSS JOIN mailboxes m CROSS JOIN tenants t
                 WHERE r.id IN ({}) AND e2.org_id = r.org_id AND e2.correlation_key = r.correlation_key
                   AND em.email_id = e2.id AND em.removed = 0 AND m.id = em.mailbox_id AND t.id = e2.tenant_id",
                in_list(b, 1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(self.pool()).await? {
                let entry = copies.entry((true, r.try_get("rep")?)).or_default();
                entry.0.insert(r.try_get("copy")?);
                entry.1.insert(SeenIn {
                    tenant: r.try_get("tenant")?,
                    mailbox: r.try_get("mailbox")?,
                });
            }
        }
        for chunk in events.chunks(500) {
            let sql = format!(
                "SELECT ev.id AS rep, t.name AS tenant, m.address AS mailbox
                 FROM events ev CROSS JOIN mailboxes m CROSS JOIN tenants t
                 WHERE ev.id IN ({}) AND m.id = ev.mailbox_id AND t.id = ev.tenant_id",
                in_list(b, 1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(self.pool()).await? {
                let rep: i64 = r.try_get("rep")?;
                let entry = copies.entry((false, rep)).or_default();
                entry.0.insert(rep);
                entry.1.insert(SeenIn {
                    tenant: r.try_get("tenant")?,
                    mailbox: r.try_get("mailbox")?,
                });
            }
        }
        for item in items.iter_mut() {
            let key = (item.kind == ActivityKind::Email, item.record_id);
            let (ids, seen) = copies.remove(&key).unwrap_or_default();
            item.records = std::iter::once(item.record_id)
                .chain(ids.into_iter().filter(|id| *id != item.record_id))
                .collect();
            item.seen_in = seen.into_iter().collect();
        }
        Ok(())
    }

    /// A user's review list: emails of their mailboxes that the matching job linked to
    /// nothing, newest first. Emails still waiting for the job are not shown yet.
    ///
    /// Each of the user's mailboxes is read as ranges of the review index (migration 17:
    /// live copies by mailbox and sent time) from the page's start, newest first: a chunk of
    /// copies (`4 x limit`, doubling up to 5,000) read from the index alone, joined to their
    /// emails and kept if the list shows them (unmatched, not queued nor failed, the sender's
    /// domain), until `limit` are found or the range ends (where a chunk ends is read from the
    /// index alone too). A page so reads about as many rows as it shows (plus the matched ones
    /// between them) however much mail the user has, a date filter reads only its range, and
    /// no planner (PostgreSQL's with stale statistics among them) can choose to read the
    /// user's whole mail and sort it. A sender domain is not in the index: a rare one still
    /// reads the whole range, chunk by chunk. An email in several of the user's mailboxes
    /// counts once, in the first mailbox by address (twice in one mailbox, once), so the
    /// pages of the mailboxes merge without repeats.
    pub async fn review_list(
        &self,
        user_id: i64,
        filter: &ReviewFilter,
    ) -> Result<Vec<ReviewItem>, StoreError> {
        let limit = filter.limit.clamp(1, 1000);
        let (before_at, before_id) = filter.before.unwrap_or((i64::MAX, i64::MAX));
        let since = filter.since_ms.unwrap_or(i64::MIN);
        // The range's last sent time, inclusive: before `until`, and not after the cursor's.
        let last = filter
            .until_ms
            .map_or(i64::MAX, |u| u.saturating_sub(1))
            .min(before_at);
        if since > last {
            return Ok(Vec::new());
        }
        let domain = filter
            .sender_domain
            .as_deref()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .unwrap_or_default();
        let mailboxes = sqlx::query("SELECT id, address FROM mailboxes WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(self.pool())
            .await?;
        let mut items: Vec<ReviewItem> = Vec::new();
        for m in &mailboxes {
            let mailbox_id: i64 = m.try_get("id")?;
            let address: String = m.try_get("address")?;
            let (mut at, mut id) = (before_at, before_id);
            let mut chunk = 4 * limit;
            // Two copies of one email in this mailbox (two folders) count once.
            let mut seen = std::collections::HashSet::new();
            let mut shown = 0;
            loop {
                let top = last.min(at);
                // The chunk's copies, read alone from the index (a one-table range with its
                // own LIMIT, so no planner can choose to read the user's whole mail and sort
                // it), then those of their emails the list shows.
                let rows = sqlx::query(
                    "SELECT c.email_id, c.sent_ms, e.subject, e.sender
                     FROM (SELECT em.email_id, em.sent_ms FROM email_mailboxes em
                           WHERE em.mailbox_id = $1 AND em.removed = 0 AND em.sent_ms >= $2 AND em.sent_ms <= $3
                             AND (em.sent_ms < $4 OR em.email_id < $5)
                           ORDER BY em.sent_ms DESC, em.email_id DESC LIMIT $10) c
                     CROSS JOIN emails e
                     WHERE e.id = c.email_id AND ($6 = '' OR e.sender LIKE $7)
                       AND NOT EXISTS (SELECT 1 FROM activity_matches a WHERE a.kind = 'email' AND a.record_id = e.id)
                       AND NOT EXISTS (SELECT 1 FROM match_queue q WHERE q.tenant_id = e.tenant_id AND q.kind = 'email' AND q.record_id = e.id)
                       AND NOT EXISTS (SELECT 1 FROM match_failures f WHERE f.tenant_id = e.tenant_id AND f.kind = 'email' AND f.record_id = e.id)
                       AND NOT EXISTS (SELECT 1 FROM email_mailboxes em2 CROSS JOIN mailboxes m2
                           WHERE em2.email_id = e.id AND em2.removed = 0 AND m2.id = em2.mailbox_id AND m2.user_id = $8 AND m2.address < $9)",
                )
                .bind(mailbox_id)
                .bind(since)
                .bind(top)
                .bind(at)
                .bind(id)
                .bind(domain.as_str())
                .bind(format!("%@{domain}"))
                .bind(user_id)
                .bind(address.as_str())
                .bind(chunk)
                .fetch_all(self.pool())
                .await?;
                for r in &rows {
                    let email_id: i64 = r.try_get("email_id")?;
                    if seen.insert(email_id) {
                        items.push(ReviewItem {
                            email_id,
                            subject: r.try_get("subject")?,
                            sender: r.try_get("sender")?,
                            sent_ms: r.try_get("sent_ms")?,
                            mailbox: address.clone(),
                        });
                        shown += 1;
                    }
                }
                if shown >= limit {
                    break;
                }
                // Where the chunk ended (from the index alone), or nothing: the range is read.
                let edge = sqlx::query(
                    "SELECT em.sent_ms, em.email_id FROM email_mailboxes em
                     WHERE em.mailbox_id = $1 AND em.removed = 0 AND em.sent_ms >= $2 AND em.sent_ms <= $3
                       AND (em.sent_ms < $4 OR em.email_id < $5)
                     ORDER BY em.sent_ms DESC, em.email_id DESC LIMIT 1 OFFSET $6",
                )
                .bind(mailbox_id)
                .bind(since)
                .bind(top)
                .bind(at)
                .bind(id)
                .bind(chunk - 1)
                .fetch_optional(self.pool())
                .await?;
                let Some(edge) = edge else { break };
                (at, id) = (edge.try_get("sent_ms")?, edge.try_get("email_id")?);
                chunk = (chunk * 2).min(5000);
            }
        }
        items.sort_by_key(|i| std::cmp::Reverse((i.sent_ms, i.email_id)));
        items.truncate(limit as usize);
        Ok(items)
    }

    /// The mass action of the review list: links `email_ids` to the contact (a manual match,
    /// which re-matching never removes) and, with `add_senders`, adds their senders to the
    /// contact as contact-point emails so their future mail matches by itself. All or nothing:
    /// one email outside the scope (another user's, another org's) refuses the whole request.
    pub async fn map_to_contact(
        &self,
        scope: ReviewScope,
        email_ids: &[i64],
        contact_id: i64,
        add_senders: bool,
        by: &str,
    ) -> Result<MapReport, StoreError> {
        let entity_id = self.contact_in_org(scope.org_id, contact_id).await?;
        let mut ids: Vec<i64> = email_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Err(StoreError::Invalid("no email ids given to map".into()));
        }
        if ids.len() > 1000 {
            return Err(StoreError::Invalid(
                "at most 1000 emails can be mapped at once; split the selection".into(),
            ));
        }
        let b = self.backend();
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // Take the org's write lock first, as every CRM write does: a SQLite transaction that
        // read before writing could otherwise fail when another writer went first.
        sqlx::query("UPDATE orgs SET name = name WHERE id = $1")
            .bind(scope.org_id)
            .execute(&mut *tx)
            .await?;
        // Which of the ids the scope may touch, with what the link needs.
        let sql = match scope.user_id {
            Some(_) => format!(
                "SELECT DISTINCT e.id, e.tenant_id, e.sender, e.sent_ms FROM emails e
                 JOIN email_mailboxes em ON em.email_id = e.id JOIN mailboxes m ON m.id = em.mailbox_id
                 WHERE e.org_id = {} AND m.user_id = {} AND e.id IN ({})",
                marker(b, 1),
                marker(b, 2),
                in_list(b, 3, ids.len())
            ),
            None => format!(
                "SELECT e.id, e.tenant_id, e.sender, e.sent_ms FROM emails e WHERE e.org_id = {} AND e.id IN ({})",
                marker(b, 1),
                in_list(b, 2, ids.len())
            ),
        };
        let mut q = sqlx::query(&sql).bind(scope.org_id);
        if let Some(user) = scope.user_id {
            q = q.bind(user);
        }
        for id in &ids {
            q = q.bind(*id);
        }
        let rows = q.fetch_all(&mut *tx).await?;
        if rows.len() != ids.len() {
            let found: BTreeSet<i64> = rows
                .iter()
                .map(|r| r.try_get::<i64, _>("id"))
                .collect::<Result<_, _>>()?;
            let missing: Vec<String> = ids
                .iter()
                .filter(|i| !found.contains(i))
                .map(i64::to_string)
                .collect();
            tx.rollback().await?;
            return Err(StoreError::NotFound(format!(
                "no email {} in this review list; nothing was mapped",
                missing.join(", ")
            )));
        }
        let mut report = MapReport::default();
        let mut senders = BTreeSet::new();
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let sender: String = r.try_get("sender")?;
            let inserted = sqlx::query(
                "INSERT INTO activity_matches (kind, record_id, tenant_id, contact_id, entity_id, address, field, source,
                     reason, decided_by, occurred_ms, at_ms)
                 VALUES ('email', $1, $2, $3, $4, $5, 'manual', 'manual', $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(r.try_get::<i64, _>("tenant_id")?)
            .bind(contact_id)
            .bind(entity_id)
            .bind(sender.as_str())
            .bind(format!("mapped by {by} from the review list"))
            .bind(by)
            .bind(r.try_get::<i64, _>("sent_ms")?)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                report.mapped += 1;
            } else {
                report.already += 1;
            }
            if !sender.is_empty() {
                senders.insert(sender.to_ascii_lowercase());
            }
        }
        if add_senders {
            for address in senders {
                let sync_user: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM users u JOIN tenants t ON t.id = u.tenant_id
                     WHERE t.org_id = $1 AND LOWER(u.email) = $2",
                )
                .bind(scope.org_id)
                .bind(address.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                let linked: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM mailboxes m JOIN tenants t ON t.id = m.tenant_id
                     WHERE t.org_id = $1 AND LOWER(m.address) = $2 AND m.user_id IS NOT NULL",
                )
                .bind(scope.org_id)
                .bind(address.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                if sync_user + linked > 0 {
                    report.refused_addresses.push((
                        address,
                        "a sync user's own address never identifies a contact (E9)".into(),
                    ));
                    continue;
                }
                let owned: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM contacts c WHERE c.id = $1 AND (c.email = $2 OR c.alt_email = $2
                         OR EXISTS (SELECT 1 FROM contact_emails p WHERE p.contact_id = c.id AND p.address = $2))",
                )
                .bind(contact_id)
                .bind(address.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                if owned > 0 {
                    report
                        .refused_addresses
                        .push((address, "already one of the contact's addresses".into()));
                    continue;
                }
                sqlx::query("INSERT INTO contact_emails (contact_id, address) VALUES ($1, $2)")
                    .bind(contact_id)
                    .bind(address.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO contact_changes (org_id, address, at_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (org_id, address) DO UPDATE SET at_ms = excluded.at_ms",
                )
                .bind(scope.org_id)
                .bind(address.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE contacts SET updated_ms = $1 WHERE id = $2")
                    .bind(now)
                    .bind(contact_id)
                    .execute(&mut *tx)
                    .await?;
                report.added_addresses.push(address);
            }
        }
        tx.commit().await?;
        Ok(report)
    }
}
