//! Runs: claims, settlements, dead letters and what the alarm looks for.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A delivery's status from all its runs, as an SQL expression on the
/// `deliveries` row being updated: `queued` while any run is open (queued or
/// held), else `failed` if any failed, else `delivered`; a delivery without
/// runs keeps its own. A macro, so that statements can `concat!` it.
macro_rules! delivery_status_from_runs {
    () => {
        "CASE
            WHEN EXISTS (SELECT 1 FROM runs r WHERE r.delivery_id = deliveries.id
                AND r.status IN ('queued', 'held')) THEN 'queued'
            WHEN EXISTS (SELECT 1 FROM runs r WHERE r.delivery_id = deliveries.id
                AND r.status = 'failed') THEN 'failed'
            WHEN EXISTS (SELECT 1 FROM runs r WHERE r.delivery_id = deliveries.id) THEN 'delivered'
            ELSE deliveries.status END"
    };
}

row! {
    /// A run row as the state machine and the consumer need it.
    #[derive(Debug, Clone)]
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
        /// Re-sends since the last claim.
        pub resends: i64,
        /// No re-send before this time (ms).
        pub resend_after: Option<i64>,
        /// Its delivery's stored body size, which the run message carries so
        /// the consumer can bound its memory.
        pub body_bytes: i64,
        /// Its route, if the trigger has routes.
        pub route_id: Option<String>,
        /// Insertion order (SQLite's rowid): receive order within a route.
        pub run_order: i64,
        /// When a claim was first put off by the route's rate limit.
        pub rate_limited_since: Option<i64>,
    }
}

/// A run to insert with its delivery.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// `run_…`.
    pub id: String,
    /// Its route, if any.
    pub route_id: Option<String>,
    /// Stored held (its route is paused) rather than queued.
    pub held: bool,
}

/// The columns of [`RunRow`].
pub(super) const RUN_COLUMNS: &str =
    "id, delivery_id, status, attempts, lease_until, next_attempt_at, resends, resend_after,
    (SELECT d.body_bytes FROM deliveries d WHERE d.id = runs.delivery_id) AS body_bytes,
    route_id, rowid AS run_order, rate_limited_since";

impl RunRow {
    /// The state-machine view of this row.
    pub fn state(&self) -> RunState {
        RunState {
            status: RunStatus::parse(&self.status).unwrap_or(RunStatus::Failed),
            attempts: self.attempts.max(0) as u32,
            lease_until: self.lease_until.map(Timestamp),
            next_attempt_at: Timestamp(self.next_attempt_at),
            resends: self.resends.clamp(0, i64::from(u32::MAX)) as u32,
            resend_after: self.resend_after.map(Timestamp),
        }
    }
}

/// How long an owed dead letter waits after a failed send.
pub const DLQ_RETRY_MS: i64 = 30_000;

impl Ledger {
    /// A run.
    pub fn run(&self, run_id: &str) -> ApiResult<Option<RunRow>> {
        Ok(self
            .rows::<RunRow>(
                "read run",
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"),
                vec![s(run_id)],
            )?
            .into_iter()
            .next())
    }

    /// Records a claim (`state` is the run after `run::apply_claim`) and
    /// appends its attempt (`attempts::start_attempt`). The attempt count
    /// changes, so the delivery's change sequence moves; the delivery row is
    /// written once, with the attempt's share of the storage budget.
    pub fn claim_run(
        &self,
        run: &RunRow,
        state: &RunState,
        attempt: &super::NewAttempt,
        now: Timestamp,
    ) -> ApiResult<()> {
        self.exec(
            "claim run",
            "UPDATE runs SET attempts = ?, lease_until = ?, resends = ?, resend_after = ?, updated_at = ?,
                rate_limited_since = NULL
             WHERE id = ?",
            vec![
                i(i64::from(state.attempts)),
                opt_i(state.lease_until.map(Timestamp::millis)),
                i(i64::from(state.resends)),
                opt_i(state.resend_after.map(Timestamp::millis)),
                i(now.millis()),
                s(&run.id),
            ],
        )?;
        let bytes = self.start_attempt(run, attempt)?;
        self.touch_delivery_adding(&run.delivery_id, bytes)
    }

