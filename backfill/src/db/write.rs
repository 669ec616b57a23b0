//! Writing a page and its cursor in one transaction: by `COPY` while every
//! row of the page is new (`copy.rs`), else by upserts.
//!
//! A page is upserted with one `INSERT … SELECT FROM UNNEST(…) ON CONFLICT
//! DO UPDATE` per table (a round trip per page, not per row). Rows only
//! move forward: an upsert rewrites a row only for a later change (`seq`),
//! so a repeated or concurrent sync changes nothing.
//!
//! A page whose rows are all new, as in a first backfill, goes in faster by
//! a binary `COPY` straight into the tables, under a savepoint: if any of
//! its rows is already there, the `COPY` fails on the primary key, the
//! savepoint is rolled back, and the page is upserted instead. A `COPY`
//! that succeeds wrote exactly what the upserts would have (every row was
//! new), so the rule above holds either way.

use anyhow::Result;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Transaction};

use super::copy::copy_page;
use super::page::PageRows;
use super::{classify, pg_code};

/// Rows written by one page.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    /// Deliveries inserted or updated.
    pub deliveries: u64,
    /// Runs inserted or updated.
    pub runs: u64,
    /// Attempts inserted or updated.
    pub attempts: u64,
    /// Whether the page went in by `COPY` (every row of it was new).
    pub copied: bool,
}

/// Writes one page and the new cursor in one transaction: by `COPY` when
/// `try_copy` and every row of the page is new, by upserts otherwise.
pub async fn apply_page(
    client: &mut Client,
    trigger_id: &str,
    page: &PageRows,
    try_copy: bool,
) -> Result<Written> {
    let mut tx = client
        .transaction()
        .await
        .map_err(|e| classify(e, "starting a page"))?;
    if try_copy {
        let copy = tx
            .savepoint("page_copy")
            .await
            .map_err(|e| classify(e, "starting a page"))?;
        match copy_page(&copy, trigger_id, page).await {
            Ok(written) => {
                copy.commit()
                    .await
                    .map_err(|e| classify(e, "copying a page"))?;
                move_cursor(&tx, trigger_id, page.next_after).await?;
                tx.commit()
                    .await
                    .map_err(|e| classify(e, "committing a page"))?;
                return Ok(written);
            }
            // A row of the page is already there: upsert the page instead.
            Err(e) if pg_code(&e) == Some(&SqlState::UNIQUE_VIOLATION) => copy
                .rollback()
                .await
                .map_err(|e| classify(e, "undoing a page's copy"))?,
            Err(e) => {
                return Err(match e.downcast::<tokio_postgres::Error>() {
                    Ok(e) => classify(e, "copying a page"),
                    Err(e) => e,
                })
            }
        }
    }
    let written = upsert_page(&tx, trigger_id, page).await?;
    tx.commit()
        .await
        .map_err(|e| classify(e, "committing a page"))?;
    Ok(written)
}
/// Moves the trigger's cursor to `next_after` (never back).
async fn move_cursor(tx: &Transaction<'_>, trigger_id: &str, next_after: i64) -> Result<u64> {
    tx.execute(
        "INSERT INTO sync_cursors (trigger_id, last_seq) VALUES ($1, $2)
         ON CONFLICT (trigger_id) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now()
         WHERE sync_cursors.last_seq < EXCLUDED.last_seq",
        &[&trigger_id, &next_after],
    )
    .await
    .map_err(|e| classify(e, "moving the cursor"))
}

