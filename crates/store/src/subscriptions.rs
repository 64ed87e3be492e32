//! Change notifications in the database (issue 17): the Graph subscriptions of each synced
//! mailbox, what their notifications and lifecycle events leave behind, the rounds those start,
//! and the wake that tells every service process there is work.
//!
//! A notification is trusted for one thing only: "look at this mailbox now". It sets the
//! mailbox's `notified_ms` (the earliest unanswered one, so a burst of a hundred is one mark);
//! [`Store::start_notified_rounds`] turns marks into a run per tenant whose mailboxes owe it a
//! round, exactly as a scheduled run's do, and the delta round says what changed. The database
//! is the queue shared by every process: whichever receives the POST marks the mailbox, and on
//! PostgreSQL announces it (`NOTIFY`) so idle workers of other processes wake at once.

use serde::Serialize;
use sqlx::Row;

use super::{now_ms, Backend, Store, StoreError};

/// The PostgreSQL channel on which a process says "a mailbox owes work now".
const WORK_CHANNEL: &str = "m365sync_work";

/// What a subscription watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// All of the mailbox's mail (`/users/{id}/messages`).
    Mail,
    /// The calendar of a user's primary mailbox (`/users/{id}/events`), when Sync Events is on.
    Events,
}

impl ResourceKind {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Mail => "mail",
            ResourceKind::Events => "events",
        }
    }

    fn parse(s: &str) -> ResourceKind {
        if s == "events" {
            ResourceKind::Events
        } else {
            ResourceKind::Mail
        }
    }
}

/// A subscription as admins see it: never its client state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    /// m365sync's id of the subscription row.
    pub id: i64,
    /// The tenant.
    pub tenant_id: i64,
    /// The mailbox watched.
    pub mailbox_id: i64,
    /// The mailbox's address.
    pub address: String,
    /// The mailbox's Graph user id (what the resource path names).
    pub mailbox_graph_id: String,
    /// Mail or events.
    pub resource: ResourceKind,
    /// Graph's subscription id; `None` until Graph created it.
    pub graph_id: Option<String>,
    /// `creating`, `active` or `failing`.
    pub status: String,
    /// Why it is failing, and what to do.
    pub detail: Option<String>,
    /// When Graph lets it lapse unless renewed, epoch ms.
    pub expires_ms: Option<i64>,
    /// When it is renewed: well before it lapses, from the expiry Graph granted.
    pub renew_after_ms: Option<i64>,
    /// When a failed creation or renewal is tried again.
    pub next_attempt_ms: Option<i64>,
    /// When the row was made, epoch ms.
    pub created_ms: i64,
    /// When it was last renewed.
    pub renewed_ms: Option<i64>,
    /// Genuine notifications received (client state and subscription known).
    pub notifications: i64,
    /// When the last genuine notification arrived.
    pub last_notification_ms: Option<i64>,
    /// Lifecycle events received.
    pub lifecycle_events: i64,
    /// The last lifecycle event (`reauthorizationRequired`, `subscriptionRemoved`, `missed`).
    pub last_lifecycle: Option<String>,
    /// When it arrived.
    pub last_lifecycle_ms: Option<i64>,
    /// What a lifecycle event left to do: `reauthorize` or `recreate`.
    pub pending_action: Option<String>,
    /// Failed Graph calls in a row (0 once one succeeds): the retry waits longer each time.
    pub failures: i64,
    /// The notification URL Graph was given when it was made; `None` before.
    pub notification_url: Option<String>,
}

/// A subscription the store says should exist and does not yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedSubscription {
    /// The tenant.
    pub tenant_id: i64,
    /// The mailbox.
    pub mailbox_id: i64,
    /// Mail or events.
    pub resource: ResourceKind,
}

/// A genuine notification's subscription, found by Graph's id, with its secret opened so the
/// receiver can compare the client state Graph echoed. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct KnownSubscription {
    /// The subscription.
    pub subscription: Subscription,
    /// Its client state, in clear: compare it in constant time, never log it.
    pub client_state: String,
}

