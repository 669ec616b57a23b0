//! The run path as the queue consumer sees it: claims (with the route's
//! pause, order and rate limit), reports (with the attempt timeline and the
//! circuit breaker), and dead letters.

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::ledger::{AttemptResult, NewAttempt, RunRow};
use edgehook_core::route::{self as core_route, RouteConfig};

/// A claim whose rate-limit slot is further away than this is answered
/// `Later` instead of being given the slot: the consumer waits out short
/// slots itself, and long waits go back to the queue.
const MAX_SLOT_WAIT_MS: i64 = 5_000;

fn frame_answer<T: serde::Serialize>(answer: &T, body: &[u8]) -> ApiResult<Response> {
    Ok(http::bytes(
        200,
        "application/octet-stream",
        wire::frame(answer, body)?,
    ))
}

impl Trigger {
    pub(super) async fn claim(&self, run_id: &str) -> ApiResult<Response> {
        let (answer, body) = self.claim_one(run_id).await?;
        frame_answer(&answer, &body)
    }

    /// Claims for several runs, in one call from the consumer: the answers
    /// in order, each dispatch's body after the previous ones'.
    pub(super) async fn claim_batch(&self, batch: wire::ClaimBatch) -> ApiResult<Response> {
        if batch.run_ids.len() > wire::MAX_BATCH_RUNS {
            return Err(ApiError::bad_request("too many runs in one claim"));
        }
        let mut meta = Vec::with_capacity(batch.run_ids.len());
        let mut bodies = Vec::new();
        let settled = self.deliver_batch_without_target(&batch.run_ids)?;
        for id in &batch.run_ids {
            let (answer, body) = if settled.contains(id) {
                (ClaimAnswer::Drop, Vec::new())
            } else {
                self.claim_one(id).await?
            };
            meta.push(wire::Claimed {
                answer,
                body_len: body.len() as u64,
                run_id: None,
            });
            bodies.extend_from_slice(&body);
        }
        let ahead = batch.ahead.min(wire::MAX_AHEAD_RUNS);
        if ahead > 0 {
            self.claim_ahead(
                &batch.run_ids,
                ahead,
                batch.ahead_bytes,
                &mut meta,
                &mut bodies,
            )
            .await?;
        }
        frame_answer(&meta, &bodies)
    }

    /// Settles at once the runs of a batch that have nowhere to go: a
    /// trigger without routes makes runs without one, which its claim marks
    /// delivered (the ledger is the output). One claim each took four
    /// statements per run; here it is three for the batch. Returns the runs
    /// settled, whose claim answers `Drop`; every other run of the batch
    /// (all of them, if the trigger has routes) takes the usual claim.
    fn deliver_batch_without_target(&self, run_ids: &[String]) -> ApiResult<Vec<String>> {
        let live = self.config()?.is_some() && !self.is_deleted()?;
        if !live || !self.routes()?.is_empty() {
            return Ok(Vec::new());
        }
        self.ledger().deliver_without_target(run_ids, now())
    }

    /// Grants, after a batch's own runs, up to `ahead` of the trigger's late
    /// runs (`run::claimable_ahead`: due a while ago, never claimed since,
    /// their messages behind or lost), oldest first, within `budget` body
    /// bytes. Each goes through the same claim as a message's run (pause,
    /// lease, attempts), and only those granted a dispatch are answered; the
    /// others' messages, when they come, are claimed as usual. While the
    /// queue keeps up there are none: this is what keeps a backlog from
    /// setting the pace of dispatch on its own.
    async fn claim_ahead(
        &self,
        named: &[String],
        ahead: u32,
        budget: u64,
        meta: &mut Vec<wire::Claimed>,
        bodies: &mut Vec<u8>,
    ) -> ApiResult<()> {
        let now = now();
        if self.config()?.is_none() || self.is_deleted()? {
            return Ok(());
        }
        let due_by = now.minus_secs(run::CLAIM_AHEAD_AFTER_SECONDS);
        // Runs of this batch that were not granted (an ordered route's later
        // run, say) may be late too; they were answered already.
        let late = self
            .ledger()
            .late_runs(due_by, ahead.saturating_add(named.len() as u32))?;
        let routes = self.routes()?;
        let mut left = budget;
        let mut taken = 0;
        for r in late {
            if taken == ahead {
                break;
            }
            if named.contains(&r.id) || !run::claimable_ahead(&r.state(), now) {
                continue;
            }
            // An ordered route sends its next run when the one before is
            // final, and a rate-limited one at its own pace: neither is
            // held back by the queue, so neither is taken ahead. A run
            // without a route has nothing to send.
            let Some(route) = routes
                .iter()
                .find(|c| r.route_id.as_deref() == Some(c.config.id.as_str()))
            else {
                continue;
            };
            if route.config.ordered || route.config.rate_limit_per_second.is_some() {
                continue;
            }
            let bytes = r.body_bytes.max(0) as u64;
            if bytes > left {
                break;
            }
            let (answer, body) = self.claim_one(&r.id).await?;
            if let ClaimAnswer::Dispatch { .. } = answer {
                left -= bytes.min(left);
                taken += 1;
                meta.push(wire::Claimed {
                    answer,
                    body_len: body.len() as u64,
                    run_id: Some(r.id),
                });
                bodies.extend_from_slice(&body);
            }
        }
        Ok(())
    }

