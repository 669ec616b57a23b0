//! Routes: where a trigger's deliveries go, and the rules of their runs.
//!
//! A trigger has zero or more routes. An admitted delivery gets one run per
//! enabled route whose `event_types` and content `filter` it passes
//! ([`select`]), in priority order. A trigger with no routes keeps the
//! ledger as its only output. Each route has its own retry policy, timeout,
//! extra headers, outbound rate limit ([`rate_slot`]), circuit breaker
//! ([`after_attempt`]) and, optionally, strict ordering.
//!
//! [`RouteConfig`] is what the Trigger object stores; requests are parsed into
//! [`RouteCreate`] and [`RoutePatch`], which refuse unknown fields, and every
//! bound is checked here. A route's extra headers may hold credentials for
//! its target, so the view ([`crate::api::RouteView`]) redacts the values of
//! credential-like names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ConfigError;
use crate::filter::{Filter, FilterInput};
use crate::provider::{self, EventType};
use crate::time::Timestamp;
use crate::trigger::{self, TriggerConfig};
use crate::weburl::UrlParser;

/// Most routes a trigger may have.
pub const MAX_ROUTES: usize = 50;
/// A route's priority when none is given. Lower runs first.
pub const DEFAULT_PRIORITY: i32 = 100;
/// The priority range.
pub const MIN_PRIORITY: i32 = -1000;
/// The priority range.
pub const MAX_PRIORITY: i32 = 1000;
/// Consecutive failed attempts that pause a route, by default.
pub const DEFAULT_PAUSE_AFTER_FAILURES: u32 = 10;
/// The largest `pause_after_failures` (0 turns the breaker off).
pub const MAX_PAUSE_AFTER_FAILURES: u32 = 10_000;
/// How long a route the breaker paused waits before it tries again, by
/// default; it doubles while the route keeps tripping.
pub const DEFAULT_BREAKER_COOLDOWN_SECONDS: u32 = 60;
/// The longest cool-down that can be set.
pub const MAX_BREAKER_COOLDOWN_SECONDS: u32 = 86_400;
/// The longest wait between two tries of a tripped route.
pub const MAX_BREAKER_WAIT_SECONDS: i64 = 3600;
/// The fastest outbound rate a route may set (per second).
pub const MAX_RATE_PER_SECOND: f64 = 1000.0;
/// The slowest outbound rate a route may set (one per 100 seconds).
pub const MIN_RATE_PER_SECOND: f64 = 0.01;
/// Most extra headers on a route.
pub const MAX_ROUTE_HEADERS: usize = 20;
/// Longest extra header value.
pub const MAX_HEADER_VALUE_LEN: usize = 2048;
/// Headers a route may not set: the transport's, and the ones edgehook
/// signs or names runs with.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "trailer",
];
const RESERVED_PREFIXES: &[&str] = &["webhook-", "x-edgehook-", "cf-"];
/// Substrings of header names whose values the view hides.
const SECRET_NAME_PARTS: &[&str] = &[
    "auth",
    "token",
    "secret",
    "key",
    "signature",
    "password",
    "cookie",
    "session",
];

/// A route as the Trigger object stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteConfig {
    /// `rte_…`.
    pub id: String,
    /// A person's name for it.
    pub name: String,
    /// Where its runs are POSTed.
    pub target_url: String,
    /// Event filter; empty passes every event.
    pub event_types: Vec<String>,
    /// Content filter; `None` passes everything.
    pub filter: Option<Filter>,
    /// Lower runs (is enqueued) first; ties go to the older route.
    pub priority: i32,
    /// A disabled route gets no new runs.
    pub enabled: bool,
    /// Attempts before a run fails.
    pub max_attempts: u32,
    /// First retry delay; it doubles after each failure.
    pub retry_base_seconds: u32,
    /// Timeout of one attempt.
    pub target_timeout_seconds: u32,
    /// Attempts started per second at most; `None` for no limit.
    pub rate_limit_per_second: Option<f64>,
    /// One run at a time, in receive order.
    pub ordered: bool,
    /// Extra headers sent with every attempt (names in lower case).
    pub headers: BTreeMap<String, String>,
    /// Consecutive failed attempts that pause the route; 0 never pauses.
    pub pause_after_failures: u32,
    /// How long a route the breaker paused waits before it resumes on its
    /// own (doubling while it keeps tripping); 0 waits for an operator.
    #[serde(default = "default_cooldown")]
    pub breaker_cooldown_seconds: u32,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

fn default_cooldown() -> u32 {
    DEFAULT_BREAKER_COOLDOWN_SECONDS
}

