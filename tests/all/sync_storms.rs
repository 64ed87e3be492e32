//! Graph at its worst, end to end: throttling (429 with Retry-After), 503 and 504 answers,
//! dropped connections, and access tokens revoked mid-round. The run ends with every message
//! stored, the simulator counts no breach of its limits (never more than 4 requests in flight
//! per mailbox, the budget never spent), and the token was renewed; on SQLite and PostgreSQL.

use std::time::Duration;

use m365sync::sync::run::run_tenant;
use m365sync_sim::config::FaultConfig;
use reqwest::Method;
use serde_json::json;

use crate::support::{small, TestDb, TestSim};
use crate::sync_email::{assert_matches_truth, declare, env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_storms_and_revoked_tokens_end_with_all_mail_and_no_breach() {
    for db in TestDb::both().await {
        let s = TestSim::start(small()).await;
        let (tenant, ids) = declare(&db.store, &s).await;
        s.sim.set_faults(FaultConfig {
            rate_429: 0.12,
            rate_503: 0.08,
            rate_504: 0.04,
            rate_reset: 0.03,
            latency_ms: 20,
            seed: 7,
            ..FaultConfig::default()
        });
        // Revoke every access token now and then while the round runs (a 401 mid-round).
        let revoker = {
            let (http, base) = (s.http.clone(), s.base.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    let _ = http
                        .post(format!("{base}/_sim/tokens/expire"))
                        .json(&json!({}))
                        .send()
                        .await;
                }
            })
        };
        let mut report = run_tenant(&env(&db.store), &tenant, None, "manual")
            .await
            .unwrap();
        // At 27% of requests failing, a mailbox can meet 8 failed attempts in a row (about one
        // request in 30,000): it then says so, as an error naming Graph's answer, and the next
        // run (the scheduler's, or a retry) carries on from its cursors. What must never
        // happen is a run that says nothing while mail is missing, or a second run that is
        // still short.
        if !report.mailbox_errors.is_empty() {
            for (mailbox, error) in &report.mailbox_errors {
                assert!(
                    error.contains("after 8 attempts"),
                    "{mailbox}: not an exhausted retry: {error}"
                );
            }
            report = run_tenant(&env(&db.store), &tenant, None, "retry")
                .await
                .unwrap();
        }
        revoker.abort();
        assert!(
            report.mailbox_errors.is_empty(),
            "{:?}",
            report.mailbox_errors
        );
        assert_eq!(report.failed, 0);
        assert_matches_truth(&db, &s, &ids).await;
        let stats = s.ctl(Method::GET, "stats", json!({})).await;
        assert_eq!(stats["violations"], 0, "{stats}");
        let n = |k: &str| stats[k].as_u64().unwrap();
        assert!(
            n("injected_429") > 0 && n("injected_503") > 0 && n("injected_reset") > 0,
            "the storm never happened: {stats}"
        );
        assert!(
            n("token_requests") > 1,
            "the token was never renewed: {stats}"
        );
        db.drop_db().await;
    }
}
