//! Email sent from the CRM through a linked mailbox (E15), end to end against the simulator
//! on SQLite and PostgreSQL: `m365sync mail send` with a small and a large attachment (an
//! upload session), a repeat with the same idempotency key sending nothing more, the sent copy
//! syncing back as the same CRM email with the requested link; a process aborted between
//! Graph's acceptance of the send and its commit, restarted, sends exactly once; the admin API
//! for an org admin and for a user from their own mailbox only, sent by the service's sender;
//! a storm of throttling and failures on the way sends each email once.

use std::io::Write;
use std::time::Duration;

use m365sync::sync::run::run_tenant;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Row;

use crate::admin_support::Admin;
use crate::matching::add_contact;
use crate::support::{small, TestDb, TestSim};
use crate::sync_email::{declare, env};

const CLIENT: &str = "client@example.com";

/// The simulator's sent log: sends of `mid`.
async fn sends_of(s: &TestSim, mid: &str) -> Vec<Value> {
    let log = s.ctl(Method::GET, "sent-mail", json!({})).await;
    log["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["internet_message_id"] == mid)
        .cloned()
        .collect()
}

/// (emails with this Message-ID, mailbox links of them).
async fn stored(store: &m365sync_store::Store, url: &str, mid: &str) -> (i64, i64) {
    let _ = store;
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let emails: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM emails WHERE internet_message_id = $1")
            .bind(mid)
            .fetch_one(&pool)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
    let links: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM email_mailboxes l JOIN emails e ON e.id = l.email_id WHERE e.internet_message_id = $1",
    )
    .bind(mid)
    .fetch_one(&pool)
    .await
    .unwrap()
    .try_get("n")
    .unwrap();
    pool.close().await;
    (emails, links)
}