    /// Reports of several attempts, in one call from the consumer.
    pub(super) async fn report_batch(&self, batch: wire::ReportBatch) -> ApiResult<Response> {
        if batch.reports.len() > wire::MAX_BATCH_RUNS {
            return Err(ApiError::bad_request("too many reports in one call"));
        }
        let mut settlements = Vec::with_capacity(batch.reports.len());
        for r in batch.reports {
            settlements.push(self.report_one(&r.run_id, r.report).await?);
        }
        Ok(http::json(200, &json!({ "settlements": settlements })))
    }

    async fn claim_one(&self, run_id: &str) -> ApiResult<(ClaimAnswer, Vec<u8>)> {
        let drop = || Ok((ClaimAnswer::Drop, Vec::new()));
        let now = now();
        let ledger = self.ledger();
        let (Some(cfg), false) = (self.config()?, self.is_deleted()?) else {
            return drop();
        };
        let Some(run) = ledger.run(run_id)? else {
            return drop();
        };
        let state = run.state();
        let Some(route_id) = run.route_id.clone() else {
            // A trigger without routes: the ledger is the output.
            ledger.deliver_without_target(&[run_id.to_string()], now)?;
            return drop();
        };
        let (Some(route_row), Some(route)) =
            (ledger.route(&route_id)?, self.cached_route(&route_id)?)
        else {
            // Its route was deleted after the run was made.
            if !state.status.is_final() {
                let closed = run::RunState {
                    status: run::RunStatus::Failed,
                    lease_until: None,
                    ..state
                };
                ledger.settle_run(&run, &closed, Some("route deleted"), None, now)?;
                self.dead_letter(&cfg.id, run_id, &run.delivery_id, state.attempts)
                    .await;
            }
            return drop();
        };
        let idle = state.lease_until.is_none_or(|l| l <= now);
        if route_row.paused() && state.status == run::RunStatus::Queued && idle {
            ledger.hold_run(&run, &run::hold(&state), now)?;
            return drop();
        }
        let answer = match run::claim(&state, now, route.lease_seconds(), route.max_attempts) {
            run::Claim::Dispatch { attempt, .. } => {
                if route.ordered && ledger.earlier_open_run(&route_id, run.run_order)?.is_some() {
                    // An earlier run of this ordered route is not final:
                    // this one is sent when that one is (see `report`).
                    return drop();
                }
                return self
                    .grant(&run, &route, route_row.next_grant_at, attempt, now)
                    .await;
            }
            run::Claim::NotYet { at } => ClaimAnswer::Later {
                delay_seconds: ((at.millis() - now.millis()).max(0) as u64).div_ceil(1000) as u32,
            },
            run::Claim::Exhausted => {
                // Failing the run also owes its dead letter, sent now (and
                // by the alarm if this send fails).
                ledger.lose_attempts(run_id)?;
                ledger.settle_run(
                    &run,
                    &run::exhaust(&state),
                    Some("no attempt reported back (the consumer stopped during every attempt)"),
                    None,
                    now,
                )?;
                self.dead_letter(&cfg.id, run_id, &run.delivery_id, state.attempts)
                    .await;
                self.send_next_in_order(&cfg, &route).await;
                ClaimAnswer::Drop
            }
            run::Claim::Done | run::Claim::InFlight | run::Claim::Held => ClaimAnswer::Drop,
        };
        Ok((answer, Vec::new()))
    }

