//! What every section shares: the report, the bench's triggers and
//! signers, and the rows of the load tables.

use edgehook_e2e::*;
use serde_json::{json, Value};

use crate::load::{load, ms, Load, Provider, Signer};

/// The GitHub signing secret of every GitHub trigger and reference Worker.
pub const SECRET: &str = "bench-github-secret-value";
/// The Stripe signing secret.
pub const STRIPE_SECRET: &str = "whsec_bench_stripe_secret_value_0123456789";
/// The usual body size.
pub const SMALL: usize = 2 * 1024;
/// The large body size.
pub const LARGE: usize = 256 * 1024;

pub fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The report, as markdown lines.
#[derive(Default)]
pub struct Report(pub Vec<String>);

impl Report {
    /// Adds a line.
    pub fn line(&mut self, s: impl Into<String>) {
        self.0.push(s.into());
    }

    /// Adds a table and a blank line.
    pub fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        self.line(format!("| {} |", header.join(" | ")));
        self.line(format!("|{}", "---|".repeat(header.len())));
        for r in rows {
            self.line(format!("| {} |", r.join(" | ")));
        }
        self.line("");
    }
}

/// A trigger for the bench: limits raised so that only the runtime bounds
/// throughput, and the storage budget at its maximum for big ledgers.
pub fn bench_trigger(edge: &Edge, provider: Provider) -> String {
    let secret = match provider {
        Provider::GitHub => SECRET,
        Provider::Stripe => STRIPE_SECRET,
    };
    let t = edge.create_trigger(json!({
        "name": unique("bench"),
        "provider": provider.name(),
        "signing_secret": secret,
        "rate_limit_per_second": 1_000_000,
        "rate_limit_per_ip_per_second": 1_000_000,
        "storage_budget_bytes": 9u64 * 1024 * 1024 * 1024,
    }));
    t["id"].as_str().expect("id").to_string()
}

pub fn signer(trigger: &str, provider: Provider, size: usize) -> Signer {
    let secret = match provider {
        Provider::GitHub => SECRET,
        Provider::Stripe => STRIPE_SECRET,
    };
    Signer::new(
        &format!("/hooks/{trigger}"),
        secret,
        provider,
        size,
        &unique("d"),
    )
}

/// Adds a route to `path` on the capture server and returns its id.
pub fn add_route(
    edge: &Edge,
    trigger: &str,
    capture: &Capture,
    path: &str,
    filter: Value,
) -> String {
    let r = edge.admin(
        "POST",
        &format!("/api/triggers/{trigger}/routes"),
        Some(&json!({"target_url": capture.url(path), "filter": filter})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().expect("route id").to_string()
}

/// `n` new GitHub deliveries of `size` bytes to `path` (the ingress path of
/// a trigger on `base`, or any path of a reference Worker).
pub fn github_load(base: &str, path: &str, n: usize, concurrency: usize, size: usize) -> Load {
    let s = Signer::new(path, SECRET, Provider::GitHub, size, &unique("d"));
    // One request first, so the load measures a warm isolate and object.
    let _ = load(base, 1, 1, {
        let s = s.clone();
        move |_| s.request(usize::MAX, true)
    });
    load(base, n, concurrency, move |i| s.request(i, true))
}

/// Errors by kind, as `n×kind, …` ("0" for none).
pub fn error_kinds(kinds: &std::collections::BTreeMap<String, usize>) -> String {
    if kinds.is_empty() {
        return "0".to_string();
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n}×{k}")).collect();
    kinds.join(", ")
}

pub fn row(name: &str, l: &Load, baseline: Option<&Load>, floor: Option<&Load>) -> Vec<String> {
    let ratio = |b: Option<&Load>| b.map_or("".into(), |b| format!("{:.2}", l.rps / b.rps));
    vec![
        name.to_string(),
        format!("{:.0}", l.rps),
        ms(l.p50),
        ms(l.p99),
        error_kinds(&l.error_kinds),
        ratio(baseline),
        ratio(floor),
        floor.map_or("".into(), |f| {
            format!("{:.2}", l.p99.as_secs_f64() / f.p99.as_secs_f64())
        }),
    ]
}

pub const LOAD_HEADER: [&str; 8] = [
    "target",
    "requests/s",
    "p50",
    "p99",
    "errors",
    "vs do-nothing",
    "vs floor (RPC)",
    "p99 vs floor",
];
