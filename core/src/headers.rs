//! A small, case-insensitive header list.
//!
//! The core sees request headers as an ordered list of lower-cased names and
//! values, independent of any HTTP library, and stores them the same way.

use serde::{Deserialize, Serialize};

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

/// An ordered list of `(name, value)` pairs with lower-cased names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HeaderList(Vec<(String, String)>);

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

    /// A copy with every credential replaced by [`REDACTED`]: the fixed
    /// [`CREDENTIAL_HEADERS`] and any names in `extra` (a trigger's API-key
    /// header, for example).
    pub fn redacted(&self, extra: &[&str]) -> HeaderList {
        HeaderList(
            self.0
                .iter()
                .map(|(n, v)| {
                    let secret = CREDENTIAL_HEADERS.contains(&n.as_str())
                        || extra.iter().any(|e| e.eq_ignore_ascii_case(n));
                    let v = if secret {
                        REDACTED.to_string()
                    } else {
                        v.clone()
                    };
                    (n.clone(), v)
                })
                .collect(),
        )
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
    fn redaction_covers_fixed_and_extra_names() {
        let h = HeaderList::from_pairs([
            ("Authorization", "Bearer abc"),
            ("X-Gitlab-Token", "glt"),
            ("X-My-Key", "k"),
            ("X-Hub-Signature-256", "sha256=00"),
        ]);
        let r = h.redacted(&["x-my-key"]);
        assert_eq!(r.get("authorization"), Some(REDACTED));
        assert_eq!(r.get("x-gitlab-token"), Some(REDACTED));
        assert_eq!(r.get("x-my-key"), Some(REDACTED));
        assert_eq!(r.get("x-hub-signature-256"), Some("sha256=00"));
    }
}
