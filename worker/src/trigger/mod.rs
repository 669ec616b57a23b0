//! The Trigger Durable Object: one per trigger, the serialized dedupe and
//! delivery ledger. This file holds the object and its routing; each
//! concern has a module of its own.
//!
//! It answers the Worker's internal requests (see [`crate::wire`]): ingest
//! (by RPC too, see `rpc`),
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
use std::rc::Rc;

use edgehook_core::api::{DeliveryStatus, IngestAccepted, ReplayCreated, TriggerView};
use edgehook_core::id::{new_delivery_id, new_run_id};
use edgehook_core::ingest::{self as core_ingest, Decision, IgnoreReason, Inbound, Screening};
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

mod alarm;
mod ingest;
mod manage;
mod replay;
mod routes;
mod rpc;
mod runs;

use ingest::{Arrival, IngestBody, Outgoing};
use routes::CachedRoute;

use crate::error::{ApiError, ApiResult};
use crate::http::{self, now, random};
use crate::ledger::{Ledger, NewDelivery, Redaction};
use crate::wire::{self, ClaimAnswer, DeadLetter, Report, RunMessage};

/// The first alarm after a new run: late enough that a healthy consumer has
/// finished, soon enough that a lost message is re-sent within a minute.
const FIRST_CHECK_MS: i64 = (REENQUEUE_GRACE_SECONDS + 5) * 1000;
/// The re-enqueue grace in milliseconds.
const GRACE_MS: i64 = REENQUEUE_GRACE_SECONDS * 1000;
/// How long after a rejection or an ignored delivery the alarm first runs
/// retention (later runs follow `edgehook_core::alarm::next_alarm`).
const RETENTION_INTERVAL_MS: i64 = edgehook_core::alarm::RETENTION_INTERVAL_SECONDS * 1000;
/// Deliveries deleted per retention batch, and batches per alarm.
const RETENTION_BATCH: u32 = 200;
const RETENTION_BATCHES_PER_ALARM: u32 = 10;
/// How long an `Idempotency-Key` answers with the first call's result.
const IDEMPOTENCY_TTL_SECONDS: i64 = 86_400;
/// Most runs re-enqueued per alarm.
const REENQUEUE_BATCH: u32 = 500;
/// Body bytes one object reads at once. Ingests beyond it wait their turn
/// (the edge's stream waits with them, holding one chunk), so concurrent
/// 10 MiB bodies cannot add up past the isolate's 128 MB.
const MAX_INFLIGHT_BODY_BYTES: u64 = 16 * 1024 * 1024;
/// How often a waiting ingest looks again.
const BODY_PERMIT_POLL_MS: u64 = 5;

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
    /// Body bytes being read by ingests now (see `body_permit`).
    inflight_body_bytes: Cell<u64>,
    /// The routes in enqueue order, until one changes.
    routes: RefCell<Option<Rc<Vec<CachedRoute>>>>,
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
            inflight_body_bytes: Cell::new(0),
            routes: RefCell::new(None),
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
        // Header names this trigger adds to the redacted ones; before the
        // configuration is cached only the fixed lists apply, and nothing
        // that reads headers runs before it is.
        let redact = self
            .config
            .borrow()
            .as_ref()
            .map(Redaction::of)
            .unwrap_or_default();
        Ledger::new(self.state.storage().sql(), redact)
    }

    /// Migrates the schema and learns the current alarm, once per instance.
    async fn ensure_ready(&self) -> ApiResult<()> {
        if self.ready.get() {
            return Ok(());
        }
        self.ledger().migrate()?;
        self.upgrade_to_routes()?;
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
        let url = http::ReqUrl::of(&req);
        let path = url.path().to_string();
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = req.method();
        match (method, segs.as_slice()) {
            (Method::Post, ["ingest"]) => {
                let received_at = req
                    .headers()
                    .get(wire::RECEIVED_AT)
                    .ok()
                    .flatten()
                    .and_then(|v| v.parse().ok())
                    .map(Timestamp)
                    .unwrap_or_else(now);
                let arrival = Arrival {
                    headers: http::header_list(req.headers()),
                    received_at,
                    query: url.query(),
                };
                let answer = self.ingest(arrival, IngestBody::Stream(&mut req)).await;
                if answer.is_err() {
                    // The edge streams the body here: an answer given
                    // without reading it makes the runtime fail that stream
                    // outside any handler. Whatever is left is read and
                    // dropped (nothing, if the body was read already).
                    http::drain_body(&mut req).await;
                }
                answer
            }
            (Method::Put, ["trigger"]) => self.create(&mut req).await,
            (Method::Get, ["trigger"]) => {
                let cfg = self.live_config()?;
                self.view_response(200, &cfg, &Self::base_url(&req))
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
                let limit = edgehook_core::query::limit(
                    http::query_param(&url, "limit").as_deref(),
                    100,
                    1000,
                )?;
                let windows = self.ledger().rejection_windows(limit)?;
                Ok(http::json(200, &json!({"windows": windows})))
            }
            (Method::Get, ["changes"]) => self.changes(&url),
            (Method::Get, ["stats"]) => self.stats(&url),
            (Method::Post, ["routes"]) => self.create_route(&mut req).await,
            (Method::Get, ["routes"]) => self.list_routes(),
            (Method::Get, ["routes", id]) => self.get_route(id),
            (Method::Patch, ["routes", id]) => self.patch_route(&mut req, id).await,
            (Method::Delete, ["routes", id]) => self.delete_route(&req, id).await,
            (Method::Post, ["routes", id, "pause"]) => self.pause_route(&mut req, id).await,
            (Method::Post, ["routes", id, "resume"]) => self.resume_route(id).await,
            (Method::Post, ["filters", "test"]) => self.filter_test(&mut req).await,
            (Method::Get, ["runs", id]) => self.run_view(id),
            (Method::Post, ["runs", "claim"]) => {
                self.claim_batch(http::json_body(&mut req).await?).await
            }
            (Method::Post, ["runs", "report"]) => {
                self.report_batch(http::json_body(&mut req).await?).await
            }
            (Method::Post, ["runs", id, "claim"]) => self.claim(id).await,
            (Method::Post, ["runs", id, "report"]) => self.report(&mut req, id).await,
            _ => Err(ApiError::NotFound("route")),
        }
    }
}
