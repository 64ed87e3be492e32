//! Request bodies are read as Graph reads them: property names in any case. msgraph-sdk for
//! Python sends action parameters in PascalCase (`DestinationId`, `Message`,
//! `SaveToSentItems`); a simulator that read only camelCase answered those with 400.

use reqwest::Method;
use serde_json::json;

use crate::client::{enc, small, TestSim};

#[tokio::test]
async fn pascal_case_bodies_work_for_mail_events_and_batch() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let mb = s.mailbox(1);
    let upn = mb["upn"].as_str().unwrap().to_string();
    let other = s.mailbox(2)["upn"].as_str().unwrap().to_string();
    let id = mb["folders"]["inbox"]["ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let user = format!("{}/users/{}", s.graph, enc(&upn));

    let (status, copied) = s
        .send(
            Method::POST,
            &format!("{user}/messages/{id}/copy"),
            &token,
            Some(json!({"DestinationId": "archive"})),
        )
        .await;
    assert_eq!(status, 201, "{copied}");
    let (status, moved) = s
        .send(
            Method::POST,
            &format!("{user}/messages/{id}/move"),
            &token,
            Some(json!({"DESTINATIONID": "deleteditems"})),
        )
        .await;
    assert_eq!(status, 201, "{moved}");
    let (status, patched) = s
        .send(
            Method::PATCH,
            &format!("{user}/messages/{id}"),
            &token,
            Some(json!({"IsRead": true, "Subject": "Renamed", "Flag": {"FlagStatus": "flagged"}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["subject"], "Renamed");
    assert_eq!(patched["flag"]["flagStatus"], "flagged");

    let before = s.mailbox(2)["folders"]["inbox"]["count"].as_u64().unwrap();
    let (status, body) = s
        .send(
            Method::POST,
            &format!("{user}/sendMail"),
            &token,
            Some(json!({
                "Message": {
                    "Subject": "Pascal",
                    "Body": {"ContentType": "Text", "Content": "hello"},
                    "ToRecipients": [{"EmailAddress": {"Address": other}}]
                },
                "SaveToSentItems": true
            })),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        s.mailbox(2)["folders"]["inbox"]["count"].as_u64().unwrap(),
        before + 1
    );

    let (status, event) = s
        .send(
            Method::POST,
            &format!("{user}/events"),
            &token,
            Some(json!({
                "Subject": "Pascal event",
                "Start": {"DateTime": "2026-05-04T09:00:00", "TimeZone": "UTC"},
                "End": {"DateTime": "2026-05-04T10:00:00", "TimeZone": "UTC"}
            })),
        )
        .await;
    assert_eq!(status, 201, "{event}");
    assert_eq!(event["subject"], "Pascal event");

    let (status, batch) = s
        .send(
            Method::POST,
            &format!("{}/$batch", s.graph),
            &token,
            Some(json!({"Requests": [
                {"Id": "1", "Method": "GET", "Url": format!("/users/{}/messages/{id}?$select=subject", enc(&upn))},
                {"Id": "2", "Method": "POST", "Url": format!("/users/{}/messages/{id}/move", enc(&upn)),
                 "Headers": {"Content-Type": "application/json"}, "Body": {"DestinationId": "inbox"}, "DependsOn": ["1"]}
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{batch}");
    let statuses: Vec<u64> = batch["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![200, 201], "{batch}");
}
