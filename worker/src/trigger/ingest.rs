//! Ingest: screen, dedupe and record one inbound request, then enqueue its run.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A run message to send.
#[derive(Debug, Clone)]
pub(super) struct Outgoing {
    /// The run.
    pub run_id: String,
    /// Its delivery's body size.
    pub body_bytes: u64,
}

impl Outgoing {
    /// The messages of runs just inserted for a delivery with a body of
    /// `body_bytes`: every run but the held ones (their route is paused).
    pub fn of_new(runs: &[crate::ledger::NewRun], body_bytes: u64) -> Vec<Outgoing> {
        runs.iter()
            .filter(|r| !r.held)
            .map(|r| Outgoing {
                run_id: r.id.clone(),
                body_bytes,
            })
            .collect()
    }

    /// The message of a stored run.
    pub fn of(r: &crate::ledger::RunRow) -> Outgoing {
        Outgoing {
            run_id: r.id.clone(),
            body_bytes: r.body_bytes.max(0) as u64,
        }
    }
}

/// What the edge passes on about an inbound request, besides its body.
pub(super) struct Arrival<'a> {
    /// The client's headers, without internal ones.
    pub headers: edgehook_core::HeaderList,
    /// When the edge received it.
    pub received_at: Timestamp,
    /// The ingress URL's query string, if any.
    pub query: Option<&'a str>,
}

/// An inbound request's body.
pub(super) enum IngestBody<'r> {
    /// Streamed by the edge in this request: read here, under the limits.
    Stream(&'r mut Request),
    /// Read whole by the edge (a small body of declared length) and passed
    /// by RPC.
    Read(Vec<u8>),
}

/// A share of the object's body budget, given back when dropped.
pub(super) struct BodyPermit<'a> {
    inflight: &'a Cell<u64>,
    bytes: u64,
}

impl Drop for BodyPermit<'_> {
    fn drop(&mut self) {
        self.inflight
            .set(self.inflight.get().saturating_sub(self.bytes));
    }
}

