//! Route validation, selection, rate slots and the circuit breaker.

use serde_json::json;

use super::*;
use crate::headers::HeaderList;
use crate::trigger::TriggerCreate;
use crate::weburl::UrlCrate;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn trigger() -> TriggerConfig {
    TriggerConfig::create(
        "trg_1".into(),
        TriggerCreate {
            name: "t".into(),
            provider: "github".into(),
            max_attempts: Some(4),
            retry_base_seconds: Some(7),
            ..TriggerCreate::default()
        },
        T0,
        &UrlCrate,
    )
    .expect("trigger")
}

fn route(id: &str, v: serde_json::Value) -> Result<RouteConfig, ConfigError> {
    let req: RouteCreate = serde_json::from_value(v).expect("request shape");
    RouteConfig::create(id.into(), req, &trigger(), T0, &UrlCrate)
}

#[test]
fn a_route_takes_the_triggers_retry_settings_by_default() {
    let r = route("rte_a", json!({"target_url": "https://ci.example/hook"})).expect("valid");
    assert_eq!(r.name, "ci.example");
    assert_eq!(r.max_attempts, 4);
    assert_eq!(r.retry_base_seconds, 7);
    assert_eq!(r.priority, DEFAULT_PRIORITY);
    assert_eq!(r.pause_after_failures, DEFAULT_PAUSE_AFTER_FAILURES);
    assert!(r.enabled && !r.ordered && r.filter.is_none());
}

#[test]
fn invalid_routes_name_the_field() {
    let cases = [
        (json!({}), "target_url"),
        (json!({"target_url": "ftp://x"}), "target_url"),
        (
            json!({"target_url": "https://x", "priority": 5000}),
            "priority",
        ),
        (
            json!({"target_url": "https://x", "max_attempts": 0}),
            "max_attempts",
        ),
        (
            json!({"target_url": "https://x", "target_timeout_seconds": 999}),
            "target_timeout_seconds",
        ),
        (
            json!({"target_url": "https://x", "rate_limit_per_second": 0}),
            "rate_limit_per_second",
        ),
        (
            json!({"target_url": "https://x", "rate_limit_per_second": 5000}),
            "rate_limit_per_second",
        ),
        (
            json!({"target_url": "https://x", "pause_after_failures": 20000}),
            "pause_after_failures",
        ),
        (json!({"target_url": "https://x", "name": ""}), "name"),
        (
            json!({"target_url": "https://x", "event_types": [""]}),
            "event_types",
        ),
        (
            json!({"target_url": "https://x", "headers": {"bad name": "x"}}),
            "headers.bad name",
        ),
        (
            json!({"target_url": "https://x", "headers": {"Webhook-Id": "x"}}),
            "headers.Webhook-Id",
        ),
        (
            json!({"target_url": "https://x", "headers": {"content-length": "1"}}),
            "headers.content-length",
        ),
        (
            json!({"target_url": "https://x", "headers": {"x-a": "line\nbreak"}}),
            "headers.x-a",
        ),
        (
            json!({"target_url": "https://x", "filter": {"body": {"$bad": 1}}}),
            "filter.body.$bad",
        ),
        (json!({"target_url": "https://x", "filter": []}), "filter"),
    ];
    for (req, field) in cases {
        let e = route("rte_a", req.clone()).expect_err(&req.to_string());
        assert_eq!(e.field, field, "{req}: {}", e.message);
    }
    // Unknown fields are refused when the request is parsed.
    assert!(
        serde_json::from_value::<RouteCreate>(json!({"target_url": "https://x", "nope": 1}))
            .is_err()
    );
}

