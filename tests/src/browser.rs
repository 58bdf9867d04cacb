//! Debian's headless Chromium, driven over WebDriver by `fantoccini`: enough to walk the
//! widget like a person (open, type, click, read, screenshot, switch frames).
//!
//! `Browser::start` runs `chromedriver` on a free loopback port and opens a session with a
//! fresh profile; dropping the browser ends both, the session first (so chromedriver quits
//! Chromium instead of leaving it behind).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long a wait for the page lasts.
const WAIT: Duration = Duration::from_secs(15);

/// A headless Chromium driven over WebDriver.
pub struct Browser {
    driver: Child,
    /// Where chromedriver listens.
    base: String,
    /// The session.
    web: Client,
    /// Its id, to end it when dropped (which cannot await).
    session: String,
    shots: PathBuf,
    shot: u32,
    profile: PathBuf,
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
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()), "--window-size=420,900", "--lang=de-DE",
                ]
            }
        });
        let Value::Object(caps) = caps else {
            unreachable!("an object literal")
        };
        let web = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&base)
            .await
            .unwrap_or_else(|e| panic!("no WebDriver session: {e}"));
        let session = web.session_id().await.ok().flatten().expect("a session id");
        Self {
            driver,
            base,
            web,
            session,
            shots,
            shot: 0,
            profile,
        }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.web.goto(url).await.expect("goto");
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.web
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// Waits up to 15 s for an element to appear, and returns it.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .web
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!("no element {css} on {}: {e}", self.url().await),
        }
    }

    /// Waits up to 15 s until no element matches `css` (a page has replaced another).
    pub async fn wait_gone(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
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
        self.web
            .find_all(Locator::Css(css))
            .await
            .is_ok_and(|found| !found.is_empty())
    }

    /// Clicks an element.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    /// Types into an element.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.find(css).await.send_keys(text).await.expect("type");
    }

    /// The visible text of an element.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    /// An attribute of an element.
    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        self.find(css).await.attr(name).await.expect("attribute")
    }

    /// Runs a script in the page and returns its value.
    pub async fn execute(&self, script: &str) -> Value {
        self.web.execute(script, Vec::new()).await.expect("script")
    }

    /// Waits up to 15 s until the URL starts with `prefix`.
    pub async fn wait_for_url(&self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
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
        self.find(css).await.enter_frame().await.expect("frame");
    }

    /// Switches back out of the iframe entered last (the tests enter one, from the top).
    pub async fn leave_frames(&self) {
        self.web.enter_parent_frame().await.expect("parent frame");
    }

    /// Saves a screenshot as `NN-step.png` under `target/screenshots/<name>/`.
    pub async fn screenshot(&mut self, step: &str) -> PathBuf {
        self.shot += 1;
        let png = self.web.screenshot().await.expect("screenshot");
        let path = self.shots.join(format!("{:02}-{step}.png", self.shot));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End the session first, so chromedriver quits Chromium: killing chromedriver alone
        // leaves Chromium running as an orphan (hundreds of them over many runs). Drop cannot
        // await `Client::close`, so this is one plain blocking HTTP request.
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
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
