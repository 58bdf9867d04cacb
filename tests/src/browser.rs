//! A small W3C WebDriver client for Debian's headless Chromium: enough to walk the widget
//! like a person (open, type, click, read, screenshot, switch frames).
//!
//! `Browser::start` runs `chromedriver` on a free loopback port and opens a session with a
//! fresh profile; dropping the browser ends both.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium driven over WebDriver.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    shots: PathBuf,
    shot: u32,
    _profile: PathBuf,
}

fn which(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| (*p).to_owned())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a phone-sized window. `target_tmp` is
    /// the test's `CARGO_TARGET_TMPDIR`; screenshots go to `target/screenshots/<name>/`.
    ///
    /// # Panics
    /// When Chromium or chromedriver are missing or do not start: the browser tests need
    /// them (`.ci/run` installs Debian's `chromium` and `chromium-driver`).
    pub async fn start(name: &str, target_tmp: &str) -> Self {
        let chromium = which(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]).expect(
            "Chromium is needed for the widget tests: apt-get install chromium chromium-driver",
        );
        let chromedriver = which(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
            .expect("chromedriver is needed for the widget tests: apt-get install chromium-driver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{base}/status")).send().await.ok();
            let ready = match ready {
                Some(r) => r
                    .json::<Value>()
                    .await
                    .ok()
                    .is_some_and(|v| v["value"]["ready"] == true),
                None => false,
            };
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let target = PathBuf::from(target_tmp);
        let profile = target.join(format!("chromium-profile-{}-{port}", std::process::id()));
        let shots = target
            .parent()
            .unwrap_or(&target)
            .join("screenshots")
            .join(name);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).expect("screenshot directory");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()), "--window-size=420,900", "--lang=de-DE",
                ]
            }
        }}});
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let session = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {res}"))
            .to_owned();
        Self {
            driver,
            base,
            session,
            http,
            shots,
            shot: 0,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .expect("webdriver call")
            .json()
            .await
            .expect("webdriver json");
        if v["value"]["error"].is_string() {
            panic!("WebDriver {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn try_find(&self, css: &str) -> Option<String> {
        let url = format!("{}/session/{}/element", self.base, self.session);
        let v: Value = self
            .http
            .post(url)
            .json(&json!({ "using": "css selector", "value": css }))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["value"][ELEMENT].as_str().map(str::to_owned)
    }

    /// Waits up to 15 s for an element to appear, and returns its id.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(id) = self.try_find(css).await {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to 15 s until no element matches `css` (a page has replaced another).
    pub async fn wait_gone(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.has(css).await {
            assert!(
                Instant::now() < deadline,
                "{css} is still on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether an element is there now.
    pub async fn has(&self, css: &str) -> bool {
        self.try_find(css).await.is_some()
    }

    /// Clicks an element.
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Types into an element.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The visible text of an element.
    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// An attribute of an element.
    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::GET,
            &format!("/element/{id}/attribute/{name}"),
            None,
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// Runs a script in the page and returns its value.
    pub async fn execute(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Waits up to 15 s until the URL starts with `prefix`.
    pub async fn wait_for_url(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url().await;
            if url.starts_with(prefix) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "still at {url}, expected {prefix}…"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Switches into the iframe matching `css`.
    pub async fn enter_frame(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            "/frame",
            Some(json!({ "id": { ELEMENT: id } })),
        )
        .await;
    }

    /// Switches back to the top page.
    pub async fn leave_frames(&self) {
        self.call(reqwest::Method::POST, "/frame", Some(json!({ "id": null })))
            .await;
    }

    /// Saves a screenshot as `NN-step.png` under `target/screenshots/<name>/`.
    pub async fn screenshot(&mut self, step: &str) -> PathBuf {
        self.shot += 1;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("png");
        let path = self.shots.join(format!("{:02}-{step}.png", self.shot));
        std::fs::write(&path, bytes).expect("write screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End the session first, so chromedriver quits Chromium: killing chromedriver alone
        // leaves Chromium running as an orphan (hundreds of them over many runs). Drop cannot
        // await, so this is one plain blocking HTTP request.
        if let Some(addr) = self.base.strip_prefix("http://") {
            if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
                use std::io::{Read as _, Write as _};
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    stream,
                    "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.session
                );
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self._profile);
    }
}
