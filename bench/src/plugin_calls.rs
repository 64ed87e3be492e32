//! The measurements behind BENCHMARKS.md (`m365sync plugin bench`): load time with a cold and
//! a warm artifact cache, the cost of a fresh Store plus instance, and the per-record cost of
//! each default plugin in batches of 100 on synthetic records.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use m365sync_plugin::bindings::types::*;
use m365sync_plugin::builtin::BUILTINS;
use m365sync_plugin::call::{CallContext, Plugin};
use m365sync_plugin::engine::{EngineConfig, PluginEngine};
use m365sync_plugin::host::{RuleDef, TenantData};
use m365sync_plugin::{Kind, PluginError};

/// Figures of one default plugin.
#[derive(Debug, Serialize)]
pub struct PluginFigures {
    /// The plugin's name: a default plugin's crate name, or the name given with an extra one.
    pub plugin: String,
    /// The contract version it speaks (`0.1`: whole records; `0.2`: what it declared).
    pub contract: String,
    /// Size of the component, bytes.
    pub component_bytes: usize,
    /// Compile + check + link + describe, no cache.
    pub cold_load_ms: f64,
    /// The same with the artifact in the cache.
    pub warm_load_ms: f64,
    /// A fresh Store and instance, created and dropped.
    pub fresh_instance_us: f64,
    /// Per record in batches of 100, the batch's fresh instance included.
    pub per_record_us: f64,
    /// The same without the instance's share.
    pub per_record_call_only_us: f64,
    /// Records per batch.
    pub batch: usize,
    /// Batches timed; the per-record figures come from their median.
    pub batches: usize,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let t = f();
    (t, started.elapsed())
}

/// A tenant with rules at every level, internal domains, 1,000 contacts and two sync users.
pub fn synthetic_tenant() -> TenantData {
    let rule = |id: &str, level, effect, target, pattern: &str, user: Option<&str>| RuleDef {
        rule: Rule {
            id: id.into(),
            level,
            effect,
            target,
            pattern: pattern.into(),
        },
        user: user.map(Into::into),
    };
    let contacts = (0..1000)
        .map(|i| Contact {
            id: format!("c{i}"),
            name: format!("Client {i}"),
            entity: Some(format!("h{}", i / 4)),
            email: Some(format!("client{i}@clients.example")),
            alternate_email: Some(format!("client{i}@home.example")),
            contact_points: vec![format!("c{i}@work.example")],
        })
        .collect();
    TenantData {
        org: "org".into(),
        tenant: "t1".into(),
        internal_domains: vec!["firm.com".into()],
        rules: vec![
            rule(
                "o1",
                Level::Org,
                Effect::Exclude,
                RuleTarget::AnyAddress,
                "*@salesforce.com",
                None,
            ),
            rule(
                "o2",
                Level::Org,
                Effect::Exclude,
                RuleTarget::Subject,
                "newsletter",
                None,
            ),
            rule(
                "o3",
                Level::Org,
                Effect::Exclude,
                RuleTarget::Sender,
                "noreply@*",
                None,
            ),
            rule(
                "t1",
                Level::Tenant,
                Effect::Exclude,
                RuleTarget::AnyAddress,
                "marketing.example",
                None,
            ),
            rule(
                "t2",
                Level::Tenant,
                Effect::Include,
                RuleTarget::AnyAddress,
                "ceo@salesforce.com",
                None,
            ),
            rule(
                "u1",
                Level::User,
                Effect::Include,
                RuleTarget::Subject,
                "newsletter from client",
                Some("alice"),
            ),
            rule(
                "u2",
                Level::User,
                Effect::Exclude,
                RuleTarget::Recipient,
                "*@private.example",
                Some("alice"),
            ),
        ],
        contacts,
        entities: Vec::new(),
        sync_users: vec!["alice@firm.com".into(), "bob@firm.com".into()],
    }
}

fn addr(role: AddressRole, email: String) -> Address {
    Address {
        role,
        email,
        name: String::new(),
    }
}

