//! The filter language's table of cases: every operator, the nesting and
//! array rules, type mismatches, missing keys, and the validation errors.

use serde_json::{json, Value};

use super::*;

/// A GitHub-like delivery body most cases match against.
fn body() -> Value {
    json!({
        "action": "opened",
        "number": 42,
        "ratio": 0.5,
        "draft": false,
        "merged_at": null,
        "created_at": "2026-11-23T10:00:00Z",
        "labels": ["bug", "p1"],
        "counts": [1, 5, 9],
        "pull_request": {
            "title": "Fix the flux capacitor",
            "user": {"login": "octocat", "id": 1},
            "head": {"ref": "feature/flux"}
        },
        "commits": [
            {"id": "a1", "author": {"name": "ann"}, "added": 3},
            {"id": "b2", "author": {"name": "bob"}, "added": 0}
        ],
        "repository": {"full_name": "acme/rocket", "private": true}
    })
}

fn input() -> FilterInput {
    let headers = HeaderList::from_pairs([
        ("Content-Type", "application/json"),
        ("X-GitHub-Event", "pull_request"),
        ("x-multi", "a"),
        ("x-multi", "b"),
    ]);
    FilterInput::new(
        &headers,
        body().to_string().as_bytes(),
        "/hooks/trg_x?env=prod&team=core",
    )
}

