//! A trigger's configuration: defaults, validation, patches and rotation.
//!
//! [`TriggerConfig`] is what the trigger's Durable Object stores. It holds the
//! signing secrets, so it is never serialised into a response: the API shows
//! [`crate::api::TriggerView`] instead. Requests are parsed into
//! [`TriggerCreate`] and [`TriggerPatch`], which refuse unknown fields, and
//! every bound is checked here so that the Worker cannot store a trigger that
//! would misbehave later.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ConfigError;
use crate::provider::{KeySources, Provider};
use crate::secret::Secret;
use crate::time::Timestamp;
use crate::verify::{self, HmacAlgorithm, SecretSet, SignatureEncoding};
use crate::weburl::UrlParser;

/// Largest body a trigger accepts by default (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Largest `max_body_bytes` a trigger may set (10 MiB).
pub const MAX_BODY_BYTES_LIMIT: u64 = 10 * 1024 * 1024;
/// How long deliveries are kept by default.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// Longest retention a trigger may set.
pub const MAX_RETENTION_DAYS: u32 = 365;
/// The dedupe window by default: as long as the default retention, so a
/// provider's retry is collapsed for as long as the ledger remembers.
pub const DEFAULT_DEDUPE_WINDOW_SECONDS: u64 = 30 * 86_400;
/// Longest dedupe window a trigger may set.
pub const MAX_DEDUPE_WINDOW_SECONDS: u64 = 365 * 86_400;
/// Longest timestamp tolerance a trigger may set.
pub const MAX_TOLERANCE_SECONDS: u64 = 86_400;
/// Dispatch attempts before a run fails, by default.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// Most dispatch attempts a trigger may set.
pub const MAX_ATTEMPTS_LIMIT: u32 = 50;
/// First retry delay by default; each later one doubles.
pub const DEFAULT_RETRY_BASE_SECONDS: u32 = 10;
/// Longest first retry delay a trigger may set.
pub const MAX_RETRY_BASE_SECONDS: u32 = 3600;
/// How long one dispatch may take by default.
pub const DEFAULT_TARGET_TIMEOUT_SECONDS: u32 = 30;
/// Longest dispatch timeout a trigger may set.
pub const MAX_TARGET_TIMEOUT_SECONDS: u32 = 120;
/// Requests per second a trigger accepts by default.
pub const DEFAULT_RATE_LIMIT_PER_SECOND: u32 = 1000;
/// Requests per second one client IP may send to a trigger by default.
pub const DEFAULT_RATE_LIMIT_PER_IP_PER_SECOND: u32 = 1000;
/// How long a rotated-out secret stays valid by default.
pub const DEFAULT_SECRET_GRACE_SECONDS: u64 = 86_400;
/// Longest rotation grace period.
pub const MAX_SECRET_GRACE_SECONDS: u64 = 30 * 86_400;
/// The header a `generic` trigger reads its signature from by default.
pub const DEFAULT_SIGNATURE_HEADER: &str = "x-signature";
/// Longest trigger name.
pub const MAX_NAME_LEN: usize = 200;
/// Longest secret.
pub const MAX_SECRET_LEN: usize = 1024;
/// Most entries in `event_types`.
pub const MAX_EVENT_TYPES: usize = 100;
/// Bytes a trigger's ledger may hold by default before new deliveries are
/// refused with 507 (1 GiB; a Durable Object holds up to 10 GB).
pub const DEFAULT_STORAGE_BUDGET_BYTES: u64 = 1024 * 1024 * 1024;
/// The smallest storage budget that can be set (1 MiB).
pub const MIN_STORAGE_BUDGET_BYTES: u64 = 1024 * 1024;
/// The largest storage budget that can be set (9 GiB, under the object limit).
pub const MAX_STORAGE_BUDGET_BYTES: u64 = 9 * 1024 * 1024 * 1024;

