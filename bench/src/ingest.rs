//! Ingest: the references and edgehook under `wrangler dev` (with routes
//! and their dispatch), and the Miniflare matrix.

use std::time::{Duration, Instant};

use edgehook_e2e::*;
use serde_json::json;

use crate::common::*;
use crate::load::{load, Load, Provider};

/// Section 1: `wrangler dev`.
pub fn wrangler_ingest(report: &mut Report, requests: usize, c: usize, capture: &Capture) {
    let mut refs = Vec::new();
    let mut kept = Vec::new();
    for worker in ["noop", "floor-fetch", "floor-rpc", "floor-rust"] {
        let edge = Edge::start_reference(worker, SECRET, false);
        refs.push((
            worker,
            github_load(&edge.base, "/hooks/t", requests, c, SMALL),
        ));
        if worker == "floor-rpc" || worker == "floor-rust" {
            kept.push(edge);
        }
    }
    let edge = Edge::start();
    let id = bench_trigger(&edge, Provider::GitHub);
    let fresh = github_load(&edge.base, &format!("/hooks/{id}"), requests, c, SMALL);
    let ledger = Edge::start_reference("floor-rust-ledger", SECRET, false);
    let turns = take_turns(
        &Contenders {
            floor: &kept[0],
            rust: &kept[1],
            ledger: &ledger,
            edge: &edge,
        },
        // Two thirds of the main load a turn: three rounds of four
        // Workers are most of this section's time under `wrangler dev`.
        &[(c, (requests * 2 / 3).max(100))],
    );
    drop(kept);
    drop(ledger);
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
            "Rust floor (workers-rs), Durable Object by RPC",
            &refs[3].1,
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
    turns_table(report, &turns);
}

