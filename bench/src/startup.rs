//! What the Wasm's size costs when an isolate starts.
//!
//! `bench/startup.mjs` starts each reference Worker and edgehook again and
//! again under Miniflare, taking turns, and times each start to `ready`
//! (workerd up, the script loaded and its Wasm compiled) and the first
//! answer after it. The do-nothing Worker's start is workerd's own; the
//! Rust floor's is that plus workers-rs and wasm-bindgen; edgehook's
//! difference from the Rust floor is what its own code costs a cold
//! isolate. The Rust floor padded to edgehook's size with a custom section,
//! which V8 never compiles, tells how much of that is the bytes alone.

use std::process::Command;

use edgehook_e2e::*;
use serde_json::Value;

use crate::common::Report;

/// The median of `xs`, which is not empty.
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Runs `bench/startup.mjs` for `rounds` rounds and reports its medians;
/// `sizes` gives each Wasm-carrying Worker's raw and gzipped bytes.
pub fn startup(report: &mut Report, rounds: usize, sizes: &[(&str, usize, usize)]) {
    let state = std::env::temp_dir().join(format!("edgehook-startup-{}", std::process::id()));
    std::fs::create_dir_all(&state).expect("startup state dir");
    let out = Command::new("node")
        .arg(root().join("bench/startup.mjs"))
        .arg(rounds.to_string())
        .arg(&state)
        .current_dir(root())
        .output()
        .expect("run node bench/startup.mjs");
    let _ = std::fs::remove_dir_all(&state);
    assert!(
        out.status.success(),
        "bench/startup.mjs failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("startup.mjs prints JSON");
    let times = |kind: &str, what: &str| -> Vec<f64> {
        v["workers"][kind][what]
            .as_array()
            .expect("a list of times")
            .iter()
            .map(|x| x.as_f64().expect("a time"))
            .collect()
    };
    let rust_ready = median(times("floor-rust", "ready_ms"));
    report.line(format!(
        "Isolate start-up under Miniflare: each Worker started {rounds} times with fresh state, \
         taking turns (medians). \"Ready\" is from `new Miniflare` to its `ready`: workerd \
         started, the script loaded, its Wasm compiled.\n"
    ));
    let mut rows = Vec::new();
    for (kind, name) in [
        ("noop", "do-nothing Worker (JS)"),
        ("floor-rpc", "JS floor"),
        ("floor-rust", "Rust floor"),
        (
            "floor-rust-padded",
            "Rust floor, its Wasm padded to edgehook's size by a custom section",
        ),
        ("edgehook", "edgehook"),
    ] {
        let ready = times(kind, "ready_ms");
        let (lo, hi) = ready
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        let ready = median(ready);
        let size = match sizes.iter().find(|(k, _, _)| *k == kind) {
            Some((_, raw, gz)) => format!("{raw} / {gz}"),
            None if kind == "floor-rust-padded" => format!("{} / —", v["padded_bytes"]),
            None => String::new(),
        };
        rows.push(vec![
            name.to_string(),
            size,
            format!("{ready:.0} ms ({lo:.0}–{hi:.0})"),
            format!("{:+.0} ms", ready - rust_ready),
            format!("{:.1} ms", median(times(kind, "first_answer_ms"))),
        ]);
    }
    report.table(
        &[
            "Worker",
            "Wasm bytes raw / gzipped",
            "ready",
            "ready vs Rust floor",
            "first answer after ready",
        ],
        rows,
    );
}
