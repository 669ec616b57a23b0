//! Growth: ingest into ledgers grown to a million deliveries (by `seed`),
//! the hot queries' plans, and the backfill against a raw `COPY`.

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use edgehook_e2e::pg::Pg;
use edgehook_e2e::*;
use serde_json::Value;

use crate::common::*;
use crate::load::{load, Load, Provider, Signer};
use crate::seed;

/// Ingest into ledgers of about 200, `largest / 10` and `largest`
/// deliveries on one Miniflare edge; returns the growth curve's points, and
/// the edge with its middle ledger's trigger for the backfill.
pub fn growth(
    report: &mut Report,
    capture: &Capture,
    requests: usize,
    c: usize,
    largest: usize,
) -> (Vec<(f64, f64)>, Edge, String) {
    let mut edge = Edge::start_miniflare("edgehook");
    let sizes = [0, largest / 10, largest];
    let mut triggers = Vec::new();
    let mut paths = Vec::new();
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
        paths.push(path);
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
    // The loads' runs are still being dispatched; the backfill is measured
    // once that has settled, not against it.
    settle(capture, &paths);
    (points, edge, triggers[1].0.clone())
}

/// Waits until none of `paths` has received a request for three seconds
/// (at most two minutes).
fn settle(capture: &Capture, paths: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let count = || paths.iter().map(|p| capture.count(p)).sum::<usize>();
    let (mut last, mut since) = (count(), Instant::now());
    while Instant::now() < deadline && since.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(250));
        let now = count();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
}

/// The backfill of `tid` from `edge` into a fresh database, against a raw
/// binary `COPY` of the same rows into identical tables. Each side runs
/// three times (the backfill into a fresh database each time) and the
/// median counts: a single run of a second or two moved by a third between
/// runs.
pub fn versus_copy(report: &mut Report, edge: &Edge, tid: &str) {
    const RUNS: usize = 3;
    let mut walls = Vec::new();
    let mut db = String::new();
    let mut summary = String::new();
    for _ in 0..RUNS {
        db = Pg::shared().fresh_database();
        let started = Instant::now();
        let out = Command::new(root().join("target/release/backfill"))
            .args(["--url", &edge.base, "--token", &edge.admin_token])
            .args(["--database-url", &db, "--trigger", tid, "--no-progress"])
            .output()
            .expect("run target/release/backfill (make bench builds it)");
        walls.push(started.elapsed().as_secs_f64());
        assert!(
            out.status.success(),
            "backfill failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        summary = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    let mut client = postgres::Client::connect(&db, postgres::NoTls).expect("connect");
    let mut rows = 0i64;
    let mut copies = vec![0.0; RUNS];
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
        for copy in copies.iter_mut() {
            client
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS {table}_copy; CREATE TABLE {table}_copy (LIKE {table} INCLUDING ALL)"
                ))
                .expect("create copy table");
            let t = Instant::now();
            let mut w = client
                .copy_in(&format!("COPY {table}_copy FROM STDIN (FORMAT binary)"))
                .expect("copy in");
            w.write_all(&data).expect("write copy");
            w.finish().expect("finish copy");
            *copy += t.elapsed().as_secs_f64();
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let wall = std::time::Duration::from_secs_f64(median(walls));
    let copy_secs = median(copies);
    let backfill_rps = rows as f64 / wall.as_secs_f64();
    let copy_rps = rows as f64 / copy_secs;
    report.line(format!(
        "## Backfill ({} = {rows} rows, from the edge's change feed; medians of three runs)\n",
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
}
