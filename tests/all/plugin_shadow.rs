//! Shadow runs (issue 18, item 2), as an admin uses them, on SQLite and PostgreSQL: a
//! candidate set with `plugin shadow` runs beside the version in force on a running `serve`
//! and decides nothing; `plugin shadow diff` lists exactly the records it decides otherwise and
//! the records it failed on (a trap and a timeout, which leave the live decisions intact);
//! `plugin promote` makes it the version in force for the next batch, none lost, none twice;
//! `plugin replay` compares a candidate over stored records without a service; and each
//! refusal sets nothing.
//!
//! The candidate that differs without a new wasm build: the hostile test component keeps every
//! record (it misbehaves only on the subjects `trap`, `loop`, ...), while the default exclusion
//! plugin drops the org rule's `*@marketweekly.example` and internal-only mail. So the diff
//! must be exactly the live exclusions. The mapping shadow's candidate is `tests/plugins/remap`,
//! which maps every email and event otherwise (`[remapped] SUBJECT`) and fails one subject.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use m365sync_plugin::builtin::builtin;
use m365sync_plugin::Kind;
use m365sync_sim::config::FaultConfig;
use m365sync_store::plugins::PluginScope;
use m365sync_store::shadows::{ShadowDiff, ShadowPage};
use m365sync_store::tenants::{AuthMode, NewTenant};
use reqwest::Method;
use serde_json::{json, Value};

use crate::plugin_support::{HOSTILE, REMAP};
use crate::service::{
    finished_runs, slow_sim, slow_sim_with_events, wait_for, write_config, Scratch, Serve, TOKEN,
};
use crate::support::TestDb;
use crate::sync_email::{assert_matches_truth, declare};

const BIN: &str = env!("CARGO_BIN_EXE_m365sync");
const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../plugins/exclusion-rules/cases.toml"
);

