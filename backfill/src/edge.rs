//! The edge's management API, as the backfill reads it: the trigger list and
//! each trigger's change feed, with retries on transient failures.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use edgehook_core::api::{ChangePage, RouteView, TriggerList, TriggerView};
use edgehook_core::encoding::b64_decode;
use edgehook_core::frames::{self, FramedPage};

use crate::Fatal;

/// Attempts per request before a transient failure becomes an error.
const ATTEMPTS: u32 = 6;

/// A client of one edge.
#[derive(Clone)]
pub struct Edge {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// How a request failed.
enum Failure {
    /// Retrying may help (connection errors, 429, 5xx).
    Transient(anyhow::Error),
    /// It will not (401, 404, a malformed answer).
    Permanent(anyhow::Error),
}

impl Edge {
    /// A client for `base` with `token`.
    pub fn new(base: &str, token: &str) -> Result<Edge> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("edgehook-backfill/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .context("building the HTTP client")?;
        Ok(Edge {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    async fn get_once<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        let (_, body) = self.get_raw_once(path).await?;
        serde_json::from_slice(&body)
            .map_err(|e| Failure::Permanent(anyhow!("GET {path}: unexpected answer: {e}")))
    }

    /// GETs `path`: its content type and body.
    async fn get_raw_once(&self, path: &str) -> Result<(String, bytes::Bytes), Failure> {
        let url = format!("{}{}", self.base, path);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() || e.is_timeout() {
                    Failure::Transient(anyhow!(Fatal::EdgeUnreachable(format!(
                        "{}: {}",
                        self.base,
                        root_cause(&e)
                    ))))
                } else {
                    Failure::Transient(anyhow!("GET {path}: {}", root_cause(&e)))
                }
            })?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(Failure::Permanent(anyhow!(Fatal::BadToken)));
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(Failure::Transient(anyhow!(
                "GET {path}: the edge answered {status}"
            )));
        }
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(Failure::Permanent(anyhow!(
                "GET {path}: the edge answered {status}: {body}"
            )));
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        // A body cut short is a transient failure, like a dropped connection.
        let body = resp
            .bytes()
            .await
            .map_err(|e| Failure::Transient(anyhow!("GET {path}: {}", root_cause(&e))))?;
        Ok((content_type, body))
    }

    /// GETs `path` as JSON, retrying transient failures with backoff.
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str, attempts: u32) -> Result<T> {
        retry(attempts, || self.get_once(path)).await
    }

    /// Every trigger, deleted ones included.
    pub async fn triggers(&self) -> Result<Vec<TriggerView>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let q = cursor
                .as_ref()
                .map(|c| format!("&cursor={c}"))
                .unwrap_or_default();
            // Few attempts: an unreachable edge should fail fast at start.
            let page: TriggerList = self
                .get(
                    &format!("/api/triggers?include_deleted=true&limit=1000{q}"),
                    3,
                )
                .await?;
            out.extend(page.triggers);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// A trigger's routes; `None` for a deleted trigger (its routes are
    /// gone with it at the edge).
    pub async fn routes(&self, trigger_id: &str) -> Result<Option<Vec<RouteView>>> {
        #[derive(serde::Deserialize)]
        struct List {
            routes: Vec<RouteView>,
        }
        let path = format!("/api/triggers/{trigger_id}/routes");
        match retry(ATTEMPTS, || self.get_once::<List>(&path)).await {
            Ok(l) => Ok(Some(l.routes)),
            Err(e) if e.to_string().contains("404") => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading the routes of {trigger_id}")),
        }
    }

    /// One page of a trigger's change feed, asked for as frames (bodies as
    /// bytes, `core::frames`), as it arrived: [`PageBytes::head`] says where
    /// it ends before [`PageBytes::decode`] decodes it. An edge from before
    /// frames ignores the parameter and answers JSON, which is decoded here.
    pub async fn changes(&self, trigger_id: &str, after: i64, limit: u32) -> Result<PageBytes> {
        let path =
            format!("/api/triggers/{trigger_id}/changes?after={after}&limit={limit}&format=frames");
        let context = || format!("reading the change feed of {trigger_id}");
        let (content_type, body) = retry(ATTEMPTS, || self.get_raw_once(&path))
            .await
            .with_context(context)?;
        if content_type.starts_with(frames::CONTENT_TYPE) {
            let head = frames::head(&body).with_context(context)?;
            return Ok(PageBytes {
                head,
                page: Framed::Bytes(body),
                trigger_id: trigger_id.to_string(),
            });
        }
        let page = page_from_json(&body).with_context(context)?;
        Ok(PageBytes {
            head: frames::PageHead {
                next_after: page.next_after,
                has_more: page.has_more,
                count: page.changes.len(),
            },
            page: Framed::Decoded(page),
            trigger_id: trigger_id.to_string(),
        })
    }
}

