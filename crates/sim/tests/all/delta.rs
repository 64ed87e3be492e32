//! Message delta: paging, links, ground truth, `@removed`, ImmutableId, replays, 410, filters.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::json;

use crate::client::{enc, ids, removed, small, TestSim};

const IMMUTABLE: &str = r#"odata.maxpagesize=7, IdType="ImmutableId""#;

#[tokio::test]
async fn initial_round_pages_to_exactly_the_ground_truth() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let mb = s.mailbox(1);
    let url = format!(
        "{}/users/{}/mailFolders/Inbox/messages/delta()",
        s.graph,
        enc(mb["upn"].as_str().unwrap())
    );
    let (items, delta_link, pages) = s.delta_round(&url, &token, IMMUTABLE).await;
    let expected: HashSet<String> = mb["folders"]["inbox"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let got: HashSet<String> = ids(&items).into_iter().collect();
    assert_eq!(got, expected);
    assert_eq!(pages, expected.len().div_ceil(7).max(1));
    assert!(
        delta_link.starts_with(&s.base) && delta_link.contains("$deltatoken="),
        "{delta_link}"
    );
    assert_eq!(items[0]["@odata.type"], "#microsoft.graph.message");
    assert!(items[0]["@odata.etag"]
        .as_str()
        .unwrap()
        .starts_with("W/\""));
}

#[tokio::test]
async fn default_page_size_is_ten_and_links_are_absolute() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let mb = s.mailbox(1);
    let url = format!(
        "{}/users/{}/mailFolders/inbox/messages/delta",
        s.graph,
        mb["id"].as_str().unwrap()
    );
    let (status, _, page) = s.get(&url, &token, "").await;
    assert_eq!(status, 200);
    assert_eq!(page["value"].as_array().unwrap().len(), 10);
    assert!(page["@odata.nextLink"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/v1.0/users/", s.base)));
    assert_eq!(
        page["@odata.context"],
        format!("{}/$metadata#Collection(message)", s.graph)
    );
}

#[tokio::test]
async fn next_round_sees_new_mail_and_deletions() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let mb = s.mailbox(1);
    let upn = mb["upn"].as_str().unwrap().to_string();
    let url = format!(
        "{}/users/{}/mailFolders/inbox/messages/delta",
        s.graph,
        enc(&upn)
    );
    let (_, delta_link, _) = s.delta_round(&url, &token, IMMUTABLE).await;
    let victim = mb["folders"]["inbox"]["ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let delivered = s
        .ctl(
            Method::POST,
            "deliver",
            json!({"from": "client@acme.example", "to": [upn], "subject": "New mail"}),
        )
        .await;
    let new_id = delivered["messages"][0]["id"].as_str().unwrap().to_string();
    s.ctl(
        Method::POST,
        "messages/delete",
        json!({"user": upn, "id": victim}),
    )
    .await;
    let (items, _, _) = s.delta_round(&delta_link, &token, IMMUTABLE).await;
    assert_eq!(ids(&items), vec![new_id]);
    assert_eq!(removed(&items), vec![victim]);
    let gone = items.iter().find(|i| i.get("@removed").is_some()).unwrap();
    assert_eq!(gone["@removed"]["reason"], "deleted");
}

#[tokio::test]
async fn immutable_ids_survive_a_move_and_default_ids_do_not() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let mb = s.mailbox(1);
    let upn = mb["upn"].as_str().unwrap().to_string();
    let inbox = format!(
        "{}/users/{}/mailFolders/inbox/messages/delta",
        s.graph,
        enc(&upn)
    );
    let archive = format!(
        "{}/users/{}/mailFolders/archive/messages/delta",
        s.graph,
        enc(&upn)
    );
    // Default ids: one round per folder, then a move.
    let (before, inbox_link, _) = s.delta_round(&inbox, &token, "").await;
    let (_, archive_link, _) = s.delta_round(&archive, &token, "").await;
    let (_, inbox_link_imm, _) = s.delta_round(&inbox, &token, IMMUTABLE).await;
    let (_, archive_link_imm, _) = s.delta_round(&archive, &token, IMMUTABLE).await;
    let moved_default = before[0]["id"].as_str().unwrap().to_string();
    let moved = s
        .ctl(
            Method::POST,
            "messages/move",
            json!({"user": upn, "id": moved_default, "destination": "archive"}),
        )
        .await;
    let immutable = moved["id"].as_str().unwrap().to_string();

    let (out, _, _) = s.delta_round(&inbox_link, &token, "").await;
    assert_eq!(removed(&out), vec![moved_default.clone()]);
    let (arrived, _, _) = s.delta_round(&archive_link, &token, "").await;
    let new_default = ids(&arrived);
    assert_eq!(new_default.len(), 1);
    assert_ne!(
        new_default[0], moved_default,
        "a default id changes on a move"
    );
    let (status, _, _) = s
        .get(
            &format!(
                "{}/users/{}/messages/{}",
                s.graph,
                enc(&upn),
                enc(&moved_default)
            ),
            &token,
            "",
        )
        .await;
    assert_eq!(status, 404, "the old default id no longer resolves");

    let (out, _, _) = s.delta_round(&inbox_link_imm, &token, IMMUTABLE).await;
    assert_eq!(removed(&out), vec![immutable.clone()]);
    let (arrived, _, _) = s.delta_round(&archive_link_imm, &token, IMMUTABLE).await;
    assert_eq!(
        ids(&arrived),
        vec![immutable.clone()],
        "the immutable id is the same after the move"
    );
    let (status, _, msg) = s
        .get(
            &format!(
                "{}/users/{}/messages/{}",
                s.graph,
                enc(&upn),
                enc(&immutable)
            ),
            &token,
            IMMUTABLE,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(msg["id"], immutable.as_str());
}

#[tokio::test]
async fn expired_unknown_and_tampered_state_answer_410_with_location() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let mb = s.mailbox(1);
    let upn = mb["upn"].as_str().unwrap().to_string();
    let url = format!(
        "{}/users/{}/mailFolders/inbox/messages/delta",
        s.graph,
        enc(&upn)
    );
    let (_, delta_link, _) = s.delta_round(&url, &token, IMMUTABLE).await;
    let (status, _, body) = s.get(&format!("{url}?$deltatoken=bogus"), &token, "").await;
    assert_eq!(status, 410);
    assert_eq!(body["error"]["code"], "SyncStateNotFound");
    let tampered = delta_link.replace("$deltatoken=", "$deltatoken=x");
    assert_eq!(s.get(&tampered, &token, "").await.0, 410);
    s.ctl(Method::POST, "sync-state/expire", json!({"user": upn}))
        .await;
    let (status, headers, _) = s.get(&delta_link, &token, "").await;
    assert_eq!(status, 410);
    let location = headers["location"].to_str().unwrap().to_string();
    assert!(location.ends_with("$deltatoken="), "{location}");
    // Following the Location starts a full round again.
    let (items, _, _) = s.delta_round(&location, &token, IMMUTABLE).await;
    assert_eq!(
        ids(&items).len(),
        mb["folders"]["inbox"]["count"].as_u64().unwrap() as usize
    );
}

