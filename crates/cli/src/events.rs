//! `m365sync events ...`: CRM events (add, update, remove, list, deactivate), the calendar
//! settings of an org or tenant (C1, C3, C4), a user's Sync Events switch (C2), and the
//! calendar benchmark. Every edit answers where its change stands towards Microsoft, in the
//! words of [`m365sync::outbound::status::PushState`].

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use m365sync::outbound::edits::{add_event, remove_event, update_event, EventChange, NewEvent};
use m365sync::outbound::status::{external_id, push_state, push_states, record_view};
use m365sync_store::events::{CalendarSettings, Direction};

use super::admin::open;

fn on_off(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        other => Err(format!("'{other}': use on or off")),
    }
}

/// `m365sync events ...`
#[derive(Subcommand)]
pub enum EventsCommand {
    /// Create a CRM event in a user's calendar. When the tenant's direction pushes to
    /// Microsoft, it is queued for the user's primary mailbox (past and imported events never
    /// go); it waits while the user's Sync Events is off or while it is beyond the outbound
    /// range, and the answer says so.
    Add {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// The CRM user's email.
        #[arg(long)]
        user: String,
        /// The event's title (required).
        #[arg(long)]
        subject: String,
        /// RFC 3339 (2027-03-14T09:00:00Z), or a date with --all-day.
        #[arg(long)]
        start: String,
        /// The end, in the same form as --start; not before the start (with --all-day, the day
        /// after the last).
        #[arg(long)]
        end: String,
        /// An all-day event: --start and --end are dates (YYYY-MM-DD), the end exclusive.
        #[arg(long)]
        all_day: bool,
        /// The body text (default: empty).
        #[arg(long, default_value = "")]
        description: String,
        /// Where it takes place, as free text (default: empty).
        #[arg(long, default_value = "")]
        location: String,
        /// A required attendee (ADDRESS or 'Name <ADDRESS>'); repeat for more.
        #[arg(long = "attendee")]
        attendees: Vec<String>,
        /// An optional attendee; repeat for more.
        #[arg(long = "optional")]
        optional: Vec<String>,
        /// Mark the event private, so others see only busy time.
        #[arg(long)]
        private: bool,
        /// Imported from elsewhere: stored in the CRM, never pushed to Microsoft.
        #[arg(long)]
        imported: bool,
        /// Give Microsoft the attendees, which emails them invitations (without it, the
        /// attendees are not sent to Microsoft).
        #[arg(long)]
        send_invitations: bool,
        /// The reminder's date and time (RFC 3339), before the start; none if left out.
        #[arg(long)]
        reminder_at: Option<String>,
        /// Show Time As: busy (the default), out_of_office or free.
        #[arg(long)]
        show_as: Option<String>,
    },
    /// Change a CRM event; only the options given change, and only they are pushed.
    Update {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// The event's id (`events list`).
        id: i64,
        /// A new title.
        #[arg(long)]
        subject: Option<String>,
        /// A new start: RFC 3339, or a date (YYYY-MM-DD) for an all-day event.
        #[arg(long)]
        start: Option<String>,
        /// A new end, in the same form as --start.
        #[arg(long)]
        end: Option<String>,
        /// A new body text.
        #[arg(long)]
        description: Option<String>,
        /// A new location (free text).
        #[arg(long)]
        location: Option<String>,
        /// The required attendees, replacing the current ones; repeat for more.
        #[arg(long = "attendee")]
        attendees: Option<Vec<String>>,
        /// The optional attendees, replacing the current ones.
        #[arg(long = "optional")]
        optional: Option<Vec<String>>,
        /// Mark the event private or not: on or off.
        #[arg(long, value_parser = on_off)]
        private: Option<bool>,
        /// Send invitations to the attendees (on pushes the attendees to Microsoft, which emails
        /// them): on or off.
        #[arg(long, value_parser = on_off)]
        send_invitations: Option<bool>,
        /// A new reminder date and time (RFC 3339). Moving the start without it keeps the
        /// reminder as long before the start as it was.
        #[arg(long, conflicts_with = "no_reminder")]
        reminder_at: Option<String>,
        /// Turn the reminder off.
        #[arg(long)]
        no_reminder: bool,
        /// Show Time As: busy, out_of_office or free.
        #[arg(long)]
        show_as: Option<String>,
    },
    /// Delete a CRM event (deleted in Microsoft too when deletes from the CRM are on at the
    /// time of the delete; turning the setting on later does not send it).
    Remove {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// The event's id (`events list`).
        id: i64,
    },
    /// A tenant's events (of one user with --user), by start, with each one's External ID and
    /// where its CRM change stands towards Microsoft (sent, queued, waiting and for what, not
    /// sent and why).
    List {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// Only this CRM user's events (their email address).
        #[arg(long)]
        user: Option<String>,
        /// Include deleted events.
        #[arg(long)]
        deleted: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Mark synced events that ended before DATE Inactive: they leave the scheduled sync.
    Deactivate {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// YYYY-MM-DD (UTC midnight) or RFC 3339.
        #[arg(long)]
        before: String,
    },
    /// Show, or change, the calendar settings of an org (default of its tenants) or of one
    /// tenant. With no change option, prints the settings in force.
    Settings {
        /// The org (the firm), as declared with `m365sync apply` or `tenant add`; without --tenant,
        /// its settings are the default of its tenants.
        #[arg(long)]
        org: String,
        /// Show or change this tenant's settings instead of the org's default.
        #[arg(long)]
        tenant: Option<String>,
        /// to_crm (default), to_microsoft or two_way.
        #[arg(long)]
        direction: Option<String>,
        /// Sync events whose attendees are all CRM users or internal addresses: on or off (default
        /// off).
        #[arg(long, value_parser = on_off)]
        sync_internal: Option<bool>,
        /// Delete CRM events deleted (or cancelled) in Microsoft: on (the default) or off.
        #[arg(long, value_parser = on_off)]
        delete_from_microsoft: Option<bool>,
        /// Delete Microsoft events deleted in the CRM: on or off (default off).
        #[arg(long, value_parser = on_off)]
        delete_from_crm: Option<bool>,
        /// Sync private events (without their attendees): on (the default) or off.
        #[arg(long, value_parser = on_off)]
        sync_private: Option<bool>,
        /// Keep events matched to no CRM contact visible: on or off (default off: the matching
        /// job hides them).
        #[arg(long, value_parser = on_off)]
        sync_unmatched: Option<bool>,
        /// YYYY-MM-DD: the oldest event pulled (default: six months before the first sync).
        #[arg(long)]
        commencement: Option<String>,
        /// How many years ahead Microsoft's events are pulled (0 to 50, default 10).
        #[arg(long)]
        inbound_years: Option<i64>,
        /// How many months ahead CRM events are pushed to Microsoft (0 to 600, default 24).
        #[arg(long)]
        outbound_months: Option<i64>,
    },
    /// Turn a CRM user's Sync Events switch on or off: off, their calendar is not synced and
    /// their CRM changes wait in the outbox; on, the next sync sends them.
    SyncEvents {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// The CRM user's email.
        #[arg(long)]
        user: String,
        /// on or off.
        #[arg(value_parser = on_off, action = clap::ArgAction::Set)]
        on: bool,
    },
}

fn day_or_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    Ok(chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("'{text}': use YYYY-MM-DD or RFC 3339"))?
        .timestamp_millis())
}

