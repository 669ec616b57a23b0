//! Routes: their configuration, pause state, breaker count and rate-limit
//! slot, and the runs a pause holds and a resume releases.

#[allow(clippy::wildcard_imports)]
use super::*;
use edgehook_core::route::{RouteConfig, RouteState};
use edgehook_core::run;

row! {
    /// A route row.
    #[derive(Debug, Clone)]
    pub struct RouteRow {
        /// `rte_…`.
        pub id: String,
        config: String,
        /// When it was paused (ms).
        pub paused_at: Option<i64>,
        /// Why.
        pub paused_reason: Option<String>,
        /// Failed attempts in a row.
        pub consecutive_failures: i64,
        /// The next free slot of its rate limit (ms).
        pub next_grant_at: Option<i64>,
        /// Times the breaker tripped in a row.
        pub breaker_trips: i64,
        /// When a tripped route resumes on its own (ms).
        pub resume_at: Option<i64>,
    }
}

impl RouteRow {
    /// The stored configuration.
    pub fn config(&self) -> ApiResult<RouteConfig> {
        edgehook_core::encoding::json_from_str(&self.config)
            .map_err(|e| ApiError::internal("stored route", e))
    }

    /// Whether the route is paused.
    pub fn paused(&self) -> bool {
        self.paused_at.is_some()
    }
}

const ROUTE_COLUMNS: &str = "id, config, paused_at, paused_reason, consecutive_failures,
    next_grant_at, breaker_trips, resume_at";

impl Ledger {
    /// Every route, in no particular order.
    pub fn routes(&self) -> ApiResult<Vec<RouteRow>> {
        self.rows(
            "routes",
            &format!("SELECT {ROUTE_COLUMNS} FROM routes"),
            vec![],
        )
    }

    /// One route.
    pub fn route(&self, id: &str) -> ApiResult<Option<RouteRow>> {
        Ok(self
            .rows::<RouteRow>(
                "route",
                &format!("SELECT {ROUTE_COLUMNS} FROM routes WHERE id = ?"),
                vec![s(id)],
            )?
            .into_iter()
            .next())
    }

    /// How many routes exist.
    pub fn route_count(&self) -> ApiResult<usize> {
        Ok(self.routes()?.len())
    }

    /// The state a route's view shows: pause, breaker and run counts.
    pub fn route_state(&self, row: &RouteRow) -> ApiResult<RouteState> {
        row! {
            struct Counts {
                open: Option<i64>,
                held: Option<i64>,
            }
        }
        let counts = self
            .rows::<Counts>(
                "route counts",
                "SELECT SUM(status IN ('queued', 'held')) AS open, SUM(status = 'held') AS held
                 FROM runs WHERE route_id = ? AND status IN ('queued', 'held')",
                vec![s(&row.id)],
            )?
            .into_iter()
            .next();
        Ok(RouteState {
            paused_at: row.paused_at.map(Timestamp),
            paused_reason: row.paused_reason.clone(),
            consecutive_failures: row.consecutive_failures.clamp(0, i64::from(u32::MAX)) as u32,
            resumes_at: row.resume_at.map(Timestamp),
            open_runs: counts.as_ref().and_then(|c| c.open).unwrap_or(0).max(0) as u64,
            held_runs: counts.and_then(|c| c.held).unwrap_or(0).max(0) as u64,
        })
    }

    /// Inserts or replaces a route's configuration.
    pub fn put_route(&self, route: &RouteConfig) -> ApiResult<()> {
        let config =
            serde_json::to_string(route).map_err(|e| ApiError::internal("route json", e))?;
        self.exec(
            "put route",
            "INSERT INTO routes (id, config, created_at, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
            vec![
                s(&route.id),
                s(config),
                i(route.created_at.millis()),
                i(route.updated_at.millis()),
            ],
        )?;
        Ok(())
    }