/// A received email from a client to a sync user, with a cc and a short HTML body.
pub fn synthetic_email(i: usize) -> Email {
    Email {
        id: format!("AAMk{i:08}"),
        mailbox: "alice@firm.com".into(),
        user: Some("alice".into()),
        folder: "Inbox".into(),
        direction: Direction::Received,
        addresses: vec![
            addr(AddressRole::From, format!("client{}@clients.example", i % 1000)),
            addr(AddressRole::To, "alice@firm.com".into()),
            addr(AddressRole::Cc, format!("client{}@home.example", (i + 7) % 1000)),
            addr(AddressRole::Cc, "bob@firm.com".into()),
        ],
        subject: format!("Portfolio review {i}"),
        body: Body {
            content_type: BodyType::Html,
            content: format!("<html><body><p>Hi Alice,</p><p>About the review&nbsp;{i}: see the <b>attached</b> figures.</p><p>Best,<br>Client</p></body></html>"),
            truncated: false,
        },
        preview: "Hi Alice, About the review".into(),
        sent: Some("2026-11-20T09:00:00Z".into()),
        received: Some("2026-11-20T09:00:02Z".into()),
        categories: Vec::new(),
        importance: Importance::Normal,
        headers: Vec::new(),
        attachments: vec![AttachmentInfo {
            name: "figures.pdf".into(),
            content_type: "application/pdf".into(),
            size: 120_000,
            is_inline: false,
        }],
        internet_message_id: Some(format!("<{i}@clients.example>")),
        conversation_id: Some(format!("conv{}", i / 3)),
        is_draft: false,
    }
}

/// A one-hour Teams meeting with three attendees and a reminder.
pub fn synthetic_event(i: usize) -> Event {
    let attendee = |email: String, response| Attendee {
        email,
        name: String::new(),
        kind: AttendeeKind::Required,
        response,
    };
    Event {
        id: format!("AAMkEv{i:08}"),
        mailbox: "alice@firm.com".into(),
        user: Some("alice".into()),
        subject: format!("Review {i}"),
        body: Body {
            content_type: BodyType::Html,
            content: "<html><body><p>Agenda:</p><ul><li>figures</li><li>next steps</li></ul></body></html>".into(),
            truncated: false,
        },
        is_all_day: false,
        start: "2026-11-24T10:00:00Z".into(),
        end: "2026-11-24T11:00:00Z".into(),
        organizer: Some(addr(AddressRole::From, "alice@firm.com".into())),
        attendees: vec![
            attendee(format!("client{}@clients.example", i % 1000), Response::Accepted),
            attendee("bob@firm.com".into(), Response::TentativelyAccepted),
            attendee(format!("client{}@home.example", (i + 3) % 1000), Response::None),
        ],
        location: "Room 1".into(),
        locations: vec![Location {
            display_name: "Room 1".into(),
            email: Some("room1@firm.com".into()),
            location_type: "conferenceRoom".into(),
        }],
        recurrence: None,
        sensitivity: Sensitivity::Normal,
        reminder_minutes_before_start: Some(15),
        show_as: ShowAs::Busy,
        response_status: Response::Organizer,
        is_online_meeting: true,
        online_meeting_provider: Some("teamsForBusiness".into()),
        online_meeting_url: Some("https://teams.example/join/1".into()),
        categories: Vec::new(),
        is_cancelled: false,
        is_draft: false,
    }
}

/// The synthetic batches every plugin is measured on.
struct Inputs {
    ctx: CallContext,
    emails: Vec<Email>,
    events: Vec<Event>,
    matches: Vec<MatchInput>,
}

