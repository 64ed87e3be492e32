//! The admin API's route table and its OpenAPI 3.1 document (issue 16), against a real
//! `serve --sandbox`: the document is open and says 3.1; its (method, path) pairs are exactly
//! the route table's ([`m365sync::service::route_list`], what the router is built from), and
//! every one of them is served (none answers the fallback's 404 or a 405); operations carry
//! their path and query parameters, body schemas and refusals. A path nothing serves is 404 in
//! the API's words, a known path asked with another method 405 naming the methods it answers,
//! and the request's trace span names the route's template, not the path it was called with.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::service::{wait_for, Scratch, Serve};

/// A concrete path for a template: every `{param}` replaced by a value no record has.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "1".to_string()
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_exactly_the_routes_served() {
    let dir = Scratch::new("openapi");
    let sandbox = dir.0.join("sb");
    let serve = Serve::start_with_log(
        &[
            "--sandbox",
            "--sandbox-dir",
            sandbox.to_str().unwrap(),
            "--sim-bind",
            "127.0.0.1:0",
            "--users",
            "1",
            "--messages",
            "3",
            "--busy-messages",
            "0",
        ],
        &dir.0.join("ready"),
        // The span of each request is logged with the answer's debug line.
        "info,m365sync::service::api=debug",
    );
    let admin = std::fs::read_to_string(sandbox.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();

    // Open: no token.
    let (status, body) = serve.api(Method::GET, "/api/openapi.json", None).await;
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );

    // The document's operations are the route table's, pair for pair.
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            documented.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = m365sync::service::route_list().into_iter().collect();
    assert_eq!(documented, served);
    assert!(served.len() > 70, "{}", served.len());
    for (method, path) in [
        ("GET", "/api/openapi.json"),
        ("GET", "/api/tenants/{org}/{tenant}/runs"),
        ("POST", "/api/orgs/{org}/review/map"),
        ("PATCH", "/api/me/events/{event}"),
        ("POST", "/notifications"),
    ] {
        assert!(
            served.contains(&(method.to_string(), path.to_string())),
            "{method} {path}"
        );
    }

    // Every route of the table is served by the router: without a token each answers its own
    // refusal (401), or for the open ones their answer, never the fallback's 404 or a 405;
    // with the admin token its handler runs (on records that do not exist: 400, 403, 404...),
    // so its path parameters are read as the template names them (never a 500).
    for (method, path) in &served {
        let url = concrete(path);
        for token in [None, Some(admin.as_str())] {
            let (status, body) = serve
                .api(Method::from_bytes(method.as_bytes()).unwrap(), &url, token)
                .await;
            assert!(
                status != 405 && status != 500 && !body.contains("no such endpoint"),
                "{method} {url} (token: {}): {status} {body}",
                token.is_some()
            );
        }
    }

    // One operation's parameters: the path's two, required, and the query's paging.
    let runs = &doc["paths"]["/api/tenants/{org}/{tenant}/runs"]["get"];
    let params = runs["parameters"].as_array().unwrap();
    let named = |name: &str, place: &str| {
        params
            .iter()
            .find(|p| p["name"] == name && p["in"] == place)
            .unwrap_or_else(|| panic!("no {place} parameter {name}: {runs}"))
            .clone()
    };
    assert_eq!(named("org", "path")["required"], true);
    assert_eq!(named("tenant", "path")["required"], true);
    assert_eq!(named("limit", "query")["required"], false);
    named("before", "query");
    named("since", "query");
    named("errors_only", "query");
    assert_eq!(params.len(), 6, "{runs}");
    for status in ["200", "400", "401", "403", "404", "503"] {
        assert!(runs["responses"][status].is_object(), "{status}: {runs}");
    }
    assert_eq!(runs["tags"][0], "tenants");
    assert!(runs["security"].as_array().unwrap().len() == 2, "{runs}");
    // Sync now: 202, and 409 for a disabled or unactivated tenant.
    let sync = &doc["paths"]["/api/tenants/{org}/{tenant}/sync"]["post"];
    assert!(sync["responses"]["202"].is_object(), "{sync}");
    assert!(sync["responses"]["409"].is_object(), "{sync}");
    // The mass mapping's body: a schema derived from the type the handler reads.
    let map = &doc["paths"]["/api/orgs/{org}/review/map"]["post"];
    assert_eq!(
        map["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/MapRequest"
    );
    let schema = &doc["components"]["schemas"]["MapRequest"];
    for field in ["emails", "contact", "add_address"] {
        assert!(schema["properties"][field].is_object(), "{schema}");
    }
    // An open route carries no security; the schemes are the bearer token and the cookie.
    assert!(doc["paths"]["/health"]["get"]["security"].is_null());
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["console_cookie"]["in"], "cookie");

    // A path nothing serves: 404 naming it (with or without a token).
    let (status, body) = serve
        .api(Method::GET, "/api/nothing/here", Some(&admin))
        .await;
    assert_eq!(status, 404);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "no such endpoint: GET /api/nothing/here");
    // A known path with another method: 405, in words naming the methods it answers.
    let resp = reqwest::Client::new()
        .delete(format!("{}/api/tenants", serve.admin))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let allow = resp.headers()["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("GET"), "{allow}");
    let v: Value = resp.json().await.unwrap();
    let words = v["error"].as_str().unwrap();
    assert!(
        words.contains("DELETE") && words.contains("/api/tenants") && words.contains("GET"),
        "{words}"
    );

    // A body over the route's limit (the notifications' 4 MiB) is refused by its length
    // before it is read: 413 in the API's words.
    let answer = raw_request(
        &serve.admin,
        "POST /notifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("application/json") && answer.contains("over 4 MiB"),
        "{answer}"
    );

    // The span of a request names the route's template, not the path (no names or ids).
    let (status, _) = serve
        .api(
            Method::GET,
            "/api/tenants/sandbox/contoso/runs",
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200);
    wait_for(10, "the request's span in the log", || {
        let log = plain(&serve.log());
        async move { log.contains("http.route=/api/tenants/{org}/{tenant}/runs") }
    })
    .await;
    let log = plain(&serve.log());
    assert!(!log.contains("http.route=/api/tenants/sandbox"), "{log}");
    assert!(log.contains("http.route=(no route)"), "{log}");
}

/// Sends `head` as it is (no body) to the listener at `base` and reads the answer until the
/// server closes the connection.
async fn raw_request(base: &str, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The log without its colours' escape sequences.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