    /// Undoes the claim of `attempt`, which the consumer gave back
    /// unstarted: `state` (`edgehook_core::run::give_back`) is written and
    /// the attempt leaves the timeline and the storage budget.
    pub fn give_back(
        &self,
        run: &RunRow,
        state: &RunState,
        attempt: u32,
        now: Timestamp,
    ) -> ApiResult<()> {
        self.exec(
            "give back run",
            "UPDATE runs SET attempts = ?, lease_until = NULL, updated_at = ? WHERE id = ?",
            vec![i(i64::from(state.attempts)), i(now.millis()), s(&run.id)],
        )?;
        let freed = self.remove_unstarted_attempt(run, attempt)?;
        self.touch_delivery_adding(&run.delivery_id, -freed)
    }

    /// Records that the alarm re-sent a run's message (`state` is the run
    /// after `run::apply_resend`), so the next re-send waits its spacing.
    pub fn record_resend(&self, run: &RunRow, state: &RunState) -> ApiResult<()> {
        self.exec(
            "record resend",
            "UPDATE runs SET resends = ?, resend_after = ? WHERE id = ?",
            vec![
                i(i64::from(state.resends)),
                opt_i(state.resend_after.map(Timestamp::millis)),
                s(&run.id),
            ],
        )?;
        self.touch_delivery(&run.delivery_id)
    }

    /// Records a failed dead-letter send, so the alarm retries it after
    /// `DLQ_RETRY_MS` rather than at once.
    pub fn dead_letter_failed(&self, run_id: &str, now: Timestamp) -> ApiResult<()> {
        self.exec(
            "dead letter failed",
            "UPDATE runs SET updated_at = ? WHERE id = ? AND dlq_pending = 1",
            vec![i(now.millis()), s(run_id)],
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
                resends = ?, resend_after = ?,
                last_error = COALESCE(?, last_error), last_status_code = COALESCE(?, last_status_code),
                dlq_pending = MAX(dlq_pending, ?), updated_at = ?
             WHERE id = ?",
            vec![
                s(state.status.as_str()),
                i(i64::from(state.attempts)),
                opt_i(state.lease_until.map(Timestamp::millis)),
                i(state.next_attempt_at.millis()),
                i(i64::from(state.resends)),
                opt_i(state.resend_after.map(Timestamp::millis)),
                opt(last_error),
                opt_i(last_status_code.map(i64::from)),
                i(dlq),
                i(now.millis()),
                s(&run.id),
            ],
        )?;
        self.touch_delivery(&run.delivery_id)
    }