fn people(s: &TestSim) -> (String, String) {
    (
        s.mailbox(1)["upn"].as_str().unwrap().to_string(),
        s.mailbox(2)["upn"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn mail_send_sends_once_and_its_sent_copy_syncs_back_as_the_same_email() {
    for db in TestDb::both().await {
        let a = Admin::new(db).await;
        let s = TestSim::start(small()).await;
        let (t, ids) = declare(&a.store, &s).await;
        let (alice, bob) = people(&s);
        let contact = add_contact(&a.db, t.org_id, "Client", Some(CLIENT), None, &[]).await;
        let body = a.dir.join("body.txt");
        std::fs::write(&body, "Please find the review attached.").unwrap();
        let note = a.dir.join("note.txt");
        std::fs::write(&note, "small file").unwrap();
        // Over 3 MB: goes through an upload session in byte ranges.
        let big = a.dir.join("report.pdf");
        let big_bytes: Vec<u8> = (0..4_500_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::File::create(&big)
            .unwrap()
            .write_all(&big_bytes)
            .unwrap();
        let regarding = format!("contact:{contact}");
        let args = |subject: &'static str| {
            vec![
                "mail".to_string(),
                "send".into(),
                "--org".into(),
                "acme".into(),
                "--tenant".into(),
                "main".into(),
                "--from".into(),
                alice.clone(),
                "--to".into(),
                bob.clone(),
                "--to".into(),
                CLIENT.into(),
                "--subject".into(),
                subject.into(),
                "--body-file".into(),
                body.display().to_string(),
                "--attach".into(),
                note.display().to_string(),
                "--attach".into(),
                big.display().to_string(),
                "--regarding".into(),
                regarding.clone(),
                "--idempotency-key".into(),
                "crm-activity-1001".into(),
                "--json".into(),
            ]
        };
        let run = |args: Vec<String>| {
            let a = &a;
            async move {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                a.run(&refs).await
            }
        };
        let first = run(args("Quarterly review")).await;
        assert!(first.ok, "{}", first.all());
        let row = first.json();
        assert_eq!(row["state"], "sent", "{row}");
        let mid = row["internet_message_id"].as_str().unwrap().to_string();
        assert!(
            mid.starts_with("<m365sync.") && mid.ends_with("@contoso.example>"),
            "{mid}"
        );
        let sends = sends_of(&s, &mid).await;
        assert_eq!(sends.len(), 1);
        assert_eq!(sends[0]["via"], "draft");
        let mut files: Vec<(String, u64)> = sends[0]["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f[0].as_str().unwrap().to_string(), f[1].as_u64().unwrap()))
            .collect();
        files.sort();
        assert_eq!(
            files,
            vec![
                ("note.txt".to_string(), 10),
                ("report.pdf".to_string(), 4_500_000)
            ]
        );

        // The same key again: the same row, nothing sent.
        let again = run(args("Quarterly review")).await;
        assert!(again.ok, "{}", again.all());
        assert_eq!(again.json()["id"], row["id"]);
        assert!(again.stderr.contains("used before"), "{}", again.stderr);
        assert_eq!(sends_of(&s, &mid).await.len(), 1);
        // The same key for another email is refused, naming the key.
        let other = run(args("Something else")).await;
        assert!(!other.ok);
        assert!(
            other.stderr.contains("crm-activity-1001"),
            "{}",
            other.stderr
        );
        assert_eq!(sends_of(&s, &mid).await.len(), 1);

        // A mailbox the tenant does not hold, and a disabled one, are refused before anything.
        let nobody = a
            .run(&[
                "mail",
                "send",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--from",
                "nobody@contoso.example",
                "--to",
                CLIENT,
                "--subject",
                "x",
                "--body-file",
                body.to_str().unwrap(),
            ])
            .await;
        assert!(!nobody.ok);
        assert!(
            nobody.stderr.contains("no mailbox nobody@contoso.example"),
            "{}",
            nobody.stderr
        );
        a.store.set_mailbox_enabled(ids[&bob], false).await.unwrap();
        let disabled = a
            .run(&[
                "mail",
                "send",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--from",
                bob.as_str(),
                "--to",
                CLIENT,
                "--subject",
                "x",
                "--body-file",
                body.to_str().unwrap(),
            ])
            .await;
        assert!(!disabled.ok);
        assert!(
            disabled.stderr.contains("is disabled"),
            "{}",
            disabled.stderr
        );
        a.store.set_mailbox_enabled(ids[&bob], true).await.unwrap();

        // The sync brings the sent copy (Alice's Sent Items) and Bob's received copy: one
        // email, two mailbox links, the outbox row pointing at it, linked to the contact.
        run_tenant(&env(&a.store), &t, None, "test").await.unwrap();
        assert_eq!(stored(&a.store, &a.db.url, &mid).await, (1, 2));
        let list = a
            .run(&["mail", "outbox", "list", "--org", "acme", "--json"])
            .await;
        assert!(list.ok, "{}", list.all());
        let items = list.json();
        let items = items.as_array().unwrap();
        assert_eq!(items.len(), 1, "one outbox row: the refused ones made none");
        let email_id = items[0]["email_id"]
            .as_i64()
            .expect("the row knows its email");
        let pool = sqlx::AnyPool::connect(&a.db.url).await.unwrap();
        let link = sqlx::query(
            "SELECT source FROM activity_matches WHERE kind = 'email' AND record_id = $1 AND contact_id = $2",
        )
        .bind(email_id)
        .bind(contact)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(link.len(), 1, "the requested link");
        assert_eq!(link[0].try_get::<String, _>("source").unwrap(), "manual");
        pool.close().await;
        // A second sync changes nothing: still one email.
        run_tenant(&env(&a.store), &t, None, "test").await.unwrap();
        assert_eq!(stored(&a.store, &a.db.url, &mid).await, (1, 2));

        // Over Exchange's 35 MB: refused before a row exists.
        let huge = a.dir.join("huge.bin");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(36 * 1024 * 1024)
            .unwrap();
        let too_big = a
            .run(&[
                "mail",
                "send",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--from",
                alice.as_str(),
                "--to",
                CLIENT,
                "--subject",
                "x",
                "--body-file",
                body.to_str().unwrap(),
                "--attach",
                huge.to_str().unwrap(),
            ])
            .await;
        assert!(!too_big.ok);
        assert!(too_big.stderr.contains("35 MB"), "{}", too_big.stderr);
        // Queued, then its mailbox disabled before the sender takes it: failed, with the
        // reason and what to do, and nothing sent.
        let queued = a
            .run(&[
                "mail",
                "send",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--from",
                bob.as_str(),
                "--to",
                CLIENT,
                "--subject",
                "Later",
                "--body-file",
                body.to_str().unwrap(),
                "--queue",
                "--json",
            ])
            .await;
        assert!(queued.ok, "{}", queued.all());
        assert_eq!(queued.json()["state"], "queued");
        let later = queued.json()["internet_message_id"]
            .as_str()
            .unwrap()
            .to_string();
        a.store.set_mailbox_enabled(ids[&bob], false).await.unwrap();
        let drained = a.run(&["mail", "outbox", "send"]).await;
        assert!(drained.ok, "{}", drained.all());
        let failed = a
            .run(&[
                "mail", "outbox", "list", "--org", "acme", "--state", "failed", "--json",
            ])
            .await;
        let failed = failed.json();
        assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
        assert!(
            failed[0]["error"].as_str().unwrap().contains("is disabled"),
            "{failed}"
        );
        assert!(sends_of(&s, &later).await.is_empty());
        a.finish().await;
    }
}

#[tokio::test]
async fn a_crash_between_the_send_and_its_commit_sends_exactly_once() {
    for db in TestDb::both().await {
        let a = Admin::new(db).await;
        // Claims run out after a second, so the restart can take the row over.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&a.config)
            .unwrap()
            .write_all(b"lease_secs = 1\n")
            .unwrap();
        let s = TestSim::start(small()).await;
        let (t, _) = declare(&a.store, &s).await;
        let (alice, _) = people(&s);
        let body = a.dir.join("body.txt");
        std::fs::write(&body, "Once only.").unwrap();
        let args = [
            "mail",
            "send",
            "--org",
            "acme",
            "--tenant",
            "main",
            "--from",
            alice.as_str(),
            "--to",
            CLIENT,
            "--subject",
            "Exactly once",
            "--body-file",
            body.to_str().unwrap(),
            "--idempotency-key",
            "crash-1",
            "--json",
        ];
        let crashed = a
            .run_env(&args, &[("M365SYNC_FAILPOINT", "mail-after-send")])
            .await;
        assert!(!crashed.ok, "the failpoint aborts: {}", crashed.all());
        assert!(
            crashed.stderr.contains("failpoint mail-after-send"),
            "{}",
            crashed.stderr
        );
        let rows = a
            .store
            .mails(&m365sync_store::mail_outbox::MailFilter::default())
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].state.as_str(),
            "sending",
            "the commit never happened"
        );
        let mid = rows[0].internet_message_id.clone();
        assert_eq!(sends_of(&s, &mid).await.len(), 1, "Graph accepted the send");

        // The restart (the same request, the same key) finds the message sent and sends nothing.
        let restarted = a.run(&args).await;
        assert!(restarted.ok, "{}", restarted.all());
        let row = restarted.json();
        assert_eq!(row["state"], "sent", "{row}");
        assert_eq!(row["attempts"], 2);
        assert_eq!(sends_of(&s, &mid).await.len(), 1, "sent exactly once");
        run_tenant(&env(&a.store), &t, None, "test").await.unwrap();
        assert_eq!(stored(&a.store, &a.db.url, &mid).await, (1, 1));
        a.finish().await;
    }
}

#[tokio::test]
async fn a_crash_before_the_send_leaves_a_draft_the_restart_finishes_and_sends_once() {
    for db in TestDb::both().await {
        let a = Admin::new(db).await;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&a.config)
            .unwrap()
            .write_all(b"lease_secs = 1\n")
            .unwrap();
        let s = TestSim::start(small()).await;
        declare(&a.store, &s).await;
        let (alice, _) = people(&s);
        let body = a.dir.join("body.txt");
        std::fs::write(&body, "Draft first.").unwrap();
        let file = a.dir.join("terms.txt");
        std::fs::write(&file, "terms and conditions").unwrap();
        let args = [
            "mail",
            "send",
            "--org",
            "acme",
            "--tenant",
            "main",
            "--from",
            alice.as_str(),
            "--to",
            CLIENT,
            "--subject",
            "Terms",
            "--body-file",
            body.to_str().unwrap(),
            "--attach",
            file.to_str().unwrap(),
            "--idempotency-key",
            "crash-2",
            "--json",
        ];
        let crashed = a
            .run_env(&args, &[("M365SYNC_FAILPOINT", "mail-before-send")])
            .await;
        assert!(!crashed.ok, "{}", crashed.all());
        assert!(
            crashed.stderr.contains("failpoint mail-before-send"),
            "{}",
            crashed.stderr
        );
        let mid = a
            .store
            .mails(&m365sync_store::mail_outbox::MailFilter::default())
            .await
            .unwrap()[0]
            .internet_message_id
            .clone();
        assert!(sends_of(&s, &mid).await.is_empty(), "nothing sent yet");
        let restarted = a.run(&args).await;
        assert!(restarted.ok, "{}", restarted.all());
        assert_eq!(restarted.json()["state"], "sent");
        let sends = sends_of(&s, &mid).await;
        assert_eq!(sends.len(), 1);
        assert_eq!(
            sends[0]["attachments"],
            json!([["terms.txt", 20]]),
            "the draft was finished, its file not added twice"
        );
        // One message with that Message-ID in the mailbox: the draft itself was sent.
        let token = s.token().await;
        let (_, _, found) = s
            .get(
                &format!(
                    "{}/users/{}/messages?$filter={}",
                    s.graph,
                    crate::support::enc(&alice),
                    crate::support::enc(&format!("internetMessageId eq '{mid}'"))
                ),
                &token,
                "",
            )
            .await;
        assert_eq!(found["value"].as_array().unwrap().len(), 1, "{found}");
        a.finish().await;
    }
}

#[tokio::test]
async fn throttling_and_failures_on_the_way_never_send_twice() {
    for db in TestDb::both().await {
        let a = Admin::new(db).await;
        let s = TestSim::start(small()).await;
        declare(&a.store, &s).await;
        let (alice, _) = people(&s);
        let body = a.dir.join("body.txt");
        std::fs::write(&body, "Through the storm.").unwrap();
        let big = a.dir.join("deck.pptx");
        std::fs::write(&big, vec![7u8; 3_500_000]).unwrap();
        // A third of Graph's answers are 429, 503, 504 or a dropped connection.
        s.ctl(
            Method::PUT,
            "faults",
            json!({"rate_429": 0.1, "rate_503": 0.1, "rate_504": 0.05, "rate_reset": 0.05, "seed": 7}),
        )
        .await;
        let mut mids = Vec::new();
        for i in 0..4 {
            let key = format!("storm-{i}");
            let subject = format!("Storm {i}");
            let run = a
                .run(&[
                    "mail",
                    "send",
                    "--org",
                    "acme",
                    "--tenant",
                    "main",
                    "--from",
                    alice.as_str(),
                    "--to",
                    CLIENT,
                    "--subject",
                    &subject,
                    "--body-file",
                    body.to_str().unwrap(),
                    "--attach",
                    big.to_str().unwrap(),
                    "--idempotency-key",
                    &key,
                    "--json",
                ])
                .await;
            assert!(run.ok, "{}", run.all());
            assert_eq!(run.json()["state"], "sent", "{}", run.stdout);
            mids.push(
                run.json()["internet_message_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        s.ctl(Method::PUT, "faults", json!({})).await;
        let stats = s.ctl(Method::GET, "stats", json!({})).await;
        let injected: u64 = [
            "injected_429",
            "injected_503",
            "injected_504",
            "injected_reset",
        ]
        .iter()
        .map(|k| stats[k].as_u64().unwrap())
        .sum();
        assert!(injected > 0, "the storm happened: {stats}");
        for mid in &mids {
            let sends = sends_of(&s, mid).await;
            assert_eq!(sends.len(), 1, "{mid}");
            assert_eq!(sends[0]["attachments"], json!([["deck.pptx", 3_500_000]]));
        }
        a.finish().await;
    }
}

#[tokio::test]
async fn the_api_sends_for_org_admins_and_for_users_from_their_own_mailbox_only() {
    for db in TestDb::both().await {
        let s = TestSim::start(small()).await;
        let (t, _) = declare(&db.store, &s).await;
        db.store.activate_tenant(t.id).await.unwrap();
        let (alice, bob) = people(&s);
        crate::roles::offline_tenant(&db, "globex", "eu").await;
        let (service, handle, api) = crate::roles::serve(&db).await;
        let acme_admin = api.token("acme", json!({})).await;
        let globex_admin = api.token("globex", json!({})).await;
        let alice_token = api
            .token("acme", json!({"tenant": "main", "user": alice}))
            .await;
        let path = "/api/orgs/acme/tenants/main/mail";
        let mail = json!({"from": alice, "to": [CLIENT], "subject": "From the CRM", "body": "<p>Hello</p>", "html": true,
            "attachments": [{"name": "a.txt", "content_type": "text/plain", "content_base64": "aGVsbG8="}]});
        let send = |token: String, path: String, body: Value, key: Option<&'static str>| {
            let api = &api;
            async move {
                let mut req = api
                    .http
                    .post(format!("{}{path}", api.base))
                    .bearer_auth(token)
                    .json(&body);
                if let Some(k) = key {
                    req = req.header("Idempotency-Key", k);
                }
                let resp = req.send().await.unwrap();
                let st = resp.status().as_u16();
                (st, resp.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let (st, row) = send(acme_admin.clone(), path.into(), mail.clone(), Some("api-1")).await;
        assert_eq!(st, 202, "{row}");
        let id = row["id"].as_i64().unwrap();
        let (st, again) = send(acme_admin.clone(), path.into(), mail.clone(), Some("api-1")).await;
        assert_eq!(st, 200, "a repeat answers the first row: {again}");
        assert_eq!(again["id"], id);
        // Another org's admin does not see this org; a user token is refused the admin route.
        let (st, _) = send(
            globex_admin.clone(),
            path.into(),
            mail.clone(),
            Some("api-2"),
        )
        .await;
        assert_eq!(st, 404);
        let (st, _) = send(
            alice_token.clone(),
            path.into(),
            mail.clone(),
            Some("api-3"),
        )
        .await;
        assert_eq!(st, 403);
        // A user sends from their own mailbox (the default) but not from a colleague's.
        let own = json!({"to": [CLIENT], "subject": "Mine", "body": "hi"});
        let (st, mine) = send(
            alice_token.clone(),
            "/api/me/mail".into(),
            own,
            Some("me-1"),
        )
        .await;
        assert_eq!(st, 202, "{mine}");
        assert_eq!(mine["from"], alice.as_str());
        let theirs = json!({"from": bob, "to": [CLIENT], "subject": "Not mine", "body": "hi"});
        let (st, refusal) = send(
            alice_token.clone(),
            "/api/me/mail".into(),
            theirs,
            Some("me-2"),
        )
        .await;
        assert_eq!(st, 404, "{refusal}");
        let (st, _) = send(
            acme_admin.clone(),
            "/api/me/mail".into(),
            json!({"to": [CLIENT]}),
            None,
        )
        .await;
        assert_eq!(st, 403, "an admin token is not a user");

        // The service's sender sends both, each once.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (st, list) = api.call(Method::GET, path, Some(&acme_admin), None).await;
            assert_eq!(st, 200);
            let items = list["items"].as_array().unwrap().clone();
            assert_eq!(items.len(), 2, "{list}");
            if items.iter().all(|i| i["state"] == "sent") {
                for i in &items {
                    let mid = i["internet_message_id"].as_str().unwrap();
                    assert_eq!(sends_of(&s, mid).await.len(), 1);
                }
                break;
            }
            assert!(items.iter().all(|i| i["state"] != "failed"), "{list}");
            assert!(std::time::Instant::now() < deadline, "not sent: {list}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // A user lists and reads the emails of their own mailbox (the admin's one from Alice's
        // mailbox included), and no one else's.
        let (st, mine_list) = api
            .call(Method::GET, "/api/me/mail", Some(&alice_token), None)
            .await;
        assert_eq!(st, 200);
        assert_eq!(mine_list["items"].as_array().unwrap().len(), 2);
        let (st, _) = api
            .call(
                Method::GET,
                &format!("/api/me/mail/{id}"),
                Some(&alice_token),
                None,
            )
            .await;
        assert_eq!(st, 200);
        let bob_token = api
            .token("acme", json!({"tenant": "main", "user": bob}))
            .await;
        let (st, bobs) = api
            .call(Method::GET, "/api/me/mail", Some(&bob_token), None)
            .await;
        assert_eq!(st, 200);
        assert_eq!(bobs["items"].as_array().unwrap().len(), 0);
        let (st, _) = api
            .call(
                Method::GET,
                &format!("/api/me/mail/{id}"),
                Some(&bob_token),
                None,
            )
            .await;
        assert_eq!(st, 404, "Alice's email is not Bob's");
        let (st, one) = api
            .call(
                Method::GET,
                &format!("{path}/{id}"),
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 200);
        assert_eq!(one["state"], "sent");
        handle.stop();
        service.wait().await;
        db.drop_db().await;
    }
}
