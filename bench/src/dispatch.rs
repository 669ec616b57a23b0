//! Dispatch: a sustained load against runs delivered under both runtimes,
//! and the drain of runs whose queue messages died with the edge.

use std::time::{Duration, Instant};

use edgehook_e2e::*;
use serde_json::Value;

use crate::common::*;
use crate::load::{load, ms, percentile, sustained, Provider};

/// Section 3: a sustained load on a trigger with one route to `capture`.
pub fn dispatch_sustained(edge: &Edge, capture: &Capture, seconds: u64, c: usize) -> Vec<String> {
    let tid = bench_trigger(edge, Provider::GitHub);
    let path = format!("/ok/{}", unique("sustained"));
    add_route(edge, &tid, capture, &path, Value::Null);
    let s = signer(&tid, Provider::GitHub, SMALL);
    // A line a second on stderr: how far dispatch is behind while it runs.
    let watching = std::sync::atomic::AtomicBool::new(true);
    let (acked, wall) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let start = Instant::now();
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                eprintln!(
                    "bench: dispatch {:>3.0} s: {} runs at the target",
                    start.elapsed().as_secs_f64(),
                    capture.count(&path)
                );
            }
        });
        let out = sustained(&edge.base, seconds, c, move |i| s.request(i, true));
        watching.store(false, std::sync::atomic::Ordering::Relaxed);
        out
    });
    let load_end = Instant::now();
    let mut acked_at = std::collections::HashMap::new();
    for (at, text) in &acked {
        if let Some(run) = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v["run_id"].as_str().map(str::to_string))
        {
            acked_at.insert(run, *at);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while capture.count(&path) < acked_at.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    let mut first_call = std::collections::HashMap::new();
    for call in capture.received(&path) {
        if let Some(id) = call.header("webhook-id") {
            first_call.entry(id.to_string()).or_insert(call.at);
        }
    }
    let mut lags: Vec<Duration> = acked_at
        .iter()
        .filter_map(|(run, at)| {
            first_call
                .get(run)
                .map(|c| c.saturating_duration_since(*at))
        })
        .collect();
    lags.sort();
    let during = first_call.values().filter(|at| **at <= load_end).count();
    let last = first_call.values().max().copied().unwrap_or(load_end);
    let acked_rate = acked_at.len() as f64 / wall.as_secs_f64();
    let delivered_rate = during as f64 / wall.as_secs_f64();
    vec![
        format!("{acked_rate:.0}"),
        format!("{delivered_rate:.0}"),
        format!("{:.2}", delivered_rate / acked_rate.max(1e-9)),
        ms(percentile(&lags, 0.50)),
        ms(percentile(&lags, 0.99)),
        format!("{} of {}", lags.len(), acked_at.len()),
        format!(
            "{:.1} s",
            last.saturating_duration_since(load_end).as_secs_f64()
        ),
    ]
}

/// Section 3 under both runtimes.
pub fn dispatch_section(report: &mut Report, capture: &Capture, seconds: u64, c: usize) {
    report.line(format!(
        "## Dispatch, sustained ({seconds} s at concurrency {c}, one route to a local target)\n"
    ));
    let mut rows = Vec::new();
    {
        let edge = Edge::start_miniflare("edgehook");
        let mut r = dispatch_sustained(&edge, capture, seconds, c);
        r.insert(0, "Miniflare".into());
        rows.push(r);
    }
    {
        let edge = Edge::start();
        let mut r = dispatch_sustained(&edge, capture, seconds, c);
        r.insert(0, "wrangler dev".into());
        rows.push(r);
    }
    report.table(
        &[
            "runtime",
            "acknowledged/s",
            "runs delivered/s during the load",
            "delivered / acknowledged",
            "lag p50",
            "lag p99",
            "runs delivered",
            "last run after the load ended",
        ],
        rows,
    );
}

/// Section 4: runs acknowledged while no consumer ran, drained after a
/// restart with one. Returns (runs, seconds to drain after ready).
pub fn crash_drain(capture: &Capture, runs: usize, c: usize) -> (usize, usize, f64) {
    let mut edge = Edge::start_miniflare("edgehook-without-consumer");
    let tid = bench_trigger(&edge, Provider::GitHub);
    let path = format!("/ok/{}", unique("drain"));
    add_route(&edge, &tid, capture, &path, Value::Null);
    let s = signer(&tid, Provider::GitHub, SMALL);
    let l = load(&edge.base, runs, c, move |i| s.request(i, true));
    let acked = runs - l.errors;
    edge.kill9();
    edge.restart_as(Runtime::Miniflare("edgehook"));
    let ready = Instant::now();
    let deadline = ready + Duration::from_secs(600);
    while capture.count(&path) < acked && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    (acked, capture.count(&path), ready.elapsed().as_secs_f64())
}
