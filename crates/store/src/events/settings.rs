//! Calendar settings per org and tenant (C1, C3, C4) and a user's calendar switches.

use sqlx::Row;

use super::*;
use crate::{Store, StoreError};

fn settings_from_row(r: &sqlx::any::AnyRow) -> Result<CalendarSettings, StoreError> {
    let flag = |name: &str| -> Result<bool, StoreError> { Ok(r.try_get::<i64, _>(name)? != 0) };
    let direction: String = r.try_get("direction")?;
    Ok(CalendarSettings {
        direction: Direction::parse(&direction).map_err(StoreError::Invalid)?,
        sync_internal_events: flag("sync_internal_events")?,
        delete_from_microsoft: flag("delete_from_microsoft")?,
        delete_from_crm: flag("delete_from_crm")?,
        sync_private_events: flag("sync_private_events")?,
        sync_unmatched_events: flag("sync_unmatched_events")?,
        commencement_ms: r.try_get("commencement_ms")?,
        inbound_years: r.try_get("inbound_years")?,
        outbound_months: r.try_get("outbound_months")?,
    })
}

impl Store {
    /// The calendar settings that apply to a tenant: its own, else its org's, else the
    /// defaults of C3 and C4.
    pub async fn calendar_settings(
        &self,
        org_id: i64,
        tenant_id: i64,
    ) -> Result<CalendarSettings, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM calendar_settings WHERE org_id = $1 AND tenant_scope IN (0, $2) ORDER BY tenant_scope DESC",
        )
        .bind(org_id)
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        match rows.first() {
            Some(r) => settings_from_row(r),
            None => Ok(CalendarSettings::default()),
        }
    }

    /// The settings stored at one level (`tenant_id` `None`: the org's), if any.
    pub async fn calendar_settings_at(
        &self,
        org_id: i64,
        tenant_id: Option<i64>,
    ) -> Result<Option<CalendarSettings>, StoreError> {
        let row =
            sqlx::query("SELECT * FROM calendar_settings WHERE org_id = $1 AND tenant_scope = $2")
                .bind(org_id)
                .bind(tenant_id.unwrap_or(0))
                .fetch_optional(self.pool())
                .await?;
        row.as_ref().map(settings_from_row).transpose()
    }

    /// Stores the calendar settings of an org (`tenant_id` `None`) or of one tenant.
    pub async fn set_calendar_settings(
        &self,
        org_id: i64,
        tenant_id: Option<i64>,
        s: &CalendarSettings,
    ) -> Result<(), StoreError> {
        s.validate().map_err(StoreError::Invalid)?;
        // C4: the window each calendar's delta round was begun with is sealed in its links.
        // Settings that widen it (an earlier commencement, more years ahead) rewind the
        // calendars they apply to, so the next round reads the wider window.
        let tenants: Vec<i64> = match tenant_id {
            Some(t) => vec![t],
            None => {
                sqlx::query_scalar("SELECT id FROM tenants WHERE org_id = $1")
                    .bind(org_id)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        let mut before = Vec::with_capacity(tenants.len());
        for t in &tenants {
            before.push(self.calendar_settings(org_id, *t).await?);
        }
        sqlx::query(
            "INSERT INTO calendar_settings (org_id, tenant_scope, direction, sync_internal_events, delete_from_microsoft, delete_from_crm,
                 sync_private_events, sync_unmatched_events, commencement_ms, inbound_years, outbound_months)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (org_id, tenant_scope) DO UPDATE SET direction = excluded.direction,
                 sync_internal_events = excluded.sync_internal_events, delete_from_microsoft = excluded.delete_from_microsoft,
                 delete_from_crm = excluded.delete_from_crm, sync_private_events = excluded.sync_private_events,
                 sync_unmatched_events = excluded.sync_unmatched_events, commencement_ms = excluded.commencement_ms,
                 inbound_years = excluded.inbound_years, outbound_months = excluded.outbound_months",
        )
        .bind(org_id)
        .bind(tenant_id.unwrap_or(0))
        .bind(s.direction.as_str())
        .bind(s.sync_internal_events as i64)
        .bind(s.delete_from_microsoft as i64)
        .bind(s.delete_from_crm as i64)
        .bind(s.sync_private_events as i64)
        .bind(s.sync_unmatched_events as i64)
        .bind(s.commencement_ms)
        .bind(s.inbound_years)
        .bind(s.outbound_months)
        .execute(self.pool())
        .await?;
        for (t, old) in tenants.into_iter().zip(before) {
            let effective = self.calendar_settings(org_id, t).await?;
            // C3 applies to the events already stored, not only to those matched from now on.
            self.apply_unmatched_events_setting(t, effective.sync_unmatched_events)
                .await?;
            let earlier = match (effective.commencement_ms, old.commencement_ms) {
                (Some(new), Some(old)) => new < old,
                // A date set where the tenant's applied, or cleared: the window may have
                // moved either way; one full round settles it.
                (a, b) => a != b,
            };
            if earlier || effective.inbound_years > old.inbound_years {
                self.rewind_cursors(t, false, true).await?;
            }
        }
        Ok(())
    }

    /// Brings a tenant's stored events in line with its "Sync Unmatched Events" setting (C3):
    /// on, the events from Microsoft kept out for matching no CRM record are shown at once;
    /// off, every shown event from Microsoft is queued for the matching job, which keeps out
    /// those that match nothing. Without this, a setting turned on would leave the events
    /// already kept out hidden until each happened to be matched again.
    pub async fn apply_unmatched_events_setting(
        &self,
        tenant_id: i64,
        sync_unmatched: bool,
    ) -> Result<(), StoreError> {
        if sync_unmatched {
            sqlx::query(
                "UPDATE events SET unmatched = 0 WHERE tenant_id = $1 AND origin = 'microsoft' AND unmatched = 1",
            )
            .bind(tenant_id)
            .execute(self.pool())
            .await?;
        } else {
            let ids: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM events WHERE tenant_id = $1 AND origin = 'microsoft' AND unmatched = 0",
            )
            .bind(tenant_id)
            .fetch_all(self.pool())
            .await?;
            self.queue_for_matching(tenant_id, crate::matching::ActivityKind::Event, &ids)
                .await?;
        }
        Ok(())
    }

    /// The CRM user a mailbox belongs to, with their calendar switches (C2).
    pub async fn calendar_user(&self, user_id: i64) -> Result<CalendarUser, StoreError> {
        let r = sqlx::query(
            "SELECT id, email, sync_events, primary_mailbox_id FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no CRM user {user_id}")))?;
        Ok(CalendarUser {
            user_id: r.try_get("id")?,
            email: r.try_get("email")?,
            sync_events: r.try_get::<i64, _>("sync_events")? != 0,
            primary_mailbox_id: r.try_get("primary_mailbox_id")?,
        })
    }

    /// Turns a user's Sync Events switch on or off (C2).
    pub async fn set_sync_events(&self, user_id: i64, on: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET sync_events = $1 WHERE id = $2")
            .bind(on as i64)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
