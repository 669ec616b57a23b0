//! Small HTTP helpers: JSON responses, bounded body reads, header conversion.

use edgehook_core::HeaderList;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{Headers, Request, Response};

use crate::error::{ApiError, ApiResult};

/// Headers the Worker adds on its way to a Durable Object; never taken from
/// the client and never stored.
pub const INTERNAL_PREFIX: &str = "x-edgehook-internal-";

/// A JSON response with `status`. Infallible: no response path can panic.
pub fn json<T: Serialize + ?Sized>(status: u16, body: &T) -> Response {
    let text = serde_json::to_vec(body).unwrap_or_else(|_| br#"{"error":"internal"}"#.to_vec());
    bytes(status, "application/json", text)
}

/// A response with a body of `content_type`.
pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", content_type);
    let _ = headers.set("cache-control", "no-store");
    Response::builder()
        .with_status(status)
        .with_headers(headers)
        .fixed(body)
}

/// Refuses a request whose declared `Content-Length` is over `limit` (or
/// not a number), before any of its body is read.
pub fn check_declared_length(req: &Request, limit: u64) -> ApiResult<()> {
    if let Ok(Some(len)) = req.headers().get("content-length") {
        if len.trim().parse::<u64>().map_or(true, |n| n > limit) {
            return Err(ApiError::PayloadTooLarge { limit });
        }
    }
    Ok(())
}

/// Reads the whole body, refusing more than `limit` bytes as it streams, so a
/// body without `Content-Length` cannot exhaust memory.
pub async fn read_body_limited(req: &mut Request, limit: u64) -> ApiResult<Vec<u8>> {
    check_declared_length(req, limit)?;
    let mut out = Vec::new();
    let mut stream = match req.stream() {
        Ok(s) => s,
        // No body at all.
        Err(_) => return Ok(out),
    };
    while let Some(chunk) = stream.next().await {
        // A body that fails mid-stream was cut off by its sender (or by
        // the edge, past its hard limit): a client error, not ours.
        let chunk = chunk.map_err(|_| ApiError::bad_request("the request body ended early"))?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        out.extend_from_slice(&chunk);
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

/// Reads and parses a JSON request body of at most 64 KiB.
pub async fn json_body<T: DeserializeOwned>(req: &mut Request) -> ApiResult<T> {
    let body = read_body_limited(req, 64 * 1024).await?;
    parse_json(&body)
}

/// The request's headers as a [`HeaderList`], without internal ones.
pub fn header_list(headers: &Headers) -> HeaderList {
    HeaderList::from_pairs(
        headers
            .entries()
            .filter(|(name, _)| !name.to_ascii_lowercase().starts_with(INTERNAL_PREFIX)),
    )
}

/// A query parameter.
pub fn query_param(url: &worker::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
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
