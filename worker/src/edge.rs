//! The stateless edge: routing and the checks that need no storage.
//!
//! Ingress (`POST /hooks/{trigger_id}`) checks here, in this order: the trigger
//! id's MAC (a forged id is a 404 and never reaches a Durable Object), the
//! method, the client-IP limit, and a declared `Content-Length` against the
//! hard limit. The body is then streamed to the trigger's object unread: the
//! edge never buffers it, and the object applies the trigger's rate limits and
//! its own body limit before reading any of it. Everything that depends on the
//! trigger (its limits, signature, dedupe) happens in its object.

use edgehook_core::id::is_issued_trigger_id;
use edgehook_core::trigger::MAX_BODY_BYTES_LIMIT;
use serde_json::json;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys, Env, Headers, Method, Request, Response};

use crate::error::{ApiError, ApiResult};
use crate::http::{self, forwardable_headers, SMALL_BODY_BYTES};
use crate::{admin, keys, wire};

/// Handles one request to the Worker.
///
/// It takes the runtime's request as it is: making a `worker::Request` of it
/// reads the request's `cf` object, which the runtime builds anew on each
/// read (45 µs of every request in a profile of the ingest load) and which
/// nothing here uses. Ingress reads the method, headers and body straight
/// from the runtime's request; every other path converts it.
pub async fn handle(req: web_sys::Request, env: Env) -> ApiResult<Response> {
    let url = req.url();
    let (path, query) = http::split_url(&url);
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["hooks", id] => ingress(req, &env, id, query).await,
        ["hooks", ..] => Err(ApiError::NotFound("trigger")),
        ["api", rest @ ..] => admin::handle(Request::from(req), &env, rest).await,
        [""] | ["healthz"] => Ok(http::json(200, &json!({"ok": true, "service": "edgehook"}))),
        _ => Err(ApiError::NotFound("route")),
    }
}

/// The binding that limits each client IP across all triggers.
const IP_LIMITER: &str = "INGRESS_IP_LIMITER";
/// The binding's period: a refused client waits at most this long.
const IP_LIMITER_PERIOD_SECONDS: u32 = 10;

/// Applies the edge-wide per-IP limit. If the binding is absent or fails, the
/// request goes on: the trigger's own limits still apply, and a limiter
/// outage must not drop genuine webhooks.
async fn limit_client_ip(headers: &Headers, env: &Env) -> ApiResult<()> {
    let Ok(limiter) = env.rate_limiter(IP_LIMITER) else {
        return Ok(());
    };
    let ip = headers
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .unwrap_or_else(|| "unknown".into());
    match limiter.limit(format!("ingress:{ip}")).await {
        Ok(outcome) if !outcome.success => Err(ApiError::RateLimited {
            scope: "client_ip",
            retry_after: IP_LIMITER_PERIOD_SECONDS,
        }),
        Ok(_) => Ok(()),
        Err(e) => {
            worker::console_warn!("ip rate limiter unavailable: {e}");
            Ok(())
        }
    }
}

