//! Runs end to end: the queue consumer POSTs to a capture server, retries,
//! dead-letters, and never sends a finished run again.

use std::time::Duration;

use edgehook_core::dispatch::SEND_SLOTS;
use edgehook_core::verify::verify_standard;
use edgehook_core::{HeaderList, Secret, Timestamp};
use edgehook_e2e::*;
use serde_json::{json, Value};

const SECRET: &str = "dispatch-test-github-secret";

fn trigger(target: &str, extra: Value) -> String {
    let body = merged(
        json!({"name": unique("dispatch"), "provider": "github", "signing_secret": SECRET, "target_url": target}),
        extra,
    );
    shared().create_trigger(body)["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn send(id: &str, key: &str, body: &[u8]) -> Value {
    let sig = github_signature(SECRET, body);
    let r = shared().hook(
        id,
        &[
            ("x-hub-signature-256", &sig),
            ("x-github-event", "push"),
            ("x-github-delivery", key),
            ("content-type", "application/json"),
            ("user-agent", "GitHub-Hookshot/abc"),
        ],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn a_run_reaches_the_target_signed_with_standard_webhooks() {
    let capture = Capture::start();
    let path = format!("/ok/{}", unique("signed"));
    let id = trigger(&capture.url(&path), json!({}));
    let body = br#"{"ref":"refs/heads/main","commits":[{"id":"abc"}]}"#;
    let key = unique("gh");
    let accepted = send(&id, &key, body);
    let run_id = accepted["run_id"].as_str().expect("run id").to_string();

    let calls = capture.wait_for(&path, 1, Duration::from_secs(20));
    let call = &calls[0];
    assert_eq!(call.body, body, "the original body");
    assert_eq!(
        call.header("x-github-event"),
        Some("push"),
        "original event headers"
    );
    assert_eq!(call.header("x-github-delivery"), Some(key.as_str()));
    assert_eq!(call.header("user-agent"), Some("GitHub-Hookshot/abc"));
    assert_eq!(
        call.header("webhook-id"),
        Some(run_id.as_str()),
        "webhook-id is the run id"
    );
    assert_eq!(call.header("x-edgehook-trigger-id"), Some(id.as_str()));
    assert_eq!(call.header("x-edgehook-attempt"), Some("1"));
    assert!(call.header("authorization").is_none());

    // Any Standard Webhooks verifier accepts it with the dispatch secret.
    let headers = HeaderList::from_pairs(call.headers.iter().map(|(n, v)| (n.as_str(), v.clone())));
    let dispatch = Secret::new(shared().dispatch_secret.clone());
    verify_standard(
        &dispatch,
        &headers,
        &call.body,
        Timestamp::from_secs(unix_now()),
        300,
    )
    .expect("signature verifies");
    let wrong = Secret::new(format!("whsec_{}", b64(b"some other key entirely")));
    assert!(verify_standard(
        &wrong,
        &headers,
        &call.body,
        Timestamp::from_secs(unix_now()),
        300
    )
    .is_err());

    let d = shared().wait_delivery(
        &id,
        accepted["delivery_id"].as_str().expect("id"),
        Duration::from_secs(20),
        |d| d["status"] == "delivered",
    );
    assert_eq!(d["run"]["status"], "delivered");
    assert_eq!(d["run"]["attempts"], 1);
    assert_eq!(d["run"]["last_status_code"], 200);

    // A provider retry of a delivered run answers with the holder and sends nothing.
    let again = send(&id, &key, body);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["status"], "delivered");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        capture.received(&path).len(),
        1,
        "a delivered run is never sent again"
    );
}

#[test]
fn a_failing_target_is_retried_with_backoff_until_it_succeeds() {
    let capture = Capture::start();
    let path = format!("/flaky/2/{}", unique("flaky"));
    let id = trigger(
        &capture.url(&path),
        json!({"max_attempts": 5, "retry_base_seconds": 1}),
    );
    let accepted = send(&id, &unique("k"), b"{}");
    let d = shared().wait_delivery(
        &id,
        accepted["delivery_id"].as_str().expect("id"),
        Duration::from_secs(60),
        |d| d["status"] == "delivered",
    );
    assert_eq!(d["run"]["attempts"], 3);
    assert_eq!(
        d["run"]["last_error"], "target answered HTTP 500",
        "the last failure is kept"
    );
    let calls = capture.received(&path);
    assert_eq!(calls.len(), 3);
    let run_id = accepted["run_id"].as_str().expect("run id");
    assert!(
        calls.iter().all(|c| c.header("webhook-id") == Some(run_id)),
        "one webhook-id across attempts"
    );
    let attempts: Vec<&str> = calls
        .iter()
        .filter_map(|c| c.header("x-edgehook-attempt"))
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    // Backoff: 1 s after the first failure, 2 s after the second.
    let gap1 = calls[1].at.duration_since(calls[0].at);
    let gap2 = calls[2].at.duration_since(calls[1].at);
    assert!(
        gap1 >= Duration::from_millis(900),
        "first retry after {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(1900),
        "second retry after {gap2:?}"
    );
}

#[test]
fn an_exhausted_run_fails_is_dead_lettered_and_frees_its_key() {
    let capture = Capture::start();
    let path = format!("/fail/{}", unique("fail"));
    let id = trigger(
        &capture.url(&path),
        json!({"max_attempts": 3, "retry_base_seconds": 1}),
    );
    let key = unique("k");
    let accepted = send(&id, &key, b"{}");
    let delivery_id = accepted["delivery_id"].as_str().expect("id").to_string();
    let d = shared().wait_delivery(&id, &delivery_id, Duration::from_secs(60), |d| {
        d["run"]["dead_lettered_at"].is_string()
    });
    assert_eq!(d["status"], "failed");
    assert_eq!(d["run"]["status"], "failed");
    assert_eq!(d["run"]["attempts"], 3);
    assert_eq!(d["run"]["last_status_code"], 500);
    assert_eq!(capture.received(&path).len(), 3);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        capture.received(&path).len(),
        3,
        "no attempt after the last"
    );

    // A failed holder does not block the provider's next try.
    let again = send(&id, &key, b"{}");
    assert_eq!(again["duplicate"], false);
    assert_ne!(again["delivery_id"], delivery_id.as_str());
}

