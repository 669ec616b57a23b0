//! Hostile input across every route: each malformed or adversarial request
//! gets a clear 4xx JSON error or a correct 2xx, never a 5xx or a panic, and
//! the runtime is healthy afterwards. One table, one helper.

use edgehook_e2e::*;
use serde_json::{json, Value};

const SECRET: &str = "hostile-test-github-secret";
const STRIPE_SECRET: &str = "whsec_hostile_stripe_secret_0";
const SLACK_SECRET: &str = "hostile_slack_signing_secret_01";

/// What a case expects: one status, or any of a few.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    expect: &'static [u16],
}

fn case(
    name: &'static str,
    method: &'static str,
    path: impl Into<String>,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    expect: &'static [u16],
) -> Case {
    Case {
        name,
        method,
        path: path.into(),
        headers: headers
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        body: body.map(<[u8]>::to_vec),
        expect,
    }
}

/// Checks one answer: an expected status, JSON with an `error` for a 4xx.
fn check(name: &str, status: u16, content_type: Option<&str>, body: &str, expect: &[u16]) {
    assert!(status < 500, "{name}: answered {status}: {body}");
    assert!(
        expect.contains(&status),
        "{name}: expected {expect:?}, got {status}: {body}"
    );
    if (400..500).contains(&status) && !body.is_empty() {
        assert!(
            content_type.is_some_and(|c| c.starts_with("application/json")),
            "{name}: a {status} that is not JSON: {body}"
        );
        let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{name}: {body}"));
        assert!(v["error"].is_string(), "{name}: no error code: {body}");
    }
}

fn nested(depth: usize) -> Vec<u8> {
    let mut s = "[".repeat(depth);
    s.push_str(&"]".repeat(depth));
    s.into_bytes()
}