    /// Deletes a route.
    pub fn delete_route(&self, id: &str) -> ApiResult<()> {
        self.exec(
            "delete route",
            "DELETE FROM routes WHERE id = ?",
            vec![s(id)],
        )?;
        Ok(())
    }

    /// Pauses a route (an operator's pause waits for an operator: no
    /// automatic resume) and holds its runs that have no attempt in flight
    /// (an attempt in flight settles as usual; a retry it asks for is held).
    /// Returns how many runs it held. Pausing a paused route keeps its
    /// first time and reason.
    pub fn pause_route(&self, id: &str, reason: &str, now: Timestamp) -> ApiResult<usize> {
        self.exec(
            "pause route",
            "UPDATE routes SET paused_at = COALESCE(paused_at, ?), paused_reason = COALESCE(paused_reason, ?),
                resume_at = NULL
             WHERE id = ?",
            vec![i(now.millis()), s(reason), s(id)],
        )?;
        let idle = self.rows::<RunRow>(
            "runs to hold",
            &format!(
                "SELECT {} FROM runs WHERE route_id = ? AND status = 'queued'
                   AND (lease_until IS NULL OR lease_until <= ?)",
                runs::RUN_COLUMNS
            ),
            vec![s(id), i(now.millis())],
        )?;
        for r in &idle {
            self.hold_run(r, &run::hold(&r.state()), now)?;
        }
        Ok(idle.len())
    }

    /// Resumes a route: clears the pause and the breaker count (and, when
    /// an operator resumes it, the trips in a row; the breaker's own retry
    /// keeps them, so the next wait doubles), and releases its held runs,
    /// due now. Returns them in receive order.
    pub fn resume_route(
        &self,
        id: &str,
        by_operator: bool,
        now: Timestamp,
    ) -> ApiResult<Vec<RunRow>> {
        self.exec(
            "resume route",
            "UPDATE routes SET paused_at = NULL, paused_reason = NULL, consecutive_failures = 0,
                resume_at = NULL, breaker_trips = CASE WHEN ? THEN 0 ELSE breaker_trips END
             WHERE id = ?",
            vec![i(i64::from(by_operator)), s(id)],
        )?;
        let held = self.rows::<RunRow>(
            "held runs",
            &format!(
                "SELECT {} FROM runs WHERE route_id = ? AND status = 'held' ORDER BY rowid",
                runs::RUN_COLUMNS
            ),
            vec![s(id)],
        )?;
        for r in &held {
            self.settle_run(r, &run::release(&r.state(), now), None, None, now)?;
        }
        Ok(held)
    }

    /// Records the breaker's count after an attempt; a success (0) also
    /// ends the run of trips.
    pub fn set_route_failures(&self, id: &str, failures: u32) -> ApiResult<()> {
        self.exec(
            "route failures",
            "UPDATE routes SET consecutive_failures = ?1,
                breaker_trips = CASE WHEN ?1 = 0 THEN 0 ELSE breaker_trips END
             WHERE id = ?2",
            vec![i(i64::from(failures)), s(id)],
        )?;
        Ok(())
    }

    /// The breaker trips: the route pauses (holding its idle runs) with
    /// `reason`, one more trip is counted, and it resumes on its own at the
    /// time `edgehook_core::route::resume_at` gives for that trip.
    pub fn trip_route(
        &self,
        route: &edgehook_core::route::RouteConfig,
        reason: &str,
        now: Timestamp,
    ) -> ApiResult<Option<Timestamp>> {
        let trips = self
            .route(&route.id)?
            .map_or(0, |r| r.breaker_trips.clamp(0, i64::from(u32::MAX)) as u32)
            .saturating_add(1);
        let at = edgehook_core::route::resume_at(route.breaker_cooldown_seconds, trips, now);
        self.pause_route(&route.id, reason, now)?;
        self.exec(
            "trip route",
            "UPDATE routes SET breaker_trips = ?, resume_at = ? WHERE id = ?",
            vec![
                i(i64::from(trips)),
                opt_i(at.map(Timestamp::millis)),
                s(&route.id),
            ],
        )?;
        Ok(at)
    }