    /// Grants attempt `attempt` in the route's next rate-limit slot: the
    /// lease runs from the slot, the timeline shows the wait, and the
    /// consumer sends at the slot. A slot too far away is `Later`.
    async fn grant(
        &self,
        run: &RunRow,
        route: &RouteConfig,
        next_free: Option<i64>,
        attempt: u32,
        now: Timestamp,
    ) -> ApiResult<(ClaimAnswer, Vec<u8>)> {
        let ledger = self.ledger();
        let (slot, next) =
            core_route::rate_slot(route.rate_limit_per_second, next_free.map(Timestamp), now);
        let wait = slot.millis() - now.millis();
        if wait > MAX_SLOT_WAIT_MS {
            ledger.rate_limited(&run.id, now)?;
            let answer = ClaimAnswer::Later {
                delay_seconds: (wait as u64).div_ceil(1000) as u32,
            };
            return Ok((answer, Vec::new()));
        }
        if route.rate_limit_per_second.is_some() {
            ledger.set_route_next_grant(&route.id, next)?;
        }
        let lease_until = slot.plus_secs(route.lease_seconds());
        let waited = wait + run.rate_limited_since.map_or(0, |t| now.millis() - t);
        ledger.claim_run(
            run,
            &run::apply_claim(&run.state(), attempt, lease_until),
            &NewAttempt {
                attempt,
                started_at: slot,
                rate_limited_ms: waited,
            },
            now,
        )?;
        let alarm = self.schedule_alarm(lease_until.millis() + 500)?;
        let (headers, body) = ledger.headers_and_body(&run.delivery_id)?;
        Self::await_alarm(alarm).await?;
        let meta = ClaimAnswer::Dispatch {
            attempt,
            delivery_id: run.delivery_id.clone(),
            target_url: route.target_url.clone(),
            timeout_seconds: route.target_timeout_seconds,
            headers,
            route_id: Some(route.id.clone()),
            extra_headers: route.headers.clone(),
            not_before_ms: (wait > 0).then_some(slot.millis()),
            lease_until_ms: Some(lease_until.millis()),
        };
        Ok((meta, body))
    }

    /// After a run of an ordered route finished, sends the next one in
    /// receive order, if it is due and not already in flight.
    async fn send_next_in_order(&self, cfg: &TriggerConfig, route: &RouteConfig) {
        if !route.ordered {
            return;
        }
        let next = match self.ledger().next_queued_run(&route.id) {
            Ok(n) => n,
            Err(e) => {
                e.into_response();
                return;
            }
        };
        let now = now();
        if let Some(r) = next {
            let st = r.state();
            if st.lease_until.is_none_or(|l| l <= now) && st.next_attempt_at <= now {
                self.enqueue(cfg, &[Outgoing::of(&r)], 0).await;
            }
        }
    }

    pub(super) async fn report(&self, req: &mut Request, run_id: &str) -> ApiResult<Response> {
        let report: Report = http::json_body(req).await?;
        let name = self.report_one(run_id, report).await?;
        Ok(http::json(200, &json!({"settlement": name})))
    }

