//! What each provider sends: body format, dedupe key and event type.
//!
//! Verification lives in [`crate::verify`]; this module knows where each
//! provider puts its delivery id and its event type, and which body formats it
//! uses, so that the ledger can dedupe and filter without knowing providers.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::headers::HeaderList;

/// Dedupe keys longer than this are replaced by their SHA-256, so a sender
/// cannot make index entries arbitrarily large.
pub const MAX_DEDUPE_KEY_LEN: usize = 256;

/// The generic `Idempotency-Key` header.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// A webhook sender, as named by a trigger's `provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// GitHub (`X-Hub-Signature-256`).
    Github,
    /// Stripe (`Stripe-Signature`).
    Stripe,
    /// Slack (`X-Slack-Signature`).
    Slack,
    /// Shopify (`X-Shopify-Hmac-Sha256`).
    Shopify,
    /// Standard Webhooks and Svix (`webhook-signature`).
    Standard,
    /// GitLab (`X-Gitlab-Token`).
    Gitlab,
    /// Linear (`Linear-Signature`).
    Linear,
    /// A configurable HMAC of the body.
    Generic,
    /// HTTP Basic credentials.
    Basic,
    /// A shared key in a configurable header.
    ApiKey,
}

impl Provider {
    /// Every provider, in documentation order.
    pub const ALL: [Provider; 10] = [
        Provider::Github,
        Provider::Stripe,
        Provider::Slack,
        Provider::Shopify,
        Provider::Standard,
        Provider::Gitlab,
        Provider::Linear,
        Provider::Generic,
        Provider::Basic,
        Provider::ApiKey,
    ];

    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Stripe => "stripe",
            Provider::Slack => "slack",
            Provider::Shopify => "shopify",
            Provider::Standard => "standard",
            Provider::Gitlab => "gitlab",
            Provider::Linear => "linear",
            Provider::Generic => "generic",
            Provider::Basic => "basic",
            Provider::ApiKey => "api_key",
        }
    }

    /// Parses an API name.
    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The body formats this provider sends.
    pub fn body_format(self) -> BodyFormat {
        match self {
            // GitHub can be configured to send `payload=<json>` forms, and
            // Slack sends forms for slash commands and interactivity.
            Provider::Github | Provider::Slack => BodyFormat::JsonOrForm,
            Provider::Stripe
            | Provider::Shopify
            | Provider::Standard
            | Provider::Gitlab
            | Provider::Linear => BodyFormat::Json,
            Provider::Generic | Provider::Basic | Provider::ApiKey => BodyFormat::Any,
        }
    }
}

/// Which bodies a provider may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// JSON only; anything else is a 400.
    Json,
    /// JSON, or `application/x-www-form-urlencoded`.
    JsonOrForm,
    /// Any bytes; parsed as JSON when they are JSON.
    Any,
}

/// A parsed request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A JSON document.
    Json(Value),
    /// A URL-encoded form, with the JSON of its `payload` field if it has one.
    Form {
        /// The decoded fields, in order.
        fields: Vec<(String, String)>,
        /// The parsed `payload` field (GitHub forms, Slack interactivity).
        embedded: Option<Value>,
    },
    /// Bytes that are neither, accepted for providers with [`BodyFormat::Any`].
    Opaque,
}

impl Payload {
    /// The JSON document the payload carries, if any.
    pub fn json(&self) -> Option<&Value> {
        match self {
            Payload::Json(v) => Some(v),
            Payload::Form { embedded, .. } => embedded.as_ref(),
            Payload::Opaque => None,
        }
    }

    /// A form field by name.
    pub fn form_field(&self, name: &str) -> Option<&str> {
        match self {
            Payload::Form { fields, .. } => fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

/// Why a body was refused (a 400, nothing stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The provider sends JSON and this is not JSON.
    NotJson,
    /// A form's `payload` field is not JSON.
    FormPayloadNotJson,
    /// The trigger reads a JSON pointer and the body is not JSON.
    JsonRequiredByConfig,
}

impl BodyError {
    /// A sentence for the error response.
    pub fn message(&self) -> &'static str {
        match self {
            BodyError::NotJson => "the body is not valid JSON",
            BodyError::FormPayloadNotJson => "the form's payload field is not valid JSON",
            BodyError::JsonRequiredByConfig => {
                "the trigger reads a JSON pointer but the body is not JSON"
            }
        }
    }
}

fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    })
}

