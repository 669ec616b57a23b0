//! Signature verification, one function per provider scheme.
//!
//! Every scheme is a separate function rather than one function with flags, in
//! the manner of svix's `webhooks.rs`: header names and tolerances are named
//! constants, every MAC comparison goes through `hmac`'s constant-time
//! `verify_slice`, and every token comparison through [`Secret::matches`].
//! Timestamped schemes take the receive time as an argument; nothing here reads
//! a clock.
//!
//! Rotation is handled one level up by [`verify_with_rotation`], which tries
//! the current secret and then, during its grace period, the previous one, and
//! reports which one matched.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use crate::encoding::{b64, b64_decode};
use crate::error::VerifyError;
use crate::headers::HeaderList;
use crate::secret::Secret;
use crate::time::Timestamp;

/// Tolerance between a signed timestamp and the receive time, by default.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

/// GitHub: `sha256=<hex HMAC-SHA256 of the body>`.
pub const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The prefix of GitHub's signature value.
pub const GITHUB_SIGNATURE_PREFIX: &str = "sha256=";
/// Stripe: `t=<unix>,v1=<hex>[,v1=<hex>…][,v0=…]`.
pub const STRIPE_SIGNATURE_HEADER: &str = "stripe-signature";
/// Slack: `v0=<hex HMAC-SHA256 of "v0:{ts}:{body}">`.
pub const SLACK_SIGNATURE_HEADER: &str = "x-slack-signature";
/// Slack's signed timestamp (Unix seconds).
pub const SLACK_TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
/// Shopify: base64 HMAC-SHA256 of the body.
pub const SHOPIFY_HMAC_HEADER: &str = "x-shopify-hmac-sha256";
/// Standard Webhooks message id.
pub const STANDARD_ID_HEADER: &str = "webhook-id";
/// Standard Webhooks timestamp (Unix seconds).
pub const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Standard Webhooks signatures: `v1,<base64> [v1,<base64> …]`.
pub const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";
/// Svix's spelling of [`STANDARD_ID_HEADER`].
pub const SVIX_ID_HEADER: &str = "svix-id";
/// Svix's spelling of [`STANDARD_TIMESTAMP_HEADER`].
pub const SVIX_TIMESTAMP_HEADER: &str = "svix-timestamp";
/// Svix's spelling of [`STANDARD_SIGNATURE_HEADER`].
pub const SVIX_SIGNATURE_HEADER: &str = "svix-signature";
/// The prefix of Standard Webhooks secrets.
pub const STANDARD_SECRET_PREFIX: &str = "whsec_";
/// GitLab: the secret token itself.
pub const GITLAB_TOKEN_HEADER: &str = "x-gitlab-token";
/// Linear: hex HMAC-SHA256 of the body.
pub const LINEAR_SIGNATURE_HEADER: &str = "linear-signature";
/// Linear's signed timestamp, a body field in Unix milliseconds.
pub const LINEAR_TIMESTAMP_FIELD: &str = "webhookTimestamp";
/// HTTP Basic credentials.
pub const AUTHORIZATION_HEADER: &str = "authorization";
/// The header an `api_key` trigger reads unless configured otherwise.
pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";

/// What the ledger records about a delivery's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureStatus {
    /// A signature matched a valid secret.
    Valid,
    /// No signature (or no credential) was presented.
    Missing,
    /// A signature was presented and did not match.
    Invalid,
    /// The signature header could not be parsed.
    Malformed,
    /// The signature matched but its timestamp is outside the tolerance.
    OutOfTolerance,
    /// The trigger has no secret, so nothing can be verified (fail closed).
    NoSecret,
    /// The trigger's secret is not usable for its provider.
    Misconfigured,
    /// An operator's replay: not re-verified by design.
    Replay,
}

impl SignatureStatus {
    /// The snake-case name used in the API and the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureStatus::Valid => "valid",
            SignatureStatus::Missing => "missing",
            SignatureStatus::Invalid => "invalid",
            SignatureStatus::Malformed => "malformed",
            SignatureStatus::OutOfTolerance => "out_of_tolerance",
            SignatureStatus::NoSecret => "no_secret",
            SignatureStatus::Misconfigured => "misconfigured",
            SignatureStatus::Replay => "replay",
        }
    }
}

/// Which of a trigger's secrets verified a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSlot {
    /// The current secret.
    Current,
    /// The previous secret, inside its rotation grace period.
    Previous,
}

impl SecretSlot {
    /// The snake-case name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretSlot::Current => "current",
            SecretSlot::Previous => "previous",
        }
    }
}

/// The secrets a delivery may be verified with.
#[derive(Debug, Clone, Copy)]
pub struct SecretSet<'a> {
    /// The current secret; `None` fails closed.
    pub current: Option<&'a Secret>,
    /// The previous secret, only while its grace period lasts.
    pub previous: Option<&'a Secret>,
}