/// Says where an edit's change stands towards Microsoft (sent, queued, waiting and for what,
/// or not sent and why); when it is queued, makes the tenant's run due now, so a running
/// service sends it within a scheduler tick instead of at the tenant's cadence.
async fn push_soon(
    store: &m365sync_store::Store,
    tenant: &m365sync_store::tenants::Tenant,
    event_id: i64,
) -> anyhow::Result<()> {
    let ev = store.event(event_id).await?;
    let state = push_state(store, &ev).await?;
    if state.is_queued() {
        store.request_run(tenant.id).await?;
        println!(
            "{state}: a running service sends it at its next tick (without one: `m365sync sync run --org {} --tenant {}`)",
            tenant.org, tenant.name
        );
    } else {
        println!("{state}");
    }
    Ok(())
}

/// After a change that may let waiting outbox rows go (Sync Events on, a wider outbound range,
/// a direction that pushes), makes the runs of the tenants holding rows due now and says so.
async fn release_waiting(
    store: &m365sync_store::Store,
    tenants: &[m365sync_store::tenants::Tenant],
) -> anyhow::Result<()> {
    for t in tenants {
        let n = store.outbox_len(t.id).await?;
        if n > 0 {
            store.request_run(t.id).await?;
            println!(
                "tenant {}: {n} change(s) in the outbox are examined again at the next sync (`m365sync events list --org {} --tenant {}` shows each one's state)",
                t.name, t.org, t.name
            );
        }
    }
    Ok(())
}

