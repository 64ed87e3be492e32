//! Byte-range uploads to an upload session's URL (an attachment over 3 MB, E15).
//!
//! The URL Graph answers `createUploadSession` with carries its own authorization, and
//! Outlook's upload endpoint refuses a PUT that also sends a bearer token, so these requests go
//! out without one and outside [`GraphClient`](crate::GraphClient)'s token handling. Graph's
//! rules: ranges in order, each at most 4 MiB and, but for the last, a multiple of 320 KiB
//! ([`CHUNK_BYTES`] is ten of those); 200 with `nextExpectedRanges` until the last, which
//! answers 201.

use std::time::Duration;

use crate::{GraphError, RequestIds};

/// The byte range one PUT carries: 10 × 320 KiB (3,276,800 bytes), under the 4 MiB cap.
pub const CHUNK_BYTES: usize = 10 * 320 * 1024;

/// PUTs `bytes` as the range starting at `first` of a `total`-byte upload. A network error or
/// a 5xx is tried again a few times. A range the session no longer expects (416: an earlier
/// answer was lost after the bytes arrived) or a session that is gone (404: it completed, or
/// expired) is [`GraphError::Exhausted`], a passing failure: the caller's next try starts from
/// what the message then holds. Other refusals (400 chunk rules, 401, 413) are
/// [`GraphError::Other`]. Answers true when this range completed the upload.
pub async fn put_range(
    http: &reqwest::Client,
    mailbox: &str,
    url: &str,
    first: u64,
    bytes: &[u8],
    total: u64,
) -> Result<bool, GraphError> {
    let last = first + bytes.len() as u64 - 1;
    let mut tries = 0;
    loop {
        tries += 1;
        // Each PUT is a request Microsoft support may be asked about: it carries its own
        // client-request-id, and the answer's request-id is kept for the error.
        let mut ids = RequestIds {
            client_request_id: crate::new_client_request_id(),
            request_id: None,
        };
        let resp = http
            .put(url)
            .header("client-request-id", &ids.client_request_id)
            .header("return-client-request-id", "true")
            .header("Content-Range", format!("bytes {first}-{last}/{total}"))
            .header("Content-Type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await;
        let (status, text) = match resp {
            Ok(r) => {
                let status = r.status().as_u16();
                ids.request_id = r
                    .headers()
                    .get("request-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                (status, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, format!("network: {e}")),
        };
        match status {
            200 | 202 => return Ok(false),
            201 => return Ok(true),
            0 | 500..=599 if tries < 4 => {
                tokio::time::sleep(Duration::from_millis(250 * (1 << tries))).await;
            }
            0 | 404 | 416 | 500..=599 => {
                return Err(GraphError::Exhausted {
                    mailbox: mailbox.to_string(),
                    status,
                    attempts: tries,
                    message: format!("upload of bytes {first}-{last}/{total}: {text}"),
                    ids: Box::new(ids),
                })
            }
            _ => {
                let code = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "unknown".into());
                return Err(GraphError::Other {
                    mailbox: mailbox.to_string(),
                    status,
                    code,
                    message: format!(
                        "upload of bytes {first}-{last}/{total} refused: {}",
                        text.chars().take(300).collect::<String>()
                    ),
                    ids: Box::new(ids),
                });
            }
        }
    }
}
