//! `make bench`: every figure measured in one run, on one machine, as ratios
//! where a baseline exists.
//!
//! 1. Ingest: requests/s and latency of genuine signed deliveries (and of
//!    duplicates) against a do-nothing Worker on the same runtime, without
//!    routes, with one and three routes, and with three paused routes;
//!    then dispatch, sustained: runs delivered per second against
//!    deliveries acknowledged per second, and the lag between the two.
//! 2. The Worker's Wasm size, raw and gzipped.
//! 3. Ledger growth: the trigger's SQLite file size as deliveries accumulate.
//! 4. Backfill: rows/s syncing 100,000 deliveries into PostgreSQL, against a
//!    raw binary `COPY` of the same rows into an identical table.
//!
//! Sizes are overridable: `BENCH_REQUESTS`, `BENCH_CONCURRENCY`, `BENCH_DELIVERIES`,
//! `BENCH_ROUTE_REQUESTS`, `BENCH_DISPATCH_SECONDS`.

use std::io::{Read, Write};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgehook_e2e::pg::Pg;
use edgehook_e2e::*;
use serde_json::json;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Load {
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

/// Sends `n` POSTs with `concurrency` threads; `make` builds request `i`.
fn load<F>(base: &str, n: usize, concurrency: usize, make: F) -> Load
where
    F: Fn(usize) -> (String, Vec<(String, String)>, Vec<u8>) + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..concurrency)
        .map(|_| {
            let make = make.clone();
            let next = next.clone();
            let base = base.to_string();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                let mut lat = Vec::new();
                let mut errors = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return (lat, errors);
                    }
                    let (path, headers, body) = make(i);
                    let mut req = agent.post(&format!("{base}{path}"));
                    for (k, v) in &headers {
                        req = req.set(k, v);
                    }
                    let t = Instant::now();
                    match req.send_bytes(&body) {
                        Ok(r) => {
                            let _ = r.into_string();
                        }
                        Err(_) => errors += 1,
                    }
                    lat.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.join().expect("load thread");
        all.extend(l);
        errors += e;
    }
    let wall = started.elapsed();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Load {
        rps: n as f64 / wall.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
    }
}

