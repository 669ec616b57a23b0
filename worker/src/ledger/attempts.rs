//! The attempt timeline: one row per dispatch attempt, appended when the
//! attempt is claimed and completed once by its report (or marked `lost`
//! when its lease ended without one). Rows leave only with their delivery.

#[allow(clippy::wildcard_imports)]
use super::*;
use edgehook_core::api::{AttemptView, RunDetail};

/// What one attempt row accounts for in the storage budget: the row, its
/// index entry and the largest response excerpt.
const ATTEMPT_STORED_BYTES: i64 = 256 + edgehook_core::dispatch::RESPONSE_EXCERPT_BYTES as i64;

/// The outcome of an attempt as the consumer reported it.
#[derive(Debug, Clone)]
pub struct AttemptResult<'a> {
    /// When the request started (ms).
    pub started_at: Option<i64>,
    /// How long it took.
    pub duration_ms: Option<u64>,
    /// The target's status, if it answered.
    pub status_code: Option<u16>,
    /// The failure class; `None` on success.
    pub error: Option<&'a str>,
    /// A sentence about the failure.
    pub error_message: Option<&'a str>,
    /// The start of the response body.
    pub response_excerpt: Option<&'a str>,
}

/// An attempt as its claim starts it.
#[derive(Debug, Clone, Copy)]
pub struct NewAttempt {
    /// Its number, from 1.
    pub attempt: u32,
    /// When it may start: its rate-limit slot.
    pub started_at: Timestamp,
    /// How long the run waited for the route's rate limit (ms).
    pub rate_limited_ms: i64,
}

row! {
    #[derive(Debug)]
    struct AttemptRow {
        run_id: String,
        attempt: i64,
        started_at: i64,
        duration_ms: Option<i64>,
        status_code: Option<i64>,
        error: Option<String>,
        error_message: Option<String>,
        response_excerpt: Option<String>,
        rate_limited_ms: i64,
    }
}

impl AttemptRow {
    fn view(self) -> AttemptView {
        AttemptView {
            attempt: self.attempt.clamp(0, i64::from(u32::MAX)) as u32,
            started_at: Timestamp(self.started_at).to_rfc3339(),
            duration_ms: self.duration_ms.map(|d| d.max(0) as u64),
            status_code: self.status_code.and_then(|c| u16::try_from(c).ok()),
            error: self.error,
            error_message: self.error_message,
            response_excerpt: self.response_excerpt,
            rate_limited_ms: self.rate_limited_ms.max(0) as u64,
        }
    }
}

row! {
    #[derive(Debug)]
    struct DetailRow {
        id: String,
        delivery_id: String,
        route_id: Option<String>,
        status: String,
        attempts: i64,
        next_attempt_at: i64,
        last_error: Option<String>,
        last_status_code: Option<i64>,
        dead_lettered_at: Option<i64>,
        created_at: i64,
        updated_at: i64,
    }
}

fn detail(r: DetailRow, attempts: Vec<AttemptView>) -> RunDetail {
    let status = RunStatus::parse(&r.status).unwrap_or(RunStatus::Failed);
    RunDetail {
        run_id: r.id,
        delivery_id: r.delivery_id,
        route_id: r.route_id,
        status,
        attempt_count: r.attempts.clamp(0, i64::from(u32::MAX)) as u32,
        last_error: r.last_error,
        last_status_code: r.last_status_code.and_then(|c| u16::try_from(c).ok()),
        next_attempt_at: (status == RunStatus::Queued)
            .then(|| Timestamp(r.next_attempt_at).to_rfc3339()),
        dead_lettered_at: r.dead_lettered_at.map(|t| Timestamp(t).to_rfc3339()),
        created_at: Timestamp(r.created_at).to_rfc3339(),
        updated_at: Timestamp(r.updated_at).to_rfc3339(),
        attempts,
    }
}

const DETAIL_COLUMNS: &str = "id, delivery_id, route_id, status, attempts, next_attempt_at,
    last_error, last_status_code, dead_lettered_at, created_at, updated_at";

