//! The Trigger Durable Object: one per trigger, the serialized dedupe and
//! delivery ledger.
//!
//! It answers the Worker's internal requests (see [`crate::wire`]): ingest,
//! trigger configuration, delivery reads, replay, the change feed, and the
//! queue consumer's claims and reports. Its alarm re-enqueues runs whose
//! messages look lost, sends owed dead letters, keeps the registry in step
//! and enforces retention.
//!
//! **Ingest checks for a dedupe holder and inserts the delivery and its run in
//! one synchronous step, with the alarm that guarantees the run, before any
//! `.await`.** The runtime neither interleaves other events into that step nor
//! answers before its writes are durable, so N concurrent copies of a delivery
//! produce one delivery and one run, and a 200 is never answered for a run
//! that no alarm covers.

use std::cell::{Cell, RefCell};

use edgehook_core::api::{DeliveryStatus, IngestAccepted, ReplayCreated, TriggerView};
use edgehook_core::id::{new_delivery_id, new_run_id};
use edgehook_core::ingest::{self, Decision, Inbound, Screening};
use edgehook_core::limit::Limiter;
use edgehook_core::run::{self, RetryPolicy, Settlement, REENQUEUE_GRACE_SECONDS};
use edgehook_core::trigger::{
    BulkReplay, SecretRotation, TriggerConfig, TriggerPatch, DEFAULT_SECRET_GRACE_SECONDS,
    MAX_BULK_REPLAY,
};
use edgehook_core::verify::SignatureStatus;
use edgehook_core::Timestamp;
use serde_json::json;
use worker::{
    console_error, durable_object, js_sys, wasm_bindgen::JsValue, wasm_bindgen_futures::JsFuture,
    Env, Headers, MessageBuilder, Method, Request, Response, State,
};

use crate::error::{ApiError, ApiResult};
use crate::http::{self, now, random};
use crate::ledger::{Ledger, NewDelivery};
use crate::wire::{self, ClaimAnswer, DeadLetter, Report, RunMessage};

/// The first alarm after a new run: late enough that a healthy consumer has
/// finished, soon enough that a lost message is re-sent within a minute.
const FIRST_CHECK_MS: i64 = (REENQUEUE_GRACE_SECONDS + 5) * 1000;
/// The re-enqueue grace in milliseconds.
const GRACE_MS: i64 = REENQUEUE_GRACE_SECONDS * 1000;
/// How often retention runs while deliveries exist.
const RETENTION_INTERVAL_MS: i64 = 3_600_000;
/// Most runs re-enqueued per alarm.
const REENQUEUE_BATCH: u32 = 500;
/// Rejected deliveries stored per minute; beyond this they are only counted,
/// so a flood of bad signatures cannot fill the ledger.
const REJECTIONS_STORED_PER_MINUTE: i64 = 60;
/// Client IPs whose rate a trigger remembers.
const LIMITER_MAX_IPS: usize = 4096;
/// A change-feed page holds about this many bytes at most.
const CHANGES_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// One trigger's ledger.
#[durable_object]
pub struct Trigger {
    state: State,
    env: Env,
    ready: Cell<bool>,
    config: RefCell<Option<TriggerConfig>>,
    /// Whether the trigger is deleted, once read (`None`: not read yet).
    deleted: Cell<Option<bool>>,
    /// The alarm time this instance last set (ms), to avoid redundant writes.
    alarm_at: Cell<Option<i64>>,
    /// Rate limits; in memory, as a limit needs no durability.
    limiter: RefCell<Limiter>,
}

impl worker::DurableObject for Trigger {
    fn new(state: State, env: Env) -> Self {
        Trigger {
            state,
            env,
            ready: Cell::new(false),
            config: RefCell::new(None),
            deleted: Cell::new(None),
            alarm_at: Cell::new(None),
            limiter: RefCell::new(Limiter::new(LIMITER_MAX_IPS)),
        }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        Ok(match self.route(req).await {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        })
    }

