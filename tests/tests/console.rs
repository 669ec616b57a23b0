//! The operator console in a real browser: Debian's headless Chromium,
//! driven through chromedriver, against the real Worker under `wrangler
//! dev`. One edge and one browser session for the whole story, which signs
//! in, watches deliveries arrive live, opens one, replays it, bulk-replays,
//! pauses a route and rotates the secret, and checks throughout that no
//! secret reaches the page or a URL. Screenshots land in
//! `target/console-screenshots/` (with `EDGEHOOK_SCREENSHOTS=docs`, in
//! `docs/` for the README).

use std::time::Duration;

use edgehook_e2e::browser::Browser;
use edgehook_e2e::*;
use serde_json::json;

fn shot(browser: &Browser, name: &str) {
    let dir = match std::env::var("EDGEHOOK_SCREENSHOTS").as_deref() {
        Ok("docs") => root().join("docs"),
        _ => root().join("target/console-screenshots"),
    };
    browser.screenshot(&dir.join(format!("console-{name}.png")));
}

/// How many deliveries the trigger holds (up to 200).
fn stored(edge: &Edge, trigger: &str) -> usize {
    edge.admin(
        "GET",
        &format!("/api/triggers/{trigger}/deliveries?limit=200"),
        None,
    )
    .json()["deliveries"]
        .as_array()
        .map_or(0, Vec::len)
}

