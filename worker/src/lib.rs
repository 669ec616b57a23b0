//! The edgehook Worker.
//!
//! The only crate that knows workers-rs and HTTP. Entry points:
//!
//! - [`fetch`]: ingress (`POST /hooks/{trigger_id}`) and the management API
//!   (`/api/...`), via [`edge::handle`].
//! - [`queue`]: the consumer of the runs queue, via [`consumer::handle`].
//! - [`trigger::Trigger`]: one Durable Object per trigger, the ledger.
//! - [`registry::Registry`]: the list of triggers.
//!
//! All decisions are made by `edgehook-core`; this crate moves bytes between
//! the platform and the core.

mod admin;
mod consumer;
mod edge;
mod error;
mod http;
mod keys;
mod ledger;
// `#[durable_object]` generates undocumented public glue.
#[allow(missing_docs)]
mod registry;
mod sqlrow;
#[allow(missing_docs)]
mod trigger;
mod wire;

use worker::{event, web_sys, Context, Env, MessageBatch, Response};

pub use registry::Registry;
pub use trigger::Trigger;

/// HTTP entry point. It takes the runtime's request as it is (see
/// [`edge::handle`]).
#[event(fetch)]
pub async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    Ok(match edge::handle(req, env).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    })
}

/// Queue entry point.
#[event(queue)]
pub async fn queue(
    batch: MessageBatch<serde_json::Value>,
    env: Env,
    _ctx: Context,
) -> worker::Result<()> {
    consumer::handle(batch, env).await
}