    async fn alarm(&self) -> worker::Result<Response> {
        match self.on_alarm().await {
            Ok(()) => Response::ok("ok"),
            // Returning an error makes the runtime retry the alarm with backoff.
            Err(e) => {
                let resp = e.into_response();
                Err(worker::Error::RustError(format!(
                    "alarm failed with {}",
                    resp.status_code()
                )))
            }
        }
    }
}

impl Trigger {
    fn ledger(&self) -> Ledger {
        Ledger::new(self.state.storage().sql())
    }

    /// Migrates the schema and learns the current alarm, once per instance.
    async fn ensure_ready(&self) -> ApiResult<()> {
        if self.ready.get() {
            return Ok(());
        }
        self.ledger().migrate()?;
        let existing = self.state.storage().get_alarm().await?;
        self.alarm_at.set(existing);
        self.ready.set(true);
        // An instance that died between an insert and its alarm (or whose
        // alarm was lost) recovers here: open work always has an alarm.
        if existing.is_none() && self.ledger().next_run_check(GRACE_MS)?.is_some() {
            let at = now().millis() + 1000;
            if let Some(p) = self.schedule_alarm(at)? {
                JsFuture::from(p)
                    .await
                    .map_err(|e| ApiError::internal("set alarm", format!("{e:?}")))?;
            }
        }
        Ok(())
    }

    /// Sets the alarm to `at` (ms) unless one is due sooner. The storage call
    /// is made synchronously, so it commits with the writes around it; the
    /// returned promise may be awaited later.
    fn schedule_alarm(&self, at: i64) -> ApiResult<Option<js_sys::Promise>> {
        if self.alarm_at.get().is_some_and(|current| current <= at) {
            return Ok(None);
        }
        let date = js_sys::Date::new(&JsValue::from_f64(at as f64));
        let promise = self
            .state
            .storage()
            .as_raw()
            .set_alarm(date, js_sys::Object::new())
            .map_err(|e| ApiError::internal("set alarm", format!("{e:?}")))?;
        self.alarm_at.set(Some(at));
        Ok(Some(promise))
    }

    async fn await_alarm(promise: Option<js_sys::Promise>) -> ApiResult<()> {
        if let Some(p) = promise {
            JsFuture::from(p)
                .await
                .map_err(|e| ApiError::internal("set alarm", format!("{e:?}")))?;
        }
        Ok(())
    }

    fn config(&self) -> ApiResult<Option<TriggerConfig>> {
        if let Some(cfg) = self.config.borrow().as_ref() {
            return Ok(Some(cfg.clone()));
        }
        let cfg = self.ledger().config()?;
        self.config.replace(cfg.clone());
        Ok(cfg)
    }

    /// The configuration of a trigger that exists and is not deleted.
    fn is_deleted(&self) -> ApiResult<bool> {
        if let Some(d) = self.deleted.get() {
            return Ok(d);
        }
        let d = self.ledger().deleted_at()?.is_some();
        self.deleted.set(Some(d));
        Ok(d)
    }

    fn live_config(&self) -> ApiResult<TriggerConfig> {
        if self.is_deleted()? {
            return Err(ApiError::NotFound("trigger"));
        }
        self.config()?.ok_or(ApiError::NotFound("trigger"))
    }

    fn store_config(&self, cfg: &TriggerConfig) -> ApiResult<()> {
        self.ledger().put_config(cfg)?;
        self.config.replace(Some(cfg.clone()));
        Ok(())
    }

