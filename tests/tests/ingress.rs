//! Ingress end to end: every row of the ingress table, every provider, secret
//! rotation, and exactly-once admission under concurrency.

use std::time::Duration;

use edgehook_core::verify::{sign_standard, standard_key};
use edgehook_core::Secret;
use edgehook_e2e::*;
use serde_json::{json, Value};

const GH_SECRET: &str = "It's a Secret to Everybody";

fn github_trigger(extra: Value) -> Value {
    let body = merged(
        json!({"name": unique("gh"), "provider": "github", "signing_secret": GH_SECRET}),
        extra,
    );
    shared().create_trigger(body)
}

fn send_github(id: &str, event: &str, delivery: &str, body: &[u8], secret: &str) -> Resp {
    let sig = github_signature(secret, body);
    shared().hook(
        id,
        &[
            ("x-hub-signature-256", &sig),
            ("x-github-event", event),
            ("x-github-delivery", delivery),
            ("content-type", "application/json"),
        ],
        body,
    )
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("trigger id").to_string()
}

#[test]
fn new_genuine_delivery_is_stored_with_its_run_before_the_response() {
    let t = github_trigger(json!({}));
    let id = id_of(&t);
    let body = br#"{"ref":"refs/heads/main","zen":"Keep it logically awesome."}"#;
    let r = send_github(&id, "push", &unique("d"), body, GH_SECRET);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["status"], "queued");
    assert_eq!(v["duplicate"], false);
    let delivery_id = v["delivery_id"].as_str().expect("delivery_id");
    let run_id = v["run_id"].as_str().expect("run_id");
    assert!(delivery_id.starts_with("dlv_") && run_id.starts_with("run_"));

    // Read back at once: stored before the response.
    let d = shared().delivery(&id, delivery_id);
    assert_eq!(d["delivery_id"], delivery_id);
    assert_eq!(d["attempt_count"], 1);
    assert_eq!(d["signature_status"], "valid");
    assert_eq!(d["matched_secret"], "current");
    assert_eq!(d["event_type"], "push");
    assert_eq!(d["replayed_from"], Value::Null);
    assert_eq!(d["run"]["run_id"], run_id);
    assert!(d["received_at"]
        .as_str()
        .expect("received_at")
        .ends_with('Z'));
    let raw = b64_decode(d["raw_body"].as_str().expect("raw_body")).expect("base64");
    assert_eq!(raw, body);
    assert_eq!(d["headers"]["x-github-event"], "push");
    // No target: the run is delivered once it is on the queue.
    let d = shared().wait_delivery(&id, delivery_id, Duration::from_secs(20), |d| {
        d["status"] == "delivered"
    });
    assert_eq!(d["run"]["status"], "delivered");
}