/// Parses a body the way `provider` sends it.
pub fn parse_body(
    provider: Provider,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Payload, BodyError> {
    match provider.body_format() {
        BodyFormat::Json => serde_json::from_slice(body)
            .map(Payload::Json)
            .map_err(|_| BodyError::NotJson),
        // Senders (and curl) mislabel JSON as a form; JSON wins when it parses.
        BodyFormat::JsonOrForm
            if is_form(content_type) && serde_json::from_slice::<Value>(body).is_err() =>
        {
            let fields: Vec<(String, String)> = form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let embedded = match fields.iter().find(|(k, _)| k == "payload") {
                Some((_, v)) => Some(
                    crate::encoding::json_from_str(v).map_err(|_| BodyError::FormPayloadNotJson)?,
                ),
                None => None,
            };
            if provider == Provider::Github && embedded.is_none() {
                // GitHub's form deliveries always carry `payload`.
                return Err(BodyError::FormPayloadNotJson);
            }
            Ok(Payload::Form { fields, embedded })
        }
        BodyFormat::JsonOrForm => serde_json::from_slice(body)
            .map(Payload::Json)
            .map_err(|_| BodyError::NotJson),
        BodyFormat::Any => Ok(serde_json::from_slice(body)
            .map(Payload::Json)
            .unwrap_or(Payload::Opaque)),
    }
}

/// Where `generic`, `basic` and `api_key` triggers find keys and types, and
/// the opt-in body hash.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeySources<'a> {
    /// A header holding the dedupe key. When this or the pointer is set,
    /// `Idempotency-Key` is not read.
    pub dedupe_header: Option<&'a str>,
    /// A JSON pointer to the dedupe key, after the header.
    pub dedupe_json_pointer: Option<&'a str>,
    /// A header holding the event type.
    pub event_type_header: Option<&'a str>,
    /// A JSON pointer to the event type.
    pub event_type_json_pointer: Option<&'a str>,
    /// Use the body's SHA-256 when no key is found (opt-in, never the default).
    pub body_hash: bool,
}

fn json_str(value: Option<&Value>, pointer: &str) -> Option<String> {
    match value?.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bounded(key: String) -> String {
    if key.len() <= MAX_DEDUPE_KEY_LEN {
        key
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    }
}

/// The dedupe key of a delivery, or `None` (then there is no dedupe).
pub fn dedupe_key(
    provider: Provider,
    sources: KeySources<'_>,
    headers: &HeaderList,
    payload: &Payload,
    body: &[u8],
) -> Option<String> {
    let header = |name: &str| headers.get_trimmed(name).map(str::to_string);
    let json = payload.json();
    let key = match provider {
        Provider::Github => header("x-github-delivery"),
        Provider::Stripe => json_str(json, "/id"),
        Provider::Slack => json_str(json, "/event_id"),
        Provider::Shopify => {
            header("x-shopify-event-id").or_else(|| header("x-shopify-webhook-id"))
        }
        Provider::Standard => header("webhook-id").or_else(|| header("svix-id")),
        Provider::Gitlab => {
            header(IDEMPOTENCY_KEY_HEADER).or_else(|| header("x-gitlab-webhook-uuid"))
        }
        Provider::Linear => header("linear-delivery"),
        // The operator's configured source wins, and when one is configured
        // it is the only one: an unsigned client header must not override a
        // key inside the signed body, nor stand in when that key is absent.
        Provider::Generic | Provider::Basic | Provider::ApiKey => {
            match (sources.dedupe_header, sources.dedupe_json_pointer) {
                (None, None) => header(IDEMPOTENCY_KEY_HEADER),
                (h, p) => h
                    .and_then(header)
                    .or_else(|| p.and_then(|p| json_str(json, p))),
            }
        }
    };
    let key = key.or_else(|| {
        sources
            .body_hash
            .then(|| format!("sha256:{}", hex::encode(Sha256::digest(body))))
    })?;
    Some(bounded(key))
}

/// A delivery's event type and, where the provider has one, its action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventType {
    /// The event type, e.g. `push`, `payment_intent.succeeded`, `orders/create`.
    pub name: Option<String>,
    /// A sub-type such as GitHub's `action` (`opened`), matched as `name.action`.
    pub action: Option<String>,
}

