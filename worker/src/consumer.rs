//! The queue consumer: claim a run, POST it to the target, report the outcome.
//!
//! The consumer holds no state and makes no decisions: the run's Trigger
//! object grants each attempt (a lease, so duplicate messages cannot send a run
//! twice at once), decides retries and dead-lettering from the report, and
//! sends every follow-up message itself. The consumer acks every message it
//! handled and retries only those it could not hand to the object, and
//! those whose attempt it gave back unstarted (a second later).
//!
//! A batch is handled in waves bounded by body bytes; within a wave, the
//! runs of one trigger (and up to a hundred of its late runs) are claimed in
//! one call to its object, sent concurrently through six send slots, and
//! reported in calls of at most a hundred. An attempt that could not end
//! within its lease by the time it gets a slot is given back unstarted.

use std::cell::RefCell;
use std::task::{Poll, Waker};
use std::time::Duration;

use edgehook_core::dispatch::{
    may_start, outbound_headers, AttemptId, EXCERPT_WAIT_SECONDS, SEND_SLOTS,
};
use edgehook_core::run::AttemptOutcome;
use edgehook_core::trigger::MAX_BODY_BYTES_LIMIT;
use futures_util::future::{join_all, select, Either};
use futures_util::FutureExt;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    console_error, js_sys, web_sys, AbortController, Delay, Env, Headers, MessageBatch, MessageExt,
    QueueRetryOptionsBuilder, RawMessage,
};

use crate::error::{ApiError, ApiResult};
use crate::http;
use crate::keys;
use crate::wire::{self, ClaimAnswer, Report, RunMessage};

/// Delay before retrying a message the consumer could not process.
const INFRA_RETRY_SECONDS: u32 = 5;
/// Body bytes one batch handles at once. A run's body is held three or four
/// times while it is sent (the object's frame, the claim's response, the
/// outbound request), and the isolate also serves ingest, so a 10 MiB body
/// goes alone.
const MAX_INFLIGHT_BODY_BYTES: u64 = 8 * 1024 * 1024;

/// Splits a batch, in order, into waves whose body sizes add up to at most
/// `budget`; a message larger than the budget goes alone.
fn waves(sizes: &[u64], budget: u64) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut sum) = (0, 0u64);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && sum.saturating_add(size) > budget {
            out.push(start..i);
            start = i;
            sum = 0;
        }
        sum = sum.saturating_add(size);
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// The Worker variable that sets the consumer's send slots: by default
/// [`SEND_SLOTS`], the platform's limit. A local runtime has no such limit,
/// so `make dev` (and the tests and the bench, like it) set it higher there
/// (`--var DISPATCH_SEND_SLOTS:100`); in production more than six would only
/// move the waiting back into the runtime's queue.
const SEND_SLOTS_VAR: &str = "DISPATCH_SEND_SLOTS";
/// The most send slots the variable may ask for.
const MAX_SEND_SLOTS: usize = 1000;

/// The consumer's send slots: at most so many attempts of one invocation
/// ([`SEND_SLOTS`] in production, as the platform allows) wait for their
/// answer's headers at once; the others wait here, in the order they asked,
/// and their timeouts start only when their requests do. (Left to the
/// runtime, they would wait in its queue with their timeouts running, and a
/// slow target would see attempts time out that were never sent.)
struct Slots {
    capacity: u64,
    state: RefCell<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// Tickets handed out: the `n`th asker holds ticket `n`.
    issued: u64,
    /// Slots given back.
    released: u64,
    /// Askers waiting for a slot.
    waiting: Vec<Waker>,
}

impl Slots {
    fn new(capacity: usize) -> Slots {
        Slots {
            capacity: capacity.clamp(1, MAX_SEND_SLOTS) as u64,
            state: RefCell::default(),
        }
    }

    /// The slots `env` asks for ([`SEND_SLOTS_VAR`]), or the platform's.
    fn of(env: &Env) -> Slots {
        let asked = env
            .var(SEND_SLOTS_VAR)
            .ok()
            .and_then(|v| v.to_string().trim().parse::<usize>().ok());
        Slots::new(asked.unwrap_or(SEND_SLOTS))
    }