/// What changes as a route's runs go: pause state and breaker count, and
/// how many runs are open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteState {
    /// When it was paused.
    pub paused_at: Option<Timestamp>,
    /// Why.
    pub paused_reason: Option<String>,
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// When a route the breaker paused resumes on its own.
    pub resumes_at: Option<Timestamp>,
    /// Runs not final.
    pub open_runs: u64,
    /// Runs held.
    pub held_runs: u64,
}

/// `POST /api/triggers/{id}/routes`. Retry settings default to the
/// trigger's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RouteCreate {
    pub name: Option<String>,
    pub target_url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub filter: Option<Value>,
    pub priority: Option<i32>,
    pub enabled: Option<bool>,
    pub max_attempts: Option<u32>,
    pub retry_base_seconds: Option<u32>,
    pub target_timeout_seconds: Option<u32>,
    pub rate_limit_per_second: Option<f64>,
    pub ordered: Option<bool>,
    pub headers: Option<BTreeMap<String, String>>,
    pub pause_after_failures: Option<u32>,
    pub breaker_cooldown_seconds: Option<u32>,
}

/// `PATCH …/routes/{route_id}`: absent fields stay; `null` clears `filter`
/// and `rate_limit_per_second`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RoutePatch {
    pub name: Option<String>,
    pub target_url: Option<String>,
    pub event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "trigger::double_option")]
    pub filter: Option<Option<Value>>,
    pub priority: Option<i32>,
    pub enabled: Option<bool>,
    pub max_attempts: Option<u32>,
    pub retry_base_seconds: Option<u32>,
    pub target_timeout_seconds: Option<u32>,
    #[serde(default, deserialize_with = "trigger::double_option")]
    pub rate_limit_per_second: Option<Option<f64>>,
    pub ordered: Option<bool>,
    pub headers: Option<BTreeMap<String, String>>,
    pub pause_after_failures: Option<u32>,
    pub breaker_cooldown_seconds: Option<u32>,
}

fn check_headers(raw: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ConfigError> {
    if raw.len() > MAX_ROUTE_HEADERS {
        return Err(ConfigError::new(
            "headers",
            format!("at most {MAX_ROUTE_HEADERS} headers"),
        ));
    }
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        let field = format!("headers.{name}");
        let lower = trigger::check_header_name("headers", &name)
            .map_err(|_| ConfigError::new(field.clone(), "must be a valid HTTP header name"))?;
        if RESERVED_HEADERS.contains(&lower.as_str())
            || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
        {
            return Err(ConfigError::new(
                field,
                "is set by edgehook or the transport and cannot be overridden",
            ));
        }
        if value.len() > MAX_HEADER_VALUE_LEN || value.chars().any(|c| c.is_control() && c != '\t')
        {
            return Err(ConfigError::new(
                field,
                format!("must be at most {MAX_HEADER_VALUE_LEN} bytes with no control characters"),
            ));
        }
        out.insert(lower, value);
    }
    Ok(out)
}

fn check_rate(v: f64) -> Result<f64, ConfigError> {
    if !v.is_finite() || !(MIN_RATE_PER_SECOND..=MAX_RATE_PER_SECOND).contains(&v) {
        return Err(ConfigError::new(
            "rate_limit_per_second",
            format!("must be between {MIN_RATE_PER_SECOND} and {MAX_RATE_PER_SECOND}"),
        ));
    }
    Ok(v)
}

