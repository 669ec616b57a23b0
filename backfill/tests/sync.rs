//! The backfill binary against the real local edge and a real PostgreSQL.
//! Each test syncs its own triggers (`--trigger`) into a fresh database.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use edgehook_e2e::pg::Pg;
use edgehook_e2e::*;
use serde_json::{json, Value};

const SECRET: &str = "backfill-test-github-secret";

fn trigger(extra: Value) -> String {
    let body = merged(
        json!({"name": unique("bf"), "provider": "github", "signing_secret": SECRET}),
        extra,
    );
    shared().create_trigger(body)["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn send(id: &str, key: &str, body: &[u8], secret: &str) -> Resp {
    let sig = github_signature(secret, body);
    shared().hook(
        id,
        &[
            ("x-hub-signature-256", &sig),
            ("x-github-event", "push"),
            ("x-github-delivery", key),
        ],
        body,
    )
}

fn command(db: &str, triggers: &[&str], extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_backfill"));
    c.args([
        "--url",
        &shared().base,
        "--token",
        &shared().admin_token,
        "--database-url",
        db,
    ]);
    for t in triggers {
        c.args(["--trigger", t]);
    }
    c.args(extra);
    c
}

fn backfill(db: &str, triggers: &[&str], extra: &[&str]) -> Output {
    let out = command(db, triggers, extra).output().expect("run backfill");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains(&shared().admin_token),
        "the token appears in the output"
    );
    out
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "backfill failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn db(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect")
}

/// Every delivery and run of `trigger` in the database, as JSON, by id.
fn rows(url: &str, trigger: &str) -> Vec<Value> {
    let mut c = db(url);
    c.query(
        "SELECT json_build_object(
            'delivery_id', d.delivery_id, 'status', d.status, 'dedupe_key', d.dedupe_key,
            'attempt_count', d.attempt_count, 'signature_status', d.signature_status,
            'matched_secret', d.matched_secret, 'event_type', d.event_type,
            'replayed_from', d.replayed_from, 'reason', d.reason,
            'received_at_ms', (extract(epoch from d.received_at) * 1000)::bigint,
            'raw_body', encode(d.raw_body, 'base64'), 'body_bytes', d.body_bytes, 'headers', d.headers,
            'run', CASE WHEN r.run_id IS NULL THEN NULL ELSE json_build_object(
                'run_id', r.run_id, 'status', r.status, 'attempts', r.attempts,
                'last_error', r.last_error, 'last_status_code', r.last_status_code) END
         )::text
         FROM deliveries d LEFT JOIN runs r ON r.run_id = d.run_id
         WHERE d.trigger_id = $1 ORDER BY d.delivery_id",
        &[&trigger],
    )
    .expect("query")
    .iter()
    .map(|r| serde_json::from_str(r.get::<_, &str>(0)).expect("json"))
    .collect()
}

/// The same shape from the API's change feed.
fn api_rows(trigger: &str) -> Vec<Value> {
    let mut out: Vec<Value> = shared()
        .all_changes(trigger)
        .into_iter()
        .map(|c| {
            let run = if c["run"].is_null() {
                Value::Null
            } else {
                json!({"run_id": c["run"]["run_id"], "status": c["run"]["status"], "attempts": c["run"]["attempts"],
                       "last_error": c["run"]["last_error"], "last_status_code": c["run"]["last_status_code"]})
            };
            let ms = edgehook_core::Timestamp::parse(c["received_at"].as_str().expect("time")).expect("rfc3339").millis();
            // PostgreSQL's base64 wraps lines; compare decoded bytes instead.
            json!({
                "delivery_id": c["delivery_id"], "status": c["status"], "dedupe_key": c["dedupe_key"],
                "attempt_count": c["attempt_count"], "signature_status": c["signature_status"],
                "matched_secret": c["matched_secret"], "event_type": c["event_type"],
                "replayed_from": c["replayed_from"], "reason": c["reason"], "received_at_ms": ms,
                "raw_body": c["raw_body"], "body_bytes": c["body_bytes"], "headers": c["headers"], "run": run
            })
        })
        .collect();
    out.sort_by(|a, b| a["delivery_id"].as_str().cmp(&b["delivery_id"].as_str()));
    out
}