#[test]
fn a_patch_changes_only_what_it_names_and_null_clears() {
    let mut r = route(
        "rte_a",
        json!({"target_url": "https://x", "filter": {"body": {"a": 1}}, "rate_limit_per_second": 2}),
    )
    .expect("valid");
    let before = r.clone();
    let patch: RoutePatch = serde_json::from_value(json!({"priority": 5})).expect("patch");
    r.apply(patch, T0, &UrlCrate).expect("ok");
    assert_eq!(r.priority, 5);
    assert_eq!(r.filter, before.filter);
    assert!(r.updated_at > before.updated_at, "updated_at moves forward");
    let patch: RoutePatch =
        serde_json::from_value(json!({"filter": null, "rate_limit_per_second": null}))
            .expect("patch");
    r.apply(patch, T0, &UrlCrate).expect("ok");
    assert!(r.filter.is_none() && r.rate_limit_per_second.is_none());
    // A bad patch changes nothing.
    let snapshot = r.clone();
    let patch: RoutePatch =
        serde_json::from_value(json!({"priority": 1, "max_attempts": 0})).expect("patch");
    assert!(r.apply(patch, T0, &UrlCrate).is_err());
    assert_eq!(r, snapshot);
}

#[test]
fn selection_follows_event_types_filters_enabled_and_priority() {
    let mut routes = vec![
        route("rte_c", json!({"target_url": "https://c", "priority": 300})).expect("c"),
        route(
            "rte_a",
            json!({"target_url": "https://a", "priority": 10, "event_types": ["pull_request"]}),
        )
        .expect("a"),
        route(
            "rte_b",
            json!({"target_url": "https://b", "priority": 20, "filter": {"body": {"action": "opened"}}}),
        )
        .expect("b"),
        route("rte_d", json!({"target_url": "https://d", "enabled": false})).expect("d"),
    ];
    sort(&mut routes);
    let ids = |sel: Vec<&RouteConfig>| sel.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let event = |name: &str| EventType {
        name: Some(name.into()),
        action: None,
    };
    let input = |body: serde_json::Value| {
        move || FilterInput::new(&HeaderList::new(), body.to_string().as_bytes(), "/hooks/t")
    };
    assert_eq!(
        ids(select(
            &routes,
            &event("pull_request"),
            input(json!({"action": "opened"}))
        )),
        vec!["rte_a", "rte_b", "rte_c"],
        "priority order, disabled route left out"
    );
    assert_eq!(
        ids(select(
            &routes,
            &event("push"),
            input(json!({"action": "opened"}))
        )),
        vec!["rte_b", "rte_c"]
    );
    assert_eq!(
        ids(select(
            &routes,
            &event("push"),
            input(json!({"action": "closed"}))
        )),
        vec!["rte_c"]
    );
    // The input is only built when a filter needs it.
    let no_filters = vec![route("rte_x", json!({"target_url": "https://x"})).expect("x")];
    let sel = select(&no_filters, &event("push"), || {
        panic!("input built needlessly")
    });
    assert_eq!(sel.len(), 1);
}

#[test]
fn equal_priorities_keep_creation_order() {
    let mut a = route("rte_b", json!({"target_url": "https://a"})).expect("a");
    let mut b = route("rte_a", json!({"target_url": "https://b"})).expect("b");
    a.created_at = T0;
    b.created_at = T0.plus_millis(5);
    let mut routes = vec![b, a];
    sort(&mut routes);
    assert_eq!(routes[0].id, "rte_b");
}

#[test]
fn rate_slots_are_spaced_and_delay_rather_than_refuse() {
    // Two per second: slots 500 ms apart, whatever the arrival times.
    let (s1, n1) = rate_slot(Some(2.0), None, T0);
    assert_eq!(s1, T0);
    let (s2, n2) = rate_slot(Some(2.0), n1, T0);
    assert_eq!(s2, T0.plus_millis(500));
    let (s3, n3) = rate_slot(Some(2.0), n2, T0.plus_millis(100));
    assert_eq!(s3, T0.plus_millis(1000));
    // After a quiet spell the next attempt goes at once.
    let (s4, _) = rate_slot(Some(2.0), n3, T0.plus_secs(10));
    assert_eq!(s4, T0.plus_secs(10));
    // No limit: now, and the state is untouched.
    assert_eq!(rate_slot(None, n3, T0), (T0, n3));
    // A slow rate: one per 100 s.
    let (_, n) = rate_slot(Some(0.01), None, T0);
    assert_eq!(n, Some(T0.plus_secs(100)));
}

