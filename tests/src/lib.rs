//! The end-to-end harness.
//!
//! [`Edge`] runs the real Worker under `wrangler dev` (workerd with local
//! Durable Objects, SQLite storage and Queues) on a free loopback port, with
//! its own state directory and its own secrets. [`Capture`] is a target server
//! on loopback that records every request and answers as its path says.
//! Each test binary starts one edge and shares it across its tests; tests get
//! fresh state by creating their own triggers.
//!
//! Every response the harness sees is checked against every secret the suite
//! configured: a secret in a response body or header fails the test at once.

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod openapi;
pub mod pg;

pub use edgehook_core::encoding::{b64, b64_decode};
pub use edgehook_core::verify::hmac_sha256;

/// Secrets configured anywhere in this test process.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Registers a secret that no response may contain.
pub fn register_secret(secret: &str) {
    // Very short values would match by accident; the suite uses long ones.
    if secret.len() >= 8 {
        SECRETS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(secret.to_string());
    }
}

fn assert_no_secret(context: &str, text: &str) {
    for s in SECRETS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        assert!(
            !text.contains(s.as_str()),
            "a configured secret appears in {context}"
        );
    }
}

/// The project root (the workspace).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A response.
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl Resp {
    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running local edge.
pub struct Edge {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The management API's bearer token.
    pub admin_token: String,
    /// The dispatch signing secret (`whsec_…`).
    pub dispatch_secret: String,
    dir: PathBuf,
    port: u16,
    /// Times the runtime was started again on new ports (see `spawn`).
    port_retries: u32,
    child: Option<Child>,
    agent: ureq::Agent,
}

impl Edge {
    /// Starts an edge with fresh state in a new directory.
    pub fn start() -> Edge {
        Edge::start_with(true)
    }

    /// Starts an edge whose Worker does not consume the runs queue: a
    /// consumer outage, for as long as the edge runs.
    pub fn start_without_consumer() -> Edge {
        Edge::start_with(false)
    }

    fn start_with(consumer: bool) -> Edge {
        let dir = std::env::temp_dir().join(format!(
            "edgehook-e2e-{}-{}",
            std::process::id(),
            random_hex(4)
        ));
        std::fs::create_dir_all(&dir).expect("create state dir");
        let admin_token = format!("adm_{}", random_hex(16));
        let key = random_hex(24);
        let dispatch_secret = format!("whsec_{}", b64(key.as_bytes()));
        register_secret(&admin_token);
        register_secret(&dispatch_secret);
        std::fs::write(
            dir.join(".dev.vars"),
            format!("ADMIN_TOKEN={admin_token}\nDISPATCH_SECRET={dispatch_secret}\n"),
        )
        .expect("write .dev.vars");
        write_config(&dir, consumer);
        let mut edge = Edge {
            base: String::new(),
            admin_token,
            dispatch_secret,
            dir,
            port: free_port(),
            port_retries: 0,
            child: None,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .max_idle_connections_per_host(64)
                .build(),
        };
        edge.spawn();
        edge
    }

    /// Starts today's Worker on a copy of a saved state directory (with the
    /// `dev.vars` secrets it was made with), e.g. a ledger written by an
    /// older version, to test the upgrade in place.
    pub fn start_on_state(fixture: &Path) -> Edge {
        let dir = std::env::temp_dir().join(format!(
            "edgehook-e2e-{}-{}",
            std::process::id(),
            random_hex(4)
        ));
        std::fs::create_dir_all(&dir).expect("create state dir");
        copy_dir(&fixture.join("state"), &dir.join("state"));
        let vars = std::fs::read_to_string(fixture.join("dev.vars")).expect("read dev.vars");
        let var = |name: &str| {
            vars.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{name} in dev.vars"))
                .to_string()
        };
        let (admin_token, dispatch_secret) = (var("ADMIN_TOKEN"), var("DISPATCH_SECRET"));
        register_secret(&admin_token);
        register_secret(&dispatch_secret);
        std::fs::write(dir.join(".dev.vars"), &vars).expect("write .dev.vars");
        write_config(&dir, true);
        let mut edge = Edge {
            base: String::new(),
            admin_token,
            dispatch_secret,
            dir,
            port: free_port(),
            port_retries: 0,
            child: None,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build(),
        };
        edge.spawn();
        edge
    }

    /// Starts a do-nothing Worker (it answers `{}` to everything) on the same
    /// runtime, the baseline for benchmarks.
    pub fn start_noop() -> Edge {
        let dir = std::env::temp_dir().join(format!(
            "edgehook-noop-{}-{}",
            std::process::id(),
            random_hex(4)
        ));
        std::fs::create_dir_all(&dir).expect("create dir");
        std::fs::write(
            dir.join("noop.js"),
            "export default { async fetch(request) { await request.arrayBuffer(); \
             return new Response('{}', { headers: { 'content-type': 'application/json' } }); } };\n",
        )
        .expect("write noop.js");
        std::fs::write(
            dir.join("wrangler.toml"),
            "name = \"noop\"\nmain = \"noop.js\"\ncompatibility_date = \"2026-04-01\"\n",
        )
        .expect("write wrangler.toml");
        let mut edge = Edge {
            base: String::new(),
            admin_token: String::new(),
            dispatch_secret: String::new(),
            dir,
            port: free_port(),
            port_retries: 0,
            child: None,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build(),
        };
        edge.spawn();
        edge
    }

    /// The directory holding config, secrets, logs and state.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The Durable Object state directory of the Trigger class.
    pub fn trigger_state_dir(&self) -> PathBuf {
        self.dir.join("state/v3/do/edgehook-Trigger")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("wrangler.log")
    }

    /// The tail of wrangler's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// The whole wrangler log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let root = root();
        let wrangler = root.join("node_modules/.bin/wrangler");
        assert!(
            root.join("build/worker/shim.mjs").exists(),
            "the Worker is not built: run `make build` (make test does)"
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open log");
        let mut cmd = Command::new(wrangler);
        cmd.args(["dev", "--config"])
            .arg(self.dir.join("wrangler.toml"))
            .args(["--ip", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--persist-to")
            .arg(self.dir.join("state"))
            .arg("--show-interactive-dev-session=false")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_SEND_ERROR_REPORTS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("EDGEHOOK_SKIP_BUILD", "1")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("spawn wrangler");
        let pgid = child.id();
        // The test harness does not run destructors of statics: a watchdog
        // stops wrangler (and its workerd) when this test process exits.
        let _ = Command::new("bash")
            .arg("-c")
            .arg("while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; kill -INT -- -\"$2\" 2>/dev/null; sleep 3; kill -KILL -- -\"$2\" 2>/dev/null")
            .args(["watchdog", &std::process::id().to_string(), &pgid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        self.child = Some(child);
        self.base = format!("http://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    // Free ports are picked before wrangler binds them, so
                    // another process may take one first: start again on
                    // new ports (a few times) rather than fail the suite.
                    let log = self.log_tail();
                    if log.contains("Address already in use") && self.port_retries < 3 {
                        self.port_retries += 1;
                        self.child = None;
                        self.port = free_port();
                        return self.spawn();
                    }
                    panic!("wrangler exited with {status}:\n{log}");
                }
            }
            if let Ok(r) = self.agent.get(&format!("{}/healthz", self.base)).call() {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "wrangler did not become ready:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Kills wrangler and workerd with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
        // Wait for the port to be free again.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts wrangler again on the same state and port.
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// Sends a request and returns its response, whatever the status.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let url = format!("{}{}", self.base, path);
        let mut req = self.agent.request(method, &url);
        for (n, v) in headers {
            req = req.set(n, v);
        }
        let result = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path} failed: {e}\n{}", self.log_tail()),
        };
        let status = resp.status();
        let headers: Vec<(String, String)> = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| {
                resp.header(&n)
                    .map(|v| (n.to_ascii_lowercase(), v.to_string()))
            })
            .collect();
        let mut body = String::new();
        let _ = resp
            .into_reader()
            .take(64 * 1024 * 1024)
            .read_to_string(&mut body);
        for (n, v) in &headers {
            assert_no_secret(&format!("header {n} of {method} {path}"), v);
        }
        assert_no_secret(&format!("the body of {method} {path}"), &body);
        // Every 5xx is a bug, except the deliberate 507 of a trigger at its
        // storage budget.
        assert!(
            status < 500 || (status == 507 && body.contains("storage_budget_exceeded")),
            "{method} {path} answered {status}: {body}\n{}",
            self.log_tail()
        );
        let content_type = headers
            .iter()
            .find(|(n, _)| n == "content-type")
            .map(|(_, v)| v.as_str());
        openapi::check(method, path, status, content_type, &body);
        Resp {
            status,
            headers,
            body,
        }
    }

    /// A management API call with the admin token.
    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let auth = format!("Bearer {}", self.admin_token);
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json"));
        self.request(
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            bytes.as_deref(),
        )
    }

    /// Creates a trigger (registering its secret) and returns it.
    pub fn create_trigger(&self, body: Value) -> Value {
        if let Some(s) = body.get("signing_secret").and_then(Value::as_str) {
            register_secret(s);
        }
        let r = self.admin("POST", "/api/triggers", Some(&body));
        assert_eq!(r.status, 201, "create trigger: {}", r.body);
        r.json()
    }

    /// Posts to a trigger's ingress URL.
    pub fn hook(&self, trigger_id: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.request("POST", &format!("/hooks/{trigger_id}"), headers, Some(body))
    }

    /// A delivery's full detail.
    pub fn delivery(&self, trigger_id: &str, delivery_id: &str) -> Value {
        let r = self.admin(
            "GET",
            &format!("/api/triggers/{trigger_id}/deliveries/{delivery_id}"),
            None,
        );
        assert_eq!(r.status, 200, "get delivery: {}", r.body);
        r.json()
    }

    /// Polls a delivery until `done` holds, or panics after `timeout`.
    pub fn wait_delivery(
        &self,
        trigger_id: &str,
        delivery_id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let d = self.delivery(trigger_id, delivery_id);
            if done(&d) {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "delivery did not reach the expected state: {d}\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every delivery of a trigger, through the change feed.
    pub fn all_changes(&self, trigger_id: &str) -> Vec<Value> {
        let mut after = 0;
        let mut out = Vec::new();
        loop {
            let r = self.admin(
                "GET",
                &format!("/api/triggers/{trigger_id}/changes?after={after}&limit=100"),
                None,
            );
            assert_eq!(r.status, 200, "changes: {}", r.body);
            let page = r.json();
            out.extend(page["changes"].as_array().cloned().unwrap_or_default());
            after = page["next_after"].as_i64().expect("next_after");
            if !page["has_more"].as_bool().unwrap_or(false) {
                return out;
            }
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", "--", &format!("-{}", child.id())])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }
}

/// Writes a wrangler config for prebuilt output: the project's own, with an
/// absolute `main` and no `[build]` section (the harness builds once), and
/// without the queue consumer unless `consumer`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

fn write_config(dir: &Path, consumer: bool) {
    let root = root().canonicalize().expect("root");
    let text = std::fs::read_to_string(root.join("wrangler.toml")).expect("read wrangler.toml");
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            skipping = trimmed == "[build]" || (!consumer && trimmed == "[[queues.consumers]]");
        }
        if skipping {
            continue;
        }
        if trimmed.starts_with("main =") {
            out.push_str(&format!(
                "main = \"{}\"\n",
                root.join("build/worker/shim.mjs").display()
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(dir.join("wrangler.toml"), out).expect("write wrangler.toml");
}

/// The edge shared by all tests of one test binary.
pub fn shared() -> &'static Edge {
    static EDGE: OnceLock<Edge> = OnceLock::new();
    EDGE.get_or_init(Edge::start)
}

/// One request a [`Capture`] server received.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Path and query.
    pub path: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

impl Captured {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A target server on loopback. Its answer depends on the path:
/// `/ok/…` 200; `/fail/…` 500 (body `target exploded`); `/flaky/{n}/…` 500
/// for the first `n` requests to that path, then 200; `/slow/{ms}/…` 200
/// after `ms` milliseconds; `/chaos/{ms}/…` after a delay of up to `ms`
/// that depends on the body, and 500 to the first attempt of every third
/// body (so runs finish out of order and retry). [`Capture::set_status`]
/// overrides any path's answer.
pub struct Capture {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    seen: Arc<Mutex<Vec<Captured>>>,
    overrides: Arc<Mutex<HashMap<String, u16>>>,
}

impl Capture {
    /// Starts a capture server.
    pub fn start() -> Capture {
        Capture::start_on(0)
    }

    /// Starts a capture server on `port` (0: any free port), e.g. where a
    /// target that was down comes back.
    pub fn start_on(port: u16) -> Capture {
        let server = tiny_http::Server::http(("127.0.0.1", port)).expect("capture server");
        let port = server.server_addr().to_ip().expect("ip addr").port();
        let seen: Arc<Mutex<Vec<Captured>>> = Arc::new(Mutex::new(Vec::new()));
        let counts: Arc<Mutex<HashMap<String, u32>>> = Arc::new(Mutex::new(HashMap::new()));
        let overrides: Arc<Mutex<HashMap<String, u16>>> = Arc::new(Mutex::new(HashMap::new()));
        let seen2 = seen.clone();
        let overrides2 = overrides.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let seen = seen2.clone();
                let counts = counts.clone();
                let overrides = overrides2.clone();
                std::thread::spawn(move || {
                    let mut body = Vec::new();
                    let _ = req.as_reader().read_to_end(&mut body);
                    let path = req.url().to_string();
                    let headers: Vec<(String, String)> = req
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.as_str().as_str().to_ascii_lowercase(),
                                h.value.as_str().to_string(),
                            )
                        })
                        .collect();
                    let first_attempt = headers
                        .iter()
                        .any(|(n, v)| n == "x-edgehook-attempt" && v == "1");
                    let digest: u64 = body
                        .iter()
                        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)));
                    seen.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Captured {
                            path: path.clone(),
                            headers,
                            body,
                            at: Instant::now(),
                        });
                    let n = {
                        let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
                        let e = c.entry(path.clone()).or_insert(0);
                        *e += 1;
                        *e
                    };
                    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                    let status = match segs.as_slice() {
                        ["fail", ..] => 500,
                        ["flaky", k, ..] if n <= k.parse::<u32>().unwrap_or(0) => 500,
                        ["slow", ms, ..] => {
                            std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
                            200
                        }
                        ["chaos", ms, ..] => {
                            let max = ms.parse::<u64>().unwrap_or(0).max(1);
                            std::thread::sleep(Duration::from_millis(digest % max));
                            if first_attempt && digest.is_multiple_of(3) {
                                500
                            } else {
                                200
                            }
                        }
                        _ => 200,
                    };
                    let status = overrides
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&path)
                        .copied()
                        .unwrap_or(status);
                    let text = if status >= 500 {
                        "target exploded"
                    } else {
                        "ok"
                    };
                    // Each connection is closed after its answer: the
                    // runtime opens one per attempt, and thousands left
                    // idle would exhaust its file descriptors in a soak.
                    let close = tiny_http::Header::from_bytes(&b"connection"[..], &b"close"[..])
                        .expect("a valid header");
                    let _ = req.respond(
                        tiny_http::Response::from_string(text)
                            .with_status_code(status)
                            .with_header(close),
                    );
                });
            }
        });
        Capture {
            base: format!("http://127.0.0.1:{port}"),
            seen,
            overrides,
        }
    }

    /// Makes `path` answer `status` from now on.
    pub fn set_status(&self, path: &str, status: u16) {
        self.overrides
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_string(), status);
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Requests received for `path` so far.
    pub fn received(&self, path: &str) -> Vec<Captured> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }

    /// Waits until `path` has received at least `n` requests.
    pub fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Captured> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{path} received {} of {n} requests",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `quick` in `make test`, `full` in `make soak` (`EDGEHOOK_SOAK=1`).