    /// Waits for a slot, first come first served. Every asker must be
    /// awaited to its slot (the consumer drops no attempt half-way), since
    /// the askers behind it wait for its ticket.
    async fn acquire(&self) -> Slot<'_> {
        let ticket = {
            let mut s = self.state.borrow_mut();
            s.issued += 1;
            s.issued - 1
        };
        std::future::poll_fn(|cx| {
            let mut s = self.state.borrow_mut();
            if ticket < s.released + self.capacity {
                Poll::Ready(())
            } else {
                s.waiting.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        Slot(self)
    }
}

/// A send slot, given back when dropped (once the answer's headers came).
struct Slot<'a>(&'a Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let waiting = {
            let mut s = self.0.state.borrow_mut();
            s.released += 1;
            std::mem::take(&mut s.waiting)
        };
        for w in waiting {
            w.wake();
        }
    }
}

/// A message with its parsed run.
type Queued<'a> = (&'a RawMessage, RunMessage);

/// What to do with a message.
enum Next {
    Ack,
    RetryIn(u32),
}

/// A run message's body, read as JSON. The messages are read raw and
/// parsed here, once each: workers-rs's typed messages go through
/// `serde_wasm_bindgen`'s deserializer, about 8 KB of Wasm for four fields.
fn run_message(body: &JsValue) -> Option<RunMessage> {
    let text = js_sys::JSON::stringify(body).ok()?.as_string()?;
    edgehook_core::encoding::json_from_str(&text).ok()
}

/// Handles a batch from the runs queue.
pub async fn handle(batch: MessageBatch<serde_json::Value>, env: Env) -> worker::Result<()> {
    let messages: Vec<RawMessage> = batch.raw_iter().collect();
    let key = match keys::dispatch_key(&env) {
        Ok(k) => k,
        Err(e) => {
            // Never send unsigned: keep the messages until the key is fixed.
            e.into_response();
            for m in &messages {
                retry(m, 60);
            }
            return Ok(());
        }
    };
    let mut runs: Vec<Option<RunMessage>> =
        messages.iter().map(|m| run_message(&m.body())).collect();
    // Messages run concurrently within a wave, and waves one after
    // another, so the bodies in memory at once stay under the budget.
    let sizes: Vec<u64> = runs
        .iter()
        .map(|r| {
            r.as_ref()
                .and_then(|r| r.body_bytes)
                .unwrap_or(MAX_BODY_BYTES_LIMIT)
        })
        .collect();
    let invocation = Invocation {
        env: &env,
        key: &key,
        slots: Slots::of(&env),
    };
    for wave in waves(&sizes, MAX_INFLIGHT_BODY_BYTES) {
        // The late runs a claim may add share what the wave leaves of the
        // budget.
        let spare = MAX_INFLIGHT_BODY_BYTES.saturating_sub(sizes[wave.clone()].iter().sum());
        // One claim call and one report call per trigger in the wave, its
        // runs sent concurrently in between.
        let mut groups: Vec<(String, Vec<Queued<'_>>)> = Vec::new();
        for (m, run) in messages[wave.clone()].iter().zip(&mut runs[wave]) {
            let Some(msg) = run.take() else {
                console_error!("dropping a malformed run message {}", m.id());
                m.ack();
                continue;
            };
            if !msg.dispatch {
                m.ack();
                continue;
            }
            match groups.iter_mut().find(|(t, _)| *t == msg.trigger_id) {
                Some((_, g)) if g.len() < wire::MAX_BATCH_RUNS => g.push((m, msg)),
                _ => groups.push((msg.trigger_id.clone(), vec![(m, msg)])),
            }
        }
        let ahead_bytes = spare / groups.len().max(1) as u64;
        join_all(
            groups
                .iter()
                .map(|(trigger, group)| invocation.process_group(trigger, group, ahead_bytes)),
        )
        .await;
    }
    Ok(())
}

fn retry(m: &RawMessage, seconds: u32) {
    m.retry_with_options(
        &QueueRetryOptionsBuilder::new()
            .with_delay_seconds(seconds)
            .build(),
    );
}

/// What every group of a batch shares: the bindings, the dispatch key and
/// the invocation's send slots.
struct Invocation<'a> {
    env: &'a Env,
    key: &'a [u8],
    slots: Slots,
}

