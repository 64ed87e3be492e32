//! The `m365sync sim` command line as a user runs it: bad scenario files, generation, serving
//! with a ready file, the control CLI, and reset.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{small, TestSim};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_m365sync"))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("m365sync-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_malformed_scenario_is_refused_with_path_line_and_field() {
    let dir = temp_dir("scenario");
    let path = dir.join("tenant.toml");
    std::fs::write(&path, "[[tenant]]\nname = \"C\"\ndomain = \"c.example\"\n\n[[tenant.user]]\nupn = \"a@c.example\"\nname = \"A\"\n\n[[tenant.message]]\nmailbox = \"a@c.example\"\nfrom = \"x@y.example\"\nsubject = \"s\"\nreceived = \"last tuesday\"\n").unwrap();
    let out = bin()
        .args(["sim", "serve", "--bind", "127.0.0.1:0", "--scenario"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("line 13") && err.contains("received"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn generate_writes_a_deterministic_ground_truth() {
    let dir = temp_dir("generate");
    let run = |name: &str| {
        let out = dir.join(name);
        let status = bin()
            .args([
                "sim",
                "generate",
                "--users",
                "2",
                "--messages",
                "15",
                "--seed",
                "4",
                // Dates are relative to "now": two runs a second apart differ without it.
                "--now",
                "2027-06-01T12:00:00Z",
                "--out",
            ])
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        serde_json::from_str::<Value>(&std::fs::read_to_string(out).unwrap()).unwrap()
    };
    let (a, b) = (run("a.json"), run("b.json"));
    assert_eq!(a, b);
    let inbox = &a["tenants"][0]["mailboxes"][1]["folders"]["inbox"];
    assert_eq!(
        inbox["count"].as_u64().unwrap() as usize,
        inbox["ids"].as_array().unwrap().len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_writes_the_ready_file_and_ctl_talks_to_it() {
    let dir = temp_dir("serve");
    let ready = dir.join("ready.json");
    let mut child = bin()
        .args([
            "sim",
            "serve",
            "--https",
            "--bind",
            "127.0.0.1:0",
            "--users",
            "2",
            "--messages",
            "5",
            "--tls-dir",
        ])
        .arg(dir.join("tls"))
        .args(["--faults", r#"{"latency_ms": 1}"#])
        .args([
            "--throttle",
            r#"{"window_secs": 60, "limit": 600, "concurrency": 4}"#,
        ])
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("READY "), "{line}");
    let info: Value = serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
    assert!(info["base_url"]
        .as_str()
        .unwrap()
        .starts_with("https://localhost:"));
    assert!(std::path::Path::new(info["ca_cert"].as_str().unwrap()).exists());
    assert_eq!(
        info["tenants"][0]["apps"][0]["secrets"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let out = bin()
        .args(["sim", "ctl", "--ready-file"])
        .arg(&ready)
        .args(["GET", "stats"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["violations"], 0);
    let out = bin()
        .args(["sim", "ctl", "--ready-file"])
        .arg(&ready)
        .args(["GET", "throttle"])
        .output()
        .unwrap();
    let throttle: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(throttle["limit"], 600, "--throttle applied at start");
    let out = bin()
        .args(["sim", "ctl", "--ready-file"])
        .arg(&ready)
        .args(["PUT", "faults", r#"{"rate_503": 7}"#])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a bad fault rate is refused");
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn reset_restores_the_initial_world() {
    let s = TestSim::start(small()).await;
    let before = s.truth();
    let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    s.ctl(
        Method::POST,
        "deliver",
        json!({"from": "a@b.example", "to": [upn], "subject": "x"}),
    )
    .await;
    s.ctl(Method::PUT, "faults", json!({"rate_503": 1.0})).await;
    assert_ne!(s.truth(), before);
    s.ctl(Method::POST, "reset", json!({})).await;
    assert_eq!(s.truth(), before);
    assert_eq!(
        s.ctl(Method::GET, "faults", json!({})).await["rate_503"],
        0.0
    );
}
