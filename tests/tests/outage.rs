//! Outages: of the queue consumer (runs are re-sent with spacing, not in a
//! storm, and runs whose messages were lost go with the next claim of their
//! trigger), and of the target (retries with backoff until it recovers; if it
//! never does, the run fails, is dead-lettered, and the ledger and the change
//! feed agree).

use std::time::{Duration, Instant};

use edgehook_core::run::{max_resends_within, CLAIM_AHEAD_AFTER_SECONDS, REENQUEUE_GRACE_SECONDS};
use edgehook_e2e::*;
use serde_json::{json, Value};

const SECRET: &str = "outage-test-github-secret";

fn send(edge: &Edge, id: &str) -> Value {
    let body = br#"{"outage":true}"#;
    let sig = github_signature(SECRET, body);
    let r = edge.hook(
        id,
        &[
            ("x-hub-signature-256", &sig),
            ("x-github-delivery", &unique("o")),
        ],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn a_consumer_outage_re_sends_each_run_a_bounded_number_of_times() {
    let watch = Duration::from_secs(scaled(100, 3600) as u64);
    let edge = Edge::start_without_consumer();
    let capture = Capture::start();
    let t = edge.create_trigger(json!({
        "name": "no consumer", "provider": "github", "signing_secret": SECRET,
        "target_url": capture.url("/ok/outage")
    }));
    let id = t["id"].as_str().expect("id");
    let a = send(&edge, id);
    let started = Instant::now();
    std::thread::sleep(watch);
    let d = edge.delivery(id, a["delivery_id"].as_str().expect("id"));
    let resends = d["run"]["resends"].as_u64().expect("resends");
    let bound = u64::from(max_resends_within(started.elapsed().as_secs() as i64 + 1));
    // Before spacing, every alarm (one a second) re-sent the run.
    assert!(resends >= 2, "the alarm re-sends a run nobody claims: {d}");
    assert!(
        resends <= bound,
        "{resends} re-sends in {watch:?}, bound {bound}"
    );
    assert_eq!(d["status"], "queued", "nothing is lost: the run waits");
    assert!(capture.received("/ok/outage").is_empty());
    println!(
        "consumer outage: {} messages for one run in {:?} (bound {} re-sends + the first send)",
        resends + 1,
        started.elapsed(),
        bound
    );
}

#[test]
fn runs_whose_messages_were_lost_go_with_the_next_claim_of_their_trigger() {
    // An edge whose runs queue has no consumer drops every message, as a
    // crash of the local queue would; the ledger keeps the runs. Miniflare
    // restarts in about a second, well inside the alarm's grace.
    let mut edge = Edge::start_miniflare("edgehook-without-consumer");
    let capture = Capture::start();
    let path = "/ok/ahead";
    let t = edge.create_trigger(json!({
        "name": "lost messages", "provider": "github", "signing_secret": SECRET,
        "target_url": capture.url(path)
    }));
    let id = t["id"].as_str().expect("id");
    let lost: Vec<Value> = (0..30).map(|_| send(&edge, id)).collect();
    let sent = Instant::now();
    edge.kill9();
    edge.restart_as(Runtime::Miniflare("edgehook"));
    // Once their messages are late, one new delivery's message is enough.
    let late = Duration::from_secs(CLAIM_AHEAD_AFTER_SECONDS as u64 + 1);
    std::thread::sleep(late.saturating_sub(sent.elapsed()));
    let next = send(&edge, id);
    let deadline = Instant::now() + Duration::from_secs(60);
    while capture.count(path) < lost.len() + 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = sent.elapsed();
    let calls = capture.received(path);
    for a in lost.iter().chain([&next]) {
        let run_id = a["run_id"].as_str().expect("run_id");
        let sends = calls
            .iter()
            .filter(|c| c.header("webhook-id") == Some(run_id))
            .count();
        assert_eq!(sends, 1, "{run_id} reached the target once ({took:?})");
        let d = edge.delivery(id, a["delivery_id"].as_str().expect("id"));
        assert_eq!(d["status"], "delivered", "{d}");
        // Delivered before the alarm presumed their messages lost: by the
        // claim of the new delivery's message, not by a re-send.
        assert_eq!(d["run"]["resends"], 0, "{d}");
    }
    assert!(
        took < Duration::from_secs(REENQUEUE_GRACE_SECONDS as u64),
        "all delivered {took:?} after they were acknowledged"
    );
}

#[test]
fn a_target_that_comes_back_gets_every_run_once() {
    let edge = shared();
    let port = free_port();
    let path = "/ok/comeback";
    let t = edge.create_trigger(json!({
        "name": "comeback", "provider": "github", "signing_secret": SECRET,
        "target_url": format!("http://127.0.0.1:{port}{path}"),
        "retry_base_seconds": 1, "max_attempts": 12
    }));
    let id = t["id"].as_str().expect("id");
    let runs: Vec<Value> = (0..3).map(|_| send(edge, id)).collect();
    // Down (connection refused) for a while, then back.
    std::thread::sleep(Duration::from_secs(scaled(20, 180) as u64));
    let capture = Capture::start_on(port);
    for a in &runs {
        let d = edge.wait_delivery(
            id,
            a["delivery_id"].as_str().expect("id"),
            Duration::from_secs(600),
            |d| d["status"] == "delivered",
        );
        let attempts = d["run"]["attempts"].as_u64().expect("attempts");
        assert!(attempts >= 3, "retried while down: {d}");
    }
    std::thread::sleep(Duration::from_secs(2));
    let calls = capture.received(path);
    assert_eq!(calls.len(), runs.len(), "each run reached the target once");
    for a in &runs {
        assert!(calls
            .iter()
            .any(|c| c.header("webhook-id") == a["run_id"].as_str()));
    }
}

#[test]
fn a_target_that_never_comes_back_fails_the_run_and_the_feed_agrees() {
    let edge = shared();
    let port = free_port();
    let t = edge.create_trigger(json!({
        "name": "gone", "provider": "github", "signing_secret": SECRET,
        "target_url": format!("http://127.0.0.1:{port}/gone"),
        "retry_base_seconds": 1, "max_attempts": 3
    }));
    let id = t["id"].as_str().expect("id");
    let a = send(edge, id);
    let delivery_id = a["delivery_id"].as_str().expect("id");
    let d = edge.wait_delivery(id, delivery_id, Duration::from_secs(120), |d| {
        d["status"] == "failed" && !d["run"]["dead_lettered_at"].is_null()
    });
    assert_eq!(d["run"]["status"], "failed");
    assert_eq!(d["run"]["attempts"], 3);
    assert!(d["run"]["last_error"]
        .as_str()
        .is_some_and(|e| !e.is_empty()));
    let feed = edge.all_changes(id);
    assert_eq!(feed.len(), 1);
    let f = &feed[0];
    assert_eq!(f["status"], d["status"]);
    assert_eq!(
        f["run"], d["run"],
        "the change feed shows the ledger's final state"
    );
}
