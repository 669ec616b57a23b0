//! Nothing acknowledged with 200 is lost: a kill -9 of the runtime, with run
//! messages still on the in-memory local queue and attempts in flight, is
//! recovered by the Trigger objects' alarms after a restart on the same state.

use std::time::{Duration, Instant};

use edgehook_e2e::*;
use serde_json::json;

#[test]
fn acknowledged_deliveries_survive_a_kill9_and_are_all_run() {
    let mut edge = Edge::start();
    let capture = Capture::start();
    // A slow target keeps attempts in flight when the runtime dies.
    let path = format!("/slow/700/{}", unique("kill"));
    let secret = "durability-test-secret";
    let t = edge.create_trigger(json!({
        "name": "durable", "provider": "github", "signing_secret": secret,
        "target_url": capture.url(&path), "target_timeout_seconds": 5
    }));
    let id = t["id"].as_str().expect("id").to_string();
    let mut accepted = Vec::new();
    for i in 0..12 {
        let body = format!(r#"{{"n":{i}}}"#).into_bytes();
        let sig = github_signature(secret, &body);
        let key = unique("d");
        let r = edge.hook(
            &id,
            &[("x-hub-signature-256", &sig), ("x-github-delivery", &key)],
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        accepted.push(r.json());
    }
    edge.kill9();
    let seen_before = capture.received(&path).len();
    let killed_at = Instant::now();
    edge.restart();

    for a in &accepted {
        let d = edge.wait_delivery(
            &id,
            a["delivery_id"].as_str().expect("id"),
            Duration::from_secs(150),
            |d| d["status"] == "delivered",
        );
        assert_eq!(d["run"]["run_id"], a["run_id"]);
    }
    let calls = capture.received(&path);
    for a in &accepted {
        let run_id = a["run_id"].as_str().expect("run id");
        assert!(
            calls.iter().any(|c| c.header("webhook-id") == Some(run_id)),
            "run {run_id} never reached the target"
        );
    }
    assert!(
        calls.len() > seen_before,
        "the restart re-sent work that the kill interrupted ({seen_before} calls before the kill)"
    );
    println!(
        "{} deliveries acknowledged; {} target calls before the kill, {} in all; recovered {:.0?} after the kill",
        accepted.len(),
        seen_before,
        calls.len(),
        killed_at.elapsed()
    );
}
