//! The Trigger object's JavaScript RPC methods.
//!
//! RPC needs a class that extends `DurableObject`, which workers-rs cannot
//! declare; `worker/entry.mjs` declares it around this object and forwards
//! each method here. Only the hot path is a method: an ingest whose body the
//! edge has read whole. Everything else is a `fetch` (see [`crate::wire`]).

use edgehook_core::HeaderList;
use worker::wasm_bindgen::prelude::wasm_bindgen;
use worker::wasm_bindgen::JsValue;
use worker::{js_sys, Response};

use super::{Arrival, IngestBody, Trigger};
use crate::error::{ApiError, ApiResult};
use crate::http;

#[wasm_bindgen(
    wasm_bindgen = ::worker::wasm_bindgen,
    wasm_bindgen_futures = ::worker::wasm_bindgen_futures,
    js_sys = ::worker::js_sys
)]
impl Trigger {
    /// `ingest(headers, body, query, receivedAt)`: the edge's
    /// [`crate::wire::ingest_by_rpc`]. Answers the `Response` the client
    /// gets, errors included.
    #[wasm_bindgen(js_name = ingest)]
    pub async fn ingest_rpc(
        &self,
        headers: String,
        body: js_sys::ArrayBuffer,
        query: Option<String>,
        received_at: f64,
    ) -> Result<JsValue, JsValue> {
        let answer = self
            .ingest_read(&headers, &body, query.as_deref(), received_at)
            .await
            .unwrap_or_else(|e| e.into_response());
        Ok(worker::web_sys::Response::from(answer).into())
    }
}

impl Trigger {
    async fn ingest_read(
        &self,
        headers: &str,
        body: &js_sys::ArrayBuffer,
        query: Option<&str>,
        received_at: f64,
    ) -> ApiResult<Response> {
        self.ensure_ready().await?;
        let pairs: Vec<(String, String)> =
            serde_json::from_str(headers).map_err(|e| ApiError::internal("rpc headers", e))?;
        let arrival = Arrival {
            headers: HeaderList::from_pairs(
                pairs
                    .into_iter()
                    .filter(|(name, _)| !http::is_internal(name)),
            ),
            received_at: edgehook_core::Timestamp(received_at as i64),
            query,
        };
        let body = js_sys::Uint8Array::new(body).to_vec();
        self.ingest(arrival, IngestBody::Read(body)).await
    }
}
