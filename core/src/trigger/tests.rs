//! Trigger configuration: creation, patches, validation, rotation.

use super::*;
use crate::weburl::{ParsedUrl, UrlCrate};

fn create(json: serde_json::Value) -> Result<TriggerConfig, ConfigError> {
    let req: TriggerCreate =
        serde_json::from_value(json).map_err(|e| ConfigError::new("body", e.to_string()))?;
    TriggerConfig::create("trg_x".into(), req, Timestamp(1000), &UrlCrate)
}

#[test]
fn defaults() {
    let t = create(serde_json::json!({"name": "gh", "provider": "github"})).expect("valid");
    assert!(t.enabled);
    assert_eq!(t.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    assert_eq!(t.tolerance_seconds, 300);
    assert_eq!(t.retention_days, 30);
    assert!(t.signing_secret.is_none());
}

#[test]
fn validation_names_the_field() {
    let bad = [
        (
            serde_json::json!({"name": "", "provider": "github"}),
            "name",
        ),
        (
            serde_json::json!({"name": "x", "provider": "gitea"}),
            "provider",
        ),
        (
            serde_json::json!({"name": "x", "provider": "github", "target_url": "ftp://x"}),
            "target_url",
        ),
        (
            serde_json::json!({"name": "x", "provider": "github", "target_url": "not a url"}),
            "target_url",
        ),
        (
            serde_json::json!({"name": "x", "provider": "github", "max_body_bytes": 0}),
            "max_body_bytes",
        ),
        (
            serde_json::json!({"name": "x", "provider": "github", "max_body_bytes": MAX_BODY_BYTES_LIMIT + 1}),
            "max_body_bytes",
        ),
        (
            serde_json::json!({"name": "x", "provider": "github", "tolerance_seconds": 0}),
            "tolerance_seconds",
        ),
        (
            serde_json::json!({"name": "x", "provider": "standard", "signing_secret": "whsec_***"}),
            "signing_secret",
        ),
        (
            serde_json::json!({"name": "x", "provider": "basic", "signing_secret": "pw"}),
            "basic_username",
        ),
        (
            serde_json::json!({"name": "x", "provider": "generic", "signature_header": "bad header"}),
            "signature_header",
        ),
        (
            serde_json::json!({"name": "x", "provider": "generic", "dedupe_json_pointer": "id"}),
            "dedupe_json_pointer",
        ),
    ];
    for (json, field) in bad {
        let err = create(json.clone()).expect_err(&json.to_string());
        assert_eq!(err.field, field, "{json}");
    }
    assert!(
        create(serde_json::json!({"name": "x", "provider": "github", "colour": "red"})).is_err()
    );
}

#[test]
fn patch_is_all_or_nothing_and_null_clears() {
    let mut t = create(serde_json::json!({"name": "x", "provider": "github", "target_url": "https://example.com/h"})).expect("valid");
    let before = t.clone();
    let patch: TriggerPatch =
        serde_json::from_value(serde_json::json!({"enabled": false, "max_attempts": 0}))
            .expect("parse");
    assert!(t.apply(patch, Timestamp(2000), &UrlCrate).is_err());
    assert_eq!(t, before);
    let patch: TriggerPatch =
        serde_json::from_value(serde_json::json!({"target_url": null, "enabled": false}))
            .expect("parse");
    t.apply(patch, Timestamp(2000), &UrlCrate).expect("valid");
    assert_eq!(t.target_url, None);
    assert!(!t.enabled);
    assert_eq!(t.updated_at, Timestamp(2000));
}

#[test]
fn secrets_have_a_minimum_length_per_provider() {
    for provider in [
        "github", "stripe", "slack", "shopify", "gitlab", "linear", "generic", "api_key",
    ] {
        for short in ["x", "0123456789abcde"] {
            let err = create(
                serde_json::json!({"name": "x", "provider": provider, "signing_secret": short}),
            )
            .expect_err("short secret");
            assert_eq!(err.field, "signing_secret", "{provider}");
        }
        create(serde_json::json!({"name": "x", "provider": provider, "signing_secret": "0123456789abcdef"}))
            .expect("16 bytes is enough");
    }
    // Standard Webhooks: the decoded key counts. "AAAA" is 3 bytes.
    let err = create(
        serde_json::json!({"name": "x", "provider": "standard", "signing_secret": "whsec_AAAA"}),
    )
    .expect_err("short key");
    assert_eq!(err.field, "signing_secret");
    create(serde_json::json!({"name": "x", "provider": "standard", "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))
        .expect("the spec's 24-byte key");
}

#[test]
fn rotation_keeps_previous_for_the_grace_period() {
    let mut t = create(
        serde_json::json!({"name": "x", "provider": "github", "signing_secret": "old-secret-0123456789"}),
    )
    .expect("valid");
    t.rotate_secret("new-secret-0123456789", 60, Timestamp::from_secs(100))
        .expect("rotate");
    let during = t.secrets_at(Timestamp::from_secs(159));
    assert_eq!(
        during.current.map(Secret::expose),
        Some("new-secret-0123456789")
    );
    assert_eq!(
        during.previous.map(Secret::expose),
        Some("old-secret-0123456789")
    );
    let after = t.secrets_at(Timestamp::from_secs(160));
    assert!(after.previous.is_none());
    t.rotate_secret("newer-secret-0123456789", 0, Timestamp::from_secs(200))
        .expect("rotate");
    assert!(t.previous_secret.is_none());
}

#[test]
fn target_urls_are_checked_and_given_as_the_parser_serializes_them() {
    let check = |raw: &str| check_target_url(raw, &UrlCrate);
    assert_eq!(
        check("HTTPS://EXAMPLE.com:443/a/./b").as_deref(),
        Ok("https://example.com/a/b")
    );
    assert_eq!(
        check("https://xn--bcher-kva.example/hook").as_deref(),
        Ok("https://xn--bcher-kva.example/hook")
    );
    for (raw, says) in [
        ("not a url", "absolute URL"),
        ("/relative", "absolute URL"),
        ("ftp://example.com/x", "http or https"),
        ("mailto:a@example.com", "http or https"),
        ("https://example.com/a#frag", "fragment"),
        ("https://example.com/a#", "fragment"),
    ] {
        let err = check(raw).expect_err(raw);
        assert_eq!(err.field, "target_url");
        assert!(err.message.contains(says), "{raw}: {}", err.message);
    }
    let long = format!("https://example.com/{}", "a".repeat(2048));
    assert!(check(&long).is_err());
}

/// A parser that answers what it is told: the checks read only its answer.
struct Answers(Option<ParsedUrl>);

impl UrlParser for Answers {
    fn parse(&self, _: &str) -> Option<ParsedUrl> {
        self.0.clone()
    }
}

#[test]
fn target_checks_read_the_parsers_answer() {
    let url = |href: &str, scheme: &str, host: &str| {
        Answers(Some(ParsedUrl {
            href: href.into(),
            scheme: scheme.into(),
            host: host.into(),
        }))
    };
    // The runtime's parser gives an international name in punycode.
    assert_eq!(
        check_target_url(
            "https://bücher.example/hook",
            &url(
                "https://xn--bcher-kva.example/hook",
                "https",
                "xn--bcher-kva.example"
            )
        )
        .as_deref(),
        Ok("https://xn--bcher-kva.example/hook")
    );
    let host = check_target_url("x", &url("https:///x", "https", "")).expect_err("no host");
    assert!(host.message.contains("host"), "{}", host.message);
    assert!(check_target_url("x", &Answers(None)).is_err());
}
