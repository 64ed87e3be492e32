//! Roles and isolation through the admin API (E12), over real HTTP on loopback, on SQLite and
//! PostgreSQL: an org admin token reaches its org only, a user token reaches only that user's
//! review list and personal rules, and ids of other users' or orgs' records answer 404 exactly
//! like ids that do not exist.

use std::time::Duration;

use m365sync::service::{Service, ServiceOptions};
use m365sync::sync::stop::{stop_pair, StopHandle};
use m365sync_store::mailboxes::{MailboxKind, NewMailbox};
use m365sync_store::tenants::{AuthMode, NewTenant, Tenant};
use reqwest::Method;
use serde_json::{json, Value};

use crate::matching::{add_contact, world};
use crate::support::TestDb;
use crate::sync_email::env;

pub const ADMIN: &str = "service-admin-token-for-tests";

/// The admin API over HTTP, for this file and the calendar API's tests.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A new token of `org` (`{}`: its admin; `{"tenant", "user"}`: a user), minted by the
    /// service admin; asserts it was created.
    pub async fn token(&self, org: &str, body: Value) -> String {
        let (st, t) = self
            .call(
                Method::POST,
                &format!("/api/orgs/{org}/tokens"),
                Some(ADMIN),
                Some(body),
            )
            .await;
        assert_eq!(st, 201, "{t}");
        t["token"].as_str().unwrap().to_string()
    }
}

/// The service over `db` (one worker, a fast tick) with [`ADMIN`] as its admin token, and its
/// API on loopback.
pub async fn serve(db: &TestDb) -> (Service, StopHandle, Api) {
    serve_with(db, 1).await
}

/// [`serve`] with `workers` sync workers (tests that sync while they call the API).
pub async fn serve_with(db: &TestDb, workers: usize) -> (Service, StopHandle, Api) {
    let (handle, stop) = stop_pair();
    let mut opts = ServiceOptions::new(Some("127.0.0.1:0".parse().unwrap()), ADMIN.into());
    opts.workers = workers;
    opts.poll = Duration::from_millis(200);
    let service = Service::start(env(&db.store), opts, stop).await.unwrap();
    let api = Api {
        base: format!("http://{}", service.admin_addr.unwrap()),
        http: reqwest::Client::new(),
    };
    (service, handle, api)
}

/// Tenant `name` of `org` (app-only, `ORG.example`), whose Graph and identity nothing answers:
/// for tests of the API and the store that never sync it.
pub async fn offline_tenant(db: &TestDb, org: &str, name: &str) -> Tenant {
    db.store
        .upsert_tenant(&NewTenant {
            org: org.into(),
            name: name.into(),
            ms_tenant: format!("{org}.example"),
            authority: "http://127.0.0.1:9".into(),
            graph_url: "http://127.0.0.1:9/v1.0".into(),
            client_id: org.into(),
            auth_mode: AuthMode::App,
        })
        .await
        .unwrap()
}

/// A second org beside [`world`]'s acme: `globex`, with a tenant `eu` (whose Graph nothing
/// answers), a user `gus@globex.example` with his mailbox, and a contact of its own, for
/// isolation tests.
pub async fn globex(db: &TestDb) -> Tenant {
    let globex = offline_tenant(db, "globex", "eu").await;
    let gus = db
        .store
        .upsert_user(globex.id, "gus@globex.example", "Gus")
        .await
        .unwrap();
    let mailbox = db
        .store
        .upsert_mailbox(&NewMailbox {
            tenant_id: globex.id,
            graph_id: "gus".into(),
            address: "gus@globex.example".into(),
            display_name: "Gus".into(),
            kind: MailboxKind::Person,
        })
        .await
        .unwrap();
    db.store.link_mailbox(mailbox, gus).await.unwrap();
    add_contact(
        db,
        globex.org_id,
        "Globex client",
        Some("client@globex-client.example"),
        None,
        &[],
    )
    .await;
    globex
}

