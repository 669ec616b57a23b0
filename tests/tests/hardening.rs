//! The ledger stays bounded and correct under hostile traffic: rejected
//! bodies are cut to an excerpt, a trigger at its storage budget says so,
//! bulk replays are idempotent, the operator's dedupe key wins, stored
//! signatures cannot be replayed, concurrent huge bodies leave the isolate
//! up, and a storm of copies makes one run per delivery.

use std::sync::{Arc, Barrier, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use edgehook_e2e::*;
use serde_json::{json, Value};

/// The two tests that push the most through `wrangler dev` at once (120 MiB
/// of concurrent bodies, a storm of copies) each run alone. With other
/// tests' requests in flight beside them, `wrangler dev`'s own proxy has
/// dropped every in-flight request at once, answering 503 "Your worker
/// restarted mid-request", while the Worker's runtime kept running (same
/// `workerd` processes throughout; the proxy's debug log shows its
/// connections cut). That is the local tool, not the Worker; what these
/// tests check holds either way.
static ALONE: RwLock<()> = RwLock::new(());

/// Taken by the two heaviest tests: nothing else runs meanwhile.
fn alone() -> RwLockWriteGuard<'static, ()> {
    ALONE.write().unwrap_or_else(PoisonError::into_inner)
}

/// Taken by every other test of this file.
fn beside_others() -> RwLockReadGuard<'static, ()> {
    ALONE.read().unwrap_or_else(PoisonError::into_inner)
}

const SECRET: &str = "hardening-test-github-secret";

fn github(extra: Value) -> String {
    let t = shared().create_trigger(merged(
        json!({"name": unique("hard"), "provider": "github", "signing_secret": SECRET}),
        extra,
    ));
    t["id"].as_str().expect("id").to_string()
}

fn signed(id: &str, key: &str, body: &[u8]) -> Resp {
    let sig = github_signature(SECRET, body);
    shared().hook(
        id,
        &[
            ("x-hub-signature-256", &sig),
            ("x-github-event", "push"),
            ("x-github-delivery", key),
            ("content-type", "application/json"),
        ],
        body,
    )
}