impl RouteConfig {
    /// Builds and validates a new route of `trigger`.
    pub fn create(
        id: String,
        req: RouteCreate,
        trigger: &TriggerConfig,
        now: Timestamp,
        urls: &dyn UrlParser,
    ) -> Result<RouteConfig, ConfigError> {
        let target = req
            .target_url
            .as_deref()
            .ok_or_else(|| ConfigError::new("target_url", "is required"))?;
        let target_url = trigger::check_target_url(target, urls)?;
        let default_name = urls
            .parse(&target_url)
            .map(|u| u.host)
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "route".to_string());
        let mut route = RouteConfig {
            id,
            name: default_name,
            target_url,
            event_types: Vec::new(),
            filter: None,
            priority: DEFAULT_PRIORITY,
            enabled: true,
            max_attempts: trigger.max_attempts,
            retry_base_seconds: trigger.retry_base_seconds,
            target_timeout_seconds: trigger.target_timeout_seconds,
            rate_limit_per_second: None,
            ordered: false,
            headers: BTreeMap::new(),
            pause_after_failures: DEFAULT_PAUSE_AFTER_FAILURES,
            breaker_cooldown_seconds: DEFAULT_BREAKER_COOLDOWN_SECONDS,
            created_at: now,
            updated_at: now,
        };
        route.apply(
            RoutePatch {
                name: req.name,
                target_url: None,
                event_types: req.event_types,
                filter: req.filter.map(Some),
                priority: req.priority,
                enabled: req.enabled,
                max_attempts: req.max_attempts,
                retry_base_seconds: req.retry_base_seconds,
                target_timeout_seconds: req.target_timeout_seconds,
                rate_limit_per_second: req.rate_limit_per_second.map(Some),
                ordered: req.ordered,
                headers: req.headers,
                pause_after_failures: req.pause_after_failures,
                breaker_cooldown_seconds: req.breaker_cooldown_seconds,
            },
            now,
            urls,
        )?;
        route.updated_at = now;
        Ok(route)
    }

    /// Applies a patch, validating every field; on error nothing changes.
    pub fn apply(
        &mut self,
        patch: RoutePatch,
        now: Timestamp,
        urls: &dyn UrlParser,
    ) -> Result<(), ConfigError> {
        let mut next = self.clone();
        if let Some(name) = patch.name {
            next.name = trigger::check_name(&name)?;
        }
        if let Some(url) = patch.target_url {
            next.target_url = trigger::check_target_url(&url, urls)?;
        }
        if let Some(types) = patch.event_types {
            next.event_types = trigger::check_event_types(types)?;
        }
        if let Some(filter) = patch.filter {
            next.filter = filter.map(|f| Filter::parse(&f)).transpose()?;
        }
        if let Some(p) = patch.priority {
            next.priority = trigger::check_range("priority", p, MIN_PRIORITY, MAX_PRIORITY)?;
        }
        if let Some(enabled) = patch.enabled {
            next.enabled = enabled;
        }
        if let Some(v) = patch.max_attempts {
            next.max_attempts =
                trigger::check_range("max_attempts", v, 1, trigger::MAX_ATTEMPTS_LIMIT)?;
        }
        if let Some(v) = patch.retry_base_seconds {
            next.retry_base_seconds =
                trigger::check_range("retry_base_seconds", v, 1, trigger::MAX_RETRY_BASE_SECONDS)?;
        }
        if let Some(v) = patch.target_timeout_seconds {
            next.target_timeout_seconds = trigger::check_range(
                "target_timeout_seconds",
                v,
                1,
                trigger::MAX_TARGET_TIMEOUT_SECONDS,
            )?;
        }
        if let Some(v) = patch.rate_limit_per_second {
            next.rate_limit_per_second = v.map(check_rate).transpose()?;
        }
        if let Some(v) = patch.ordered {
            next.ordered = v;
        }
        if let Some(h) = patch.headers {
            next.headers = check_headers(h)?;
        }
        if let Some(v) = patch.pause_after_failures {
            next.pause_after_failures =
                trigger::check_range("pause_after_failures", v, 0, MAX_PAUSE_AFTER_FAILURES)?;
        }
        if let Some(v) = patch.breaker_cooldown_seconds {
            next.breaker_cooldown_seconds = trigger::check_range(
                "breaker_cooldown_seconds",
                v,
                0,
                MAX_BREAKER_COOLDOWN_SECONDS,
            )?;
        }
        next.updated_at = now.max(self.updated_at.plus_millis(1));
        *self = next;
        Ok(())
    }

    /// The retry policy of its runs.
    pub fn retry_policy(&self) -> crate::run::RetryPolicy {
        crate::run::RetryPolicy {
            max_attempts: self.max_attempts,
            base_delay_seconds: self.retry_base_seconds,
        }
    }

    /// How long a claim's lease lasts: the timeout and a margin.
    pub fn lease_seconds(&self) -> i64 {
        i64::from(self.target_timeout_seconds) + crate::run::LEASE_MARGIN_SECONDS
    }

    /// Whether a delivery of `event` passes the route's event types, and, if
    /// it has one, its filter (`input` is built only when needed).
    fn passes(&self, event: &EventType, input: &mut Lazy<'_>) -> bool {
        if !provider::event_passes(&self.event_types, event) {
            return false;
        }
        match &self.filter {
            None => true,
            Some(f) => f.matches(input.get()),
        }
    }

    /// The extra headers as the API shows them: credential-like values
    /// replaced by `[redacted]`.
    pub fn headers_redacted(&self) -> BTreeMap<String, String> {
        // The map is cloned and its values changed in place: collecting
        // pairs into a new map would sort them again, with a sort of its
        // own in the Wasm.
        let mut out = self.headers.clone();
        for (k, v) in out.iter_mut() {
            let secret = crate::headers::CREDENTIAL_HEADERS.contains(&k.as_str())
                || SECRET_NAME_PARTS.iter().any(|p| k.contains(p));
            if secret {
                *v = crate::headers::REDACTED.to_string();
            }
        }
        out
    }
}

