//! Matching end to end (E8, E9): mail delivered into the simulator, synced through the default
//! plugins, then linked to contacts by the default matching plugin, on SQLite and PostgreSQL.
//! Each address field matches; a sync user's address never does; a reply inherits its thread;
//! a contact change re-matches only the emails carrying its addresses; the review list's mass
//! action maps emails and teaches the contact a new address; scopes hold.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use m365sync::matching::job::run_org_waiting;
use m365sync::matching::MatchReport;
use m365sync::sync::run::run_tenant;
use m365sync_sim::generate::GenerateOptions;
use m365sync_store::crm::ContactInput;
use m365sync_store::mailboxes::{MailboxKind, NewMailbox};
use m365sync_store::review::{ReviewFilter, ReviewItem, ReviewScope};
use m365sync_store::tenants::{Tenant, TenantSettings};
use m365sync_store::{Store, StoreError};
use reqwest::Method;
use serde_json::json;
use sqlx::Row;

use crate::support::{TestDb, TestSim};
use crate::sync_email::{declare_with, env};

/// A simulator with two people and no generated mail: every message is one the test sends.
pub async fn quiet_sim() -> TestSim {
    TestSim::start(GenerateOptions {
        users: 2,
        shared: 0,
        messages: 0,
        events: 0,
        ..GenerateOptions::default()
    })
    .await
}

/// The simulator's two people, in order.
pub fn people(s: &TestSim) -> (String, String) {
    let mbs = s.truth()["tenants"][0]["mailboxes"]
        .as_array()
        .unwrap()
        .clone();
    let upn = |i: usize| mbs[i]["upn"].as_str().unwrap().to_string();
    (upn(0), upn(1))
}

/// Delivers one message; returns its subject for finding it in the store.
pub async fn deliver(s: &TestSim, from: &str, to: &str, subject: &str, conversation: &str) {
    s.ctl(
        Method::POST,
        "deliver",
        json!({"from": from, "to": [to], "subject": subject, "conversation_id": conversation}),
    )
    .await;
}

/// Adds a contact through the store's CRM API (which queues its addresses for a re-match).
pub async fn add_contact(
    db: &TestDb,
    org_id: i64,
    name: &str,
    email: Option<&str>,
    alt: Option<&str>,
    points: &[&str],
) -> i64 {
    db.store
        .create_contact(
            org_id,
            &ContactInput {
                name: name.into(),
                email: email.map(str::to_string),
                alt_email: alt.map(str::to_string),
                contact_points: points.iter().map(|p| p.to_string()).collect(),
                ..ContactInput::default()
            },
        )
        .await
        .unwrap()
        .id
}

/// Stored email ids by subject.
pub async fn emails_by_subject(db: &TestDb, tenant_id: i64) -> BTreeMap<String, i64> {
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let rows = sqlx::query("SELECT id, subject FROM emails WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| (r.try_get("subject").unwrap(), r.try_get("id").unwrap()))
        .collect()
}

/// Every stored link: (email id, contact id) -> (field, source, at_ms).
async fn links(db: &TestDb) -> BTreeMap<(i64, i64), (String, String, i64)> {
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let rows = sqlx::query(
        "SELECT record_id, contact_id, field, source, at_ms FROM activity_matches WHERE kind = 'email'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| {
            (
                (
                    r.try_get("record_id").unwrap(),
                    r.try_get("contact_id").unwrap(),
                ),
                (
                    r.try_get("field").unwrap(),
                    r.try_get("source").unwrap(),
                    r.try_get("at_ms").unwrap(),
                ),
            )
        })
        .collect()
}

async fn match_now(store: &Store, org: &str) -> MatchReport {
    run_org_waiting(&env(store), org, "test", Duration::from_secs(30))
        .await
        .unwrap()
}

/// The scenario every matching test starts from: mail delivered and synced, contacts made.
pub struct World {
    /// Held so the simulator lives as long as the scenario.
    #[allow(dead_code)]
    pub s: TestSim,
    pub tenant: Tenant,
    pub alice: String,
    pub bob: String,
    pub pat: i64,
    pub sam: i64,
    pub wrong: i64,
    pub email: BTreeMap<String, i64>,
}

/// The simulator's tenant declared with `settings` and its delivered mail synced once.
async fn declared_and_synced(db: &TestDb, s: &TestSim, settings: &TenantSettings) -> Tenant {
    let (tenant, _) = declare_with(&db.store, s, settings).await;
    let report = run_tenant(&env(&db.store), &tenant, None, "manual")
        .await
        .unwrap();
    assert!(
        report.mailbox_errors.is_empty(),
        "{:?}",
        report.mailbox_errors
    );
    tenant
}

