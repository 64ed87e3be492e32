//! Sync state: cursors per mailbox folder, runs and their logs, and the per-page commit.
//!
//! [`Store::commit_page`] is where "nothing lost, nothing twice" is made true: the records of a
//! delta page and the cursor that follows it are written in one transaction, so a crash replays
//! at most that page, and every write is an upsert so the replay is harmless.

use serde::Serialize;
use sqlx::Row;

use super::attachments::{write_attachments, AttachmentSet};
use super::{now_ms, Backend, Store, StoreError};

/// Where a folder's delta stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cursor {
    /// The link to follow next: a nextLink mid-round, or the deltaLink after a round.
    pub link: String,
    /// True when `link` is a deltaLink (the round finished).
    pub complete: bool,
    /// When the round began (the store's clock): what a full round did not touch since then
    /// is gone from the folder.
    pub round_started_ms: i64,
    /// True when the round began from its first URL (an initial round, or a restart after a
    /// 410) rather than from a deltaLink: it returns the folder's whole content (up to Graph's
    /// cap on filtered rounds), so the store is reconciled with it at its end.
    pub full: bool,
}

/// An email as the pipeline stores it: the Graph facts the store indexes, plus the CRM record
/// the mapping plugin produced.
#[derive(Debug, Clone)]
pub struct EmailRecord {
    /// The Graph immutable id in this mailbox.
    pub graph_id: String,
    /// The message's `internetMessageId` (with sender and sent second, the email's key in the tenant).
    pub internet_message_id: String,
    /// Graph's conversation id, for thread matches.
    pub conversation_id: String,
    /// The subject.
    pub subject: String,
    /// The sender's address.
    pub sender: String,
    /// When it was sent, epoch ms.
    pub sent_ms: i64,
    /// When it was received, epoch ms.
    pub received_ms: i64,
    /// (role, address, name)
    pub recipients: Vec<(String, String, String)>,
    /// The CRM email record (JSON) from the mapping plugin.
    pub record: String,
    /// Plugin name, version and digest that decided and mapped it (P5).
    pub decided_by: String,
    /// Its attachments as fetched on this pass (E5), written with the email.
    pub attachments: AttachmentSet,
}

impl EmailRecord {
    /// The key that makes the same message in several mailboxes one email: internetMessageId
    /// plus sender plus sent second (internetMessageId alone is not unique).
    pub fn correlation_key(&self) -> String {
        format!(
            "{}|{}|{}",
            self.internet_message_id,
            self.sender.to_ascii_lowercase(),
            self.sent_ms / 1000
        )
    }
}

/// An item the exclusion stage dropped, with the rule that decided.
#[derive(Debug, Clone)]
pub struct Exclusion {
    /// The record's Graph id in its mailbox.
    pub graph_id: String,
    /// The rule that dropped it (the plugin's rule id, or a product rule such as `draft`).
    pub rule: String,
    /// The stamp of the plugin (or product rule set) that decided (P5).
    pub decided_by: String,
}

/// An item a stage could not process: kept with its error and retried, until it has failed
/// the tenant's `failure_attempts` times; then it is parked (kept, listed, retried only on
/// request).
#[derive(Debug, Clone)]
pub struct FailedRecord {
    /// The record's Graph id in its mailbox.
    pub graph_id: String,
    /// The stage that failed: `convert`, `series`, `exclude` or `map`.
    pub stage: String,
    /// What went wrong, as the stage said it (a plugin's trap names its panic message).
    pub error: String,
    /// The record's subject, so a list can name it without its JSON.
    pub subject: String,
    /// The stamp (`name version sha256:digest`) of the plugin whose stage failed; empty for
    /// the product's own stages.
    pub plugin: String,
    /// The Graph JSON, so a retry needs no refetch.
    pub payload: String,
}

