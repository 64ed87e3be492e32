//! Sharing the work between service processes: which tenant runs are due, which mailboxes still
//! owe work to a run, and the leases that make sure one worker at a time syncs a mailbox.
//!
//! Everything here is a single conditional statement or one short transaction, written once for
//! SQLite and PostgreSQL: a run is started by whichever process wins the conditional `UPDATE` of
//! the tenant's `next_run_ms`; a mailbox is worked on by whichever worker wins the conditional
//! upsert of its lease. A process that dies leaves leases that simply run out, and the mailbox's
//! `pending_run_id` tells the next worker the work is still owed.

use serde::Serialize;
use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// A worker's claim on a mailbox: who holds it and for how long each renewal extends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it: the worker's name, unique among running processes.
    pub holder: String,
    /// How long each claim or renewal lasts, ms.
    pub ttl_ms: i64,
}

/// A mailbox with work owed to a run, as a worker claims it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMailbox {
    /// The mailbox.
    pub mailbox_id: i64,
    /// Its tenant.
    pub tenant_id: i64,
    /// The run the work is owed to.
    pub run_id: i64,
}

/// What a worker's share of a run adds to the run's totals when it ends. Records read, kept,
/// excluded and failed are not here: each page's are committed with the page (issue 20).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunProgress {
    /// Mailbox-level errors logged (a mailbox that failed, a folder that differs from Graph,
    /// a push Microsoft refused); failed records are counted with their pages.
    pub errors: i64,
    /// CRM events written to Microsoft.
    pub pushed: i64,
}

/// What claiming a mailbox's lease came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseClaim {
    /// Another live worker holds it.
    Refused,
    /// Claimed: it was free, or already this holder's.
    Claimed,
    /// Claimed from a worker whose lease ran out while it held it (its process was killed, or
    /// stalled): whatever work it owed is resumed from its last committed page.
    TakenOver {
        /// The previous holder.
        from: String,
        /// When its lease ran out, epoch ms (its last renewal plus its time to live).
        expired_ms: i64,
    },
}

/// A mailbox's health after a sync attempt (E16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxOutcome {
    /// Synced: healthy again.
    Healthy,
    /// Synced, but records of it failed in a stage (retried, or parked): `degraded` until
    /// none is left (issue 14).
    Degraded {
        /// What failed, and what to do.
        detail: String,
    },
    /// A transient failure (throttling, 5xx, network): try again after `until_ms`.
    BackingOff {
        /// What failed.
        detail: String,
        /// When to try again, epoch ms.
        until_ms: i64,
    },
    /// A permanent failure (403, 404, credentials); `disable` stops it being scheduled.
    Failing {
        /// What failed, and what to fix.
        detail: String,
        /// True when this failure disables the mailbox: it stops being scheduled.
        disable: bool,
    },
}

