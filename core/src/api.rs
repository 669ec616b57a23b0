//! The management API's wire types.
//!
//! The Worker serialises these and the backfill deserialises them, so both
//! sides share one definition. Times are RFC 3339 strings in UTC; raw bodies
//! are standard base64. No type here can carry a secret: triggers appear as
//! [`TriggerView`], which has only `has_signing_secret` and a four-character
//! hint.

use serde::{Deserialize, Serialize};

use crate::headers::HeaderList;
use crate::provider::Provider;
use crate::run::RunStatus;
use crate::time::Timestamp;
use crate::trigger::TriggerConfig;
use crate::verify::{HmacAlgorithm, SignatureEncoding};

/// A delivery's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Admitted; its run has not finished.
    Queued,
    /// Its run succeeded.
    Delivered,
    /// Its run failed every attempt.
    Failed,
    /// Its signature was not accepted.
    Rejected,
    /// Genuine, but the trigger is disabled or the event is filtered out.
    Ignored,
}

impl DeliveryStatus {
    /// Every status.
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Queued,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Rejected,
        DeliveryStatus::Ignored,
    ];

    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Rejected => "rejected",
            DeliveryStatus::Ignored => "ignored",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// The delivery status that mirrors a run status.
    pub fn of_run(run: RunStatus) -> DeliveryStatus {
        match run {
            RunStatus::Queued | RunStatus::Held => DeliveryStatus::Queued,
            RunStatus::Delivered => DeliveryStatus::Delivered,
            RunStatus::Failed => DeliveryStatus::Failed,
        }
    }
}

/// A trigger as the API shows it: never the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TriggerView {
    pub id: String,
    pub name: String,
    /// The full ingress URL to give the provider.
    pub url: String,
    pub provider: Provider,
    pub enabled: bool,
    pub has_signing_secret: bool,
    /// The last four characters of the current secret, when it has at least
    /// 16 (a shorter one would be given away).
    pub signing_secret_hint: Option<String>,
    /// Until when the previous secret is still accepted, during a rotation.
    pub previous_secret_expires_at: Option<String>,
    pub secret_updated_at: Option<String>,
    pub target_url: Option<String>,
    pub event_types: Vec<String>,
    pub dedupe_window_seconds: u64,
    pub tolerance_seconds: u64,
    pub max_body_bytes: u64,
    pub retention_days: u32,
    pub max_attempts: u32,
    pub retry_base_seconds: u32,
    pub target_timeout_seconds: u32,
    pub dedupe_body_hash: bool,
    pub rate_limit_per_second: u32,
    pub rate_limit_per_ip_per_second: u32,
    pub signature_header: String,
    pub signature_algorithm: HmacAlgorithm,
    pub signature_encoding: SignatureEncoding,
    pub signature_prefix: String,
    pub dedupe_header: Option<String>,
    pub dedupe_json_pointer: Option<String>,
    pub event_type_header: Option<String>,
    pub event_type_json_pointer: Option<String>,
    pub basic_username: Option<String>,
    pub api_key_header: String,
    pub created_at: String,
    pub updated_at: String,
    /// Bytes the ledger may hold before new deliveries get 507.
    #[serde(default)]
    pub storage_budget_bytes: u64,
    /// Bytes the ledger holds now (deliveries, bodies, runs); shown when the
    /// trigger is read from its own ledger, absent in listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_used_bytes: Option<u64>,
    /// Set on deleted triggers, which only the backfill's listing shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