    /// Settles one attempt; returns the settlement's name.
    async fn report_one(&self, run_id: &str, report: Report) -> ApiResult<&'static str> {
        let now = now();
        let ledger = self.ledger();
        let cfg = self.config()?.ok_or(ApiError::NotFound("trigger"))?;
        let run_row = ledger.run(run_id)?.ok_or(ApiError::NotFound("run"))?;
        let state = run_row.state();
        if report.not_started {
            // No request was made: the claim is undone, and the run's
            // message (or the next claim of its trigger) takes it again.
            return Ok(match run::give_back(&state, report.attempt) {
                Some(back) => {
                    ledger.give_back(&run_row, &back, report.attempt, now)?;
                    "given_back"
                }
                None => "stale",
            });
        }
        let route_row = match &run_row.route_id {
            Some(id) => ledger.route(id)?,
            None => None,
        };
        let route = match &run_row.route_id {
            Some(id) => self.cached_route(id)?,
            None => None,
        };
        let policy = route.as_ref().map_or(
            RetryPolicy {
                max_attempts: cfg.max_attempts,
                base_delay_seconds: cfg.retry_base_seconds,
            },
            RouteConfig::retry_policy,
        );
        let settlement = run::settle(&state, report.attempt, &report.outcome, now, policy);
        // The timeline records every report once, even a late one.
        let error_message = report.outcome.describe();
        ledger.finish_attempt(
            run_id,
            report.attempt,
            &AttemptResult {
                started_at: report.started_at_ms,
                duration_ms: report.duration_ms,
                status_code: report.outcome.status,
                error: report.error_class.as_deref(),
                error_message: error_message.as_deref(),
                response_excerpt: report.response_excerpt.as_deref(),
            },
        )?;
        let mut paused = route_row.as_ref().is_some_and(|r| r.paused());
        if let (Some(row), Some(route), true) =
            (&route_row, &route, settlement != Settlement::Stale)
        {
            // The circuit breaker counts the route's attempts in a row.
            let (failures, trip) = core_route::after_attempt(
                row.consecutive_failures.clamp(0, i64::from(u32::MAX)) as u32,
                report.outcome.is_success(),
                route.pause_after_failures,
            );
            // An unchanged count (a success after successes, with no trips
            // to forget) is not written again.
            let unchanged = i64::from(failures) == row.consecutive_failures
                && (failures > 0 || row.breaker_trips == 0);
            if !unchanged {
                ledger.set_route_failures(&route.id, failures)?;
            }
            if trip && !paused {
                let reason = core_route::auto_pause_reason(failures);
                if let Some(at) = ledger.trip_route(route, &reason, now)? {
                    // The alarm resumes it (half-open) after the cool-down.
                    let alarm = self.schedule_alarm(at.millis())?;
                    Self::await_alarm(alarm).await?;
                }
                self.forget_routes();
                paused = true;
            }
        }
        let mut held = false;
        if settlement != Settlement::Stale {
            let mut next = run::apply_settlement(&state, settlement);
            if paused && next.status == run::RunStatus::Queued {
                // A retry of a paused route waits for the resume.
                next = run::hold(&next);
                held = true;
            }
            ledger.settle_run(
                &run_row,
                &next,
                error_message.as_deref(),
                report.outcome.status,
                now,
            )?;
        }
        match settlement {
            Settlement::Retry { at, delay_seconds } if !held => {
                let alarm = self.schedule_alarm(at.millis() + GRACE_MS + 500)?;
                Self::await_alarm(alarm).await?;
                self.enqueue(&cfg, &[Outgoing::of(&run_row)], delay_seconds)
                    .await;
            }
            Settlement::Failed => {
                let alarm = self.schedule_alarm(now.millis() + FIRST_CHECK_MS)?;
                Self::await_alarm(alarm).await?;
                self.dead_letter(&cfg.id, run_id, &run_row.delivery_id, report.attempt)
                    .await;
                if let Some(route) = &route {
                    self.send_next_in_order(&cfg, route).await;
                }
            }
            Settlement::Delivered => {
                if let Some(route) = &route {
                    self.send_next_in_order(&cfg, route).await;
                }
            }
            Settlement::Retry { .. } | Settlement::Stale => {}
        }
        let name = match settlement {
            Settlement::Delivered => "delivered",
            Settlement::Retry { .. } if held => "held",
            Settlement::Retry { .. } => "retry",
            Settlement::Failed => "failed",
            Settlement::Stale => "stale",
        };
        Ok(name)
    }

    /// Puts a failed run on the dead-letter queue and records it; on failure
    /// the run stays owed (`dlq_pending`) for the alarm.
    pub(super) async fn dead_letter(
        &self,
        trigger_id: &str,
        run_id: &str,
        delivery_id: &str,
        attempts: u32,
    ) {
        let sent = async {
            let dlq = self.env.queue(wire::DLQ_QUEUE)?;
            dlq.send(DeadLetter {
                trigger_id: trigger_id.to_string(),
                run_id: run_id.to_string(),
                delivery_id: delivery_id.to_string(),
                attempts,
            })
            .await
        }
        .await;
        match sent {
            Ok(()) => {
                if let Err(e) = self.ledger().mark_dead_lettered(run_id, delivery_id, now()) {
                    e.into_response();
                }
            }
            Err(e) => {
                console_error!("dead-letter send failed, the alarm will retry: {e}");
                // The retry waits its spacing instead of firing every second.
                if let Err(e) = self.ledger().dead_letter_failed(run_id, now()) {
                    e.into_response();
                }
            }
        }
    }
}