pub async fn world(db: &TestDb) -> World {
    let s = quiet_sim().await;
    let (alice, bob) = people(&s);
    deliver(&s, "pat@client.example", &alice, "m1 from Pat", "conv-1").await;
    deliver(
        &s,
        "assistant@client.example",
        &alice,
        "m2 reply in Pat's thread",
        "conv-1",
    )
    .await;
    deliver(
        &s,
        "pat.home@mail.example",
        &alice,
        "m3 from Pat at home",
        "conv-3",
    )
    .await;
    deliver(
        &s,
        "sam.work@corp.example",
        &bob,
        "m4 from Sam at work",
        "conv-4",
    )
    .await;
    deliver(&s, &bob, &alice, "m5 between colleagues", "conv-5").await;
    for i in 0..3 {
        deliver(
            &s,
            "stranger@nowhere.example",
            &alice,
            &format!("m6-{i} from a stranger"),
            &format!("conv-6-{i}"),
        )
        .await;
    }
    deliver(
        &s,
        "newcomer@prospect.example",
        &bob,
        "m7 from a newcomer",
        "conv-7",
    )
    .await;
    deliver(
        &s,
        "newcomer@prospect.example",
        &alice,
        "m8 from a newcomer",
        "conv-8",
    )
    .await;
    let settings = TenantSettings {
        commencement_ms: Some(0),
        folders: vec!["inbox".into(), "sentitems".into()],
        // Mail between two colleagues is kept here, so E9 can be seen at work.
        skip_internal_only: false,
        ..TenantSettings::default()
    };
    let tenant = declared_and_synced(db, &s, &settings).await;
    let org_id = tenant.org_id;
    let pat = add_contact(
        db,
        org_id,
        "Pat Client",
        Some("pat@client.example"),
        Some("pat.home@mail.example"),
        &[],
    )
    .await;
    let sam = add_contact(
        db,
        org_id,
        "Sam Client",
        None,
        None,
        &["sam.work@corp.example"],
    )
    .await;
    let wrong = add_contact(
        db,
        org_id,
        "Carries a sync user's address",
        Some(&bob),
        None,
        &[],
    )
    .await;
    let email = emails_by_subject(db, tenant.id).await;
    World {
        s,
        tenant,
        alice,
        bob,
        pat,
        sam,
        wrong,
        email,
    }
}