/// A change-feed page as read, its changes not yet decoded.
pub struct PageBytes {
    head: frames::PageHead,
    page: Framed,
    trigger_id: String,
}

enum Framed {
    Bytes(bytes::Bytes),
    Decoded(FramedPage),
}

impl PageBytes {
    /// Where the page leaves the feed: enough to ask for the next one.
    pub fn head(&self) -> frames::PageHead {
        self.head
    }

    /// The page's changes, every frame checked.
    pub fn decode(self) -> Result<FramedPage> {
        match self.page {
            Framed::Bytes(body) => frames::decode(&body)
                .with_context(|| format!("reading the change feed of {}", self.trigger_id)),
            Framed::Decoded(page) => Ok(page),
        }
    }
}

/// A JSON page (what an edge from before frames answers) as the framed
/// page the sync writes: each base64 `raw_body` decoded beside its change.
fn page_from_json(body: &[u8]) -> Result<FramedPage> {
    let page: ChangePage = serde_json::from_slice(body)?;
    let changes = page
        .changes
        .into_iter()
        .map(|mut c| {
            let body = match c.delivery.raw_body.take() {
                Some(b) => b64_decode(&b).ok_or_else(|| {
                    anyhow!(
                        "delivery {} has a malformed raw_body",
                        c.delivery.delivery_id
                    )
                })?,
                None => Vec::new(),
            };
            Ok((c, body))
        })
        .collect::<Result<_>>()?;
    Ok(FramedPage {
        changes,
        next_after: page.next_after,
        has_more: page.has_more,
    })
}

/// Runs `once` until it succeeds, fails for good, or has failed
/// transiently `attempts` times, with exponential backoff.
async fn retry<T, F, Fut>(attempts: u32, mut once: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        match once().await {
            Ok(v) => return Ok(v),
            Err(Failure::Permanent(e)) => return Err(e),
            Err(Failure::Transient(e)) if attempt >= attempts => return Err(e),
            Err(Failure::Transient(_)) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
                attempt += 1;
            }
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: &str, raw_body: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "seq": 3, "delivery_id": id, "trigger_id": "trg_x", "status": "delivered",
            "received_at": "2026-11-24T00:00:00.000Z", "dedupe_key": null, "attempt_count": 1,
            "signature_status": "verified", "matched_secret": null, "event_type": null,
            "replayed_from": null, "reason": null, "body_bytes": 2, "run": null,
            "headers": {}, "raw_body": raw_body,
        })
    }

    #[test]
    fn a_json_page_decodes_into_the_framed_page() {
        let page = serde_json::json!({
            "changes": [change("dlv_a", Some("e30=")), change("dlv_b", None)],
            "next_after": 3,
            "has_more": true,
        });
        let framed = page_from_json(page.to_string().as_bytes()).expect("decodes");
        assert_eq!((framed.next_after, framed.has_more), (3, true));
        assert_eq!(framed.changes[0].1, b"{}");
        assert_eq!(framed.changes[0].0.delivery.raw_body, None);
        assert!(framed.changes[1].1.is_empty());
    }

    #[test]
    fn a_malformed_body_in_a_json_page_is_an_error() {
        let page = serde_json::json!({
            "changes": [change("dlv_a", Some("not base64!"))],
            "next_after": 3,
            "has_more": false,
        });
        let err = page_from_json(page.to_string().as_bytes()).expect_err("refused");
        assert!(err.to_string().contains("dlv_a"), "{err}");
    }
}
