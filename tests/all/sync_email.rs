//! Email sync end to end: the simulator, the real default plugins, and the store on SQLite and
//! PostgreSQL. A backfill equals the ground truth minus what the rules exclude; the next run
//! sees new mail, deletions and moves; a 410 recovers with nothing lost or doubled.

use std::collections::{BTreeSet, HashMap};

use m365sync::sync::run::{run_tenant, SyncEnv};
use m365sync_plugin::engine::{EngineConfig, PluginEngine};
use m365sync_store::mailboxes::{MailboxKind, NewMailbox};
use m365sync_store::rules::{Effect, RuleScope, RuleSpec, Target};
use m365sync_store::tenants::{AuthMode, NewTenant, SecretKind, TenantSettings};
use m365sync_store::Store;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{small, TestDb, TestSim};

pub const FOLDERS: [&str; 3] = ["inbox", "sentitems", "archive"];

/// How many messages of a ground-truth mailbox the default settings sync: every folder but
/// the excluded ones (Junk Email, Deleted Items, Drafts, Outbox, Conversation History, Sync
/// Issues) and their subfolders.
pub fn synced_by_default(mailbox: &Value) -> u64 {
    m365sync_bench::host::synced_by_default(mailbox)
}

/// Declares the simulator's tenant in the store: every mailbox, internal domains, one org rule.
pub async fn declare(
    store: &Store,
    s: &TestSim,
) -> (m365sync_store::tenants::Tenant, HashMap<String, i64>) {
    let settings = TenantSettings {
        internal_domains: vec!["contoso.example".into()],
        folders: FOLDERS.iter().map(|f| f.to_string()).collect(),
        commencement_ms: Some(
            (chrono::Utc::now() - chrono::Duration::days(400)).timestamp_millis(),
        ),
        page_size: 7,
        ..TenantSettings::default()
    };
    let (t, ids) = declare_with(store, s, &settings).await;
    store
        .add_rule(
            RuleScope::Org { org_id: t.org_id },
            &RuleSpec {
                effect: Effect::Exclude,
                target: Target::Sender,
                pattern: "*@marketweekly.example".into(),
            },
        )
        .await
        .unwrap();
    (t, ids)
}

/// Declares the simulator's tenant with `settings` and no rules: its app secret and every
/// mailbox, each linked to a user of its own address. Returns the mailbox ids by address.
pub async fn declare_with(
    store: &Store,
    s: &TestSim,
    settings: &TenantSettings,
) -> (m365sync_store::tenants::Tenant, HashMap<String, i64>) {
    let t = store
        .upsert_tenant(&NewTenant {
            org: "acme".into(),
            name: "main".into(),
            ms_tenant: s.tenant_id.clone(),
            authority: s.base.clone(),
            graph_url: s.graph.clone(),
            client_id: s.client_id.clone(),
            auth_mode: AuthMode::App,
        })
        .await
        .unwrap();
    store
        .put_secret(t.id, SecretKind::ClientSecret, "sim", &s.secret)
        .await
        .unwrap();
    store.set_settings(t.id, settings).await.unwrap();
    let mut ids = HashMap::new();
    for mb in s.truth()["tenants"][0]["mailboxes"].as_array().unwrap() {
        let upn = mb["upn"].as_str().unwrap();
        let kind = if mb["kind"] == "shared" {
            MailboxKind::Shared
        } else {
            MailboxKind::Person
        };
        let id = store
            .upsert_mailbox(&NewMailbox {
                tenant_id: t.id,
                graph_id: upn.into(),
                address: upn.into(),
                display_name: upn.into(),
                kind,
            })
            .await
            .unwrap();
        let user = store.upsert_user(t.id, upn, upn).await.unwrap();
        store.link_mailbox(id, user).await.unwrap();
        ids.insert(upn.to_string(), id);
    }
    (t, ids)
}

async fn excluded(url: &str) -> HashMap<(i64, String), String> {
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT mailbox_id, graph_id, rule FROM exclusions")
            .fetch_all(&sqlx::AnyPool::connect(url).await.unwrap())
            .await
            .unwrap();
    rows.into_iter().map(|(m, g, r)| ((m, g), r)).collect()
}