/// Runs `m365sync events ...`.
pub async fn run(config: Option<&Path>, cmd: EventsCommand) -> anyhow::Result<()> {
    let store = open(config).await?;
    match cmd {
        EventsCommand::Add {
            org,
            tenant,
            user,
            subject,
            start,
            end,
            all_day,
            description,
            location,
            attendees,
            optional,
            private,
            imported,
            send_invitations,
            reminder_at,
            show_as,
        } => {
            let t = store.tenant(&org, &tenant).await?;
            let id = add_event(
                &store,
                &t,
                &user,
                &NewEvent {
                    subject,
                    description,
                    start,
                    end,
                    all_day,
                    location,
                    required: attendees,
                    optional,
                    private,
                    imported,
                    send_invitations,
                    reminder_at,
                    show_as,
                },
            )
            .await?;
            println!("event {id} created");
            push_soon(&store, &t, id).await?;
        }
        EventsCommand::Update {
            org,
            tenant,
            id,
            subject,
            start,
            end,
            description,
            location,
            attendees,
            optional,
            private,
            send_invitations,
            reminder_at,
            no_reminder,
            show_as,
        } => {
            let t = store.tenant(&org, &tenant).await?;
            let reminder_at = match (reminder_at, no_reminder) {
                (_, true) => Some(None),
                (Some(at), false) => Some(Some(at)),
                (None, false) => None,
            };
            let ev = update_event(
                &store,
                &t,
                id,
                &EventChange {
                    subject,
                    description,
                    start,
                    end,
                    location,
                    required: attendees,
                    optional,
                    private,
                    send_invitations,
                    reminder_at,
                    show_as,
                },
            )
            .await?;
            println!("event {} updated (version {})", ev.id, ev.crm_version);
            push_soon(&store, &t, ev.id).await?;
        }
        EventsCommand::Remove { org, tenant, id } => {
            let t = store.tenant(&org, &tenant).await?;
            remove_event(&store, &t, id).await?;
            println!("event {id} deleted");
            push_soon(&store, &t, id).await?;
        }
        EventsCommand::List {
            org,
            tenant,
            user,
            deleted,
            json,
        } => {
            let t = store.tenant(&org, &tenant).await?;
            let user_id = match &user {
                Some(u) => Some(store.user_id(t.id, &u.to_ascii_lowercase()).await?.with_context(
                    || format!("tenant {tenant}: no CRM user '{u}'; `m365sync user list` shows them"),
                )?),
                None => None,
            };
            let events = store.events(t.id, user_id, deleted).await?;
            let states = push_states(&store, &t, &events).await?;
            if json {
                let items: Vec<serde_json::Value> = events
                    .iter()
                    .zip(&states)
                    .map(|(e, state)| {
                        let mut v = serde_json::to_value(e).unwrap_or_default();
                        v["record"] = record_view(e);
                        v["external_id"] = external_id(e).into();
                        v["push"] = serde_json::json!({
                            "state": state.word(),
                            "message": state.to_string(),
                        });
                        v
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                println!(
                    "{:>6}  {:<20}  {:<8}  {:<9}  {:<9}  {:<40}  {:<32}  push",
                    "id", "start (UTC)", "origin", "status", "kind", "subject", "external id"
                );
                for (e, state) in events.into_iter().zip(states) {
                    let start = match &e.start_date {
                        Some(d) => format!("{d} (all day)"),
                        None => chrono::DateTime::from_timestamp_millis(e.start_ms)
                            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                            .unwrap_or_default(),
                    };
                    let subject =
                        format!("{}{}", e.subject, if e.deleted { " (deleted)" } else { "" });
                    println!(
                        "{:>6}  {:<20}  {:<8}  {:<9}  {:<9}  {:<40}  {:<32}  {}",
                        e.id,
                        start,
                        e.origin,
                        e.sync_status,
                        e.kind,
                        subject,
                        external_id(&e).unwrap_or_else(|| "-".into()),
                        state
                    );
                }
            }
        }
        EventsCommand::Deactivate {
            org,
            tenant,
            before,
        } => {
            let t = store.tenant(&org, &tenant).await?;
            let n = store
                .deactivate_events_before(t.id, day_or_time(&before)?)
                .await?;
            println!("{n} event(s) that ended before {before} are now Inactive");
        }
        EventsCommand::Settings {
            org,
            tenant,
            direction,
            sync_internal,
            delete_from_microsoft,
            delete_from_crm,
            sync_private,
            sync_unmatched,
            commencement,
            inbound_years,
            outbound_months,
        } => {
            let org_id = store.org_id(&org).await?;
            let tenant_id = match &tenant {
                Some(t) => Some(store.tenant(&org, t).await?.id),
                None => None,
            };
            let changes = direction.is_some()
                || sync_internal.is_some()
                || delete_from_microsoft.is_some()
                || delete_from_crm.is_some()
                || sync_private.is_some()
                || sync_unmatched.is_some()
                || commencement.is_some()
                || inbound_years.is_some()
                || outbound_months.is_some();
            let current = match tenant_id {
                Some(t) => store.calendar_settings(org_id, t).await?,
                None => store
                    .calendar_settings_at(org_id, None)
                    .await?
                    .unwrap_or_default(),
            };
            if !changes {
                println!("{}", serde_json::to_string_pretty(&current)?);
                return Ok(());
            }
            let mut s: CalendarSettings = current;
            if let Some(d) = direction {
                s.direction = Direction::parse(&d).map_err(anyhow::Error::msg)?;
            }
            s.sync_internal_events = sync_internal.unwrap_or(s.sync_internal_events);
            s.delete_from_microsoft = delete_from_microsoft.unwrap_or(s.delete_from_microsoft);
            s.delete_from_crm = delete_from_crm.unwrap_or(s.delete_from_crm);
            s.sync_private_events = sync_private.unwrap_or(s.sync_private_events);
            s.sync_unmatched_events = sync_unmatched.unwrap_or(s.sync_unmatched_events);
            if let Some(c) = commencement {
                s.commencement_ms = Some(day_or_time(&c)?);
            }
            s.inbound_years = inbound_years.unwrap_or(s.inbound_years);
            s.outbound_months = outbound_months.unwrap_or(s.outbound_months);
            store.set_calendar_settings(org_id, tenant_id, &s).await?;
            if let Some(w) = m365sync::outbound::invitation_warning(s.direction) {
                eprintln!("warning: {w} (`events add --send-invitations`)");
            }
            println!("{}", serde_json::to_string_pretty(&s)?);
            let tenants = match &tenant {
                Some(name) => vec![store.tenant(&org, name).await?],
                None => store.tenants(Some(&org)).await?,
            };
            release_waiting(&store, &tenants).await?;
        }
        EventsCommand::SyncEvents {
            org,
            tenant,
            user,
            on,
        } => {
            let t = store.tenant(&org, &tenant).await?;
            let user_id = store
                .user_id(t.id, &user.to_ascii_lowercase())
                .await?
                .with_context(|| format!("tenant {tenant}: no CRM user '{user}'"))?;
            store.set_sync_events(user_id, on).await?;
            println!("{user}: Sync Events {}", if on { "on" } else { "off" });
            let waiting = store.outbox_len_for_user(user_id).await?;
            if on && waiting > 0 {
                store.request_run(t.id).await?;
                println!(
                    "{waiting} change(s) of {user}'s events waited for Sync Events: a running service sends them at its next tick (without one: `m365sync sync run --org {org} --tenant {tenant}`)"
                );
            } else if waiting > 0 {
                println!(
                    "{waiting} change(s) of {user}'s events wait in the outbox until Sync Events is on again"
                );
            }
        }
    }
    Ok(())
}