impl Store {
    /// Makes a tenant's next run due now (a retry, or an admin's "sync now").
    pub async fn request_run(&self, tenant_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE tenants SET next_run_ms = NULL WHERE id = $1")
            .bind(tenant_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Enabled, activated tenants whose next run is due and that owe no work to a previous run.
    pub async fn due_tenants(&self, now: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.id FROM tenants t WHERE t.enabled = 1 AND t.activated_ms IS NOT NULL
                 AND (t.next_run_ms IS NULL OR t.next_run_ms <= $1)
                 AND NOT EXISTS (SELECT 1 FROM mailboxes m WHERE m.tenant_id = t.id AND m.pending_run_id IS NOT NULL AND m.enabled = 1)
             ORDER BY t.id",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?)
    }

    /// Starts a scheduled run of `tenant_id` if this process is first to claim it: moves the
    /// tenant's next run `cadence_ms` ahead, records the run, and marks every enabled mailbox
    /// as owing it work, in one transaction. `None` when another process got there first.
    pub async fn start_scheduled_run(
        &self,
        tenant_id: i64,
        now: i64,
        cadence_ms: i64,
        trigger: &str,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let claimed = sqlx::query(
            "UPDATE tenants SET next_run_ms = $1 WHERE id = $2 AND enabled = 1
                 AND (next_run_ms IS NULL OR next_run_ms <= $3)",
        )
        .bind(now + cadence_ms)
        .bind(tenant_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed != 1 {
            // Explicitly: SQLite holds its write lock until the rollback actually runs.
            tx.rollback().await?;
            return Ok(None);
        }
        let run_id: i64 = sqlx::query(
            "INSERT INTO runs (tenant_id, mailbox_id, trigger_kind, started_ms) VALUES ($1, NULL, $2, $3) RETURNING id",
        )
        .bind(tenant_id)
        .bind(trigger)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?
            .into_iter()
            .next()
            .ok_or(sqlx::Error::RowNotFound)?
        .try_get("id")?;
        // A disabled mailbox owes nothing (it may have been disabled mid-run).
        sqlx::query(
            "UPDATE mailboxes SET pending_run_id = NULL WHERE tenant_id = $1 AND enabled = 0",
        )
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE mailboxes SET pending_run_id = $1 WHERE tenant_id = $2 AND enabled = 1 AND pending_run_id IS NULL",
        )
        .bind(run_id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE tenants SET initial_sync_ms = COALESCE(initial_sync_ms, $1) WHERE id = $2",
        )
        .bind(now)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(run_id))
    }

    /// Marks the given mailboxes as owing work to `run_id` (a one-off run or a retry), unless
    /// they owe another run work already; an admin asking now ends any back-off. Returns how
    /// many were assigned.
    pub async fn assign_to_run(&self, run_id: i64, mailbox_ids: &[i64]) -> Result<u64, StoreError> {
        let mut assigned = 0;
        for id in mailbox_ids {
            assigned += sqlx::query(
                "UPDATE mailboxes SET pending_run_id = $1, backoff_until_ms = NULL WHERE id = $2 AND pending_run_id IS NULL",
            )
            .bind(run_id)
            .bind(id)
            .execute(self.pool())
            .await?
            .rows_affected();
        }
        Ok(assigned)
    }

    /// The run a mailbox owes work to, if any.
    pub async fn owed_run(&self, mailbox_id: i64) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query("SELECT pending_run_id FROM mailboxes WHERE id = $1")
                .bind(mailbox_id)
                .fetch_optional(self.pool())
                .await?
                .map(|r| r.try_get::<Option<i64>, _>("pending_run_id"))
                .transpose()?
                .flatten(),
        )
    }

    /// Who holds a mailbox's lease and until when (ms), whether or not it has run out.
    pub async fn lease_of(&self, mailbox_id: i64) -> Result<Option<(String, i64)>, StoreError> {
        sqlx::query("SELECT holder, expires_ms FROM leases WHERE mailbox_id = $1")
            .bind(mailbox_id)
            .fetch_optional(self.pool())
            .await?
            .map(|r| -> Result<(String, i64), StoreError> {
                Ok((r.try_get("holder")?, r.try_get("expires_ms")?))
            })
            .transpose()
    }

    /// Takes back an assignment this process could not work on.
    pub async fn unassign_from_run(&self, run_id: i64, mailbox_id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE mailboxes SET pending_run_id = NULL WHERE id = $1 AND pending_run_id = $2",
        )
        .bind(mailbox_id)
        .bind(run_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Mailboxes owing work, not leased by a live worker and not backing off; oldest run first.
    /// `run_id` restricts to one run.
    pub async fn pending_mailboxes(
        &self,
        now: i64,
        run_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<PendingMailbox>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.tenant_id, m.pending_run_id FROM mailboxes m
                 JOIN tenants t ON t.id = m.tenant_id
                 LEFT JOIN leases l ON l.mailbox_id = m.id
             WHERE m.pending_run_id IS NOT NULL AND t.enabled = 1 AND m.enabled = 1
                 AND ($1 = 0 OR m.pending_run_id = $1)
                 AND (l.expires_ms IS NULL OR l.expires_ms < $2)
                 AND (m.backoff_until_ms IS NULL OR m.backoff_until_ms <= $2)
             ORDER BY m.pending_run_id, m.id LIMIT $3",
        )
        .bind(run_id.unwrap_or(0))
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingMailbox {
                    mailbox_id: r.try_get("id")?,
                    tenant_id: r.try_get("tenant_id")?,
                    run_id: r.try_get("pending_run_id")?,
                })
            })
            .collect()
    }

    /// Takes the lease on a mailbox for `ttl_ms` if it is free, expired, or already `holder`'s.
    /// True when `holder` now holds it. One statement, so two workers never both win.
    pub async fn claim_lease(
        &self,
        mailbox_id: i64,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.claim_lease_noting(mailbox_id, holder, ttl_ms).await? != LeaseClaim::Refused)
    }

    /// [`Store::claim_lease`], saying whether the lease was taken over from another holder
    /// whose lease ran out: a worker that dies never gives its lease back, so an expired lease
    /// of someone else is the trace of work interrupted mid-way. Only the claim that wins
    /// reports it.
    pub async fn claim_lease_noting(
        &self,
        mailbox_id: i64,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<LeaseClaim, StoreError> {
        let before = sqlx::query("SELECT holder, expires_ms FROM leases WHERE mailbox_id = $1")
            .bind(mailbox_id)
            .fetch_optional(self.pool())
            .await?
            .map(|r| {
                Ok::<_, sqlx::Error>((
                    r.try_get::<String, _>("holder")?,
                    r.try_get::<i64, _>("expires_ms")?,
                ))
            })
            .transpose()?;
        if !self.claim_lease_once(mailbox_id, holder, ttl_ms).await? {
            return Ok(LeaseClaim::Refused);
        }
        Ok(match before {
            Some((from, expired_ms)) if from != holder => {
                LeaseClaim::TakenOver { from, expired_ms }
            }
            _ => LeaseClaim::Claimed,
        })
    }

    async fn claim_lease_once(
        &self,
        mailbox_id: i64,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let won = sqlx::query(
            "INSERT INTO leases (mailbox_id, holder, expires_ms) VALUES ($1, $2, $3)
             ON CONFLICT (mailbox_id) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
                 WHERE leases.expires_ms < $4 OR leases.holder = excluded.holder
             RETURNING mailbox_id",
        )
        .bind(mailbox_id)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next();
        Ok(won.is_some())
    }

    /// Extends `holder`'s lease; false when the lease was lost (it ran out and another took it).
    pub async fn renew_lease(
        &self,
        mailbox_id: i64,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let n =
            sqlx::query("UPDATE leases SET expires_ms = $1 WHERE mailbox_id = $2 AND holder = $3")
                .bind(now_ms() + ttl_ms)
                .bind(mailbox_id)
                .bind(holder)
                .execute(self.pool())
                .await?
                .rows_affected();
        Ok(n == 1)
    }

    /// Gives a lease back so another worker need not wait for it to run out.
    pub async fn release_lease(&self, mailbox_id: i64, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE mailbox_id = $1 AND holder = $2")
            .bind(mailbox_id)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Who holds each live lease (for the admin API and tests).
    pub async fn live_leases(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT mailbox_id, holder FROM leases WHERE expires_ms >= $1 ORDER BY mailbox_id",
        )
        .bind(now_ms())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("mailbox_id")?, r.try_get("holder")?)))
            .collect()
    }

    /// Records a worker's result for one mailbox of a run: its progress joins the run's totals,
    /// its health becomes `outcome` (unchanged when `None`: the work was interrupted), and when
    /// `settled` it no longer owes the run work. A failure that is not `counted` (a manual
    /// run's) leaves the streak of failures that disables a mailbox where it was.
    pub async fn finish_mailbox_work(
        &self,
        run_id: i64,
        mailbox_id: i64,
        progress: RunProgress,
        outcome: Option<&MailboxOutcome>,
        settled: bool,
        counted: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE runs SET errors = errors + $1, pushed = pushed + $2 WHERE id = $3")
            .bind(progress.errors)
            .bind(progress.pushed)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        let Some(outcome) = outcome else {
            // Interrupted work: health unknown, the work still owed.
            tx.commit().await?;
            return Ok(());
        };
        if settled
            && !matches!(
                outcome,
                MailboxOutcome::Healthy | MailboxOutcome::Degraded { .. }
            )
        {
            // The mailbox gives up on this run without having completed its share.
            sqlx::query("UPDATE runs SET incomplete = incomplete + 1 WHERE id = $1")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
        }
        let (health, detail, until, failed, disable) = match outcome {
            MailboxOutcome::Healthy => ("healthy", None, None, false, false),
            MailboxOutcome::Degraded { detail } => {
                ("degraded", Some(detail.as_str()), None, false, false)
            }
            MailboxOutcome::BackingOff { detail, until_ms } => (
                "backing_off",
                Some(detail.as_str()),
                Some(*until_ms),
                true,
                false,
            ),
            MailboxOutcome::Failing { detail, disable } => (
                if *disable { "disabled" } else { "failing" },
                Some(detail.as_str()),
                None,
                true,
                *disable,
            ),
        };
        sqlx::query(
            "UPDATE mailboxes SET health = $1, health_detail = $2, backoff_until_ms = $3,
                 consecutive_failures = CASE WHEN $4 = 1 AND $10 = 1 THEN consecutive_failures + 1
                     WHEN $4 = 1 THEN consecutive_failures ELSE 0 END,
                 failing_since_ms = CASE WHEN $4 = 1 AND $10 = 1 THEN COALESCE(failing_since_ms, $9)
                     WHEN $4 = 1 THEN failing_since_ms ELSE NULL END,
                 enabled = CASE WHEN $5 = 1 THEN 0 ELSE enabled END,
                 pending_run_id = CASE WHEN $6 = 1 AND pending_run_id = $8 THEN NULL ELSE pending_run_id END,
                 last_success_ms = CASE WHEN $4 = 0 THEN $9 ELSE last_success_ms END
             WHERE id = $7",
        )
        .bind(health)
        .bind(detail)
        .bind(until)
        .bind(failed as i64)
        .bind(disable as i64)
        .bind(settled as i64)
        .bind(mailbox_id)
        .bind(run_id)
        .bind(now_ms())
        .bind(counted as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that a mailbox's share of `run_id` was interrupted before it finished and is
    /// (or will be) taken up again, with the run log's line saying how: the run's
    /// `interruptions` and the line are written together. Called by the worker that resumes
    /// work a dead one left, or by one that stops (SIGTERM) with work still owed.
    pub async fn note_interruption(
        &self,
        run_id: i64,
        tenant_id: i64,
        mailbox_id: i64,
        message: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE runs SET interruptions = interruptions + 1 WHERE id = $1")
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO run_log (run_id, tenant_id, mailbox_id, level, message, at_ms) VALUES ($1, $2, $3, 'warning', $4, $5)")
            .bind(run_id)
            .bind(tenant_id)
            .bind(mailbox_id)
            .bind(message)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes every running run that no mailbox owes work to any more; returns their ids.
    pub async fn close_finished_runs(&self) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id FROM runs r WHERE r.status = 'running' AND r.mailbox_id IS NULL
                 AND NOT EXISTS (SELECT 1 FROM mailboxes m JOIN tenants t ON t.id = m.tenant_id
                     WHERE m.pending_run_id = r.id AND m.enabled = 1 AND t.enabled = 1)",
        )
        .fetch_all(self.pool())
        .await?;
        let mut closed = Vec::new();
        for r in rows {
            let id: i64 = r.try_get("id")?;
            let n = sqlx::query(
                "UPDATE runs SET finished_ms = $1,
                     status = CASE WHEN incomplete > 0 THEN 'incomplete' WHEN errors = 0 THEN 'succeeded' ELSE 'completed_with_errors' END
                 WHERE id = $2 AND status = 'running'",
            )
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?
            .rows_affected();
            if n == 1 {
                closed.push(id);
            }
        }
        Ok(closed)
    }

    /// One run by id.
    pub async fn run(&self, run_id: i64) -> Result<super::sync::Run, StoreError> {
        let row = sqlx::query("SELECT * FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| no_run(run_id))?;
        Ok(super::sync::run_from(&row)?)
    }

    /// Mailboxes per health, across every tenant (the service's gauges).
    pub async fn health_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT health, COUNT(*) AS n FROM mailboxes GROUP BY health ORDER BY health",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("health")?, r.try_get("n")?)))
            .collect()
    }

    /// How many mailboxes owe a run work, across every tenant.
    pub async fn pending_count(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM mailboxes WHERE pending_run_id IS NOT NULL")
                .fetch_one(self.pool())
                .await?
                .try_get("n")?,
        )
    }
}

/// What a run id nobody has answers: also the answer to a caller who may not see the run, so
/// the two cannot be told apart.
pub fn no_run(run_id: i64) -> StoreError {
    StoreError::NotFound(format!(
        "no run {run_id}; `m365sync logs` lists the recent runs"
    ))
}
