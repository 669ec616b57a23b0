//! Routes: their management API, the fan-out of a delivery into runs, pause
//! and resume, filter backtests, the run view, and the trigger's
//! `target_url` kept as its first route.

#[allow(clippy::wildcard_imports)]
use super::*;
use edgehook_core::api::{FilterTest, FilterTestResult, RouteView};
use edgehook_core::filter::{Filter, FilterInput};
use edgehook_core::id::new_route_id;
use edgehook_core::provider::EventType;
use edgehook_core::route::{self, RouteConfig, RouteCreate, RoutePatch, MAX_ROUTES};

use crate::ledger::NewRun;

/// A route as ingest needs it, cached in memory until a route changes.
pub(super) struct CachedRoute {
    pub config: RouteConfig,
    pub paused: bool,
}

/// Runs enqueued at once when a route resumes; the alarm sends the rest.
const RESUME_ENQUEUE_MAX: usize = 1000;
/// Filter backtests read at most this many body bytes.
const BACKTEST_MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;
/// The `name` of the route made from a trigger's `target_url`.
const DEFAULT_ROUTE_NAME: &str = "default";

/// The path (and query) a delivery arrived on, as filters see it.
fn ingress_path(trigger_id: &str, query: Option<&str>) -> String {
    match query {
        Some(q) if !q.is_empty() => format!("/hooks/{trigger_id}?{q}"),
        _ => format!("/hooks/{trigger_id}"),
    }
}

impl Trigger {
    /// A route's configuration from the cache (parsed and its filter
    /// compiled once, not on every claim and report).
    pub(super) fn cached_route(&self, id: &str) -> ApiResult<Option<RouteConfig>> {
        Ok(self
            .routes()?
            .iter()
            .find(|r| r.config.id == id)
            .map(|r| r.config.clone()))
    }

    /// The trigger's routes in enqueue order, from the cache.
    pub(super) fn routes(&self) -> ApiResult<Rc<Vec<CachedRoute>>> {
        if let Some(r) = self.routes.borrow().as_ref() {
            return Ok(r.clone());
        }
        let mut rows = Vec::new();
        for row in self.ledger().routes()? {
            rows.push(CachedRoute {
                config: row.config()?,
                paused: row.paused(),
            });
        }
        route::sort_in_enqueue_order(&mut rows, |r| &r.config);
        let rc = Rc::new(rows);
        self.routes.replace(Some(rc.clone()));
        Ok(rc)
    }

    pub(super) fn forget_routes(&self) {
        self.routes.replace(None);
    }

    /// The runs an admitted delivery gets: one per matching enabled route
    /// (held if the route is paused), in enqueue order; one run with no
    /// route for a trigger without routes; `None` when the trigger has
    /// routes and none matches.
    pub(super) fn plan_runs(
        &self,
        cfg: &TriggerConfig,
        event: &EventType,
        headers: &edgehook_core::HeaderList,
        body: &[u8],
        query: Option<&str>,
        now: Timestamp,
    ) -> ApiResult<Option<Vec<NewRun>>> {
        let routes = self.routes()?;
        if routes.is_empty() {
            return Ok(Some(vec![NewRun {
                id: new_run_id(now, random::<10>()?),
                route_id: None,
                held: false,
            }]));
        }
        let path = ingress_path(&cfg.id, query);
        let selected = route::select(routes.iter().map(|r| &r.config), event, || {
            FilterInput::new(headers, body, &path)
        });
        if selected.is_empty() {
            return Ok(None);
        }
        let mut runs = Vec::with_capacity(selected.len());
        for r in selected {
            let paused = routes.iter().any(|c| c.config.id == r.id && c.paused);
            runs.push(NewRun {
                id: new_run_id(now, random::<10>()?),
                route_id: Some(r.id.clone()),
                held: paused,
            });
        }
        Ok(Some(runs))
    }

