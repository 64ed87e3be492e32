//! `POST /v1.0/$batch`: up to 20 sub-requests, `dependsOn` ordering, 424 for failed
//! dependencies, and each sub-request throttled on its own (a 429 can sit inside a 200).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::graph::execute;
use super::identity::Caller;
use super::request::{GraphError, SimRequest, SimResponse};
use super::Sim;

/// Graph's limit on sub-requests per batch.
pub const MAX_BATCH: usize = 20;

#[derive(Deserialize)]
struct BatchBody {
    requests: Vec<SubRequest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubRequest {
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    depends_on: Vec<String>,
}

/// Runs a batch for `caller`.
pub async fn handle(
    sim: &Arc<Sim>,
    caller: &Caller,
    req: &SimRequest,
    request_id: &str,
) -> Result<SimResponse, GraphError> {
    let batch: BatchBody = req.json()?;
    if batch.requests.len() > MAX_BATCH {
        return Err(GraphError::bad_request(format!(
            "Number of requests in the batch ({}) exceeds the limit of {MAX_BATCH}.",
            batch.requests.len()
        )));
    }
    let ids: Vec<&str> = batch.requests.iter().map(|r| r.id.as_str()).collect();
    for (i, r) in batch.requests.iter().enumerate() {
        if ids[..i].contains(&r.id.as_str()) {
            return Err(GraphError::bad_request(format!(
                "Batch request id '{}' is used more than once.",
                r.id
            )));
        }
        if let Some(missing) = r.depends_on.iter().find(|d| !ids.contains(&d.as_str())) {
            return Err(GraphError::bad_request(format!(
                "Request '{}' depends on unknown request '{missing}'.",
                r.id
            )));
        }
    }
    let version = req
        .segments
        .first()
        .cloned()
        .unwrap_or_else(|| "v1.0".into());
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut pending: Vec<&SubRequest> = batch.requests.iter().collect();
    let mut responses = Vec::new();
    while !pending.is_empty() {
        // Run, in order, every request whose dependencies have all answered.
        let ready: Vec<&SubRequest> = pending
            .iter()
            .copied()
            .filter(|r| r.depends_on.iter().all(|d| statuses.contains_key(d)))
            .collect();
        if ready.is_empty() {
            return Err(GraphError::bad_request(
                "The batch's dependsOn references form a cycle.",
            ));
        }
        pending.retain(|r| !ready.iter().any(|x| x.id == r.id));
        for r in ready {
            let failed_dep = r
                .depends_on
                .iter()
                .any(|d| statuses.get(d).is_some_and(|s| *s >= 400));
            let (status, headers, body) = if failed_dep {
                let e = GraphError::new(
                    424,
                    "FailedDependency",
                    "The request could not be executed because a dependency failed.",
                );
                let resp = e.into_response(request_id, None);
                (
                    424,
                    json!({"content-type": "application/json"}),
                    serde_json::from_slice(&resp.body).unwrap_or(Value::Null),
                )
            } else {
                let sub = sub_request(&version, r);
                let resp = execute(sim, caller, sub, request_id.to_string()).await;
                let body = if resp.body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&resp.body).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&resp.body).into_owned())
                    })
                };
                let headers: serde_json::Map<String, Value> = resp
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_string(),
                            Value::String(v.to_str().unwrap_or("").to_string()),
                        )
                    })
                    .collect();
                (resp.status, Value::Object(headers), body)
            };
            statuses.insert(r.id.clone(), status);
            let mut entry = json!({"id": r.id, "status": status, "headers": headers});
            if !body.is_null() {
                entry["body"] = body;
            }
            responses.push(entry);
        }
    }
    Ok(SimResponse::json(200, &json!({"responses": responses})))
}

fn sub_request(version: &str, r: &SubRequest) -> SimRequest {
    let mut headers = HeaderMap::new();
    for (k, v) in &r.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(name, value);
        }
    }
    let url = r.url.trim_start_matches('/');
    let url = url
        .strip_prefix(version)
        .map(|u| u.trim_start_matches('/'))
        .unwrap_or(url);
    let method =
        Method::from_bytes(r.method.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET);
    let body = r
        .body
        .as_ref()
        .map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default()))
        .unwrap_or_default();
    SimRequest::new(method, &format!("/{version}/{url}"), headers, body)
}
