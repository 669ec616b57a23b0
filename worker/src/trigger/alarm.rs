//! The alarm: re-sends runs whose messages look lost, owed dead letters,
//! the registry copy, and retention.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Trigger {
    pub(super) async fn on_alarm(&self) -> ApiResult<()> {
        self.ensure_ready().await?;
        // The alarm that woke us is consumed.
        self.alarm_at.set(None);
        let Some(cfg) = self.config()? else {
            return Ok(());
        };
        let now = now();
        let ledger = self.ledger();
        let deleted_at = ledger.deleted_at()?;

        if ledger.registry_dirty()? {
            self.sync_registry(&cfg, "", deleted_at).await;
        }

        let stale: Vec<_> = ledger
            .stale_runs(now, GRACE_MS, REENQUEUE_BATCH)?
            .into_iter()
            .filter(|r| run::needs_reenqueue(&r.state(), now))
            .collect();
        if deleted_at.is_some() {
            // A deleted trigger dispatches nothing more; close its open runs.
            for r in &stale {
                let closed = edgehook_core::run::RunState {
                    status: edgehook_core::run::RunStatus::Failed,
                    lease_until: None,
                    ..r.state()
                };
                // Failing the run also owes its dead letter, sent below.
                ledger.settle_run(r, &closed, Some("trigger deleted"), None, now)?;
            }
            // Held runs of paused routes too: nothing will resume them.
            for route in ledger.routes()? {
                ledger.fail_route_runs(&route.id, "trigger deleted", now)?;
            }
            ledger.cancel_route_resumes()?;
        } else if !stale.is_empty() {
            // Each re-send is recorded before it is made, and spaces the
            // next one exponentially: during a consumer or queue outage a run
            // gets a bounded number of messages (`run::max_resends_within`),
            // not one per alarm.
            for r in &stale {
                ledger.record_resend(r, &run::apply_resend(&r.state(), now))?;
            }
            let runs: Vec<Outgoing> = stale.iter().map(Outgoing::of).collect();
            self.enqueue(&cfg, &runs, 0).await;
        }

        // Routes the breaker paused try again once their cool-down passed.
        if deleted_at.is_none() {
            for id in ledger.routes_to_resume(now)? {
                self.release_route(&cfg, &id, false).await?;
            }
        }

        for r in ledger.dlq_pending(now, 100)? {
            self.dead_letter(&cfg.id, &r.id, &r.delivery_id, r.attempts.max(0) as u32)
                .await;
        }

        let cutoff = cfg.retention_cutoff(now);
        let mut backlog = true;
        for _ in 0..RETENTION_BATCHES_PER_ALARM {
            if ledger.enforce_retention(cutoff, RETENTION_BATCH)? < RETENTION_BATCH as usize {
                backlog = false;
                break;
            }
        }
        ledger.expire_idempotency(now.minus_secs(IDEMPOTENCY_TTL_SECONDS))?;

        let next = edgehook_core::alarm::next_alarm(&edgehook_core::alarm::AlarmState {
            now,
            next_run_check: ledger.next_run_check(GRACE_MS)?.map(Timestamp),
            registry_dirty: ledger.registry_dirty()?,
            has_deliveries: ledger.has_deliveries()?,
            retention_backlog: backlog,
        });
        if let Some(at) = next {
            let alarm = self.schedule_alarm(at.millis())?;
            Self::await_alarm(alarm).await?;
        }
        Ok(())
    }
}
