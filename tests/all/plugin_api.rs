//! An org's plugins through the admin API (issue 16), over real HTTP on loopback, on SQLite and
//! PostgreSQL: `GET /api/orgs/{org}/plugins` says what runs in each slot and why (installed,
//! org default, built-in), `.../{slot}/history` lists a level's installs, and `POST
//! .../{slot}/rollback` returns a level to its previous version or refuses in the CLI's words
//! when there is none; the service admin and that org's admin reach them, another org's admin
//! gets 404 and a user token 403, and a refused rollback changes nothing. `POST
//! .../{slot}/install` checks a component against its cases before anything is written, as
//! `plugin install` does.

use std::time::Duration;

use m365sync::service::{Service, ServiceOptions};
use m365sync::sync::stop::stop_pair;
use m365sync_plugin::builtin::builtin;
use m365sync_plugin::Kind;
use m365sync_store::plugins::{NewPlugin, PluginScope};
use m365sync_store::tenants::{AuthMode, NewTenant};
use reqwest::Method;
use serde_json::{json, Value};

use crate::roles::{Api, ADMIN};
use crate::support::TestDb;
use crate::sync_email::env;

fn tenant(org: &str, name: &str) -> NewTenant {
    NewTenant {
        org: org.into(),
        name: name.into(),
        ms_tenant: format!("{org}-{name}.example"),
        authority: "http://127.0.0.1:9".into(),
        graph_url: "http://127.0.0.1:9/v1.0".into(),
        client_id: org.into(),
        auth_mode: AuthMode::App,
    }
}

/// A builtin with a custom section appended: the same behaviour under another digest.
fn tagged(kind: Kind) -> Vec<u8> {
    let mut wasm = builtin(kind).wasm.to_vec();
    let name = b"m365sync-test-api";
    wasm.push(0);
    wasm.push((1 + name.len() + 1) as u8);
    wasm.push(name.len() as u8);
    wasm.extend_from_slice(name);
    wasm.push(7);
    wasm
}

fn digest(wasm: &[u8]) -> String {
    m365sync_plugin::cache::digest(wasm)
}

/// The row of `level` (`org default`, `tenant main`) and `slot` in a `GET .../plugins` answer.
fn row<'a>(list: &'a Value, level: &str, slot: &str) -> &'a Value {
    list["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["level"] == level && r["slot"] == slot)
        .unwrap_or_else(|| panic!("no row {level} {slot} in {list}"))
}

