//! `apply`: declarations are idempotent, validated before anything is written, and rules
//! follow the file; on SQLite and PostgreSQL.

use std::path::Path;

use m365sync::apply::{apply_text, ApplyReport};
use m365sync_store::rules::RuleScope;
use m365sync_store::tenants::SecretKind;

use crate::support::TestDb;

const FILE: &str = r#"
[[org]]
name = "acme"
rules = [{ effect = "exclude", target = "any_address", pattern = "*@Salesforce.com" }]

[[org.tenant]]
name = "main"
ms_tenant = "contoso.example"
client_id = "11111111-2222-4333-8444-555555555555"
authority = "https://localhost:8765"
graph_url = "https://localhost:8765/v1.0"
secrets = [{ label = "2026-06", env = "M365SYNC_TEST_APPLY_SECRET" }, { label = "sandbox", value = "literal" }]
settings = { cadence_minutes = 30, internal_domains = ["contoso.example"], commencement = "2026-05-01" }

[[org.tenant.user]]
email = "alice@contoso.example"
name = "Alice Adams"
mailboxes = ["alice@contoso.example"]
shared_mailboxes = ["info@contoso.example"]
rules = [{ effect = "include", target = "sender", pattern = "boss@salesforce.com" }]
"#;

#[tokio::test]
async fn applying_twice_changes_nothing_the_second_time() {
    std::env::set_var("M365SYNC_TEST_APPLY_SECRET", "from-the-environment");
    for db in TestDb::both().await {
        let s = &db.store;
        let first = apply_text(s, FILE, Path::new("acme.toml")).await.unwrap();
        assert_eq!(
            first,
            ApplyReport {
                orgs: 1,
                tenants: 1,
                secrets: 2,
                users: 1,
                mailboxes: 2,
                rules_added: 2,
                rules_removed: 0
            }
        );
        let second = apply_text(s, FILE, Path::new("acme.toml")).await.unwrap();
        assert_eq!(
            (second.rules_added, second.rules_removed),
            (0, 0),
            "{}",
            db.url
        );
        let t = s.tenant("acme", "main").await.unwrap();
        assert_eq!(s.tenants(None).await.unwrap().len(), 1);
        let settings = s.settings(t.id).await.unwrap();
        assert_eq!(settings.cadence_minutes, 30);
        assert_eq!(settings.commencement_ms, Some(1_777_593_600_000));
        let secrets = s.secrets(t.id, SecretKind::ClientSecret).await.unwrap();
        assert!(secrets
            .iter()
            .any(|(l, v)| l == "2026-06" && v == "from-the-environment"));
        let boxes = s.mailboxes(t.id).await.unwrap();
        assert_eq!(boxes.len(), 2);
        assert!(boxes.iter().all(|b| b.user_id.is_some()));
        let org_rules = s
            .rules_at(RuleScope::Org { org_id: t.org_id })
            .await
            .unwrap();
        assert_eq!(
            org_rules[0].spec.pattern, "*@salesforce.com",
            "patterns are normalised"
        );
        // Dropping the org rule from the file removes it.
        let without = FILE.replace("rules = [{ effect = \"exclude\", target = \"any_address\", pattern = \"*@Salesforce.com\" }]\n", "");
        let third = apply_text(s, &without, Path::new("acme.toml"))
            .await
            .unwrap();
        assert_eq!((third.rules_added, third.rules_removed), (0, 1));
        db.drop_db().await;
    }
}

#[tokio::test]
async fn a_bad_file_is_refused_before_anything_is_written() {
    std::env::set_var("M365SYNC_TEST_APPLY_SECRET", "from-the-environment");
    for db in TestDb::both().await {
        let s = &db.store;
        let err = apply_text(
            s,
            &FILE.replace(
                "name = \"Alice Adams\"",
                "name = \"Alice\"\ncolour = \"red\"",
            ),
            Path::new("acme.toml"),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("acme.toml") && err.contains("colour") && err.contains("line"),
            "{err}"
        );
        let err = apply_text(
            s,
            &FILE.replace("M365SYNC_TEST_APPLY_SECRET", "M365SYNC_TEST_UNSET_VAR"),
            Path::new("acme.toml"),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("org acme, tenant main") && err.contains("M365SYNC_TEST_UNSET_VAR"),
            "{err}"
        );
        let err = apply_text(
            s,
            &FILE.replace("cadence_minutes = 30", "cadence_minutes = 5"),
            Path::new("acme.toml"),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("cadence_minutes"), "{err}");
        assert!(
            s.tenants(None).await.unwrap().is_empty(),
            "nothing was written"
        );
        db.drop_db().await;
    }
}

#[test]
fn the_admin_cli_generates_a_key_applies_and_lists() {
    let dir = std::env::temp_dir().join(format!("m365sync-admin-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bin = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_m365sync"));
        c.current_dir(&dir)
            .env_remove("M365SYNC_SECRET_KEY")
            .env_remove("M365SYNC_CONFIG");
        c
    };
    // Without a key the error says how to get one.
    std::fs::write(
        dir.join("m365sync.toml"),
        "database_url = \"sqlite://state.db\"\n",
    )
    .unwrap();
    let out = bin().args(["tenant", "list"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("M365SYNC_SECRET_KEY"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bin()
        .args(["key", "generate", "--out", "secret.key"])
        .status()
        .unwrap()
        .success());
    assert!(
        !bin()
            .args(["key", "generate", "--out", "secret.key"])
            .status()
            .unwrap()
            .success(),
        "never overwrites a key"
    );
    std::fs::write(
        dir.join("m365sync.toml"),
        "database_url = \"sqlite://state.db\"\nkey_file = \"secret.key\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("acme.toml"),
        FILE.replace("env = \"M365SYNC_TEST_APPLY_SECRET\"", "value = \"s\""),
    )
    .unwrap();
    let out = bin().args(["apply", "acme.toml"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 tenant(s)"));
    let out = bin().args(["tenant", "list", "--json"]).output().unwrap();
    let tenants: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tenants[0]["name"], "main");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("\"s\""),
        "no secret in listings"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
