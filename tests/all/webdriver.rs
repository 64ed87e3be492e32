//! A small W3C WebDriver client over reqwest, driving Debian's headless chromium through
//! `chromedriver` for the console's browser tests: a session, navigation, elements found by
//! CSS selector, clicks, typing, text and screenshots. No crate of its own: the protocol is a
//! handful of JSON calls.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// The key W3C WebDriver names an element reference with.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where chromedriver is, or why the browser tests cannot run here. With `CI=true` a missing
/// driver fails the test (CI installs it, `.ci/run`); elsewhere the test is skipped, saying so.
pub fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").ok().as_deref() != Some("true"),
        "the console's browser tests need chromedriver ({}): `apt-get install chromium chromium-driver` (.ci/run does)",
        path.display()
    );
    eprintln!(
        "skipped: no chromedriver at {} (install chromium and chromium-driver to run the console's browser tests)",
        path.display()
    );
    None
}

/// A chromedriver process and one headless chromium session in it.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    /// Where screenshots go (`M365SYNC_SCREENSHOTS`, relative to the workspace), if anywhere.
    shots: Option<PathBuf>,
}

/// One element of the page, by its WebDriver reference.
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free port and a headless chromium session with a 1280x800
    /// window.
    pub async fn start(driver: &Path) -> Browser {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        break;
                    }
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            // The sandbox's simulated identity platform serves https under the sandbox's own
            // CA, which this throwaway browser profile does not trust.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,800"],
            },
        }}});
        let shots = std::env::var_os("M365SYNC_SCREENSHOTS").map(|d| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(d);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        });
        let mut b = Browser {
            driver: child,
            base,
            http,
            shots,
        };
        let v = b.call("POST", "/session", caps).await;
        let id = v["sessionId"].as_str().expect("a session id").to_string();
        b.base = format!("{}/session/{id}", b.base);
        b
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let resp = req.send().await.expect("chromedriver answers");
        let status = resp.status();
        let v: Value = resp.json().await.expect("chromedriver answers JSON");
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {v}"
        );
        v["value"].clone()
    }

    /// Opens a URL.
    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    /// The elements matching a CSS selector now (none is not an error).
    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.call(
            "POST",
            "/elements",
            json!({ "using": "css selector", "value": css }),
        )
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Element(e[ELEMENT].as_str().unwrap().to_string()))
        .collect()
    }

    /// The first element matching `css`, waiting up to 20 s for the page to render it.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(e) = self.all(css).await.into_iter().next() {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} on the page; it shows: {}",
                self.page_text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to 20 s until the element `css` exists and its text contains `text`; answers
    /// its text.
    pub async fn wait_text(&self, css: &str, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for e in self.all(css).await {
                let t = self.text(&e).await;
                if t.contains(text) {
                    return t;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {css} saying {text:?}; the page shows: {}",
                self.page_text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the whole page, for assertions' messages.
    pub async fn page_text(&self) -> String {
        match self.all("body").await.into_iter().next() {
            Some(b) => self.text(&b).await,
            None => String::new(),
        }
    }

    /// The rendered text of an element.
    pub async fn text(&self, e: &Element) -> String {
        // An element replaced meanwhile is stale: its text is then nothing.
        let url = format!("{}/element/{}/text", self.base, e.0);
        match self.http.get(url).send().await {
            Ok(r) if r.status().is_success() => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["value"].as_str().map(str::to_string))
                .unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Clicks an element.
    pub async fn click(&self, e: &Element) {
        self.call("POST", &format!("/element/{}/click", e.0), json!({}))
            .await;
    }

    /// Types into an element.
    pub async fn type_into(&self, e: &Element, text: &str) {
        self.call(
            "POST",
            &format!("/element/{}/value", e.0),
            json!({ "text": text }),
        )
        .await;
    }

    /// Empties an input (W3C Element Clear), before typing a new value into it.
    pub async fn clear(&self, e: &Element) {
        self.call("POST", &format!("/element/{}/clear", e.0), json!({}))
            .await;
    }

    /// A property of an element (`value`, `checked`).
    pub async fn property(&self, e: &Element, name: &str) -> Value {
        self.call(
            "GET",
            &format!("/element/{}/property/{name}", e.0),
            json!(null),
        )
        .await
    }

    /// Resizes the window (a phone's width, say).
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await;
    }

    /// Saves a PNG of the window as `NAME.png` when `M365SYNC_SCREENSHOTS` names a directory.
    pub async fn screenshot(&self, name: &str) {
        let Some(dir) = &self.shots else { return };
        let v = self.call("GET", "/screenshot", json!(null)).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (closing chromium) on a thread of its own: Drop cannot await.
        let url = self.base.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let _ = reqwest::Client::new().delete(url).send().await;
            });
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