#[tokio::test]
async fn plugins_in_force_history_and_rollback_through_the_api_scoped_to_the_org() {
    for db in TestDb::both().await {
        let acme = db
            .store
            .upsert_tenant(&tenant("acme", "main"))
            .await
            .unwrap();
        db.store
            .upsert_tenant(&tenant("globex", "eu"))
            .await
            .unwrap();
        db.store
            .upsert_user(acme.id, "alice@acme.example", "Alice")
            .await
            .unwrap();

        let (handle, stop) = stop_pair();
        let mut opts = ServiceOptions::new(Some("127.0.0.1:0".parse().unwrap()), ADMIN.into());
        opts.workers = 1;
        opts.poll = Duration::from_millis(200);
        let service = Service::start(env(&db.store), opts, stop).await.unwrap();
        let api = Api {
            base: format!("http://{}", service.admin_addr.unwrap()),
            http: reqwest::Client::new(),
        };
        let acme_admin = api.token("acme", json!({})).await;
        let globex_admin = api.token("globex", json!({})).await;
        let alice = api
            .token(
                "acme",
                json!({"tenant": "main", "user": "alice@acme.example"}),
            )
            .await;

        // Nothing installed: every slot, at the org's level and the tenant's, runs the
        // built-in plugin, never installed.
        let list = "/api/orgs/acme/plugins";
        for token in [ADMIN, acme_admin.as_str()] {
            let (st, body) = api.call(Method::GET, list, Some(token), None).await;
            assert_eq!(st, 200, "{body}");
            assert_eq!(body["slots"].as_array().unwrap().len(), 6, "{body}");
            for level in ["org default", "tenant main"] {
                for kind in Kind::ALL {
                    let r = row(&body, level, kind.world());
                    assert_eq!(r["source"], "built-in", "{r}");
                    assert_eq!(r["name"], builtin(kind).name, "{r}");
                    assert_eq!(r["version"], "-", "{r}");
                    assert_eq!(r["digest"], digest(builtin(kind).wasm), "{r}");
                    assert_eq!(r["installed_ms"], Value::Null, "{r}");
                    assert_eq!(r["shadow"], Value::Null, "{r}");
                }
            }
            assert_eq!(row(&body, "tenant main", "mapping")["tenant"], "main");
        }

        // Scoping: another org's admin is told the org does not exist, a user is refused
        // for its role, no token is unauthenticated; the same for history and rollback.
        let history = "/api/orgs/acme/plugins/exclusion/history";
        let rollback = "/api/orgs/acme/plugins/exclusion/rollback";
        for (method, path) in [
            (Method::GET, list),
            (Method::GET, history),
            (Method::POST, rollback),
        ] {
            let (st, body) = api
                .call(method.clone(), path, Some(&globex_admin), None)
                .await;
            assert_eq!(st, 404, "{path}: {body}");
            assert!(
                body["error"].as_str().unwrap().contains("no org 'acme'"),
                "{body}"
            );
            let (st, body) = api.call(method.clone(), path, Some(&alice), None).await;
            assert_eq!(st, 403, "{path}: {body}");
            let (st, _) = api.call(method, path, None, None).await;
            assert_eq!(st, 401, "{path}");
        }

        // Nothing to roll back to: refused with the words `plugin rollback` prints.
        let (st, body) = api
            .call(Method::POST, rollback, Some(&acme_admin), None)
            .await;
        assert_eq!(st, 400, "{body}");
        assert_eq!(
            body["error"],
            "nothing to roll back to: the exclusion slot has had 0 install(s) at this level"
        );

        // Two installs of the org's exclusion, one of the tenant's mapping.
        let org_level = PluginScope {
            org_id: acme.org_id,
            tenant_id: None,
        };
        let tenant_level = PluginScope {
            org_id: acme.org_id,
            tenant_id: Some(acme.id),
        };
        let install = |scope: PluginScope, kind: Kind, wasm: Vec<u8>| {
            let store = db.store.clone();
            async move {
                let d = digest(&wasm);
                store
                    .install_plugin_checked(
                        scope,
                        &NewPlugin {
                            slot: kind.world(),
                            digest: &d,
                            name: builtin(kind).name,
                            version: "0.1.0",
                            wasm: &wasm,
                        },
                        "the built-in plugin's own cases",
                    )
                    .await
                    .unwrap();
            }
        };
        let first = builtin(Kind::Exclusion).wasm.to_vec();
        let second = tagged(Kind::Exclusion);
        install(org_level, Kind::Exclusion, first.clone()).await;
        install(org_level, Kind::Exclusion, second.clone()).await;
        install(tenant_level, Kind::Mapping, tagged(Kind::Mapping)).await;

        let (_, body) = api.call(Method::GET, list, Some(&acme_admin), None).await;
        let org_excl = row(&body, "org default", "exclusion");
        assert_eq!(org_excl["source"], "installed", "{org_excl}");
        assert_eq!(org_excl["digest"], digest(&second));
        assert_eq!(org_excl["version"], "0.1.0");
        assert!(org_excl["installed_ms"].as_i64().is_some(), "{org_excl}");
        let inherited = row(&body, "tenant main", "exclusion");
        assert_eq!(inherited["source"], "org default", "{inherited}");
        assert_eq!(inherited["digest"], digest(&second));
        let own = row(&body, "tenant main", "mapping");
        assert_eq!(own["source"], "installed", "{own}");
        assert_eq!(own["digest"], digest(&tagged(Kind::Mapping)));
        assert_eq!(row(&body, "org default", "mapping")["source"], "built-in");

        // History, per level.
        let (st, body) = api
            .call(Method::GET, history, Some(&acme_admin), None)
            .await;
        assert_eq!(st, 200, "{body}");
        let lines = body["history"].as_array().unwrap();
        assert_eq!(lines.len(), 2, "{body}");
        assert!(lines.iter().all(|l| l["action"] == "install"), "{body}");
        assert_eq!(lines[1]["digest"], digest(&second));
        assert_eq!(lines[1]["cases"], "the built-in plugin's own cases");
        let (_, body) = api
            .call(
                Method::GET,
                "/api/orgs/acme/plugins/mapping/history?tenant=main",
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(body["tenant"], "main", "{body}");
        assert_eq!(body["history"].as_array().unwrap().len(), 1, "{body}");
        let (st, body) = api
            .call(
                Method::GET,
                "/api/orgs/acme/plugins/exclusion/history?tenant=nowhere",
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(st, 404, "{body}");
        let (st, body) = api
            .call(
                Method::GET,
                "/api/orgs/acme/plugins/sorting/history",
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(st, 400, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("exclusion, mapping or matching"),
            "{body}"
        );

        // The refusals above changed nothing; the org's admin rolls back to the first.
        let (st, body) = api
            .call(Method::POST, rollback, Some(&acme_admin), None)
            .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(
            body["summary"],
            format!(
                "rolled back the exclusion plugin of org acme: now {} 0.1.0 (sha256 {})",
                builtin(Kind::Exclusion).name,
                &digest(&first)[..16]
            )
        );
        assert_eq!(body["now"]["action"], "rollback");
        let (_, list_now) = api.call(Method::GET, list, Some(ADMIN), None).await;
        assert_eq!(
            row(&list_now, "org default", "exclusion")["digest"],
            digest(&first)
        );
        assert_eq!(
            row(&list_now, "tenant main", "exclusion")["digest"],
            digest(&first)
        );
        // Once back at the first install there is nothing before it.
        let (st, body) = api.call(Method::POST, rollback, Some(ADMIN), None).await;
        assert_eq!(st, 400, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("has had 1 install(s) at this level"),
            "{body}"
        );
        // A tenant's own level rolls back alone: its single install has nothing before it.
        let (st, body) = api
            .call(
                Method::POST,
                "/api/orgs/acme/plugins/mapping/rollback?tenant=main",
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 400, "{body}");
        let (_, after) = api.call(Method::GET, list, Some(ADMIN), None).await;
        assert_eq!(
            row(&after, "tenant main", "mapping")["digest"],
            digest(&tagged(Kind::Mapping))
        );

        handle.stop();
        service.wait().await;
        db.drop_db().await;
    }
}

/// An install body: the component base64 with its cases (or none).
fn install_body(wasm: &[u8], cases: Option<&str>, no_cases: bool) -> Value {
    use base64::Engine as _;
    json!({
        "wasm_base64": base64::engine::general_purpose::STANDARD.encode(wasm),
        "file_name": "my-mapping.wasm",
        "cases": cases,
        "cases_name": "cases.toml",
        "no_cases": no_cases,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_is_installed_through_the_api_only_after_its_cases_pass() {
    for db in TestDb::both().await {
        let acme = db
            .store
            .upsert_tenant(&tenant("acme", "main"))
            .await
            .unwrap();
        db.store
            .upsert_tenant(&tenant("globex", "eu"))
            .await
            .unwrap();
        db.store
            .upsert_user(acme.id, "alice@acme.example", "Alice")
            .await
            .unwrap();
        let (handle, stop) = stop_pair();
        let mut opts = ServiceOptions::new(Some("127.0.0.1:0".parse().unwrap()), ADMIN.into());
        opts.workers = 1;
        opts.poll = Duration::from_millis(200);
        let service = Service::start(env(&db.store), opts, stop).await.unwrap();
        let api = Api {
            base: format!("http://{}", service.admin_addr.unwrap()),
            http: reqwest::Client::new(),
        };
        let acme_admin = api.token("acme", json!({})).await;
        let globex_admin = api.token("globex", json!({})).await;
        let alice = api
            .token(
                "acme",
                json!({"tenant": "main", "user": "alice@acme.example"}),
            )
            .await;
        let path = "/api/orgs/acme/plugins/mapping/install?tenant=main";
        let wasm = tagged(Kind::Mapping);
        let cases = builtin(Kind::Mapping).cases;
        let list = "/api/orgs/acme/plugins";
        let in_force = || async {
            let (_, l) = api.call(Method::GET, list, Some(ADMIN), None).await;
            row(&l, "tenant main", "mapping")["digest"].clone()
        };

        // Scoping first: nothing is installed by a token outside the org or a user's.
        let body = install_body(&wasm, Some(cases), false);
        let (st, _) = api
            .call(Method::POST, path, Some(&globex_admin), Some(body.clone()))
            .await;
        assert_eq!(st, 404);
        let (st, _) = api
            .call(Method::POST, path, Some(&alice), Some(body.clone()))
            .await;
        assert_eq!(st, 403);

        // Refusals, each in words, nothing written: no cases, cases that differ, not a
        // component, not base64.
        let (st, b) = api
            .call(
                Method::POST,
                path,
                Some(&acme_admin),
                Some(install_body(&wasm, None, false)),
            )
            .await;
        assert_eq!(st, 400, "{b}");
        assert!(
            b["error"].as_str().unwrap().contains("needs the cases"),
            "{b}"
        );
        let wrong = format!(
            "{cases}\n[[case]]\nname = \"a deliberately wrong expectation\"\nemail = {{ subject = \"Hello\" }}\nexpect = {{ subject = \"Goodbye\" }}\n"
        );
        let (st, b) = api
            .call(
                Method::POST,
                path,
                Some(&acme_admin),
                Some(install_body(&wasm, Some(&wrong), false)),
            )
            .await;
        assert_eq!(st, 422, "{b}");
        assert!(b["error"].as_str().unwrap().contains("1 of"), "{b}");
        assert!(
            b["report"]
                .as_str()
                .unwrap()
                .contains("a deliberately wrong expectation"),
            "{b}"
        );
        let (st, b) = api
            .call(
                Method::POST,
                path,
                Some(&acme_admin),
                Some(install_body(b"not wasm", Some(cases), false)),
            )
            .await;
        assert_eq!(st, 400, "{b}");
        assert!(
            b["error"]
                .as_str()
                .unwrap()
                .contains("my-mapping.wasm is not a usable mapping plugin"),
            "{b}"
        );
        let mut garbled = install_body(&wasm, Some(cases), false);
        garbled["wasm_base64"] = "%%%".into();
        let (st, b) = api
            .call(Method::POST, path, Some(&acme_admin), Some(garbled))
            .await;
        assert_eq!(st, 400, "{b}");
        assert_eq!(in_force().await, digest(builtin(Kind::Mapping).wasm));

        // With its cases: installed at the tenant's level, the report in the answer and the
        // history; the same again changes nothing.
        let (st, b) = api
            .call(Method::POST, path, Some(&acme_admin), Some(body.clone()))
            .await;
        assert_eq!(st, 201, "{b}");
        assert_eq!(b["activated"], true);
        assert!(b["passed"].as_u64().unwrap() > 0, "{b}");
        assert!(b["report"].as_str().unwrap().contains("passed"), "{b}");
        assert_eq!(in_force().await, digest(&wasm));
        let (st, b) = api
            .call(Method::POST, path, Some(&acme_admin), Some(body))
            .await;
        assert_eq!(st, 200, "{b}");
        assert_eq!(b["activated"], false);
        assert!(
            b["summary"].as_str().unwrap().contains("nothing changed"),
            "{b}"
        );
        let (_, h) = api
            .call(
                Method::GET,
                "/api/orgs/acme/plugins/mapping/history?tenant=main",
                Some(ADMIN),
                None,
            )
            .await;
        let entries = h["history"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{h}");
        let checked = entries[0]["cases"].as_str().unwrap();
        assert!(
            checked.contains("passed: cases cases.toml") && checked.contains("through the API"),
            "{h}"
        );

        // Untested on purpose: allowed when asked, and the history says so.
        let (st, b) = api
            .call(
                Method::POST,
                "/api/orgs/acme/plugins/mapping/install",
                Some(ADMIN),
                Some(install_body(&tagged(Kind::Mapping)[..], None, true)),
            )
            .await;
        assert_eq!(st, 201, "{b}");
        assert!(
            b["checked_against"]
                .as_str()
                .unwrap()
                .contains("no cases were run"),
            "{b}"
        );

        handle.stop();
        service.wait().await;
        db.drop_db().await;
    }
}
