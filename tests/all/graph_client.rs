//! The Graph client against the simulator: precise auth errors, secret rotation, a full delta
//! round under throttling and faults without one violation, a token expiring mid-round, and
//! per-mailbox errors.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use m365sync_graph::delta::initial_url;
use m365sync_graph::{
    http_client, AppCredentials, AuthError, Budget, ClientConfig, GraphClient, GraphError,
    TokenCache,
};
use reqwest::Method;
use serde_json::json;

use crate::support::{small, TestSim};

fn creds(s: &TestSim, secrets: Vec<String>) -> AppCredentials {
    AppCredentials {
        tenant_name: "main".into(),
        authority: s.base.clone(),
        ms_tenant: s.tenant_id.clone(),
        client_id: s.client_id.clone(),
        secrets,
    }
}

pub fn client(s: &TestSim, secrets: Vec<String>) -> GraphClient {
    paced_client(s, secrets, Some(Budget::OUTLOOK))
}

fn paced_client(s: &TestSim, secrets: Vec<String>, budget: Option<Budget>) -> GraphClient {
    let http = http_client(None).unwrap();
    let tokens = Arc::new(TokenCache::new(creds(s, secrets), http.clone()));
    GraphClient::new(
        http,
        tokens,
        ClientConfig {
            graph_url: s.graph.clone(),
            base_backoff: Duration::from_millis(20),
            mailbox_budget: budget,
            ..ClientConfig::default()
        },
    )
}

async fn full_round(
    c: &GraphClient,
    mailbox: &str,
    folder: &str,
    page: usize,
) -> (Vec<String>, String) {
    let mut url = initial_url(c.graph_url(), mailbox, folder, None);
    let mut ids = Vec::new();
    loop {
        let p = c.delta_page(mailbox, &url, page).await.unwrap();
        ids.extend(
            m365sync_graph::delta::values(&p.items)
                .iter()
                .filter(|i| i.get("@removed").is_none())
                .map(|i| i["id"].as_str().unwrap().to_string()),
        );
        match (p.next_link, p.delta_link) {
            (Some(n), _) => url = n,
            (None, Some(d)) => return (ids, d),
            _ => unreachable!(),
        }
    }
}

/// Every Graph and token request carries a fresh `client-request-id` (the simulator counts
/// those without one), Graph's answer names it back with its `request-id`, and a failed
/// request's error carries and shows both, for a support case.
#[tokio::test]
async fn every_request_carries_a_client_request_id_and_a_failure_names_both_ids() {
    let s = TestSim::start(small()).await;
    let before = s.ctl(Method::GET, "stats", json!({})).await;
    let c = client(&s, vec![s.secret.clone()]);
    let upn = s.mailbox(0)["upn"].as_str().unwrap().to_string();
    let (ids, _) = full_round(&c, &upn, "inbox", 5).await;
    assert!(!ids.is_empty());
    let err = c
        .get(
            "ghost@contoso.example",
            "users/ghost@contoso.example/mailFolders/inbox",
            None,
        )
        .await
        .unwrap_err();
    let after = s.ctl(Method::GET, "stats", json!({})).await;
    let sent =
        after["graph_requests"].as_u64().unwrap() - before["graph_requests"].as_u64().unwrap();
    assert!(sent >= 2, "{after}");
    assert!(after["token_requests"].as_u64() > before["token_requests"].as_u64());
    assert_eq!(
        after["missing_client_request_id"], before["missing_client_request_id"],
        "no Graph or token request went without a client-request-id"
    );
    let GraphError::NotFound { ids, .. } = &err else {
        panic!("{err:?}");
    };
    let request_id = ids.request_id.as_deref().expect("Graph's request-id");
    assert_eq!(ids.client_request_id.len(), 36, "a UUID: {ids:?}");
    assert_ne!(request_id, ids.client_request_id);
    let text = err.to_string();
    assert!(
        text.contains(&format!("request-id {request_id}"))
            && text.contains(&format!("client-request-id {}", ids.client_request_id)),
        "{text}"
    );
    // Each request has ids of its own.
    let again = c
        .get(
            "ghost@contoso.example",
            "users/ghost@contoso.example/mailFolders/inbox",
            None,
        )
        .await
        .unwrap_err();
    let other = again.request_ids().unwrap();
    assert_ne!(other.client_request_id, ids.client_request_id);
    assert_ne!(other.request_id, ids.request_id);
}

#[test]
fn route_templates_keep_graph_words_and_hide_ids() {
    use m365sync_graph::client::route_template;
    assert_eq!(
        route_template("https://graph.microsoft.com/v1.0/users/a@b.example/mailFolders/AAMkAD%3D/messages/delta?$deltatoken=xyz"),
        "/v1.0/users/{id}/mailFolders/{id}/messages/delta"
    );
    assert_eq!(
        route_template("http://127.0.0.1:9/v1.0/users/u1/mailFolders/inbox/messages/AAx=/attachments/AAy/$value"),
        "/v1.0/users/{id}/mailFolders/inbox/messages/{id}/attachments/{id}/$value"
    );
}

