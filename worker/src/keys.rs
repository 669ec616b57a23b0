//! Secrets from the Worker's environment.
//!
//! `ADMIN_TOKEN` guards the management API, `DISPATCH_SECRET` (a Standard
//! Webhooks `whsec_` key) signs every run sent to a target, and
//! `TRIGGER_ID_SECRET` keys the MAC inside trigger ids. The last is optional:
//! without it the key is derived from `DISPATCH_SECRET`, so a deployment with
//! the two documented secrets works; set it to rotate the dispatch secret
//! without changing trigger URLs. Values are read per request (the trigger-id
//! key is derived once per isolate) and never logged.

use edgehook_core::id::derive_key;
use edgehook_core::secret::Secret;
use edgehook_core::verify::standard_key;
use worker::Env;

use crate::error::{ApiError, ApiResult};

/// The management API's bearer token.
pub const ADMIN_TOKEN: &str = "ADMIN_TOKEN";
/// The key that signs dispatches.
pub const DISPATCH_SECRET: &str = "DISPATCH_SECRET";
/// The key of trigger-id MACs (optional).
pub const TRIGGER_ID_SECRET: &str = "TRIGGER_ID_SECRET";
/// The public origin for ingress URLs (optional; default: the request's).
pub const PUBLIC_BASE_URL: &str = "PUBLIC_BASE_URL";

fn read(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
}

/// The admin token, if configured.
pub fn admin_token(env: &Env) -> Option<Secret> {
    read(env, ADMIN_TOKEN).map(Secret::new)
}

thread_local! {
    /// The trigger-id key, derived once per isolate: every ingress request
    /// checks an id with it, and an isolate's secrets never change (new
    /// secrets start new isolates).
    static TRIGGER_ID_KEY: std::cell::OnceCell<Vec<u8>> = const { std::cell::OnceCell::new() };
}

/// The key for trigger-id MACs.
pub fn trigger_id_key(env: &Env) -> ApiResult<Vec<u8>> {
    if let Some(key) = TRIGGER_ID_KEY.with(|k| k.get().cloned()) {
        return Ok(key);
    }
    let secret = read(env, TRIGGER_ID_SECRET)
        .or_else(|| read(env, DISPATCH_SECRET))
        .ok_or_else(|| {
            ApiError::Internal("neither TRIGGER_ID_SECRET nor DISPATCH_SECRET is configured".into())
        })?;
    let key = derive_key(secret.as_bytes(), "trigger-id").to_vec();
    TRIGGER_ID_KEY.with(|k| {
        let _ = k.set(key.clone());
    });
    Ok(key)
}

/// The decoded dispatch signing key.
pub fn dispatch_key(env: &Env) -> ApiResult<Vec<u8>> {
    let raw = read(env, DISPATCH_SECRET)
        .ok_or_else(|| ApiError::Internal("DISPATCH_SECRET is not configured".into()))?;
    standard_key(&Secret::new(raw))
        .map_err(|_| ApiError::Internal("DISPATCH_SECRET is not a base64 whsec_ key".into()))
}

/// The configured public base URL, if any.
pub fn public_base_url(env: &Env) -> Option<String> {
    read(env, PUBLIC_BASE_URL).map(|u| u.trim_end_matches('/').to_string())
}
