//! Attachments end to end (E5), on SQLite and PostgreSQL: the bytes stored are the simulator's,
//! one document in several emails and mailboxes is one blob, a file over the cap and a link are
//! recorded as skipped with the reason, a file Graph lists without bytes comes from `$value`,
//! and nothing is fetched twice. Also the store's rules for an email seen from several
//! mailboxes, and a failed fetch recorded rather than failing the email.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use m365sync::sync::mail::attachments::Fetcher;
use m365sync::sync::run::run_tenant;
use m365sync_graph::{http_client, AppCredentials, ClientConfig, GraphClient, TokenCache};
use m365sync_sim::generate::GenerateOptions;
use m365sync_sim::model::{AttachmentKind, Content};
use m365sync_store::attachments::{
    AttachmentOutcome, AttachmentRecord, AttachmentSet, Blob, StoredAttachment, LIST_FAILED_ID,
};
use m365sync_store::mailboxes::{MailboxKind, NewMailbox};
use m365sync_store::sync::{Cursor, EmailRecord, PageCommit};
use m365sync_store::tenants::{AuthMode, NewTenant, Tenant, TenantSettings};
use m365sync_store::Store;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{TestDb, TestSim};

const CAP: i64 = 5 * 1024 * 1024;
const SENDER: &str = "client@acme-holdings.example";
const LINK: &str = "https://contoso.sharepoint.example/sites/clients/plans.docx";

/// A tenant with people and no generated mail: every message here is one a test delivers.
fn empty_tenant() -> GenerateOptions {
    GenerateOptions {
        users: 2,
        shared: 0,
        messages: 0,
        events: 0,
        ..GenerateOptions::default()
    }
}

fn hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Declares the simulator's tenant (inbox only, the cap at 5 MB) and its people's mailboxes.
async fn declare(store: &Store, s: &TestSim) -> (Tenant, HashMap<String, i64>) {
    let settings = TenantSettings {
        internal_domains: vec!["contoso.example".into()],
        folders: vec!["inbox".into()],
        commencement_ms: Some((chrono::Utc::now() - chrono::Duration::days(30)).timestamp_millis()),
        attachment_cap_bytes: CAP,
        ..TenantSettings::default()
    };
    crate::sync_email::declare_with(store, s, &settings).await
}

/// The simulator's own bytes of a file attachment (its ground truth), by attachment name.
fn truth_bytes(s: &TestSim, upn: &str, message_id: &str, name: &str) -> Vec<u8> {
    let w = s.sim.world.lock().unwrap();
    let u = w.tenants[0].user_by_key(upn).unwrap();
    let key = w.message_in_mailbox(0, u, message_id).unwrap();
    let a = w.messages[&key]
        .content
        .attachments
        .iter()
        .find(|a| a.name == name)
        .unwrap();
    match &a.kind {
        AttachmentKind::File { content, .. } => content.bytes(),
        _ => panic!("{name} is not a file"),
    }
}

/// An attachment's `$value` straight from the simulator, with the test's own token.
async fn value_from_sim(s: &TestSim, upn: &str, message_id: &str, attachment_id: &str) -> Vec<u8> {
    let url = format!(
        "{}/users/{}/messages/{}/attachments/{}/$value",
        s.graph,
        crate::support::enc(upn),
        crate::support::enc(message_id),
        crate::support::enc(attachment_id)
    );
    let resp = s
        .http
        .get(url)
        .bearer_auth(s.token().await)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap().to_vec()
}

async fn deliver(s: &TestSim, to: &[&str], subject: &str, attachments: Value) -> Value {
    s.ctl(
        Method::POST,
        "deliver",
        json!({"from": SENDER, "to": to, "subject": subject, "body": "<p>Documents attached.</p>",
               "attachments": attachments}),
    )
    .await
}

fn by_name(list: &[StoredAttachment], name: &str) -> StoredAttachment {
    list.iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no attachment {name} in {list:?}"))
        .clone()
}