/// Everything a trigger's Durable Object knows about its trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerConfig {
    /// The trigger id (`trg_…`).
    pub id: String,
    /// A person's name for it.
    pub name: String,
    /// Who sends to it.
    pub provider: Provider,
    /// Disabled triggers store deliveries as `ignored`.
    pub enabled: bool,
    /// Where runs are POSTed; `None` makes the ledger the only output.
    pub target_url: Option<String>,
    /// Event filter; empty passes everything.
    pub event_types: Vec<String>,
    /// Duplicates within this many seconds of their holder are collapsed.
    pub dedupe_window_seconds: u64,
    /// Allowed skew of signed timestamps.
    pub tolerance_seconds: u64,
    /// Larger bodies get 413.
    pub max_body_bytes: u64,
    /// Deliveries older than this many days are deleted.
    pub retention_days: u32,
    /// Dispatch attempts before a run fails.
    pub max_attempts: u32,
    /// First retry delay in seconds.
    pub retry_base_seconds: u32,
    /// Timeout of one dispatch.
    pub target_timeout_seconds: u32,
    /// Dedupe on the body's hash when the provider gives no key (opt-in).
    pub dedupe_body_hash: bool,
    /// Requests per second accepted for this trigger; `None` is the default.
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
    /// Requests per second accepted from one client IP; `None` is the default.
    #[serde(default)]
    pub rate_limit_per_ip_per_second: Option<u32>,
    /// `generic`: the signature header.
    pub signature_header: String,
    /// `generic`: the hash function.
    pub signature_algorithm: HmacAlgorithm,
    /// `generic`: the signature's encoding.
    pub signature_encoding: SignatureEncoding,
    /// `generic`: a prefix before the signature.
    pub signature_prefix: String,
    /// `generic`, `basic`, `api_key`: a header with the dedupe key.
    pub dedupe_header: Option<String>,
    /// `generic`, `basic`, `api_key`: a JSON pointer to the dedupe key.
    pub dedupe_json_pointer: Option<String>,
    /// `generic`, `basic`, `api_key`: a header with the event type.
    pub event_type_header: Option<String>,
    /// `generic`, `basic`, `api_key`: a JSON pointer to the event type.
    pub event_type_json_pointer: Option<String>,
    /// `basic`: the expected user name.
    pub basic_username: Option<String>,
    /// `api_key`: the header carrying the key.
    pub api_key_header: String,
    /// The current secret.
    pub signing_secret: Option<Secret>,
    /// The secret before the last rotation.
    pub previous_secret: Option<Secret>,
    /// When [`Self::previous_secret`] stops being accepted.
    pub previous_secret_expires_at: Option<Timestamp>,
    /// When the secret last changed.
    pub secret_updated_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change; strictly increasing, so copies of the trigger elsewhere
    /// (the registry, PostgreSQL) can refuse to go backwards.
    pub updated_at: Timestamp,
    /// Bytes the ledger may hold; `None` is the default.
    #[serde(default)]
    pub storage_budget_bytes: Option<u64>,
}

/// `POST /api/triggers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct TriggerCreate {
    pub name: String,
    pub provider: String,
    pub signing_secret: Option<String>,
    pub target_url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub dedupe_window_seconds: Option<u64>,
    pub tolerance_seconds: Option<u64>,
    pub max_body_bytes: Option<u64>,
    pub enabled: Option<bool>,
    pub retention_days: Option<u32>,
    pub max_attempts: Option<u32>,
    pub retry_base_seconds: Option<u32>,
    pub target_timeout_seconds: Option<u32>,
    pub dedupe_body_hash: Option<bool>,
    pub rate_limit_per_second: Option<u32>,
    pub rate_limit_per_ip_per_second: Option<u32>,
    pub signature_header: Option<String>,
    pub signature_algorithm: Option<HmacAlgorithm>,
    pub signature_encoding: Option<SignatureEncoding>,
    pub signature_prefix: Option<String>,
    pub dedupe_header: Option<String>,
    pub dedupe_json_pointer: Option<String>,
    pub event_type_header: Option<String>,
    pub event_type_json_pointer: Option<String>,
    pub basic_username: Option<String>,
    pub api_key_header: Option<String>,
    pub storage_budget_bytes: Option<u64>,
}