/// The page's rows by upserts, and the cursor.
async fn upsert_page(tx: &Transaction<'_>, trigger_id: &str, page: &PageRows) -> Result<Written> {
    let (d, r, a) = (&page.deliveries, &page.runs, &page.attempts);
    // The four statements are pipelined on the connection (sent without
    // waiting for each other's answers): one round trip's wait per page, not
    // one per statement. The tables have no foreign keys, and all four
    // commit together.
    let deliveries = async {
        tx.execute(
            "INSERT INTO deliveries (trigger_id, delivery_id, seq, status, dedupe_key, attempt_count,
                signature_status, matched_secret, event_type, replayed_from, reason, received_at,
                raw_body, body_bytes, headers, run_id, body_truncated)
             SELECT $1, t.id, t.seq, t.status, t.dedupe_key, t.attempt_count, t.signature_status,
                t.matched, t.event_type, t.replayed_from, t.reason, t.received_at,
                t.body, t.body_bytes, t.headers, t.run_id, t.truncated
             FROM UNNEST($2::text[], $3::int8[], $4::text[], $5::text[], $6::int4[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::bytea[],
                         $14::int4[], $15::jsonb[], $16::text[], $17::bool[])
                  AS t(id, seq, status, dedupe_key, attempt_count, signature_status, matched, event_type,
                       replayed_from, reason, received_at, body, body_bytes, headers, run_id, truncated)
             ON CONFLICT (trigger_id, delivery_id) DO UPDATE SET
                seq = EXCLUDED.seq, status = EXCLUDED.status, dedupe_key = EXCLUDED.dedupe_key,
                attempt_count = EXCLUDED.attempt_count, signature_status = EXCLUDED.signature_status,
                matched_secret = EXCLUDED.matched_secret, event_type = EXCLUDED.event_type,
                replayed_from = EXCLUDED.replayed_from, reason = EXCLUDED.reason,
                received_at = EXCLUDED.received_at, raw_body = EXCLUDED.raw_body,
                body_bytes = EXCLUDED.body_bytes, headers = EXCLUDED.headers, run_id = EXCLUDED.run_id,
                body_truncated = EXCLUDED.body_truncated
             WHERE deliveries.seq < EXCLUDED.seq",
            &[
                &trigger_id,
                &d.ids,
                &d.seqs,
                &d.statuses,
                &d.dedupe_keys,
                &d.attempt_counts,
                &d.signature_statuses,
                &d.matched,
                &d.event_types,
                &d.replayed_from,
                &d.reasons,
                &d.received,
                &d.bodies,
                &d.body_bytes,
                &d.headers,
                &d.run_ids,
                &d.truncated,
            ],
        )
        .await
        .map_err(|e| classify(e, "upserting deliveries"))
    };
    let runs = async {
        tx.execute(
            "INSERT INTO runs (run_id, trigger_id, delivery_id, seq, status, attempts, last_error,
                last_status_code, next_attempt_at, dead_lettered_at, created_at, updated_at, route_id)
             SELECT t.id, $1, t.delivery_id, t.seq, t.status, t.attempts, t.last_error, t.code,
                t.next_attempt, t.dead_lettered, t.created, t.updated, t.route_id
             FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::text[], $6::int4[], $7::text[],
                         $8::int4[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[],
                         $12::timestamptz[], $13::text[])
                  AS t(id, delivery_id, seq, status, attempts, last_error, code, next_attempt,
                       dead_lettered, created, updated, route_id)
             ON CONFLICT (run_id) DO UPDATE SET
                seq = EXCLUDED.seq, status = EXCLUDED.status, attempts = EXCLUDED.attempts,
                last_error = EXCLUDED.last_error, last_status_code = EXCLUDED.last_status_code,
                next_attempt_at = EXCLUDED.next_attempt_at, dead_lettered_at = EXCLUDED.dead_lettered_at,
                updated_at = EXCLUDED.updated_at, route_id = EXCLUDED.route_id
             WHERE runs.seq < EXCLUDED.seq",
            &[
                &trigger_id,
                &r.ids,
                &r.delivery_ids,
                &r.seqs,
                &r.statuses,
                &r.attempts,
                &r.last_errors,
                &r.codes,
                &r.next_attempt,
                &r.dead_lettered,
                &r.created,
                &r.updated,
                &r.routes,
            ],
        )
        .await
        .map_err(|e| classify(e, "upserting runs"))
    };
    let attempts = async {
        tx.execute(
            "INSERT INTO attempts (run_id, attempt, trigger_id, delivery_id, route_id, seq, started_at,
                duration_ms, status_code, error, error_message, response_excerpt, rate_limited_ms)
             SELECT t.run_id, t.attempt, $1, t.delivery_id, t.route_id, t.seq, t.started,
                t.duration, t.code, t.error, t.message, t.excerpt, t.waited
             FROM UNNEST($2::text[], $3::int4[], $4::text[], $5::text[], $6::int8[], $7::timestamptz[],
                         $8::int8[], $9::int4[], $10::text[], $11::text[], $12::text[], $13::int8[])
                  AS t(run_id, attempt, delivery_id, route_id, seq, started, duration, code, error,
                       message, excerpt, waited)
             ON CONFLICT (run_id, attempt) DO UPDATE SET
                seq = EXCLUDED.seq, started_at = EXCLUDED.started_at, duration_ms = EXCLUDED.duration_ms,
                status_code = EXCLUDED.status_code, error = EXCLUDED.error,
                error_message = EXCLUDED.error_message, response_excerpt = EXCLUDED.response_excerpt,
                rate_limited_ms = EXCLUDED.rate_limited_ms, route_id = EXCLUDED.route_id
             WHERE attempts.seq < EXCLUDED.seq",
            &[
                &trigger_id,
                &a.run_ids,
                &a.attempts,
                &a.delivery_ids,
                &a.routes,
                &a.seqs,
                &a.started,
                &a.durations,
                &a.codes,
                &a.errors,
                &a.messages,
                &a.excerpts,
                &a.waited,
            ],
        )
        .await
        .map_err(|e| classify(e, "upserting attempts"))
    };
    let cursor = move_cursor(tx, trigger_id, page.next_after);
    let (deliveries, runs, attempts, _) = futures::try_join!(deliveries, runs, attempts, cursor)?;
    Ok(Written {
        deliveries,
        runs,
        attempts,
        copied: false,
    })
}