#[tokio::test]
async fn auth_errors_are_named_precisely() {
    let s = TestSim::start(small()).await;
    let wrong = TokenCache::new(creds(&s, vec!["not-it".into()]), http_client(None).unwrap());
    let err = wrong.token().await.unwrap_err();
    assert!(
        matches!(err, AuthError::WrongSecret { code: 7000215, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("tenant main") && !err.to_string().contains("not-it"),
        "names the tenant, never the secret: {err}"
    );
    let unknown = TokenCache::new(
        AppCredentials {
            client_id: "00000000-0000-0000-0000-000000000000".into(),
            ..creds(&s, vec!["x".into()])
        },
        http_client(None).unwrap(),
    );
    assert!(matches!(
        unknown.token().await.unwrap_err(),
        AuthError::UnknownApp { .. }
    ));
    let no_tenant = TokenCache::new(
        AppCredentials {
            ms_tenant: "nowhere.example".into(),
            ..creds(&s, vec!["x".into()])
        },
        http_client(None).unwrap(),
    );
    assert!(matches!(
        no_tenant.token().await.unwrap_err(),
        AuthError::UnknownTenant { .. }
    ));
    let none = TokenCache::new(creds(&s, vec![]), http_client(None).unwrap());
    assert!(matches!(
        none.token().await.unwrap_err(),
        AuthError::NoSecret { .. }
    ));
    let down = TokenCache::new(
        AppCredentials {
            authority: "http://127.0.0.1:9".into(),
            ..creds(&s, vec!["x".into()])
        },
        http_client(None).unwrap(),
    );
    assert!(down.token().await.unwrap_err().is_transient());
}

#[tokio::test]
async fn a_revoked_newest_secret_falls_back_to_an_older_valid_one() {
    let s = TestSim::start(small()).await;
    let added = s
        .ctl(
            Method::POST,
            "secrets/add",
            json!({"tenant": s.tenant_id, "client_id": s.client_id}),
        )
        .await;
    let newest = added["secret"].as_str().unwrap().to_string();
    s.ctl(
        Method::POST,
        "secrets/revoke",
        json!({"tenant": s.tenant_id, "client_id": s.client_id, "secret": newest}),
    )
    .await;
    let cache = TokenCache::new(
        creds(&s, vec![newest, s.secret.clone()]),
        http_client(None).unwrap(),
    );
    assert!(cache.token().await.is_ok());
}

#[tokio::test]
async fn a_full_round_survives_a_storm_without_a_violation() {
    let s = TestSim::start(small()).await;
    s.ctl(Method::PUT, "faults", json!({"rate_429": 0.15, "rate_503": 0.1, "rate_504": 0.05, "rate_reset": 0.05, "rate_malformed": 0.05, "latency_ms": 5, "seed": 3})).await;
    let c = client(&s, vec![s.secret.clone()]);
    let mb = s.mailbox(1);
    let upn = mb["upn"].as_str().unwrap();
    // Several folders at once on one mailbox: the client must keep to 4 in flight.
    let folders = [
        "inbox",
        "sentitems",
        "archive",
        "junkemail",
        "drafts",
        "deleteditems",
    ];
    let r = tokio::join!(
        full_round(&c, upn, folders[0], 3),
        full_round(&c, upn, folders[1], 3),
        full_round(&c, upn, folders[2], 3),
        full_round(&c, upn, folders[3], 3),
        full_round(&c, upn, folders[4], 3),
        full_round(&c, upn, folders[5], 3),
    );
    let rounds = [r.0, r.1, r.2, r.3, r.4, r.5];
    for (folder, (ids, _)) in folders.iter().zip(&rounds) {
        let truth: HashSet<String> = mb["folders"][folder]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            ids.iter().cloned().collect::<HashSet<_>>(),
            truth,
            "{folder}"
        );
    }
    let stats = s.ctl(Method::GET, "stats", json!({})).await;
    assert_eq!(stats["violations"], 0, "{stats}");
    assert!(
        stats["injected_429"].as_u64().unwrap() > 0 && c.stats().retries > 0,
        "the storm happened: {stats}"
    );
}

/// A backlog three times a mailbox's budget: a client paced to the budget spreads it over the
/// windows and is refused (almost) never, where one that only reacts to 429s is refused every
/// window; both finish with every message.
#[tokio::test]
async fn a_client_paced_to_the_mailbox_budget_is_not_refused_where_an_unpaced_one_is() {
    let s = TestSim::start(small()).await;
    let (window_secs, limit) = (2u64, 40u64);
    s.ctl(
        Method::PUT,
        "throttle",
        json!({"window_secs": window_secs, "limit": limit, "concurrency": 4}),
    )
    .await;
    let budget = Budget {
        requests: limit as u32,
        window: Duration::from_secs(window_secs),
    };
    let mut refused = Vec::new();
    for (i, budget) in [Some(budget), None].into_iter().enumerate() {
        let c = paced_client(&s, vec![s.secret.clone()], budget);
        // A mailbox of its own per client, so the two budgets do not mix.
        let mb = s.mailbox(i + 1);
        let upn = mb["upn"].as_str().unwrap().to_string();
        let before = s.ctl(Method::GET, "stats", json!({})).await;
        let mut requests = 0;
        let mut got = HashSet::new();
        // Three budgets' worth of pages (40 per window): one-message pages of the inbox, again
        // and again.
        while requests < 3 * limit {
            let (ids, _) = full_round(&c, &upn, "inbox", 1).await;
            requests += ids.len() as u64 + 1;
            got.extend(ids);
        }
        let after = s.ctl(Method::GET, "stats", json!({})).await;
        let truth: HashSet<String> = mb["folders"]["inbox"]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, truth, "client {i} read every message");
        let n = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
        refused.push(n("throttled_budget"));
    }
    // One request on the wire at a window's edge may land in the next window: at most one a
    // window, three windows.
    assert!(refused[0] <= 3, "paced client refused {} times", refused[0]);
    assert!(
        refused[1] >= 2 && refused[1] > refused[0],
        "an unpaced client is refused every window: {refused:?}"
    );
}