    /// Routes the breaker paused whose cool-down has passed.
    pub fn routes_to_resume(&self, now: Timestamp) -> ApiResult<Vec<String>> {
        row! {
            struct Id {
                id: String,
            }
        }
        Ok(self
            .rows::<Id>(
                "routes to resume",
                "SELECT id FROM routes WHERE resume_at IS NOT NULL AND resume_at <= ?",
                vec![i(now.millis())],
            )?
            .into_iter()
            .map(|r| r.id)
            .collect())
    }

    /// Cancels every automatic resume (the trigger was deleted).
    pub fn cancel_route_resumes(&self) -> ApiResult<()> {
        self.exec(
            "cancel resumes",
            "UPDATE routes SET resume_at = NULL WHERE resume_at IS NOT NULL",
            vec![],
        )?;
        Ok(())
    }

    /// The earliest time a tripped route resumes, for the alarm.
    pub fn next_route_resume(&self) -> ApiResult<Option<i64>> {
        row! {
            struct Next {
                due: Option<i64>,
            }
        }
        Ok(self
            .rows::<Next>(
                "next route resume",
                "SELECT MIN(resume_at) AS due FROM routes",
                vec![],
            )?
            .into_iter()
            .next()
            .and_then(|n| n.due))
    }

    /// Takes the rate-limit slot that `edgehook_core::route::rate_slot`
    /// computed: the next one is free at `next`.
    pub fn set_route_next_grant(&self, id: &str, next: Option<Timestamp>) -> ApiResult<()> {
        self.exec(
            "route slot",
            "UPDATE routes SET next_grant_at = ? WHERE id = ?",
            vec![opt_i(next.map(Timestamp::millis)), s(id)],
        )?;
        Ok(())
    }

    /// Gives every run without a route to `route_id` (the upgrade that
    /// makes a trigger's `target_url` its first route).
    pub fn adopt_routeless_runs(&self, route_id: &str) -> ApiResult<()> {
        self.exec(
            "adopt runs",
            "UPDATE runs SET route_id = ? WHERE route_id IS NULL",
            vec![s(route_id)],
        )?;
        self.exec(
            "adopt attempts",
            "UPDATE attempts SET route_id = ? WHERE route_id IS NULL",
            vec![s(route_id)],
        )?;
        Ok(())
    }
}

impl Ledger {
    /// The route made from the trigger's `target_url`, if it has one.
    pub fn default_route_id(&self) -> ApiResult<Option<String>> {
        Ok(self.meta("default_route_id")?.filter(|v| !v.is_empty()))
    }

    /// Records (or clears) the route made from the trigger's `target_url`.
    pub fn set_default_route_id(&self, id: Option<&str>) -> ApiResult<()> {
        self.set_meta("default_route_id", id.unwrap_or(""))
    }

    /// Whether this ledger was upgraded to routes (its `target_url`, if
    /// any, made its first route and its older runs given to it).
    pub fn routes_upgraded(&self) -> ApiResult<bool> {
        Ok(self.meta("routes_upgraded")?.as_deref() == Some("1"))
    }

    /// Records the upgrade.
    pub fn set_routes_upgraded(&self) -> ApiResult<()> {
        self.set_meta("routes_upgraded", "1")
    }

    /// Marks the unreported attempts of a run lost (its last lease ended).
    pub fn lose_attempts(&self, run_id: &str) -> ApiResult<()> {
        self.exec(
            "lost attempts",
            "UPDATE attempts SET error = 'lost',
                error_message = 'no report came back before the lease ended'
             WHERE run_id = ? AND duration_ms IS NULL AND error IS NULL",
            vec![s(run_id)],
        )?;
        Ok(())
    }
}
