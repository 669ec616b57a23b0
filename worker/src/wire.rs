//! The internal protocol between the Worker and its Durable Objects.
//!
//! Objects are reached with `fetch` on a fixed internal origin; the Worker has
//! already authenticated the caller and checked the trigger id. Metadata that
//! must not come from a client travels in `x-edgehook-internal-*` headers,
//! which the Worker strips from client requests. Binary payloads (a claimed
//! run's body) are framed as a 4-byte big-endian length, JSON, then bytes.
//!
//! The exceptions are the hot paths, which are JavaScript RPC calls on the
//! class `worker/entry.mjs` declares around the Rust object: an ingest whose
//! body the edge has read whole (`ingest(headers, body, query, receivedAt)`,
//! [`ingest_by_rpc`]), and the queue consumer's batch claims and reports
//! (`claimRuns`, `reportRuns`, [`batch_by_rpc`]).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, Headers, Method, Request, Response, Stub};

use crate::error::{ApiError, ApiResult};

/// The origin of internal requests.
pub const ORIGIN: &str = "https://edgehook.internal";
/// The edge's receive time (ms), set by the Worker on ingest.
pub const RECEIVED_AT: &str = "x-edgehook-internal-received-at";
/// The public base URL, for ingress URLs in trigger views.
pub const BASE_URL: &str = "x-edgehook-internal-base-url";
/// Durable Object binding of trigger ledgers.
pub const TRIGGERS: &str = "TRIGGERS";
/// Durable Object binding of the trigger registry.
pub const REGISTRY: &str = "REGISTRY";
/// Queue binding for runs.
pub const RUNS_QUEUE: &str = "RUNS";
/// Queue binding for dead letters.
pub const DLQ_QUEUE: &str = "DLQ";

/// A run message on the queue: it names the run, nothing more, so it stays
/// far below the queue's message size limit whatever the body size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMessage {
    /// The trigger.
    pub trigger_id: String,
    /// The run.
    pub run_id: String,
    /// Always true now (omitted): every run is claimed, and the claim marks
    /// a run without a route delivered. Older versions sent false for a
    /// trigger without a target and marked the run delivered themselves, so
    /// the consumer acks such a message without asking.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub dispatch: bool,
    /// The size of the body the claim will return, so the consumer can keep
    /// its in-flight bytes bounded. Absent in older messages (then the
    /// largest body allowed is assumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<u64>,
}

fn yes() -> bool {
    true
}

fn is_true(v: &bool) -> bool {
    *v
}

/// A dead-letter message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The trigger.
    pub trigger_id: String,
    /// The run.
    pub run_id: String,
    /// Its delivery.
    pub delivery_id: String,
    /// Attempts made.
    pub attempts: u32,
}

/// What a claim answers: on the wire, an object whose `action` names the
/// variant, beside the variant's fields (read by [`ClaimAnswer::deserialize`]).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ClaimAnswer {
    /// Send it; the frame's bytes are the body.
    Dispatch {
        /// 1-based attempt number.
        attempt: u32,
        /// Its delivery.
        delivery_id: String,
        /// Where to send it.
        target_url: String,
        /// Dispatch timeout.
        timeout_seconds: u32,
        /// Stored (redacted) request headers.
        headers: edgehook_core::HeaderList,
        /// The run's route, if it has one.
        route_id: Option<String>,
        /// The route's extra headers.
        extra_headers: std::collections::BTreeMap<String, String>,
        /// Not before this time (ms): the slot the route's rate limit gave.
        not_before_ms: Option<i64>,
        /// When the attempt's lease ends (ms): an attempt that could not
        /// end and be reported by then is given back unstarted
        /// (`edgehook_core::dispatch::may_start`). Absent from older
        /// objects' answers.
        lease_until_ms: Option<i64>,
    },
    /// Final, gone, or someone else's: drop the message.
    Drop,
    /// Not due yet: retry the message after this many seconds.
    Later {
        /// Delay.
        delay_seconds: u32,
    },
}

