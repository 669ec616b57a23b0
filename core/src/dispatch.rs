//! The outbound request of a run.
//!
//! A run is POSTed to the trigger's target with the original body, the
//! original event headers (minus hop-by-hop, edge and credential headers), and
//! Standard Webhooks headers of its own: `webhook-id` is the run id, so the
//! target can dedupe, and `webhook-signature` is signed with the dispatch
//! secret, so any Standard Webhooks library can verify it.

use crate::headers::HeaderList;
use crate::time::Timestamp;
use crate::verify::{
    sign_standard, STANDARD_ID_HEADER, STANDARD_SIGNATURE_HEADER, STANDARD_TIMESTAMP_HEADER,
};

/// How long the consumer reads a target's answer for its excerpt, once the
/// headers came.
pub const EXCERPT_WAIT_SECONDS: i64 = 2;
/// What an attempt leaves of its lease for its report to reach the object.
pub const REPORT_SLACK_SECONDS: i64 = 3;
/// Sends one consumer invocation has waiting for their answer's headers at
/// once: the platform's limit per invocation. Later ones wait their turn
/// before their timeout starts.
pub const SEND_SLOTS: usize = 6;

/// Whether an attempt whose lease ends at `lease_until` may still start at
/// `now`: only if it ends, timed out at worst, and is reported before the
/// lease does, so the run cannot be granted to another consumer while this
/// attempt is in flight. One that may not is given back unstarted.
pub fn may_start(now: Timestamp, lease_until: Timestamp, timeout_seconds: u32) -> bool {
    now.plus_secs(i64::from(timeout_seconds) + EXCERPT_WAIT_SECONDS + REPORT_SLACK_SECONDS)
        <= lease_until
}

/// The header naming the trigger.
pub const TRIGGER_ID_HEADER: &str = "x-edgehook-trigger-id";
/// The header naming the delivery.
pub const DELIVERY_ID_HEADER: &str = "x-edgehook-delivery-id";
/// The header naming the route.
pub const ROUTE_ID_HEADER: &str = "x-edgehook-route-id";
/// How much of a target's response body an attempt records.
pub const RESPONSE_EXCERPT_BYTES: usize = 1024;
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
    /// The route, if the run has one.
    pub route_id: Option<&'a str>,
    /// 1-based attempt number.
    pub attempt: u32,
}

/// The headers of an outbound request: the forwarded inbound headers, the
/// route's own (which win over inbound ones of the same name), then
/// edgehook's, which nothing overrides.
pub fn outbound_headers(
    stored: &HeaderList,
    extra: &std::collections::BTreeMap<String, String>,
    id: AttemptId<'_>,
    dispatch_key: &[u8],
    timestamp_secs: i64,
    body: &[u8],
) -> HeaderList {
    let mut out = HeaderList::new();
    for (name, value) in stored.iter() {
        if forwards(name, value) && !extra.contains_key(&name.to_ascii_lowercase()) {
            out.push(name, value);
        }
    }
    for (name, value) in extra {
        out.push(name, value.as_str());
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
    if let Some(route) = id.route_id {
        out.push(ROUTE_ID_HEADER, route);
    }
    out.push(ATTEMPT_HEADER, id.attempt.to_string());
    out
}

/// The class of a failed attempt, for the timeline: from the target's
/// status when it answered, otherwise from the transport's error message.
/// `None` for a success.
pub fn error_class(
    status: Option<u16>,
    transport_error: Option<&str>,
    timed_out: bool,
) -> Option<&'static str> {
    if timed_out {
        return Some("timeout");
    }
    match status {
        Some(s) if (200..300).contains(&s) => None,
        Some(s) if (300..400).contains(&s) => Some("redirect"),
        Some(_) => Some("http_status"),
        None => {
            let m = transport_error.unwrap_or_default().to_ascii_lowercase();
            Some(
                if m.contains("dns") || m.contains("resolve") || m.contains("name not") {
                    "dns"
                } else if m.contains("tls") || m.contains("ssl") || m.contains("certificate") {
                    "tls"
                } else if m.contains("connect")
                    || m.contains("refused")
                    || m.contains("unreachable")
                    || m.contains("reset")
                {
                    "connect"
                } else {
                    "request"
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::verify::{standard_key, verify_standard};

    #[test]
    fn an_attempt_starts_only_if_it_ends_and_is_reported_within_its_lease() {
        let claimed = Timestamp(1_000_000);
        let timeout = 30;
        let lease = claimed.plus_secs(i64::from(timeout) + crate::run::LEASE_MARGIN_SECONDS);
        assert!(may_start(claimed, lease, timeout), "at once");
        // The margin, less the excerpt and the report, is how long a send
        // may wait for a slot.
        let wait = crate::run::LEASE_MARGIN_SECONDS - EXCERPT_WAIT_SECONDS - REPORT_SLACK_SECONDS;
        assert!(wait > 0);
        assert!(may_start(claimed.plus_secs(wait), lease, timeout));
        assert!(!may_start(
            claimed.plus_secs(wait).plus_millis(1),
            lease,
            timeout
        ));
    }

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
            route_id: Some("rte_1"),
            attempt: 2,
        };
        let extra = std::collections::BTreeMap::from([
            (
                "authorization".to_string(),
                "Bearer target-token".to_string(),
            ),
            ("x-github-event".to_string(), "overridden".to_string()),
        ]);
        let out = outbound_headers(&stored, &extra, id, &key, 1_700_000_000, body);
        assert_eq!(out.get("authorization"), Some("Bearer target-token"));
        assert_eq!(out.get("x-edgehook-route-id"), Some("rte_1"));
        assert_eq!(
            out.iter().filter(|(n, _)| *n == "x-github-event").count(),
            1
        );
        assert_eq!(out.get("x-github-event"), Some("overridden"));
        assert_eq!(out.get("webhook-id"), Some("run_1"));
        assert_eq!(out.get("x-edgehook-attempt"), Some("2"));
        for dropped in ["cf-connecting-ip", "host"] {
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

#[cfg(test)]
mod class_tests {
    use super::error_class;

    #[test]
    fn failures_are_classed() {
        assert_eq!(error_class(Some(204), None, false), None);
        assert_eq!(error_class(Some(302), None, false), Some("redirect"));
        assert_eq!(error_class(Some(503), None, false), Some("http_status"));
        assert_eq!(error_class(None, None, true), Some("timeout"));
        assert_eq!(
            error_class(None, Some("DNS lookup failed"), false),
            Some("dns")
        );
        assert_eq!(
            error_class(None, Some("TLS handshake error"), false),
            Some("tls")
        );
        assert_eq!(
            error_class(
                None,
                Some("Network connection lost / connect refused"),
                false
            ),
            Some("connect")
        );
        assert_eq!(
            error_class(None, Some("something else"), false),
            Some("request")
        );
    }
}
