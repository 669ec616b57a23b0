//! Small HTTP helpers: JSON responses, bounded body reads, header conversion.

use edgehook_core::HeaderList;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::wasm_bindgen::closure::Closure;
use worker::wasm_bindgen::JsValue;
use worker::{Env, Headers, Request, Response};

use crate::error::{ApiError, ApiResult};

/// Headers the Worker adds on its way to a Durable Object; never taken from
/// the client and never stored.
pub const INTERNAL_PREFIX: &str = "x-edgehook-internal-";

/// The content type of JSON answers.
const JSON: &str = "application/json";

thread_local! {
    /// A JSON answer's headers, made once per isolate: each answer copies
    /// them in one call, where setting them one by one costs a call and two
    /// strings decoded each (about 1% of an ingest's CPU).
    static JSON_HEADERS: worker::web_sys::Headers = answer_headers(JSON).0;
}

/// The headers of every answer: its content type, and no caching.
fn answer_headers(content_type: &str) -> Headers {
    let headers = Headers::new();
    let _ = headers.set("content-type", content_type);
    let _ = headers.set("cache-control", "no-store");
    headers
}

/// A request for the runtime to send (to a Durable Object or a target),
/// built with the runtime's own `RequestInit`. workers-rs's `RequestInit`
/// converts through its `cf` options (image resizing and the rest), about
/// 12 KB of Wasm for fields nothing here sets.
pub fn outbound(
    url: &str,
    method: &str,
    headers: &Headers,
    body: Option<&JsValue>,
    redirect: worker::web_sys::RequestRedirect,
) -> Result<worker::web_sys::Request, JsValue> {
    let init = worker::web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(&headers.0);
    if let Some(body) = body {
        init.set_body(body);
    }
    init.set_redirect(redirect);
    worker::web_sys::Request::new_with_str_and_init(url, &init)
}

/// A JSON response with `status`. Infallible: no response path can panic.
pub fn json<T: Serialize + ?Sized>(status: u16, body: &T) -> Response {
    let text = serde_json::to_vec(body).unwrap_or_else(|_| br#"{"error":"internal"}"#.to_vec());
    bytes(status, JSON, text)
}

/// A response with a body of `content_type`.
pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Response {
    let headers = if content_type == JSON {
        JSON_HEADERS.with(|template| {
            worker::web_sys::Headers::new_with_headers(template)
                .map_or_else(|_| answer_headers(JSON), Headers)
        })
    } else {
        answer_headers(content_type)
    };
    Response::builder()
        .with_status(status)
        .with_headers(headers)
        .fixed(body)
}

/// Refuses a request whose declared `Content-Length` is over `limit` (or
/// not a number), before any of its body is read; returns the declared
/// length, if any.
pub fn check_declared_length(headers: &Headers, limit: u64) -> ApiResult<Option<u64>> {
    match headers.get("content-length") {
        Ok(Some(len)) => match len.trim().parse::<u64>() {
            Ok(n) if n <= limit => Ok(Some(n)),
            _ => Err(ApiError::PayloadTooLarge { limit }),
        },
        _ => Ok(None),
    }
}

thread_local! {
    /// A rejection handler that does nothing, made once per isolate.
    static IGNORE: Closure<dyn FnMut(JsValue)> = Closure::new(|_: JsValue| {});
}

/// Marks a promise's rejection as handled and returns it. Stream promises
/// (a pending write, a close, an abort, a cancel) reject once the other side
/// is gone; a future awaiting one may already be dropped, and an unhandled
/// rejection is logged as an uncaught error.
pub fn handled(promise: worker::js_sys::Promise) -> worker::js_sys::Promise {
    IGNORE.with(|ignore| {
        let _ = promise.catch(ignore);
    });
    promise
}

/// Reads the whole body, refusing more than `limit` bytes as it streams, so a
/// body without `Content-Length` cannot exhaust memory.
pub async fn read_body_limited(req: &mut Request, limit: u64) -> ApiResult<Vec<u8>> {
    check_declared_length(req.headers(), limit)?;
    read_body(req, limit, Overflow::Refuse, false).await
}

/// As [`read_body_limited`], but a body over `limit` is read to its end and
/// dropped, chunk by chunk, before the 413 (memory stays at one chunk). A
/// Trigger object reads what the edge streams to it this way: an object that
/// answered without reading its body makes the runtime fail the edge's
/// stream outside any handler ("Network connection lost"). The edge stops at
/// its hard limit, so the drain ends.
pub async fn read_body_or_drain(req: &mut Request, limit: u64) -> ApiResult<Vec<u8>> {
    match check_declared_length(req.headers(), limit) {
        // A body whose length is declared (and within `limit`) is read whole
        // in one call: HTTP framing bounds it by the declared length, and
        // one copy into Wasm beats pumping its chunks through a stream
        // reader (for 256 KB, the reader's crossings were a quarter of the
        // object's CPU). Past `WHOLE_READ_BYTES` it is still streamed: a
        // whole read holds the body twice, once outside Wasm.
        Ok(Some(n)) if n <= WHOLE_READ_BYTES => req
            .bytes()
            .await
            .map_err(|_| ApiError::bad_request("the request body ended early")),
        declared => read_body(req, limit, Overflow::Drain, declared.is_err()).await,
    }
}

/// Bodies up to this declared size are read whole by the edge and handed
/// on by RPC, not streamed (see `edge::ingress`, which also bounds the bytes
/// it holds at once). Webhook payloads of a few hundred kilobytes are
/// common (a GitHub push of many commits): streamed, each chunk crossed
/// into Wasm and out again at the edge and into Wasm at the object, which
/// took 256 KB deliveries to about half the rate of a whole read.
pub const SMALL_BODY_BYTES: u64 = 1024 * 1024;

/// Bodies up to this declared size that reach an object as a stream are
/// read whole there ([`read_body_or_drain`]).
const WHOLE_READ_BYTES: u64 = 1024 * 1024;

/// Reads a request body that will not be used to its end and drops it; see
/// [`read_body_or_drain`].
pub async fn drain_body(req: &mut Request) {
    let _ = read_body(req, 0, Overflow::Drain, true).await;
}

/// What [`read_body`] does with a body over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    /// Stop reading and answer 413.
    Refuse,
    /// Read the rest and drop it, then answer 413.
    Drain,
}

