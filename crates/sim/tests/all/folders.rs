//! Folder trees: routes, writes, folder delta, nested folders with mail, listings with
//! `$filter`/`$orderby`/`$top`/`$count`, delivery into a folder, moves across folders.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{enc, ids, removed, small, TestSim};

const PREFER: &str = "odata.maxpagesize=4, IdType=\"ImmutableId\"";

fn upn(s: &TestSim, index: usize) -> String {
    s.mailbox(index)["upn"].as_str().unwrap().to_string()
}

/// POST a JSON body; asserts the status.
async fn post(s: &TestSim, token: &str, url: &str, body: Value, want: u16) -> Value {
    let (status, v) = s.send(Method::POST, url, token, Some(body)).await;
    assert_eq!(status, want, "POST {url}: {v}");
    v
}

async fn get(s: &TestSim, token: &str, url: &str) -> Value {
    let (status, _, v) = s.get(url, token, PREFER).await;
    assert_eq!(status, 200, "GET {url}: {v}");
    v
}

/// Calls `/_sim/folders/{op}` for mailbox `who`.
async fn folder_ctl(s: &TestSim, who: &str, op: &str, mut body: Value) -> Value {
    body["user"] = who.into();
    s.ctl(Method::POST, &format!("folders/{op}"), body).await
}

