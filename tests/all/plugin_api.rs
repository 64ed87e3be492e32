//! An org's plugins through the admin API (issue 16), over real HTTP on loopback, on SQLite and
//! PostgreSQL: `GET /api/orgs/{org}/plugins` says what runs in each slot and why (installed,
//! org default, built-in), `.../{slot}/history` lists a level's installs, and `POST
//! .../{slot}/rollback` returns a level to its previous version or refuses in the CLI's words
//! when there is none; the service admin and that org's admin reach them, another org's admin
//! gets 404 and a user token 403, and a refused rollback changes nothing. `POST
//! .../{slot}/install` checks a component against its cases before anything is written, as
//! `plugin install` does.

use std::collections::BTreeMap;

use m365sync_plugin::builtin::builtin;
use m365sync_plugin::Kind;
use m365sync_store::plugins::{NewPlugin, PluginScope};
use m365sync_store::tenants::{AuthMode, NewTenant};
use reqwest::Method;
use serde_json::{json, Value};

use crate::roles::ADMIN;
use crate::support::{small, TestDb, TestSim};
use crate::sync_email::{declare, env};
use m365sync::sync::run::run_tenant;

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

        let (service, handle, api) = crate::roles::serve(&db).await;
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
        let (service, handle, api) = crate::roles::serve(&db).await;
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

/// `(slot, digest) -> decided` from the `plugin_decisions` table of `tenant_id`.
async fn counters(url: &str, tenant_id: i64) -> BTreeMap<(String, String), (i64, i64, i64)> {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT slot, digest, kept, dropped, mapped FROM plugin_decisions WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter()
        .map(|(s, d, k, x, m)| ((s, d), (k, x, m)))
        .collect()
}

