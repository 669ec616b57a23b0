//! Load generation: signed requests, fixed-count loads with latency
//! percentiles, and time-bounded loads that keep every answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgehook_e2e::{github_signature, hex, hmac_sha256, unix_now};

/// One request: path, headers and body.
pub type Req = (String, Vec<(String, String)>, Vec<u8>);

/// A load's outcome.
#[derive(Debug, Clone)]
pub struct Load {
    /// Requests answered per second of wall time.
    pub rps: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Requests that failed or were not answered 2xx.
    pub errors: usize,
    /// What the errors were: a status code or "transport", with counts.
    pub error_kinds: std::collections::BTreeMap<String, usize>,
    /// CPU milliseconds the runtime's processes used per request while the
    /// load ran, where it was measured (`Edge::cpu_ms`).
    pub cpu_ms: Option<f64>,
    /// The same until edgehook's queue consumer had delivered the load's
    /// runs: each delivery's whole cost.
    pub settled_cpu_ms: Option<f64>,
}

/// The signature scheme of a benchmark request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `X-Hub-Signature-256` over the body; the delivery id in a header.
    GitHub,
    /// `Stripe-Signature` over `t.body`; the event id in the body.
    Stripe,
}

impl Provider {
    /// The trigger's `provider` value.
    pub fn name(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Stripe => "stripe",
        }
    }
}

