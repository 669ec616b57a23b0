//! Identifiers.
//!
//! Trigger ids carry their own proof of issue: ten random bytes followed by the
//! first ten bytes of an HMAC of them under a Worker secret. The edge checks
//! the MAC before touching storage, so a forged or mistyped id gets a 404 and
//! never instantiates a Durable Object.
//!
//! Delivery and run ids are time-ordered (48-bit milliseconds, then 80 random
//! bits, like a ULID), so they sort by creation time. Randomness is passed in:
//! the core does no I/O.

use crate::encoding::{base32_decode, base32_encode};
use crate::secret::constant_time_eq;
use crate::time::Timestamp;
use crate::verify::hmac_sha256;

/// Prefix of trigger ids.
pub const TRIGGER_PREFIX: &str = "trg_";
/// Prefix of delivery ids.
pub const DELIVERY_PREFIX: &str = "dlv_";
/// Prefix of run ids.
pub const RUN_PREFIX: &str = "run_";
/// The prefix of route ids.
pub const ROUTE_PREFIX: &str = "rte_";

const TRIGGER_RANDOM: usize = 10;
const TRIGGER_MAC: usize = 10;
const MAC_LABEL: &[u8] = b"edgehook/trigger-id/v1:";

/// Derives a purpose-bound key from a secret, so one secret can key several
/// unrelated MACs without their outputs being interchangeable.
pub fn derive_key(secret: &[u8], purpose: &str) -> [u8; 32] {
    hmac_sha256(secret, &[b"edgehook/derive/v1:", purpose.as_bytes()])
}

fn trigger_mac(key: &[u8], random: &[u8]) -> [u8; 32] {
    hmac_sha256(key, &[MAC_LABEL, random])
}

/// Mints a trigger id from ten random bytes.
pub fn mint_trigger_id(key: &[u8], random: [u8; TRIGGER_RANDOM]) -> String {
    let mac = trigger_mac(key, &random);
    let mut raw = Vec::with_capacity(TRIGGER_RANDOM + TRIGGER_MAC);
    raw.extend_from_slice(&random);
    raw.extend_from_slice(&mac[..TRIGGER_MAC]);
    format!("{TRIGGER_PREFIX}{}", base32_encode(&raw))
}

/// Whether `id` was minted under `key`. Constant time in the MAC comparison.
pub fn is_issued_trigger_id(key: &[u8], id: &str) -> bool {
    let Some(body) = id.strip_prefix(TRIGGER_PREFIX) else {
        return false;
    };
    // 20 bytes are 32 base32 characters; anything else is not ours.
    if body.len() != 32 {
        return false;
    }
    let Some(raw) = base32_decode(body) else {
        return false;
    };
    if raw.len() != TRIGGER_RANDOM + TRIGGER_MAC {
        return false;
    }
    let (random, mac) = raw.split_at(TRIGGER_RANDOM);
    let expected = trigger_mac(key, random);
    constant_time_eq(mac, &expected[..TRIGGER_MAC])
}

fn time_ordered(prefix: &str, now: Timestamp, random: [u8; 10]) -> String {
    let ms = now.millis().clamp(0, (1 << 48) - 1) as u64;
    let mut raw = [0u8; 16];
    raw[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    raw[6..].copy_from_slice(&random);
    format!("{prefix}{}", base32_encode(&raw))
}

/// A new delivery id.
pub fn new_delivery_id(now: Timestamp, random: [u8; 10]) -> String {
    time_ordered(DELIVERY_PREFIX, now, random)
}

/// A new run id.
pub fn new_run_id(now: Timestamp, random: [u8; 10]) -> String {
    time_ordered(RUN_PREFIX, now, random)
}

/// A new route id.
pub fn new_route_id(now: Timestamp, random: [u8; 10]) -> String {
    time_ordered(ROUTE_PREFIX, now, random)
}

/// Whether `id` has the shape of an id with `prefix` (used to answer 404
/// early for ids that cannot exist).
pub fn looks_like(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|b| {
        !b.is_empty() && b.len() <= 40 && b.bytes().all(|c| c.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"test key";

    #[test]
    fn minted_ids_verify_and_forgeries_do_not() {
        let id = mint_trigger_id(KEY, [7; 10]);
        assert!(id.starts_with("trg_"));
        assert_eq!(id.len(), 4 + 32);
        assert!(is_issued_trigger_id(KEY, &id));
        assert!(!is_issued_trigger_id(b"other key", &id));
        // Flip each character in turn: none of the variants may pass.
        for i in 4..id.len() {
            let mut chars: Vec<char> = id.chars().collect();
            chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
            let forged: String = chars.into_iter().collect();
            assert!(!is_issued_trigger_id(KEY, &forged), "{forged}");
        }
        assert!(!is_issued_trigger_id(KEY, "trg_"));
        assert!(!is_issued_trigger_id(KEY, "trg_../../etc"));
        assert!(!is_issued_trigger_id(KEY, &id[4..]));
        assert!(!is_issued_trigger_id(KEY, &format!("{id}0")));
    }

    #[test]
    fn time_ordered_ids_sort_by_time() {
        let a = new_delivery_id(Timestamp(1_000), [255; 10]);
        let b = new_delivery_id(Timestamp(1_001), [0; 10]);
        assert!(a < b);
        assert!(looks_like(DELIVERY_PREFIX, &a));
        assert!(!looks_like(DELIVERY_PREFIX, "dlv_x'--"));
        assert!(new_run_id(Timestamp(5), [1; 10]).starts_with("run_"));
    }

    #[test]
    fn derived_keys_differ_by_purpose() {
        assert_ne!(derive_key(b"s", "a"), derive_key(b"s", "b"));
        assert_eq!(derive_key(b"s", "a"), derive_key(b"s", "a"));
    }
}
