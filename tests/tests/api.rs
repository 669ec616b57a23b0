//! The operator REST API end to end: every route, auth, paging, replay,
//! rotation, rate limits, the rejection flood and the change feed.

use std::collections::HashSet;
use std::time::Duration;

use edgehook_e2e::*;
use serde_json::{json, Value};

const SECRET: &str = "api-test-github-secret";

fn github(extra: Value) -> String {
    let body = merged(
        json!({"name": unique("api"), "provider": "github", "signing_secret": SECRET}),
        extra,
    );
    shared().create_trigger(body)["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn send(id: &str, event: &str, key: &str, body: &[u8], secret: &str) -> Resp {
    let sig = github_signature(secret, body);
    shared().hook(
        id,
        &[
            ("x-hub-signature-256", &sig),
            ("x-github-event", event),
            ("x-github-delivery", key),
        ],
        body,
    )
}

fn delivery_id(r: &Resp) -> String {
    r.json()["delivery_id"]
        .as_str()
        .expect("delivery_id")
        .to_string()
}

#[test]
fn every_route_refuses_a_missing_or_wrong_token() {
    let id = github(json!({}));
    let d = delivery_id(&send(&id, "push", &unique("k"), b"{}", SECRET));
    let routes = [
        ("GET", "/api/triggers".to_string()),
        ("POST", "/api/triggers".to_string()),
        ("GET", format!("/api/triggers/{id}")),
        ("PATCH", format!("/api/triggers/{id}")),
        ("DELETE", format!("/api/triggers/{id}")),
        ("PUT", format!("/api/triggers/{id}/signing-secret")),
        ("GET", format!("/api/triggers/{id}/deliveries")),
        ("GET", format!("/api/triggers/{id}/deliveries/{d}")),
        ("POST", format!("/api/triggers/{id}/deliveries/{d}/replay")),
        ("POST", format!("/api/triggers/{id}/replay")),
        ("GET", format!("/api/triggers/{id}/changes")),
        ("GET", format!("/api/triggers/{id}/rejections")),
    ];
    for (method, path) in &routes {
        for auth in [
            None,
            Some("Bearer not-the-token"),
            Some("Basic YWRtaW46YWRtaW4="),
            Some("Bearer "),
        ] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
            let body = matches!(*method, "POST" | "PUT" | "PATCH").then_some(&b"{}"[..]);
            let r = shared().request(method, path, &headers, body);
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}");
            assert_eq!(r.json()["error"], "unauthorized");
        }
    }
    // Nothing was changed by the refused calls.
    assert_eq!(
        shared()
            .admin("GET", &format!("/api/triggers/{id}"), None)
            .status,
        200
    );
}

#[test]
fn another_triggers_delivery_is_not_found() {
    let a = github(json!({}));
    let b = github(json!({}));
    let d = delivery_id(&send(&a, "push", &unique("k"), b"{}", SECRET));
    let expect = [
        ("GET", format!("/api/triggers/{a}/deliveries/{d}"), 200),
        ("GET", format!("/api/triggers/{b}/deliveries/{d}"), 404),
        (
            "POST",
            format!("/api/triggers/{b}/deliveries/{d}/replay"),
            404,
        ),
        (
            "GET",
            format!("/api/triggers/{a}/deliveries/dlv_doesnotexist"),
            404,
        ),
        (
            "GET",
            format!("/api/triggers/{a}/deliveries/not-an-id"),
            404,
        ),
    ];
    for (method, path, status) in expect {
        assert_eq!(
            shared().admin(method, &path, None).status,
            status,
            "{method} {path}"
        );
    }
}

