//! `make bench`: every figure measured in one run, on one machine, as ratios
//! against references run on the same runtime in the same run.
//!
//! 1. Ingest under `wrangler dev`: a do-nothing Worker, the JavaScript floor
//!    (`bench/floor/floor.js`, reaching its Durable Object by fetch and by
//!    RPC) and edgehook, without routes, with one and three routes (runs
//!    dispatched to a local target while the load runs) and with three
//!    paused routes, and duplicates.
//! 2. Ingest under Miniflare's API (no wrangler proxy or inspector, closer
//!    to production): the same references at concurrency 1, 16 and 64, and
//!    edgehook over GitHub and Stripe signatures, 2 KB and 256 KB bodies,
//!    new and duplicate deliveries.
//! 3. Dispatch, sustained: runs delivered per second against deliveries
//!    acknowledged per second, and the lag from one to the other.
//! 4. Crash drain: 2,000 runs acknowledged by an edge whose queue consumer
//!    never ran, then delivered after a restart.
//! 5. Growth: ingest into ledgers of about 200, 100,000 and 1,000,000
//!    deliveries (grown by `seed`), the query plans of the hot paths, the
//!    ledger's bytes per delivery.
//! 6. The Worker's Wasm, raw and gzipped.
//! 7. Backfill: rows/s syncing the 100,000-delivery ledger into PostgreSQL,
//!    against a raw binary `COPY` of the same rows.
//!
//! The report is printed and written to `bench/results/` (`latest.md`,
//! `latency.svg`, `growth.svg`). Sizes are overridable: `BENCH_REQUESTS`,
//! `BENCH_CONCURRENCY`, `BENCH_ROUTE_REQUESTS`, `BENCH_DISPATCH_SECONDS`,
//! `BENCH_DRAIN_RUNS`, `BENCH_GROWTH` (the largest ledger).

mod chart;
mod load;
mod seed;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use edgehook_e2e::pg::Pg;
use edgehook_e2e::*;
use load::{load, ms, percentile, sustained, Load, Provider, Signer};
use serde_json::{json, Value};

const SECRET: &str = "bench-github-secret-value";
const STRIPE_SECRET: &str = "whsec_bench_stripe_secret_value_0123456789";
const SMALL: usize = 2 * 1024;
const LARGE: usize = 256 * 1024;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The report, as markdown lines.
#[derive(Default)]
struct Report(Vec<String>);

impl Report {
    fn line(&mut self, s: impl Into<String>) {
        self.0.push(s.into());
    }

    fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
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
fn bench_trigger(edge: &Edge, provider: Provider) -> String {
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

fn signer(trigger: &str, provider: Provider, size: usize) -> Signer {
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
fn add_route(edge: &Edge, trigger: &str, capture: &Capture, path: &str, filter: Value) -> String {
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
fn github_load(base: &str, path: &str, n: usize, concurrency: usize, size: usize) -> Load {
    let s = Signer::new(path, SECRET, Provider::GitHub, size, &unique("d"));
    // One request first, so the load measures a warm isolate and object.
    let _ = load(base, 1, 1, {
        let s = s.clone();
        move |_| s.request(usize::MAX, true)
    });
    load(base, n, concurrency, move |i| s.request(i, true))
}

fn row(name: &str, l: &Load, baseline: Option<&Load>, floor: Option<&Load>) -> Vec<String> {
    let ratio = |b: Option<&Load>| b.map_or("".into(), |b| format!("{:.2}", l.rps / b.rps));
    vec![
        name.to_string(),
        format!("{:.0}", l.rps),
        ms(l.p50),
        ms(l.p99),
        if l.errors == 0 {
            "0".to_string()
        } else {
            let kinds: Vec<String> = l
                .error_kinds
                .iter()
                .map(|(k, n)| format!("{n}×{k}"))
                .collect();
            kinds.join(", ")
        },
        ratio(baseline),
        ratio(floor),
        floor.map_or("".into(), |f| {
            format!("{:.2}", l.p99.as_secs_f64() / f.p99.as_secs_f64())
        }),
    ]
}

const LOAD_HEADER: [&str; 8] = [
    "target",
    "requests/s",
    "p50",
    "p99",
    "errors",
    "vs do-nothing",
    "vs floor (RPC)",
    "p99 vs floor",
];

/// Section 1: `wrangler dev`.
fn wrangler_ingest(report: &mut Report, requests: usize, c: usize, capture: &Capture) {
    let mut refs = Vec::new();
    for worker in ["noop", "floor-fetch", "floor-rpc"] {
        let edge = Edge::start_reference(worker, SECRET, false);
        refs.push((
            worker,
            github_load(&edge.base, "/hooks/t", requests, c, SMALL),
        ));
    }
    let edge = Edge::start();
    let id = bench_trigger(&edge, Provider::GitHub);
    let fresh = github_load(&edge.base, &format!("/hooks/{id}"), requests, c, SMALL);
    let s = signer(&id, Provider::GitHub, SMALL);
    let dups = load(&edge.base, requests, c, move |i| s.request(i, false));

    // With routes: three paused (their runs are held: ingest alone), one,
    // and three with content filters dispatching to a local target while
    // the load runs, then waited for until every run arrived.
    let route_requests = env_num("BENCH_ROUTE_REQUESTS", (requests / 4).max(100));
    let filters = [
        json!({"body": {"ref": {"$startsWith": "refs/heads/"}}}),
        json!({"headers": {"x-github-event": {"$in": ["push", "release"]}}}),
        json!(null),
    ];
    let mut routed = Vec::new();
    let mut drains = Vec::new();
    for (n, paused) in [(3, true), (1, false), (3, false)] {
        std::thread::sleep(Duration::from_secs(3));
        let tid = bench_trigger(&edge, Provider::GitHub);
        let mut paths = Vec::new();
        for filter in filters.iter().take(n) {
            let path = format!("/ok/{}", unique("route"));
            let rid = add_route(&edge, &tid, capture, &path, filter.clone());
            if paused {
                let p = edge.admin(
                    "POST",
                    &format!("/api/triggers/{tid}/routes/{rid}/pause"),
                    None,
                );
                assert_eq!(p.status, 200, "{}", p.body);
            }
            paths.push(path);
        }
        let started = Instant::now();
        routed.push(github_load(
            &edge.base,
            &format!("/hooks/{tid}"),
            route_requests,
            c,
            SMALL,
        ));
        if paused {
            continue;
        }
        // Every request and the warm-up one ran on every route.
        let expected = (route_requests + 1) * paths.len();
        let deadline = Instant::now() + Duration::from_secs(600);
        let delivered = loop {
            let got: usize = paths.iter().map(|p| capture.count(p)).sum();
            if got >= expected || Instant::now() > deadline {
                break got;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        drains.push((n, delivered, started.elapsed()));
    }

    report.line(format!(
        "## Ingest under `wrangler dev` ({requests} POSTs of {SMALL} B signed GitHub deliveries, concurrency {c})\n"
    ));
    let base = &refs[0].1;
    let floor = &refs[2].1;
    let mut rows = vec![
        row("do-nothing Worker", base, Some(base), None),
        row(
            "JS floor, Durable Object by fetch",
            &refs[1].1,
            Some(base),
            Some(floor),
        ),
        row(
            "JS floor, Durable Object by RPC",
            floor,
            Some(base),
            Some(floor),
        ),
        row(
            "edgehook, new deliveries (no routes)",
            &fresh,
            Some(base),
            Some(floor),
        ),
        row("edgehook, duplicates", &dups, Some(base), Some(floor)),
    ];
    for (name, l) in [
        ("edgehook, three paused routes (ingest only)", &routed[0]),
        ("edgehook, one route (dispatching)", &routed[1]),
        ("edgehook, three filtered routes (dispatching)", &routed[2]),
    ] {
        rows.push(row(
            &format!("{name}, {route_requests} POSTs"),
            l,
            Some(base),
            Some(floor),
        ));
    }
    report.table(&LOAD_HEADER, rows);
    report.table(
        &[
            "routes",
            "runs delivered",
            "seconds from first request to last run",
            "runs/s",
        ],
        drains
            .iter()
            .map(|(n, d, t)| {
                vec![
                    n.to_string(),
                    d.to_string(),
                    format!("{:.1}", t.as_secs_f64()),
                    format!("{:.0}", *d as f64 / t.as_secs_f64()),
                ]
            })
            .collect(),
    );
}

/// Section 2: Miniflare. Returns the c=16 rows for the latency chart.
fn miniflare_ingest(report: &mut Report, requests: usize) -> Vec<(String, Vec<f64>)> {
    let levels = [1, 16, 64];
    let size_n = |c: usize, size: usize| {
        let n = if c == 1 { requests / 4 } else { requests };
        if size == LARGE {
            (n / 8).max(100)
        } else {
            n.max(100)
        }
    };
    let mut refs: Vec<(&str, Vec<Load>)> = Vec::new();
    for worker in ["noop", "floor-rpc", "floor-fetch"] {
        let edge = Edge::start_reference(worker, SECRET, true);
        let loads = levels
            .iter()
            .map(|&c| github_load(&edge.base, "/hooks/t", size_n(c, SMALL), c, SMALL))
            .collect();
        refs.push((worker, loads));
    }
    let edge = Edge::start_miniflare("edgehook");
    let mut cells = Vec::new();
    for provider in [Provider::GitHub, Provider::Stripe] {
        let id = bench_trigger(&edge, provider);
        for size in [SMALL, LARGE] {
            for new in [true, false] {
                for (k, &c) in levels.iter().enumerate() {
                    let s = signer(&id, provider, size);
                    let _ = load(&edge.base, 1, 1, {
                        let s = s.clone();
                        move |_| s.request(usize::MAX, true)
                    });
                    let l = load(&edge.base, size_n(c, size), c, move |i| s.request(i, new));
                    cells.push((provider, size, new, k, l));
                }
            }
        }
    }
    report.line(format!(
        "## Ingest under Miniflare (workerd without wrangler's proxy; {requests} POSTs per cell, a quarter at concurrency 1, an eighth with 256 KB bodies)\n"
    ));
    let mut rows = Vec::new();
    for (k, c) in levels.iter().enumerate() {
        let base = &refs[0].1[k];
        let floor = &refs[1].1[k];
        rows.push(row(
            &format!("c={c} do-nothing Worker"),
            base,
            Some(base),
            None,
        ));
        rows.push(row(
            &format!("c={c} JS floor, by RPC"),
            floor,
            Some(base),
            Some(floor),
        ));
        rows.push(row(
            &format!("c={c} JS floor, by fetch"),
            &refs[2].1[k],
            Some(base),
            Some(floor),
        ));
        for (provider, size, new, kk, l) in &cells {
            if *kk != k {
                continue;
            }
            let name = format!(
                "c={c} edgehook, {}, {} KB, {}",
                provider.name(),
                size / 1024,
                if *new { "new" } else { "duplicate" }
            );
            // Only GitHub 2 KB deliveries are what the floor does.
            let comparable = *provider == Provider::GitHub && *size == SMALL;
            rows.push(row(
                &name,
                l,
                Some(base),
                if comparable { Some(floor) } else { None },
            ));
        }
    }
    report.table(&LOAD_HEADER, rows);
    // The chart: concurrency 16, GitHub 2 KB.
    let k = 1;
    let mut chart = vec![
        ("do-nothing Worker".to_string(), &refs[0].1[k]),
        ("JS floor, by RPC".to_string(), &refs[1].1[k]),
        ("JS floor, by fetch".to_string(), &refs[2].1[k]),
    ];
    for (provider, size, new, kk, l) in &cells {
        if *kk == k && *provider == Provider::GitHub && *size == SMALL {
            let what = if *new { "new" } else { "duplicates" };
            chart.push((format!("edgehook, {what}"), l));
        }
    }
    chart
        .into_iter()
        .map(|(n, l)| {
            (
                n,
                vec![l.p50.as_secs_f64() * 1000.0, l.p99.as_secs_f64() * 1000.0],
            )
        })
        .collect()
}

/// Section 3: a sustained load on a trigger with one route to `capture`.
fn dispatch_sustained(edge: &Edge, capture: &Capture, seconds: u64, c: usize) -> Vec<String> {
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

/// Section 4: runs acknowledged while no consumer ran, drained after a
/// restart with one. Returns (runs, seconds to drain after ready).
fn crash_drain(capture: &Capture, runs: usize, c: usize) -> (usize, usize, f64) {
    let mut edge = Edge::start_miniflare("edgehook-without-consumer");
    let tid = bench_trigger(&edge, Provider::GitHub);
    let path = format!("/ok/{}", unique("drain"));
    add_route(&edge, &tid, capture, &path, Value::Null);
    let s = signer(&tid, Provider::GitHub, SMALL);
    let l = load(&edge.base, runs, c, move |i| s.request(i, true));
    let acked = runs - l.errors;
    edge.kill9();
    let restarted = Instant::now();
    edge.restart_as(Runtime::Miniflare("edgehook"));
    let ready = Instant::now();
    let deadline = ready + Duration::from_secs(600);
    while capture.count(&path) < acked && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = restarted;
    (acked, capture.count(&path), ready.elapsed().as_secs_f64())
}

fn gzip_len(bytes: &[u8]) -> usize {
    let mut child = Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut out)
        .expect("read gzip");
    let _ = writer.join();
    let _ = child.wait();
    out.len()
}

/// Section 5 (growth) and 7 (backfill), on one Miniflare edge.
fn growth_and_backfill(
    report: &mut Report,
    capture: &Capture,
    requests: usize,
    c: usize,
    largest: usize,
) -> Vec<(f64, f64)> {
    let mut edge = Edge::start_miniflare("edgehook");
    let sizes = [0, largest / 10, largest];
    let mut triggers = Vec::new();
    for _ in sizes {
        let tid = bench_trigger(&edge, Provider::GitHub);
        let path = format!("/ok/{}", unique("growth"));
        add_route(&edge, &tid, capture, &path, Value::Null);
        // Real rows to copy: 200 deliveries, each with its run and attempt.
        let tag = unique("tmpl");
        let s = Signer::new(
            &format!("/hooks/{tid}"),
            SECRET,
            Provider::GitHub,
            SMALL,
            &tag,
        );
        let l = load(&edge.base, 200, 8, move |i| s.request(i, true));
        assert_eq!(l.errors, 0);
        capture.wait_for(&path, 200, Duration::from_secs(120));
        triggers.push((tid, tag));
    }
    // Let the reports land, then stop the runtime and grow the ledgers.
    std::thread::sleep(Duration::from_secs(2));
    edge.kill9();
    let dir = edge.trigger_state_dir();
    let seeding = Instant::now();
    let mut files = Vec::new();
    for ((tid, tag), size) in triggers.iter().zip(sizes) {
        let file = seed::ledger_file(&dir, tag);
        if size > 0 {
            seed::grow(&file, size, &tid[4..12]);
        }
        files.push(file);
    }
    let seeded_in = seeding.elapsed();
    edge.restart();
    // Warm each object (the first request opens a big file), then measure
    // each ledger twice, interleaved, and keep the mean.
    let mut results = vec![Vec::new(); sizes.len()];
    for round in 0..2 {
        for (k, (tid, _)) in triggers.iter().enumerate() {
            if round == 0 {
                let _ = github_load(&edge.base, &format!("/hooks/{tid}"), 20, 1, SMALL);
            }
            results[k].push(github_load(
                &edge.base,
                &format!("/hooks/{tid}"),
                requests / 2,
                c,
                SMALL,
            ));
        }
    }
    let mean = |ls: &Vec<Load>| {
        let n = ls.len() as f64;
        (
            ls.iter().map(|l| l.rps).sum::<f64>() / n,
            ls.iter().map(|l| l.p99.as_secs_f64()).sum::<f64>() / n,
        )
    };
    let empty = mean(&results[0]);
    report.line(format!(
        "## Growth (Miniflare; ledgers grown by copying the Worker's own rows in {:.0} s; {} new GitHub deliveries per ledger, concurrency {c}, two interleaved rounds)\n",
        seeded_in.as_secs_f64(),
        requests / 2 * 2,
    ));
    let mut rows = Vec::new();
    let mut points = Vec::new();
    for (k, size) in sizes.iter().enumerate() {
        let (rps, p99) = mean(&results[k]);
        let bytes = std::fs::metadata(&files[k]).map(|m| m.len()).unwrap_or(0);
        let deliveries = size + 200;
        points.push((deliveries as f64, rps));
        rows.push(vec![
            deliveries.to_string(),
            format!("{rps:.0}"),
            format!("{:.1} ms", p99 * 1000.0),
            format!("{:.2}", rps / empty.0),
            bytes.to_string(),
            format!("{:.0}", bytes as f64 / deliveries as f64),
        ]);
    }
    report.table(
        &[
            "deliveries in the ledger",
            "new deliveries/s",
            "p99",
            "vs the smallest ledger",
            "ledger file bytes",
            "bytes per delivery",
        ],
        rows,
    );
    report.line(format!(
        "Query plans on the {}-delivery ledger:\n",
        largest + 200
    ));
    report.table(
        &["query", "plan"],
        seed::query_plans(&files[2])
            .into_iter()
            .map(|(q, p)| vec![q.to_string(), format!("`{p}`")])
            .collect(),
    );

    // 7. Backfill of the middle ledger against COPY.
    let (tid, _) = &triggers[1];
    let db = Pg::shared().fresh_database();
    let started = Instant::now();
    let out = Command::new(root().join("target/release/backfill"))
        .args(["--url", &edge.base, "--token", &edge.admin_token])
        .args(["--database-url", &db, "--trigger", tid, "--no-progress"])
        .output()
        .expect("run target/release/backfill (make bench builds it)");
    let wall = started.elapsed();
    assert!(
        out.status.success(),
        "backfill failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut client = postgres::Client::connect(&db, postgres::NoTls).expect("connect");
    let mut rows = 0i64;
    let mut copy_secs = 0.0;
    let mut counts = Vec::new();
    for table in ["deliveries", "runs", "attempts"] {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .expect("count")
            .get(0);
        rows += n;
        counts.push(format!("{n} {table}"));
        let mut data = Vec::new();
        client
            .copy_out(&format!("COPY {table} TO STDOUT (FORMAT binary)"))
            .expect("copy out")
            .read_to_end(&mut data)
            .expect("read copy");
        client
            .batch_execute(&format!(
                "CREATE TABLE {table}_copy (LIKE {table} INCLUDING ALL)"
            ))
            .expect("create copy table");
        let t = Instant::now();
        let mut w = client
            .copy_in(&format!("COPY {table}_copy FROM STDIN (FORMAT binary)"))
            .expect("copy in");
        w.write_all(&data).expect("write copy");
        w.finish().expect("finish copy");
        copy_secs += t.elapsed().as_secs_f64();
    }
    let backfill_rps = rows as f64 / wall.as_secs_f64();
    let copy_rps = rows as f64 / copy_secs;
    report.line(format!(
        "## Backfill ({} = {rows} rows, from the edge's change feed)\n",
        counts.join(" + ")
    ));
    report.table(
        &["writer", "seconds", "rows/s"],
        vec![
            vec![
                "backfill (edge change feed → PostgreSQL)".into(),
                format!("{:.2}", wall.as_secs_f64()),
                format!("{backfill_rps:.0}"),
            ],
            vec![
                "raw binary COPY of the same rows".into(),
                format!("{copy_secs:.2}"),
                format!("{copy_rps:.0}"),
            ],
        ],
    );
    report.line(format!(
        "backfill / COPY = {:.2}; its own summary: `{summary}`\n",
        backfill_rps / copy_rps
    ));
    points
}

/// Section 3 under both runtimes.
fn dispatch_section(report: &mut Report, capture: &Capture, seconds: u64, c: usize) {
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

/// Whether `section` runs: all do unless `BENCH_ONLY` lists some
/// (`wrangler`, `miniflare`, `dispatch`, `drain`, `growth`).
fn runs(section: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

fn main() {
    let started = Instant::now();
    let requests = env_num("BENCH_REQUESTS", 3000);
    let c = env_num("BENCH_CONCURRENCY", 16);
    let mut report = Report::default();
    let capture = Capture::start();

    if runs("wrangler") {
        wrangler_ingest(&mut report, requests, c, &capture);
    }
    let latency = if runs("miniflare") {
        miniflare_ingest(&mut report, requests)
    } else {
        Vec::new()
    };

    let seconds = env_num("BENCH_DISPATCH_SECONDS", 60) as u64;
    if runs("dispatch") {
        dispatch_section(&mut report, &capture, seconds, c);
    }
    if runs("drain") {
        let drain_runs = env_num("BENCH_DRAIN_RUNS", 2000);
        let (acked, delivered, secs) = crash_drain(&capture, drain_runs, c);
        report.line("## Crash drain (Miniflare)\n".to_string());
        report.line(format!(
            "{acked} runs acknowledged by an edge whose queue consumer never ran (its messages lost with it); after a restart with a consumer, {delivered} of them reached the target {secs:.1} s after the edge was ready.\n"
        ));
    }
    let growth = if runs("growth") {
        growth_and_backfill(
            &mut report,
            &capture,
            requests,
            c,
            env_num("BENCH_GROWTH", 1_000_000),
        )
    } else {
        Vec::new()
    };
    let wasm = std::fs::read(root().join("build/index_bg.wasm")).expect("read wasm");
    report.line(format!(
        "## Wasm\n\n{} bytes raw, {} bytes gzipped\n",
        wasm.len(),
        gzip_len(&wasm)
    ));
    report.line(format!(
        "(`make bench`, {:.0} s on this machine, {} cores)",
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));

    let text = report.0.join("\n");
    println!("\n{text}\n");
    let dir = root().join("bench/results");
    std::fs::create_dir_all(&dir).expect("bench/results");
    std::fs::write(dir.join("latest.md"), format!("# `make bench`\n\n{text}\n")).expect("write");
    std::fs::write(
        dir.join("latency.svg"),
        chart::bars(
            "Ingest latency, Miniflare, concurrency 16, GitHub 2 KB",
            "ms",
            &["p50", "p99"],
            &latency,
        ),
    )
    .expect("write latency.svg");
    std::fs::write(
        dir.join("growth.svg"),
        chart::line(
            "Ingest throughput as one trigger's ledger grows (Miniflare)",
            "deliveries in the ledger",
            "new deliveries/s",
            &growth,
        ),
    )
    .expect("write growth.svg");
}
