//! `m365sync bench`: the harness run end to end on a tiny world against a simulator the test
//! starts (`--sim URL --sim-ca`), so the test knows the ground truth. Only what was written and
//! counted is checked, never how fast.

use m365sync_sim::config::ProtocolConfig;
use m365sync_sim::generate::{ground_truth, GenerateOptions};
use m365sync_sim::Origin;
use serde_json::Value;

use crate::support::TestSim;

/// A fresh work directory `name-PID` and an https simulator of two users with `messages`
/// messages and `events` calendar items each, its CA under the directory.
async fn two_user_world(
    name: &str,
    messages: usize,
    events: usize,
) -> (std::path::PathBuf, TestSim) {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sim = TestSim::start_with(
        Origin::Generated(GenerateOptions {
            users: 2,
            shared: 0,
            messages,
            events,
            ..GenerateOptions::default()
        }),
        ProtocolConfig::default(),
        Some(dir.join("tls")),
    )
    .await;
    (dir, sim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_floor_write_json_and_markdown_on_both_databases() {
    let (dir, sim) = two_user_world("m365sync-bench-test", 50, 0).await;
    let truth = ground_truth(&sim.sim.world.lock().unwrap());
    let expected: u64 = truth["tenants"][0]["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(crate::sync_email::synced_by_default)
        .sum();
    let out = dir.join("results");
    let postgres = std::env::var("M365SYNC_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let ca = sim.running.ca_cert.clone().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_m365sync"))
        .args([
            "bench", "ingest", "--db", "both", "--sim", &sim.base, "--sim-ca",
        ])
        .arg(&ca)
        .arg("--postgres")
        .arg(&postgres)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ingest.json")).unwrap()).unwrap();
    assert_eq!(json["scenario"], "ingest");
    assert!(json["command"].as_str().unwrap().contains("bench ingest"));
    let runs = json["results"].as_array().unwrap();
    let names: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            (
                r["db"].as_str().unwrap().to_string(),
                r["variant"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("sqlite", "ingest"),
            ("sqlite", "floor"),
            ("postgres", "ingest"),
            ("postgres", "floor")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    for r in runs {
        assert_eq!(r["mailboxes"], 2, "{r}");
        assert_eq!(r["processed"].as_u64().unwrap(), expected, "{r}");
        assert_eq!(r["failed"], 0, "{r}");
        assert!(r["sim_requests"].as_u64().unwrap() > 0, "{r}");
        assert!(r["peak_rss_mib"].as_f64().unwrap() > 0.0, "{r}");
        let stored = r["stored_emails"].as_u64().unwrap();
        assert!(stored > 0 && stored <= expected, "{r}");
        let timeline = r["timeline"].as_array().unwrap();
        assert_eq!(timeline.last().unwrap()[1].as_u64().unwrap(), expected);
    }
    // The floor keeps every message; the default exclusion drops some (internal-only mail).
    for db in [0, 2] {
        let (ingest, floor) = (&runs[db], &runs[db + 1]);
        assert_eq!(floor["excluded"], 0);
        assert!(
            floor["stored_emails"].as_u64() >= ingest["stored_emails"].as_u64(),
            "{floor} {ingest}"
        );
    }
    // The same data gives the same records on both databases.
    assert_eq!(runs[0]["stored_emails"], runs[2]["stored_emails"]);
    assert_eq!(runs[1]["stored_emails"], runs[3]["stored_emails"]);

    let md = std::fs::read_to_string(out.join("ingest.md")).unwrap();
    for row in [
        "| sqlite | ingest |",
        "| sqlite | floor |",
        "| postgres | ingest |",
        "| postgres | floor |",
    ] {
        assert!(md.contains(row), "{row} missing from:\n{md}");
    }
    assert!(stdout.contains("| sqlite | ingest |"), "{stdout}");
    assert!(
        !out.join("work").exists(),
        "the work directory is cleaned up"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calendar_scenario_pulls_and_pushes_under_both_budgets() {
    let (dir, sim) = two_user_world("m365sync-bench-cal", 5, 14).await;
    let out = dir.join("results");
    let ca = sim.running.ca_cert.clone().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_m365sync"))
        .args([
            "bench",
            "calendar",
            "--calendar-pushes",
            "3",
            "--calendar-limit",
            "400",
            "--calendar-window-secs",
            "60",
            "--sim",
            &sim.base,
            "--sim-ca",
        ])
        .arg(&ca)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "bench failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("calendar.json")).unwrap()).unwrap();
    assert_eq!(json["scenario"], "calendar");
    let phases = json["results"]["phases"].as_array().unwrap();
    let budgets: Vec<&str> = phases
        .iter()
        .map(|p| p["budget"].as_str().unwrap())
        .collect();
    assert_eq!(budgets, ["outlook", "scaled"]);
    assert_eq!(phases[0]["limit"], 10_000);
    assert_eq!(phases[1]["limit"], 400);
    for p in phases {
        let stored = p["stored_events"].as_i64().unwrap();
        // Series expand: more events than generated items.
        assert!(stored > 2 * 14, "{p}");
        assert!(p["pulled_items"].as_u64().unwrap() >= stored as u64, "{p}");
        assert!(p["pull_requests"].as_u64().unwrap() > 0, "{p}");
        assert_eq!(p["pushed"], 6, "{p}");
        // Each push is at least one POST.
        assert!(p["push_requests"].as_u64().unwrap() >= 6, "{p}");
        assert!(p["peak_rss_mib"].as_f64().unwrap() > 0.0, "{p}");
    }
    // The second pull finds the first phase's pushed events in Microsoft too.
    assert_eq!(
        phases[1]["stored_events"].as_i64().unwrap(),
        phases[0]["stored_events"].as_i64().unwrap() + 6
    );
    let md = std::fs::read_to_string(out.join("calendar.md")).unwrap();
    assert!(md.contains("| outlook (10,000 per 600 s) |"), "{md}");
    assert!(md.contains("| scaled (400 per 60 s) |"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}