/// Every synced folder holds exactly the ground truth minus the excluded items.
pub async fn assert_matches_truth(db: &TestDb, s: &TestSim, ids: &HashMap<String, i64>) {
    let excl = excluded(&db.url).await;
    for mb in s.truth()["tenants"][0]["mailboxes"].as_array().unwrap() {
        let mailbox_id = ids[mb["upn"].as_str().unwrap()];
        for folder in FOLDERS {
            let truth: BTreeSet<String> = mb["folders"][folder]["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            let stored: BTreeSet<String> = db
                .store
                .mailbox_graph_ids(mailbox_id, Some(folder))
                .await
                .unwrap()
                .into_iter()
                .collect();
            let dropped: BTreeSet<String> = truth
                .iter()
                .filter(|g| excl.contains_key(&(mailbox_id, (*g).clone())))
                .cloned()
                .collect();
            assert!(
                stored.is_disjoint(&dropped),
                "{} {folder}: an excluded message was stored",
                mb["upn"]
            );
            let expected: BTreeSet<String> = truth.difference(&dropped).cloned().collect();
            assert_eq!(stored, expected, "{} {folder} on {}", mb["upn"], db.url);
        }
    }
}

pub fn env(store: &Store) -> SyncEnv {
    SyncEnv::new(
        store.clone(),
        PluginEngine::new(EngineConfig::default()).unwrap(),
        m365sync_graph::http_client(None).unwrap(),
    )
}

#[tokio::test]
async fn backfill_then_changes_then_410_on_both_databases() {
    for db in TestDb::both().await {
        let s = TestSim::start(small()).await;
        let (tenant, ids) = declare(&db.store, &s).await;
        let env = env(&db.store);
        let first = run_tenant(&env, &tenant, None, "manual").await.unwrap();
        assert!(
            first.mailbox_errors.is_empty(),
            "{:?}",
            first.mailbox_errors
        );
        assert!(
            first.synced > 0 && first.excluded > 0 && first.failed == 0,
            "{first:?}"
        );
        assert_matches_truth(&db, &s, &ids).await;
        // Both exclusion reasons are at work: the org rule and E7's internal-only.
        let rules: BTreeSet<String> = excluded(&db.url).await.into_values().collect();
        assert!(
            rules.iter().any(|r| r.starts_with("org-")) && rules.contains("internal-only"),
            "{rules:?}"
        );
        // The same internal message in two mailboxes is one email: count distinct correlation keys.
        let runs = db.store.runs(tenant.id, 5).await.unwrap();
        assert_eq!(
            (runs[0].status.as_str(), runs[0].synced as u64),
            ("succeeded", first.synced)
        );

        // New mail, a deletion and a move, then the next run.
        let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
        let inbox: Vec<String> = s.mailbox(1)["folders"]["inbox"]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let kept: Vec<String> = db
            .store
            .mailbox_graph_ids(ids[&upn], Some("inbox"))
            .await
            .unwrap();
        let (gone, moved) = (kept[0].clone(), kept[1].clone());
        assert!(inbox.contains(&gone));
        let delivered = s.ctl(Method::POST, "deliver", json!({"from": "client@acme-holdings.example", "to": [upn], "subject": "Trust documents"})).await;
        let new_id = delivered["messages"][0]["id"].as_str().unwrap().to_string();
        s.ctl(
            Method::POST,
            "messages/delete",
            json!({"user": upn, "id": gone}),
        )
        .await;
        s.ctl(
            Method::POST,
            "messages/move",
            json!({"user": upn, "id": moved, "destination": "archive"}),
        )
        .await;
        let emails_before = db.store.email_count(tenant.id).await.unwrap();
        let second = run_tenant(&env, &tenant, None, "manual").await.unwrap();
        assert!(second.mailbox_errors.is_empty());
        assert_matches_truth(&db, &s, &ids).await;
        assert!(db
            .store
            .mailbox_graph_ids(ids[&upn], Some("inbox"))
            .await
            .unwrap()
            .contains(&new_id));
        assert!(
            db.store
                .mailbox_graph_ids(ids[&upn], Some("archive"))
                .await
                .unwrap()
                .contains(&moved),
            "the moved message is in archive under its immutable id"
        );
        assert_eq!(
            db.store.email_count(tenant.id).await.unwrap(),
            emails_before + 1,
            "a move is not a new email"
        );

        // The delta state expires: the next run restarts the rounds, losing and doubling nothing.
        s.ctl(Method::POST, "sync-state/expire", json!({})).await;
        run_tenant(&env, &tenant, None, "manual").await.unwrap();
        assert_matches_truth(&db, &s, &ids).await;
        assert_eq!(
            db.store.email_count(tenant.id).await.unwrap(),
            emails_before + 1
        );
        db.drop_db().await;
    }
}

#[tokio::test]
async fn a_mailbox_outside_the_access_policy_fails_alone() {
    let db = TestDb::sqlite().await;
    let s = TestSim::start(small()).await;
    let (tenant, ids) = declare(&db.store, &s).await;
    let allowed: Vec<String> = ids
        .keys()
        .filter(|u| !u.starts_with("info@"))
        .cloned()
        .collect();
    s.sim.world.lock().unwrap().tenants[0].apps[0].access_policy =
        Some(allowed.iter().map(|u| u.to_ascii_lowercase()).collect());
    let report = run_tenant(&env(&db.store), &tenant, None, "manual")
        .await
        .unwrap();
    assert_eq!(
        report.mailbox_errors.len(),
        1,
        "{:?}",
        report.mailbox_errors
    );
    let (mailbox, error) = &report.mailbox_errors[0];
    assert!(
        mailbox.starts_with("info@")
            && error.contains("access denied")
            && error.contains("application access policy"),
        "{error}"
    );
    assert!(report.synced > 0, "the other mailboxes synced");
    let health: Value = serde_json::to_value(db.store.mailboxes(tenant.id).await.unwrap()).unwrap();
    let info = health
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"].as_str().unwrap().starts_with("info@"))
        .unwrap();
    assert_eq!(info["health"], "failing");
    // A mailbox that never completed its share makes the run incomplete, never succeeded.
    let run = &db.store.runs(tenant.id, 1).await.unwrap()[0];
    assert_eq!(run.status, "incomplete");
    assert_eq!(run.incomplete, 1);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_applies_a_tenant_and_runs_a_sync_from_the_cli() {
    let s = TestSim::start(small()).await;
    let dir = std::env::temp_dir().join(format!("m365sync-sync-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("m365sync.toml"),
        "database_url = \"sqlite://state.db\"\n",
    )
    .unwrap();
    let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let declaration = format!(
        "[[org]]\nname = \"acme\"\n[[org.tenant]]\nname = \"main\"\nms_tenant = \"{}\"\nclient_id = \"{}\"\nauthority = \"{}\"\ngraph_url = \"{}\"\nsecrets = [{{ label = \"sim\", value = \"{}\" }}]\nsettings = {{ internal_domains = [\"contoso.example\"], commencement = \"2020-01-01\" }}\n[[org.tenant.user]]\nemail = \"{upn}\"\nname = \"Someone\"\nmailboxes = [\"{upn}\"]\n",
        s.tenant_id, s.client_id, s.base, s.graph, s.secret
    );
    std::fs::write(dir.join("acme.toml"), declaration).unwrap();
    let key = m365sync_store::SecretKey::generate().to_base64();
    let run = move |args: Vec<&'static str>, dir: std::path::PathBuf, key: String| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_m365sync"))
            .current_dir(&dir)
            .env("M365SYNC_SECRET_KEY", key)
            .env_remove("M365SYNC_CONFIG")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (d, k) = (dir.clone(), key.clone());
    let (ok, _, err) = tokio::task::spawn_blocking(move || run(vec!["apply", "acme.toml"], d, k))
        .await
        .unwrap();
    assert!(ok, "{err}");
    // This test counts mail only: the user's calendar (C2, on by default) is switched off.
    let user: &'static str = Box::leak(upn.clone().into_boxed_str());
    let (d, k) = (dir.clone(), key.clone());
    let (ok, _, err) = tokio::task::spawn_blocking(move || {
        run(
            vec![
                "events",
                "sync-events",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--user",
                user,
                "off",
            ],
            d,
            k,
        )
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    let (d, k) = (dir.clone(), key.clone());
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        run(
            vec!["sync", "run", "--org", "acme", "--tenant", "main", "--json"],
            d,
            k,
        )
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let in_truth = synced_by_default(&s.mailbox(1));
    assert_eq!(
        report["processed"].as_u64().unwrap(),
        in_truth,
        "every folder but the excluded ones by default: {report}"
    );
    assert_eq!(
        report["synced"].as_u64().unwrap() + report["excluded"].as_u64().unwrap(),
        in_truth
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Stores a round's pages as cursors alone, remembers what it saw, and asks for a stop after
/// each page (while the next one is being read ahead).
struct StoppingSink<'a> {
    db: &'a TestDb,
    tenant: &'a m365sync_store::tenants::Tenant,
    mailbox_id: i64,
    stopper: &'a m365sync::sync::stop::StopHandle,
    seen: Vec<String>,
    cursors: Vec<m365sync_store::sync::Cursor>,
}

impl m365sync::sync::round::PageSink for StoppingSink<'_> {
    async fn store(
        &mut self,
        items: Vec<m365sync_graph::delta::RawItem>,
        cursor: Option<m365sync_store::sync::Cursor>,
    ) -> Result<(), m365sync::sync::SyncError> {
        let cursor = cursor.expect("a round's pages carry a cursor");
        self.seen.extend(
            m365sync_graph::delta::values(&items)
                .iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string)),
        );
        self.cursors.push(cursor.clone());
        let page = m365sync_store::sync::PageCommit {
            org_id: self.tenant.org_id,
            tenant_id: self.tenant.id,
            mailbox_id: self.mailbox_id,
            folder: "inbox".into(),
            upserts: Vec::new(),
            removals: Vec::new(),
            exclusions: Vec::new(),
            failures: Vec::new(),
            cursor: Some(cursor),
            cursor_key: None,
            run_id: None,
            lease: None,
        };
        self.db.store.commit_page(&page).await?;
        self.stopper.stop();
        Ok(())
    }
}

/// The round driver reads the next page while the current one is stored. A stop asked for
/// during a page must still store that page with its cursor and drop the page read ahead, so
/// the next round resumes exactly there: every message once, none lost, none twice.
#[tokio::test]
async fn a_stop_mid_round_stores_the_page_in_hand_and_the_next_round_resumes_after_it() {
    use m365sync::sync::round::{run_round, Round};
    use m365sync::sync::stop::{stop_pair, StopSignal};
    use m365sync::sync::SyncError;
    use m365sync_graph::delta::initial_url;

    for db in TestDb::both().await {
        let s = TestSim::start(small()).await;
        let (tenant, ids) = declare(&db.store, &s).await;
        let client = crate::graph_client::client(&s, vec![s.secret.clone()]);
        let mailbox = s.mailbox(1);
        let upn = mailbox["upn"].as_str().unwrap().to_string();
        let mut truth: Vec<String> = mailbox["folders"]["inbox"]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert!(truth.len() > 10, "the inbox must span several pages");
        let (stopper, stopping) = stop_pair();
        let mut sink = StoppingSink {
            db: &db,
            tenant: &tenant,
            mailbox_id: ids[&upn],
            stopper: &stopper,
            seen: Vec::new(),
            cursors: Vec::new(),
        };
        for (round_no, stop) in [stopping, StopSignal::never()].into_iter().enumerate() {
            let round = Round {
                store: &db.store,
                mailbox_id: ids[&upn],
                folder: "inbox",
                stop: &stop,
                initial_url: initial_url(client.graph_url(), &upn, "inbox", None),
                full_round_marker: None,
            };
            let fetch = |url: String| {
                let (client, upn) = (&client, &upn);
                async move { client.delta_page(upn, &url, 4).await }
            };
            let result = run_round(&round, fetch, &mut sink).await;
            if round_no == 0 {
                assert!(matches!(result, Err(SyncError::Stopped)), "{result:?}");
                assert_eq!(sink.cursors.len(), 1, "one page stored before the stop");
                let stored = db.store.cursor(ids[&upn], "inbox").await.unwrap().unwrap();
                assert_eq!(
                    stored.link, sink.cursors[0].link,
                    "the page kept its cursor"
                );
                assert!(!stored.complete);
            } else {
                assert!(
                    result.unwrap().pages > 1,
                    "the second round resumed, page by page"
                );
            }
        }
        assert!(sink.cursors.last().unwrap().complete);
        let mut seen = sink.seen.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen.len(),
            sink.seen.len(),
            "a page was read twice: {:?}",
            sink.seen
        );
        truth.sort();
        assert_eq!(seen, truth);
        db.drop_db().await;
    }
}
