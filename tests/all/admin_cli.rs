//! The administration CLI end to end, against the simulator, on SQLite and PostgreSQL:
//! `tenant test` names each failure precisely (E11), `mailbox import` reads Entra's CSV with
//! bad rows reported by line and is idempotent (E2), groups are refused as mailboxes, users,
//! rules, enable/disable and activation work, and no secret ever appears in any output (A4).

use m365sync_sim::scenario::Scenario;
use m365sync_sim::Origin;
use reqwest::Method;
use serde_json::json;

use crate::admin_support::{Admin, Run};
use crate::support::{TestDb, TestSim};

const FULL: &str = "11111111-0000-4000-8000-000000000001";
const NO_DIRECTORY: &str = "11111111-0000-4000-8000-000000000002";
const NO_MAIL: &str = "11111111-0000-4000-8000-000000000003";
const SECRETS: [&str; 3] = [
    "full~secret~value~one",
    "nodir~secret~value~two",
    "nomail~secret~value~three",
];

/// A tenant with three apps (full permissions behind an access policy; no directory
/// permission; no mail permission), three people, a shared mailbox and a group.
async fn sim() -> TestSim {
    let text = format!(
        r#"
[[tenant]]
name = "Contoso"
domain = "c.example"
admin = "alice@c.example"
[[tenant.app]]
client_id = "{FULL}"
secrets = ["{}"]
access_policy = ["alice@c.example", "carol@c.example"]
redirect_uris = ["http://127.0.0.1/callback"]
[[tenant.app]]
client_id = "{NO_DIRECTORY}"
secrets = ["{}"]
roles = ["Mail.Read"]
[[tenant.app]]
client_id = "{NO_MAIL}"
secrets = ["{}"]
roles = ["User.Read.All"]
[[tenant.user]]
upn = "alice@c.example"
name = "Alice Adams"
[[tenant.user]]
upn = "bob@c.example"
name = "Bob Brown"
[[tenant.user]]
upn = "carol@c.example"
name = "Carol Clark"
[[tenant.user]]
upn = "info@c.example"
name = "Info"
kind = "shared"
[[tenant.group]]
name = "All Staff"
mail = "allstaff@c.example"
[[tenant.message]]
mailbox = "alice@c.example"
from = "client@example.org"
to = ["alice@c.example"]
subject = "Hello"
received = "2026-05-01T10:00:00Z"
"#,
        SECRETS[0], SECRETS[1], SECRETS[2]
    );
    let scenario = Scenario::parse(&text, std::path::Path::new("admin.toml")).unwrap();
    TestSim::start_with(Origin::Scenario(scenario), Default::default(), None).await
}

/// `tenant add` with the secret from the environment.
async fn add_tenant(
    a: &Admin,
    s: &TestSim,
    name: &str,
    ms_tenant: &str,
    client_id: &str,
    secret: &str,
) -> Run {
    a.run_env(
        &[
            "tenant",
            "add",
            "--org",
            "acme",
            "--name",
            name,
            "--ms-tenant",
            ms_tenant,
            "--client-id",
            client_id,
            "--secret-env",
            "ADMIN_TEST_SECRET",
            "--authority",
            &s.base,
            "--graph-url",
            &s.graph,
        ],
        &[("ADMIN_TEST_SECRET", secret)],
    )
    .await
}

/// (tenant, ms tenant, client id, secret, --mailbox, what the failure must say; None: passes)
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a [&'a str]>,
);

