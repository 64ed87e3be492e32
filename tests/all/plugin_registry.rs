//! The plugin registry: install validates before it activates, tenants override the org's
//! default, rollback returns to the previous version, history records it all; on SQLite and
//! PostgreSQL, and through the CLI.

use m365sync_store::plugins::{NewPlugin, PluginScope};
use m365sync_store::tenants::{AuthMode, NewTenant};

use crate::support::TestDb;

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

fn blob<'a>(digest: &'a str, version: &'a str, wasm: &'a [u8]) -> NewPlugin<'a> {
    NewPlugin {
        slot: "exclusion",
        digest,
        name: "rules",
        version,
        wasm,
    }
}

#[tokio::test]
async fn tenants_override_the_org_default_and_rollback_pops_the_history() {
    for db in TestDb::both().await {
        let s = &db.store;
        let eu = s.upsert_tenant(&tenant("eu")).await.unwrap();
        let us = s.upsert_tenant(&tenant("us")).await.unwrap();
        let org = PluginScope {
            org_id: eu.org_id,
            tenant_id: None,
        };
        let eu_scope = PluginScope {
            org_id: eu.org_id,
            tenant_id: Some(eu.id),
        };
        assert!(s
            .active_plugin(eu.org_id, eu.id, "exclusion")
            .await
            .unwrap()
            .is_none());
        s.install_plugin(org, &blob("d1", "1.0.0", b"one"))
            .await
            .unwrap();
        s.install_plugin(org, &blob("d2", "1.1.0", b"two"))
            .await
            .unwrap();
        s.install_plugin(eu_scope, &blob("d3", "2.0.0-eu", b"three"))
            .await
            .unwrap();
        let for_eu = s
            .active_plugin(eu.org_id, eu.id, "exclusion")
            .await
            .unwrap()
            .unwrap();
        let for_us = s
            .active_plugin(us.org_id, us.id, "exclusion")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (for_eu.digest.as_str(), for_eu.tenant_level),
            ("d3", true),
            "{}",
            db.url
        );
        assert_eq!((for_us.digest.as_str(), for_us.tenant_level), ("d2", false));
        assert_eq!(s.plugin_wasm("d3").await.unwrap(), b"three");
        // Rollback at the org level returns to 1.0.0; the EU override is untouched.
        let back = s.rollback_plugin(org, "exclusion").await.unwrap();
        assert_eq!(
            (back.action.as_str(), back.version.as_str()),
            ("rollback", "1.0.0")
        );
        assert_eq!(
            s.active_plugin(us.org_id, us.id, "exclusion")
                .await
                .unwrap()
                .unwrap()
                .digest,
            "d1"
        );
        assert_eq!(
            s.active_plugin(eu.org_id, eu.id, "exclusion")
                .await
                .unwrap()
                .unwrap()
                .digest,
            "d3"
        );
        let err = s
            .rollback_plugin(org, "exclusion")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("nothing to roll back"), "{err}");
        let history: Vec<String> = s
            .plugin_history(org, "exclusion")
            .await
            .unwrap()
            .iter()
            .map(|h| format!("{} {}", h.action, h.version))
            .collect();
        assert_eq!(
            history,
            vec!["install 1.0.0", "install 1.1.0", "rollback 1.0.0"]
        );
        assert_eq!(s.active_plugins(eu.org_id).await.unwrap().len(), 2);
        assert!(s
            .install_plugin(
                org,
                &NewPlugin {
                    slot: "colour",
                    ..blob("d9", "1", b"x")
                }
            )
            .await
            .is_err());
        db.drop_db().await;
    }
}

#[test]
fn the_cli_installs_only_what_validates() {
    let dir = std::env::temp_dir().join(format!("m365sync-plugin-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_m365sync"))
            .current_dir(&dir)
            .env(
                "M365SYNC_SECRET_KEY",
                m365sync_store::SecretKey::generate().to_base64(),
            )
            .env("M365SYNC_CONFIG", dir.join("m365sync.toml"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    std::fs::write(
        dir.join("m365sync.toml"),
        "database_url = \"sqlite://registry.db\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("org.toml"),
        "[[org]]\nname = \"acme\"\n[[org.tenant]]\nname = \"eu\"\nms_tenant = \"eu.example\"\nclient_id = \"c\"\n",
    )
    .unwrap();
    assert!(run(&["apply", "org.toml"]).0);
    let (ok, out) = run(&[
        "plugin",
        "install",
        "builtin:exclusion",
        "--org",
        "acme",
        "--slot",
        "exclusion",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("installed exclusion-rules"), "{out}");
    // A component of another world is refused, naming the file; nothing changes.
    let (ok, out) = run(&[
        "plugin",
        "install",
        "builtin:mapping",
        "--org",
        "acme",
        "--tenant",
        "eu",
        "--slot",
        "exclusion",
    ]);
    assert!(
        !ok && out.contains("builtin:mapping") && out.contains("exclusion"),
        "{out}"
    );
    // Cases that fail keep the plugin out.
    let cases = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../plugins/exclusion-rules/cases.toml"
    ))
    .unwrap();
    std::fs::write(
        dir.join("bad-cases.toml"),
        cases.replacen("name = \"exclusion-rules\"", "name = \"another-name\"", 1),
    )
    .unwrap();
    let (ok, out) = run(&[
        "plugin",
        "install",
        "builtin:exclusion",
        "--org",
        "acme",
        "--tenant",
        "eu",
        "--slot",
        "exclusion",
        "--cases",
        "bad-cases.toml",
    ]);
    assert!(!ok && out.contains("nothing was installed"), "{out}");
    let (ok, out) = run(&["plugin", "list", "--org", "acme", "--json"]);
    assert!(ok, "{out}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let installed: Vec<&serde_json::Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "installed")
        .collect();
    assert_eq!(
        installed.len(),
        1,
        "only the org default is installed: {listed}"
    );
    assert_eq!(installed[0]["level"], "org default", "{listed}");
    let (ok, out) = run(&["plugin", "rollback", "--org", "acme", "--slot", "exclusion"]);
    assert!(!ok && out.contains("nothing to roll back"), "{out}");
    let (ok, out) = run(&["plugin", "history", "--org", "acme", "--slot", "exclusion"]);
    assert!(
        ok && out.contains("install") && out.contains("exclusion-rules"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
