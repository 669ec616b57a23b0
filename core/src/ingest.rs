//! The ingest decision: what happens to one inbound request.
//!
//! Ingest is split in two pure steps around the one storage read it needs:
//!
//! 1. [`screen`] checks the size, the signature (with rotation), the body
//!    format and Slack's challenge, and extracts the dedupe key and event type.
//! 2. The adapter looks up the dedupe holder, the oldest non-replay delivery
//!    with the same key, a status in [`DeliveryStatus::HOLDS_DEDUPE_KEY`] and a
//!    receive time at or after [`TriggerConfig::dedupe_cutoff`]; then
//!    [`decide`] says whether this is a duplicate, ignored, or a new run.
//!
//! The adapter must run the lookup and the insert that follows in one
//! synchronous step, so that concurrent copies of one delivery cannot both
//! miss the holder.

use crate::api::DeliveryStatus;
use crate::error::VerifyError;
use crate::headers::HeaderList;
use crate::provider::{self, BodyError, EventType, Payload, Provider};
use crate::time::Timestamp;
use crate::trigger::TriggerConfig;
use crate::verify::{self, GenericScheme, SecretSlot};

/// One inbound request as the edge received it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// Request headers.
    pub headers: &'a HeaderList,
    /// The raw body.
    pub body: &'a [u8],
    /// When the edge received it; the reference for timestamp tolerance.
    pub received_at: Timestamp,
}

/// What the ledger records about a delivery besides its status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The dedupe key, if the provider gives one.
    pub dedupe_key: Option<String>,
    /// The event type and action.
    pub event: EventType,
}

/// The outcome of [`screen`].
#[derive(Debug, Clone, PartialEq)]
pub enum Screening {
    /// Over the trigger's body limit: 413, nothing stored.
    TooLarge {
        /// The trigger's limit in bytes.
        limit: u64,
    },
    /// Genuine but not in the provider's format: 400, nothing stored.
    BadBody(BodyError),
    /// Not genuine: 401, stored as `rejected`.
    Rejected {
        /// Why.
        error: VerifyError,
        /// What could still be read from the request.
        facts: Facts,
    },
    /// A verified Slack `url_verification`: answer the challenge, store nothing.
    Challenge(String),
    /// Genuine and well-formed: go on to [`decide`].
    Admitted {
        /// Which secret verified it.
        matched: SecretSlot,
        /// Key and event type.
        facts: Facts,
    },
}

/// Verifies a request against the trigger's provider and secrets.
pub fn verify_delivery(
    cfg: &TriggerConfig,
    inbound: &Inbound<'_>,
) -> Result<SecretSlot, VerifyError> {
    let h = inbound.headers;
    let b = inbound.body;
    let now = inbound.received_at;
    let tol = cfg.tolerance_seconds;
    verify::verify_with_rotation(cfg.secrets_at(now), |s| match cfg.provider {
        Provider::Github => verify::verify_github(s, h, b),
        Provider::Stripe => verify::verify_stripe(s, h, b, now, tol),
        Provider::Slack => verify::verify_slack(s, h, b, now, tol),
        Provider::Shopify => verify::verify_shopify(s, h, b),
        Provider::Standard => verify::verify_standard(s, h, b, now, tol),
        Provider::Gitlab => verify::verify_gitlab(s, h),
        Provider::Linear => verify::verify_linear(s, h, b, now, tol),
        Provider::Generic => verify::verify_generic(
            s,
            GenericScheme {
                header: &cfg.signature_header,
                algorithm: cfg.signature_algorithm,
                encoding: cfg.signature_encoding,
                prefix: &cfg.signature_prefix,
            },
            h,
            b,
        ),
        // Validation requires a user name; without one, fail closed.
        Provider::Basic => match cfg.basic_username.as_deref() {
            Some(user) => verify::verify_basic(user, s, h),
            None => Err(VerifyError::InvalidSecret),
        },
        Provider::ApiKey => verify::verify_api_key(&cfg.api_key_header, s, h),
    })
}

fn facts(cfg: &TriggerConfig, inbound: &Inbound<'_>, payload: &Payload) -> Facts {
    let sources = cfg.key_sources();
    Facts {
        dedupe_key: provider::dedupe_key(
            cfg.provider,
            sources,
            inbound.headers,
            payload,
            inbound.body,
        ),
        event: provider::event_type(cfg.provider, sources, inbound.headers, payload),
    }
}

