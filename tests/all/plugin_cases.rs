//! The default plugins pass the cases they ship, and `m365sync plugin test` reports a mismatch.

use m365sync_plugin::builtin::BUILTINS;
use m365sync_plugin::cases::CaseFile;
use m365sync_plugin::Plugin;

use crate::plugin_support::engine;

#[test]
fn default_plugins_pass_their_cases() {
    for builtin in &BUILTINS {
        let plugin = Plugin::load(engine(), builtin.kind, builtin.wasm).expect("loads");
        let cases = CaseFile::parse(builtin.cases).expect("the case file parses");
        assert!(
            cases.cases.len() >= 6,
            "{} ships too few cases",
            builtin.name
        );
        let report = cases.run(&plugin).expect("the cases run");
        assert!(report.ok(), "{}:\n{report}", builtin.name);
    }
}

#[test]
fn plugin_test_command_prints_a_diff_and_fails_on_a_mismatch() {
    let dir = std::env::temp_dir().join(format!("m365sync-plugin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = dir.join("cases.toml");
    std::fs::write(
        &cases,
        r#"
kind = "exclusion"
[context]
internal_domains = ["firm.com"]
[defaults.email]
id = "1"
mailbox = "alice@firm.com"
folder = "Inbox"
direction = "Received"
subject = "Hi"
body = { content_type = "Text", content = "", truncated = false }
preview = ""
categories = []
importance = "Normal"
headers = []
attachments = []
is_draft = false

[[case]]
name = "internal mail is dropped"
email = { addresses = [{ role = "From", email = "bob@firm.com", name = "" }] }
expect = { decision = "Drop", rule = "internal-only" }

[[case]]
name = "a wrong expectation"
email = { addresses = [{ role = "From", email = "x@client.example", name = "" }] }
expect = { decision = "Drop", rule = "some-rule" }
"#,
    )
    .unwrap();
    let wasm = m365sync_plugin::builtin::builtin(m365sync_plugin::Kind::Exclusion).path;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_m365sync"))
        .args(["plugin", "test", wasm, "--cases"])
        .arg(&cases)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a mismatch must fail: {stdout}");
    assert!(stdout.contains("FAIL a wrong expectation"), "{stdout}");
    assert!(
        stdout.contains(r#"decision: expected "Drop", got "Keep""#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"rule: expected "some-rule", got null"#),
        "{stdout}"
    );
    assert!(stdout.contains("1 passed, 1 failed"), "{stdout}");

    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_m365sync"))
        .args(["plugin", "test", "builtin:matching"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    std::fs::remove_dir_all(&dir).ok();
}
