//! Secrets that cannot leak by accident.
//!
//! A [`Secret`] formats as `[redacted]` under `Debug` and has no `Display`, so
//! it cannot end up in a log line or an error message through formatting; the
//! only way to its bytes is the explicit [`Secret::expose`].

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How many trailing characters a hint shows.
pub const HINT_CHARS: usize = 4;
/// The shortest secret that gets a hint: a hint then shows at most a quarter
/// of it. Secrets stored before the minimum lengths existed may be shorter.
pub const HINT_MIN_CHARS: usize = 16;

/// A signing secret, token or password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's text. Call sites are the few places that really need it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret's bytes, as HMAC keys take them.
    pub fn expose_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The last [`HINT_CHARS`] characters, which operators use to tell
    /// secrets apart; `None` for a secret shorter than [`HINT_MIN_CHARS`],
    /// where a hint would give away too much of it.
    pub fn hint(&self) -> Option<String> {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < HINT_MIN_CHARS {
            return None;
        }
        Some(chars[chars.len() - HINT_CHARS..].iter().collect())
    }

    /// Compares `candidate` with this secret in constant time.
    ///
    /// Both sides are hashed first so that neither the length nor the content
    /// of the secret shows in the timing.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(candidate);
        a.ct_eq(&b).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Compares two byte strings in constant time, whatever their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let a = Sha256::digest(a);
    let b = Sha256::digest(b);
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2-very-secret");
        let shown = format!("{s:?} {:?}", Some(&s));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn hint_is_last_four_characters_of_a_long_enough_secret() {
        assert_eq!(
            Secret::new("0123456789abcdefgh").hint().as_deref(),
            Some("efgh")
        );
        assert_eq!(
            Secret::new("ünïcødé-ünïcødé-ünïcødé").hint().as_deref(),
            Some("cødé")
        );
        // A short secret would be given away whole, or nearly: no hint.
        assert_eq!(Secret::new("ab").hint(), None);
        assert_eq!(Secret::new("abcdefgh").hint(), None);
        assert_eq!(Secret::new("0123456789abcde").hint(), None);
    }

    #[test]
    fn matches_is_exact() {
        let s = Secret::new("token-1");
        assert!(s.matches(b"token-1"));
        assert!(!s.matches(b"token-2"));
        assert!(!s.matches(b"token-1 "));
        assert!(!s.matches(b""));
    }
}