fn view(id: &str) -> Value {
    let r = shared().admin("GET", &format!("/api/triggers/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn a_rejected_delivery_keeps_only_an_excerpt_of_its_body() {
    let _turn = beside_others();
    let id = github(json!({}));
    let body: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let r = shared().hook(
        &id,
        &[
            ("x-hub-signature-256", "sha256=00"),
            ("x-github-delivery", &unique("bad")),
        ],
        &body,
    );
    assert_eq!(r.status, 401, "{}", r.body);
    let d = shared().delivery(&id, r.json()["delivery_id"].as_str().expect("stored"));
    assert_eq!(d["status"], "rejected");
    assert_eq!(d["body_bytes"], 10_000, "the size received");
    assert_eq!(d["body_truncated"], true);
    let stored = b64_decode(d["raw_body"].as_str().expect("raw body")).expect("base64");
    assert_eq!(stored.len(), 4096);
    assert_eq!(stored, body[..4096]);

    // A genuine delivery keeps its whole body and is not flagged.
    let r = signed(&id, &unique("good"), br#"{"ok":true}"#);
    let d = shared().delivery(&id, r.json()["delivery_id"].as_str().expect("id"));
    assert_eq!(d["body_truncated"], false);
    assert_eq!(d["body_bytes"], 11);
}

#[test]
fn a_trigger_at_its_storage_budget_answers_507_and_shows_its_use() {
    let _turn = beside_others();
    let budget = 1024 * 1024;
    let id = github(json!({"storage_budget_bytes": budget}));
    let v = view(&id);
    assert_eq!(v["storage_budget_bytes"], budget);
    assert_eq!(v["storage_used_bytes"], 0);

    let filler = format!(r#"{{"pad":"{}"}}"#, "p".repeat(300 * 1024));
    let first_key = unique("first");
    let mut accepted = 0;
    let mut refused = None;
    for n in 0..10 {
        let key = if n == 0 {
            first_key.clone()
        } else {
            unique("fill")
        };
        let r = signed(&id, &key, filler.as_bytes());
        match r.status {
            200 => accepted += 1,
            507 => {
                refused = Some(r);
                break;
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    let refused = refused.expect("the budget was reached");
    assert_eq!(
        accepted, 3,
        "three 300 KiB deliveries fit in 1 MiB, a fourth does not"
    );
    let e = refused.json();
    assert_eq!(e["error"], "storage_budget_exceeded");
    assert_eq!(e["budget_bytes"], budget);
    assert!(e["used_bytes"].as_u64().expect("used") <= budget);
    assert!(refused.header("retry-after").is_some());

    let v = view(&id);
    let used = v["storage_used_bytes"].as_u64().expect("used");
    assert!(used > 3 * 300 * 1024 && used <= budget, "{used}");

    // Duplicates still collapse, and bad signatures are still 401 (counted).
    let dup = signed(&id, &first_key, filler.as_bytes());
    assert_eq!(dup.status, 200);
    assert_eq!(dup.json()["duplicate"], true);
    let bad = shared().hook(&id, &[("x-hub-signature-256", "sha256=00")], b"{}");
    assert_eq!(bad.status, 401);

    // Raising the budget admits deliveries again.
    let r = shared().admin(
        "PATCH",
        &format!("/api/triggers/{id}"),
        Some(&json!({"storage_budget_bytes": 4 * budget})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(signed(&id, &unique("after"), filler.as_bytes()).status, 200);

    for bad in [json!(1), json!(10u64 << 40), json!("big")] {
        let r = shared().admin(
            "PATCH",
            &format!("/api/triggers/{id}"),
            Some(&json!({"storage_budget_bytes": bad})),
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
}

#[test]
fn bulk_replay_with_a_key_answers_the_first_result_and_never_replays_replays() {
    let _turn = beside_others();
    let id = github(json!({}));
    for n in 0..3 {
        assert_eq!(
            signed(&id, &unique("orig"), format!(r#"{{"n":{n}}}"#).as_bytes()).status,
            200
        );
    }
    let path = format!("/api/triggers/{id}/replay");
    let auth = format!("Bearer {}", shared().admin_token);
    let call = |key: Option<&str>, body: &Value| {
        let mut h = vec![
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        if let Some(k) = key {
            h.push(("idempotency-key", k));
        }
        let bytes = serde_json::to_vec(body).expect("json");
        shared().request("POST", &path, &h, Some(&bytes))
    };
    // A filter that matches replays as well as originals (no status, no time).
    let filter = json!({"limit": 100});
    let first = call(Some("bulk-1"), &filter);
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json();
    assert_eq!(first["count"], 3);

    // A retry with the same key returns the first result, replays nothing.
    let again = call(Some("bulk-1"), &filter);
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), first);

    // The same key with another request is refused.
    let other = call(Some("bulk-1"), &json!({"limit": 2}));
    assert_eq!(other.status, 409, "{}", other.body);
    assert_eq!(other.json()["error"], "idempotency_key_reused");

    // Without a key, the 3 replays are not selected again: only originals.
    let fresh = call(None, &filter).json();
    assert_eq!(fresh["count"], 3);
    let originals: Vec<&Value> = first["replayed"]
        .as_array()
        .expect("replayed")
        .iter()
        .map(|r| &r["replayed_from"])
        .collect();
    for r in fresh["replayed"].as_array().expect("replayed") {
        assert!(
            originals.contains(&&r["replayed_from"]),
            "replayed a replay: {r}"
        );
    }

    // Asked for, replays are included: 3 originals and 6 replays.
    let all = call(None, &json!({"limit": 100, "include_replays": true})).json();
    assert_eq!(all["count"], 9);
}

#[test]
fn the_operators_dedupe_key_wins_over_the_clients_idempotency_key() {
    let _turn = beside_others();
    let secret = "generic-hardening-secret-0123";
    let t = shared().create_trigger(json!({
        "name": unique("generic"), "provider": "generic", "signing_secret": secret,
        "dedupe_json_pointer": "/id"
    }));
    let id = t["id"].as_str().expect("id");
    let send = |body: &str, idem: &str| {
        let sig = hex(&hmac_sha256(secret.as_bytes(), &[body.as_bytes()]));
        shared()
            .hook(
                id,
                &[
                    ("x-signature", &sig),
                    ("idempotency-key", idem),
                    ("content-type", "application/json"),
                ],
                body.as_bytes(),
            )
            .json()
    };
    let a = unique("evt");
    let b = unique("evt");
    let first = send(&format!(r#"{{"id":"{a}"}}"#), "client-key");
    assert_eq!(first["duplicate"], false);
    // Same client header, different signed key: a new delivery.
    let second = send(&format!(r#"{{"id":"{b}"}}"#), "client-key");
    assert_eq!(
        second["duplicate"], false,
        "the unsigned header must not collapse it"
    );
    // Same signed key, other client header: a duplicate.
    let third = send(&format!(r#"{{"id":"{a}"}}"#), "another-key");
    assert_eq!(third["duplicate"], true);
    assert_eq!(third["delivery_id"], first["delivery_id"]);
    let d = shared().delivery(id, first["delivery_id"].as_str().expect("id"));
    assert_eq!(d["dedupe_key"], a.as_str());
}

#[test]
fn stored_signatures_are_redacted_everywhere_and_never_forwarded() {
    let _turn = beside_others();
    let capture = Capture::start();
    let path = format!("/ok/{}", unique("redact"));
    let id = github(json!({"target_url": capture.url(&path)}));
    let body = br#"{"redact":"me"}"#;
    let sig = github_signature(SECRET, body);
    let hex_part = sig.trim_start_matches("sha256=").to_string();
    let r = signed(&id, &unique("red"), body);
    assert_eq!(r.status, 200, "{}", r.body);
    let delivery_id = r.json()["delivery_id"].as_str().expect("id").to_string();
    let d = shared().wait_delivery(&id, &delivery_id, Duration::from_secs(30), |d| {
        d["status"] == "delivered"
    });
    let stored = d["headers"]["x-hub-signature-256"].as_str().expect("kept");
    assert!(stored.starts_with("sha256=[redacted fp="), "{stored}");
    assert!(
        !d.to_string().contains(&hex_part),
        "the signature leaks in the API"
    );
    let feed = shared().all_changes(&id);
    assert!(
        !Value::Array(feed).to_string().contains(&hex_part),
        "… or in the change feed"
    );
    let calls = capture.received(&path);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].header("x-hub-signature-256"),
        None,
        "never forwarded"
    );

    // A stored, redacted value is useless to forge a delivery with.
    let forged = shared().hook(
        &id,
        &[
            ("x-hub-signature-256", stored),
            ("x-github-delivery", &unique("forged")),
        ],
        body,
    );
    assert_eq!(forged.status, 401);
}

#[test]
fn short_secrets_are_refused() {
    let _turn = beside_others();
    for (provider, secret) in [
        ("github", "short"),
        ("gitlab", "0123456789abcde"),
        ("standard", "whsec_AAAA"),
    ] {
        let r = shared().admin(
            "POST",
            "/api/triggers",
            Some(&json!({"name": "x", "provider": provider, "signing_secret": secret})),
        );
        assert_eq!(r.status, 400, "{provider}: {}", r.body);
        assert_eq!(r.json()["field"], "signing_secret");
    }
}

#[test]
fn a_claim_moves_the_change_sequence() {
    let _turn = beside_others();
    let capture = Capture::start();
    let path = format!("/slow/4000/{}", unique("claim"));
    let id = github(json!({"target_url": capture.url(&path), "target_timeout_seconds": 20}));
    let r = signed(&id, &unique("c"), b"{}");
    assert_eq!(r.status, 200);
    // The attempt is in flight (the target holds it 4 s): claimed, not
    // reported. The ingest was change 1 of this fresh trigger; the claim,
    // which set `attempts`, must be change 2, or the backfill never sees it.
    capture.wait_for(&path, 1, Duration::from_secs(30));
    let feed = shared()
        .admin("GET", &format!("/api/triggers/{id}/changes?after=0"), None)
        .json();
    let change = &feed["changes"][0];
    assert_eq!(change["status"], "queued", "still in flight: {feed}");
    assert_eq!(change["run"]["attempts"], 1);
    assert_eq!(change["seq"], 2, "the claim is a change of its own: {feed}");
}

#[test]
fn concurrent_ten_mib_bodies_leave_the_isolate_up() {
    let _turn = alone();
    let capture = Capture::start();
    let path = format!("/ok/{}", unique("big"));
    let big_id =
        github(json!({"target_url": capture.url(&path), "max_body_bytes": 10 * 1024 * 1024}));
    let small_id = github(json!({}));
    let n = 6;
    let barrier = Arc::new(Barrier::new(2 * n));
    let handles: Vec<_> = (0..2 * n)
        .map(|i| {
            let (big_id, small_id, barrier) = (big_id.clone(), small_id.clone(), barrier.clone());
            std::thread::spawn(move || {
                // `{"i":   N,"p":"…"}` of exactly 10 MiB.
                let pad = "x".repeat(10 * 1024 * 1024 - 17);
                let body = format!(r#"{{"i":{i:>4},"p":"{pad}"}}"#);
                assert_eq!(body.len(), 10 * 1024 * 1024);
                let body = body.as_bytes();
                barrier.wait();
                if i < n {
                    // Exactly 10 MiB to a trigger that allows it.
                    signed(&big_id, &unique("big"), body).status
                } else {
                    // 10 MiB to a trigger whose limit is 1 MiB. The runtime
                    // answers 413 as soon as it sees the Content-Length and
                    // closes, so the client may see its upload reset instead.
                    let agent = ureq::AgentBuilder::new().build();
                    let url = format!("{}/hooks/{small_id}", shared().base);
                    let sig = github_signature(SECRET, body);
                    match try_post(&agent, &url, &[("x-hub-signature-256", &sig)], body) {
                        Ok((status, _)) => status,
                        Err(e) if e.contains("reset") || e.contains("Broken pipe") => 413,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    // The padded bodies are valid JSON only when whole: a 200 proves the
    // body arrived intact through the stream.
    assert_eq!(&statuses[..n], vec![200; n].as_slice(), "{statuses:?}");
    assert_eq!(&statuses[n..], vec![413; n].as_slice(), "{statuses:?}");
    assert!(
        shared().all_changes(&small_id).is_empty(),
        "nothing over the limit is stored"
    );
    let calls = capture.wait_for(&path, n, Duration::from_secs(120));
    assert!(calls.iter().all(|c| c.body.len() == 10 * 1024 * 1024));
    // The isolate is up and answers at once.
    let h = shared().request("GET", "/healthz", &[], None);
    assert_eq!(h.status, 200);
    assert_eq!(signed(&small_id, &unique("after"), b"{}").status, 200);
    let log = shared().log();
    assert!(
        !log.contains("restarted mid-request"),
        "the isolate restarted"
    );
    assert!(
        !log.contains("Uncaught"),
        "an uncaught error in the runtime"
    );
}

/// One delivery of each of three providers, `copies` times at once.
#[test]
fn a_storm_of_copies_makes_one_delivery_one_run_one_call_per_provider() {
    let _turn = alone();
    let copies = scaled(300, 1000);
    let capture = Capture::start();
    let std_key = format!("whsec_{}", b64(b"storm-standard-key-0123456789"));
    let stripe_secret = "whsec_storm_stripe_secret_0123";
    let mut cases = Vec::new();
    for (provider, secret) in [
        ("github", SECRET),
        ("stripe", stripe_secret),
        ("standard", std_key.as_str()),
    ] {
        let path = format!("/ok/{}", unique(provider));
        let t = shared().create_trigger(json!({
            "name": unique("storm"), "provider": provider, "signing_secret": secret,
            "target_url": capture.url(&path),
            "rate_limit_per_second": 100_000, "rate_limit_per_ip_per_second": 100_000
        }));
        let id = t["id"].as_str().expect("id").to_string();
        let key = unique("storm");
        let ts = unix_now();
        let (headers, body): (Vec<(String, String)>, Vec<u8>) = match provider {
            "github" => {
                let body = br#"{"storm":true}"#.to_vec();
                (
                    vec![
                        (
                            "x-hub-signature-256".into(),
                            github_signature(SECRET, &body),
                        ),
                        ("x-github-delivery".into(), key.clone()),
                        ("x-github-event".into(), "push".into()),
                    ],
                    body,
                )
            }
            "stripe" => {
                let body = format!(r#"{{"id":"{key}","type":"charge.succeeded"}}"#).into_bytes();
                let mac = hmac_sha256(
                    stripe_secret.as_bytes(),
                    &[format!("{ts}.").as_bytes(), &body],
                );
                (
                    vec![(
                        "stripe-signature".into(),
                        format!("t={ts},v1={}", hex(&mac)),
                    )],
                    body,
                )
            }
            _ => {
                let body = br#"{"type":"storm"}"#.to_vec();
                let raw = b64_decode(std_key.trim_start_matches("whsec_")).expect("key");
                let mac = hmac_sha256(&raw, &[format!("{key}.{ts}.").as_bytes(), &body]);
                (
                    vec![
                        ("webhook-id".into(), key.clone()),
                        ("webhook-timestamp".into(), ts.to_string()),
                        ("webhook-signature".into(), format!("v1,{}", b64(&mac))),
                    ],
                    body,
                )
            }
        };
        cases.push((id, path, headers, body));
    }
    let cases = Arc::new(cases);
    let threads = 48;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (cases, barrier) = (cases.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut answers = Vec::new();
                let mut n = t;
                while n < copies * cases.len() {
                    let (id, _, headers, body) = &cases[n % cases.len()];
                    let mut h: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(a, b)| (a.as_str(), b.as_str()))
                        .collect();
                    h.push(("content-type", "application/json"));
                    let r = shared().hook(id, &h, body);
                    assert_eq!(r.status, 200, "{}", r.body);
                    answers.push((n % cases.len(), r.json()));
                    n += threads;
                }
                answers
            })
        })
        .collect();
    let mut per_case: Vec<Vec<Value>> = vec![Vec::new(); cases.len()];
    for h in handles {
        for (c, a) in h.join().expect("thread") {
            per_case[c].push(a);
        }
    }
    for (c, answers) in per_case.iter().enumerate() {
        let (id, path, _, _) = &cases[c];
        assert_eq!(answers.len(), copies);
        let firsts: Vec<&Value> = answers.iter().filter(|a| a["duplicate"] == false).collect();
        assert_eq!(firsts.len(), 1, "exactly one copy is new");
        let first = firsts[0];
        assert!(answers
            .iter()
            .all(|a| a["delivery_id"] == first["delivery_id"] && a["run_id"] == first["run_id"]));
        let d = shared().wait_delivery(
            id,
            first["delivery_id"].as_str().expect("id"),
            Duration::from_secs(60),
            |d| d["status"] == "delivered",
        );
        assert_eq!(d["attempt_count"], copies as u64);
        assert_eq!(d["run"]["attempts"], 1);
        assert_eq!(shared().all_changes(id).len(), 1, "one delivery stored");
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(capture.received(path).len(), 1, "one target call");
    }
    println!("storm: {copies} copies x 3 providers → 3 deliveries, 3 runs, 3 target calls");
}