/// Sends POSTs for `seconds` with `concurrency` threads; returns every
/// answered body with the time it was answered, and the load's wall time.
fn sustained<F>(
    base: &str,
    seconds: u64,
    concurrency: usize,
    make: F,
) -> (Vec<(Instant, String)>, Duration)
where
    F: Fn(usize) -> (String, Vec<(String, String)>, Vec<u8>) + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let handles: Vec<_> = (0..concurrency)
        .map(|_| {
            let (make, next, base) = (make.clone(), next.clone(), base.to_string());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                let mut out = Vec::new();
                while Instant::now() < until {
                    let (path, headers, body) = make(next.fetch_add(1, Ordering::Relaxed));
                    let mut req = agent.post(&format!("{base}{path}"));
                    for (k, v) in &headers {
                        req = req.set(k, v);
                    }
                    if let Ok(r) = req.send_bytes(&body) {
                        if let Ok(text) = r.into_string() {
                            out.push((Instant::now(), text));
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().expect("load thread"));
    }
    (all, started.elapsed())
}

/// A signed GitHub push to trigger `id` with delivery id `delivery`.
fn push_request(
    id: &str,
    sig: &str,
    delivery: String,
    body: &[u8],
) -> (String, Vec<(String, String)>, Vec<u8>) {
    let headers = vec![
        ("x-hub-signature-256".to_string(), sig.to_string()),
        ("x-github-event".to_string(), "push".to_string()),
        ("x-github-delivery".to_string(), delivery),
        ("content-type".to_string(), "application/json".to_string()),
    ];
    (format!("/hooks/{id}"), headers, body.to_vec())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
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

/// The size of the largest object file in the Trigger class's state.
fn largest_ledger(edge: &Edge) -> u64 {
    std::fs::read_dir(edge.trigger_state_dir())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".sqlite"))
                .filter_map(|e| e.metadata().ok().map(|m| m.len()))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

fn main() {
    let requests = env_num("BENCH_REQUESTS", 4000);
    let concurrency = env_num("BENCH_CONCURRENCY", 16);
    let target = env_num("BENCH_DELIVERIES", 100_000);
    let mut report = Vec::new();

    // 1. Ingest against a do-nothing Worker.
    let noop = Edge::start_noop();
    let edge = Edge::start();
    let secret = "bench-github-secret-value";
    let t = edge
        .create_trigger(json!({"name": "bench", "provider": "github", "signing_secret": secret}));
    let id = t["id"].as_str().expect("id").to_string();
    let body = format!(
        r#"{{"ref":"refs/heads/main","filler":"{}"}}"#,
        "x".repeat(900)
    )
    .into_bytes();
    let sig = github_signature(secret, &body);
    let warm = |base: &str, path: &str| {
        let _ = ureq::post(&format!("{base}{path}")).send_bytes(b"{}");
    };
    warm(&noop.base, "/");
    let b2 = body.clone();
    let baseline = load(&noop.base, requests, concurrency, move |_| {
        ("/".into(), vec![], b2.clone())
    });
    let (b3, s3, id3) = (body.clone(), sig.clone(), id.clone());
    let run_tag = unique("run");
    let fresh = load(&edge.base, requests, concurrency, move |i| {
        push_request(&id3, &s3, format!("{run_tag}-{i}"), &b3)
    });
    // The same with routes: one, and three with content filters, all to a
    // local target (so dispatch runs beside ingest, as in production); then
    // three paused routes (their runs are held), which is ingest alone.
    let capture = Capture::start();
    let routed = |n: usize, paused: bool| {
        let t = edge.create_trigger(
            json!({"name": format!("bench-{n}-routes"), "provider": "github", "signing_secret": secret}),
        );
        let tid = t["id"].as_str().expect("id").to_string();
        let filters = [
            json!({"body": {"ref": {"$startsWith": "refs/heads/"}}}),
            json!({"headers": {"x-github-event": {"$in": ["push", "release"]}}}),
            json!(null),
        ];
        let mut paths = Vec::new();
        for filter in filters.iter().take(n) {
            let path = format!("/ok/{}", unique("bench-route"));
            let r = edge.admin(
                "POST",
                &format!("/api/triggers/{tid}/routes"),
                Some(&json!({"target_url": capture.url(&path), "filter": filter})),
            );
            assert_eq!(r.status, 201, "{}", r.body);
            if paused {
                let rid = r.json()["id"].as_str().expect("route id").to_string();
                let p = edge.admin(
                    "POST",
                    &format!("/api/triggers/{tid}/routes/{rid}/pause"),
                    None,
                );
                assert_eq!(p.status, 200, "{}", p.body);
            }
            paths.push(path);
        }
        (tid, paths)
    };
    // Fewer requests than the other rows: every run is dispatched and
    // waited for, and dispatch is far slower than ingest (issue 9).
    let route_requests = env_num("BENCH_ROUTE_REQUESTS", (requests / 4).max(100));
    let mut route_loads = Vec::new();
    let mut drains = Vec::new();
    for (n, paused) in [(3, true), (1, false), (3, false)] {
        // The previous load's queue messages settle first.
        std::thread::sleep(Duration::from_secs(5));
        let (tid, paths) = routed(n, paused);
        let (b, s, tag) = (body.clone(), sig.clone(), unique("routes"));
        // Warm the trigger's object (and its route cache) first.
        let _ = load(&edge.base, 1, 1, {
            let (b, s, tid) = (b.clone(), s.clone(), tid.clone());
            move |_| push_request(&tid, &s, unique("warm"), &b)
        });
        let started = Instant::now();
        route_loads.push(load(&edge.base, route_requests, concurrency, move |i| {
            push_request(&tid, &s, format!("{tag}-{i}"), &b)
        }));
        if paused {
            continue;
        }
        // Wait until every run reached its target, so the next load does
        // not share the machine with this one's dispatch.
        let deadline = Instant::now() + Duration::from_secs(900);
        // Every request and the warm-up one ran on every route.
        let expected = (route_requests + 1) * paths.len();
        let delivered = loop {
            let got: usize = paths.iter().map(|p| capture.received(p).len()).sum();
            if got >= expected || Instant::now() > deadline {
                break got;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        drains.push((n, delivered, started.elapsed()));
    }
    let (b4, s4, id4) = (body.clone(), sig.clone(), id.clone());
    let dups = load(&edge.base, requests, concurrency, move |_| {
        let headers = vec![
            ("x-hub-signature-256".to_string(), s4.clone()),
            (
                "x-github-delivery".to_string(),
                "the-same-delivery".to_string(),
            ),
        ];
        (format!("/hooks/{id4}"), headers, b4.clone())
    });
    report.push(format!(
        "## Ingest ({requests} POSTs of {} B, {concurrency} concurrent clients, one trigger)\n",
        body.len()
    ));
    report.push("| target | requests/s | p50 | p99 | errors | throughput vs do-nothing |".into());
    report.push("|---|---|---|---|---|---|".into());
    for (name, l) in [
        ("do-nothing Worker", &baseline),
        ("edgehook, new deliveries (no routes)", &fresh),
        (
            "edgehook, new deliveries, three paused routes (ingest only)",
            &route_loads[0],
        ),
        ("edgehook, new deliveries, one route", &route_loads[1]),
        (
            "edgehook, new deliveries, three filtered routes",
            &route_loads[2],
        ),
        ("edgehook, duplicates", &dups),
    ] {
        report.push(format!(
            "| {name} | {:.0} | {} | {} | {} | {:.2} |",
            l.rps,
            ms(l.p50),
            ms(l.p99),
            l.errors,
            l.rps / baseline.rps
        ));
    }
    report.push(format!(
        "\n(rows with routes: {route_requests} POSTs each; with one and three routes the runs are dispatched to a local target while the load runs)\n"
    ));
    report.push(
        "| routes | runs delivered | seconds from first request to last run | runs/s |".into(),
    );
    report.push("|---|---|---|---|".into());
    for (n, delivered, took) in &drains {
        report.push(format!(
            "| {n} | {delivered} | {:.1} | {:.0} |",
            took.as_secs_f64(),
            *delivered as f64 / took.as_secs_f64()
        ));
    }
    drop(noop);

    // Dispatch, sustained: does delivery keep up with admission?
    let dispatch_seconds = env_num("BENCH_DISPATCH_SECONDS", 60) as u64;
    let (tid, paths) = routed(1, false);
    let path = paths[0].clone();
    let (b, s, tag) = (body.clone(), sig.clone(), unique("sustained"));
    let (acked, wall) = sustained(&edge.base, dispatch_seconds, concurrency, move |i| {
        push_request(&tid, &s, format!("{tag}-{i}"), &b)
    });
    let load_end = Instant::now();
    let mut acked_at = std::collections::HashMap::new();
    for (at, text) in &acked {
        if let Some(run) = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v["run_id"].as_str().map(str::to_string))
        {
            acked_at.insert(run, *at);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(900);
    while capture.received(&path).len() < acked_at.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    let calls = capture.received(&path);
    let mut first_call = std::collections::HashMap::new();
    for c in &calls {
        if let Some(id) = c.header("webhook-id") {
            first_call.entry(id.to_string()).or_insert(c.at);
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
    let pct = |p: f64| {
        lags.get(((lags.len() as f64 * p) as usize).min(lags.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let during = first_call.values().filter(|at| **at <= load_end).count();
    let last = first_call.values().max().copied().unwrap_or(load_end);
    let acked_rate = acked_at.len() as f64 / wall.as_secs_f64();
    let delivered_rate = during as f64 / wall.as_secs_f64();
    report.push(format!(
        "\n## Dispatch, sustained ({dispatch_seconds} s at concurrency {concurrency}, one route to a local target)\n"
    ));
    report.push("| acknowledged/s | runs delivered/s during the load | delivered / acknowledged | lag p50 | lag p99 | runs delivered | last run after the load ended |".into());
    report.push("|---|---|---|---|---|---|---|".into());
    report.push(format!(
        "| {acked_rate:.0} | {delivered_rate:.0} | {:.2} | {} | {} | {} of {} | {:.1} s |",
        delivered_rate / acked_rate.max(1e-9),
        ms(pct(0.50)),
        ms(pct(0.99)),
        lags.len(),
        acked_at.len(),
        last.saturating_duration_since(load_end).as_secs_f64()
    ));

    // 2. Wasm size.
    let wasm = std::fs::read(root().join("build/index_bg.wasm")).expect("read wasm");
    report.push(format!(
        "\n## Wasm\n\n{} bytes raw, {} bytes gzipped\n",
        wasm.len(),
        gzip_len(&wasm)
    ));

    // 3. Ledger growth, while growing the trigger to `target` deliveries by
    //    bulk replay (each call replays the 500 oldest deliveries).
    let admin_replay = |n: usize| {
        let r = edge.admin(
            "POST",
            &format!("/api/triggers/{id}/replay"),
            Some(&json!({"limit": n})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["count"].as_u64().unwrap_or(0) as usize
    };
    let mut have = requests + 1;
    report.push("## Ledger growth (the trigger's SQLite file)\n".into());
    report.push("| deliveries | file bytes | bytes per delivery |".into());
    report.push("|---|---|---|".into());
    let mut marks: Vec<usize> = [5_000, 10_000, 25_000, 50_000, 100_000, 250_000]
        .into_iter()
        .filter(|m| *m <= target)
        .collect();
    if marks.last() != Some(&target) {
        marks.push(target);
    }
    let grow_started = Instant::now();
    for mark in marks {
        while have < mark {
            have += admin_replay((mark - have).min(500));
        }
        // Let the no-target runs settle so the file stops moving.
        std::thread::sleep(Duration::from_millis(500));
        let bytes = largest_ledger(&edge);
        report.push(format!(
            "| {have} | {bytes} | {:.0} |",
            bytes as f64 / have as f64
        ));
    }
    let grow = grow_started.elapsed();
    report.push(format!(
        "\n(bulk replay wrote {} deliveries in {:.1} s: {:.0} deliveries/s inside one object)\n",
        have - requests - 1,
        grow.as_secs_f64(),
        (have - requests - 1) as f64 / grow.as_secs_f64()
    ));

    // 4. Backfill against COPY.
    let db = Pg::shared().fresh_database();
    let backfill = root().join("target/release/backfill");
    let started = Instant::now();
    let out = Command::new(&backfill)
        .args([
            "--url",
            &edge.base,
            "--token",
            &edge.admin_token,
            "--database-url",
            &db,
            "--trigger",
            &id,
            "--page-size",
            "1000",
            "--no-progress",
        ])
        .output()
        .expect("run target/release/backfill (make bench builds it)");
    let wall = started.elapsed();
    assert!(
        out.status.success(),
        "backfill failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut c = postgres::Client::connect(&db, postgres::NoTls).expect("connect");
    let deliveries: i64 = c
        .query_one("SELECT count(*) FROM deliveries", &[])
        .expect("count")
        .get(0);
    let runs: i64 = c
        .query_one("SELECT count(*) FROM runs", &[])
        .expect("count")
        .get(0);
    let rows = (deliveries + runs) as f64;
    // The same rows through a raw binary COPY into identical tables.
    let mut copy_secs = 0.0;
    for table in ["deliveries", "runs"] {
        let mut data = Vec::new();
        c.copy_out(&format!("COPY {table} TO STDOUT (FORMAT binary)"))
            .expect("copy out")
            .read_to_end(&mut data)
            .expect("read copy");
        c.batch_execute(&format!(
            "CREATE TABLE {table}_copy (LIKE {table} INCLUDING ALL)"
        ))
        .expect("create copy table");
        let t = Instant::now();
        let mut w = c
            .copy_in(&format!("COPY {table}_copy FROM STDIN (FORMAT binary)"))
            .expect("copy in");
        w.write_all(&data).expect("write copy");
        w.finish().expect("finish copy");
        copy_secs += t.elapsed().as_secs_f64();
    }
    let backfill_rps = rows / wall.as_secs_f64();
    let copy_rps = rows / copy_secs;
    report.push(format!(
        "## Backfill ({deliveries} deliveries + {runs} runs = {rows} rows, page size 1000)\n"
    ));
    report.push("| writer | seconds | rows/s |".into());
    report.push("|---|---|---|".into());
    report.push(format!(
        "| backfill (edge change feed → PostgreSQL) | {:.2} | {:.0} |",
        wall.as_secs_f64(),
        backfill_rps
    ));
    report.push(format!(
        "| raw binary COPY of the same rows | {:.2} | {:.0} |",
        copy_secs, copy_rps
    ));
    report.push(format!(
        "\nbackfill / COPY = {:.2}; its own summary: `{summary}`",
        backfill_rps / copy_rps
    ));

    let text = report.join("\n");
    println!("\n{text}\n");
}
