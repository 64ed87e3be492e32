//! Every message of real mailboxes (issue 14), on SQLite and PostgreSQL against the simulator:
//! a folder well over Graph's 5,000-message cap on filtered delta rounds, nested user folders
//! with mail filed at each level, folders created, renamed, deleted and excluded between runs,
//! moves across folders (into and out of excluded ones), a 410 after deletes and moves, verify
//! and its repair, an outage that ends a run incomplete, failed records named and parked, and
//! settings changed one at a time. The store is compared with the simulator's ground truth
//! message by message, folder by folder.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use m365sync::sync::run::{run_tenant, verify_tenant, SyncEnv};
use m365sync_plugin::engine::{EngineConfig, PluginEngine};
use m365sync_sim::config::FaultConfig;
use m365sync_sim::generate::GenerateOptions;
use m365sync_sim::model::{MessageContent, Recipient};
use m365sync_store::tenants::{Tenant, TenantSettings};
use m365sync_store::Store;

use crate::support::{TestDb, TestSim};
use crate::sync_email::declare_with;

fn env(store: &Store) -> SyncEnv {
    SyncEnv::new(
        store.clone(),
        PluginEngine::new(EngineConfig::default()).unwrap(),
        m365sync_graph::http_client(None).unwrap(),
    )
}

/// One person and no shared mailbox: the folder tests look at one mailbox.
fn one_person() -> GenerateOptions {
    GenerateOptions {
        users: 1,
        shared: 0,
        messages: 30,
        events: 0,
        ..GenerateOptions::default()
    }
}

/// The default folder settings (every folder but the excluded ones), mail of the last 400
/// days, pages of `page_size`.
fn settings(page_size: i64) -> TenantSettings {
    TenantSettings {
        commencement_ms: Some((Utc::now() - Duration::days(400)).timestamp_millis()),
        page_size,
        ..TenantSettings::default()
    }
}

const WELL_KNOWN: [&str; 10] = [
    "inbox",
    "sentitems",
    "archive",
    "drafts",
    "deleteditems",
    "junkemail",
    "outbox",
    "conversationhistory",
    "syncissues",
    "clutter",
];

/// The store's key of a ground-truth folder: its well-known name, else its Graph id.
fn key_of(truth_key: &str, folder: &Value) -> String {
    if WELL_KNOWN.contains(&truth_key) {
        truth_key.to_string()
    } else {
        folder["id"].as_str().unwrap().to_string()
    }
}