/// Everything one delta page changes.
#[derive(Debug, Clone)]
pub struct PageCommit {
    /// The org of the tenant.
    pub org_id: i64,
    /// The tenant of the mailbox.
    pub tenant_id: i64,
    /// The mailbox the page is of.
    pub mailbox_id: i64,
    /// The folder the page is of (its id, or a well-known name).
    pub folder: String,
    /// Emails new or changed in this page.
    pub upserts: Vec<EmailRecord>,
    /// Graph ids reported `@removed` from this folder.
    pub removals: Vec<String>,
    /// Records a plugin excluded, with the rule.
    pub exclusions: Vec<Exclusion>,
    /// Records a stage failed on.
    pub failures: Vec<FailedRecord>,
    /// Where the folder stands after this page; `None` when retrying failed records.
    pub cursor: Option<Cursor>,
    /// The cursor's key when it is not the folder's own delta cursor (a listing backfill's
    /// `FOLDER#list`); `None` for the folder's delta cursor.
    pub cursor_key: Option<String>,
    /// The run this work counts toward.
    pub run_id: Option<i64>,
    /// The worker's lease: renewed in the page's transaction, which fails if it was lost.
    pub lease: Option<super::schedule::Lease>,
}

/// Which of a tenant's runs a page lists ([`Store::runs_page`]).
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs with ids below this one (the last id of the previous page).
    pub before: Option<i64>,
    /// Only runs started at or after this time (epoch ms).
    pub since_ms: Option<i64>,
    /// Only runs that did not fully succeed: with errors or records left incomplete, or ended
    /// otherwise than `succeeded` (a running run is not yet an error).
    pub errors_only: bool,
    /// The most runs to return.
    pub limit: i64,
}

/// A run of a tenant or mailbox, as the log shows it (E10).
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// The run's id.
    pub id: i64,
    /// The tenant the run is of.
    pub tenant_id: i64,
    /// The mailbox, for a run of one mailbox.
    pub mailbox_id: Option<i64>,
    /// What started it (the scheduler, an admin, a retry...).
    pub trigger_kind: String,
    /// When it started, epoch ms.
    pub started_ms: i64,
    /// When it finished, epoch ms; `None` while running.
    pub finished_ms: Option<i64>,
    /// `running` until it finishes, then how it ended.
    pub status: String,
    /// Records read.
    pub processed: i64,
    /// Records stored.
    pub synced: i64,
    /// Errors logged.
    pub errors: i64,
    /// Mailboxes that never completed their share (an outage outlasting the back-off, a
    /// permanent failure, a gap `mailbox verify` found): more than zero makes the run
    /// `incomplete`, never `succeeded`.
    pub incomplete: i64,
    /// The emails (messages of mail folders) the run read, and what became of them.
    pub emails: KindFigures,
    /// The events the run read (calendar items as the calendarView returns them: each
    /// occurrence of a series is one event), and what became of them.
    pub events: KindFigures,
    /// Records Graph reported removed (mail and calendar).
    pub removed: i64,
    /// CRM events written to Microsoft (created, updated, deleted).
    pub pushed: i64,
    /// Times a mailbox's share of the run stopped before it finished (its process was killed
    /// or stopped, or its lease ran out) and was taken up again, by this process or another:
    /// the run is resumed, never restarted, and its figures keep what every process did.
    pub interruptions: i64,
}

impl Run {
    /// True when the run was recorded before runs had figures by kind (schema version 9):
    /// only its totals are known.
    pub fn totals_only(&self) -> bool {
        self.processed > 0 && self.emails.processed == 0 && self.events.processed == 0
    }

    /// Its status as people read it: `running`, or how it ended, with how often it was
    /// interrupted and resumed (a run a kill interrupted never reads as a plain "succeeded").
    pub fn status_text(&self) -> String {
        match self.interruptions {
            0 => self.status.clone(),
            1 => format!("{}, resumed after 1 interruption", self.status),
            n => format!("{}, resumed after {n} interruptions", self.status),
        }
    }

    /// Its figures in a line: emails and events, each read = kept + excluded + failed, then
    /// removals, pushes and errors.
    pub fn figures_text(&self) -> String {
        if self.totals_only() {
            return format!(
                "{} processed, {} synced, {} errors (recorded before runs counted emails and events apart)",
                thousands(self.processed),
                thousands(self.synced),
                thousands(self.errors)
            );
        }
        let kind = |k: &KindFigures| {
            format!(
                "{} read: {} kept, {} excluded, {} failed",
                thousands(k.processed),
                thousands(k.kept),
                thousands(k.excluded),
                thousands(k.failed)
            )
        };
        format!(
            "emails {}; events {}; {} removed in Microsoft, {} pushed to Microsoft, {} errors",
            kind(&self.emails),
            kind(&self.events),
            thousands(self.removed),
            thousands(self.pushed),
            thousands(self.errors)
        )
    }
}

