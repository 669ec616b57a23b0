//! The outbound request of a run.
//!
//! A run is POSTed to the trigger's target with the original body, the
//! original event headers (minus hop-by-hop, edge and credential headers), and
//! Standard Webhooks headers of its own: `webhook-id` is the run id, so the
//! target can dedupe, and `webhook-signature` is signed with the dispatch
//! secret, so any Standard Webhooks library can verify it.

use crate::headers::HeaderList;
use crate::verify::{
    sign_standard, STANDARD_ID_HEADER, STANDARD_SIGNATURE_HEADER, STANDARD_TIMESTAMP_HEADER,
};

/// The header naming the trigger.
pub const TRIGGER_ID_HEADER: &str = "x-edgehook-trigger-id";
/// The header naming the delivery.
pub const DELIVERY_ID_HEADER: &str = "x-edgehook-delivery-id";
/// The header with the 1-based attempt number.
pub const ATTEMPT_HEADER: &str = "x-edgehook-attempt";
/// The user agent when the original request had none.
pub const USER_AGENT: &str = concat!("edgehook/", env!("CARGO_PKG_VERSION"));

/// Whether an inbound header is forwarded to the target.
pub fn forwards(name: &str, value: &str) -> bool {
    const DROP: &[&str] = &[
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "accept-encoding",
        "x-real-ip",
        "true-client-ip",
        "cdn-loop",
        "forwarded",
    ];
    const DROP_PREFIXES: &[&str] = &[
        "cf-",
        "x-forwarded-",
        "proxy-",
        "webhook-",
        "svix-",
        "x-edgehook-",
    ];
    let name = name.to_ascii_lowercase();
    if crate::headers::is_redacted(value)
        || crate::headers::CREDENTIAL_HEADERS.contains(&name.as_str())
        || crate::headers::SIGNATURE_HEADERS.contains(&name.as_str())
    {
        return false;
    }
    !DROP.contains(&name.as_str()) && !DROP_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// What identifies one attempt.
#[derive(Debug, Clone, Copy)]
pub struct AttemptId<'a> {
    /// The trigger.
    pub trigger_id: &'a str,
    /// The delivery.
    pub delivery_id: &'a str,
    /// The run; also the `webhook-id`.
    pub run_id: &'a str,
    /// 1-based attempt number.
    pub attempt: u32,
}

/// The headers of an outbound request.
pub fn outbound_headers(
    stored: &HeaderList,
    id: AttemptId<'_>,
    dispatch_key: &[u8],
    timestamp_secs: i64,
    body: &[u8],
) -> HeaderList {
    let mut out = HeaderList::new();
    for (name, value) in stored.iter() {
        if forwards(name, value) {
            out.push(name, value);
        }
    }
    if out.get("content-type").is_none() {
        out.push("content-type", "application/json");
    }
    if out.get("user-agent").is_none() {
        out.push("user-agent", USER_AGENT);
    }
    out.push(STANDARD_ID_HEADER, id.run_id);
    out.push(STANDARD_TIMESTAMP_HEADER, timestamp_secs.to_string());
    out.push(
        STANDARD_SIGNATURE_HEADER,
        sign_standard(dispatch_key, id.run_id, timestamp_secs, body),
    );
    out.push(TRIGGER_ID_HEADER, id.trigger_id);
    out.push(DELIVERY_ID_HEADER, id.delivery_id);
    out.push(ATTEMPT_HEADER, id.attempt.to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::time::Timestamp;
    use crate::verify::{standard_key, verify_standard};

    #[test]
    fn outbound_request_verifies_as_standard_webhooks() {
        let dispatch = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let key = standard_key(&dispatch).expect("key");
        let stored = HeaderList::from_pairs([
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("x-hub-signature-256", "sha256=ab"),
            ("authorization", crate::headers::REDACTED),
            ("cf-connecting-ip", "203.0.113.9"),
            ("webhook-id", "msg_inbound"),
            ("host", "edge.example"),
        ]);
        let body = br#"{"zen":"hi"}"#;
        let id = AttemptId {
            trigger_id: "trg_1",
            delivery_id: "dlv_1",
            run_id: "run_1",
            attempt: 2,
        };
        let out = outbound_headers(&stored, id, &key, 1_700_000_000, body);
        assert_eq!(out.get("webhook-id"), Some("run_1"));
        assert_eq!(out.get("x-github-event"), Some("push"));
        assert_eq!(out.get("x-edgehook-attempt"), Some("2"));
        for dropped in ["authorization", "cf-connecting-ip", "host"] {
            assert_eq!(out.get(dropped), None, "{dropped}");
        }
        assert_eq!(out.iter().filter(|(n, _)| *n == "webhook-id").count(), 1);
        verify_standard(
            &dispatch,
            &out,
            body,
            Timestamp::from_secs(1_700_000_010),
            300,
        )
        .expect("verifies");
    }
}
