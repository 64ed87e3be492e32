//! The console (issue 16) in a real browser: Debian's headless chromium driven over WebDriver
//! (`webdriver.rs`) against a real `serve --sandbox`, and its cookie sign-in and CSRF rules
//! over plain HTTP on both databases.
//!
//! The browser test runs on SQLite only (the sandbox's store): what each token may see is the
//! API's scoping, tested on both databases by `roles.rs`, `calendar_api.rs` and the cookie test
//! below; the browser test proves the pages show what the API answers. With
//! `M365SYNC_SCREENSHOTS=docs/console` it saves the PNGs README shows.

use std::time::Duration;

use m365sync::service::{Service, ServiceOptions};
use m365sync::sync::stop::stop_pair;
use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use reqwest::Method;
use serde_json::{json, Value};

use crate::matching::world;
use crate::service::{wait_for, Scratch, Serve};
use crate::support::TestDb;
use crate::sync_email::env;
use crate::webdriver::{chromedriver, Browser};

/// Signs in on the console's sign-in form with `token`.
async fn sign_in(b: &Browser, token: &str) {
    let input = b.find("#token").await;
    b.type_into(&input, token).await;
    let submit = b.find("#signin-form button[type=submit]").await;
    b.click(&submit).await;
}

async fn json_of(serve: &Serve, method: Method, path: &str, token: &str) -> Value {
    let (status, body) = serve.api(method, path, Some(token)).await;
    assert!(status < 300, "{path}: {status} {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_shows_health_and_runs_and_maps_review_mail() {
    let Some(driver) = chromedriver() else { return };
    let dir = Scratch::new("console");
    let sandbox = dir.0.join("sb");
    let serve = Serve::start(
        &[
            "--sandbox",
            "--sandbox-dir",
            sandbox.to_str().unwrap(),
            "--sim-bind",
            "127.0.0.1:0",
            "--sim-tenants",
            "2",
            "--users",
            "3",
            "--messages",
            "40",
            "--busy-messages",
            "0",
        ],
        &dir.0.join("ready"),
    );
    let admin = std::fs::read_to_string(sandbox.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let runs_path = "/api/tenants/sandbox/contoso/runs";
    wait_for(90, "the sandbox's first run", || {
        let serve = &serve;
        let admin = admin.clone();
        async move {
            let (_, body) = serve.api(Method::GET, runs_path, Some(&admin)).await;
            let runs: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            runs.as_array()
                .and_then(|r| r.last())
                .is_some_and(|r| r["status"] == "succeeded")
        }
    })
    .await;
    let runs = json_of(&serve, Method::GET, runs_path, &admin).await;
    let first = runs.as_array().unwrap().last().unwrap().clone();
    // Runs are paged by the last id of the page before (the console's "Older 50").
    let newest = json_of(&serve, Method::GET, &format!("{runs_path}?limit=1"), &admin).await;
    let older = json_of(
        &serve,
        Method::GET,
        &format!("{runs_path}?limit=100&before={}", newest[0]["id"]),
        &admin,
    )
    .await;
    assert_eq!(
        older.as_array().unwrap().len() + 1,
        runs.as_array().unwrap().len(),
        "{older}"
    );
    let mailboxes = json_of(
        &serve,
        Method::GET,
        "/api/tenants/sandbox/contoso/mailboxes",
        &admin,
    )
    .await;
    let base = serve.admin.clone();
    // The sandbox says where the console is and which token signs in.
    assert!(
        serve
            .out()
            .contains(&format!("console: {base}/  (sign in with the token in")),
        "{}",
        serve.out()
    );

    let b = Browser::start(&driver).await;
    // (1) A wrong token is refused on the sign-in page, in words, and not echoed.
    b.goto(&format!("{base}/")).await;
    b.screenshot("signin").await;
    sign_in(&b, "m365s_wrong-token-for-the-console").await;
    let refused = b.wait_text("#signin-error", "not valid").await;
    assert!(!refused.contains("wrong-token"), "{refused}");
    assert!(!b.page_text().await.contains("wrong-token"));
    b.screenshot("signin-refused").await;

    // (2) The service admin sees the tenant, its mailboxes with the API's health, and the
    // finished run's counts.
    sign_in(&b, &admin).await;
    b.wait_text("#who", "Signed in as service admin").await;
    b.wait_text("#tenants", "contoso").await;
    b.screenshot("tenants").await;
    let link = b.find("#tenants a[href='#/tenant/sandbox/contoso']").await;
    b.click(&link).await;
    b.wait_text("#runs", "succeeded").await;
    for m in mailboxes.as_array().unwrap() {
        let address = m["address"].as_str().unwrap();
        let row = b
            .find(&format!("#mailboxes tr[data-address='{address}'] .health"))
            .await;
        assert_eq!(b.text(&row).await, m["health"].as_str().unwrap(), "{m}");
        assert!(
            m.get("pending_run_id").is_some(),
            "the API says what work it owes: {m}"
        );
        // The first run finished: every folder is through its first round.
        let backlog = &m["mail_backlog"];
        assert_eq!(backlog["folders_pending"], 0, "{m}");
        let cell = b
            .find(&format!("#mailboxes tr[data-address='{address}'] .backlog"))
            .await;
        assert_eq!(
            b.text(&cell).await,
            format!("done ({} folders)", backlog["folders"]),
            "{m}"
        );
    }
    b.wait_text(
        &format!("#runs tr[data-run='{}']", first["id"]),
        "succeeded",
    )
    .await;
    // Errors only: the succeeded first run is filtered out, as the API filters it.
    let errors_only = b.find("#runs-errors").await;
    b.click(&errors_only).await;
    let api_errors = json_of(
        &serve,
        Method::GET,
        "/api/tenants/sandbox/contoso/runs?errors_only=1",
        &admin,
    )
    .await;
    if api_errors.as_array().unwrap().is_empty() {
        b.wait_text("#tenant-runs", "No run matches these filters.")
            .await;
    }
    b.click(&errors_only).await;
    let last_day = b.find("#runs-since option[value='24h']").await;
    b.click(&last_day).await;
    b.wait_text(
        &format!("#runs tr[data-run='{}']", first["id"]),
        "succeeded",
    )
    .await;
    let mut cells = Vec::new();
    for td in b
        .all(&format!("#runs tr[data-run='{}'] td", first["id"]))
        .await
    {
        cells.push(b.text(&td).await);
    }
    // Run, status, processed, synced, excluded, errors, incomplete, started, finished,
    // trigger, figures by kind.
    assert!(cells[1].starts_with("succeeded"), "{cells:?}");
    assert_eq!(cells[2], first["processed"].to_string(), "{cells:?}");
    assert_eq!(cells[3], first["synced"].to_string(), "{cells:?}");
    let excluded = first["emails"]["excluded"].as_i64().unwrap()
        + first["events"]["excluded"].as_i64().unwrap();
    assert_eq!(cells[4], excluded.to_string(), "{cells:?}");
    assert_eq!(cells[5], first["errors"].to_string(), "{cells:?}");
    let e = &first["emails"];
    let figures = format!(
        "emails {} read: {} kept, {} excluded, {} failed",
        e["processed"], e["kept"], e["excluded"], e["failed"]
    );
    assert!(cells[10].contains(&figures), "{figures:?} not in {cells:?}");
    b.screenshot("tenant").await;
    // The tenant's connectivity checklist, step by step, as `tenant test` gives it; activating
    // the sandbox's tenant again changes nothing and says so.
    let test = b.find("#test-connectivity").await;
    b.click(&test).await;
    b.wait_text("#setup-result", "Every step passed").await;
    for step in ["token", "directory", "mailbox"] {
        let row = b.find(&format!("#checklist tr[data-step='{step}']")).await;
        assert!(b.text(&row).await.contains("passed"), "{step}");
    }
    let activate = b.find("#activate").await;
    b.click(&activate).await;
    b.wait_text("#setup-result", "Already activated").await;
    // Verify compares a mailbox with Microsoft; the sandbox's first run read it whole.
    let address = mailboxes[0]["address"].as_str().unwrap();
    let verify = b
        .find(&format!("#mailboxes tr[data-address='{address}'] button"))
        .await;
    b.click(&verify).await;
    b.wait_text(
        &format!("#mailboxes tr[data-address='{address}']"),
        "complete: every folder matches",
    )
    .await;
    // The tenant's calendar settings: shown as they apply, saved as the tenant's own.
    let link = b.find("a[href='#/calendar/sandbox/contoso']").await;
    b.click(&link).await;
    let save = b.find("#calendar-form button[type=submit]").await;
    b.click(&save).await;
    b.wait_text("#calendar-result", "Saved for this tenant")
        .await;
    let settings = json_of(
        &serve,
        Method::GET,
        "/api/orgs/sandbox/tenants/contoso/calendar/settings",
        &admin,
    )
    .await;
    assert_eq!(settings["from"], "tenant", "{settings}");
    // The org's defaults, one link away: a change there is the org's, and the tenant that
    // now has its own keeps them.
    let link = b.find("a[href='#/calendar/sandbox']").await;
    b.click(&link).await;
    b.wait_text("h1", "the org's defaults").await;
    let internal = b.find("#sync_internal_events").await;
    let was = b.property(&internal, "checked").await;
    b.click(&internal).await;
    let save = b.find("#calendar-form button[type=submit]").await;
    b.click(&save).await;
    b.wait_text("#calendar-result", "Saved for the org").await;
    let org = json_of(
        &serve,
        Method::GET,
        "/api/orgs/sandbox/calendar/settings",
        &admin,
    )
    .await;
    assert_eq!(
        org["settings"]["sync_internal_events"],
        !was.as_bool().unwrap(),
        "{org}"
    );
    let tenant = json_of(
        &serve,
        Method::GET,
        "/api/orgs/sandbox/tenants/contoso/calendar/settings",
        &admin,
    )
    .await;
    assert_eq!(tenant, settings, "the tenant's own settings are untouched");
    // The tenant's mail sync settings: a refused value is named and nothing is saved; a
    // save sends only what changed, the rest keeps its value.
    let before = json_of(
        &serve,
        Method::GET,
        "/api/tenants/sandbox/contoso/settings",
        &admin,
    )
    .await;
    b.goto(&format!("{base}/#/settings/sandbox/contoso")).await;
    let set = |id: &'static str| format!("#set-{id}");
    let page_size = b.find(&set("page_size")).await;
    assert_eq!(
        b.property(&page_size, "value").await,
        before["page_size"].to_string()
    );
    b.clear(&page_size).await;
    b.type_into(&page_size, "5000").await;
    let save = b.find("#settings-form button[type=submit]").await;
    b.click(&save).await;
    b.wait_text("#settings-result", "Not saved").await;
    let unchanged = json_of(
        &serve,
        Method::GET,
        "/api/tenants/sandbox/contoso/settings",
        &admin,
    )
    .await;
    assert_eq!(unchanged, before);
    b.clear(&page_size).await;
    b.type_into(&page_size, "250").await;
    let cadence = b.find(&set("cadence_minutes")).await;
    b.clear(&cadence).await;
    b.type_into(&cadence, "30").await;
    b.click(&save).await;
    b.wait_text("#settings-result", "Saved: cadence_minutes, page_size.")
        .await;
    let after = json_of(
        &serve,
        Method::GET,
        "/api/tenants/sandbox/contoso/settings",
        &admin,
    )
    .await;
    let mut expected = before.clone();
    expected["page_size"] = 250.into();
    expected["cadence_minutes"] = 30.into();
    assert_eq!(after, expected);
    b.screenshot("settings").await;
    // The attachments the first run skipped (the sandbox's mail has links and files over the
    // cap): the page lists the API's first page and its counts in words.
    let skipped = json_of(
        &serve,
        Method::GET,
        "/api/tenants/sandbox/contoso/attachments/skipped",
        &admin,
    )
    .await;
    let listed = skipped["attachments"].as_array().unwrap();
    let links = skipped["counts"]["reference"].as_i64().unwrap();
    assert!(links > 0, "the sandbox's mail carries links: {skipped}");
    b.goto(&format!("{base}/#/attachments/sandbox/contoso"))
        .await;
    b.wait_text("#skipped-counts", &format!("{links} links"))
        .await;
    let rows = b.all("#skipped tbody tr").await;
    assert_eq!(rows.len(), listed.len(), "{skipped}");
    let first = b.text(&rows[0]).await;
    assert!(
        first.contains(listed[0]["name"].as_str().unwrap())
            && first.contains(listed[0]["reason"].as_str().unwrap()),
        "{first} / {}",
        listed[0]
    );
    b.screenshot("attachments").await;
    // The failed-records page shows the stages' failures and the matching plugin's: the
    // sandbox's default plugins fail on nothing, and the page says so for both.
    let matching = json_of(
        &serve,
        Method::GET,
        "/api/tenants/sandbox/contoso/match/failures",
        &admin,
    )
    .await;
    assert_eq!(matching["total"], 0, "{matching}");
    b.goto(&format!("{base}/#/failures/sandbox/contoso")).await;
    b.wait_text("#no-match-failures", "fails on no record")
        .await;
    // The org's entities (the sandbox makes one company per client domain): the page lists
    // the API's first page, and a search by domain finds that company.
    let entities = json_of(
        &serve,
        Method::GET,
        "/api/orgs/sandbox/entities?limit=50",
        &admin,
    )
    .await;
    let entities = entities.as_array().unwrap();
    assert!(!entities.is_empty(), "the sandbox seeds companies");
    b.goto(&format!("{base}/#/entities/sandbox")).await;
    b.wait_text("#entities", entities[0]["name"].as_str().unwrap())
        .await;
    assert_eq!(b.all("#entities tbody tr").await.len(), entities.len());
    let domain = entities[0]["domains"][0].as_str().unwrap().to_string();
    let search = b.find("#entity-search").await;
    b.type_into(&search, &domain).await;
    let go = b.find("form[role=search] button[type=submit]").await;
    b.click(&go).await;
    b.wait_text("#entities", &domain).await;
    // The org's plugins: the sandbox installed none, so the built-in ones decide every slot,
    // and a rollback is refused in words, after the page asked first.
    b.goto(&format!("{base}/#/plugins/sandbox")).await;
    let org_exclusion = "#plugins tr[data-level='org default'][data-slot='exclusion']";
    b.wait_text(org_exclusion, "built-in").await;
    for slot in ["exclusion", "mapping", "matching"] {
        let row = b
            .find(&format!(
                "#plugins tr[data-level='tenant contoso'][data-slot='{slot}']"
            ))
            .await;
        assert!(b.text(&row).await.contains("built-in"), "{slot}");
    }
    // What each version decided: the built-in plugins decided the sandbox's first run, and the
    // page says it in the API's figures (kept and dropped, mapped, matched).
    let plugins = json_of(&serve, Method::GET, "/api/orgs/sandbox/plugins", &admin).await;
    let decided = |list: &Value, slot: &str| {
        list["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["level"] == "tenant contoso" && r["slot"] == slot)
            .unwrap()["decided"]
            .clone()
    };
    let (e, m, mt) = (
        decided(&plugins, "exclusion"),
        decided(&plugins, "mapping"),
        decided(&plugins, "matching"),
    );
    assert!(
        e["kept"].as_i64().unwrap() > 0 && e["dropped"].as_i64().unwrap() > 0,
        "{e}"
    );
    assert_eq!(m["mapped"], e["kept"], "{plugins}");
    assert!(
        mt["matched"].as_i64().unwrap() > 0,
        "the seeded contacts were matched: {mt}"
    );
    let cell = |slot: &str| {
        format!("#plugins tr[data-level='tenant contoso'][data-slot='{slot}'] td.decided")
    };
    b.wait_text(
        &cell("exclusion"),
        &format!("{} kept, {} dropped", e["kept"], e["dropped"]),
    )
    .await;
    b.wait_text(&cell("mapping"), &format!("{} mapped", m["mapped"]))
        .await;
    b.wait_text(
        &cell("matching"),
        &format!("{} matched, {} contact links", mt["matched"], mt["linked"]),
    )
    .await;
    let history = b
        .find(&format!("{org_exclusion} button[aria-label^='History']"))
        .await;
    b.click(&history).await;
    b.wait_text("#plugin-detail", "Nothing was ever installed")
        .await;
    let roll = b
        .find(&format!("{org_exclusion} button[aria-label^='Roll back']"))
        .await;
    b.click(&roll).await;
    let confirm = b.find(&format!("{org_exclusion} .confirm button")).await;
    assert_eq!(b.text(&confirm).await, "Roll back");
    b.click(&confirm).await;
    b.wait_text(
        org_exclusion,
        "Not rolled back: nothing to roll back to: the exclusion slot has had 0 install(s)",
    )
    .await;
    // Two installs of the tenant's mapping by the CLI (the built-in one, then the same under
    // another digest); the page shows the tenant's own and rolls it back to the first.
    let config = sandbox.join("m365sync.toml");
    let tagged = dir.0.join("tagged-mapping.wasm");
    let mut wasm = m365sync_plugin::builtin::builtin(m365sync_plugin::Kind::Mapping)
        .wasm
        .to_vec();
    wasm.extend_from_slice(&[0, 6, 4, b't', b'e', b's', b't', 1]);
    std::fs::write(&tagged, &wasm).unwrap();
    for (file, extra) in [
        ("builtin:mapping", None),
        (tagged.to_str().unwrap(), Some("--no-cases")),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_m365sync"))
            .arg("--config")
            .arg(&config)
            .args(["plugin", "install", file, "--org", "sandbox"])
            .args(["--tenant", "contoso", "--slot", "mapping"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    b.goto(&format!("{base}/#/tenants")).await;
    b.goto(&format!("{base}/#/plugins/sandbox")).await;
    let tenant_mapping = "#plugins tr[data-level='tenant contoso'][data-slot='mapping']";
    b.wait_text(tenant_mapping, "installed").await;
    let roll = b
        .find(&format!("{tenant_mapping} button[aria-label^='Roll back']"))
        .await;
    b.click(&roll).await;
    let confirm = b.find(&format!("{tenant_mapping} .confirm button")).await;
    b.click(&confirm).await;
    let builtin_mapping = m365sync_plugin::cache::digest(
        m365sync_plugin::builtin::builtin(m365sync_plugin::Kind::Mapping).wasm,
    );
    b.wait_text(
        "#plugin-result",
        "rolled back the mapping plugin of tenant contoso of org sandbox: now field-mapping",
    )
    .await;
    b.wait_text(tenant_mapping, &builtin_mapping[..16]).await;
    // Installing from the page: the org's exclusion slot gets a component (the built-in one
    // under another digest) only once the cases it is uploaded with pass; a case file that
    // expects otherwise is refused with its report and nothing changes.
    let exclusion = m365sync_plugin::builtin::builtin(m365sync_plugin::Kind::Exclusion);
    let mut wasm = exclusion.wasm.to_vec();
    wasm.extend_from_slice(&[0, 6, 4, b'p', b'a', b'g', b'e', 1]);
    let component = dir.0.join("page-exclusion.wasm");
    std::fs::write(&component, &wasm).unwrap();
    let good = dir.0.join("cases.toml");
    std::fs::write(&good, exclusion.cases).unwrap();
    let bad = dir.0.join("wrong-cases.toml");
    std::fs::write(
        &bad,
        format!(
            "{}\n[[case]]\nname = \"expects the impossible\"\nemail = {{ subject = \"hi\", addresses = [{{ role = \"From\", email = \"pat@client.example\", name = \"\" }}] }}\nexpect = {{ decision = \"Drop\" }}\n",
            exclusion.cases
        ),
    )
    .unwrap();
    let tenant_exclusion = "#plugins tr[data-level='tenant contoso'][data-slot='exclusion']";
    for (cases, outcome) in [
        (&bad, "Not installed"),
        (&good, "installed exclusion-rules"),
    ] {
        let level = b.find("#install-level option[value='contoso']").await;
        b.click(&level).await;
        let wasm_input = b.find("#install-wasm").await;
        b.type_into(&wasm_input, component.to_str().unwrap()).await;
        let cases_input = b.find("#install-cases").await;
        b.type_into(&cases_input, cases.to_str().unwrap()).await;
        let submit = b.find("#install-form button[type=submit]").await;
        b.click(&submit).await;
        if outcome == "Not installed" {
            b.wait_text("#install-result", "1 of").await;
            b.wait_text("#install-report", "expects the impossible")
                .await;
            b.wait_text(tenant_exclusion, "built-in").await;
        } else {
            b.wait_text("#plugin-result", outcome).await;
            b.wait_text("#install-report", "passed").await;
        }
    }
    b.wait_text(
        "#plugin-result",
        "as the exclusion plugin of tenant contoso",
    )
    .await;
    b.wait_text(
        tenant_exclusion,
        &m365sync_plugin::cache::digest(&wasm)["sha256:".len().."sha256:".len() + 8],
    )
    .await;
    b.wait_text(org_exclusion, "built-in").await;
    // The new version has decided nothing yet; new mail and "Sync now" make it decide.
    b.wait_text(&cell("exclusion"), "0 kept, 0 dropped").await;
    let contoso_boxes = json_of(
        &serve,
        Method::GET,
        "/api/tenants/sandbox/contoso/mailboxes",
        &admin,
    )
    .await;
    let to = contoso_boxes[0]["address"].as_str().unwrap().to_string();
    let authority = json_of(&serve, Method::GET, "/api/tenants", &admin).await[0]["authority"]
        .as_str()
        .unwrap()
        .to_string();
    let sim = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let delivered = sim
        .post(format!("{authority}/_sim/deliver"))
        .json(&json!({"from": "client@acme-holdings.example", "to": [to], "subject": "Decided by the new version"}))
        .send()
        .await
        .unwrap();
    assert!(delivered.status().is_success(), "{delivered:?}");
    let (st, body) = serve
        .api(
            Method::POST,
            "/api/tenants/sandbox/contoso/sync",
            Some(&admin),
        )
        .await;
    assert!(st < 300, "sync now: {st} {body}");
    wait_for(
        90,
        "the new exclusion version to decide the new mail",
        || {
            let serve = &serve;
            let admin = admin.clone();
            async move {
                let (_, body) = serve
                    .api(Method::GET, "/api/orgs/sandbox/plugins", Some(&admin))
                    .await;
                let list: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                list["slots"].as_array().is_some_and(|rows| {
                    rows.iter().any(|r| {
                        r["level"] == "tenant contoso"
                            && r["slot"] == "exclusion"
                            && r["decided"]["kept"].as_i64().unwrap_or(0)
                                + r["decided"]["dropped"].as_i64().unwrap_or(0)
                                >= 1
                    })
                })
            }
        },
    )
    .await;
    let now = decided(
        &json_of(&serve, Method::GET, "/api/orgs/sandbox/plugins", &admin).await,
        "exclusion",
    );
    b.goto(&format!("{base}/#/tenants")).await;
    b.goto(&format!("{base}/#/plugins/sandbox")).await;
    b.wait_text(
        &cell("exclusion"),
        &format!("{} kept, {} dropped", now["kept"], now["dropped"]),
    )
    .await;
    // Its history line says the same, and the built-in's line keeps what it decided before.
    let history = b
        .find(&format!("{tenant_exclusion} button[aria-label^='History']"))
        .await;
    b.click(&history).await;
    let newest = &m365sync_plugin::cache::digest(&wasm);
    b.wait_text(
        &format!("#plugin-history tr[data-digest='{newest}'] td.decided"),
        &format!("{} kept, {} dropped", now["kept"], now["dropped"]),
    )
    .await;
    let builtin_exclusion = m365sync_plugin::cache::digest(exclusion.wasm);
    b.wait_text(
        &format!("#plugin-history tr[data-digest='{builtin_exclusion}'] td.decided"),
        &format!("{} kept, {} dropped", e["kept"], e["dropped"]),
    )
    .await;
    b.screenshot("plugins").await;

    // (2b) The setup assistant walks the simulator's second tenant, declared by nobody yet, up
    // to activation, and its first run's counts show on its tenant page. Its credentials are
    // the simulated Microsoft's (sim-world.json); its authority and Graph URL the sandbox's.
    let world: Value =
        serde_json::from_slice(&std::fs::read(sandbox.join("sim-world.json")).unwrap()).unwrap();
    let second = &world["world"]["tenants"][1];
    let ms_tenant = second["id"].as_str().unwrap().to_string();
    let client_id = second["apps"][0]["client_id"].as_str().unwrap().to_string();
    let secret = second["apps"][0]["secrets"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let people: Vec<String> = second["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["kind"] == "person")
        .map(|u| u["upn"].as_str().unwrap().to_string())
        .collect();
    let tenants = json_of(&serve, Method::GET, "/api/tenants", &admin).await;
    let contoso = &tenants[0];
    let mut csv = String::from("userPrincipalName,displayName,mail,userType,accountEnabled\r\n");
    for p in &people {
        csv.push_str(&format!("{p},{p},{p},Member,True\r\n"));
    }
    csv.push_str("not an address,Broken,,Member,True\r\n");
    let bad_line = people.len() + 2;
    let csv_file = dir.0.join("fabrikam-users.csv");
    std::fs::write(&csv_file, csv).unwrap();

    // A new org from the assistant (the service admin's link), which leads on to declaring its
    // first tenant; the same name again is refused in the API's words.
    b.goto(&format!("{base}/#/tenants")).await;
    let link = b.find("#new-org-link").await;
    b.click(&link).await;
    for expected in [
        "Created org northwind. Next: declare its first tenant.",
        "Not created: org northwind already exists; declare its tenants under it",
    ] {
        b.wait_text("#state-org", "To do").await;
        let input = b.find("#org-name").await;
        b.type_into(&input, "northwind").await;
        let submit = b.find("#org-form button[type=submit]").await;
        b.click(&submit).await;
        b.wait_text("#org-result", expected).await;
        if expected.starts_with("Created") {
            b.wait_text("#state-credentials", "To do").await;
            b.wait_text("#title-credentials", "Credentials").await;
            b.goto(&format!("{base}/#/setup")).await;
        }
    }
    // Its first tenant, delegated (the second simulated tenant's app): "Sign in with
    // Microsoft" goes to the simulator's authorize page, which consents at once and sends the
    // browser to the service's /oauth/callback, which brings it back here authorized.
    b.goto(&format!("{base}/#/setup/northwind")).await;
    b.wait_text("#state-credentials", "To do").await;
    for (field, value) in [
        ("#setup-name", "partners"),
        ("#setup-ms-tenant", ms_tenant.as_str()),
        ("#setup-client-id", client_id.as_str()),
        ("#setup-secret", secret.as_str()),
    ] {
        let input = b.find(field).await;
        b.type_into(&input, value).await;
    }
    let delegated = b.find("#setup-delegated").await;
    b.click(&delegated).await;
    let cloud = b.find("#declare-form details summary").await;
    b.click(&cloud).await;
    let authority = b.find("#setup-authority").await;
    b.type_into(&authority, contoso["authority"].as_str().unwrap())
        .await;
    let graph = b.find("#setup-graph-url").await;
    b.type_into(&graph, contoso["graph_url"].as_str().unwrap())
        .await;
    let declare = b.find("#declare-form button[type=submit]").await;
    b.click(&declare).await;
    b.wait_text("#declare-result", "Next: sign in with Microsoft.")
        .await;
    b.wait_text("#state-credentials", "(delegated)").await;
    let sign_in_ms = b.find("#setup-authorize").await;
    b.click(&sign_in_ms).await;
    b.wait_text(
        "#declare-result",
        "Signed in with Microsoft: the tenant is authorized",
    )
    .await;
    let partners = json_of(&serve, Method::GET, "/api/tenants?org=northwind", &admin).await;
    assert_eq!(partners[0]["auth_mode"], "delegated", "{partners}");
    let test = b.find("#setup-test").await;
    b.click(&test).await;
    b.wait_text("#checklist tr[data-step='token']", "passed")
        .await;
    assert!(!b.page_text().await.contains(&secret));
    b.goto(&format!("{base}/#/tenants")).await;
    let link = b.find("#declare-links a[href='#/setup/sandbox']").await;
    b.click(&link).await;
    b.wait_text("#state-credentials", "To do").await;
    for (field, value) in [
        ("#setup-name", "fabrikam"),
        ("#setup-ms-tenant", ms_tenant.as_str()),
        ("#setup-client-id", client_id.as_str()),
        ("#setup-secret", secret.as_str()),
    ] {
        let input = b.find(field).await;
        b.type_into(&input, value).await;
    }
    let cloud = b.find("#declare-form details summary").await;
    b.click(&cloud).await;
    let authority = b.find("#setup-authority").await;
    b.type_into(&authority, contoso["authority"].as_str().unwrap())
        .await;
    let graph = b.find("#setup-graph-url").await;
    b.type_into(&graph, contoso["graph_url"].as_str().unwrap())
        .await;
    let declare = b.find("#declare-form button[type=submit]").await;
    b.click(&declare).await;
    b.wait_text("#declare-result", "Declared tenant sandbox/fabrikam")
        .await;
    b.wait_text("#state-credentials", "Done").await;
    assert!(!b.page_text().await.contains(&secret));
    assert!(
        b.all("#setup-secret").await.is_empty(),
        "the secret's field is gone"
    );
    // Connectivity, every step passed with the declared secret.
    let test = b.find("#setup-test").await;
    b.click(&test).await;
    b.wait_text("#state-test", "Passed").await;
    for step in ["token", "directory", "mailbox"] {
        b.wait_text(&format!("#checklist tr[data-step='{step}']"), "passed")
            .await;
    }
    // Users from Entra's CSV, read by the browser: each line's result, the bad one named.
    let file = b.find("#setup-csv").await;
    b.type_into(&file, csv_file.to_str().unwrap()).await;
    let import = b.find("#setup-import").await;
    b.click(&import).await;
    b.wait_text(
        "#import-summary",
        &format!(
            "Imported fabrikam-users.csv: {} new, 0 updated, 0 unchanged, 0 skipped, 1 error(s)",
            people.len()
        ),
    )
    .await;
    b.wait_text("#import-lines tr[data-line='2']", "created")
        .await;
    let bad = b
        .wait_text(
            &format!("#import-lines tr[data-line='{bad_line}']"),
            "error",
        )
        .await;
    assert!(bad.contains("not an address"), "{bad}");
    b.wait_text(
        "#state-import",
        &format!("{} mailbox(es) so far", people.len()),
    )
    .await;
    // Rules: one for the whole org, one for the tenant added and deleted again.
    let pattern = b.find("#org-pattern").await;
    b.type_into(&pattern, "*@marketweekly.example").await;
    let add = b.find("#org-rule-form button[type=submit]").await;
    b.click(&add).await;
    b.wait_text("#org-rules", "*@marketweekly.example").await;
    let subject = b.find("#tenant-target option[value='subject']").await;
    b.click(&subject).await;
    let pattern = b.find("#tenant-pattern").await;
    b.type_into(&pattern, "zz setup subject").await;
    let add = b.find("#tenant-rule-form button[type=submit]").await;
    b.click(&add).await;
    b.wait_text("#tenant-rules", "zz setup subject").await;
    let delete = b
        .find("#tenant-rules button[aria-label='Delete the rule zz setup subject']")
        .await;
    b.click(&delete).await;
    b.wait_text("#tenant-rules-result", "Deleted the rule zz setup subject")
        .await;
    // One user's rule, set by the admin: named by address, then the same editor.
    let who = b.find("#user-rules-user").await;
    b.type_into(&who, &people[0]).await;
    let show = b.find("#user-rules-pick button[type=submit]").await;
    b.click(&show).await;
    b.wait_text("#user-rules-box", "No rules for").await;
    let pattern = b.find("#user-pattern").await;
    b.type_into(&pattern, "*@partner.example").await;
    let add = b.find("#user-rule-form button[type=submit]").await;
    b.click(&add).await;
    b.wait_text("#user-rules-box", "*@partner.example").await;
    b.wait_text(
        "#state-rules",
        "1 rule(s) for all of sandbox, 0 for fabrikam",
    )
    .await;
    b.wait_text("#state-plugins", "In force for fabrikam").await;
    b.wait_text(
        "#setup-plugins tr[data-level='tenant fabrikam'][data-slot='exclusion']",
        "built-in",
    )
    .await;
    // Calendar: both ways, saved on the calendar page; activation then warns of invitations (C9).
    b.wait_text("#state-calendar", "direction to_crm").await;
    let calendar = b.find("#setup-calendar-link").await;
    b.click(&calendar).await;
    let both = b.find("#direction option[value='two_way']").await;
    b.click(&both).await;
    let save = b.find("#calendar-form button[type=submit]").await;
    b.click(&save).await;
    b.wait_text("#calendar-result", "Saved for this tenant")
        .await;
    b.goto(&format!("{base}/#/setup/sandbox/fabrikam")).await;
    b.wait_text("#state-calendar", "direction two_way").await;
    b.wait_text("#state-activate", "To do").await;
    let activate = b.find("#setup-activate").await;
    b.click(&activate).await;
    b.wait_text(
        "#activate-summary",
        &format!("Activated: {} mailbox(es)", people.len()),
    )
    .await;
    b.wait_text("#activate-warnings", "emails invitations")
        .await;
    b.wait_text("#state-activate", "Done").await;
    let to_tenant = b.find("#to-tenant").await;
    b.click(&to_tenant).await;
    b.wait_text("h1", "Tenant sandbox/fabrikam").await;
    // The assistant again, from the top: each step's state.
    b.goto(&format!("{base}/#/setup/sandbox/fabrikam")).await;
    b.wait_text("#state-import", "mailbox(es) so far").await;
    b.wait_text("#state-rules", "Done").await;
    b.wait_text("#state-activate", "Done: activated").await;
    b.screenshot("setup").await;
    let fab_runs = "/api/tenants/sandbox/fabrikam/runs";
    wait_for(90, "fabrikam's first run", || {
        let serve = &serve;
        let admin = admin.clone();
        async move {
            let (_, body) = serve.api(Method::GET, fab_runs, Some(&admin)).await;
            let runs: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            runs.as_array()
                .and_then(|r| r.last())
                .is_some_and(|r| r["status"] == "succeeded")
        }
    })
    .await;
    let fab_first = json_of(&serve, Method::GET, fab_runs, &admin)
        .await
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(fab_first["synced"].as_i64().unwrap() > 0, "{fab_first}");
    assert!(
        fab_first["emails"]["excluded"].as_i64().unwrap() > 0,
        "the org's rule excluded mail: {fab_first}"
    );
    // The page loaded before the run finished: load it again for the counts.
    b.goto(&format!("{base}/#/tenants")).await;
    b.goto(&format!("{base}/#/tenant/sandbox/fabrikam")).await;
    let row = format!("#runs tr[data-run='{}']", fab_first["id"]);
    b.wait_text(&row, "succeeded").await;
    let mut cells = Vec::new();
    for td in b.all(&format!("{row} td")).await {
        cells.push(b.text(&td).await);
    }
    assert_eq!(cells[2], fab_first["processed"].to_string(), "{cells:?}");
    assert_eq!(cells[3], fab_first["synced"].to_string(), "{cells:?}");
    let excluded = fab_first["emails"]["excluded"].as_i64().unwrap()
        + fab_first["events"]["excluded"].as_i64().unwrap();
    assert_eq!(cells[4], excluded.to_string(), "{cells:?}");
    // Disable and enable a mailbox from the tenant page.
    let address = people[1].to_ascii_lowercase();
    let switch = b
        .find(&format!(
            "#mailboxes tr[data-address='{address}'] button.switch"
        ))
        .await;
    assert_eq!(b.text(&switch).await, "Disable");
    b.click(&switch).await;
    b.wait_text(
        &format!("#mailboxes tr[data-address='{address}']"),
        "disabled: not synced",
    )
    .await;
    b.wait_text(
        &format!("#mailboxes tr[data-address='{address}'] button.switch"),
        "Enable",
    )
    .await;
    let boxes = json_of(
        &serve,
        Method::GET,
        "/api/tenants/sandbox/fabrikam/mailboxes",
        &admin,
    )
    .await;
    let m = boxes
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"] == address.as_str())
        .unwrap();
    assert_eq!(m["enabled"], false, "{m}");
    let switch = b
        .find(&format!(
            "#mailboxes tr[data-address='{address}'] button.switch"
        ))
        .await;
    b.click(&switch).await;
    b.wait_text(
        &format!("#mailboxes tr[data-address='{address}']"),
        "enabled: synced from the next run",
    )
    .await;

    // (3) A user maps three unmatched emails to a contact from their review list.
    // The user with the most unmatched mail, and a contact of their own to map it to.
    let mut user = None;
    for m in mailboxes.as_array().unwrap() {
        if m["kind"] != "person" {
            continue;
        }
        let address = m["address"].as_str().unwrap();
        let review = json_of(
            &serve,
            Method::GET,
            &format!("/api/orgs/sandbox/tenants/contoso/users/{address}/review?limit=50"),
            &admin,
        )
        .await;
        let n = review["items"].as_array().unwrap().len();
        if n >= 3
            && user
                .as_ref()
                .is_none_or(|(_, r): &(String, Value)| r["items"].as_array().unwrap().len() < n)
        {
            user = Some((address.to_string(), review));
        }
    }
    let (user, review) = user.expect("a sandbox user with three unmatched emails");
    let http = reqwest::Client::new();
    let minted: Value = http
        .post(format!("{base}/api/orgs/sandbox/tokens"))
        .bearer_auth(&admin)
        .json(&json!({ "tenant": "contoso", "user": user }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_token = minted["token"].as_str().unwrap().to_string();
    let contact: Value = http
        .post(format!("{base}/api/orgs/sandbox/contacts"))
        .bearer_auth(&admin)
        .json(&json!({ "name": "Console Reviewed Client", "email": "reviewed.client@console-test.example" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let contact_id = contact["id"].as_i64().expect("the contact was created");
    let picked: Vec<(i64, String)> = review["items"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|i| {
            (
                i["email_id"].as_i64().unwrap(),
                i["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();

    let out = b.find("#signout").await;
    b.click(&out).await;
    // By keyboard: the token typed and Enter pressed.
    let input = b.find("#token").await;
    b.type_into(&input, &format!("{user_token}\u{E007}")).await;
    b.wait_text("#who", &format!("Signed in as user {user}"))
        .await;
    b.find("#review input.pick").await;
    for (id, _) in &picked {
        let pick = b.find(&format!("#pick-{id}")).await;
        b.click(&pick).await;
    }
    let filter = b.find("#contact-filter").await;
    b.type_into(&filter, "Console Reviewed").await;
    let find = b.find("#contact-find").await;
    b.click(&find).await;
    b.wait_text("#contact-select", "Console Reviewed Client")
        .await;
    let select = b.find("#contact-select").await;
    assert_eq!(
        b.property(&select, "value").await,
        json!(contact_id.to_string())
    );
    let learn = b.find("#learn").await;
    b.click(&learn).await;
    b.screenshot("review").await;
    let map = b.find("#map").await;
    b.click(&map).await;
    b.wait_text(
        "#map-result",
        "Mapped 3 email(s) to Console Reviewed Client",
    )
    .await;
    // They left the review list (the API says so, and so does the page once reloaded).
    let after = json_of(&serve, Method::GET, "/api/me/review?limit=100", &user_token).await;
    for (id, _) in &picked {
        assert!(
            after["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["email_id"] != *id),
            "{id} still waits for review: {after}"
        );
        assert!(b.all(&format!("#pick-{id}")).await.is_empty());
    }

    // (4) A user token cannot open an admin page: the page says so, as the API does.
    let (status, _) = serve
        .api(Method::GET, "/api/tenants", Some(&user_token))
        .await;
    assert_eq!(status, 403);
    b.goto(&format!("{base}/#/tenants")).await;
    let denied = b
        .wait_text(".notice.denied", "Not available to your token")
        .await;
    assert!(denied.contains("403"), "{denied}");
    b.screenshot("user-denied").await;
    b.goto(&format!("{base}/#/contact/sandbox/{contact_id}"))
        .await;
    b.wait_text(".notice.denied", "Not available to your token")
        .await;
    assert!(!b.page_text().await.contains(&user_token));

    // A revoked token ends the session it signed in: the next page asks to sign in again.
    let (status, body) = serve
        .api(
            Method::DELETE,
            &format!("/api/orgs/sandbox/tokens/{}", minted["id"]),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    b.goto(&format!("{base}/#/rules")).await;
    b.wait_text("#signin-error", "Your session has ended").await;

    // The mapped emails are on the contact's timeline, as the admin sees it.
    sign_in(&b, &admin).await;
    b.wait_text("#who", "service admin").await;
    b.goto(&format!("{base}/#/contact/sandbox/{contact_id}"))
        .await;
    for (_, subject) in &picked {
        b.wait_text("#timeline", subject).await;
    }
    let manual = b.all("#timeline tr[data-kind='email']").await.len();
    assert!(manual >= 3, "{}", b.page_text().await);
    b.screenshot("timeline").await;
    // At a phone's width the page still reads (tables scroll sideways within their frame).
    b.resize(390, 844).await;
    b.goto(&format!("{base}/#/tenant/sandbox/contoso")).await;
    b.wait_text("#runs", "succeeded").await;
    b.screenshot("tenant-phone").await;
    let page = b.page_text().await;
    assert!(!page.contains(&admin) && !page.contains(&user_token));
    drop(b);
    let (clean, log) = serve.terminate();
    assert!(clean, "{log}");
    assert!(!log.contains(&admin) && !log.contains(&user_token));
    assert!(
        !log.contains(&secret),
        "the declared tenant's secret is in no log line"
    );
}

/// (5) The cookie signs in and works for reads, but a request that changes something must come
/// from the console (its header, and this host as Origin): a forged cross-site POST is
/// refused. Bearer callers are unaffected. Both databases.
#[tokio::test]
async fn the_console_cookie_refuses_cross_site_writes() {
    const ADMIN: &str = "console-admin-token-for-tests";
    for db in TestDb::both().await {
        let _w = world(&db).await;
        let (handle, stop) = stop_pair();
        let mut opts = ServiceOptions::new(Some("127.0.0.1:0".parse().unwrap()), ADMIN.into());
        opts.workers = 1;
        opts.poll = Duration::from_millis(200);
        let service = Service::start(env(&db.store), opts, stop).await.unwrap();
        let base = format!("http://{}", service.admin_addr.unwrap());
        let host = base.trim_start_matches("http://").to_string();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();

        // The pages are open, with a strict policy; no data in them.
        let page = http.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        let etag = page.headers()["etag"].clone();
        assert!(page.text().await.unwrap().contains("/console/app.js"));
        let again = http
            .get(format!("{base}/console/app.js"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            again.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        let cached = http
            .get(format!("{base}/"))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(cached.status(), 304);

        // A wrong token: 401 in words, no cookie.
        let wrong = http
            .post(format!("{base}/session"))
            .json(&json!({ "token": "m365s_not-a-token" }))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
        assert!(wrong.headers().get(SET_COOKIE).is_none());
        let text = wrong.text().await.unwrap();
        assert!(
            text.contains("not valid") && !text.contains("not-a-token"),
            "{text}"
        );
        // A form post with a wrong token goes back to the sign-in page, saying so.
        let form = http
            .post(format!("{base}/session"))
            .form(&[("token", "m365s_not-a-token")])
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), 303);
        assert_eq!(form.headers()["location"], "/?signin=refused");

        // The right one: a cookie that scripts cannot read and other sites do not get.
        let signed = http
            .post(format!("{base}/session"))
            .header(ORIGIN, &base)
            .json(&json!({ "token": ADMIN }))
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 200);
        let set = signed.headers()[SET_COOKIE].to_str().unwrap().to_string();
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attr), "{set}");
        }
        assert!(!set.contains("Secure"), "plain http: {set}");
        assert_eq!(signed.json::<Value>().await.unwrap()["role"], "admin");
        let cookie = set.split(';').next().unwrap().to_string();
        // Behind a TLS proxy the cookie is Secure.
        let tls = http
            .post(format!("{base}/session"))
            .header("x-forwarded-proto", "https")
            .json(&json!({ "token": ADMIN }))
            .send()
            .await
            .unwrap();
        assert!(tls.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure"));
        // A sign-in posted from another site's page is refused.
        let forged = http
            .post(format!("{base}/session"))
            .header(ORIGIN, "https://evil.example")
            .json(&json!({ "token": ADMIN }))
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403);

        // Reads with the cookie work.
        let who = http
            .get(format!("{base}/session"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(who.json::<Value>().await.unwrap()["role"], "admin");
        let tenants = http
            .get(format!("{base}/api/tenants"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(tenants.status(), 200);

        // A write with the cookie alone (what a forged form or cross-site fetch sends): 403,
        // and nothing was written.
        let body = json!({ "name": "Forged", "email": "forged@csrf.example" });
        let post = |cookie: &str| {
            http.post(format!("{base}/api/orgs/acme/contacts"))
                .header(COOKIE, cookie)
                .json(&body)
        };
        let r = post(&cookie).send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("X-M365sync-Console"));
        // The console's header from another site's page (its Origin): 403 too.
        let r = post(&cookie)
            .header("x-m365sync-console", "1")
            .header(ORIGIN, "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let listed: Value = http
            .get(format!("{base}/api/orgs/acme/contacts?filter=forged"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed, json!([]), "a refused write wrote nothing");
        // From the console itself: written.
        let r = post(&cookie)
            .header("x-m365sync-console", "1")
            .header(ORIGIN, &base)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{host}");
        // Bearer callers are unaffected by the console's rules.
        let r = http
            .post(format!("{base}/api/orgs/acme/contacts"))
            .bearer_auth(ADMIN)
            .json(&json!({ "name": "By API", "email": "by-api@csrf.example" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);

        // Signing out clears the cookie.
        let out = http
            .post(format!("{base}/session/logout"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert!(out.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"));

        handle.stop();
        service.wait().await;

        // With console_secure_cookie the cookie is Secure over any transport.
        let (handle, stop) = stop_pair();
        let mut opts = ServiceOptions::new(Some("127.0.0.1:0".parse().unwrap()), ADMIN.into());
        opts.workers = 0;
        opts.console_secure_cookie = true;
        let service = Service::start(env(&db.store), opts, stop).await.unwrap();
        let signed = http
            .post(format!("http://{}/session", service.admin_addr.unwrap()))
            .json(&json!({ "token": ADMIN }))
            .send()
            .await
            .unwrap();
        assert!(signed.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure"));
        handle.stop();
        service.wait().await;
        db.drop_db().await;
    }
}
