//! `make bench`: every figure measured in one run, on one machine, as ratios
//! against references run on the same runtime in the same run.
//!
//! 1. Ingest under `wrangler dev`: a do-nothing Worker, the JavaScript floor
//!    (`bench/floor/floor.js`, reaching its Durable Object by fetch and by
//!    RPC), the Rust floor (`bench/floor-rust`: the same admission written
//!    with workers-rs, as edgehook is) and edgehook, without routes, with one and three routes (runs
//!    dispatched to a local target while the load runs) and with three
//!    paused routes, and duplicates.
//! 2. Ingest under Miniflare's API (no wrangler proxy or inspector, closer
//!    to production): the same references at concurrency 1, 16 and 64, and
//!    edgehook over GitHub and Stripe signatures, 2 KB and 256 KB bodies,
//!    new and duplicate deliveries.
//!
//! Both ingest sections end with the floors and edgehook taking turns,
//! `BENCH_ROUNDS` rounds (5) of new GitHub 2 KB deliveries at concurrency
//! 16, side by side: the medians of those rounds are the ratios least moved
//! by the machine's drift. Each turn also reads the CPU time its runtime's
//! processes used (`Edge::cpu_ms`), per request: what the platform bills.
//! 3. Dispatch, sustained: runs delivered per second against deliveries
//!    acknowledged per second over the load's steady window (its last five
//!    sixths), the runs not yet delivered when it ended, and the lag from
//!    acknowledgement to the target's receipt. Closed loops under both
//!    runtimes, the JavaScript floor with a do-nothing consumer under
//!    Miniflare (what its local queue itself delivers), and a load paced at
//!    0.4 of edgehook's closed-loop rate under Miniflare (`dispatch::PACE`).
//!    The two Miniflare closed loops run for a third of
//!    `BENCH_DISPATCH_SECONDS`.
//! 4. Crash drain: 2,000 runs acknowledged by an edge whose queue consumer
//!    never ran, then delivered after a restart.
//! 5. Growth: ingest into ledgers of about 200, 100,000 and 1,000,000
//!    deliveries (grown by `seed`) in rounds taking turns, once warm (the
//!    first requests after a restart are shown apart), the query plans of
//!    the hot paths, the ledger's bytes per delivery.
//! 6. The Worker's Wasm, raw and gzipped, and what it costs a cold
//!    isolate: each Worker started `BENCH_STARTUPS` times (9) under
//!    Miniflare, taking turns, timed to ready and to its first answer.
//! 7. Backfill: rows/s syncing the 100,000-delivery ledger into PostgreSQL,
//!    against a raw binary `COPY` of the same rows; once the growth loads'
//!    runs have been dispatched, three of each taking turns, the median of
//!    each turn's ratio.
//!
//! The report is printed and written to `bench/results/` (`latest.md`,
//! `latency.svg`, `growth.svg`); a run of some sections only (`BENCH_ONLY`)
//! writes `bench/results/partial.md` instead and leaves those alone. Sizes
//! are overridable: `BENCH_REQUESTS`, `BENCH_CONCURRENCY`,
//! `BENCH_ROUTE_REQUESTS`, `BENCH_DISPATCH_SECONDS`, `BENCH_DRAIN_RUNS`,
//! `BENCH_GROWTH` (the largest ledger), `BENCH_STARTUPS`.

mod chart;
mod common;
mod dispatch;
mod growth;
mod ingest;
mod load;
mod seed;
mod startup;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Instant;

use common::{env_num, Report};
use edgehook_e2e::*;

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

/// Whether `section` runs: all do unless `BENCH_ONLY` lists some
/// (`wrangler`, `miniflare`, `dispatch`, `drain`, `growth`; `probe`, the
/// quick A/B of [`ingest::probe`], runs only when listed).
fn runs(section: &str) -> bool {
    std::env::var("BENCH_ONLY").is_err() || listed(section)
}

/// Whether `BENCH_ONLY` lists `section`.
fn listed(section: &str) -> bool {
    std::env::var("BENCH_ONLY").is_ok_and(|only| only.split(',').any(|s| s.trim() == section))
}

/// Each section's wall time, in the order run.
struct Sections(Vec<String>, Instant);

impl Default for Sections {
    fn default() -> Self {
        Sections(Vec::new(), Instant::now())
    }
}

impl Sections {
    /// Records the section that just ended, and says so on stderr.
    fn done(&mut self, name: &str) {
        let secs = self.1.elapsed().as_secs_f64();
        eprintln!("bench: {name} took {secs:.0} s");
        self.0.push(format!("{name} {secs:.0} s"));
        self.1 = Instant::now();
    }
}

