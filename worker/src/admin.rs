//! The management API: authentication, then a thin translation to the
//! Trigger object (or the registry) that owns the data.
//!
//! Every route needs `Authorization: Bearer
//! <ADMIN_TOKEN>`, compared in constant time; with no token configured the
//! API fails closed. Trigger ids are checked by MAC before any object is
//! touched, so an unknown id is a 404 without creating state. (`GET
//! /api/openapi.json` is a static file that the entry module,
//! `worker/entry.mjs`, serves before the Rust Worker runs.)

use edgehook_core::id::{
    is_issued_trigger_id, looks_like, mint_trigger_id, DELIVERY_PREFIX, ROUTE_PREFIX, RUN_PREFIX,
};
use edgehook_core::trigger::{TriggerConfig, TriggerCreate};
use worker::{console_error, Env, Headers, Method, Request, Response};

use crate::error::{ApiError, ApiResult};
use crate::http::{self, base_url, forwardable_headers, random};
use crate::{keys, wire};

fn authorize(req: &Request, env: &Env) -> ApiResult<()> {
    let Some(expected) = keys::admin_token(env) else {
        console_error!("ADMIN_TOKEN is not configured; the management API refuses every request");
        return Err(ApiError::Unauthorized);
    };
    let header = req
        .headers()
        .get("authorization")
        .ok()
        .flatten()
        .unwrap_or_default();
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    if token.is_empty() || !expected.matches(token.as_bytes()) {
        return Err(ApiError::Unauthorized);
    }
    Ok(())
}

/// Handles `/api/...`; `segs` is the path after `api`.
pub async fn handle(mut req: Request, env: &Env, segs: &[&str]) -> ApiResult<Response> {
    if segs == ["openapi.json"] {
        // The entry module serves the document to GET and HEAD
        // (worker/entry.mjs); any other method is no route, and answers
        // 404 before the token is checked, as it did when it was a static
        // asset.
        return Err(ApiError::NotFound("route"));
    }
    authorize(&req, env)?;
    let method = req.method();
    match segs {
        ["triggers"] => match method {
            Method::Get => list_triggers(&req, env).await,
            Method::Post => create_trigger(&mut req, env).await,
            _ => Err(ApiError::MethodNotAllowed("GET, POST")),
        },
        ["triggers", id, rest @ ..] => {
            let key = keys::trigger_id_key(env)?;
            if !is_issued_trigger_id(&key, id) {
                return Err(ApiError::NotFound("trigger"));
            }
            let path = match (rest, &method) {
                ([], Method::Get | Method::Patch | Method::Delete) => "/trigger".to_string(),
                ([], _) => return Err(ApiError::MethodNotAllowed("GET, PATCH, DELETE")),
                (["signing-secret"], Method::Put) => "/trigger/signing-secret".to_string(),
                (["signing-secret"], _) => return Err(ApiError::MethodNotAllowed("PUT")),
                (["deliveries"], Method::Get) => "/deliveries".to_string(),
                (["deliveries"], _) => return Err(ApiError::MethodNotAllowed("GET")),
                (["deliveries", d], Method::Get) => delivery_path(d, "")?,
                (["deliveries", _], _) => return Err(ApiError::MethodNotAllowed("GET")),
                (["deliveries", d, "replay"], Method::Post) => delivery_path(d, "/replay")?,
                (["deliveries", _, "replay"], _) => return Err(ApiError::MethodNotAllowed("POST")),
                (["changes"], Method::Get) => "/changes".to_string(),
                (["changes"], _) => return Err(ApiError::MethodNotAllowed("GET")),
                (["stats"], Method::Get) => "/stats".to_string(),
                (["stats"], _) => return Err(ApiError::MethodNotAllowed("GET")),
                (["replay"], Method::Post) => "/replay".to_string(),
                (["replay"], _) => return Err(ApiError::MethodNotAllowed("POST")),
                (["routes"], Method::Get | Method::Post) => "/routes".to_string(),
                (["routes"], _) => return Err(ApiError::MethodNotAllowed("GET, POST")),
                (["routes", r], Method::Get | Method::Patch | Method::Delete) => route_path(r, "")?,
                (["routes", _], _) => return Err(ApiError::MethodNotAllowed("GET, PATCH, DELETE")),
                (["routes", r, action @ ("pause" | "resume")], Method::Post) => {
                    route_path(r, &format!("/{action}"))?
                }
                (["routes", _, "pause" | "resume"], _) => {
                    return Err(ApiError::MethodNotAllowed("POST"))
                }
                (["filters", "test"], Method::Post) => "/filters/test".to_string(),
                (["filters", "test"], _) => return Err(ApiError::MethodNotAllowed("POST")),
                (["runs", r], Method::Get) => {
                    if !looks_like(RUN_PREFIX, r) {
                        return Err(ApiError::NotFound("run"));
                    }
                    format!("/runs/{r}")
                }
                (["runs", _], _) => return Err(ApiError::MethodNotAllowed("GET")),
                (["rejections"], Method::Get) => "/rejections".to_string(),
                (["rejections"], _) => return Err(ApiError::MethodNotAllowed("GET")),
                _ => return Err(ApiError::NotFound("route")),
            };
            forward(&mut req, env, id, method, &path).await
        }
        _ => Err(ApiError::NotFound("route")),
    }
}

