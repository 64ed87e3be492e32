//! The contract is language-neutral: the Python exclusion example (examples/python-exclusion,
//! built with componentize-py) passes the Rust plugin's own case file and decides every
//! generated record exactly as the Rust plugin does.
//!
//! The component comes from `M365SYNC_PY_PLUGIN` (scripts/test.sh builds it) or is built here
//! with componentize-py. Outside CI a missing componentize-py skips these tests with the reason;
//! in CI (`CI=true`) it fails them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use m365sync_plugin::bindings::types::*;
use m365sync_plugin::builtin::builtin;
use m365sync_plugin::call::CallContext;
use m365sync_plugin::cases::CaseFile;
use m365sync_plugin::{Kind, Plugin, TenantData};

use crate::plugin_support::{address, email, engine};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/cli is two levels below the root")
        .to_path_buf()
}

/// Fails the test in CI, where scripts/test.sh installs every tool; elsewhere says why it is
/// skipped. Returns so the caller can `return`.
pub fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason}; in CI (CI=true) this test must run: scripts/test.sh installs the tools");
    }
    eprintln!("SKIPPED: {reason}");
}

/// componentize-py: `M365SYNC_COMPONENTIZE_PY`, else the repo's `.venv` (scripts/python-env.sh),
/// else `PATH`; `None` when none of them runs.
pub fn componentize_py() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("M365SYNC_COMPONENTIZE_PY").map(PathBuf::from),
        Some(repo().join(".venv/bin/componentize-py")),
        Some(PathBuf::from("componentize-py")),
    ];
    candidates.into_iter().flatten().find(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The example's component, built once per test run when scripts/test.sh did not build it.
fn example() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("M365SYNC_PY_PLUGIN") {
                return Some(PathBuf::from(path));
            }
            let tool = componentize_py()?;
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python_exclusion.wasm");
            let status = Command::new(tool)
                .current_dir(repo().join("examples/python-exclusion"))
                .arg("--quiet")
                .arg("-d")
                .arg(repo().join("wit/0.1"))
                .args([
                    "-w",
                    "exclusion",
                    "componentize",
                    "--stub-wasi",
                    "app",
                    "-o",
                ])
                .arg(&out)
                .status()
                .expect("componentize-py runs");
            assert!(status.success(), "componentize-py failed on the example");
            Some(out)
        })
        .clone()
}

#[test]
fn python_exclusion_example_passes_the_rust_plugins_cases() {
    let Some(wasm) = example() else {
        return skip("componentize-py is not installed (bash scripts/python-env.sh)");
    };
    let cases = repo().join("plugins/exclusion-rules/cases.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_m365sync"))
        .args(["plugin", "test"])
        .arg(&wasm)
        .arg("--cases")
        .arg(&cases)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("exclusion-rules 0.1.0+python"),
        "{stdout}"
    );
    let n = CaseFile::parse(&std::fs::read_to_string(&cases).unwrap())
        .unwrap()
        .cases
        .len();
    // Every case, plus describe().
    assert!(
        stdout.contains(&format!("{} passed, 0 failed", n + 1)),
        "{stdout}"
    );
}

/// A small deterministic generator (xorshift), so a failure names a reproducible record.
struct Gen(u64);

impl Gen {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        items[(self.0 % items.len() as u64) as usize]
    }
}

const ADDRESSES: &[&str] = &[
    "rep@salesforce.com",
    "Rep@SalesForce.com",
    "ceo@salesforce.com",
    "x@salesforce.com.evil",
    "pm@partner.example",
    "billing@mail.vendor.example",
    "x@notvendor.example",
    "noreply@bank.example",
    "mum@family.example",
    "cfo@client.example",
    "x@client2.example",
    "bob@firm.com",
    "alice@FIRM.com",
    " alice@firm.com ",
    "no-at-sign",
    "news@shop.example",
];
const SUBJECTS: &[&str] = &[
    "Hello",
    "Monthly NEWSLETTER",
    "newsletter from client",
    "Confidential: figures",
    "CONFIDENTIAL",
    "",
    "Ünïcode Newsletter",
];
const ROLES: &[AddressRole] = &[
    AddressRole::From,
    AddressRole::Sender,
    AddressRole::To,
    AddressRole::Cc,
    AddressRole::Bcc,
    AddressRole::ReplyTo,
];

