//! A tenant's setup through the admin API (issue 16), against the simulator over real HTTP on
//! loopback, on SQLite and PostgreSQL: the checklist answers step by step (a wrong secret named
//! at the token step), a tenant failing it is not activated (409 with the checklist), a passing
//! one is and its first run syncs; a tenant declared with its secret, its users imported from
//! Entra's CSV line by line, rules at org and tenant level, a mailbox switched off and on.
//! Another org's admin gets 404 and a user token 403 on every route.

use std::time::Duration;

use m365sync_store::rules::RuleScope;
use m365sync_store::tenants::{AuthMode, NewTenant, SecretKind, TenantSettings};
use reqwest::Method;
use serde_json::json;

use crate::roles::ADMIN;
use crate::support::{small, TestDb, TestSim};
use crate::sync_email::declare_with;

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
        crate::roles::offline_tenant(&db, "globex", "eu").await;
        let alice = s.truth()["tenants"][0]["mailboxes"][0]["upn"]
            .as_str()
            .unwrap()
            .to_string();

        let (service, handle, api) = crate::roles::serve_with(&db, 2).await;
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
        // The runs filtered by age and errors: the succeeded run is in the last hour, not
        // among the errors, not after tomorrow; a `since` that is no age or date is refused.
        let ids = |runs: &serde_json::Value| -> Vec<i64> {
            runs.as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap())
                .collect()
        };
        let tomorrow = chrono::Utc::now().date_naive() + chrono::Days::new(1);
        for (query, has_it) in [
            ("since=1h".to_string(), true),
            ("since=1h&errors_only=1".to_string(), false),
            (format!("since={tomorrow}"), false),
        ] {
            let (st, runs) = api
                .call(
                    Method::GET,
                    &format!("/api/tenants/acme/main/runs?{query}"),
                    Some(&acme_admin),
                    None,
                )
                .await;
            assert_eq!(st, 200, "{query}: {runs}");
            let run_id = run["id"].as_i64().unwrap();
            assert_eq!(ids(&runs).contains(&run_id), has_it, "{query}: {runs}");
        }
        let (st, refused) = api
            .call(
                Method::GET,
                "/api/tenants/acme/main/runs?since=last-week",
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 400, "{refused}");
        assert!(
            refused["error"].as_str().unwrap().contains("since must be"),
            "{refused}"
        );
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

/// The rows of an Entra "Download users" CSV for `upns`, then a row that is no address, a
/// disabled account and an address the directory does not know (lines 2.., then the three).
fn entra_csv(upns: &[String]) -> String {
    let mut csv = String::from(
        "\u{feff}id,userPrincipalName,displayName,surname,mail,givenName,userType,jobTitle,department,accountEnabled,usageLocation\r\n",
    );
    for u in upns {
        csv.push_str(&format!(",{u},{u},,{u},,Member,,,True,GB\r\n"));
    }
    csv.push_str(",not an address,Broken,,,,Member,,,True,\r\n");
    csv.push_str(
        ",departed@contoso.example,Departed,,departed@contoso.example,,Member,,,False,\r\n",
    );
    csv.push_str(",nobody@contoso.example,Nobody,,nobody@contoso.example,,Member,,,True,\r\n");
    csv
}