fn route_path(route_id: &str, suffix: &str) -> ApiResult<String> {
    if !looks_like(ROUTE_PREFIX, route_id) {
        return Err(ApiError::NotFound("route"));
    }
    Ok(format!("/routes/{route_id}{suffix}"))
}

fn delivery_path(delivery_id: &str, suffix: &str) -> ApiResult<String> {
    if !looks_like(DELIVERY_PREFIX, delivery_id) {
        return Err(ApiError::NotFound("delivery"));
    }
    Ok(format!("/deliveries/{delivery_id}{suffix}"))
}

async fn forward(
    req: &mut Request,
    env: &Env,
    id: &str,
    method: Method,
    path: &str,
) -> ApiResult<Response> {
    let url = http::ReqUrl::of(req);
    let path_and_query = match url.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let body = match method {
        Method::Post | Method::Put | Method::Patch => {
            Some(http::read_body_limited(req, 64 * 1024).await?)
        }
        _ => None,
    };
    let headers = forwardable_headers(req);
    headers.set(wire::BASE_URL, &base_url(req, env))?;
    let stub = wire::trigger_stub(env, id)?;
    wire::call(&stub, method, &path_and_query, headers, body.as_deref()).await
}

async fn create_trigger(req: &mut Request, env: &Env) -> ApiResult<Response> {
    let create: TriggerCreate = http::json_body(req).await?;
    let key = keys::trigger_id_key(env)?;
    let id = mint_trigger_id(&key, random::<10>()?);
    let cfg = TriggerConfig::create(id.clone(), create, http::now(), &http::RuntimeUrl)?;
    let body = serde_json::to_vec(&cfg).map_err(|e| ApiError::internal("config json", e))?;
    let headers = Headers::new();
    headers.set(wire::BASE_URL, &base_url(req, env))?;
    let stub = wire::trigger_stub(env, &id)?;
    wire::call(&stub, Method::Put, "/trigger", headers, Some(&body)).await
}

async fn list_triggers(req: &Request, env: &Env) -> ApiResult<Response> {
    let url = http::ReqUrl::of(req);
    let path_and_query = match url.query() {
        Some(q) => format!("/triggers?{q}"),
        None => "/triggers".to_string(),
    };
    // The registry writes each ingress URL with this request's origin (or
    // PUBLIC_BASE_URL), so its answer goes back as it is: parsing the list
    // here took a JSON reader of its own, 29 KB of the Wasm.
    let headers = Headers::new();
    headers.set(wire::BASE_URL, &base_url(req, env))?;
    let stub = wire::registry_stub(env)?;
    wire::call(&stub, Method::Get, &path_and_query, headers, None).await
}