/// Writes `bench/floor/schema.mjs`, edgehook's schema and admission
/// statements (`edgehook_core::schema`) for the JavaScript ledger floor, so
/// that it runs the very text edgehook runs.
fn write_js_schema() {
    use edgehook_core::schema;
    let js = |v: &str| serde_json::to_string(v).expect("a string");
    let steps: Vec<&str> = schema::MIGRATIONS
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect();
    let text = format!(
        "// Written by `make bench` from core/src/schema.rs; not edited by hand.\n\
         export const MIGRATIONS = {};\n\
         export const FIND_HOLDER = {};\n\
         export const COUNT_STORED_BYTES = {};\n\
         export const INSERT_DELIVERY = {};\n\
         export const INSERT_BODY = {};\n\
         export const INSERT_RUN = {};\n",
        serde_json::to_string(&steps).expect("steps"),
        js(&schema::find_holder_query()),
        js(schema::COUNT_STORED_BYTES),
        js(schema::INSERT_DELIVERY),
        js(schema::INSERT_BODY),
        js(schema::INSERT_RUN),
    );
    std::fs::write(root().join("bench/floor/schema.mjs"), text).expect("write schema.mjs");
}

fn main() {
    let started = Instant::now();
    write_js_schema();
    let requests = env_num("BENCH_REQUESTS", 3000);
    let c = env_num("BENCH_CONCURRENCY", 16);
    let mut report = Report::default();
    let capture = Capture::start();
    // How long each section took, so the bench's own length can be kept
    // in check (the 20 minutes from a fresh clone).
    let mut took = Sections::default();

    if listed("probe") {
        ingest::probe(&mut report, requests, c);
    }
    if runs("wrangler") {
        ingest::wrangler_ingest(&mut report, requests, c, &capture);
        took.done("ingest under wrangler dev");
    }
    let latency = if runs("miniflare") {
        let rows = ingest::miniflare_ingest(&mut report, requests);
        took.done("ingest under Miniflare");
        rows
    } else {
        Vec::new()
    };

    let seconds = env_num("BENCH_DISPATCH_SECONDS", 60) as u64;
    if runs("dispatch") {
        dispatch::dispatch_section(&mut report, &capture, seconds, c);
        took.done("dispatch");
    }
    if runs("drain") {
        let drain_runs = env_num("BENCH_DRAIN_RUNS", 2000);
        let (acked, delivered, secs) = dispatch::crash_drain(&capture, drain_runs, c);
        report.line("## Crash drain (Miniflare)\n".to_string());
        report.line(format!(
            "{acked} runs acknowledged by an edge whose queue consumer never ran (its messages lost with it); after a restart with a consumer, {delivered} of them reached the target {secs:.1} s after the edge was ready.\n"
        ));
        took.done("crash drain");
    }
    let growth = if runs("growth") {
        let (points, edge, trigger) = growth::growth(
            &mut report,
            &capture,
            requests,
            c,
            env_num("BENCH_GROWTH", 1_000_000),
        );
        took.done("growth");
        growth::versus_copy(&mut report, &edge, &trigger);
        took.done("backfill");
        points
    } else {
        Vec::new()
    };
    let wasm = std::fs::read(root().join("build/index_bg.wasm")).expect("read wasm");
    let (raw, gz) = (wasm.len(), gzip_len(&wasm));
    let mut sizes = vec![("edgehook", raw, gz)];
    report.line(format!("## Wasm\n\n{raw} bytes raw, {gz} bytes gzipped\n"));
    // The Rust floor, built and stripped the same way: what workers-rs and
    // wasm-bindgen weigh before any of edgehook's code.
    if let Ok(floor) = std::fs::read(root().join("target/floor-rust/index_bg.wasm")) {
        let (raw, gz) = (floor.len(), gzip_len(&floor));
        sizes.push(("floor-rust", raw, gz));
        report.line(format!(
            "For reference, the Rust floor (`bench/floor-rust`: workers-rs, an HMAC, one SQL \
             insert, one queue send; with its ledger mode, which carries edgehook's schema \
             text): {raw} bytes raw, {gz} bytes gzipped.\n"
        ));
    }
    if runs("startup") {
        startup::startup(&mut report, env_num("BENCH_STARTUPS", 9), &sizes);
        took.done("start-up");
    }
    report.line(format!(
        "(`make bench`, {:.0} s on this machine, {} cores: {})",
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        took.0.join(", ")
    ));

    let text = report.0.join("\n");
    println!("\n{text}\n");
    let dir = root().join("bench/results");
    match std::env::var("BENCH_ONLY") {
        // A probe is a quick look, not a result to keep.
        Ok(only) if only.trim() == "probe" => return,
        // Some sections only: their report goes beside the full run's
        // results, which it must not replace (its charts would be empty).
        Ok(_) => {
            std::fs::create_dir_all(&dir).expect("bench/results");
            let report = format!("# `make bench` (BENCH_ONLY)\n\n{text}\n");
            std::fs::write(dir.join("partial.md"), report).expect("write partial.md");
            return;
        }
        Err(_) => {}
    }
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
