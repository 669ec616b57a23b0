//! The run path as the queue consumer sees it: claims, reports, dead letters.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Trigger {
    pub(super) async fn claim(&self, run_id: &str) -> ApiResult<Response> {
        let drop = || {
            wire::frame(&ClaimAnswer::Drop, &[])
                .map(|b| http::bytes(200, "application/octet-stream", b))
        };
        let now = now();
        let ledger = self.ledger();
        let (Some(cfg), false) = (self.config()?, self.is_deleted()?) else {
            return drop();
        };
        let Some(run) = ledger.run(run_id)? else {
            return drop();
        };
        let state = run.state();
        let Some(target) = cfg.target_url.clone() else {
            ledger.deliver_without_target(run_id, now)?;
            return drop();
        };
        let lease = i64::from(cfg.target_timeout_seconds) + run::LEASE_MARGIN_SECONDS;
        let answer = match run::claim(&state, now, lease, cfg.max_attempts) {
            run::Claim::Dispatch {
                attempt,
                lease_until,
            } => {
                ledger.claim_run(&run, &run::apply_claim(&state, attempt, lease_until), now)?;
                let alarm = self.schedule_alarm(lease_until.millis() + 500)?;
                let headers = ledger.headers(&run.delivery_id)?;
                let body = ledger.body(&run.delivery_id)?;
                Self::await_alarm(alarm).await?;
                let meta = ClaimAnswer::Dispatch {
                    attempt,
                    delivery_id: run.delivery_id.clone(),
                    target_url: target,
                    timeout_seconds: cfg.target_timeout_seconds,
                    headers,
                };
                return Ok(http::bytes(
                    200,
                    "application/octet-stream",
                    wire::frame(&meta, &body)?,
                ));
            }
            run::Claim::NotYet { at } => ClaimAnswer::Later {
                delay_seconds: ((at.millis() - now.millis()).max(0) as u64).div_ceil(1000) as u32,
            },
            run::Claim::Exhausted => {
                // Failing the run also owes its dead letter, sent now (and
                // by the alarm if this send fails).
                ledger.settle_run(
                    &run,
                    &run::exhaust(&state),
                    Some("no attempt reported back (the consumer stopped during every attempt)"),
                    None,
                    now,
                )?;
                self.dead_letter(&cfg.id, run_id, &run.delivery_id, state.attempts)
                    .await;
                ClaimAnswer::Drop
            }
            run::Claim::Done | run::Claim::InFlight => ClaimAnswer::Drop,
        };
        Ok(http::bytes(
            200,
            "application/octet-stream",
            wire::frame(&answer, &[])?,
        ))
    }

    pub(super) async fn report(&self, req: &mut Request, run_id: &str) -> ApiResult<Response> {
        let report: Report = http::json_body(req).await?;
        let now = now();
        let ledger = self.ledger();
        let cfg = self.config()?.ok_or(ApiError::NotFound("trigger"))?;
        let run_row = ledger.run(run_id)?.ok_or(ApiError::NotFound("run"))?;
        let state = run_row.state();
        let policy = RetryPolicy {
            max_attempts: cfg.max_attempts,
            base_delay_seconds: cfg.retry_base_seconds,
        };
        let settlement = run::settle(&state, report.attempt, &report.outcome, now, policy);
        if settlement != Settlement::Stale {
            let next = run::apply_settlement(&state, settlement);
            let error = report.outcome.describe();
            ledger.settle_run(
                &run_row,
                &next,
                error.as_deref(),
                report.outcome.status,
                now,
            )?;
        }
        match settlement {
            Settlement::Retry { at, delay_seconds } => {
                let alarm = self.schedule_alarm(at.millis() + GRACE_MS + 500)?;
                Self::await_alarm(alarm).await?;
                let run = (run_id.to_string(), run_row.body_bytes.max(0) as u64);
                self.enqueue(&cfg, &[run], delay_seconds).await;
            }
            Settlement::Failed => {
                let alarm = self.schedule_alarm(now.millis() + FIRST_CHECK_MS)?;
                Self::await_alarm(alarm).await?;
                self.dead_letter(&cfg.id, run_id, &run_row.delivery_id, report.attempt)
                    .await;
            }
            Settlement::Delivered | Settlement::Stale => {}
        }
        let name = match settlement {
            Settlement::Delivered => "delivered",
            Settlement::Retry { .. } => "retry",
            Settlement::Failed => "failed",
            Settlement::Stale => "stale",
        };
        Ok(http::json(200, &json!({"settlement": name})))
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
