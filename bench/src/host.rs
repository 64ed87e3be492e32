//! The simulator a benchmark runs against: started in this process (https on loopback, its CA
//! in the work directory) or a separate one reached by URL (`--sim URL`, e.g. a
//! `m365sync sim serve --https` on another machine so it does not share the two cores).
//!
//! Everything the harness needs from it goes through HTTP (`/_sim/info`, `/_sim/stats`,
//! `/_sim/throttle`, `/_sim/deliver`, Graph `/users`), so both cases behave alike and the
//! measured children never see the simulator's memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use m365sync_sim::config::ProtocolConfig;
use m365sync_sim::generate::GenerateOptions;
use m365sync_sim::server::{serve, Running, ServeOptions};
use m365sync_sim::stats::StatsSnapshot;
use m365sync_sim::{Origin, Sim};

use super::BenchError;

/// One tenant of the simulator, as the harness declares it.
#[derive(Debug, Clone)]
pub struct SimTenant {
    /// The simulated Entra tenant id.
    pub ms_tenant: String,
    /// The tenant's mail domain, declared as its internal domain.
    pub domain: String,
    /// The client id of the tenant's first app.
    pub client_id: String,
    /// That app's first client secret.
    pub secret: String,
    /// (graph id, user principal name, display name) of every mailbox.
    pub mailboxes: Vec<(String, String, String)>,
}

/// A simulator the harness talks to.
pub struct SimHost {
    /// `https://localhost:PORT`.
    pub base_url: String,
    /// The CA a client must trust (`None`: the system's roots, e.g. a plain-http remote).
    pub ca_cert: Option<PathBuf>,
    http: reqwest::Client,
    /// Kept alive while the benchmark runs (in-process only).
    running: Option<Running>,
}

impl SimHost {
    /// Generates a world and serves it over https from this process.
    pub async fn start(world: GenerateOptions, work: &Path) -> Result<SimHost, BenchError> {
        let sim: Arc<Sim> = Sim::new(Origin::Generated(world), ProtocolConfig::default());
        let running = serve(
            sim,
            ServeOptions {
                bind: "127.0.0.1:0".parse().expect("literal address"),
                tls_dir: Some(work.join("tls")),
                public_url: None,
            },
        )
        .await
        .map_err(|e| BenchError::Sim(format!("cannot start the simulator: {e}")))?;
        let ca_cert = running.ca_cert.clone();
        let http = client(ca_cert.as_deref())?;
        Ok(SimHost {
            base_url: running.base_url.clone(),
            ca_cert,
            http,
            running: Some(running),
        })
    }

    /// A simulator started elsewhere (`m365sync sim serve`), trusted through `ca_cert`.
    pub async fn remote(url: &str, ca_cert: Option<PathBuf>) -> Result<SimHost, BenchError> {
        let http = client(ca_cert.as_deref())?;
        let host = SimHost {
            base_url: url.trim_end_matches('/').to_string(),
            ca_cert,
            http,
            running: None,
        };
        host.control("GET", "health", None).await?;
        Ok(host)
    }

    /// The in-process simulator, when there is one (scenarios that change the world directly).
    pub fn in_process(&self) -> Option<&Arc<Sim>> {
        self.running.as_ref().map(|r| &r.sim)
    }