/// Runs `check` with the current secret and, if that fails in a way another
/// secret could fix, with the previous one.
///
/// A trigger with no current secret fails closed with
/// [`VerifyError::NoSecret`], even if a previous secret is still in grace.
pub fn verify_with_rotation<F>(
    secrets: SecretSet<'_>,
    mut check: F,
) -> Result<SecretSlot, VerifyError>
where
    F: FnMut(&Secret) -> Result<(), VerifyError>,
{
    let current = secrets.current.ok_or(VerifyError::NoSecret)?;
    let first = match check(current) {
        Ok(()) => return Ok(SecretSlot::Current),
        Err(e) => e,
    };
    if !first.depends_on_secret() {
        return Err(first);
    }
    if let Some(previous) = secrets.previous {
        match check(previous) {
            Ok(()) => return Ok(SecretSlot::Previous),
            // The previous secret may get further (a timestamp check after a
            // matching signature); that error is the more useful one.
            Err(e) if !e.depends_on_secret() => return Err(e),
            Err(_) => {}
        }
    }
    Err(first)
}

/// The hash functions a `generic` trigger can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    /// HMAC-SHA1, for legacy senders only.
    Sha1,
    /// HMAC-SHA256, the default.
    #[default]
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// How a `generic` signature is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    /// Hexadecimal, either case. The default.
    #[default]
    Hex,
    /// Standard base64.
    Base64,
}

/// The shape of a `generic` HMAC scheme.
#[derive(Debug, Clone, Copy)]
pub struct GenericScheme<'a> {
    /// The header carrying the signature.
    pub header: &'a str,
    /// The hash function.
    pub algorithm: HmacAlgorithm,
    /// How the signature is encoded.
    pub encoding: SignatureEncoding,
    /// A prefix before the encoded signature, such as `sha256=`; may be empty.
    pub prefix: &'a str,
}

/// Verifies `tag` as the HMAC of the concatenated `parts` under `key`, in
/// constant time.
fn hmac_matches<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
        return false;
    };
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(tag).is_ok()
}

/// HMAC-SHA256 of the concatenated `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn required<'h>(headers: &'h HeaderList, name: &'static str) -> Result<&'h str, VerifyError> {
    headers
        .get_trimmed(name)
        .ok_or(VerifyError::MissingHeader(name))
}

fn parse_unix_seconds(value: &str, header: &'static str) -> Result<i64, VerifyError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| VerifyError::MalformedHeader(header))
}