#[tokio::test]
async fn a_token_expiring_mid_round_is_renewed() {
    let s = TestSim::start(small()).await;
    let c = client(&s, vec![s.secret.clone()]);
    let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let first = c
        .delta_page(&upn, &initial_url(c.graph_url(), &upn, "inbox", None), 5)
        .await
        .unwrap();
    s.ctl(Method::POST, "tokens/expire", json!({})).await;
    let second = c
        .delta_page(&upn, first.next_link.as_deref().unwrap(), 5)
        .await
        .unwrap();
    assert!(!second.items.is_empty());
    assert_eq!(c.stats().token_renewals, 1);
    // A renewal is not one of Graph's faults: it spends none of the request's attempts.
    assert_eq!(c.stats().retries, 0);
}

#[tokio::test]
async fn mailbox_errors_stay_with_their_mailbox() {
    let s = TestSim::start(small()).await;
    let c = client(&s, vec![s.secret.clone()]);
    let err = c
        .delta_page(
            "nobody@contoso.example",
            &initial_url(c.graph_url(), "nobody@contoso.example", "inbox", None),
            5,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, GraphError::NotFound { .. })
            && err.is_mailbox_scoped()
            && err.to_string().contains("nobody@contoso.example"),
        "{err}"
    );
    let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let first = c
        .delta_page(&upn, &initial_url(c.graph_url(), &upn, "inbox", None), 500)
        .await
        .unwrap();
    s.ctl(Method::POST, "sync-state/expire", json!({"user": upn}))
        .await;
    let gone = c
        .delta_page(&upn, first.delta_link.as_deref().unwrap(), 5)
        .await
        .unwrap_err();
    assert!(
        matches!(
            gone,
            GraphError::SyncStateNotFound {
                location: Some(_),
                ..
            }
        ),
        "{gone:?}"
    );
    // Permanent server trouble ends in a clear error after the attempts, not a hang.
    s.ctl(Method::PUT, "faults", json!({"rate_504": 1.0})).await;
    let tired = c
        .delta_page(&upn, &initial_url(c.graph_url(), &upn, "inbox", None), 5)
        .await
        .unwrap_err();
    assert!(
        matches!(
            tired,
            GraphError::Exhausted {
                status: 504,
                attempts: 8,
                ..
            }
        ),
        "{tired:?}"
    );
}

#[tokio::test]
async fn since_limits_the_first_round_to_the_commencement_date() {
    let s = TestSim::start(small()).await;
    let c = client(&s, vec![s.secret.clone()]);
    let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let (all, _) = full_round(&c, &upn, "inbox", 50).await;
    let since = chrono::Utc::now() - chrono::Duration::days(60);
    let mut url = initial_url(c.graph_url(), &upn, "inbox", Some(since));
    let mut recent = 0;
    loop {
        let p = c.delta_page(&upn, &url, 50).await.unwrap();
        for i in &m365sync_graph::delta::values(&p.items) {
            let at = chrono::DateTime::parse_from_rfc3339(i["receivedDateTime"].as_str().unwrap())
                .unwrap();
            assert!(at >= since, "only mail since the commencement date");
            recent += 1;
        }
        match p.next_link {
            Some(n) => url = n,
            None => break,
        }
    }
    assert!(
        recent > 0 && recent < all.len(),
        "{recent} of {}",
        all.len()
    );
}
