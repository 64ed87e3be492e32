//! Sending through a draft as Graph does it: a draft with the client's own internetMessageId,
//! found again by `$filter`; file attachments in one request up to 3 MB and through an upload
//! session of byte ranges above; `send` delivering once (a second send is refused) and the
//! sent log counting it.

use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{enc, small, TestSim};

const MID: &str = "<m365sync.test-draft-1@contoso.example>";

async fn by_message_id(s: &TestSim, token: &str, upn: &str, mid: &str) -> Vec<Value> {
    let filter = enc(&format!("internetMessageId eq '{mid}'"));
    let (status, _, page) = s
        .get(
            &format!(
                "{}/users/{}/messages?$filter={filter}&$select=id,isDraft,parentFolderId,subject",
                s.graph,
                enc(upn)
            ),
            token,
            "IdType=\"ImmutableId\"",
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["value"].as_array().unwrap().clone()
}

async fn put(
    s: &TestSim,
    url: &str,
    range: &str,
    bytes: Vec<u8>,
    auth: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = s.http.put(url).header("Content-Range", range).body(bytes);
    if let Some(t) = auth {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

#[tokio::test]
async fn a_draft_with_small_and_large_attachments_is_sent_once() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let sender = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let colleague = s.mailbox(2)["upn"].as_str().unwrap().to_string();
    let users = format!("{}/users/{}", s.graph, enc(&sender));

    // A malformed Message-ID is refused; a good one is kept on the draft.
    let (status, _) = s
        .send(
            Method::POST,
            &format!("{users}/messages"),
            &token,
            Some(json!({"subject": "x", "internetMessageId": "no-brackets"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, draft) = s
        .send(
            Method::POST,
            &format!("{users}/messages"),
            &token,
            Some(json!({
                "Subject": "Quarterly review",
                "body": {"contentType": "Text", "content": "See attached."},
                "toRecipients": [{"emailAddress": {"address": colleague}}, {"emailAddress": {"address": "client@example.com"}}],
                "InternetMessageId": MID,
            })),
        )
        .await;
    assert_eq!(status, 201, "{draft}");
    assert_eq!(draft["isDraft"], true);
    assert_eq!(draft["internetMessageId"], MID);
    let id = draft["id"].as_str().unwrap().to_string();
    let found = by_message_id(&s, &token, &sender, MID).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["isDraft"], true);

    // A small file in one request; a file over 3 MB is refused there.
    let small_bytes = b"hello".to_vec();
    let (status, a) = s
        .send(
            Method::POST,
            &format!("{users}/messages/{}/attachments", enc(&id)),
            &token,
            Some(json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "note.txt", "contentType": "text/plain",
                "contentBytes": base64::engine::general_purpose::STANDARD.encode(&small_bytes)})),
        )
        .await;
    assert_eq!(status, 201, "{a}");
    let big: Vec<u8> = (0..(3 * 1024 * 1024 + 700_000))
        .map(|i| (i % 251) as u8)
        .collect();
    let (status, refusal) = s
        .send(
            Method::POST,
            &format!("{users}/messages/{}/attachments", enc(&id)),
            &token,
            Some(
                json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "big.bin",
                "contentBytes": base64::engine::general_purpose::STANDARD.encode(&big)}),
            ),
        )
        .await;
    assert_eq!(status, 413, "{refusal}");

    // The large one through an upload session.
    let (status, session) = s
        .send(
            Method::POST,
            &format!("{users}/messages/{}/attachments/createUploadSession", enc(&id)),
            &token,
            Some(json!({"AttachmentItem": {"attachmentType": "file", "name": "big.bin", "size": big.len()}})),
        )
        .await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["nextExpectedRanges"][0], "0-");
    let url = session["uploadUrl"].as_str().unwrap().to_string();
    let total = big.len();
    let unit = 320 * 1024;
    // A bearer token on the upload URL is refused; a range not a multiple of 320 KiB too;
    // a range that does not start where the session stands is 416.
    let (st, _, _) = put(
        &s,
        &url,
        &format!("bytes 0-{}/{total}", unit - 1),
        big[..unit].to_vec(),
        Some(&token),
    )
    .await;
    assert_eq!(st, 401);
    let (st, _, _) = put(
        &s,
        &url,
        &format!("bytes 0-999/{total}"),
        big[..1000].to_vec(),
        None,
    )
    .await;
    assert_eq!(st, 400);
    let (st, _, _) = put(
        &s,
        &url,
        &format!("bytes {unit}-{}/{total}", 2 * unit - 1),
        big[unit..2 * unit].to_vec(),
        None,
    )
    .await;
    assert_eq!(st, 416);
    let chunk = 10 * unit;
    let mut first = 0;
    let mut last_status = 0;
    let mut location = None;
    while first < total {
        let end = (first + chunk).min(total);
        let (st, headers, text) = put(
            &s,
            &url,
            &format!("bytes {first}-{}/{total}", end - 1),
            big[first..end].to_vec(),
            None,
        )
        .await;
        if end < total {
            assert_eq!(st, 200, "{text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["nextExpectedRanges"][0], format!("{end}-"));
        }
        last_status = st;
        location = headers
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        first = end;
    }
    assert_eq!(last_status, 201);
    assert!(location.is_some());
    let (_, _, atts) = s
        .get(
            &format!(
                "{users}/messages/{}/attachments?$select=name,size",
                enc(&id)
            ),
            &token,
            "",
        )
        .await;
    let mut names: Vec<(String, u64)> = atts["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["size"].as_u64().unwrap(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("big.bin".to_string(), total as u64),
            ("note.txt".to_string(), 5)
        ]
    );

    // Send: the draft becomes the sent copy (same immutable id, in Sent Items), the colleague
    // gets one copy, and the sent log has one entry. A second send is refused.
    let (status, _) = s
        .send(
            Method::POST,
            &format!("{users}/messages/{}/send", enc(&id)),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 202);
    // The draft's default id changed with its move to Sent Items (a stale id is 404, as in
    // Exchange); by its immutable id, sending it again is refused.
    let (status, _) = s
        .send(
            Method::POST,
            &format!("{users}/messages/{}/send", enc(&id)),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let found = by_message_id(&s, &token, &sender, MID).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["isDraft"], false);
    let immutable = found[0]["id"].as_str().unwrap();
    let (status, again) = s
        .send(
            Method::POST,
            &format!("{users}/messages/{}/send", enc(immutable)),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 400, "{again}");
    assert_eq!(again["error"]["code"], "ErrorInvalidOperation");
    let (_, _, sentitems) = s
        .get(&format!("{users}/mailFolders/sentitems"), &token, "")
        .await;
    assert_eq!(found[0]["parentFolderId"], sentitems["id"]);
    let inbox = by_message_id(&s, &token, &colleague, MID).await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["isDraft"], false);
    let log = s.ctl(Method::GET, "sent-mail", json!({})).await;
    let sent: Vec<&Value> = log["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["internet_message_id"] == MID)
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["via"], "draft");
    assert_eq!(sent[0]["attachments"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn upload_sessions_refuse_more_than_150_mb_and_send_mail_is_logged() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let sender = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let users = format!("{}/users/{}", s.graph, enc(&sender));
    let (_, draft) = s
        .send(
            Method::POST,
            &format!("{users}/messages"),
            &token,
            Some(json!({"subject": "big"})),
        )
        .await;
    let id = draft["id"].as_str().unwrap();
    let (status, _) = s
        .send(
            Method::POST,
            &format!("{users}/messages/{}/attachments/createUploadSession", enc(id)),
            &token,
            Some(json!({"attachmentItem": {"attachmentType": "file", "name": "huge.bin", "size": 150u64 * 1024 * 1024 + 1}})),
        )
        .await;
    assert_eq!(status, 413);
    // A draft without recipients cannot be sent.
    let (status, _) = s
        .send(
            Method::POST,
            &format!("{users}/messages/{}/send", enc(id)),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .send(
            Method::POST,
            &format!("{users}/sendMail"),
            &token,
            Some(json!({"message": {"subject": "direct", "toRecipients": [{"emailAddress": {"address": "x@example.com"}}],
                "internetMessageId": "<direct-1@contoso.example>"}})),
        )
        .await;
    assert_eq!(status, 202);
    let log = s.ctl(Method::GET, "sent-mail", json!({})).await;
    let entries = log["value"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["via"], "sendMail");
    assert_eq!(
        entries[0]["internet_message_id"],
        "<direct-1@contoso.example>"
    );
}