/// (case name, filter, expected match)
const CASES: &[(&str, &str, bool)] = &[
    // Plain equality and partial nested matching.
    ("string eq", r#"{"body":{"action":"opened"}}"#, true),
    ("string ne", r#"{"body":{"action":"closed"}}"#, false),
    ("number eq", r#"{"body":{"number":42}}"#, true),
    ("number eq as float", r#"{"body":{"number":42.0}}"#, true),
    ("number ne", r#"{"body":{"number":43}}"#, false),
    ("bool eq", r#"{"body":{"draft":false}}"#, true),
    ("bool ne", r#"{"body":{"draft":true}}"#, false),
    ("null eq", r#"{"body":{"merged_at":null}}"#, true),
    ("null is not missing", r#"{"body":{"nope":null}}"#, false),
    (
        "nested partial",
        r#"{"body":{"pull_request":{"user":{"login":"octocat"}}}}"#,
        true,
    ),
    (
        "nested partial miss",
        r#"{"body":{"pull_request":{"user":{"login":"hubot"}}}}"#,
        false,
    ),
    (
        "two keys both",
        r#"{"body":{"action":"opened","number":42}}"#,
        true,
    ),
    (
        "two keys one wrong",
        r#"{"body":{"action":"opened","number":1}}"#,
        false,
    ),
    (
        "empty object matches present",
        r#"{"body":{"pull_request":{}}}"#,
        true,
    ),
    ("empty object missing", r#"{"body":{"nope":{}}}"#, false),
    ("empty filter", r#"{}"#, true),
    ("empty body section", r#"{"body":{}}"#, true),
    // Type mismatches never match.
    ("string vs number", r#"{"body":{"number":"42"}}"#, false),
    ("number vs string", r#"{"body":{"action":1}}"#, false),
    ("bool vs string", r#"{"body":{"action":true}}"#, false),
    ("object vs scalar", r#"{"body":{"action":{"x":1}}}"#, false),
    ("field of a scalar", r#"{"body":{"number":{"x":1}}}"#, false),
    (
        "scalar vs object",
        r#"{"body":{"pull_request":"x"}}"#,
        false,
    ),
    ("null vs value", r#"{"body":{"action":null}}"#, false),
    // Missing keys.
    ("missing key", r#"{"body":{"nope":"x"}}"#, false),
    (
        "missing nested",
        r#"{"body":{"pull_request":{"nope":{"deeper":1}}}}"#,
        false,
    ),
    (
        "missing with neq",
        r#"{"body":{"nope":{"$neq":"x"}}}"#,
        false,
    ),
    (
        "missing with nin",
        r#"{"body":{"nope":{"$nin":["x"]}}}"#,
        false,
    ),
    (
        "missing with not",
        r#"{"body":{"nope":{"$not":{"$eq":"x"}}}}"#,
        false,
    ),
    ("missing with gt", r#"{"body":{"nope":{"$gt":0}}}"#, false),
    (
        "missing exist false",
        r#"{"body":{"nope":{"$exist":false}}}"#,
        true,
    ),
    (
        "missing exist true",
        r#"{"body":{"nope":{"$exist":true}}}"#,
        false,
    ),
    (
        "missing parent exist false",
        r#"{"body":{"nope":{"deeper":{"$exist":false}}}}"#,
        true,
    ),
    (
        "missing or of exist false",
        r#"{"body":{"nope":{"$or":[{"$exist":false},{"$eq":1}]}}}"#,
        true,
    ),
    (
        "missing and of exist false",
        r#"{"body":{"nope":{"$and":[{"$exist":false},{"$eq":1}]}}}"#,
        false,
    ),
    (
        "present exist true",
        r#"{"body":{"action":{"$exist":true}}}"#,
        true,
    ),
    (
        "present exist false",
        r#"{"body":{"action":{"$exist":false}}}"#,
        false,
    ),
    (
        "null exists",
        r#"{"body":{"merged_at":{"$exist":true}}}"#,
        true,
    ),
    // Arrays.
    ("scalar in array", r#"{"body":{"labels":"bug"}}"#, true),
    (
        "scalar not in array",
        r#"{"body":{"labels":"wontfix"}}"#,
        false,
    ),
    ("number in array", r#"{"body":{"counts":5}}"#, true),
    ("array subset", r#"{"body":{"labels":["p1"]}}"#, true),
    (
        "array subset both",
        r#"{"body":{"labels":["p1","bug"]}}"#,
        true,
    ),
    (
        "array not subset",
        r#"{"body":{"labels":["p1","p2"]}}"#,
        false,
    ),
    (
        "array vs scalar",
        r#"{"body":{"action":["opened"]}}"#,
        false,
    ),
    (
        "object in array of objects",
        r#"{"body":{"commits":{"author":{"name":"bob"}}}}"#,
        true,
    ),
    (
        "object not in array",
        r#"{"body":{"commits":{"author":{"name":"cat"}}}}"#,
        false,
    ),
    (
        "same element must match all",
        r#"{"body":{"commits":{"id":"a1","added":0}}}"#,
        false,
    ),
    (
        "array of objects subset",
        r#"{"body":{"commits":[{"id":"b2"}]}}"#,
        true,
    ),
    ("empty array filter", r#"{"body":{"labels":[]}}"#, true),
    (
        "eq whole array",
        r#"{"body":{"labels":{"$eq":["bug","p1"]}}}"#,
        true,
    ),
    (
        "eq array order matters",
        r#"{"body":{"labels":{"$eq":["p1","bug"]}}}"#,
        false,
    ),
    (
        "eq scalar in array",
        r#"{"body":{"labels":{"$eq":"p1"}}}"#,
        true,
    ),
    (
        "neq scalar in array",
        r#"{"body":{"labels":{"$neq":"p1"}}}"#,
        false,
    ),
    (
        "neq scalar not in array",
        r#"{"body":{"labels":{"$neq":"p9"}}}"#,
        true,
    ),
    ("gt any element", r#"{"body":{"counts":{"$gt":8}}}"#, true),
    ("gt no element", r#"{"body":{"counts":{"$gt":9}}}"#, false),
    (
        "in with array input",
        r#"{"body":{"labels":{"$in":["p1","p9"]}}}"#,
        true,
    ),
    (
        "in with array input none",
        r#"{"body":{"labels":{"$in":["p8","p9"]}}}"#,
        false,
    ),
    (
        "nin with array input",
        r#"{"body":{"labels":{"$nin":["p8","p9"]}}}"#,
        true,
    ),
    (
        "nin with array input hit",
        r#"{"body":{"labels":{"$nin":["bug"]}}}"#,
        false,
    ),
    (
        "startsWith array",
        r#"{"body":{"labels":{"$startsWith":"b"}}}"#,
        true,
    ),
    // $eq / $neq.
    ("eq string", r#"{"body":{"action":{"$eq":"opened"}}}"#, true),
    (
        "eq string miss",
        r#"{"body":{"action":{"$eq":"closed"}}}"#,
        false,
    ),
    ("eq number float", r#"{"body":{"ratio":{"$eq":0.5}}}"#, true),
    (
        "eq object exact",
        r#"{"body":{"repository":{"$eq":{"full_name":"acme/rocket","private":true}}}}"#,
        true,
    ),
    (
        "eq object not partial",
        r#"{"body":{"repository":{"$eq":{"full_name":"acme/rocket"}}}}"#,
        false,
    ),
    ("eq null", r#"{"body":{"merged_at":{"$eq":null}}}"#, true),
    (
        "neq string",
        r#"{"body":{"action":{"$neq":"closed"}}}"#,
        true,
    ),
    (
        "neq string same",
        r#"{"body":{"action":{"$neq":"opened"}}}"#,
        false,
    ),
    (
        "neq type mismatch",
        r#"{"body":{"number":{"$neq":"42"}}}"#,
        true,
    ),
    ("neq null", r#"{"body":{"merged_at":{"$neq":null}}}"#, false),
    // Comparisons.
    ("gt number", r#"{"body":{"number":{"$gt":41}}}"#, true),
    (
        "gt number equal",
        r#"{"body":{"number":{"$gt":42}}}"#,
        false,
    ),
    (
        "gte number equal",
        r#"{"body":{"number":{"$gte":42}}}"#,
        true,
    ),
    ("lt number", r#"{"body":{"number":{"$lt":43}}}"#, true),
    (
        "lt number equal",
        r#"{"body":{"number":{"$lt":42}}}"#,
        false,
    ),
    (
        "lte number equal",
        r#"{"body":{"number":{"$lte":42}}}"#,
        true,
    ),
    ("gt float", r#"{"body":{"ratio":{"$gt":0.25}}}"#, true),
    ("lt float vs int", r#"{"body":{"ratio":{"$lt":1}}}"#, true),
    (
        "numeric not lexicographic",
        r#"{"body":{"number":{"$gt":9}}}"#,
        true,
    ),
    ("range", r#"{"body":{"number":{"$gte":40,"$lt":50}}}"#, true),
    (
        "range miss",
        r#"{"body":{"number":{"$gte":43,"$lt":50}}}"#,
        false,
    ),
    (
        "rfc3339 gt",
        r#"{"body":{"created_at":{"$gt":"2026-11-23T09:59:59Z"}}}"#,
        true,
    ),
    (
        "rfc3339 lt",
        r#"{"body":{"created_at":{"$lt":"2026-11-23T09:59:59Z"}}}"#,
        false,
    ),
    (
        "rfc3339 window",
        r#"{"body":{"created_at":{"$gte":"2026-11-01T00:00:00Z","$lt":"2026-12-01T00:00:00Z"}}}"#,
        true,
    ),
    ("string gt", r#"{"body":{"action":{"$gt":"a"}}}"#, true),
    ("string lt", r#"{"body":{"action":{"$lt":"a"}}}"#, false),
    (
        "gt string vs number input",
        r#"{"body":{"action":{"$gt":1}}}"#,
        false,
    ),
    (
        "gt number vs string input",
        r#"{"body":{"number":{"$gt":"1"}}}"#,
        false,
    ),
    ("gt on bool", r#"{"body":{"draft":{"$gt":0}}}"#, false),
    ("gt on null", r#"{"body":{"merged_at":{"$gt":0}}}"#, false),
    (
        "gt on object",
        r#"{"body":{"pull_request":{"$gt":0}}}"#,
        false,
    ),
    // $in / $nin.
    (
        "in string",
        r#"{"body":{"action":{"$in":["opened","reopened"]}}}"#,
        true,
    ),
    (
        "in string miss",
        r#"{"body":{"action":{"$in":["closed"]}}}"#,
        false,
    ),
    ("in number", r#"{"body":{"number":{"$in":[1,42]}}}"#, true),
    (
        "in number as float",
        r#"{"body":{"number":{"$in":[42.0]}}}"#,
        true,
    ),
    (
        "in type mismatch",
        r#"{"body":{"number":{"$in":["42"]}}}"#,
        false,
    ),
    ("in empty", r#"{"body":{"action":{"$in":[]}}}"#, false),
    ("in null", r#"{"body":{"merged_at":{"$in":[null]}}}"#, true),
    (
        "nin string",
        r#"{"body":{"action":{"$nin":["closed"]}}}"#,
        true,
    ),
    (
        "nin string hit",
        r#"{"body":{"action":{"$nin":["opened"]}}}"#,
        false,
    ),
    ("nin empty", r#"{"body":{"action":{"$nin":[]}}}"#, true),
    // $startsWith / $endsWith.
    (
        "startsWith",
        r#"{"body":{"repository":{"full_name":{"$startsWith":"acme/"}}}}"#,
        true,
    ),
    (
        "startsWith miss",
        r#"{"body":{"repository":{"full_name":{"$startsWith":"other/"}}}}"#,
        false,
    ),
    (
        "startsWith empty",
        r#"{"body":{"action":{"$startsWith":""}}}"#,
        true,
    ),
    (
        "startsWith case",
        r#"{"body":{"action":{"$startsWith":"Open"}}}"#,
        false,
    ),
    (
        "endsWith",
        r#"{"body":{"pull_request":{"head":{"ref":{"$endsWith":"/flux"}}}}}"#,
        true,
    ),
    (
        "endsWith miss",
        r#"{"body":{"action":{"$endsWith":"closed"}}}"#,
        false,
    ),
    (
        "startsWith on number",
        r#"{"body":{"number":{"$startsWith":"4"}}}"#,
        false,
    ),
    (
        "endsWith on null",
        r#"{"body":{"merged_at":{"$endsWith":""}}}"#,
        false,
    ),
    // $and / $or / $not.
    (
        "and both",
        r#"{"body":{"$and":[{"action":"opened"},{"number":42}]}}"#,
        true,
    ),
    (
        "and one",
        r#"{"body":{"$and":[{"action":"opened"},{"number":1}]}}"#,
        false,
    ),
    (
        "or one",
        r#"{"body":{"$or":[{"action":"closed"},{"number":42}]}}"#,
        true,
    ),
    (
        "or none",
        r#"{"body":{"$or":[{"action":"closed"},{"number":1}]}}"#,
        false,
    ),
    (
        "or on field",
        r#"{"body":{"action":{"$or":[{"$eq":"closed"},{"$startsWith":"op"}]}}}"#,
        true,
    ),
    (
        "not",
        r#"{"body":{"action":{"$not":{"$eq":"closed"}}}}"#,
        true,
    ),
    (
        "not hit",
        r#"{"body":{"action":{"$not":{"$eq":"opened"}}}}"#,
        false,
    ),
    (
        "not literal",
        r#"{"body":{"action":{"$not":"closed"}}}"#,
        true,
    ),
    ("not object", r#"{"body":{"$not":{"draft":true}}}"#, true),
    (
        "not of in",
        r#"{"body":{"number":{"$not":{"$in":[1,2]}}}}"#,
        true,
    ),
    (
        "nested or and not",
        r#"{"body":{"$or":[{"$and":[{"action":"opened"},{"$not":{"draft":true}}]},{"number":0}]}}"#,
        true,
    ),
    (
        "nested and or miss",
        r#"{"body":{"$and":[{"$or":[{"action":"closed"},{"action":"merged"}]},{"number":42}]}}"#,
        false,
    ),
    (
        "fields and operators mixed",
        r#"{"body":{"action":"opened","$or":[{"number":1},{"ratio":0.5}]}}"#,
        true,
    ),
    // Sections other than the body.
    (
        "header",
        r#"{"headers":{"x-github-event":"pull_request"}}"#,
        true,
    ),
    (
        "header name case",
        r#"{"headers":{"X-GitHub-Event":"pull_request"}}"#,
        true,
    ),
    (
        "header miss",
        r#"{"headers":{"x-github-event":"push"}}"#,
        false,
    ),
    (
        "header missing",
        r#"{"headers":{"x-nope":{"$exist":true}}}"#,
        false,
    ),
    (
        "header repeated joined",
        r#"{"headers":{"x-multi":"a, b"}}"#,
        true,
    ),
    (
        "header startsWith",
        r#"{"headers":{"content-type":{"$startsWith":"application/"}}}"#,
        true,
    ),
    (
        "header in an or",
        r#"{"headers":{"$or":[{"X-GitHub-Event":"push"},{"x-github-event":"pull_request"}]}}"#,
        true,
    ),
    ("query", r#"{"query":{"env":"prod"}}"#, true),
    ("query miss", r#"{"query":{"env":"staging"}}"#, false),
    (
        "query two",
        r#"{"query":{"env":"prod","team":{"$in":["core","web"]}}}"#,
        true,
    ),
    ("query missing", r#"{"query":{"region":"eu"}}"#, false),
    ("path", r#"{"path":{"$startsWith":"/hooks/"}}"#, true),
    ("path eq", r#"{"path":"/hooks/trg_x"}"#, true),
    ("path miss", r#"{"path":{"$endsWith":"/other"}}"#, false),
    (
        "all sections",
        r#"{"body":{"action":"opened"},"headers":{"x-github-event":"pull_request"},"query":{"env":"prod"},"path":{"$startsWith":"/hooks"}}"#,
        true,
    ),
    (
        "all sections one miss",
        r#"{"body":{"action":"opened"},"headers":{"x-github-event":"push"}}"#,
        false,
    ),
    // Whole-section forms.
    ("body as scalar vs object", r#"{"body":"opened"}"#, false),
    ("body exist", r#"{"body":{"$exist":true}}"#, true),
];

#[test]
fn the_table_of_cases() {
    let input = input();
    let mut failures = Vec::new();
    for (name, filter, expected) in CASES {
        let v: Value = serde_json::from_str(filter).unwrap_or_else(|e| panic!("{name}: {e}"));
        let f = Filter::parse(&v).unwrap_or_else(|e| panic!("{name}: {e}"));
        if f.matches(&input) != *expected {
            failures.push(*name);
        }
    }
    assert!(failures.is_empty(), "cases that failed: {failures:?}");
    assert!(CASES.len() >= 140, "{} cases", CASES.len());
}

/// Bodies other than JSON objects.
#[test]
fn bodies_of_every_kind() {
    let plain = |ct: &str, body: &[u8]| {
        FilterInput::new(
            &HeaderList::from_pairs([("content-type", ct)]),
            body,
            "/hooks/t",
        )
    };
    let f = |v: Value| Filter::parse(&v).expect("valid");
    // A form body is an object of its fields; a JSON field is matched as JSON.
    let form = plain(
        "application/x-www-form-urlencoded",
        b"command=%2Fdeploy&text=prod&payload=%7B%22type%22%3A%22block_actions%22%7D",
    );
    assert!(f(json!({"body": {"command": "/deploy", "text": "prod"}})).matches(&form));
    assert!(f(json!({"body": {"payload": {"type": "block_actions"}}})).matches(&form));
    // Plain text is a string.
    let text = plain("text/plain", b"hello world");
    assert!(f(json!({"body": {"$startsWith": "hello"}})).matches(&text));
    assert!(!f(json!({"body": {"hello": {"$exist": true}}})).matches(&text));
    // A binary body is missing: only `$exist: false` matches it.
    let binary = plain("application/octet-stream", &[0xff, 0xfe, 0x00]);
    assert!(!f(json!({"body": {"$exist": true}})).matches(&binary));
    assert!(f(json!({"body": {"$exist": false}})).matches(&binary));
    assert!(f(json!({"headers": {"content-type": "application/octet-stream"}})).matches(&binary));
    // A top-level JSON array or scalar body.
    let array = plain("application/json", br#"[{"kind":"a"},{"kind":"b"}]"#);
    assert!(f(json!({"body": {"kind": "b"}})).matches(&array));
    assert!(!f(json!({"body": {"kind": "c"}})).matches(&array));
    let scalar = plain("application/json", b"7");
    assert!(f(json!({"body": {"$gte": 7}})).matches(&scalar));
}

/// (filter, the field the error names)
const INVALID: &[(&str, &str)] = &[
    (r#"[]"#, "filter"),
    (r#""body""#, "filter"),
    (r#"null"#, "filter"),
    (r#"{"bdy":{}}"#, "filter.bdy"),
    (
        r#"{"body":{"action":{"$regex":"x"}}}"#,
        "filter.body.action.$regex",
    ),
    (r#"{"body":{"$foo":1}}"#, "filter.body.$foo"),
    (r#"{"body":{"a":{"$gt":true}}}"#, "filter.body.a.$gt"),
    (r#"{"body":{"a":{"$lte":{"x":1}}}}"#, "filter.body.a.$lte"),
    (r#"{"body":{"a":{"$in":"x"}}}"#, "filter.body.a.$in"),
    (r#"{"body":{"a":{"$nin":[{"x":1}]}}}"#, "filter.body.a.$nin"),
    (
        r#"{"body":{"a":{"$startsWith":1}}}"#,
        "filter.body.a.$startsWith",
    ),
    (
        r#"{"body":{"a":{"$endsWith":null}}}"#,
        "filter.body.a.$endsWith",
    ),
    (r#"{"body":{"a":{"$exist":"yes"}}}"#, "filter.body.a.$exist"),
    (r#"{"body":{"$and":[]}}"#, "filter.body.$and"),
    (r#"{"body":{"$or":{"a":1}}}"#, "filter.body.$or"),
    (
        r#"{"body":{"$or":[{"a":{"$bad":1}}]}}"#,
        "filter.body.$or[0].a.$bad",
    ),
    (r#"{"body":{"a":[1,{"$x":2}]}}"#, "filter.body.a[1].$x"),
    (
        r#"{"headers":{"x":{"$not":{"$y":1}}}}"#,
        "filter.headers.x.$not.$y",
    ),
];

#[test]
fn invalid_filters_name_the_field() {
    for (filter, field) in INVALID {
        let v: Value = serde_json::from_str(filter).expect("json");
        let e = Filter::parse(&v).expect_err(filter);
        assert_eq!(e.field, *field, "{filter}: {}", e.message);
        assert!(!e.message.is_empty());
    }
}

#[test]
fn depth_nodes_and_size_are_bounded() {
    // Depth: the body section is level 1.
    let mut deep = json!("x");
    for _ in 0..MAX_FILTER_DEPTH - 1 {
        deep = json!({ "a": deep });
    }
    assert!(
        Filter::parse(&json!({ "body": deep.clone() })).is_ok(),
        "at the limit"
    );
    let too_deep = json!({ "body": {"a": deep} });
    let e = Filter::parse(&too_deep).expect_err("too deep");
    assert!(e.field.starts_with("filter.body.a.a"), "{}", e.field);
    assert!(e.message.contains("deeper"), "{}", e.message);

    // Nodes: a long `$in` list counts each value.
    let many: Vec<u32> = (0..MAX_FILTER_NODES as u32).collect();
    let e = Filter::parse(&json!({"body": {"a": {"$in": many}}})).expect_err("too many");
    assert_eq!(e.field, "filter.body.a.$in");
    assert!(e.message.contains("values"), "{}", e.message);

    // Bytes: one long string is over the size limit.
    let long = "x".repeat(MAX_FILTER_BYTES);
    let e = Filter::parse(&json!({"body": {"a": long}})).expect_err("too large");
    assert_eq!(e.field, "filter");
}

#[test]
fn a_filter_round_trips_as_the_json_it_was_given() {
    let v = json!({"body": {"action": {"$in": ["opened"]}}, "headers": {"X-A": "1"}});
    let f = Filter::parse(&v).expect("valid");
    assert_eq!(serde_json::to_value(&f).expect("ser"), v);
    let back: Filter = serde_json::from_value(v.clone()).expect("de");
    assert_eq!(back, f);
    assert!(serde_json::from_value::<Filter>(json!({"body": {"$x": 1}})).is_err());
    assert!(f.reads_body());
    assert!(!Filter::parse(&json!({"headers": {}}))
        .expect("ok")
        .reads_body());
}

/// Hostile input never panics and stays bounded: a deep body, huge arrays.
#[test]
fn evaluation_is_total() {
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!([deep]);
    }
    let f = Filter::parse(&json!({"body": {"a": {"b": {"$gt": 0}}}})).expect("ok");
    let input = FilterInput::new(
        &HeaderList::new(),
        json!({"a": deep}).to_string().as_bytes(),
        "",
    );
    assert!(!f.matches(&input));
    let wide: Vec<u32> = (0..100_000).collect();
    let input = FilterInput::new(
        &HeaderList::new(),
        json!({"a": {"b": wide}}).to_string().as_bytes(),
        "",
    );
    assert!(f.matches(&input));
}

#[test]
fn secret_looking_query_values_are_redacted() {
    let q = redact_query("env=prod&token=abc123&api_key=k&X-Signature=s&team=a%20b");
    assert!(
        !q.contains("abc123") && !q.contains("=k&") && !q.contains("=s&"),
        "{q}"
    );
    assert!(q.contains("env=prod") && q.contains("team=a+b"), "{q}");
    let input = FilterInput::new(&HeaderList::new(), b"", &format!("/hooks/t?{q}"));
    let f = Filter::parse(&json!({"query": {"env": "prod", "team": "a b"}})).expect("ok");
    assert!(f.matches(&input));
}
