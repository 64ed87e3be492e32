//! `m365sync serve` as a user runs it: real processes against the simulator and a real
//! database. The sandbox syncs and answers its API; a process killed with SIGKILL mid-backfill
//! is resumed by the next one to exactly the ground truth; two processes on one PostgreSQL
//! share the mailboxes and never sync one at once; plugins swapped under load decide every
//! record exactly once; failed records are retried; SIGTERM stops cleanly.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use m365sync_sim::config::FaultConfig;
use m365sync_sim::generate::GenerateOptions;
use m365sync_store::tenants::Tenant;
use m365sync_store::Store;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{TestDb, TestSim};
use crate::sync_email::{assert_matches_truth, declare};

const BIN: &str = env!("CARGO_BIN_EXE_m365sync");
pub(crate) const TOKEN: &str = "test-admin-token-0123456789";

/// A scratch directory removed on drop.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("m365sync-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a service configuration for `db` into `dir`; returns its path.
pub(crate) fn write_config(dir: &Path, db: &TestDb) -> PathBuf {
    std::fs::write(dir.join("key"), &db.key_base64).unwrap();
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    let cfg = dir.join("m365sync.toml");
    std::fs::write(
        &cfg,
        format!(
            "database_url = {:?}\nkey_file = {:?}\nadmin_token_file = {:?}\nworkers = 3\n",
            db.url,
            dir.join("key").display().to_string(),
            dir.join("token").display().to_string()
        ),
    )
    .unwrap();
    cfg
}

/// A `m365sync serve` child process.
pub(crate) struct Serve {
    child: Child,
    log_path: PathBuf,
    out_path: PathBuf,
    pub(crate) admin: String,
    pub(crate) holder: String,
    http: reqwest::Client,
}

impl Serve {
    /// Starts `serve` with `args`; unless they say otherwise, on a free port of 127.0.0.1 with
    /// a 0.2 s poll.
    pub(crate) fn start(args: &[&str], ready: &Path) -> Serve {
        Serve::start_with_log(args, ready, "info")
    }