fn names(page: &Value) -> Vec<String> {
    page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["displayName"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn tree_routes_writes_and_errors_follow_graph() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let user = format!("{}/users/{}", s.graph, enc(&upn(&s, 1)));

    // The root's children, in display-name order; Sync Issues has its three children.
    let top = get(&s, &token, &format!("{user}/mailFolders")).await;
    assert_eq!(
        names(&top),
        [
            "Archive",
            "Conversation History",
            "Deleted Items",
            "Drafts",
            "Inbox",
            "Junk Email",
            "Outbox",
            "Sent Items",
            "Sync Issues"
        ]
    );
    assert!(top.get("@odata.nextLink").is_none());
    let root = get(&s, &token, &format!("{user}/mailFolders/msgfolderroot")).await;
    let inbox = get(&s, &token, &format!("{user}/mailFolders/inbox")).await;
    assert_eq!(inbox["parentFolderId"], root["id"]);
    assert_eq!(inbox["childFolderCount"], 0);
    assert!(inbox["sizeInBytes"].as_u64().unwrap() > 0);
    assert!(
        inbox.get("wellKnownName").is_none(),
        "v1.0 has no wellKnownName"
    );
    let sync = top["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["displayName"] == "Sync Issues")
        .unwrap();
    assert_eq!(sync["childFolderCount"], 3);

    // Create Inbox/Clients/Acme through both create routes; the name is taken once per parent.
    let clients = post(
        &s,
        &token,
        &format!("{user}/mailFolders/inbox/childFolders"),
        json!({"displayName": "Clients"}),
        201,
    )
    .await;
    assert_eq!(clients["parentFolderId"], inbox["id"]);
    let clients_id = clients["id"].as_str().unwrap();
    let acme = post(
        &s,
        &token,
        &format!("{user}/mailFolders/{clients_id}/childFolders"),
        json!({"DisplayName": "Acme"}),
        201,
    )
    .await;
    let dup = post(
        &s,
        &token,
        &format!("{user}/mailFolders/{clients_id}/childFolders"),
        json!({"displayName": "ACME"}),
        409,
    )
    .await;
    assert_eq!(dup["error"]["code"], "ErrorFolderExists");
    let projects = post(
        &s,
        &token,
        &format!("{user}/mailFolders"),
        json!({"displayName": "Projects"}),
        201,
    )
    .await;
    assert_eq!(projects["parentFolderId"], root["id"]);
    let hidden = post(
        &s,
        &token,
        &format!("{user}/mailFolders"),
        json!({"displayName": "Secret", "isHidden": true}),
        201,
    )
    .await;
    assert_eq!(hidden["isHidden"], true);
    let listed = names(&get(&s, &token, &format!("{user}/mailFolders?$top=50")).await);
    assert!(listed.contains(&"Projects".into()) && !listed.contains(&"Secret".into()));
    let all = names(
        &get(
            &s,
            &token,
            &format!("{user}/mailFolders?includeHiddenFolders=true&$top=50"),
        )
        .await,
    );
    assert!(all.contains(&"Secret".into()));
    post(
        &s,
        &token,
        &format!("{user}/mailFolders"),
        json!({"displayName": "Zebra"}),
        201,
    )
    .await;
    // Eleven visible folders at the root now: the default page is 10, then a nextLink.
    let page = get(&s, &token, &format!("{user}/mailFolders")).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 10);
    let next = get(&s, &token, page["@odata.nextLink"].as_str().unwrap()).await;
    assert_eq!(names(&next), ["Zebra"]);
    let by_name = get(
        &s,
        &token,
        &format!("{user}/mailFolders?$filter=displayName eq 'projects'"),
    )
    .await;
    assert_eq!(names(&by_name), ["Projects"]);

    // Nested addressing and $expand.
    let acme_id = acme["id"].as_str().unwrap();
    let nested = get(
        &s,
        &token,
        &format!("{user}/mailFolders/inbox/childFolders/{clients_id}/childFolders/{acme_id}"),
    )
    .await;
    assert_eq!(nested["displayName"], "Acme");
    let expanded = get(
        &s,
        &token,
        &format!("{user}/mailFolders/inbox?$expand=childFolders&$select=displayName"),
    )
    .await;
    assert_eq!(expanded["childFolders"][0]["displayName"], "Clients");
    assert!(expanded.get("totalItemCount").is_none(), "{expanded}");

    // Rename, move (with its subtree), copy, and what well-known folders refuse.
    let (status, renamed) = s
        .send(
            Method::PATCH,
            &format!("{user}/mailFolders/{acme_id}"),
            &token,
            Some(json!({"displayName": "Acme Holdings"})),
        )
        .await;
    assert_eq!(
        (status, renamed["displayName"].as_str()),
        (200, Some("Acme Holdings"))
    );
    let moved = post(
        &s,
        &token,
        &format!("{user}/mailFolders/{clients_id}/move"),
        json!({"DestinationId": projects["id"]}),
        201,
    )
    .await;
    assert_eq!(moved["parentFolderId"], projects["id"]);
    let into_itself = post(
        &s,
        &token,
        &format!("{user}/mailFolders/{clients_id}/move"),
        json!({"destinationId": acme_id}),
        400,
    )
    .await;
    assert_eq!(into_itself["error"]["code"], "ErrorInvalidRequest");
    let copy = post(
        &s,
        &token,
        &format!("{user}/mailFolders/{clients_id}/copy"),
        json!({"destinationId": "archive"}),
        201,
    )
    .await;
    assert_eq!(copy["childFolderCount"], 1);
    assert_ne!(copy["id"], clients["id"]);
    let refused = post(
        &s,
        &token,
        &format!("{user}/mailFolders/inbox/move"),
        json!({"destinationId": "archive"}),
        400,
    )
    .await;
    assert_eq!(refused["error"]["code"], "ErrorMoveDistinguishedFolder");
    let (status, refused) = s
        .send(
            Method::DELETE,
            &format!("{user}/mailFolders/inbox"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (400, Some("ErrorDeleteDistinguishedFolder"))
    );
    let (status, _) = s
        .send(
            Method::PATCH,
            &format!("{user}/mailFolders/sentitems"),
            &token,
            Some(json!({"displayName": "Outgoing"})),
        )
        .await;
    assert_eq!(status, 400);

    // DELETE moves a folder to Deleted Items; a second DELETE there removes it for good.
    let (status, _) = s
        .send(
            Method::DELETE,
            &format!("{user}/mailFolders/{clients_id}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let binned = get(&s, &token, &format!("{user}/mailFolders/{clients_id}")).await;
    let bin = get(&s, &token, &format!("{user}/mailFolders/deleteditems")).await;
    assert_eq!(binned["parentFolderId"], bin["id"]);
    let (status, _) = s
        .send(
            Method::DELETE,
            &format!("{user}/mailFolders/{clients_id}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, gone) = s
        .get(&format!("{user}/mailFolders/{acme_id}"), &token, "")
        .await;
    assert_eq!(
        (status, gone["error"]["code"].as_str()),
        (404, Some("ErrorItemNotFound"))
    );
    let (status, _, bad) = s
        .get(&format!("{user}/mailFolders/not-an-id"), &token, "")
        .await;
    assert_eq!(status, 400, "{bad}");
}

#[tokio::test]
async fn folder_delta_reports_creates_renames_moves_and_deletes_then_410() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let who = upn(&s, 1);
    let user = format!("{}/users/{}", s.graph, enc(&who));
    let (items, link, pages) = s
        .delta_round(&format!("{user}/mailFolders/delta"), &token, PREFER)
        .await;
    assert_eq!(pages, 3, "maxpagesize=4 over 12 folders: {items:?}");
    let first: Vec<&str> = items
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(items.len(), 12, "{first:?}");
    assert!(first.contains(&"Conflicts") && !first.contains(&"Top of Information Store"));
    assert!(items.iter().all(|f| f["parentFolderId"].is_string()));
    assert_eq!(items[0]["@odata.type"], "#microsoft.graph.mailFolder");

    // Nothing changed: an empty round.
    let (none, link, _) = s.delta_round(&link, &token, PREFER).await;
    assert!(none.is_empty(), "{none:?}");

    let acme = folder_ctl(&s, &who, "create", json!({"path": "Inbox/Clients/Acme"})).await;
    let old = folder_ctl(&s, &who, "create", json!({"path": "Archive/Old"})).await;
    let temp = folder_ctl(&s, &who, "create", json!({"path": "Temp"})).await;
    let (items, link, _) = s.delta_round(&link, &token, PREFER).await;
    let got: HashSet<String> = ids(&items).into_iter().collect();
    assert_eq!(got.len(), 4, "Clients, Acme, Old, Temp: {items:?}");
    assert!(got.contains(acme["id"].as_str().unwrap()));
    let acme_item = items.iter().find(|i| i["id"] == acme["id"]).unwrap();
    assert_eq!(acme_item["parentFolderId"], acme["parent"]);

    folder_ctl(
        &s,
        &who,
        "rename",
        json!({"folder": "Inbox/Clients/Acme", "name": "Acme Holdings"}),
    )
    .await;
    folder_ctl(
        &s,
        &who,
        "move",
        json!({"folder": "Archive/Old", "destination": "Inbox/Clients"}),
    )
    .await;
    folder_ctl(
        &s,
        &who,
        "delete",
        json!({"folder": "Temp", "permanent": true}),
    )
    .await;
    let (items, link, _) = s.delta_round(&link, &token, PREFER).await;
    assert_eq!(removed(&items), [temp["id"].as_str().unwrap()]);
    let renamed = items.iter().find(|i| i["id"] == acme["id"]).unwrap();
    assert_eq!(renamed["displayName"], "Acme Holdings");
    let moved = items.iter().find(|i| i["id"] == old["id"]).unwrap();
    assert_eq!(moved["parentFolderId"], acme["parent"], "now under Clients");
    assert_eq!(items.len(), 3, "{items:?}");

    s.ctl(Method::POST, "sync-state/expire", json!({"user": who}))
        .await;
    let (status, headers, body) = s.get(&link, &token, PREFER).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "SyncStateNotFound");
    assert!(headers["location"]
        .to_str()
        .unwrap()
        .ends_with("mailFolders/delta?$deltatoken="));
    // A token of message delta is not a folder delta token.
    let (_, inbox_link, _) = s
        .delta_round(
            &format!("{user}/mailFolders/inbox/messages/delta"),
            &token,
            PREFER,
        )
        .await;
    let (_, query) = inbox_link.split_once('?').unwrap();
    let swapped = format!("{user}/mailFolders/delta?{query}");
    let (status, _, _) = s.get(&swapped, &token, PREFER).await;
    assert_eq!(status, 410);
}

/// Fills Inbox/Clients/Acme (depth 3) and Inbox/Clients (depth 2) through delivery into a
/// folder, then checks each level's delta, listing and count against the ground truth.
#[tokio::test]
async fn nested_folders_hold_mail_at_each_level_and_listings_filter_order_and_count() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let who = upn(&s, 1);
    let user = format!("{}/users/{}", s.graph, enc(&who));
    s.ctl(
        Method::POST,
        "folders/create",
        json!({"user": who, "path": "Inbox/Clients/Acme"}),
    )
    .await;
    let days = [
        "2026-01-05",
        "2026-02-10",
        "2026-03-15",
        "2026-04-20",
        "2026-05-25",
    ];
    for (i, day) in days.iter().enumerate() {
        let folder = if i % 2 == 0 {
            "Inbox/Clients/Acme"
        } else {
            "Inbox/Clients"
        };
        let d = s
            .ctl(
                Method::POST,
                "deliver",
                json!({"from": "client@acme.example", "to": [who], "subject": format!("m{i}"),
                       "received": format!("{day}T10:00:00Z"), "folder": folder}),
            )
            .await;
        assert_eq!(d["messages"].as_array().unwrap().len(), 1);
    }
    let truth = s.mailbox(1)["folders"].clone();
    let acme = &truth["Inbox/Clients/Acme"];
    let clients = &truth["Inbox/Clients"];
    assert_eq!(acme["count"], 3);
    assert_eq!(clients["count"], 2);
    assert_eq!(acme["path"], "Inbox/Clients/Acme");
    assert_eq!(acme["parent"], clients["id"]);
    assert_eq!(clients["parent"], truth["inbox"]["id"]);
    assert_eq!(acme["received"][0], "2026-01-05T10:00:00Z");
    let inbox_before = truth["inbox"]["count"].as_u64().unwrap();

    let acme_id = acme["id"].as_str().unwrap();
    for (key, folder) in [("Inbox/Clients/Acme", acme), ("Inbox/Clients", clients)] {
        let id = folder["id"].as_str().unwrap();
        let (items, _, _) = s
            .delta_round(
                &format!("{user}/mailFolders/{id}/messages/delta"),
                &token,
                PREFER,
            )
            .await;
        let want: HashSet<&str> = folder["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let got: HashSet<String> = ids(&items).into_iter().collect();
        assert_eq!(got.len(), want.len(), "{key}");
        assert!(got.iter().all(|g| want.contains(g.as_str())), "{key}");
    }
    // Filtered, ordered, counted listing of Acme: Feb 1 <= received < May 1 leaves March only.
    let filter =
        "receivedDateTime ge 2026-02-01T00:00:00Z and receivedDateTime lt 2026-05-01T00:00:00Z";
    let page = get(
        &s,
        &token,
        &format!(
            "{user}/mailFolders/{acme_id}/messages?$filter={filter}&$count=true&$select=subject,receivedDateTime"
        ),
    )
    .await;
    assert_eq!(page["@odata.count"], 1);
    assert_eq!(page["value"][0]["subject"], "m2");
    assert!(page["value"][0].get("body").is_none());
    let asc = get(
        &s,
        &token,
        &format!("{user}/mailFolders/{acme_id}/messages?$orderby=receivedDateTime asc&$top=2&$count=true"),
    )
    .await;
    let subjects: Vec<&str> = asc["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["m0", "m2"]);
    assert_eq!(asc["@odata.count"], 3);
    let rest = get(&s, &token, asc["@odata.nextLink"].as_str().unwrap()).await;
    assert_eq!(rest["value"][0]["subject"], "m4");
    assert!(rest.get("@odata.nextLink").is_none());
    let desc = get(
        &s,
        &token,
        &format!("{user}/mailFolders/{acme_id}/messages"),
    )
    .await;
    assert_eq!(desc["value"][0]["subject"], "m4", "newest first by default");

    // $count as text, honouring $filter.
    let count_url = format!(
        "{user}/mailFolders/{acme_id}/messages/$count?$filter=receivedDateTime ge 2026-03-01T00:00:00Z"
    );
    let resp = s
        .http
        .get(&count_url)
        .bearer_auth(&token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(resp.text().await.unwrap(), "2");
    let all = s
        .http
        .get(format!("{user}/messages/$count"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let every: u64 = s.mailbox(1)["folders"]
        .as_object()
        .unwrap()
        .values()
        .map(|f| f["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        all,
        every.to_string(),
        "the mailbox's count is every folder's"
    );
    let (status, _, _) = s
        .get(
            &format!("{user}/mailFolders/inbox/messages?$filter=subject eq 'x'"),
            &token,
            "",
        )
        .await;
    assert_eq!(status, 400, "unsupported filters are refused, not ignored");
    let (status, _, big) = s
        .get(
            &format!("{user}/mailFolders/inbox/messages?$top=1000"),
            &token,
            "",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(big["value"].as_array().unwrap().len() as u64, inbox_before);
}

#[tokio::test]
async fn a_message_moved_across_folders_shows_in_both_deltas_with_its_immutable_id() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let who = upn(&s, 1);
    let user = format!("{}/users/{}", s.graph, enc(&who));
    let acme = s
        .ctl(
            Method::POST,
            "folders/create",
            json!({"user": who, "path": "Inbox/Clients/Acme"}),
        )
        .await;
    let acme_id = acme["id"].as_str().unwrap().to_string();
    let inbox_url = format!("{user}/mailFolders/inbox/messages/delta");
    let acme_url = format!("{user}/mailFolders/{acme_id}/messages/delta");
    let (_, inbox_link, _) = s.delta_round(&inbox_url, &token, PREFER).await;
    let (none, acme_link, _) = s.delta_round(&acme_url, &token, PREFER).await;
    assert!(none.is_empty());

    let victim = s.mailbox(1)["folders"]["inbox"]["ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let moved = post(
        &s,
        &token,
        &format!("{user}/messages/{victim}/move"),
        json!({"destinationId": acme_id}),
        201,
    )
    .await;
    assert_eq!(moved["parentFolderId"], acme_id.as_str());
    // The control API moves by path too: a second message, into the same folder.
    let second = s.mailbox(1)["folders"]["inbox"]["ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    s.ctl(
        Method::POST,
        "messages/move",
        json!({"user": who, "id": second, "destination": "Inbox/Clients/Acme"}),
    )
    .await;
    let (inbox_items, _, _) = s.delta_round(&inbox_link, &token, PREFER).await;
    let (acme_items, _, _) = s.delta_round(&acme_link, &token, PREFER).await;
    let mut gone = removed(&inbox_items);
    gone.sort();
    let mut arrived = ids(&acme_items);
    arrived.sort();
    let mut both = vec![victim.clone(), second.clone()];
    both.sort();
    assert_eq!(gone, both);
    assert_eq!(arrived, both, "the same immutable ids in the destination");
}

#[tokio::test]
async fn delivery_reaches_recipients_in_every_simulated_tenant() {
    let s = TestSim::start(m365sync_sim::generate::GenerateOptions {
        tenants: 2,
        ..small()
    })
    .await;
    let truth = s.truth();
    let a = truth["tenants"][0]["mailboxes"][1]["upn"]
        .as_str()
        .unwrap()
        .to_string();
    let b = truth["tenants"][1]["mailboxes"][1]["upn"]
        .as_str()
        .unwrap()
        .to_string();
    let b_inbox = truth["tenants"][1]["mailboxes"][1]["folders"]["inbox"]["count"]
        .as_u64()
        .unwrap();
    let a_sent = truth["tenants"][0]["mailboxes"][1]["folders"]["sentitems"]["count"]
        .as_u64()
        .unwrap();
    let d = s
        .ctl(
            Method::POST,
            "deliver",
            json!({"from": a, "to": [b], "subject": "across tenants"}),
        )
        .await;
    let copies = d["messages"].as_array().unwrap();
    assert_eq!(copies.len(), 2, "{d}");
    assert_eq!(copies[0]["user"], a.as_str());
    assert_eq!(copies[1]["user"], b.as_str());
    assert_eq!(copies[1]["tenant"], truth["tenants"][1]["id"]);
    let after = s.truth();
    let mb = |t: usize| after["tenants"][t]["mailboxes"][1]["folders"].clone();
    assert_eq!(mb(1)["inbox"]["count"].as_u64().unwrap(), b_inbox + 1);
    assert_eq!(mb(0)["sentitems"]["count"].as_u64().unwrap(), a_sent + 1);
    assert!(mb(1)["inbox"]["ids"]
        .as_array()
        .unwrap()
        .contains(&copies[1]["id"]));
    // Leaving tenant A, the mail is A's outbound mail as well.
    let outbound = s.ctl(Method::GET, "outbound-mail", json!({})).await;
    assert!(outbound["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["subject"] == "across tenants"));
}
