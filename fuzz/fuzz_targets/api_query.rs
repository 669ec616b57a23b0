//! The management API's query parameters and time filters on arbitrary
//! text: no input panics, and every cursor the API hands out reads back.
#![no_main]

use edgehook_core::query;
use edgehook_core::trigger::BulkReplay;
use edgehook_core::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let _ = query::limit(Some(line), 50, 200);
        let _ = query::after(Some(line));
        let _ = query::status(Some(line));
        let _ = query::delivery_cursor(Some(line));
        let _ = query::trigger_cursor(Some(line));
        let _ = query::time("received_after", Some(line));
        // The stats window: any hours/buckets text, at any time, gives a
        // 400 or a window whose buckets tile it exactly.
        let (h, b) = line.split_once(',').unwrap_or((line, ""));
        let now = Timestamp(line.len() as i64 * 1_234_567_891);
        if let Ok(w) =
            edgehook_core::stats::Window::parse(now, Some(h), Some(b).filter(|b| !b.is_empty()))
        {
            assert!(w.bucket_ms >= 1000 && w.buckets >= 1);
            assert_eq!(w.to_ms - w.from_ms, w.bucket_ms * i64::from(w.buckets));
            assert!(w.index(now.millis()).is_some());
        }
        if let Some(t) = Timestamp::parse(line) {
            // What parses formats, and what it formats parses to itself
            // (within years 0000 to 9999: an offset can move a time just
            // outside, where RFC 3339's four-digit year cannot follow).
            let formatted = t.to_rfc3339();
            if formatted.len() == "2026-11-23T10:00:00.000Z".len()
                && formatted.starts_with(|c: char| c.is_ascii_digit())
            {
                assert_eq!(Timestamp::parse(&formatted), Some(t), "{line:?}");
            }
        }
        if let Ok(at) = line.parse::<i64>() {
            let c = query::encode_delivery_cursor(at, line);
            assert_eq!(
                query::delivery_cursor(Some(&c)),
                Ok(Some((at, line.to_string())))
            );
        }
    }
    let _ = serde_json::from_slice::<BulkReplay>(data);
});
