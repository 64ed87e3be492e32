//! Safer installs (issue 18, item 4), through the CLI on SQLite and PostgreSQL: a firm's
//! component needs `--cases` or an explicit `--no-cases` (which the history records); each
//! refusal installs nothing; installing the digest already in force changes nothing;
//! `plugin uninstall` returns a tenant to the org default; `plugin list` shows what is in force
//! for every slot and level, built-ins included. And a guest's panic message and a stack
//! overflow are named by `plugin test`.

use std::path::{Path, PathBuf};
use std::process::Command;

use m365sync_plugin::builtin::builtin;
use m365sync_plugin::Kind;
use m365sync_store::plugins::PluginScope;
use m365sync_store::tenants::{AuthMode, NewTenant};
use serde_json::Value;

use crate::plugin_support::{ESCAPE, HOSTILE};
use crate::support::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_m365sync");

fn tenant(name: &str) -> NewTenant {
    NewTenant {
        org: "acme".into(),
        name: name.into(),
        ms_tenant: format!("{name}.example"),
        authority: "https://localhost".into(),
        graph_url: "https://localhost/v1.0".into(),
        client_id: "c".into(),
        auth_mode: AuthMode::App,
    }
}

/// A scratch directory with a config pointing at `db`.
pub fn workdir(db: &TestDb, test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("installs-{test}-{}", db.store.backend() as u8));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("m365sync.toml"),
        format!("database_url = \"{}\"\n", db.url),
    )
    .unwrap();
    dir
}