fn normalise(mut rows: Vec<Value>) -> Vec<Value> {
    for r in &mut rows {
        if let Some(b) = r["raw_body"].as_str() {
            let clean: String = b.chars().filter(|c| !c.is_whitespace()).collect();
            r["raw_body"] = json!(clean);
        }
    }
    rows
}

fn settle(trigger: &str) {
    // Wait until no run is queued, so the feed is stable while we compare.
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared()
        .all_changes(trigger)
        .iter()
        .any(|c| c["status"] == "queued")
    {
        assert!(Instant::now() < deadline, "runs did not settle");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_first_sync_matches_the_api_row_for_row_and_a_second_changes_nothing() {
    let a = trigger(json!({}));
    let b = trigger(json!({"event_types": ["issues"]}));
    for i in 0..5 {
        assert_eq!(
            send(
                &a,
                &unique("k"),
                format!(r#"{{"i":{i}}}"#).as_bytes(),
                SECRET
            )
            .status,
            200
        );
    }
    let key = unique("dup");
    send(&a, &key, b"{}", SECRET);
    send(&a, &key, b"{}", SECRET);
    send(&a, &unique("k"), b"{}", "wrong secret");
    send(&b, &unique("k"), b"{}", SECRET);
    settle(&a);
    let url = Pg::shared().fresh_database();
    let out = ok(&backfill(&url, &[&a, &b], &[]));
    assert!(out.contains("2 triggers"), "{out}");
    assert_eq!(normalise(rows(&url, &a)), normalise(api_rows(&a)));
    assert_eq!(normalise(rows(&url, &b)), normalise(api_rows(&b)));
    assert_eq!(rows(&url, &a).len(), 7);

    let mut c = db(&url);
    let trig: (String, String, bool) = {
        let r = c
            .query_one(
                "SELECT name, provider, enabled FROM triggers WHERE trigger_id = $1",
                &[&a],
            )
            .expect("trigger row");
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!((trig.1.as_str(), trig.2), ("github", true));
    let cursor: i64 = c
        .query_one(
            "SELECT last_seq FROM sync_cursors WHERE trigger_id = $1",
            &[&a],
        )
        .expect("cursor")
        .get(0);
    assert!(cursor > 0);
    let migrations: i64 = c
        .query_one("SELECT count(*) FROM edgehook_migrations", &[])
        .expect("migrations")
        .get(0);
    assert_eq!(migrations, backfill_migrations());

    // Second run: nothing to write, and no row is even rewritten (same xmin).
    let xmins_of = |c: &mut postgres::Client, tables: &[&str]| -> Vec<String> {
        let sql = tables
            .iter()
            .map(|t| format!("SELECT xmin::text FROM {t}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        c.query(&sql, &[])
            .expect("xmin")
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let xmins =
        |c: &mut postgres::Client| xmins_of(c, &["deliveries", "runs", "triggers", "sync_cursors"]);
    let before = xmins(&mut c);
    let out = ok(&backfill(&url, &[&a, &b], &[]));
    assert!(out.contains(" 0 rows"), "{out}");
    assert_eq!(xmins(&mut c), before, "a second sync changed rows");

    // From the start again: the first sync's pages went in by COPY; these
    // meet their rows already there, so the COPY gives way to upserts, which
    // rewrite nothing (the cursor row alone moves).
    let rows_xmin = |c: &mut postgres::Client| xmins_of(c, &["deliveries", "runs"]);
    let before = rows_xmin(&mut c);
    c.execute(
        "UPDATE sync_cursors SET last_seq = 0 WHERE trigger_id = $1",
        &[&a],
    )
    .expect("rewind the cursor");
    let out = ok(&backfill(&url, &[&a], &[]));
    assert!(out.contains(" 0 rows"), "{out}");
    assert_eq!(rows_xmin(&mut c), before, "a re-sync rewrote rows");
    assert_eq!(normalise(rows(&url, &a)), normalise(api_rows(&a)));
    let rewound: i64 = c
        .query_one(
            "SELECT last_seq FROM sync_cursors WHERE trigger_id = $1",
            &[&a],
        )
        .expect("cursor")
        .get(0);
    assert_eq!(rewound, cursor);
}

#[test]
fn later_changes_replays_and_deletion_arrive_on_the_next_sync() {
    let capture = Capture::start();
    let path = format!("/flaky/1/{}", unique("later"));
    let t = trigger(json!({"target_url": capture.url(&path), "retry_base_seconds": 6}));
    let first = send(&t, &unique("k"), br#"{"v":1}"#, SECRET).json();
    let delivery = first["delivery_id"].as_str().expect("id").to_string();
    capture.wait_for(&path, 1, Duration::from_secs(20));
    let url = Pg::shared().fresh_database();
    ok(&backfill(&url, &[&t], &[]));
    let mut c = db(&url);
    let status: String = c
        .query_one(
            "SELECT status FROM runs WHERE delivery_id = $1",
            &[&delivery],
        )
        .expect("run")
        .get(0);
    assert_eq!(status, "queued", "first sync sees the run between attempts");

    shared().wait_delivery(&t, &delivery, Duration::from_secs(30), |d| {
        d["status"] == "delivered"
    });
    let replay = shared()
        .admin(
            "POST",
            &format!("/api/triggers/{t}/deliveries/{delivery}/replay"),
            None,
        )
        .json();
    ok(&backfill(&url, &[&t], &[]));
    let r = c
        .query_one(
            "SELECT status, attempts FROM runs WHERE delivery_id = $1",
            &[&delivery],
        )
        .expect("run");
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, i32>(1)),
        ("delivered".to_string(), 2)
    );
    let from: Option<String> = c
        .query_one(
            "SELECT replayed_from FROM deliveries WHERE delivery_id = $1",
            &[&replay["delivery_id"].as_str().expect("id")],
        )
        .expect("replay row")
        .get(0);
    assert_eq!(from.as_deref(), Some(delivery.as_str()));

    assert_eq!(
        shared()
            .admin("DELETE", &format!("/api/triggers/{t}"), None)
            .status,
        204
    );
    ok(&backfill(&url, &[&t], &[]));
    let deleted: Option<String> = c
        .query_one(
            "SELECT deleted_at::text FROM triggers WHERE trigger_id = $1",
            &[&t],
        )
        .expect("trigger")
        .get(0);
    assert!(deleted.is_some(), "the deleted trigger is marked");
    let kept: i64 = c
        .query_one(
            "SELECT count(*) FROM deliveries WHERE trigger_id = $1",
            &[&t],
        )
        .expect("count")
        .get(0);
    assert_eq!(kept, 2, "its rows stay");
}

#[test]
fn a_sync_killed_half_way_resumes_to_the_same_state() {
    let t = trigger(json!({}));
    for i in 0..150 {
        assert_eq!(
            send(
                &t,
                &unique("k"),
                format!(r#"{{"i":{i}}}"#).as_bytes(),
                SECRET
            )
            .status,
            200
        );
    }
    settle(&t);
    let url = Pg::shared().fresh_database();
    let mut child: Child = command(&url, &[&t], &["--page-size", "3", "--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Kill it once some, but not all, pages are committed.
    let mut c = db(&url);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = c
            .query_opt(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'deliveries'",
                &[],
            )
            .ok()
            .flatten()
            .map_or(0, |r| r.get(0));
        if n > 0 {
            let rows: i64 = c
                .query_one("SELECT count(*) FROM deliveries", &[])
                .expect("count")
                .get(0);
            if rows > 0 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let partial: i64 = c
        .query_one("SELECT count(*) FROM deliveries", &[])
        .expect("count")
        .get(0);
    assert!(
        partial > 0 && partial < 150,
        "killed half-way ({partial} of 150)"
    );
    let cursor: i64 = c
        .query_one(
            "SELECT last_seq FROM sync_cursors WHERE trigger_id = $1",
            &[&t],
        )
        .expect("cursor")
        .get(0);
    assert!(cursor > 0);

    ok(&backfill(&url, &[&t], &["--page-size", "7"]));
    let clean = Pg::shared().fresh_database();
    ok(&backfill(&clean, &[&t], &[]));
    assert_eq!(rows(&url, &t).len(), 150);
    assert_eq!(
        rows(&url, &t),
        rows(&clean, &t),
        "resumed and clean syncs agree"
    );
}

#[test]
fn follow_mode_keeps_syncing_until_interrupted() {
    let t = trigger(json!({}));
    send(&t, &unique("k"), b"{}", SECRET);
    let url = Pg::shared().fresh_database();
    let child = command(&url, &[&t], &["--follow", "--interval", "0.5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let wait_rows = |n: i64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = db(&url)
                .query_one("SELECT count(*) FROM deliveries", &[])
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or(0);
            if got >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "follow mode did not sync {n} rows"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_rows(1);
    let later = send(&t, &unique("k"), b"{}", SECRET);
    assert_eq!(later.status, 200);
    wait_rows(2);
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("rows/s"));
}

#[test]
fn two_backfills_at_once_migrate_once_and_agree() {
    let t = trigger(json!({}));
    for _ in 0..20 {
        send(&t, &unique("k"), b"{}", SECRET);
    }
    settle(&t);
    let url = Pg::shared().fresh_database();
    let a = command(&url, &[&t], &["--page-size", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let b = command(&url, &[&t], &["--page-size", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    for child in [a, b] {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut c = db(&url);
    let migrations: i64 = c
        .query_one("SELECT count(*) FROM edgehook_migrations", &[])
        .expect("count")
        .get(0);
    assert_eq!(migrations, backfill_migrations());
    assert_eq!(normalise(rows(&url, &t)), normalise(api_rows(&t)));
}

#[test]
fn failures_are_clear_and_exit_non_zero() {
    let t = trigger(json!({}));
    let url = Pg::shared().fresh_database();

    let out = Command::new(env!("CARGO_BIN_EXE_backfill"))
        .args([
            "--url",
            &shared().base,
            "--token",
            "not-the-token",
            "--database-url",
            &url,
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the admin token"));

    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_backfill"))
        .args([
            "--url",
            &nowhere,
            "--token",
            &shared().admin_token,
            "--database-url",
            &url,
        ])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the edge"));

    let out = backfill(&Pg::unreachable_url(), &[&t], &[]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("database: cannot connect"));

    let mut admin = db(&Pg::shared().admin_url);
    let name = url.rsplit('/').next().expect("db name");
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} SET default_transaction_read_only = on"
        ))
        .expect("make read-only");
    let out = backfill(&url, &[&t], &[]);
    assert_eq!(out.status.code(), Some(5));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("read-only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Environment variables work like the flags.
    let out = Command::new(env!("CARGO_BIN_EXE_backfill"))
        .env("EDGEHOOK_URL", &shared().base)
        .env("EDGEHOOK_ADMIN_TOKEN", &shared().admin_token)
        .env("DATABASE_URL", Pg::shared().fresh_database())
        .args(["--trigger", &t])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_trigger_that_fails_is_reported_and_the_others_still_sync() {
    let good = trigger(json!({}));
    let bad = trigger(json!({}));
    let url = Pg::shared().fresh_database();
    ok(&backfill(&url, &[&good], &[]));
    // The database refuses every row of one trigger: a permanent error of
    // that trigger alone.
    db(&url)
        .batch_execute(&format!(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'refused for the test'; END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON deliveries FOR EACH ROW
             WHEN (NEW.trigger_id = '{bad}') EXECUTE FUNCTION refuse();"
        ))
        .expect("install the refusal");
    for _ in 0..3 {
        assert_eq!(send(&good, &unique("g"), b"{}", SECRET).status, 200);
        assert_eq!(send(&bad, &unique("b"), b"{}", SECRET).status, 200);
    }
    settle(&good);
    settle(&bad);
    // `bad` is first in the list: its failure must not stop `good`.
    let out = backfill(&url, &[&bad, &good], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!("trigger {bad} failed")),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 trigger(s) could not be synced"),
        "{stderr}"
    );
    assert_eq!(normalise(rows(&url, &good)), normalise(api_rows(&good)));
    assert!(rows(&url, &bad).is_empty());

    // Once the cause is gone, the next run syncs it and exits 0.
    db(&url)
        .batch_execute("DROP TRIGGER refuse ON deliveries")
        .expect("drop");
    ok(&backfill(&url, &[&bad, &good], &[]));
    assert_eq!(normalise(rows(&url, &bad)), normalise(api_rows(&bad)));
}

#[test]
fn a_trigger_row_never_goes_backwards() {
    let t = trigger(json!({}));
    let url = Pg::shared().fresh_database();
    ok(&backfill(&url, &[&t], &[]));
    let mut c = db(&url);
    // A newer version than the edge's (as a concurrent backfill that listed
    // the trigger after a change would have written).
    c.execute(
        "UPDATE triggers SET name = 'newer', updated_at = updated_at + interval '2 seconds'
         WHERE trigger_id = $1",
        &[&t],
    )
    .expect("update");
    ok(&backfill(&url, &[&t], &[]));
    let name: String = c
        .query_one("SELECT name FROM triggers WHERE trigger_id = $1", &[&t])
        .expect("row")
        .get(0);
    assert_eq!(name, "newer", "an older view overwrote a newer row");

    // A change made on the edge after that is newer, and lands.
    std::thread::sleep(Duration::from_millis(2500));
    let r = shared().admin(
        "PATCH",
        &format!("/api/triggers/{t}"),
        Some(&json!({"name": "patched"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    ok(&backfill(&url, &[&t], &[]));
    let name: String = c
        .query_one("SELECT name FROM triggers WHERE trigger_id = $1", &[&t])
        .expect("row")
        .get(0);
    assert_eq!(name, "patched");
}

#[test]
fn signatures_stored_before_redaction_are_redacted_by_the_migration() {
    let t = trigger(json!({}));
    let url = Pg::shared().fresh_database();
    ok(&backfill(&url, &[&t], &[]));
    let mut c = db(&url);
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let standard = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    // A row as an older backfill stored it, and the migration not yet run.
    c.batch_execute(&format!(
        "INSERT INTO deliveries (trigger_id, delivery_id, seq, status, attempt_count, signature_status,
            received_at, raw_body, body_bytes, headers)
         VALUES ('{t}', 'dlv_old', 0, 'delivered', 1, 'valid', now(), '\\x7b7d', 2,
            '{{\"x-hub-signature-256\": \"{sig}\", \"webhook-signature\": \"{standard}\", \"x-github-event\": \"push\"}}');
         DELETE FROM edgehook_migrations WHERE name = '0002_redact_signatures.sql';"
    ))
    .expect("seed an old row");
    ok(&backfill(&url, &[&t], &[]));
    let headers: Value = c
        .query_one(
            "SELECT headers::text FROM deliveries WHERE delivery_id = 'dlv_old'",
            &[],
        )
        .map(|r| serde_json::from_str(r.get::<_, &str>(0)).expect("json"))
        .expect("row");
    // The same value the edge stores for the same signature.
    use edgehook_core::headers::redact_signature;
    assert_eq!(
        headers["x-hub-signature-256"],
        redact_signature(sig).as_str()
    );
    assert_eq!(
        headers["webhook-signature"],
        redact_signature(standard).as_str()
    );
    assert_eq!(headers["x-github-event"], "push");
    // Running it again changes nothing.
    c.batch_execute("DELETE FROM edgehook_migrations WHERE name = '0002_redact_signatures.sql'")
        .expect("forget");
    ok(&backfill(&url, &[&t], &[]));
    let again: String = c
        .query_one(
            "SELECT headers->>'x-hub-signature-256' FROM deliveries WHERE delivery_id = 'dlv_old'",
            &[],
        )
        .expect("row")
        .get(0);
    assert_eq!(again, redact_signature(sig));
}

/// How many migration files the backfill applies.
fn backfill_migrations() -> i64 {
    std::fs::read_dir(root().join("migrations"))
        .expect("migrations dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sql"))
        .count() as i64
}

#[test]
fn routes_their_runs_and_every_attempt_are_synced() {
    let capture = Capture::start();
    let tag = unique("bf-routes");
    let (ok_path, flaky_path) = (format!("/ok/{tag}"), format!("/flaky/1/{tag}"));
    let t = trigger(json!({"target_url": capture.url(&ok_path)}));
    let r = shared().admin(
        "POST",
        &format!("/api/triggers/{t}/routes"),
        Some(
            &json!({"name": "flaky", "target_url": capture.url(&flaky_path),
                     "retry_base_seconds": 1, "filter": {"body": {"i": {"$gte": 0}}}}),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let flaky_id = r.json()["id"].as_str().expect("id").to_string();
    for i in 0..2 {
        let body = format!(r#"{{"i":{i}}}"#);
        assert_eq!(send(&t, &unique("k"), body.as_bytes(), SECRET).status, 200);
    }
    settle(&t);
    let url = Pg::shared().fresh_database();
    let out = ok(&backfill(&url, &[&t], &[]));
    assert!(out.contains("2 routes"), "{out}");
    let mut c = db(&url);
    let routes: Vec<(String, String, Option<String>)> = c
        .query(
            "SELECT route_id, name, config->>'filter' FROM routes WHERE trigger_id = $1 ORDER BY name",
            &[&t],
        )
        .expect("routes")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0].1, "default");
    assert_eq!(routes[1].0, flaky_id);
    assert!(routes[1].2.as_deref().is_some_and(|f| f.contains("$gte")));

    // Every delivery has a run per route, and every attempt is there.
    let runs: i64 = c
        .query_one(
            "SELECT count(*) FROM runs WHERE trigger_id = $1 AND route_id IS NOT NULL",
            &[&t],
        )
        .expect("runs")
        .get(0);
    assert_eq!(runs, 4);
    let flaky: Vec<(i32, Option<i32>, Option<String>)> = c
        .query(
            "SELECT a.attempt, a.status_code, a.error FROM attempts a
             WHERE a.trigger_id = $1 AND a.route_id = $2 ORDER BY a.delivery_id, a.attempt",
            &[&t, &flaky_id],
        )
        .expect("attempts")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    // The flaky target fails the first request only, whichever delivery's
    // run that was (the consumer sends a batch's runs concurrently).
    let mut flaky = flaky;
    flaky.sort();
    assert_eq!(
        flaky,
        vec![
            (1, Some(200), None),
            (1, Some(500), Some("http_status".to_string())),
            (2, Some(200), None),
        ]
    );
    let api_attempts: usize = shared()
        .all_changes(&t)
        .iter()
        .flat_map(|c| c["runs"].as_array().cloned().unwrap_or_default())
        .map(|r| r["attempts"].as_array().map_or(0, Vec::len))
        .sum();
    let pg_attempts: i64 = c
        .query_one("SELECT count(*) FROM attempts WHERE trigger_id = $1", &[&t])
        .expect("count")
        .get(0);
    assert_eq!(pg_attempts as usize, api_attempts);

    // A second sync changes nothing; a deleted route is marked, not lost.
    let out = ok(&backfill(&url, &[&t], &[]));
    assert!(out.contains(" 0 rows"), "{out}");
    let del = shared().admin(
        "DELETE",
        &format!("/api/triggers/{t}/routes/{flaky_id}"),
        None,
    );
    assert_eq!(del.status, 204);
    ok(&backfill(&url, &[&t], &[]));
    let deleted: bool = c
        .query_one(
            "SELECT deleted_at IS NOT NULL FROM routes WHERE route_id = $1",
            &[&flaky_id],
        )
        .expect("route")
        .get(0);
    assert!(deleted);
}