/// `PATCH /api/triggers/{id}`: absent fields stay, `null` clears a clearable one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct TriggerPatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    pub target_url: Option<Option<String>>,
    pub event_types: Option<Vec<String>>,
    pub dedupe_window_seconds: Option<u64>,
    pub tolerance_seconds: Option<u64>,
    pub max_body_bytes: Option<u64>,
    pub retention_days: Option<u32>,
    pub max_attempts: Option<u32>,
    pub retry_base_seconds: Option<u32>,
    pub target_timeout_seconds: Option<u32>,
    pub dedupe_body_hash: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    pub rate_limit_per_second: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double_option")]
    pub rate_limit_per_ip_per_second: Option<Option<u32>>,
    pub signature_header: Option<String>,
    pub signature_algorithm: Option<HmacAlgorithm>,
    pub signature_encoding: Option<SignatureEncoding>,
    pub signature_prefix: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub dedupe_header: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub dedupe_json_pointer: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub event_type_header: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub event_type_json_pointer: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub basic_username: Option<Option<String>>,
    pub api_key_header: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub storage_budget_bytes: Option<Option<u64>>,
    /// Setting the secret here is a rotation, exactly as the PUT route.
    pub signing_secret: Option<String>,
}

/// `PUT /api/triggers/{id}/signing-secret`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRotation {
    /// The new secret.
    pub secret: String,
    /// How long the old secret stays valid; default one day, 0 for none.
    pub grace_seconds: Option<u64>,
}

/// `POST /api/triggers/{id}/replay`: replay the deliveries matching a filter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkReplay {
    /// Only deliveries in this status (not `rejected`).
    pub status: Option<String>,
    /// Only deliveries received at or after this time (RFC 3339).
    pub received_after: Option<String>,
    /// Only deliveries received before this time (RFC 3339).
    pub received_before: Option<String>,
    /// Only deliveries of this event type.
    pub event_type: Option<String>,
    /// How many at most; required, so a mistaken filter cannot replay a
    /// trigger's whole history.
    pub limit: Option<u32>,
    /// Whether replays may be replayed again; by default only originals are
    /// selected, so a repeated bulk replay never replays its own replays.
    #[serde(default)]
    pub include_replays: bool,
    /// Only count and list what would be replayed; nothing is written.
    #[serde(default)]
    pub dry_run: bool,
}

/// Most deliveries one bulk replay may replay.
pub const MAX_BULK_REPLAY: u32 = 500;

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(crate) fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