impl Ledger {
    /// Appends `attempt` of `run` (part of [`Ledger::claim_run`]); attempts
    /// before it that never reported are marked lost. Counts the row in the
    /// ledger's total and returns its bytes, for the caller to add to the
    /// delivery's own count.
    pub(super) fn start_attempt(&self, run: &RunRow, attempt: &NewAttempt) -> ApiResult<i64> {
        // The first attempt has no earlier one to close.
        if attempt.attempt > 1 {
            self.exec(
                "lost attempts",
                "UPDATE attempts SET error = 'lost',
                    error_message = 'no report came back before the lease ended'
                 WHERE run_id = ? AND attempt < ? AND duration_ms IS NULL AND error IS NULL",
                vec![s(&run.id), i(i64::from(attempt.attempt))],
            )?;
        }
        self.exec(
            "start attempt",
            "INSERT OR IGNORE INTO attempts (run_id, attempt, delivery_id, route_id, started_at, rate_limited_ms)
             VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                s(&run.id),
                i(i64::from(attempt.attempt)),
                s(&run.delivery_id),
                opt(run.route_id.as_deref()),
                i(attempt.started_at.millis()),
                i(attempt.rate_limited_ms.max(0)),
            ],
        )?;
        self.add_to_counter(STORED_BYTES, ATTEMPT_STORED_BYTES)?;
        Ok(ATTEMPT_STORED_BYTES)
    }

    /// Removes an attempt that was claimed but never started, with what it
    /// added to the storage budget; returns the bytes it accounted for (0 if
    /// it was not there).
    pub(super) fn remove_unstarted_attempt(&self, run: &RunRow, attempt: u32) -> ApiResult<i64> {
        row! {
            struct Gone {
                #[allow(dead_code)]
                attempt: i64,
            }
        }
        let rows = self.rows::<Gone>(
            "remove unstarted attempt",
            "DELETE FROM attempts
             WHERE run_id = ? AND attempt = ? AND duration_ms IS NULL AND error IS NULL
             RETURNING attempt",
            vec![s(&run.id), i(i64::from(attempt))],
        )?;
        if rows.is_empty() {
            return Ok(0);
        }
        self.add_to_counter(STORED_BYTES, -ATTEMPT_STORED_BYTES)?;
        Ok(ATTEMPT_STORED_BYTES)
    }

    /// Completes an attempt with its report, once: a second report of the
    /// same attempt changes nothing. Returns whether this one did.
    pub fn finish_attempt(
        &self,
        run_id: &str,
        attempt: u32,
        result: &AttemptResult<'_>,
    ) -> ApiResult<bool> {
        row! {
            struct Done {
                #[allow(dead_code)]
                attempt: i64,
            }
        }
        let excerpt = result.response_excerpt.map(|e| {
            let max = edgehook_core::dispatch::RESPONSE_EXCERPT_BYTES;
            let mut end = e.len().min(max);
            while !e.is_char_boundary(end) {
                end -= 1;
            }
            &e[..end]
        });
        let rows = self.rows::<Done>(
            "finish attempt",
            "UPDATE attempts SET started_at = COALESCE(?, started_at), duration_ms = ?, status_code = ?,
                error = ?, error_message = ?, response_excerpt = ?
             WHERE run_id = ? AND attempt = ? AND (duration_ms IS NULL AND (error IS NULL OR error = 'lost'))
             RETURNING attempt",
            vec![
                opt_i(result.started_at),
                i(result.duration_ms.unwrap_or(0).min(i64::MAX as u64) as i64),
                opt_i(result.status_code.map(i64::from)),
                opt(result.error),
                opt(result.error_message),
                opt(excerpt),
                s(run_id),
                i(i64::from(attempt)),
            ],
        )?;
        Ok(!rows.is_empty())
    }

    /// A run's attempts, oldest first.
    fn attempts_of(&self, run_ids: &[String]) -> ApiResult<Vec<(String, AttemptView)>> {
        let mut out = Vec::new();
        for id in run_ids {
            let rows = self.rows::<AttemptRow>(
                "attempts",
                "SELECT run_id, attempt, started_at, duration_ms, status_code, error, error_message,
                    response_excerpt, rate_limited_ms
                 FROM attempts WHERE run_id = ? ORDER BY attempt",
                vec![s(id)],
            )?;
            out.extend(rows.into_iter().map(|r| (r.run_id.clone(), r.view())));
        }
        Ok(out)
    }

    fn details(&self, rows: Vec<DetailRow>) -> ApiResult<Vec<RunDetail>> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut attempts = self.attempts_of(&ids)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let mine: Vec<AttemptView> = attempts
                    .iter()
                    .filter(|(id, _)| *id == r.id)
                    .map(|(_, a)| a.clone())
                    .collect();
                attempts.retain(|(id, _)| *id != r.id);
                detail(r, mine)
            })
            .collect())
    }

    /// The runs (with attempts) of the deliveries of a change-feed page:
    /// those with `seq > after`, the first `limit` in seq order. Two queries
    /// for the whole page instead of two per delivery.
    pub fn run_details_of_page(
        &self,
        after: i64,
        limit: u32,
    ) -> ApiResult<std::collections::HashMap<String, Vec<RunDetail>>> {
        const PAGE: &str = "SELECT id FROM deliveries WHERE seq > ? ORDER BY seq LIMIT ?";
        let rows = self.json_rows::<DetailRow>(
            "page runs",
            &format!(
                "SELECT {DETAIL_COLUMNS} FROM runs WHERE delivery_id IN ({PAGE}) ORDER BY rowid"
            ),
            vec![i(after), i(i64::from(limit))],
        )?;
        let attempts = self.json_rows::<AttemptRow>(
            "page attempts",
            &format!(
                "SELECT run_id, attempt, started_at, duration_ms, status_code, error, error_message,
                    response_excerpt, rate_limited_ms
                 FROM attempts WHERE delivery_id IN ({PAGE}) ORDER BY run_id, attempt"
            ),
            vec![i(after), i(i64::from(limit))],
        )?;
        let mut by_run: std::collections::HashMap<String, Vec<AttemptView>> =
            std::collections::HashMap::new();
        for a in attempts {
            by_run.entry(a.run_id.clone()).or_default().push(a.view());
        }
        let mut out: std::collections::HashMap<String, Vec<RunDetail>> =
            std::collections::HashMap::new();
        for r in rows {
            let mine = by_run.remove(&r.id).unwrap_or_default();
            let delivery = r.delivery_id.clone();
            out.entry(delivery).or_default().push(detail(r, mine));
        }
        Ok(out)
    }

    /// A delivery's runs in enqueue order, each with its attempts.
    pub fn run_details(&self, delivery_id: &str) -> ApiResult<Vec<RunDetail>> {
        let rows = self.rows::<DetailRow>(
            "run details",
            &format!("SELECT {DETAIL_COLUMNS} FROM runs WHERE delivery_id = ? ORDER BY rowid"),
            vec![s(delivery_id)],
        )?;
        self.details(rows)
    }

    /// One run with its attempts.
    pub fn run_detail(&self, run_id: &str) -> ApiResult<Option<RunDetail>> {
        let rows = self.rows::<DetailRow>(
            "run detail",
            &format!("SELECT {DETAIL_COLUMNS} FROM runs WHERE id = ?"),
            vec![s(run_id)],
        )?;
        Ok(self.details(rows)?.into_iter().next())
    }
}