/// Of a ground-truth mailbox, the folders `excluded` leaves synced: key -> ids.
fn truth_synced(mailbox: &Value, excluded: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let folders = mailbox["folders"].as_object().unwrap();
    let excluded_paths: Vec<String> = excluded
        .iter()
        .map(|e| match folders.get(*e) {
            Some(f) => f["path"].as_str().unwrap().to_ascii_lowercase(),
            None => e.to_ascii_lowercase(),
        })
        .collect();
    folders
        .iter()
        .filter(|(_, f)| {
            let path = f["path"].as_str().unwrap().to_ascii_lowercase();
            !excluded_paths
                .iter()
                .any(|p| path == *p || path.starts_with(&format!("{p}/")))
        })
        .map(|(k, f)| {
            let ids = f["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            (key_of(k, f), ids)
        })
        .collect()
}

const DEFAULT_EXCLUDED: [&str; 6] = [
    "junkemail",
    "deleteditems",
    "drafts",
    "outbox",
    "conversationhistory",
    "syncissues",
];

/// Every synced folder of the mailbox accounts in the store for exactly its messages in
/// Graph (kept, excluded or failed), and no other folder holds a live link.
async fn assert_folders_match(
    store: &Store,
    s: &TestSim,
    upn: &str,
    mailbox_id: i64,
    excluded: &[&str],
) {
    let truth = s.truth()["tenants"][0]["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["upn"] == upn)
        .unwrap()
        .clone();
    let synced = truth_synced(&truth, excluded);
    for (key, ids) in &synced {
        let held = store.folder_holdings(mailbox_id, key).await.unwrap();
        let stored: BTreeSet<String> = held.all().into_iter().map(str::to_string).collect();
        assert_eq!(
            &stored,
            ids,
            "folder {key} of {upn}: store {} vs Graph {} (missing {:?}, extra {:?})",
            stored.len(),
            ids.len(),
            ids.difference(&stored).take(5).collect::<Vec<_>>(),
            stored.difference(ids).take(5).collect::<Vec<_>>()
        );
    }
    let live: BTreeSet<String> = store
        .mailbox_graph_ids(mailbox_id, None)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let all_synced: BTreeSet<String> = synced.values().flatten().cloned().collect();
    let outside: Vec<&String> = live.difference(&all_synced).collect();
    assert!(
        outside.is_empty(),
        "{upn}: links live outside the synced folders: {outside:?}"
    );
}

/// Adds `n` messages to the folder at `path` of `upn` (created with its parents when
/// missing), received over the last `days` days, in the simulator's own process.
fn fill(s: &TestSim, upn: &str, path: &str, n: usize, days: i64) {
    let mut w = s.sim.world();
    let u = w.tenants[0]
        .users
        .iter()
        .position(|x| x.upn == upn)
        .unwrap();
    let f = w.ensure_folder_path(0, u, path).unwrap();
    let me = Recipient {
        name: upn.into(),
        address: upn.into(),
    };
    let now = Utc::now();
    for i in 0..n {
        let at = now - Duration::seconds(days * 86_400 * (i as i64 + 1) / (n as i64 + 1));
        let content = MessageContent {
            internet_message_id: format!("<fill-{u}-{f}-{i}@client.example>"),
            conversation_id: format!("fill-{u}-{f}-{}", i / 3),
            conversation_index: String::new(),
            subject: format!("Statement {i} for {path}"),
            body: Arc::from("<p>Please find the statement attached.</p>"),
            body_is_html: true,
            from: Some(Recipient {
                name: "Client Services".into(),
                address: format!("client{}@client.example", i % 7),
            }),
            to: vec![me.clone()],
            cc: vec![],
            bcc: vec![],
            reply_to: vec![],
            received: at,
            sent: at - Duration::seconds(30),
            is_draft: false,
            is_read: i % 2 == 0,
            importance: "normal",
            inference_classification: "focused",
            categories: vec![],
            flagged: false,
            headers: vec![],
            attachments: vec![],
        };
        w.add_message(0, u, f, content, true);
    }
}

async fn deliver(s: &TestSim, upn: &str, subject: &str, folder: Option<&str>) -> String {
    let mut body = json!({"from": "client@acme-holdings.example", "to": [upn], "subject": subject});
    if let Some(f) = folder {
        if f.contains('/') || !WELL_KNOWN.contains(&f) {
            // A user folder: created (with its parents) the first time it is named.
            let mut w = s.sim.world();
            let u = w.tenants[0]
                .users
                .iter()
                .position(|x| x.upn == upn)
                .unwrap();
            w.ensure_folder_path(0, u, f).unwrap();
        }
        body["folder"] = json!(f);
    }
    let v = s.ctl(Method::POST, "deliver", body).await;
    v["messages"][0]["id"].as_str().unwrap().to_string()
}

async fn setup(db: &TestDb, s: &TestSim, page_size: i64) -> (Tenant, String, i64) {
    let (t, ids) = declare_with(&db.store, s, &settings(page_size)).await;
    let upn = s.mailbox(0)["upn"].as_str().unwrap().to_string();
    let id = ids[&upn];
    (t, upn, id)
}

async fn sync(db: &TestDb, t: &Tenant) -> m365sync::sync::run::RunReport {
    let report = run_tenant(&env(&db.store), t, None, "manual")
        .await
        .unwrap();
    assert!(
        report.mailbox_errors.is_empty(),
        "{:?}",
        report.mailbox_errors
    );
    report
}

/// A folder with 6,000 messages since the commencement date: a filtered delta round stops at
/// 5,000, so the rest must come from the listing backfill; the next rounds follow changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_over_the_filtered_delta_cap_is_captured_exactly() {
    for db in TestDb::both().await {
        let s = TestSim::start(one_person()).await;
        let (t, upn, mailbox) = setup(&db, &s, 500).await;
        fill(&s, &upn, "Inbox", 6_000, 300);
        let before = s.ctl(Method::GET, "stats", json!({})).await;
        let report = sync(&db, &t).await;
        let after = s.ctl(Method::GET, "stats", json!({})).await;
        assert_folders_match(&db.store, &s, &upn, mailbox, &DEFAULT_EXCLUDED).await;
        assert_eq!(report.failed, 0);
        // Graph's own cost, not a second read of the folder: the delta round (11 pages), two
        // or three counts, the listing of the ~1,000 the cap left out (3 pages), the verify of
        // the folder read whole (7 pages of 1,000 ids), and a page or two per other folder.
        let requests =
            after["graph_requests"].as_u64().unwrap() - before["graph_requests"].as_u64().unwrap();
        println!("backfill of 6,000 messages at pages of 500: {requests} Graph requests");
        assert!(
            requests < 60,
            "{requests} requests for 6,000 messages at pages of 500"
        );
        // The next round follows from there: new mail and a deletion.
        let new = deliver(&s, &upn, "after the backfill", None).await;
        let gone = s.truth()["tenants"][0]["mailboxes"][0]["folders"]["inbox"]["ids"][17]
            .as_str()
            .unwrap()
            .to_string();
        s.ctl(
            Method::POST,
            "messages/delete",
            json!({"user": upn, "id": gone}),
        )
        .await;
        sync(&db, &t).await;
        assert_folders_match(&db.store, &s, &upn, mailbox, &DEFAULT_EXCLUDED).await;
        let inbox = db
            .store
            .mailbox_graph_ids(mailbox, Some("inbox"))
            .await
            .unwrap();
        assert!(inbox.contains(&new) && !inbox.contains(&gone));
        db.drop_db().await;
    }
}

/// Mail filed into nested user folders is captured at every level; folders created, renamed,
/// deleted and excluded between runs are followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_user_folders_are_discovered_and_followed_between_runs() {
    for db in TestDb::both().await {
        let s = TestSim::start(one_person()).await;
        let (t, upn, mailbox) = setup(&db, &s, 20).await;
        for (path, n) in [
            ("Inbox/Clients/Acme", 3),
            ("Inbox/Clients/Beta", 2),
            ("Inbox/Clients", 1),
            ("Projects/2026/Q1", 2),
            ("Archive/2019", 2),
        ] {
            for i in 0..n {
                deliver(&s, &upn, &format!("{path} {i}"), Some(path)).await;
            }
        }
        sync(&db, &t).await;
        assert_folders_match(&db.store, &s, &upn, mailbox, &DEFAULT_EXCLUDED).await;
        let tree = db.store.mail_folders(mailbox).await.unwrap();
        let path_of = |k: &str| tree.iter().find(|f| f.path == k).map(|f| f.synced);
        assert_eq!(path_of("Inbox/Clients/Acme"), Some(true));
        assert_eq!(path_of("Projects/2026/Q1"), Some(true));
        assert_eq!(path_of("Junk Email"), Some(false), "{tree:?}");

        // Between runs: a new folder with mail, a rename, a delete, and a folder excluded by
        // path with a setting.
        deliver(&s, &upn, "gamma", Some("Inbox/Clients/Gamma")).await;
        let folder_id = |path: &str| {
            let truth = s.truth();
            truth["tenants"][0]["mailboxes"][0]["folders"]
                .as_object()
                .unwrap()
                .values()
                .find(|f| f["path"] == path)
                .map(|f| f["id"].as_str().unwrap().to_string())
                .unwrap()
        };
        let beta = folder_id("Inbox/Clients/Beta");
        s.ctl(
            Method::POST,
            "folders/rename",
            json!({"user": upn, "folder": beta, "name": "Beta Corp"}),
        )
        .await;
        let q1 = folder_id("Projects/2026/Q1");
        let q1_links = db
            .store
            .mailbox_graph_ids(mailbox, Some(&q1))
            .await
            .unwrap();
        assert_eq!(q1_links.len(), 2);
        s.ctl(
            Method::POST,
            "folders/delete",
            json!({"user": upn, "folder": q1}),
        )
        .await;
        let change = m365sync::admin::settings::SettingsChange {
            excluded_folders: Some(
                DEFAULT_EXCLUDED
                    .iter()
                    .map(|s| s.to_string())
                    .chain(["Inbox/Clients/Acme".to_string()])
                    .collect(),
            ),
            ..Default::default()
        };
        m365sync::admin::settings::change_settings(&db.store, &t, &change)
            .await
            .unwrap();
        sync(&db, &t).await;
        let mut excluded: Vec<&str> = DEFAULT_EXCLUDED.to_vec();
        excluded.push("Inbox/Clients/Acme");
        assert_folders_match(&db.store, &s, &upn, mailbox, &excluded).await;
        let tree = db.store.mail_folders(mailbox).await.unwrap();
        let renamed = tree.iter().find(|f| f.graph_id == beta).unwrap();
        assert_eq!(renamed.path, "Inbox/Clients/Beta Corp");
        assert!(renamed.synced);
        assert!(
            db.store
                .mailbox_graph_ids(mailbox, Some(&q1))
                .await
                .unwrap()
                .is_empty(),
            "a deleted folder's mail is no longer linked to the mailbox"
        );
        let acme = tree
            .iter()
            .find(|f| f.path == "Inbox/Clients/Acme")
            .unwrap();
        assert!(!acme.synced);
        db.drop_db().await;
    }
}