impl std::fmt::Debug for KnownSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownSubscription")
            .field("subscription", &self.subscription)
            .field("client_state", &"***")
            .finish()
    }
}

/// A round started because notifications asked for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifiedRound {
    /// The tenant.
    pub tenant_id: i64,
    /// The run its mailboxes now owe work to.
    pub run_id: i64,
    /// How many mailboxes it covers.
    pub mailboxes: u64,
}

const COLUMNS: &str = "s.id, s.tenant_id, s.mailbox_id, m.address, m.graph_id AS mailbox_graph_id, s.resource_kind, s.graph_id, s.status, s.detail, s.expires_ms, s.renew_after_ms, s.next_attempt_ms, s.created_ms, s.renewed_ms, s.notifications, s.last_notification_ms, s.lifecycle_events, s.last_lifecycle, s.last_lifecycle_ms, s.pending_action, s.failures, s.notification_url";

fn subscription_from(r: &sqlx::any::AnyRow) -> Result<Subscription, sqlx::Error> {
    Ok(Subscription {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        mailbox_id: r.try_get("mailbox_id")?,
        address: r.try_get("address")?,
        mailbox_graph_id: r.try_get("mailbox_graph_id")?,
        resource: ResourceKind::parse(&r.try_get::<String, _>("resource_kind")?),
        graph_id: r.try_get("graph_id")?,
        status: r.try_get("status")?,
        detail: r.try_get("detail")?,
        expires_ms: r.try_get("expires_ms")?,
        renew_after_ms: r.try_get("renew_after_ms")?,
        next_attempt_ms: r.try_get("next_attempt_ms")?,
        created_ms: r.try_get("created_ms")?,
        renewed_ms: r.try_get("renewed_ms")?,
        notifications: r.try_get("notifications")?,
        last_notification_ms: r.try_get("last_notification_ms")?,
        lifecycle_events: r.try_get("lifecycle_events")?,
        last_lifecycle: r.try_get("last_lifecycle")?,
        last_lifecycle_ms: r.try_get("last_lifecycle_ms")?,
        pending_action: r.try_get("pending_action")?,
        failures: r.try_get("failures")?,
        notification_url: r.try_get("notification_url")?,
    })
}

/// Rows selecting [`COLUMNS`] as subscriptions.
fn subscriptions_from(rows: &[sqlx::any::AnyRow]) -> Result<Vec<Subscription>, StoreError> {
    Ok(rows
        .iter()
        .map(subscription_from)
        .collect::<Result<_, _>>()?)
}

/// When to renew a subscription Graph granted until `expires_ms`: half its remaining life, but
/// never later than six hours before it lapses, so a week-long subscription is renewed with a
/// day's margin for failures and a one-minute one (the simulator's) after thirty seconds.
pub fn renew_after(now: i64, expires_ms: i64) -> i64 {
    let left = (expires_ms - now).max(0);
    now + (left / 2).max(left - 6 * 3_600_000)
}

/// What a subscription's mailbox and tenant must be for it to be wanted: both enabled, the
/// tenant activated with notifications on; events only for the primary mailbox of a user
/// whose Sync Events is on.
const WANTED: &str = "m.enabled = 1 AND t.enabled = 1 AND t.activated_ms IS NOT NULL AND ts.notifications = 1
    AND (k.kind = 'mail' OR EXISTS (SELECT 1 FROM users u WHERE u.id = m.user_id AND u.sync_events = 1 AND u.primary_mailbox_id = m.id))";