/// The setup assistant's other steps through the API, on both databases: a tenant declared with
/// its secret (the secret in no answer; a second declaration 409 in the CLI's words), its users
/// imported from Entra's CSV with a result per line (a bad line among them), exclusion rules at
/// org and tenant level (each level's own; an org rule then excludes mail in the first sync),
/// a mailbox disabled and enabled; another org's admin gets 404 and a user token 403 on each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_declared_imported_given_rules_and_switched_through_the_api() {
    const SECRET_LABEL: &str = "api-2026-12";
    for db in TestDb::both().await {
        let s = TestSim::start(small()).await;
        // The org exists with its first tenant; the second is declared through the API.
        let (_main, _) = declare_with(&db.store, &s, &TenantSettings::default()).await;
        crate::roles::offline_tenant(&db, "globex", "eu").await;
        let upns: Vec<String> = s.truth()["tenants"][0]["mailboxes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "person")
            .map(|m| m["upn"].as_str().unwrap().to_string())
            .collect();
        assert!(upns.len() >= 2, "{upns:?}");
        let alice = upns[0].clone();

        let (service, handle, api) = crate::roles::serve_with(&db, 2).await;
        let acme_admin = api.token("acme", json!({})).await;
        let globex_admin = api.token("globex", json!({})).await;
        let user = api
            .token("acme", json!({"tenant": "main", "user": alice}))
            .await;
        let declaration = json!({
            "name": "second",
            "ms_tenant": s.tenant_id,
            "client_id": s.client_id,
            "secret": s.secret,
            "secret_label": SECRET_LABEL,
            "authority": s.base,
            "graph_url": s.graph,
        });

        // Scoping first: nothing below may have been done by these.
        let rule = json!({"effect": "exclude", "target": "sender", "pattern": "*@x.example"});
        let scoped: Vec<(Method, &str, Option<serde_json::Value>)> = vec![
            (
                Method::POST,
                "/api/orgs/acme/tenants",
                Some(declaration.clone()),
            ),
            (
                Method::POST,
                "/api/orgs/acme/tenants/main/users/import",
                None,
            ),
            (Method::GET, "/api/orgs/acme/rules", None),
            (Method::POST, "/api/orgs/acme/rules", Some(rule.clone())),
            (Method::DELETE, "/api/orgs/acme/rules/1", None),
            (Method::GET, "/api/orgs/acme/tenants/main/rules", None),
            (
                Method::POST,
                "/api/orgs/acme/tenants/main/rules",
                Some(rule.clone()),
            ),
            (Method::DELETE, "/api/orgs/acme/tenants/main/rules/1", None),
        ];
        let switch = format!("/api/tenants/acme/main/mailboxes/{alice}/disable");
        let scoped = scoped.into_iter().chain([
            (Method::POST, switch.as_str(), None),
            (
                Method::GET,
                "/api/tenants/acme/main/attachments/skipped",
                None,
            ),
        ]);
        for (method, path, body) in scoped {
            let (st, answer) = api
                .call(method.clone(), path, Some(&globex_admin), body.clone())
                .await;
            assert_eq!(st, 404, "{method} {path}: {answer}");
            assert!(
                answer["error"].as_str().unwrap().contains("no org 'acme'"),
                "{answer}"
            );
            let (st, answer) = api
                .call(method.clone(), path, Some(&user), body.clone())
                .await;
            assert_eq!(st, 403, "{method} {path}: {answer}");
            assert_eq!(api.call(method, path, None, body).await.0, 401);
        }
        assert!(db.store.tenant("acme", "second").await.is_err());
        let org_id = db.store.org_id("acme").await.unwrap();
        assert!(db
            .store
            .rules_at(RuleScope::Org { org_id })
            .await
            .unwrap()
            .is_empty());
        let main = db.store.tenant("acme", "main").await.unwrap();
        let m = db.store.mailbox_by_address(main.id, &alice).await.unwrap();
        assert!(m.unwrap().enabled);

        // Declare: 201, the tenant and what comes next, never the secret; its verified domains
        // became its internal domains.
        let (st, declared) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants",
                Some(&acme_admin),
                Some(declaration.clone()),
            )
            .await;
        assert_eq!(st, 201, "{declared}");
        assert_eq!(declared["tenant"]["name"], "second", "{declared}");
        assert_eq!(declared["tenant"]["auth_mode"], "app", "{declared}");
        assert_eq!(declared["secret_label"], SECRET_LABEL);
        assert!(
            declared["next"].as_str().unwrap().contains("tenant test"),
            "{declared}"
        );
        assert!(!declared.to_string().contains(&s.secret), "{declared}");
        assert!(
            !declared["internal_domains"].as_array().unwrap().is_empty(),
            "{declared}"
        );
        let second = db.store.tenant("acme", "second").await.unwrap();
        assert_eq!(second.authority, s.base);
        assert_eq!(
            db.store
                .secret_labels(second.id, SecretKind::ClientSecret)
                .await
                .unwrap()
                .into_iter()
                .map(|(l, _)| l)
                .collect::<Vec<_>>(),
            [SECRET_LABEL]
        );
        // A second declaration of the name: 409 in the CLI's words, nothing changed.
        let mut again = declaration.clone();
        again["client_id"] = "another-app".into();
        let (st, refused) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants",
                Some(&acme_admin),
                Some(again),
            )
            .await;
        assert_eq!(st, 409, "{refused}");
        assert_eq!(
            refused["error"],
            "tenant second already exists in org acme; `m365sync tenant secret add` adds a secret, `m365sync apply` changes a declaration"
        );
        assert_eq!(
            db.store.tenant("acme", "second").await.unwrap().client_id,
            s.client_id
        );
        // A body that is not a declaration names the field; a secret of the wrong type is
        // not quoted back.
        let mut missing = declaration.clone();
        missing.as_object_mut().unwrap().remove("client_id");
        missing["name"] = "third".into();
        let (st, bad) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants",
                Some(&acme_admin),
                Some(missing),
            )
            .await;
        assert_eq!(st, 400, "{bad}");
        assert!(
            bad["error"].as_str().unwrap().contains("client_id"),
            "{bad}"
        );
        let mut typed = declaration.clone();
        typed["name"] = "third".into();
        typed["secret"] = json!(98765432123u64);
        let (st, bad) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants",
                Some(&acme_admin),
                Some(typed),
            )
            .await;
        assert_eq!(st, 400, "{bad}");
        assert!(!bad.to_string().contains("98765432123"), "{bad}");
        let mut empty = declaration.clone();
        empty["name"] = "third".into();
        empty["ms_tenant"] = " ".into();
        let (st, bad) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants",
                Some(&acme_admin),
                Some(empty),
            )
            .await;
        assert_eq!(st, 400, "{bad}");
        assert!(
            bad["error"]
                .as_str()
                .unwrap()
                .starts_with("ms_tenant is empty"),
            "{bad}"
        );
        assert!(db.store.tenant("acme", "third").await.is_err());

        // Import: a result per line, in file order; the bad rows name their problem.
        let csv = entra_csv(&upns);
        let import = |body: String| {
            api.http
                .post(format!(
                    "{}/api/orgs/acme/tenants/second/users/import?file=users.csv",
                    api.base
                ))
                .bearer_auth(&acme_admin)
                .header("content-type", "text/csv")
                .body(body)
                .send()
        };
        let r = import(csv.clone()).await.unwrap();
        assert_eq!(r.status(), 200);
        let report: serde_json::Value = r.json().await.unwrap();
        assert_eq!(report["file"], "users.csv");
        let lines = report["lines"].as_array().unwrap();
        assert_eq!(lines.len(), upns.len() + 3, "{report}");
        for (i, upn) in upns.iter().enumerate() {
            assert_eq!(lines[i]["line"], i + 2, "{report}");
            assert_eq!(lines[i]["address"], upn.to_ascii_lowercase(), "{report}");
            assert_eq!(lines[i]["outcome"], "created", "{report}");
            assert!(lines[i]["problem"].is_null(), "{report}");
        }
        let n = upns.len();
        assert_eq!(lines[n]["line"], n + 2);
        assert_eq!(lines[n]["outcome"], "error", "{report}");
        assert!(
            lines[n]["problem"]
                .as_str()
                .unwrap()
                .contains("not an address"),
            "{report}"
        );
        assert_eq!(lines[n + 1]["outcome"], "skipped", "{report}");
        assert!(
            lines[n + 1]["problem"]
                .as_str()
                .unwrap()
                .contains("disabled"),
            "{report}"
        );
        assert_eq!(lines[n + 2]["outcome"], "error", "{report}");
        assert_eq!(lines[n + 2]["address"], "nobody@contoso.example");
        assert!(
            lines[n + 2]["problem"]
                .as_str()
                .unwrap()
                .contains("not a user in the tenant's directory"),
            "{report}"
        );
        assert_eq!(
            db.store.mailboxes(second.id).await.unwrap().len(),
            upns.len()
        );
        // Again: nothing changes.
        let again: serde_json::Value = import(csv).await.unwrap().json().await.unwrap();
        assert!(
            again["lines"].as_array().unwrap()[..n]
                .iter()
                .all(|l| l["outcome"] == "unchanged"),
            "{again}"
        );
        // Not a CSV of users at all: 400 naming the file.
        let r = import("hello,world\r\n1,2\r\n".into()).await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("users.csv"));

        // The declared secret works: the checklist passes.
        let (st, report) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants/second/test",
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 200, "{report}");
        assert_eq!(report["ok"], true, "{report}");

        // Rules at each level: listed at their own level only, removed only there.
        let newsletters =
            json!({"effect": "exclude", "target": "sender", "pattern": "*@MarketWeekly.example"});
        let (st, added) = api
            .call(
                Method::POST,
                "/api/orgs/acme/rules",
                Some(&acme_admin),
                Some(newsletters),
            )
            .await;
        assert_eq!(st, 201, "{added}");
        let org_rule = added["id"].as_i64().unwrap();
        let (st, added) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants/second/rules",
                Some(&acme_admin),
                Some(json!({"effect": "exclude", "target": "subject", "pattern": "zz-no-such-subject"})),
            )
            .await;
        assert_eq!(st, 201, "{added}");
        let tenant_rule = added["id"].as_i64().unwrap();
        let (_, listed) = api
            .call(Method::GET, "/api/orgs/acme/rules", Some(&acme_admin), None)
            .await;
        assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(listed[0]["id"], org_rule);
        assert_eq!(listed[0]["spec"]["pattern"], "*@marketweekly.example");
        assert_eq!(listed[0]["spec"]["effect"], "exclude");
        let (_, listed) = api
            .call(
                Method::GET,
                "/api/orgs/acme/tenants/second/rules",
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(listed[0]["id"], tenant_rule);
        let (st, body) = api
            .call(
                Method::POST,
                "/api/orgs/acme/rules",
                Some(&acme_admin),
                Some(json!({"effect": "drop", "target": "sender", "pattern": "x"})),
            )
            .await;
        assert_eq!(st, 400, "{body}");
        // The org's rule is not the tenant's to remove, nor another tenant's.
        for path in [
            format!("/api/orgs/acme/tenants/second/rules/{org_rule}"),
            format!("/api/orgs/acme/tenants/main/rules/{tenant_rule}"),
            format!("/api/orgs/acme/rules/{tenant_rule}"),
        ] {
            let (st, body) = api
                .call(Method::DELETE, &path, Some(&acme_admin), None)
                .await;
            assert_eq!(st, 404, "{path}: {body}");
        }
        let (st, body) = api
            .call(
                Method::DELETE,
                &format!("/api/orgs/acme/tenants/second/rules/{tenant_rule}"),
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["removed"], tenant_rule);

        // A user's level, set by the org's admin: listed there only, removed only there; a user
        // the tenant does not have is named.
        let user = upns[0].to_ascii_lowercase();
        let user_path = format!("/api/orgs/acme/tenants/second/users/{user}/rules");
        let (st, added) = api
            .call(
                Method::POST,
                &user_path,
                Some(&acme_admin),
                Some(json!({"effect": "include", "target": "sender", "pattern": "*@marketweekly.example"})),
            )
            .await;
        assert_eq!(st, 201, "{added}");
        assert!(
            added["level"].as_str().unwrap().starts_with("user "),
            "{added}"
        );
        let user_rule = added["id"].as_i64().unwrap();
        let (_, listed) = api
            .call(Method::GET, &user_path, Some(&acme_admin), None)
            .await;
        assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(listed[0]["id"], user_rule);
        assert_eq!(listed[0]["spec"]["effect"], "include");
        let (_, listed) = api
            .call(
                Method::GET,
                "/api/orgs/acme/tenants/second/rules",
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(listed.as_array().unwrap().len(), 0, "{listed}");
        let (st, body) = api
            .call(
                Method::DELETE,
                &format!("/api/orgs/acme/tenants/second/rules/{user_rule}"),
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(
            st, 404,
            "a user's rule is not the tenant's to remove: {body}"
        );
        let (st, body) = api
            .call(
                Method::GET,
                "/api/orgs/acme/tenants/second/users/nobody@contoso.example/rules",
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 404, "{body}");
        assert!(
            body.to_string().contains("nobody@contoso.example"),
            "{body}"
        );
        let (st, body) = api
            .call(
                Method::DELETE,
                &format!("{user_path}/{user_rule}"),
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["removed"], user_rule);

        // A mailbox switched off and on again, as the CLI does it.
        let bob = upns[1].to_ascii_lowercase();
        let path = |act: &str| format!("/api/tenants/acme/second/mailboxes/{bob}/{act}");
        let (st, m) = api
            .call(Method::POST, &path("disable"), Some(&acme_admin), None)
            .await;
        assert_eq!(st, 200, "{m}");
        assert_eq!(m["enabled"], false, "{m}");
        let stored = db.store.mailbox_by_address(second.id, &bob).await.unwrap();
        assert!(!stored.unwrap().enabled);
        let (st, m) = api
            .call(Method::POST, &path("enable"), Some(&acme_admin), None)
            .await;
        assert_eq!(st, 200, "{m}");
        assert_eq!(m["enabled"], true, "{m}");
        assert_eq!(m["health"], "healthy", "{m}");
        let (st, body) = api
            .call(
                Method::POST,
                "/api/tenants/acme/second/mailboxes/nobody@contoso.example/disable",
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 404, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("tenant acme/second has no mailbox nobody@contoso.example"),
            "{body}"
        );

        // Activated, the first run of the declared tenant excludes the newsletters by the
        // org's rule (mail from a year back, so they are in range).
        let mut settings = db.store.settings(second.id).await.unwrap();
        settings.commencement_ms =
            Some((chrono::Utc::now() - chrono::Duration::days(400)).timestamp_millis());
        db.store.set_settings(second.id, &settings).await.unwrap();
        let (st, done) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants/second/activate",
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 200, "{done}");
        assert_eq!(done["rules"], 1, "{done}");
        let mut finished = None;
        for _ in 0..600 {
            let (_, runs) = api
                .call(
                    Method::GET,
                    "/api/tenants/acme/second/runs",
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
        let run = finished.expect("the declared tenant's first run finished");
        assert_eq!(run["status"], "succeeded", "{run}");
        assert!(run["emails"]["kept"].as_i64().unwrap() > 0, "{run}");
        assert!(
            run["emails"]["excluded"].as_i64().unwrap() > 0,
            "the org's rule excluded the newsletters: {run}"
        );

        handle.stop();
        service.wait().await;
        db.drop_db().await;
    }
}

/// A new org through the API, on both databases: the service admin creates it (201) and can
/// declare its first tenant under it at once; the name again is 409 and a name that is not
/// one word 400, each in the API's words; an org admin and a user are refused (403) and no
/// token is 401, and none of them creates anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_org_is_created_by_the_service_admin_only() {
    for db in TestDb::both().await {
        let acme = crate::roles::offline_tenant(&db, "acme", "main").await;
        db.store
            .upsert_user(acme.id, "alice@acme.example", "Alice")
            .await
            .unwrap();
        let (service, handle, api) = crate::roles::serve(&db).await;
        let acme_admin = api.token("acme", json!({})).await;
        let alice = api
            .token(
                "acme",
                json!({"tenant": "main", "user": "alice@acme.example"}),
            )
            .await;

        // Refused for every token but the service's, and nothing is created.
        for (token, status) in [
            (Some(acme_admin.as_str()), 403),
            (Some(alice.as_str()), 403),
            (None, 401),
        ] {
            let (st, body) = api
                .call(
                    Method::POST,
                    "/api/orgs",
                    token,
                    Some(json!({"name": "newco"})),
                )
                .await;
            assert_eq!(st, status, "{body}");
            assert!(body["error"].is_string(), "{body}");
        }
        assert!(db.store.org_id("newco").await.is_err());

        let (st, body) = api
            .call(
                Method::POST,
                "/api/orgs",
                Some(ADMIN),
                Some(json!({"name": " newco "})),
            )
            .await;
        assert_eq!(st, 201, "{body}");
        assert_eq!(body["name"], "newco", "{body}");
        assert_eq!(
            body["id"].as_i64(),
            Some(db.store.org_id("newco").await.unwrap())
        );
        assert!(
            body["next"].as_str().unwrap().contains("first tenant"),
            "{body}"
        );

        let (st, body) = api
            .call(
                Method::POST,
                "/api/orgs",
                Some(ADMIN),
                Some(json!({"name": "newco"})),
            )
            .await;
        assert_eq!(st, 409, "{body}");
        assert_eq!(
            body["error"],
            "org newco already exists; declare its tenants under it"
        );
        for bad in ["", "new co", "a/b", "-x"] {
            let (st, body) = api
                .call(
                    Method::POST,
                    "/api/orgs",
                    Some(ADMIN),
                    Some(json!({"name": bad})),
                )
                .await;
            assert_eq!(st, 400, "{bad}: {body}");
            assert!(
                body["error"].as_str().unwrap().starts_with("name "),
                "{body}"
            );
        }
        let (st, body) = api
            .call(
                Method::POST,
                "/api/orgs",
                Some(ADMIN),
                Some(json!({"org": "x"})),
            )
            .await;
        assert_eq!(st, 400, "{body}");

        // Its first tenant is declared under it as under any org.
        let (st, body) = api
            .call(
                Method::POST,
                "/api/orgs/newco/tenants",
                Some(ADMIN),
                Some(json!({"name": "main", "ms_tenant": "newco.example", "client_id": "app", "secret": "s3cret-value",
                    "authority": "http://127.0.0.1:9", "graph_url": "http://127.0.0.1:9/v1.0"})),
            )
            .await;
        assert_eq!(st, 201, "{body}");
        assert!(!body.to_string().contains("s3cret-value"));

        handle.stop();
        service.wait().await;
        db.drop_db().await;
    }
}

/// A delegated tenant signed in from the console's side, on both databases, against the
/// simulator's real authorize and token endpoints over HTTP: declared through the API with
/// `delegated`, its sign-in started (the authorize address, the redirect URI on the service's
/// own `/oauth/callback`, a cookie binding it to the browser), the simulator's authorize
/// answering with a code; an unknown state, another browser's answer and a replayed answer are
/// refused in words; the right one stores the refresh token sealed (as `tenant authorize`) and
/// sends the browser back to the assistant, after which the connectivity test passes. No answer
/// carries the client secret or the refresh token; an app-only tenant needs no sign-in; the
/// route is scoped as the org's other setup routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegated_tenant_is_signed_in_through_the_service_callback() {
    for db in TestDb::both().await {
        let s = TestSim::start(small()).await;
        let (_main, _) = declare_with(&db.store, &s, &TenantSettings::default()).await;
        crate::roles::offline_tenant(&db, "globex", "eu").await;
        let alice = s.truth()["tenants"][0]["mailboxes"][0]["upn"]
            .as_str()
            .unwrap()
            .to_string();
        let (service, handle, api) = crate::roles::serve(&db).await;
        let base = api.base.clone();
        let globex_admin = api.token("globex", json!({})).await;
        let user = api
            .token("acme", json!({"tenant": "main", "user": alice}))
            .await;
        let mut answers = Vec::new();

        let (st, body) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants",
                Some(ADMIN),
                Some(json!({"name": "deleg", "ms_tenant": s.tenant_id, "client_id": s.client_id,
                    "secret": s.secret, "authority": s.base, "graph_url": s.graph, "delegated": true})),
            )
            .await;
        assert_eq!(st, 201, "{body}");
        assert_eq!(body["tenant"]["auth_mode"], "delegated", "{body}");
        answers.push(body.to_string());

        // Scoped as the org's other setup routes; an app-only tenant needs no sign-in.
        let start = "/api/orgs/acme/tenants/deleg/authorize";
        let (st, _) = api
            .call(Method::POST, start, Some(&globex_admin), None)
            .await;
        assert_eq!(st, 404);
        let (st, _) = api.call(Method::POST, start, Some(&user), None).await;
        assert_eq!(st, 403);
        let (st, body) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants/main/authorize",
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(st, 400, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("app-only"),
            "{body}"
        );

        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        // Starts a sign-in as the console does; the sim's authorize answers with the code.
        let sign_in = || async {
            let resp = browser
                .post(format!("{base}{start}"))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
            assert!(
                cookie.starts_with("m365sync_oauth=")
                    && cookie.contains("HttpOnly")
                    && cookie.contains("SameSite=Lax")
                    && cookie.contains("Path=/oauth/callback"),
                "{cookie}"
            );
            let nonce = cookie.split(';').next().unwrap().to_string();
            let started: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(started["redirect_uri"], format!("{base}/oauth/callback"));
            let at_microsoft = browser
                .get(started["url"].as_str().unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(at_microsoft.status(), 302, "the simulator's authorize");
            let back = at_microsoft.headers()["location"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(
                back.starts_with(&format!("{base}/oauth/callback?code=")),
                "{back}"
            );
            (started.to_string(), nonce, back)
        };
        let callback = |url: String, cookie: Option<String>| {
            let browser = browser.clone();
            async move {
                let mut req = browser.get(url);
                if let Some(c) = cookie {
                    req = req.header("cookie", c);
                }
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let location = resp
                    .headers()
                    .get("location")
                    .map(|l| l.to_str().unwrap().to_string());
                (status, location, resp.text().await.unwrap())
            }
        };

        // A state nobody started.
        let (st, _, text) =
            callback(format!("{base}/oauth/callback?code=x&state=forged"), None).await;
        assert_eq!(st, 400);
        assert!(
            text.contains("its state is unknown to this service, already used"),
            "{text}"
        );
        // The answer reaching a browser without the starting one's cookie, then replayed.
        let (started, nonce, back) = sign_in().await;
        answers.push(started);
        let (st, _, text) =
            callback(back.clone(), Some("m365sync_oauth=someone-else".into())).await;
        assert_eq!(st, 400);
        assert!(text.contains("reached another browser"), "{text}");
        let (st, _, text) = callback(back, Some(nonce)).await;
        assert_eq!(st, 400, "one use: {text}");
        assert!(text.contains("already used"), "{text}");
        assert!(db
            .store
            .secrets(
                db.store.tenant("acme", "deleg").await.unwrap().id,
                SecretKind::RefreshToken
            )
            .await
            .unwrap()
            .is_empty());

        // The right browser: authorized, back to the assistant; a replay is refused.
        let (started, nonce, back) = sign_in().await;
        answers.push(started);
        let (st, location, text) = callback(back.clone(), Some(nonce.clone())).await;
        assert_eq!(st, 303, "{text}");
        assert_eq!(
            location.as_deref(),
            Some("/?oauth=authorized#/setup/acme/deleg")
        );
        let (st, _, text) = callback(back, Some(nonce)).await;
        assert_eq!(st, 400);
        assert!(text.contains("already used"), "{text}");
        let deleg = db.store.tenant("acme", "deleg").await.unwrap();
        let stored = db
            .store
            .secrets(deleg.id, SecretKind::RefreshToken)
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);
        let refresh = stored[0].1.clone();

        // The stored token works: the connectivity test gets a token and reads the directory.
        let (st, body) = api
            .call(
                Method::POST,
                "/api/orgs/acme/tenants/deleg/test",
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["steps"][0]["status"], "passed", "{body}");
        assert_eq!(body["auth_mode"], "delegated", "{body}");
        answers.push(body.to_string());
        for a in &answers {
            assert!(
                !a.contains(&s.secret),
                "the client secret in an answer: {a}"
            );
            assert!(!a.contains(&refresh), "the refresh token in an answer: {a}");
        }

        handle.stop();
        service.wait().await;
        db.drop_db().await;
    }
}
