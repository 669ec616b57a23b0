//! Growth: ingest into ledgers grown to a million deliveries (by `seed`),
//! the hot queries' plans, and the backfill against a raw `COPY`.

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use edgehook_e2e::pg::Pg;
use edgehook_e2e::*;
use serde_json::Value;

use crate::common::*;
use crate::load::{load, Provider, Signer};
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
    // the ledgers in turn, round after round. Each ledger's ratio is the
    // median over rounds of its rate against the smallest ledger's in the
    // same round: loads seconds apart, where this machine drifts by a third
    // over minutes. Every other round takes the ledgers in reverse order,
    // so a drift within a round does not always favour the same one; and
    // each load is half of `requests`, a few seconds long, so one WAL
    // checkpoint or collection does not decide a round.
    const ROUNDS: usize = 4;
    const COLD: usize = 300;
    let per_load = (requests / 2).max(100);
    let mut results = vec![Vec::new(); sizes.len()];
    let mut cold = Vec::new();
    for round in 0..ROUNDS {
        let mut order: Vec<usize> = (0..triggers.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for k in order {
            let tid = &triggers[k].0;
            if round == 0 {
                // Steady state is what is compared: the first requests to a
                // 5 GB ledger read its index pages from disk. They are
                // shown apart.
                cold.push(github_load(
                    &edge.base,
                    &format!("/hooks/{tid}"),
                    COLD,
                    c,
                    SMALL,
                ));
            }
            results[k].push(github_load(
                &edge.base,
                &format!("/hooks/{tid}"),
                per_load,
                c,
                SMALL,
            ));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0
    };
    report.line(format!(
        "## Growth (Miniflare; ledgers grown by copying the Worker's own rows in {:.0} s; {} new GitHub deliveries per ledger, concurrency {c}, in {ROUNDS} rounds taking turns, every other round in reverse order; medians over rounds)\n",
        seeded_in.as_secs_f64(),
        per_load * ROUNDS,
    ));
    let mut rows = Vec::new();
    let mut points = Vec::new();
    for (k, size) in sizes.iter().enumerate() {
        let rps = median(results[k].iter().map(|l| l.rps).collect());
        let p99 = median(results[k].iter().map(|l| l.p99.as_secs_f64()).collect());
        let ratio = median(
            results[k]
                .iter()
                .zip(&results[0])
                .map(|(l, first)| l.rps / first.rps)
                .collect(),
        );
        let bytes = std::fs::metadata(&files[k]).map(|m| m.len()).unwrap_or(0);
        let deliveries = size + 200;
        points.push((deliveries as f64, rps));
        rows.push(vec![
            deliveries.to_string(),
            format!("{rps:.0}"),
            format!("{:.1} ms", p99 * 1000.0),
            format!("{ratio:.2}"),
            format!("{:.0}", cold[k].rps),
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
            &format!("its first {COLD} after a restart, /s"),
            "ledger file bytes",
            "bytes per delivery",
        ],
        rows,
    );
    let rounds: Vec<String> = results[2]
        .iter()
        .zip(&results[0])
        .map(|(l, first)| format!("{:.2}", l.rps / first.rps))
        .collect();
    report.line(format!(
        "The largest ledger against the smallest, round by round: {}.\n",
        rounds.join(", ")
    ));
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
/// binary `COPY` of the same rows into identical tables. The two take
/// turns, three times each (the backfill into a fresh database each time),
/// and the ratio is the median of each turn's. Five turns took 25 s more,
/// and in the last two full runs the median of their first three was
/// within 0.02 of the five's.
pub fn versus_copy(report: &mut Report, edge: &Edge, tid: &str) {
    const RUNS: usize = 3;
    let backfill = |db: &str| {
        let started = Instant::now();
        let out = Command::new(root().join("target/release/backfill"))
            .args(["--url", &edge.base, "--token", &edge.admin_token])
            .args(["--database-url", db, "--trigger", tid, "--no-progress"])
            .output()
            .expect("run target/release/backfill (make bench builds it)");
        let wall = started.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "backfill failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            wall,
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    // The first backfill's rows, exported once, are what every COPY writes.
    let db = Pg::shared().fresh_database();
    let (first_wall, summary) = backfill(&db);
    let mut client = postgres::Client::connect(&db, postgres::NoTls).expect("connect");
    let mut rows = 0i64;
    let mut counts = Vec::new();
    let mut exported = Vec::new();
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
        exported.push((table, data));
    }
    let mut copy = || {
        let mut secs = 0.0;
        for (table, data) in &exported {
            client
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS {table}_copy; CREATE TABLE {table}_copy (LIKE {table} INCLUDING ALL)"
                ))
                .expect("create copy table");
            let t = Instant::now();
            let mut w = client
                .copy_in(&format!("COPY {table}_copy FROM STDIN (FORMAT binary)"))
                .expect("copy in");
            w.write_all(data).expect("write copy");
            w.finish().expect("finish copy");
            secs += t.elapsed().as_secs_f64();
        }
        secs
    };
    // A backfill into a fresh database and a COPY take turns, and each
    // pair gives a ratio: single runs of a few seconds moved by a third
    // between runs here, both sides alike.
    let mut walls = vec![first_wall];
    let mut copies = vec![copy()];
    for _ in 1..RUNS {
        walls.push(backfill(&Pg::shared().fresh_database()).0);
        copies.push(copy());
    }
    let ratios: Vec<f64> = copies.iter().zip(&walls).map(|(c, w)| c / w).collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let wall = median(walls);
    let copy_secs = median(copies);
    report.line(format!(
        "## Backfill ({} = {rows} rows, from the edge's change feed; {RUNS} backfills into fresh databases and {RUNS} raw COPYs, taking turns; medians)\n",
        counts.join(" + ")
    ));
    report.table(
        &["writer", "seconds", "rows/s"],
        vec![
            vec![
                "backfill (edge change feed → PostgreSQL)".into(),
                format!("{wall:.2}"),
                format!("{:.0}", rows as f64 / wall),
            ],
            vec![
                "raw binary COPY of the same rows".into(),
                format!("{copy_secs:.2}"),
                format!("{:.0}", rows as f64 / copy_secs),
            ],
        ],
    );
    report.line(format!(
        "backfill / COPY = {:.2} (the median of each turn's ratio: {}); its own summary: `{summary}`\n",
        median(ratios.clone()),
        ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
}