    fn route_view(&self, cfg: &TriggerConfig, id: &str) -> ApiResult<RouteView> {
        let ledger = self.ledger();
        let row = ledger.route(id)?.ok_or(ApiError::NotFound("route"))?;
        let state = ledger.route_state(&row)?;
        Ok(RouteView::of(&cfg.id, &row.config()?, &state))
    }

    pub(super) async fn create_route(&self, req: &mut Request) -> ApiResult<Response> {
        let create: RouteCreate = http::json_body(req).await?;
        let cfg = self.live_config()?;
        let ledger = self.ledger();
        if ledger.route_count()? >= MAX_ROUTES {
            return Err(ApiError::Conflict {
                code: "too_many_routes",
                message: format!("a trigger has at most {MAX_ROUTES} routes"),
            });
        }
        let now = now();
        let route = RouteConfig::create(
            new_route_id(now, random::<10>()?),
            create,
            &cfg,
            now,
            &http::RuntimeUrl,
        )?;
        ledger.put_route(&route)?;
        self.forget_routes();
        Ok(http::json(201, &self.route_view(&cfg, &route.id)?))
    }

    pub(super) fn list_routes(&self) -> ApiResult<Response> {
        let cfg = self.live_config()?;
        let mut views = Vec::new();
        for r in self.routes()?.iter() {
            views.push(self.route_view(&cfg, &r.config.id)?);
        }
        Ok(http::json(200, &json!({ "routes": views })))
    }

    pub(super) fn get_route(&self, id: &str) -> ApiResult<Response> {
        let cfg = self.live_config()?;
        Ok(http::json(200, &self.route_view(&cfg, id)?))
    }

    pub(super) async fn patch_route(&self, req: &mut Request, id: &str) -> ApiResult<Response> {
        let patch: RoutePatch = http::json_body(req).await?;
        let mut cfg = self.live_config()?;
        let ledger = self.ledger();
        let row = ledger.route(id)?.ok_or(ApiError::NotFound("route"))?;
        let mut route = row.config()?;
        let now = now();
        route.apply(patch, now, &http::RuntimeUrl)?;
        ledger.put_route(&route)?;
        self.forget_routes();
        // The trigger's old fields show its first route.
        if ledger.default_route_id()?.as_deref() == Some(id) {
            cfg.target_url = Some(route.target_url.clone());
            cfg.max_attempts = route.max_attempts;
            cfg.retry_base_seconds = route.retry_base_seconds;
            cfg.target_timeout_seconds = route.target_timeout_seconds;
            cfg.touch(now);
            self.store_config(&cfg)?;
            self.sync_registry(&cfg, &Self::base_url(req), None).await;
        }
        Ok(http::json(200, &self.route_view(&cfg, id)?))
    }

    /// Deletes a route; its open runs fail ("route deleted") and are
    /// dead-lettered.
    pub(super) async fn delete_route(&self, req: &Request, id: &str) -> ApiResult<Response> {
        let mut cfg = self.live_config()?;
        let ledger = self.ledger();
        ledger.route(id)?.ok_or(ApiError::NotFound("route"))?;
        let now = now();
        let failed = self.remove_route(id, now)?;
        if ledger.default_route_id()?.as_deref() == Some(id) {
            ledger.set_default_route_id(None)?;
            cfg.target_url = None;
            cfg.touch(now);
            self.store_config(&cfg)?;
            self.sync_registry(&cfg, &Self::base_url(req), None).await;
        }
        self.dead_letter_all(&cfg, &failed).await?;
        Ok(http::bytes(204, "application/json", Vec::new()))
    }

    /// Deletes a route and fails its open runs (synchronous); returns them.
    fn remove_route(&self, id: &str, now: Timestamp) -> ApiResult<Vec<crate::ledger::RunRow>> {
        let ledger = self.ledger();
        let failed = ledger.fail_route_runs(id, "route deleted", now)?;
        ledger.delete_route(id)?;
        self.forget_routes();
        Ok(failed)
    }