/// Moves between folders: into a user folder, into and out of an excluded folder, into
/// Deleted Items. Each message is linked once, in the folder it is in, and no email doubles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_across_folders_are_neither_lost_nor_doubled() {
    for db in TestDb::both().await {
        let s = TestSim::start(one_person()).await;
        let (t, upn, mailbox) = setup(&db, &s, 10).await;
        let a = deliver(&s, &upn, "to be filed", None).await;
        let b = deliver(&s, &upn, "to be junked", None).await;
        let c = deliver(&s, &upn, "rescued from junk", Some("junkemail")).await;
        let d = deliver(&s, &upn, "to be deleted", Some("archive")).await;
        deliver(&s, &upn, "acme", Some("Inbox/Clients/Acme")).await;
        sync(&db, &t).await;
        let emails = db.store.email_count(t.id).await.unwrap();
        let acme = s.truth()["tenants"][0]["mailboxes"][0]["folders"]
            .as_object()
            .unwrap()
            .values()
            .find(|f| f["path"] == "Inbox/Clients/Acme")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        for (id, to) in [
            (&a, acme.as_str()),
            (&b, "junkemail"),
            (&c, "archive"),
            (&d, "deleteditems"),
        ] {
            s.ctl(
                Method::POST,
                "messages/move",
                json!({"user": upn, "id": id, "destination": to}),
            )
            .await;
        }
        sync(&db, &t).await;
        assert_folders_match(&db.store, &s, &upn, mailbox, &DEFAULT_EXCLUDED).await;
        let in_folder = |f: String| {
            let store = db.store.clone();
            async move { store.mailbox_graph_ids(mailbox, Some(&f)).await.unwrap() }
        };
        assert!(in_folder(acme.clone()).await.contains(&a));
        assert!(!in_folder("inbox".into()).await.contains(&a));
        assert!(!in_folder("inbox".into()).await.contains(&b));
        assert!(in_folder("archive".into()).await.contains(&c));
        assert!(!in_folder("archive".into()).await.contains(&d));
        // C was never stored before (it was in Junk): one new email, nothing doubled.
        assert_eq!(db.store.email_count(t.id).await.unwrap(), emails + 1);
        db.drop_db().await;
    }
}