/// Builds the filter input once, on first use.
struct Lazy<'a> {
    make: Option<Box<dyn FnOnce() -> FilterInput + 'a>>,
    value: Option<FilterInput>,
}

impl Lazy<'_> {
    fn get(&mut self) -> &FilterInput {
        if self.value.is_none() {
            let make = self.make.take();
            self.value = Some(make.map(|m| m()).unwrap_or_default());
        }
        self.value.get_or_insert_with(FilterInput::default)
    }
}

/// A stored delivery's event type, read again from its headers and body the
/// way ingest read it (with the action, which the ledger does not keep), for
/// filter backtests.
pub fn stored_event(
    trigger: &TriggerConfig,
    headers: &crate::headers::HeaderList,
    body: &[u8],
) -> EventType {
    let payload = provider::parse_body(trigger.provider, headers.get("content-type"), body)
        .unwrap_or(provider::Payload::Opaque);
    provider::event_type(trigger.provider, trigger.key_sources(), headers, &payload)
}

/// Orders routes as their runs are enqueued: priority, then age, then id.
pub fn sort(routes: &mut [RouteConfig]) {
    sort_in_enqueue_order(routes, |r| r);
}

/// Orders `items` by their routes' enqueue order (as [`sort`]), stably. An
/// insertion sort: a trigger has at most [`MAX_ROUTES`], and it takes a few
/// hundred bytes of Wasm where the standard library's sort takes several
/// kilobytes for each type it sorts.
pub fn sort_in_enqueue_order<T>(items: &mut [T], route: impl Fn(&T) -> &RouteConfig) {
    fn key(r: &RouteConfig) -> (i32, Timestamp, &str) {
        (r.priority, r.created_at, &r.id)
    }
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && key(route(&items[j])) < key(route(&items[j - 1])) {
            items.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// The routes a delivery goes to, in enqueue order (`routes` sorted by
/// [`sort`]): every enabled route whose event types and filter it passes.
/// `input` is built at most once, and only if a filter needs it.
pub fn select<'r>(
    routes: impl IntoIterator<Item = &'r RouteConfig>,
    event: &EventType,
    input: impl FnOnce() -> FilterInput,
) -> Vec<&'r RouteConfig> {
    let mut lazy = Lazy {
        make: Some(Box::new(input)),
        value: None,
    };
    routes
        .into_iter()
        .filter(|r| r.enabled && r.passes(event, &mut lazy))
        .collect()
}

/// When an attempt may start under a rate limit: the slot it gets and the
/// next free slot after it. Slots are spaced `1 / rate` apart; without a
/// limit the slot is `now`. A grant that waits is delayed, never refused.
pub fn rate_slot(
    rate_per_second: Option<f64>,
    next_free: Option<Timestamp>,
    now: Timestamp,
) -> (Timestamp, Option<Timestamp>) {
    let Some(rate) = rate_per_second.filter(|r| *r > 0.0) else {
        return (now, next_free);
    };
    let spacing = (1000.0 / rate).ceil() as i64;
    let slot = next_free.map_or(now, |n| n.max(now));
    (slot, Some(slot.plus_millis(spacing)))
}

/// The circuit breaker after one attempt: the new count of consecutive
/// failures and whether the route must pause now. A success resets the
/// count; `pause_after` 0 never pauses.
pub fn after_attempt(consecutive_failures: u32, success: bool, pause_after: u32) -> (u32, bool) {
    if success {
        return (0, false);
    }
    let n = consecutive_failures.saturating_add(1);
    (n, pause_after > 0 && n >= pause_after)
}

/// The `paused_reason` of a route the breaker paused.
pub fn auto_pause_reason(failures: u32) -> String {
    format!("paused automatically after {failures} consecutive failed attempts")
}

/// When a route the breaker paused for the `trips`th time in a row (1-based)
/// resumes on its own: the cool-down, doubling with each trip, capped at
/// [`MAX_BREAKER_WAIT_SECONDS`] (or the cool-down itself, if longer); `None`
/// when the cool-down is 0 (an operator resumes it). Resuming is the
/// breaker's half-open state: held runs go again, and the next
/// `pause_after_failures` failures in a row trip it once more.
pub fn resume_at(cooldown_seconds: u32, trips: u32, now: Timestamp) -> Option<Timestamp> {
    if cooldown_seconds == 0 {
        return None;
    }
    let base = i64::from(cooldown_seconds);
    let wait = base
        .saturating_mul(1i64 << trips.saturating_sub(1).min(20))
        .min(MAX_BREAKER_WAIT_SECONDS.max(base));
    Some(now.plus_secs(wait))
}

#[cfg(test)]
mod tests;