/// Every field a [`ClaimAnswer`] can carry, flat, as the wire has them.
///
/// serde reads an internally tagged enum by first buffering the whole object
/// into its own `Content` tree, which cost about 15 KB of Wasm for this one
/// type; a plain struct reads the same JSON without it.
#[derive(Deserialize)]
struct ClaimAnswerFields {
    action: String,
    // A missing `Option` reads as `None`; the answers of older versions lack
    // the route's fields.
    attempt: Option<u32>,
    delivery_id: Option<String>,
    target_url: Option<String>,
    timeout_seconds: Option<u32>,
    headers: Option<edgehook_core::HeaderList>,
    route_id: Option<String>,
    #[serde(default)]
    extra_headers: std::collections::BTreeMap<String, String>,
    not_before_ms: Option<i64>,
    lease_until_ms: Option<i64>,
    delay_seconds: Option<u32>,
}

impl<'de> Deserialize<'de> for ClaimAnswer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        fn field<T, E: Error>(v: Option<T>, name: &'static str) -> Result<T, E> {
            v.ok_or_else(|| E::missing_field(name))
        }
        let f = ClaimAnswerFields::deserialize(d)?;
        match f.action.as_str() {
            "dispatch" => Ok(ClaimAnswer::Dispatch {
                attempt: field(f.attempt, "attempt")?,
                delivery_id: field(f.delivery_id, "delivery_id")?,
                target_url: field(f.target_url, "target_url")?,
                timeout_seconds: field(f.timeout_seconds, "timeout_seconds")?,
                headers: field(f.headers, "headers")?,
                route_id: f.route_id,
                extra_headers: f.extra_headers,
                not_before_ms: f.not_before_ms,
                lease_until_ms: f.lease_until_ms,
            }),
            "drop" => Ok(ClaimAnswer::Drop),
            "later" => Ok(ClaimAnswer::Later {
                delay_seconds: field(f.delay_seconds, "delay_seconds")?,
            }),
            other => Err(D::Error::unknown_variant(
                other,
                &["dispatch", "drop", "later"],
            )),
        }
    }
}

/// `POST /runs/claim`: claims for several runs of one trigger at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimBatch {
    /// The runs, in the order of their messages.
    pub run_ids: Vec<String>,
    /// How many of the trigger's late runs (whose messages have not come
    /// when they should have) the object may grant in the same answer, at
    /// most [`MAX_AHEAD_RUNS`]. Absent (an older consumer): none.
    #[serde(default)]
    pub ahead: u32,
    /// The body bytes those runs may add up to.
    #[serde(default)]
    pub ahead_bytes: u64,
}

/// One answer of a batch claim; its body (for a dispatch) follows the
/// previous ones' in the frame. The answers for the batch's runs come first,
/// in order; a dispatch of a late run taken ahead follows them, naming its
/// run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claimed {
    /// What to do with the run.
    pub answer: ClaimAnswer,
    /// How many bytes of the frame's body are this run's.
    pub body_len: u64,
    /// The run, for a run taken ahead of its message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// `POST /runs/report`: the reports of several attempts of one trigger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportBatch {
    /// One per attempt made.
    pub reports: Vec<RunReport>,
}

/// A report with its run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// The run.
    pub run_id: String,
    /// Its attempt's report.
    pub report: Report,
}

/// Most runs in one batch claim or report.
pub const MAX_BATCH_RUNS: usize = 100;

/// Most late runs one batch claim takes ahead of their messages. A batch
/// whose trigger is behind delivers up to twice its size, so a local queue
/// that hands over one batch at a time, or a production queue with a
/// backlog, no longer sets the pace alone.
pub const MAX_AHEAD_RUNS: u32 = 100;

/// The consumer's report of one attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The claimed attempt number.
    pub attempt: u32,
    /// The outcome.
    pub outcome: edgehook_core::run::AttemptOutcome,
    /// When the request started (ms).
    #[serde(default)]
    pub started_at_ms: Option<i64>,
    /// How long it took.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// The failure's class (`edgehook_core::dispatch::error_class`).
    #[serde(default)]
    pub error_class: Option<String>,
    /// The start of the target's response body.
    #[serde(default)]
    pub response_excerpt: Option<String>,
    /// The attempt was given back unstarted: no request was made, and the
    /// run is to be claimable again as if this claim had not been.
    #[serde(default)]
    pub not_started: bool,
}