impl Invocation<'_> {
    /// Claims a trigger's runs in one call (with up to
    /// [`wire::MAX_AHEAD_RUNS`] of its late runs, within `ahead_bytes`),
    /// sends those granted concurrently, and reports them. A group the
    /// object cannot be reached for is retried as a whole; the claims it
    /// may have granted end with their leases and the alarm sends those
    /// runs again.
    async fn process_group(&self, trigger_id: &str, group: &[Queued<'_>], ahead_bytes: u64) {
        match self.dispatch_group(trigger_id, group, ahead_bytes).await {
            Ok(nexts) => {
                for ((m, _), next) in group.iter().zip(nexts) {
                    match next {
                        Next::Ack => m.ack(),
                        Next::RetryIn(s) => retry(m, s),
                    }
                }
            }
            Err(e) => {
                e.into_response();
                for (m, _) in group {
                    retry(m, INFRA_RETRY_SECONDS);
                }
            }
        }
    }

    async fn dispatch_group(
        &self,
        trigger_id: &str,
        group: &[Queued<'_>],
        ahead_bytes: u64,
    ) -> ApiResult<Vec<Next>> {
        let (slots, key) = (&self.slots, self.key);
        let rpc = wire::trigger_rpc(self.env, trigger_id)?;
        let claim = serde_json::to_vec(&wire::ClaimBatch {
            run_ids: group.iter().map(|(_, m)| m.run_id.clone()).collect(),
            ahead: wire::MAX_AHEAD_RUNS,
            ahead_bytes,
        })
        .map_err(|e| ApiError::internal("claim json", e))?;
        let (status, bytes) = wire::batch_by_rpc(&rpc, wire::Batch::Claim, &claim).await?;
        if status != 200 {
            return Err(ApiError::Internal(format!("claim answered {status}")));
        }
        let (answers, mut bodies) = wire::unframe::<Vec<wire::Claimed>>(&bytes)?;
        if answers.len() < group.len() {
            return Err(ApiError::Internal(
                "claim answered fewer runs than asked".into(),
            ));
        }
        let mut nexts = Vec::with_capacity(group.len());
        let mut sends = Vec::new();
        for (i, claimed) in answers.into_iter().enumerate() {
            let len = usize::try_from(claimed.body_len).unwrap_or(usize::MAX);
            let body = bodies
                .get(..len)
                .ok_or_else(|| ApiError::Internal("claim frame too short".into()))?;
            bodies = &bodies[len..];
            // The batch's own runs first, in order; then late runs taken
            // ahead, which have no message here to ack or retry.
            let (run_id, own) = match group.get(i) {
                Some((_, msg)) => (msg.run_id.clone(), true),
                None => match claimed.run_id {
                    Some(id) => (id, false),
                    None => return Err(ApiError::Internal("a claim ahead names no run".into())),
                },
            };
            match claimed.answer {
                ClaimAnswer::Drop if own => nexts.push(Next::Ack),
                ClaimAnswer::Later { delay_seconds } if own => {
                    nexts.push(Next::RetryIn(delay_seconds.max(1)));
                }
                ClaimAnswer::Drop | ClaimAnswer::Later { .. } => {}
                dispatch @ ClaimAnswer::Dispatch { .. } => {
                    let own = own.then(|| {
                        nexts.push(Next::Ack);
                        nexts.len() - 1
                    });
                    sends.push(
                        attempt(trigger_id, run_id, dispatch, body, key, slots)
                            .map(move |r| (own, r)),
                    );
                }
            }
        }
        let mut reports = Vec::with_capacity(sends.len());
        for (own, report) in join_all(sends).await {
            let Some(report) = report else { continue };
            if let (true, Some(i)) = (report.report.not_started, own) {
                // Given back unstarted: its message comes back in a second.
                nexts[i] = Next::RetryIn(1);
            }
            reports.push(report);
        }
        // At most `MAX_BATCH_RUNS` reports a call: with runs taken ahead, a
        // batch may have made twice as many attempts.
        while !reports.is_empty() {
            let rest = reports.split_off(reports.len().min(wire::MAX_BATCH_RUNS));
            report(&rpc, wire::ReportBatch { reports }).await;
            reports = rest;
        }
        Ok(nexts)
    }
}

/// Reports attempts in one call, trying a few times: a lost report would
/// make the alarm send the runs again after their leases.
async fn report(rpc: &wire::TriggerRpc, batch: wire::ReportBatch) {
    let json = match serde_json::to_vec(&batch) {
        Ok(r) => r,
        Err(e) => {
            ApiError::internal("report json", e).into_response();
            return;
        }
    };
    let mut last = None;
    for _ in 0..3 {
        match wire::batch_by_rpc(rpc, wire::Batch::Report, &json).await {
            Ok((200, _)) => return,
            Ok((status, _)) => last = Some(ApiError::Internal(format!("report answered {status}"))),
            Err(e) => last = Some(e),
        }
    }
    // The attempts happened; the leases and the alarm take it from here.
    if let Some(e) = last {
        e.into_response();
    }
}

/// Makes one granted attempt and returns its report.
async fn attempt(
    trigger_id: &str,
    run_id: String,
    answer: ClaimAnswer,
    body: &[u8],
    key: &[u8],
    slots: &Slots,
) -> Option<wire::RunReport> {
    let ClaimAnswer::Dispatch {
        attempt,
        delivery_id,
        target_url,
        timeout_seconds,
        headers,
        route_id,
        extra_headers,
        not_before_ms,
        lease_until_ms,
    } = answer
    else {
        return None;
    };
    // The route's rate limit gave this attempt a slot (at most a few
    // seconds away): wait for it.
    if let Some(at) = not_before_ms {
        let wait = at - http::now().millis();
        if wait > 0 {
            Delay::from(Duration::from_millis(wait as u64)).await;
        }
    }
    let id = AttemptId {
        trigger_id,
        delivery_id: &delivery_id,
        run_id: &run_id,
        route_id: route_id.as_deref(),
        attempt,
    };
    let slot = slots.acquire().await;
    let started = http::now();
    if let Some(lease) = lease_until_ms {
        if !may_start(started, edgehook_core::Timestamp(lease), timeout_seconds) {
            // Its lease would end before it did: another consumer could be
            // granted the run meanwhile. No request is made.
            drop(slot);
            return Some(wire::RunReport {
                run_id,
                report: Report {
                    attempt,
                    outcome: AttemptOutcome {
                        status: None,
                        error: Some("not started: every send slot stayed busy".into()),
                    },
                    started_at_ms: None,
                    duration_ms: None,
                    error_class: None,
                    response_excerpt: None,
                    not_started: true,
                },
            });
        }
    }
    let outbound = outbound_headers(&headers, &extra_headers, id, key, started.secs(), body);
    let sent = send(&target_url, &outbound, body, timeout_seconds, slot).await;
    let duration_ms = (http::now().millis() - started.millis()).max(0) as u64;
    Some(wire::RunReport {
        run_id,
        report: Report {
            attempt,
            error_class: edgehook_core::dispatch::error_class(
                sent.outcome.status,
                sent.outcome.error.as_deref(),
                sent.timed_out,
            )
            .map(str::to_string),
            outcome: sent.outcome,
            started_at_ms: Some(started.millis()),
            duration_ms: Some(duration_ms),
            response_excerpt: sent.excerpt,
            not_started: false,
        },
    })
}

/// What one attempt produced.
struct Sent {
    outcome: AttemptOutcome,
    timed_out: bool,
    excerpt: Option<String>,
}

/// Responses at most this long (by their `Content-Length`) are read whole
/// for their excerpt, in one `arrayBuffer()`; longer or undeclared ones are
/// streamed until the excerpt is full and the rest is cancelled.
const READ_WHOLE_BYTES: u64 = 64 * 1024;

/// Reads at most `RESPONSE_EXCERPT_BYTES` of a response body, as text.
async fn excerpt(resp: web_sys::Response) -> Option<String> {
    let max = edgehook_core::dispatch::RESPONSE_EXCERPT_BYTES;
    let declared = resp
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|l| l.trim().parse::<u64>().ok());
    let out = match declared {
        Some(0) => return None,
        Some(len) if len <= READ_WHOLE_BYTES => {
            let buf = JsFuture::from(resp.array_buffer().ok()?).await.ok()?;
            let bytes = js_sys::Uint8Array::new(&buf);
            bytes
                .subarray(
                    0,
                    bytes.length().min(u32::try_from(max).unwrap_or(u32::MAX)),
                )
                .to_vec()
        }
        _ => {
            use futures_util::StreamExt;
            let mut stream = worker::Response::from(resp).stream().ok()?;
            let mut out = Vec::new();
            while out.len() < max {
                match stream.next().await {
                    Some(Ok(chunk)) => out.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            // The rest is not read: dropping the stream cancels it.
            out.truncate(max);
            out
        }
    };
    if out.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// POSTs one attempt, with a timeout. Redirects are not followed: a 3xx is a
/// failed attempt, as the target's address should be fixed in the route.
async fn send(
    url: &str,
    headers: &edgehook_core::HeaderList,
    body: &[u8],
    timeout_seconds: u32,
    slot: Slot<'_>,
) -> Sent {
    let failed = |error: String| Sent {
        outcome: AttemptOutcome {
            status: None,
            error: Some(error),
        },
        timed_out: false,
        excerpt: None,
    };
    let h = Headers::new();
    for (name, value) in headers.iter() {
        // A stored header the runtime refuses to send is skipped, not fatal.
        let _ = h.append(name, value);
    }
    let body: JsValue = js_sys::Uint8Array::from(body).into();
    let Ok(req) = crate::http::outbound(
        url,
        "POST",
        &h,
        Some(&body),
        // A target's redirect is its answer: it is not followed.
        web_sys::RequestRedirect::Manual,
    ) else {
        return failed("the target URL cannot be requested".into());
    };
    let controller = AbortController::default();
    let signal = controller.signal();
    // The runtime's `fetch`, called directly: workers-rs's `Fetch` wraps
    // the answer in a `worker::Response`, which reads its `cf` and
    // `webSocket` properties, and this path needs only the status and the
    // start of the body.
    let init = web_sys::RequestInit::new();
    init.set_signal(Some(&signal));
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let fetch = Box::pin(async {
        let resp = JsFuture::from(global.fetch_with_request_and_init(&req, &init)).await?;
        resp.dyn_into::<web_sys::Response>()
    });
    let timeout = Box::pin(Delay::from(Duration::from_secs(u64::from(timeout_seconds))));
    let result = select(fetch, timeout).await;
    // The headers came (or never will): the slot goes to the next send.
    drop(slot);
    match result {
        Either::Left((Ok(resp), _)) => {
            let status = resp.status();
            // The excerpt is bounded in time too: a target that answers and
            // then trickles its body does not hold the consumer.
            let read = Box::pin(excerpt(resp));
            let limit = Box::pin(Delay::from(Duration::from_secs(
                EXCERPT_WAIT_SECONDS.unsigned_abs(),
            )));
            let excerpt = match select(read, limit).await {
                Either::Left((e, _)) => e,
                Either::Right(_) => None,
            };
            Sent {
                outcome: AttemptOutcome {
                    status: Some(status),
                    error: None,
                },
                timed_out: false,
                excerpt,
            }
        }
        Either::Left((Err(e), _)) => failed(format!("request failed: {}", worker::Error::from(e))),
        Either::Right(_) => {
            controller.abort();
            Sent {
                timed_out: true,
                ..failed(format!("timed out after {timeout_seconds}s"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{waves, Slots, SEND_SLOTS};
    use std::future::Future;
    use std::task::{Context, Poll};

    #[test]
    fn send_slots_go_first_come_first_served_and_no_more_than_six_at_once() {
        let slots = Slots::new(SEND_SLOTS);
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let mut held = Vec::new();
        for _ in 0..SEND_SLOTS {
            match Box::pin(slots.acquire()).as_mut().poll(&mut cx) {
                Poll::Ready(slot) => held.push(slot),
                Poll::Pending => panic!("a free slot was refused"),
            }
        }
        let mut seventh = Box::pin(slots.acquire());
        let mut eighth = Box::pin(slots.acquire());
        assert!(seventh.as_mut().poll(&mut cx).is_pending(), "six are busy");
        assert!(eighth.as_mut().poll(&mut cx).is_pending());
        // One answer's headers came: its slot goes to the first in line.
        held.pop();
        assert!(
            eighth.as_mut().poll(&mut cx).is_pending(),
            "not before the seventh"
        );
        let Poll::Ready(slot) = seventh.as_mut().poll(&mut cx) else {
            panic!("the seventh waits for a free slot");
        };
        assert!(
            eighth.as_mut().poll(&mut cx).is_pending(),
            "six are busy again"
        );
        drop(slot);
        assert!(eighth.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn waves_stay_within_the_budget_and_keep_order() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(waves(&[1, 2, 3], 100), vec![0..3]);
        assert_eq!(
            waves(&[10 * MIB, 10 * MIB, MIB, MIB, 10 * MIB], 16 * MIB),
            vec![0..1, 1..4, 4..5]
        );
        // A body over the budget goes alone rather than never.
        assert_eq!(waves(&[40 * MIB, 1], 16 * MIB), vec![0..1, 1..2]);
        assert!(waves(&[], 16 * MIB).is_empty());
    }
}
