//! The core's error types, one small enum per concern.
//!
//! [`VerifyError`] says why a delivery's signature was not accepted; the
//! Worker maps it to `401 invalid_signature` and stores its
//! [`SignatureStatus`](crate::verify::SignatureStatus). [`ConfigError`] says
//! which field of a trigger request is wrong; the Worker maps it to
//! `400 invalid_request`. Neither ever carries a secret.

use crate::verify::SignatureStatus;

/// Why a delivery failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The trigger's provider needs a secret and none is configured: fail closed.
    NoSecret,
    /// The configured secret cannot be used for this scheme (for example a
    /// Standard Webhooks secret that is not base64).
    InvalidSecret,
    /// A header the scheme requires is absent or empty.
    MissingHeader(&'static str),
    /// A header is present but not in the scheme's format.
    MalformedHeader(&'static str),
    /// The signature header carries no signature of a version we verify (for
    /// example a Stripe header with only `v0`).
    NoSupportedSignature,
    /// The signed timestamp is further from the receive time than the tolerance.
    TimestampOutOfTolerance,
    /// A scheme that signs a timestamp in the body has none there.
    MissingTimestamp(&'static str),
    /// No signature matched any valid secret.
    SignatureMismatch,
}

impl VerifyError {
    /// The status stored in the ledger for a delivery rejected with this error.
    pub fn signature_status(&self) -> SignatureStatus {
        match self {
            VerifyError::NoSecret => SignatureStatus::NoSecret,
            VerifyError::InvalidSecret => SignatureStatus::Misconfigured,
            VerifyError::MissingHeader(_) | VerifyError::NoSupportedSignature => {
                SignatureStatus::Missing
            }
            VerifyError::MalformedHeader(_) => SignatureStatus::Malformed,
            VerifyError::TimestampOutOfTolerance | VerifyError::MissingTimestamp(_) => {
                SignatureStatus::OutOfTolerance
            }
            VerifyError::SignatureMismatch => SignatureStatus::Invalid,
        }
    }

    /// Whether trying another secret could change the outcome.
    pub(crate) fn depends_on_secret(&self) -> bool {
        matches!(
            self,
            VerifyError::SignatureMismatch | VerifyError::InvalidSecret
        )
    }
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::NoSecret => f.write_str("the trigger has no signing secret"),
            VerifyError::InvalidSecret => {
                f.write_str("the trigger's signing secret is not valid for this provider")
            }
            VerifyError::MissingHeader(h) => write!(f, "missing header {h}"),
            VerifyError::MalformedHeader(h) => write!(f, "malformed header {h}"),
            VerifyError::NoSupportedSignature => f.write_str("no signature of a supported version"),
            VerifyError::TimestampOutOfTolerance => f.write_str("timestamp outside the tolerance"),
            VerifyError::MissingTimestamp(field) => write!(f, "missing signed timestamp {field}"),
            VerifyError::SignatureMismatch => f.write_str("signature does not match"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// A trigger request that cannot be accepted, naming the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The JSON field at fault (a path such as `filter.body.action` for a
    /// nested one).
    pub field: String,
    /// What is wrong with it, for a person.
    pub message: String,
}

impl ConfigError {
    /// A new error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl From<crate::filter::FilterError> for ConfigError {
    fn from(e: crate::filter::FilterError) -> Self {
        ConfigError {
            field: e.field,
            message: e.message,
        }
    }
}