/// Section 2: Miniflare. Returns the c=16 rows for the latency chart.
pub fn miniflare_ingest(report: &mut Report, requests: usize) -> Vec<(String, Vec<f64>)> {
    let levels = [1, 16, 64];
    let size_n = |c: usize, size: usize| {
        // Fewer at the ends: c=1 is slow per request, and c=64 needs no
        // more requests than c=16 to fill its queue.
        let n = match c {
            1 => requests / 4,
            64 => requests / 2,
            _ => requests,
        };
        if size == LARGE {
            (n / 8).max(100)
        } else {
            n.max(100)
        }
    };
    let mut refs: Vec<(&str, Vec<Load>)> = Vec::new();
    let mut kept = Vec::new();
    for worker in ["noop", "floor-rpc", "floor-fetch", "floor-rust"] {
        let edge = Edge::start_reference(worker, SECRET, true);
        let loads = levels
            .iter()
            .map(|&c| github_load(&edge.base, "/hooks/t", size_n(c, SMALL), c, SMALL))
            .collect();
        refs.push((worker, loads));
        if worker == "floor-rpc" || worker == "floor-rust" {
            kept.push(edge);
        }
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
        "## Ingest under Miniflare (workerd without wrangler's proxy; {requests} POSTs per cell, a quarter at concurrency 1, half at 64, an eighth with 256 KB bodies)\n"
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
        rows.push(row(
            &format!("c={c} Rust floor (workers-rs), by RPC"),
            &refs[3].1[k],
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
    // The turns run at concurrency 16 only, where the targets are judged:
    // the other levels' single loads are in the table above, and their
    // turns took more than a minute of the bench's 20.
    let plan = [(16, size_n(16, SMALL))];
    let ledger = Edge::start_reference("floor-rust-ledger", SECRET, true);
    let on = Contenders {
        floor: &kept[0],
        rust: &kept[1],
        ledger: &ledger,
        edge: &edge,
    };
    turns_table(report, &take_turns(&on, &plan));
    // The chart: concurrency 16, GitHub 2 KB.
    let k = 1;
    let mut chart = vec![
        ("do-nothing Worker".to_string(), &refs[0].1[k]),
        ("JS floor, by RPC".to_string(), &refs[1].1[k]),
        ("JS floor, by fetch".to_string(), &refs[2].1[k]),
        ("Rust floor, by RPC".to_string(), &refs[3].1[k]),
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

/// One round of [`take_turns`]: each Worker's load.
pub struct Round {
    /// The JavaScript floor, by RPC.
    pub floor: Load,
    /// The Rust floor (`bench/floor-rust`), by RPC.
    pub rust: Load,
    /// The ledger floor: the Rust floor writing edgehook's rows.
    pub ledger: Load,
    /// edgehook.
    pub edge: Load,
}

/// What [`take_turns`] measured at one concurrency.
pub struct Turns {
    /// Concurrency.
    pub c: usize,
    /// Requests per load.
    pub n: usize,
    /// Each round's loads.
    pub rounds: Vec<Round>,
}

impl Turns {
    /// The median over rounds of `f(round)`.
    fn median(&self, f: impl Fn(&Round) -> f64) -> f64 {
        let mut v: Vec<f64> = self.rounds.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// The four Workers that take turns.
pub struct Contenders<'a> {
    /// The JavaScript floor, by RPC.
    pub floor: &'a Edge,
    /// The Rust floor, by RPC.
    pub rust: &'a Edge,
    /// The ledger floor (`floor-rust-ledger`).
    pub ledger: &'a Edge,
    /// edgehook.
    pub edge: &'a Edge,
}

/// The JavaScript floor, the Rust floor, the ledger floor and edgehook take
/// turns: `BENCH_ROUNDS` rounds (5 by default) at each `(concurrency,
/// requests)` of `plan`, each round a load of new GitHub 2 KB deliveries on
/// each in turn (every other round in reverse order; after edgehook's turn,
/// its queue consumer delivers that turn's runs before the next begins).
/// All four run side by side, so every round compares them on the machine
/// as it is at that moment: the single loads of the main table are minutes
/// apart, and this machine drifts by a third over minutes.
fn take_turns(on: &Contenders<'_>, plan: &[(usize, usize)]) -> Vec<Turns> {
    let rounds = env_num("BENCH_ROUNDS", 5).max(1);
    let id = bench_trigger(on.edge, Provider::GitHub);
    plan.iter()
        .map(|&(c, n)| Turns {
            c,
            n,
            rounds: (0..rounds)
                .map(|round| {
                    let edge_path = format!("/hooks/{id}");
                    let loads = one_round(
                        &[
                            (on.floor, "/hooks/t", None),
                            (on.rust, "/hooks/t", None),
                            (on.ledger, "/hooks/t", None),
                            (on.edge, &edge_path, Some(&id)),
                        ],
                        round,
                        n,
                        c,
                    );
                    let [floor, rust, ledger, edge]: [Load; 4] = loads
                        .try_into()
                        .unwrap_or_else(|_| unreachable!("four loads"));
                    Round {
                        floor,
                        rust,
                        ledger,
                        edge,
                    }
                })
                .collect(),
        })
        .collect()
}

/// One round of turns: a load of `n` new GitHub 2 KB deliveries at
/// concurrency `c` on each Worker, `(edge, path, edgehook's trigger)`, in
/// order, or in reverse order on odd rounds, so that no Worker's turn always
/// comes after the same other's. After each of edgehook's turns its queue
/// consumer delivers that turn's runs before the next turn begins: Miniflare's
/// broker holds them while the load runs, and they would otherwise be
/// delivered during the next Worker's turn. Returns the loads in the order
/// given.
fn one_round(
    workers: &[(&Edge, &str, Option<&str>)],
    round: usize,
    n: usize,
    c: usize,
) -> Vec<Load> {
    let mut loads: Vec<Option<Load>> = workers.iter().map(|_| None).collect();
    let mut order: Vec<usize> = (0..workers.len()).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    let per_request = |from: Option<f64>, to: Option<f64>| Some((to? - from?) / n as f64);
    for k in order {
        let (edge, path, trigger) = workers[k];
        let cpu = edge.cpu_ms();
        let mut load = github_load(&edge.base, path, n, c, SMALL);
        load.cpu_ms = per_request(cpu, edge.cpu_ms());
        if let Some(trigger) = trigger {
            wait_until_delivered(edge, trigger);
            load.settled_cpu_ms = per_request(cpu, edge.cpu_ms());
        }
        loads[k] = Some(load);
    }
    loads.into_iter().flatten().collect()
}

/// Waits (up to a minute) until none of `trigger`'s deliveries is queued:
/// its queue consumer has delivered what a load left.
fn wait_until_delivered(edge: &Edge, trigger: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let path = format!("/api/triggers/{trigger}/deliveries?status=queued&limit=1");
    while Instant::now() < deadline {
        let r = edge.admin("GET", &path, None);
        if r.status == 200 && r.json()["deliveries"].as_array().is_some_and(Vec::is_empty) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("bench: trigger {trigger} still had queued deliveries after a minute");
}

/// A load's CPU milliseconds a request, NaN where not measured.
fn cpu(l: &Load) -> f64 {
    l.cpu_ms.unwrap_or(f64::NAN)
}

/// The table of [`take_turns`]: the medians over rounds.
fn turns_table(report: &mut Report, turns: &[Turns]) {
    let rounds = turns.first().map_or(0, |t| t.rounds.len());
    report.line(format!(
        "The JavaScript floor, the Rust floor (the same admission written with workers-rs, \
         `bench/floor-rust`), the ledger floor (the Rust floor writing, with edgehook's schema \
         and statements, the rows edgehook writes for a new delivery: its dedupe lookup, \
         counters, delivery row, body and run) and edgehook, new GitHub 2 KB deliveries taking \
         turns, {rounds} rounds each (medians over rounds). Rust floor / JS floor is what Rust, \
         Wasm and wasm-bindgen cost on this platform; ledger floor / Rust floor what edgehook's \
         rows cost; edgehook / ledger floor what all of edgehook's other work costs. CPU is \
         the user and system time of each runtime's processes while its load ran (for \
         edgehook, in brackets, until its queue consumer had delivered the turn's runs), \
         per request: what the platform bills, and what bounds throughput on two shared \
         cores.\n"
    ));
    report.table(
        &[
            "concurrency",
            "requests a turn",
            "JS floor requests/s",
            "Rust floor requests/s",
            "ledger floor requests/s",
            "edgehook requests/s",
            "Rust floor / JS floor",
            "ledger floor / JS floor",
            "edgehook / JS floor",
            "ledger floor / Rust floor",
            "edgehook / ledger floor",
            "p99 edgehook / JS floor",
            "CPU ms a request: JS floor, Rust floor, ledger floor, edgehook (its runs settled)",
            "CPU edgehook / JS floor",
        ],
        turns
            .iter()
            .map(|t| {
                vec![
                    t.c.to_string(),
                    t.n.to_string(),
                    format!("{:.0}", t.median(|r| r.floor.rps)),
                    format!("{:.0}", t.median(|r| r.rust.rps)),
                    format!("{:.0}", t.median(|r| r.ledger.rps)),
                    format!("{:.0}", t.median(|r| r.edge.rps)),
                    format!("{:.2}", t.median(|r| r.rust.rps / r.floor.rps)),
                    format!("{:.2}", t.median(|r| r.ledger.rps / r.floor.rps)),
                    format!("{:.2}", t.median(|r| r.edge.rps / r.floor.rps)),
                    format!("{:.2}", t.median(|r| r.ledger.rps / r.rust.rps)),
                    format!("{:.2}", t.median(|r| r.edge.rps / r.ledger.rps)),
                    format!(
                        "{:.2}",
                        t.median(|r| r.edge.p99.as_secs_f64() / r.floor.p99.as_secs_f64())
                    ),
                    format!(
                        "{:.2}, {:.2}, {:.2}, {:.2} ({:.2})",
                        t.median(|r| cpu(&r.floor)),
                        t.median(|r| cpu(&r.rust)),
                        t.median(|r| cpu(&r.ledger)),
                        t.median(|r| cpu(&r.edge)),
                        t.median(|r| r.edge.settled_cpu_ms.unwrap_or(f64::NAN)),
                    ),
                    format!("{:.2}", t.median(|r| cpu(&r.edge) / cpu(&r.floor))),
                ]
            })
            .collect(),
    );
}

/// `BENCH_ONLY=probe`: the quick A/B used while tuning the ingest path.
/// The RPC floor and edgehook run side by side (Miniflare, or `wrangler
/// dev` with `BENCH_PROBE=wrangler`) and take turns, `BENCH_ROUNDS` rounds
/// of `requests` new GitHub 2 KB deliveries at concurrency `c`, so both see
/// the same machine; the median ratio is printed. `BENCH_PROBE_CONSUMER=0`
/// runs edgehook without its queue consumer, as the floor has none;
/// `BENCH_PROBE_WORKERS` compares reference Workers instead
/// ([`probe_workers`]).
pub fn probe(report: &mut Report, requests: usize, c: usize) {
    if let Ok(names) = std::env::var("BENCH_PROBE_WORKERS") {
        return probe_workers(report, requests, c, &names);
    }
    let miniflare = std::env::var("BENCH_PROBE").map_or(true, |v| v != "wrangler");
    let rounds = env_num("BENCH_ROUNDS", 3);
    let floor = Edge::start_reference("floor-rpc", SECRET, miniflare);
    let consumer = std::env::var("BENCH_PROBE_CONSUMER").map_or(true, |v| v != "0");
    let edge = match (miniflare, consumer) {
        (true, true) => Edge::start_miniflare("edgehook"),
        (true, false) => Edge::start_miniflare("edgehook-without-consumer"),
        (false, true) => Edge::start(),
        (false, false) => Edge::start_without_consumer(),
    };
    let id = bench_trigger(&edge, Provider::GitHub);
    let mut ratios = Vec::new();
    let mut cpus = (Vec::new(), Vec::new());
    let mut rows = Vec::new();
    for round in 0..rounds {
        let edge_path = format!("/hooks/{id}");
        let loads = one_round(
            &[(&floor, "/hooks/t", None), (&edge, &edge_path, Some(&id))],
            round,
            requests,
            c,
        );
        let (f, e) = (&loads[0], &loads[1]);
        ratios.push(e.rps / f.rps);
        cpus.0.push(cpu(f));
        cpus.1.push(cpu(e));
        rows.push(row(&format!("round {round}: floor"), f, None, None));
        rows.push(row(&format!("round {round}: edgehook"), e, None, Some(f)));
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    report.line(format!(
        "## Probe ({}, c={c}, {requests} new GitHub 2 KB deliveries a turn)\n",
        if miniflare {
            "Miniflare"
        } else {
            "wrangler dev"
        }
    ));
    report.table(&LOAD_HEADER, rows);
    for v in [&mut cpus.0, &mut cpus.1] {
        v.sort_by(|a, b| a.total_cmp(b));
    }
    report.line(format!(
        "median edgehook / floor: {:.2}; CPU a request: floor {:.3} ms, edgehook {:.3} ms\n",
        ratios[ratios.len() / 2],
        cpus.0[cpus.0.len() / 2],
        cpus.1[cpus.1.len() / 2]
    ));
}

/// `BENCH_PROBE_WORKERS=a,b,...`: Workers by their names in
/// `bench/workers.mjs` (`floor-rpc`, `floor-js-ledger`, `floor-rust`,
/// `floor-rust-ledger`, `edgehook`, `edgehook-baseline`, ...) under Miniflare
/// taking turns, `BENCH_ROUNDS` rounds, each against the first; the median
/// ratios are printed. This is how the floors are compared with each other
/// apart from a full run, and how a change to edgehook is measured against
/// a baseline build.
fn probe_workers(report: &mut Report, requests: usize, c: usize, names: &str) {
    let rounds = env_num("BENCH_ROUNDS", 3);
    let names: Vec<&str> = names.split(',').map(str::trim).collect();
    // Each Worker with the path it is loaded at and, for edgehook's builds,
    // their trigger; the reference Workers take any path.
    let edges: Vec<(Edge, String, Option<String>)> = names
        .iter()
        .map(|n| {
            // The harness names Workers by `&'static str`; a probe starts a
            // handful once, so their names may live as long as the process.
            let name: &'static str = String::from(*n).leak();
            if name.starts_with("edgehook") {
                let edge = Edge::start_miniflare(name);
                let id = bench_trigger(&edge, Provider::GitHub);
                (edge, format!("/hooks/{id}"), Some(id))
            } else {
                (
                    Edge::start_reference(name, SECRET, true),
                    "/hooks/t".into(),
                    None,
                )
            }
        })
        .collect();
    let mut ratios = vec![Vec::new(); names.len()];
    let mut cpus = vec![Vec::new(); names.len()];
    let mut rows = Vec::new();
    for round in 0..rounds {
        let workers: Vec<(&Edge, &str, Option<&str>)> = edges
            .iter()
            .map(|(e, path, trigger)| (e, path.as_str(), trigger.as_deref()))
            .collect();
        let loads = one_round(&workers, round, requests, c);
        for (k, l) in loads.iter().enumerate() {
            ratios[k].push(l.rps / loads[0].rps);
            cpus[k].push(cpu(l));
            rows.push(row(
                &format!("round {round}: {}", names[k]),
                l,
                None,
                Some(&loads[0]),
            ));
        }
    }
    report.line(format!("## Probe (Miniflare, c={c}, {requests} a turn)\n"));
    report.table(&LOAD_HEADER, rows);
    for (k, r) in ratios.iter_mut().enumerate() {
        r.sort_by(|a, b| a.total_cmp(b));
        cpus[k].sort_by(|a, b| a.total_cmp(b));
        report.line(format!(
            "median {} / {}: {:.2}; CPU a request: {:.3} ms\n",
            names[k],
            names[0],
            r[r.len() / 2],
            cpus[k][cpus[k].len() / 2]
        ));
    }
}