#[tokio::test]
async fn state_older_than_its_lifetime_answers_410() {
    let protocol = m365sync_sim::config::ProtocolConfig {
        sync_state_secs: 1,
        ..Default::default()
    };
    let s = TestSim::start_with(m365sync_sim::Origin::Generated(small()), protocol, None).await;
    let token = s.token().await;
    let url = format!(
        "{}/users/{}/mailFolders/inbox/messages/delta",
        s.graph,
        enc(s.mailbox(1)["upn"].as_str().unwrap())
    );
    let (_, delta_link, _) = s.delta_round(&url, &token, "").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(s.get(&delta_link, &token, "").await.0, 410);
}

#[tokio::test]
async fn select_and_filter_are_baked_into_the_links() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let mb = s.mailbox(1);
    let upn = mb["upn"].as_str().unwrap();
    let all = format!(
        "{}/users/{}/mailFolders/inbox/messages/delta",
        s.graph,
        enc(upn)
    );
    let (everything, _, _) = s.delta_round(&all, &token, IMMUTABLE).await;
    let mut dates: Vec<String> = everything
        .iter()
        .map(|m| m["receivedDateTime"].as_str().unwrap().to_string())
        .collect();
    dates.sort();
    let cut = &dates[dates.len() / 2];
    let url = format!(
        "{all}?$select=subject,from,internetMessageHeaders&$filter=receivedDateTime+ge+{cut}"
    );
    let (items, _, _) = s.delta_round(&url, &token, IMMUTABLE).await;
    assert_eq!(items.len(), dates.iter().filter(|d| *d >= cut).count());
    for item in &items {
        assert!(item.get("subject").is_some() && item.get("internetMessageHeaders").is_some());
        assert!(
            item.get("body").is_none(),
            "$select must be honoured on every page: {item}"
        );
    }
    let (status, _, body) = s
        .get(&format!("{all}?$filter=subject+eq+'x'"), &token, "")
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn replays_send_some_items_twice_in_a_round() {
    let s = TestSim::start(small()).await;
    s.ctl(Method::PUT, "faults", json!({"replay_rate": 0.5}))
        .await;
    let token = s.token().await;
    let mb = s.mailbox(1);
    let url = format!(
        "{}/users/{}/mailFolders/inbox/messages/delta",
        s.graph,
        enc(mb["upn"].as_str().unwrap())
    );
    let (items, _, _) = s
        .delta_round(&url, &token, r#"odata.maxpagesize=3, IdType="ImmutableId""#)
        .await;
    let all = ids(&items);
    let unique: HashSet<&String> = all.iter().collect();
    assert!(all.len() > unique.len(), "some items were replayed");
    assert_eq!(
        unique.len(),
        mb["folders"]["inbox"]["count"].as_u64().unwrap() as usize,
        "and none lost"
    );
}