    fn base_url(req: &Request) -> String {
        req.headers()
            .get(wire::BASE_URL)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    async fn route(&self, mut req: Request) -> ApiResult<Response> {
        self.ensure_ready().await?;
        let url = req.url()?;
        let path = url.path().to_string();
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = req.method();
        match (method, segs.as_slice()) {
            (Method::Post, ["ingest"]) => self.ingest(req).await,
            (Method::Put, ["trigger"]) => self.create(&mut req).await,
            (Method::Get, ["trigger"]) => {
                let cfg = self.live_config()?;
                Ok(http::json(
                    200,
                    &TriggerView::of(&cfg, &Self::base_url(&req)),
                ))
            }
            (Method::Patch, ["trigger"]) => self.patch(&mut req).await,
            (Method::Delete, ["trigger"]) => self.delete(&req).await,
            (Method::Put, ["trigger", "signing-secret"]) => self.rotate(&mut req).await,
            (Method::Get, ["deliveries"]) => self.list(&url),
            (Method::Get, ["deliveries", id]) => {
                let cfg = self.live_config()?;
                let d = self
                    .ledger()
                    .delivery(&cfg.id, id, true)?
                    .ok_or(ApiError::NotFound("delivery"))?;
                Ok(http::json(200, &d))
            }
            (Method::Post, ["deliveries", id, "replay"]) => self.replay(&req, id).await,
            (Method::Post, ["replay"]) => self.bulk_replay(&mut req).await,
            (Method::Get, ["rejections"]) => {
                self.live_config()?;
                let limit = parse_limit(&url, 100, 1000)?;
                let windows = self.ledger().rejection_windows(limit)?;
                Ok(http::json(200, &json!({"windows": windows})))
            }
            (Method::Get, ["changes"]) => self.changes(&url),
            (Method::Post, ["runs", id, "claim"]) => self.claim(id).await,
            (Method::Post, ["runs", id, "report"]) => self.report(&mut req, id).await,
            _ => Err(ApiError::NotFound("route")),
        }
    }

    // ---- ingest --------------------------------------------------------

    async fn ingest(&self, mut req: Request) -> ApiResult<Response> {
        let received_at = req
            .headers()
            .get(wire::RECEIVED_AT)
            .ok()
            .flatten()
            .and_then(|v| v.parse().ok())
            .map(Timestamp)
            .unwrap_or_else(now);
        let headers = http::header_list(req.headers());
        let body = req.bytes().await?;
        let rand_delivery = random::<10>()?;
        let rand_run = random::<10>()?;

        // From here until the run is inserted and its alarm set: no `.await`.
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
        let ledger = self.ledger();
        let inbound = Inbound {
            headers: &headers,
            body: &body,
            received_at,
        };
        let stored_headers = ingest::stored_headers(&cfg, &headers);
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
            run_id: None,
        };
        match ingest::screen(&cfg, &inbound) {
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
                if ledger.rejections_stored_since(received_at.minus_secs(60))?
                    >= REJECTIONS_STORED_PER_MINUTE
                {
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
                ledger.insert_delivery(
                    &NewDelivery {
                        status: DeliveryStatus::Rejected,
                        dedupe_key: facts.dedupe_key.as_deref(),
                        signature_status: status.as_str(),
                        event_type: facts.event.name.as_deref(),
                        reason: Some(&reason),
                        ..base
                    },
                    &body,
                )?;
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
                let holder = match (&facts.dedupe_key, ingest::dedupes(&cfg, &facts)) {
                    (Some(key), true) => ledger.find_holder(key, cfg.dedupe_cutoff(received_at))?,
                    _ => None,
                };
                match ingest::decide(&cfg, &facts, holder.is_some()) {
                    Decision::Duplicate => {
                        let holder =
                            holder.ok_or_else(|| ApiError::Internal("holder vanished".into()))?;
                        ledger.bump_attempt(&holder.id)?;
                        let status =
                            DeliveryStatus::parse(&holder.status).unwrap_or(DeliveryStatus::Queued);
                        Ok(http::json(
                            200,
                            &IngestAccepted {
                                delivery_id: holder.id,
                                run_id: holder.run_id,
                                status,
                                duplicate: true,
                            },
                        ))
                    }
                    Decision::Ignore(reason) => {
                        ledger.insert_delivery(
                            &NewDelivery {
                                status: DeliveryStatus::Ignored,
                                dedupe_key: facts.dedupe_key.as_deref(),
                                matched_secret: Some(matched.as_str()),
                                event_type: facts.event.name.as_deref(),
                                reason: Some(reason.as_str()),
                                ..base
                            },
                            &body,
                        )?;
                        let alarm =
                            self.schedule_alarm(received_at.millis() + RETENTION_INTERVAL_MS)?;
                        Self::await_alarm(alarm).await?;
                        Ok(http::json(
                            200,
                            &json!({
                                "delivery_id": delivery_id,
                                "run_id": null,
                                "status": "ignored",
                                "reason": reason.as_str(),
                                "duplicate": false,
                            }),
                        ))
                    }
                    Decision::Run => {
                        let run_id = new_run_id(received_at, rand_run);
                        ledger.insert_delivery(
                            &NewDelivery {
                                dedupe_key: facts.dedupe_key.as_deref(),
                                matched_secret: Some(matched.as_str()),
                                event_type: facts.event.name.as_deref(),
                                run_id: Some(&run_id),
                                ..base
                            },
                            &body,
                        )?;
                        ledger.insert_run(&run_id, &delivery_id, received_at)?;
                        let alarm = self.schedule_alarm(received_at.millis() + FIRST_CHECK_MS)?;
                        // The run is durable and covered by the alarm; now enqueue.
                        Self::await_alarm(alarm).await?;
                        self.enqueue(&cfg, std::slice::from_ref(&run_id), 0).await;
                        Ok(http::json(
                            200,
                            &IngestAccepted {
                                delivery_id,
                                run_id: Some(run_id),
                                status: DeliveryStatus::Queued,
                                duplicate: false,
                            },
                        ))
                    }
                }
            }
        }
    }

