//! The management API's query parameters: limits, cursors, sequence numbers
//! and status filters, parsed from the raw text of a query string.
//!
//! Every parser takes what the client sent (`None` when the parameter is
//! absent or empty) and answers a value or a [`QueryError`] naming the
//! parameter; none panics on any input (`fuzz/` holds a target for them).

use crate::api::DeliveryStatus;
use crate::encoding::{b64url, b64url_decode};

/// A query parameter that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The parameter at fault.
    pub field: &'static str,
    /// What is wrong with it, for a person.
    pub message: String,
}

impl QueryError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        QueryError {
            field,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for QueryError {}

/// `limit`: between 1 and `max`, `default` when absent.
pub fn limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, QueryError> {
    bounded("limit", raw, default, max)
}

/// A count parameter named `field`: between 1 and `max`, `default` when
/// absent.
pub fn bounded(
    field: &'static str,
    raw: Option<&str>,
    default: u32,
    max: u32,
) -> Result<u32, QueryError> {
    match raw {
        None => Ok(default),
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|v| (1..=max).contains(v))
            .ok_or_else(|| QueryError::new(field, format!("{field} must be between 1 and {max}"))),
    }
}

/// A time parameter (`received_after`, `received_before`): RFC 3339.
pub fn time(
    field: &'static str,
    raw: Option<&str>,
) -> Result<Option<crate::Timestamp>, QueryError> {
    raw.map(|t| {
        crate::Timestamp::parse(t)
            .ok_or_else(|| QueryError::new(field, format!("{field} must be an RFC 3339 time")))
    })
    .transpose()
}

/// `after`: a change sequence number, 0 when absent.
pub fn after(raw: Option<&str>) -> Result<i64, QueryError> {
    match raw {
        None => Ok(0),
        Some(a) => a
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .ok_or_else(|| QueryError::new("after", "after must be a non-negative integer")),
    }
}

/// `status`: a delivery status, `None` when absent.
pub fn status(raw: Option<&str>) -> Result<Option<DeliveryStatus>, QueryError> {
    raw.map(|s| {
        DeliveryStatus::parse(s).ok_or_else(|| {
            QueryError::new(
                "status",
                "status must be one of queued, delivered, failed, rejected, ignored",
            )
        })
    })
    .transpose()
}

/// The cursor of a delivery list page: the last row's receive time (ms)
/// and id, opaque to clients.
pub fn encode_delivery_cursor(received_at: i64, id: &str) -> String {
    b64url(format!("{received_at}:{id}").as_bytes())
}

/// Reads [`encode_delivery_cursor`]'s output; `None` when absent.
pub fn delivery_cursor(raw: Option<&str>) -> Result<Option<(i64, String)>, QueryError> {
    let Some((at, id)) = cursor_parts(raw, ':')? else {
        return Ok(None);
    };
    let at = at.parse().map_err(|_| bad_cursor())?;
    Ok(Some((at, id)))
}

fn bad_cursor() -> QueryError {
    QueryError::new("cursor", "cursor is not valid")
}

/// The two parts of a cursor encoded as base64url of `{first}{sep}{second}`.
fn cursor_parts(raw: Option<&str>, sep: char) -> Result<Option<(String, String)>, QueryError> {
    let Some(cursor) = raw else { return Ok(None) };
    let bytes = b64url_decode(cursor).ok_or_else(bad_cursor)?;
    let text = String::from_utf8(bytes).map_err(|_| bad_cursor())?;
    let (first, second) = text.split_once(sep).ok_or_else(bad_cursor)?;
    Ok(Some((first.to_string(), second.to_string())))
}

/// The cursor of a trigger list page: the last row's creation time (RFC
/// 3339) and id.
pub fn encode_trigger_cursor(created_at: &str, id: &str) -> String {
    b64url(format!("{created_at}|{id}").as_bytes())
}

/// Reads [`encode_trigger_cursor`]'s output; `None` when absent.
pub fn trigger_cursor(raw: Option<&str>) -> Result<Option<(String, String)>, QueryError> {
    cursor_parts(raw, '|')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_a_named_error() {
        assert_eq!(time("received_after", None), Ok(None));
        assert_eq!(
            time("received_after", Some("1970-01-01T00:00:01Z")),
            Ok(Some(crate::Timestamp(1000)))
        );
        let err = time("received_before", Some("yesterday")).expect_err("refused");
        assert_eq!(err.field, "received_before");
    }

    #[test]
    fn limits_are_bounded_and_default_when_absent() {
        assert_eq!(limit(None, 50, 200), Ok(50));
        assert_eq!(limit(Some("200"), 50, 200), Ok(200));
        for bad in [
            "0",
            "201",
            "-1",
            "1e3",
            "99999999999999999999",
            " 5",
            "abc",
            "💥",
        ] {
            let e = limit(Some(bad), 50, 200).expect_err(bad);
            assert_eq!(e.field, "limit");
        }
    }

    #[test]
    fn after_and_status() {
        assert_eq!(after(None), Ok(0));
        assert_eq!(after(Some("9007199254740993")), Ok(9_007_199_254_740_993));
        assert!(after(Some("-5")).is_err());
        assert!(after(Some("abc")).is_err());
        assert_eq!(status(Some("queued")), Ok(Some(DeliveryStatus::Queued)));
        assert_eq!(status(None), Ok(None));
        assert!(status(Some("queued' OR 1=1--")).is_err());
    }

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let c = encode_delivery_cursor(1_700_000_000_000, "dlv_x");
        assert_eq!(
            delivery_cursor(Some(&c)),
            Ok(Some((1_700_000_000_000, "dlv_x".to_string())))
        );
        let t = encode_trigger_cursor("2026-11-23T10:00:00.000Z", "trg_y");
        assert_eq!(
            trigger_cursor(Some(&t)),
            Ok(Some(("2026-11-23T10:00:00.000Z".into(), "trg_y".into())))
        );
        for junk in [
            "!!!",
            "%00",
            &b64url(b"x:y"),
            &b64url(b"99999999999999999999999:d"),
            &b64url(&[0xff, 0xfe]),
        ] {
            assert!(delivery_cursor(Some(junk)).is_err(), "{junk}");
        }
        assert!(trigger_cursor(Some(&b64url(b"no separator"))).is_err());
    }
}