/// `44143` as `44,143`: run figures are read by people.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// What a run did with one kind of record. Each page's figures are committed in the page's
/// transaction, so they always match what is stored, whichever process did the work and
/// however often it was interrupted: `processed = kept + excluded + failed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindFigures {
    /// Records read (removals not counted).
    pub processed: i64,
    /// Records kept and stored.
    pub kept: i64,
    /// Records the exclusion rules (product rules or the exclusion plugin) dropped.
    pub excluded: i64,
    /// Records a stage failed on (kept for a retry, listed by `m365sync failures list`).
    pub failed: i64,
}

impl KindFigures {
    /// True when every record read is accounted for as kept, excluded or failed.
    pub fn adds_up(&self) -> bool {
        self.processed == self.kept + self.excluded + self.failed
    }
}

/// The kinds of record a run counts separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// Messages of mail folders.
    Email,
    /// Calendar items (occurrences counted one by one).
    Event,
}

/// Adds one page's records to its run, in the page's transaction: the figures are committed
/// exactly when the work they count is, so a kill loses neither and a replayed page (one that
/// was in flight at the kill) is counted once, when it is finally committed.
pub(crate) async fn count_page(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: Option<i64>,
    kind: RecordKind,
    figures: KindFigures,
    removed: usize,
) -> Result<(), StoreError> {
    let Some(run_id) = run_id else {
        return Ok(());
    };
    if figures == KindFigures::default() && removed == 0 {
        return Ok(());
    }
    let prefix = match kind {
        RecordKind::Email => "emails",
        RecordKind::Event => "events",
    };
    sqlx::query(&format!(
        "UPDATE runs SET {prefix}_processed = {prefix}_processed + $1, {prefix}_kept = {prefix}_kept + $2,
             {prefix}_excluded = {prefix}_excluded + $3, {prefix}_failed = {prefix}_failed + $4,
             processed = processed + $1, synced = synced + $2, errors = errors + $4,
             removed = removed + $5
         WHERE id = $6"
    ))
    .bind(figures.processed)
    .bind(figures.kept)
    .bind(figures.excluded)
    .bind(figures.failed)
    .bind(removed as i64)
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// A folder's cursor, if it has synced before.
    pub async fn cursor(
        &self,
        mailbox_id: i64,
        folder: &str,
    ) -> Result<Option<Cursor>, StoreError> {
        let row = sqlx::query("SELECT link, complete, round_started_ms, full_round FROM sync_cursors WHERE mailbox_id = $1 AND folder = $2")
            .bind(mailbox_id)
            .bind(folder)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            None => None,
            Some(r) => Some(Cursor {
                link: r.try_get("link")?,
                complete: r.try_get::<i64, _>("complete")? != 0,
                round_started_ms: r.try_get("round_started_ms")?,
                full: r.try_get::<i64, _>("full_round")? != 0,
            }),
        })
    }

    /// Forgets a folder's cursor so its next run is a full round (after a 410).
    pub async fn reset_cursor(&self, mailbox_id: i64, folder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sync_cursors WHERE mailbox_id = $1 AND folder = $2")
            .bind(mailbox_id)
            .bind(folder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forgets the date-bounded cursors of every mailbox of a tenant, so each folder's (or
    /// calendar's) next round starts from its first URL with the settings now in force: what a
    /// commencement date moved earlier needs, since Graph seals a round's `$filter` or window
    /// into its links. `mail` drops the mail folders' cursors (not the folder tree's, which no
    /// date bounds), `calendar` the calendar's. Nothing stored is touched; the full rounds that
    /// follow upsert what they read again and add what the wider window holds.
    pub async fn rewind_cursors(
        &self,
        tenant_id: i64,
        mail: bool,
        calendar: bool,
    ) -> Result<u64, StoreError> {
        let mut dropped = 0;
        let mailboxes = "SELECT id FROM mailboxes WHERE tenant_id = $1";
        if mail {
            dropped += sqlx::query(&format!(
                "DELETE FROM sync_cursors WHERE folder <> $2 AND folder <> $3 AND mailbox_id IN ({mailboxes})"
            ))
            .bind(tenant_id)
            .bind(crate::events::CALENDAR_FOLDER)
            .bind(crate::folders::FOLDER_TREE_CURSOR)
            .execute(self.pool())
            .await?
            .rows_affected();
        }
        if calendar {
            dropped += sqlx::query(&format!(
                "DELETE FROM sync_cursors WHERE folder = $2 AND mailbox_id IN ({mailboxes})"
            ))
            .bind(tenant_id)
            .bind(crate::events::CALENDAR_FOLDER)
            .execute(self.pool())
            .await?
            .rows_affected();
        }
        Ok(dropped)
    }

    /// Writes one page's records and advances the cursor, atomically.
    pub async fn commit_page(&self, page: &PageCommit) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self.pool().begin().await?;
        let mut tx = fence_lease(tx, page.mailbox_id, page.lease.as_ref(), now).await?;
        write_upserts(&mut tx, self.backend(), page, now).await?;
        for graph_id in &page.removals {
            // Only this folder's copy: with immutable ids a message moved to another folder
            // keeps its id, and that folder's round may already have recorded the arrival.
            sqlx::query("UPDATE email_mailboxes SET removed = 1, updated_ms = $1 WHERE mailbox_id = $2 AND graph_id = $3 AND folder = $4")
                .bind(now)
                .bind(page.mailbox_id)
                .bind(graph_id)
                .bind(&page.folder)
                .execute(&mut *tx)
                .await?;
            // A record that failed before and is gone now is no longer owed a retry.
            sqlx::query("DELETE FROM failed_records WHERE mailbox_id = $1 AND graph_id = $2 AND folder = $3")
                .bind(page.mailbox_id)
                .bind(graph_id)
                .bind(&page.folder)
                .execute(&mut *tx)
                .await?;
            // Nor is an exclusion decided in this folder the folder's any more.
            sqlx::query(
                "DELETE FROM exclusions WHERE mailbox_id = $1 AND graph_id = $2 AND folder = $3",
            )
            .bind(page.mailbox_id)
            .bind(graph_id)
            .bind(&page.folder)
            .execute(&mut *tx)
            .await?;
        }
        write_exclusions_and_failures(
            &mut tx,
            page.mailbox_id,
            &page.folder,
            &page.exclusions,
            &page.failures,
            page.run_id,
            now,
        )
        .await?;
        if let Some(cursor) = &page.cursor {
            let key = page.cursor_key.as_deref().unwrap_or(&page.folder);
            write_cursor(&mut tx, page.mailbox_id, key, cursor, now).await?;
        }
        // What each plugin version decided, counted with the records (the Plugins page).
        let mut tally = crate::decisions::Tally::default();
        for e in &page.upserts {
            tally.stored(&e.decided_by);
        }
        for x in &page.exclusions {
            tally.dropped(&x.decided_by);
        }
        tally.write(&mut tx, page.tenant_id).await?;
        let figures = KindFigures {
            processed: (page.upserts.len() + page.exclusions.len() + page.failures.len()) as i64,
            kept: page.upserts.len() as i64,
            excluded: page.exclusions.len() as i64,
            failed: page.failures.len() as i64,
        };
        count_page(
            &mut tx,
            page.run_id,
            RecordKind::Email,
            figures,
            page.removals.len(),
        )
        .await?;
        tx.commit().await?;
        self.after_heavy_commit().await;
        Ok(())
    }

    /// The Graph ids a mailbox currently holds (not removed), for comparing with a ground truth.
    pub async fn mailbox_graph_ids(
        &self,
        mailbox_id: i64,
        folder: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT graph_id FROM email_mailboxes WHERE mailbox_id = $1 AND removed = 0 AND ($2 = '' OR folder = $2) ORDER BY graph_id")
            .bind(mailbox_id)
            .bind(folder.unwrap_or(""))
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("graph_id"))
            .collect::<Result<_, _>>()?)
    }

    /// How many distinct emails a tenant has stored.
    pub async fn email_count(&self, tenant_id: i64) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM emails WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_one(self.pool())
                .await?
                .try_get("n")?,
        )
    }

    /// The mailboxes (ids) an email is linked to.
    pub async fn email_links(
        &self,
        tenant_id: i64,
        internet_message_id: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT em.mailbox_id FROM emails e JOIN email_mailboxes em ON em.email_id = e.id
             WHERE e.tenant_id = $1 AND e.internet_message_id = $2 AND em.removed = 0 ORDER BY em.mailbox_id",
        )
        .bind(tenant_id)
        .bind(internet_message_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("mailbox_id"))
            .collect::<Result<_, _>>()?)
    }

    /// Adds a line to a run's log (E10).
    pub async fn log(
        &self,
        run_id: i64,
        tenant_id: i64,
        mailbox_id: Option<i64>,
        level: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO run_log (run_id, tenant_id, mailbox_id, level, message, at_ms) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(run_id)
            .bind(tenant_id)
            .bind(mailbox_id)
            .bind(level)
            .bind(message)
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records that a run started; returns its id.
    pub async fn begin_run(
        &self,
        tenant_id: i64,
        mailbox_id: Option<i64>,
        trigger: &str,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query("INSERT INTO runs (tenant_id, mailbox_id, trigger_kind, started_ms) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(tenant_id)
            .bind(mailbox_id)
            .bind(trigger)
            .bind(now_ms())
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .next()
            .ok_or(sqlx::Error::RowNotFound)?
            .try_get("id")?)
    }

    /// Records how a run ended.
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: &str,
        processed: i64,
        synced: i64,
        errors: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET finished_ms = $1, status = $2, processed = $3, synced = $4, errors = $5 WHERE id = $6")
            .bind(now_ms())
            .bind(status)
            .bind(processed)
            .bind(synced)
            .bind(errors)
            .bind(run_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A tenant's runs, newest first.
    pub async fn runs(&self, tenant_id: i64, limit: i64) -> Result<Vec<Run>, StoreError> {
        self.runs_before(tenant_id, None, limit).await
    }

    /// A page of a tenant's runs, newest first: those with ids below `before` (the last id of
    /// the previous page), or the newest without it. Change notifications start runs of their
    /// own, so a tenant's list grows by the minute and is read a page at a time.
    pub async fn runs_before(
        &self,
        tenant_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Run>, StoreError> {
        self.runs_page(
            tenant_id,
            &RunFilter {
                before,
                limit,
                ..RunFilter::default()
            },
        )
        .await
    }

    /// A page of a tenant's runs, newest first, as `filter` narrows them (the console's runs
    /// page and `GET .../runs`: by age, errors only, paged by id).
    pub async fn runs_page(
        &self,
        tenant_id: i64,
        filter: &RunFilter,
    ) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE tenant_id = $1 AND id < $2 AND started_ms >= $3
                 AND ($4 = 0 OR errors > 0 OR incomplete > 0 OR status NOT IN ('succeeded', 'running'))
             ORDER BY id DESC LIMIT $5",
        )
        .bind(tenant_id)
        .bind(filter.before.unwrap_or(i64::MAX))
        .bind(filter.since_ms.unwrap_or(i64::MIN))
        .bind(i64::from(filter.errors_only))
        .bind(filter.limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(run_from).collect::<Result<_, _>>()?)
    }

    /// The stored Graph JSON of a folder's records that a stage failed on and that are not
    /// parked, oldest first.
    pub async fn failed_payloads(
        &self,
        mailbox_id: i64,
        folder: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT payload FROM failed_records WHERE mailbox_id = $1 AND folder = $2 AND parked = 0 ORDER BY first_ms, graph_id")
            .bind(mailbox_id)
            .bind(folder)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("payload"))
            .collect::<Result<_, _>>()?)
    }
}

