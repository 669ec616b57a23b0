//! The queue consumer: claim a run, POST it to the target, report the outcome.
//!
//! The consumer holds no state and makes no decisions: the run's Trigger
//! object grants each attempt (a lease, so duplicate messages cannot send a run
//! twice at once), decides retries and dead-lettering from the report, and
//! sends every follow-up message itself. The consumer acks every message it
//! handled and retries only those it could not hand to the object.

use std::time::Duration;

use edgehook_core::dispatch::{outbound_headers, AttemptId};
use edgehook_core::run::AttemptOutcome;
use edgehook_core::trigger::MAX_BODY_BYTES_LIMIT;
use futures_util::future::{join_all, select, Either};
use worker::{
    console_error, js_sys, AbortController, Delay, Env, Fetch, Headers, Message, MessageBatch,
    MessageExt, Method, QueueRetryOptionsBuilder, Request, RequestInit, RequestRedirect,
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

/// What to do with a message.
enum Next {
    Ack,
    RetryIn(u32),
}

/// Handles a batch from the runs queue.
pub async fn handle(batch: MessageBatch<serde_json::Value>, env: Env) -> worker::Result<()> {
    let messages = batch.messages()?;
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
    // Messages run concurrently within a wave, and waves one after
    // another, so the bodies in memory at once stay under the budget.
    let sizes: Vec<u64> = messages
        .iter()
        .map(|m| {
            serde_json::from_value::<RunMessage>(m.body().clone())
                .ok()
                .and_then(|r| r.body_bytes)
                .unwrap_or(MAX_BODY_BYTES_LIMIT)
        })
        .collect();
    for wave in waves(&sizes, MAX_INFLIGHT_BODY_BYTES) {
        join_all(messages[wave].iter().map(|m| process(m, &env, &key))).await;
    }
    Ok(())
}

fn retry(m: &Message<serde_json::Value>, seconds: u32) {
    m.retry_with_options(
        &QueueRetryOptionsBuilder::new()
            .with_delay_seconds(seconds)
            .build(),
    );
}

async fn process(m: &Message<serde_json::Value>, env: &Env, key: &[u8]) {
    let Ok(msg) = serde_json::from_value::<RunMessage>(m.body().clone()) else {
        console_error!("dropping a malformed run message {}", m.id());
        m.ack();
        return;
    };
    match dispatch(&msg, env, key).await {
        Ok(Next::Ack) => m.ack(),
        Ok(Next::RetryIn(s)) => retry(m, s),
        Err(e) => {
            e.into_response();
            retry(m, INFRA_RETRY_SECONDS);
        }
    }
}

async fn dispatch(msg: &RunMessage, env: &Env, key: &[u8]) -> ApiResult<Next> {
    if !msg.dispatch {
        return Ok(Next::Ack);
    }
    let stub = wire::trigger_stub(env, &msg.trigger_id)?;
    let mut resp = wire::call(
        &stub,
        Method::Post,
        &format!("/runs/{}/claim", msg.run_id),
        Headers::new(),
        None,
    )
    .await?;
    if resp.status_code() != 200 {
        return Err(ApiError::Internal(format!(
            "claim answered {}",
            resp.status_code()
        )));
    }
    let bytes = resp.bytes().await?;
    let (answer, body) = wire::unframe::<ClaimAnswer>(&bytes)?;
    let ClaimAnswer::Dispatch {
        attempt,
        delivery_id,
        target_url,
        timeout_seconds,
        headers,
        route_id,
        extra_headers,
        not_before_ms,
    } = answer
    else {
        return Ok(match answer {
            ClaimAnswer::Later { delay_seconds } => Next::RetryIn(delay_seconds.max(1)),
            _ => Next::Ack,
        });
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
        trigger_id: &msg.trigger_id,
        delivery_id: &delivery_id,
        run_id: &msg.run_id,
        route_id: route_id.as_deref(),
        attempt,
    };
    let started = http::now();
    let outbound = outbound_headers(&headers, &extra_headers, id, key, started.secs(), body);
    let sent = send(&target_url, &outbound, body, timeout_seconds).await;
    let duration_ms = (http::now().millis() - started.millis()).max(0) as u64;
    let report = serde_json::to_vec(&Report {
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
    })
    .map_err(|e| ApiError::internal("report json", e))?;
    // A lost report would make the alarm send the run again after its lease;
    // try a few times before leaving it to that.
    let path = format!("/runs/{}/report", msg.run_id);
    let mut last = None;
    for _ in 0..3 {
        match wire::call(&stub, Method::Post, &path, Headers::new(), Some(&report)).await {
            Ok(r) if r.status_code() == 200 => return Ok(Next::Ack),
            Ok(r) => {
                last = Some(ApiError::Internal(format!(
                    "report answered {}",
                    r.status_code()
                )))
            }
            Err(e) => last = Some(e),
        }
    }
    // The attempt happened; the lease and the alarm take it from here.
    if let Some(e) = last {
        e.into_response();
    }
    Ok(Next::Ack)
}

/// What one attempt produced.
struct Sent {
    outcome: AttemptOutcome,
    timed_out: bool,
    excerpt: Option<String>,
}

/// Reads at most `RESPONSE_EXCERPT_BYTES` of a response body, as text.
async fn excerpt(resp: &mut worker::Response) -> Option<String> {
    use futures_util::StreamExt;
    let max = edgehook_core::dispatch::RESPONSE_EXCERPT_BYTES;
    let mut stream = resp.stream().ok()?;
    let mut out = Vec::new();
    while out.len() < max {
        match stream.next().await {
            Some(Ok(chunk)) => out.extend_from_slice(&chunk),
            _ => break,
        }
    }
    // The rest is not read: dropping the stream cancels it.
    out.truncate(max);
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
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(h)
        .with_redirect(RequestRedirect::Manual)
        .with_body(Some(js_sys::Uint8Array::from(body).into()));
    let req = match Request::new_with_init(url, &init) {
        Ok(r) => r,
        Err(_) => return failed("the target URL cannot be requested".into()),
    };
    let controller = AbortController::default();
    let signal = controller.signal();
    let request = Fetch::Request(req);
    let fetch = Box::pin(request.send_with_signal(&signal));
    let timeout = Box::pin(Delay::from(Duration::from_secs(u64::from(timeout_seconds))));
    let result = select(fetch, timeout).await;
    match result {
        Either::Left((Ok(mut resp), _)) => {
            let status = resp.status_code();
            // The excerpt is bounded in time too: a target that answers and
            // then trickles its body does not hold the consumer.
            let read = Box::pin(excerpt(&mut resp));
            let limit = Box::pin(Delay::from(Duration::from_secs(2)));
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
        Either::Left((Err(e), _)) => failed(format!("request failed: {e}")),
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
    use super::waves;

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