/// Reads the event type where `provider` puts it.
pub fn event_type(
    provider: Provider,
    sources: KeySources<'_>,
    headers: &HeaderList,
    payload: &Payload,
) -> EventType {
    let header = |name: &str| headers.get_trimmed(name).map(str::to_string);
    let json = payload.json();
    let action = json_str(json, "/action");
    match provider {
        Provider::Github => EventType {
            name: header("x-github-event"),
            action,
        },
        Provider::Stripe | Provider::Standard => EventType {
            name: json_str(json, "/type"),
            action: None,
        },
        Provider::Slack => {
            let name = match json_str(json, "/type").as_deref() {
                Some("event_callback") => json_str(json, "/event/type"),
                Some(other) => Some(other.to_string()),
                None => payload.form_field("command").map(str::to_string),
            };
            EventType { name, action: None }
        }
        Provider::Shopify => EventType {
            name: header("x-shopify-topic"),
            action: None,
        },
        Provider::Gitlab => EventType {
            name: json_str(json, "/object_kind").or_else(|| header("x-gitlab-event")),
            action: json_str(json, "/object_attributes/action"),
        },
        Provider::Linear => EventType {
            name: json_str(json, "/type").or_else(|| header("linear-event")),
            action,
        },
        Provider::Generic | Provider::Basic | Provider::ApiKey => EventType {
            name: sources
                .event_type_header
                .and_then(header)
                .or_else(|| {
                    sources
                        .event_type_json_pointer
                        .and_then(|p| json_str(json, p))
                })
                .or_else(|| json_str(json, "/type"))
                .or_else(|| header("x-event-type")),
            action: None,
        },
    }
}

/// Whether an event passes a trigger's `event_types` filter.
///
/// An empty filter passes everything. A pattern matches the event type or
/// `type.action` exactly, `*` matches anything, and a trailing `*` matches a
/// prefix (`payment_intent.*`, `pull_request*`).
pub fn event_passes(patterns: &[String], event: &EventType) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let Some(name) = event.name.as_deref() else {
        return patterns.iter().any(|p| p == "*");
    };
    let qualified = event.action.as_deref().map(|a| format!("{name}.{a}"));
    let candidates = std::iter::once(name).chain(qualified.as_deref());
    let candidates: Vec<&str> = candidates.collect();
    patterns.iter().any(|p| {
        if let Some(prefix) = p.strip_suffix('*') {
            candidates.iter().any(|c| c.starts_with(prefix))
        } else {
            candidates.iter().any(|c| c == p)
        }
    })
}