async fn ingress(
    req: web_sys::Request,
    env: &Env,
    id: &str,
    query: Option<&str>,
) -> ApiResult<Response> {
    let key = keys::trigger_id_key(env)?;
    if !is_issued_trigger_id(&key, id) {
        return Err(ApiError::NotFound("trigger"));
    }
    if req.method() != "POST" {
        return Err(ApiError::MethodNotAllowed("POST"));
    }
    let received_at = http::now();
    let client_headers = Headers(req.headers());
    limit_client_ip(&client_headers, env).await?;
    let declared = http::check_declared_length(&client_headers, MAX_BODY_BYTES_LIMIT)?;
    // A small body with a declared length is read whole by the runtime and
    // handed on by RPC as it is: HTTP framing bounds it by the declared
    // length, and it never passes through Wasm (the pump below copies each
    // chunk in and out). At most `MAX_BUFFERED_BYTES` of such bodies are
    // held by this isolate at once, so a flood of concurrent small requests
    // cannot exhaust its memory: past that, they are streamed like the rest.
    let small = declared.filter(|n| *n <= SMALL_BODY_BYTES);
    if let Some(_permit) = small.and_then(BufferPermit::take) {
        let read = req
            .array_buffer()
            .map_err(|e| ApiError::internal("read body", format!("{e:?}")))?;
        let body = JsFuture::from(http::handled(read))
            .await
            .map_err(|_| ApiError::bad_request("the request body ended early"))?;
        // The headers as `[name, value]` pairs, made and serialized by the
        // runtime in two calls rather than copied one by one.
        let pairs = js_sys::Array::from(client_headers.0.as_ref());
        let headers = js_sys::JSON::stringify(&pairs)
            .map_err(|e| ApiError::internal("headers json", format!("{e:?}")))?;
        let rpc = wire::trigger_rpc(env, id)?;
        return wire::ingest_by_rpc(&rpc, &headers, &body, query, received_at).await;
    }
    // A large or unframed body is streamed to the object.
    let mut req = Request::from(req);
    let stub = wire::trigger_stub(env, id)?;
    let headers = forwardable_headers(&req);
    headers.set(wire::RECEIVED_AT, &received_at.millis().to_string())?;
    // The query string goes along: route filters may match on it.
    let path = match query {
        Some(q) if !q.is_empty() => format!("/ingest?{q}"),
        _ => "/ingest".to_string(),
    };
    wire::call_with_streamed_body(
        &stub,
        Method::Post,
        &path,
        headers,
        &mut req,
        MAX_BODY_BYTES_LIMIT,
    )
    .await
}

/// Most bytes of small bodies one isolate holds at once.
const MAX_BUFFERED_BYTES: u64 = 8 * 1024 * 1024;

thread_local! {
    /// Bytes of small bodies this isolate holds now (an isolate runs one
    /// thread, so this counts every request it is serving).
    static BUFFERED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A share of `MAX_BUFFERED_BYTES`, given back when dropped (after the
/// object has answered, when the body is no longer held).
struct BufferPermit(u64);

impl BufferPermit {
    fn take(bytes: u64) -> Option<BufferPermit> {
        BUFFERED.with(|b| {
            let now = b.get();
            (now + bytes <= MAX_BUFFERED_BYTES).then(|| {
                b.set(now + bytes);
                BufferPermit(bytes)
            })
        })
    }
}

impl Drop for BufferPermit {
    fn drop(&mut self) {
        BUFFERED.with(|b| b.set(b.get().saturating_sub(self.0)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_url_gives_what_url_gives() {
        for url in [
            "https://edge.example/hooks/trg_1",
            "https://edge.example/hooks/trg_1?x=1&y=%20",
            "https://edge.example/hooks/trg_1?",
            "https://edge.example/",
            "https://edge.example/?q",
            "http://127.0.0.1:8787/api/triggers/a%2Fb?limit=5#frag",
            "https://edge.example/a/b#frag?not=query",
            "https://user:pw@edge.example:8443/p/%3F?q=%23",
        ] {
            let parsed = worker::Url::parse(url).expect("a URL");
            assert_eq!(
                http::split_url(url),
                (parsed.path(), parsed.query()),
                "{url}"
            );
        }
    }

    #[test]
    fn small_bodies_held_at_once_are_bounded_and_given_back() {
        let a = BufferPermit::take(MAX_BUFFERED_BYTES - 10).expect("room");
        assert!(BufferPermit::take(11).is_none(), "over the bound: streamed");
        let b = BufferPermit::take(10).expect("exactly full");
        drop(a);
        let c = BufferPermit::take(MAX_BUFFERED_BYTES - 10).expect("room again");
        drop((b, c));
        assert_eq!(BUFFERED.with(std::cell::Cell::get), 0);
    }
}