/// Screens one request: size, signature, body format, challenge, facts.
///
/// The signature is checked before the body is parsed, so an unsigned request
/// is always a 401 (and a `rejected` row), whatever its body.
pub fn screen(cfg: &TriggerConfig, inbound: &Inbound<'_>) -> Screening {
    if inbound.body.len() as u64 > cfg.max_body_bytes {
        return Screening::TooLarge {
            limit: cfg.max_body_bytes,
        };
    }
    let content_type = inbound.headers.get("content-type");
    let payload = provider::parse_body(cfg.provider, content_type, inbound.body);
    let verified = verify_delivery(cfg, inbound);
    let matched = match verified {
        Ok(slot) => slot,
        Err(error) => {
            let payload = payload.unwrap_or(Payload::Opaque);
            return Screening::Rejected {
                error,
                facts: facts(cfg, inbound, &payload),
            };
        }
    };
    let payload = match payload {
        Ok(p) => p,
        Err(e) => return Screening::BadBody(e),
    };
    let needs_json = cfg.dedupe_json_pointer.is_some() || cfg.event_type_json_pointer.is_some();
    if needs_json && payload.json().is_none() {
        return Screening::BadBody(BodyError::JsonRequiredByConfig);
    }
    if let Some(challenge) = provider::slack_challenge(cfg.provider, &payload) {
        return Screening::Challenge(challenge);
    }
    Screening::Admitted {
        matched,
        facts: facts(cfg, inbound, &payload),
    }
}

/// The most of a rejected delivery's body that is stored: enough to see what
/// was sent, never the whole of an anonymous sender's upload.
pub const REJECTED_BODY_EXCERPT_BYTES: usize = 4096;
/// Rejected deliveries stored per minute; beyond this they are only counted.
pub const REJECTIONS_STORED_PER_MINUTE: u64 = 60;
/// Bytes of rejected deliveries (headers and excerpts) stored per minute;
/// beyond this they are only counted. With the count cap, a flood of
/// unsigned requests adds at most this much to the ledger per minute.
pub const REJECTION_BYTES_STORED_PER_MINUTE: u64 = 256 * 1024;
/// What a stored delivery costs besides its headers and body: the row, its
/// run and their index entries (an upper estimate).
pub const ROW_OVERHEAD_BYTES: u64 = 512;

/// The part of a rejected delivery's body that is stored, and whether it was
/// cut.
pub fn rejected_excerpt(body: &[u8]) -> (&[u8], bool) {
    if body.len() > REJECTED_BODY_EXCERPT_BYTES {
        (&body[..REJECTED_BODY_EXCERPT_BYTES], true)
    } else {
        (body, false)
    }
}

/// The bytes a delivery row accounts for in the ledger's storage budget.
pub fn stored_size(headers_json_bytes: usize, stored_body_bytes: usize) -> u64 {
    headers_json_bytes as u64 + stored_body_bytes as u64 + ROW_OVERHEAD_BYTES
}

/// Whether one more rejection of `size` bytes may be stored, given what was
/// stored in the last minute; otherwise it is only counted.
pub fn rejection_storable(rows_last_minute: u64, bytes_last_minute: u64, size: u64) -> bool {
    rows_last_minute < REJECTIONS_STORED_PER_MINUTE
        && bytes_last_minute.saturating_add(size) <= REJECTION_BYTES_STORED_PER_MINUTE
}

/// Whether a write of `size` bytes fits the trigger's storage budget.
pub fn within_budget(used: u64, size: u64, budget: u64) -> bool {
    used.checked_add(size).is_some_and(|total| total <= budget)
}

/// Why a genuine delivery was stored as `ignored`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// The trigger is disabled.
    TriggerDisabled,
    /// The event type is not in the trigger's `event_types`.
    EventTypeFiltered,
    /// The trigger has routes and the delivery matches none of them.
    NoRouteMatched,
}

impl IgnoreReason {
    /// The `reason` of the response and the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::TriggerDisabled => "trigger_disabled",
            IgnoreReason::EventTypeFiltered => "event_type_filtered",
            IgnoreReason::NoRouteMatched => "no_route_matched",
        }
    }
}

/// What to do with an admitted delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A holder exists: bump its `attempt_count`, answer with its ids.
    Duplicate,
    /// Store as `ignored`, no run.
    Ignore(IgnoreReason),
    /// Store as `queued` with a new run.
    Run,
}

/// Decides an admitted delivery, given whether a dedupe holder was found.
///
/// Dedupe comes first, so a provider's retries of an ignored delivery collapse
/// onto it rather than piling up.
pub fn decide(cfg: &TriggerConfig, facts: &Facts, holder_found: bool) -> Decision {
    if holder_found {
        return Decision::Duplicate;
    }
    if !cfg.enabled {
        return Decision::Ignore(IgnoreReason::TriggerDisabled);
    }
    if !provider::event_passes(&cfg.event_types, &facts.event) {
        return Decision::Ignore(IgnoreReason::EventTypeFiltered);
    }
    Decision::Run
}

