//! The Trigger Durable Object's SQLite ledger.
//!
//! Every method here is synchronous: SQL calls on a Durable Object do not
//! yield, so a sequence of them with no `.await` in between runs without any
//! other event interleaving, and the runtime commits it atomically. The
//! Trigger object relies on that for its check-and-insert dedupe.
//!
//! The schema is versioned in `meta.schema_version` and upgraded in place by
//! [`Ledger::migrate`], one numbered step at a time; steps only add, so an
//! object written by an older version keeps working.
//!
//! Every write to a delivery or its run stamps the delivery with the next
//! value of the change sequence (`deliveries.seq`), which is what the change
//! feed pages through.

use edgehook_core::api::{Change, Delivery, DeliveryStatus, RunView};
use edgehook_core::encoding::b64;
use edgehook_core::run::{RunState, RunStatus};
use edgehook_core::trigger::TriggerConfig;
use edgehook_core::{HeaderList, Timestamp};
use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue as V};

use crate::error::{ApiError, ApiResult};

/// Raw bodies are stored in chunks below SQLite's 2 MB value limit.
const BODY_CHUNK: usize = 1_000_000;

/// Schema steps; step `n` upgrades version `n` to `n + 1`.
const MIGRATIONS: &[&[&str]] = &[&[
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO counters (name, value) VALUES ('seq', 0)",
    "CREATE TABLE IF NOT EXISTS deliveries (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        status TEXT NOT NULL,
        dedupe_key TEXT,
        attempt_count INTEGER NOT NULL DEFAULT 1,
        signature_status TEXT NOT NULL,
        matched_secret TEXT,
        event_type TEXT,
        replayed_from TEXT,
        replay_key TEXT,
        reason TEXT,
        headers TEXT NOT NULL,
        body_bytes INTEGER NOT NULL,
        run_id TEXT
    )",
    "CREATE INDEX IF NOT EXISTS deliveries_seq ON deliveries (seq)",
    "CREATE INDEX IF NOT EXISTS deliveries_received ON deliveries (received_at, id)",
    "CREATE INDEX IF NOT EXISTS deliveries_status ON deliveries (status, received_at, id)",
    "CREATE INDEX IF NOT EXISTS deliveries_dedupe ON deliveries (dedupe_key, received_at)
        WHERE dedupe_key IS NOT NULL AND replayed_from IS NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS deliveries_replay_key ON deliveries (replayed_from, replay_key)
        WHERE replay_key IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS bodies (
        delivery_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (delivery_id, idx)
    )",
    "CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        delivery_id TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_until INTEGER,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        last_status_code INTEGER,
        dead_lettered_at INTEGER,
        dlq_pending INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS runs_open ON runs (status, next_attempt_at)",
], &[
    // Rejections beyond the per-minute storage limit are counted, not stored.
    "CREATE TABLE IF NOT EXISTS rejection_windows (
        minute INTEGER NOT NULL,
        signature_status TEXT NOT NULL,
        count INTEGER NOT NULL,
        last_reason TEXT,
        PRIMARY KEY (minute, signature_status)
    )",
]];

fn s(v: impl Into<String>) -> V {
    V::String(v.into())
}
fn i(v: i64) -> V {
    V::Integer(v)
}
fn opt(v: Option<&str>) -> V {
    v.map_or(V::Null, |x| V::String(x.to_string()))
}
fn opt_i(v: Option<i64>) -> V {
    v.map_or(V::Null, V::Integer)
}

fn sql_err(context: &'static str) -> impl Fn(worker::Error) -> ApiError {
    move |e| ApiError::internal(context, e)
}

/// A dedupe holder.
#[derive(Debug, Clone, Deserialize)]
pub struct Holder {
    /// Its delivery id.
    pub id: String,
    /// Its run, if any.
    pub run_id: Option<String>,
    /// Its status.
    pub status: String,
}