impl TriggerView {
    /// The view of `cfg`, whose ingress URL is `{base_url}/hooks/{id}`.
    pub fn of(cfg: &TriggerConfig, base_url: &str) -> TriggerView {
        let rfc = |t: Option<Timestamp>| t.map(Timestamp::to_rfc3339);
        TriggerView {
            id: cfg.id.clone(),
            name: cfg.name.clone(),
            url: format!("{}/hooks/{}", base_url.trim_end_matches('/'), cfg.id),
            provider: cfg.provider,
            enabled: cfg.enabled,
            has_signing_secret: cfg.signing_secret.is_some(),
            signing_secret_hint: cfg.signing_secret.as_ref().and_then(|s| s.hint()),
            previous_secret_expires_at: if cfg.previous_secret.is_some() {
                rfc(cfg.previous_secret_expires_at)
            } else {
                None
            },
            secret_updated_at: rfc(cfg.secret_updated_at),
            target_url: cfg.target_url.clone(),
            event_types: cfg.event_types.clone(),
            dedupe_window_seconds: cfg.dedupe_window_seconds,
            tolerance_seconds: cfg.tolerance_seconds,
            max_body_bytes: cfg.max_body_bytes,
            retention_days: cfg.retention_days,
            max_attempts: cfg.max_attempts,
            retry_base_seconds: cfg.retry_base_seconds,
            target_timeout_seconds: cfg.target_timeout_seconds,
            dedupe_body_hash: cfg.dedupe_body_hash,
            rate_limit_per_second: cfg.trigger_rate(),
            rate_limit_per_ip_per_second: cfg.ip_rate(),
            signature_header: cfg.signature_header.clone(),
            signature_algorithm: cfg.signature_algorithm,
            signature_encoding: cfg.signature_encoding,
            signature_prefix: cfg.signature_prefix.clone(),
            dedupe_header: cfg.dedupe_header.clone(),
            dedupe_json_pointer: cfg.dedupe_json_pointer.clone(),
            event_type_header: cfg.event_type_header.clone(),
            event_type_json_pointer: cfg.event_type_json_pointer.clone(),
            basic_username: cfg.basic_username.clone(),
            api_key_header: cfg.api_key_header.clone(),
            created_at: cfg.created_at.to_rfc3339(),
            updated_at: cfg.updated_at.to_rfc3339(),
            storage_budget_bytes: cfg.storage_budget(),
            storage_used_bytes: None,
            deleted_at: None,
        }
    }
}

/// `GET /api/triggers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TriggerList {
    /// Triggers, oldest first.
    pub triggers: Vec<TriggerView>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A delivery's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    /// The run id; also the `webhook-id` of every attempt.
    pub run_id: String,
    /// Its route, if the trigger has routes.
    #[serde(default)]
    pub route_id: Option<String>,
    /// `queued`, `held`, `delivered` or `failed`.
    pub status: RunStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// The target's last HTTP status, if it answered.
    pub last_status_code: Option<u16>,
    /// When the next attempt is due, while queued.
    pub next_attempt_at: Option<String>,
    /// When a failed run's message was put on the dead-letter queue.
    pub dead_lettered_at: Option<String>,
    /// How many times the alarm re-sent the run's message because no
    /// consumer had claimed it (reset by a claim); spaced exponentially.
    #[serde(default)]
    pub resends: u32,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// One dispatch attempt of a run: appended when it is claimed and completed
/// by its report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptView {
    /// 1-based attempt number.
    pub attempt: u32,
    /// When the request to the target started (or was to start).
    pub started_at: String,
    /// How long the target took; `None` while in flight or if never reported.
    pub duration_ms: Option<u64>,
    /// The target's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// `None` on success; otherwise the class of failure: `http_status`,
    /// `redirect`, `timeout`, `dns`, `connect`, `tls`, `request`, or `lost`
    /// (no report came back before the lease ended).
    pub error: Option<String>,
    /// A sentence about the failure (never a secret).
    #[serde(default)]
    pub error_message: Option<String>,
    /// The first 1 KiB of the target's response body, as text.
    #[serde(default)]
    pub response_excerpt: Option<String>,
    /// How long the route's rate limit delayed this attempt.
    #[serde(default)]
    pub rate_limited_ms: u64,
}