#[tokio::test]
async fn each_address_field_matches_a_reply_inherits_its_thread_and_sync_users_never_match() {
    for db in TestDb::both().await {
        let w = world(&db).await;
        let report = match_now(&db.store, "acme").await;
        assert_eq!(report.failed, 0, "{report:?}");
        assert_eq!(
            report.records as usize,
            w.email.len(),
            "every stored email had one pass"
        );
        let l = links(&db).await;
        let field = |subject: &str, contact: i64| {
            l.get(&(w.email[subject], contact))
                .map(|(f, s, _)| (f.as_str(), s.as_str()))
        };
        assert_eq!(field("m1 from Pat", w.pat), Some(("email", "plugin")));
        assert_eq!(
            field("m3 from Pat at home", w.pat),
            Some(("alternate-email", "plugin"))
        );
        assert_eq!(
            field("m4 from Sam at work", w.sam),
            Some(("contact-point", "plugin"))
        );
        assert_eq!(
            field("m2 reply in Pat's thread", w.pat),
            Some(("thread", "plugin")),
            "the assistant's reply lands on Pat's timeline through the thread"
        );
        assert!(
            l.keys().all(|(_, c)| *c != w.wrong),
            "a contact carrying a sync user's address matches nothing (E9)"
        );
        assert!(
            report.warnings.iter().any(|m| m.contains(&w.bob)),
            "the contact carrying {} is reported: {:?}",
            w.bob,
            report.warnings
        );
        // Alice's review list: what matched nothing in her mailbox, newest first.
        let alice = db
            .store
            .user_id(w.tenant.id, &w.alice)
            .await
            .unwrap()
            .unwrap();
        let review = db
            .store
            .review_list(
                alice,
                &ReviewFilter {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let subjects: BTreeSet<&str> = review.iter().map(|i| i.subject.as_str()).collect();
        assert_eq!(
            subjects,
            BTreeSet::from([
                "m5 between colleagues",
                "m6-0 from a stranger",
                "m6-1 from a stranger",
                "m6-2 from a stranger",
                "m8 from a newcomer"
            ])
        );
        assert!(review
            .windows(2)
            .all(|p| (p[0].sent_ms, p[0].email_id) >= (p[1].sent_ms, p[1].email_id)));
        let by_domain = db
            .store
            .review_list(
                alice,
                &ReviewFilter {
                    limit: 100,
                    sender_domain: Some("nowhere.example".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(by_domain.len(), 3);
        // A shared mailbox nominated to Alice holds copies of two of her unmatched emails, one
        // of them twice (two folders): each is listed once, in the first mailbox by address,
        // and pages of two walk the mailboxes' merged list without repeats or gaps.
        let shared = db
            .store
            .upsert_mailbox(&NewMailbox {
                tenant_id: w.tenant.id,
                graph_id: "shared-1".into(),
                address: "aaa-shared@contoso.example".into(),
                display_name: "Shared".into(),
                kind: MailboxKind::Shared,
            })
            .await
            .unwrap();
        db.store.link_mailbox(shared, alice).await.unwrap();
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        for (graph_id, subject, folder) in [
            ("c1", "m6-0 from a stranger", "inbox"),
            ("c2", "m6-0 from a stranger", "archive"),
            ("c3", "m8 from a newcomer", "inbox"),
        ] {
            sqlx::query(
                "INSERT INTO email_mailboxes (mailbox_id, graph_id, email_id, folder, removed, updated_ms, sent_ms)
                 SELECT $1, $2, id, $3, 0, 0, sent_ms FROM emails WHERE id = $4",
            )
            .bind(shared)
            .bind(graph_id)
            .bind(folder)
            .bind(w.email[subject])
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
        // (A page of one reads its mailboxes in chunks of four copies, so the matched mail
        // between the unmatched makes it read on.)
        for limit in [1, 2] {
            let (mut paged, mut before) = (Vec::new(), None);
            loop {
                let filter = ReviewFilter {
                    limit,
                    before,
                    ..Default::default()
                };
                let page = db.store.review_list(alice, &filter).await.unwrap();
                let Some(last) = page.last() else { break };
                before = Some((last.sent_ms, last.email_id));
                paged.extend(page);
            }
            let ids = |items: &[ReviewItem]| items.iter().map(|i| i.email_id).collect::<Vec<_>>();
            assert_eq!(ids(&paged), ids(&review), "{paged:?}");
            for i in &paged {
                let in_shared =
                    ["m6-0 from a stranger", "m8 from a newcomer"].contains(&i.subject.as_str());
                let first = if in_shared {
                    "aaa-shared@contoso.example"
                } else {
                    w.alice.as_str()
                };
                assert_eq!(i.mailbox, first, "{i:?}");
            }
        }
        // The timeline: Pat's activities, newest first, paged.
        let timeline = db
            .store
            .timeline(w.tenant.org_id, w.pat, None, 10)
            .await
            .unwrap();
        let ids: BTreeSet<i64> = timeline.iter().map(|t| t.record_id).collect();
        let expected: BTreeSet<i64> = [
            "m1 from Pat",
            "m2 reply in Pat's thread",
            "m3 from Pat at home",
        ]
        .iter()
        .map(|s| w.email[*s])
        .collect();
        assert_eq!(ids, expected);
        let first = db
            .store
            .timeline(w.tenant.org_id, w.pat, None, 1)
            .await
            .unwrap();
        let second = db
            .store
            .timeline(
                w.tenant.org_id,
                w.pat,
                Some((first[0].occurred_ms, first[0].record_id)),
                1,
            )
            .await
            .unwrap();
        assert_eq!(
            (first[0].record_id, second[0].record_id),
            (timeline[0].record_id, timeline[1].record_id)
        );
        // A second job finds nothing to do.
        assert_eq!(match_now(&db.store, "acme").await.records, 0);
        db.drop_db().await;
    }
}

#[tokio::test]
async fn a_new_contact_rematches_only_the_emails_carrying_its_address() {
    for db in TestDb::both().await {
        let w = world(&db).await;
        match_now(&db.store, "acme").await;
        let before = links(&db).await;
        let newcomer = add_contact(
            &db,
            w.tenant.org_id,
            "Newcomer",
            Some("newcomer@prospect.example"),
            None,
            &[],
        )
        .await;
        let report = match_now(&db.store, "acme").await;
        assert_eq!(report.changed_addresses, 1);
        assert_eq!(
            report.rematched_records, 2,
            "only m7 and m8 carry the address: {report:?}"
        );
        assert_eq!(report.records, 2);
        let after = links(&db).await;
        let touched: BTreeSet<i64> = after
            .iter()
            .filter(|(k, v)| before.get(k) != Some(v))
            .map(|((e, _), _)| *e)
            .collect();
        assert_eq!(
            touched,
            BTreeSet::from([w.email["m7 from a newcomer"], w.email["m8 from a newcomer"]])
        );
        assert_eq!(after[&(w.email["m7 from a newcomer"], newcomer)].0, "email");
        // Removing the address again (a contact edit) takes the links away, nothing else.
        let mut edited =
            ContactInput::from(&db.store.contact(w.tenant.org_id, newcomer).await.unwrap());
        edited.email = None;
        edited.alt_email = Some("newcomer.home@prospect.example".into());
        db.store
            .update_contact(w.tenant.org_id, newcomer, &edited)
            .await
            .unwrap();
        let report = match_now(&db.store, "acme").await;
        assert_eq!(report.records, 2);
        assert_eq!(links(&db).await, before);
        db.drop_db().await;
    }
}

#[tokio::test]
async fn the_mass_action_maps_emails_and_teaches_the_contact_the_address() {
    for db in TestDb::both().await {
        let w = world(&db).await;
        match_now(&db.store, "acme").await;
        let alice = db
            .store
            .user_id(w.tenant.id, &w.alice)
            .await
            .unwrap()
            .unwrap();
        let bob = db
            .store
            .user_id(w.tenant.id, &w.bob)
            .await
            .unwrap()
            .unwrap();
        let picked = [
            w.email["m6-0 from a stranger"],
            w.email["m6-1 from a stranger"],
        ];
        // Bob cannot map Alice's mail: all or nothing, and nothing.
        let refused = db
            .store
            .map_to_contact(
                ReviewScope {
                    org_id: w.tenant.org_id,
                    user_id: Some(bob),
                },
                &picked,
                w.sam,
                true,
                &w.bob,
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::NotFound(_))),
            "{refused:?}"
        );
        // Nor to another org's contact.
        let other_org = db.store.ensure_org("globex").await.unwrap();
        let foreign = add_contact(
            &db,
            other_org,
            "Globex contact",
            Some("g@globex.example"),
            None,
            &[],
        )
        .await;
        let refused = db
            .store
            .map_to_contact(
                ReviewScope {
                    org_id: w.tenant.org_id,
                    user_id: Some(alice),
                },
                &picked,
                foreign,
                false,
                &w.alice,
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::NotFound(_))),
            "{refused:?}"
        );
        assert!(links(&db).await.values().all(|(_, s, _)| s == "plugin"));

        let report = db
            .store
            .map_to_contact(
                ReviewScope {
                    org_id: w.tenant.org_id,
                    user_id: Some(alice),
                },
                &picked,
                w.sam,
                true,
                &w.alice,
            )
            .await
            .unwrap();
        assert_eq!(report.mapped, 2);
        assert_eq!(
            report.added_addresses,
            vec!["stranger@nowhere.example".to_string()]
        );
        // The job links the third stranger email by the new contact point, by itself, and
        // leaves the two manual links alone.
        let job = match_now(&db.store, "acme").await;
        assert_eq!(job.rematched_records, 3, "{job:?}");
        let l = links(&db).await;
        assert_eq!(l[&(w.email["m6-0 from a stranger"], w.sam)].1, "manual");
        assert_eq!(l[&(w.email["m6-1 from a stranger"], w.sam)].1, "manual");
        assert_eq!(
            l[&(w.email["m6-2 from a stranger"], w.sam)].0,
            "contact-point"
        );
        let review = db
            .store
            .review_list(
                alice,
                &ReviewFilter {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(
            review.iter().all(|i| !i.subject.contains("stranger")),
            "{review:?}"
        );
        // Mapping a sync user's own address to a contact is refused (E9).
        let colleague = [w.email["m5 between colleagues"]];
        let r = db
            .store
            .map_to_contact(
                ReviewScope {
                    org_id: w.tenant.org_id,
                    user_id: None,
                },
                &colleague,
                w.pat,
                true,
                "admin",
            )
            .await
            .unwrap();
        assert_eq!(r.mapped, 1);
        assert!(r.added_addresses.is_empty());
        assert_eq!(r.refused_addresses[0].0, w.bob);
        db.drop_db().await;
    }
}

#[tokio::test]
async fn events_are_matched_and_unmatched_ones_kept_out_of_the_crm_until_they_match() {
    use crate::calendar_support::{at, attendee, declare, ms_create, settings, sync};
    for db in TestDb::both().await {
        let s = quiet_sim().await;
        let (alice, _) = people(&s);
        let day = (chrono::Utc::now() + chrono::Duration::days(3)).format("%Y-%m-%d");
        let when = |h: u32| at(&format!("{day}T{h:02}:00:00"), "UTC");
        ms_create(
            &s,
            &alice,
            json!({"subject": "Review with Pat", "start": when(9), "end": when(10),
            "attendees": [attendee("pat@client.example")]}),
        )
        .await;
        ms_create(
            &s,
            &alice,
            json!({"subject": "Coffee with a stranger", "start": when(11), "end": when(12),
            "attendees": [attendee("stranger@nowhere.example")]}),
        )
        .await;
        // Sync Unmatched Events is off by default (C3).
        let cal = declare(&db, &s, &settings(|_| {})).await;
        sync(&cal).await;
        let org_id = cal.tenant.org_id;
        let pat = add_contact(
            &db,
            org_id,
            "Pat Client",
            Some("pat@client.example"),
            None,
            &[],
        )
        .await;
        let report = match_now(&db.store, "acme").await;
        assert_eq!(report.failed, 0, "{report:?}");
        let timeline = db.store.timeline(org_id, pat, None, 10).await.unwrap();
        assert_eq!(timeline.len(), 1, "{timeline:?}");
        assert_eq!(timeline[0].subject, "Review with Pat");
        assert_eq!(serde_json::to_value(timeline[0].kind).unwrap(), "event");
        let shown: Vec<String> = db
            .store
            .events(cal.tenant.id, None, false)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.subject)
            .collect();
        assert_eq!(
            shown,
            vec!["Review with Pat".to_string()],
            "the unmatched event is kept out"
        );
        let kept = db.store.events(cal.tenant.id, None, true).await.unwrap();
        assert_eq!(kept.len(), 2, "but not lost");
        // Turned on, the setting brings in the events already kept out, at once; turned off
        // again, the next matching job keeps out those that match nothing.
        let shown = |db: &TestDb| {
            let store = db.store.clone();
            let tenant = cal.tenant.id;
            async move { store.events(tenant, None, false).await.unwrap().len() }
        };
        let mut on = db
            .store
            .calendar_settings(org_id, cal.tenant.id)
            .await
            .unwrap();
        on.sync_unmatched_events = true;
        db.store
            .set_calendar_settings(org_id, Some(cal.tenant.id), &on)
            .await
            .unwrap();
        assert_eq!(
            shown(&db).await,
            2,
            "C3 on shows the stored unmatched event"
        );
        let mut off = on.clone();
        off.sync_unmatched_events = false;
        db.store
            .set_calendar_settings(org_id, Some(cal.tenant.id), &off)
            .await
            .unwrap();
        match_now(&db.store, "acme").await;
        assert_eq!(shown(&db).await, 1, "C3 off keeps it out again");
        // A contact for the stranger brings the event in, by a re-match of that event alone.
        add_contact(
            &db,
            org_id,
            "Now a client",
            Some("stranger@nowhere.example"),
            None,
            &[],
        )
        .await;
        let report = match_now(&db.store, "acme").await;
        assert_eq!(report.rematched_records, 1, "{report:?}");
        assert_eq!(
            db.store
                .events(cal.tenant.id, None, false)
                .await
                .unwrap()
                .len(),
            2
        );
        db.drop_db().await;
    }
}

/// Declares the simulator's second tenant as tenant `second` of org `acme`: its app secret and
/// every mailbox, each linked to a user of its own address.
async fn declare_second(
    store: &Store,
    s: &TestSim,
    settings: &TenantSettings,
) -> (Tenant, Vec<String>) {
    use m365sync_store::mailboxes::{MailboxKind, NewMailbox};
    use m365sync_store::tenants::{AuthMode, NewTenant, SecretKind};
    let (ms_tenant, client_id, secret) = {
        let w = s.sim.world.lock().unwrap();
        let t = &w.tenants[1];
        (
            t.id.clone(),
            t.apps[0].client_id.clone(),
            t.apps[0].secrets[0].value.clone(),
        )
    };
    let t = store
        .upsert_tenant(&NewTenant {
            org: "acme".into(),
            name: "second".into(),
            ms_tenant,
            authority: s.base.clone(),
            graph_url: s.graph.clone(),
            client_id,
            auth_mode: AuthMode::App,
        })
        .await
        .unwrap();
    store
        .put_secret(t.id, SecretKind::ClientSecret, "sim", &secret)
        .await
        .unwrap();
    store.set_settings(t.id, settings).await.unwrap();
    let mut upns = Vec::new();
    for mb in s.truth()["tenants"][1]["mailboxes"].as_array().unwrap() {
        let upn = mb["upn"].as_str().unwrap();
        let id = store
            .upsert_mailbox(&NewMailbox {
                tenant_id: t.id,
                graph_id: upn.into(),
                address: upn.into(),
                display_name: upn.into(),
                kind: MailboxKind::Person,
            })
            .await
            .unwrap();
        let user = store.upsert_user(t.id, upn, upn).await.unwrap();
        store.link_mailbox(id, user).await.unwrap();
        upns.push(upn.to_string());
    }
    (t, upns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_received_in_two_tenants_of_an_org_shows_once_on_the_timeline() {
    use crate::admin_support::Admin;
    use crate::roles::{Api, ADMIN};
    use m365sync::service::{Service, ServiceOptions};
    use m365sync::sync::stop::stop_pair;

    for db in TestDb::both().await {
        let s = TestSim::start(GenerateOptions {
            tenants: 2,
            users: 2,
            shared: 0,
            messages: 0,
            events: 0,
            ..GenerateOptions::default()
        })
        .await;
        let a = Admin::new(db).await;
        let store = &a.store;
        let (alice, _) = people(&s);
        let settings = TenantSettings {
            commencement_ms: Some(0),
            folders: vec!["inbox".into()],
            ..TenantSettings::default()
        };
        let (main, _) = declare_with(store, &s, &settings).await;
        let (second, upns) = declare_second(store, &s, &settings).await;
        let other = upns[0].clone();
        // One message to a mailbox in each tenant: the simulator delivers it to both, and each
        // tenant's sync stores it as its own email (one per tenant, one correlation key).
        s.ctl(
            Method::POST,
            "deliver",
            json!({"from": "pat@client.example", "to": [alice, other],
                   "subject": "Portfolio for both desks", "conversation_id": "conv-both"}),
        )
        .await;
        deliver(
            &s,
            "pat@client.example",
            &alice,
            "Only for main",
            "conv-main",
        )
        .await;
        for t in [&main, &second] {
            let report = run_tenant(&env(store), t, None, "manual").await.unwrap();
            assert!(report.mailbox_errors.is_empty(), "{report:?}");
        }
        let in_main = emails_by_subject(&a.db, main.id).await;
        let in_second = emails_by_subject(&a.db, second.id).await;
        let copies = [
            in_main["Portfolio for both desks"],
            in_second["Portfolio for both desks"],
        ];
        assert_ne!(copies[0], copies[1], "one email record per tenant");
        let pat = add_contact(
            &a.db,
            main.org_id,
            "Pat",
            Some("pat@client.example"),
            None,
            &[],
        )
        .await;
        let report = match_now(store, "acme").await;
        assert_eq!(report.failed, 0, "{report:?}");

        // The store's timeline (what the CLI and the API read): the message once, listing both
        // records and the mailbox of each tenant it reached.
        let items = store.timeline(main.org_id, pat, None, 50).await.unwrap();
        let subjects: Vec<&str> = items.iter().map(|i| i.subject.as_str()).collect();
        assert_eq!(
            subjects,
            vec!["Only for main", "Portfolio for both desks"],
            "{items:?}"
        );
        let both = &items[1];
        assert_eq!(both.record_id, copies[0].min(copies[1]));
        let mut records = both.records.clone();
        records.sort();
        let mut expected = copies.to_vec();
        expected.sort();
        assert_eq!(records, expected);
        let seen: Vec<(String, String)> = both
            .seen_in
            .iter()
            .map(|s| (s.tenant.clone(), s.mailbox.to_ascii_lowercase()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("main".to_string(), alice.to_ascii_lowercase()),
                ("second".to_string(), other.to_ascii_lowercase())
            ]
        );
        assert_eq!(items[0].records, vec![in_main["Only for main"]]);
        // Paging one at a time meets each activity once.
        let first = store.timeline(main.org_id, pat, None, 1).await.unwrap();
        let rest = store
            .timeline(
                main.org_id,
                pat,
                Some((first[0].occurred_ms, first[0].record_id)),
                10,
            )
            .await
            .unwrap();
        assert_eq!(first.len() + rest.len(), 2, "{first:?} {rest:?}");

        // The CLI: one line for the message, naming both tenants.
        let r = a
            .run(&["contact", "timeline", "--org", "acme", &pat.to_string()])
            .await;
        assert!(r.ok, "{}", r.all());
        let lines: Vec<&str> = r
            .stdout
            .lines()
            .filter(|l| l.contains("Portfolio for both desks"))
            .collect();
        assert_eq!(lines.len(), 1, "{}", r.all());
        assert!(
            lines[0].contains("main/") && lines[0].contains("second/"),
            "{}",
            r.all()
        );
        let r = a
            .run(&[
                "contact",
                "timeline",
                "--org",
                "acme",
                &pat.to_string(),
                "--json",
            ])
            .await;
        assert_eq!(
            r.json()["items"].as_array().unwrap().len(),
            2,
            "{}",
            r.all()
        );

        // The API: the same.
        let (handle, stop) = stop_pair();
        let mut opts = ServiceOptions::new(Some("127.0.0.1:0".parse().unwrap()), ADMIN.into());
        opts.workers = 1;
        opts.poll = Duration::from_millis(200);
        let service = Service::start(env(store), opts, stop).await.unwrap();
        let api = Api {
            base: format!("http://{}", service.admin_addr.unwrap()),
            http: reqwest::Client::new(),
        };
        let (st, body) = api
            .call(
                Method::GET,
                &format!("/api/orgs/acme/contacts/{pat}/timeline"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(st, 200, "{body}");
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{body}");
        assert_eq!(items[1]["records"].as_array().unwrap().len(), 2, "{body}");
        assert_eq!(items[1]["seen_in"].as_array().unwrap().len(), 2, "{body}");
        handle.stop();
        service.wait().await;
        a.finish().await;
    }
}

/// A record committed into a batch's id range after the batch was read (PostgreSQL hands out
/// ids out of commit order; two sync processes can commit 101 before 100) stays queued when
/// the batch is saved: a batch leaves the queue by exactly the ids it read, never by a range.
/// Queued ids whose record is gone come back in the batch (so they leave the queue) but are
/// not passed to the plugin.
#[tokio::test]
async fn a_record_queued_inside_a_batch_read_earlier_stays_queued() {
    use m365sync_store::matching::{ActivityKind, MatchOutcome};
    use m365sync_store::tenants::{AuthMode, NewTenant};
    for db in TestDb::both().await {
        let store = &db.store;
        store.ensure_org("acme").await.unwrap();
        let tenant = store
            .upsert_tenant(&NewTenant {
                org: "acme".into(),
                name: "main".into(),
                ms_tenant: "c.example".into(),
                authority: "https://localhost:8765".into(),
                graph_url: "https://localhost:8765/v1.0".into(),
                client_id: "11111111-2222-4333-8444-555555555555".into(),
                auth_mode: AuthMode::App,
            })
            .await
            .unwrap();
        let email = ActivityKind::Email;
        store
            .queue_for_matching(tenant.id, email, &[1, 2, 4])
            .await
            .unwrap();
        let batch = store
            .match_batch(tenant.id, tenant.org_id, email, 0, 500)
            .await
            .unwrap();
        assert_eq!(batch.ids, vec![1, 2, 4]);
        assert!(
            batch.candidates.is_empty() && batch.contacts.is_empty(),
            "no record is stored under these ids: {batch:?}"
        );
        // Committed while the batch is in the plugin, inside its range.
        store
            .queue_for_matching(tenant.id, email, &[3])
            .await
            .unwrap();
        let outcomes: Vec<MatchOutcome> = batch
            .ids
            .iter()
            .map(|&record_id| MatchOutcome {
                record_id,
                occurred_ms: 0,
                result: Ok(Vec::new()),
            })
            .collect();
        store
            .save_matches(tenant.id, email, "test", &outcomes, false)
            .await
            .unwrap();
        let left = store
            .match_batch(tenant.id, tenant.org_id, email, 0, 500)
            .await
            .unwrap();
        assert_eq!(left.ids, vec![3], "only the record committed late is left");
        db.drop_db().await;
    }
}

/// A batch's links go in as a few multi-row statements of different sizes (256, 32, 8, 4 rows
/// for 300 links): every link is stored once, with the batch's values and its own.
#[tokio::test]
async fn a_batch_of_links_is_stored_whole_across_statement_sizes() {
    use m365sync_store::matching::{ActivityKind, MatchOutcome, StoredMatch};
    use m365sync_store::tenants::{AuthMode, NewTenant};
    for db in TestDb::both().await {
        let store = &db.store;
        let org_id = store.ensure_org("acme").await.unwrap();
        let tenant = store
            .upsert_tenant(&NewTenant {
                org: "acme".into(),
                name: "main".into(),
                ms_tenant: "c.example".into(),
                authority: "https://localhost:8765".into(),
                graph_url: "https://localhost:8765/v1.0".into(),
                client_id: "11111111-2222-4333-8444-555555555555".into(),
                auth_mode: AuthMode::App,
            })
            .await
            .unwrap();
        let pat = add_contact(&db, org_id, "Pat", Some("pat@client.example"), None, &[]).await;
        let outcomes: Vec<MatchOutcome> = (1..=300)
            .map(|record_id| MatchOutcome {
                record_id,
                occurred_ms: record_id * 10,
                result: Ok(vec![StoredMatch {
                    contact_id: pat,
                    entity_id: (record_id % 2 == 0).then_some(record_id),
                    address: "pat@client.example".into(),
                    field: "email".into(),
                    reason: format!("reason {record_id}"),
                }]),
            })
            .collect();
        store
            .save_matches(tenant.id, ActivityKind::Email, "digest", &outcomes, false)
            .await
            .unwrap();
        let all = links(&db).await;
        assert_eq!(all.len(), 300);
        for id in [1, 256, 257, 288, 289, 296, 297, 300] {
            let (m, source) = store
                .record_matches(ActivityKind::Email, id)
                .await
                .unwrap()
                .remove(0);
            assert_eq!(source, "plugin");
            assert_eq!(m.contact_id, pat);
            assert_eq!(m.entity_id, (id % 2 == 0).then_some(id));
            assert_eq!(m.reason, format!("reason {id}"));
        }
        let row = sqlx::query(
            "SELECT tenant_id, decided_by, occurred_ms FROM activity_matches WHERE record_id = 297",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(row.try_get::<i64, _>("tenant_id").unwrap(), tenant.id);
        assert_eq!(row.try_get::<String, _>("decided_by").unwrap(), "digest");
        assert_eq!(row.try_get::<i64, _>("occurred_ms").unwrap(), 2970);
        db.drop_db().await;
    }
}

/// Issue 18: a matching plugin that fails on records, installed as a firm would (CLI). Each
/// failed record is kept with the plugin version that failed it and its error, listed by
/// `match failures` (owner, subject, attempts), counted per plugin version for the failure
/// gauge, kept out of the review list and retried by every job; once the tenant is back on the
/// default plugin the next job matches them and the failures are gone. On both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_matching_plugin_keeps_each_record_named_with_its_version_until_a_fixed_one_matches(
) {
    use crate::plugin_installs::{cli, command, workdir};
    use crate::plugin_support::FAILMATCH;

    for db in TestDb::both().await {
        let s = quiet_sim().await;
        let (alice, _) = people(&s);
        deliver(&s, "pat@client.example", &alice, "f1 from Pat", "conv-f1").await;
        deliver(
            &s,
            "unmatchable@nowhere.example",
            &alice,
            "f2 the plugin cannot match",
            "conv-f2",
        )
        .await;
        deliver(
            &s,
            "stranger@nowhere.example",
            &alice,
            "f3 answered with a contact never shown",
            "conv-f3",
        )
        .await;
        let settings = TenantSettings {
            commencement_ms: Some(0),
            folders: vec!["inbox".into()],
            ..TenantSettings::default()
        };
        let tenant = declared_and_synced(&db, &s, &settings).await;
        let pat = add_contact(
            &db,
            tenant.org_id,
            "Pat Client",
            Some("pat@client.example"),
            None,
            &[],
        )
        .await;
        let email = emails_by_subject(&db, tenant.id).await;
        let (f1, f2, f3) = (
            email["f1 from Pat"],
            email["f2 the plugin cannot match"],
            email["f3 answered with a contact never shown"],
        );
        let (org, name) = (tenant.org.as_str(), tenant.name.as_str());

        let dir = workdir(&db, "failmatch");
        let (ok, out) = cli(
            &dir,
            &db,
            &[
                "plugin",
                "install",
                FAILMATCH,
                "--org",
                org,
                "--tenant",
                name,
                "--slot",
                "matching",
                "--no-cases",
            ],
        );
        assert!(ok, "{out}");
        // A command's `--json` answer (stdout only: the log goes to stderr).
        let json = |args: &[&str]| -> serde_json::Value {
            let out = command(&dir, &db, args);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{args:?}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
        };
        let run = || json(&["match", "run", "--org", org, "--json"]);
        let failures = || {
            json(&[
                "match", "failures", "--org", org, "--tenant", name, "--json",
            ])
        };

        // The failing version decides: two records fail, the third matches nothing.
        let first = run();
        assert_eq!(first["records"], 3, "{first}");
        assert_eq!(first["failed"], 2, "{first}");
        assert_eq!(first["unmatched"], 1, "{first}");
        let listed = failures();
        assert_eq!(listed["total"], 2, "{listed}");
        let rows = listed["failures"].as_array().unwrap();
        let by_id = |id: i64| {
            rows.iter()
                .find(|r| r["record_id"] == id)
                .unwrap_or_else(|| panic!("record {id} is not listed: {listed}"))
        };
        let stamp = by_id(f2)["plugin"].as_str().unwrap().to_string();
        assert!(
            stamp.starts_with("failmatch 0.0.1 sha256:")
                && stamp.len() == "failmatch 0.0.1 sha256:".len() + 64,
            "the failure names the plugin version: {stamp}"
        );
        assert_eq!(
            by_id(f2)["error"],
            "the plugin refused the record: failmatch cannot match unmatchable@nowhere.example",
            "the plugin's own error, its version in a column of its own: {listed}"
        );
        assert_eq!(by_id(f3)["plugin"], stamp.as_str());
        assert!(
            by_id(f3)["error"]
                .as_str()
                .unwrap()
                .contains("contact 999999999, which it was not shown"),
            "{listed}"
        );
        for (id, subject) in [
            (f2, "f2 the plugin cannot match"),
            (f3, "f3 answered with a contact never shown"),
        ] {
            let row = by_id(id);
            assert_eq!(row["kind"], "email");
            assert_eq!(row["subject"], subject);
            assert_eq!(row["owner"], alice.as_str());
            assert_eq!(row["attempts"], 1);
            assert_eq!(row["tenant"], name);
        }
        // The failure gauge counts them under stage `match` and the version.
        let failing = db.store.failing_records_by_plugin().await.unwrap();
        assert!(
            failing.contains(&("match".to_string(), stamp.clone(), 2)),
            "{failing:?}"
        );
        // The Plugins page counts them against the version that failed them.
        let digest = stamp.rsplit("sha256:").next().unwrap().to_string();
        let decided = db.store.plugin_decisions(tenant.org_id).await.unwrap();
        assert_eq!(
            decided[&(tenant.id, "matching".to_string(), digest)].failed,
            2,
            "{decided:?}"
        );
        // Failed records are not offered for manual mapping; the unmatched one is.
        let alice_id = db.store.user_id(tenant.id, &alice).await.unwrap().unwrap();
        let review: Vec<i64> = db
            .store
            .review_list(
                alice_id,
                &ReviewFilter {
                    since_ms: None,
                    until_ms: None,
                    sender_domain: None,
                    before: None,
                    limit: 50,
                },
            )
            .await
            .unwrap()
            .iter()
            .map(|i| i.email_id)
            .collect();
        assert_eq!(
            review,
            vec![f1],
            "only the unmatched record is up for review"
        );

        // Every job retries them.
        let second = run();
        assert_eq!(second["failed"], 2, "{second}");
        let listed = failures();
        assert!(
            listed["failures"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["attempts"] == 2),
            "{listed}"
        );

        // Back on the default plugin (and Pat's email queued again, as a contact change
        // would), the next job matches what it can and nothing fails any more.
        let (ok, out) = cli(
            &dir,
            &db,
            &[
                "plugin",
                "uninstall",
                "--org",
                org,
                "--tenant",
                name,
                "--slot",
                "matching",
            ],
        );
        assert!(ok, "{out}");
        db.store
            .queue_for_matching(
                tenant.id,
                m365sync_store::matching::ActivityKind::Email,
                &[f1],
            )
            .await
            .unwrap();
        let fixed = run();
        assert_eq!(fixed["failed"], 0, "{fixed}");
        assert_eq!(failures()["total"], 0);
        let linked = links(&db).await;
        assert!(linked.contains_key(&(f1, pat)), "{linked:?}");
        assert!(
            !db.store
                .failing_records_by_plugin()
                .await
                .unwrap()
                .iter()
                .any(|(stage, _, _)| stage == "match"),
            "the gauge no longer counts them"
        );
        db.drop_db().await;
    }
}