/// A delivery to insert.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    /// `dlv_…`.
    pub id: &'a str,
    /// Receive time.
    pub received_at: Timestamp,
    /// Initial status.
    pub status: DeliveryStatus,
    /// Dedupe key, if any.
    pub dedupe_key: Option<&'a str>,
    /// Signature status name.
    pub signature_status: &'a str,
    /// `current` / `previous`.
    pub matched_secret: Option<&'a str>,
    /// Event type.
    pub event_type: Option<&'a str>,
    /// The replayed delivery.
    pub replayed_from: Option<&'a str>,
    /// The replay's idempotency key.
    pub replay_key: Option<&'a str>,
    /// Why ignored or rejected.
    pub reason: Option<&'a str>,
    /// Stored (redacted) headers.
    pub headers: &'a HeaderList,
    /// The run, if the delivery gets one.
    pub run_id: Option<&'a str>,
}

/// One delivery row joined with its run.
#[derive(Debug, Clone, Deserialize)]
struct Row {
    id: String,
    seq: i64,
    received_at: i64,
    status: String,
    dedupe_key: Option<String>,
    attempt_count: i64,
    signature_status: String,
    matched_secret: Option<String>,
    event_type: Option<String>,
    replayed_from: Option<String>,
    reason: Option<String>,
    headers: String,
    body_bytes: i64,
    run_id: Option<String>,
    r_status: Option<String>,
    r_attempts: Option<i64>,
    r_next_attempt_at: Option<i64>,
    r_last_error: Option<String>,
    r_last_status_code: Option<i64>,
    r_dead_lettered_at: Option<i64>,
    r_created_at: Option<i64>,
    r_updated_at: Option<i64>,
}

const ROW_SELECT: &str =
    "SELECT d.id, d.seq, d.received_at, d.status, d.dedupe_key, d.attempt_count,
    d.signature_status, d.matched_secret, d.event_type, d.replayed_from, d.reason, d.headers,
    d.body_bytes, d.run_id, r.status AS r_status, r.attempts AS r_attempts,
    r.next_attempt_at AS r_next_attempt_at, r.last_error AS r_last_error,
    r.last_status_code AS r_last_status_code, r.dead_lettered_at AS r_dead_lettered_at,
    r.created_at AS r_created_at, r.updated_at AS r_updated_at
    FROM deliveries d LEFT JOIN runs r ON r.id = d.run_id";

/// A run row as the state machine and the consumer need it.
#[derive(Debug, Clone, Deserialize)]
pub struct RunRow {
    /// `run_…`.
    pub id: String,
    /// Its delivery.
    pub delivery_id: String,
    /// Status name.
    pub status: String,
    /// Attempts claimed.
    pub attempts: i64,
    /// Lease end (ms).
    pub lease_until: Option<i64>,
    /// Next attempt due (ms).
    pub next_attempt_at: i64,
}

impl RunRow {
    /// The state-machine view of this row.
    pub fn state(&self) -> RunState {
        RunState {
            status: RunStatus::parse(&self.status).unwrap_or(RunStatus::Failed),
            attempts: self.attempts.max(0) as u32,
            lease_until: self.lease_until.map(Timestamp),
            next_attempt_at: Timestamp(self.next_attempt_at),
        }
    }
}

/// A ledger over one object's SQL storage.
pub struct Ledger {
    sql: SqlStorage,
}

impl Ledger {
    /// Wraps `sql`.
    pub fn new(sql: SqlStorage) -> Self {
        Ledger { sql }
    }

    fn exec(
        &self,
        context: &'static str,
        query: &str,
        args: Vec<V>,
    ) -> ApiResult<worker::SqlCursor> {
        self.sql.exec(query, Some(args)).map_err(sql_err(context))
    }

    fn rows<T: serde::de::DeserializeOwned>(
        &self,
        context: &'static str,
        query: &str,
        args: Vec<V>,
    ) -> ApiResult<Vec<T>> {
        self.exec(context, query, args)?
            .to_array::<T>()
            .map_err(sql_err(context))
    }