/// Frames `meta` and `body`.
pub fn frame<T: Serialize>(meta: &T, body: &[u8]) -> ApiResult<Vec<u8>> {
    let meta = serde_json::to_vec(meta).map_err(|e| ApiError::internal("frame", e))?;
    let len = u32::try_from(meta.len()).map_err(|e| ApiError::internal("frame", e))?;
    let mut out = Vec::with_capacity(4 + meta.len() + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(body);
    Ok(out)
}

/// Splits a frame.
pub fn unframe<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<(T, &[u8])> {
    let bad = || ApiError::Internal("malformed internal frame".into());
    let len_bytes: [u8; 4] = bytes
        .get(..4)
        .ok_or_else(bad)?
        .try_into()
        .map_err(|_| bad())?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let meta = bytes.get(4..4 + len).ok_or_else(bad)?;
    let meta = serde_json::from_slice(meta).map_err(|e| ApiError::internal("unframe", e))?;
    Ok((meta, &bytes[4 + len..]))
}

/// Calls a Durable Object.
pub async fn call(
    stub: &Stub,
    method: Method,
    path_and_query: &str,
    headers: Headers,
    body: Option<&[u8]>,
) -> ApiResult<Response> {
    let body: Option<JsValue> = body.map(|b| js_sys::Uint8Array::from(b).into());
    let req = crate::http::outbound(
        &format!("{ORIGIN}{path_and_query}"),
        method.as_ref(),
        &headers,
        body.as_ref(),
        worker::web_sys::RequestRedirect::Follow,
    )
    .map_err(|e| ApiError::internal("internal request", format!("{e:?}")))?;
    Ok(stub.fetch_with_request(Request::from(req)).await?)
}

#[wasm_bindgen]
extern "C" {
    /// A Trigger object's stub, seen through its RPC methods (the class
    /// `worker/entry.mjs` declares).
    #[wasm_bindgen(extends = js_sys::Object)]
    pub type TriggerRpc;

    /// `Trigger.ingest(headers, body, query, receivedAt)`.
    #[wasm_bindgen(method, catch)]
    fn ingest(
        this: &TriggerRpc,
        headers: &JsValue,
        body: &JsValue,
        query: Option<String>,
        received_at: f64,
    ) -> Result<js_sys::Promise, JsValue>;

    /// `Trigger.claimRuns(batch)`: a [`ClaimBatch`] as JSON bytes.
    #[wasm_bindgen(method, catch, js_name = claimRuns)]
    fn claim_runs(this: &TriggerRpc, batch: &JsValue) -> Result<js_sys::Promise, JsValue>;

    /// `Trigger.reportRuns(batch)`: a [`ReportBatch`] as JSON bytes.
    #[wasm_bindgen(method, catch, js_name = reportRuns)]
    fn report_runs(this: &TriggerRpc, batch: &JsValue) -> Result<js_sys::Promise, JsValue>;
}

/// A trigger's object, to be called by RPC.
pub fn trigger_rpc(env: &worker::Env, id: &str) -> ApiResult<TriggerRpc> {
    Ok(trigger_stub(env, id)?.into_rpc())
}

/// Hands an inbound request whose body the edge holds (`body`, an
/// `ArrayBuffer`) to its trigger's object by RPC, and returns the object's
/// answer. `headers` are the client's, as the JSON text of `[name, value]`
/// pairs; the object drops internal ones. RPC passes these values as they
/// are: no internal `Request` is built here and none is converted there,
/// and `wrangler dev` does not report each call to its inspector as it does
/// a `fetch`.
pub async fn ingest_by_rpc(
    rpc: &TriggerRpc,
    headers: &JsValue,
    body: &JsValue,
    query: Option<&str>,
    received_at: edgehook_core::Timestamp,
) -> ApiResult<Response> {
    let answer = resolve(rpc.ingest(
        headers,
        body,
        query.map(str::to_string),
        received_at.millis() as f64,
    ))
    .await?;
    Ok(Response::from(answer))
}

/// A batch call of the queue consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// `claimRuns`: a [`ClaimBatch`], answered like `POST /runs/claim`.
    Claim,
    /// `reportRuns`: a [`ReportBatch`], answered like `POST /runs/report`.
    Report,
}

