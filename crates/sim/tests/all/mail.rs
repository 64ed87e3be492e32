//! Directory and mail reads, attachments, sendMail, `$batch`, access policies.

use reqwest::Method;
use serde_json::json;

use crate::client::{enc, small, TestSim};

#[tokio::test]
async fn users_page_with_select_and_groups_are_not_users() {
    let s = TestSim::start(m365sync_sim::generate::GenerateOptions {
        users: 7,
        shared: 2,
        ..small()
    })
    .await;
    let token = s.token().await;
    let (status, _, page) = s
        .get(
            &format!(
                "{}/users?$select=displayName,mail,userPrincipalName&$top=4",
                s.graph
            ),
            &token,
            "",
        )
        .await;
    assert_eq!(status, 200);
    let first = page["value"].as_array().unwrap();
    assert_eq!(first.len(), 4);
    assert_eq!(
        first[0].as_object().unwrap().len(),
        3,
        "only the selected properties: {}",
        first[0]
    );
    let (_, _, second) = s
        .get(page["@odata.nextLink"].as_str().unwrap(), &token, "")
        .await;
    assert_eq!(second["value"].as_array().unwrap().len(), 4);
    let (_, _, last) = s
        .get(second["@odata.nextLink"].as_str().unwrap(), &token, "")
        .await;
    assert_eq!(
        last["value"].as_array().unwrap().len(),
        1,
        "7 people + 2 shared mailboxes"
    );
    assert!(last.get("@odata.nextLink").is_none());
    let group_mail = "allstaff@contoso.example";
    let (status, _, body) = s
        .get(
            &format!("{}/users/{}", s.graph, enc(group_mail)),
            &token,
            "",
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str().unwrap()),
        (404, "Request_ResourceNotFound")
    );
    let (_, _, groups) = s
        .get(
            &format!("{}/groups?$filter=mail eq '{group_mail}'", s.graph),
            &token,
            "",
        )
        .await;
    assert_eq!(groups["value"][0]["mail"], group_mail);
    let (_, _, shared) = s
        .get(
            &format!(
                "{}/users/info@contoso.example?$select=accountEnabled,mail",
                s.graph
            ),
            &token,
            "",
        )
        .await;
    assert_eq!(
        shared["accountEnabled"], false,
        "shared mailboxes have sign-in disabled"
    );
    let (_, _, rooms) = s
        .get(
            &format!("{}/places/microsoft.graph.room", s.graph),
            &token,
            "",
        )
        .await;
    assert_eq!(rooms["value"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn folders_by_well_known_name_in_any_case_and_unknown_names() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let (_, _, a) = s
        .get(
            &format!("{}/users/{}/mailFolders/Inbox", s.graph, enc(&upn)),
            &token,
            "",
        )
        .await;
    let (_, _, b) = s
        .get(
            &format!("{}/users/{}/mailFolders/inbox", s.graph, upn),
            &token,
            "",
        )
        .await;
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["displayName"], "Inbox");
    let (_, _, by_id) = s
        .get(
            &format!(
                "{}/users/{}/mailFolders/{}",
                s.graph,
                upn,
                a["id"].as_str().unwrap()
            ),
            &token,
            "",
        )
        .await;
    assert_eq!(by_id["id"], a["id"]);
    let (_, _, list) = s
        .get(
            &format!("{}/users/{}/mailFolders", s.graph, upn),
            &token,
            "",
        )
        .await;
    assert!(list["value"].as_array().unwrap().len() >= 6);
    let (status, _, body) = s
        .get(
            &format!("{}/users/{}/mailFolders/nosuch", s.graph, upn),
            &token,
            "",
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str().unwrap()),
        (400, "ErrorInvalidIdMalformed")
    );
    let (status, _, body) = s
        .get(
            &format!("{}/users/{}/messages/AAMkAGI2TG93AAAxyz", s.graph, upn),
            &token,
            "",
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str().unwrap()),
        (404, "ErrorItemNotFound")
    );
    let (status, _, body) = s
        .get(
            &format!("{}/users/nobody@contoso.example/messages", s.graph),
            &token,
            "",
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str().unwrap()),
        (404, "ErrorInvalidUser")
    );
}

#[tokio::test]
async fn listing_with_top_and_skip_follows_next_links() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let mb = s.mailbox(1);
    let total = mb["folders"]["inbox"]["count"].as_u64().unwrap() as usize;
    let mut url = format!(
        "{}/users/{}/mailFolders/Inbox/messages?%24top=5&%24select=subject,receivedDateTime",
        s.graph,
        enc(mb["upn"].as_str().unwrap())
    );
    let mut seen = Vec::new();
    loop {
        let (status, _, page) = s.get(&url, &token, "").await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["receivedDateTime"].as_str().unwrap().to_string()),
        );
        match page["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), total);
    assert!(seen.windows(2).all(|w| w[0] >= w[1]), "newest first");
}