async fn read_body(
    req: &mut Request,
    limit: u64,
    overflow: Overflow,
    already_over: bool,
) -> ApiResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut over = already_over;
    let mut stream = match req.stream() {
        Ok(s) => s,
        // No body at all.
        Err(_) => return Ok(out),
    };
    while let Some(chunk) = stream.next().await {
        // A body that fails mid-stream was cut off by its sender (or by
        // the edge, past its hard limit): a client error, not ours.
        let chunk = chunk.map_err(|_| ApiError::bad_request("the request body ended early"))?;
        if over {
            continue;
        }
        if (out.len() + chunk.len()) as u64 > limit {
            if overflow == Overflow::Refuse {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            over = true;
            out = Vec::new();
            continue;
        }
        out.extend_from_slice(&chunk);
    }
    if over {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(out)
}

/// Parses a JSON body into `T`, with an error that names the problem but never
/// echoes a value (a mistyped secret must not come back in a response).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.is_empty() {
        return Err(ApiError::bad_request("a JSON body is required"));
    }
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let message = if text.starts_with("unknown field") || text.starts_with("missing field") {
            // These name fields only, never values.
            text.split(" at line")
                .next()
                .unwrap_or("invalid JSON")
                .to_string()
        } else if e.is_syntax() || e.is_eof() {
            format!("malformed JSON at line {} column {}", e.line(), e.column())
        } else {
            format!(
                "a field has the wrong type or value (line {} column {})",
                e.line(),
                e.column()
            )
        };
        ApiError::bad_request(message)
    })
}

/// Most bytes of an internal JSON body ([`json_body`], and the same calls
/// made by RPC).
pub const MAX_JSON_BODY_BYTES: u64 = 64 * 1024;

/// Reads and parses a JSON request body of at most `MAX_JSON_BODY_BYTES`.
pub async fn json_body<T: DeserializeOwned>(req: &mut Request) -> ApiResult<T> {
    let body = read_body_limited(req, MAX_JSON_BODY_BYTES).await?;
    parse_json(&body)
}

/// The request's headers as a [`HeaderList`], without internal ones.
pub fn header_list(headers: &Headers) -> HeaderList {
    HeaderList::from_pairs(headers.entries().filter(|(name, _)| !is_internal(name)))
}