/// A run with its route and attempt timeline (`runs` of a delivery, and
/// `GET /api/triggers/{id}/runs/{run_id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    /// The run id; also the `webhook-id` of every attempt.
    pub run_id: String,
    /// Its delivery.
    pub delivery_id: String,
    /// Its route; `None` for a trigger without routes.
    pub route_id: Option<String>,
    /// `queued`, `held`, `delivered` or `failed`.
    pub status: RunStatus,
    /// Attempts claimed.
    pub attempt_count: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// The target's last HTTP status, if it answered.
    pub last_status_code: Option<u16>,
    /// When the next attempt is due, while queued.
    pub next_attempt_at: Option<String>,
    /// When a failed run's message was put on the dead-letter queue.
    pub dead_lettered_at: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptView>,
}

impl From<&RunView> for RunDetail {
    /// A run as an edge from before routes showed it: no route, no
    /// timeline. Its delivery id is not part of the view; the caller knows
    /// it.
    fn from(run: &RunView) -> RunDetail {
        RunDetail {
            run_id: run.run_id.clone(),
            delivery_id: String::new(),
            route_id: run.route_id.clone(),
            status: run.status,
            attempt_count: run.attempts,
            last_error: run.last_error.clone(),
            last_status_code: run.last_status_code,
            next_attempt_at: run.next_attempt_at.clone(),
            dead_lettered_at: run.dead_lettered_at.clone(),
            created_at: run.created_at.clone(),
            updated_at: run.updated_at.clone(),
            attempts: Vec::new(),
        }
    }
}

/// A route as the API shows it: extra header values that look like
/// credentials are `[redacted]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct RouteView {
    pub id: String,
    pub trigger_id: String,
    pub name: String,
    pub target_url: String,
    pub event_types: Vec<String>,
    pub filter: Option<serde_json::Value>,
    pub priority: i32,
    pub enabled: bool,
    pub max_attempts: u32,
    pub retry_base_seconds: u32,
    pub target_timeout_seconds: u32,
    pub rate_limit_per_second: Option<f64>,
    pub ordered: bool,
    pub headers: std::collections::BTreeMap<String, String>,
    pub pause_after_failures: u32,
    #[serde(default)]
    pub breaker_cooldown_seconds: u32,
    /// When the route was paused (by an operator or the breaker).
    pub paused_at: Option<String>,
    /// Why.
    pub paused_reason: Option<String>,
    /// Failed attempts in a row; the breaker pauses at `pause_after_failures`.
    pub consecutive_failures: u32,
    /// When a route the breaker paused resumes on its own (half-open).
    #[serde(default)]
    pub resumes_at: Option<String>,
    /// Runs of this route not yet final, and of those how many are held.
    #[serde(default)]
    pub open_runs: u64,
    #[serde(default)]
    pub held_runs: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl RouteView {
    /// The view of `route` of trigger `trigger_id` with its state.
    pub fn of(
        trigger_id: &str,
        route: &crate::route::RouteConfig,
        state: &crate::route::RouteState,
    ) -> RouteView {
        RouteView {
            id: route.id.clone(),
            trigger_id: trigger_id.to_string(),
            name: route.name.clone(),
            target_url: route.target_url.clone(),
            event_types: route.event_types.clone(),
            filter: route.filter.as_ref().map(|f| f.raw().clone()),
            priority: route.priority,
            enabled: route.enabled,
            max_attempts: route.max_attempts,
            retry_base_seconds: route.retry_base_seconds,
            target_timeout_seconds: route.target_timeout_seconds,
            rate_limit_per_second: route.rate_limit_per_second,
            ordered: route.ordered,
            headers: route.headers_redacted(),
            pause_after_failures: route.pause_after_failures,
            breaker_cooldown_seconds: route.breaker_cooldown_seconds,
            paused_at: state.paused_at.map(Timestamp::to_rfc3339),
            paused_reason: state.paused_reason.clone(),
            consecutive_failures: state.consecutive_failures,
            resumes_at: state.resumes_at.map(Timestamp::to_rfc3339),
            open_runs: state.open_runs,
            held_runs: state.held_runs,
            created_at: route.created_at.to_rfc3339(),
            updated_at: route.updated_at.to_rfc3339(),
        }
    }
}

