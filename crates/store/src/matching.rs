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

/// Most link rows per INSERT: 7 parameters each, far below SQLite's 32,766 and PostgreSQL's
/// 65,535 parameters per statement.
const LINK_ROWS: usize = 256;

/// Rows for the next link INSERT of `left`: the largest power of two not above either, so a
/// batch's links take a handful of statements drawn from nine shapes.
fn link_rows(left: usize) -> usize {
    let cap = left.min(LINK_ROWS);
    1 << (usize::BITS - 1 - cap.leading_zeros())
}

/// `(m, m+1, ..), (..)`: `rows` rows of `cols` markers numbered from `first` (the markers
/// before them are the statement's own).
fn value_rows_from(backend: super::Backend, first: usize, rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (0..cols)
                .map(|c| marker(backend, first + r * cols + c))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `record_id BETWEEN lo AND hi AND record_id IN (..)` for `n` ids, markers from `first`: a
/// batch's deletes name exactly the ids it read (an id committed into the range after the
/// batch was read must stay queued), and the range bounds the index scan whatever the
/// planner believes: on PostgreSQL with statistics from before a bulk load, the bare `IN`
/// list was a filter over every queued row of the tenant, per batch.
fn ids_in_range(backend: super::Backend, first: usize, n: usize) -> String {
    format!(
        "record_id BETWEEN {} AND {} AND record_id IN ({})",
        marker(backend, first),
        marker(backend, first + 1),
        in_list(backend, first + 2, n)
    )
}

/// The lowest and highest of a non-empty list of ids.
fn bounds(ids: &[i64]) -> (i64, i64) {
    let lo = ids.iter().copied().min().unwrap_or(0);
    let hi = ids.iter().copied().max().unwrap_or(0);
    (lo, hi)
}

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

/// One batch of a tenant's matching queue, as [`Store::match_batch`] reads it.
#[derive(Debug, Clone, Default)]
pub struct MatchBatch {
    /// Every queued id read, in order, records no longer stored included: all of them leave
    /// the queue when the batch is saved, and no other.
    pub ids: Vec<i64>,
    /// The tenant's stored records among them, in id order.
    pub candidates: Vec<MatchCandidate>,
    /// The org's contacts the records' addresses reach, in id order.
    pub contacts: Vec<MatchContact>,
}

/// The error for an aggregate the database built that does not parse: the database's fault
/// (or a driver's), named with the record it belongs to.
fn unreadable(what: String, e: serde_json::Error) -> StoreError {
    StoreError::Db(sqlx::Error::Decode(
        format!("{what} read back from the database as unreadable JSON: {e}").into(),
    ))
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

/// A direct match stored for one email of a thread, as [`Store::thread_matches`] reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadLink {
    /// The email linked.
    pub record_id: i64,
    /// The email's sent time: the thread's order.
    pub sent_ms: i64,
    /// Made by a person from the review list (`source = 'manual'`): kept when the email is
    /// matched again.
    pub manual: bool,
    /// The link.
    pub link: StoredMatch,
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

    /// The next batch of a tenant's queue after record `after`: up to `limit` queued ids in
    /// order, the stored records among them with their addresses, thread and owning user, and
    /// the org's contacts those addresses reach. Three statements whatever the batch's size,
    /// each answering one row per record or per contact (addresses and contact points come
    /// aggregated as JSON), because through sqlx's `Any` driver every result row is sent from
    /// the database's worker and copied value by value: rows, not bytes, are what a batch
    /// costs to read.
    pub async fn match_batch(
        &self,
        tenant_id: i64,
        org_id: i64,
        kind: ActivityKind,
        after: i64,
        limit: i64,
    ) -> Result<MatchBatch, StoreError> {
        let b = self.backend();
        let (parent, table, column, conversation, occurred, user) = match kind {
            ActivityKind::Email => (
                "emails",
                "email_recipients",
                "email_id",
                "r.conversation_id",
                "r.sent_ms",
                // The owning user: the first linked mailbox holding a copy.
                "(SELECT MIN(u.email) FROM email_mailboxes em JOIN mailboxes m ON m.id = em.mailbox_id
                     JOIN users u ON u.id = m.user_id WHERE em.email_id = r.id)",
            ),
            ActivityKind::Event => (
                "events",
                "event_addresses",
                "event_id",
                "''",
                "r.start_ms",
                "(SELECT u.email FROM users u WHERE u.id = r.user_id)",
            ),
        };
        let addresses = match b {
            super::Backend::Sqlite => format!(
                "(SELECT json_group_array(json_array(a.role, a.address, a.name)) FROM {table} a WHERE a.{column} = r.id)"
            ),
            super::Backend::Postgres => format!(
                "(SELECT json_agg(json_build_array(a.role, a.address, a.name))::text FROM {table} a WHERE a.{column} = r.id)"
            ),
        };
        // Driven by the queue's key in id order, the batch's ids taken first; the record by
        // its primary key only (with `tenant_id = ?` on the record SQLite walks the tenant's
        // conversation or start index), so its tenant is checked here. A queued id whose
        // record is gone comes back alone. The ids come from a subquery with its own LIMIT:
        // joined directly, PostgreSQL merged the queue with the records' primary key read from
        // the first record on, for every batch (quadratic: 31 ms a batch at 100k emails, 5 ms
        // this way).
        let sql = format!(
            "SELECT q.record_id, r.tenant_id, {conversation} AS conversation_id, {occurred} AS occurred_ms,
                 {user} AS user_email, {addresses} AS addresses
             FROM (SELECT record_id FROM match_queue
                   WHERE tenant_id = {} AND kind = {} AND record_id > {} ORDER BY record_id LIMIT {}) q
                 LEFT JOIN {parent} r ON r.id = q.record_id
             ORDER BY q.record_id",
            marker(b, 1),
            marker(b, 2),
            marker(b, 3),
            marker(b, 4)
        );
        let rows = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(kind.as_str())
            .bind(after)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        let mut batch = MatchBatch {
            ids: Vec::with_capacity(rows.len()),
            candidates: Vec::with_capacity(rows.len()),
            contacts: Vec::new(),
        };
        for r in &rows {
            let id: i64 = r.try_get(0)?;
            batch.ids.push(id);
            if r.try_get::<Option<i64>, _>(1)? != Some(tenant_id) {
                continue;
            }
            let mut addresses: Vec<(String, String, String)> =
                match r.try_get::<Option<String>, _>(5)? {
                    Some(json) => serde_json::from_str(&json).map_err(|e| {
                        unreadable(format!("the addresses of {} {id}", kind.as_str()), e)
                    })?,
                    None => Vec::new(),
                };
            addresses.sort();
            batch.candidates.push(MatchCandidate {
                id,
                conversation_id: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                occurred_ms: r.try_get(3)?,
                user: r.try_get(4)?,
                addresses,
            });
        }
        let stored: Vec<i64> = batch.candidates.iter().map(|c| c.id).collect();
        batch.contacts = self
            .contacts_reached_by(org_id, table, column, &stored)
            .await?;
        Ok(batch)
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

    /// The org's contacts reachable by any address of the records `ids` (stored in `table`
    /// under `column`), by Email, Alternate Email or a contact-point email, each once in id
    /// order with all of its addresses. The addresses are joined in the database, never sent
    /// back as parameters; one row per contact.
    async fn contacts_reached_by(
        &self,
        org_id: i64,
        table: &str,
        column: &str,
        ids: &[i64],
    ) -> Result<Vec<MatchContact>, StoreError> {
        let b = self.backend();
        let points = match b {
            super::Backend::Sqlite => {
                "(SELECT json_group_array(p.address) FROM contact_emails p WHERE p.contact_id = c.id)"
            }
            super::Backend::Postgres => {
                "(SELECT json_agg(p.address ORDER BY p.address)::text FROM contact_emails p WHERE p.contact_id = c.id)"
            }
        };
        let mut out: Vec<MatchContact> = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let o = marker(b, chunk.len() + 1);
            let list = in_list(b, 1, chunk.len());
            let sql = match b {
                // CROSS JOIN keeps SQLite's planner on the address indexes (without statistics
                // it would walk every contact of the org).
                super::Backend::Sqlite => format!(
                    "WITH a AS (SELECT DISTINCT x.address FROM {table} x WHERE x.{column} IN ({list}))
                     SELECT c.id, c.name, c.entity_id, c.email, c.alt_email, {points} AS points
                     FROM contacts c WHERE c.id IN (
                         SELECT c1.id FROM a CROSS JOIN contacts c1 WHERE c1.org_id = {o} AND c1.email = a.address
                         UNION SELECT c2.id FROM a CROSS JOIN contacts c2 WHERE c2.org_id = {o} AND c2.alt_email = a.address
                         UNION SELECT p.contact_id FROM a CROSS JOIN contact_emails p CROSS JOIN contacts c3
                             WHERE p.address = a.address AND c3.id = p.contact_id AND c3.org_id = {o})
                     ORDER BY c.id"
                ),
                // PostgreSQL hashes a batch's thousand addresses against a sequential scan of
                // the org's contacts (three per batch) rather than probe the indexes; a
                // LATERAL subquery that cannot be flattened (OFFSET 0) is probed once per
                // address and once per contact (208 ms -> 36 ms per batch at 100k contacts).
                super::Backend::Postgres => format!(
                    "WITH a AS (SELECT DISTINCT x.address FROM {table} x WHERE x.{column} IN ({list})),
                     ids AS (
                         SELECT c1.id FROM a CROSS JOIN LATERAL
                             (SELECT k.id FROM contacts k WHERE k.org_id = {o} AND k.email = a.address OFFSET 0) c1
                         UNION SELECT c2.id FROM a CROSS JOIN LATERAL
                             (SELECT k.id FROM contacts k WHERE k.org_id = {o} AND k.alt_email = a.address OFFSET 0) c2
                         UNION SELECT c3.id FROM a CROSS JOIN LATERAL
                             (SELECT k.id FROM contact_emails p JOIN contacts k ON k.id = p.contact_id
                              WHERE p.address = a.address AND k.org_id = {o} OFFSET 0) c3)
                     SELECT c.id, c.name, c.entity_id, c.email, c.alt_email, c.points FROM ids CROSS JOIN LATERAL
                         (SELECT c.id, c.name, c.entity_id, c.email, c.alt_email, {points} AS points
                          FROM contacts c WHERE c.id = ids.id OFFSET 0) c
                     ORDER BY c.id"
                ),
            };
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            // SQLite's anonymous markers bind in order of appearance: the org id three times
            // there, once for PostgreSQL's numbered marker.
            let org_binds = match b {
                super::Backend::Sqlite => 3,
                super::Backend::Postgres => 1,
            };
            for _ in 0..org_binds {
                q = q.bind(org_id);
            }
            for r in q.fetch_all(self.pool()).await? {
                let id: i64 = r.try_get(0)?;
                let mut contact_points: Vec<String> = match r.try_get::<Option<String>, _>(5)? {
                    Some(json) => serde_json::from_str(&json).map_err(|e| {
                        unreadable(format!("the contact points of contact {id}"), e)
                    })?,
                    None => Vec::new(),
                };
                contact_points.sort();
                out.push(MatchContact {
                    id,
                    name: r.try_get(1)?,
                    entity_id: r.try_get(2)?,
                    email: r.try_get(3)?,
                    alt_email: r.try_get(4)?,
                    contact_points,
                });
            }
        }
        if ids.len() > IN_CHUNK {
            out.sort_by_key(|c| c.id);
            out.dedup_by_key(|c| c.id);
        }
        Ok(out)
    }

    /// The direct matches (by an address, or made by a person; never ones inherited from a
    /// thread, so links cannot feed on each other) stored for the emails of each of
    /// `conversations` (a tenant's threads), with the email each belongs to, in the thread's
    /// order (by the email's sent time, then the contact).
    pub async fn thread_matches(
        &self,
        tenant_id: i64,
        conversations: &[String],
    ) -> Result<HashMap<String, Vec<ThreadLink>>, StoreError> {
        let b = self.backend();
        let mut out: HashMap<String, Vec<ThreadLink>> = HashMap::new();
        for chunk in conversations.chunks(IN_CHUNK) {
            let (tenant, list) = (marker(b, 1), in_list(b, 2, chunk.len()));
            let sql = match b {
                // CROSS JOIN: SQLite joins in the order written (the threads' emails first).
                super::Backend::Sqlite => format!(
                    "SELECT e.conversation_id, m.record_id, e.sent_ms, m.source, m.contact_id, m.entity_id, m.address, m.field, m.reason
                     FROM emails e CROSS JOIN activity_matches m
                     WHERE m.kind = 'email' AND m.record_id = e.id
                       AND e.tenant_id = {tenant} AND m.field <> 'thread' AND e.conversation_id IN ({list})
                     ORDER BY e.conversation_id, e.sent_ms, m.contact_id"
                ),
                // PostgreSQL plans from statistics, and during a large job `activity_matches`
                // grows from the empty table its statistics last described: it then walked
                // every link of the tenant by the primary key and probed each email, per batch
                // (quadratic: 32 of 41 s at 100k emails). A LATERAL subquery that cannot be
                // flattened (OFFSET 0) is probed once per email of the threads, by key.
                super::Backend::Postgres => format!(
                    "SELECT e.conversation_id, m.record_id, e.sent_ms, m.source, m.contact_id, m.entity_id, m.address, m.field, m.reason
                     FROM emails e CROSS JOIN LATERAL
                         (SELECT m.record_id, m.source, m.contact_id, m.entity_id, m.address, m.field, m.reason
                          FROM activity_matches m
                          WHERE m.kind = 'email' AND m.record_id = e.id AND m.field <> 'thread' OFFSET 0) m
                     WHERE e.tenant_id = {tenant} AND e.conversation_id IN ({list})
                     ORDER BY e.conversation_id, e.sent_ms, m.contact_id"
                ),
            };
            let mut q = sqlx::query(&sql).bind(tenant_id);
            for c in chunk {
                q = q.bind(c.as_str());
            }
            for r in q.fetch_all(self.pool()).await? {
                out.entry(r.try_get("conversation_id")?)
                    .or_default()
                    .push(ThreadLink {
                        record_id: r.try_get("record_id")?,
                        sent_ms: r.try_get("sent_ms")?,
                        manual: r.try_get::<String, _>("source")? == "manual",
                        link: StoredMatch {
                            contact_id: r.try_get("contact_id")?,
                            entity_id: r.try_get("entity_id")?,
                            address: r.try_get("address")?,
                            field: r.try_get("field")?,
                            reason: r.try_get("reason")?,
                        },
                    });
            }
        }
        Ok(out)
    }

    /// Stores a batch's outcomes in one transaction: each matched record's plugin matches are
    /// replaced (manual ones kept), each failed record is kept for a retry with `decided_by`
    /// (the plugin's stamp) as the version that failed it, and every record of the batch
    /// leaves the queue.
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
                "DELETE FROM activity_matches WHERE kind = {} AND source = 'plugin' AND {}",
                marker(b, 1),
                ids_in_range(b, 2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(kind.as_str());
            let (lo, hi) = bounds(chunk);
            q = q.bind(lo).bind(hi);
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
        // What is the same for every link of the batch is bound once per statement; each row
        // carries only its own seven values. Statements come in a few fixed sizes (a power of
        // two up to LINK_ROWS), so each connection prepares each shape once.
        let mut rest: &[(&MatchOutcome, &StoredMatch)] = &rows;
        while !rest.is_empty() {
            let n = link_rows(rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let sql = format!(
                "INSERT INTO activity_matches (kind, record_id, tenant_id, contact_id, entity_id, address, field, source,
                     reason, decided_by, occurred_ms, at_ms)
                 SELECT {kind}, v.column1, {tenant}, v.column2, v.column3, v.column4, v.column5, 'plugin',
                     v.column6, {decided}, v.column7, {at}
                 FROM (VALUES {values}) AS v WHERE true ON CONFLICT DO NOTHING",
                kind = marker(b, 1),
                tenant = marker(b, 2),
                decided = marker(b, 3),
                at = marker(b, 4),
                values = value_rows_from(b, 5, n, 7),
            );
            let mut q = sqlx::query(&sql)
                .bind(kind.as_str())
                .bind(tenant_id)
                .bind(decided_by)
                .bind(now);
            for (o, m) in chunk {
                q = q
                    .bind(o.record_id)
                    .bind(m.contact_id)
                    .bind(m.entity_id)
                    .bind(m.address.as_str())
                    .bind(m.field.as_str())
                    .bind(m.reason.as_str())
                    .bind(o.occurred_ms);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in matched.chunks(IN_CHUNK) {
            let sql = format!(
                "DELETE FROM match_failures WHERE tenant_id = {} AND kind = {} AND {}",
                marker(b, 1),
                marker(b, 2),
                ids_in_range(b, 3, chunk.len())
            );
            let (lo, hi) = bounds(chunk);
            let mut q = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(kind.as_str())
                .bind(lo)
                .bind(hi);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        for o in outcomes {
            if let Err(error) = &o.result {
                sqlx::query(
                    "INSERT INTO match_failures (tenant_id, kind, record_id, plugin, error, attempts, first_ms, at_ms)
                     VALUES ($1, $2, $3, $4, $5, 1, $6, $6)
                     ON CONFLICT (tenant_id, kind, record_id) DO UPDATE SET plugin = excluded.plugin,
                         error = excluded.error, attempts = match_failures.attempts + 1, at_ms = excluded.at_ms",
                )
                .bind(tenant_id)
                .bind(kind.as_str())
                .bind(o.record_id)
                .bind(decided_by)
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
                "DELETE FROM match_queue WHERE tenant_id = {} AND kind = {} AND {}",
                marker(b, 1),
                marker(b, 2),
                ids_in_range(b, 3, chunk.len())
            );
            let (lo, hi) = bounds(chunk);
            let mut q = sqlx::query(&sql)
                .bind(tenant_id)
                .bind(kind.as_str())
                .bind(lo)
                .bind(hi);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        // What this matching version decided, counted with its links (the Plugins page).
        let matched_records = outcomes
            .iter()
            .filter(|o| o.result.as_ref().is_ok_and(|ms| !ms.is_empty()))
            .count() as i64;
        let mut tally = crate::decisions::Tally::default();
        tally.matched(decided_by, matched_records, rows.len() as i64);
        tally.write(&mut tx, tenant_id).await?;
        tx.commit().await?;
        self.after_heavy_commit().await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_statements_take_powers_of_two_up_to_the_cap() {
        let mut left = 300;
        let mut sizes = Vec::new();
        while left > 0 {
            let n = link_rows(left);
            sizes.push(n);
            left -= n;
        }
        assert_eq!(sizes, vec![256, 32, 8, 4]);
        assert_eq!(link_rows(1), 1);
        assert_eq!(link_rows(5000), LINK_ROWS);
    }
}
