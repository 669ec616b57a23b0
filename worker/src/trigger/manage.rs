//! Trigger configuration (create, patch, rotate, delete), the registry copy,
//! and the management reads (delivery lists, the change feed).

#[allow(clippy::wildcard_imports)]
use super::*;
use edgehook_core::api::ChangePage;
use edgehook_core::encoding::b64;
use edgehook_core::query;

impl Trigger {
    pub(super) async fn create(&self, req: &mut Request) -> ApiResult<Response> {
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
        self.sync_default_route(&cfg)?;
        let base = Self::base_url(req);
        self.sync_registry(&cfg, &base, None).await;
        self.view_response(201, &cfg, &base)
    }

    pub(super) async fn patch(&self, req: &mut Request) -> ApiResult<Response> {
        let patch: TriggerPatch = http::json_body(req).await?;
        let mut cfg = self.live_config()?;
        cfg.apply(patch, now(), &http::RuntimeUrl)?;
        self.store_config(&cfg)?;
        // `target_url` and its retry settings are the first route's.
        let failed = self.sync_default_route(&cfg)?;
        let base = Self::base_url(req);
        self.sync_registry(&cfg, &base, None).await;
        self.dead_letter_all(&cfg, &failed).await?;
        self.view_response(200, &cfg, &base)
    }

    pub(super) async fn rotate(&self, req: &mut Request) -> ApiResult<Response> {
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
        self.view_response(200, &cfg, &base)
    }

    pub(super) async fn delete(&self, req: &Request) -> ApiResult<Response> {
        let mut cfg = self.live_config()?;
        let now = now();
        // A deletion is a change like any other: the registry and PostgreSQL
        // take the newest `updated_at`, so it must move forward.
        cfg.touch(now);
        self.store_config(&cfg)?;
        self.ledger().mark_deleted(now)?;
        self.deleted.set(Some(true));
        self.sync_registry(&cfg, &Self::base_url(req), Some(now))
            .await;
        Ok(http::bytes(204, "application/json", Vec::new()))
    }

    /// The trigger's view with its current storage use.
    pub(super) fn view_response(
        &self,
        status: u16,
        cfg: &TriggerConfig,
        base: &str,
    ) -> ApiResult<Response> {
        let mut view = TriggerView::of(cfg, base);
        view.storage_used_bytes = Some(self.ledger().stored_bytes()?);
        Ok(http::json(status, &view))
    }

    /// Pushes this trigger's view to the registry; on failure, marks it owed
    /// and lets the alarm retry.
    pub(super) async fn sync_registry(
        &self,
        cfg: &TriggerConfig,
        base: &str,
        deleted_at: Option<Timestamp>,
    ) {
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

    pub(super) fn list(&self, url: &http::ReqUrl) -> ApiResult<Response> {
        let cfg = self.live_config()?;
        let param = |name| http::query_param(url, name);
        let event_type = param("event_type");
        let filter = crate::ledger::ListFilter {
            status: query::status(param("status").as_deref())?,
            event_type: event_type.as_deref(),
            received_after: query::time("received_after", param("received_after").as_deref())?,
            received_before: query::time("received_before", param("received_before").as_deref())?,
        };
        let limit = query::limit(param("limit").as_deref(), 50, 200)?;
        let before = query::delivery_cursor(param("cursor").as_deref())?;
        let page = self.ledger().list(&cfg.id, &filter, before, limit + 1)?;
        let more = page.len() > limit as usize;
        let mut deliveries: Vec<_> = page.into_iter().take(limit as usize).collect();
        let next_cursor = if more {
            deliveries
                .last()
                .map(|(d, at)| query::encode_delivery_cursor(*at, &d.delivery_id))
        } else {
            None
        };
        let deliveries: Vec<_> = deliveries.drain(..).map(|(d, _)| d).collect();
        Ok(http::json(
            200,
            &json!({"deliveries": deliveries, "next_cursor": next_cursor}),
        ))
    }

    /// `GET /changes?after=&limit=&format=`: the page as JSON (bodies in
    /// base64), or with `format=frames` as frames (`core::frames`: bodies
    /// as bytes), which is what the backfill asks for.
    pub(super) fn changes(&self, url: &http::ReqUrl) -> ApiResult<Response> {
        // The backfill reads a deleted trigger's feed too, to finish its history.
        let cfg = self.config()?.ok_or(ApiError::NotFound("trigger"))?;
        let after = query::after(http::query_param(url, "after").as_deref())?;
        let limit = query::limit(http::query_param(url, "limit").as_deref(), 100, 1000)?;
        let framed = match http::query_param(url, "format").as_deref() {
            None | Some("json") => false,
            Some("frames") => true,
            Some(_) => return Err(ApiError::bad_request("format must be json or frames")),
        };
        let (changes, has_more) =
            self.ledger()
                .changes(&cfg.id, after, limit, CHANGES_MAX_BYTES)?;
        let next_after = changes.last().map_or(after, |(c, _)| c.seq);
        if framed {
            let body = edgehook_core::frames::encode(&changes, next_after, has_more);
            return Ok(http::bytes(200, edgehook_core::frames::CONTENT_TYPE, body));
        }
        let changes = changes
            .into_iter()
            .map(|(mut c, body)| {
                c.delivery.raw_body = Some(b64(&body));
                c
            })
            .collect();
        // Serialized straight from the page, not through a `json!` value
        // tree: building and dropping that tree was a fifth of the feed's
        // CPU profile.
        Ok(http::json(
            200,
            &ChangePage {
                changes,
                next_after,
                has_more,
            },
        ))
    }

    /// `GET /stats?hours=&buckets=`: deliveries per bucket by status and
    /// dispatch latency percentiles over the window (`core::stats`).
    pub(super) fn stats(&self, url: &http::ReqUrl) -> ApiResult<Response> {
        self.live_config()?;
        let window = edgehook_core::stats::Window::parse(
            now(),
            http::query_param(url, "hours").as_deref(),
            http::query_param(url, "buckets").as_deref(),
        )?;
        let ledger = self.ledger();
        let counts = ledger.stats_counts(&window)?;
        let samples =
            ledger.dispatch_latencies(&window, edgehook_core::stats::MAX_LATENCY_SAMPLES)?;
        let seq = ledger.current_seq()?;
        Ok(http::json(
            200,
            &edgehook_core::stats::Stats::build(&window, counts, samples, seq),
        ))
    }
}