#[test]
fn the_breaker_pauses_after_consecutive_failures_and_a_success_resets_it() {
    let mut n = 0;
    let mut tripped_at = None;
    for attempt in 1..=5 {
        let (next, trip) = after_attempt(n, false, 3);
        n = next;
        if trip && tripped_at.is_none() {
            tripped_at = Some(attempt);
        }
    }
    assert_eq!(tripped_at, Some(3));
    assert_eq!(after_attempt(2, true, 3), (0, false));
    assert_eq!(
        after_attempt(1_000, false, 0),
        (1_001, false),
        "0 never pauses"
    );
    assert!(auto_pause_reason(3).contains("3 consecutive"));
}

#[test]
fn credential_like_header_values_are_redacted_in_views() {
    let r = route(
        "rte_a",
        json!({"target_url": "https://x", "headers": {
            "Authorization": "Bearer s3cr3t-value", "X-Api-Key": "k", "X-Env": "prod"
        }}),
    )
    .expect("valid");
    let shown = r.headers_redacted();
    assert_eq!(shown["authorization"], crate::headers::REDACTED);
    assert_eq!(shown["x-api-key"], crate::headers::REDACTED);
    assert_eq!(shown["x-env"], "prod");
    assert_eq!(
        r.headers["authorization"], "Bearer s3cr3t-value",
        "stored whole"
    );
}

#[test]
fn a_tripped_route_tries_again_after_a_doubling_cool_down() {
    assert_eq!(resume_at(60, 1, T0), Some(T0.plus_secs(60)));
    assert_eq!(resume_at(60, 2, T0), Some(T0.plus_secs(120)));
    assert_eq!(resume_at(60, 3, T0), Some(T0.plus_secs(240)));
    assert_eq!(
        resume_at(60, 40, T0),
        Some(T0.plus_secs(MAX_BREAKER_WAIT_SECONDS))
    );
    assert_eq!(
        resume_at(7200, 3, T0),
        Some(T0.plus_secs(7200)),
        "a long cool-down is kept"
    );
    assert_eq!(resume_at(0, 1, T0), None, "0: an operator resumes it");
    let r = route("rte_a", json!({"target_url": "https://x"})).expect("valid");
    assert_eq!(r.breaker_cooldown_seconds, DEFAULT_BREAKER_COOLDOWN_SECONDS);
    // A route stored before the field existed reads the default.
    let mut v = serde_json::to_value(&r).expect("ser");
    v.as_object_mut()
        .expect("object")
        .remove("breaker_cooldown_seconds");
    let back: RouteConfig = serde_json::from_value(v).expect("de");
    assert_eq!(
        back.breaker_cooldown_seconds,
        DEFAULT_BREAKER_COOLDOWN_SECONDS
    );
}

#[test]
fn the_insertion_sort_orders_as_the_standard_stable_sort() {
    use proptest::prelude::*;
    let base = route("rte_x", json!({"target_url": "https://x"})).expect("x");
    proptest!(|(keys in proptest::collection::vec((0i32..4, 0i64..4, 0u8..4), 0..60))| {
        // Equal keys in several places check stability: each item carries
        // its position, which the sort must keep in order among equals.
        let items: Vec<(RouteConfig, usize)> = keys
            .iter()
            .enumerate()
            .map(|(n, (priority, at, id))| {
                let mut r = base.clone();
                r.priority = *priority;
                r.created_at = Timestamp(*at);
                r.id = format!("rte_{id}");
                (r, n)
            })
            .collect();
        let mut ours = items.clone();
        sort_in_enqueue_order(&mut ours, |(r, _)| r);
        let mut std = items;
        std.sort_by(|(a, _), (b, _)| {
            (a.priority, a.created_at, &a.id).cmp(&(b.priority, b.created_at, &b.id))
        });
        let order = |v: &[(RouteConfig, usize)]| v.iter().map(|(_, n)| *n).collect::<Vec<_>>();
        prop_assert_eq!(order(&ours), order(&std));
    });
}