/// A JSON body of exactly `size` bytes whose `id` is `id`.
pub fn body(id: &str, size: usize) -> Vec<u8> {
    let head = format!(r#"{{"id":"{id}","type":"push","ref":"refs/heads/main","filler":""#);
    let fill = size.saturating_sub(head.len() + 2);
    let mut out = head.into_bytes();
    out.resize(out.len() + fill, b'x');
    out.extend_from_slice(b"\"}");
    out
}

/// Makes signed requests for one trigger: `new` gives each request its own
/// delivery id, otherwise every request is the same delivery.
#[derive(Clone)]
pub struct Signer {
    /// The trigger's ingress path.
    pub path: String,
    /// Its signing secret.
    pub secret: String,
    /// How requests are signed.
    pub provider: Provider,
    /// Body size in bytes.
    pub size: usize,
    /// A tag that keeps delivery ids apart across loads.
    pub tag: String,
    /// GitHub: the one body, and its signature.
    fixed: Arc<(Vec<u8>, String)>,
}

impl Signer {
    /// A signer for `path`.
    pub fn new(path: &str, secret: &str, provider: Provider, size: usize, tag: &str) -> Signer {
        let fixed = body(&format!("{tag}-body"), size);
        let sig = github_signature(secret, &fixed);
        Signer {
            path: path.to_string(),
            secret: secret.to_string(),
            provider,
            size,
            tag: tag.to_string(),
            fixed: Arc::new((fixed, sig)),
        }
    }

    /// Request `i`: a new delivery when `new`, else the same one each time.
    pub fn request(&self, i: usize, new: bool) -> Req {
        let id = if new {
            format!("{}-{i}", self.tag)
        } else {
            format!("{}-dup", self.tag)
        };
        match self.provider {
            Provider::GitHub => {
                let (body, sig) = &*self.fixed;
                let headers = vec![
                    ("x-hub-signature-256".to_string(), sig.clone()),
                    ("x-github-event".to_string(), "push".to_string()),
                    ("x-github-delivery".to_string(), id),
                    ("content-type".to_string(), "application/json".to_string()),
                ];
                (self.path.clone(), headers, body.clone())
            }
            Provider::Stripe => {
                let body = body(&id, self.size);
                let t = unix_now();
                let mac = hmac_sha256(
                    self.secret.as_bytes(),
                    &[t.to_string().as_bytes(), b".", &body],
                );
                let headers = vec![
                    (
                        "stripe-signature".to_string(),
                        format!("t={t},v1={}", hex(&mac)),
                    ),
                    ("content-type".to_string(), "application/json".to_string()),
                ];
                (self.path.clone(), headers, body)
            }
        }
    }
}

/// Sends one request; an error is its status code, or "transport" with
/// what failed (the connection, or reading the answer), so that a table's
/// errors say whether the runtime or the client dropped the request.
fn send(agent: &ureq::Agent, base: &str, (path, headers, body): Req) -> Result<String, String> {
    let mut req = agent.post(&format!("{base}{path}"));
    for (k, v) in &headers {
        req = req.set(k, v);
    }
    match req.send_bytes(&body) {
        Ok(r) => r
            .into_string()
            .map_err(|e| format!("transport (reading the answer: {:?})", e.kind())),
        Err(ureq::Error::Status(code, _)) => Err(code.to_string()),
        Err(ureq::Error::Transport(t)) => Err(format!("transport ({})", transport_kind(&t))),
    }
}

/// A transport error's kind, and the I/O error under it if there is one
/// (a reset connection reads `Io: ConnectionReset`).
fn transport_kind(t: &ureq::Transport) -> String {
    let io = std::error::Error::source(t)
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .map(|e| format!(": {:?}", e.kind()))
        .unwrap_or_default();
    format!("{:?}{io}", t.kind())
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// Sends `n` POSTs with `concurrency` threads; `make` builds request `i`.
pub fn load<F>(base: &str, n: usize, concurrency: usize, make: F) -> Load
where
    F: Fn(usize) -> Req + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..concurrency)
        .map(|_| {
            let (make, next, base) = (make.clone(), next.clone(), base.to_string());
            std::thread::spawn(move || {
                let agent = agent();
                let mut lat = Vec::new();
                let mut errors = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return (lat, errors);
                    }
                    let req = make(i);
                    let t = Instant::now();
                    if let Err(kind) = send(&agent, &base, req) {
                        errors.push(kind);
                    }
                    lat.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut error_kinds = std::collections::BTreeMap::new();
    for h in handles {
        let (l, e) = h.join().expect("load thread");
        all.extend(l);
        for kind in e {
            *error_kinds.entry(kind).or_insert(0) += 1;
        }
    }
    let errors = error_kinds.values().sum();
    let wall = started.elapsed();
    all.sort();
    Load {
        rps: n as f64 / wall.as_secs_f64(),
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        errors,
        error_kinds,
        cpu_ms: None,
        settled_cpu_ms: None,
    }
}

/// What [`sustained`] saw.
pub struct Sustained {
    /// Every body answered with a 2xx, with the time it was answered.
    pub answered: Vec<(Instant, String)>,
    /// Requests answered otherwise, or not at all, by kind (a status code,
    /// or "transport").
    pub errors: std::collections::BTreeMap<String, usize>,
    /// The load's wall time.
    pub wall: Duration,
}

/// Sends POSTs for `seconds` with `concurrency` threads.
///
/// Unpaced, each thread sends its next request as soon as the last is
/// answered (a closed loop, as fast as the edge answers). Paced at `r` per
/// second, request `i` is sent no earlier than `i / r` seconds in, by
/// whichever thread is free: an arrival rate the edge does not set, up to
/// what `concurrency` threads can carry.
pub fn sustained<F>(
    base: &str,
    seconds: u64,
    concurrency: usize,
    per_second: Option<f64>,
    make: F,
) -> Sustained
where
    F: Fn(usize) -> Req + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let handles: Vec<_> = (0..concurrency)
        .map(|_| {
            let (make, next, base) = (make.clone(), next.clone(), base.to_string());
            std::thread::spawn(move || {
                let agent = agent();
                let mut out = Vec::new();
                let mut errors = Vec::new();
                while Instant::now() < until {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if let Some(rate) = per_second {
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        if due >= until {
                            break;
                        }
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    }
                    let req = make(i);
                    match send(&agent, &base, req) {
                        Ok(text) => out.push((Instant::now(), text)),
                        Err(kind) => errors.push(kind),
                    }
                }
                (out, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = std::collections::BTreeMap::new();
    for h in handles {
        let (out, e) = h.join().expect("load thread");
        all.extend(out);
        for kind in e {
            *errors.entry(kind).or_insert(0) += 1;
        }
    }
    Sustained {
        answered: all,
        errors,
        wall: started.elapsed(),
    }
}

/// The `p` quantile of sorted durations (zero when empty).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