/// Whether a dedupe lookup is needed at all.
pub fn dedupes(cfg: &TriggerConfig, facts: &Facts) -> bool {
    facts.dedupe_key.is_some() && cfg.dedupe_window_seconds > 0
}

/// The headers to store: everything, with credentials redacted and
/// signatures reduced to a scheme and a fingerprint. Also applied when stored
/// headers are read, so rows written before signatures were redacted never
/// leave the ledger whole.
pub fn stored_headers(cfg: &TriggerConfig, headers: &HeaderList) -> HeaderList {
    headers
        .clone()
        .redacted(&cfg.credential_headers())
        .signatures_redacted(&cfg.signature_headers())
}

impl DeliveryStatus {
    /// Statuses whose delivery holds its dedupe key. A `rejected` or `failed`
    /// delivery never blocks a later genuine one with the same key.
    pub const HOLDS_DEDUPE_KEY: [DeliveryStatus; 3] = [
        DeliveryStatus::Queued,
        DeliveryStatus::Delivered,
        DeliveryStatus::Ignored,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::TriggerCreate;
    use crate::verify::hmac_sha256;

    const SECRET: &str = "It's a Secret to Everybody";

    fn trigger(extra: serde_json::Value) -> TriggerConfig {
        let mut json =
            serde_json::json!({"name": "t", "provider": "github", "signing_secret": SECRET});
        if let (Some(obj), Some(extra)) = (json.as_object_mut(), extra.as_object()) {
            obj.extend(extra.clone());
        }
        let req: TriggerCreate = serde_json::from_value(json).expect("valid json");
        TriggerConfig::create("trg_x".into(), req, Timestamp(0), &crate::weburl::UrlCrate)
            .expect("valid trigger")
    }

    fn github(body: &[u8], event: &str, delivery: &str, secret: &str) -> HeaderList {
        let sig = format!(
            "sha256={}",
            hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
        );
        HeaderList::from_pairs([
            ("x-hub-signature-256", sig),
            ("x-github-event", event.to_string()),
            ("x-github-delivery", delivery.to_string()),
            ("content-type", "application/json".to_string()),
        ])
    }

    fn inbound<'a>(headers: &'a HeaderList, body: &'a [u8]) -> Inbound<'a> {
        Inbound {
            headers,
            body,
            received_at: Timestamp::from_secs(1_700_000_000),
        }
    }

    #[test]
    fn admitted_with_facts() {
        let cfg = trigger(serde_json::json!({}));
        let body = br#"{"action":"opened"}"#;
        let h = github(body, "pull_request", "d-1", SECRET);
        match screen(&cfg, &inbound(&h, body)) {
            Screening::Admitted { matched, facts } => {
                assert_eq!(matched, SecretSlot::Current);
                assert_eq!(facts.dedupe_key.as_deref(), Some("d-1"));
                assert_eq!(facts.event.name.as_deref(), Some("pull_request"));
                assert_eq!(decide(&cfg, &facts, false), Decision::Run);
                assert_eq!(decide(&cfg, &facts, true), Decision::Duplicate);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn signature_is_checked_before_the_body() {
        let cfg = trigger(serde_json::json!({}));
        let h = github(b"not json", "push", "d-2", "wrong secret");
        match screen(&cfg, &inbound(&h, b"not json")) {
            Screening::Rejected { error, facts } => {
                assert_eq!(error, VerifyError::SignatureMismatch);
                assert_eq!(facts.dedupe_key.as_deref(), Some("d-2"));
            }
            other => panic!("{other:?}"),
        }
        let h = github(b"not json", "push", "d-2", SECRET);
        assert_eq!(
            screen(&cfg, &inbound(&h, b"not json")),
            Screening::BadBody(BodyError::NotJson)
        );
    }

    #[test]
    fn size_limit_comes_first() {
        let cfg = trigger(serde_json::json!({"max_body_bytes": 4}));
        let h = HeaderList::new();
        assert_eq!(
            screen(&cfg, &inbound(&h, b"12345")),
            Screening::TooLarge { limit: 4 }
        );
    }

    #[test]
    fn no_secret_fails_closed() {
        let req: TriggerCreate =
            serde_json::from_value(serde_json::json!({"name": "t", "provider": "github"}))
                .expect("json");
        let cfg =
            TriggerConfig::create("trg_x".into(), req, Timestamp(0), &crate::weburl::UrlCrate)
                .expect("valid");
        let h = github(b"{}", "push", "d", SECRET);
        assert!(matches!(
            screen(&cfg, &inbound(&h, b"{}")),
            Screening::Rejected {
                error: VerifyError::NoSecret,
                ..
            }
        ));
    }

    #[test]
    fn disabled_and_filtered_are_ignored_after_dedupe() {
        let body = b"{}";
        let h = github(body, "push", "d-3", SECRET);
        let disabled = trigger(serde_json::json!({"enabled": false}));
        let Screening::Admitted { facts, .. } = screen(&disabled, &inbound(&h, body)) else {
            panic!()
        };
        assert_eq!(
            decide(&disabled, &facts, false),
            Decision::Ignore(IgnoreReason::TriggerDisabled)
        );
        assert_eq!(decide(&disabled, &facts, true), Decision::Duplicate);
        let filtered = trigger(serde_json::json!({"event_types": ["issues"]}));
        assert_eq!(
            decide(&filtered, &facts, false),
            Decision::Ignore(IgnoreReason::EventTypeFiltered)
        );
    }

    #[test]
    fn slack_challenge_needs_a_valid_signature() {
        let secret = "slack-signing-secret-0123456789";
        let req: TriggerCreate = serde_json::from_value(
            serde_json::json!({"name": "s", "provider": "slack", "signing_secret": secret}),
        )
        .expect("json");
        let cfg =
            TriggerConfig::create("trg_s".into(), req, Timestamp(0), &crate::weburl::UrlCrate)
                .expect("valid");
        let body = br#"{"type":"url_verification","challenge":"c-123"}"#;
        let ts = 1_700_000_000i64;
        let sig = format!(
            "v0={}",
            hex::encode(hmac_sha256(
                secret.as_bytes(),
                &[format!("v0:{ts}:").as_bytes(), body]
            ))
        );
        let h = HeaderList::from_pairs([
            ("x-slack-signature", sig),
            ("x-slack-request-timestamp", ts.to_string()),
        ]);
        assert_eq!(
            screen(&cfg, &inbound(&h, body)),
            Screening::Challenge("c-123".into())
        );
        let unsigned = HeaderList::from_pairs([("x-slack-request-timestamp", ts.to_string())]);
        assert!(matches!(
            screen(&cfg, &inbound(&unsigned, body)),
            Screening::Rejected { .. }
        ));
    }

    #[test]
    fn rejected_bodies_are_cut_and_rejections_are_capped_by_count_and_bytes() {
        let big = vec![b'x'; 1024 * 1024];
        let (excerpt, cut) = rejected_excerpt(&big);
        assert_eq!(excerpt.len(), REJECTED_BODY_EXCERPT_BYTES);
        assert!(cut);
        let (small, cut) = rejected_excerpt(b"{}");
        assert_eq!((small, cut), (&b"{}"[..], false));

        let row = stored_size(800, REJECTED_BODY_EXCERPT_BYTES);
        assert!(rejection_storable(0, 0, row));
        assert!(!rejection_storable(REJECTIONS_STORED_PER_MINUTE, 0, row));
        assert!(!rejection_storable(
            1,
            REJECTION_BYTES_STORED_PER_MINUTE - row + 1,
            row
        ));
        // A minute of flood stores at most the byte cap, whatever the count.
        let (mut rows, mut bytes) = (0, 0);
        while rejection_storable(rows, bytes, row) {
            rows += 1;
            bytes += row;
        }
        assert!(bytes <= REJECTION_BYTES_STORED_PER_MINUTE);
        assert!(rows <= REJECTIONS_STORED_PER_MINUTE);

        assert!(within_budget(10, 10, 20));
        assert!(!within_budget(10, 11, 20));
        assert!(!within_budget(u64::MAX, 1, u64::MAX));
    }

    #[test]
    fn api_key_header_is_redacted_in_storage() {
        let req: TriggerCreate = serde_json::from_value(serde_json::json!({"name": "k", "provider": "api_key", "signing_secret": "k-1-0123456789abcdef", "api_key_header": "X-Hook-Key"})).expect("json");
        let cfg =
            TriggerConfig::create("trg_k".into(), req, Timestamp(0), &crate::weburl::UrlCrate)
                .expect("valid");
        let h = HeaderList::from_pairs([
            ("X-Hook-Key", "k-1-0123456789abcdef"),
            ("Authorization", "Bearer t"),
        ]);
        let stored = stored_headers(&cfg, &h);
        assert!(stored
            .iter()
            .all(|(_, v)| !v.contains("k-1-0123") && v != "Bearer t"));
    }
}