/// Whether a header name is one of the Worker's internal ones (see
/// [`INTERNAL_PREFIX`]), in any case.
pub fn is_internal(name: &str) -> bool {
    name.get(..INTERNAL_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(INTERNAL_PREFIX))
}

/// A query parameter; `None` when absent or empty.
pub fn query_param(url: &ReqUrl, name: &str) -> Option<String> {
    let query = url.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// Current time from the runtime clock. Only adapters read it; the core takes
/// it as an argument.
pub fn now() -> edgehook_core::Timestamp {
    edgehook_core::Timestamp(worker::Date::now().as_millis() as i64)
}

/// Random bytes from the runtime's CSPRNG.
pub fn random<const N: usize>() -> ApiResult<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).map_err(|e| ApiError::internal("random", e))?;
    Ok(buf)
}

/// The public origin for ingress URLs.
pub fn base_url(req: &Request, env: &Env) -> String {
    if let Some(base) = crate::keys::public_base_url(env) {
        return base;
    }
    ReqUrl::of(req).origin().to_string()
}

/// A request's URL as the runtime serializes it (WHATWG), read without a
/// URL parser: a serialized URL needs none to be split, and `worker`'s
/// `Request::url` parses it again with the `url` crate, whose parser (with
/// its host and IDNA handling) was 30 KB of the Wasm.
#[derive(Debug, Clone)]
pub struct ReqUrl {
    href: String,
}

impl ReqUrl {
    /// The URL of `req`.
    pub fn of(req: &Request) -> ReqUrl {
        ReqUrl {
            href: req.inner().url(),
        }
    }

    /// The path, percent-encoding and all (`/` at least).
    pub fn path(&self) -> &str {
        split_url(&self.href).0
    }

    /// The query, without its `?`; `None` without one.
    pub fn query(&self) -> Option<&str> {
        split_url(&self.href).1
    }

    /// The scheme, host and port (`https://edge.example`). A request's
    /// URL carries no credentials: HTTP sends them in headers.
    pub fn origin(&self) -> &str {
        let after_scheme = self.href.find("://").map_or(0, |i| i + 3);
        let end = self.href[after_scheme..]
            .find(['/', '?', '#'])
            .map_or(self.href.len(), |i| after_scheme + i);
        &self.href[..end]
    }
}

/// The runtime's `URL`: the WHATWG parser, which the core's configuration
/// checks take ([`edgehook_core::weburl`]) so the Wasm carries none.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuntimeUrl;

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// The global `URL` class.
    #[wasm_bindgen(js_name = URL)]
    type JsUrl;

    #[wasm_bindgen(constructor, catch, js_class = "URL")]
    fn new(raw: &str) -> Result<JsUrl, wasm_bindgen::JsValue>;

    #[wasm_bindgen(method, getter)]
    fn href(this: &JsUrl) -> String;

    #[wasm_bindgen(method, getter)]
    fn protocol(this: &JsUrl) -> String;

    #[wasm_bindgen(method, getter)]
    fn hostname(this: &JsUrl) -> String;
}

impl edgehook_core::weburl::UrlParser for RuntimeUrl {
    fn parse(&self, raw: &str) -> Option<edgehook_core::weburl::ParsedUrl> {
        let url = JsUrl::new(raw).ok()?;
        let scheme = url.protocol();
        Some(edgehook_core::weburl::ParsedUrl {
            href: url.href(),
            scheme: scheme.strip_suffix(':').unwrap_or(&scheme).to_string(),
            host: url.hostname(),
        })
    }
}

/// The path and the query of a URL as the runtime serializes it (WHATWG):
/// the path starts at the first `/` after the host (a special scheme's
/// serialization always has one) and runs to the `?` or `#` that ends it;
/// both are as serialized, percent-encoding and all, as `Url::path` and
/// `Url::query` give them.
pub fn split_url(url: &str) -> (&str, Option<&str>) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let Some(start) = rest.find('/') else {
        return ("/", None);
    };
    let rest = &rest[start..];
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    }
}

/// Copies client headers, dropping any that pose as internal ones.
pub fn forwardable_headers(req: &Request) -> Headers {
    let out = Headers::new();
    for (name, value) in req.headers().entries() {
        if !is_internal(&name) {
            let _ = out.append(&name, &value);
        }
    }
    out
}
