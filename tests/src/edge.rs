//! [`Edge`]: the real Worker under `wrangler dev` on free loopback ports,
//! with its own state directory and secrets, and the requests tests make
//! to it (every response checked for secrets and against the OpenAPI
//! document).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{assert_no_secret, b64, free_port, openapi, random_hex, register_secret, root};

/// A response.
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body text (lossy where the body is not UTF-8).
    pub body: String,
    /// Body bytes.
    pub bytes: Vec<u8>,
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

/// What runs a Worker: `wrangler dev`, or Miniflare's API without
/// wrangler's proxy and inspector (`bench/miniflare.mjs`, for benchmarks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// `wrangler dev` with the `wrangler.toml` in the edge's directory.
    Wrangler,
    /// `node bench/miniflare.mjs <worker>`: `edgehook`,
    /// `edgehook-without-consumer`, `edgehook-platform-slots`, `noop`,
    /// `floor-rpc`, `floor-fetch`, `floor-js-ledger`, `floor-rust`,
    /// `floor-rust-ledger` or `floor-rpc-consumer`.
    Miniflare(&'static str),
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
    runtime: Runtime,
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
        let dir = new_dir("edgehook-e2e");
        let admin_token = format!("adm_{}", random_hex(16));
        let key = random_hex(24);
        let dispatch_secret = format!("whsec_{}", b64(key.as_bytes()));
        let vars = format!("ADMIN_TOKEN={admin_token}\nDISPATCH_SECRET={dispatch_secret}\n");
        Edge::launch(dir, &vars, consumer)
    }

    /// Starts today's Worker on a copy of a saved state directory (with the
    /// `dev.vars` secrets it was made with), e.g. a ledger written by an
    /// older version, to test the upgrade in place.
    pub fn start_on_state(fixture: &Path) -> Edge {
        let dir = new_dir("edgehook-e2e");
        copy_dir(&fixture.join("state"), &dir.join("state"));
        let vars = std::fs::read_to_string(fixture.join("dev.vars")).expect("read dev.vars");
        Edge::launch(dir, &vars, true)
    }

    /// Writes `vars` (`.dev.vars`, with `ADMIN_TOKEN` and `DISPATCH_SECRET`)
    /// and the Worker's config into `dir`, and starts it there.
    fn launch(dir: PathBuf, vars: &str, consumer: bool) -> Edge {
        let var = |name: &str| {
            vars.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{name} in .dev.vars"))
                .to_string()
        };
        let (admin_token, dispatch_secret) = (var("ADMIN_TOKEN"), var("DISPATCH_SECRET"));
        register_secret(&admin_token);
        register_secret(&dispatch_secret);
        std::fs::write(dir.join(".dev.vars"), vars).expect("write .dev.vars");
        write_config(&dir, consumer);
        Edge::run(dir, admin_token, dispatch_secret, Runtime::Wrangler)
    }

    /// Starts the Worker under Miniflare's API (see [`Runtime`]) with fresh
    /// state: `edgehook` or `edgehook-without-consumer`.
    pub fn start_miniflare(worker: &'static str) -> Edge {
        let dir = new_dir("edgehook-mf");
        let admin_token = format!("adm_{}", random_hex(16));
        let dispatch_secret = format!("whsec_{}", b64(random_hex(24).as_bytes()));
        register_secret(&admin_token);
        register_secret(&dispatch_secret);
        Edge::run(
            dir,
            admin_token,
            dispatch_secret,
            Runtime::Miniflare(worker),
        )
    }

    /// Starts a benchmark reference Worker: `noop`, the JavaScript floor
    /// (`bench/floor/floor.js`, `floor-rpc` or `floor-fetch`) or the Rust
    /// floor (`bench/floor-rust`, built by `make bench`: `floor-rust`, or
    /// `floor-rust-ledger` writing edgehook's rows) verifying GitHub
    /// signatures made with `secret`; under `wrangler dev` or Miniflare.
    pub fn start_reference(worker: &'static str, secret: &str, miniflare: bool) -> Edge {
        let dir = new_dir("edgehook-ref");
        std::fs::write(dir.join(".dev.vars"), format!("FLOOR_SECRET={secret}\n"))
            .expect("write .dev.vars");
        if miniflare {
            return Edge::run(
                dir,
                String::new(),
                String::new(),
                Runtime::Miniflare(worker),
            );
        }
        let root = root().canonicalize().expect("root");
        let config = match worker {
            "noop" => {
                std::fs::write(
                    dir.join("noop.js"),
                    "export default { async fetch(request) { await request.arrayBuffer(); \
                     return new Response('{}', { headers: { 'content-type': 'application/json' } }); } };\n",
                )
                .expect("write noop.js");
                "name = \"noop\"\nmain = \"noop.js\"\ncompatibility_date = \"2026-04-01\"\n"
                    .to_string()
            }
            "floor-rpc" | "floor-fetch" => format!(
                "name = \"floor\"\nmain = \"{}\"\ncompatibility_date = \"2026-04-01\"\n\
                 [vars]\nFLOOR_MODE = \"{}\"\n\
                 [[durable_objects.bindings]]\nname = \"LEDGER\"\nclass_name = \"Ledger\"\n\
                 [[migrations]]\ntag = \"v1\"\nnew_sqlite_classes = [\"Ledger\"]\n\
                 [[queues.producers]]\nbinding = \"RUNS\"\nqueue = \"floor-runs\"\n",
                root.join("bench/floor/floor.js").display(),
                worker.trim_start_matches("floor-"),
            ),
            "floor-rust" | "floor-rust-ledger" => format!(
                "name = \"floor-rust\"\nmain = \"{}\"\ncompatibility_date = \"2026-04-01\"\n\
                 [vars]\nFLOOR_LEDGER = \"{}\"\n\
                 [[durable_objects.bindings]]\nname = \"LEDGER\"\nclass_name = \"Ledger\"\n\
                 [[migrations]]\ntag = \"v1\"\nnew_sqlite_classes = [\"Ledger\"]\n\
                 [[queues.producers]]\nbinding = \"RUNS\"\nqueue = \"floor-runs\"\n",
                root.join("target/floor-rust/entry.mjs").display(),
                if worker == "floor-rust-ledger" {
                    "edgehook"
                } else {
                    "none"
                },
            ),
            other => panic!("no reference Worker {other}"),
        };
        std::fs::write(dir.join("wrangler.toml"), config).expect("write wrangler.toml");
        Edge::run(dir, String::new(), String::new(), Runtime::Wrangler)
    }

    /// Starts the RPC floor under Miniflare with a do-nothing consumer of
    /// its queue that POSTs each message's delivery id (as `webhook-id`) to
    /// `target`: the local queue's own pace, for the dispatch section.
    pub fn start_floor_consumer(secret: &str, target: &str) -> Edge {
        let dir = new_dir("edgehook-ref");
        std::fs::write(
            dir.join(".dev.vars"),
            format!("FLOOR_SECRET={secret}\nFLOOR_TARGET={target}\n"),
        )
        .expect("write .dev.vars");
        Edge::run(
            dir,
            String::new(),
            String::new(),
            Runtime::Miniflare("floor-rpc-consumer"),
        )
    }

    /// Starts `runtime` in `dir`, which holds its config.
    fn run(dir: PathBuf, admin_token: String, dispatch_secret: String, runtime: Runtime) -> Edge {
        let mut edge = Edge {
            base: String::new(),
            admin_token,
            dispatch_secret,
            dir,
            port: free_port(),
            port_retries: 0,
            runtime,
            child: None,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .max_idle_connections_per_host(64)
                .build(),
        };
        edge.spawn();
        edge
    }

    /// Starts a do-nothing Worker (it answers `{}` to everything) on the same
    /// runtime, the baseline for benchmarks.
    pub fn start_noop() -> Edge {
        Edge::start_reference("noop", "", false)
    }

    /// The directory holding config, secrets, logs and state.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The Durable Object state directory of the Trigger class.
    pub fn trigger_state_dir(&self) -> PathBuf {
        match self.runtime {
            Runtime::Wrangler => self.dir.join("state/v3/do/edgehook-Trigger"),
            Runtime::Miniflare(_) => self.dir.join("state/do/-Trigger"),
        }
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
            root.join("build/entry.mjs").exists(),
            "the Worker is not built: run `make build` (make test does)"
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open log");
        let mut cmd = match self.runtime {
            Runtime::Wrangler => {
                let mut cmd = Command::new(wrangler);
                cmd.args(["dev", "--config"])
                    .arg(self.dir.join("wrangler.toml"))
                    .args(["--ip", "127.0.0.1", "--port", &self.port.to_string()])
                    .args(["--inspector-port", &free_port().to_string()])
                    .arg("--persist-to")
                    .arg(self.dir.join("state"))
                    .arg("--show-interactive-dev-session=false")
                    // As `make dev` does: the local runtime has no limit on
                    // connections waiting for headers.
                    .args(["--var", "DISPATCH_SEND_SLOTS:100"]);
                cmd
            }
            Runtime::Miniflare(worker) => {
                let mut cmd = Command::new("node");
                cmd.arg(root.join("bench/miniflare.mjs"))
                    .args([worker, &self.port.to_string()])
                    .arg(self.dir.join("state"))
                    .env("ADMIN_TOKEN", &self.admin_token)
                    .env("DISPATCH_SECRET", &self.dispatch_secret);
                // A reference Worker's variables (`FLOOR_*`) are in its
                // `.dev.vars`, as for `wrangler dev`.
                let vars = std::fs::read_to_string(self.dir.join(".dev.vars")).unwrap_or_default();
                for (name, value) in vars.lines().filter_map(|l| l.split_once('=')) {
                    if name.starts_with("FLOOR_") {
                        cmd.env(name, value);
                    }
                }
                cmd
            }
        };
        cmd.env("WRANGLER_SEND_METRICS", "false")
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
                    if (log.contains("Address already in use") || log.contains("EADDRINUSE"))
                        && self.port_retries < 3
                    {
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

    /// CPU time (user and system, in milliseconds) that the runtime's
    /// processes (its process group: wrangler or Miniflare's host and their
    /// workerd) have used so far, from `/proc`; `None` where that cannot be
    /// read. `make bench` reads it before and after a load: CPU time per
    /// request is what the platform bills.
    pub fn cpu_ms(&self) -> Option<f64> {
        let pgid = self.child.as_ref()?.id().to_string();
        let mut ticks = 0u64;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // After the command name, which is in parentheses and may hold
            // spaces: state, ppid, pgrp, … utime (the 12th), stime (13th).
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let fields: Vec<&str> = rest.split(' ').collect();
            if fields.get(2) != Some(&pgid.as_str()) {
                continue;
            }
            let field = |n: usize| fields.get(n).and_then(|v| v.parse::<u64>().ok());
            ticks += field(11).unwrap_or(0) + field(12).unwrap_or(0);
        }
        Some(ticks as f64 * 1000.0 / clock_ticks_per_second()?)
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

    /// Starts the edge again on the same state and port under `runtime`
    /// (e.g. with a queue consumer after running without one).
    pub fn restart_as(&mut self, runtime: Runtime) {
        self.runtime = runtime;
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
        let mut bytes = Vec::new();
        let _ = resp
            .into_reader()
            .take(64 * 1024 * 1024)
            .read_to_end(&mut bytes);
        let body = String::from_utf8_lossy(&bytes).into_owned();
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
            bytes,
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
/// A new directory for one runtime under the temporary directory.
fn new_dir(prefix: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), random_hex(4)));
    std::fs::create_dir_all(&dir).expect("create state dir");
    dir
}

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
                root.join("build/entry.mjs").display()
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

/// The kernel's clock ticks per second (`getconf CLK_TCK`), in which
/// `/proc/<pid>/stat` counts CPU time.
fn clock_ticks_per_second() -> Option<f64> {
    static TICKS: OnceLock<Option<f64>> = OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    })
}
