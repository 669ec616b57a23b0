//! [`Browser`]: Debian's headless Chromium driven through `chromedriver`
//! with the W3C WebDriver protocol, spoken over plain HTTP with `ureq` (a
//! dozen commands; no client crate, no downloaded browser).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::free_port;

/// The key W3C WebDriver uses for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long `find` and `wait_*` wait before failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// A headless Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    agent: ureq::Agent,
}

impl Browser {
    /// Starts `chromedriver` on a free port and a Chromium session.
    ///
    /// A session is asked for up to three times: on a loaded two-core
    /// machine, Chromium now and then dies while starting (chromedriver
    /// answers 500), which says nothing about the console under test.
    pub fn start() -> Browser {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Browser::try_start() {
                Ok(browser) => return browser,
                Err(e) => {
                    failures.push(e);
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        panic!("no Chromium session: {failures:?}");
    }

    fn try_start() -> Result<Browser, String> {
        let port = free_port();
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (make test installs Debian's chromium-driver)");
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        let root = format!("http://127.0.0.1:{port}");
        let session = Browser::session(&agent, &root);
        match session {
            Ok(session) => Ok(Browser {
                driver,
                base: format!("{root}/session/{session}"),
                agent,
            }),
            Err(e) => {
                let _ = driver.kill();
                let _ = driver.wait();
                Err(e)
            }
        }
    }

    /// Waits for `chromedriver` at `root` and asks it for a session.
    fn session(agent: &ureq::Agent, root: &str) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while agent.get(&format!("{root}/status")).call().is_err() {
            if Instant::now() >= deadline {
                return Err("chromedriver did not start".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"]
            }
        }}});
        let text = match agent
            .post(&format!("{root}/session"))
            .set("content-type", "application/json")
            .send_string(&caps.to_string())
        {
            Ok(r) => r.into_string().map_err(|e| e.to_string())?,
            Err(ureq::Error::Status(code, r)) => {
                let why = r.into_string().unwrap_or_default();
                return Err(format!(
                    "{code}: {}",
                    why.chars().take(300).collect::<String>()
                ));
            }
            Err(e) => return Err(e.to_string()),
        };
        let resp: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        resp["value"]["sessionId"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no session id in {text}"))
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let req = self.agent.request(method, &url);
        let resp = match body {
            Some(b) => req
                .set("content-type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        let resp = match resp {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("webdriver {method} {path}: {e}"),
        };
        let text = resp.into_string().expect("webdriver answer");
        let v: Value = serde_json::from_str(&text).expect("webdriver json");
        v["value"].clone()
    }

    fn try_cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let v = self.cmd(method, path, body);
        match v.get("error").and_then(Value::as_str) {
            Some(e) => Err(format!("{e}: {}", v["message"])),
            None => Ok(v),
        }
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.try_cmd("POST", "/url", Some(json!({"url": url})))
            .expect("navigate");
    }

    /// The page's current URL.
    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns
    /// its result.
    pub fn exec(&self, script: &str, args: Value) -> Value {
        self.try_cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    fn find_once(&self, css: &str) -> Option<String> {
        self.try_cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()
        .and_then(|v| v[ELEMENT].as_str().map(str::to_string))
    }

    /// The first element matching `css`, waiting for it to appear.
    pub fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(id) = self.find_once(css) {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} on {}:\n{}",
                self.url(),
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// How many elements match `css` now.
    pub fn count(&self, css: &str) -> usize {
        self.exec(
            "return document.querySelectorAll(arguments[0]).length",
            json!([css]),
        )
        .as_u64()
        .unwrap_or(0) as usize
    }

    /// Waits until `done` holds for the page, or panics with `what`.
    pub fn wait_until(&self, what: &str, done: impl Fn(&Browser) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} on {}:\n{}",
                self.url(),
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Clicks the first element matching `css`.
    pub fn click(&self, css: &str) {
        let id = self.find(css);
        self.try_cmd("POST", &format!("/element/{id}/click"), Some(json!({})))
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types `text` into the first element matching `css` (after clearing it).
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        let _ = self.try_cmd("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.try_cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// The rendered text of the first element matching `css` ("" if none).
    pub fn text(&self, css: &str) -> String {
        self.exec(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''",
            json!([css]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The page's HTML as it is now.
    pub fn html(&self) -> String {
        self.exec("return document.documentElement.outerHTML", json!([]))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Every URL the page has requested (resource timing), and its own.
    pub fn requested_urls(&self) -> Vec<String> {
        let v = self.exec(
            "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])",
            json!([]),
        );
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = edgehook_core::encoding::b64_decode(b64.as_str().expect("screenshot"))
            .expect("screenshot base64");
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.base).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