impl Store {
    /// Mailboxes that should have a subscription and have none: every enabled mailbox of an
    /// activated, enabled tenant with notifications on (mail), and the primary mailboxes of
    /// users with Sync Events on (events).
    pub async fn wanted_subscriptions(&self) -> Result<Vec<WantedSubscription>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT m.tenant_id, m.id AS mailbox_id, k.kind FROM mailboxes m
                 JOIN tenants t ON t.id = m.tenant_id
                 JOIN tenant_settings ts ON ts.tenant_id = t.id
                 CROSS JOIN (SELECT 'mail' AS kind UNION ALL SELECT 'events' AS kind) k
             WHERE {WANTED}
                 AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.mailbox_id = m.id AND s.resource_kind = k.kind)
             ORDER BY m.id, k.kind"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WantedSubscription {
                    tenant_id: r.try_get("tenant_id")?,
                    mailbox_id: r.try_get("mailbox_id")?,
                    resource: ResourceKind::parse(&r.try_get::<String, _>("kind")?),
                })
            })
            .collect()
    }

    /// Records a subscription about to be created at Graph, its client state sealed, claimed
    /// by `holder`'s maintainer for `ttl_ms`. `None` when another process recorded it first.
    pub async fn begin_subscription(
        &self,
        wanted: &WantedSubscription,
        client_state: &str,
        ttl_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO subscriptions (tenant_id, mailbox_id, resource_kind, client_state, created_ms, claim_until_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (mailbox_id, resource_kind) DO NOTHING RETURNING id",
        )
        .bind(wanted.tenant_id)
        .bind(wanted.mailbox_id)
        .bind(wanted.resource.as_str())
        .bind(self.key().seal(client_state))
        .bind(now)
        .bind(now + ttl_ms)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next();
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }

    /// Claims a subscription for maintenance (create, renew, reauthorize, delete) for `ttl_ms`;
    /// false when another process's maintainer holds it.
    pub async fn claim_subscription(&self, id: i64, ttl_ms: i64) -> Result<bool, StoreError> {
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE subscriptions SET claim_until_ms = $1 WHERE id = $2 AND (claim_until_ms IS NULL OR claim_until_ms < $3)",
        )
        .bind(now + ttl_ms)
        .bind(id)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// A subscription's client state, opened (the maintainer sends it to Graph on creation).
    pub async fn subscription_client_state(&self, id: i64) -> Result<String, StoreError> {
        let r = sqlx::query("SELECT client_state FROM subscriptions WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no subscription {id}")))?;
        Ok(self.key().open(&r.try_get::<Vec<u8>, _>("client_state")?)?)
    }

    /// Records what Graph answered to a creation: its id and the expiry it granted. The claim
    /// is released and any lifecycle action is done.
    pub async fn subscription_created(
        &self,
        id: i64,
        graph_id: &str,
        expires_ms: i64,
        notification_url: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE subscriptions SET graph_id = $1, expires_ms = $2, renew_after_ms = $3, status = 'active',
                 detail = NULL, next_attempt_ms = NULL, renewed_ms = $4, pending_action = NULL, claim_until_ms = NULL,
                 failures = 0, notification_url = $6
             WHERE id = $5",
        )
        .bind(graph_id)
        .bind(expires_ms)
        .bind(renew_after(now, expires_ms))
        .bind(now)
        .bind(id)
        .bind(notification_url)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records a renewal (or a reauthorization, whose expiry is unchanged): the expiry Graph
    /// granted, the next renewal, the claim released.
    pub async fn subscription_renewed(&self, id: i64, expires_ms: i64) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE subscriptions SET expires_ms = $1, renew_after_ms = $2, renewed_ms = $3, status = 'active',
                 detail = NULL, next_attempt_ms = NULL, pending_action = NULL, claim_until_ms = NULL, failures = 0
             WHERE id = $4",
        )
        .bind(expires_ms)
        .bind(renew_after(now, expires_ms))
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records a failed creation, renewal or reauthorization: `failing` with what went wrong
    /// and what to do, tried again at `retry_at_ms`. The cadence poll goes on meanwhile.
    pub async fn subscription_failed(
        &self,
        id: i64,
        detail: &str,
        retry_at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE subscriptions SET status = 'failing', detail = $1, next_attempt_ms = $2, claim_until_ms = NULL,
                 failures = failures + 1 WHERE id = $3",
        )
        .bind(detail)
        .bind(retry_at_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets a subscription (deleted at Graph, or gone there).
    pub async fn remove_subscription(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM subscriptions WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forgets every subscription of a tenant without telling Graph: for the sandbox, whose
    /// simulator keeps subscriptions in memory only, so a restart finds none of them there and
    /// they are made again. Returns how many were forgotten.
    pub async fn forget_subscriptions(&self, tenant_id: i64) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM subscriptions WHERE tenant_id = $1")
                .bind(tenant_id)
                .execute(self.pool())
                .await?
                .rows_affected(),
        )
    }

    /// Subscriptions with maintenance due now and no live claim: never created at Graph (a
    /// process died mid-way, or creation failed and its retry time came), due for renewal, or
    /// with a lifecycle action waiting.
    pub async fn subscriptions_due(&self, now: i64) -> Result<Vec<Subscription>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM subscriptions s JOIN mailboxes m ON m.id = s.mailbox_id
             WHERE (s.claim_until_ms IS NULL OR s.claim_until_ms < $1)
                 AND (s.next_attempt_ms IS NULL OR s.next_attempt_ms <= $1)
                 AND (s.graph_id IS NULL OR s.pending_action IS NOT NULL OR s.renew_after_ms <= $1 OR s.status <> 'active')
             ORDER BY s.id"
        ))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        subscriptions_from(&rows)
    }

    /// Subscriptions Graph made for another notification URL than `url` (the service's
    /// `notification_url` changed) and not claimed: to delete at Graph and make again.
    pub async fn subscriptions_for_other_url(
        &self,
        url: &str,
        now: i64,
    ) -> Result<Vec<Subscription>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM subscriptions s JOIN mailboxes m ON m.id = s.mailbox_id
             WHERE (s.claim_until_ms IS NULL OR s.claim_until_ms < $1)
                 AND s.graph_id IS NOT NULL AND s.notification_url IS NOT NULL AND s.notification_url <> $2
             ORDER BY s.id"
        ))
        .bind(now)
        .bind(url)
        .fetch_all(self.pool())
        .await?;
        subscriptions_from(&rows)
    }

    /// Subscriptions no longer wanted (mailbox or tenant disabled, notifications turned off,
    /// Sync Events off or another primary mailbox) and not claimed: to delete at Graph.
    pub async fn unwanted_subscriptions(&self, now: i64) -> Result<Vec<Subscription>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM subscriptions s JOIN mailboxes m ON m.id = s.mailbox_id
                 JOIN tenants t ON t.id = s.tenant_id
                 JOIN tenant_settings ts ON ts.tenant_id = t.id
                 JOIN (SELECT 'mail' AS kind UNION ALL SELECT 'events' AS kind) k ON k.kind = s.resource_kind
             WHERE (s.claim_until_ms IS NULL OR s.claim_until_ms < $1)
                 AND (s.next_attempt_ms IS NULL OR s.next_attempt_ms <= $1) AND NOT ({WANTED})
             ORDER BY s.id"
        ))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        subscriptions_from(&rows)
    }

    /// A mailbox's subscriptions (mail first).
    pub async fn mailbox_subscriptions(
        &self,
        mailbox_id: i64,
    ) -> Result<Vec<Subscription>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM subscriptions s JOIN mailboxes m ON m.id = s.mailbox_id
             WHERE s.mailbox_id = $1 ORDER BY s.resource_kind DESC"
        ))
        .bind(mailbox_id)
        .fetch_all(self.pool())
        .await?;
        subscriptions_from(&rows)
    }

    /// A tenant's subscriptions, by mailbox.
    pub async fn tenant_subscriptions(
        &self,
        tenant_id: i64,
    ) -> Result<Vec<Subscription>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM subscriptions s JOIN mailboxes m ON m.id = s.mailbox_id
             WHERE s.tenant_id = $1 ORDER BY m.address, s.resource_kind DESC"
        ))
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        subscriptions_from(&rows)
    }

    /// The subscription Graph calls `graph_id`, with its client state opened; `None` when no
    /// such subscription is known here (a forged or stale notification).
    pub async fn subscription_by_graph_id(
        &self,
        graph_id: &str,
    ) -> Result<Option<KnownSubscription>, StoreError> {
        let Some(r) = sqlx::query(&format!(
            "SELECT {COLUMNS}, s.client_state FROM subscriptions s JOIN mailboxes m ON m.id = s.mailbox_id
             WHERE s.graph_id = $1"
        ))
        .bind(graph_id)
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(KnownSubscription {
            subscription: subscription_from(&r)?,
            client_state: self.key().open(&r.try_get::<Vec<u8>, _>("client_state")?)?,
        }))
    }

    /// Records genuine notifications of one subscription (`count` of them, received at `now`)
    /// and asks for a look at its mailbox: one transaction, so what was answered 202 is stored.
    pub async fn note_notifications(
        &self,
        subscription_id: i64,
        mailbox_id: i64,
        count: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE subscriptions SET notifications = notifications + $1, last_notification_ms = $2 WHERE id = $3",
        )
        .bind(count)
        .bind(now)
        .bind(subscription_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE mailboxes SET notified_ms = COALESCE(notified_ms, $1) WHERE id = $2")
            .bind(now)
            .bind(mailbox_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a lifecycle event of a subscription and what it asks for:
    /// `reauthorizationRequired` leaves `reauthorize` to the maintainer, `subscriptionRemoved`
    /// leaves `recreate` (the look at the mailbox follows the new subscription, so nothing
    /// falls between them), `missed` asks for a look at the mailbox now.
    pub async fn note_lifecycle(
        &self,
        subscription_id: i64,
        mailbox_id: i64,
        event: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let action = match event {
            "reauthorizationRequired" => Some("reauthorize"),
            "subscriptionRemoved" => Some("recreate"),
            _ => None,
        };
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE subscriptions SET lifecycle_events = lifecycle_events + 1, last_lifecycle = $1, last_lifecycle_ms = $2,
                 pending_action = COALESCE($3, pending_action),
                 next_attempt_ms = CASE WHEN $3 IS NULL THEN next_attempt_ms ELSE NULL END
             WHERE id = $4",
        )
        .bind(event)
        .bind(now)
        .bind(action)
        .bind(subscription_id)
        .execute(&mut *tx)
        .await?;
        if event == "missed" {
            sqlx::query(
                "UPDATE mailboxes SET notified_ms = COALESCE(notified_ms, $1) WHERE id = $2",
            )
            .bind(now)
            .bind(mailbox_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Asks for a look at a mailbox now (after a subscription was recreated, so the changes
    /// made while it was missing are read).
    pub async fn request_look(&self, mailbox_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE mailboxes SET notified_ms = COALESCE(notified_ms, $1) WHERE id = $2")
            .bind(now_ms())
            .bind(mailbox_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Turns the looks notifications asked for into rounds: per tenant, one run (trigger
    /// `notification`) that every marked mailbox not already owing work now owes a round, and
    /// the mark cleared in the same transaction, so the next notification starts the next
    /// round. A marked mailbox that owes a round no worker has begun is answered by that round
    /// (its mark is cleared too); one whose round is under way keeps its mark, and gets a round
    /// of its own once that one ends (the round under way may have read past the change).
    /// Any number of processes may call this at once: each mailbox joins one run.
    pub async fn start_notified_rounds(&self, now: i64) -> Result<Vec<NotifiedRound>, StoreError> {
        let tenants: Vec<i64> = sqlx::query(
            "SELECT DISTINCT m.tenant_id FROM mailboxes m JOIN tenants t ON t.id = m.tenant_id
             WHERE m.notified_ms IS NOT NULL AND m.enabled = 1 AND t.enabled = 1 AND t.activated_ms IS NOT NULL
             ORDER BY m.tenant_id",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| r.try_get("tenant_id"))
        .collect::<Result<_, _>>()?;
        let mut started = Vec::new();
        for tenant_id in tenants {
            let mut tx = self.pool().begin().await?;
            // Owed rounds nobody has begun will read delta after the mark: they answer it.
            sqlx::query(
                "UPDATE mailboxes SET woken_ms = COALESCE(woken_ms, notified_ms), notified_ms = NULL
                 WHERE tenant_id = $1 AND notified_ms IS NOT NULL AND pending_run_id IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.mailbox_id = mailboxes.id AND l.expires_ms >= $2)",
            )
            .bind(tenant_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let waiting: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM mailboxes
                 WHERE tenant_id = $1 AND notified_ms IS NOT NULL AND pending_run_id IS NULL AND enabled = 1",
            )
            .bind(tenant_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            if waiting == 0 {
                tx.commit().await?;
                continue;
            }
            let run_id: i64 = sqlx::query(
                "INSERT INTO runs (tenant_id, mailbox_id, trigger_kind, started_ms) VALUES ($1, NULL, 'notification', $2) RETURNING id",
            )
            .bind(tenant_id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .next()
            .ok_or(sqlx::Error::RowNotFound)?
            .try_get("id")?;
            let assigned = sqlx::query(
                "UPDATE mailboxes SET pending_run_id = $1, woken_ms = COALESCE(woken_ms, notified_ms), notified_ms = NULL
                 WHERE tenant_id = $2 AND notified_ms IS NOT NULL AND pending_run_id IS NULL AND enabled = 1",
            )
            .bind(run_id)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if assigned == 0 {
                // Another process was first: no empty run.
                sqlx::query("DELETE FROM runs WHERE id = $1")
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                continue;
            }
            tx.commit().await?;
            started.push(NotifiedRound {
                tenant_id,
                run_id,
                mailboxes: assigned,
            });
        }
        Ok(started)
    }

    /// Takes the time of the first notification the round just ended answered (`None` for a
    /// round no notification asked for): what the lag metric measures from.
    pub async fn take_woken(&self, mailbox_id: i64) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT woken_ms FROM mailboxes WHERE id = $1")
            .bind(mailbox_id)
            .fetch_optional(self.pool())
            .await?;
        let Some(woken) = row
            .map(|r| r.try_get::<Option<i64>, _>("woken_ms"))
            .transpose()?
            .flatten()
        else {
            return Ok(None);
        };
        sqlx::query("UPDATE mailboxes SET woken_ms = NULL WHERE id = $1 AND woken_ms = $2")
            .bind(mailbox_id)
            .bind(woken)
            .execute(self.pool())
            .await?;
        Ok(Some(woken))
    }

    /// Tells every process listening ([`Store::listen_for_work`]) that a mailbox owes work
    /// now. Nothing to do on SQLite, where one process serves.
    pub async fn announce_work(&self) -> Result<(), StoreError> {
        if self.backend() == Backend::Postgres {
            sqlx::query(&format!("SELECT pg_notify('{WORK_CHANNEL}', '')"))
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    /// On PostgreSQL, a connection listening for [`Store::announce_work`]; `None` on SQLite.
    pub async fn listen_for_work(&self) -> Result<Option<WorkListener>, StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(self.url()).await?;
        listener.listen(WORK_CHANNEL).await?;
        Ok(Some(WorkListener(listener)))
    }
}

/// A PostgreSQL connection that hears "a mailbox owes work now" from every process.
pub struct WorkListener(sqlx::postgres::PgListener);

impl std::fmt::Debug for WorkListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkListener")
    }
}

impl WorkListener {
    /// Waits for the next announcement. A lost connection is reconnected by the driver (the
    /// announcements sent meanwhile are lost; the workers' poll covers them).
    pub async fn recv(&mut self) -> Result<(), StoreError> {
        self.0.recv().await?;
        Ok(())
    }
}