/// (user, id) of each copy a delivery made.
fn copies(delivered: &Value) -> Vec<(String, String)> {
    delivered["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user"].as_str().unwrap().to_string(),
                m["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn attachments_are_stored_by_digest_skipped_with_reasons_and_fetched_once_on_both_databases()
{
    for db in TestDb::both().await {
        let s = TestSim::start(empty_tenant()).await;
        let (tenant, ids) = declare(&db.store, &s).await;
        let mut upns: Vec<&String> = ids.keys().collect();
        upns.sort();
        let (alice, bob) = (upns[0].clone(), upns[1].clone());
        let first = deliver(
            &s,
            &[&alice, &bob],
            "Signed contract",
            json!([
                {"name": "contract.pdf", "size": 20_000, "content_type": "application/pdf", "seed": 42},
                // Above the simulator's 3 MB inline limit (listed without bytes), below the cap.
                {"name": "scan.tif", "size": 3_500_000, "content_type": "image/tiff"},
                {"name": "archive.zip", "size": 6_000_000, "content_type": "application/zip"},
                {"kind": "reference", "name": "Plans", "source_url": LINK},
                {"kind": "item", "name": "Original request", "subject": "Original request",
                 "body": "<p>Please see below.</p>"},
            ]),
        )
        .await;
        let second = deliver(
            &s,
            &[&alice],
            "Countersigned",
            json!([{"name": "contract-countersigned.pdf", "size": 20_000,
                    "content_type": "application/pdf", "seed": 42}]),
        )
        .await;
        let first_copies = copies(&first);
        assert_eq!(first_copies.len(), 2, "one copy per recipient: {first}");
        let (_, second_id) = copies(&second)[0].clone();

        let env = crate::sync_email::env(&db.store);
        let report = run_tenant(&env, &tenant, None, "manual").await.unwrap();
        assert!(
            report.mailbox_errors.is_empty(),
            "{:?}",
            report.mailbox_errors
        );
        assert_eq!((report.synced, report.failed), (3, 0), "{report:?}");

        // One email for the message both people received, with one set of attachments.
        let mut emails = Vec::new();
        for (upn, id) in &first_copies {
            emails.push(db.store.email_id_of(ids[upn], id).await.unwrap().unwrap());
        }
        assert_eq!(
            emails[0], emails[1],
            "the same message in two mailboxes is one email"
        );
        let email = emails[0];
        let stored = db.store.attachments(email).await.unwrap();
        assert_eq!(stored.len(), 5, "{stored:?}");
        let (upn0, id0) = &first_copies[0];

        // Files: the bytes stored are the simulator's, under their SHA-256.
        for (name, size) in [("contract.pdf", 20_000usize), ("scan.tif", 3_500_000)] {
            let a = by_name(&stored, name);
            let truth = truth_bytes(&s, upn0, id0, name);
            assert_eq!(truth.len(), size);
            assert_eq!(
                a.digest.as_deref(),
                Some(hex(&truth).as_str()),
                "{name} on {}",
                db.url
            );
            assert_eq!(a.skipped_reason, None);
            let blob = db
                .store
                .blob(a.digest.as_ref().unwrap())
                .await
                .unwrap()
                .unwrap();
            assert!(
                blob == truth,
                "{name}: the stored bytes differ from the simulator's"
            );
        }
        assert_eq!(
            by_name(&stored, "contract.pdf").content_type,
            "application/pdf"
        );
        assert_eq!(by_name(&stored, "scan.tif").size, 3_500_000);

        // Over the cap: skipped, the reason naming the cap; no bytes.
        let zip = by_name(&stored, "archive.zip");
        assert_eq!(zip.digest, None);
        let why = zip.skipped_reason.unwrap();
        assert!(
            why.starts_with("over-cap:") && why.contains("attachment_cap_bytes = 5242880"),
            "{why}"
        );

        // A link: skipped, the link in the reason.
        let link = by_name(&stored, "Plans");
        assert_eq!(link.digest, None);
        let why = link.skipped_reason.unwrap();
        assert!(why.starts_with("reference:") && why.contains(LINK), "{why}");

        // The tenant's skipped attachments, as the console pages them: both, newest email
        // first, counted by reason; one per page with the cursor.
        let skipped = db
            .store
            .skipped_attachments(tenant.id, None, 50)
            .await
            .unwrap();
        let mut names: Vec<(&str, &str)> = skipped
            .iter()
            .map(|a| (a.name.as_str(), a.code.as_str()))
            .collect();
        names.sort();
        assert_eq!(names, [("Plans", "reference"), ("archive.zip", "over-cap")]);
        assert!(skipped
            .iter()
            .all(|a| a.subject == "Signed contract" && a.email_id == email));
        let counts = db.store.skipped_attachment_counts(tenant.id).await.unwrap();
        assert_eq!(
            counts,
            [
                ("over-cap".to_string(), 1),
                ("reference".to_string(), 1),
                ("unsupported".to_string(), 0),
                ("fetch-failed".to_string(), 0),
                ("other".to_string(), 0)
            ]
        );
        let page1 = db
            .store
            .skipped_attachments(tenant.id, None, 1)
            .await
            .unwrap();
        let cursor = (page1[0].email_id, page1[0].graph_id.as_str());
        let page2 = db
            .store
            .skipped_attachments(tenant.id, Some(cursor), 1)
            .await
            .unwrap();
        assert_eq!(page2.len(), 1);
        assert_ne!(page1[0].graph_id, page2[0].graph_id);
        assert!(db
            .store
            .skipped_attachments(tenant.id, Some((page2[0].email_id, &page2[0].graph_id)), 1)
            .await
            .unwrap()
            .is_empty());

        // An attached message: stored as its `$value` (MIME).
        let item = by_name(&stored, "Original request");
        assert_eq!(item.content_type, "message/rfc822");
        let mime = value_from_sim(&s, upn0, id0, &item.graph_id).await;
        assert_eq!(item.digest.as_deref(), Some(hex(&mime).as_str()));
        assert!(db.store.blob(&hex(&mime)).await.unwrap().unwrap() == mime);

        // The same document in another email is the same blob, stored once.
        let other = db
            .store
            .email_id_of(ids[&alice], &second_id)
            .await
            .unwrap()
            .unwrap();
        let countersigned = by_name(
            &db.store.attachments(other).await.unwrap(),
            "contract-countersigned.pdf",
        );
        assert_eq!(
            countersigned.digest,
            by_name(&stored, "contract.pdf").digest
        );
        assert_eq!(
            db.store.blob_count().await.unwrap(),
            3,
            "contract, scan, message"
        );

        // Settled attachments are not fetched again: change the simulator's bytes, make the
        // message change (so delta sends it again), expire the delta state; nothing moves.
        let original = {
            let mut w = s.sim.world.lock().unwrap();
            let mut original = Vec::new();
            for (upn, id) in &first_copies {
                let u = w.tenants[0].user_by_key(upn).unwrap();
                let key = w.message_in_mailbox(0, u, id).unwrap();
                let atts = &mut w.messages.get_mut(&key).unwrap().content.attachments;
                original = atts.clone();
                for a in atts.iter_mut() {
                    if let AttachmentKind::File { content, .. } = &mut a.kind {
                        *content = Content::Bytes(Arc::from(&b"altered"[..]));
                    }
                }
            }
            original
        };
        s.ctl(
            Method::POST,
            "messages/update",
            json!({"user": upn0, "id": id0, "is_read": true}),
        )
        .await;
        s.ctl(Method::POST, "sync-state/expire", json!({})).await;
        let again = run_tenant(&env, &tenant, None, "manual").await.unwrap();
        assert!(
            again.mailbox_errors.is_empty(),
            "{:?}",
            again.mailbox_errors
        );
        assert_eq!(
            db.store.attachments(email).await.unwrap(),
            stored,
            "nothing refetched"
        );
        assert_eq!(db.store.blob_count().await.unwrap(), 3);
        assert_eq!(db.store.email_count(tenant.id).await.unwrap(), 2);

        // A raised cap makes the skipped file worth fetching: the next pass stores it.
        {
            let mut w = s.sim.world.lock().unwrap();
            let u = w.tenants[0].user_by_key(upn0).unwrap();
            let key = w.message_in_mailbox(0, u, id0).unwrap();
            w.messages.get_mut(&key).unwrap().content.attachments = original;
        }
        let mut settings = db.store.settings(tenant.id).await.unwrap();
        settings.attachment_cap_bytes = 8 * 1024 * 1024;
        db.store.set_settings(tenant.id, &settings).await.unwrap();
        s.ctl(
            Method::POST,
            "messages/update",
            json!({"user": upn0, "id": id0, "is_read": false}),
        )
        .await;
        run_tenant(&env, &tenant, None, "manual").await.unwrap();
        let now = db.store.attachments(email).await.unwrap();
        let zip = by_name(&now, "archive.zip");
        assert_eq!(
            zip.digest.as_deref(),
            Some(hex(&truth_bytes(&s, upn0, id0, "archive.zip")).as_str())
        );
        assert_eq!(zip.skipped_reason, None);
        assert_eq!(now.len(), 5);
        let skipped = db
            .store
            .skipped_attachments(tenant.id, None, 50)
            .await
            .unwrap();
        assert_eq!(
            skipped.len(),
            1,
            "only the link is left skipped: {skipped:?}"
        );
        assert_eq!(skipped[0].code, "reference");
        assert_eq!(db.store.blob_count().await.unwrap(), 4);
        db.drop_db().await;
    }
}

fn tenant_row() -> NewTenant {
    NewTenant {
        org: "acme".into(),
        name: "main".into(),
        ms_tenant: "contoso.example".into(),
        authority: "https://localhost:8765".into(),
        graph_url: "https://localhost:8765/v1.0".into(),
        client_id: "11111111-2222-4333-8444-555555555555".into(),
        auth_mode: AuthMode::App,
    }
}

fn record(graph_id: &str, imid: &str, attachments: AttachmentSet) -> EmailRecord {
    EmailRecord {
        graph_id: graph_id.into(),
        internet_message_id: imid.into(),
        conversation_id: "conv".into(),
        subject: "Contract".into(),
        sender: SENDER.into(),
        sent_ms: 1_760_000_000_000,
        received_ms: 1_760_000_001_000,
        recipients: vec![],
        record: "{}".into(),
        decided_by: "test".into(),
        attachments,
    }
}

fn stored(id: &str, name: &str, bytes: &'static [u8]) -> AttachmentRecord {
    AttachmentRecord {
        graph_id: id.into(),
        name: name.into(),
        content_type: "application/pdf".into(),
        size: bytes.len() as i64,
        outcome: AttachmentOutcome::Stored(Blob {
            digest: hex(bytes),
            bytes: bytes::Bytes::from_static(bytes),
        }),
    }
}

fn failed(id: &str, name: &str, size: i64) -> AttachmentRecord {
    AttachmentRecord {
        graph_id: id.into(),
        name: name.into(),
        content_type: "application/pdf".into(),
        size,
        outcome: AttachmentOutcome::Skipped("fetch-failed: Graph answered 500".into()),
    }
}

async fn commit(store: &Store, t: &Tenant, mailbox_id: i64, upserts: Vec<EmailRecord>) {
    store
        .commit_page(&PageCommit {
            org_id: t.org_id,
            tenant_id: t.id,
            mailbox_id,
            folder: "inbox".into(),
            upserts,
            removals: vec![],
            exclusions: vec![],
            failures: vec![],
            cursor: Some(Cursor {
                link: "next".into(),
                complete: false,
                round_started_ms: 1,
                full: false,
            }),
            cursor_key: None,
            run_id: None,
            lease: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn one_email_from_several_mailboxes_keeps_one_set_of_attachments_on_both_databases() {
    for db in TestDb::both().await {
        let s = &db.store;
        let t = s.upsert_tenant(&tenant_row()).await.unwrap();
        let mut mailboxes = Vec::new();
        for address in ["alice@contoso.example", "bob@contoso.example"] {
            mailboxes.push(
                s.upsert_mailbox(&NewMailbox {
                    tenant_id: t.id,
                    graph_id: address.into(),
                    address: address.into(),
                    display_name: address.into(),
                    kind: MailboxKind::Person,
                })
                .await
                .unwrap(),
            );
        }
        let key = |imid: &str| record("x", imid, AttachmentSet::Untouched).correlation_key();
        // Alice's copy: a.pdf stored, b.pdf failed.
        commit(
            s,
            &t,
            mailboxes[0],
            vec![record(
                "m-alice",
                "<one@x>",
                AttachmentSet::Listed(vec![
                    stored("att-a-alice", "a.pdf", b"first document"),
                    failed("att-b-alice", "b.pdf", 15),
                ]),
            )],
        )
        .await;
        let email = s
            .email_id_of(mailboxes[0], "m-alice")
            .await
            .unwrap()
            .unwrap();
        assert!(
            s.settled_attachments(t.id, &[key("<one@x>")], CAP)
                .await
                .unwrap()
                .is_empty(),
            "a failed fetch is worth another try"
        );
        // Bob's copy (Graph gives attachments other ids there): a.pdf fails this time, b.pdf
        // comes through. The email keeps both, once each.
        commit(
            s,
            &t,
            mailboxes[1],
            vec![record(
                "m-bob",
                "<one@x>",
                AttachmentSet::Listed(vec![
                    failed("att-a-bob", "a.pdf", 14),
                    stored("att-b-bob", "b.pdf", b"second document"),
                ]),
            )],
        )
        .await;
        assert_eq!(
            s.email_id_of(mailboxes[1], "m-bob").await.unwrap(),
            Some(email)
        );
        let rows = s.attachments(email).await.unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(by_name(&rows, "a.pdf").digest, Some(hex(b"first document")));
        assert_eq!(
            by_name(&rows, "b.pdf").digest,
            Some(hex(b"second document"))
        );
        assert!(rows.iter().all(|r| r.skipped_reason.is_none()), "{rows:?}");
        assert_eq!(
            s.settled_attachments(t.id, &[key("<one@x>")], CAP)
                .await
                .unwrap()
                .len(),
            1
        );
        // A list that fails later leaves what is known; replaying a page changes nothing.
        commit(
            s,
            &t,
            mailboxes[0],
            vec![record(
                "m-alice",
                "<one@x>",
                AttachmentSet::ListFailed("Graph answered 500".into()),
            )],
        )
        .await;
        assert_eq!(s.attachments(email).await.unwrap(), rows);
        // Another email whose list failed: recorded, not bare. The same bytes elsewhere: one blob.
        commit(
            s,
            &t,
            mailboxes[0],
            vec![
                record(
                    "m-two",
                    "<two@x>",
                    AttachmentSet::ListFailed("not found".into()),
                ),
                record(
                    "m-three",
                    "<three@x>",
                    AttachmentSet::Listed(vec![stored("att-c", "copy.pdf", b"first document")]),
                ),
            ],
        )
        .await;
        let two = s.email_id_of(mailboxes[0], "m-two").await.unwrap().unwrap();
        let placeholder = s.attachments(two).await.unwrap();
        assert_eq!(placeholder.len(), 1);
        assert_eq!(placeholder[0].graph_id, LIST_FAILED_ID);
        assert!(placeholder[0]
            .skipped_reason
            .as_deref()
            .unwrap()
            .starts_with("fetch-failed: listing the attachments: not found"));
        assert_eq!(s.blob_count().await.unwrap(), 2);
        db.drop_db().await;
    }
}

#[tokio::test]
async fn a_failed_fetch_is_recorded_for_its_email_alone() {
    let s = TestSim::start(empty_tenant()).await;
    let upn = s.mailbox(0)["upn"].as_str().unwrap().to_string();
    let kept = copies(
        &deliver(
            &s,
            &[&upn],
            "Kept",
            json!([{"name": "a.txt", "size": 10, "content_type": "text/plain"}]),
        )
        .await,
    )[0]
    .1
    .clone();
    let gone = copies(&deliver(&s, &[&upn], "Gone", json!([{"name": "b.txt", "size": 10}])).await)
        [0]
    .1
    .clone();
    // Deleted after delta reported it and before its attachments were listed.
    s.ctl(
        Method::POST,
        "messages/delete",
        json!({"user": upn, "id": gone}),
    )
    .await;
    let http = http_client(None).unwrap();
    let tokens = Arc::new(TokenCache::new(
        AppCredentials {
            tenant_name: "main".into(),
            authority: s.base.clone(),
            ms_tenant: s.tenant_id.clone(),
            client_id: s.client_id.clone(),
            secrets: vec![s.secret.clone()],
        },
        http.clone(),
    ));
    let client = GraphClient::new(
        http,
        tokens,
        ClientConfig {
            graph_url: s.graph.clone(),
            base_backoff: Duration::from_millis(20),
            ..ClientConfig::default()
        },
    );
    let sets = Fetcher {
        client: &client,
        mailbox_graph_id: &upn,
        mailbox: &upn,
        cap_bytes: CAP as u64,
    }
    .fetch(&[kept.clone(), gone])
    .await
    .unwrap();
    match &sets[0] {
        AttachmentSet::Listed(list) => {
            assert_eq!(list.len(), 1);
            assert_eq!(list[0].content_type, "text/plain");
            match &list[0].outcome {
                AttachmentOutcome::Stored(blob) => {
                    assert_eq!(blob.bytes.to_vec(), truth_bytes(&s, &upn, &kept, "a.txt"))
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    match &sets[1] {
        AttachmentSet::ListFailed(why) => assert!(why.contains("not found"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn attachments_come_through_faults_within_the_mailbox_limit_on_both_databases() {
    for db in TestDb::both().await {
        // Files above 1 KB are listed without bytes here, so most of them take `$value`.
        let s = TestSim::start_with(
            m365sync_sim::Origin::Generated(empty_tenant()),
            m365sync_sim::config::ProtocolConfig {
                inline_attachment_limit: 1024,
                ..Default::default()
            },
            None,
        )
        .await;
        let (tenant, ids) = declare(&db.store, &s).await;
        let mut upns: Vec<&String> = ids.keys().collect();
        upns.sort();
        let alice = upns[0].clone();
        let mut messages = Vec::new();
        for n in 0..8 {
            let d = deliver(
                &s,
                &[&alice],
                &format!("Statement {n}"),
                json!([{"name": "note.txt", "size": 500}, {"name": "statement.pdf", "size": 5_000},
                       {"name": "ledger.xlsx", "size": 50_000}]),
            )
            .await;
            messages.push(copies(&d)[0].1.clone());
        }
        s.ctl(
            Method::PUT,
            "faults",
            json!({"rate_429": 0.03, "rate_503": 0.03, "rate_reset": 0.03,
            "rate_malformed": 0.2, "latency_ms": 5, "seed": 7}),
        )
        .await;
        let report = run_tenant(&crate::sync_email::env(&db.store), &tenant, None, "manual")
            .await
            .unwrap();
        assert!(
            report.mailbox_errors.is_empty(),
            "{:?}",
            report.mailbox_errors
        );
        for id in &messages {
            let email = db
                .store
                .email_id_of(ids[&alice], id)
                .await
                .unwrap()
                .unwrap();
            let stored = db.store.attachments(email).await.unwrap();
            assert_eq!(stored.len(), 3, "{stored:?}");
            for a in stored {
                let truth = truth_bytes(&s, &alice, id, &a.name);
                assert_eq!(a.digest, Some(hex(&truth)), "{} on {}", a.name, db.url);
            }
        }
        let stats: Value = s.ctl(Method::GET, "stats", json!({})).await;
        assert_eq!(
            stats["violations"], 0,
            "the mailbox's concurrency limit held: {stats}"
        );
        let injected = [
            "injected_429",
            "injected_503",
            "injected_reset",
            "injected_malformed",
        ]
        .iter()
        .map(|k| stats[k].as_u64().unwrap())
        .sum::<u64>();
        assert!(injected > 0, "faults were injected: {stats}");
        db.drop_db().await;
    }
}