/// A `runs` row as a [`Run`].
pub(crate) fn run_from(r: &sqlx::any::AnyRow) -> Result<Run, sqlx::Error> {
    Ok(Run {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        mailbox_id: r.try_get("mailbox_id")?,
        trigger_kind: r.try_get("trigger_kind")?,
        started_ms: r.try_get("started_ms")?,
        finished_ms: r.try_get("finished_ms")?,
        status: r.try_get("status")?,
        processed: r.try_get("processed")?,
        synced: r.try_get("synced")?,
        errors: r.try_get("errors")?,
        incomplete: r.try_get("incomplete")?,
        emails: KindFigures {
            processed: r.try_get("emails_processed")?,
            kept: r.try_get("emails_kept")?,
            excluded: r.try_get("emails_excluded")?,
            failed: r.try_get("emails_failed")?,
        },
        events: KindFigures {
            processed: r.try_get("events_processed")?,
            kept: r.try_get("events_kept")?,
            excluded: r.try_get("events_excluded")?,
            failed: r.try_get("events_failed")?,
        },
        removed: r.try_get("removed")?,
        pushed: r.try_get("pushed")?,
        interruptions: r.try_get("interruptions")?,
    })
}

/// Rows per multi-row statement: far below SQLite's and PostgreSQL's parameter limits.
pub const ROWS_PER_STATEMENT: usize = 200;