pub fn scaled(quick: usize, full: usize) -> usize {
    if std::env::var_os("EDGEHOOK_SOAK").is_some() {
        full
    } else {
        quick
    }
}

/// A POST that reports a transport failure instead of panicking, for
/// clients that keep sending while the runtime is killed under them.
pub fn try_post(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String), String> {
    let mut req = agent.post(url);
    for (n, v) in headers {
        req = req.set(n, v);
    }
    let resp = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let text = resp.into_string().map_err(|e| e.to_string())?;
    Ok((status, text))
}

/// Sends raw bytes over one HTTP/1.1 connection and returns the status and
/// body of the answer, or `None` if the server closed without one. For the
/// requests no client library will send: repeated or non-ASCII headers,
/// unknown methods. [`raw_http_cut`] sends a body shorter than declared.
pub fn raw_http(base: &str, request: &[u8]) -> Option<(u16, String)> {
    raw(base, request, false)
}

/// As [`raw_http`], then closes the sending side: a body shorter than its
/// `Content-Length` ends there, as when a client dies mid-upload.
pub fn raw_http_cut(base: &str, request: &[u8]) -> Option<(u16, String)> {
    raw(base, request, true)
}

fn raw(base: &str, request: &[u8], cut: bool) -> Option<(u16, String)> {
    use std::io::Write;
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    stream.write_all(request).ok()?;
    if cut {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    for s in SECRETS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        assert!(
            !text.contains(s.as_str()),
            "a configured secret appears in a raw response"
        );
    }
    Some((status, body))
}

/// `base` with the fields of `extra` added or replaced (both JSON objects).
pub fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(o), Value::Object(e)) = (base.as_object_mut(), extra) {
        o.extend(e);
    }
    base
}

/// A unique name for a test's paths and triggers.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex(6))
}

/// GitHub's `X-Hub-Signature-256` value.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), &[body])))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the epoch, from this machine's clock (the edge's is the same).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
