//! [`Capture`]: a target server on loopback that records every request and
//! answers as its path (or [`Capture::set_status`]) says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

    /// How many requests `path` has received so far (without copying them).
    pub fn count(&self, path: &str) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|c| c.path == path)
            .count()
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