/// The `n`th (from 1) parameter marker. SQLite gets anonymous `?`: it finds a numbered
/// parameter's name by a linear scan, which makes binding a statement of thousands of `$n`
/// quadratic; anonymous markers bind in order at no cost. PostgreSQL needs `$n`.
pub(crate) fn marker(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => "?".to_string(),
        Backend::Postgres => format!("${n}"),
    }
}

/// `($1, $2, ..), (..)` for `rows` rows of `cols` parameters, numbered from `first`. Public
/// for bulk loaders outside the store (the matching benchmark's million-email fixture).
pub fn value_rows(backend: Backend, rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=cols).map(|c| marker(backend, r * cols + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$first, .., $(first + n - 1)`: the markers of an `IN (..)` list.
pub(crate) fn in_list(backend: Backend, first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| marker(backend, i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes a page's emails, recipients, mailbox links and attachments with a few multi-row
/// statements per page instead of several per email: the page commit is the sync's hot path.
/// Within a page the same message may appear twice (Graph replays); the last copy wins, as the
/// row-at-a-time upserts did, and no statement touches one row twice (PostgreSQL refuses that).
async fn write_upserts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    page: &PageCommit,
    now: i64,
) -> Result<(), StoreError> {
    use std::collections::HashMap;
    if page.upserts.is_empty() {
        return Ok(());
    }
    // The last copy of each correlation key and of each Graph id.
    let mut by_key: HashMap<String, &EmailRecord> = HashMap::new();
    let mut key_order: Vec<String> = Vec::new();
    for e in &page.upserts {
        let key = e.correlation_key();
        if by_key.insert(key.clone(), e).is_none() {
            key_order.push(key);
        }
    }
    let mut email_ids: HashMap<String, i64> = HashMap::new();
    // The stored sent time of each email (the first copy's: a correlation key holds seconds).
    let mut sent_of: HashMap<i64, i64> = HashMap::new();
    let mut new_ids: Vec<i64> = Vec::new();
    for chunk in key_order.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO emails (org_id, tenant_id, correlation_key, internet_message_id, conversation_id, subject, sender,
                 sent_ms, received_ms, record, decided_by, created_ms, updated_ms)
             VALUES {}
             ON CONFLICT (tenant_id, correlation_key) DO UPDATE SET subject = excluded.subject, record = excluded.record,
                 decided_by = excluded.decided_by, updated_ms = excluded.updated_ms
             RETURNING id, correlation_key, created_ms, sent_ms",
            value_rows(backend, chunk.len(), 13)
        );
        let mut q = sqlx::query(&sql);
        for key in chunk {
            let e = by_key[key];
            q = q
                .bind(page.org_id)
                .bind(page.tenant_id)
                .bind(key.clone())
                .bind(&e.internet_message_id)
                .bind(&e.conversation_id)
                .bind(&e.subject)
                .bind(e.sender.to_ascii_lowercase())
                .bind(e.sent_ms)
                .bind(e.received_ms)
                .bind(&e.record)
                .bind(&e.decided_by)
                .bind(now)
                .bind(now);
        }
        for row in q.fetch_all(&mut **tx).await? {
            let id: i64 = row.try_get("id")?;
            if row.try_get::<i64, _>("created_ms")? == now {
                new_ids.push(id);
            }
            email_ids.insert(row.try_get("correlation_key")?, id);
            sent_of.insert(id, row.try_get("sent_ms")?);
        }
    }
    // New emails are owed a matching pass (E8): queued in this transaction, so the matching
    // job sees every email exactly when it is committed, whichever process wrote it.
    queue_for_matching(tx, backend, page.tenant_id, "email", &new_ids).await?;
    // A new email may be the sent copy of one the CRM sent (E15): it becomes that outbox
    // row's email, with the link the send asked for, in this transaction.
    if !new_ids.is_empty() {
        let sent: Vec<(i64, &str, i64)> = key_order
            .iter()
            .filter(|k| new_ids.contains(&email_ids[*k]))
            .map(|k| {
                let e = by_key[k];
                (email_ids[k], e.internet_message_id.as_str(), e.sent_ms)
            })
            .collect();
        crate::mail_outbox::link_sent_copies(tx, page.tenant_id, &sent).await?;
    }
    let mut recipients: Vec<(i64, &str, String, &str)> = Vec::new();
    for key in &key_order {
        let e = by_key[key];
        let id = email_ids[key];
        for (role, address, name) in &e.recipients {
            recipients.push((id, role, address.to_ascii_lowercase(), name));
        }
    }
    insert_addresses(tx, backend, AddressTable::EmailRecipients, recipients).await?;
    // Each copy carries its email's sent time: the review list's index (migration 17) pages
    // a mailbox's live copies by it.
    let mut by_graph_id: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut graph_order: Vec<&str> = Vec::new();
    for e in &page.upserts {
        let id = email_ids[&e.correlation_key()];
        if by_graph_id
            .insert(&e.graph_id, (id, sent_of[&id]))
            .is_none()
        {
            graph_order.push(&e.graph_id);
        }
    }
    for chunk in graph_order.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO email_mailboxes (mailbox_id, graph_id, email_id, folder, removed, updated_ms, sent_ms) VALUES {}
             ON CONFLICT (mailbox_id, graph_id) DO UPDATE SET email_id = excluded.email_id, folder = excluded.folder,
                 removed = 0, updated_ms = excluded.updated_ms, sent_ms = excluded.sent_ms",
            value_rows(backend, chunk.len(), 7)
        );
        let mut q = sqlx::query(&sql);
        for graph_id in chunk {
            let (email_id, sent_ms) = by_graph_id[graph_id];
            q = q
                .bind(page.mailbox_id)
                .bind(*graph_id)
                .bind(email_id)
                .bind(&page.folder)
                .bind(0i64)
                .bind(now)
                .bind(sent_ms);
        }
        q.execute(&mut **tx).await?;
    }
    for key in &key_order {
        write_attachments(tx, email_ids[key], &by_key[key].attachments).await?;
    }
    // A record stored now is no longer owed a retry; most mailboxes have none to forget.
    let owed: i64 = sqlx::query("SELECT COUNT(*) AS n FROM failed_records WHERE mailbox_id = $1")
        .bind(page.mailbox_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
    if owed > 0 {
        for chunk in graph_order.chunks(ROWS_PER_STATEMENT) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| marker(backend, i + 2)).collect();
            let sql = format!(
                "DELETE FROM failed_records WHERE mailbox_id = {} AND graph_id IN ({})",
                marker(backend, 1),
                marks.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(page.mailbox_id);
            for graph_id in chunk {
                q = q.bind(*graph_id);
            }
            q.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// The tables that hold a record's addresses, one row per (record, role, address).
#[derive(Debug, Clone, Copy)]
pub(crate) enum AddressTable {
    EmailRecipients,
    EventAddresses,
}

/// Inserts a page's address rows (record id, role, lowercase address, display name) into
/// `table`: each (record, role, address) once, a few multi-row statements for the whole page.
pub(crate) async fn insert_addresses(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    table: AddressTable,
    mut rows: Vec<(i64, &str, String, &str)>,
) -> Result<(), StoreError> {
    let (table, owner) = match table {
        AddressTable::EmailRecipients => ("email_recipients", "email_id"),
        AddressTable::EventAddresses => ("event_addresses", "event_id"),
    };
    rows.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    rows.dedup_by(|a, b| (a.0, a.1, &a.2) == (b.0, b.1, &b.2));
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO {table} ({owner}, role, address, name) VALUES {} ON CONFLICT DO NOTHING",
            value_rows(backend, chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql);
        for (id, role, address, name) in chunk {
            q = q.bind(*id).bind(*role).bind(address.clone()).bind(*name);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Queues new records of `kind` (`email` or `event`) for the matching job in the page's
/// transaction, a few multi-row statements for the whole page.
pub(crate) async fn queue_for_matching(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    tenant_id: i64,
    kind: &str,
    ids: &[i64],
) -> Result<(), StoreError> {
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO match_queue (tenant_id, kind, record_id) VALUES {} ON CONFLICT DO NOTHING",
            value_rows(backend, chunk.len(), 3)
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(tenant_id).bind(kind).bind(*id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Renews the worker's lease inside `tx`, first thing: a worker whose lease ran out (and was
/// taken over) must not commit (fencing). Refused, the transaction is rolled back explicitly
/// (SQLite holds its write lock until the rollback actually runs).
pub(crate) async fn fence_lease<'c>(
    mut tx: sqlx::Transaction<'c, sqlx::Any>,
    mailbox_id: i64,
    lease: Option<&super::schedule::Lease>,
    now: i64,
) -> Result<sqlx::Transaction<'c, sqlx::Any>, StoreError> {
    if let Some(lease) = lease {
        let held =
            sqlx::query("UPDATE leases SET expires_ms = $1 WHERE mailbox_id = $2 AND holder = $3")
                .bind(now + lease.ttl_ms)
                .bind(mailbox_id)
                .bind(&lease.holder)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if held != 1 {
            tx.rollback().await?;
            return Err(StoreError::LeaseLost { mailbox_id });
        }
    }
    Ok(tx)
}

/// Records a page's exclusions (P5) and failures (kept for a retry, E10), for mail and
/// calendar pages alike; an excluded record is no longer owed a retry. A failure that reaches
/// the tenant's `failure_attempts` is parked.
pub(crate) async fn write_exclusions_and_failures(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    mailbox_id: i64,
    folder: &str,
    exclusions: &[Exclusion],
    failures: &[FailedRecord],
    run_id: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    let park_after: i64 = if failures.is_empty() {
        0
    } else {
        sqlx::query(
            "SELECT ts.failure_attempts AS n FROM tenant_settings ts JOIN mailboxes m ON m.tenant_id = ts.tenant_id WHERE m.id = $1",
        )
        .bind(mailbox_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get::<i64, _>("n"))
        .transpose()?
        .unwrap_or(5)
    };
    for x in exclusions {
        sqlx::query(
            "INSERT INTO exclusions (mailbox_id, graph_id, rule, decided_by, at_ms, folder) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (mailbox_id, graph_id) DO UPDATE SET rule = excluded.rule, decided_by = excluded.decided_by,
                 at_ms = excluded.at_ms, folder = excluded.folder",
        )
        .bind(mailbox_id)
        .bind(&x.graph_id)
        .bind(&x.rule)
        .bind(&x.decided_by)
        .bind(now)
        .bind(folder)
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM failed_records WHERE mailbox_id = $1 AND graph_id = $2")
            .bind(mailbox_id)
            .bind(&x.graph_id)
            .execute(&mut **tx)
            .await?;
    }
    for f in failures {
        sqlx::query(
            "INSERT INTO failed_records (mailbox_id, graph_id, folder, stage, error, payload, attempts, first_ms, last_ms, run_id, subject, plugin, parked)
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7, $8, $9, $10, CASE WHEN $11 <= 1 THEN 1 ELSE 0 END)
             ON CONFLICT (mailbox_id, graph_id) DO UPDATE SET folder = excluded.folder, stage = excluded.stage,
                 error = excluded.error, payload = excluded.payload, attempts = failed_records.attempts + 1,
                 last_ms = excluded.last_ms, run_id = excluded.run_id, subject = excluded.subject,
                 plugin = excluded.plugin,
                 parked = CASE WHEN failed_records.attempts + 1 >= $11 THEN 1 ELSE failed_records.parked END",
        )
        .bind(mailbox_id)
        .bind(&f.graph_id)
        .bind(folder)
        .bind(&f.stage)
        .bind(&f.error)
        .bind(&f.payload)
        .bind(now)
        .bind(run_id)
        .bind(&f.subject)
        .bind(&f.plugin)
        .bind(park_after)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Advances a folder's (or the calendar's) delta cursor, in the page's transaction.
pub(crate) async fn write_cursor(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    mailbox_id: i64,
    folder: &str,
    cursor: &Cursor,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sync_cursors (mailbox_id, folder, link, complete, round_started_ms, updated_ms, full_round) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (mailbox_id, folder) DO UPDATE SET link = excluded.link, complete = excluded.complete,
             round_started_ms = excluded.round_started_ms, updated_ms = excluded.updated_ms, full_round = excluded.full_round",
    )
    .bind(mailbox_id)
    .bind(folder)
    .bind(&cursor.link)
    .bind(cursor.complete as i64)
    .bind(cursor.round_started_ms)
    .bind(now)
    .bind(cursor.full as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