    /// Brings the schema to the newest version, `MIGRATIONS.len()`.
    pub fn migrate(&self) -> ApiResult<()> {
        self.exec(
            "migrate",
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            vec![],
        )?;
        #[derive(Deserialize)]
        struct Val {
            value: String,
        }
        let current: usize = self
            .rows::<Val>(
                "migrate",
                "SELECT value FROM meta WHERE key = 'schema_version'",
                vec![],
            )?
            .first()
            .and_then(|v| v.value.parse().ok())
            .unwrap_or(0);
        for (n, step) in MIGRATIONS.iter().enumerate().skip(current) {
            for stmt in step.iter() {
                self.exec("migrate", stmt, vec![])?;
            }
            self.exec(
                "migrate",
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                vec![s((n + 1).to_string())],
            )?;
        }
        Ok(())
    }

    fn meta(&self, key: &str) -> ApiResult<Option<String>> {
        #[derive(Deserialize)]
        struct Val {
            value: String,
        }
        Ok(self
            .rows::<Val>("meta", "SELECT value FROM meta WHERE key = ?", vec![s(key)])?
            .into_iter()
            .next()
            .map(|v| v.value))
    }

    fn set_meta(&self, key: &str, value: &str) -> ApiResult<()> {
        self.exec(
            "meta",
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![s(key), s(value)],
        )?;
        Ok(())
    }