    /// [`Serve::start`] with the log filtered by `log` (`M365SYNC_LOG`).
    pub(crate) fn start_with_log(args: &[&str], ready: &Path, log_filter: &str) -> Serve {
        let _ = std::fs::remove_file(ready);
        let log = std::fs::File::create(ready.with_extension("log")).unwrap();
        let out = std::fs::File::create(ready.with_extension("out")).unwrap();
        let mut defaults = vec!["serve"];
        if !args.contains(&"--admin-listen") {
            defaults.extend(["--admin-listen", "127.0.0.1:0"]);
        }
        if !args.contains(&"--poll-secs") {
            defaults.extend(["--poll-secs", "0.2"]);
        }
        let child = Command::new(BIN)
            .args(defaults)
            .args(["--ready-file", ready.to_str().unwrap()])
            .args(args)
            .env("M365SYNC_LOG", log_filter)
            // One artifact cache for every test process: plugins compile once per build.
            .env("XDG_CACHE_HOME", env!("CARGO_TARGET_TMPDIR"))
            .stdout(out)
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let info: Value = loop {
            if let Ok(text) = std::fs::read_to_string(ready) {
                if let Ok(v) = serde_json::from_str(&text) {
                    break v;
                }
            }
            assert!(Instant::now() < deadline, "serve did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        };
        Serve {
            child,
            log_path: ready.with_extension("log"),
            out_path: ready.with_extension("out"),
            admin: info["admin_url"].as_str().unwrap().to_string(),
            holder: info["holder"].as_str().unwrap().to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub(crate) async fn api(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> (u16, String) {
        let mut req = self.http.request(method, format!("{}{path}", self.admin));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status and what it wrote to stderr.
    pub(crate) fn terminate(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        (status.success(), self.log())
    }

    /// What the process wrote to stderr so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// What the process wrote to stdout so far (the sandbox's messages to its user).
    pub(crate) fn out(&self) -> String {
        std::fs::read_to_string(&self.out_path).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it answers true or `secs` pass.
pub(crate) async fn wait_for<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn finished_runs(
    store: &Store,
    tenant: &Tenant,
) -> Vec<m365sync_store::sync::Run> {
    store
        .runs(tenant.id, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.finished_ms.is_some())
        .collect()
}

/// A simulator slow enough (latency per answer) that a backfill spans seconds.
pub(crate) async fn slow_sim(messages: usize, latency_ms: u64) -> TestSim {
    slow_sim_with_events(messages, 0, latency_ms).await
}

/// [`slow_sim`] with `events` calendar items per person.
pub(crate) async fn slow_sim_with_events(
    messages: usize,
    events: usize,
    latency_ms: u64,
) -> TestSim {
    let s = TestSim::start(GenerateOptions {
        users: 4,
        shared: 1,
        messages,
        events,
        ..GenerateOptions::default()
    })
    .await;
    s.sim.set_faults(FaultConfig {
        latency_ms,
        ..FaultConfig::default()
    });
    s
}

pub(crate) async fn email_count(store: &Store, tenant: &Tenant) -> i64 {
    store.email_count(tenant.id).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_syncs_answers_its_api_and_stops_cleanly() {
    let dir = Scratch::new("sandbox");
    let sandbox = dir.0.join("sb");
    let serve = Serve::start(
        &[
            "--sandbox",
            "--sandbox-dir",
            sandbox.to_str().unwrap(),
            "--sim-bind",
            "127.0.0.1:0",
            "--users",
            "3",
            "--messages",
            "30",
            // The sandbox's busy advisor (20,000 messages) is more than this test needs.
            "--busy-messages",
            "0",
        ],
        &dir.0.join("ready"),
    );
    let token = std::fs::read_to_string(sandbox.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let (status, body) = serve.api(Method::GET, "/health", None).await;
    assert_eq!(status, 200, "{body}");
    // Everything else needs the token, and a wrong one is refused without a hint of the right one.
    let (status, body) = serve
        .api(Method::GET, "/api/tenants", Some("wrong-token-123456"))
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains(&token));
    let runs_path = "/api/tenants/sandbox/contoso/runs";
    wait_for(60, "the sandbox's first run", || {
        let serve = &serve;
        let token = token.clone();
        async move {
            let (_, body) = serve.api(Method::GET, runs_path, Some(&token)).await;
            let runs: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            runs.as_array()
                .and_then(|r| r.last())
                .is_some_and(|r| r["status"] == "succeeded")
        }
    })
    .await;
    let (_, body) = serve.api(Method::GET, runs_path, Some(&token)).await;
    let runs: Value = serde_json::from_str(&body).unwrap();
    let first = runs.as_array().unwrap().last().unwrap();
    assert!(first["synced"].as_i64().unwrap() > 0, "{first}");
    // The API answers emails and events apart, and each adds up (issue 19).
    for kind in ["emails", "events"] {
        let k = &first[kind];
        assert!(k["processed"].as_i64().unwrap() > 0, "{kind}: {first}");
        assert_eq!(
            k["processed"].as_i64(),
            Some(
                k["kept"].as_i64().unwrap()
                    + k["excluded"].as_i64().unwrap()
                    + k["failed"].as_i64().unwrap()
            ),
            "{kind}: {first}"
        );
    }
    // The first run's summary, in words: by kind, and linked to the seeded contacts.
    wait_for(60, "the first run's summary", || {
        let serve = &serve;
        async move { serve.out().contains("Where to look next:") }
    })
    .await;
    let out = serve.out();
    assert!(
        !out.contains("interrupted"),
        "a first start interrupts nothing: {out}"
    );
    let first_out = out.clone();
    let emails = first["emails"]["kept"].as_i64().unwrap();
    assert!(
        out.contains(&format!("first run {} succeeded", first["id"])),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "emails: {} read: {} kept",
            m365sync_store::sync::thousands(first["emails"]["processed"].as_i64().unwrap()),
            m365sync_store::sync::thousands(emails)
        )),
        "{out}"
    );
    let linked = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("linked to contacts: "))
        .unwrap_or_else(|| panic!("no linked line in {out}"));
    let linked_emails: i64 = linked
        .split(' ')
        .next()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    assert!(
        linked_emails > 0,
        "the first run links mail to the seeded contacts: {out}"
    );
    assert!(out.contains("contact timeline --org sandbox"), "{out}");
    // The seeded contacts are there, and their timelines hold what the summary says.
    let (status, body) = serve
        .api(
            Method::GET,
            "/api/orgs/sandbox/contacts?limit=100",
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("sandbox-contact-"), "{body}");
    let (status, body) = serve
        .api(
            Method::GET,
            "/api/tenants/sandbox/contoso/mailboxes",
            Some(&token),
        )
        .await;
    assert_eq!(status, 200);
    let mailboxes: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(mailboxes.len(), 4, "3 people and a shared mailbox");
    assert!(mailboxes.iter().all(|m| m["health"] == "healthy"), "{body}");
    let (status, metrics) = serve.api(Method::GET, "/metrics", Some(&token)).await;
    assert_eq!(status, 200);
    for line in [
        "m365sync_runs_started_total 1",
        "m365sync_mailboxes{health=\"healthy\"} 4",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    // Each mailbox synced in the first run, and again in the rounds its new change-notification
    // subscriptions asked for (a look once each subscription exists).
    let synced_ok: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("m365sync_mailbox_syncs_total{result=\"ok\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(synced_ok >= 4, "{metrics}");
    assert!(metrics.contains("m365sync_subscriptions_created_total "));
    // Prometheus' conventions (issue 16): one name per thing counted, the outcome a label;
    // durations as histograms in seconds, fed by the pipeline as it works.
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
    };
    assert!(value("m365sync_graph_responses_total{status=\"200\"} ") >= 4.0);
    assert!(value("m365sync_records_total{outcome=\"synced\"} ") >= 1.0);
    assert!(value("m365sync_page_commit_duration_seconds_count{kind=\"mail\"} ") >= 4.0);
    assert_eq!(
        value("m365sync_match_queue_depth "),
        0.0,
        "the matching job has run"
    );
    for line in [
        "# TYPE m365sync_graph_request_duration_seconds histogram",
        "# UNIT m365sync_graph_request_duration_seconds seconds",
        "m365sync_plugin_call_duration_seconds_count{slot=\"exclusion\",plugin=\"",
        "m365sync_plugin_call_duration_seconds_count{slot=\"mapping\",plugin=\"",
        "m365sync_mailbox_syncs_total{result=\"failed\"} 0",
        "m365sync_build_info{version=\"",
        "# EOF",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    // Route templates only: no mailbox address, id or token in a label.
    assert!(!metrics.contains("@"), "{metrics}");
    // Rounds change notifications start are runs too; the scheduled ones are counted here.
    let scheduled = |runs: &[Value]| -> Vec<Value> {
        runs.iter()
            .filter(|r| r["trigger_kind"] != "notification")
            .cloned()
            .collect()
    };
    assert!(!metrics.contains(&token));
    // Sync now: a second run starts and finishes.
    let (status, _) = serve
        .api(
            Method::POST,
            "/api/tenants/sandbox/contoso/sync",
            Some(&token),
        )
        .await;
    assert_eq!(status, 202);
    wait_for(30, "the requested run", || {
        let serve = &serve;
        let token = token.clone();
        async move {
            let (_, body) = serve.api(Method::GET, runs_path, Some(&token)).await;
            let runs: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
            let runs = scheduled(&runs);
            runs.len() == 2 && runs.iter().all(|r| r["status"] == "succeeded")
        }
    })
    .await;
    // The CLI reads the same sandbox through the configuration it wrote.
    let out = Command::new(BIN)
        .args(["--config", sandbox.join("m365sync.toml").to_str().unwrap()])
        .args(["runs", "--org", "sandbox", "--tenant", "contoso", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(scheduled(&runs).len(), 2);
    let (clean, stderr) = serve.terminate();
    assert!(clean, "{stderr}");
    assert!(stderr.contains("stopped cleanly"), "{stderr}");
    // The simulated mailboxes are kept for the next start.
    let saved: Value =
        serde_json::from_slice(&std::fs::read(sandbox.join("sim-world.json")).unwrap()).unwrap();
    assert_eq!(saved["format"], 1);
    let secret_free = std::fs::read_to_string(sandbox.join("m365sync.toml")).unwrap();
    assert!(!secret_free.contains(&token));
    // A restart on the same directory: the last run is shown as the previous one with its
    // time, never as a new first run; a new run is printed when it finishes. The simulator
    // comes back on its port: the stored delta links name it, as they name the default 8765.
    let sim_port = first_out
        .split("https://localhost:")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap()
        .to_string();
    let sim_bind = format!("127.0.0.1:{sim_port}");
    let again = Serve::start(
        &[
            "--sandbox",
            "--sandbox-dir",
            sandbox.to_str().unwrap(),
            "--sim-bind",
            &sim_bind,
            "--busy-messages",
            "0",
        ],
        &dir.0.join("ready-again"),
    );
    wait_for(30, "the previous run's line", || {
        let again = &again;
        async move { again.out().contains("previous run ") }
    })
    .await;
    let (status, _) = again
        .api(
            Method::POST,
            "/api/tenants/sandbox/contoso/sync",
            Some(&token),
        )
        .await;
    assert_eq!(status, 202);
    wait_for(60, "the new run's line", || {
        let again = &again;
        async move { again.out().lines().any(|l| l.starts_with("run ")) }
    })
    .await;
    let out = again.out();
    assert!(!out.contains("first run"), "{out}");
    let previous = out
        .lines()
        .find(|l| l.starts_with("previous run "))
        .unwrap();
    assert!(
        previous.contains("started ") && previous.contains("finished "),
        "{previous}"
    );
    let new = out.lines().find(|l| l.starts_with("run ")).unwrap();
    assert!(
        new.contains("succeeded") && new.contains("emails "),
        "{new}"
    );
    let (clean, stderr) = again.terminate();
    assert!(clean, "{stderr}");
}

/// SIGKILL in the middle of a backfill, then a new process: the store ends exactly at the
/// ground truth (nothing lost, nothing doubled), on SQLite and PostgreSQL. The run the second
/// process resumes counts both processes' work (issue 20): its figures by kind add up, match
/// what is stored and the simulator's ground truth, and it says it was resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_backfill_is_resumed_to_the_ground_truth() {
    for db in TestDb::both().await {
        let s = slow_sim_with_events(120, 6, 40).await;
        let (tenant, ids) = declare(&db.store, &s).await;
        db.store.activate_tenant(tenant.id).await.unwrap();
        let dir = Scratch::new(&format!("kill9-{}", db.store.backend() as u8));
        let cfg = write_config(&dir.0, &db);
        let args = ["--config", cfg.to_str().unwrap(), "--lease-secs", "3"];
        let ready = dir.0.join("ready");
        let first = Serve::start(&args, &ready);
        let first_holder = first.holder.clone();
        let total_hint = 50;
        wait_for(60, "the backfill to be under way", || {
            let (store, tenant) = (&db.store, &tenant);
            async move { email_count(store, tenant).await >= total_hint }
        })
        .await;
        assert!(
            finished_runs(&db.store, &tenant).await.is_empty(),
            "the backfill finished before the kill; slow the simulator down"
        );
        first.kill9();
        let stored_at_kill = email_count(&db.store, &tenant).await;
        let second = Serve::start(&args, &ready);
        wait_for(120, "the resumed backfill to finish", || {
            let (store, tenant) = (&db.store, &tenant);
            async move { !finished_runs(store, tenant).await.is_empty() }
        })
        .await;
        assert!(email_count(&db.store, &tenant).await > stored_at_kill);
        let run = &finished_runs(&db.store, &tenant).await[0];
        assert_eq!(run.status, "succeeded", "{run:?}");
        assert_matches_truth(&db, &s, &ids).await;
        assert_run_figures_match_the_store(&db, &s, &tenant, run).await;
        // The kill is on record: resumed, not a plain success.
        assert!(run.interruptions >= 1, "{run:?}");
        assert!(
            run.status_text().starts_with("succeeded, resumed after"),
            "{}",
            run.status_text()
        );
        let lines = db
            .store
            .logs(&m365sync_store::logs::LogFilter {
                run_id: Some(run.id),
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap();
        let resumed: Vec<_> = lines
            .iter()
            .filter(|l| l.level == "warning" && l.message.contains(" resumed by "))
            .collect();
        assert_eq!(resumed.len() as i64, run.interruptions, "{lines:?}");
        assert!(
            resumed[0].message.contains(&first_holder),
            "the line names the killed worker: {}",
            resumed[0].message
        );
        // `m365sync runs` shows the same figures, and that the run was resumed.
        let out = Command::new(BIN)
            .args(["--config", cfg.to_str().unwrap()])
            .args(["runs", "--org", "acme", "--tenant", "main"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("RESUMED"), "{text}");
        assert!(text.contains("resumed after"), "{text}");
        let (clean, stderr) = second.terminate();
        assert!(clean, "{stderr}");
        db.drop_db().await;
    }
}

/// A one-off `sync run` killed mid-backfill leaves its mailboxes owed to its run with its
/// leases. The next `sync run` says truthfully who holds them and until when while the leases
/// live, and once they have run out finishes the killed run's work for it: the store ends at
/// the ground truth and the killed run closes as resumed, not as a plain success or never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_one_off_run_is_named_then_finished_by_the_next() {
    for db in TestDb::both().await {
        let s = slow_sim_with_events(120, 6, 40).await;
        let (tenant, ids) = declare(&db.store, &s).await;
        db.store.activate_tenant(tenant.id).await.unwrap();
        let dir = Scratch::new(&format!("kill-cli-{}", db.store.backend() as u8));
        let cfg = write_config(&dir.0, &db);
        let sync_run = || {
            let mut c = Command::new(BIN);
            c.args(["--config", cfg.to_str().unwrap()])
                .args(["sync", "run", "--org", "acme", "--tenant", "main"]);
            c
        };
        let mut first = sync_run()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let holder = format!("cli-{}", first.id());
        wait_for(60, "the one-off backfill to be under way", || {
            let (store, tenant) = (&db.store, &tenant);
            async move { email_count(store, tenant).await >= 30 }
        })
        .await;
        first.kill().unwrap(); // SIGKILL
        first.wait().unwrap();
        let killed_run = db.store.runs(tenant.id, 10).await.unwrap()[0].clone();
        assert!(killed_run.finished_ms.is_none(), "{killed_run:?}");
        // Its backfill is half done, and each mailbox's health says how much is left.
        let backlogs: Vec<_> = db
            .store
            .mailboxes(tenant.id)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| m.mail_backlog)
            .collect();
        assert!(
            backlogs.iter().any(|b| b.folders_pending > 0
                && b.messages_at_most > 0
                && b.words().unwrap().starts_with("backfilling ")),
            "{backlogs:?}"
        );

        // While its leases live, nothing is taken: each owed mailbox names the holder.
        let out = sync_run().output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains(&format!(
                "skipped: {holder} is syncing it for run {}",
                killed_run.id
            )),
            "{text}"
        );
        assert!(
            !text.contains("another process is syncing it now"),
            "{text}"
        );

        // Two minutes later the killed process's leases have run out (set so here: just
        // run out, as they stand then): the next run finishes the killed run's work.
        for m in db.store.mailboxes(tenant.id).await.unwrap() {
            db.store.renew_lease(m.id, &holder, -1).await.unwrap();
        }
        let out = sync_run().output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains(&format!("resumed: run {} owed it work", killed_run.id)),
            "{text}"
        );
        assert!(!text.contains("skipped"), "{text}");
        assert_matches_truth(&db, &s, &ids).await;
        // Every folder is through its first round: no backlog left anywhere.
        for m in db.store.mailboxes(tenant.id).await.unwrap() {
            let b = m.mail_backlog.expect("the folder tree was discovered");
            assert!(
                b.folders > 0 && b.folders_pending == 0,
                "{}: {b:?}",
                m.address
            );
            assert_eq!(b.words(), None);
        }
        let killed = db.store.run(killed_run.id).await.unwrap();
        assert!(killed.finished_ms.is_some(), "{killed:?}");
        assert_eq!(killed.status, "succeeded", "{killed:?}");
        assert!(killed.interruptions >= 1, "{killed:?}");
        assert!(
            killed.status_text().starts_with("succeeded, resumed after"),
            "{}",
            killed.status_text()
        );
        db.drop_db().await;
    }
}

/// A finished run's figures against the store and the simulator's ground truth: per kind,
/// processed = kept + excluded + failed; emails kept = the mailbox links stored, excluded = the
/// exclusions recorded, processed = every message of the synced folders; events kept = the
/// events stored, excluded = the calendar's exclusions; the totals are the kinds' sums.
async fn assert_run_figures_match_the_store(
    db: &TestDb,
    s: &TestSim,
    tenant: &Tenant,
    run: &m365sync_store::sync::Run,
) {
    use m365sync_store::events::CALENDAR_FOLDER;
    assert!(run.emails.adds_up(), "emails do not add up: {run:?}");
    assert!(run.events.adds_up(), "events do not add up: {run:?}");
    assert_eq!(
        run.processed,
        run.emails.processed + run.events.processed,
        "{run:?}"
    );
    assert_eq!(run.synced, run.emails.kept + run.events.kept, "{run:?}");
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let count = |sql: &'static str, folder: bool| {
        let pool = pool.clone();
        async move {
            let mut q = sqlx::query_as::<_, (i64,)>(sql).bind(tenant.id);
            if folder {
                q = q.bind(CALENDAR_FOLDER);
            }
            q.fetch_one(&pool).await.unwrap().0
        }
    };
    let links = count(
        "SELECT COUNT(*) FROM email_mailboxes em JOIN mailboxes m ON m.id = em.mailbox_id
         WHERE m.tenant_id = $1 AND em.removed = 0",
        false,
    )
    .await;
    let mail_excluded = count(
        "SELECT COUNT(*) FROM exclusions x JOIN mailboxes m ON m.id = x.mailbox_id
         WHERE m.tenant_id = $1 AND x.folder <> $2",
        true,
    )
    .await;
    let events = count(
        "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND origin = 'microsoft' AND deleted = 0",
        false,
    )
    .await;
    let event_excluded = count(
        "SELECT COUNT(*) FROM exclusions x JOIN mailboxes m ON m.id = x.mailbox_id
         WHERE m.tenant_id = $1 AND x.folder = $2",
        true,
    )
    .await;
    let failed = count(
        "SELECT COUNT(*) FROM failed_records f JOIN mailboxes m ON m.id = f.mailbox_id WHERE m.tenant_id = $1",
        false,
    )
    .await;
    let in_truth: i64 = s.truth()["tenants"][0]["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|mb| {
            crate::sync_email::FOLDERS
                .iter()
                .map(|f| mb["folders"][f]["ids"].as_array().unwrap().len() as i64)
                .sum::<i64>()
        })
        .sum();
    assert_eq!(
        (run.emails.kept, run.emails.excluded, run.emails.processed),
        (links, mail_excluded, in_truth),
        "emails: run {run:?} against the store and the ground truth on {}",
        db.url
    );
    assert_eq!(
        (run.events.kept, run.events.excluded),
        (events, event_excluded),
        "events: run {run:?} against the store on {}",
        db.url
    );
    assert!(
        run.events.processed > 0,
        "the calendars were synced: {run:?}"
    );
    assert_eq!(
        run.emails.failed + run.events.failed,
        failed,
        "{run:?} on {}",
        db.url
    );
}

/// "synced by H from S to E" lines of the run log, per mailbox.
async fn sync_intervals(store: &Store) -> HashMap<String, Vec<(String, i64, i64)>> {
    let lines = store
        .logs(&m365sync_store::logs::LogFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out: HashMap<String, Vec<(String, i64, i64)>> = HashMap::new();
    for l in lines {
        let Some(rest) = l.message.split(" synced by ").nth(1) else {
            continue;
        };
        // "HOLDER from S to E ms"
        let parts: Vec<&str> = rest.split_whitespace().collect();
        let (holder, from, to) = (parts[0], parts[2], parts[4]);
        out.entry(l.mailbox.unwrap()).or_default().push((
            holder.to_string(),
            from.parse().unwrap(),
            to.parse().unwrap(),
        ));
    }
    out
}

/// Two processes on one PostgreSQL share a tenant's mailboxes, never working on one at once;
/// when one is killed, the other takes its mailboxes over once their leases run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_work_and_one_takes_over_from_the_other() {
    let db = TestDb::postgres().await;
    let s = slow_sim(100, 10).await;
    let (tenant, ids) = declare(&db.store, &s).await;
    let dir = Scratch::new("two-procs");
    let cfg = write_config(&dir.0, &db);
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--lease-secs",
        "2",
        "--workers",
        "2",
    ];
    let a = Serve::start(&args, &dir.0.join("ready-a"));
    let b = Serve::start(&args, &dir.0.join("ready-b"));
    db.store.activate_tenant(tenant.id).await.unwrap();
    // Both take leases: the work is shared.
    let mut holders = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while holders.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "both processes never held leases: {holders:?}"
        );
        for (_, h) in db.store.live_leases().await.unwrap() {
            // Workers hold leases as PROCESS/wN.
            holders.insert(h.split('/').next().unwrap().to_string());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(holders.contains(&a.holder) && holders.contains(&b.holder));
    a.kill9();
    let deadline = Instant::now() + Duration::from_secs(120);
    while finished_runs(&db.store, &tenant).await.is_empty() {
        if Instant::now() > deadline {
            let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
            let state: Vec<(i64, String, Option<i64>, Option<i64>)> = sqlx::query_as(
                "SELECT id, health, pending_run_id, backoff_until_ms FROM mailboxes ORDER BY id",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            let leases: Vec<(i64, String, i64)> =
                sqlx::query_as("SELECT mailbox_id, holder, expires_ms FROM leases")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            panic!(
                "the survivor did not finish the run\nmailboxes {state:?}\nleases {leases:?}\nnow {}\nits log:\n{}",
                chrono::Utc::now().timestamp_millis(),
                b.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_matches_truth(&db, &s, &ids).await;
    // Never two workers on one mailbox at once: the completed syncs of a mailbox do not overlap.
    for (mailbox, mut spans) in sync_intervals(&db.store).await {
        spans.sort_by_key(|s| s.1);
        for w in spans.windows(2) {
            assert!(
                w[0].2 <= w[1].1,
                "{mailbox} synced twice at once: {spans:?}"
            );
        }
    }
    let (clean, stderr) = b.terminate();
    assert!(clean, "{stderr}");
    db.drop_db().await;
}

/// The default exclusion plugin with an extra custom section: a valid component with the same
/// behaviour and a different digest, i.e. a new version as far as the registry can tell.
fn variant_of_builtin_exclusion(dir: &Path, tag: u8) -> PathBuf {
    let mut wasm = m365sync_plugin::builtin::builtin(m365sync_plugin::Kind::Exclusion)
        .wasm
        .to_vec();
    let name = b"m365sync-test-variant";
    let payload_len = 1 + name.len() + 1;
    wasm.push(0); // custom section id
    wasm.push(payload_len as u8);
    wasm.push(name.len() as u8);
    wasm.extend_from_slice(name);
    wasm.push(tag);
    let path = dir.join(format!("variant-{tag}.wasm"));
    std::fs::write(&path, wasm).unwrap();
    path
}

/// Batches flow while the exclusion plugin is swapped twice and rolled back once: every record
/// is decided by exactly one version, none is lost, and the swaps were used mid-run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_swapped_under_load_decide_every_record_exactly_once() {
    let db = TestDb::sqlite().await;
    let s = slow_sim(150, 200).await;
    let (tenant, ids) = declare(&db.store, &s).await;
    let dir = Scratch::new("swap");
    let cfg = write_config(&dir.0, &db);
    let serve = Serve::start(&["--config", cfg.to_str().unwrap()], &dir.0.join("ready"));
    db.store.activate_tenant(tenant.id).await.unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["--config", cfg.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let v2 = variant_of_builtin_exclusion(&dir.0, 2);
    let v3 = variant_of_builtin_exclusion(&dir.0, 3);
    let install = |path: &Path| {
        cli(&[
            "plugin",
            "install",
            path.to_str().unwrap(),
            "--org",
            "acme",
            "--slot",
            "exclusion",
            "--cases",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../plugins/exclusion-rules/cases.toml"
            ),
        ])
    };
    let mut seen = 0;
    for step in 0..3 {
        seen += 40;
        let target = seen;
        wait_for(60, "more records to be synced", || {
            let (store, tenant) = (&db.store, &tenant);
            async move { email_count(store, tenant).await >= target }
        })
        .await;
        match step {
            0 => install(&v2),
            1 => install(&v3),
            _ => cli(&["plugin", "rollback", "--org", "acme", "--slot", "exclusion"]),
        }
        // The service picks a swap up within a second.
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    assert!(
        finished_runs(&db.store, &tenant).await.is_empty(),
        "the run ended before the swaps; slow the simulator down"
    );
    wait_for(120, "the run to finish", || {
        let (store, tenant) = (&db.store, &tenant);
        async move { !finished_runs(store, tenant).await.is_empty() }
    })
    .await;
    assert_matches_truth(&db, &s, &ids).await;
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let stamps: Vec<(String,)> = sqlx::query_as("SELECT decided_by FROM emails")
        .fetch_all(&pool)
        .await
        .unwrap();
    let digest = |p: &Path| m365sync_plugin::cache::digest(&std::fs::read(p).unwrap());
    let v1 = m365sync_plugin::cache::digest(
        m365sync_plugin::builtin::builtin(m365sync_plugin::Kind::Exclusion).wasm,
    );
    let versions: BTreeSet<String> = stamps
        .iter()
        .map(|(d,)| {
            let excl = d.split(';').next().unwrap();
            excl.rsplit("sha256:").next().unwrap().to_string()
        })
        .collect();
    let known: BTreeSet<String> = [v1, digest(&v2), digest(&v3)].into_iter().collect();
    assert!(
        versions.is_subset(&known),
        "{versions:?} not within {known:?}"
    );
    assert!(
        versions.len() >= 2,
        "the swaps were not used mid-run: {versions:?}"
    );
    let (clean, stderr) = serve.terminate();
    assert!(clean, "{stderr}");
    pool.close().await;
    db.drop_db().await;
}

/// Delivers a message with the subject `trap` to the first mailbox and installs the hostile
/// test plugin as the org's exclusion plugin, which traps on it: the next sync fails exactly
/// that record. Answers the org's plugin scope, to roll the plugin back with.
async fn trap_with_the_hostile_plugin(
    store: &Store,
    s: &TestSim,
    tenant: &Tenant,
) -> m365sync_store::plugins::PluginScope {
    let upn = s.mailbox(0)["upn"].as_str().unwrap().to_string();
    s.ctl(
        Method::POST,
        "deliver",
        json!({"from": "client@acme-holdings.example", "to": [upn], "subject": "trap"}),
    )
    .await;
    let hostile = std::fs::read(crate::plugin_support::HOSTILE).unwrap();
    let digest = m365sync_plugin::cache::digest(&hostile);
    let scope = m365sync_store::plugins::PluginScope {
        org_id: tenant.org_id,
        tenant_id: None,
    };
    store
        .install_plugin(
            scope,
            &m365sync_store::plugins::NewPlugin {
                slot: "exclusion",
                digest: &digest,
                name: "hostile",
                version: "0.0.1",
                wasm: &hostile,
            },
        )
        .await
        .unwrap();
    scope
}

/// A record a plugin fails on is kept with its error (the rest goes on) and synced by
/// `m365sync retry RUN` once the plugin is fixed (E10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_plugin_failed_on_are_retried() {
    for db in TestDb::both().await {
        let s = TestSim::start(crate::support::small()).await;
        let (tenant, ids) = declare(&db.store, &s).await;
        let scope = trap_with_the_hostile_plugin(&db.store, &s, &tenant).await;
        let dir = Scratch::new(&format!("retry-{}", db.store.backend() as u8));
        let cfg = write_config(&dir.0, &db);
        let cli = |args: &[&str]| {
            Command::new(BIN)
                .env("XDG_CACHE_HOME", env!("CARGO_TARGET_TMPDIR"))
                .args(["--config", cfg.to_str().unwrap()])
                .args(args)
                .output()
                .unwrap()
        };
        let out = cli(&["sync", "run", "--org", "acme", "--tenant", "main", "--json"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["failed"], 1, "{report}");
        // A run with a failed record is partly done: exit 3, and the message says where to look.
        assert_eq!(out.status.code(), Some(3), "{report}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("failures list"));
        let run_id = report["run_id"].as_i64().unwrap();
        let run = db.store.run(run_id).await.unwrap();
        assert_eq!(run.status, "completed_with_errors");
        assert_eq!(db.store.failed_record_count(tenant.id).await.unwrap(), 1);
        let out = cli(&[
            "logs",
            "--org",
            "acme",
            "--tenant",
            "main",
            "--run",
            &run_id.to_string(),
        ]);
        let logs = String::from_utf8_lossy(&out.stdout);
        // The record is named with its folder, stage, plugin and the guest's panic message.
        assert!(
            logs.contains("ERROR")
                && logs.contains("failed in the exclude stage of plugin hostile")
                && logs.contains("panicked: asked to trap")
                && logs.contains("folder Inbox"),
            "{logs}"
        );
        // Fix the plugin (back to the default), then retry the run.
        db.store.rollback_plugin(scope, "exclusion").await.ok();
        sqlx::query("DELETE FROM plugin_active")
            .execute(&sqlx::AnyPool::connect(&db.url).await.unwrap())
            .await
            .unwrap();
        let out = cli(&["retry", &run_id.to_string()]);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(db.store.failed_record_count(tenant.id).await.unwrap(), 0);
        assert_matches_truth(&db, &s, &ids).await;
        let out = cli(&["retry", "--errors", "--since", "30d"]);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to retry"));
        db.drop_db().await;
    }
}

/// A configuration with a mistake names the file and the line, and nothing starts.
#[test]
fn a_bad_configuration_is_named_with_its_line() {
    let dir = Scratch::new("badcfg");
    let cfg = dir.0.join("m365sync.toml");
    std::fs::write(&cfg, "database_url = \"sqlite://x.db\"\nworkerz = 3\n").unwrap();
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("m365sync.toml") && err.contains("line 2") && err.contains("workerz"),
        "{err}"
    );
    std::fs::write(&cfg, "database_url = \"sqlite://x.db\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .env_remove("M365SYNC_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("admin_token_file"), "{err}");
}

/// A container's way of running the service: no configuration file, every setting from the
/// environment (the database URL from a `_FILE` secret), on PostgreSQL. `/ready` answers 200
/// while it takes work and 503 ("draining") from SIGTERM until the pages in hand are committed;
/// then the process exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_by_the_environment_alone_it_drains_with_ready_503() {
    let db = TestDb::postgres().await;
    // Slow answers: the backfill is still under way when SIGTERM arrives.
    let s = slow_sim(100, 250).await;
    let (tenant, _) = declare(&db.store, &s).await;
    let dir = Scratch::new("env-only");
    let secrets = dir.0.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("db"), format!("{}\n", db.url)).unwrap();
    std::fs::write(secrets.join("key"), &db.key_base64).unwrap();
    let ready = dir.0.join("ready");
    let log = dir.0.join("serve.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--poll-secs", "0.2", "--ready-file"])
        .arg(&ready)
        .current_dir(&dir.0)
        .env(
            "M365SYNC_DATABASE_URL_FILE",
            secrets.join("db").to_str().unwrap(),
        )
        .env("M365SYNC_KEY_FILE", secrets.join("key").to_str().unwrap())
        .env("M365SYNC_ADMIN_TOKEN", TOKEN)
        .env("M365SYNC_ADMIN_LISTEN", "127.0.0.1:0")
        .env("M365SYNC_WORKERS", "2")
        .env("M365SYNC_LOG", "info")
        .env("XDG_CACHE_HOME", env!("CARGO_TARGET_TMPDIR"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let admin = loop {
        if let Some(v) = std::fs::read_to_string(&ready)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            break v["admin_url"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "serve did not start from the environment:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!dir.0.join("m365sync.toml").exists() && !dir.0.join("m365sync.db").exists());
    let http = reqwest::Client::new();
    let get_ready = || async {
        match http.get(format!("{admin}/ready")).send().await {
            Ok(r) => Some((r.status().as_u16(), r.text().await.unwrap_or_default())),
            Err(_) => None,
        }
    };
    let (status, body) = get_ready().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ready\""), "{body}");
    db.store.activate_tenant(tenant.id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while email_count(&db.store, &tenant).await == 0 {
        assert!(Instant::now() < deadline, "the backfill never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut draining = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match get_ready().await {
            Some((503, body)) => {
                draining = Some(body);
                break;
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            None => break,
        }
    }
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let draining = draining.unwrap_or_else(|| panic!("/ready never answered 503:\n{stderr}"));
    assert!(draining.contains("draining"), "{draining}");
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("stopped cleanly"), "{stderr}");
    db.drop_db().await;
}

/// Swaps are counted per plugin version even when no tenant is being synced (before, the
/// counter moved only for tenants with a run in progress, and stayed 0 after several swaps): an
/// install, a second version, a rollback and an uninstall at an org with no tenants are four
/// swaps, each under the plugin version swapped to; the failure gauge's family is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_swaps_are_counted_per_version_without_a_run() {
    for db in TestDb::both().await {
        let org_id = db.store.ensure_org("acme").await.unwrap();
        let dir = Scratch::new(&format!("swaps-{}", db.store.backend() as u8));
        let cfg = write_config(&dir.0, &db);
        let serve = Serve::start(&["--config", cfg.to_str().unwrap()], &dir.0.join("ready"));
        let scope = m365sync_store::plugins::PluginScope {
            org_id,
            tenant_id: None,
        };
        let blob =
            |digest: &'static str, version: &'static str| m365sync_store::plugins::NewPlugin {
                slot: "exclusion",
                digest,
                name: "firm-rules",
                version,
                wasm: b"not loaded: no tenant runs it",
            };
        let metrics = || async {
            let (status, text) = serve.api(Method::GET, "/metrics", Some(TOKEN)).await;
            assert_eq!(status, 200, "{text}");
            text
        };
        let swaps = |text: &str, name: &str, version: &str| -> u64 {
            let series = format!(
                "m365sync_plugin_swaps_total{{slot=\"exclusion\",plugin=\"{name}\",version=\"{version}\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(&series))
                .map(|n| n.parse().unwrap())
                .unwrap_or(0)
        };
        // A labelled family shows once it has a series (no failing records here, no swaps
        // yet); the plain gauges always do.
        assert!(metrics()
            .await
            .contains("# TYPE m365sync_match_queue_depth gauge"));
        // Each change is made only after the previous one was counted: the watcher polls.
        db.store
            .install_plugin(scope, &blob("d1", "1.0.0"))
            .await
            .unwrap();
        wait_for(30, "the swap to 1.0.0", || async {
            swaps(&metrics().await, "firm-rules", "1.0.0") == 1
        })
        .await;
        db.store
            .install_plugin(scope, &blob("d2", "2.0.0"))
            .await
            .unwrap();
        wait_for(30, "the swap to 2.0.0", || async {
            swaps(&metrics().await, "firm-rules", "2.0.0") == 1
        })
        .await;
        db.store.rollback_plugin(scope, "exclusion").await.unwrap();
        wait_for(30, "the rollback to 1.0.0", || async {
            swaps(&metrics().await, "firm-rules", "1.0.0") == 2
        })
        .await;
        db.store.uninstall_plugin(scope, "exclusion").await.unwrap();
        wait_for(30, "the uninstall", || async {
            swaps(&metrics().await, "exclusion-rules", "built-in") == 1
        })
        .await;
        let text = metrics().await;
        assert_eq!(swaps(&text, "firm-rules", "2.0.0"), 1, "{text}");
        let (clean, stderr) = serve.terminate();
        assert!(clean, "{stderr}");
        db.drop_db().await;
    }
}

/// A client that never finishes its request headers (slowloris) is cut off after the header
/// timeout, while other clients are answered meanwhile (SQLite only: this is the listener, not
/// the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_cuts_off_a_client_that_never_finishes_its_headers() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let db = TestDb::sqlite().await;
    let dir = Scratch::new("slowloris");
    let cfg = write_config(&dir.0, &db);
    let serve = Serve::start(&["--config", cfg.to_str().unwrap()], &dir.0.join("ready"));
    let addr = serve
        .admin
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Others are answered while it hangs.
    let (status, _) = serve.api(Method::GET, "/health", None).await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), slow.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the half-sent request was still open after {:?}",
        started.elapsed()
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    let (status, _) = serve.api(Method::GET, "/health", None).await;
    assert_eq!(status, 200);
    let (clean, stderr) = serve.terminate();
    assert!(clean, "{stderr}");
}

/// The retry routes answer named fields (issue 16): the run started per tenant and the
/// mailboxes it syncs again; nothing to retry is an empty list, a bad `since` a 400 in words.
/// The service runs without workers, so the retry runs stay as the answers describe them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_routes_answer_named_fields() {
    for db in TestDb::both().await {
        let s = TestSim::start(crate::support::small()).await;
        let (tenant, _) = declare(&db.store, &s).await;
        trap_with_the_hostile_plugin(&db.store, &s, &tenant).await;
        let dir = Scratch::new(&format!("retry-api-{}", db.store.backend() as u8));
        let cfg = write_config(&dir.0, &db);
        let out = Command::new(BIN)
            .env("XDG_CACHE_HOME", env!("CARGO_TARGET_TMPDIR"))
            .args(["--config", cfg.to_str().unwrap()])
            .args(["sync", "run", "--org", "acme", "--tenant", "main", "--json"])
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["failed"], 1, "{report}");
        let failed_run = report["run_id"].as_i64().unwrap();
        let serve = Serve::start(
            &["--config", cfg.to_str().unwrap(), "--workers", "0"],
            &dir.0.join("ready"),
        );
        let (status, body) = serve
            .api(
                Method::POST,
                &format!("/api/runs/{failed_run}/retry"),
                Some(TOKEN),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        let plan: Value = serde_json::from_str(&body).unwrap();
        let runs = plan["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 1, "{body}");
        assert_eq!(runs[0]["tenant_id"], tenant.id, "{body}");
        assert_eq!(
            runs[0]["mailbox_ids"].as_array().unwrap().len(),
            1,
            "{body}"
        );
        let retry_run = runs[0]["run_id"].as_i64().unwrap();
        assert_eq!(
            db.store.run(retry_run).await.unwrap().trigger_kind,
            format!("retry of run {failed_run}")
        );
        let (status, body) = serve
            .api(Method::POST, "/api/retry?since=30d", Some(TOKEN))
            .await;
        assert_eq!(status, 202, "{body}");
        let plan: Value = serde_json::from_str(&body).unwrap();
        assert!(plan["runs"].is_array(), "{body}");
        let (status, body) = serve
            .api(Method::POST, "/api/retry?since=soon", Some(TOKEN))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("number of days"), "{body}");
        let (clean, stderr) = serve.terminate();
        assert!(clean, "{stderr}");
        db.drop_db().await;
    }
}