    /// Sends run messages. A failure is logged and left to the alarm: the
    /// runs stay `queued` in the ledger, which is the source of truth.
    async fn enqueue(&self, cfg: &TriggerConfig, run_ids: &[String], delay_seconds: u32) {
        if run_ids.is_empty() {
            return;
        }
        let sent = async {
            let queue = self.env.queue(wire::RUNS_QUEUE)?;
            for chunk in run_ids.chunks(100) {
                let messages: Vec<_> = chunk
                    .iter()
                    .map(|run_id| {
                        MessageBuilder::new(RunMessage {
                            trigger_id: cfg.id.clone(),
                            run_id: run_id.clone(),
                            dispatch: cfg.target_url.is_some(),
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
        let now = now();
        match sent {
            Ok(()) => {
                if cfg.target_url.is_none() {
                    // No target: the ledger (and Postgres) are the output,
                    // and the run is done once it is on the queue.
                    let ledger = self.ledger();
                    for id in run_ids {
                        if let Err(e) = ledger.deliver_without_target(id, now) {
                            e.into_response();
                        }
                    }
                }
            }
            Err(e) => console_error!(
                "enqueue of {} run(s) failed, the alarm will retry: {e}",
                run_ids.len()
            ),
        }
    }

    // ---- configuration -------------------------------------------------

    async fn create(&self, req: &mut Request) -> ApiResult<Response> {
        let body = http::read_body_limited(req, 64 * 1024).await?;
        let cfg: TriggerConfig =
            serde_json::from_slice(&body).map_err(|e| ApiError::internal("create body", e))?;
        if self.config()?.is_some() {
            return Err(ApiError::Conflict {
                code: "trigger_exists",
                message: "a trigger with this id exists".into(),
            });
        }
        self.store_config(&cfg)?;
        let base = Self::base_url(req);
        self.sync_registry(&cfg, &base, None).await;
        Ok(http::json(201, &TriggerView::of(&cfg, &base)))
    }

    async fn patch(&self, req: &mut Request) -> ApiResult<Response> {
        let patch: TriggerPatch = http::json_body(req).await?;
        let mut cfg = self.live_config()?;
        cfg.apply(patch, now())?;
        self.store_config(&cfg)?;
        let base = Self::base_url(req);
        self.sync_registry(&cfg, &base, None).await;
        Ok(http::json(200, &TriggerView::of(&cfg, &base)))
    }

    async fn rotate(&self, req: &mut Request) -> ApiResult<Response> {
        let rotation: SecretRotation = http::json_body(req).await?;
        let mut cfg = self.live_config()?;
        cfg.rotate_secret(
            &rotation.secret,
            rotation
                .grace_seconds
                .unwrap_or(DEFAULT_SECRET_GRACE_SECONDS),
            now(),
        )?;
        self.store_config(&cfg)?;
        let base = Self::base_url(req);
        self.sync_registry(&cfg, &base, None).await;
        Ok(http::json(200, &TriggerView::of(&cfg, &base)))
    }

    async fn delete(&self, req: &Request) -> ApiResult<Response> {
        let cfg = self.live_config()?;
        let now = now();
        self.ledger().mark_deleted(now)?;
        self.deleted.set(Some(true));
        self.sync_registry(&cfg, &Self::base_url(req), Some(now))
            .await;
        Ok(http::bytes(204, "application/json", Vec::new()))
    }

    /// Pushes this trigger's view to the registry; on failure, marks it owed
    /// and lets the alarm retry.
    async fn sync_registry(&self, cfg: &TriggerConfig, base: &str, deleted_at: Option<Timestamp>) {
        let mut view = TriggerView::of(cfg, base);
        view.deleted_at = deleted_at.map(Timestamp::to_rfc3339);
        let pushed = async {
            let stub = wire::registry_stub(&self.env)?;
            let body =
                serde_json::to_vec(&view).map_err(|e| ApiError::internal("registry json", e))?;
            let resp = wire::call(
                &stub,
                Method::Put,
                &format!("/triggers/{}", cfg.id),
                Headers::new(),
                Some(&body),
            )
            .await?;
            if resp.status_code() >= 300 {
                return Err(ApiError::Internal(format!(
                    "registry answered {}",
                    resp.status_code()
                )));
            }
            Ok(())
        }
        .await;
        let ledger = self.ledger();
        let result = match pushed {
            Ok(()) => ledger.set_registry_dirty(false),
            Err(e) => {
                e.into_response();
                ledger
                    .set_registry_dirty(true)
                    .and_then(|_| self.schedule_alarm(now().millis() + 5000).map(|_| ()))
            }
        };
        if let Err(e) = result {
            e.into_response();
        }
    }

    // ---- reads ---------------------------------------------------------

    fn list(&self, url: &worker::Url) -> ApiResult<Response> {
        let cfg = self.live_config()?;
        let status =
            match http::query_param(url, "status") {
                Some(s) if !s.is_empty() => Some(DeliveryStatus::parse(&s).ok_or_else(|| {
                    ApiError::BadRequest {
                        code: "invalid_request",
                        message:
                            "status must be one of queued, delivered, failed, rejected, ignored"
                                .into(),
                        field: Some("status"),
                    }
                })?),
                _ => None,
            };
        let limit = parse_limit(url, 50, 200)?;
        let before = match http::query_param(url, "cursor") {
            Some(c) if !c.is_empty() => Some(decode_cursor(&c)?),
            _ => None,
        };
        let page = self.ledger().list(&cfg.id, status, before, limit + 1)?;
        let more = page.len() > limit as usize;
        let mut deliveries: Vec<_> = page.into_iter().take(limit as usize).collect();
        let next_cursor = if more {
            deliveries
                .last()
                .map(|(d, at)| encode_cursor(*at, &d.delivery_id))
        } else {
            None
        };
        let deliveries: Vec<_> = deliveries.drain(..).map(|(d, _)| d).collect();
        Ok(http::json(
            200,
            &json!({"deliveries": deliveries, "next_cursor": next_cursor}),
        ))
    }

    fn changes(&self, url: &worker::Url) -> ApiResult<Response> {
        // The backfill reads a deleted trigger's feed too, to finish its history.
        let cfg = self.config()?.ok_or(ApiError::NotFound("trigger"))?;
        let after = match http::query_param(url, "after") {
            Some(a) if !a.is_empty() => {
                a.parse::<i64>()
                    .ok()
                    .filter(|v| *v >= 0)
                    .ok_or_else(|| ApiError::BadRequest {
                        code: "invalid_request",
                        message: "after must be a non-negative integer".into(),
                        field: Some("after"),
                    })?
            }
            _ => 0,
        };
        let limit = parse_limit(url, 100, 1000)?;
        let (changes, has_more) =
            self.ledger()
                .changes(&cfg.id, after, limit, CHANGES_MAX_BYTES)?;
        let next_after = changes.last().map_or(after, |c| c.seq);
        Ok(http::json(
            200,
            &json!({"changes": changes, "next_after": next_after, "has_more": has_more}),
        ))
    }

    // ---- replay --------------------------------------------------------

    fn idempotency_key(req: &Request) -> ApiResult<Option<String>> {
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
    /// and whether it is new (an `Idempotency-Key` may name an earlier one).
    fn replay_one(
        &self,
        cfg: &TriggerConfig,
        original: &str,
        key: Option<&str>,
        now: Timestamp,
    ) -> ApiResult<(ReplayCreated, bool)> {
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
                let created = ReplayCreated {
                    delivery_id,
                    run_id: run_id.unwrap_or_default(),
                    replayed_from: original.to_string(),
                };
                return Ok((created, false));
            }
        }
        let delivery_id = new_delivery_id(now, random::<10>()?);
        let run_id = new_run_id(now, random::<10>()?);
        let headers = ledger.headers(original)?;
        let body = ledger.body(original)?;
        ledger.insert_delivery(
            &NewDelivery {
                id: &delivery_id,
                received_at: now,
                status: DeliveryStatus::Queued,
                dedupe_key: orig.dedupe_key.as_deref(),
                signature_status: SignatureStatus::Replay.as_str(),
                matched_secret: None,
                event_type: orig.event_type.as_deref(),
                replayed_from: Some(original),
                replay_key: key,
                reason: None,
                headers: &headers,
                run_id: Some(&run_id),
            },
            &body,
        )?;
        ledger.insert_run(&run_id, &delivery_id, now)?;
        let created = ReplayCreated {
            delivery_id,
            run_id,
            replayed_from: original.to_string(),
        };
        Ok((created, true))
    }

    async fn replay(&self, req: &Request, original: &str) -> ApiResult<Response> {
        let key = Self::idempotency_key(req)?;
        // Synchronous from here to the insert, so two concurrent calls with
        // one Idempotency-Key create one replay.
        let cfg = self.live_config()?;
        let now = now();
        let (created, new) = self.replay_one(&cfg, original, key.as_deref(), now)?;
        if new {
            let alarm = self.schedule_alarm(now.millis() + FIRST_CHECK_MS)?;
            Self::await_alarm(alarm).await?;
            self.enqueue(&cfg, std::slice::from_ref(&created.run_id), 0)
                .await;
        }
        Ok(http::json(201, &created))
    }

    async fn bulk_replay(&self, req: &mut Request) -> ApiResult<Response> {
        let key = Self::idempotency_key(req)?;
        let filter: BulkReplay = http::json_body(req).await?;
        let field_error = |field: &'static str, message: String| ApiError::BadRequest {
            code: "invalid_request",
            message,
            field: Some(field),
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
        // Synchronous from the selection to the last insert.
        let cfg = self.live_config()?;
        let now = now();
        let ids = self.ledger().replay_candidates(
            status,
            after,
            before,
            filter.event_type.as_deref(),
            limit,
        )?;
        let mut replayed = Vec::with_capacity(ids.len());
        let mut new_runs = Vec::new();
        for id in &ids {
            let (created, new) = self.replay_one(&cfg, id, key.as_deref(), now)?;
            if new {
                new_runs.push(created.run_id.clone());
            }
            replayed.push(created);
        }
        if !new_runs.is_empty() {
            let alarm = self.schedule_alarm(now.millis() + FIRST_CHECK_MS)?;
            Self::await_alarm(alarm).await?;
            self.enqueue(&cfg, &new_runs, 0).await;
        }
        Ok(http::json(
            200,
            &json!({"count": replayed.len(), "replayed": replayed}),
        ))
    }

    // ---- runs ----------------------------------------------------------

    async fn claim(&self, run_id: &str) -> ApiResult<Response> {
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
        let answer = match run::claim(&state, now, lease) {
            run::Claim::Dispatch {
                attempt,
                lease_until,
            } => {
                ledger.claim_run(run_id, attempt, lease_until, now)?;
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
            run::Claim::Done | run::Claim::InFlight => ClaimAnswer::Drop,
        };
        Ok(http::bytes(
            200,
            "application/octet-stream",
            wire::frame(&answer, &[])?,
        ))
    }

    async fn report(&self, req: &mut Request, run_id: &str) -> ApiResult<Response> {
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
                self.enqueue(&cfg, &[run_id.to_string()], delay_seconds)
                    .await;
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
    async fn dead_letter(&self, trigger_id: &str, run_id: &str, delivery_id: &str, attempts: u32) {
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
            Err(e) => console_error!("dead-letter send failed, the alarm will retry: {e}"),
        }
    }

    // ---- alarm ---------------------------------------------------------

    async fn on_alarm(&self) -> ApiResult<()> {
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
        } else if !stale.is_empty() {
            let ids: Vec<String> = stale.iter().map(|r| r.id.clone()).collect();
            self.enqueue(&cfg, &ids, 0).await;
        }

        for r in ledger.dlq_pending(100)? {
            self.dead_letter(&cfg.id, &r.id, &r.delivery_id, r.attempts.max(0) as u32)
                .await;
        }

        let cutoff = cfg.retention_cutoff(now);
        for _ in 0..10 {
            if ledger.enforce_retention(cutoff, 200)? < 200 {
                break;
            }
        }

        let next = match ledger.next_run_check(GRACE_MS)? {
            Some(due) => Some((due + 500).max(now.millis() + 1000)),
            None if ledger.registry_dirty()? => Some(now.millis() + 30_000),
            None if ledger.has_deliveries()? => Some(now.millis() + RETENTION_INTERVAL_MS),
            None => None,
        };
        if let Some(at) = next {
            let alarm = self.schedule_alarm(at)?;
            Self::await_alarm(alarm).await?;
        }
        Ok(())
    }
}

fn parse_limit(url: &worker::Url, default: u32, max: u32) -> ApiResult<u32> {
    match http::query_param(url, "limit") {
        Some(l) if !l.is_empty() => l
            .parse::<u32>()
            .ok()
            .filter(|v| (1..=max).contains(v))
            .ok_or_else(|| ApiError::BadRequest {
                code: "invalid_request",
                message: format!("limit must be between 1 and {max}"),
                field: Some("limit"),
            }),
        _ => Ok(default),
    }
}

fn encode_cursor(received_at: i64, id: &str) -> String {
    edgehook_core::encoding::b64url(format!("{received_at}:{id}").as_bytes())
}

fn decode_cursor(cursor: &str) -> ApiResult<(i64, String)> {
    let bad = || ApiError::BadRequest {
        code: "invalid_request",
        message: "cursor is not valid".into(),
        field: Some("cursor"),
    };
    let raw = edgehook_core::encoding::b64url_decode(cursor).ok_or_else(bad)?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_string()))
}