fn push(edge: &Edge, trigger: &str, secret: &str, n: usize, tag: &str) {
    for i in 0..n {
        let body = json!({"ref": "refs/heads/main", "n": i, "tag": tag}).to_string();
        let sig = github_signature(secret, body.as_bytes());
        let id = format!("{tag}-{i}");
        let r = edge.hook(
            trigger,
            &[
                ("x-hub-signature-256", &sig),
                ("x-github-event", "push"),
                ("x-github-delivery", &id),
                ("content-type", "application/json"),
            ],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

#[test]
fn the_console_is_served_with_a_strict_policy_and_no_inline_code() {
    let edge = shared();
    let page = edge.request("GET", "/console", &[], None);
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    // Every script is a file from this origin: no inline code, no CDN.
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(!page.body.contains("http://") && !page.body.contains("https://"));
    for (file, kind) in [("app.js", "text/javascript"), ("app.css", "text/css")] {
        let r = edge.request("GET", &format!("/console/{file}"), &[], None);
        assert_eq!(r.status, 200);
        assert!(r
            .header("content-type")
            .is_some_and(|t| t.starts_with(kind)));
        for sink in [
            "innerHTML =",
            "outerHTML =",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(
                !r.body.contains(sink),
                "{file} builds markup from data: {sink}"
            );
        }
    }
    assert_eq!(
        edge.request("GET", "/console/secrets.txt", &[], None)
            .status,
        404
    );
    // Revalidation is cheap: the page carries an ETag, and a client holding
    // that version gets a 304 with no body; any other version gets the page.
    let etag = page.header("etag").expect("an ETag").to_string();
    let held = edge.request("GET", "/console", &[("if-none-match", &etag)], None);
    assert_eq!(held.status, 304);
    assert!(held.body.is_empty());
    let weak = format!("W/{etag}");
    let held = edge.request("GET", "/console", &[("if-none-match", &weak)], None);
    assert_eq!(held.status, 304);
    let stale = edge.request("GET", "/console", &[("if-none-match", "\"other\"")], None);
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, page.body);
    // The page's path is not a route for any other method.
    assert_eq!(
        edge.request("POST", "/console", &[], Some(b"x")).status,
        404
    );
}

#[test]
fn an_operator_signs_in_watches_deliveries_arrive_and_replays_them() {
    let edge = shared();
    let capture = Capture::start();
    let browser = Browser::start();
    let console = format!("{}/console", edge.base);

    // A wrong token is refused with a message, and nothing is kept.
    browser.goto(&console);
    browser.type_into("#token", "adm_not-the-token");
    browser.click("#signin button[type=submit]");
    browser.wait_until("the refusal", |b| {
        b.text("#signin-message").contains("not accepted")
    });
    let kept = browser.exec("return sessionStorage.length", json!([]));
    assert_eq!(kept, json!(0));
    shot(&browser, "sign-in");

    // The right one opens the trigger list.
    browser.type_into("#token", &edge.admin_token);
    browser.click("#signin button[type=submit]");
    browser.find("#triggers");

    // A trigger made through the API, with a route to a capture target.
    let secret = "console-test-secret-0123456789";
    let t = edge.create_trigger(json!({
        "name": unique("console"),
        "provider": "github",
        "signing_secret": secret,
        "target_url": capture.url("/ok/console"),
    }));
    let id = t["id"].as_str().expect("id").to_string();
    // The list refreshes every 15 s; a reload shows it at once, and the
    // session (in this tab's sessionStorage) survives the reload.
    browser.goto(&console);
    browser.wait_until("the new trigger in the list", |b| {
        b.count(&format!("tr[data-trigger='{id}']")) == 1
    });
    shot(&browser, "triggers");

    // Deliveries appear live: no reload (a marker on the window survives).
    browser.click(&format!("tr[data-trigger='{id}'] a"));
    browser.find("#deliveries");
    browser.exec("window.__stillHere = 1", json!([]));
    push(edge, &id, secret, 3, &unique("live"));
    browser.wait_until("three deliveries", |b| b.count("#deliveries tbody tr") == 3);
    assert_eq!(
        browser.exec("return window.__stillHere", json!([])),
        json!(1)
    );
    capture.wait_for("/ok/console", 3, Duration::from_secs(60));
    browser.wait_until("delivered badges", |b| {
        b.count("#deliveries .s-delivered") == 3
    });
    browser.wait_until("the stats", |b| b.text("#latency").contains("3 received"));
    shot(&browser, "trigger");

    // A filter is kept while the list refreshes.
    browser.exec(
        "document.querySelector('#filter-status').value = 'failed'",
        json!([]),
    );
    browser.click("#filters button[type=submit]");
    browser.wait_until("the empty filtered list", |b| {
        b.url().contains("status=failed") && b.count("#deliveries tbody tr") == 0
    });
    push(edge, &id, secret, 1, &unique("filtered"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(browser.count("#deliveries tbody tr"), 0, "the filter held");
    browser.goto(&format!("{console}#/t/{id}"));
    browser.wait_until("four deliveries", |b| b.count("#deliveries tbody tr") == 4);

    // One delivery: body, stored headers, the run's attempt timeline.
    browser.click("#deliveries tbody tr:last-child a");
    browser.find("#body");
    assert!(
        browser
            .text("#body")
            .contains("\"ref\": \"refs/heads/main\""),
        "pretty JSON"
    );
    let headers = browser.text("#headers");
    assert!(headers.contains("[redacted fp="), "{headers}");
    browser.wait_until("an attempt with HTTP 200", |b| {
        b.text(".timeline").contains("HTTP 200")
    });
    shot(&browser, "delivery");

    // Replay it: the answer links to the new delivery.
    browser.click("#replay");
    browser.find("#replay-link");
    let new_id = browser.text("#replay-link");
    assert!(new_id.starts_with("dlv_"), "{new_id}");
    browser.click("#replay-link");
    browser.wait_until("the replay's page", |b| {
        b.text("main").contains("Replay of")
    });
    let replay = edge.delivery(&id, &new_id);
    assert!(replay["replayed_from"].is_string(), "{replay}");

    // Bulk replay: a preview first, then the replays, each linked.
    browser.goto(&format!("{console}#/t/{id}"));
    browser.find("#bulk");
    browser.exec(
        "document.querySelector('#bulk-status').value = 'delivered'",
        json!([]),
    );
    browser.click("#bulk button[type=submit]");
    browser.find("#bulk-preview");
    let preview = browser.text("#bulk-preview");
    assert!(preview.contains("would be replayed"), "{preview}");
    let before = stored(edge, &id);
    browser.click("#bulk-confirm");
    browser.find("#bulk-replayed");
    let replayed = browser.count("#bulk-replayed li");
    assert!(replayed >= 3, "{replayed} replayed");
    assert!(
        preview.starts_with(&format!("{replayed} deliveries")),
        "{preview} vs {replayed}"
    );
    let after = stored(edge, &id);
    assert_eq!(after, before + replayed);

    // Pause and resume the route.
    browser.click("#routes button.pause");
    browser.wait_until("a paused route", |b| b.count("#routes button.resume") == 1);
    let routes = edge
        .admin("GET", &format!("/api/triggers/{id}/routes"), None)
        .json();
    assert!(routes["routes"][0]["paused_at"].is_string(), "{routes}");
    browser.click("#routes button.resume");
    browser.wait_until("a resumed route", |b| b.count("#routes button.pause") == 1);

    // Rotate the secret: write-only, only its hint comes back.
    let new_secret = "console-rotated-secret-9876543210";
    register_secret(new_secret);
    browser.type_into("#new-secret", new_secret);
    browser.click("#rotate button[type=submit]");
    browser.wait_until("the new hint", |b| b.text("#secret-hint").contains("3210"));
    assert_eq!(
        browser.exec(
            "return document.querySelector('#new-secret').value",
            json!([])
        ),
        json!("")
    );
    push(edge, &id, new_secret, 1, &unique("rotated"));
    shot(&browser, "trigger-actions");

    // No secret anywhere: not in the page, not in any URL, no cookie.
    let html = browser.html();
    for s in [edge.admin_token.as_str(), secret, new_secret] {
        assert!(!html.contains(s), "a secret is in the page");
        for url in browser.requested_urls() {
            assert!(!url.contains(s), "a secret is in {url}");
        }
    }
    assert_eq!(browser.exec("return document.cookie", json!([])), json!(""));

    // Signing out forgets the token.
    browser.click("#sign-out");
    browser.find("#signin");
    assert_eq!(
        browser.exec("return sessionStorage.length", json!([])),
        json!(0)
    );
}

#[test]
fn markup_in_a_delivery_is_shown_as_text_never_run() {
    let edge = shared();
    let browser = Browser::start();
    let secret = "console-xss-secret-0123456789";
    let t = edge.create_trigger(json!({
        "name": "<img src=x onerror=window.__pwned=1>",
        "provider": "github",
        "signing_secret": secret,
    }));
    let id = t["id"].as_str().expect("id").to_string();
    let payload = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=1</script>";
    let body = json!({"html": payload}).to_string();
    let sig = github_signature(secret, body.as_bytes());
    let r = edge.hook(
        &id,
        &[
            ("x-hub-signature-256", &sig),
            ("x-github-event", "<b onmouseover=window.__pwned=1>push</b>"),
            ("x-github-delivery", &unique("xss")),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let delivery = r.json()["delivery_id"].as_str().expect("id").to_string();

    browser.goto(&format!("{}/console", edge.base));
    browser.type_into("#token", &edge.admin_token);
    browser.click("#signin button[type=submit]");
    browser.find(&format!("tr[data-trigger='{id}']"));
    browser.goto(&format!("{}/console#/t/{id}/d/{delivery}", edge.base));
    browser.find("#body");
    std::thread::sleep(Duration::from_millis(500));
    // The payload is on the page as text, and none of it became an element.
    assert!(browser
        .text("#body")
        .contains("<script>window.__pwned=1</script>"));
    assert!(browser.text("main").contains("<b onmouseover"));
    assert_eq!(browser.count("main img, main script, main b"), 0);
    assert_eq!(
        browser.exec("return window.__pwned === undefined", json!([])),
        json!(true)
    );
    browser.goto(&format!("{}/console#/", edge.base));
    browser.find(&format!("tr[data-trigger='{id}']"));
    assert_eq!(browser.count("#triggers img"), 0);
    assert_eq!(
        browser.exec("return window.__pwned === undefined", json!([])),
        json!(true)
    );
}