/// Calls a Trigger object's batch method by RPC with `batch` (its JSON);
/// returns the answer's status and body. The body is read with one
/// `arrayBuffer()`, not as a stream of chunks, and no `worker::Response` is
/// made of it (which reads the answer's `cf` and `webSocket` too).
pub async fn batch_by_rpc(
    rpc: &TriggerRpc,
    which: Batch,
    batch: &[u8],
) -> ApiResult<(u16, Vec<u8>)> {
    let batch: JsValue = js_sys::Uint8Array::from(batch).into();
    let call = match which {
        Batch::Claim => rpc.claim_runs(&batch),
        Batch::Report => rpc.report_runs(&batch),
    };
    let answer = resolve(call).await?;
    let body = JsFuture::from(answer.array_buffer().map_err(worker::Error::from)?)
        .await
        .map_err(worker::Error::from)?;
    Ok((answer.status(), js_sys::Uint8Array::new(&body).to_vec()))
}

/// The `Response` an RPC call resolves to.
async fn resolve(call: Result<js_sys::Promise, JsValue>) -> ApiResult<worker::web_sys::Response> {
    let call = call.map_err(worker::Error::from)?;
    let answer = JsFuture::from(call).await.map_err(worker::Error::from)?;
    Ok(answer.dyn_into().map_err(worker::Error::from)?)
}

/// Calls a Durable Object with `req`'s body streamed to it, never buffered
/// here: the object reads it at its own pace and up to its own limit.
///
/// The edge pumps the body itself, chunk by chunk, into a `TransformStream`
/// whose readable side is the object's request body, and stops pumping as
/// soon as the object answers. (Handing the client's stream to the runtime
/// instead lets it go on reading the client body after the response was
/// sent when the object answered early, which fails outside any handler and
/// restarts the isolate.) Past `hard_limit` bytes, or if the client's body
/// fails, the pump aborts the object's stream, so the object can never take
/// a cut body for a whole one.
pub async fn call_with_streamed_body(
    stub: &Stub,
    method: Method,
    path_and_query: &str,
    headers: Headers,
    req: &mut Request,
    hard_limit: u64,
) -> ApiResult<Response> {
    use futures_util::future::{select, Either};
    use futures_util::StreamExt;
    use worker::wasm_bindgen_futures::JsFuture;
    use worker::web_sys::TransformStream;

    let js_err = |what: &'static str| move |e| ApiError::internal(what, format!("{e:?}"));
    let pipe = TransformStream::new().map_err(js_err("transform stream"))?;
    let writer = pipe
        .writable()
        .get_writer()
        .map_err(js_err("stream writer"))?;
    let inner = crate::http::outbound(
        &format!("{ORIGIN}{path_and_query}"),
        method.as_ref(),
        &headers,
        Some(&pipe.readable().into()),
        worker::web_sys::RequestRedirect::Follow,
    )
    .map_err(js_err("internal request"))?;
    let call = Box::pin(async move { stub.fetch_with_request(Request::from(inner)).await });
    let source = req.stream().ok();
    let pump = Box::pin(async {
        let mut sent = 0u64;
        if let Some(mut source) = source {
            while let Some(chunk) = source.next().await {
                let Ok(chunk) = chunk else {
                    let reason = JsValue::from_str("the client's body ended early");
                    let _ = crate::http::handled(writer.abort_with_reason(&reason));
                    return Pumped::Aborted;
                };
                sent += chunk.len() as u64;
                if sent > hard_limit {
                    let reason = JsValue::from_str("the body is over the hard limit");
                    let _ = crate::http::handled(writer.abort_with_reason(&reason));
                    return Pumped::TooLarge;
                }
                let bytes = js_sys::Uint8Array::from(chunk.as_slice());
                if JsFuture::from(crate::http::handled(writer.write_with_chunk(&bytes)))
                    .await
                    .is_err()
                {
                    // The object stopped reading: it has answered or will.
                    return Pumped::Stopped;
                }
            }
        }
        let _ = JsFuture::from(crate::http::handled(writer.close())).await;
        Pumped::Complete
    });
    let response = match select(call, pump).await {
        Either::Left((response, _pump)) => {
            // Answered before the whole body was needed: stop reading the
            // client and end the object's side of the stream.
            let _ = crate::http::handled(writer.abort());
            response
        }
        // The object sees the aborted stream and answers at once; its call
        // is awaited all the same, as a dropped call would leave its promise
        // to settle into callbacks that are gone.
        Either::Right((Pumped::TooLarge, call)) => {
            let _ = call.await;
            return Err(ApiError::PayloadTooLarge { limit: hard_limit });
        }
        Either::Right((Pumped::Aborted, call)) => {
            let _ = call.await;
            return Err(ApiError::bad_request("the request body ended early"));
        }
        Either::Right((Pumped::Complete | Pumped::Stopped, call)) => call.await,
    };
    Ok(response?)
}