/// What each version decided, on both databases: the built-in plugins' counts after a first
/// sync of the simulator's mail (kept and dropped by the exclusion, mapped by the mapping,
/// dropped equal to the exclusions stored), shown in `GET .../plugins` and in each history
/// line; a version installed through the API starts at 0 and grows with the next sync while
/// the built-in's stay; and migration 0018's backfill, run again over the stored records,
/// agrees with the counters where the two count the same thing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_version_counts_what_it_decided() {
    for db in TestDb::both().await {
        let s = TestSim::start(small()).await;
        let (tenant, _) = declare(&db.store, &s).await;
        let sync_env = env(&db.store);
        let first = run_tenant(&sync_env, &tenant, None, "manual")
            .await
            .unwrap();
        assert!(
            first.mailbox_errors.is_empty(),
            "{:?}",
            first.mailbox_errors
        );
        assert!(first.synced > 0 && first.excluded > 0, "{first:?}");

        let (service, handle, api) = crate::roles::serve(&db).await;
        let acme_admin = api.token("acme", json!({})).await;

        let excl = digest(builtin(Kind::Exclusion).wasm);
        let map = digest(builtin(Kind::Mapping).wasm);
        let (st, list) = api
            .call(
                Method::GET,
                "/api/orgs/acme/plugins",
                Some(&acme_admin),
                None,
            )
            .await;
        assert_eq!(st, 200, "{list}");
        let decided = |l: &Value, level: &str, slot: &str| row(l, level, slot)["decided"].clone();
        let e = decided(&list, "tenant main", "exclusion");
        let (kept, dropped) = (e["kept"].as_i64().unwrap(), e["dropped"].as_i64().unwrap());
        assert!(kept > 0 && dropped > 0, "{e}");
        // Every record the exclusion kept was mapped, and only those.
        let m = decided(&list, "tenant main", "mapping");
        assert_eq!(m["mapped"].as_i64().unwrap(), kept, "{m}");
        assert_eq!(
            (m["kept"].as_i64(), m["dropped"].as_i64()),
            (Some(0), Some(0)),
            "{m}"
        );
        // Dropped: one per exclusion stored by the plugin (the first run decided each once).
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let (stored_dropped,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM exclusions WHERE decided_by LIKE '%sha256:' || $1 || '%'",
        )
        .bind(&excl)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(dropped, stored_dropped);
        // The org's default row sums its tenants: one tenant here.
        assert_eq!(decided(&list, "org default", "exclusion"), e);
        assert_eq!(e["failed"], 0, "{e}");

        // The history: the built-in with its counts, nothing installed yet.
        let hist = "/api/orgs/acme/plugins/mapping/history?tenant=main";
        let (st, h) = api.call(Method::GET, hist, Some(ADMIN), None).await;
        assert_eq!(st, 200, "{h}");
        assert_eq!(h["builtin"]["digest"], map.as_str(), "{h}");
        assert_eq!(h["builtin"]["decided"], m, "{h}");
        assert_eq!(h["history"].as_array().unwrap().len(), 0, "{h}");

        // A new mapping version: 0 until it decides something.
        let wasm = tagged(Kind::Mapping);
        let (st, body) = api
            .call(
                Method::POST,
                "/api/orgs/acme/plugins/mapping/install?tenant=main",
                Some(&acme_admin),
                Some(install_body(&wasm, None, true)),
            )
            .await;
        assert_eq!(st, 201, "{body}");
        let (_, h) = api.call(Method::GET, hist, Some(ADMIN), None).await;
        let line = &h["history"][0];
        assert_eq!(line["digest"], digest(&wasm).as_str(), "{h}");
        assert_eq!(line["decided"]["mapped"], 0, "{h}");
        let (_, list) = api
            .call(Method::GET, "/api/orgs/acme/plugins", Some(ADMIN), None)
            .await;
        assert_eq!(
            decided(&list, "tenant main", "mapping")["mapped"],
            0,
            "{list}"
        );

        // New mail from a client, then a sync: the new version maps it, the built-in's
        // counts stay, the exclusion's grow by what it kept.
        let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
        s.ctl(
            Method::POST,
            "deliver",
            json!({"from": "client@acme-holdings.example", "to": [upn], "subject": "Trust documents"}),
        )
        .await;
        let second = run_tenant(&sync_env, &tenant, None, "manual")
            .await
            .unwrap();
        assert!(
            second.mailbox_errors.is_empty(),
            "{:?}",
            second.mailbox_errors
        );
        let (_, h) = api.call(Method::GET, hist, Some(ADMIN), None).await;
        let new_mapped = h["history"][0]["decided"]["mapped"].as_i64().unwrap();
        assert!(new_mapped >= 1, "{h}");
        assert_eq!(h["builtin"]["decided"], m, "{h}");
        let (_, list) = api
            .call(Method::GET, "/api/orgs/acme/plugins", Some(ADMIN), None)
            .await;
        let row_now = row(&list, "tenant main", "mapping");
        assert_eq!(row_now["source"], "installed", "{row_now}");
        assert_eq!(row_now["decided"]["mapped"], new_mapped, "{row_now}");
        let e2 = decided(&list, "tenant main", "exclusion");
        assert_eq!(e2["kept"].as_i64().unwrap(), kept + new_mapped, "{e2}");

        // The backfill of migration 0018, run again over what is stored: it counts an email
        // once however many mailboxes hold it (the counters count each copy decided), and the
        // exclusions and mappings as stored, so: dropped equal, kept at most the live count.
        let live = counters(&db.url, tenant.id).await;
        let migration =
            include_str!("../../crates/store/migrations/sqlite/0018_plugin_decisions.sql");
        let mut backfill =
            migration[migration.find("INSERT INTO plugin_decisions").unwrap()..].to_string();
        if db.url.starts_with("postgres") {
            backfill = backfill.replace("instr(", "strpos(");
        }
        sqlx::query("DELETE FROM plugin_decisions")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::raw_sql(&backfill).execute(&pool).await.unwrap();
        let filled = counters(&db.url, tenant.id).await;
        let key = |slot: &str, d: &str| (slot.to_string(), d.to_string());
        let (lk, ld, _) = live[&key("exclusion", &excl)];
        let (fk, fd, _) = filled[&key("exclusion", &excl)];
        assert_eq!(fd, ld, "dropped: backfill {filled:?}, live {live:?}");
        assert!(
            fk > 0 && fk <= lk,
            "kept: backfill {filled:?}, live {live:?}"
        );
        let filled_mapped: i64 = filled
            .iter()
            .filter(|((s, _), _)| s == "mapping")
            .map(|(_, (_, _, m))| m)
            .sum();
        assert_eq!(
            filled_mapped, fk,
            "every stored record has one mapping stamp: {filled:?}"
        );
        pool.close().await;

        handle.stop();
        service.wait().await;
        db.drop_db().await;
    }
}