/// Runs the CLI in `dir`: (success, stdout and stderr).
pub fn cli(dir: &Path, db: &TestDb, args: &[&str]) -> (bool, String) {
    let out = command(dir, db, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

pub fn command(dir: &Path, db: &TestDb, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .current_dir(dir)
        .env("M365SYNC_SECRET_KEY", &db.key_base64)
        .env("M365SYNC_CONFIG", dir.join("m365sync.toml"))
        .env("XDG_CACHE_HOME", env!("CARGO_TARGET_TMPDIR"))
        .args(args)
        .output()
        .unwrap()
}

fn install(file: &str, tenant: Option<&str>, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "plugin",
        "install",
        file,
        "--org",
        "acme",
        "--slot",
        "exclusion",
    ]
    .map(String::from)
    .to_vec();
    if let Some(t) = tenant {
        args.extend(["--tenant".to_string(), t.to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firms_component_needs_cases_or_an_explicit_no_cases() {
    for db in TestDb::both().await {
        let eu = db.store.upsert_tenant(&tenant("eu")).await.unwrap();
        let dir = workdir(&db, "cases");
        let org = PluginScope {
            org_id: eu.org_id,
            tenant_id: None,
        };
        // The default exclusion plugin's component, as a firm's file.
        let file = dir.join("firm.wasm");
        std::fs::write(&file, builtin(Kind::Exclusion).wasm).unwrap();
        let file = file.to_str().unwrap();
        let cases = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../plugins/exclusion-rules/cases.toml"
        );

        // Neither flag: refused, saying both ways on, and nothing is installed.
        let (ok, out) = cli(&dir, &db, &strs(&install(file, None, &[])));
        assert!(!ok, "{out}");
        assert!(
            out.contains("firm.wasm was not installed")
                && out.contains("--cases")
                && out.contains("--no-cases"),
            "{out}"
        );
        assert!(db
            .store
            .plugin_history(org, "exclusion")
            .await
            .unwrap()
            .is_empty());
        // Both flags: refused by the parser.
        let (ok, out) = cli(
            &dir,
            &db,
            &strs(&install(file, None, &["--cases", cases, "--no-cases"])),
        );
        assert!(!ok && out.contains("cannot be used with"), "{out}");

        // --no-cases installs, and the history says it was untested.
        let (ok, out) = cli(&dir, &db, &strs(&install(file, None, &["--no-cases"])));
        assert!(ok && out.contains("installed exclusion-rules"), "{out}");
        let history = db.store.plugin_history(org, "exclusion").await.unwrap();
        assert_eq!(history.len(), 1);
        assert!(history[0].cases.contains("--no-cases"), "{history:?}");
        let (ok, out) = cli(
            &dir,
            &db,
            &["plugin", "history", "--org", "acme", "--slot", "exclusion"],
        );
        assert!(ok && out.contains("installed with --no-cases"), "{out}");

        // The same digest again (now with cases): nothing changes, no history line.
        let activated = db
            .store
            .active_plugin(eu.org_id, eu.id, "exclusion")
            .await
            .unwrap()
            .unwrap()
            .activated_ms;
        let before = db.store.plugin_fingerprint().await.unwrap();
        let (ok, out) = cli(&dir, &db, &strs(&install(file, None, &["--cases", cases])));
        assert!(ok && out.contains("nothing changed"), "{out}");
        assert_eq!(
            db.store
                .plugin_history(org, "exclusion")
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(db.store.plugin_fingerprint().await.unwrap(), before);
        assert_eq!(
            db.store
                .active_plugin(eu.org_id, eu.id, "exclusion")
                .await
                .unwrap()
                .unwrap()
                .activated_ms,
            activated
        );

        // The cases are recorded when they were given and passed (the tenant level).
        let (ok, out) = cli(
            &dir,
            &db,
            &strs(&install(file, Some("eu"), &["--cases", cases])),
        );
        assert!(ok && out.contains("installed"), "{out}");
        let eu_scope = PluginScope {
            org_id: eu.org_id,
            tenant_id: Some(eu.id),
        };
        let h = db
            .store
            .plugin_history(eu_scope, "exclusion")
            .await
            .unwrap();
        assert!(
            h[0].cases.contains(" passed: cases ") && h[0].cases.contains("cases.toml"),
            "{h:?}"
        );

        // A component importing files and sockets is refused naming them; nothing changes.
        let (ok, out) = cli(
            &dir,
            &db,
            &strs(&install(ESCAPE, Some("eu"), &["--no-cases"])),
        );
        assert!(
            !ok && out.contains("wasi:filesystem/") && out.contains("wasi:sockets/"),
            "{out}"
        );
        assert_eq!(
            db.store
                .plugin_history(eu_scope, "exclusion")
                .await
                .unwrap()
                .len(),
            1
        );
        std::fs::remove_dir_all(&dir).ok();
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_returns_the_tenant_to_the_org_default_and_list_shows_what_is_in_force() {
    for db in TestDb::both().await {
        let eu = db.store.upsert_tenant(&tenant("eu")).await.unwrap();
        db.store.upsert_tenant(&tenant("us")).await.unwrap();
        let dir = workdir(&db, "uninstall");
        let eu_scope = PluginScope {
            org_id: eu.org_id,
            tenant_id: Some(eu.id),
        };
        let (ok, out) = cli(&dir, &db, &strs(&install("builtin:exclusion", None, &[])));
        assert!(ok, "{out}");
        let org_default = m365sync_plugin::cache::digest(builtin(Kind::Exclusion).wasm);
        let (ok, out) = cli(
            &dir,
            &db,
            &strs(&install(HOSTILE, Some("eu"), &["--no-cases"])),
        );
        assert!(ok && out.contains("installed hostile"), "{out}");

        // list: every slot at every level, with where it comes from.
        let listed = command(&dir, &db, &["plugin", "list", "--org", "acme", "--json"]);
        let out = String::from_utf8_lossy(&listed.stdout).into_owned();
        assert!(
            listed.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
        let find = |level: &str, slot: &str| -> (String, String) {
            let r = rows
                .iter()
                .find(|r| r["level"] == level && r["slot"] == slot)
                .unwrap_or_else(|| panic!("no row for {level} {slot}: {out}"));
            (
                r["name"].as_str().unwrap().to_string(),
                r["source"].as_str().unwrap().to_string(),
            )
        };
        assert_eq!(rows.len(), 9, "3 slots at the org and 2 tenants: {out}");
        assert_eq!(
            find("org default", "exclusion"),
            ("exclusion-rules".into(), "installed".into())
        );
        assert_eq!(
            find("org default", "mapping"),
            ("field-mapping".into(), "built-in".into())
        );
        assert_eq!(
            find("tenant eu", "exclusion"),
            ("hostile".into(), "installed".into())
        );
        assert_eq!(
            find("tenant us", "exclusion"),
            ("exclusion-rules".into(), "org default".into())
        );
        assert_eq!(
            find("tenant us", "matching"),
            ("contact-matching".into(), "built-in".into())
        );
        // The contract each speaks and, for 0.2, the parts it declared.
        let speaks = |level: &str, slot: &str| -> (String, Value) {
            let r = rows
                .iter()
                .find(|r| r["level"] == level && r["slot"] == slot)
                .unwrap();
            (
                r["contract"].as_str().unwrap().to_string(),
                r["reads"].clone(),
            )
        };
        assert_eq!(
            speaks("tenant eu", "exclusion"),
            ("0.1".into(), Value::Null)
        );
        assert_eq!(
            speaks("tenant us", "exclusion"),
            (
                "0.2".into(),
                serde_json::json!(["user", "addresses", "subject"])
            )
        );
        assert_eq!(
            speaks("org default", "matching"),
            ("0.2".into(), serde_json::json!([]))
        );
        let listed = command(&dir, &db, &["plugin", "list", "--org", "acme"]);
        let table = String::from_utf8_lossy(&listed.stdout).into_owned();
        assert!(
            listed.status.success() && table.contains("tenant eu") && table.contains("built-in"),
            "{table}{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        // The table: one line per row, each value starting under its column's heading.
        let lines: Vec<&str> = table.lines().filter(|l| !l.is_empty()).collect();
        let col = |name: &str| {
            lines[0]
                .find(name)
                .unwrap_or_else(|| panic!("no {name} column: {table}"))
        };
        let (contract, reads, source) = (col("CONTRACT"), col("READS"), col("SOURCE"));
        assert_eq!(lines.len(), 10, "{table}");
        for line in &lines[1..] {
            assert!(
                ["0.1 ", "0.2 "]
                    .iter()
                    .any(|c| line[contract..].starts_with(c))
                    && ["installed ", "org default ", "built-in "]
                        .iter()
                        .any(|s| line[source..].starts_with(s)),
                "misaligned: {line}\n{table}"
            );
        }
        let line = |level: &str, slot: &str| {
            *lines
                .iter()
                .find(|l| l.starts_with(level) && l.contains(slot))
                .unwrap_or_else(|| panic!("no line for {level} {slot}: {table}"))
        };
        assert!(
            line("tenant eu", "exclusion")[contract..].starts_with("0.1")
                && line("tenant eu", "exclusion")[reads..].starts_with("all (whole records) "),
            "{table}"
        );
        assert!(
            line("tenant us", "exclusion")[reads..].starts_with("user,addresses,subject "),
            "{table}"
        );
        assert!(
            line("org default", "matching")[reads..].starts_with("ids and flags only "),
            "{table}"
        );

        // uninstall: the tenant runs the org default again.
        let before = db.store.plugin_fingerprint().await.unwrap();
        let (ok, out) = cli(
            &dir,
            &db,
            &[
                "plugin",
                "uninstall",
                "--org",
                "acme",
                "--tenant",
                "eu",
                "--slot",
                "exclusion",
            ],
        );
        assert!(
            ok && out.contains("uninstalled hostile")
                && out.contains("now runs the org default, exclusion-rules"),
            "{out}"
        );
        let now = db
            .store
            .active_plugin(eu.org_id, eu.id, "exclusion")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (now.digest.as_str(), now.tenant_level),
            (org_default.as_str(), false)
        );
        // A running service notices it like an install.
        assert_ne!(db.store.plugin_fingerprint().await.unwrap(), before);
        let actions: Vec<String> = db
            .store
            .plugin_history(eu_scope, "exclusion")
            .await
            .unwrap()
            .iter()
            .map(|h| format!("{} {}", h.action, h.name))
            .collect();
        assert_eq!(actions, ["install hostile", "uninstall hostile"]);
        // Nothing left to uninstall or roll back to at the tenant level.
        let (ok, out) = cli(
            &dir,
            &db,
            &[
                "plugin",
                "uninstall",
                "--org",
                "acme",
                "--tenant",
                "eu",
                "--slot",
                "exclusion",
            ],
        );
        assert!(!ok && out.contains("nothing to uninstall"), "{out}");
        let (ok, out) = cli(
            &dir,
            &db,
            &[
                "plugin",
                "rollback",
                "--org",
                "acme",
                "--tenant",
                "eu",
                "--slot",
                "exclusion",
            ],
        );
        assert!(!ok && out.contains("nothing to roll back"), "{out}");

        // Without --tenant the org's default goes: its tenants are on the built-in plugin.
        let (ok, out) = cli(
            &dir,
            &db,
            &[
                "plugin",
                "uninstall",
                "--org",
                "acme",
                "--slot",
                "exclusion",
            ],
        );
        assert!(
            ok && out.contains("now runs the built-in exclusion-rules"),
            "{out}"
        );
        assert!(db
            .store
            .active_plugin(eu.org_id, eu.id, "exclusion")
            .await
            .unwrap()
            .is_none());
        std::fs::remove_dir_all(&dir).ok();
        db.drop_db().await;
    }
}

#[test]
fn plugin_test_names_a_panic_and_a_stack_overflow() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("installs-traps");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let template = include_str!("../../crates/plugin/templates/cases-exclusion.toml");
    let header = template
        .split("\n[[case]]")
        .next()
        .unwrap()
        .replace("{{name}}", "hostile")
        .replace("{{wasm}}", "hostile.wasm");
    let cases = format!(
        "{header}\n[[case]]\nname = \"a panic\"\nemail = {{ subject = \"trap\" }}\nexpect = {{ decision = \"Keep\" }}\n\n[[case]]\nname = \"deep recursion\"\nemail = {{ subject = \"recurse\" }}\nexpect = {{ decision = \"Keep\" }}\n"
    );
    std::fs::write(dir.join("cases.toml"), cases).unwrap();
    let out = Command::new(BIN)
        .current_dir(&dir)
        .args(["plugin", "test", HOSTILE, "--cases", "cases.toml"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("panicked: asked to trap"), "{text}");
    assert!(text.contains("stack overflow"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}