#[test]
fn python_and_rust_exclusion_plugins_agree_on_generated_records() {
    let Some(wasm) = example() else {
        return skip("componentize-py is not installed (bash scripts/python-env.sh)");
    };
    let python = Plugin::load_file(engine(), Kind::Exclusion, &wasm).expect("loads");
    assert_agrees_with_the_rust_plugin(&python, "python");
}

/// Runs `other` (an exclusion plugin in another language) and the default Rust plugin on 400
/// generated emails and 200 events, with `internal-only` on and off, and requires identical
/// verdicts; `who` names `other` in a failure.
pub fn assert_agrees_with_the_rust_plugin(other: &Plugin, who: &str) {
    let python = other;
    let rust = Plugin::load(engine(), Kind::Exclusion, builtin(Kind::Exclusion).wasm).unwrap();
    // The rules of the shared case file: three levels, includes, wildcards, domains, subjects.
    let cases = CaseFile::parse(builtin(Kind::Exclusion).cases).unwrap();
    let tenant: TenantData = cases.context.clone().try_into().expect("[context]");
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let users = ["alice", "bob", ""];
    let emails: Vec<Email> = (0..400)
        .map(|i| {
            let mut e = email(g.pick(SUBJECTS), g.pick(ADDRESSES));
            e.id = format!("e{i}");
            e.user = Some(g.pick(&users).to_string()).filter(|u| !u.is_empty());
            e.addresses.truncate((i % 3) as usize);
            for _ in 0..(i % 4) {
                let role = ROLES[(g.0 % ROLES.len() as u64) as usize];
                e.addresses.push(address(role, g.pick(ADDRESSES)));
            }
            e
        })
        .collect();
    let events: Vec<Event> = emails
        .iter()
        .take(200)
        .map(|e| {
            let mut ev = event_from(e);
            ev.organizer = e.addresses.first().cloned();
            ev
        })
        .collect();
    for config in [None, Some("false")] {
        let mut settings = std::collections::BTreeMap::new();
        if let Some(v) = config {
            settings.insert("internal-only".to_string(), v.to_string());
        }
        let ctx = CallContext::new(tenant.clone(), settings);
        for batch in emails.chunks(100) {
            let (r, p) = (
                rust.exclude_emails(&ctx, batch),
                python.exclude_emails(&ctx, batch),
            );
            for ((e, r), p) in batch.iter().zip(&r.results).zip(&p.results) {
                let (r, p) = (
                    r.as_ref().unwrap(),
                    p.as_ref().unwrap_or_else(|e| panic!("{who} answers: {e}")),
                );
                assert_eq!(r, p, "{who}, internal-only {config:?}, email {e:#?}");
            }
        }
        let (r, p) = (
            rust.exclude_events(&ctx, &events),
            python.exclude_events(&ctx, &events),
        );
        for ((e, r), p) in events.iter().zip(&r.results).zip(&p.results) {
            let (r, p) = (
                r.as_ref().unwrap(),
                p.as_ref().unwrap_or_else(|e| panic!("{who} answers: {e}")),
            );
            assert_eq!(r, p, "{who}, internal-only {config:?}, event {e:#?}");
        }
    }
}

/// An event with `e`'s user, subject and addresses (as attendees, after the first).
pub fn event_from(e: &Email) -> Event {
    Event {
        id: e.id.clone(),
        mailbox: e.mailbox.clone(),
        user: e.user.clone(),
        subject: e.subject.clone(),
        body: e.body.clone(),
        is_all_day: false,
        start: "2026-11-24T10:00:00Z".into(),
        end: "2026-11-24T11:00:00Z".into(),
        organizer: None,
        attendees: e
            .addresses
            .iter()
            .skip(1)
            .map(|a| Attendee {
                email: a.email.clone(),
                name: String::new(),
                kind: AttendeeKind::Required,
                response: Response::None,
            })
            .collect(),
        location: String::new(),
        locations: Vec::new(),
        recurrence: None,
        sensitivity: Sensitivity::Normal,
        reminder_minutes_before_start: None,
        show_as: ShowAs::Busy,
        response_status: Response::Organizer,
        is_online_meeting: false,
        online_meeting_provider: None,
        online_meeting_url: None,
        categories: Vec::new(),
        is_cancelled: false,
        is_draft: false,
    }
}