#[test]
fn a_target_that_hangs_times_out_and_is_retried() {
    let capture = Capture::start();
    let path = format!("/slow/3000/{}", unique("slow"));
    let id = trigger(
        &capture.url(&path),
        json!({"max_attempts": 2, "retry_base_seconds": 1, "target_timeout_seconds": 1}),
    );
    let accepted = send(&id, &unique("k"), b"{}");
    let d = shared().wait_delivery(
        &id,
        accepted["delivery_id"].as_str().expect("id"),
        Duration::from_secs(60),
        |d| d["status"] == "failed",
    );
    assert_eq!(d["run"]["attempts"], 2);
    assert_eq!(d["run"]["last_error"], "timed out after 1s");
}

#[test]
fn a_slow_target_gets_at_most_six_requests_at_once_and_every_run_once() {
    // An edge of its own, with production's six send slots (local runs lift
    // them, as the local runtime has no such limit): the slots are per
    // consumer invocation, shared by every trigger in a batch, and this
    // target holds each one for 2.5 s.
    let edge = Edge::start_miniflare("edgehook-platform-slots");
    let capture = Capture::start();
    let path = format!("/slow/2500/{}", unique("slots"));
    let id = edge.create_trigger(json!({
        "name": "slow target", "provider": "github", "signing_secret": SECRET,
        "target_url": capture.url(&path), "target_timeout_seconds": 5
    }))["id"]
        .as_str()
        .expect("id")
        .to_string();
    // More runs than the slots get through within a lease (20 s: the
    // timeout and the margin): those are given back unstarted and claimed
    // again, never timed out in the queue or sent twice.
    let runs: Vec<Value> = (0..60)
        .map(|i| {
            let body = format!(r#"{{"n":{i}}}"#);
            let sig = github_signature(SECRET, body.as_bytes());
            let key = unique("k");
            let r = edge.hook(
                &id,
                &[("x-hub-signature-256", &sig), ("x-github-delivery", &key)],
                body.as_bytes(),
            );
            assert_eq!(r.status, 200, "{}", r.body);
            r.json()
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    while capture.count(&path) < runs.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    // Room for a second send of any run to show.
    std::thread::sleep(Duration::from_secs(3));
    let calls = capture.received(&path);
    let mut arrivals: Vec<_> = calls.iter().map(|c| c.at).collect();
    arrivals.sort();
    // Each request holds its slot until its headers, 2.5 s: a seventh can
    // only start once one of six before it has its answer.
    for w in arrivals.windows(SEND_SLOTS + 1) {
        let gap = w[SEND_SLOTS].duration_since(w[0]);
        assert!(
            gap >= Duration::from_millis(2000),
            "{} requests within {gap:?}",
            SEND_SLOTS + 1
        );
    }
    for a in &runs {
        let run_id = a["run_id"].as_str().expect("run_id");
        let sends = calls
            .iter()
            .filter(|c| c.header("webhook-id") == Some(run_id))
            .count();
        assert_eq!(sends, 1, "{run_id} was sent {sends} times");
        let run = edge
            .admin("GET", &format!("/api/triggers/{id}/runs/{run_id}"), None)
            .json();
        assert_eq!(run["status"], "delivered", "{run}");
        // A given-back attempt is neither counted nor in the timeline.
        assert_eq!(run["attempts"].as_array().map(Vec::len), Some(1), "{run}");
    }
}

#[test]
fn a_replay_is_a_new_delivery_and_a_new_run() {
    let capture = Capture::start();
    let path = format!("/ok/{}", unique("replay"));
    let id = trigger(&capture.url(&path), json!({}));
    let body = br#"{"replay":"me"}"#;
    let accepted = send(&id, &unique("k"), body);
    let original = accepted["delivery_id"].as_str().expect("id").to_string();
    capture.wait_for(&path, 1, Duration::from_secs(20));

    let r = shared().admin(
        "POST",
        &format!("/api/triggers/{id}/deliveries/{original}/replay"),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let replay = r.json();
    assert_eq!(replay["replayed_from"], original.as_str());
    assert_ne!(replay["delivery_id"], original.as_str());
    assert_ne!(replay["run_id"], accepted["run_id"]);
    let calls = capture.wait_for(&path, 2, Duration::from_secs(20));
    assert_eq!(calls[1].body, body);
    assert_eq!(calls[1].header("webhook-id"), replay["run_id"].as_str());
    let d = shared().wait_delivery(
        &id,
        replay["delivery_id"].as_str().expect("id"),
        Duration::from_secs(20),
        |d| d["status"] == "delivered",
    );
    assert_eq!(d["replayed_from"], original.as_str());
    assert_eq!(d["signature_status"], "replay");
}