/// After deletes and moves, the delta state is lost (410): the full round that follows
/// reconciles, so what Graph no longer has in a folder is no longer live there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_after_deletes_and_moves_reconciles_the_store() {
    for db in TestDb::both().await {
        let s = TestSim::start(one_person()).await;
        let (t, upn, mailbox) = setup(&db, &s, 7).await;
        sync(&db, &t).await;
        let inbox: Vec<String> = s.truth()["tenants"][0]["mailboxes"][0]["folders"]["inbox"]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert!(inbox.len() >= 4, "{inbox:?}");
        s.ctl(
            Method::POST,
            "messages/delete",
            json!({"user": upn, "id": inbox[0]}),
        )
        .await;
        s.ctl(
            Method::POST,
            "messages/delete",
            json!({"user": upn, "id": inbox[1]}),
        )
        .await;
        s.ctl(
            Method::POST,
            "messages/move",
            json!({"user": upn, "id": inbox[2], "destination": "archive"}),
        )
        .await;
        s.ctl(
            Method::POST,
            "messages/move",
            json!({"user": upn, "id": inbox[3], "destination": "junkemail"}),
        )
        .await;
        // The tokens issued so far die before any round sees the changes.
        s.ctl(Method::POST, "sync-state/expire", json!({})).await;
        sync(&db, &t).await;
        assert_folders_match(&db.store, &s, &upn, mailbox, &DEFAULT_EXCLUDED).await;
        let live = db
            .store
            .mailbox_graph_ids(mailbox, Some("inbox"))
            .await
            .unwrap();
        for gone in &inbox[..4] {
            assert!(!live.contains(gone), "{gone} is still live in inbox");
        }
        db.drop_db().await;
    }
}

/// `mailbox verify` finds a gap it is handed (links lost from the store, a link Graph no
/// longer backs) and its repair makes the folder equal to Graph again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_gap_and_repair_closes_it() {
    for db in TestDb::both().await {
        let s = TestSim::start(one_person()).await;
        let (t, upn, mailbox) = setup(&db, &s, 10).await;
        sync(&db, &t).await;
        let env = env(&db.store);
        let clean = verify_tenant(&env, &t, Some(&upn), false).await.unwrap();
        assert!(clean[0].complete(), "{clean:?}");
        // The gap: two links lost (as a lost page would), a removed one revived.
        let inbox = db
            .store
            .mailbox_graph_ids(mailbox, Some("inbox"))
            .await
            .unwrap();
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        for id in &inbox[..2] {
            sqlx::query("DELETE FROM email_mailboxes WHERE mailbox_id = $1 AND graph_id = $2")
                .bind(mailbox)
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
        }
        let found = verify_tenant(&env, &t, Some(&upn), false).await.unwrap();
        let inbox_check = found[0]
            .folders
            .iter()
            .find(|f| f.folder == "inbox")
            .unwrap();
        assert_eq!(inbox_check.missing, 2, "{inbox_check:?}");
        let mut named = inbox_check.missing_ids.clone();
        named.sort();
        let mut lost = inbox[..2].to_vec();
        lost.sort();
        assert_eq!(named, lost);
        assert!(
            !found[0].complete() && inbox_check.repaired,
            "a re-read is scheduled"
        );
        let repaired = verify_tenant(&env, &t, Some(&upn), true).await.unwrap();
        assert!(repaired[0].complete(), "{repaired:?}");
        assert_folders_match(&db.store, &s, &upn, mailbox, &DEFAULT_EXCLUDED).await;
        pool.close().await;
        db.drop_db().await;
    }
}

