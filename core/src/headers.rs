//! A small, case-insensitive header list.
//!
//! The core sees request headers as an ordered list of lower-cased names and
//! values, independent of any HTTP library, and stores them the same way.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The text that replaces a credential in stored headers.
pub const REDACTED: &str = "[redacted]";

/// Header names that always carry credentials and are never stored or forwarded.
pub const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-gitlab-token",
    "x-api-key",
    "api-key",
    "x-edgehook-token",
];

/// Header names that carry a provider's signature. Their values are stored
/// as a scheme and a fingerprint only ([`redact_signature`]): a signature of a
/// scheme without a timestamp (GitHub, Shopify, generic HMAC) stays valid
/// forever, so whoever could read a stored one could re-send the body under a
/// new delivery id.
pub const SIGNATURE_HEADERS: &[&str] = &[
    "x-hub-signature-256",
    "x-hub-signature",
    "stripe-signature",
    "x-slack-signature",
    "x-shopify-hmac-sha256",
    "webhook-signature",
    "svix-signature",
    "linear-signature",
    "x-signature",
];

/// How a redacted signature value begins after its scheme.
const SIGNATURE_REDACTED_MARK: &str = "[redacted fp=";

/// A signature value reduced to its scheme and a fingerprint, e.g.
/// `sha256=757107ea…` → `sha256=[redacted fp=1a2b3c4d]`. The scheme is the
/// value's leading label when it is a known one (`sha256`, `v0`, `v1`, `t`); the
/// fingerprint is the first 4 bytes of the SHA-256 of the whole value, enough
/// to tell two deliveries' signatures apart and useless for forging one.
/// Idempotent: a redacted value is returned unchanged.
pub fn redact_signature(value: &str) -> String {
    if is_redacted(value) {
        return value.to_string();
    }
    let label_len = value.bytes().take_while(u8::is_ascii_alphanumeric).count();
    // Only known labels count: base64 with padding also looks like `x=`.
    const SCHEMES: &[&str] = &["sha1", "sha256", "sha512", "v0", "v1", "t"];
    let scheme = match value.as_bytes().get(label_len) {
        Some(b'=' | b',') if SCHEMES.contains(&&value[..label_len]) => &value[..=label_len],
        _ => "",
    };
    let digest = Sha256::digest(value.as_bytes());
    format!(
        "{scheme}{SIGNATURE_REDACTED_MARK}{}]",
        hex::encode(&digest[..4])
    )
}

/// Whether a stored value was redacted (a credential or a signature).
pub fn is_redacted(value: &str) -> bool {
    value == REDACTED || value.contains(SIGNATURE_REDACTED_MARK)
}

/// An ordered list of `(name, value)` pairs with lower-cased names. It
/// serialises as a JSON object in order (`{"content-type": "…"}`); a repeated
/// name keeps every value on the way in and the first on the way out of JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderList(Vec<(String, String)>);

impl Serialize for HeaderList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        let mut seen = std::collections::HashSet::new();
        for (n, v) in &self.0 {
            if seen.insert(n.as_str()) {
                map.serialize_entry(n, v)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for HeaderList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HeaderList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of header names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<HeaderList, A::Error> {
                let mut out = Vec::new();
                while let Some((n, v)) = access.next_entry::<String, String>()? {
                    out.push((n.to_ascii_lowercase(), v));
                }
                Ok(HeaderList(out))
            }
        }
        deserializer.deserialize_map(V)
    }
}

impl HeaderList {
    /// An empty list.
    pub fn new() -> Self {
        HeaderList(Vec::new())
    }

    /// Builds a list from pairs, lower-casing the names.
    pub fn from_pairs<I, N, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: Into<String>,
    {
        HeaderList(
            pairs
                .into_iter()
                .map(|(n, v)| (n.as_ref().to_ascii_lowercase(), v.into()))
                .collect(),
        )
    }