#[test]
fn hostile_requests_get_clear_4xx_answers_and_leave_the_runtime_healthy() {
    let edge = shared();
    let gh = edge
        .create_trigger(json!({"name": "hostile", "provider": "github", "signing_secret": SECRET}));
    let gh = gh["id"].as_str().expect("id").to_string();
    let stripe = edge.create_trigger(
        json!({"name": "hs", "provider": "stripe", "signing_secret": STRIPE_SECRET}),
    );
    let stripe = stripe["id"].as_str().expect("id").to_string();
    let slack = edge
        .create_trigger(json!({"name": "hl", "provider": "slack", "signing_secret": SLACK_SECRET}));
    let slack = slack["id"].as_str().expect("id").to_string();
    let std_key = format!("whsec_{}", b64(b"hostile-standard-key-012345"));
    let standard = edge
        .create_trigger(json!({"name": "hw", "provider": "standard", "signing_secret": std_key}));
    let standard = standard["id"].as_str().expect("id").to_string();
    let hook = format!("/hooks/{gh}");
    let api = format!("/api/triggers/{gh}");
    let auth = format!("Bearer {}", edge.admin_token);
    let a: &[(&str, &str)] = &[
        ("authorization", &auth),
        ("content-type", "application/json"),
    ];

    let sig = |body: &[u8]| github_signature(SECRET, body);
    let json_body = br#"{"ok":1}"#;
    let good_sig = sig(json_body);
    let truncated_sig = good_sig[..good_sig.len() - 1].to_string();
    let long_sig = format!("sha256={}", "ab".repeat(5000));
    let non_utf8: &[u8] = &[0xff, 0xfe, 0x00, 0x80, b'{'];
    let deep = nested(10_000);
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000)).into_bytes();
    let big_number = br#"{"id": 123456789012345678901234567890, "n": 1e400}"#;
    let now = unix_now().to_string();
    let huge_value = "v".repeat(100_000);
    let sql = "push'; DROP TABLE deliveries;--";
    let unicode_event = "💥 ünïcødé \u{202e}";
    let many_std_sigs = vec!["v1,AAAA"; 500].join(" ");
    let long_id = format!("/hooks/trg_{}", "a".repeat(5000));

    let mut cases = vec![
        // Ingress: signatures.
        case("empty github signature", "POST", &hook, &[("x-hub-signature-256", "sha256=")], Some(json_body), &[401]),
        case("garbage github signature", "POST", &hook, &[("x-hub-signature-256", "sha256=zz!!")], Some(json_body), &[401]),
        case("truncated github signature", "POST", &hook, &[("x-hub-signature-256", &truncated_sig)], Some(json_body), &[401]),
        case("sha1 scheme where sha256 is due", "POST", &hook, &[("x-hub-signature-256", "sha1=0123")], Some(json_body), &[401]),
        case("10 KB signature", "POST", &hook, &[("x-hub-signature-256", &long_sig)], Some(json_body), &[401]),
        case("no signature", "POST", &hook, &[], Some(json_body), &[401]),
        case("signature with spaces", "POST", &hook, &[("x-hub-signature-256", "  sha256 = 00 ")], Some(json_body), &[401]),
        case("100 KB header", "POST", &hook, &[("x-hub-signature-256", &good_sig), ("x-junk", &huge_value)], Some(json_body), &[200, 400, 413, 431]),
        // Ingress: bodies.
        case("non-UTF-8 signed body", "POST", &hook, &[("x-hub-signature-256", &sig(non_utf8))], Some(non_utf8), &[400]),
        case("truncated JSON signed", "POST", &hook, &[("x-hub-signature-256", &sig(br#"{"a":"#))], Some(br#"{"a":"#), &[400]),
        case("empty body signed", "POST", &hook, &[("x-hub-signature-256", &sig(b""))], Some(b""), &[400]),
        case("empty body unsigned", "POST", &hook, &[], Some(b""), &[401]),
        case("10,000-deep array signed", "POST", &hook, &[("x-hub-signature-256", &sig(&deep))], Some(&deep), &[400]),
        case("10,000-deep object signed", "POST", &hook, &[("x-hub-signature-256", &sig(&deep_object))], Some(&deep_object), &[400]),
        case("numbers beyond 2^53 and 1e400", "POST", &hook, &[("x-hub-signature-256", &sig(big_number)), ("x-github-delivery", "big-numbers")], Some(big_number), &[200, 400]),
        case("SQL in the event type", "POST", &hook, &[("x-hub-signature-256", &good_sig), ("x-github-event", sql), ("x-github-delivery", "sql-event")], Some(json_body), &[200]),
        case("SQL in the delivery id", "POST", &hook, &[("x-hub-signature-256", &good_sig), ("x-github-delivery", "1' OR '1'='1")], Some(json_body), &[200]),
        case("odd content type", "POST", &hook, &[("x-hub-signature-256", &good_sig), ("content-type", "image/png; charset=\"x\"")], Some(json_body), &[200, 400]),
        case("form without payload", "POST", &hook, &[("x-hub-signature-256", &sig(b"a=b&c")), ("content-type", "application/x-www-form-urlencoded")], Some(b"a=b&c"), &[400]),
        case("content-length over the hard limit", "POST", &hook, &[("x-hub-signature-256", &good_sig)], Some(&vec![b' '; 11 * 1024 * 1024]), &[413]),
        // Ingress: methods and ids.
        case("GET on ingress", "GET", &hook, &[], None, &[405]),
        case("PUT on ingress", "PUT", &hook, &[], Some(b"{}"), &[405]),
        case("DELETE on ingress", "DELETE", &hook, &[], None, &[405]),
        case("PATCH on ingress", "PATCH", &hook, &[], Some(b"{}"), &[405]),
        case("OPTIONS on ingress", "OPTIONS", &hook, &[], None, &[405]),
        case("very long id", "POST", &long_id, &[], Some(b"{}"), &[404]),
        case("traversal-shaped id", "POST", "/hooks/..%2F..%2Fapi%2Ftriggers", &[], Some(b"{}"), &[404]),
        case("unicode id", "POST", "/hooks/trg_%F0%9F%92%A5", &[], Some(b"{}"), &[404]),
        case("SQL id", "POST", "/hooks/trg_'%20OR%201=1--", &[], Some(b"{}"), &[404]),
        case("empty id", "POST", "/hooks/", &[], Some(b"{}"), &[404]),
        // Ingress: timestamped schemes.
        case("stripe empty parts", "POST", format!("/hooks/{stripe}"), &[("stripe-signature", "t=,v1=")], Some(br#"{"id":"evt"}"#), &[401]),
        case("stripe non-numeric t", "POST", format!("/hooks/{stripe}"), &[("stripe-signature", "t=abc,v1=00")], Some(br#"{"id":"evt"}"#), &[401]),
        case("stripe t beyond i64", "POST", format!("/hooks/{stripe}"), &[("stripe-signature", "t=99999999999999999999999,v1=00")], Some(br#"{"id":"evt"}"#), &[401]),
        case("stripe negative t", "POST", format!("/hooks/{stripe}"), &[("stripe-signature", "t=-1,v1=00")], Some(br#"{"id":"evt"}"#), &[401]),
        case("stripe repeated separators", "POST", format!("/hooks/{stripe}"), &[("stripe-signature", ",,,=,=,t,v1")], Some(br#"{"id":"evt"}"#), &[401]),
        case("slack exponent timestamp", "POST", format!("/hooks/{slack}"), &[("x-slack-signature", "v0=00"), ("x-slack-request-timestamp", "1e10")], Some(br#"{"event_id":"e"}"#), &[401]),
        case("slack timestamp 2^63", "POST", format!("/hooks/{slack}"), &[("x-slack-signature", "v0=00"), ("x-slack-request-timestamp", "9223372036854775808")], Some(br#"{"event_id":"e"}"#), &[401]),
        case("slack current timestamp, bad mac", "POST", format!("/hooks/{slack}"), &[("x-slack-signature", "v0=00"), ("x-slack-request-timestamp", &now)], Some(br#"{"event_id":"e"}"#), &[401]),
        case("standard empty timestamp", "POST", format!("/hooks/{standard}"), &[("webhook-id", "m"), ("webhook-timestamp", ""), ("webhook-signature", "v1,AAAA")], Some(b"{}"), &[401]),
        case("standard empty signature", "POST", format!("/hooks/{standard}"), &[("webhook-id", "m"), ("webhook-timestamp", &now), ("webhook-signature", "v1,")], Some(b"{}"), &[401]),
        case("standard non-base64 signature", "POST", format!("/hooks/{standard}"), &[("webhook-id", "m"), ("webhook-timestamp", &now), ("webhook-signature", "v1,!!!")], Some(b"{}"), &[401]),
        case("standard 500 signatures", "POST", format!("/hooks/{standard}"), &[("webhook-id", "m"), ("webhook-timestamp", &now), ("webhook-signature", &many_std_sigs)], Some(b"{}"), &[401]),
        // API: authentication.
        case("no token", "GET", "/api/triggers", &[], None, &[401]),
        case("10 KB token", "GET", "/api/triggers", &[("authorization", &format!("Bearer {}", "t".repeat(10_000)))], None, &[401]),
        case("basic instead of bearer", "GET", "/api/triggers", &[("authorization", "Basic YWRtaW46YWRtaW4=")], None, &[401]),
        // API: query parameters.
        case("limit beyond u64", "GET", "/api/triggers?limit=99999999999999999999999", a, None, &[400]),
        case("negative limit", "GET", format!("{api}/deliveries?limit=-1"), a, None, &[400]),
        case("zero limit", "GET", format!("{api}/deliveries?limit=0"), a, None, &[400]),
        case("garbage cursor", "GET", format!("{api}/deliveries?cursor=!!!"), a, None, &[400]),
        case("cursor of junk", "GET", format!("{api}/deliveries?cursor={}", b64(b"x:y").replace('=', "")), a, None, &[400]),
        case("cursor beyond 2^53", "GET", format!("{api}/deliveries?cursor={}", b64(b"9007199254740993:dlv").replace('=', "")), a, None, &[200]),
        case("cursor beyond i64", "GET", format!("{api}/deliveries?cursor=OTk5OTk5OTk5OTk5OTk5OTk5OTk5OmRsdg"), a, None, &[400]),
        case("SQL in status", "GET", format!("{api}/deliveries?status=queued'%20OR%201=1--"), a, None, &[400]),
        case("unicode status", "GET", format!("{api}/deliveries?status=%F0%9F%92%A5"), a, None, &[400]),
        case("negative after", "GET", format!("{api}/changes?after=-5"), a, None, &[400]),
        case("after beyond 2^53", "GET", format!("{api}/changes?after=9007199254740993"), a, None, &[200]),
        case("non-numeric after", "GET", format!("{api}/changes?after=abc"), a, None, &[400]),
        case("rejections limit text", "GET", format!("{api}/rejections?limit=abc"), a, None, &[400]),
        case("trigger cursor of junk", "GET", "/api/triggers?cursor=%00%00", a, None, &[400]),
        // API: ids.
        case("very long delivery id", "GET", format!("{api}/deliveries/{}", "d".repeat(5000)), a, None, &[404]),
        case("SQL delivery id", "GET", format!("{api}/deliveries/dlv_'%20OR%20'1'='1"), a, None, &[404]),
        case("replay of an unknown delivery", "POST", format!("{api}/deliveries/dlv_nope/replay"), a, None, &[404]),
        case("forged trigger id", "DELETE", "/api/triggers/trg_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", a, None, &[404]),
        case("unknown route", "GET", "/api/nothing/here", a, None, &[404]),
        case("OPTIONS on the API", "OPTIONS", "/api/triggers", a, None, &[404, 405]),
        // API: bodies.
        case("trigger body not JSON", "POST", "/api/triggers", a, Some(b"name=x"), &[400]),
        case("trigger body 10,000 deep", "POST", "/api/triggers", a, Some(&deep_object), &[400, 413]),
        case("trigger body over 64 KiB", "POST", "/api/triggers", a, Some(format!(r#"{{"name":"{}","provider":"github"}}"#, "n".repeat(100_000)).as_bytes()), &[413]),
        case("unknown provider", "POST", "/api/triggers", a, Some(br#"{"name":"x","provider":"myspace"}"#), &[400]),
        case("max_body_bytes beyond u64", "POST", "/api/triggers", a, Some(br#"{"name":"x","provider":"github","max_body_bytes":18446744073709551616}"#), &[400]),
        case("max_body_bytes 1e400", "POST", "/api/triggers", a, Some(br#"{"name":"x","provider":"github","max_body_bytes":1e400}"#), &[400]),
        case("unicode and SQL event types", "POST", "/api/triggers", a, Some(format!(r#"{{"name":"u","provider":"github","event_types":["{unicode_event}","{sql}"]}}"#).as_bytes()), &[201]),
        case("patch with an unknown field", "PATCH", &api, a, Some(br#"{"unknown":1}"#), &[400]),
        case("patch with no body", "PATCH", &api, a, None, &[400]),
        case("empty secret", "PUT", format!("{api}/signing-secret"), a, Some(br#"{"secret":""}"#), &[400]),
        case("secret body not JSON", "PUT", format!("{api}/signing-secret"), a, Some(b"\xff\xfe"), &[400]),
        case("bulk replay without limit", "POST", format!("{api}/replay"), a, Some(b"{}"), &[400]),
        case("bulk replay limit beyond u32", "POST", format!("{api}/replay"), a, Some(br#"{"limit":99999999999}"#), &[400]),
        case("bulk replay bad time", "POST", format!("{api}/replay"), a, Some(br#"{"limit":1,"received_after":"yesterday"}"#), &[400]),
        case("bulk replay non-ASCII offset", "POST", format!("{api}/replay"), a, Some("{\"limit\":1,\"received_after\":\"2026-11-23T10:00:00+0\u{e9}00\"}".as_bytes()), &[400]),
        case("bulk replay of rejected", "POST", format!("{api}/replay"), a, Some(br#"{"limit":1,"status":"rejected"}"#), &[400]),
        case("bulk replay SQL event type", "POST", format!("{api}/replay"), a, Some(format!(r#"{{"limit":5,"event_type":"{sql}"}}"#).as_bytes()), &[200]),
    ];
    let long_key = "k".repeat(300);
    cases.push(case(
        "Idempotency-Key of 300 characters",
        "POST",
        format!("{api}/replay"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("idempotency-key", &long_key),
        ],
        Some(br#"{"limit":1}"#),
        &[400],
    ));

    for c in &cases {
        let headers: Vec<(&str, &str)> = c
            .headers
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let r = edge.request(c.method, &c.path, &headers, c.body.as_deref());
        check(
            c.name,
            r.status,
            r.header("content-type"),
            &r.body,
            c.expect,
        );
    }

    // What no client library sends, over a raw connection.
    let body = br#"{"raw":1}"#;
    let s = sig(body);
    type RawCase<'a> = (&'a str, Vec<u8>, &'a [u16], bool);
    let raw_cases: Vec<RawCase> = vec![
        (
            "repeated signature headers",
            [format!("POST {hook} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Hub-Signature-256: sha256=00\r\nX-Hub-Signature-256: {s}\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(), body].concat(),
            &[200, 401],
            false,
        ),
        (
            "non-UTF-8 header value",
            [format!("POST {hook} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Hub-Signature-256: sha256=").as_bytes(), &[0xff, 0xfe], format!("\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(), body].concat(),
            &[400, 401],
            false,
        ),
        (
            "body shorter than its Content-Length",
            format!("POST {hook} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Hub-Signature-256: {s}\r\nContent-Length: 1000\r\n\r\n").into_bytes(),
            &[],
            true,
        ),
        (
            "unknown method",
            format!("BREW {hook} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").into_bytes(),
            &[400, 405, 501],
            false,
        ),
        (
            "chunked body over the trigger's limit",
            {
                let mut r = format!("POST {hook} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Hub-Signature-256: {s}\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
                let chunk = vec![b' '; 64 * 1024];
                for _ in 0..20 {
                    r.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    r.extend_from_slice(&chunk);
                    r.extend_from_slice(b"\r\n");
                }
                r.extend_from_slice(b"0\r\n\r\n");
                r
            },
            &[413],
            false,
        ),
    ];
    for (name, bytes, expect, cut) in &raw_cases {
        if *cut {
            // The client is gone before its body ends: there is nobody to
            // answer (the local proxy reports the cancelled request itself),
            // and all that matters is that the runtime carries on, checked
            // below.
            let _ = raw_http_cut(&edge.base, bytes);
            continue;
        }
        // A server may close a malformed request without an answer; it must
        // never answer it with a 5xx other than "not implemented".
        if let Some((status, body)) = raw_http(&edge.base, bytes) {
            assert!(
                expect.contains(&status),
                "{name}: expected {expect:?}, got {status}: {body}"
            );
        }
    }

    // The runtime is healthy, and a genuine delivery still goes through.
    let h = edge.request("GET", "/healthz", &[], None);
    assert_eq!(h.status, 200);
    let key = unique("after-hostile");
    let r = edge.hook(
        &gh,
        &[
            ("x-hub-signature-256", &good_sig),
            ("x-github-delivery", &key),
        ],
        json_body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let log = edge.log();
    assert!(!log.contains("panicked"), "a panic in the Worker");
    // A number from a request reaches SQL exactly or not at all: a value
    // beyond JavaScript's exact integers would be rounded on its way, which
    // wasm-bindgen logs.
    assert!(
        !log.contains("outside the JavaScript safe-integer range"),
        "a request's number was rounded on its way to SQL"
    );
    println!(
        "hostile input: {} requests through the client, {} raw",
        cases.len(),
        raw_cases.len()
    );
}
