//! The Trigger object's JavaScript RPC methods.
//!
//! RPC needs a class that extends `DurableObject`, which workers-rs cannot
//! declare; `worker/entry.mjs` declares it around this object and forwards
//! each method here. Only the hot paths are methods: an ingest whose body the
//! edge has read whole, and the queue consumer's batch claims and reports.
//! Everything else is a `fetch` (see [`crate::wire`]).

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
        reply(
            self.ingest_read(&headers, &body, query.as_deref(), received_at)
                .await,
        )
    }

    /// `claimRuns(batch)`: a [`crate::wire::ClaimBatch`] as JSON bytes, answered
    /// like `POST /runs/claim`.
    #[wasm_bindgen(js_name = claimRuns)]
    pub async fn claim_runs_rpc(&self, batch: js_sys::Uint8Array) -> Result<JsValue, JsValue> {
        self.batch_call(&batch, |b| self.claim_batch(b)).await
    }

    /// `reportRuns(batch)`: a [`crate::wire::ReportBatch`] as JSON bytes, answered
    /// like `POST /runs/report`.
    #[wasm_bindgen(js_name = reportRuns)]
    pub async fn report_runs_rpc(&self, batch: js_sys::Uint8Array) -> Result<JsValue, JsValue> {
        self.batch_call(&batch, |b| self.report_batch(b)).await
    }
}

/// What an RPC method resolves to: the `Response` its `fetch` form would
/// answer, errors mapped the one way `ApiError` maps them.
fn reply(answer: ApiResult<Response>) -> Result<JsValue, JsValue> {
    let answer = answer.unwrap_or_else(ApiError::into_response);
    Ok(worker::web_sys::Response::from(answer).into())
}

/// A batch call's JSON, bounded as its `fetch` form's body is.
fn batch_json<T: serde::de::DeserializeOwned>(batch: &js_sys::Uint8Array) -> ApiResult<T> {
    if u64::from(batch.length()) > http::MAX_JSON_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: http::MAX_JSON_BODY_BYTES,
        });
    }
    http::parse_json(&batch.to_vec())
}

impl Trigger {
    /// A batch method: the object made ready, the batch's JSON parsed
    /// (bounded as its `fetch` form's body is) and handed to `handle`.
    async fn batch_call<T, F, Fut>(
        &self,
        batch: &js_sys::Uint8Array,
        handle: F,
    ) -> Result<JsValue, JsValue>
    where
        T: serde::de::DeserializeOwned,
        F: FnOnce(T) -> Fut,
        Fut: std::future::Future<Output = ApiResult<Response>>,
    {
        reply(
            async {
                self.ensure_ready().await?;
                handle(batch_json(batch)?).await
            }
            .await,
        )
    }

    async fn ingest_read(
        &self,
        headers: &str,
        body: &js_sys::ArrayBuffer,
        query: Option<&str>,
        received_at: f64,
    ) -> ApiResult<Response> {
        self.ensure_ready().await?;
        let pairs: Vec<(String, String)> = edgehook_core::encoding::json_from_str(headers)
            .map_err(|e| ApiError::internal("rpc headers", e))?;
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