/// `POST /api/triggers/{id}/filters/test`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterTest {
    /// The filter to try.
    pub filter: serde_json::Value,
    /// Event types, as a route would have them.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Deliveries evaluated at most (newest first); default 100, at most 1000.
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only deliveries received at or after this time (RFC 3339).
    #[serde(default)]
    pub received_after: Option<String>,
    /// Only deliveries received before this time (RFC 3339).
    #[serde(default)]
    pub received_before: Option<String>,
}

/// What a filter backtest found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterTestResult {
    /// Deliveries the filter (and event types) matched.
    pub matched: u64,
    /// Deliveries evaluated.
    pub evaluated: u64,
    /// The matching deliveries, newest first.
    pub delivery_ids: Vec<String>,
}

/// A delivery. Lists leave out `headers` and `raw_body`; the detail and the
/// change feed include them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// `dlv_…`.
    pub delivery_id: String,
    /// The trigger it arrived on.
    pub trigger_id: String,
    /// See [`DeliveryStatus`].
    pub status: DeliveryStatus,
    /// Receive time at the edge.
    pub received_at: String,
    /// The provider's delivery id, if any.
    pub dedupe_key: Option<String>,
    /// How many times this delivery arrived (1 + duplicates).
    pub attempt_count: u32,
    /// See [`crate::verify::SignatureStatus`].
    pub signature_status: String,
    /// `current` or `previous` secret, for verified deliveries.
    pub matched_secret: Option<String>,
    /// The event type, if the provider names one.
    pub event_type: Option<String>,
    /// The delivery this one replays.
    pub replayed_from: Option<String>,
    /// Why it was ignored or rejected.
    pub reason: Option<String>,
    /// Size of the raw body as received.
    pub body_bytes: u64,
    /// Whether only an excerpt of the body was stored (rejected deliveries
    /// keep at most 4 KiB); `raw_body` is then that excerpt.
    #[serde(default)]
    pub body_truncated: bool,
    /// Its first run (in priority order), if it has one; kept for clients
    /// of a single target. [`Self::runs`] has them all.
    pub run: Option<RunView>,
    /// Every run, one per route it went to, in enqueue (priority) order,
    /// each with its attempt timeline (detail and change feed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<Vec<RunDetail>>,
    /// Request headers, credentials redacted (detail and change feed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeaderList>,
    /// The raw body, base64 (detail and change feed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
}

/// `GET /api/triggers/{id}/deliveries`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One entry of the change feed: a delivery at its latest change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The change sequence number; strictly increasing within a trigger.
    pub seq: i64,
    /// The delivery, with run, headers and raw body.
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// `GET /api/triggers/{id}/changes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangePage {
    /// In change order.
    pub changes: Vec<Change>,
    /// Pass as `after` for the next page.
    pub next_after: i64,
    /// Whether more changes follow.
    pub has_more: bool,
}

/// The ingress answer for an admitted or duplicate delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestAccepted {
    /// The delivery (the holder's, for a duplicate).
    pub delivery_id: String,
    /// Its first run (in priority order), if it has one.
    pub run_id: Option<String>,
    /// Every run, one per matching route, in enqueue order.
    #[serde(default)]
    pub run_ids: Vec<String>,
    /// `queued`, or the holder's status for a duplicate.
    pub status: DeliveryStatus,
    /// Whether this request was collapsed onto an earlier delivery.
    pub duplicate: bool,
}

/// `POST …/replay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayCreated {
    /// The new delivery.
    pub delivery_id: String,
    /// The new delivery's first run; `None` when no route matches it now.
    pub run_id: Option<String>,
    /// Every new run, one per matching route.
    #[serde(default)]
    pub run_ids: Vec<String>,
    /// The delivery replayed.
    pub replayed_from: String,
}

/// A JSON error body: `{"error": "<code>", "message": "..."}` plus context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable, snake-case code.
    pub error: String,
    /// A sentence for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
