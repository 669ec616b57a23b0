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

use crate::sqlrow::{self, row, FromRow};
use edgehook_core::api::{Change, Delivery, DeliveryStatus, RunView};
use edgehook_core::encoding::b64;
use edgehook_core::run::{RunState, RunStatus};
use edgehook_core::schema::MIGRATIONS;
use edgehook_core::trigger::TriggerConfig;
use edgehook_core::{HeaderList, Timestamp};
use worker::{SqlStorage, SqlStorageValue as V};

use crate::error::{ApiError, ApiResult};

mod attempts;
mod deliveries;
mod retention;
mod routes;
mod runs;

pub use attempts::{AttemptResult, NewAttempt};
pub use deliveries::{ListFilter, NewDelivery};
pub use runs::{NewRun, RunRow};

/// Raw bodies are stored in chunks below SQLite's 2 MB value limit.
const BODY_CHUNK: usize = 1_000_000;

fn s(v: impl Into<String>) -> V {
    V::String(v.into())
}
/// JavaScript's largest exact integer, 2^53 - 1.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// An integer binding. Every binding passes through a JavaScript number,
/// exact only within ±(2^53 - 1). No value the ledger stores comes near
/// that (times are milliseconds, counts are counts), so a value from a
/// request beyond it, a cursor say, is clamped to it: it compares the same
/// against every stored value, where rounding would not be exact and the
/// runtime logs a warning for it.
fn i(v: i64) -> V {
    V::Integer(v.clamp(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER))
}
fn opt(v: Option<&str>) -> V {
    v.map_or(V::Null, |x| V::String(x.to_string()))
}
fn opt_i(v: Option<i64>) -> V {
    v.map_or(V::Null, i)
}

fn sql_err(context: &'static str) -> impl Fn(worker::Error) -> ApiError {
    move |e| ApiError::internal(context, e)
}

/// The counter of bytes the ledger accounts for (see `stored_bytes`).
const STORED_BYTES: &str = "stored_bytes";

/// Header names a trigger adds to the fixed lists of credentials and
/// signatures that are redacted.
#[derive(Debug, Clone, Default)]
pub struct Redaction {
    /// Replaced by `[redacted]`.
    pub credentials: Vec<String>,
    /// Reduced to a scheme and a fingerprint.
    pub signatures: Vec<String>,
}

impl Redaction {
    /// What `cfg` adds.
    pub fn of(cfg: &TriggerConfig) -> Redaction {
        let own = |v: Vec<&str>| v.into_iter().map(str::to_string).collect();
        Redaction {
            credentials: own(cfg.credential_headers()),
            signatures: own(cfg.signature_headers()),
        }
    }
}

/// A ledger over one object's SQL storage.
#[derive(Clone)]
pub struct Ledger {
    sql: SqlStorage,
    redact: Redaction,
}

impl Ledger {
    /// Wraps `sql`.
    pub fn new(sql: SqlStorage, redact: Redaction) -> Self {
        Ledger { sql, redact }
    }

    /// Bytes the ledger accounts for: each stored delivery's headers, stored
    /// body and a fixed overhead for its row, run and indexes.
    pub fn stored_bytes(&self) -> ApiResult<u64> {
        Ok(self.counter(STORED_BYTES)?.max(0) as u64)
    }

    fn exec(
        &self,
        context: &'static str,
        query: &str,
        args: Vec<V>,
    ) -> ApiResult<worker::SqlCursor> {
        self.sql.exec(query, Some(args)).map_err(sql_err(context))
    }

    fn rows<T: FromRow>(
        &self,
        context: &'static str,
        query: &str,
        args: Vec<V>,
    ) -> ApiResult<Vec<T>> {
        let rows = self.row_values(context, T::COLUMNS, query, args)?;
        sqlrow::bind(rows).map_err(|e| ApiError::internal(context, e))
    }

    /// The non-generic part of [`Ledger::rows`]: one copy in the Wasm
    /// serves every row type.
    fn row_values(
        &self,
        context: &'static str,
        columns: &[&str],
        query: &str,
        args: Vec<V>,
    ) -> ApiResult<Vec<Vec<V>>> {
        let cursor = self.exec(context, query, args)?;
        sqlrow::all_values(&cursor, columns).map_err(|e| ApiError::internal(context, e))
    }

    /// As [`Ledger::rows`], for a page of many rows: SQLite packs them into
    /// one JSON text (`sqlrow::json_select`), so the page crosses into Wasm
    /// as one value rather than one per column of every row. The query's
    /// columns must be named as `T`'s fields, and none may be a blob.
    fn json_rows<T: FromRow>(
        &self,
        context: &'static str,
        query: &str,
        args: Vec<V>,
    ) -> ApiResult<Vec<T>> {
        let page = self.json_page(context, T::COLUMNS, query, args)?;
        sqlrow::bind(page).map_err(|e| ApiError::internal(context, e))
    }

    /// The non-generic part of [`Ledger::json_rows`].
    fn json_page(
        &self,
        context: &'static str,
        fields: &[&str],
        query: &str,
        args: Vec<V>,
    ) -> ApiResult<Vec<Vec<V>>> {
        let cursor = self.exec(context, &sqlrow::json_select(fields, query), args)?;
        sqlrow::json_page(&cursor).map_err(|e| ApiError::internal(context, e))
    }

    /// Brings the schema to the newest version, `MIGRATIONS.len()`.
    pub fn migrate(&self) -> ApiResult<()> {
        self.exec(
            "migrate",
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            vec![],
        )?;
        row! {
            struct Val {
                value: String,
            }
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
        row! {
            struct Val {
                value: String,
            }
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
            Some(text) => edgehook_core::encoding::json_from_str(&text)
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

    fn counter(&self, name: &str) -> ApiResult<i64> {
        row! {
            struct C {
                value: i64,
            }
        }
        Ok(self
            .rows::<C>(
                "counter",
                "SELECT value FROM counters WHERE name = ?",
                vec![s(name)],
            )?
            .first()
            .map_or(0, |c| c.value))
    }

    fn add_to_counter(&self, name: &str, delta: i64) -> ApiResult<()> {
        self.exec(
            "counter",
            "INSERT INTO counters (name, value) VALUES (?, ?)
             ON CONFLICT (name) DO UPDATE SET value = MAX(0, value + excluded.value)",
            vec![s(name), i(delta)],
        )?;
        Ok(())
    }

    /// The change sequence's current value: the feed's head.
    pub fn current_seq(&self) -> ApiResult<i64> {
        row! {
            struct Seq {
                value: i64,
            }
        }
        Ok(self
            .rows::<Seq>(
                "seq",
                "SELECT value FROM counters WHERE name = 'seq'",
                vec![],
            )?
            .first()
            .map_or(0, |r| r.value))
    }

    /// Takes `n` change sequence numbers and returns the last of them (the
    /// others are the `n - 1` before it).
    fn next_seqs(&self, n: i64) -> ApiResult<i64> {
        row! {
            struct Seq {
                value: i64,
            }
        }
        self.rows::<Seq>(
            "seq",
            "UPDATE counters SET value = value + ? WHERE name = 'seq' RETURNING value",
            vec![i(n)],
        )?
        .first()
        .map(|r| r.value)
        .ok_or_else(|| ApiError::Internal("seq counter missing".into()))
    }
}