    /// The stored configuration, if the trigger was created here.
    pub fn config(&self) -> ApiResult<Option<TriggerConfig>> {
        match self.meta("config")? {
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| ApiError::internal("stored config", e)),
            None => Ok(None),
        }
    }

    /// Stores the configuration.
    pub fn put_config(&self, cfg: &TriggerConfig) -> ApiResult<()> {
        let text = serde_json::to_string(cfg).map_err(|e| ApiError::internal("config json", e))?;
        self.set_meta("config", &text)
    }

    /// When the trigger was deleted, if it was.
    pub fn deleted_at(&self) -> ApiResult<Option<Timestamp>> {
        Ok(self
            .meta("deleted_at")?
            .and_then(|v| v.parse().ok())
            .map(Timestamp))
    }

    /// Marks the trigger deleted.
    pub fn mark_deleted(&self, now: Timestamp) -> ApiResult<()> {
        self.set_meta("deleted_at", &now.millis().to_string())
    }

    /// Whether the registry still lacks this trigger's latest view.
    pub fn registry_dirty(&self) -> ApiResult<bool> {
        Ok(self.meta("registry_dirty")?.as_deref() == Some("1"))
    }

    /// Records whether the registry is up to date.
    pub fn set_registry_dirty(&self, dirty: bool) -> ApiResult<()> {
        self.set_meta("registry_dirty", if dirty { "1" } else { "0" })
    }

    fn next_seq(&self) -> ApiResult<i64> {
        #[derive(Deserialize)]
        struct Seq {
            value: i64,
        }
        self.rows::<Seq>(
            "seq",
            "UPDATE counters SET value = value + 1 WHERE name = 'seq' RETURNING value",
            vec![],
        )?
        .first()
        .map(|r| r.value)
        .ok_or_else(|| ApiError::Internal("seq counter missing".into()))
    }

    /// The dedupe holder for `key` received at or after `cutoff`.
    pub fn find_holder(&self, key: &str, cutoff: Timestamp) -> ApiResult<Option<Holder>> {
        let statuses: Vec<String> = DeliveryStatus::HOLDS_DEDUPE_KEY
            .iter()
            .map(|st| format!("'{}'", st.as_str()))
            .collect();
        let query = format!(
            "SELECT id, run_id, status FROM deliveries
             WHERE dedupe_key = ? AND replayed_from IS NULL AND received_at >= ? AND status IN ({})
             ORDER BY received_at ASC, id ASC LIMIT 1",
            statuses.join(", ")
        );
        Ok(self
            .rows::<Holder>("find holder", &query, vec![s(key), i(cutoff.millis())])?
            .into_iter()
            .next())
    }

    /// Counts one more arrival of a delivery.
    pub fn bump_attempt(&self, delivery_id: &str) -> ApiResult<()> {
        let seq = self.next_seq()?;
        self.exec(
            "bump attempt",
            "UPDATE deliveries SET attempt_count = attempt_count + 1, seq = ? WHERE id = ?",
            vec![i(seq), s(delivery_id)],
        )?;
        Ok(())
    }

    /// Inserts a delivery with its body.
    pub fn insert_delivery(&self, d: &NewDelivery<'_>, body: &[u8]) -> ApiResult<()> {
        let seq = self.next_seq()?;
        let headers =
            serde_json::to_string(d.headers).map_err(|e| ApiError::internal("headers json", e))?;
        self.exec(
            "insert delivery",
            "INSERT INTO deliveries (id, seq, received_at, status, dedupe_key, attempt_count,
                signature_status, matched_secret, event_type, replayed_from, replay_key, reason,
                headers, body_bytes, run_id)
             VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                s(d.id),
                i(seq),
                i(d.received_at.millis()),
                s(d.status.as_str()),
                opt(d.dedupe_key),
                s(d.signature_status),
                opt(d.matched_secret),
                opt(d.event_type),
                opt(d.replayed_from),
                opt(d.replay_key),
                opt(d.reason),
                s(headers),
                i(body.len() as i64),
                opt(d.run_id),
            ],
        )?;
        for (idx, chunk) in body.chunks(BODY_CHUNK).enumerate() {
            self.exec(
                "insert body",
                "INSERT INTO bodies (delivery_id, idx, data) VALUES (?, ?, ?)",
                vec![s(d.id), i(idx as i64), V::Blob(chunk.to_vec())],
            )?;
        }
        Ok(())
    }

    /// Inserts a new queued run.
    pub fn insert_run(&self, run_id: &str, delivery_id: &str, now: Timestamp) -> ApiResult<()> {
        self.exec(
            "insert run",
            "INSERT INTO runs (id, delivery_id, status, attempts, next_attempt_at, created_at, updated_at)
             VALUES (?, ?, 'queued', 0, ?, ?, ?)",
            vec![s(run_id), s(delivery_id), i(now.millis()), i(now.millis()), i(now.millis())],
        )?;
        Ok(())
    }

    /// A delivery's raw body.
    pub fn body(&self, delivery_id: &str) -> ApiResult<Vec<u8>> {
        let cursor = self.exec(
            "read body",
            "SELECT data FROM bodies WHERE delivery_id = ? ORDER BY idx",
            vec![s(delivery_id)],
        )?;
        let mut out = Vec::new();
        for row in cursor.raw() {
            let row = row.map_err(sql_err("read body"))?;
            if let Some(V::Blob(bytes)) = row.into_iter().next() {
                out.extend_from_slice(&bytes);
            }
        }
        Ok(out)
    }

    /// A delivery's stored headers.
    pub fn headers(&self, delivery_id: &str) -> ApiResult<HeaderList> {
        #[derive(Deserialize)]
        struct H {
            headers: String,
        }
        let rows = self.rows::<H>(
            "read headers",
            "SELECT headers FROM deliveries WHERE id = ?",
            vec![s(delivery_id)],
        )?;
        match rows.into_iter().next() {
            Some(h) => {
                serde_json::from_str(&h.headers).map_err(|e| ApiError::internal("headers json", e))
            }
            None => Ok(HeaderList::new()),
        }
    }

    /// A run.
    pub fn run(&self, run_id: &str) -> ApiResult<Option<RunRow>> {
        Ok(self
            .rows::<RunRow>(
                "read run",
                "SELECT id, delivery_id, status, attempts, lease_until, next_attempt_at FROM runs WHERE id = ?",
                vec![s(run_id)],
            )?
            .into_iter()
            .next())
    }

    /// Records a claim.
    pub fn claim_run(
        &self,
        run_id: &str,
        attempt: u32,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> ApiResult<()> {
        self.exec(
            "claim run",
            "UPDATE runs SET attempts = ?, lease_until = ?, updated_at = ? WHERE id = ?",
            vec![
                i(i64::from(attempt)),
                i(lease_until.millis()),
                i(now.millis()),
                s(run_id),
            ],
        )?;
        Ok(())
    }

    /// Writes a run's new state and mirrors its status onto the delivery.
    pub fn settle_run(
        &self,
        run: &RunRow,
        state: &RunState,
        last_error: Option<&str>,
        last_status_code: Option<u16>,
        now: Timestamp,
    ) -> ApiResult<()> {
        let dlq = i64::from(state.status == RunStatus::Failed);
        self.exec(
            "settle run",
            "UPDATE runs SET status = ?, attempts = ?, lease_until = ?, next_attempt_at = ?,
                last_error = COALESCE(?, last_error), last_status_code = COALESCE(?, last_status_code),
                dlq_pending = MAX(dlq_pending, ?), updated_at = ?
             WHERE id = ?",
            vec![
                s(state.status.as_str()),
                i(i64::from(state.attempts)),
                opt_i(state.lease_until.map(Timestamp::millis)),
                i(state.next_attempt_at.millis()),
                opt(last_error),
                opt_i(last_status_code.map(i64::from)),
                i(dlq),
                i(now.millis()),
                s(&run.id),
            ],
        )?;
        self.touch_delivery(&run.delivery_id, DeliveryStatus::of_run(state.status))
    }

    /// Marks a run delivered without an attempt (a trigger with no target).
    pub fn deliver_without_target(&self, run_id: &str, now: Timestamp) -> ApiResult<()> {
        let Some(run) = self.run(run_id)? else {
            return Ok(());
        };
        if RunStatus::parse(&run.status) != Some(RunStatus::Queued) {
            return Ok(());
        }
        let state = RunState {
            status: RunStatus::Delivered,
            lease_until: None,
            ..run.state()
        };
        self.settle_run(&run, &state, None, None, now)
    }

    /// Records that a failed run's message is on the dead-letter queue.
    pub fn mark_dead_lettered(
        &self,
        run_id: &str,
        delivery_id: &str,
        now: Timestamp,
    ) -> ApiResult<()> {
        self.exec(
            "mark dead-lettered",
            "UPDATE runs SET dlq_pending = 0, dead_lettered_at = ?, updated_at = ? WHERE id = ?",
            vec![i(now.millis()), i(now.millis()), s(run_id)],
        )?;
        self.touch_delivery(delivery_id, DeliveryStatus::Failed)
    }

    fn touch_delivery(&self, delivery_id: &str, status: DeliveryStatus) -> ApiResult<()> {
        let seq = self.next_seq()?;
        self.exec(
            "touch delivery",
            "UPDATE deliveries SET status = ?, seq = ? WHERE id = ?",
            vec![s(status.as_str()), i(seq), s(delivery_id)],
        )?;
        Ok(())
    }

    /// Queued runs the alarm should look at: an attempt whose lease has
    /// ended, or a run due at least `grace_ms` ago with no attempt in flight.
    /// (The same rule as `edgehook_core::run::recheck_at`, as a query.)
    pub fn stale_runs(&self, now: Timestamp, grace_ms: i64, limit: u32) -> ApiResult<Vec<RunRow>> {
        self.rows(
            "stale runs",
            "SELECT id, delivery_id, status, attempts, lease_until, next_attempt_at FROM runs
             WHERE status = 'queued'
               AND ((lease_until IS NOT NULL AND lease_until <= ?)
                 OR (lease_until IS NULL AND next_attempt_at <= ?))
             ORDER BY next_attempt_at LIMIT ?",
            vec![
                i(now.millis()),
                i(now.millis() - grace_ms),
                i(i64::from(limit)),
            ],
        )
    }

    /// Failed runs whose dead-letter message is still owed.
    pub fn dlq_pending(&self, limit: u32) -> ApiResult<Vec<RunRow>> {
        self.rows(
            "dlq pending",
            "SELECT id, delivery_id, status, attempts, lease_until, next_attempt_at FROM runs
             WHERE dlq_pending = 1 LIMIT ?",
            vec![i(i64::from(limit))],
        )
    }

    /// When the alarm next has work: the earliest `recheck_at` of an open run
    /// (`grace_ms` after due, or at lease end), or at once for an owed dead letter.
    pub fn next_run_check(&self, grace_ms: i64) -> ApiResult<Option<i64>> {
        #[derive(Deserialize)]
        struct Next {
            due: Option<i64>,
        }
        let rows = self.rows::<Next>(
            "next run check",
            "SELECT MIN(COALESCE(lease_until, next_attempt_at + ?)) AS due FROM runs WHERE status = 'queued'",
            vec![i(grace_ms)],
        )?;
        let pending = self.rows::<Next>(
            "next run check",
            "SELECT MIN(updated_at) AS due FROM runs WHERE dlq_pending = 1",
            vec![],
        )?;
        let a = rows.into_iter().next().and_then(|r| r.due);
        let b = pending.into_iter().next().and_then(|r| r.due);
        Ok(match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        })
    }

    /// Whether any delivery is stored (retention then needs an alarm).
    pub fn has_deliveries(&self) -> ApiResult<bool> {
        #[derive(Deserialize)]
        struct One {
            #[allow(dead_code)]
            id: String,
        }
        Ok(!self
            .rows::<One>("any delivery", "SELECT id FROM deliveries LIMIT 1", vec![])?
            .is_empty())
    }

    /// Deletes deliveries (with bodies and runs) received before `cutoff`,
    /// except those whose run is still open. Returns how many were deleted.
    pub fn enforce_retention(&self, cutoff: Timestamp, batch: u32) -> ApiResult<usize> {
        #[derive(Deserialize)]
        struct Id {
            id: String,
            run_id: Option<String>,
        }
        let old = self.rows::<Id>(
            "retention",
            "SELECT id, run_id FROM deliveries WHERE received_at < ? AND status != 'queued' ORDER BY received_at LIMIT ?",
            vec![i(cutoff.millis()), i(i64::from(batch))],
        )?;
        for row in &old {
            self.exec(
                "retention",
                "DELETE FROM bodies WHERE delivery_id = ?",
                vec![s(&row.id)],
            )?;
            if let Some(run) = &row.run_id {
                self.exec("retention", "DELETE FROM runs WHERE id = ?", vec![s(run)])?;
            }
            self.exec(
                "retention",
                "DELETE FROM deliveries WHERE id = ?",
                vec![s(&row.id)],
            )?;
        }
        Ok(old.len())
    }

    /// How many rejected deliveries were stored since `since`.
    pub fn rejections_stored_since(&self, since: Timestamp) -> ApiResult<i64> {
        #[derive(Deserialize)]
        struct N {
            n: i64,
        }
        Ok(self
            .rows::<N>(
                "count rejections",
                "SELECT COUNT(*) AS n FROM deliveries WHERE status = 'rejected' AND received_at >= ?",
                vec![i(since.millis())],
            )?
            .first()
            .map_or(0, |r| r.n))
    }

    /// Counts one rejection that was not stored, in its minute.
    pub fn aggregate_rejection(
        &self,
        at: Timestamp,
        signature_status: &str,
        reason: &str,
    ) -> ApiResult<()> {
        let minute = at.millis() - at.millis().rem_euclid(60_000);
        self.exec(
            "aggregate rejection",
            "INSERT INTO rejection_windows (minute, signature_status, count, last_reason) VALUES (?, ?, 1, ?)
             ON CONFLICT (minute, signature_status) DO UPDATE SET count = count + 1, last_reason = excluded.last_reason",
            vec![i(minute), s(signature_status), s(reason)],
        )?;
        Ok(())
    }

    /// Aggregated rejections, newest minute first.
    pub fn rejection_windows(&self, limit: u32) -> ApiResult<Vec<serde_json::Value>> {
        #[derive(Deserialize)]
        struct W {
            minute: i64,
            signature_status: String,
            count: i64,
            last_reason: Option<String>,
        }
        let rows = self.rows::<W>(
            "rejection windows",
            "SELECT minute, signature_status, count, last_reason FROM rejection_windows ORDER BY minute DESC, signature_status LIMIT ?",
            vec![i(i64::from(limit))],
        )?;
        Ok(rows
            .into_iter()
            .map(|w| {
                serde_json::json!({
                    "minute": Timestamp(w.minute).to_rfc3339(),
                    "signature_status": w.signature_status,
                    "count": w.count,
                    "last_reason": w.last_reason,
                })
            })
            .collect())
    }

    /// Ids of deliveries matching a bulk-replay filter, oldest first; never
    /// rejected ones.
    pub fn replay_candidates(
        &self,
        status: Option<DeliveryStatus>,
        after: Option<Timestamp>,
        before: Option<Timestamp>,
        event_type: Option<&str>,
        limit: u32,
    ) -> ApiResult<Vec<String>> {
        #[derive(Deserialize)]
        struct Id {
            id: String,
        }
        let mut query = String::from("SELECT id FROM deliveries WHERE status != 'rejected'");
        let mut args = Vec::new();
        if let Some(st) = status {
            query.push_str(" AND status = ?");
            args.push(s(st.as_str()));
        }
        if let Some(t) = after {
            query.push_str(" AND received_at >= ?");
            args.push(i(t.millis()));
        }
        if let Some(t) = before {
            query.push_str(" AND received_at < ?");
            args.push(i(t.millis()));
        }
        if let Some(e) = event_type {
            query.push_str(" AND event_type = ?");
            args.push(s(e));
        }
        query.push_str(" ORDER BY received_at, id LIMIT ?");
        args.push(i(i64::from(limit)));
        Ok(self
            .rows::<Id>("replay candidates", &query, args)?
            .into_iter()
            .map(|r| r.id)
            .collect())
    }

    fn to_delivery(&self, trigger_id: &str, row: Row, full: bool) -> ApiResult<Delivery> {
        let run = match (&row.run_id, &row.r_status) {
            (Some(run_id), Some(status)) => {
                let status = RunStatus::parse(status).unwrap_or(RunStatus::Failed);
                Some(RunView {
                    run_id: run_id.clone(),
                    status,
                    attempts: row.r_attempts.unwrap_or(0).max(0) as u32,
                    last_error: row.r_last_error.clone(),
                    last_status_code: row.r_last_status_code.and_then(|c| u16::try_from(c).ok()),
                    next_attempt_at: if status == RunStatus::Queued {
                        row.r_next_attempt_at.map(|t| Timestamp(t).to_rfc3339())
                    } else {
                        None
                    },
                    dead_lettered_at: row.r_dead_lettered_at.map(|t| Timestamp(t).to_rfc3339()),
                    created_at: Timestamp(row.r_created_at.unwrap_or(0)).to_rfc3339(),
                    updated_at: Timestamp(row.r_updated_at.unwrap_or(0)).to_rfc3339(),
                })
            }
            _ => None,
        };
        let (headers, raw_body) = if full {
            let headers: HeaderList = serde_json::from_str(&row.headers)
                .map_err(|e| ApiError::internal("headers json", e))?;
            (Some(headers), Some(b64(&self.body(&row.id)?)))
        } else {
            (None, None)
        };
        Ok(Delivery {
            delivery_id: row.id,
            trigger_id: trigger_id.to_string(),
            status: DeliveryStatus::parse(&row.status).unwrap_or(DeliveryStatus::Failed),
            received_at: Timestamp(row.received_at).to_rfc3339(),
            dedupe_key: row.dedupe_key,
            attempt_count: row.attempt_count.max(0) as u32,
            signature_status: row.signature_status,
            matched_secret: row.matched_secret,
            event_type: row.event_type,
            replayed_from: row.replayed_from,
            reason: row.reason,
            body_bytes: row.body_bytes.max(0) as u64,
            run,
            headers,
            raw_body,
        })
    }

    /// One delivery, with headers and body when `full`.
    pub fn delivery(&self, trigger_id: &str, id: &str, full: bool) -> ApiResult<Option<Delivery>> {
        let rows = self.rows::<Row>(
            "read delivery",
            &format!("{ROW_SELECT} WHERE d.id = ?"),
            vec![s(id)],
        )?;
        rows.into_iter()
            .next()
            .map(|r| self.to_delivery(trigger_id, r, full))
            .transpose()
    }

    /// The replay created earlier for (`original`, `key`), if any.
    pub fn replay_by_key(
        &self,
        original: &str,
        key: &str,
    ) -> ApiResult<Option<(String, Option<String>)>> {
        #[derive(Deserialize)]
        struct R {
            id: String,
            run_id: Option<String>,
        }
        Ok(self
            .rows::<R>(
                "replay by key",
                "SELECT id, run_id FROM deliveries WHERE replayed_from = ? AND replay_key = ?",
                vec![s(original), s(key)],
            )?
            .into_iter()
            .next()
            .map(|r| (r.id, r.run_id)))
    }

    /// A page of deliveries, newest first. `before` is the last row of the
    /// previous page as (received_at, id).
    pub fn list(
        &self,
        trigger_id: &str,
        status: Option<DeliveryStatus>,
        before: Option<(i64, String)>,
        limit: u32,
    ) -> ApiResult<Vec<(Delivery, i64)>> {
        let mut query = format!("{ROW_SELECT} WHERE 1 = 1");
        let mut args = Vec::new();
        if let Some(st) = status {
            query.push_str(" AND d.status = ?");
            args.push(s(st.as_str()));
        }
        if let Some((at, id)) = before {
            query.push_str(" AND (d.received_at < ? OR (d.received_at = ? AND d.id < ?))");
            args.extend([i(at), i(at), s(id)]);
        }
        query.push_str(" ORDER BY d.received_at DESC, d.id DESC LIMIT ?");
        args.push(i(i64::from(limit)));
        let rows = self.rows::<Row>("list deliveries", &query, args)?;
        rows.into_iter()
            .map(|r| {
                let at = r.received_at;
                self.to_delivery(trigger_id, r, false).map(|d| (d, at))
            })
            .collect()
    }

    /// Changes after `after`, at most `limit` and about `max_bytes` of bodies
    /// (always at least one change). Returns the page and whether more follow.
    pub fn changes(
        &self,
        trigger_id: &str,
        after: i64,
        limit: u32,
        max_bytes: u64,
    ) -> ApiResult<(Vec<Change>, bool)> {
        let rows = self.rows::<Row>(
            "changes",
            &format!("{ROW_SELECT} WHERE d.seq > ? ORDER BY d.seq LIMIT ?"),
            vec![i(after), i(i64::from(limit) + 1)],
        )?;
        let mut more = rows.len() > limit as usize;
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for row in rows.into_iter().take(limit as usize) {
            let size = row.body_bytes.max(0) as u64 * 4 / 3 + row.headers.len() as u64 + 512;
            if !out.is_empty() && bytes + size > max_bytes {
                more = true;
                break;
            }
            bytes += size;
            let seq = row.seq;
            let delivery = self.to_delivery(trigger_id, row, true)?;
            out.push(Change { seq, delivery });
        }
        Ok((out, more))
    }
}
