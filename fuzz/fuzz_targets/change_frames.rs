//! The change feed's framed format on arbitrary bytes: decoding never
//! panics, a page that decodes has the head its first frame gives alone,
//! and whatever decodes encodes back to bytes that decode to the same page.
#![no_main]

use edgehook_core::frames;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let head = frames::head(data);
    let Ok(page) = frames::decode(data) else {
        return;
    };
    let head = head.expect("a page that decodes has a head");
    assert_eq!(head.next_after, page.next_after);
    assert_eq!(head.has_more, page.has_more);
    assert_eq!(head.count, page.changes.len());
    let again = frames::encode(&page.changes, page.next_after, page.has_more);
    let back = frames::decode(&again).expect("an encoded page decodes");
    assert_eq!(back.next_after, page.next_after);
    assert_eq!(back.has_more, page.has_more);
    assert_eq!(back.changes.len(), page.changes.len());
    for ((a, body_a), (b, body_b)) in back.changes.iter().zip(&page.changes) {
        assert_eq!(a.seq, b.seq);
        assert_eq!(a.delivery, b.delivery);
        assert_eq!(body_a, body_b);
    }
});
