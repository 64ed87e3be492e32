//! A tenant's connectivity test and activation through the admin API (issue 16), against the
//! simulator over real HTTP on loopback, on SQLite and PostgreSQL: the checklist answers step by
//! step (a wrong secret named at the token step), a tenant failing it is not activated (409 with
//! the checklist), a passing one is and its first run syncs; another org's admin gets 404 and a
//! user token 403.

use std::time::Duration;

use m365sync::service::{Service, ServiceOptions};
use m365sync::sync::stop::stop_pair;
use m365sync_store::tenants::{AuthMode, NewTenant, SecretKind, TenantSettings};
use reqwest::Method;
use serde_json::json;

use crate::roles::{Api, ADMIN};
use crate::support::{small, TestDb, TestSim};
use crate::sync_email::{declare_with, env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_tested_and_activated_through_the_api_and_syncs() {
    for db in TestDb::both().await {
        let s = TestSim::start(small()).await;
        let (main, _) = declare_with(&db.store, &s, &TenantSettings::default()).await;
        // A second tenant of the same org whose secret is wrong.
        let wrong = db
            .store
            .upsert_tenant(&NewTenant {
                org: "acme".into(),
                name: "wrong".into(),
                ms_tenant: s.tenant_id.clone(),
                authority: s.base.clone(),
                graph_url: s.graph.clone(),
                client_id: s.client_id.clone(),
                auth_mode: AuthMode::App,
            })
            .await
            .unwrap();
        db.store
            .put_secret(wrong.id, SecretKind::ClientSecret, "typo", "not-the-secret")
            .await
            .unwrap();
        db.store
            .upsert_tenant(&NewTenant {
                org: "globex".into(),
                name: "eu".into(),
                ms_tenant: "globex.example".into(),
                authority: "http://127.0.0.1:9".into(),
                graph_url: "http://127.0.0.1:9/v1.0".into(),
                client_id: "globex".into(),
                auth_mode: AuthMode::App,
            })
            .await
            .unwrap();
        let alice = s.truth()["tenants"][0]["mailboxes"][0]["upn"]
            .as_str()
            .unwrap()
            .to_string();

        let (handle, stop) = stop_pair();
        let mut opts = ServiceOptions::new(Some("127.0.0.1:0".parse().unwrap()), ADMIN.into());
        opts.workers = 2;
        opts.poll = Duration::from_millis(200);
        let service = Service::start(env(&db.store), opts, stop).await.unwrap();
        let api = Api {
            base: format!("http://{}", service.admin_addr.unwrap()),
            http: reqwest::Client::new(),
        };
        let acme_admin = api.token("acme", json!({})).await;
        let globex_admin = api.token("globex", json!({})).await;
        let user = api
            .token("acme", json!({"tenant": "main", "user": alice}))
            .await;

        // Scoping first: nothing below may have been done by these.
        for path in [
            "/api/orgs/acme/tenants/main/test",
            "/api/orgs/acme/tenants/main/activate",
        ] {
            let (st, body) = api
                .call(Method::POST, path, Some(&globex_admin), None)
                .await;
            assert_eq!(st, 404, "{path}: {body}");
            assert!(
                body["error"].as_str().unwrap().contains("no org 'acme'"),
                "{body}"
            );
            let (st, body) = api.call(Method::POST, path, Some(&user), None).await;
            assert_eq!(st, 403, "{path}: {body}");
            assert_eq!(api.call(Method::POST, path, None, None).await.0, 401);
        }
        assert_eq!(
            db.store.tenant("acme", "main").await.unwrap().activated_ms,
            None
        );

        // The wrong secret: the checklist names the token step, the rest is skipped; activation
        // is refused with the checklist and changes nothing.
        let (st, report) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants/wrong/test",
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 200, "{report}");
        assert_eq!(report["ok"], false, "{report}");
        assert_eq!(report["steps"][0]["name"], "token");
        assert_eq!(report["steps"][0]["status"], "failed", "{report}");
        assert_eq!(report["steps"][1]["status"], "skipped", "{report}");
        assert!(
            !report["steps"][0]["fix"].as_str().unwrap().is_empty(),
            "the failed step says what to fix: {report}"
        );
        assert!(!report.to_string().contains("not-the-secret"));
        let (st, refused) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants/wrong/activate",
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 409, "{refused}");
        let words = refused["error"].as_str().unwrap();
        assert!(
            words.contains("tenant acme/wrong failed its connectivity test")
                && words.contains("?force=true"),
            "{refused}"
        );
        assert_eq!(refused["report"]["steps"][0]["status"], "failed");
        assert_eq!(
            db.store.tenant("acme", "wrong").await.unwrap().activated_ms,
            None
        );
        let (st, body) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants/main/activate?force=maybe",
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 400, "{body}");

        // The right secret: every step passes, activation answers what it did, and the first
        // run syncs.
        let (st, report) = api
            .call(
                Method::POST,
                &format!("/api/orgs/acme/tenants/main/test?mailbox={alice}"),
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 200, "{report}");
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["steps"].as_array().unwrap().len(), 3, "{report}");
        let (st, done) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants/main/activate",
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 200, "{done}");
        assert_eq!(done["tenant"], "acme/main");
        assert_eq!(done["newly_activated"], true, "{done}");
        let boxes = db.store.mailboxes(main.id).await.unwrap();
        assert_eq!(done["mailboxes"], boxes.len(), "{done}");
        assert!(db
            .store
            .tenant("acme", "main")
            .await
            .unwrap()
            .activated_ms
            .is_some());
        let mut finished = None;
        for _ in 0..600 {
            let (_, runs) = api
                .call(
                    Method::GET,
                    "/api/tenants/acme/main/runs",
                    Some(&acme_admin),
                    None,
                )
                .await;
            if let Some(r) = runs
                .as_array()
                .and_then(|r| r.iter().find(|r| !r["finished_ms"].is_null()))
            {
                finished = Some(r.clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let run = finished.expect("the activated tenant's first run finished");
        assert_eq!(run["status"], "succeeded", "{run}");
        assert!(run["synced"].as_i64().unwrap() > 0, "{run}");
        // Activating again changes nothing.
        let (st, again) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants/main/activate",
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(st, 200, "{again}");
        assert_eq!(again["newly_activated"], false, "{again}");

        handle.stop();
        service.wait().await;
        db.drop_db().await;
    }
}