    pub(super) async fn dead_letter_all(
        &self,
        cfg: &TriggerConfig,
        runs: &[crate::ledger::RunRow],
    ) -> ApiResult<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let alarm = self.schedule_alarm(now().millis() + FIRST_CHECK_MS)?;
        Self::await_alarm(alarm).await?;
        for r in runs {
            self.dead_letter(&cfg.id, &r.id, &r.delivery_id, r.attempts.max(0) as u32)
                .await;
        }
        Ok(())
    }

    pub(super) async fn pause_route(&self, req: &mut Request, id: &str) -> ApiResult<Response> {
        #[derive(serde::Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct Pause {
            reason: Option<String>,
        }
        let raw = http::read_body_limited(req, 16 * 1024).await?;
        let body: Pause = if raw.iter().all(u8::is_ascii_whitespace) {
            Pause::default()
        } else {
            http::parse_json(&raw)?
        };
        let reason = match body.reason {
            Some(r) if r.chars().count() > 500 || r.chars().any(char::is_control) => {
                return Err(ApiError::BadRequest {
                    code: "invalid_request",
                    message: "reason: at most 500 printable characters".into(),
                    field: Some("reason".into()),
                })
            }
            Some(r) if !r.trim().is_empty() => r.trim().to_string(),
            _ => "paused by an operator".to_string(),
        };
        let cfg = self.live_config()?;
        let ledger = self.ledger();
        ledger.route(id)?.ok_or(ApiError::NotFound("route"))?;
        ledger.pause_route(id, &reason, now())?;
        self.forget_routes();
        Ok(http::json(200, &self.route_view(&cfg, id)?))
    }

    pub(super) async fn resume_route(&self, id: &str) -> ApiResult<Response> {
        let cfg = self.live_config()?;
        self.ledger()
            .route(id)?
            .ok_or(ApiError::NotFound("route"))?;
        self.release_route(&cfg, id, true).await?;
        Ok(http::json(200, &self.route_view(&cfg, id)?))
    }

    /// Resumes a route and sends its held runs, in receive order (the
    /// alarm sends whatever is beyond the cap). `by_operator` also forgets
    /// the breaker's trips; the breaker's own retry keeps them.
    pub(super) async fn release_route(
        &self,
        cfg: &TriggerConfig,
        id: &str,
        by_operator: bool,
    ) -> ApiResult<()> {
        let now = now();
        let released = self.ledger().resume_route(id, by_operator, now)?;
        self.forget_routes();
        if !released.is_empty() {
            let alarm = self.schedule_alarm(now.millis() + FIRST_CHECK_MS)?;
            Self::await_alarm(alarm).await?;
            let out: Vec<Outgoing> = released
                .iter()
                .take(RESUME_ENQUEUE_MAX)
                .map(Outgoing::of)
                .collect();
            self.enqueue(cfg, &out, 0).await;
        }
        Ok(())
    }

    /// Evaluates a filter against stored deliveries, newest first.
    pub(super) async fn filter_test(&self, req: &mut Request) -> ApiResult<Response> {
        let test: FilterTest = http::json_body(req).await?;
        let field = |f: &'static str, m: String| ApiError::BadRequest {
            code: "invalid_request",
            message: m,
            field: Some(f.into()),
        };
        let filter = Filter::parse(&test.filter).map_err(edgehook_core::ConfigError::from)?;
        let event_types = test
            .event_types
            .map(edgehook_core::trigger::check_event_types)
            .transpose()?
            .unwrap_or_default();
        let limit = test.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(field("limit", "limit: between 1 and 1000".into()));
        }
        let time = |f: &'static str, v: &Option<String>| -> ApiResult<Option<Timestamp>> {
            v.as_deref()
                .map(|t| {
                    Timestamp::parse(t).ok_or_else(|| field(f, format!("{f}: an RFC 3339 time")))
                })
                .transpose()
        };
        let after = time("received_after", &test.received_after)?;
        let before = time("received_before", &test.received_before)?;
        let cfg = self.live_config()?;
        let ledger = self.ledger();
        let mut result = FilterTestResult {
            matched: 0,
            evaluated: 0,
            delivery_ids: Vec::new(),
        };
        let mut read = 0u64;
        for c in ledger.filter_candidates(after, before, limit)? {
            let body = ledger.body(&c.id)?;
            read += body.len() as u64;
            if read > BACKTEST_MAX_BODY_BYTES && result.evaluated > 0 {
                break;
            }
            let headers = ledger.stored_headers(&c.headers)?;
            let event = route::stored_event(&cfg, &headers, &body);
            let path = ingress_path(&cfg.id, c.query.as_deref());
            result.evaluated += 1;
            let passes = edgehook_core::provider::event_passes(&event_types, &event)
                && filter.matches(&FilterInput::new(&headers, &body, &path));
            if passes {
                result.matched += 1;
                result.delivery_ids.push(c.id);
            }
        }
        Ok(http::json(200, &result))
    }

    pub(super) fn run_view(&self, run_id: &str) -> ApiResult<Response> {
        self.live_config()?;
        let run = self
            .ledger()
            .run_detail(run_id)?
            .ok_or(ApiError::NotFound("run"))?;
        Ok(http::json(200, &run))
    }

    /// Keeps the trigger's `target_url` (and its retry settings) as its
    /// first route: created when it is set, updated when it changes,
    /// deleted when it is cleared. Returns runs failed by a deletion.
    pub(super) fn sync_default_route(
        &self,
        cfg: &TriggerConfig,
    ) -> ApiResult<Vec<crate::ledger::RunRow>> {
        let ledger = self.ledger();
        let existing = match ledger.default_route_id()? {
            Some(id) => ledger.route(&id)?,
            None => None,
        };
        let now = now();
        match (&cfg.target_url, existing) {
            (Some(url), Some(row)) => {
                let mut route = row.config()?;
                let wanted = (
                    url.clone(),
                    cfg.max_attempts,
                    cfg.retry_base_seconds,
                    cfg.target_timeout_seconds,
                );
                let have = (
                    route.target_url.clone(),
                    route.max_attempts,
                    route.retry_base_seconds,
                    route.target_timeout_seconds,
                );
                if wanted != have {
                    route.target_url = url.clone();
                    route.max_attempts = cfg.max_attempts;
                    route.retry_base_seconds = cfg.retry_base_seconds;
                    route.target_timeout_seconds = cfg.target_timeout_seconds;
                    route.updated_at = now.max(route.updated_at.plus_millis(1));
                    ledger.put_route(&route)?;
                    self.forget_routes();
                }
                Ok(Vec::new())
            }
            (Some(url), None) => {
                let create = RouteCreate {
                    name: Some(DEFAULT_ROUTE_NAME.into()),
                    target_url: Some(url.clone()),
                    ..RouteCreate::default()
                };
                let route = RouteConfig::create(
                    new_route_id(now, random::<10>()?),
                    create,
                    cfg,
                    now,
                    &http::RuntimeUrl,
                )?;
                ledger.put_route(&route)?;
                ledger.set_default_route_id(Some(&route.id))?;
                self.forget_routes();
                Ok(Vec::new())
            }
            (None, Some(row)) => {
                let failed = self.remove_route(&row.id, now)?;
                ledger.set_default_route_id(None)?;
                Ok(failed)
            }
            (None, None) => Ok(Vec::new()),
        }
    }

    /// Upgrades a ledger written before routes, once: its `target_url`
    /// becomes its first route, which takes over its runs.
    pub(super) fn upgrade_to_routes(&self) -> ApiResult<()> {
        let ledger = self.ledger();
        if ledger.routes_upgraded()? {
            return Ok(());
        }
        if let Some(cfg) = self.config()? {
            self.sync_default_route(&cfg)?;
            if let Some(id) = ledger.default_route_id()? {
                ledger.adopt_routeless_runs(&id)?;
            }
        }
        ledger.set_routes_upgraded()
    }
}
