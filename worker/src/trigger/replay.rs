//! Replays, single and bulk, with `Idempotency-Key`.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The `idempotency` table's scope of bulk replays.
const BULK_REPLAY_SCOPE: &str = "bulk_replay";

impl Trigger {
    pub(super) fn idempotency_key(req: &Request) -> ApiResult<Option<String>> {
        let key = req
            .headers()
            .get("idempotency-key")
            .ok()
            .flatten()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty());
        if key.as_ref().is_some_and(|k| k.len() > 255) {
            return Err(ApiError::bad_request(
                "Idempotency-Key must be at most 255 characters",
            ));
        }
        Ok(key)
    }

    /// Replays one delivery in the ledger (synchronous). Returns the replay
    /// and, when it is new, the messages of its runs (an `Idempotency-Key`
    /// may name an earlier one).
    pub(super) fn replay_one(
        &self,
        cfg: &TriggerConfig,
        original: &str,
        key: Option<&str>,
        now: Timestamp,
    ) -> ApiResult<(ReplayCreated, Vec<Outgoing>)> {
        let ledger = self.ledger();
        let orig = ledger
            .delivery(&cfg.id, original, false)?
            .ok_or(ApiError::NotFound("delivery"))?;
        if orig.status == DeliveryStatus::Rejected {
            return Err(ApiError::Conflict {
                code: "not_replayable",
                message: "a rejected delivery cannot be replayed".into(),
            });
        }
        if let Some(k) = key {
            if let Some((delivery_id, run_id)) = ledger.replay_by_key(original, k)? {
                let run_ids = ledger.run_ids(&delivery_id)?;
                let created = ReplayCreated {
                    delivery_id,
                    run_id,
                    run_ids,
                    replayed_from: original.to_string(),
                };
                return Ok((created, Vec::new()));
            }
        }
        let delivery_id = new_delivery_id(now, random::<10>()?);
        let (headers, body) = ledger.headers_and_body(original)?;
        let query = ledger.query_of(original)?;
        // The replay goes to the routes that match it now.
        let event = edgehook_core::route::stored_event(cfg, &headers, &body);
        let runs = self
            .plan_runs(cfg, &event, &headers, &body, query.as_deref(), now)?
            .unwrap_or_default();
        let first = runs.first().map(|r| r.id.clone());
        ledger.insert_delivery(
            &NewDelivery {
                id: &delivery_id,
                received_at: now,
                status: if runs.is_empty() {
                    DeliveryStatus::Ignored
                } else {
                    DeliveryStatus::Queued
                },
                dedupe_key: orig.dedupe_key.as_deref(),
                signature_status: SignatureStatus::Replay.as_str(),
                matched_secret: None,
                event_type: orig.event_type.as_deref(),
                replayed_from: Some(original),
                replay_key: key,
                reason: runs
                    .is_empty()
                    .then_some(IgnoreReason::NoRouteMatched.as_str()),
                headers: &headers,
                received_bytes: None,
                run_id: first.as_deref(),
                query: query.as_deref(),
            },
            &body,
            Some(cfg.storage_budget()),
        )?;
        ledger.insert_runs(&delivery_id, &runs, now)?;
        let out = Outgoing::of_new(&runs, body.len() as u64);
        let created = ReplayCreated {
            delivery_id,
            run_id: first,
            run_ids: runs.into_iter().map(|r| r.id).collect(),
            replayed_from: original.to_string(),
        };
        Ok((created, out))
    }

    pub(super) async fn replay(&self, req: &Request, original: &str) -> ApiResult<Response> {
        let key = Self::idempotency_key(req)?;
        // Synchronous from here to the insert, so two concurrent calls with
        // one Idempotency-Key create one replay.
        let cfg = self.live_config()?;
        let now = now();
        let (created, new) = self.replay_one(&cfg, original, key.as_deref(), now)?;
        if !new.is_empty() {
            let alarm = self.schedule_alarm(now.millis() + FIRST_CHECK_MS)?;
            Self::await_alarm(alarm).await?;
            self.enqueue(&cfg, &new, 0).await;
        }
        Ok(http::json(201, &created))
    }

    /// Replays what matches a filter. With an `Idempotency-Key`, the first
    /// call's response is stored and returned to every retry for 24 hours; a
    /// different request under the same key is a 409.
    pub(super) async fn bulk_replay(&self, req: &mut Request) -> ApiResult<Response> {
        let key = Self::idempotency_key(req)?;
        let raw = http::read_body_limited(req, 64 * 1024).await?;
        let request_hash = edgehook_core::encoding::sha256_hex(&raw);
        let filter: BulkReplay = http::parse_json(&raw)?;
        let field_error = |field: &'static str, message: String| ApiError::BadRequest {
            code: "invalid_request",
            message,
            field: Some(field.into()),
        };
        let limit = filter
            .limit
            .filter(|l| (1..=MAX_BULK_REPLAY).contains(l))
            .ok_or_else(|| {
                field_error(
                    "limit",
                    format!("limit is required, between 1 and {MAX_BULK_REPLAY}"),
                )
            })?;
        let status = match filter.status.as_deref() {
            None => None,
            Some("rejected") => {
                return Err(field_error(
                    "status",
                    "rejected deliveries cannot be replayed".into(),
                ))
            }
            Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
                field_error(
                    "status",
                    "status must be queued, delivered, failed or ignored".into(),
                )
            })?),
        };
        let time = |field: &'static str, v: &Option<String>| -> ApiResult<Option<Timestamp>> {
            v.as_deref()
                .map(|t| {
                    Timestamp::parse(t).ok_or_else(|| {
                        field_error(field, format!("{field} must be an RFC 3339 time"))
                    })
                })
                .transpose()
        };
        let after = time("received_after", &filter.received_after)?;
        let before = time("received_before", &filter.received_before)?;
        // Synchronous from the key lookup and the selection to the last
        // insert and the stored response, so concurrent retries cannot both
        // replay.
        let cfg = self.live_config()?;
        let now = now();
        let ledger = self.ledger();
        let candidates = || {
            ledger.replay_candidates(
                status,
                after,
                before,
                filter.event_type.as_deref(),
                filter.include_replays,
                limit,
            )
        };
        if filter.dry_run {
            // What the same request would replay now: no write, no stored
            // answer, so a preview never uses up an Idempotency-Key.
            let ids = candidates()?;
            return Ok(http::json(
                200,
                &json!({"count": ids.len(), "dry_run": true, "delivery_ids": ids}),
            ));
        }
        if let Some(k) = key.as_deref() {
            let since = now.minus_secs(IDEMPOTENCY_TTL_SECONDS);
            if let Some((hash, response)) =
                ledger.idempotent_response(BULK_REPLAY_SCOPE, k, since)?
            {
                if hash != request_hash {
                    return Err(ApiError::Conflict {
                        code: "idempotency_key_reused",
                        message: "this Idempotency-Key was used with a different request".into(),
                    });
                }
                return Ok(http::bytes(200, "application/json", response.into_bytes()));
            }
        }
        let ids = candidates()?;
        let mut replayed = Vec::with_capacity(ids.len());
        let mut new_runs = Vec::new();
        for id in &ids {
            let (created, new) = self.replay_one(&cfg, id, key.as_deref(), now)?;
            new_runs.extend(new);
            replayed.push(created);
        }
        let response = json!({"count": replayed.len(), "replayed": replayed}).to_string();
        if let Some(k) = key.as_deref() {
            ledger.store_idempotent_response(
                BULK_REPLAY_SCOPE,
                k,
                &request_hash,
                &response,
                now,
            )?;
        }
        if !new_runs.is_empty() {
            let alarm = self.schedule_alarm(now.millis() + FIRST_CHECK_MS)?;
            Self::await_alarm(alarm).await?;
            self.enqueue(&cfg, &new_runs, 0).await;
        }
        Ok(http::bytes(200, "application/json", response.into_bytes()))
    }
}
