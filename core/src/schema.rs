//! The Trigger ledger's SQLite schema, and the statements that admit a
//! delivery.
//!
//! This is text only: the Worker runs it (`worker/src/ledger`), and so does
//! the bench's ledger floor (`bench/floor-rust` with `FLOOR_LEDGER =
//! "edgehook"`), which writes exactly the rows edgehook writes for a new
//! delivery and nothing else. Keeping the text here, in one place, is what
//! makes that floor a fair measure of what the ledger itself costs.
//!
//! Steps only add (tables, nullable or defaulted columns, indexes), so an
//! object written by an older version keeps working, and the older version
//! keeps working on an upgraded object.

use crate::api::DeliveryStatus;

/// Schema steps; step `n` upgrades version `n` to `n + 1`.
pub const MIGRATIONS: &[&[&str]] = &[&[
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
], &[
    // Rejected deliveries keep only an excerpt of their body.
    "ALTER TABLE deliveries ADD COLUMN body_truncated INTEGER NOT NULL DEFAULT 0",
    // What each row accounts for in the storage budget, and their running sum.
    "ALTER TABLE deliveries ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0",
    "UPDATE deliveries SET stored_bytes = body_bytes + length(headers) + 512",
    "INSERT OR IGNORE INTO counters (name, value)
        SELECT 'stored_bytes', COALESCE(SUM(stored_bytes), 0) FROM deliveries",
    // Re-sends of an unclaimed run, spaced exponentially.
    "ALTER TABLE runs ADD COLUMN resends INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN resend_after INTEGER",
    // First responses of calls made with an Idempotency-Key, kept for 24 h.
    "CREATE TABLE IF NOT EXISTS idempotency (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        response TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (scope, key)
    )",
], &[
    // Routes: each trigger's destinations, with their pause state, breaker
    // count (and trips in a row, and when a tripped route tries again) and
    // the next free slot of their rate limit.
    "CREATE TABLE IF NOT EXISTS routes (
        id TEXT PRIMARY KEY,
        config TEXT NOT NULL,
        paused_at INTEGER,
        paused_reason TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        breaker_trips INTEGER NOT NULL DEFAULT 0,
        resume_at INTEGER,
        next_grant_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    )",
    // A run belongs to a route (NULL for a trigger without routes); the
    // rate limit's wait is remembered until the attempt starts.
    "ALTER TABLE runs ADD COLUMN route_id TEXT",
    "ALTER TABLE runs ADD COLUMN rate_limited_since INTEGER",
    "CREATE INDEX IF NOT EXISTS runs_delivery ON runs (delivery_id)",
    "CREATE INDEX IF NOT EXISTS runs_route ON runs (route_id, status)",
    // Owed dead letters, which every alarm looks for: without it that is a
    // scan of every run the ledger holds.
    "CREATE INDEX IF NOT EXISTS runs_dlq ON runs (updated_at) WHERE dlq_pending = 1",
    // The query string a delivery arrived with (secret-looking values
    // redacted), for filters on `query`.
    "ALTER TABLE deliveries ADD COLUMN query TEXT",
    // Every dispatch attempt: appended at its claim, completed by its report.
    "CREATE TABLE IF NOT EXISTS attempts (
        run_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        delivery_id TEXT NOT NULL,
        route_id TEXT,
        started_at INTEGER NOT NULL,
        duration_ms INTEGER,
        status_code INTEGER,
        error TEXT,
        error_message TEXT,
        response_excerpt TEXT,
        rate_limited_ms INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, attempt)
    )",
    "CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id)",
]];

/// The dedupe holder of a key: the earliest delivery received at or after a
/// cutoff that still holds it. Arguments: the key, the cutoff (ms).
pub fn find_holder_query() -> String {
    format!(
        "SELECT id, run_id, status FROM deliveries
         WHERE dedupe_key = ? AND replayed_from IS NULL AND received_at >= ? AND status IN ({})
         ORDER BY received_at ASC, id ASC LIMIT 1",
        DeliveryStatus::HOLDS_DEDUPE_KEY
            .iter()
            .map(|st| format!("'{}'", st.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Takes the next change sequence number and, if the write fits the budget,
/// counts its bytes: `?1` the bytes, `?2` the budget. It returns the `seq`
/// row always, and the `stored_bytes` row only if the bytes fit. A refused
/// write still takes a sequence number, which leaves a gap the change feed
/// does not mind.
pub const COUNT_STORED_BYTES: &str =
    "UPDATE counters SET value = CASE name WHEN 'seq' THEN value + 1 ELSE MAX(0, value) + ?1 END
     WHERE name = 'seq' OR (name = 'stored_bytes' AND MAX(0, value) + ?1 <= ?2)
     RETURNING name, value";

/// Inserts a delivery row. Arguments, in order: id, seq, received_at,
/// status, dedupe_key, signature_status, matched_secret, event_type,
/// replayed_from, replay_key, reason, headers (JSON), body_bytes, run_id,
/// body_truncated, stored_bytes, query.
pub const INSERT_DELIVERY: &str =
    "INSERT INTO deliveries (id, seq, received_at, status, dedupe_key, attempt_count,
        signature_status, matched_secret, event_type, replayed_from, replay_key, reason,
        headers, body_bytes, run_id, body_truncated, stored_bytes, query)
     VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Inserts one chunk of a delivery's body: delivery id, chunk index, bytes.
pub const INSERT_BODY: &str = "INSERT INTO bodies (delivery_id, idx, data) VALUES (?, ?, ?)";

/// Inserts a run: id, delivery id, status, next_attempt_at, created_at,
/// updated_at, route id.
pub const INSERT_RUN: &str =
    "INSERT INTO runs (id, delivery_id, status, attempts, next_attempt_at, created_at, updated_at, route_id)
     VALUES (?, ?, ?, 0, ?, ?, ?, ?)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_insert_names_as_many_columns_as_it_binds() {
        // A statement whose column and value lists disagree fails only at
        // run time, in the Worker; this catches it natively.
        for stmt in [INSERT_DELIVERY, INSERT_BODY, INSERT_RUN] {
            let cols = stmt[stmt.find('(').expect("columns") + 1..stmt.find(')').expect("end")]
                .split(',')
                .count();
            let values = &stmt[stmt.find("VALUES").expect("values")..];
            let bound = values.split(',').count();
            assert_eq!(cols, bound, "{stmt}");
        }
    }

    #[test]
    fn the_holder_query_names_every_holding_status() {
        let q = find_holder_query();
        for st in DeliveryStatus::HOLDS_DEDUPE_KEY {
            assert!(q.contains(&format!("'{}'", st.as_str())), "{q}");
        }
        assert!(!q.contains("'rejected'"), "{q}");
    }

    #[test]
    fn steps_only_add() {
        // "Safe while the old code runs": no step drops or renames.
        for stmt in MIGRATIONS.iter().flat_map(|s| s.iter()) {
            let upper = stmt.to_ascii_uppercase();
            assert!(!upper.contains("DROP "), "{stmt}");
            assert!(!upper.contains("RENAME "), "{stmt}");
        }
    }
}