pub(crate) fn check_range<T: PartialOrd + std::fmt::Display>(
    field: &'static str,
    v: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if v < min || v > max {
        return Err(ConfigError::new(
            field,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

pub(crate) fn check_name(name: &str) -> Result<String, ConfigError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ConfigError::new(
            "name",
            format!("must be 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ConfigError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

/// Checks a target URL: absolute http(s) with a host, no fragment. Returns
/// it as `urls` serializes it (`HTTPS://Bücher.example/a` becomes
/// `https://xn--bcher-kva.example/a`).
pub fn check_target_url(raw: &str, urls: &dyn UrlParser) -> Result<String, ConfigError> {
    let field = "target_url";
    if raw.len() > 2048 {
        return Err(ConfigError::new(field, "must be at most 2048 characters"));
    }
    let url = urls
        .parse(raw)
        .ok_or_else(|| ConfigError::new(field, "must be an absolute URL"))?;
    if url.scheme != "http" && url.scheme != "https" {
        return Err(ConfigError::new(field, "must use http or https"));
    }
    if url.host.is_empty() {
        return Err(ConfigError::new(field, "must have a host"));
    }
    if url.has_fragment() {
        return Err(ConfigError::new(field, "must not have a fragment"));
    }
    Ok(url.href)
}

/// Checks an `event_types` list: bounded, each entry printable.
pub fn check_event_types(types: Vec<String>) -> Result<Vec<String>, ConfigError> {
    if types.len() > MAX_EVENT_TYPES {
        return Err(ConfigError::new(
            "event_types",
            format!("at most {MAX_EVENT_TYPES} entries"),
        ));
    }
    types
        .into_iter()
        .map(|t| {
            let t = t.trim().to_string();
            if t.is_empty() || t.len() > 200 || t.chars().any(char::is_control) {
                Err(ConfigError::new(
                    "event_types",
                    "entries must be 1 to 200 printable characters",
                ))
            } else {
                Ok(t)
            }
        })
        .collect()
}

pub(crate) fn check_header_name(field: &'static str, raw: &str) -> Result<String, ConfigError> {
    let ok = !raw.is_empty()
        && raw.len() <= 100
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !ok {
        return Err(ConfigError::new(field, "must be a valid HTTP header name"));
    }
    Ok(raw.to_ascii_lowercase())
}

fn check_pointer(field: &'static str, raw: &str) -> Result<String, ConfigError> {
    if !raw.starts_with('/') || raw.len() > 200 {
        return Err(ConfigError::new(
            field,
            "must be a JSON pointer such as /data/id",
        ));
    }
    Ok(raw.to_string())
}

fn check_opt<F>(field: &'static str, v: Option<String>, f: F) -> Result<Option<String>, ConfigError>
where
    F: Fn(&'static str, &str) -> Result<String, ConfigError>,
{
    v.map(|s| f(field, &s)).transpose()
}

/// The shortest secret `provider` accepts, in bytes. For `standard` it is
/// the decoded key's length; for every other provider the secret's own.
///
/// Every provider that generates secrets makes them far longer (GitHub's
/// documentation suggests 32+ random characters, Stripe's `whsec_` keys are
/// 38, Slack's signing secrets 32, Standard Webhooks keys 24 bytes); a short
/// one is a typo or a guessable password, and a HMAC or token check is only
/// as strong as its secret.
pub fn min_secret_len(provider: Provider) -> usize {
    match provider {
        Provider::Standard => MIN_STANDARD_KEY_BYTES,
        _ => MIN_SECRET_LEN,
    }
}

/// The shortest secret accepted (bytes), except for `standard`.
pub const MIN_SECRET_LEN: usize = 16;
/// The shortest decoded Standard Webhooks key accepted (bytes).
pub const MIN_STANDARD_KEY_BYTES: usize = 16;

/// Checks a secret for `provider`: long enough, bounded, and decodable where
/// the provider needs a particular encoding.
pub fn check_secret(provider: Provider, raw: &str) -> Result<Secret, ConfigError> {
    let field = "signing_secret";
    let min = min_secret_len(provider);
    if raw.len() > MAX_SECRET_LEN {
        return Err(ConfigError::new(
            field,
            format!("must be at most {MAX_SECRET_LEN} bytes"),
        ));
    }
    let secret = Secret::new(raw);
    if provider == Provider::Standard {
        return match verify::standard_key(&secret) {
            Ok(key) if key.len() >= min => Ok(secret),
            Ok(_) => Err(ConfigError::new(
                field,
                format!("a Standard Webhooks key must decode to at least {min} bytes"),
            )),
            Err(_) => Err(ConfigError::new(
                field,
                "a Standard Webhooks secret is base64, optionally prefixed with whsec_",
            )),
        };
    }
    if raw.len() < min {
        return Err(ConfigError::new(
            field,
            format!(
                "must be at least {min} bytes for the {} provider",
                provider.as_str()
            ),
        ));
    }
    Ok(secret)
}

impl TriggerConfig {
    /// Builds and validates a new trigger.
    pub fn create(
        id: String,
        req: TriggerCreate,
        now: Timestamp,
        urls: &dyn UrlParser,
    ) -> Result<TriggerConfig, ConfigError> {
        let provider = Provider::parse(&req.provider).ok_or_else(|| {
            let names: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
            ConfigError::new("provider", format!("must be one of {}", names.join(", ")))
        })?;
        let mut cfg = TriggerConfig {
            id,
            name: check_name(&req.name)?,
            provider,
            enabled: req.enabled.unwrap_or(true),
            target_url: None,
            event_types: Vec::new(),
            dedupe_window_seconds: DEFAULT_DEDUPE_WINDOW_SECONDS,
            tolerance_seconds: verify::DEFAULT_TOLERANCE_SECONDS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            retention_days: DEFAULT_RETENTION_DAYS,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_base_seconds: DEFAULT_RETRY_BASE_SECONDS,
            target_timeout_seconds: DEFAULT_TARGET_TIMEOUT_SECONDS,
            dedupe_body_hash: false,
            rate_limit_per_second: None,
            rate_limit_per_ip_per_second: None,
            signature_header: DEFAULT_SIGNATURE_HEADER.to_string(),
            signature_algorithm: HmacAlgorithm::default(),
            signature_encoding: SignatureEncoding::default(),
            signature_prefix: String::new(),
            dedupe_header: None,
            dedupe_json_pointer: None,
            event_type_header: None,
            event_type_json_pointer: None,
            basic_username: None,
            api_key_header: verify::DEFAULT_API_KEY_HEADER.to_string(),
            signing_secret: None,
            previous_secret: None,
            previous_secret_expires_at: None,
            secret_updated_at: None,
            created_at: now,
            updated_at: now,
            storage_budget_bytes: None,
        };
        let patch = TriggerPatch {
            name: None,
            enabled: None,
            target_url: req.target_url.map(Some),
            event_types: req.event_types,
            dedupe_window_seconds: req.dedupe_window_seconds,
            tolerance_seconds: req.tolerance_seconds,
            max_body_bytes: req.max_body_bytes,
            retention_days: req.retention_days,
            max_attempts: req.max_attempts,
            retry_base_seconds: req.retry_base_seconds,
            target_timeout_seconds: req.target_timeout_seconds,
            dedupe_body_hash: req.dedupe_body_hash,
            rate_limit_per_second: req.rate_limit_per_second.map(Some),
            rate_limit_per_ip_per_second: req.rate_limit_per_ip_per_second.map(Some),
            signature_header: req.signature_header,
            signature_algorithm: req.signature_algorithm,
            signature_encoding: req.signature_encoding,
            signature_prefix: req.signature_prefix,
            dedupe_header: req.dedupe_header.map(Some),
            dedupe_json_pointer: req.dedupe_json_pointer.map(Some),
            event_type_header: req.event_type_header.map(Some),
            event_type_json_pointer: req.event_type_json_pointer.map(Some),
            basic_username: req.basic_username.map(Some),
            api_key_header: req.api_key_header,
            storage_budget_bytes: req.storage_budget_bytes.map(Some),
            signing_secret: None,
        };
        cfg.apply(patch, now, urls)?;
        if let Some(raw) = req.signing_secret {
            // A first secret has nothing to rotate from.
            cfg.signing_secret = Some(check_secret(provider, &raw)?);
            cfg.secret_updated_at = Some(now);
        }
        Ok(cfg)
    }

    /// Applies a patch, validating every field and the result as a whole.
    /// On error the configuration is unchanged.
    pub fn apply(
        &mut self,
        patch: TriggerPatch,
        now: Timestamp,
        urls: &dyn UrlParser,
    ) -> Result<(), ConfigError> {
        let mut next = self.clone();
        if let Some(name) = patch.name {
            next.name = check_name(&name)?;
        }
        if let Some(enabled) = patch.enabled {
            next.enabled = enabled;
        }
        if let Some(url) = patch.target_url {
            next.target_url = url.map(|u| check_target_url(&u, urls)).transpose()?;
        }
        if let Some(types) = patch.event_types {
            next.event_types = check_event_types(types)?;
        }
        if let Some(v) = patch.dedupe_window_seconds {
            next.dedupe_window_seconds =
                check_range("dedupe_window_seconds", v, 0, MAX_DEDUPE_WINDOW_SECONDS)?;
        }
        if let Some(v) = patch.tolerance_seconds {
            next.tolerance_seconds = check_range("tolerance_seconds", v, 1, MAX_TOLERANCE_SECONDS)?;
        }
        if let Some(v) = patch.max_body_bytes {
            next.max_body_bytes = check_range("max_body_bytes", v, 1, MAX_BODY_BYTES_LIMIT)?;
        }
        if let Some(v) = patch.retention_days {
            next.retention_days = check_range("retention_days", v, 1, MAX_RETENTION_DAYS)?;
        }
        if let Some(v) = patch.max_attempts {
            next.max_attempts = check_range("max_attempts", v, 1, MAX_ATTEMPTS_LIMIT)?;
        }
        if let Some(v) = patch.retry_base_seconds {
            next.retry_base_seconds =
                check_range("retry_base_seconds", v, 1, MAX_RETRY_BASE_SECONDS)?;
        }
        if let Some(v) = patch.target_timeout_seconds {
            next.target_timeout_seconds =
                check_range("target_timeout_seconds", v, 1, MAX_TARGET_TIMEOUT_SECONDS)?;
        }
        if let Some(v) = patch.dedupe_body_hash {
            next.dedupe_body_hash = v;
        }
        if let Some(v) = patch.rate_limit_per_second {
            next.rate_limit_per_second = v
                .map(|r| check_range("rate_limit_per_second", r, 1, 1_000_000))
                .transpose()?;
        }
        if let Some(v) = patch.rate_limit_per_ip_per_second {
            next.rate_limit_per_ip_per_second = v
                .map(|r| check_range("rate_limit_per_ip_per_second", r, 1, 1_000_000))
                .transpose()?;
        }
        if let Some(v) = patch.signature_header {
            next.signature_header = check_header_name("signature_header", &v)?;
        }
        if let Some(v) = patch.signature_algorithm {
            next.signature_algorithm = v;
        }
        if let Some(v) = patch.signature_encoding {
            next.signature_encoding = v;
        }
        if let Some(v) = patch.signature_prefix {
            if v.len() > 64 || v.chars().any(char::is_control) {
                return Err(ConfigError::new(
                    "signature_prefix",
                    "at most 64 printable characters",
                ));
            }
            next.signature_prefix = v;
        }
        if let Some(v) = patch.dedupe_header {
            next.dedupe_header = check_opt("dedupe_header", v, check_header_name)?;
        }
        if let Some(v) = patch.dedupe_json_pointer {
            next.dedupe_json_pointer = check_opt("dedupe_json_pointer", v, check_pointer)?;
        }
        if let Some(v) = patch.event_type_header {
            next.event_type_header = check_opt("event_type_header", v, check_header_name)?;
        }
        if let Some(v) = patch.event_type_json_pointer {
            next.event_type_json_pointer = check_opt("event_type_json_pointer", v, check_pointer)?;
        }
        if let Some(v) = patch.basic_username {
            next.basic_username = match v {
                Some(u) if u.is_empty() || u.contains(':') || u.len() > 200 => {
                    return Err(ConfigError::new(
                        "basic_username",
                        "1 to 200 characters, no colon",
                    ));
                }
                other => other,
            };
        }
        if let Some(v) = patch.api_key_header {
            next.api_key_header = check_header_name("api_key_header", &v)?;
        }
        if let Some(v) = patch.storage_budget_bytes {
            next.storage_budget_bytes = v
                .map(|b| {
                    check_range(
                        "storage_budget_bytes",
                        b,
                        MIN_STORAGE_BUDGET_BYTES,
                        MAX_STORAGE_BUDGET_BYTES,
                    )
                })
                .transpose()?;
        }
        if next.provider == Provider::Basic && next.basic_username.is_none() {
            return Err(ConfigError::new(
                "basic_username",
                "is required for the basic provider",
            ));
        }
        if let Some(raw) = patch.signing_secret {
            next.rotate_secret(&raw, DEFAULT_SECRET_GRACE_SECONDS, now)?;
        }
        next.touch(now);
        *self = next;
        Ok(())
    }

    /// Records a change at `now`: `updated_at` moves forward by at least a
    /// millisecond even if the clock did not, so versions never tie.
    pub fn touch(&mut self, now: Timestamp) {
        self.updated_at = now.max(self.updated_at.plus_millis(1));
    }

    /// The ledger's storage budget in bytes.
    pub fn storage_budget(&self) -> u64 {
        self.storage_budget_bytes
            .unwrap_or(DEFAULT_STORAGE_BUDGET_BYTES)
    }

    /// Replaces the secret; the old one stays valid for `grace_seconds`.
    pub fn rotate_secret(
        &mut self,
        raw: &str,
        grace_seconds: u64,
        now: Timestamp,
    ) -> Result<(), ConfigError> {
        let grace = check_range("grace_seconds", grace_seconds, 0, MAX_SECRET_GRACE_SECONDS)?;
        let new = check_secret(self.provider, raw)?;
        let old = self.signing_secret.take();
        match old {
            Some(old) if old != new && grace > 0 => {
                self.previous_secret = Some(old);
                self.previous_secret_expires_at = Some(now.plus_secs(grace as i64));
            }
            // Re-setting the same secret keeps whatever grace was running.
            Some(old) if old == new => {}
            _ => {
                self.previous_secret = None;
                self.previous_secret_expires_at = None;
            }
        }
        self.signing_secret = Some(new);
        self.secret_updated_at = Some(now);
        self.touch(now);
        Ok(())
    }

    /// The secrets valid at `now`: the current one, and the previous one while
    /// its grace period lasts.
    pub fn secrets_at(&self, now: Timestamp) -> SecretSet<'_> {
        let previous = match (&self.previous_secret, self.previous_secret_expires_at) {
            (Some(s), Some(until)) if now < until => Some(s),
            _ => None,
        };
        SecretSet {
            current: self.signing_secret.as_ref(),
            previous,
        }
    }

    /// Where this trigger reads dedupe keys and event types.
    pub fn key_sources(&self) -> KeySources<'_> {
        KeySources {
            dedupe_header: self.dedupe_header.as_deref(),
            dedupe_json_pointer: self.dedupe_json_pointer.as_deref(),
            event_type_header: self.event_type_header.as_deref(),
            event_type_json_pointer: self.event_type_json_pointer.as_deref(),
            body_hash: self.dedupe_body_hash,
        }
    }

    /// Header names whose values are credentials for this trigger.
    pub fn credential_headers(&self) -> Vec<&str> {
        match self.provider {
            Provider::ApiKey => vec![self.api_key_header.as_str()],
            _ => Vec::new(),
        }
    }

    /// Header names, besides the fixed [`crate::headers::SIGNATURE_HEADERS`],
    /// whose values are signatures for this trigger.
    pub fn signature_headers(&self) -> Vec<&str> {
        match self.provider {
            Provider::Generic => vec![self.signature_header.as_str()],
            _ => Vec::new(),
        }
    }

    /// The trigger's rate limit (requests per second).
    pub fn trigger_rate(&self) -> u32 {
        self.rate_limit_per_second
            .unwrap_or(DEFAULT_RATE_LIMIT_PER_SECOND)
    }

    /// The per-client-IP rate limit (requests per second).
    pub fn ip_rate(&self) -> u32 {
        self.rate_limit_per_ip_per_second
            .unwrap_or(DEFAULT_RATE_LIMIT_PER_IP_PER_SECOND)
    }

    /// The oldest receive time a dedupe holder may have at `now`.
    pub fn dedupe_cutoff(&self, now: Timestamp) -> Timestamp {
        now.minus_secs(self.dedupe_window_seconds.min(i64::MAX as u64) as i64)
    }

    /// The oldest receive time kept at `now`.
    pub fn retention_cutoff(&self, now: Timestamp) -> Timestamp {
        now.minus_secs(i64::from(self.retention_days) * 86_400)
    }
}

#[cfg(test)]
mod tests;
