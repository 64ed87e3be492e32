//! The simulator as a test sees it: a server on a free loopback port, a token, and HTTP
//! helpers. Shared with the product's end-to-end tests (`tests/all/support.rs` includes this
//! file), so both drive the simulator the same way.

#![allow(dead_code)]

use std::sync::Arc;

use m365sync_sim::config::ProtocolConfig;
use m365sync_sim::generate::{ground_truth, GenerateOptions};
use m365sync_sim::server::{serve, Running, ServeOptions};
use m365sync_sim::{Origin, Sim};
use serde_json::Value;

/// A running simulator plus a client for it.
pub struct TestSim {
    pub running: Running,
    pub sim: Arc<Sim>,
    pub base: String,
    pub graph: String,
    pub tenant_id: String,
    pub client_id: String,
    pub secret: String,
    pub http: reqwest::Client,
}

/// Small generated tenants keep tests fast.
pub fn small() -> GenerateOptions {
    GenerateOptions {
        users: 3,
        shared: 1,
        messages: 40,
        events: 8,
        ..GenerateOptions::default()
    }
}

impl TestSim {
    /// A simulator over plain http serving a generated tenant.
    pub async fn start(opts: GenerateOptions) -> TestSim {
        Self::start_with(Origin::Generated(opts), ProtocolConfig::default(), None).await
    }

    /// A simulator with any origin, protocol settings, and optionally https (CA in `tls_dir`).
    pub async fn start_with(
        origin: Origin,
        protocol: ProtocolConfig,
        tls_dir: Option<std::path::PathBuf>,
    ) -> TestSim {
        Self::serve_sim(Sim::new(origin, protocol), tls_dir).await
    }

    /// Serves a simulator already built (e.g. over a world loaded from disk).
    pub async fn serve_sim(sim: Arc<Sim>, tls_dir: Option<std::path::PathBuf>) -> TestSim {
        let running = serve(
            sim.clone(),
            ServeOptions {
                bind: "127.0.0.1:0".parse().unwrap(),
                tls_dir,
                public_url: None,
            },
        )
        .await
        .expect("simulator starts");
        let base = running.base_url.clone();
        let (tenant_id, client_id, secret) = {
            let w = sim.world.lock().unwrap();
            let t = &w.tenants[0];
            (
                t.id.clone(),
                t.apps[0].client_id.clone(),
                t.apps[0].secrets[0].value.clone(),
            )
        };
        let mut http = reqwest::Client::builder();
        if let Some(ca) = &running.ca_cert {
            let pem = std::fs::read(ca).unwrap();
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        TestSim {
            graph: format!("{base}/v1.0"),
            base,
            running,
            sim,
            tenant_id,
            client_id,
            secret,
            http: http.build().unwrap(),
        }
    }

    /// Posts a token request form and returns (status, body).
    pub async fn token_request(&self, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/{tenant}/oauth2/v2.0/token", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// An app-only token for the first tenant's app.
    pub async fn token(&self) -> String {
        let (status, body) = self
            .token_request(
                &self.tenant_id,
                &[
                    ("client_id", &self.client_id),
                    ("client_secret", &self.secret),
                    ("scope", "https://graph.microsoft.com/.default"),
                    ("grant_type", "client_credentials"),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// GET with a bearer token and `Prefer` header; returns (status, headers, JSON body).
    pub async fn get(
        &self,
        url: &str,
        token: &str,
        prefer: &str,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.get(url).bearer_auth(token);
        if !prefer.is_empty() {
            req = req.header("Prefer", prefer);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Sends any Graph request with a JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Calls the control API.
    pub async fn ctl(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}/_sim/{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "control {path} failed: {}",
            resp.status()
        );
        resp.json().await.unwrap()
    }

    /// The current ground truth.
    pub fn truth(&self) -> Value {
        ground_truth(&self.sim.world.lock().unwrap())
    }

    /// The first mailbox of `kind` in the ground truth.
    pub fn mailbox(&self, index: usize) -> Value {
        self.truth()["tenants"][0]["mailboxes"][index].clone()
    }

    /// Follows a delta round to its deltaLink; returns (items, deltaLink, pages).
    pub async fn delta_round(
        &self,
        url: &str,
        token: &str,
        prefer: &str,
    ) -> (Vec<Value>, String, usize) {
        let mut url = url.to_string();
        let mut items = Vec::new();
        let mut pages = 0;
        loop {
            let (status, _, page) = self.get(&url, token, prefer).await;
            assert_eq!(status, 200, "{page}");
            pages += 1;
            items.extend(page["value"].as_array().unwrap().iter().cloned());
            match (
                page["@odata.nextLink"].as_str(),
                page["@odata.deltaLink"].as_str(),
            ) {
                (Some(next), None) => url = next.to_string(),
                (None, Some(delta)) => return (items, delta.to_string(), pages),
                _ => panic!("a page must have exactly one of nextLink and deltaLink: {page}"),
            }
            assert!(pages < 100_000, "delta never ends");
        }
    }
}

/// Ids of the non-removed items.
pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter(|i| i.get("@removed").is_none())
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// Ids of the removed items.
pub fn removed(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter(|i| i.get("@removed").is_some())
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// Percent-encodes a path segment (as clients do with `alice@firm.com`).
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
