//! Nothing acknowledged with 200 is lost: a kill -9 of the runtime in the
//! middle of a stream of unique deliveries from 16 clients, each fanned out
//! to three routes, with run messages still on the in-memory local queue and
//! attempts in flight, is recovered by the Trigger objects' alarms after a
//! restart on the same state: every run of every route reaches its target.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgehook_e2e::*;
use serde_json::{json, Value};

#[test]
fn every_delivery_answered_200_survives_a_kill9_mid_stream_and_is_run() {
    let mut edge = Edge::start();
    let capture = Capture::start();
    // A slow target keeps attempts in flight when the runtime dies.
    let path = format!("/slow/300/{}", unique("kill"));
    let secret = "durability-test-secret";
    let t = edge.create_trigger(json!({
        "name": "durable", "provider": "github", "signing_secret": secret,
        "target_url": capture.url(&path), "target_timeout_seconds": 5
    }));
    let id = t["id"].as_str().expect("id").to_string();
    // Two more routes beside the trigger's target (its first route): a fast
    // one enqueued first, and one whose target fails its first request.
    let fast = format!("/ok/{}", unique("kill-fast"));
    let flaky = format!("/flaky/1/{}", unique("kill-flaky"));
    for (target, priority) in [(&fast, 10), (&flaky, 500)] {
        let r = edge.admin(
            "POST",
            &format!("/api/triggers/{id}/routes"),
            Some(
                &json!({"target_url": capture.url(target), "priority": priority,
                         "retry_base_seconds": 1, "pause_after_failures": 0}),
            ),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let url = format!("{}/hooks/{id}", edge.base);
    let stop = Arc::new(AtomicBool::new(false));
    let answered: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (url, stop, answered) = (url.clone(), stop.clone(), answered.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(10))
                    .build();
                let mut sent = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let body = format!(r#"{{"client":{c},"n":{sent}}}"#).into_bytes();
                    let sig = github_signature(secret, &body);
                    let key = unique("d");
                    sent += 1;
                    match try_post(
                        &agent,
                        &url,
                        &[("x-hub-signature-256", &sig), ("x-github-delivery", &key)],
                        &body,
                    ) {
                        Ok((200, text)) => {
                            let v: Value = serde_json::from_str(&text).expect("json");
                            answered.lock().expect("lock").push(v);
                        }
                        // The proxy's own answer while the runtime is dying:
                        // not acknowledged, so the provider would retry.
                        Ok((status, _)) if status >= 500 => {
                            std::thread::sleep(Duration::from_millis(200))
                        }
                        Ok((status, text)) => panic!("client {c}: {status} {text}"),
                        // The runtime is gone: wait for it, as a provider would.
                        Err(_) => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(scaled(4, 20) as u64));
    edge.kill9();
    let killed_at = Instant::now();
    let answered_before_kill = answered.lock().expect("lock").len();
    let calls_before_kill = capture.received(&path).len();
    edge.restart();
    let restarted_in = killed_at.elapsed();
    // The clients go on against the restarted runtime for a moment.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let sent: u32 = clients.into_iter().map(|h| h.join().expect("client")).sum();
    let answered = answered.lock().expect("lock").clone();
    assert!(
        answered_before_kill > 0,
        "the stream was under way when the runtime died"
    );

    // Every 200 is stored and each of its runs reaches its route's target.
    for a in &answered {
        let d = edge.wait_delivery(
            &id,
            a["delivery_id"].as_str().expect("id"),
            Duration::from_secs(240),
            |d| d["status"] == "delivered",
        );
        assert_eq!(d["run"]["run_id"], a["run_id"]);
        assert_eq!(d["runs"].as_array().map(Vec::len), Some(3), "{d}");
    }
    let recovered_in = killed_at.elapsed();
    let stored = edge.all_changes(&id).len();
    assert!(stored >= answered.len());
    let calls: Vec<Captured> = [&path, &fast, &flaky]
        .iter()
        .flat_map(|p| capture.received(p))
        .collect();
    let reached: std::collections::HashSet<&str> = calls
        .iter()
        .filter_map(|c| c.header("webhook-id"))
        .collect();
    let mut runs = 0;
    for a in &answered {
        for run_id in a["run_ids"].as_array().expect("run ids") {
            let run_id = run_id.as_str().expect("run id");
            runs += 1;
            assert!(
                reached.contains(run_id),
                "run {run_id} never reached its target"
            );
        }
    }
    assert_eq!(runs, answered.len() * 3);
    println!(
        "crash mid-stream: {sent} sent, {} answered 200 ({answered_before_kill} before the kill), \
         {stored} stored, {runs} runs of 3 routes reached their targets ({calls_before_kill} slow-route calls before the kill, {} calls in all); \
         runtime back after {restarted_in:.1?}, every run delivered {recovered_in:.1?} after the kill",
        answered.len(),
        calls.len()
    );
}