    /// Appends a header.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_ascii_lowercase(), value.into()));
    }

    /// The first value of `name` (any case), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first non-empty, trimmed value of `name`.
    pub fn get_trimmed(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Iterates over the pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The list with every credential replaced by [`REDACTED`]: the fixed
    /// [`CREDENTIAL_HEADERS`] and any names in `extra` (a trigger's API-key
    /// header, for example). It takes the list and changes only those
    /// values: every stored header list read back is redacted again (a
    /// change-feed page reads a thousand), and copying each list twice to do
    /// it cost the feed's page about a quarter of its time on headers.
    #[must_use]
    pub fn redacted(self, extra: &[&str]) -> HeaderList {
        self.replacing(CREDENTIAL_HEADERS, extra, |v| {
            (v != REDACTED).then(|| REDACTED.to_string())
        })
    }

    /// The list with every signature reduced by [`redact_signature`]: the
    /// fixed [`SIGNATURE_HEADERS`] and any names in `extra` (a generic
    /// trigger's signature header). Applying it twice changes nothing.
    #[must_use]
    pub fn signatures_redacted(self, extra: &[&str]) -> HeaderList {
        self.replacing(SIGNATURE_HEADERS, extra, |v| {
            (!is_redacted(v)).then(|| redact_signature(v))
        })
    }

    /// The list with the values of the headers named in `fixed`
    /// (lower-case) or `extra` (any case) replaced by what `replace` gives
    /// (`None`: left as it is).
    fn replacing(
        mut self,
        fixed: &[&str],
        extra: &[&str],
        replace: impl Fn(&str) -> Option<String>,
    ) -> HeaderList {
        for (n, v) in &mut self.0 {
            let named =
                fixed.contains(&n.as_str()) || extra.iter().any(|e| e.eq_ignore_ascii_case(n));
            if named {
                if let Some(new) = replace(v) {
                    *v = new;
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive() {
        let h = HeaderList::from_pairs([("X-GitHub-Event", "push")]);
        assert_eq!(h.get("x-github-event"), Some("push"));
        assert_eq!(h.get("X-GITHUB-EVENT"), Some("push"));
        assert_eq!(h.get("x-other"), None);
    }

    #[test]
    fn serialises_as_an_ordered_object() {
        let h = HeaderList::from_pairs([("B", "1"), ("a", "2")]);
        let text = serde_json::to_string(&h).expect("json");
        assert_eq!(text, r#"{"b":"1","a":"2"}"#);
        let back: HeaderList = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, h);
    }

    #[test]
    fn redaction_covers_fixed_and_extra_names() {
        let h = HeaderList::from_pairs([
            ("Authorization", "Bearer abc"),
            ("X-Gitlab-Token", "glt"),
            ("X-My-Key", "k"),
            ("X-Hub-Signature-256", "sha256=00"),
        ]);
        let r = h.clone().redacted(&["x-my-key"]);
        assert_eq!(r.clone().redacted(&["x-my-key"]), r, "idempotent");
        assert_eq!(h.len(), r.len());
        assert_eq!(r.get("authorization"), Some(REDACTED));
        assert_eq!(r.get("x-gitlab-token"), Some(REDACTED));
        assert_eq!(r.get("x-my-key"), Some(REDACTED));
        assert_eq!(r.get("x-hub-signature-256"), Some("sha256=00"));
    }

    #[test]
    fn signatures_keep_their_scheme_and_a_fingerprint_only() {
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let h = HeaderList::from_pairs([
            ("X-Hub-Signature-256", sig),
            ("Stripe-Signature", "t=1700000000,v1=abcdef0123"),
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            ("X-Shopify-Hmac-Sha256", "dGVzdA=="),
            ("X-Custom-Sig", "deadbeef"),
            ("X-GitHub-Event", "push"),
        ]);
        let r = h.signatures_redacted(&["x-custom-sig"]);
        let gh = r.get("x-hub-signature-256").expect("kept");
        assert!(gh.starts_with("sha256=[redacted fp="), "{gh}");
        assert!(!gh.contains("757107ea0eb2"));
        assert!(r
            .get("webhook-signature")
            .is_some_and(|v| v.starts_with("v1,[redacted fp=")));
        assert!(r
            .get("x-shopify-hmac-sha256")
            .is_some_and(|v| v.starts_with("[redacted fp=")));
        assert!(r.get("x-custom-sig").is_some_and(is_redacted));
        assert!(r
            .get("stripe-signature")
            .is_some_and(|v| !v.contains("abcdef0123")));
        assert_eq!(r.get("x-github-event"), Some("push"));
        // Distinct signatures stay distinguishable; redaction is idempotent.
        assert_ne!(redact_signature("sha256=00"), redact_signature("sha256=01"));
        assert_eq!(r.clone().signatures_redacted(&["x-custom-sig"]), r);
    }
}