/// Runs the CLI with `cfg`: (success, stdout, stderr).
fn cli(cfg: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .env("XDG_CACHE_HOME", env!("CARGO_TARGET_TMPDIR"))
        .args(["--config", cfg.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The CLI, which must succeed; its stdout.
fn cli_ok(cfg: &Path, args: &[&str]) -> String {
    let (ok, out, err) = cli(cfg, args);
    assert!(ok, "{args:?} failed:\n{out}{err}");
    out
}

fn digest_of(path: &str) -> String {
    m365sync_plugin::cache::digest(&std::fs::read(path).unwrap())
}

fn builtin_digest() -> String {
    m365sync_plugin::cache::digest(builtin(Kind::Exclusion).wasm)
}

/// (mailbox id, graph id) -> the stamp, for each stored copy of an email.
async fn stored(pool: &sqlx::AnyPool) -> BTreeMap<(i64, String), (String, String)> {
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT em.mailbox_id, em.graph_id, e.decided_by, e.subject FROM email_mailboxes em JOIN emails e ON e.id = em.email_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(m, g, d, s)| ((m, g), (d, s)))
        .collect()
}

/// (mailbox id, graph id) -> (rule, stamp) of each exclusion.
async fn exclusions(pool: &sqlx::AnyPool) -> BTreeMap<(i64, String), (String, String)> {
    let rows: Vec<(i64, String, String, String)> =
        sqlx::query_as("SELECT mailbox_id, graph_id, rule, decided_by FROM exclusions")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(m, g, r, d)| ((m, g), (r, d)))
        .collect()
}

/// The exclusion part of a stored email's stamp: its digest.
fn exclusion_digest(decided_by: &str) -> String {
    let excl = decided_by.split(';').next().unwrap();
    excl.rsplit("sha256:").next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_on_a_running_service_decides_nothing_and_its_promotion_decides_the_next_batch() {
    for db in TestDb::both().await {
        let backend = db.store.backend() as u8;
        let s = slow_sim(40, 20).await;
        let (tenant, ids) = declare(&db.store, &s).await;
        let upn = s.mailbox(0)["upn"].as_str().unwrap().to_string();
        // The hostile candidate traps on one record and loops on another.
        for subject in ["trap", "loop"] {
            s.ctl(
                Method::POST,
                "deliver",
                json!({"from": "client@acme-holdings.example", "to": [upn], "subject": subject}),
            )
            .await;
        }
        let dir = Scratch::new(&format!("shadow-{backend}"));
        let cfg = write_config(&dir.0, &db);
        let out = cli_ok(
            &cfg,
            &[
                "plugin",
                "shadow",
                HOSTILE,
                "--org",
                "acme",
                "--slot",
                "exclusion",
                "--no-cases",
            ],
        );
        assert!(
            out.contains("now runs as the exclusion shadow of org acme"),
            "{out}"
        );
        let serve = Serve::start(&["--config", cfg.to_str().unwrap()], &dir.0.join("ready"));
        db.store.activate_tenant(tenant.id).await.unwrap();
        wait_for(180, "the first run to finish", || {
            let (store, tenant) = (&db.store, &tenant);
            async move { !finished_runs(store, tenant).await.is_empty() }
        })
        .await;
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let kept = stored(&pool).await;
        let dropped = exclusions(&pool).await;
        let live = builtin_digest();
        // The live decisions are those of the version in force: every kept and every dropped
        // record carries the built-in plugin's stamp, and the shadow's traps changed nothing.
        assert!(!dropped.is_empty() && !kept.is_empty());
        for (d, _) in kept.values() {
            assert_eq!(exclusion_digest(d), live, "{d}");
        }
        for (_, d) in dropped.values() {
            assert!(d.ends_with(&live), "{d}");
        }
        let hostile_ids: BTreeSet<String> = kept
            .iter()
            .filter(|(_, (_, subject))| subject == "trap" || subject == "loop")
            .map(|((_, g), _)| g.clone())
            .collect();
        assert_eq!(hostile_ids.len(), 2, "trap and loop were kept live");
        assert_matches_truth(&db, &s, &ids).await;

        let diff: Value = serde_json::from_str(&cli_ok(
            &cfg,
            &[
                "plugin",
                "shadow",
                "diff",
                "--org",
                "acme",
                "--slot",
                "exclusion",
                "--limit",
                "100000",
                "--json",
            ],
        ))
        .unwrap();
        let records = diff["records"].as_array().unwrap();
        let rows = |outcome: &str| -> Vec<&Value> {
            records.iter().filter(|r| r["outcome"] == outcome).collect()
        };
        let (disagreed, failed) = (rows("disagreed"), rows("failed"));
        assert_eq!(diff["disagreed"], disagreed.len() as i64, "{diff}");
        assert_eq!(diff["failed"], failed.len() as i64, "{diff}");
        assert!(diff["agreed"].as_i64().unwrap() > 0, "{diff}");
        assert_eq!(diff["shadow"]["digest"], digest_of(HOSTILE));
        assert_eq!(diff["in_force"]["digest"], live);
        // Each disagreement: the live plugin dropped it by a rule, the shadow would keep it.
        for r in &disagreed {
            assert_eq!(r["live"], "drop", "{r}");
            assert_eq!(r["shadow"], "keep", "{r}");
            assert!(!r["live_rule"].as_str().unwrap().is_empty(), "{r}");
            assert_eq!(r["tenant"], "main");
        }
        // The shadow's failures (the trap, the timeout) are listed and counted, nothing else
        // of it reached the store.
        let failed_ids: BTreeSet<String> = failed
            .iter()
            .map(|r| r["graph_id"].as_str().unwrap().to_string())
            .collect();
        assert!(hostile_ids.is_subset(&failed_ids), "{failed:?}");
        let errors: String = failed.iter().map(|r| r["shadow"].to_string()).collect();
        assert!(errors.contains("asked to trap"), "{errors}");
        assert!(errors.contains("did not finish within"), "{errors}");
        // Exactly the records the candidate decides otherwise: the live exclusions (less any
        // the shadow failed on, which it decided nothing about).
        let disagreed_ids: BTreeSet<String> = disagreed
            .iter()
            .map(|r| r["graph_id"].as_str().unwrap().to_string())
            .collect();
        let failed_dropped: BTreeSet<String> = failed
            .iter()
            .filter(|r| r["live"] == "drop")
            .map(|r| r["graph_id"].as_str().unwrap().to_string())
            .collect();
        let excluded_ids: BTreeSet<String> = dropped.keys().map(|(_, g)| g.clone()).collect();
        assert_eq!(
            disagreed_ids
                .union(&failed_dropped)
                .cloned()
                .collect::<BTreeSet<_>>(),
            excluded_ids,
            "on {}",
            db.url
        );
        // Every record decided was compared once at least.
        let total = diff["agreed"].as_i64().unwrap() + disagreed.len() as i64 + failed.len() as i64;
        assert!(
            total >= (kept.len() + dropped.len()) as i64,
            "{total} {diff}"
        );
        // The same diff, read only, through the API for the org's admin.
        let (status, body) = serve
            .api(
                Method::GET,
                "/api/orgs/acme/plugins/exclusion/shadow?limit=100000",
                Some(TOKEN),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let api: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(api["disagreed"], diff["disagreed"]);
        assert_eq!(api["records"].as_array().unwrap().len(), records.len());
        // The service's metrics counted the same comparisons as they happened.
        let (status, metrics) = serve.api(Method::GET, "/metrics", Some(TOKEN)).await;
        assert_eq!(status, 200, "{metrics}");
        for outcome in ["agreed", "disagreed", "failed"] {
            let counted: f64 = metrics
                .lines()
                .filter(|l| {
                    l.starts_with("m365sync_plugin_shadow_records_total{")
                        && l.contains("slot=\"exclusion\"")
                        && l.contains(&format!("outcome=\"{outcome}\""))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            assert_eq!(
                counted as i64,
                diff[outcome].as_i64().unwrap(),
                "{outcome}: {metrics}"
            );
        }
        let text = cli_ok(
            &cfg,
            &[
                "plugin",
                "shadow",
                "diff",
                "--org",
                "acme",
                "--slot",
                "exclusion",
            ],
        );
        assert!(
            text.contains(&format!(
                "agreed {}, disagreed {}, shadow failed {}",
                diff["agreed"],
                disagreed.len(),
                failed.len()
            )),
            "{text}"
        );

        // Promote under load: a run of new mail is under way (a slow simulator), half of it
        // mail the built-in drops and the candidate keeps.
        const NEW: usize = 60;
        for i in 0..NEW {
            let from = if i % 2 == 0 {
                "news@marketweekly.example"
            } else {
                "client@acme-holdings.example"
            };
            s.ctl(
                Method::POST,
                "deliver",
                json!({"from": from, "to": [upn], "subject": format!("batch {i}")}),
            )
            .await;
        }
        s.sim.set_faults(FaultConfig {
            latency_ms: 250,
            ..FaultConfig::default()
        });
        let runs_before = finished_runs(&db.store, &tenant).await.len();
        let (status, body) = serve
            .api(Method::POST, "/api/tenants/acme/main/sync", Some(TOKEN))
            .await;
        assert_eq!(status, 202, "{body}");
        let decided_new = || async {
            let a = stored(&pool).await.len() - kept.len();
            let b = exclusions(&pool).await.len() - dropped.len();
            a + b
        };
        wait_for(120, "some of the new mail to be decided", || async {
            decided_new().await >= 10
        })
        .await;
        let out = cli_ok(
            &cfg,
            &["plugin", "promote", "--org", "acme", "--slot", "exclusion"],
        );
        assert!(out.contains("promoted hostile 0.0.1"), "{out}");
        assert!(
            finished_runs(&db.store, &tenant).await.len() == runs_before,
            "the run ended before the promotion; slow the simulator down"
        );
        let history = cli_ok(
            &cfg,
            &["plugin", "history", "--org", "acme", "--slot", "exclusion"],
        );
        assert!(
            history.contains("promote") && history.contains("promoted from shadow"),
            "{history}"
        );
        // The shadow is gone with its diff.
        let (ok, _, err) = cli(
            &cfg,
            &[
                "plugin",
                "shadow",
                "diff",
                "--org",
                "acme",
                "--slot",
                "exclusion",
            ],
        );
        assert!(
            !ok && err.contains("no exclusion shadow runs for org acme"),
            "{err}"
        );
        wait_for(180, "the run under which it was promoted", || {
            let (store, tenant) = (&db.store, &tenant);
            async move { finished_runs(store, tenant).await.len() > runs_before }
        })
        .await;
        s.sim.set_faults(FaultConfig::default());
        let after = stored(&pool).await;
        let after_dropped = exclusions(&pool).await;
        let hostile = digest_of(HOSTILE);
        // Each new record was decided once, by one of the two versions: the built-in (which
        // drops the marketing half) before the swap, the candidate (which keeps all) after.
        let new_kept: Vec<&(String, String)> = after
            .iter()
            .filter(|(k, _)| !kept.contains_key(*k))
            .map(|(_, v)| v)
            .collect();
        let new_dropped: Vec<&(String, String)> = after_dropped
            .iter()
            .filter(|(k, _)| !dropped.contains_key(*k))
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            new_kept.len() + new_dropped.len(),
            NEW,
            "none lost, none twice"
        );
        for (_, d) in &new_dropped {
            assert!(d.ends_with(&live), "only the built-in drops: {d}");
        }
        let by_candidate = new_kept
            .iter()
            .filter(|(d, _)| exclusion_digest(d) == hostile)
            .count();
        for (d, subject) in &new_kept {
            let by = exclusion_digest(d);
            assert!(by == hostile || by == live, "{subject}: {d}");
        }
        assert!(
            by_candidate > 0 && by_candidate < NEW,
            "the promotion was used mid-run: {by_candidate} of {NEW} by the candidate"
        );
        // Marketing mail the candidate decided is kept: it is the version in force now.
        assert!(
            new_kept
                .iter()
                .any(|(d, subject)| exclusion_digest(d) == hostile
                    && subject
                        .trim_start_matches("batch ")
                        .parse::<usize>()
                        .unwrap()
                        % 2
                        == 0),
            "{new_kept:?}"
        );
        // Nothing decided before the promotion was decided again, none lost, none twice.
        for (k, v) in &kept {
            assert_eq!(after.get(k), Some(v));
        }
        for (k, v) in &dropped {
            assert_eq!(after_dropped.get(k), Some(v));
        }
        assert_matches_truth(&db, &s, &ids).await;
        let (clean, stderr) = serve.terminate();
        assert!(clean, "{stderr}");
        pool.close().await;
        db.drop_db().await;
    }
}

/// A mapping shadow on a running service: the CRM records stored are the mapping in force's,
/// and the diff lists each kept email and event with both records (the candidate's
/// `[remapped]` subject against the stored one), the record the candidate failed on as its
/// failure, and the metrics count the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_shadow_on_a_running_service_maps_nothing_and_lists_each_difference() {
    for db in TestDb::both().await {
        let backend = db.store.backend() as u8;
        let s = slow_sim_with_events(15, 3, 5).await;
        let (tenant, ids) = declare(&db.store, &s).await;
        let upn = s.mailbox(0)["upn"].as_str().unwrap().to_string();
        s.ctl(
            Method::POST,
            "deliver",
            json!({"from": "client@acme-holdings.example", "to": [upn], "subject": "an unmappable offer"}),
        )
        .await;
        let dir = Scratch::new(&format!("mapping-shadow-{backend}"));
        let cfg = write_config(&dir.0, &db);
        let out = cli_ok(
            &cfg,
            &[
                "plugin",
                "shadow",
                REMAP,
                "--org",
                "acme",
                "--slot",
                "mapping",
                "--no-cases",
            ],
        );
        assert!(
            out.contains("now runs as the mapping shadow of org acme"),
            "{out}"
        );
        let serve = Serve::start(&["--config", cfg.to_str().unwrap()], &dir.0.join("ready"));
        db.store.activate_tenant(tenant.id).await.unwrap();
        wait_for(180, "the first run to finish", || {
            let (store, tenant) = (&db.store, &tenant);
            async move { !finished_runs(store, tenant).await.is_empty() }
        })
        .await;
        assert_matches_truth(&db, &s, &ids).await;
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        // What is stored is the mapping in force's: no record carries the candidate's subject.
        let records: Vec<(String,)> = sqlx::query_as(
            "SELECT record FROM emails UNION ALL SELECT record FROM events WHERE origin = 'microsoft'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(!records.is_empty());
        assert!(
            records.iter().all(|(r,)| !r.contains("[remapped]")),
            "{records:?}"
        );
        // Every kept email copy and event, by Graph id.
        let kept: BTreeSet<String> = sqlx::query_as::<_, (String,)>(
            "SELECT graph_id FROM email_mailboxes WHERE removed = 0
             UNION SELECT graph_id FROM events WHERE origin = 'microsoft' AND deleted = 0 AND graph_id IS NOT NULL",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(g,)| g)
        .collect();
        let events: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE origin = 'microsoft' AND deleted = 0",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(events > 0, "the calendars were synced");

        let diff: Value = serde_json::from_str(&cli_ok(
            &cfg,
            &[
                "plugin", "shadow", "diff", "--org", "acme", "--slot", "mapping", "--limit",
                "100000", "--json",
            ],
        ))
        .unwrap();
        let rows = diff["records"].as_array().unwrap();
        assert_eq!(
            diff["agreed"], 0,
            "the candidate maps every record otherwise: {diff}"
        );
        let failed: Vec<&Value> = rows.iter().filter(|r| r["outcome"] == "failed").collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0]["subject"], "an unmappable offer");
        assert!(
            failed[0]["shadow"]
                .as_str()
                .unwrap()
                .contains("remap refuses"),
            "{:?}",
            failed[0]
        );
        let listed: BTreeSet<String> = rows
            .iter()
            .map(|r| r["graph_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, kept, "exactly the kept records, on {}", db.url);
        assert!(rows.iter().any(|r| r["record_kind"] == "event"), "{diff}");
        for r in rows.iter().filter(|r| r["outcome"] == "disagreed") {
            let live: Value = serde_json::from_str(r["live"].as_str().unwrap()).unwrap();
            let shadow: Value = serde_json::from_str(r["shadow"].as_str().unwrap()).unwrap();
            assert_eq!(live["subject"], r["subject"], "{r}");
            assert_eq!(
                shadow["subject"],
                format!("[remapped] {}", r["subject"].as_str().unwrap()),
                "{r}"
            );
        }
        // The metrics counted the same comparisons.
        let (status, metrics) = serve.api(Method::GET, "/metrics", Some(TOKEN)).await;
        assert_eq!(status, 200, "{metrics}");
        let counted = |outcome: &str| -> i64 {
            metrics
                .lines()
                .filter(|l| {
                    l.starts_with("m365sync_plugin_shadow_records_total{")
                        && l.contains("slot=\"mapping\"")
                        && l.contains("plugin=\"remap\"")
                        && l.contains(&format!("outcome=\"{outcome}\""))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as i64
        };
        assert_eq!(
            counted("disagreed"),
            diff["disagreed"].as_i64().unwrap(),
            "{metrics}"
        );
        assert_eq!(counted("failed"), 1, "{metrics}");
        assert_eq!(counted("agreed"), 0, "{metrics}");
        let (clean, stderr) = serve.terminate();
        assert!(clean, "{stderr}");
        pool.close().await;
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_compares_a_candidate_over_stored_mail_without_a_service() {
    for db in TestDb::both().await {
        let backend = db.store.backend() as u8;
        let s = crate::support::TestSim::start(crate::support::small()).await;
        let (_tenant, _ids) = declare(&db.store, &s).await;
        let dir = Scratch::new(&format!("replay-{backend}"));
        let cfg = write_config(&dir.0, &db);
        // In force: the hostile component, which keeps everything (no trap subjects here).
        cli_ok(
            &cfg,
            &[
                "plugin",
                "install",
                HOSTILE,
                "--org",
                "acme",
                "--slot",
                "exclusion",
                "--no-cases",
            ],
        );
        let (ok, out, err) = cli(&cfg, &["sync", "run", "--org", "acme", "--tenant", "main"]);
        assert!(ok, "{out}{err}");
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let marketing: BTreeSet<String> = sqlx::query_as::<_, (String,)>(
            "SELECT em.graph_id FROM email_mailboxes em JOIN emails e ON e.id = em.email_id WHERE e.sender LIKE '%@marketweekly.example'",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(g,)| g)
        .collect();
        assert!(!marketing.is_empty(), "the simulator sends marketing mail");
        let copies: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM email_mailboxes")
            .fetch_one(&pool)
            .await
            .unwrap();
        let events: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE origin = 'microsoft' AND deleted = 0 AND graph_id IS NOT NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        // The candidate: the default exclusion policy, over the stored mail.
        let report: Value = serde_json::from_str(&cli_ok(
            &cfg,
            &[
                "plugin",
                "replay",
                "builtin:exclusion",
                "--org",
                "acme",
                "--slot",
                "exclusion",
                "--since",
                "3650d",
                "--json",
            ],
        ))
        .unwrap();
        assert_eq!(report["emails"], copies, "{report}");
        assert_eq!(report["events"], events, "{report}");
        assert!(events > 0, "the simulator's calendars have events");
        assert_eq!(report["records"], copies + events, "{report}");
        assert_eq!(report["failed"], 0, "{report}");
        assert_eq!(report["tenants"], json!(["main"]));
        let diffs = report["diffs"].as_array().unwrap();
        assert_eq!(report["disagreed"], diffs.len() as i64);
        assert_eq!(
            report["agreed"].as_i64().unwrap() + diffs.len() as i64,
            copies + events,
            "{report}"
        );
        for d in diffs {
            assert_eq!(d["live"], "keep", "{d}");
            assert_eq!(d["shadow"], "drop", "{d}");
        }
        // The org rule's drops are exactly the stored marketing mail.
        let by_rule: BTreeSet<String> = diffs
            .iter()
            .filter(|d| d["record_kind"] == "email")
            .filter(|d| d["shadow_rule"].as_str().unwrap().starts_with("org-"))
            .map(|d| d["graph_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(by_rule, marketing, "on {}", db.url);
        let text = cli_ok(
            &cfg,
            &[
                "plugin",
                "replay",
                "builtin:exclusion",
                "--org",
                "acme",
                "--slot",
                "exclusion",
                "--since",
                "3650d",
            ],
        );
        assert!(
            text.contains(&format!("disagreed {}", diffs.len())) && text.contains("no body"),
            "{text}"
        );
        assert!(
            text.contains(&format!("{copies} stored email(s) and {events} event(s)")),
            "{text}"
        );
        // A mapping candidate that maps as the one in force (the builtin tagged as another
        // version): every kept record compared as JSON, none differs.
        let mapping = tagged_builtin(&dir.0, Kind::Mapping);
        let report: Value = serde_json::from_str(&cli_ok(
            &cfg,
            &[
                "plugin",
                "replay",
                mapping.to_str().unwrap(),
                "--org",
                "acme",
                "--slot",
                "mapping",
                "--since",
                "3650d",
                "--json",
            ],
        ))
        .unwrap();
        // Events too: each rebuilt from its CRM record maps back to that record.
        assert_eq!(report["agreed"], copies + events, "{report}");
        assert_eq!(report["disagreed"], 0, "{report}");
        assert_eq!(report["failed"], 0, "{report}");
        pool.close().await;
        db.drop_db().await;
    }
}

/// A builtin with a custom section: the same behaviour under another digest.
fn tagged_builtin(dir: &Path, kind: Kind) -> std::path::PathBuf {
    let mut wasm = builtin(kind).wasm.to_vec();
    let name = b"m365sync-test-shadow";
    wasm.push(0);
    wasm.push((1 + name.len() + 1) as u8);
    wasm.push(name.len() as u8);
    wasm.extend_from_slice(name);
    wasm.push(7);
    let path = dir.join(format!("tagged-{kind}.wasm"));
    std::fs::write(&path, wasm).unwrap();
    path
}

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

#[tokio::test]
async fn shadow_refusals_set_nothing_and_a_stale_page_is_not_counted() {
    for db in TestDb::both().await {
        let backend = db.store.backend() as u8;
        let t = db.store.upsert_tenant(&tenant("main")).await.unwrap();
        let dir = Scratch::new(&format!("shadow-refusals-{backend}"));
        let cfg = write_config(&dir.0, &db);
        let scope = PluginScope {
            org_id: t.org_id,
            tenant_id: None,
        };
        let refused = |args: &[&str], says: &str| {
            let (ok, out, err) = cli(&cfg, args);
            assert!(!ok, "{args:?} was accepted:\n{out}");
            assert!(err.contains(says), "{args:?}: {err}");
        };
        let shadow = |file: &'static str, extra: &'static [&'static str]| -> Vec<&'static str> {
            let mut a = vec![
                "plugin",
                "shadow",
                file,
                "--org",
                "acme",
                "--slot",
                "exclusion",
            ];
            a.extend_from_slice(extra);
            a
        };
        // A firm's component needs --cases or --no-cases, as an install does.
        refused(&shadow(HOSTILE, &[]), "needs the cases it must pass");
        // The version in force is no candidate.
        refused(
            &shadow("builtin:exclusion", &[]),
            "is already the exclusion plugin in force",
        );
        // Cases it fails: the hostile component keeps what the default policy drops.
        refused(&shadow(HOSTILE, &["--cases", CASES]), "cases differ");
        // Matching has no shadow runs.
        refused(
            &[
                "plugin",
                "shadow",
                HOSTILE,
                "--org",
                "acme",
                "--slot",
                "matching",
                "--no-cases",
            ],
            "exclusion and mapping slots",
        );
        refused(
            &["plugin", "promote", "--org", "acme", "--slot", "exclusion"],
            "nothing to promote",
        );
        refused(
            &[
                "plugin",
                "shadow",
                "stop",
                "--org",
                "acme",
                "--slot",
                "exclusion",
            ],
            "nothing to stop",
        );
        assert_eq!(db.store.shadow(scope, "exclusion").await.unwrap(), None);
        // Set, stop: the plugin in force is untouched and a page decided by the stopped
        // shadow changes nothing.
        cli_ok(&cfg, &shadow(HOSTILE, &["--no-cases"]));
        let set = db.store.shadow(scope, "exclusion").await.unwrap().unwrap();
        assert_eq!(set.digest, digest_of(HOSTILE));
        assert_eq!(set.cases, "installed with --no-cases: no cases were run");
        let page = ShadowPage {
            org_id: t.org_id,
            tenant_scope: 0,
            slot: "exclusion".into(),
            digest: set.digest.clone(),
            tenant_id: t.id,
            agreed: 3,
            diffs: vec![ShadowDiff {
                record_kind: "email".into(),
                graph_id: "g1".into(),
                subject: "s".into(),
                outcome: "disagreed".into(),
                live: "drop".into(),
                live_rule: "org-1".into(),
                shadow: "keep".into(),
                shadow_rule: String::new(),
            }],
        };
        assert!(db.store.record_shadow_page(&page).await.unwrap());
        let out = cli_ok(
            &cfg,
            &[
                "plugin",
                "shadow",
                "diff",
                "--org",
                "acme",
                "--slot",
                "exclusion",
            ],
        );
        assert!(
            out.contains("agreed 3, disagreed 1, shadow failed 0") && out.contains("drop (org-1)"),
            "{out}"
        );
        // `plugin list` shows the shadow beside the version in force: at the org's level and
        // for the tenant that inherits it, with its counts.
        let listed: Value = serde_json::from_str(&cli_ok(
            &cfg,
            &["plugin", "list", "--org", "acme", "--json"],
        ))
        .unwrap();
        let row = |level: &str, slot: &str| {
            listed
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["level"] == level && r["slot"] == slot)
                .unwrap()
                .clone()
        };
        let org_row = row("org default", "exclusion");
        assert_eq!(org_row["shadow"]["digest"], digest_of(HOSTILE), "{org_row}");
        assert_eq!(org_row["shadow"]["source"], "set here");
        assert_eq!(org_row["shadow"]["disagreed"], 1);
        let tenant_row = row("tenant main", "exclusion");
        assert_eq!(tenant_row["shadow"]["source"], "org's", "{tenant_row}");
        assert_eq!(row("tenant main", "mapping")["shadow"], Value::Null);
        let table = cli_ok(&cfg, &["plugin", "list", "--org", "acme"]);
        assert!(table.contains("3 agreed, 1 disagreed, 0 failed"), "{table}");
        let out = cli_ok(
            &cfg,
            &[
                "plugin",
                "shadow",
                "stop",
                "--org",
                "acme",
                "--slot",
                "exclusion",
            ],
        );
        assert!(out.contains("the plugin in force is unchanged"), "{out}");
        assert!(!db.store.record_shadow_page(&page).await.unwrap());
        // The history says a shadow ran and what it came to; a rollback does not count it as
        // a version that was in force.
        let history = db.store.plugin_history(scope, "exclusion").await.unwrap();
        let actions: Vec<(&str, &str)> = history
            .iter()
            .map(|h| (h.action.as_str(), h.cases.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("shadow", "installed with --no-cases: no cases were run"),
                ("shadow stop", "3 agreed, 1 disagreed, 0 failed"),
            ]
        );
        refused(
            &["plugin", "rollback", "--org", "acme", "--slot", "exclusion"],
            "nothing to roll back to",
        );
        assert_eq!(
            db.store
                .active_plugin(t.org_id, t.id, "exclusion")
                .await
                .unwrap(),
            None
        );
        db.drop_db().await;
    }
}