#[test]
fn a_burst_without_target_is_delivered_each_with_a_change_of_its_own() {
    // Sixty-four deliveries from eight clients reach the consumer in
    // batches, which settle the runs of a trigger without target together
    // (`claim_batch`): every run is delivered, and every delivery moves in
    // the change feed to a sequence number of its own, after the one its
    // admission took. (Eight clients: with sixty at once, `wrangler dev`'s
    // proxy answered one of another test's concurrent 900 KB uploads with
    // its 503 "Your worker restarted mid-request", or reset it, in 3 runs of
    // 9, while the Worker went on serving the others.)
    let t = github_trigger(json!({}));
    let id = id_of(&t);
    let answers: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|client| {
                let id = &id;
                scope.spawn(move || {
                    (0..8)
                        .map(|n| {
                            let body = format!(r#"{{"ref":"refs/heads/main","n":"{client}-{n}"}}"#);
                            let r = send_github(
                                id,
                                "push",
                                &unique("burst"),
                                body.as_bytes(),
                                GH_SECRET,
                            );
                            assert_eq!(r.status, 200, "{}", r.body);
                            r.json()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client"))
            .collect()
    });
    for a in &answers {
        let d = shared().wait_delivery(
            &id,
            a["delivery_id"].as_str().expect("delivery_id"),
            Duration::from_secs(30),
            |d| d["status"] == "delivered",
        );
        assert_eq!(d["run"]["status"], "delivered", "{d}");
        assert_eq!(d["run"]["run_id"], a["run_id"]);
    }
    let changes = shared().all_changes(&id);
    assert_eq!(changes.len(), 64, "each delivery once, at its latest");
    let mut seqs: Vec<i64> = changes
        .iter()
        .map(|c| c["seq"].as_i64().expect("seq"))
        .collect();
    assert!(
        changes.iter().all(|c| c["status"] == "delivered"),
        "the feed shows every delivery delivered"
    );
    let n = seqs.len();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "distinct sequence numbers");
    // Each delivery's admission took one number and its settling another,
    // and nothing else took any: no number was given twice or skipped.
    assert_eq!(seqs.iter().max(), Some(&128), "{seqs:?}");
}

#[test]
fn client_headers_posing_as_internal_ones_are_neither_trusted_nor_stored() {
    let t = github_trigger(json!({}));
    let id = id_of(&t);
    // A small body reaches the trigger's object by RPC, a larger one is
    // streamed to it in a request: both paths must drop these headers.
    for pad in [16, 80 * 1024] {
        let body = format!(r#"{{"ref":"refs/heads/main","pad":"{}"}}"#, "x".repeat(pad));
        let sig = github_signature(GH_SECRET, body.as_bytes());
        let delivery = unique("d");
        let r = shared().hook(
            &id,
            &[
                ("x-hub-signature-256", &sig),
                ("x-github-event", "push"),
                ("x-github-delivery", &delivery),
                ("content-type", "application/json"),
                ("X-Edgehook-Internal-Received-At", "1000"),
                ("x-edgehook-internal-base-url", "https://attacker.example"),
            ],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{pad}: {}", r.body);
        let delivery_id = r.json()["delivery_id"]
            .as_str()
            .expect("delivery_id")
            .to_string();
        let d = shared().delivery(&id, &delivery_id);
        let received = d["received_at"].as_str().expect("received_at");
        assert!(
            !received.starts_with("1970"),
            "{pad}: the client set the receive time: {received}"
        );
        let headers = d["headers"].as_object().expect("headers");
        assert_eq!(headers["x-github-event"], "push", "{pad}: {headers:?}");
        assert!(
            headers
                .keys()
                .all(|k| !k.starts_with("x-edgehook-internal")),
            "{pad}: stored {headers:?}"
        );
        let raw = b64_decode(d["raw_body"].as_str().expect("raw_body")).expect("base64");
        assert_eq!(raw, body.as_bytes(), "{pad}");
    }
}

#[test]
fn duplicate_answers_with_the_holder_and_counts_the_attempt() {
    let t = github_trigger(json!({}));
    let id = id_of(&t);
    let key = unique("dup");
    let first = send_github(&id, "push", &key, b"{}", GH_SECRET).json();
    for n in 2..=3 {
        let again = send_github(&id, "push", &key, b"{}", GH_SECRET);
        assert_eq!(again.status, 200);
        let v = again.json();
        assert_eq!(v["duplicate"], true);
        assert_eq!(v["delivery_id"], first["delivery_id"]);
        assert_eq!(v["run_id"], first["run_id"]);
        let d = shared().delivery(&id, first["delivery_id"].as_str().expect("id"));
        assert_eq!(d["attempt_count"], n);
    }
    assert_eq!(
        shared().all_changes(&id).len(),
        1,
        "one delivery in the ledger"
    );
}

#[test]
fn bad_signature_is_rejected_stored_and_never_blocks_a_later_valid_delivery() {
    let t = github_trigger(json!({}));
    let id = id_of(&t);
    let key = unique("k");
    let r = send_github(&id, "push", &key, b"{}", "not the secret");
    assert_eq!(r.status, 401);
    let v = r.json();
    assert_eq!(v["error"], "invalid_signature");
    let rejected_id = v["delivery_id"].as_str().expect("delivery_id").to_string();
    let d = shared().delivery(&id, &rejected_id);
    assert_eq!(d["status"], "rejected");
    assert_eq!(d["signature_status"], "invalid");
    assert_eq!(d["run"], Value::Null);

    // A missing signature is recorded as such.
    let missing = shared().hook(&id, &[("x-github-delivery", &key)], b"{}");
    assert_eq!(missing.status, 401);
    let md = shared().delivery(&id, missing.json()["delivery_id"].as_str().expect("id"));
    assert_eq!(md["signature_status"], "missing");

    // The genuine delivery with the same key is admitted, not collapsed.
    let ok = send_github(&id, "push", &key, b"{}", GH_SECRET);
    assert_eq!(ok.status, 200);
    let ok = ok.json();
    assert_eq!(ok["duplicate"], false);
    assert_ne!(ok["delivery_id"], rejected_id.as_str());
}

#[test]
fn timestamps_outside_the_tolerance_are_rejected() {
    let secret = "whsec_stripe_test_secret_1234";
    let t = shared().create_trigger(json!({"name": unique("stripe"), "provider": "stripe", "signing_secret": secret, "tolerance_seconds": 60}));
    let id = id_of(&t);
    let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    // Offsets well past the 60 s tolerance: a request can take seconds to
    // reach the edge on a loaded machine, which moves a future timestamp
    // closer to the receive time (61 s was flaky under CI load).
    for (offset, expect) in [(-90i64, 401u16), (90, 401), (0, 200)] {
        let ts = unix_now() + offset;
        let sig = hex(&hmac_sha256(
            secret.as_bytes(),
            &[ts.to_string().as_bytes(), b".", body],
        ));
        let r = shared().hook(
            &id,
            &[("stripe-signature", &format!("t={ts},v1={sig}"))],
            body,
        );
        assert_eq!(r.status, expect, "offset {offset}: {}", r.body);
        if expect == 401 {
            let d = shared().delivery(&id, r.json()["delivery_id"].as_str().expect("id"));
            assert_eq!(d["signature_status"], "out_of_tolerance");
        }
    }
}

#[test]
fn a_deleted_trigger_answers_404() {
    let t = github_trigger(json!({}));
    let id = id_of(&t);
    assert_eq!(
        send_github(&id, "push", &unique("d"), b"{}", GH_SECRET).status,
        200
    );
    assert_eq!(
        shared()
            .admin("DELETE", &format!("/api/triggers/{id}"), None)
            .status,
        204
    );
    assert_eq!(
        send_github(&id, "push", &unique("d"), b"{}", GH_SECRET).status,
        404
    );
    assert_eq!(
        shared()
            .admin("GET", &format!("/api/triggers/{id}"), None)
            .status,
        404
    );
}

#[test]
fn disabled_trigger_and_filtered_events_are_ignored_and_stored() {
    let t = github_trigger(json!({"enabled": false}));
    let id = id_of(&t);
    let r = send_github(&id, "push", &unique("d"), b"{}", GH_SECRET);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["status"], "ignored");
    assert_eq!(v["reason"], "trigger_disabled");
    let d = shared().delivery(&id, v["delivery_id"].as_str().expect("id"));
    assert_eq!(d["status"], "ignored");
    assert_eq!(d["run"], Value::Null);

    let t = github_trigger(json!({"event_types": ["issues", "pull_request.opened"]}));
    let id = id_of(&t);
    let r = send_github(&id, "push", &unique("d"), b"{}", GH_SECRET).json();
    assert_eq!(r["status"], "ignored");
    assert_eq!(r["reason"], "event_type_filtered");
    let r = send_github(
        &id,
        "pull_request",
        &unique("d"),
        br#"{"action":"closed"}"#,
        GH_SECRET,
    )
    .json();
    assert_eq!(r["status"], "ignored");
    let r = send_github(
        &id,
        "pull_request",
        &unique("d"),
        br#"{"action":"opened"}"#,
        GH_SECRET,
    )
    .json();
    assert_eq!(r["status"], "queued");
    let r = send_github(
        &id,
        "issues",
        &unique("d"),
        br#"{"action":"opened"}"#,
        GH_SECRET,
    )
    .json();
    assert_eq!(r["status"], "queued");

    // Re-enabling takes effect at once.
    let t = github_trigger(json!({"enabled": false}));
    let id = id_of(&t);
    let p = shared().admin(
        "PATCH",
        &format!("/api/triggers/{id}"),
        Some(&json!({"enabled": true})),
    );
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(
        send_github(&id, "push", &unique("d"), b"{}", GH_SECRET).json()["status"],
        "queued"
    );
}

#[test]
fn oversized_and_non_json_bodies_are_refused_and_not_stored() {
    let t = github_trigger(json!({"max_body_bytes": 100}));
    let id = id_of(&t);
    let big = vec![b' '; 101];
    let r = send_github(&id, "push", &unique("d"), &big, GH_SECRET);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["error"], "payload_too_large");
    let r = send_github(&id, "push", &unique("d"), b"not json at all", GH_SECRET);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_body");
    assert!(shared().all_changes(&id).is_empty(), "nothing stored");

    // Above the edge's hard limit, the edge refuses before any object.
    let huge = vec![b'x'; 10 * 1024 * 1024 + 1];
    let r = shared().hook(&id, &[], &huge);
    assert_eq!(r.status, 413);
}

#[test]
fn bodies_of_every_size_and_framing_are_stored_byte_for_byte() {
    // The edge hands on a body that declares at most 1 MiB by RPC, and
    // streams the rest (larger, or chunked) to the object, which reads a
    // declared one whole and an undeclared one chunk by chunk: every path
    // must store exactly what was sent.
    let t = github_trigger(json!({"max_body_bytes": 2_000_000}));
    let id = id_of(&t);
    let edge = shared();
    let body_of = |n: usize| -> Vec<u8> {
        let pad: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        format!(r#"{{"pad":"{pad}"}}"#).into_bytes()
    };
    let stored = |delivery_id: &str| -> Vec<u8> {
        let d = edge.delivery(&id, delivery_id);
        edgehook_core::encoding::b64_decode(d["raw_body"].as_str().expect("raw_body"))
            .expect("base64")
    };
    for n in [70_000, 300_000, 1_048_000, 1_500_000] {
        let body = body_of(n);
        let r = send_github(&id, "push", &unique("d"), &body, GH_SECRET);
        assert_eq!(r.status, 200, "{n}: {}", r.body);
        let d = r.json();
        assert_eq!(
            stored(d["delivery_id"].as_str().expect("id")),
            body,
            "{n} bytes"
        );
    }
    // Chunked: no declared length, so streamed and read as a stream.
    let body = body_of(300_000);
    let mut raw = format!(
        "POST /hooks/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         X-Hub-Signature-256: {}\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        github_signature(GH_SECRET, &body),
        unique("d")
    )
    .into_bytes();
    for chunk in body.chunks(50_000) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let (status, answer) = raw_http(&edge.base, &raw).expect("an answer");
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(
        stored(answer["delivery_id"].as_str().expect("id")),
        body,
        "chunked"
    );
    // Twelve at once, 10.8 MB together: more than the edge's 8 MiB bound
    // on the bodies it holds, so those that arrive while it is full are
    // streamed instead. Either way, every one is stored whole.
    let bodies: Vec<Vec<u8>> = (0..12).map(|i| body_of(900_000 + i)).collect();
    let ids: Vec<String> = std::thread::scope(|scope| {
        let sends: Vec<_> = bodies
            .iter()
            .map(|body| {
                let id = &id;
                scope.spawn(move || send_github(id, "push", &unique("d"), body, GH_SECRET))
            })
            .collect();
        sends
            .into_iter()
            .map(|h| {
                let r = h.join().expect("sender");
                assert_eq!(r.status, 200, "{}", r.body);
                r.json()["delivery_id"].as_str().expect("id").to_string()
            })
            .collect()
    });
    for (delivery_id, body) in ids.iter().zip(&bodies) {
        assert!(stored(delivery_id) == *body, "{} bytes at once", body.len());
    }
    // Over the trigger's limit, whole or streamed: refused, nothing stored.
    let before = edge.all_changes(&id).len();
    let small = github_trigger(json!({"max_body_bytes": 200_000}));
    let small_id = id_of(&small);
    let r = send_github(
        &small_id,
        "push",
        &unique("d"),
        &body_of(300_000),
        GH_SECRET,
    );
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(edge.all_changes(&small_id).is_empty());
    assert_eq!(edge.all_changes(&id).len(), before);
}

#[test]
fn slack_url_verification_answers_the_challenge_after_verification() {
    let secret = "slack_signing_secret_0123456789";
    let t = shared().create_trigger(
        json!({"name": unique("slack"), "provider": "slack", "signing_secret": secret}),
    );
    let id = id_of(&t);
    let body = br#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = unix_now().to_string();
    let sig = format!(
        "v0={}",
        hex(&hmac_sha256(
            secret.as_bytes(),
            &[b"v0:", ts.as_bytes(), b":", body]
        ))
    );
    let r = shared().hook(
        &id,
        &[
            ("x-slack-signature", &sig),
            ("x-slack-request-timestamp", &ts),
            ("content-type", "application/json"),
        ],
        body,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    assert!(
        shared().all_changes(&id).is_empty(),
        "the handshake is not a delivery"
    );
    let unsigned = shared().hook(&id, &[("x-slack-request-timestamp", &ts)], body);
    assert_eq!(unsigned.status, 401);
}

#[test]
fn wrong_method_on_ingress_is_405() {
    let t = github_trigger(json!({}));
    let r = shared().request("GET", &format!("/hooks/{}", id_of(&t)), &[], None);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}

/// Builds a genuine request for `provider`, or a tampered one.
fn provider_request(
    provider: &str,
    secret: &str,
    tamper: bool,
) -> (Vec<(String, String)>, Vec<u8>, &'static str) {
    let now = unix_now();
    let key = unique("evt");
    let body = format!(r#"{{"id":"{key}","event_id":"{key}","type":"thing.happened","object_kind":"push","webhookTimestamp":{}}}"#, now * 1000).into_bytes();
    let mac = |parts: &[&[u8]]| hmac_sha256(secret.as_bytes(), parts);
    let mut headers: Vec<(String, String)> =
        vec![("content-type".into(), "application/json".into())];
    let expected_event = match provider {
        "github" => {
            headers.push((
                "x-hub-signature-256".into(),
                github_signature(secret, &body),
            ));
            headers.push(("x-github-event".into(), "push".into()));
            headers.push(("x-github-delivery".into(), key.clone()));
            "push"
        }
        "stripe" => {
            let sig = hex(&mac(&[now.to_string().as_bytes(), b".", &body]));
            headers.push(("stripe-signature".into(), format!("t={now},v0=00,v1={sig}")));
            "thing.happened"
        }
        "slack" => {
            let sig = hex(&mac(&[b"v0:", now.to_string().as_bytes(), b":", &body]));
            headers.push(("x-slack-signature".into(), format!("v0={sig}")));
            headers.push(("x-slack-request-timestamp".into(), now.to_string()));
            "thing.happened"
        }
        "shopify" => {
            headers.push(("x-shopify-hmac-sha256".into(), b64(&mac(&[&body]))));
            headers.push(("x-shopify-topic".into(), "orders/create".into()));
            headers.push(("x-shopify-event-id".into(), key.clone()));
            "orders/create"
        }
        "standard" => {
            let k = standard_key(&Secret::new(secret)).expect("standard key");
            headers.push(("webhook-id".into(), key.clone()));
            headers.push(("webhook-timestamp".into(), now.to_string()));
            headers.push((
                "webhook-signature".into(),
                sign_standard(&k, &key, now, &body),
            ));
            "thing.happened"
        }
        "gitlab" => {
            headers.push(("x-gitlab-token".into(), secret.into()));
            headers.push(("x-gitlab-event".into(), "Push Hook".into()));
            headers.push(("x-gitlab-webhook-uuid".into(), key.clone()));
            "push"
        }
        "linear" => {
            headers.push(("linear-signature".into(), hex(&mac(&[&body]))));
            headers.push(("linear-delivery".into(), key.clone()));
            "thing.happened"
        }
        "generic" => {
            headers.push(("x-signature".into(), hex(&mac(&[&body]))));
            headers.push(("idempotency-key".into(), key.clone()));
            "thing.happened"
        }
        "basic" => {
            headers.push((
                "authorization".into(),
                format!("Basic {}", b64(format!("hooks:{secret}").as_bytes())),
            ));
            "thing.happened"
        }
        "api_key" => {
            headers.push(("x-api-key".into(), secret.into()));
            "thing.happened"
        }
        other => panic!("unknown provider {other}"),
    };
    let mut body = body;
    if tamper {
        // Flip a byte of the body, or of the credential for token schemes.
        match provider {
            "gitlab" | "basic" | "api_key" => {
                for (n, v) in headers.iter_mut() {
                    if n == "x-gitlab-token" || n == "x-api-key" || n == "authorization" {
                        v.push('x');
                    }
                }
            }
            _ => body[2] ^= 1,
        }
    }
    (headers, body, expected_event)
}

#[test]
fn every_provider_admits_genuine_and_rejects_tampered_deliveries() {
    let providers = [
        "github", "stripe", "slack", "shopify", "standard", "gitlab", "linear", "generic", "basic",
        "api_key",
    ];
    for p in providers {
        let secret = if p == "standard" {
            format!("whsec_{}", b64(unique("standard-key").as_bytes()))
        } else {
            unique("secret-for")
        };
        let mut create = json!({"name": unique(p), "provider": p, "signing_secret": secret});
        if p == "basic" {
            create["basic_username"] = json!("hooks");
        }
        let t = shared().create_trigger(create);
        let id = id_of(&t);
        assert_eq!(t["has_signing_secret"], true);
        assert_eq!(
            t["signing_secret_hint"].as_str(),
            Some(&secret[secret.len() - 4..])
        );

        let (headers, body, event) = provider_request(p, &secret, false);
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let r = shared().hook(&id, &h, &body);
        assert_eq!(r.status, 200, "{p}: {}", r.body);
        let d = shared().delivery(&id, r.json()["delivery_id"].as_str().expect("id"));
        assert_eq!(d["signature_status"], "valid", "{p}");
        assert_eq!(d["event_type"], event, "{p}");
        if let Some(creds) = d["headers"]
            .get("authorization")
            .or_else(|| d["headers"].get("x-gitlab-token"))
            .or_else(|| d["headers"].get("x-api-key"))
        {
            assert_eq!(
                creds, "[redacted]",
                "{p}: credentials are redacted in storage"
            );
        }
        if !matches!(p, "basic" | "api_key") {
            // A second copy is a duplicate for every provider with a key.
            let again = shared().hook(&id, &h, &body);
            assert_eq!(again.json()["duplicate"], true, "{p}");
        }

        let (headers, body, _) = provider_request(p, &secret, true);
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let r = shared().hook(&id, &h, &body);
        assert_eq!(r.status, 401, "{p} tampered: {}", r.body);
    }
}

#[test]
fn a_trigger_without_secret_fails_closed() {
    let t = shared().create_trigger(json!({"name": unique("nosecret"), "provider": "github"}));
    assert_eq!(t["has_signing_secret"], false);
    let r = send_github(&id_of(&t), "push", &unique("d"), b"{}", GH_SECRET);
    assert_eq!(r.status, 401);
    let d = shared().delivery(&id_of(&t), r.json()["delivery_id"].as_str().expect("id"));
    assert_eq!(d["signature_status"], "no_secret");
}

#[test]
fn rotation_keeps_the_previous_secret_during_its_grace_period() {
    let t = github_trigger(json!({}));
    let id = id_of(&t);
    let new_secret = unique("rotated-secret");
    register_secret(&new_secret);
    let r = shared().admin(
        "PUT",
        &format!("/api/triggers/{id}/signing-secret"),
        Some(&json!({"secret": new_secret, "grace_seconds": 3600})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        v["signing_secret_hint"].as_str(),
        Some(&new_secret[new_secret.len() - 4..])
    );
    assert!(v["previous_secret_expires_at"].is_string());

    let old = send_github(&id, "push", &unique("d"), b"{}", GH_SECRET);
    assert_eq!(old.status, 200);
    let d = shared().delivery(&id, old.json()["delivery_id"].as_str().expect("id"));
    assert_eq!(d["matched_secret"], "previous");
    let new = send_github(&id, "push", &unique("d"), b"{}", &new_secret);
    assert_eq!(
        shared().delivery(&id, new.json()["delivery_id"].as_str().expect("id"))["matched_secret"],
        "current"
    );

    // Without grace, the old secret stops at once.
    let newer = unique("rotated-again");
    register_secret(&newer);
    let r = shared().admin(
        "PUT",
        &format!("/api/triggers/{id}/signing-secret"),
        Some(&json!({"secret": newer, "grace_seconds": 0})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        send_github(&id, "push", &unique("d"), b"{}", &new_secret).status,
        401
    );
    assert_eq!(
        send_github(&id, "push", &unique("d"), b"{}", &newer).status,
        200
    );
}

#[test]
fn management_api_needs_the_token() {
    let t = github_trigger(json!({}));
    let path = format!("/api/triggers/{}", id_of(&t));
    assert_eq!(shared().request("GET", &path, &[], None).status, 401);
    assert_eq!(
        shared()
            .request(
                "GET",
                &path,
                &[("authorization", "Bearer wrong-token-value")],
                None
            )
            .status,
        401
    );
    assert_eq!(
        shared()
            .request("POST", "/api/triggers", &[], Some(b"{}"))
            .status,
        401
    );
    let ok = shared().admin("GET", &path, None);
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.json()["url"].as_str(),
        Some(format!("{}/hooks/{}", shared().base, id_of(&t)).as_str())
    );
}

#[test]
fn invalid_trigger_requests_get_a_400_naming_the_field() {
    for (body, field) in [
        (json!({"name": "x", "provider": "gitea"}), "provider"),
        (
            json!({"name": "x", "provider": "github", "target_url": "ftp://example.com"}),
            "target_url",
        ),
        (
            json!({"name": "x", "provider": "standard", "signing_secret": "whsec_***"}),
            "signing_secret",
        ),
    ] {
        let r = shared().admin("POST", "/api/triggers", Some(&body));
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json()["field"], field);
    }
    let r = shared().admin(
        "POST",
        "/api/triggers",
        Some(&json!({"name": "x", "provider": "github", "signing_secret": 12345678})),
    );
    assert_eq!(r.status, 400);
    assert!(
        !r.body.contains("12345678"),
        "values are not echoed: {}",
        r.body
    );
}

#[test]
fn fifty_concurrent_copies_make_one_delivery_one_run_one_target_call() {
    let capture = Capture::start();
    let path = format!("/ok/{}", unique("concurrent"));
    let t = github_trigger(json!({"target_url": capture.url(&path)}));
    let id = id_of(&t);
    let key = unique("same");
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let id = id.clone();
            let key = key.clone();
            std::thread::spawn(move || {
                send_github(&id, "push", &key, br#"{"n":1}"#, GH_SECRET).json()
            })
        })
        .collect();
    let answers: Vec<Value> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let firsts: Vec<&Value> = answers.iter().filter(|a| a["duplicate"] == false).collect();
    assert_eq!(firsts.len(), 1, "exactly one copy is new: {answers:?}");
    let delivery_id = firsts[0]["delivery_id"].clone();
    let run_id = firsts[0]["run_id"].clone();
    assert!(answers
        .iter()
        .all(|a| a["delivery_id"] == delivery_id && a["run_id"] == run_id));
    let d = shared().wait_delivery(
        &id,
        delivery_id.as_str().expect("id"),
        Duration::from_secs(30),
        |d| d["status"] == "delivered",
    );
    assert_eq!(d["attempt_count"], 50);
    assert_eq!(d["run"]["attempts"], 1);
    assert_eq!(shared().all_changes(&id).len(), 1);
    std::thread::sleep(Duration::from_secs(2));
    let calls = capture.received(&path);
    assert_eq!(calls.len(), 1, "one target call");
    assert_eq!(calls[0].header("webhook-id"), run_id.as_str());
}
