//! Routes end to end: fan-out with content filters, priority order, a
//! failing route beside a healthy one, attempt timelines, the circuit
//! breaker with pause and resume, rate limits, ordered delivery under
//! retries, duplicate storms, filter backtests, and a trigger's
//! `target_url` as its first route.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use edgehook_e2e::*;
use serde_json::{json, Value};

const SECRET: &str = "routes-test-github-secret";

fn trigger(extra: Value) -> String {
    let body = merged(
        json!({"name": unique("routes"), "provider": "github", "signing_secret": SECRET}),
        extra,
    );
    shared().create_trigger(body)["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn route(trigger_id: &str, body: Value) -> Value {
    let r = shared().admin(
        "POST",
        &format!("/api/triggers/{trigger_id}/routes"),
        Some(&body),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

fn route_view(trigger_id: &str, route_id: &str) -> Value {
    let r = shared().admin(
        "GET",
        &format!("/api/triggers/{trigger_id}/routes/{route_id}"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn send_event(id: &str, event: &str, key: &str, body: &Value) -> Value {
    let body = body.to_string().into_bytes();
    let sig = github_signature(SECRET, &body);
    let r = shared().hook(
        id,
        &[
            ("x-hub-signature-256", &sig),
            ("x-github-event", event),
            ("x-github-delivery", key),
            ("content-type", "application/json"),
        ],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// Sends `n` push deliveries with bodies `{field: 0..n}`; returns their ids
/// in receive order.
fn send_pushes(id: &str, n: usize, field: &str) -> Vec<String> {
    (0..n)
        .map(|i| {
            send_event(id, "push", &unique("k"), &json!({ field: i }))["delivery_id"]
                .as_str()
                .expect("id")
                .to_string()
        })
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn delivery_ids_of(calls: &[Captured]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c.header("x-edgehook-delivery-id").unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_delivery_fans_out_to_the_routes_its_content_matches_in_priority_order() {
    let capture = Capture::start();
    let tag = unique("fan");
    let (ci, chat, audit) = (
        format!("/ok/{tag}/ci"),
        format!("/ok/{tag}/chat"),
        format!("/ok/{tag}/audit"),
    );
    let id = trigger(json!({}));
    // Created in another order than their priority.
    let audit_r = route(
        &id,
        json!({"name": "audit", "target_url": capture.url(&audit), "priority": 300}),
    );
    let chat_r = route(
        &id,
        json!({"name": "chat", "target_url": capture.url(&chat), "priority": 200,
               "event_types": ["pull_request"],
               "filter": {"body": {"pull_request": {"draft": false}}},
               "headers": {"X-Chat-Channel": "builds", "Authorization": "Bearer chat-token-value"}}),
    );
    let ci_r = route(
        &id,
        json!({"name": "ci", "target_url": capture.url(&ci), "priority": 100,
               "filter": {"body": {"ref": {"$startsWith": "refs/heads/"},
                                   "commits": {"added": {"$gt": 0}}},
                          "headers": {"X-GitHub-Event": "push"}}}),
    );
    let id_of = |r: &Value| r["id"].as_str().expect("route id").to_string();
    let (ci_id, chat_id, audit_id) = (id_of(&ci_r), id_of(&chat_r), id_of(&audit_r));
    // The credential-like header is stored whole but never shown.
    assert_eq!(chat_r["headers"]["authorization"], "[redacted]");
    assert_eq!(chat_r["headers"]["x-chat-channel"], "builds");
    assert!(!chat_r.to_string().contains("chat-token-value"));

    // The list is in enqueue order.
    let list = shared()
        .admin("GET", &format!("/api/triggers/{id}/routes"), None)
        .json();
    let listed: Vec<&str> = list["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(
        listed,
        vec![ci_id.as_str(), chat_id.as_str(), audit_id.as_str()]
    );

    // A push with added files: CI and audit, not chat.
    let push = send_event(
        &id,
        "push",
        &unique("k"),
        &json!({"ref": "refs/heads/main", "commits": [{"added": 0}, {"added": 2}]}),
    );
    let push_runs: Vec<String> = push["run_ids"]
        .as_array()
        .expect("run_ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect();
    assert_eq!(push_runs.len(), 2, "{push}");
    assert_eq!(push["run_id"], push_runs[0].as_str(), "the first run");
    // A ready pull request: chat and audit.
    let pr = send_event(
        &id,
        "pull_request",
        &unique("k"),
        &json!({"action": "opened", "pull_request": {"draft": false}}),
    );
    assert_eq!(pr["run_ids"].as_array().expect("run_ids").len(), 2);
    // A draft pull request: audit only.
    let draft = send_event(
        &id,
        "pull_request",
        &unique("k"),
        &json!({"action": "opened", "pull_request": {"draft": true}}),
    );
    assert_eq!(draft["run_ids"].as_array().expect("run_ids").len(), 1);

    let ci_calls = capture.wait_for(&ci, 1, Duration::from_secs(30));
    let chat_calls = capture.wait_for(&chat, 1, Duration::from_secs(30));
    let audit_calls = capture.wait_for(&audit, 3, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(capture.received(&ci).len(), 1, "only the push went to CI");
    assert_eq!(
        capture.received(&chat).len(),
        1,
        "only the ready PR went to chat"
    );
    assert_eq!(
        capture.received(&audit).len(),
        3,
        "everything went to audit"
    );
    assert_eq!(
        ci_calls[0].header("x-edgehook-route-id"),
        Some(ci_id.as_str())
    );
    assert_eq!(
        ci_calls[0].header("webhook-id"),
        Some(push_runs[0].as_str())
    );
    assert_eq!(chat_calls[0].header("x-chat-channel"), Some("builds"));
    assert_eq!(
        chat_calls[0].header("authorization"),
        Some("Bearer chat-token-value")
    );
    assert!(audit_calls
        .iter()
        .all(|c| c.header("x-edgehook-route-id") == Some(audit_id.as_str())));

    // The delivery shows every run with its route, in priority order, each
    // with a timeline.
    let d = shared().wait_delivery(
        &id,
        push["delivery_id"].as_str().expect("id"),
        Duration::from_secs(20),
        |d| d["status"] == "delivered",
    );
    let runs = d["runs"].as_array().expect("runs");
    let routes: Vec<&str> = runs.iter().filter_map(|r| r["route_id"].as_str()).collect();
    assert_eq!(routes, vec![ci_id.as_str(), audit_id.as_str()]);
    for r in runs {
        assert_eq!(r["status"], "delivered");
        let attempts = r["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0]["attempt"], 1);
        assert_eq!(attempts[0]["status_code"], 200);
        assert!(attempts[0]["error"].is_null());
        assert!(attempts[0]["duration_ms"].is_u64());
        assert!(attempts[0]["started_at"].is_string());
    }
    assert_eq!(d["run"]["run_id"], runs[0]["run_id"], "`run` is the first");
}

#[test]
fn a_delivery_that_matches_no_route_is_ignored_with_the_reason() {
    let capture = Capture::start();
    let id = trigger(json!({}));
    route(
        &id,
        json!({"target_url": capture.url("/ok/none"), "filter": {"body": {"action": "closed"}}}),
    );
    let r = send_event(&id, "issues", &unique("k"), &json!({"action": "opened"}));
    assert_eq!(r["status"], "ignored");
    assert_eq!(r["reason"], "no_route_matched");
    assert!(r["run_id"].is_null());
    let d = shared().delivery(&id, r["delivery_id"].as_str().expect("id"));
    assert_eq!(d["status"], "ignored");
    assert_eq!(d["runs"], json!([]));
}

#[test]
fn a_failing_route_does_not_hold_back_a_healthy_one_and_its_timeline_shows_why() {
    let capture = Capture::start();
    let tag = unique("iso");
    let (good, bad) = (format!("/ok/{tag}"), format!("/fail/{tag}"));
    let id = trigger(json!({}));
    let good_r = route(
        &id,
        json!({"target_url": capture.url(&good), "priority": 2}),
    );
    let bad_r = route(
        &id,
        json!({"target_url": capture.url(&bad), "priority": 1, "max_attempts": 2,
               "retry_base_seconds": 1, "pause_after_failures": 0}),
    );
    let r = send_event(&id, "push", &unique("k"), &json!({"n": 1}));
    capture.wait_for(&good, 1, Duration::from_secs(20));
    let d = shared().wait_delivery(
        &id,
        r["delivery_id"].as_str().expect("id"),
        Duration::from_secs(60),
        // Failed, and its failed run's dead letter recorded: the last change
        // the run sees, so the run read below is the same.
        |d| {
            d["status"] == "failed"
                && d["runs"].as_array().is_some_and(|runs| {
                    runs.iter()
                        .any(|r| r["status"] == "failed" && !r["dead_lettered_at"].is_null())
                })
        },
    );
    let runs = d["runs"].as_array().expect("runs");
    let by_route = |rid: &Value| {
        runs.iter()
            .find(|r| r["route_id"] == *rid)
            .expect("run of route")
            .clone()
    };
    let good_run = by_route(&good_r["id"]);
    let bad_run = by_route(&bad_r["id"]);
    assert_eq!(good_run["status"], "delivered");
    assert_eq!(bad_run["status"], "failed");
    let attempts = bad_run["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{bad_run}");
    for (n, a) in attempts.iter().enumerate() {
        assert_eq!(a["attempt"], n as u64 + 1);
        assert_eq!(a["status_code"], 500);
        assert_eq!(a["error"], "http_status");
        assert_eq!(a["response_excerpt"], "target exploded");
        assert!(a["duration_ms"].is_u64());
    }
    assert_eq!(capture.received(&bad).len(), 2);
    assert_eq!(capture.received(&good).len(), 1);

    // One run, the same shape.
    let run_id = bad_run["run_id"].as_str().expect("run id");
    let one = shared()
        .admin("GET", &format!("/api/triggers/{id}/runs/{run_id}"), None)
        .json();
    assert_eq!(one, bad_run);
    let missing = shared().admin(
        "GET",
        &format!("/api/triggers/{id}/runs/run_00000000000000000000000000"),
        None,
    );
    assert_eq!(missing.status, 404);
}

#[test]
fn a_targets_answer_is_kept_as_its_first_kibibyte_however_it_is_sent() {
    // Read whole when declared short, streamed and cut when declared long
    // or sent in chunks: the timeline shows the same excerpt either way.
    let capture = Capture::start();
    let tag = unique("excerpt");
    let id = trigger(json!({}));
    let cases = [
        (format!("/big/0/{tag}"), 0),
        (format!("/big/5000/{tag}"), 5000),
        (format!("/big/300000/{tag}"), 300_000),
        (format!("/chunked/5000/{tag}"), 5000),
        (format!("/big/10/{tag}"), 10),
    ];
    for (path, _) in &cases {
        route(&id, json!({"target_url": capture.url(path)}));
    }
    let r = send_event(&id, "push", &unique("k"), &json!({"n": 1}));
    let d = shared().wait_delivery(
        &id,
        r["delivery_id"].as_str().expect("id"),
        Duration::from_secs(60),
        |d| d["status"] == "delivered",
    );
    let runs = d["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), cases.len(), "{d}");
    for (path, len) in &cases {
        assert_eq!(capture.received(path).len(), 1, "{path}");
        let url = capture.url(path);
        let run = runs
            .iter()
            .find(|run| {
                let rid = run["route_id"].as_str().expect("route id");
                route_view(&id, rid)["target_url"] == url.as_str()
            })
            .expect("a run of the route");
        let attempt = &run["attempts"][0];
        assert_eq!(attempt["status_code"], 200, "{path}: {run}");
        let want = pattern((*len).min(1024));
        if want.is_empty() {
            assert!(attempt["response_excerpt"].is_null(), "{path}: {run}");
        } else {
            assert_eq!(
                attempt["response_excerpt"]
                    .as_str()
                    .expect("excerpt")
                    .as_bytes(),
                want.as_slice(),
                "{path}"
            );
        }
    }
}

#[test]
fn the_breaker_pauses_a_failing_route_holds_its_runs_and_resume_releases_them_in_order() {
    let capture = Capture::start();
    let path = format!("/ok/{}", unique("breaker"));
    capture.set_status(&path, 503);
    let id = trigger(json!({}));
    let r = route(
        &id,
        json!({"target_url": capture.url(&path), "ordered": true, "pause_after_failures": 2,
               "max_attempts": 10, "retry_base_seconds": 1, "breaker_cooldown_seconds": 0}),
    );
    let route_id = r["id"].as_str().expect("id").to_string();
    assert_eq!(r["pause_after_failures"], 2);
    assert!(r["paused_at"].is_null());

    let sent: Vec<String> = send_pushes(&id, 4, "n");
    // Two failed attempts in a row pause the route.
    wait_until("the breaker", Duration::from_secs(40), || {
        !route_view(&id, &route_id)["paused_at"].is_null()
    });
    let view = route_view(&id, &route_id);
    assert!(
        view["paused_reason"]
            .as_str()
            .is_some_and(|s| s.contains("2 consecutive failed attempts")),
        "{view}"
    );
    wait_until("all runs held", Duration::from_secs(30), || {
        route_view(&id, &route_id)["held_runs"] == 4
    });
    let first = shared().delivery(&id, &sent[0]);
    assert_eq!(first["runs"][0]["status"], "held");
    assert_eq!(
        first["status"], "queued",
        "a held run keeps its delivery open"
    );
    // Held runs are not retried.
    let calls_while_paused = capture.received(&path).len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(capture.received(&path).len(), calls_while_paused);

    // A replay made while paused is held too.
    let replay = shared().admin(
        "POST",
        &format!("/api/triggers/{id}/deliveries/{}/replay", sent[1]),
        None,
    );
    assert_eq!(replay.status, 201, "{}", replay.body);
    let replay_id = replay.json()["delivery_id"]
        .as_str()
        .expect("id")
        .to_string();
    let replayed = shared().delivery(&id, &replay_id);
    assert_eq!(replayed["runs"][0]["status"], "held");

    // The target recovers; resume releases everything, in receive order.
    capture.set_status(&path, 200);
    let resumed = shared().admin(
        "POST",
        &format!("/api/triggers/{id}/routes/{route_id}/resume"),
        None,
    );
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert!(resumed.json()["paused_at"].is_null());
    assert_eq!(resumed.json()["consecutive_failures"], 0);
    for d in sent.iter().chain(std::iter::once(&replay_id)) {
        shared().wait_delivery(&id, d, Duration::from_secs(60), |v| {
            v["status"] == "delivered"
        });
    }
    let calls = capture.received(&path);
    let delivered_order: Vec<String> = delivery_ids_of(&calls[calls_while_paused..]);
    let mut expected = sent.clone();
    expected.push(replay_id);
    assert_eq!(delivered_order, expected, "released in receive order");

    // An operator pause, with a reason, and resume.
    let paused = shared().admin(
        "POST",
        &format!("/api/triggers/{id}/routes/{route_id}/pause"),
        Some(&json!({"reason": "target maintenance"})),
    );
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(paused.json()["paused_reason"], "target maintenance");
    assert!(paused.json()["paused_at"].is_string());
}

#[test]
fn a_tripped_route_tries_again_on_its_own_after_its_cool_down() {
    let capture = Capture::start();
    let path = format!("/ok/{}", unique("half-open"));
    capture.set_status(&path, 502);
    let id = trigger(json!({}));
    let r = route(
        &id,
        json!({"target_url": capture.url(&path), "pause_after_failures": 3,
               "retry_base_seconds": 1, "max_attempts": 20, "breaker_cooldown_seconds": 3}),
    );
    let route_id = r["id"].as_str().expect("id").to_string();
    let sent: Vec<String> = send_pushes(&id, 2, "n");
    wait_until("the breaker", Duration::from_secs(40), || {
        !route_view(&id, &route_id)["paused_at"].is_null()
    });
    let tripped = route_view(&id, &route_id);
    assert!(tripped["resumes_at"].is_string(), "{tripped}");
    // The target recovers; nobody touches the route.
    capture.set_status(&path, 200);
    for d in &sent {
        shared().wait_delivery(&id, d, Duration::from_secs(60), |v| {
            v["status"] == "delivered"
        });
    }
    let after = route_view(&id, &route_id);
    assert!(after["paused_at"].is_null(), "{after}");
    assert!(after["resumes_at"].is_null());
    assert_eq!(after["consecutive_failures"], 0);
}

#[test]
fn a_rate_limited_route_spaces_its_attempts_and_the_timeline_shows_the_wait() {
    let capture = Capture::start();
    let path = format!("/ok/{}", unique("rate"));
    let id = trigger(json!({}));
    route(
        &id,
        json!({"target_url": capture.url(&path), "rate_limit_per_second": 2}),
    );
    let n = 6;
    let sent: Vec<String> = send_pushes(&id, n, "i");
    let calls = capture.wait_for(&path, n, Duration::from_secs(60));
    let mut times: Vec<Instant> = calls.iter().map(|c| c.at).collect();
    times.sort();
    let gaps: Vec<u128> = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_millis())
        .collect();
    // 2 per second: 500 ms apart (less a little for scheduling jitter).
    assert!(gaps.iter().all(|g| *g >= 400), "gaps {gaps:?}");
    let span = times[n - 1].duration_since(times[0]).as_millis();
    assert!(
        span >= 2_300,
        "6 attempts at 2/s span at least 2.5 s: {span} ms"
    );
    // Some attempt waited for its slot, and its timeline says so.
    let mut waited = 0;
    for d in &sent {
        let v = shared().wait_delivery(&id, d, Duration::from_secs(30), |v| {
            v["status"] == "delivered"
        });
        let a = &v["runs"][0]["attempts"][0];
        waited = waited.max(a["rate_limited_ms"].as_u64().expect("rate_limited_ms"));
    }
    assert!(waited >= 400, "the last attempts waited: {waited} ms");
}

#[test]
fn an_ordered_route_delivers_one_run_at_a_time_in_receive_order_under_retries() {
    let capture = Capture::start();
    // Slow by up to 400 ms, and the first attempt of every third body fails.
    let path = format!("/chaos/400/{}", unique("ordered"));
    let id = trigger(json!({}));
    route(
        &id,
        json!({"target_url": capture.url(&path), "ordered": true, "retry_base_seconds": 1,
               "pause_after_failures": 0}),
    );
    let n = scaled(10, 40);
    let sent: Vec<String> = send_pushes(&id, n, "seq");
    for d in &sent {
        shared().wait_delivery(&id, d, Duration::from_secs(120), |v| {
            v["status"] == "delivered"
        });
    }
    let calls = capture.received(&path);
    let failed_once = calls
        .iter()
        .filter(|c| c.header("x-edgehook-attempt") != Some("1"))
        .count();
    assert!(failed_once > 0, "some runs were retried");
    // Requests, in arrival order, never go back to an earlier delivery, and
    // a delivery's first request comes only after the one before it
    // succeeded: one at a time, in receive order.
    let order = delivery_ids_of(&calls);
    let position = |d: &str| sent.iter().position(|s| s == d).expect("known delivery");
    let mut last = 0;
    for d in &order {
        let p = position(d);
        assert!(p >= last, "went back from #{last} to #{p}: {order:?}");
        assert!(p <= last + 1, "skipped ahead from #{last} to #{p}");
        last = p;
    }
    assert_eq!(
        order.iter().collect::<HashSet<_>>().len(),
        n,
        "every delivery was sent"
    );
}

#[test]
fn a_duplicate_storm_gives_one_run_per_route() {
    let capture = Capture::start();
    let tag = unique("storm");
    let paths: Vec<String> = (0..3).map(|i| format!("/ok/{tag}/{i}")).collect();
    let id = trigger(json!({}));
    for p in &paths {
        route(&id, json!({"target_url": capture.url(p)}));
    }
    let key = unique("storm-key");
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
    let sig = github_signature(SECRET, &body);
    let url = format!("{}/hooks/{id}", shared().base);
    let answers: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let (url, key, body, sig) = (&url, &key, &body, &sig);
                s.spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(30))
                        .build();
                    let r = try_post(
                        &agent,
                        url,
                        &[
                            ("x-hub-signature-256", sig.as_str()),
                            ("x-github-event", "push"),
                            ("x-github-delivery", key.as_str()),
                        ],
                        body,
                    )
                    .expect("answered");
                    assert_eq!(r.0, 200, "{}", r.1);
                    serde_json::from_str::<Value>(&r.1).expect("json")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    let deliveries: HashSet<&str> = answers
        .iter()
        .filter_map(|a| a["delivery_id"].as_str())
        .collect();
    assert_eq!(deliveries.len(), 1, "one delivery");
    assert_eq!(
        answers.iter().filter(|a| a["duplicate"] == false).count(),
        1,
        "one admission"
    );
    let runs: HashSet<String> = answers
        .iter()
        .flat_map(|a| a["run_ids"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    assert_eq!(runs.len(), 3, "one run per route: {runs:?}");
    for p in &paths {
        capture.wait_for(p, 1, Duration::from_secs(30));
    }
    std::thread::sleep(Duration::from_secs(3));
    for p in &paths {
        assert_eq!(capture.received(p).len(), 1, "{p} got one request");
    }
}

#[test]
fn a_filter_backtest_shows_what_a_route_would_receive() {
    let id = trigger(json!({}));
    let mut opened = Vec::new();
    for (n, action) in ["opened", "closed", "opened", "edited"].iter().enumerate() {
        let r = send_event(
            &id,
            "pull_request",
            &unique("k"),
            &json!({"action": action, "number": n}),
        );
        if *action == "opened" {
            opened.push(r["delivery_id"].as_str().expect("id").to_string());
        }
    }
    send_event(&id, "push", &unique("k"), &json!({"action": "opened"}));
    let test = |body: Value| {
        shared().admin(
            "POST",
            &format!("/api/triggers/{id}/filters/test"),
            Some(&body),
        )
    };
    let r = test(json!({"filter": {"body": {"action": "opened"}},
                        "event_types": ["pull_request"]}));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["evaluated"], 5);
    assert_eq!(v["matched"], 2);
    let mut ids: Vec<String> = v["delivery_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|i| i.as_str().expect("id").to_string())
        .collect();
    ids.reverse();
    assert_eq!(ids, opened, "newest first");
    // Event types with the action, as a route reads them.
    let v = test(json!({"filter": {}, "event_types": ["pull_request.closed"]})).json();
    assert_eq!(v["matched"], 1);
    // The limit bounds what is evaluated.
    let v = test(json!({"filter": {"body": {"number": {"$gte": 0}}}, "limit": 2})).json();
    assert_eq!(v["evaluated"], 2);
    // A time range in the future holds nothing.
    let v = test(json!({"filter": {}, "received_after": "2999-01-01T00:00:00Z"})).json();
    assert_eq!(v["evaluated"], 0);

    for (body, field) in [
        (
            json!({"filter": {"body": {"a": {"$regex": "x"}}}}),
            "filter.body.a.$regex",
        ),
        (json!({"filter": {"bdy": {}}}), "filter.bdy"),
        (json!({"filter": {}, "limit": 0}), "limit"),
        (
            json!({"filter": {}, "received_after": "yesterday"}),
            "received_after",
        ),
    ] {
        let r = test(body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json()["field"], field, "{body}");
    }
    let r = test(json!({"nope": 1}));
    assert_eq!(r.status, 400);
}

#[test]
fn route_requests_are_validated_and_unknown_routes_are_404() {
    let id = trigger(json!({}));
    let post =
        |body: Value| shared().admin("POST", &format!("/api/triggers/{id}/routes"), Some(&body));
    for (body, field) in [
        (json!({}), "target_url"),
        (json!({"target_url": "not a url"}), "target_url"),
        (json!({"target_url": "ftp://x.example/hook"}), "target_url"),
        (
            json!({"target_url": "https://x.example/hook#part"}),
            "target_url",
        ),
        (json!({"target_url": "https:///"}), "target_url"),
        (
            json!({"target_url": "https://x.example", "filter": {"body": {"$nope": 1}}}),
            "filter.body.$nope",
        ),
        (
            json!({"target_url": "https://x.example", "rate_limit_per_second": -1}),
            "rate_limit_per_second",
        ),
        (
            json!({"target_url": "https://x.example", "headers": {"webhook-id": "x"}}),
            "headers.webhook-id",
        ),
        (
            json!({"target_url": "https://x.example", "priority": 99999}),
            "priority",
        ),
    ] {
        let r = post(body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json()["field"], field, "{body}");
    }
    let mut deep = json!(1);
    for _ in 0..20 {
        deep = json!({ "a": deep });
    }
    let r = post(json!({"target_url": "https://x.example", "filter": {"body": deep}}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["field"]
        .as_str()
        .is_some_and(|f| f.starts_with("filter.body")));
    assert_eq!(
        post(json!({"target_url": "https://x.example", "extra": 1})).status,
        400
    );

    // Target URLs are read by the runtime's WHATWG parser and kept as it
    // writes them: an international host name in punycode, the default port
    // and dot segments gone. A route's name defaults to its host.
    let r = route(
        &id,
        json!({"target_url": "HTTPS://Bücher.Example:443/a/./hook?q=1"}),
    );
    assert_eq!(r["target_url"], "https://xn--bcher-kva.example/a/hook?q=1");
    assert_eq!(r["name"], "xn--bcher-kva.example");

    let r = route(
        &id,
        json!({"target_url": "https://x.example/hook", "name": "x"}),
    );
    let rid = r["id"].as_str().expect("id");
    let patched = shared().admin(
        "PATCH",
        &format!("/api/triggers/{id}/routes/{rid}"),
        Some(&json!({"priority": 7, "filter": {"body": {"a": 1}}, "enabled": false})),
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    let v = patched.json();
    assert_eq!(v["priority"], 7);
    assert_eq!(v["enabled"], false);
    assert_eq!(v["filter"], json!({"body": {"a": 1}}));
    assert_eq!(v["name"], "x");
    let bad = shared().admin(
        "PATCH",
        &format!("/api/triggers/{id}/routes/{rid}"),
        Some(&json!({"max_attempts": 0})),
    );
    assert_eq!(bad.status, 400);

    for path in [
        format!("/api/triggers/{id}/routes/rte_00000000000000000000000000"),
        format!("/api/triggers/{id}/routes/not-a-route"),
    ] {
        assert_eq!(shared().admin("GET", &path, None).status, 404, "{path}");
    }
    let deleted = shared().admin("DELETE", &format!("/api/triggers/{id}/routes/{rid}"), None);
    assert_eq!(deleted.status, 204);
    let again = shared().admin("GET", &format!("/api/triggers/{id}/routes/{rid}"), None);
    assert_eq!(again.status, 404);
    let wrong = shared().admin("PUT", &format!("/api/triggers/{id}/routes"), None);
    assert_eq!(wrong.status, 405);
}

#[test]
fn a_triggers_target_url_is_its_first_route_and_the_old_fields_keep_working() {
    let capture = Capture::start();
    let tag = unique("legacy");
    let (one, two) = (format!("/ok/{tag}/1"), format!("/ok/{tag}/2"));
    let id = trigger(json!({"target_url": capture.url(&one), "max_attempts": 3}));
    let routes = shared()
        .admin("GET", &format!("/api/triggers/{id}/routes"), None)
        .json();
    let list = routes["routes"].as_array().expect("routes");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "default");
    assert_eq!(list[0]["target_url"], capture.url(&one));
    assert_eq!(list[0]["max_attempts"], 3);
    let rid = list[0]["id"].as_str().expect("id").to_string();

    // PATCHing the trigger's target_url moves the route.
    let t = shared().admin(
        "PATCH",
        &format!("/api/triggers/{id}"),
        Some(&json!({"target_url": capture.url(&two)})),
    );
    assert_eq!(t.status, 200);
    assert_eq!(route_view(&id, &rid)["target_url"], capture.url(&two));
    let r = send_event(&id, "push", &unique("k"), &json!({}));
    capture.wait_for(&two, 1, Duration::from_secs(20));
    assert!(capture.received(&one).is_empty());
    let d = shared().wait_delivery(
        &id,
        r["delivery_id"].as_str().expect("id"),
        Duration::from_secs(20),
        |d| d["status"] == "delivered",
    );
    assert_eq!(d["run"]["route_id"], rid.as_str());

    // PATCHing the route shows in the trigger.
    shared().admin(
        "PATCH",
        &format!("/api/triggers/{id}/routes/{rid}"),
        Some(&json!({"target_url": capture.url(&one)})),
    );
    let t = shared()
        .admin("GET", &format!("/api/triggers/{id}"), None)
        .json();
    assert_eq!(t["target_url"], capture.url(&one));

    // Clearing target_url deletes the route: the ledger is the output again.
    shared().admin(
        "PATCH",
        &format!("/api/triggers/{id}"),
        Some(&json!({"target_url": null})),
    );
    let routes = shared()
        .admin("GET", &format!("/api/triggers/{id}/routes"), None)
        .json();
    assert_eq!(routes["routes"], json!([]));
    let r = send_event(&id, "push", &unique("k"), &json!({}));
    let d = shared().wait_delivery(
        &id,
        r["delivery_id"].as_str().expect("id"),
        Duration::from_secs(20),
        |d| d["status"] == "delivered",
    );
    assert!(d["run"]["route_id"].is_null());
}