#[test]
fn deliveries_page_newest_first_filter_by_status_and_carry_no_body() {
    let id = github(json!({"event_types": ["push"]}));
    let mut sent = Vec::new();
    for i in 0..7 {
        let event = if i % 3 == 2 { "issues" } else { "push" };
        sent.push(delivery_id(&send(
            &id,
            event,
            &unique("k"),
            format!(r#"{{"i":{i}}}"#).as_bytes(),
            SECRET,
        )));
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let r = shared().admin(
            "GET",
            &format!("/api/triggers/{id}/deliveries?limit=3{q}"),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json();
        pages += 1;
        for d in page["deliveries"].as_array().expect("array") {
            assert!(
                d.get("raw_body").is_none() && d.get("headers").is_none(),
                "lists carry no body"
            );
            seen.push(d["delivery_id"].as_str().expect("id").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let r = shared()
        .admin(
            "GET",
            &format!("/api/triggers/{id}/deliveries?status=ignored"),
            None,
        )
        .json();
    let ignored: Vec<&str> = r["deliveries"]
        .as_array()
        .expect("array")
        .iter()
        .map(|d| d["delivery_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ignored, [sent[5].as_str(), sent[2].as_str()]);
    for bad in ["status=nope", "limit=0", "limit=1000", "cursor=%%%"] {
        assert_eq!(
            shared()
                .admin("GET", &format!("/api/triggers/{id}/deliveries?{bad}"), None)
                .status,
            400,
            "{bad}"
        );
    }
}

#[test]
fn replay_is_idempotent_with_a_key_and_refused_for_rejected_deliveries() {
    let id = github(json!({}));
    let d = delivery_id(&send(&id, "push", &unique("k"), br#"{"x":1}"#, SECRET));
    let path = format!("/api/triggers/{id}/deliveries/{d}/replay");
    let key = [
        ("authorization", format!("Bearer {}", shared().admin_token)),
        ("idempotency-key", "incident-42".to_string()),
    ];
    let h: Vec<(&str, &str)> = key.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let first = shared().request("POST", &path, &h, None);
    assert_eq!(first.status, 201, "{}", first.body);
    let second = shared().request("POST", &path, &h, None);
    assert_eq!(second.status, 201);
    assert_eq!(
        first.json(),
        second.json(),
        "the retried call returns the first replay"
    );
    let other = shared().admin("POST", &path, None);
    assert_ne!(
        other.json()["delivery_id"],
        first.json()["delivery_id"],
        "without a key, a new replay"
    );
    // Three deliveries in all: the original and two replays.
    assert_eq!(shared().all_changes(&id).len(), 3);

    let rejected = delivery_id(&send(&id, "push", &unique("k"), b"{}", "wrong secret"));
    let r = shared().admin(
        "POST",
        &format!("/api/triggers/{id}/deliveries/{rejected}/replay"),
        None,
    );
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"], "not_replayable");
}

#[test]
fn bulk_replay_replays_what_matches_up_to_the_limit() {
    let id = github(json!({"event_types": ["issues"]}));
    let ignored: Vec<String> = (0..3)
        .map(|_| delivery_id(&send(&id, "push", &unique("k"), b"{}", SECRET)))
        .collect();
    let _queued = send(&id, "issues", &unique("k"), b"{}", SECRET);
    send(&id, "push", &unique("k"), b"{}", "wrong secret");
    let path = format!("/api/triggers/{id}/replay");

    assert_eq!(
        shared()
            .admin("POST", &path, Some(&json!({"status": "ignored"})))
            .status,
        400,
        "limit is required"
    );
    assert_eq!(
        shared()
            .admin(
                "POST",
                &path,
                Some(&json!({"status": "rejected", "limit": 5}))
            )
            .status,
        400
    );
    assert_eq!(
        shared()
            .admin(
                "POST",
                &path,
                Some(&json!({"limit": 5, "received_after": "yesterday"}))
            )
            .status,
        400
    );

    let auth = format!("Bearer {}", shared().admin_token);
    let h = [
        ("authorization", auth.as_str()),
        ("idempotency-key", "bulk-1"),
        ("content-type", "application/json"),
    ];
    let body = serde_json::to_vec(&json!({"status": "ignored", "limit": 2})).expect("json");
    let r = shared().request("POST", &path, &h, Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["count"], 2);
    let from: Vec<&str> = v["replayed"]
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x["replayed_from"].as_str().expect("id"))
        .collect();
    assert_eq!(
        from,
        [ignored[0].as_str(), ignored[1].as_str()],
        "oldest first"
    );
    let again = shared().request("POST", &path, &h, Some(&body)).json();
    assert_eq!(again["replayed"], v["replayed"], "same key, same replays");

    let window = json!({"limit": 10, "received_after": "2000-01-01T00:00:00Z", "received_before": "2000-01-02T00:00:00Z"});
    assert_eq!(
        shared().admin("POST", &path, Some(&window)).json()["count"],
        0
    );
}

#[test]
fn triggers_list_pages_oldest_first_and_hides_deleted_ones() {
    let mine: Vec<String> = (0..3).map(|_| github(json!({}))).collect();
    assert_eq!(
        shared()
            .admin("DELETE", &format!("/api/triggers/{}", mine[1]), None)
            .status,
        204
    );
    let walk = |extra: &str| -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let q = cursor
                .as_ref()
                .map(|c| format!("&cursor={c}"))
                .unwrap_or_default();
            let r = shared().admin("GET", &format!("/api/triggers?limit=2{extra}{q}"), None);
            assert_eq!(r.status, 200, "{}", r.body);
            let page = r.json();
            out.extend(page["triggers"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    };
    let listed = walk("");
    let ids: Vec<&str> = listed.iter().filter_map(|t| t["id"].as_str()).collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "no trigger twice"
    );
    assert!(ids.contains(&mine[0].as_str()) && ids.contains(&mine[2].as_str()));
    assert!(
        !ids.contains(&mine[1].as_str()),
        "deleted triggers are not listed"
    );
    let pos = |x: &str| ids.iter().position(|i| *i == x).expect("listed");
    assert!(pos(&mine[0]) < pos(&mine[2]), "oldest first");
    for t in &listed {
        assert!(t.get("signing_secret").is_none());
        assert_eq!(
            t["url"].as_str().expect("url"),
            format!("{}/hooks/{}", shared().base, t["id"].as_str().expect("id"))
        );
    }
    let with_deleted = walk("&include_deleted=true");
    let deleted = with_deleted
        .iter()
        .find(|t| t["id"] == mine[1].as_str())
        .expect("listed with include_deleted");
    assert!(deleted["deleted_at"].is_string());
}

#[test]
fn patch_updates_what_it_names_and_validates_everything() {
    let id = github(json!({}));
    let path = format!("/api/triggers/{id}");
    let r = shared().admin("PATCH", &path, Some(&json!({
        "target_url": "https://example.com/hook", "event_types": ["push"], "tolerance_seconds": 120,
        "max_body_bytes": 2048, "max_attempts": 3, "rate_limit_per_second": 50, "name": "renamed"
    })));
    assert_eq!(r.status, 200, "{}", r.body);
    let t = shared().admin("GET", &path, None).json();
    assert_eq!(t["target_url"], "https://example.com/hook");
    assert_eq!(t["event_types"], json!(["push"]));
    assert_eq!(t["tolerance_seconds"], 120);
    assert_eq!(t["max_body_bytes"], 2048);
    assert_eq!(t["max_attempts"], 3);
    assert_eq!(t["rate_limit_per_second"], 50);
    assert_eq!(t["name"], "renamed");
    for bad in [
        json!({"max_attempts": 0}),
        json!({"target_url": "nope"}),
        json!({"colour": "red"}),
        json!({"tolerance_seconds": "soon"}),
    ] {
        let r = shared().admin("PATCH", &path, Some(&bad));
        assert_eq!(r.status, 400, "{bad}");
    }
    assert_eq!(
        shared().admin("GET", &path, None).json(),
        t,
        "refused patches change nothing"
    );
    let r = shared().admin(
        "PATCH",
        &path,
        Some(&json!({"target_url": null, "rate_limit_per_second": null})),
    );
    assert_eq!(r.json()["target_url"], Value::Null);
    assert_eq!(
        r.json()["rate_limit_per_second"],
        1000,
        "back to the default"
    );
}

#[test]
fn a_rotated_out_secret_is_refused_after_its_grace_period() {
    let id = github(json!({}));
    let new = unique("new-secret-value");
    register_secret(&new);
    let r = shared().admin(
        "PUT",
        &format!("/api/triggers/{id}/signing-secret"),
        Some(&json!({"secret": new, "grace_seconds": 2})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        send(&id, "push", &unique("k"), b"{}", SECRET).status,
        200,
        "old secret during grace"
    );
    std::thread::sleep(Duration::from_millis(3100));
    let late = send(&id, "push", &unique("k"), b"{}", SECRET);
    assert_eq!(late.status, 401, "old secret after grace");
    assert_eq!(send(&id, "push", &unique("k"), b"{}", &new).status, 200);
    for bad in [
        json!({}),
        json!({"secret": ""}),
        json!({"secret": "x", "grace_seconds": -1}),
    ] {
        assert_eq!(
            shared()
                .admin(
                    "PUT",
                    &format!("/api/triggers/{id}/signing-secret"),
                    Some(&bad)
                )
                .status,
            400,
            "{bad}"
        );
    }
}

#[test]
fn the_change_feed_gives_every_change_once_in_order() {
    let id = github(json!({}));
    let keys: Vec<String> = (0..5).map(|_| unique("k")).collect();
    let ids: Vec<String> = keys
        .iter()
        .map(|k| delivery_id(&send(&id, "push", k, b"{}", SECRET)))
        .collect();
    // Runs finish (no target) and change their deliveries again.
    for d in &ids {
        shared().wait_delivery(&id, d, Duration::from_secs(20), |v| {
            v["status"] == "delivered"
        });
    }
    let mut after = 0i64;
    let mut order = Vec::new();
    let mut seqs = Vec::new();
    loop {
        let page = shared()
            .admin(
                "GET",
                &format!("/api/triggers/{id}/changes?after={after}&limit=2"),
                None,
            )
            .json();
        for c in page["changes"].as_array().expect("array") {
            seqs.push(c["seq"].as_i64().expect("seq"));
            order.push(c["delivery_id"].as_str().expect("id").to_string());
            assert!(c["raw_body"].is_string() && c["headers"].is_object() && c["run"].is_object());
            // The feed holds each delivery as its own endpoint shows it
            // (the two read the ledger by different queries).
            let mut fed = c.clone();
            fed.as_object_mut().expect("object").remove("seq");
            let d = c["delivery_id"].as_str().expect("id");
            let detail = shared()
                .admin("GET", &format!("/api/triggers/{id}/deliveries/{d}"), None)
                .json();
            assert_eq!(fed, detail);
        }
        after = page["next_after"].as_i64().expect("next_after");
        if !page["has_more"].as_bool().expect("has_more") {
            break;
        }
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {seqs:?}"
    );
    assert_eq!(order, ids, "each delivery once, at its latest change");

    // A later change (a duplicate) moves that delivery past the cursor.
    send(&id, "push", &keys[1], b"{}", SECRET);
    let page = shared()
        .admin(
            "GET",
            &format!("/api/triggers/{id}/changes?after={after}"),
            None,
        )
        .json();
    let changed: Vec<&str> = page["changes"]
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["delivery_id"].as_str().expect("id"))
        .collect();
    assert_eq!(changed, [ids[1].as_str()]);
    assert_eq!(page["changes"][0]["attempt_count"], 2);
    for bad in ["after=-1", "after=x", "limit=0"] {
        assert_eq!(
            shared()
                .admin("GET", &format!("/api/triggers/{id}/changes?{bad}"), None)
                .status,
            400,
            "{bad}"
        );
    }
}

#[test]
fn the_change_feed_as_frames_is_the_json_feed_with_bodies_as_bytes() {
    let id = github(json!({}));
    // Bodies whose bytes JSON would escape or base64 would pad: multi-byte
    // characters, quotes, backslashes and control characters; a tiny one;
    // one past the edge's small-body path.
    let bodies: Vec<Vec<u8>> = vec![
        "{\"text\":\"h\u{e9}llo \u{2603}\",\"esc\":\"\\\"\\\\\\n\\t\"}"
            .as_bytes()
            .to_vec(),
        b"{}".to_vec(),
        format!("{{\"filler\":\"{}\"}}", "y".repeat(70 * 1024)).into_bytes(),
    ];
    for b in &bodies {
        let r = send(&id, "push", &unique("k"), b, SECRET);
        assert_eq!(r.status, 200);
        // The feed is read twice below: it must not move in between, so
        // the runs (no target) finish first.
        shared().wait_delivery(&id, &delivery_id(&r), Duration::from_secs(20), |v| {
            v["status"] == "delivered"
        });
    }
    let json_page = shared()
        .admin("GET", &format!("/api/triggers/{id}/changes?limit=2"), None)
        .json();
    let framed = shared().admin(
        "GET",
        &format!("/api/triggers/{id}/changes?limit=2&format=frames"),
        None,
    );
    assert_eq!(framed.status, 200);
    assert_eq!(
        framed.header("content-type"),
        Some(edgehook_core::frames::CONTENT_TYPE)
    );
    let page = edgehook_core::frames::decode(&framed.bytes).expect("a framed page");
    assert_eq!(
        page.next_after,
        json_page["next_after"].as_i64().expect("next_after")
    );
    assert_eq!(Some(page.has_more), json_page["has_more"].as_bool());
    let changes = json_page["changes"].as_array().expect("changes");
    assert_eq!(page.changes.len(), changes.len());
    assert_eq!(page.changes.len(), 2, "limit holds");
    for ((change, body), want) in page.changes.iter().zip(changes) {
        assert_eq!(change.seq, want["seq"].as_i64().expect("seq"));
        assert_eq!(change.delivery.delivery_id, want["delivery_id"]);
        assert_eq!(change.delivery.raw_body, None);
        let want_body =
            edgehook_core::encoding::b64_decode(want["raw_body"].as_str().expect("raw_body"))
                .expect("base64");
        assert_eq!(body, &want_body, "the same bytes as the JSON feed's base64");
        // Everything else is the JSON feed's change, field for field.
        let mut as_json = serde_json::to_value(change).expect("to json");
        as_json["raw_body"] = want["raw_body"].clone();
        assert_eq!(&as_json, want);
    }
    // The bodies sent are all there, byte for byte.
    let rest = shared().admin(
        "GET",
        &format!(
            "/api/triggers/{id}/changes?after={}&format=frames",
            page.next_after
        ),
        None,
    );
    let rest = edgehook_core::frames::decode(&rest.bytes).expect("a framed page");
    assert!(!rest.has_more);
    let mut got: Vec<Vec<u8>> = page
        .changes
        .into_iter()
        .chain(rest.changes)
        .map(|(_, b)| b)
        .collect();
    let mut want = bodies.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let bad = shared().admin(
        "GET",
        &format!("/api/triggers/{id}/changes?format=xml"),
        None,
    );
    assert_eq!(bad.status, 400);
}

#[test]
fn change_feed_pages_are_bounded_by_bytes() {
    let id = github(json!({}));
    let filler = "x".repeat(900 * 1024);
    for _ in 0..6 {
        let body = format!(r#"{{"filler":"{filler}"}}"#);
        let r = send(&id, "push", &unique("k"), body.as_bytes(), SECRET);
        assert_eq!(r.status, 200);
        // A run finishing between two pages moves its delivery past the
        // cursor (it would be read twice): the runs finish first.
        shared().wait_delivery(&id, &delivery_id(&r), Duration::from_secs(20), |v| {
            v["status"] == "delivered"
        });
    }
    let r = shared().admin(
        "GET",
        &format!("/api/triggers/{id}/changes?after=0&limit=100"),
        None,
    );
    let page = r.json();
    let n = page["changes"].as_array().expect("array").len();
    assert!(
        (1..6).contains(&n),
        "a page holds {n} of 6 large deliveries"
    );
    assert_eq!(page["has_more"], true);
    assert!(
        r.body.len() < 6 * 1024 * 1024,
        "page of {} bytes",
        r.body.len()
    );
    assert_eq!(
        shared().all_changes(&id).len(),
        6,
        "paging still reaches every change"
    );
}

#[test]
fn trigger_and_client_ip_rate_limits_answer_429_with_retry_after() {
    let id = github(json!({"rate_limit_per_second": 5}));
    let mut limited = None;
    for i in 0..40 {
        // Bad signatures count against the limit like genuine requests.
        let secret = if i % 2 == 0 { SECRET } else { "wrong secret" };
        let r = send(&id, "push", &unique("k"), b"{}", secret);
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the trigger limit answered 429");
    assert_eq!(r.json()["error"], "rate_limited");
    assert_eq!(r.json()["scope"], "trigger");
    assert!(r
        .header("retry-after")
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|s| s >= 1));

    let id = github(json!({"rate_limit_per_ip_per_second": 3}));
    let statuses: Vec<u16> = (0..10)
        .map(|_| send(&id, "push", &unique("k"), b"{}", SECRET).status)
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let r = (0..5)
        .map(|_| send(&id, "push", &unique("k"), b"{}", SECRET))
        .find(|r| r.status == 429)
        .expect("still limited");
    assert_eq!(r.json()["scope"], "client_ip");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        send(&id, "push", &unique("k"), b"{}", SECRET).status,
        200,
        "the bucket refills"
    );
}

#[test]
fn a_flood_of_bad_signatures_is_aggregated_not_stored() {
    let id = github(json!({}));
    let mut aggregated = 0;
    for _ in 0..100 {
        let r = send(&id, "push", &unique("k"), b"{}", "attacker guess");
        assert_eq!(r.status, 401);
        if r.json()["delivery_id"].is_null() {
            assert_eq!(r.json()["aggregated"], true);
            aggregated += 1;
        }
    }
    let stored = shared()
        .admin(
            "GET",
            &format!("/api/triggers/{id}/deliveries?status=rejected&limit=200"),
            None,
        )
        .json();
    let stored = stored["deliveries"].as_array().expect("array").len();
    assert_eq!(stored, 60, "at most 60 rejections a minute are stored");
    assert_eq!(aggregated, 40);
    let windows = shared()
        .admin("GET", &format!("/api/triggers/{id}/rejections"), None)
        .json();
    let counted: i64 = windows["windows"]
        .as_array()
        .expect("array")
        .iter()
        .map(|w| w["count"].as_i64().expect("count"))
        .sum();
    assert_eq!(counted, 40);
    assert_eq!(windows["windows"][0]["signature_status"], "invalid");
    // Genuine deliveries still get through and are stored.
    assert_eq!(send(&id, "push", &unique("k"), b"{}", SECRET).status, 200);
}

#[test]
fn the_openapi_document_is_served() {
    let r = shared().request("GET", "/api/openapi.json", &[], None);
    assert_eq!(r.status, 200);
    let served: Value = r.json();
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("docs/openapi.json")).expect("read"),
    )
    .expect("json");
    assert_eq!(served, file);
    assert_eq!(served["openapi"], "3.1.0");
}

#[test]
fn stats_count_deliveries_by_status_in_buckets_and_time_dispatch() {
    let edge = shared();
    let capture = Capture::start();
    let id = github(json!({"target_url": capture.url("/ok/stats")}));
    for i in 0..3 {
        let r = send(&id, "push", &unique(&format!("s{i}")), b"{\"a\":1}", SECRET);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let bad = send(&id, "push", &unique("bad"), b"{\"a\":1}", "not-the-secret");
    assert_eq!(bad.status, 401);
    capture.wait_for("/ok/stats", 3, Duration::from_secs(60));
    let stats = loop {
        let r = edge.admin(
            "GET",
            &format!("/api/triggers/{id}/stats?hours=2&buckets=8"),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let s = r.json();
        if s["totals"]["delivered"] == 3 && s["dispatch_latency_ms"]["count"] == 3 {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(stats["totals"]["total"], 4, "{stats}");
    assert_eq!(stats["totals"]["rejected"], 1);
    assert_eq!(stats["bucket_seconds"], 900);
    let buckets = stats["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 8);
    // Everything just arrived: all of it is in the last bucket.
    assert_eq!(buckets[7]["counts"]["total"], 4);
    let l = &stats["dispatch_latency_ms"];
    assert!(
        l["p50"].as_u64().is_some() && l["p99"].as_u64() >= l["p50"].as_u64(),
        "{l}"
    );
    // The feed's head: nothing after it.
    let seq = stats["seq"].as_i64().expect("seq");
    let after = edge.admin(
        "GET",
        &format!("/api/triggers/{id}/changes?after={seq}"),
        None,
    );
    assert_eq!(after.json()["changes"].as_array().map(Vec::len), Some(0));
    for q in [
        "hours=0",
        "hours=721",
        "buckets=0",
        "buckets=241",
        "hours=x",
    ] {
        let r = edge.admin("GET", &format!("/api/triggers/{id}/stats?{q}"), None);
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert!(r.json()["field"].is_string(), "{q}: {}", r.body);
    }
}

#[test]
fn a_bulk_replay_dry_run_counts_and_writes_nothing_and_lists_filter_by_event_and_time() {
    let edge = shared();
    let id = github(json!({}));
    let start = edge
        .admin("GET", &format!("/api/triggers/{id}"), None)
        .json()["updated_at"]
        .as_str()
        .expect("time")
        .to_string();
    for (event, n) in [("push", 2), ("release", 1)] {
        for _ in 0..n {
            let r = send(&id, event, &unique(event), b"{\"a\":1}", SECRET);
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    let list = |q: &str| {
        let r = edge.admin("GET", &format!("/api/triggers/{id}/deliveries?{q}"), None);
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        r.json()["deliveries"].as_array().map_or(0, Vec::len)
    };
    assert_eq!(list("event_type=push"), 2);
    assert_eq!(list("event_type=release"), 1);
    assert_eq!(list(&format!("received_after={start}")), 3);
    assert_eq!(list(&format!("received_before={start}")), 0);
    let bad = edge.admin(
        "GET",
        &format!("/api/triggers/{id}/deliveries?received_after=soon"),
        None,
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["field"], "received_after");

    let dry = edge.admin(
        "POST",
        &format!("/api/triggers/{id}/replay"),
        Some(&json!({"event_type": "push", "limit": 10, "dry_run": true})),
    );
    assert_eq!(dry.status, 200, "{}", dry.body);
    let dry = dry.json();
    assert_eq!(dry["count"], 2);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["delivery_ids"].as_array().map(Vec::len), Some(2));
    assert_eq!(list("limit=200"), 3, "a dry run writes nothing");
    let real = edge.admin(
        "POST",
        &format!("/api/triggers/{id}/replay"),
        Some(&json!({"event_type": "push", "limit": 10})),
    );
    assert_eq!(real.json()["count"], 2);
    assert_eq!(list("limit=200"), 5);
}
