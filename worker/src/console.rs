//! The operator console (`/console`): three static files from `console/`,
//! compiled into the Worker so it needs no asset binding and no CDN, served
//! with a strict Content-Security-Policy. The page calls the management API
//! with the admin token it keeps in `sessionStorage`; it adds no endpoint.

use worker::{Headers, Response};

use crate::error::{ApiError, ApiResult};

const INDEX: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/app.js");
const STYLE: &str = include_str!("../../console/app.css");

/// Scripts and styles only from this origin (no inline code), calls only to
/// this origin, no frames, no plugins, no forms posting elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Serves `/console` and its files; `rest` is the path after `console`.
pub fn handle(rest: &[&str]) -> ApiResult<Response> {
    let (content_type, body) = match rest {
        [] | [""] | ["index.html"] => ("text/html; charset=utf-8", INDEX),
        ["app.js"] => ("text/javascript; charset=utf-8", SCRIPT),
        ["app.css"] => ("text/css; charset=utf-8", STYLE),
        _ => return Err(ApiError::NotFound("route")),
    };
    let headers = Headers::new();
    for (name, value) in [
        ("content-type", content_type),
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        // Small, and changed with every deploy: always revalidated.
        ("cache-control", "no-cache"),
    ] {
        headers.set(name, value)?;
    }
    Ok(Response::builder()
        .with_status(200)
        .with_headers(headers)
        .fixed(body.as_bytes().to_vec()))
}