    /// Marks runs delivered without an attempt (a trigger with no target),
    /// in three statements whatever their number: those of `run_ids` that
    /// have no route and are still queued become delivered, and their
    /// deliveries move. Returns the ids of the runs it settled; the others
    /// (routed, or no longer queued) are left as they were.
    pub fn deliver_without_target(
        &self,
        run_ids: &[String],
        now: Timestamp,
    ) -> ApiResult<Vec<String>> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        row! {
            struct Settled {
                id: String,
                delivery_id: String,
            }
        }
        let rows = self.rows::<Settled>(
            "deliver without target",
            // The unary `+` keeps SQLite from the `runs_route` index, which
            // it otherwise prefers and which would scan every queued run
            // without a route (a backlog's worth) instead of looking up the
            // batch's ids by key: 4 ms against 0.16 ms a batch of 20 with
            // 5,000 queued (EXPLAIN QUERY PLAN in a native SQLite 3.40).
            "UPDATE runs SET status = 'delivered', lease_until = NULL, updated_at = ?1
             WHERE id IN (SELECT value FROM json_each(?2)) AND +status = 'queued'
                AND +route_id IS NULL
             RETURNING id, delivery_id",
            vec![i(now.millis()), s(json_array(run_ids)?)],
        )?;
        let mut settled = Vec::with_capacity(rows.len());
        let mut deliveries: Vec<String> = Vec::with_capacity(rows.len());
        for row in rows {
            settled.push(row.id);
            // A trigger without routes makes one run per delivery, so the
            // deliveries are distinct; a linear check keeps that true
            // regardless (a batch holds at most `MAX_BATCH_RUNS`).
            if !deliveries.contains(&row.delivery_id) {
                deliveries.push(row.delivery_id);
            }
        }
        self.touch_deliveries(&deliveries)?;
        Ok(settled)
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
        self.touch_delivery(delivery_id)
    }

    /// Moves a delivery's change sequence and sets its status from all its
    /// runs: `queued` while any is open (queued or held), else `failed` if
    /// any failed, else `delivered`. A delivery without runs keeps its own.
    pub(super) fn touch_delivery(&self, delivery_id: &str) -> ApiResult<()> {
        self.touch_delivery_adding(delivery_id, 0)
    }

    /// [`Ledger::touch_delivery`], also adding `stored_bytes` to the bytes
    /// the delivery accounts for (the caller counts them in the total).
    fn touch_delivery_adding(&self, delivery_id: &str, stored_bytes: i64) -> ApiResult<()> {
        let seq = self.next_seqs(1)?;
        self.exec(
            "touch delivery",
            concat!(
                "UPDATE deliveries SET seq = ?1, stored_bytes = stored_bytes + ?3, status = ",
                delivery_status_from_runs!(),
                " WHERE id = ?2"
            ),
            vec![i(seq), s(delivery_id), i(stored_bytes)],
        )?;
        Ok(())
    }

    /// [`Ledger::touch_delivery`] for several deliveries in two statements,
    /// each delivery with a change sequence of its own, in the order given.
    fn touch_deliveries(&self, delivery_ids: &[String]) -> ApiResult<()> {
        if delivery_ids.is_empty() {
            return Ok(());
        }
        let last = self.next_seqs(delivery_ids.len() as i64)?;
        let first = last - delivery_ids.len() as i64 + 1;
        let ids = json_array(delivery_ids)?;
        // `j.key` is each id's index in the array.
        self.exec(
            "touch deliveries",
            concat!(
                "UPDATE deliveries SET seq = ?1 + j.key, status = ",
                delivery_status_from_runs!(),
                " FROM json_each(?2) AS j WHERE deliveries.id = j.value"
            ),
            vec![i(first), s(ids)],
        )?;
        Ok(())
    }

    /// Inserts the runs of a new delivery, queued (or held) and due at `now`.
    pub fn insert_runs(&self, delivery_id: &str, runs: &[NewRun], now: Timestamp) -> ApiResult<()> {
        for r in runs {
            self.exec(
                "insert run",
                edgehook_core::schema::INSERT_RUN,
                vec![
                    s(&r.id),
                    s(delivery_id),
                    s(if r.held { "held" } else { "queued" }),
                    i(now.millis()),
                    i(now.millis()),
                    i(now.millis()),
                    opt(r.route_id.as_deref()),
                ],
            )?;
        }
        Ok(())
    }

    /// Records when a claim was first put off by the rate limit (kept if
    /// already set), so the attempt's timeline shows the whole wait.
    pub fn rate_limited(&self, run_id: &str, now: Timestamp) -> ApiResult<()> {
        self.exec(
            "rate limited",
            "UPDATE runs SET rate_limited_since = COALESCE(rate_limited_since, ?) WHERE id = ?",
            vec![i(now.millis()), s(run_id)],
        )?;
        Ok(())
    }

    /// Holds a run (its route is paused): `state` is `run::hold`'s.
    pub fn hold_run(&self, run: &RunRow, state: &RunState, now: Timestamp) -> ApiResult<()> {
        self.settle_run(run, state, None, None, now)
    }

    /// The earliest open run of an ordered route that was created before
    /// `run_order`: while one exists, the later run waits.
    pub fn earlier_open_run(&self, route_id: &str, run_order: i64) -> ApiResult<Option<String>> {
        row! {
            struct Id {
                id: String,
            }
        }
        Ok(self
            .rows::<Id>(
                "earlier open run",
                "SELECT id FROM runs WHERE route_id = ? AND rowid < ? AND status IN ('queued', 'held')
                 ORDER BY rowid LIMIT 1",
                vec![s(route_id), i(run_order)],
            )?
            .into_iter()
            .next()
            .map(|r| r.id))
    }

    /// The next queued run of a route, in receive order, with no attempt in
    /// flight: what an ordered route sends after one finishes.
    pub fn next_queued_run(&self, route_id: &str) -> ApiResult<Option<RunRow>> {
        Ok(self
            .rows::<RunRow>(
                "next queued run",
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE route_id = ? AND status = 'queued'
                     ORDER BY rowid LIMIT 1"
                ),
                vec![s(route_id)],
            )?
            .into_iter()
            .next())
    }

    /// Fails the open runs of a route (deleted, or its trigger deleted)
    /// with `reason`; returns them, for their dead letters.
    pub fn fail_route_runs(
        &self,
        route_id: &str,
        reason: &str,
        now: Timestamp,
    ) -> ApiResult<Vec<RunRow>> {
        let open = self.rows::<RunRow>(
            "route runs",
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE route_id = ? AND status IN ('queued', 'held')"
            ),
            vec![s(route_id)],
        )?;
        for r in &open {
            let closed = RunState {
                status: RunStatus::Failed,
                lease_until: None,
                ..r.state()
            };
            self.settle_run(r, &closed, Some(reason), None, now)?;
        }
        Ok(open)
    }

    /// Queued runs due at or before `due_by` with no attempt in flight,
    /// oldest first: what a claim may take ahead of their late messages
    /// (`edgehook_core::run::claimable_ahead`, as a query; the `runs_open`
    /// index serves it, and while the queue keeps up it finds nothing).
    pub fn late_runs(&self, due_by: Timestamp, limit: u32) -> ApiResult<Vec<RunRow>> {
        self.rows(
            "late runs",
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE status = 'queued' AND next_attempt_at <= ? AND lease_until IS NULL
                 ORDER BY next_attempt_at LIMIT ?"
            ),
            vec![i(due_by.millis()), i(i64::from(limit))],
        )
    }

    /// Queued runs the alarm should look at: an attempt whose lease has
    /// ended, or a run due at least `grace_ms` ago with no attempt in flight;
    /// in both cases only once the spacing of its last re-send has passed.
    /// (The same rule as `edgehook_core::run::recheck_at`, as a query.)
    pub fn stale_runs(&self, now: Timestamp, grace_ms: i64, limit: u32) -> ApiResult<Vec<RunRow>> {
        self.rows(
            "stale runs",
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE status = 'queued'
                   AND ((lease_until IS NOT NULL AND lease_until <= ?)
                     OR (lease_until IS NULL AND next_attempt_at <= ?))
                   AND (resend_after IS NULL OR resend_after <= ?)
                 ORDER BY next_attempt_at LIMIT ?"
            ),
            vec![
                i(now.millis()),
                i(now.millis() - grace_ms),
                i(now.millis()),
                i(i64::from(limit)),
            ],
        )
    }

    /// Failed runs whose dead-letter message is owed and whose last try (or
    /// failure) was at least `DLQ_RETRY_MS` ago; the report that failed a
    /// run sends its dead letter at once, so the alarm only retries.
    pub fn dlq_pending(&self, now: Timestamp, limit: u32) -> ApiResult<Vec<RunRow>> {
        self.rows(
            "dlq pending",
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE dlq_pending = 1 AND updated_at <= ? LIMIT ?"
            ),
            vec![i(now.millis() - DLQ_RETRY_MS), i(i64::from(limit))],
        )
    }

    /// When the alarm next has work: the earliest `recheck_at` of an open run
    /// (`grace_ms` after due, or at lease end, and not before its re-send
    /// spacing), or for an owed dead letter `DLQ_RETRY_MS` after its last try.
    pub fn next_run_check(&self, grace_ms: i64) -> ApiResult<Option<i64>> {
        row! {
            struct Next {
                due: Option<i64>,
            }
        }
        let rows = self.rows::<Next>(
            "next run check",
            "SELECT MIN(MAX(COALESCE(lease_until, next_attempt_at + ?), COALESCE(resend_after, 0))) AS due
             FROM runs WHERE status = 'queued'",
            vec![i(grace_ms)],
        )?;
        let pending = self.rows::<Next>(
            "next run check",
            "SELECT MIN(updated_at) + ? AS due FROM runs WHERE dlq_pending = 1",
            vec![i(DLQ_RETRY_MS)],
        )?;
        let a = rows.into_iter().next().and_then(|r| r.due);
        let b = pending.into_iter().next().and_then(|r| r.due);
        // A route the breaker paused resumes at its time.
        let c = self.next_route_resume()?;
        Ok([a, b, c].into_iter().flatten().min())
    }

    /// Whether any delivery is stored (retention then needs an alarm).
    pub fn has_deliveries(&self) -> ApiResult<bool> {
        row! {
            struct One {
                #[allow(dead_code)]
                id: String,
            }
        }
        Ok(!self
            .rows::<One>("any delivery", "SELECT id FROM deliveries LIMIT 1", vec![])?
            .is_empty())
    }
}

impl Ledger {
    /// A delivery's run ids in enqueue order.
    pub fn run_ids(&self, delivery_id: &str) -> ApiResult<Vec<String>> {
        row! {
            struct Id {
                id: String,
            }
        }
        Ok(self
            .rows::<Id>(
                "run ids",
                "SELECT id FROM runs WHERE delivery_id = ? ORDER BY rowid",
                vec![s(delivery_id)],
            )?
            .into_iter()
            .map(|r| r.id)
            .collect())
    }
}

/// A JSON array of strings, which a statement reads with `json_each`: one
/// binding for a list of any length.
fn json_array(items: &[String]) -> ApiResult<String> {
    serde_json::to_string(items).map_err(|e| ApiError::internal("ids json", e))
}