/// The challenge of a Slack `url_verification` request, if this is one.
pub fn slack_challenge(provider: Provider, payload: &Payload) -> Option<String> {
    if provider != Provider::Slack {
        return None;
    }
    let json = payload.json()?;
    if json.get("type")?.as_str()? != "url_verification" {
        return None;
    }
    Some(json.get("challenge")?.as_str()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(pairs: &[(&str, &str)]) -> HeaderList {
        HeaderList::from_pairs(pairs.iter().map(|(a, b)| (*a, b.to_string())))
    }

    #[test]
    fn names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.as_str()), Some(p));
        }
        assert_eq!(Provider::parse("bitbucket"), None);
    }

    #[test]
    fn json_providers_refuse_non_json() {
        assert_eq!(
            parse_body(Provider::Stripe, None, b"nope"),
            Err(BodyError::NotJson)
        );
        assert_eq!(
            parse_body(Provider::Github, Some("application/json"), b""),
            Err(BodyError::NotJson)
        );
        assert!(parse_body(Provider::Generic, None, b"plain text").is_ok());
    }

    #[test]
    fn github_form_payload_is_parsed() {
        let body = b"payload=%7B%22action%22%3A%22opened%22%7D";
        let p = parse_body(
            Provider::Github,
            Some("application/x-www-form-urlencoded"),
            body,
        )
        .expect("form");
        assert_eq!(p.json(), Some(&json!({"action": "opened"})));
        let bad = parse_body(
            Provider::Github,
            Some("application/x-www-form-urlencoded"),
            b"payload=%7Bnope",
        );
        assert_eq!(bad, Err(BodyError::FormPayloadNotJson));
    }

    #[test]
    fn mislabelled_json_is_json_and_slack_forms_are_forms() {
        let form = Some("application/x-www-form-urlencoded");
        let mislabelled = parse_body(Provider::Github, form, br#"{"a":1}"#);
        assert_eq!(mislabelled, Ok(Payload::Json(json!({"a": 1}))));
        let slash = parse_body(Provider::Slack, form, b"command=%2Fdeploy&text=").expect("form");
        assert_eq!(slash.form_field("command"), Some("/deploy"));
        assert_eq!(slash.json(), None);
    }

    #[test]
    fn dedupe_keys_per_provider() {
        let none = KeySources::default();
        let json = |v: Value| Payload::Json(v);
        let k = |p, hs: &[(&str, &str)], pl: &Payload| dedupe_key(p, none, &h(hs), pl, b"{}");
        let empty = json(json!({}));
        assert_eq!(
            k(Provider::Github, &[("X-GitHub-Delivery", "d-1")], &empty).as_deref(),
            Some("d-1")
        );
        assert_eq!(
            k(Provider::Stripe, &[], &json(json!({"id": "evt_1"}))).as_deref(),
            Some("evt_1")
        );
        assert_eq!(
            k(Provider::Slack, &[], &json(json!({"event_id": "Ev1"}))).as_deref(),
            Some("Ev1")
        );
        assert_eq!(
            k(
                Provider::Shopify,
                &[("X-Shopify-Webhook-Id", "w"), ("X-Shopify-Event-Id", "e")],
                &empty
            )
            .as_deref(),
            Some("e")
        );
        assert_eq!(
            k(Provider::Shopify, &[("X-Shopify-Webhook-Id", "w")], &empty).as_deref(),
            Some("w")
        );
        assert_eq!(
            k(Provider::Standard, &[("webhook-id", "msg_1")], &empty).as_deref(),
            Some("msg_1")
        );
        assert_eq!(
            k(
                Provider::Gitlab,
                &[("X-Gitlab-Webhook-UUID", "u"), ("Idempotency-Key", "i")],
                &empty
            )
            .as_deref(),
            Some("i")
        );
        assert_eq!(
            k(Provider::Gitlab, &[("X-Gitlab-Webhook-UUID", "u")], &empty).as_deref(),
            Some("u")
        );
        assert_eq!(
            k(Provider::Linear, &[("Linear-Delivery", "l")], &empty).as_deref(),
            Some("l")
        );
        assert_eq!(k(Provider::Generic, &[], &empty), None, "no key, no dedupe");
    }

    #[test]
    fn configured_key_sources_win_over_the_client_header() {
        let sources = KeySources {
            dedupe_header: Some("x-request-id"),
            dedupe_json_pointer: Some("/meta/id"),
            ..Default::default()
        };
        let payload = Payload::Json(json!({"meta": {"id": 42}}));
        let key =
            |hs: &[(&str, &str)]| dedupe_key(Provider::Generic, sources, &h(hs), &payload, b"{}");
        assert_eq!(
            key(&[("Idempotency-Key", "a"), ("X-Request-Id", "b")]).as_deref(),
            Some("b")
        );
        assert_eq!(key(&[("Idempotency-Key", "a")]).as_deref(), Some("42"));
        assert_eq!(key(&[]).as_deref(), Some("42"));

        // A pointer into the signed body beats an unsigned Idempotency-Key,
        // and when the body lacks it, the header does not stand in.
        let pointer_only = KeySources {
            dedupe_json_pointer: Some("/meta/id"),
            ..Default::default()
        };
        for provider in [Provider::Generic, Provider::Basic, Provider::ApiKey] {
            let k = |hs: &[(&str, &str)], pl: &Payload| {
                dedupe_key(provider, pointer_only, &h(hs), pl, b"{}")
            };
            assert_eq!(
                k(&[("Idempotency-Key", "forged")], &payload).as_deref(),
                Some("42")
            );
            assert_eq!(
                k(&[("Idempotency-Key", "forged")], &Payload::Json(json!({}))),
                None
            );
        }

        // With nothing configured, the client's header is the key.
        let none = KeySources::default();
        assert_eq!(
            dedupe_key(
                Provider::Generic,
                none,
                &h(&[("Idempotency-Key", "a")]),
                &payload,
                b"{}"
            )
            .as_deref(),
            Some("a")
        );
    }

    #[test]
    fn body_hash_is_opt_in_and_long_keys_are_bounded() {
        let payload = Payload::Opaque;
        assert_eq!(
            dedupe_key(
                Provider::Basic,
                KeySources::default(),
                &h(&[]),
                &payload,
                b"x"
            ),
            None
        );
        let hashed = dedupe_key(
            Provider::Basic,
            KeySources {
                body_hash: true,
                ..Default::default()
            },
            &h(&[]),
            &payload,
            b"x",
        );
        assert_eq!(
            hashed.as_deref(),
            Some("sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881")
        );
        let long = "k".repeat(1000);
        let bounded = dedupe_key(
            Provider::Generic,
            KeySources::default(),
            &h(&[("Idempotency-Key", &long)]),
            &payload,
            b"",
        );
        assert!(bounded.expect("key").starts_with("sha256:"));
    }

    #[test]
    fn event_types_and_filters() {
        let gh = event_type(
            Provider::Github,
            KeySources::default(),
            &h(&[("X-GitHub-Event", "pull_request")]),
            &Payload::Json(json!({"action": "opened"})),
        );
        assert_eq!(gh.name.as_deref(), Some("pull_request"));
        let pats = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(event_passes(&pats(&[]), &gh));
        assert!(event_passes(&pats(&["pull_request"]), &gh));
        assert!(event_passes(&pats(&["pull_request.opened"]), &gh));
        assert!(!event_passes(&pats(&["pull_request.closed"]), &gh));
        assert!(event_passes(&pats(&["pull*"]), &gh));
        assert!(!event_passes(&pats(&["push"]), &gh));

        let stripe = event_type(
            Provider::Stripe,
            KeySources::default(),
            &h(&[]),
            &Payload::Json(json!({"type": "payment_intent.succeeded"})),
        );
        assert!(event_passes(&pats(&["payment_intent.*"]), &stripe));
        assert!(!event_passes(&pats(&["charge.*"]), &stripe));

        let slack = event_type(
            Provider::Slack,
            KeySources::default(),
            &h(&[]),
            &Payload::Json(json!({"type": "event_callback", "event": {"type": "app_mention"}})),
        );
        assert_eq!(slack.name.as_deref(), Some("app_mention"));

        let untyped = EventType::default();
        assert!(!event_passes(&pats(&["push"]), &untyped));
        assert!(event_passes(&pats(&["*"]), &untyped));
    }

    #[test]
    fn slack_challenge_only_for_url_verification() {
        let p = Payload::Json(json!({"type": "url_verification", "challenge": "abc"}));
        assert_eq!(slack_challenge(Provider::Slack, &p).as_deref(), Some("abc"));
        assert_eq!(slack_challenge(Provider::Github, &p), None);
        let other = Payload::Json(json!({"type": "event_callback"}));
        assert_eq!(slack_challenge(Provider::Slack, &other), None);
    }
}
