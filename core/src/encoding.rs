//! Byte encodings used in identifiers, cursors and signatures.

use base64::Engine;

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Parses JSON text. Everything edgehook parses goes through serde_json's
/// byte reader, text included: each reader type instantiates every
/// deserializer it reads again, and reading text through the byte reader
/// keeps one copy of each in the Worker's Wasm (about 20 KB less). The
/// only cost is a UTF-8 check of strings the `&str` already guarantees.
pub fn json_from_str<T: serde::de::DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    serde_json::from_slice(text.as_bytes())
}

/// The hex SHA-256 of `bytes`: a fingerprint of a request, for telling a
/// retried call from a different one under the same `Idempotency-Key`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Lower-case Crockford base32 without padding: URL-safe, case-insensitive on
/// input, and free of the letters people confuse (i, l, o, u).
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(CROCKFORD[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(CROCKFORD[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes [`base32_encode`]'s output; `None` on any foreign character or on
/// non-zero padding bits, so every byte string has exactly one spelling.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let c = c.to_ascii_lowercase();
        let v = CROCKFORD.iter().position(|&x| x == c)? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    if buffer != 0 {
        return None;
    }
    Some(out)
}

/// Standard base64 with padding.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64 (padding optional).
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .ok()
}

/// URL-safe base64 without padding, for opaque cursors.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes [`b64url`].
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_reads_through_the_byte_reader_as_text_would() {
        let v: Vec<String> = json_from_str(r#"["é", "\u00e9", "a\"b"]"#).expect("valid");
        assert_eq!(v, ["é", "é", "a\"b"]);
        let text = r#"{"a": [1, 2.5, null], "b": {"c": true}}"#;
        let ours: serde_json::Value = json_from_str(text).expect("valid");
        let theirs: serde_json::Value = serde_json::from_str(text).expect("valid");
        assert_eq!(ours, theirs);
        assert!(json_from_str::<Vec<String>>("[").is_err());
        assert!(json_from_str::<Vec<String>>("[1]").is_err());
    }

    #[test]
    fn base32_round_trips() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = base32_encode(&bytes);
            assert_eq!(base32_decode(&text).as_deref(), Some(&bytes[..]), "{text}");
            assert_eq!(
                base32_decode(&text.to_uppercase()).as_deref(),
                Some(&bytes[..])
            );
        }
    }

    #[test]
    fn base32_rejects_foreign_characters() {
        assert_eq!(base32_decode("abc!"), None);
        assert_eq!(base32_decode("ilou"), None);
    }
}