/// How the edge's body pump ended.
enum Pumped {
    /// The whole body went to the object.
    Complete,
    /// The object stopped reading.
    Stopped,
    /// The body passed the hard limit.
    TooLarge,
    /// The client's body failed mid-stream.
    Aborted,
}

/// The stub of trigger `id`'s ledger.
pub fn trigger_stub(env: &worker::Env, id: &str) -> ApiResult<Stub> {
    Ok(env.durable_object(TRIGGERS)?.id_from_name(id)?.get_stub()?)
}

/// The stub of the registry (a single object).
pub fn registry_stub(env: &worker::Env) -> ApiResult<Stub> {
    Ok(env
        .durable_object(REGISTRY)?
        .id_from_name("registry")?
        .get_stub()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each variant, written as serde's tagged form writes it, reads back
    /// the same; a missing field or an unknown action is an error.
    #[test]
    fn claim_answers_round_trip_through_the_flat_reader() {
        let headers: edgehook_core::HeaderList =
            serde_json::from_str(r#"{"content-type":"application/json"}"#).expect("headers");
        let answers = [
            ClaimAnswer::Dispatch {
                attempt: 2,
                delivery_id: "dlv_1".into(),
                target_url: "https://example.com/hook".into(),
                timeout_seconds: 30,
                headers: headers.clone(),
                route_id: Some("rte_1".into()),
                extra_headers: [("x-a".to_string(), "b".to_string())].into(),
                not_before_ms: Some(1_700_000_000_000),
                lease_until_ms: Some(1_700_000_045_000),
            },
            ClaimAnswer::Dispatch {
                attempt: 1,
                delivery_id: "dlv_2".into(),
                target_url: "https://example.com/".into(),
                timeout_seconds: 10,
                headers,
                route_id: None,
                extra_headers: Default::default(),
                not_before_ms: None,
                lease_until_ms: None,
            },
            ClaimAnswer::Drop,
            ClaimAnswer::Later { delay_seconds: 7 },
        ];
        for a in answers {
            let text = serde_json::to_string(&a).expect("write");
            let back: ClaimAnswer = serde_json::from_str(&text).expect("read");
            assert_eq!(format!("{a:?}"), format!("{back:?}"), "{text}");
            assert_eq!(serde_json::to_string(&back).expect("write again"), text);
        }
        // The form a previous version writes, without the fields added since.
        let old: ClaimAnswer = serde_json::from_str(
            r#"{"action":"dispatch","attempt":1,"delivery_id":"d","target_url":"https://x.test/","timeout_seconds":5,"headers":{}}"#,
        )
        .expect("an answer without the later fields");
        assert!(matches!(
            old,
            ClaimAnswer::Dispatch {
                route_id: None,
                not_before_ms: None,
                lease_until_ms: None,
                ..
            }
        ));
        // A batch claim or a report of a previous version, without the
        // fields added since, reads with their defaults.
        let claim: ClaimBatch = serde_json::from_str(r#"{"run_ids":["run_1"]}"#).expect("claim");
        assert_eq!((claim.ahead, claim.ahead_bytes), (0, 0));
        let claimed: Vec<Claimed> =
            serde_json::from_str(r#"[{"answer":{"action":"drop"},"body_len":0}]"#)
                .expect("answers");
        assert!(claimed[0].run_id.is_none());
        let report: Report =
            serde_json::from_str(r#"{"attempt":1,"outcome":{"status":200,"error":null}}"#)
                .expect("report");
        assert!(!report.not_started);
        for bad in [
            r#"{"action":"dispatch","attempt":1}"#,
            r#"{"action":"later"}"#,
            r#"{"action":"explode"}"#,
            r#"{"attempt":1}"#,
        ] {
            assert!(serde_json::from_str::<ClaimAnswer>(bad).is_err(), "{bad}");
        }
    }
}