#[tokio::test]
async fn attachments_omit_large_content_and_serve_raw_bytes() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let delivered = s
        .ctl(Method::POST, "deliver", json!({"from": "client@acme.example", "to": [upn], "subject": "Files", "attachments": [{"name": "small.txt", "size": 12}, {"name": "big.pdf", "size": 4 * 1024 * 1024}]}))
        .await;
    let id = delivered["messages"][0]["id"].as_str().unwrap();
    let base = format!("{}/users/{}/messages/{}", s.graph, enc(&upn), enc(id));
    let (_, _, msg) = s.get(&base, &token, "").await;
    assert_eq!(msg["hasAttachments"], true);
    let (_, _, list) = s.get(&format!("{base}/attachments"), &token, "").await;
    let items = list["value"].as_array().unwrap();
    let small = items.iter().find(|a| a["name"] == "small.txt").unwrap();
    let big = items.iter().find(|a| a["name"] == "big.pdf").unwrap();
    assert_eq!(small["@odata.type"], "#microsoft.graph.fileAttachment");
    assert!(small["contentBytes"].is_string());
    assert!(
        big.get("contentBytes").is_none(),
        "contentBytes left out above the threshold"
    );
    assert_eq!(big["size"], 4 * 1024 * 1024);
    let raw = s
        .http
        .get(format!(
            "{base}/attachments/{}/$value",
            big["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(raw.len(), 4 * 1024 * 1024);
}

#[tokio::test]
async fn send_mail_lands_in_sent_items_and_internal_inboxes_with_one_message_id() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let sender = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let colleague = s.mailbox(2)["upn"].as_str().unwrap().to_string();
    let bytes = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        b"hello attachment",
    );
    let body = json!({"message": {
        "subject": "Proposal", "body": {"contentType": "HTML", "content": "<p>See attached</p>"},
        "toRecipients": [{"emailAddress": {"address": colleague}}, {"emailAddress": {"address": "client@acme.example"}}],
        "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "p.txt", "contentType": "text/plain", "contentBytes": bytes}]
    }, "saveToSentItems": true});
    let (status, _) = s
        .send(
            Method::POST,
            &format!("{}/users/{}/sendMail", s.graph, enc(&sender)),
            &token,
            Some(body),
        )
        .await;
    assert_eq!(status, 202);
    let newest = |who: String, folder: &'static str| {
        let s = &s;
        let token = token.clone();
        async move {
            let (_, _, page) = s.get(&format!("{}/users/{}/mailFolders/{folder}/messages?$top=1&$select=internetMessageId,subject", s.graph, enc(&who)), &token, "").await;
            page["value"][0].clone()
        }
    };
    let sent = newest(sender.clone(), "sentitems").await;
    let received = newest(colleague.clone(), "inbox").await;
    assert_eq!(sent["subject"], "Proposal");
    assert_eq!(sent["internetMessageId"], received["internetMessageId"]);
    let (_, _, atts) = s
        .get(
            &format!(
                "{}/users/{}/messages/{}/attachments",
                s.graph,
                enc(&colleague),
                enc(received["id"].as_str().unwrap())
            ),
            &token,
            "",
        )
        .await;
    assert_eq!(atts["value"][0]["contentBytes"], bytes);
    let outbound = s.ctl(Method::GET, "outbound-mail", json!({})).await;
    assert_eq!(outbound["value"][0]["to"][0], "client@acme.example");
}

#[tokio::test]
async fn batch_runs_sub_requests_with_depends_on_and_424() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let body = json!({"requests": [
        {"id": "1", "method": "GET", "url": format!("/users/{}/mailFolders/inbox", enc(&upn))},
        {"id": "2", "method": "GET", "url": "/users/nobody@contoso.example/messages"},
        {"id": "3", "method": "GET", "url": format!("/users/{}/messages?$top=2", enc(&upn)), "dependsOn": ["2"]},
        {"id": "4", "method": "GET", "url": "/users?$top=1", "dependsOn": ["1"]},
    ]});
    let (status, answer) = s
        .send(
            Method::POST,
            &format!("{}/$batch", s.graph),
            &token,
            Some(body),
        )
        .await;
    assert_eq!(status, 200);
    let by_id = |id: &str| {
        answer["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(by_id("2")["status"], 404);
    assert_eq!(by_id("3")["status"], 424);
    assert_eq!(by_id("4")["status"], 200);
    let too_many: Vec<_> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    let (status, _) = s
        .send(
            Method::POST,
            &format!("{}/$batch", s.graph),
            &token,
            Some(json!({"requests": too_many})),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn mailboxes_outside_the_access_policy_answer_403() {
    let scenario = m365sync_sim::scenario::Scenario::parse(
        r#"
[[tenant]]
name = "Policy"
domain = "policy.example"
[[tenant.app]]
secrets = ["s3cret"]
access_policy = ["in@policy.example"]
[[tenant.user]]
upn = "in@policy.example"
name = "Inside"
[[tenant.user]]
upn = "out@policy.example"
name = "Outside"
[[tenant.message]]
mailbox = "in@policy.example"
from = "client@example.org"
to = ["in@policy.example"]
subject = "Hello"
received = "2026-05-01T10:00:00Z"
"#,
        std::path::Path::new("inline.toml"),
    )
    .unwrap();
    let s = TestSim::start_with(
        m365sync_sim::Origin::Scenario(scenario),
        Default::default(),
        None,
    )
    .await;
    let token = s.token().await;
    let (status, _, page) = s
        .get(
            &format!(
                "{}/users/in@policy.example/mailFolders/inbox/messages",
                s.graph
            ),
            &token,
            "",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["value"][0]["subject"], "Hello");
    let (status, _, body) = s
        .get(
            &format!(
                "{}/users/out@policy.example/mailFolders/inbox/messages",
                s.graph
            ),
            &token,
            "",
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str().unwrap()),
        (403, "ErrorAccessDenied")
    );
}