/// Checks that `signed_at` (Unix seconds) is within `tolerance_secs` of `now`,
/// in either direction.
pub fn check_timestamp(
    signed_at: i64,
    now: Timestamp,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let skew = now.secs().saturating_sub(signed_at).unsigned_abs();
    if skew > tolerance_secs {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    Ok(())
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the raw body.
pub fn verify_github(
    secret: &Secret,
    headers: &HeaderList,
    body: &[u8],
) -> Result<(), VerifyError> {
    let value = required(headers, GITHUB_SIGNATURE_HEADER)?;
    let hex_sig = value
        .strip_prefix(GITHUB_SIGNATURE_PREFIX)
        .ok_or(VerifyError::MalformedHeader(GITHUB_SIGNATURE_HEADER))?;
    let tag =
        hex::decode(hex_sig).map_err(|_| VerifyError::MalformedHeader(GITHUB_SIGNATURE_HEADER))?;
    if hmac_matches::<Hmac<Sha256>>(secret.expose_bytes(), &[body], &tag) {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// Stripe: `Stripe-Signature: t=..,v1=..` over `{t}.{body}`, with the secret's
/// bytes as given (including `whsec_`) as the key. Any one `v1` may match;
/// `v0` and unknown schemes are ignored.
pub fn verify_stripe(
    secret: &Secret,
    headers: &HeaderList,
    body: &[u8],
    now: Timestamp,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let value = required(headers, STRIPE_SIGNATURE_HEADER)?;
    let mut timestamp: Option<&str> = None;
    let mut signatures = Vec::new();
    for item in value.split(',') {
        let Some((key, val)) = item.trim().split_once('=') else {
            return Err(VerifyError::MalformedHeader(STRIPE_SIGNATURE_HEADER));
        };
        match key {
            "t" if timestamp.is_none() => timestamp = Some(val),
            // Stripe may send several v1 signatures while a secret rolls.
            "v1" => signatures.push(val),
            _ => {}
        }
    }
    let t = timestamp.ok_or(VerifyError::MalformedHeader(STRIPE_SIGNATURE_HEADER))?;
    let signed_at = parse_unix_seconds(t, STRIPE_SIGNATURE_HEADER)?;
    if signatures.is_empty() {
        return Err(VerifyError::NoSupportedSignature);
    }
    let matched = signatures.iter().any(|sig| {
        hex::decode(sig).is_ok_and(|tag| {
            hmac_matches::<Hmac<Sha256>>(secret.expose_bytes(), &[t.as_bytes(), b".", body], &tag)
        })
    });
    if !matched {
        return Err(VerifyError::SignatureMismatch);
    }
    check_timestamp(signed_at, now, tolerance_secs)
}

/// Slack: `X-Slack-Signature: v0=<hex>` over `v0:{ts}:{body}`, with
/// `X-Slack-Request-Timestamp` inside the tolerance.
pub fn verify_slack(
    secret: &Secret,
    headers: &HeaderList,
    body: &[u8],
    now: Timestamp,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let ts = required(headers, SLACK_TIMESTAMP_HEADER)?;
    let value = required(headers, SLACK_SIGNATURE_HEADER)?;
    let signed_at = parse_unix_seconds(ts, SLACK_TIMESTAMP_HEADER)?;
    let hex_sig = value
        .strip_prefix("v0=")
        .ok_or(VerifyError::NoSupportedSignature)?;
    let tag =
        hex::decode(hex_sig).map_err(|_| VerifyError::MalformedHeader(SLACK_SIGNATURE_HEADER))?;
    if !hmac_matches::<Hmac<Sha256>>(
        secret.expose_bytes(),
        &[b"v0:", ts.as_bytes(), b":", body],
        &tag,
    ) {
        return Err(VerifyError::SignatureMismatch);
    }
    check_timestamp(signed_at, now, tolerance_secs)
}

/// Shopify: `X-Shopify-Hmac-Sha256: <base64>` over the raw body.
pub fn verify_shopify(
    secret: &Secret,
    headers: &HeaderList,
    body: &[u8],
) -> Result<(), VerifyError> {
    let value = required(headers, SHOPIFY_HMAC_HEADER)?;
    let tag = b64_decode(value).ok_or(VerifyError::MalformedHeader(SHOPIFY_HMAC_HEADER))?;
    if hmac_matches::<Hmac<Sha256>>(secret.expose_bytes(), &[body], &tag) {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// Decodes a Standard Webhooks secret: base64 after an optional `whsec_`.
pub fn standard_key(secret: &Secret) -> Result<Vec<u8>, VerifyError> {
    let text = secret.expose();
    let encoded = text.strip_prefix(STANDARD_SECRET_PREFIX).unwrap_or(text);
    match b64_decode(encoded) {
        Some(key) if !key.is_empty() => Ok(key),
        _ => Err(VerifyError::InvalidSecret),
    }
}

/// Standard Webhooks (and Svix): `webhook-signature: v1,<b64> ...` over
/// `{webhook-id}.{webhook-timestamp}.{body}` with the base64-decoded secret.
/// The `svix-*` header names are accepted when the `webhook-*` ones are absent.
pub fn verify_standard(
    secret: &Secret,
    headers: &HeaderList,
    body: &[u8],
    now: Timestamp,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let svix = headers.get_trimmed(STANDARD_ID_HEADER).is_none()
        && headers.get_trimmed(SVIX_ID_HEADER).is_some();
    let (id_h, ts_h, sig_h) = if svix {
        (SVIX_ID_HEADER, SVIX_TIMESTAMP_HEADER, SVIX_SIGNATURE_HEADER)
    } else {
        (
            STANDARD_ID_HEADER,
            STANDARD_TIMESTAMP_HEADER,
            STANDARD_SIGNATURE_HEADER,
        )
    };
    let id = required(headers, id_h)?;
    let ts = required(headers, ts_h)?;
    let sigs = required(headers, sig_h)?;
    let signed_at = parse_unix_seconds(ts, ts_h)?;
    let key = standard_key(secret)?;
    let mut any_v1 = false;
    let mut matched = false;
    for entry in sigs.split_whitespace() {
        let Some((version, sig)) = entry.split_once(',') else {
            continue;
        };
        if version != "v1" {
            continue;
        }
        any_v1 = true;
        if let Some(tag) = b64_decode(sig) {
            if hmac_matches::<Hmac<Sha256>>(
                &key,
                &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
                &tag,
            ) {
                matched = true;
            }
        }
    }
    if !any_v1 {
        return Err(VerifyError::NoSupportedSignature);
    }
    if !matched {
        return Err(VerifyError::SignatureMismatch);
    }
    check_timestamp(signed_at, now, tolerance_secs)
}

/// Signs a Standard Webhooks message: `v1,<base64 HMAC-SHA256>` of
/// `{id}.{timestamp}.{body}` under the decoded key.
pub fn sign_standard(key: &[u8], id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let ts = timestamp_secs.to_string();
    let tag = hmac_sha256(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", b64(&tag))
}

/// GitLab: `X-Gitlab-Token` equals the secret, compared in constant time.
pub fn verify_gitlab(secret: &Secret, headers: &HeaderList) -> Result<(), VerifyError> {
    let token = required(headers, GITLAB_TOKEN_HEADER)?;
    if secret.matches(token.as_bytes()) {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// Linear: `Linear-Signature: <hex>` over the raw body; when the body carries
/// `webhookTimestamp` (milliseconds), it must be inside the tolerance.
pub fn verify_linear(
    secret: &Secret,
    headers: &HeaderList,
    body: &[u8],
    now: Timestamp,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let value = required(headers, LINEAR_SIGNATURE_HEADER)?;
    let tag =
        hex::decode(value).map_err(|_| VerifyError::MalformedHeader(LINEAR_SIGNATURE_HEADER))?;
    if !hmac_matches::<Hmac<Sha256>>(secret.expose_bytes(), &[body], &tag) {
        return Err(VerifyError::SignatureMismatch);
    }
    let stamp = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get(LINEAR_TIMESTAMP_FIELD)
                .and_then(serde_json::Value::as_i64)
        });
    // Without a signed timestamp a captured delivery could be replayed
    // forever: fail closed.
    match stamp {
        Some(ms) => check_timestamp(ms.div_euclid(1000), now, tolerance_secs),
        None => Err(VerifyError::MissingTimestamp(LINEAR_TIMESTAMP_FIELD)),
    }
}

/// A configurable HMAC over the raw body, for senders with their own scheme.
pub fn verify_generic(
    secret: &Secret,
    scheme: GenericScheme<'_>,
    headers: &HeaderList,
    body: &[u8],
) -> Result<(), VerifyError> {
    let header: &'static str = "signature header";
    let value = headers
        .get_trimmed(scheme.header)
        .ok_or(VerifyError::MissingHeader(header))?;
    let encoded = if scheme.prefix.is_empty() {
        value
    } else {
        value
            .strip_prefix(scheme.prefix)
            .ok_or(VerifyError::MalformedHeader(header))?
    };
    let tag = match scheme.encoding {
        SignatureEncoding::Hex => hex::decode(encoded).ok(),
        SignatureEncoding::Base64 => b64_decode(encoded),
    }
    .ok_or(VerifyError::MalformedHeader(header))?;
    let key = secret.expose_bytes();
    let ok = match scheme.algorithm {
        HmacAlgorithm::Sha1 => hmac_matches::<Hmac<Sha1>>(key, &[body], &tag),
        HmacAlgorithm::Sha256 => hmac_matches::<Hmac<Sha256>>(key, &[body], &tag),
        HmacAlgorithm::Sha512 => hmac_matches::<Hmac<Sha512>>(key, &[body], &tag),
    };
    if ok {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// HTTP Basic: the user and password both equal the configured ones, compared
/// in constant time (both are always compared, so timing tells nothing).
pub fn verify_basic(
    username: &str,
    secret: &Secret,
    headers: &HeaderList,
) -> Result<(), VerifyError> {
    let value = required(headers, AUTHORIZATION_HEADER)?;
    let (scheme, encoded) = value
        .split_once(' ')
        .ok_or(VerifyError::MalformedHeader(AUTHORIZATION_HEADER))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(VerifyError::MalformedHeader(AUTHORIZATION_HEADER));
    }
    let decoded =
        b64_decode(encoded.trim()).ok_or(VerifyError::MalformedHeader(AUTHORIZATION_HEADER))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| VerifyError::MalformedHeader(AUTHORIZATION_HEADER))?;
    let (user, password) = text
        .split_once(':')
        .ok_or(VerifyError::MalformedHeader(AUTHORIZATION_HEADER))?;
    let user_ok = crate::secret::constant_time_eq(user.as_bytes(), username.as_bytes());
    let password_ok = secret.matches(password.as_bytes());
    if user_ok & password_ok {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// API key: the configured header equals the secret, in constant time. When
/// the header is `Authorization`, a `Bearer ` prefix is allowed.
pub fn verify_api_key(
    header: &str,
    secret: &Secret,
    headers: &HeaderList,
) -> Result<(), VerifyError> {
    let value = headers
        .get_trimmed(header)
        .ok_or(VerifyError::MissingHeader("api key header"))?;
    let value = if header.eq_ignore_ascii_case(AUTHORIZATION_HEADER) {
        value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value)
    } else {
        value
    };
    if secret.matches(value.as_bytes()) {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

#[cfg(test)]
mod tests;