fn assert_no_secret(outputs: &[String], secrets: &[&str]) {
    for out in outputs {
        for s in secrets {
            assert!(!out.contains(s), "a secret leaked into output: {out}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tenant_test_names_each_failure() {
    let s = sim().await;
    let added = s
        .ctl(
            Method::POST,
            "secrets/add",
            json!({"tenant": s.tenant_id, "client_id": FULL}),
        )
        .await;
    let doomed = added["secret"].as_str().unwrap().to_string();
    s.ctl(
        Method::POST,
        "secrets/expire",
        json!({"tenant": s.tenant_id, "client_id": FULL, "secret": doomed}),
    )
    .await;
    let tid = s.tenant_id.clone();
    let cases: Vec<Case> = vec![
        ("good", &tid, FULL, SECRETS[0], "alice@c.example", None),
        (
            "policy",
            &tid,
            FULL,
            SECRETS[0],
            "bob@c.example",
            Some(&["bob@c.example", "access policy"]),
        ),
        (
            "wrong",
            &tid,
            FULL,
            "not~the~secret",
            "alice@c.example",
            Some(&["AADSTS7000215", "wrong"]),
        ),
        (
            "expired",
            &tid,
            FULL,
            &doomed,
            "alice@c.example",
            Some(&["AADSTS7000222", "expired"]),
        ),
        (
            "unknownapp",
            &tid,
            "99999999-0000-4000-8000-000000000009",
            SECRETS[0],
            "alice@c.example",
            Some(&["AADSTS700016", "99999999-0000-4000-8000-000000000009"]),
        ),
        (
            "unknowntenant",
            "nowhere.example",
            FULL,
            SECRETS[0],
            "alice@c.example",
            Some(&["AADSTS90002", "nowhere.example"]),
        ),
        (
            "nodirectory",
            &tid,
            NO_DIRECTORY,
            SECRETS[1],
            "alice@c.example",
            Some(&["User.Read.All", "admin consent"]),
        ),
        (
            "nomail",
            &tid,
            NO_MAIL,
            SECRETS[2],
            "alice@c.example",
            Some(&["Mail.Read", "admin consent"]),
        ),
    ];
    for db in TestDb::both().await {
        let a = Admin::new(db).await;
        let mut outputs = Vec::new();
        for (name, ms_tenant, client_id, secret, mailbox, expect) in &cases {
            let added = add_tenant(&a, &s, name, ms_tenant, client_id, secret).await;
            assert!(added.ok, "{}", added.all());
            let r = a
                .run(&[
                    "tenant",
                    "test",
                    "--org",
                    "acme",
                    "--tenant",
                    name,
                    "--mailbox",
                    mailbox,
                ])
                .await;
            match expect {
                None => {
                    assert!(r.ok, "{name}: {}", r.all());
                    assert_eq!(r.stdout.matches("[ok]").count(), 3, "{}", r.all());
                }
                Some(words) => {
                    assert!(!r.ok, "{name} must fail: {}", r.all());
                    assert!(r.stdout.contains("[FAIL]"), "{}", r.all());
                    for w in *words {
                        assert!(
                            r.all().contains(w),
                            "{name}: '{w}' missing from: {}",
                            r.all()
                        );
                    }
                    assert!(
                        r.stderr.contains(&format!("acme/{name}")),
                        "the error names the tenant: {}",
                        r.stderr
                    );
                }
            }
            outputs.push(added.all());
            outputs.push(r.all());
        }
        // The JSON checklist names the failure's kind and mailbox.
        let r = a
            .run(&[
                "tenant",
                "test",
                "--org",
                "acme",
                "--tenant",
                "policy",
                "--mailbox",
                "bob@c.example",
                "--json",
            ])
            .await;
        let v = r.json();
        assert_eq!(v["ok"], false);
        assert_eq!(v["steps"][0]["status"], "passed");
        assert_eq!(v["steps"][1]["status"], "passed");
        assert_eq!(v["steps"][2]["failure"]["kind"], "outside_access_policy");
        assert_eq!(v["steps"][2]["failure"]["mailbox"], "bob@c.example");
        let r = a
            .run(&[
                "tenant", "test", "--org", "acme", "--tenant", "wrong", "--json",
            ])
            .await;
        let v = r.json();
        assert_eq!(v["steps"][0]["failure"]["kind"], "wrong_secret");
        assert_eq!(v["steps"][1]["status"], "skipped");
        outputs.push(r.all());
        // Listing, secrets by label only, and no secret in any output or the database's text.
        let list = a.run(&["tenant", "list", "--org", "acme", "--json"]).await;
        assert_eq!(list.json().as_array().unwrap().len(), cases.len());
        let typo = a.run(&["tenant", "list", "--org", "acmee"]).await;
        assert!(
            !typo.ok && typo.all().contains("no org 'acmee'"),
            "{}",
            typo.all()
        );
        let labels = a
            .run(&[
                "tenant", "secret", "list", "--org", "acme", "--tenant", "good",
            ])
            .await;
        assert!(
            labels.ok && labels.stdout.contains("initial"),
            "{}",
            labels.all()
        );
        outputs.push(list.all());
        outputs.push(labels.all());
        assert_no_secret(
            &outputs,
            &[
                SECRETS[0],
                SECRETS[1],
                SECRETS[2],
                &doomed,
                "not~the~secret",
            ],
        );
        // A secret is never taken as a plain argument.
        let r = a
            .run(&[
                "tenant",
                "add",
                "--org",
                "acme",
                "--name",
                "x",
                "--ms-tenant",
                "t",
                "--client-id",
                "c",
                "--secret",
                "plain",
            ])
            .await;
        assert!(!r.ok);
        a.finish().await;
    }
}

const CSV: &str = "\u{feff}id,userPrincipalName,displayName,surname,mail,givenName,userType,jobTitle,department,accountEnabled,usageLocation\r
,alice@c.example,Alice Adams,Adams,alice@c.example,Alice,Member,,Sales,True,GB\r
,Bob@C.example,\"Bob \"\"The Builder\"\" Brown\",Brown,bob@c.example,Bob,Member,,,True,GB\r
,carol@c.example,\"Carol, Jr.\",,carol@c.example,Carol,Member,,,TRUE,GB\r
,info@c.example,Info,,info@c.example,,Member,,,False,\r
,guest_x.example#EXT#@c.example,Guest,,guest@x.example,,Guest,,,True,\r
,not an address,Broken,,,,Member,,,True,\r
,allstaff@c.example,All Staff,,allstaff@c.example,,Member,,,True,\r
,nobody@c.example,Nobody,,nobody@c.example,,Member,,,True,\r
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_csv_import_users_links_and_activation() {
    let s = sim().await;
    let truth = s.truth();
    let object_id = |upn: &str| {
        truth["tenants"][0]["mailboxes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["upn"] == upn)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for db in TestDb::both().await {
        let a = Admin::new(db).await;
        let csv = a.dir.join("users.csv");
        std::fs::write(&csv, CSV).unwrap();
        let csv = csv.display().to_string();
        assert!(
            add_tenant(&a, &s, "main", &s.tenant_id, FULL, SECRETS[0])
                .await
                .ok
        );
        let import = [
            "mailbox", "import", "--csv", &csv, "--org", "acme", "--tenant", "main",
        ];
        let r = a.run(&import).await;
        assert!(!r.ok, "bad rows make the import fail: {}", r.all());
        let out = r.all();
        assert!(
            out.contains(&format!("{csv}:7:")) && out.contains("not an address"),
            "{out}"
        );
        assert!(
            out.contains(&format!("{csv}:8:")) && out.contains("group"),
            "{out}"
        );
        assert!(
            out.contains(&format!("{csv}:9:")) && out.contains("nobody@c.example"),
            "{out}"
        );
        assert!(
            out.contains(&format!("{csv}:5: skipped")) && out.contains("disabled"),
            "{out}"
        );
        assert!(
            out.contains(&format!("{csv}:6: skipped")) && out.contains("guest"),
            "{out}"
        );
        assert!(
            out.contains("3 new, 0 updated, 0 unchanged, 2 skipped, 3 error(s)"),
            "{out}"
        );
        let t = a.store.tenant("acme", "main").await.unwrap();
        let boxes = a.store.mailboxes(t.id).await.unwrap();
        assert_eq!(
            boxes.iter().map(|m| m.address.as_str()).collect::<Vec<_>>(),
            ["alice@c.example", "bob@c.example", "carol@c.example"]
        );
        for m in &boxes {
            assert_eq!(
                m.graph_id,
                object_id(&m.address),
                "resolved through the directory"
            );
            assert!(m.user_id.is_some());
        }
        assert_eq!(boxes[1].display_name, "Bob \"The Builder\" Brown");
        assert_eq!(boxes[2].display_name, "Carol, Jr.");
        // Importing again changes nothing.
        let again = a.run(&[&import[..], &["--json"]].concat()).await;
        let v = again.json();
        assert_eq!(
            v["unchanged"].as_array().unwrap().len(),
            3,
            "{}",
            again.all()
        );
        assert!(
            v["created"].as_array().unwrap().is_empty()
                && v["updated"].as_array().unwrap().is_empty()
        );
        assert_eq!(v["errors"][0]["line"], 7);
        assert_eq!(a.store.mailboxes(t.id).await.unwrap().len(), 3);
        assert_eq!(a.store.users(t.id).await.unwrap().len(), 3);
        // A group is refused as a mailbox; a shared mailbox goes to its nominated user.
        let r = a
            .run(&[
                "mailbox",
                "add",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--address",
                "allstaff@c.example",
            ])
            .await;
        assert!(
            !r.ok && r.stderr.contains("group") && r.stderr.contains("acme/main"),
            "{}",
            r.all()
        );
        // E14: a user the directory does not know is refused before anything is written.
        let users_before = a
            .store
            .users(a.store.tenant("acme", "main").await.unwrap().id)
            .await
            .unwrap();
        let r = a
            .run(&[
                "mailbox",
                "add",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--address",
                "info@c.example",
                "--shared",
                "--user",
                "alcie@c.example",
            ])
            .await;
        assert!(
            !r.ok
                && r.stderr
                    .contains("alcie@c.example is not a user in the tenant's directory"),
            "{}",
            r.all()
        );
        let t = a.store.tenant("acme", "main").await.unwrap();
        assert_eq!(
            a.store.users(t.id).await.unwrap(),
            users_before,
            "no phantom user"
        );
        assert!(a
            .store
            .mailbox_by_address(t.id, "info@c.example")
            .await
            .unwrap()
            .is_none_or(
                |m| m.user_id.is_none() || users_before.iter().any(|u| Some(u.0) == m.user_id)
            ));
        let r = a
            .run(&[
                "mailbox",
                "add",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--address",
                "info@c.example",
                "--shared",
                "--user",
                "alice@c.example",
            ])
            .await;
        assert!(r.ok, "{}", r.all());
        let r = a
            .run(&[
                "user",
                "link",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--user",
                "bob@c.example",
                "--mailbox",
                "info@c.example",
            ])
            .await;
        assert!(r.ok, "{}", r.all());
        let r = a
            .run(&[
                "user",
                "link",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--user",
                "zed@c.example",
                "--mailbox",
                "info@c.example",
            ])
            .await;
        assert!(
            !r.ok && r.stderr.contains("no user zed@c.example"),
            "{}",
            r.all()
        );
        // Mailbox health columns, enable and disable.
        assert!(
            a.run(&[
                "mailbox",
                "disable",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--address",
                "carol@c.example"
            ])
            .await
            .ok
        );
        let list = a
            .run(&[
                "mailbox", "list", "--org", "acme", "--tenant", "main", "--json",
            ])
            .await
            .json();
        let find = |addr: &str| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|m| m["address"] == addr)
                .unwrap()
                .clone()
        };
        assert_eq!(find("info@c.example")["user"], "bob@c.example");
        assert_eq!(find("info@c.example")["kind"], "shared");
        assert_eq!(find("carol@c.example")["enabled"], false);
        for field in [
            "health",
            "health_detail",
            "consecutive_failures",
            "backoff_until_ms",
        ] {
            assert!(find("alice@c.example").get(field).is_some(), "{field}");
        }
        let table = a
            .run(&["mailbox", "list", "--org", "acme", "--tenant", "main"])
            .await;
        assert!(
            table.stdout.contains("HEALTH") && table.stdout.contains("BACKOFF UNTIL"),
            "{}",
            table.all()
        );
        assert!(
            a.run(&[
                "mailbox",
                "enable",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--address",
                "carol@c.example"
            ])
            .await
            .ok
        );
        let users = a
            .run(&[
                "user", "list", "--org", "acme", "--tenant", "main", "--json",
            ])
            .await
            .json();
        assert_eq!(users.as_array().unwrap().len(), 3);
        // Tenant disable stops activation; enable, activate, activate again.
        assert!(
            a.run(&["tenant", "disable", "--org", "acme", "--tenant", "main"])
                .await
                .ok
        );
        let list = a.run(&["tenant", "list", "--json"]).await.json();
        assert_eq!(list[0]["enabled"], false);
        let r = a
            .run(&["activate", "--org", "acme", "--tenant", "main"])
            .await;
        assert!(!r.ok && r.stderr.contains("disabled"), "{}", r.all());
        assert!(
            a.run(&["tenant", "enable", "--org", "acme", "--tenant", "main"])
                .await
                .ok
        );
        let r = a
            .run(&["activate", "--org", "acme", "--tenant", "main"])
            .await;
        assert!(
            r.ok && r.stdout.contains("activated tenant acme/main"),
            "{}",
            r.all()
        );
        assert!(
            r.stdout.contains("no exclusion rules"),
            "warns about rules: {}",
            r.all()
        );
        // Every enabled mailbox is tried, not only the first: Bob is outside the app's access
        // policy and is named now, not found by the first run.
        assert!(
            r.stdout.contains("mailbox bob@c.example will not sync")
                && r.stdout.contains("access policy"),
            "{}",
            r.all()
        );
        assert!(!r.stdout.contains("mailbox alice@c.example will not sync"));
        let t = a.store.tenant("acme", "main").await.unwrap();
        assert!(t.activated_ms.is_some() && t.initial_sync_ms.is_some());
        let r = a
            .run(&["activate", "--org", "acme", "--tenant", "main", "--json"])
            .await;
        assert_eq!(r.json()["newly_activated"], false, "{}", r.all());
        let failing = r.json()["failing_mailboxes"].clone();
        assert!(
            failing
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["mailbox"] == "bob@c.example"
                    && f["failure"]["kind"] == "outside_access_policy"),
            "{failing}"
        );
        assert_no_secret(&[out, again.all()], &SECRETS);
        a.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rules_add_list_remove_and_help() {
    for db in TestDb::both().await {
        let a = Admin::new(db).await;
        let r = a
            .run_env(
                &[
                    "tenant",
                    "add",
                    "--org",
                    "acme",
                    "--name",
                    "main",
                    "--ms-tenant",
                    "c.example",
                    "--client-id",
                    FULL,
                    "--secret-env",
                    "S",
                ],
                &[("S", "x")],
            )
            .await;
        assert!(r.ok, "{}", r.all());
        assert!(
            a.run(&[
                "mailbox",
                "add",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--address",
                "alice@c.example",
                "--offline"
            ])
            .await
            .ok
        );
        let add = |extra: &[&str]| {
            let mut args = vec!["rules", "add", "--org", "acme"];
            args.extend_from_slice(extra);
            args.into_iter().map(str::to_string).collect::<Vec<_>>()
        };
        for args in [
            add(&[
                "--effect",
                "exclude",
                "--target",
                "any_address",
                "--pattern",
                "*@Salesforce.com",
            ]),
            add(&[
                "--tenant",
                "main",
                "--effect",
                "include",
                "--target",
                "sender",
                "--pattern",
                "boss@salesforce.com",
            ]),
            add(&[
                "--tenant",
                "main",
                "--user",
                "alice@c.example",
                "--effect",
                "exclude",
                "--target",
                "subject",
                "--pattern",
                "Newsletter",
            ]),
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let r = a.run(&args).await;
            assert!(r.ok, "{}", r.all());
        }
        let list = a
            .run(&["rules", "list", "--org", "acme", "--json"])
            .await
            .json();
        let rules = list.as_array().unwrap();
        assert_eq!(
            rules
                .iter()
                .map(|r| r["level"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["org", "tenant", "user"]
        );
        assert_eq!(rules[0]["pattern"], "*@salesforce.com");
        assert_eq!(rules[0]["target"], "any_address");
        assert_eq!(rules[2]["user"], "alice@c.example");
        let table = a
            .run(&["rules", "list", "--org", "acme", "--tenant", "main"])
            .await;
        assert!(
            table.stdout.contains("PATTERN") && table.stdout.contains("newsletter"),
            "{}",
            table.all()
        );
        let id = rules[1]["id"].as_i64().unwrap().to_string();
        assert!(a.run(&["rules", "remove", &id]).await.ok);
        assert_eq!(
            a.run(&["rules", "list", "--org", "acme", "--json"])
                .await
                .json()
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let r = a.run(&["rules", "remove", &id]).await;
        assert!(
            !r.ok && r.stderr.contains(&format!("no rule {id}")),
            "{}",
            r.all()
        );
        let r = a
            .run(&[
                "rules",
                "add",
                "--org",
                "acme",
                "--user",
                "alice@c.example",
                "--effect",
                "exclude",
                "--target",
                "sender",
                "--pattern",
                "x",
            ])
            .await;
        assert!(!r.ok, "a user rule needs its tenant");
        let r = a
            .run(&[
                "rules",
                "add",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--user",
                "zed@c.example",
                "--effect",
                "exclude",
                "--target",
                "sender",
                "--pattern",
                "x",
            ])
            .await;
        assert!(
            !r.ok && r.stderr.contains("no user zed@c.example"),
            "{}",
            r.all()
        );
        a.finish().await;
    }
    // Every command explains itself.
    let a = Admin::new(TestDb::sqlite().await).await;
    for cmd in [
        &["tenant", "add"][..],
        &["tenant", "list"],
        &["tenant", "enable"],
        &["tenant", "disable"],
        &["tenant", "test"],
        &["tenant", "authorize"],
        &["tenant", "secret", "add"],
        &["mailbox", "import"],
        &["mailbox", "list"],
        &["mailbox", "add"],
        &["mailbox", "enable"],
        &["mailbox", "disable"],
        &["user", "link"],
        &["user", "list"],
        &["rules", "add"],
        &["rules", "list"],
        &["rules", "remove"],
        &["activate"],
    ] {
        let r = a.run(&[cmd, &["--help"]].concat()).await;
        assert!(
            r.ok && r.stdout.contains("Usage:")
                && r.stdout.lines().next().is_some_and(|l| l.len() > 10),
            "{cmd:?}: {}",
            r.all()
        );
    }
    a.finish().await;
}

/// Shell completions come from the binary itself, and a reader that closes the pipe early
/// (`... | head -c 100`) ends the command quietly: exit 0, no panic, no backtrace hint.
#[test]
fn completions_print_and_a_closed_pipe_is_quiet() {
    let bin = env!("CARGO_BIN_EXE_m365sync");
    let out = std::process::Command::new(bin)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(
        script.contains("_m365sync") && script.contains("serve") && script.contains("failures"),
        "{}",
        &script[..script.len().min(400)]
    );
    // Larger than a pipe's buffer, so the writer really meets the closed pipe.
    assert!(script.len() > 128 * 1024, "{} bytes", script.len());
    let piped = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("set -o pipefail; '{bin}' completions bash | head -c 100 > /dev/null"),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(piped.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let out = std::process::Command::new(bin)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

/// Every help page of `m365sync`: the path of subcommands and the text `--help` prints, found
/// by walking the "Commands" sections from the top (and the hidden `bench child`).
fn help_pages() -> Vec<(Vec<String>, String)> {
    let bin = env!("CARGO_BIN_EXE_m365sync");
    let mut queue: Vec<Vec<String>> = vec![vec![], vec!["bench".into(), "child".into()]];
    let mut seen = std::collections::BTreeSet::new();
    let mut pages = Vec::new();
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let out = std::process::Command::new(bin)
            .args(&path)
            .arg("--help")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut in_commands = false;
        for line in text.lines() {
            if !line.starts_with(' ') && line.ends_with(':') {
                in_commands = line == "Commands:";
                continue;
            }
            if in_commands && line.starts_with("  ") && !line[2..].starts_with(' ') {
                let name = line.trim().split([',', ' ']).next().unwrap_or_default();
                if name != "help" {
                    let mut sub = path.clone();
                    sub.push(name.to_string());
                    queue.push(sub);
                }
            }
        }
        pages.push((path, text));
    }
    pages
}

/// Every command, subcommand and argument of `m365sync` explains itself in `--help`, and no
/// help text cites an internal requirement id such as "(E16)": a first-time admin reads them.
#[test]
fn every_command_and_argument_has_help_without_internal_ids() {
    let cites_id = |line: &str| {
        line.match_indices('(').any(|(i, _)| {
            let rest = &line[i + 1..];
            let mut chars = rest.chars();
            chars.next().is_some_and(|c| c.is_ascii_uppercase()) && {
                let digits: String = chars.clone().take_while(char::is_ascii_digit).collect();
                !digits.is_empty() && rest[1 + digits.len()..].starts_with(')')
            }
        })
    };
    let pages = help_pages();
    let mut missing = Vec::new();
    for (path, text) in &pages {
        let lines: Vec<&str> = text.lines().collect();
        let mut section = "";
        for (i, line) in lines.iter().enumerate() {
            if cites_id(line) {
                missing.push(format!("{}: cites an id: {}", path.join(" "), line.trim()));
            }
            if !line.starts_with(' ') && line.ends_with(':') {
                section = line.trim_end_matches(':');
                continue;
            }
            if line.starts_with("Usage:") {
                section = "";
            }
            let entry = match section {
                "Commands" => line.starts_with("  ") && !line[2..].starts_with(' '),
                "Arguments" | "Options" => {
                    let t = line.trim_start();
                    line.len() - t.len() <= 6 && t.starts_with(['-', '<', '['])
                }
                _ => false,
            };
            if !entry {
                continue;
            }
            let body = line.trim();
            let (spec, mut text) = body.split_once("  ").unwrap_or((body, ""));
            text = text.trim();
            if text.is_empty() {
                if let Some(next) = lines.get(i + 1) {
                    if next.starts_with("        ") && !next.trim().is_empty() {
                        text = next.trim();
                    }
                }
            }
            if text.is_empty() {
                missing.push(format!("{}: {spec} has no help", path.join(" ")));
            }
        }
    }
    assert!(pages.len() > 60, "walked only {} commands", pages.len());
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// Splits an example line as a shell would for these simple lines: words, 'single-quoted'
/// words, and leading `NAME=value` environment assignments.
fn example_words(line: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    let mut env = Vec::new();
    while let Some((k, v)) = words.first().and_then(|w| w.split_once('=')) {
        if !k
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        {
            break;
        }
        env.push((k.to_string(), v.to_string()));
        words.remove(0);
    }
    (env, words)
}

/// Every example under a command's help ("Examples:") is a command line the binary accepts:
/// run against an empty store, none is a usage error (exit 2). Long-running ones (`serve`,
/// `sim serve`, `bench`) are checked with `--help` appended instead, which still rejects an
/// unknown argument.
#[tokio::test]
async fn every_help_example_parses() {
    let admin = Admin::new(TestDb::sqlite().await).await;
    let mut examples = Vec::new();
    for (path, text) in help_pages() {
        let mut in_examples = false;
        // A line ending in `\` continues on the next, as in a shell.
        let mut pending: Option<String> = None;
        for line in text.lines() {
            if !line.starts_with(' ') && line.ends_with(':') {
                in_examples = line == "Examples:";
                continue;
            }
            let line = match pending.take() {
                Some(start) => format!("{start} {}", line.trim()),
                None if in_examples && line.trim_start().contains("m365sync ") => {
                    line.trim().to_string()
                }
                None => continue,
            };
            match line.strip_suffix('\\') {
                Some(start) => pending = Some(start.trim_end().to_string()),
                None => examples.push((path.join(" "), line)),
            }
        }
    }
    assert!(examples.len() >= 40, "only {} examples", examples.len());
    let mut refused = Vec::new();
    for (page, line) in &examples {
        let (env, words) = example_words(line);
        assert_eq!(words[0], "m365sync", "{page}: {line}");
        let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        if matches!(args[0], "serve" | "sim" | "bench") {
            args.push("--help");
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let run = admin.run_env(&args, &env).await;
        if run.code == Some(2) || run.stderr.contains("Usage:") {
            refused.push(format!(
                "`{line}` (under `m365sync {page} --help`): {}",
                run.stderr.trim()
            ));
        }
    }
    assert!(refused.is_empty(), "{}", refused.join("\n"));
    admin.finish().await;
}

/// `token create --service --out FILE` makes the token `serve` requires: a file of mode 600
/// holding a long random token, never printed, never overwritten.
#[test]
fn the_service_admin_token_is_made_into_a_private_file() {
    let bin = env!("CARGO_BIN_EXE_m365sync");
    let dir = std::env::temp_dir().join(format!("m365sync-svc-token-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("admin.token");
    let make = || {
        std::process::Command::new(bin)
            .args(["token", "create", "--service", "--out"])
            .arg(&file)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let out = make();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(
        token.len() >= 40 && token.starts_with("m365s_admin_"),
        "{token}"
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!printed.contains(&token), "the token is never printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = make();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        token,
        "the first token stays"
    );
    let neither = std::process::Command::new(bin)
        .args(["token", "create"])
        .output()
        .unwrap();
    assert_eq!(
        neither.status.code(),
        Some(2),
        "--org or --service is required"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