impl Trigger {
    /// Waits until `bytes` more fit in `MAX_INFLIGHT_BODY_BYTES` (or nothing
    /// else is being read, so a body larger than the budget still goes
    /// alone), then takes them.
    pub(super) async fn body_permit(&self, bytes: u64) -> BodyPermit<'_> {
        loop {
            let used = self.inflight_body_bytes.get();
            if used == 0 || used.saturating_add(bytes) <= MAX_INFLIGHT_BODY_BYTES {
                self.inflight_body_bytes.set(used.saturating_add(bytes));
                return BodyPermit {
                    inflight: &self.inflight_body_bytes,
                    bytes,
                };
            }
            worker::Delay::from(std::time::Duration::from_millis(BODY_PERMIT_POLL_MS)).await;
        }
    }

    /// Stores a genuine delivery that gets no run, and answers 200 with the
    /// reason.
    async fn store_ignored(
        &self,
        cfg: &TriggerConfig,
        d: &NewDelivery<'_>,
        body: &[u8],
    ) -> ApiResult<Response> {
        self.ledger()
            .insert_delivery(d, body, Some(cfg.storage_budget()))?;
        let alarm = self.schedule_alarm(d.received_at.millis() + RETENTION_INTERVAL_MS)?;
        Self::await_alarm(alarm).await?;
        Ok(http::json(
            200,
            &json!({
                "delivery_id": d.id,
                "run_id": null,
                "run_ids": [],
                "status": "ignored",
                "reason": d.reason,
                "duplicate": false,
            }),
        ))
    }

    /// Handles one inbound request. A streamed body is read here, after the
    /// rate limits and under this trigger's own body limit, so none of a
    /// refused request is buffered.
    pub(super) async fn ingest(
        &self,
        arrival: Arrival<'_>,
        body: IngestBody<'_>,
    ) -> ApiResult<Response> {
        let Arrival {
            headers,
            received_at,
            query,
        } = arrival;
        let cfg = self.live_config()?;
        // Every request counts against the limits, genuine or not.
        let ip = headers
            .get("cf-connecting-ip")
            .unwrap_or("unknown")
            .to_string();
        let admitted =
            self.limiter
                .borrow_mut()
                .admit(&ip, cfg.trigger_rate(), cfg.ip_rate(), received_at);
        if let Err((scope, retry_after)) = admitted {
            return Err(ApiError::RateLimited {
                scope: scope.as_str(),
                retry_after,
            });
        }
        let body = match body {
            IngestBody::Stream(req) => {
                // What this body may take: its declared length, or the limit.
                let want = headers
                    .get("content-length")
                    .and_then(|l| l.trim().parse::<u64>().ok())
                    .unwrap_or(cfg.max_body_bytes)
                    .min(cfg.max_body_bytes);
                let permit = self.body_permit(want).await;
                let body = http::read_body_or_drain(req, cfg.max_body_bytes).await;
                drop(permit);
                body?
            }
            IngestBody::Read(bytes) if bytes.len() as u64 > cfg.max_body_bytes => {
                return Err(ApiError::PayloadTooLarge {
                    limit: cfg.max_body_bytes,
                })
            }
            IngestBody::Read(bytes) => bytes,
        };
        let rand_delivery = random::<10>()?;
        let query = query
            .map(edgehook_core::filter::redact_query)
            .filter(|q| !q.is_empty());

        // From here until the run is inserted and its alarm set: no `.await`.
        // The configuration is read again: it may have changed (or the
        // trigger been deleted) while the body streamed in.
        let cfg = self.live_config()?;
        let ledger = self.ledger();
        let inbound = Inbound {
            headers: &headers,
            body: &body,
            received_at,
        };
        let stored_headers = core_ingest::stored_headers(&cfg, &headers);
        let delivery_id = new_delivery_id(received_at, rand_delivery);
        // What every stored outcome shares; each arm sets the rest.
        let base = NewDelivery {
            id: &delivery_id,
            received_at,
            status: DeliveryStatus::Queued,
            dedupe_key: None,
            signature_status: SignatureStatus::Valid.as_str(),
            matched_secret: None,
            event_type: None,
            replayed_from: None,
            replay_key: None,
            reason: None,
            headers: &stored_headers,
            received_bytes: None,
            run_id: None,
            query: query.as_deref(),
        };
        match core_ingest::screen(&cfg, &inbound) {
            Screening::TooLarge { limit } => Err(ApiError::PayloadTooLarge { limit }),
            Screening::BadBody(e) => Err(ApiError::BadRequest {
                code: "invalid_body",
                message: e.message().to_string(),
                field: None,
            }),
            Screening::Challenge(challenge) => {
                Ok(http::bytes(200, "text/plain", challenge.into_bytes()))
            }
            Screening::Rejected { error, facts } => {
                let reason = error.to_string();
                let status = error.signature_status();
                // An anonymous sender's body is never stored whole, and
                // rejections are stored up to a count and a byte size per
                // minute (and within the budget); the rest are counted.
                let (excerpt, _) = core_ingest::rejected_excerpt(&body);
                let headers_len = serde_json::to_vec(&stored_headers).map_or(0, |v| v.len());
                let size = core_ingest::stored_size(headers_len, excerpt.len());
                let (rows, bytes) = ledger.rejections_stored_since(received_at.minus_secs(60))?;
                let stored = if core_ingest::rejection_storable(rows, bytes, size) {
                    let inserted = ledger.insert_delivery(
                        &NewDelivery {
                            status: DeliveryStatus::Rejected,
                            dedupe_key: facts.dedupe_key.as_deref(),
                            signature_status: status.as_str(),
                            event_type: facts.event.name.as_deref(),
                            reason: Some(&reason),
                            received_bytes: Some(body.len() as u64),
                            ..base
                        },
                        excerpt,
                        Some(cfg.storage_budget()),
                    );
                    match inserted {
                        Ok(()) => true,
                        Err(ApiError::StorageBudgetExceeded { .. }) => false,
                        Err(e) => return Err(e),
                    }
                } else {
                    false
                };
                if !stored {
                    ledger.aggregate_rejection(received_at, status.as_str(), &reason)?;
                    return Ok(http::json(
                        401,
                        &json!({
                            "error": "invalid_signature",
                            "delivery_id": null,
                            "signature_status": status,
                            "message": reason,
                            "aggregated": true,
                        }),
                    ));
                }
                let alarm = self.schedule_alarm(received_at.millis() + RETENTION_INTERVAL_MS)?;
                Self::await_alarm(alarm).await?;
                Ok(http::json(
                    401,
                    &json!({
                        "error": "invalid_signature",
                        "delivery_id": delivery_id,
                        "signature_status": status,
                        "message": reason,
                    }),
                ))
            }
            Screening::Admitted { matched, facts } => {
                // What every stored outcome of a genuine delivery shares.
                let admitted = NewDelivery {
                    dedupe_key: facts.dedupe_key.as_deref(),
                    matched_secret: Some(matched.as_str()),
                    event_type: facts.event.name.as_deref(),
                    ..base
                };
                let holder = match (&facts.dedupe_key, core_ingest::dedupes(&cfg, &facts)) {
                    (Some(key), true) => ledger.find_holder(key, cfg.dedupe_cutoff(received_at))?,
                    _ => None,
                };
                match core_ingest::decide(&cfg, &facts, holder.is_some()) {
                    Decision::Duplicate => {
                        let holder =
                            holder.ok_or_else(|| ApiError::Internal("holder vanished".into()))?;
                        ledger.bump_attempt(&holder.id)?;
                        let status =
                            DeliveryStatus::parse(&holder.status).unwrap_or(DeliveryStatus::Queued);
                        let run_ids = ledger.run_ids(&holder.id)?;
                        Ok(http::json(
                            200,
                            &IngestAccepted {
                                delivery_id: holder.id,
                                run_id: holder.run_id,
                                run_ids,
                                status,
                                duplicate: true,
                            },
                        ))
                    }
                    Decision::Ignore(reason) => {
                        self.store_ignored(
                            &cfg,
                            &NewDelivery {
                                status: DeliveryStatus::Ignored,
                                reason: Some(reason.as_str()),
                                ..admitted
                            },
                            &body,
                        )
                        .await
                    }
                    Decision::Run => {
                        let Some(runs) = self.plan_runs(
                            &cfg,
                            &facts.event,
                            &stored_headers,
                            &body,
                            query.as_deref(),
                            received_at,
                        )?
                        else {
                            return self
                                .store_ignored(
                                    &cfg,
                                    &NewDelivery {
                                        status: DeliveryStatus::Ignored,
                                        reason: Some(IgnoreReason::NoRouteMatched.as_str()),
                                        ..admitted
                                    },
                                    &body,
                                )
                                .await;
                        };
                        let first = runs.first().map(|r| r.id.clone());
                        ledger.insert_delivery(
                            &NewDelivery {
                                run_id: first.as_deref(),
                                ..admitted
                            },
                            &body,
                            Some(cfg.storage_budget()),
                        )?;
                        ledger.insert_runs(&delivery_id, &runs, received_at)?;
                        let alarm = self.schedule_alarm(received_at.millis() + FIRST_CHECK_MS)?;
                        // The runs are durable and covered by the alarm; now
                        // enqueue them, in priority order (held ones wait
                        // for their route to resume). The send is awaited
                        // before the answer, not left to `waitUntil`: sends
                        // left running after the answer made about one
                        // request in fifty wait 0.2-2 s under load (a whole
                        // batch of concurrent requests at once), and cut
                        // throughput by a third (`make bench`'s probe).
                        Self::await_alarm(alarm).await?;
                        self.enqueue(&cfg, &Outgoing::of_new(&runs, body.len() as u64), 0)
                            .await;
                        Ok(http::json(
                            200,
                            &IngestAccepted {
                                delivery_id,
                                run_id: first,
                                run_ids: runs.into_iter().map(|r| r.id).collect(),
                                status: DeliveryStatus::Queued,
                                duplicate: false,
                            },
                        ))
                    }
                }
            }
        }
    }

    /// Sends run messages, in order, and waits for the sends. A failure is
    /// logged and left to the alarm: the runs stay `queued` in the ledger,
    /// which is the source of truth.
    pub(super) async fn enqueue(&self, cfg: &TriggerConfig, runs: &[Outgoing], delay_seconds: u32) {
        if runs.is_empty() {
            return;
        }
        match self.env.queue(wire::RUNS_QUEUE) {
            Ok(queue) => send_runs(queue, cfg.id.clone(), runs.to_vec(), delay_seconds).await,
            Err(e) => console_error!("no runs queue, the alarm will retry: {e}"),
        }
    }
}

/// Sends `runs` of trigger `trigger_id`, 100 a batch. A run without a route
/// (its trigger has no target) is marked delivered by the consumer's claim,
/// once it is on the queue: one call per batch, where a write here after
/// each send was a commit of its own per delivery.
async fn send_runs(
    queue: worker::Queue,
    trigger_id: String,
    runs: Vec<Outgoing>,
    delay_seconds: u32,
) {
    let sent = async {
        for chunk in runs.chunks(100) {
            let messages: Vec<_> = chunk
                .iter()
                .map(|r| {
                    MessageBuilder::new(RunMessage {
                        trigger_id: trigger_id.clone(),
                        run_id: r.run_id.clone(),
                        dispatch: true,
                        body_bytes: Some(r.body_bytes),
                    })
                    .delay_seconds(delay_seconds)
                    .build()
                })
                .collect();
            if messages.len() == 1 {
                if let Some(m) = messages.into_iter().next() {
                    queue.send(m).await?;
                }
            } else {
                queue.send_batch(messages).await?;
            }
        }
        Ok::<(), worker::Error>(())
    }
    .await;
    if let Err(e) = sent {
        console_error!(
            "enqueue of {} run(s) failed, the alarm will retry: {e}",
            runs.len()
        );
    }
}