#[tokio::test]
async fn tokens_confine_org_admins_to_their_org_and_users_to_their_own_mail() {
    for db in TestDb::both().await {
        let w = world(&db).await;
        let globex = globex(&db).await;
        let (service, handle, api) = serve(&db).await;
        // The service's matcher links the synced mail by itself.
        let mut matched = false;
        for _ in 0..100 {
            if db.store.match_queue_len(w.tenant.id).await.unwrap() == 0 {
                matched = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(matched, "the service's matching task drained the queue");

        // Tokens: org admins by the service admin, users by their org admin.
        let acme_admin = api.token("acme", json!({})).await;
        let globex_admin = api.token("globex", json!({})).await;
        let (st, body) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tokens",
                Some(&acme_admin),
                Some(json!({})),
            )
            .await;
        assert_eq!(st, 403, "an org admin cannot mint org admin tokens: {body}");
        let user_token = |email: &str| json!({"tenant": "main", "user": email});
        let (st, alice) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tokens",
                Some(&acme_admin),
                Some(user_token(&w.alice)),
            )
            .await;
        assert_eq!(st, 201, "{alice}");
        let alice = alice["token"].as_str().unwrap().to_string();
        let (_, bob) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tokens",
                Some(&acme_admin),
                Some(user_token(&w.bob)),
            )
            .await;
        let bob_id = bob["id"].as_i64().unwrap();
        let bob = bob["token"].as_str().unwrap().to_string();

        // No token, a wrong one.
        assert_eq!(
            api.call(Method::GET, "/api/tenants", None, None).await.0,
            401
        );
        assert_eq!(
            api.call(Method::GET, "/api/tenants", Some("m365s_not-a-token"), None)
                .await
                .0,
            401
        );

        // A user: their own review list only.
        let (st, me) = api.call(Method::GET, "/api/me", Some(&alice), None).await;
        assert_eq!((st, me["user"].as_str()), (200, Some(w.alice.as_str())));
        let (st, review) = api
            .call(Method::GET, "/api/me/review?limit=100", Some(&alice), None)
            .await;
        assert_eq!(st, 200, "{review}");
        let items = review["items"].as_array().unwrap();
        assert_eq!(items.len(), 5, "{review}");
        assert!(items.iter().all(|i| i["mailbox"] == w.alice.as_str()));
        let (_, paged) = api
            .call(Method::GET, "/api/me/review?limit=2", Some(&alice), None)
            .await;
        let next = paged["next"].as_str().unwrap().to_string();
        let (_, rest) = api
            .call(
                Method::GET,
                &format!("/api/me/review?limit=100&before={next}"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(
            paged["items"].as_array().unwrap().len() + rest["items"].as_array().unwrap().len(),
            5
        );
        let (_, by_domain) = api
            .call(
                Method::GET,
                "/api/me/review?domain=nowhere.example",
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(by_domain["items"].as_array().unwrap().len(), 3);
        for path in [
            "/api/tenants",
            "/api/logs",
            "/api/leases",
            "/metrics",
            "/api/tenants/acme/main/runs",
        ] {
            assert_eq!(
                api.call(Method::GET, path, Some(&alice), None).await.0,
                403,
                "{path}"
            );
        }
        let timeline = format!("/api/orgs/acme/contacts/{}/timeline", w.pat);
        assert_eq!(
            api.call(Method::GET, &timeline, Some(&alice), None).await.0,
            403
        );
        let runs = db.store.runs(w.tenant.id, 10).await.unwrap();
        let run_path = format!("/api/runs/{}", runs[0].id);
        // Refused for the role, as on every admin route (not a 404 that would differ from a
        // missing run's).
        assert_eq!(
            api.call(Method::GET, &run_path, Some(&alice), None).await.0,
            403
        );

        // Bob cannot map Alice's mail by id; Alice can.
        let stranger = w.email["m6-0 from a stranger"];
        let map = json!({"emails": [stranger], "contact": w.sam, "add_address": false});
        let (st, body) = api
            .call(
                Method::POST,
                "/api/me/review/map",
                Some(&bob),
                Some(map.clone()),
            )
            .await;
        assert_eq!(st, 404, "{body}");
        let (st, body) = api
            .call(Method::POST, "/api/me/review/map", Some(&alice), Some(map))
            .await;
        assert_eq!((st, body["mapped"].as_i64()), (200, Some(1)), "{body}");

        // Personal rules: each user their own.
        let rule = json!({"effect": "exclude", "target": "sender", "pattern": "*@noise.example"});
        let (st, created) = api
            .call(Method::POST, "/api/me/rules", Some(&alice), Some(rule))
            .await;
        assert_eq!(st, 201, "{created}");
        let rule_path = format!("/api/me/rules/{}", created["id"]);
        let (_, bobs) = api
            .call(Method::GET, "/api/me/rules", Some(&bob), None)
            .await;
        assert_eq!(bobs, json!([]));
        assert_eq!(
            api.call(Method::DELETE, &rule_path, Some(&bob), None)
                .await
                .0,
            404
        );
        assert_eq!(
            api.call(Method::DELETE, &rule_path, Some(&alice), None)
                .await
                .0,
            200
        );

        // The acme admin: its org's timelines; the globex admin: nothing of acme's.
        let (st, t) = api
            .call(
                Method::GET,
                &format!("{timeline}?limit=2"),
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 200, "{t}");
        assert_eq!(t["items"].as_array().unwrap().len(), 2);
        assert_eq!(
            api.call(Method::GET, &run_path, Some(&acme_admin), None)
                .await
                .0,
            200
        );
        // Another org by path answers exactly as an org that does not exist.
        let (st, foreign) = api
            .call(Method::GET, &timeline, Some(&globex_admin), None)
            .await;
        let (missing_st, missing) = api
            .call(
                Method::GET,
                &timeline.replace("/orgs/acme/", "/orgs/nosuch/"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!((st, missing_st), (404, 404), "{foreign} {missing}");
        assert_eq!(
            foreign["error"].as_str().unwrap().replace("acme", "X"),
            missing["error"].as_str().unwrap().replace("nosuch", "X")
        );
        let probe = format!("/api/orgs/globex/contacts/{}/timeline", w.pat);
        assert_eq!(
            api.call(Method::GET, &probe, Some(&globex_admin), None)
                .await
                .0,
            404
        );
        assert_eq!(
            api.call(Method::GET, &run_path, Some(&globex_admin), None)
                .await
                .0,
            404
        );
        // Listings: the caller's own org; another named is a missing org, never silently the
        // caller's own.
        let (_, tenants) = api
            .call(Method::GET, "/api/tenants", Some(&globex_admin), None)
            .await;
        let names: Vec<&str> = tenants
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["org"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["globex"]);
        for path in ["/api/tenants?org=acme", "/api/logs?org=acme"] {
            let (st, body) = api.call(Method::GET, path, Some(&globex_admin), None).await;
            assert_eq!(st, 404, "{path}: {body}");
            assert!(body.to_string().contains("no org 'acme'"), "{body}");
        }
        let (st, body) = api
            .call(Method::GET, "/api/tenants?org=nosuch", Some(ADMIN), None)
            .await;
        assert_eq!(st, 404, "a missing org is not an empty list: {body}");
        let (st, logs) = api
            .call(Method::GET, "/api/logs", Some(&globex_admin), None)
            .await;
        assert_eq!(st, 200, "{logs}");
        assert_eq!(
            logs,
            json!([]),
            "the globex admin reads only globex's log lines"
        );
        // A run asked of a tenant that will not sync is refused with the reason.
        let (st, body) = api
            .call(
                Method::POST,
                "/api/tenants/globex/eu/sync",
                Some(&globex_admin),
                None,
            )
            .await;
        assert_eq!(st, 409, "{body}");
        assert!(body.to_string().contains("not activated"), "{body}");
        db.store.set_tenant_enabled(globex.id, false).await.unwrap();
        let (st, body) = api
            .call(
                Method::POST,
                "/api/tenants/globex/eu/sync",
                Some(&globex_admin),
                None,
            )
            .await;
        assert_eq!(st, 409, "{body}");
        assert!(body.to_string().contains("is disabled"), "{body}");
        let map = json!({"emails": [w.email["m6-1 from a stranger"]], "contact": w.sam});
        assert_eq!(
            api.call(
                Method::POST,
                "/api/orgs/globex/review/map",
                Some(&globex_admin),
                Some(map)
            )
            .await
            .0,
            404
        );

        // Contacts through the API: the org admin edits them, the matcher follows the change.
        let newcomer = json!({"name": "Newcomer", "email": " Newcomer@Prospect.example "});
        let (st, created) = api
            .call(
                Method::POST,
                "/api/orgs/acme/contacts",
                Some(&acme_admin),
                Some(newcomer),
            )
            .await;
        assert_eq!(st, 201, "{created}");
        assert_eq!(created["email"], "newcomer@prospect.example");
        let contact_path = format!("/api/orgs/acme/contacts/{}", created["id"]);
        let mut linked = false;
        for _ in 0..100 {
            let (_, t) = api
                .call(
                    Method::GET,
                    &format!("{contact_path}/timeline"),
                    Some(&acme_admin),
                    None,
                )
                .await;
            if t["items"].as_array().map(|i| i.len()) == Some(2) {
                linked = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(linked, "the service re-matched the newcomer's two emails");
        assert_eq!(
            api.call(Method::GET, &contact_path, Some(&globex_admin), None)
                .await
                .0,
            404
        );
        let probe = format!("/api/orgs/globex/contacts/{}", created["id"]);
        assert_eq!(
            api.call(Method::GET, &probe, Some(&globex_admin), None)
                .await
                .0,
            404
        );
        assert_eq!(
            api.call(Method::DELETE, &probe, Some(&globex_admin), None)
                .await
                .0,
            404
        );
        let (st, _) = api
            .call(
                Method::POST,
                "/api/orgs/acme/contacts",
                Some(&alice),
                Some(json!({"name": "x"})),
            )
            .await;
        assert_eq!(st, 403, "users do not edit contacts");
        let (st, found) = api
            .call(
                Method::GET,
                "/api/me/contacts?filter=newcomer",
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(
            (st, found.as_array().map(|a| a.len())),
            (200, Some(1)),
            "{found}"
        );
        let (st, bad) = api
            .call(
                Method::POST,
                "/api/orgs/acme/contacts",
                Some(&acme_admin),
                Some(json!({"name": "Bad", "email": "not-an-address"})),
            )
            .await;
        assert_eq!(st, 400, "{bad}");
        let csv = api
            .http
            .get(format!(
                "{}/api/orgs/acme/contacts/export?format=csv",
                api.base
            ))
            .bearer_auth(&acme_admin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(csv.contains("newcomer@prospect.example"), "{csv}");
        assert!(
            !csv.contains("globex-client"),
            "another org's contacts are not exported"
        );
        let import = api
            .http
            .post(format!(
                "{}/api/orgs/acme/contacts/import?format=csv",
                api.base
            ))
            .bearer_auth(&acme_admin)
            .body(csv)
            .send()
            .await
            .unwrap();
        let report: Value = import.json().await.unwrap();
        assert_eq!(report["created"], 0, "{report}");
        assert_eq!(report["updated"], 0, "{report}");
        assert_eq!(
            api.call(Method::DELETE, &contact_path, Some(&acme_admin), None)
                .await
                .0,
            200
        );

        // A revoked token is refused from then on.
        let (st, _) = api
            .call(
                Method::DELETE,
                &format!("/api/orgs/acme/tokens/{bob_id}"),
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 200);
        assert_eq!(
            api.call(Method::GET, "/api/me", Some(&bob), None).await.0,
            401
        );

        handle.stop();
        service.wait().await;
        db.drop_db().await;
    }
}