/// Graph unreachable for a whole one-off run: the run is incomplete (never "succeeded"), its
/// error is in the log, and `retry` completes it once Graph is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_ends_the_run_incomplete_and_retry_completes_it() {
    for db in TestDb::both().await {
        let s = TestSim::start(one_person()).await;
        let (t, upn, mailbox) = setup(&db, &s, 10).await;
        s.sim.set_faults(FaultConfig {
            rate_429: 1.0,
            ..FaultConfig::default()
        });
        let report = run_tenant(&env(&db.store), &t, None, "manual")
            .await
            .unwrap();
        assert_eq!(report.mailbox_errors.len(), 1, "{report:?}");
        let run = db.store.run(report.run_id).await.unwrap();
        assert_eq!(run.status, "incomplete", "{run:?}");
        let errors = db
            .store
            .logs(&m365sync_store::logs::LogFilter {
                run_id: Some(report.run_id),
                errors_only: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(!errors.is_empty());
        s.sim.set_faults(FaultConfig::default());
        // What `m365sync retry RUN` does: the run's mailboxes with errors, run again.
        let owed = db
            .store
            .mailboxes_to_retry(t.id, Some(report.run_id), 0)
            .await
            .unwrap();
        assert_eq!(owed, vec![mailbox]);
        let again = m365sync::sync::run::run_mailboxes(
            &env(&db.store),
            &t,
            vec![db.store.mailbox_by_id(mailbox).await.unwrap()],
            &format!("retry of run {}", report.run_id),
        )
        .await
        .unwrap();
        assert!(again.mailbox_errors.is_empty());
        assert_eq!(
            db.store.run(again.run_id).await.unwrap().status,
            "succeeded"
        );
        assert_folders_match(&db.store, &s, &upn, mailbox, &DEFAULT_EXCLUDED).await;
        db.drop_db().await;
    }
}

/// A record the tenant's plugin keeps failing on is named (id, subject, folder, stage, plugin,
/// the guest's panic message), counted as the run's error, parked after `failure_attempts`,
/// not retried while parked, and retried on request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_record_is_named_and_parked_after_its_attempts() {
    for db in TestDb::both().await {
        let s = TestSim::start(one_person()).await;
        let (t, upn, mailbox) = setup(&db, &s, 10).await;
        m365sync::admin::settings::change_settings(
            &db.store,
            &t,
            &m365sync::admin::settings::SettingsChange {
                failure_attempts: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let trap = deliver(&s, &upn, "trap", Some("Inbox/Clients")).await;
        let hostile = std::fs::read(crate::plugin_support::HOSTILE).unwrap();
        let digest = m365sync_plugin::cache::digest(&hostile);
        let scope = m365sync_store::plugins::PluginScope {
            org_id: t.org_id,
            tenant_id: Some(t.id),
        };
        db.store
            .install_plugin(
                scope,
                &m365sync_store::plugins::NewPlugin {
                    slot: "exclusion",
                    digest: &digest,
                    name: "hostile",
                    version: "0.0.1",
                    wasm: &hostile,
                },
            )
            .await
            .unwrap();
        let filter = m365sync_store::failures::FailureFilter {
            mailbox_id: Some(mailbox),
            ..Default::default()
        };
        let first = run_tenant(&env(&db.store), &t, None, "manual")
            .await
            .unwrap();
        assert_eq!(first.failed, 1);
        let run = db.store.run(first.run_id).await.unwrap();
        assert_eq!(run.status, "completed_with_errors");
        let f = &db.store.failures(&filter).await.unwrap()[0];
        assert_eq!(f.graph_id, trap);
        assert_eq!(f.subject, "trap");
        assert_eq!(f.folder_path, "Inbox/Clients");
        assert_eq!(f.stage, "exclude");
        assert!(f.plugin.starts_with("hostile 0.0.1 sha256:"), "{f:?}");
        assert!(f.error.contains("panicked: asked to trap"), "{f:?}");
        assert!(!f.parked);
        let health = db.store.mailbox_by_id(mailbox).await.unwrap();
        assert_eq!(health.health, "degraded", "{health:?}");
        // Second failure: parked.
        run_tenant(&env(&db.store), &t, None, "manual")
            .await
            .unwrap();
        let f = &db.store.failures(&filter).await.unwrap()[0];
        assert!(f.parked && f.attempts == 2, "{f:?}");
        // Parked: not retried.
        let third = run_tenant(&env(&db.store), &t, None, "manual")
            .await
            .unwrap();
        assert_eq!(third.failed, 0);
        assert_eq!(db.store.failures(&filter).await.unwrap()[0].attempts, 2);
        // Fixed plugin, retried on request: stored.
        sqlx::query("DELETE FROM plugin_active")
            .execute(&sqlx::AnyPool::connect(&db.url).await.unwrap())
            .await
            .unwrap();
        db.store.unpark_failures(&filter).await.unwrap();
        run_tenant(&env(&db.store), &t, None, "manual")
            .await
            .unwrap();
        assert!(db.store.failures(&filter).await.unwrap().is_empty());
        assert_eq!(
            db.store.mailbox_by_id(mailbox).await.unwrap().health,
            "healthy"
        );
        assert_folders_match(&db.store, &s, &upn, mailbox, &DEFAULT_EXCLUDED).await;
        db.drop_db().await;
    }
}

/// C2's Sync Emails: off, the user's mail is not synced (what is stored stays); on again, the
/// folders go on from their cursors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_emails_off_stops_a_users_mail() {
    let db = TestDb::sqlite().await;
    let s = TestSim::start(one_person()).await;
    let (t, upn, mailbox) = setup(&db, &s, 10).await;
    sync(&db, &t).await;
    let user = db.store.user_id(t.id, &upn).await.unwrap().unwrap();
    db.store.set_sync_emails(user, false).await.unwrap();
    let id = deliver(&s, &upn, "while off", None).await;
    let report = sync(&db, &t).await;
    assert_eq!(report.processed, 0, "{report:?}");
    assert!(!db
        .store
        .mailbox_graph_ids(mailbox, Some("inbox"))
        .await
        .unwrap()
        .contains(&id));
    db.store.set_sync_emails(user, true).await.unwrap();
    sync(&db, &t).await;
    assert!(db
        .store
        .mailbox_graph_ids(mailbox, Some("inbox"))
        .await
        .unwrap()
        .contains(&id));
    db.drop_db().await;
}

/// Settings change one at a time without resetting the others, a bad value is refused naming
/// the setting and the tenant, and `tenant settings` shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_change_one_at_a_time() {
    use m365sync::admin::settings::{change_settings, SettingsChange};
    let db = TestDb::sqlite().await;
    let s = TestSim::start(one_person()).await;
    let (t, _, _) = setup(&db, &s, 10).await;
    let before = db.store.settings(t.id).await.unwrap();
    let after = change_settings(
        &db.store,
        &t,
        &SettingsChange {
            cadence_minutes: Some(60),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(after.cadence_minutes, 60);
    assert_eq!(after.internal_domains, before.internal_domains);
    assert_eq!(after.folders, vec!["*".to_string()]);
    assert_eq!(after.excluded_folders.len(), 6);
    let err = change_settings(
        &db.store,
        &t,
        &SettingsChange {
            cadence_minutes: Some(5),
            ..Default::default()
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("acme/main") && err.contains("cadence_minutes"),
        "{err}"
    );
    assert_eq!(db.store.settings(t.id).await.unwrap().cadence_minutes, 60);
    db.drop_db().await;
}

/// The commands an admin uses for this, through the binary: `tenant settings` shows and
/// changes one setting, `mailbox verify` prints each folder and exits 1 on a difference,
/// `failures list` names a failed record, `user sync-emails` flips the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_show_verify_failures_and_switches() {
    use crate::admin_support::Admin;
    let admin = Admin::new(TestDb::sqlite().await).await;
    let s = TestSim::start(one_person()).await;
    let (t, upn, mailbox) = setup(&admin.db, &s, 10).await;
    let _ = &admin.db.store;
    // The binary's store shares the database but has its own key: the tenant's secret must be
    // sealed with it.
    admin
        .store
        .put_secret(
            t.id,
            m365sync_store::tenants::SecretKind::ClientSecret,
            "sim",
            &s.secret,
        )
        .await
        .unwrap();
    let shown = admin
        .run(&["tenant", "settings", "--org", "acme", "--tenant", "main"])
        .await;
    assert!(
        shown.ok && shown.stdout.contains("excluded_folders      junkemail"),
        "{}",
        shown.all()
    );
    let changed = admin
        .run(&[
            "tenant",
            "settings",
            "--org",
            "acme",
            "--tenant",
            "main",
            "--cadence",
            "30",
            "--attachment-cap",
            "10MB",
            "--json",
        ])
        .await;
    assert!(changed.ok, "{}", changed.all());
    let v = changed.json();
    assert_eq!(v["cadence_minutes"], 30);
    assert_eq!(v["attachment_cap_bytes"], 10 * 1024 * 1024);
    assert_eq!(v["page_size"], 10, "the others keep their value");
    let refused = admin
        .run(&[
            "tenant",
            "settings",
            "--org",
            "acme",
            "--tenant",
            "main",
            "--page-size",
            "0",
        ])
        .await;
    assert!(
        !refused.ok && refused.stderr.contains("page_size"),
        "{}",
        refused.all()
    );

    let synced = admin
        .run(&["sync", "run", "--org", "acme", "--tenant", "main"])
        .await;
    assert!(synced.ok, "{}", synced.all());
    let ok = admin
        .run(&["mailbox", "verify", "--org", "acme", "--tenant", "main"])
        .await;
    assert!(
        ok.ok && ok.stdout.contains("Inbox") && ok.stdout.contains(" ok"),
        "{}",
        ok.all()
    );
    let pool = sqlx::AnyPool::connect(&admin.db.url).await.unwrap();
    sqlx::query("DELETE FROM email_mailboxes WHERE mailbox_id = $1 AND folder = 'inbox'")
        .bind(mailbox)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let gap = admin
        .run(&[
            "mailbox",
            "verify",
            "--org",
            "acme",
            "--tenant",
            "main",
            "--mailbox",
            &upn,
        ])
        .await;
    assert!(!gap.ok && gap.stdout.contains("missing"), "{}", gap.all());
    assert!(gap.stderr.contains("--repair"), "{}", gap.all());

    let failures = admin.run(&["failures", "list", "--org", "acme"]).await;
    assert!(
        failures.ok && failures.stdout.contains("no failed records"),
        "{}",
        failures.all()
    );
    let off = admin
        .run(&[
            "user",
            "sync-emails",
            "--org",
            "acme",
            "--tenant",
            "main",
            "--user",
            &upn,
            "off",
        ])
        .await;
    assert!(off.ok, "{}", off.all());
    let user = admin.store.user_id(t.id, &upn).await.unwrap().unwrap();
    assert!(!admin.store.sync_emails(user).await.unwrap());
    admin.finish().await;
}

/// The same controls through the admin API, over real HTTP on loopback, on both databases:
/// settings shown and changed one field at a time (a bad value names the tenant and field and
/// changes nothing), a mailbox verified and repaired, a failed record listed and its retry
/// requested, a user's Sync Emails switch; without a token, nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_shows_settings_verify_failures_and_switches() {
    use crate::roles::{Api, ADMIN};
    use m365sync::service::{Service, ServiceOptions};
    for db in TestDb::both().await {
        let s = TestSim::start(one_person()).await;
        let (t, upn, mailbox) = setup(&db, &s, 10).await;
        sync(&db, &t).await;
        let (handle, stop) = m365sync::sync::stop::stop_pair();
        let mut opts = ServiceOptions::new(Some("127.0.0.1:0".parse().unwrap()), ADMIN.into());
        opts.workers = 1;
        let service = Service::start(env(&db.store), opts, stop).await.unwrap();
        let api = Api {
            base: format!("http://{}", service.admin_addr.unwrap()),
            http: reqwest::Client::new(),
        };
        let base = "/api/tenants/acme/main";
        let call = |m: Method, path: String, body: Option<Value>| {
            let api = &api;
            async move {
                api.call(m, &format!("{base}{path}"), Some(ADMIN), body)
                    .await
            }
        };

        // Settings: shown; one field changed, the others keep their value; a bad one refused.
        let (st, before) = call(Method::GET, "/settings".into(), None).await;
        assert_eq!(st, 200, "{before}");
        assert_eq!(before["folders"], json!(["*"]));
        let (st, after) = call(
            Method::PATCH,
            "/settings".into(),
            Some(json!({"cadence_minutes": 60})),
        )
        .await;
        assert_eq!(st, 200, "{after}");
        assert_eq!(after["cadence_minutes"], 60);
        assert_eq!(after["excluded_folders"], before["excluded_folders"]);
        assert_eq!(after["internal_domains"], before["internal_domains"]);
        let (st, err) = call(
            Method::PATCH,
            "/settings".into(),
            Some(json!({"cadence_minutes": 5})),
        )
        .await;
        assert_eq!(st, 400, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("acme/main") && text.contains("cadence_minutes"),
            "{text}"
        );
        assert_eq!(db.store.settings(t.id).await.unwrap().cadence_minutes, 60);
        let (st, _) = api
            .call(Method::GET, &format!("{base}/settings"), None, None)
            .await;
        assert_eq!(st, 401, "no token, no settings");

        // Verify: complete; a gap named by id; repaired.
        let verify = format!("/mailboxes/{upn}/verify");
        let (st, clean) = call(Method::POST, verify.clone(), None).await;
        assert_eq!(st, 200, "{clean}");
        assert_eq!(clean["complete"], true, "{clean}");
        let inbox = db
            .store
            .mailbox_graph_ids(mailbox, Some("inbox"))
            .await
            .unwrap();
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        sqlx::query("DELETE FROM email_mailboxes WHERE mailbox_id = $1 AND graph_id = $2")
            .bind(mailbox)
            .bind(&inbox[0])
            .execute(&pool)
            .await
            .unwrap();
        let (st, gap) = call(Method::POST, verify.clone(), None).await;
        assert_eq!(st, 200, "{gap}");
        assert_eq!(gap["complete"], false, "{gap}");
        assert!(
            gap.to_string().contains(&inbox[0]),
            "the lost id is named: {gap}"
        );
        let (st, fixed) = call(Method::POST, format!("{verify}?repair=1"), None).await;
        assert_eq!(st, 200, "{fixed}");
        assert_eq!(fixed["complete"], true, "{fixed}");
        let (st, missing) = call(
            Method::POST,
            "/mailboxes/nobody@nowhere.example/verify".into(),
            None,
        )
        .await;
        assert!(st == 404 || st == 502, "{st} {missing}");
        assert!(
            missing.to_string().contains("nobody@nowhere.example"),
            "{missing}"
        );

        // A record the exclusion plugin fails on: listed with its name, then retried on request.
        let trap = deliver(&s, &upn, "trap", Some("Inbox/Clients")).await;
        let hostile = std::fs::read(crate::plugin_support::HOSTILE).unwrap();
        let digest = m365sync_plugin::cache::digest(&hostile);
        db.store
            .install_plugin(
                m365sync_store::plugins::PluginScope {
                    org_id: t.org_id,
                    tenant_id: Some(t.id),
                },
                &m365sync_store::plugins::NewPlugin {
                    slot: "exclusion",
                    digest: &digest,
                    name: "hostile",
                    version: "0.0.1",
                    wasm: &hostile,
                },
            )
            .await
            .unwrap();
        let report = run_tenant(&env(&db.store), &t, None, "manual")
            .await
            .unwrap();
        assert_eq!(report.failed, 1);
        let (st, failures) = call(Method::GET, format!("/failures?mailbox={upn}"), None).await;
        assert_eq!(st, 200, "{failures}");
        let items = failures["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{failures}");
        assert_eq!(items[0]["graph_id"], trap.as_str());
        assert_eq!(items[0]["subject"], "trap");
        assert_eq!(items[0]["folder_path"], "Inbox/Clients");
        assert!(
            items[0]["error"]
                .as_str()
                .unwrap()
                .contains("asked to trap"),
            "{failures}"
        );
        let (st, retry) = call(
            Method::POST,
            "/failures/retry".into(),
            Some(json!({"mailbox": upn})),
        )
        .await;
        assert_eq!(st, 202, "{retry}");
        let (st, nobody) = call(
            Method::GET,
            "/failures?mailbox=nobody@nowhere.example".into(),
            None,
        )
        .await;
        assert_eq!(st, 404, "{nobody}");

        // Sync Emails: off for the user, then a clear error for a user the tenant lacks.
        let (st, off) = call(
            Method::PUT,
            format!("/users/{upn}/sync-emails"),
            Some(json!({"on": false})),
        )
        .await;
        assert_eq!(st, 200, "{off}");
        assert_eq!(off["sync_emails"], false);
        let (st, bad) = call(
            Method::PUT,
            format!("/users/{upn}/sync-emails"),
            Some(json!({"on": "maybe"})),
        )
        .await;
        assert_eq!(st, 400, "{bad}");
        let (st, unknown) = call(
            Method::PUT,
            "/users/nobody@nowhere.example/sync-emails".into(),
            Some(json!({"on": true})),
        )
        .await;
        assert_eq!(st, 404, "{unknown}");
        assert!(unknown.to_string().contains("acme/main"), "{unknown}");

        handle.stop();
        service.wait().await;
        pool.close().await;
        db.drop_db().await;
    }
}

/// A commencement date moved earlier takes effect at the next run: Graph seals a round's
/// `$filter` into its links, so the folders must begin new rounds to reach the older mail. A
/// date moved later loses nothing already stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commencement_moved_earlier_reaches_back_at_the_next_run() {
    use m365sync::admin::settings::{change_settings, SettingsChange};
    for db in TestDb::both().await {
        let s = TestSim::start(one_person()).await;
        let (t, upn, mailbox) = setup(&db, &s, 10).await;
        let days_ago = |d: i64| Some((Utc::now() - Duration::days(d)).timestamp_millis());
        let change = |d: i64| SettingsChange {
            commencement_ms: Some(days_ago(d)),
            ..Default::default()
        };
        change_settings(&db.store, &t, &change(100)).await.unwrap();
        sync(&db, &t).await;
        let recent = db
            .store
            .mailbox_graph_ids(mailbox, None)
            .await
            .unwrap()
            .len();
        let truth = s.truth()["tenants"][0]["mailboxes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["upn"] == upn)
            .unwrap()
            .clone();
        let all: usize = truth_synced(&truth, &DEFAULT_EXCLUDED)
            .values()
            .map(BTreeSet::len)
            .sum();
        let cutoff = Utc::now() - Duration::days(100);
        let in_window = truth["folders"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|f| f["received"].as_array().cloned().unwrap_or_default())
            .filter(|r| {
                chrono::DateTime::parse_from_rfc3339(r.as_str().unwrap_or_default())
                    .is_ok_and(|d| d > cutoff)
            })
            .count();
        assert!(
            recent > 0 && recent < all,
            "100 days hold some of the mail: {recent} of {all} (Graph has {in_window} since then)"
        );
        // Earlier: the next run reaches back, every folder equal to Graph.
        change_settings(&db.store, &t, &change(400)).await.unwrap();
        sync(&db, &t).await;
        assert_folders_match(&db.store, &s, &upn, mailbox, &DEFAULT_EXCLUDED).await;
        // Later: nothing stored is dropped.
        change_settings(&db.store, &t, &change(10)).await.unwrap();
        sync(&db, &t).await;
        assert_folders_match(&db.store, &s, &upn, mailbox, &DEFAULT_EXCLUDED).await;
        db.drop_db().await;
    }
}
