//! A ledger written before routes upgrades in place: today's Worker starts on
//! a copy of the state an older build left (`tests/fixtures/pre-routes`),
//! turns its trigger's `target_url` into its first route, gives that route
//! the runs still queued, and delivers them once the target is fixed, while
//! a trigger without a target keeps the ledger as its output.

use std::time::Duration;

use edgehook_e2e::*;
use serde_json::json;

const UPGRADED: &str = "trg_m535n49ds3zcmxrqywbpfv29e2g46vbz";
const LEDGER_ONLY: &str = "trg_x98m4cjfegbjd9y09vgxchr2xkhdrj18";
const SECRET: &str = "fixture-github-secret-value-1234";

#[test]
fn a_ledger_from_before_routes_upgrades_in_place_and_loses_nothing() {
    register_secret(SECRET);
    let edge = Edge::start_on_state(&root().join("tests/fixtures/pre-routes"));

    // The old trigger still answers with its fields, and now has a route.
    let t = edge.admin("GET", &format!("/api/triggers/{UPGRADED}"), None);
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(t.json()["target_url"], "http://127.0.0.1:9/gone");
    let routes = edge
        .admin("GET", &format!("/api/triggers/{UPGRADED}/routes"), None)
        .json();
    let list = routes["routes"].as_array().expect("routes");
    assert_eq!(list.len(), 1, "{routes}");
    assert_eq!(list[0]["name"], "default");
    assert_eq!(list[0]["target_url"], "http://127.0.0.1:9/gone");
    assert_eq!(list[0]["max_attempts"], 50, "its retry settings came along");
    assert_eq!(list[0]["retry_base_seconds"], 1);
    let route_id = list[0]["id"].as_str().expect("id").to_string();

    // Its two queued runs belong to the route, attempts so far kept.
    let page = edge
        .admin("GET", &format!("/api/triggers/{UPGRADED}/deliveries"), None)
        .json();
    let old: Vec<String> = page["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| d["delivery_id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(old.len(), 2, "{page}");
    for id in &old {
        let d = edge.delivery(UPGRADED, id);
        assert_eq!(d["status"], "queued", "{d}");
        assert_eq!(d["run"]["route_id"], route_id.as_str());
        assert!(d["dedupe_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("fixture-a-")));
        assert!(d["runs"][0]["attempt_count"].as_u64().expect("count") >= 3);
    }

    // The old way of fixing the target still works, and the runs go.
    let capture = Capture::start();
    let path = format!("/ok/{}", unique("upgraded"));
    let patched = edge.admin(
        "PATCH",
        &format!("/api/triggers/{UPGRADED}"),
        Some(&json!({"target_url": capture.url(&path)})),
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    for id in &old {
        let d = edge.wait_delivery(UPGRADED, id, Duration::from_secs(120), |d| {
            d["status"] == "delivered"
        });
        assert_eq!(d["runs"].as_array().map(Vec::len), Some(1));
    }
    let calls = capture.received(&path);
    assert_eq!(calls.len(), 2, "each old run reached the new target once");
    assert!(calls
        .iter()
        .all(|c| c.header("x-edgehook-route-id") == Some(route_id.as_str())));

    // New deliveries of the upgraded trigger go through its route.
    let body = br#"{"after":"upgrade"}"#;
    let sig = github_signature(SECRET, body);
    let r = edge.hook(
        UPGRADED,
        &[
            ("x-hub-signature-256", &sig),
            ("x-github-event", "push"),
            ("x-github-delivery", &unique("new")),
        ],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    capture.wait_for(&path, 3, Duration::from_secs(30));
    // The trigger without a target has no routes and still records.
    let routes = edge
        .admin("GET", &format!("/api/triggers/{LEDGER_ONLY}/routes"), None)
        .json();
    assert_eq!(routes["routes"], json!([]));
    let body = br#"{"ledger":"only"}"#;
    let sig = github_signature(SECRET, body);
    let r = edge.hook(
        LEDGER_ONLY,
        &[
            ("x-hub-signature-256", &sig),
            ("x-github-event", "push"),
            ("x-github-delivery", &unique("l")),
        ],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let d = edge.wait_delivery(
        LEDGER_ONLY,
        r.json()["delivery_id"].as_str().expect("id"),
        Duration::from_secs(30),
        |d| d["status"] == "delivered",
    );
    assert!(d["run"]["route_id"].is_null());
    // Both triggers are still listed.
    let list = edge.admin("GET", "/api/triggers", None).json();
    let ids: Vec<&str> = list["triggers"]
        .as_array()
        .expect("triggers")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert!(
        ids.contains(&UPGRADED) && ids.contains(&LEDGER_ONLY),
        "{ids:?}"
    );
}