/// Measures every default plugin, then each of `extra` (a name, kind and component bytes, e.g.
/// a firm's plugin or a test component). `cache_dir` is emptied first (a cold load compiles).
pub fn run(
    cache_dir: &Path,
    batches: usize,
    extra: &[(String, Kind, Vec<u8>)],
) -> Result<Vec<PluginFigures>, PluginError> {
    let _ = std::fs::remove_dir_all(cache_dir);
    let cold_engine = PluginEngine::new(EngineConfig::default())?;
    let warm_engine = PluginEngine::new(EngineConfig {
        cache_dir: Some(cache_dir.to_path_buf()),
        ..EngineConfig::default()
    })?;
    let batch = 100;
    let emails: Vec<Email> = (0..batch).map(synthetic_email).collect();
    let inputs = Inputs {
        ctx: CallContext::new(synthetic_tenant(), BTreeMap::new()),
        events: (0..batch).map(synthetic_event).collect(),
        matches: emails
            .iter()
            .map(|e| MatchInput {
                record_id: e.id.clone(),
                user: e.user.clone(),
                addresses: e.addresses.clone(),
                conversation_id: e.conversation_id.clone(),
                thread_matches: Vec::new(),
            })
            .collect(),
        emails,
    };
    let mut figures = Vec::new();
    for b in &BUILTINS {
        figures.push(measure(
            &cold_engine,
            &warm_engine,
            b.name,
            b.kind,
            b.wasm,
            &inputs,
            batches,
        )?);
    }
    for (name, kind, wasm) in extra {
        figures.push(measure(
            &cold_engine,
            &warm_engine,
            name,
            *kind,
            wasm,
            &inputs,
            batches,
        )?);
    }
    Ok(figures)
}

fn measure(
    cold_engine: &PluginEngine,
    warm_engine: &PluginEngine,
    name: &str,
    kind: Kind,
    wasm: &[u8],
    inputs: &Inputs,
    batches: usize,
) -> Result<PluginFigures, PluginError> {
    let ctx = &inputs.ctx;
    let batch = inputs.emails.len();
    let cold = (0..3)
        .map(|_| time(|| Plugin::load(cold_engine, kind, wasm)))
        .map(|(p, t)| p.map(|_| t))
        .collect::<Result<Vec<_>, _>>()?;
    // Populate the cache, then measure loads that find it.
    Plugin::load(warm_engine, kind, wasm)?;
    let warm = (0..5)
        .map(|_| time(|| Plugin::load(warm_engine, kind, wasm)))
        .map(|(p, t)| p.map(|_| t))
        .collect::<Result<Vec<_>, _>>()?;
    let plugin = Plugin::load(warm_engine, kind, wasm)?;

    for _ in 0..200 {
        let _ = plugin.instantiate_only(ctx);
    }
    let n = 2000;
    let (_, inst) = time(|| {
        for _ in 0..n {
            let _ = plugin.instantiate_only(ctx);
        }
    });
    let instance = inst / n;

    let one_batch = || match kind {
        Kind::Exclusion => plugin
            .exclude_emails(ctx, &inputs.emails)
            .results
            .iter()
            .all(Result::is_ok),
        Kind::Mapping => {
            plugin
                .map_emails(ctx, &inputs.emails)
                .results
                .iter()
                .all(Result::is_ok)
                && plugin
                    .map_events(ctx, &inputs.events)
                    .results
                    .iter()
                    .all(Result::is_ok)
        }
        Kind::Matching => plugin
            .match_records(ctx, &inputs.matches)
            .results
            .iter()
            .all(Result::is_ok),
    };
    // Mapping runs an email batch and an event batch per round.
    let (records_per_round, instances_per_round) = if kind == Kind::Mapping {
        (2 * batch, 2)
    } else {
        (batch, 1)
    };
    if !one_batch() {
        return Err(PluginError::Describe(format!(
            "{name} fails on the synthetic records"
        )));
    }
    for _ in 0..batches / 10 {
        one_batch();
    }
    let rounds: Vec<Duration> = (0..batches).map(|_| time(one_batch).1).collect();
    let round = median(rounds);
    let per_record = round.as_secs_f64() * 1e6 / records_per_round as f64;
    let call_only = (round.as_secs_f64() - instance.as_secs_f64() * instances_per_round as f64)
        * 1e6
        / records_per_round as f64;
    Ok(PluginFigures {
        plugin: name.to_string(),
        contract: plugin.contract().to_string(),
        component_bytes: wasm.len(),
        cold_load_ms: median(cold).as_secs_f64() * 1e3,
        warm_load_ms: median(warm).as_secs_f64() * 1e3,
        fresh_instance_us: instance.as_secs_f64() * 1e6,
        per_record_us: per_record,
        per_record_call_only_us: call_only,
        batch,
        batches,
    })
}