    /// Calls `/_sim/{path}` and returns its JSON answer.
    pub async fn control(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, BenchError> {
        let url = format!("{}/_sim/{path}", self.base_url);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a literal method");
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| BenchError::Sim(format!("{url}: {e}")))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| BenchError::Sim(format!("{url}: {e}")))?;
        if !status.is_success() {
            return Err(BenchError::Sim(format!("{url} answered {status}: {text}")));
        }
        serde_json::from_str(&text).map_err(|e| BenchError::Sim(format!("{url}: {e}")))
    }

    /// The simulator's counters now.
    pub async fn stats(&self) -> Result<StatsSnapshot, BenchError> {
        let v = self.control("GET", "stats", None).await?;
        serde_json::from_value(v).map_err(|e| BenchError::Sim(format!("/_sim/stats: {e}")))
    }

    /// Sets Outlook's limits: a window, a budget per app and mailbox, a concurrency cap.
    pub async fn set_throttle(
        &self,
        window_secs: u64,
        limit: u64,
        concurrency: u32,
    ) -> Result<(), BenchError> {
        let body = serde_json::json!({"window_secs": window_secs, "limit": limit, "concurrency": concurrency});
        self.control("PUT", "throttle", Some(&body)).await.map(drop)
    }

    /// Every tenant of the simulator with its app and mailboxes (listed through Graph `/users`
    /// with the app's own token, as a customer's admin would).
    pub async fn tenants(&self) -> Result<Vec<SimTenant>, BenchError> {
        let info = self.control("GET", "info", None).await?;
        let authority = info["authority"]
            .as_str()
            .unwrap_or(&self.base_url)
            .to_string();
        let graph_url = info["graph_url"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}/v1.0", self.base_url));
        let mut out = Vec::new();
        for t in info["tenants"].as_array().into_iter().flatten() {
            let (Some(id), Some(app)) = (t["id"].as_str(), t["apps"].get(0)) else {
                continue;
            };
            let client_id = app["client_id"].as_str().unwrap_or_default().to_string();
            let Some(secret) = app["secrets"].get(0).and_then(Value::as_str) else {
                continue;
            };
            let token = self.app_token(&authority, id, &client_id, secret).await?;
            let mailboxes = self.users(&graph_url, &token).await?;
            out.push(SimTenant {
                ms_tenant: id.to_string(),
                domain: t["domain"].as_str().unwrap_or_default().to_string(),
                client_id,
                secret: secret.to_string(),
                mailboxes,
            });
        }
        if out.is_empty() {
            return Err(BenchError::Sim(
                "the simulator has no tenant with an app and a secret".into(),
            ));
        }
        Ok(out)
    }

    async fn app_token(
        &self,
        authority: &str,
        tenant: &str,
        client_id: &str,
        secret: &str,
    ) -> Result<String, BenchError> {
        let url = format!("{authority}/{tenant}/oauth2/v2.0/token");
        let resp = self
            .http
            .post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .map_err(|e| BenchError::Sim(format!("{url}: {e}")))?;
        let v: Value = resp
            .json()
            .await
            .map_err(|e| BenchError::Sim(format!("{url}: {e}")))?;
        v["access_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| BenchError::Sim(format!("{url} gave no access token")))
    }

    async fn users(
        &self,
        graph_url: &str,
        token: &str,
    ) -> Result<Vec<(String, String, String)>, BenchError> {
        let mut next = Some(format!(
            "{graph_url}/users?$select=id,userPrincipalName,displayName&$top=999"
        ));
        let mut out = Vec::new();
        while let Some(url) = next.take() {
            let v: Value = self
                .http
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| BenchError::Sim(format!("{url}: {e}")))?
                .json()
                .await
                .map_err(|e| BenchError::Sim(format!("{url}: {e}")))?;
            for u in v["value"].as_array().into_iter().flatten() {
                let s = |k: &str| u[k].as_str().unwrap_or_default().to_string();
                out.push((s("id"), s("userPrincipalName"), s("displayName")));
            }
            next = v["@odata.nextLink"].as_str().map(str::to_string);
        }
        Ok(out)
    }
}

impl Drop for SimHost {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.stop();
        }
    }
}

fn client(ca: Option<&Path>) -> Result<reqwest::Client, BenchError> {
    let pem = ca
        .map(|p| std::fs::read(p).map_err(|e| BenchError::Setup(format!("{}: {e}", p.display()))))
        .transpose()?;
    m365sync_graph::http_client(pem.as_deref()).map_err(|e| BenchError::Setup(e.to_string()))
}

/// How many messages of a ground-truth mailbox a tenant with the default settings syncs:
/// every folder but the excluded well-known ones and their subfolders.
pub fn synced_by_default(mailbox: &serde_json::Value) -> u64 {
    use m365sync_store::tenants::DEFAULT_EXCLUDED_FOLDERS as EXCLUDED;
    let Some(folders) = mailbox["folders"].as_object() else {
        return 0;
    };
    let excluded_paths: Vec<&str> = EXCLUDED
        .iter()
        .filter_map(|k| folders.get(*k))
        .filter_map(|f| f["path"].as_str())
        .collect();
    folders
        .iter()
        .filter(|(key, f)| {
            let path = f["path"].as_str().unwrap_or(key.as_str());
            !EXCLUDED.contains(&key.as_str())
                && !excluded_paths
                    .iter()
                    .any(|p| path == *p || path.starts_with(&format!("{p}/")))
        })
        .map(|(_, f)| f["count"].as_u64().unwrap_or(0))
        .sum()
}
