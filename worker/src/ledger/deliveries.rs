//! Deliveries: dedupe holders, inserts, bodies, reads, lists and the change feed.

#[allow(clippy::wildcard_imports)]
use super::*;
use edgehook_core::frames::ChangeWithBody;
use edgehook_core::schema;

row! {
    /// A dedupe holder.
    #[derive(Debug, Clone)]
    pub struct Holder {
        /// Its delivery id.
        pub id: String,
        /// Its run, if any.
        pub run_id: Option<String>,
        /// Its status.
        pub status: String,
    }
}

/// A delivery to insert.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    /// `dlv_…`.
    pub id: &'a str,
    /// Receive time.
    pub received_at: Timestamp,
    /// Initial status.
    pub status: DeliveryStatus,
    /// Dedupe key, if any.
    pub dedupe_key: Option<&'a str>,
    /// Signature status name.
    pub signature_status: &'a str,
    /// `current` / `previous`.
    pub matched_secret: Option<&'a str>,
    /// Event type.
    pub event_type: Option<&'a str>,
    /// The replayed delivery.
    pub replayed_from: Option<&'a str>,
    /// The replay's idempotency key.
    pub replay_key: Option<&'a str>,
    /// Why ignored or rejected.
    pub reason: Option<&'a str>,
    /// Stored (redacted) headers.
    pub headers: &'a HeaderList,
    /// The body's size as received, when only an excerpt is stored.
    pub received_bytes: Option<u64>,
    /// The run, if the delivery gets one (its first, when it has several).
    pub run_id: Option<&'a str>,
    /// The query string it arrived with (secret-looking values redacted).
    pub query: Option<&'a str>,
}

row! {
    /// One delivery row joined with its run.
    #[derive(Debug, Clone)]
    struct Row {
        id: String,
        seq: i64,
        received_at: i64,
        status: String,
        dedupe_key: Option<String>,
        attempt_count: i64,
        signature_status: String,
        matched_secret: Option<String>,
        event_type: Option<String>,
        replayed_from: Option<String>,
        reason: Option<String>,
        headers: String,
        body_bytes: i64,
        body_truncated: i64,
        run_id: Option<String>,
        r_status: Option<String>,
        r_attempts: Option<i64>,
        r_next_attempt_at: Option<i64>,
        r_last_error: Option<String>,
        r_last_status_code: Option<i64>,
        r_dead_lettered_at: Option<i64>,
        r_created_at: Option<i64>,
        r_updated_at: Option<i64>,
        r_resends: Option<i64>,
        r_route_id: Option<String>,
    }
}

const ROW_SELECT: &str =
    "SELECT d.id, d.seq, d.received_at, d.status, d.dedupe_key, d.attempt_count,
    d.signature_status, d.matched_secret, d.event_type, d.replayed_from, d.reason, d.headers,
    d.body_bytes, d.body_truncated, d.run_id, r.status AS r_status, r.attempts AS r_attempts,
    r.next_attempt_at AS r_next_attempt_at, r.last_error AS r_last_error,
    r.last_status_code AS r_last_status_code, r.dead_lettered_at AS r_dead_lettered_at,
    r.created_at AS r_created_at, r.updated_at AS r_updated_at, r.resends AS r_resends,
    r.route_id AS r_route_id
    FROM deliveries d LEFT JOIN runs r ON r.id = d.run_id";

/// Adds `received_at` bounds (`after` inclusive, `before` exclusive) to a
/// query being built.
/// What a delivery list is narrowed to.
#[derive(Debug, Default, Clone, Copy)]
pub struct ListFilter<'a> {
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only this event type.
    pub event_type: Option<&'a str>,
    /// Received at or after.
    pub received_after: Option<Timestamp>,
    /// Received before.
    pub received_before: Option<Timestamp>,
}

fn received_between(
    query: &mut String,
    args: &mut Vec<V>,
    after: Option<Timestamp>,
    before: Option<Timestamp>,
) {
    if let Some(t) = after {
        query.push_str(" AND received_at >= ?");
        args.push(i(t.millis()));
    }
    if let Some(t) = before {
        query.push_str(" AND received_at < ?");
        args.push(i(t.millis()));
    }
}

impl Ledger {
    /// The dedupe holder for `key` received at or after `cutoff`.
    pub fn find_holder(&self, key: &str, cutoff: Timestamp) -> ApiResult<Option<Holder>> {
        thread_local! {
            /// The query, made once: it names the statuses that hold a key.
            static QUERY: String = schema::find_holder_query();
        }
        QUERY.with(|query| {
            Ok(self
                .rows::<Holder>("find holder", query, vec![s(key), i(cutoff.millis())])?
                .into_iter()
                .next())
        })
    }

    /// Counts one more arrival of a delivery.
    pub fn bump_attempt(&self, delivery_id: &str) -> ApiResult<()> {
        let seq = self.next_seqs(1)?;
        self.exec(
            "bump attempt",
            "UPDATE deliveries SET attempt_count = attempt_count + 1, seq = ? WHERE id = ?",
            vec![i(seq), s(delivery_id)],
        )?;
        Ok(())
    }

    /// Inserts a delivery with its body (or the excerpt of it to keep), if
    /// it fits `budget` (bytes the ledger may hold; `None`: no check).
    pub fn insert_delivery(
        &self,
        d: &NewDelivery<'_>,
        body: &[u8],
        budget: Option<u64>,
    ) -> ApiResult<()> {
        let headers =
            serde_json::to_string(d.headers).map_err(|e| ApiError::internal("headers json", e))?;
        let size = edgehook_core::ingest::stored_size(headers.len(), body.len());
        // The budget is checked, the bytes are counted and the change
        // sequence moves in one statement: the bytes counter (made by the
        // schema's third step) moves only if the write fits.
        row! {
            struct Counter {
                name: String,
                value: i64,
            }
        }
        let counted = self.rows::<Counter>(
            "count stored bytes",
            schema::COUNT_STORED_BYTES,
            vec![
                i(size.min(i64::MAX as u64) as i64),
                i(budget.unwrap_or(u64::MAX).min(i64::MAX as u64) as i64),
            ],
        )?;
        let seq = counted.iter().find(|c| c.name == "seq").map(|c| c.value);
        let Some(seq) = seq.filter(|_| counted.iter().any(|c| c.name == STORED_BYTES)) else {
            let used = self.stored_bytes()?;
            return match budget {
                Some(budget) if !edgehook_core::ingest::within_budget(used, size, budget) => {
                    Err(ApiError::StorageBudgetExceeded { used, budget })
                }
                _ => Err(ApiError::Internal(
                    "the seq or stored_bytes counter is missing".into(),
                )),
            };
        };
        let received = d.received_bytes.unwrap_or(body.len() as u64);
        self.exec(
            "insert delivery",
            schema::INSERT_DELIVERY,
            vec![
                s(d.id),
                i(seq),
                i(d.received_at.millis()),
                s(d.status.as_str()),
                opt(d.dedupe_key),
                s(d.signature_status),
                opt(d.matched_secret),
                opt(d.event_type),
                opt(d.replayed_from),
                opt(d.replay_key),
                opt(d.reason),
                s(headers),
                i(received.min(i64::MAX as u64) as i64),
                opt(d.run_id),
                i(i64::from(received > body.len() as u64)),
                i(size as i64),
                opt(d.query),
            ],
        )?;
        for (idx, chunk) in body.chunks(BODY_CHUNK).enumerate() {
            self.exec(
                "insert body",
                schema::INSERT_BODY,
                vec![s(d.id), i(idx as i64), V::Blob(chunk.to_vec())],
            )?;
        }
        Ok(())
    }

    /// A delivery's raw body.
    pub fn body(&self, delivery_id: &str) -> ApiResult<Vec<u8>> {
        let cursor = self.exec(
            "read body",
            "SELECT data FROM bodies WHERE delivery_id = ? ORDER BY idx",
            vec![s(delivery_id)],
        )?;
        let mut out = Vec::new();
        for row in cursor.raw() {
            let row = row.map_err(sql_err("read body"))?;
            if let Some(V::Blob(bytes)) = row.into_iter().next() {
                out.extend_from_slice(&bytes);
            }
        }
        Ok(out)
    }

    /// A delivery's stored headers and raw body, read in one query (a
    /// claim and a replay need both).
    pub fn headers_and_body(&self, delivery_id: &str) -> ApiResult<(HeaderList, Vec<u8>)> {
        // The headers come with the first chunk only; a delivery without a
        // body has one row with no chunk.
        let cursor = self.exec(
            "read headers and body",
            "SELECT CASE WHEN b.idx IS NULL OR b.idx = 0 THEN d.headers END, b.data
             FROM deliveries d LEFT JOIN bodies b ON b.delivery_id = d.id
             WHERE d.id = ? ORDER BY b.idx",
            vec![s(delivery_id)],
        )?;
        let mut headers = None;
        let mut body = Vec::new();
        for row in cursor.raw() {
            let mut cols = row.map_err(sql_err("read headers and body"))?.into_iter();
            if let Some(V::String(text)) = cols.next() {
                headers = Some(text);
            }
            if let Some(V::Blob(bytes)) = cols.next() {
                body.extend_from_slice(&bytes);
            }
        }
        let headers = match headers {
            Some(text) => self.parse_headers(&text)?,
            None => HeaderList::new(),
        };
        Ok((headers, body))
    }

    /// Stored headers as read: redacted again, so rows stored before
    /// signatures were redacted never leave the ledger whole.
    fn parse_headers(&self, text: &str) -> ApiResult<HeaderList> {
        let headers: HeaderList = edgehook_core::encoding::json_from_str(text)
            .map_err(|e| ApiError::internal("headers json", e))?;
        let creds: Vec<&str> = self.redact.credentials.iter().map(String::as_str).collect();
        let sigs: Vec<&str> = self.redact.signatures.iter().map(String::as_str).collect();
        Ok(headers.redacted(&creds).signatures_redacted(&sigs))
    }

    /// Ids of deliveries matching a bulk-replay filter, oldest first; never
    /// rejected ones, and replays only when `include_replays`.
    pub fn replay_candidates(
        &self,
        status: Option<DeliveryStatus>,
        after: Option<Timestamp>,
        before: Option<Timestamp>,
        event_type: Option<&str>,
        include_replays: bool,
        limit: u32,
    ) -> ApiResult<Vec<String>> {
        row! {
            struct Id {
                id: String,
            }
        }
        let mut query = String::from("SELECT id FROM deliveries WHERE status != 'rejected'");
        if !include_replays {
            query.push_str(" AND replayed_from IS NULL");
        }
        let mut args = Vec::new();
        if let Some(st) = status {
            query.push_str(" AND status = ?");
            args.push(s(st.as_str()));
        }
        received_between(&mut query, &mut args, after, before);
        if let Some(e) = event_type {
            query.push_str(" AND event_type = ?");
            args.push(s(e));
        }
        query.push_str(" ORDER BY received_at, id LIMIT ?");
        args.push(i(i64::from(limit)));
        Ok(self
            .rows::<Id>("replay candidates", &query, args)?
            .into_iter()
            .map(|r| r.id)
            .collect())
    }

    fn to_delivery(&self, trigger_id: &str, row: Row, full: bool) -> ApiResult<Delivery> {
        self.to_delivery_with(trigger_id, row, full, None)
    }

    /// As `to_delivery`; with `page_runs`, the delivery is part of a
    /// change-feed page, which reads the runs and the bodies of all its
    /// deliveries at once: its runs are these, and its body is left to the
    /// page (`raw_body` is `None`).
    fn to_delivery_with(
        &self,
        trigger_id: &str,
        row: Row,
        full: bool,
        page_runs: Option<Vec<edgehook_core::api::RunDetail>>,
    ) -> ApiResult<Delivery> {
        let run = match (&row.run_id, &row.r_status) {
            (Some(run_id), Some(status)) => {
                let status = RunStatus::parse(status).unwrap_or(RunStatus::Failed);
                Some(RunView {
                    run_id: run_id.clone(),
                    route_id: row.r_route_id.clone(),
                    status,
                    attempts: row.r_attempts.unwrap_or(0).max(0) as u32,
                    last_error: row.r_last_error.clone(),
                    last_status_code: row.r_last_status_code.and_then(|c| u16::try_from(c).ok()),
                    next_attempt_at: if status == RunStatus::Queued {
                        row.r_next_attempt_at.map(|t| Timestamp(t).to_rfc3339())
                    } else {
                        None
                    },
                    dead_lettered_at: row.r_dead_lettered_at.map(|t| Timestamp(t).to_rfc3339()),
                    created_at: Timestamp(row.r_created_at.unwrap_or(0)).to_rfc3339(),
                    updated_at: Timestamp(row.r_updated_at.unwrap_or(0)).to_rfc3339(),
                    resends: row.r_resends.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
                })
            }
            _ => None,
        };
        let (headers, raw_body, runs) = if full {
            let headers = self.parse_headers(&row.headers)?;
            let (runs, raw_body) = match page_runs {
                Some(r) => (r, None),
                None => (self.run_details(&row.id)?, Some(b64(&self.body(&row.id)?))),
            };
            (Some(headers), raw_body, Some(runs))
        } else {
            (None, None, None)
        };
        Ok(Delivery {
            delivery_id: row.id,
            trigger_id: trigger_id.to_string(),
            status: DeliveryStatus::parse(&row.status).unwrap_or(DeliveryStatus::Failed),
            received_at: Timestamp(row.received_at).to_rfc3339(),
            dedupe_key: row.dedupe_key,
            attempt_count: row.attempt_count.max(0) as u32,
            signature_status: row.signature_status,
            matched_secret: row.matched_secret,
            event_type: row.event_type,
            replayed_from: row.replayed_from,
            reason: row.reason,
            body_bytes: row.body_bytes.max(0) as u64,
            body_truncated: row.body_truncated != 0,
            run,
            runs,
            headers,
            raw_body,
        })
    }

    /// One delivery, with headers and body when `full`.
    pub fn delivery(&self, trigger_id: &str, id: &str, full: bool) -> ApiResult<Option<Delivery>> {
        let rows = self.rows::<Row>(
            "read delivery",
            &format!("{ROW_SELECT} WHERE d.id = ?"),
            vec![s(id)],
        )?;
        rows.into_iter()
            .next()
            .map(|r| self.to_delivery(trigger_id, r, full))
            .transpose()
    }

    /// The replay created earlier for (`original`, `key`), if any.
    pub fn replay_by_key(
        &self,
        original: &str,
        key: &str,
    ) -> ApiResult<Option<(String, Option<String>)>> {
        row! {
            struct R {
                id: String,
                run_id: Option<String>,
            }
        }
        Ok(self
            .rows::<R>(
                "replay by key",
                "SELECT id, run_id FROM deliveries WHERE replayed_from = ? AND replay_key = ?",
                vec![s(original), s(key)],
            )?
            .into_iter()
            .next()
            .map(|r| (r.id, r.run_id)))
    }

    /// A page of deliveries, newest first. `before` is the last row of the
    /// previous page as (received_at, id).
    pub fn list(
        &self,
        trigger_id: &str,
        filter: &ListFilter<'_>,
        before: Option<(i64, String)>,
        limit: u32,
    ) -> ApiResult<Vec<(Delivery, i64)>> {
        let mut query = format!("{ROW_SELECT} WHERE 1 = 1");
        let mut args = Vec::new();
        if let Some(st) = filter.status {
            query.push_str(" AND d.status = ?");
            args.push(s(st.as_str()));
        }
        if let Some(e) = filter.event_type {
            query.push_str(" AND d.event_type = ?");
            args.push(s(e));
        }
        received_between(
            &mut query,
            &mut args,
            filter.received_after,
            filter.received_before,
        );
        if let Some((at, id)) = before {
            query.push_str(" AND (d.received_at < ? OR (d.received_at = ? AND d.id < ?))");
            args.extend([i(at), i(at), s(id)]);
        }
        query.push_str(" ORDER BY d.received_at DESC, d.id DESC LIMIT ?");
        args.push(i(i64::from(limit)));
        let rows = self.rows::<Row>("list deliveries", &query, args)?;
        rows.into_iter()
            .map(|r| {
                let at = r.received_at;
                self.to_delivery(trigger_id, r, false).map(|d| (d, at))
            })
            .collect()
    }

    /// Changes after `after`, at most `limit` and about `max_bytes` of bodies
    /// (always at least one change), each with its raw body beside it (its
    /// `raw_body` is `None`: the caller encodes the body as its format
    /// wants). Returns the page and whether more follow.
    pub fn changes(
        &self,
        trigger_id: &str,
        after: i64,
        limit: u32,
        max_bytes: u64,
    ) -> ApiResult<(Vec<ChangeWithBody>, bool)> {
        let rows = self.json_rows::<Row>(
            "changes",
            &format!("{ROW_SELECT} WHERE d.seq > ? ORDER BY d.seq LIMIT ?"),
            vec![i(after), i(i64::from(limit) + 1)],
        )?;
        let mut more = rows.len() > limit as usize;
        // The page ends where its bytes would pass `max_bytes` (but holds at
        // least one delivery); its bodies are then read in one query.
        let mut bytes = 0u64;
        let mut take = 0;
        for row in rows.iter().take(limit as usize) {
            let size = row.body_bytes.max(0) as u64 * 4 / 3 + row.headers.len() as u64 + 512;
            if take > 0 && bytes + size > max_bytes {
                more = true;
                break;
            }
            bytes += size;
            take += 1;
        }
        let last = rows.get(take.max(1) - 1).map_or(after, |r| r.seq);
        let mut runs = self.run_details_of_page(after, limit)?;
        let mut bodies = self.bodies_between(after, last)?;
        let mut out = Vec::with_capacity(take);
        for row in rows.into_iter().take(take) {
            let seq = row.seq;
            let mine = runs.remove(&row.id).unwrap_or_default();
            let body = bodies.remove(&row.id).unwrap_or_default();
            let delivery = self.to_delivery_with(trigger_id, row, true, Some(mine))?;
            out.push((Change { seq, delivery }, body));
        }
        Ok((out, more))
    }

    /// The bodies of the deliveries with `after < seq <= last`, by id: one
    /// query for a change-feed page rather than one per delivery.
    fn bodies_between(
        &self,
        after: i64,
        last: i64,
    ) -> ApiResult<std::collections::HashMap<String, Vec<u8>>> {
        let cursor = self.exec(
            "page bodies",
            "SELECT b.delivery_id, b.data FROM deliveries d JOIN bodies b ON b.delivery_id = d.id
             WHERE d.seq > ? AND d.seq <= ? ORDER BY d.seq, b.idx",
            vec![i(after), i(last)],
        )?;
        let mut out: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
        for row in cursor.raw() {
            let row = row.map_err(sql_err("page bodies"))?;
            let mut cols = row.into_iter();
            if let (Some(V::String(id)), Some(V::Blob(data))) = (cols.next(), cols.next()) {
                out.entry(id).or_default().extend_from_slice(&data);
            }
        }
        Ok(out)
    }
}

row! {
    /// A stored delivery as a filter backtest sees it.
    #[derive(Debug, Clone)]
    pub struct Candidate {
        /// `dlv_…`.
        pub id: String,
        /// Stored headers (JSON).
        pub headers: String,
        /// The query string it arrived with.
        pub query: Option<String>,
    }
}

impl Ledger {
    /// Stored deliveries a filter backtest evaluates, newest first: every
    /// genuine one (not rejected, not a replay) in the time range.
    pub fn filter_candidates(
        &self,
        after: Option<Timestamp>,
        before: Option<Timestamp>,
        limit: u32,
    ) -> ApiResult<Vec<Candidate>> {
        let mut query = String::from(
            "SELECT id, headers, query FROM deliveries
             WHERE status != 'rejected' AND replayed_from IS NULL",
        );
        let mut args = Vec::new();
        received_between(&mut query, &mut args, after, before);
        query.push_str(" ORDER BY received_at DESC, id DESC LIMIT ?");
        args.push(i(i64::from(limit)));
        self.rows("filter candidates", &query, args)
    }

    /// Stored headers parsed and redacted, as everything that reads them
    /// sees them.
    pub fn stored_headers(&self, text: &str) -> ApiResult<HeaderList> {
        self.parse_headers(text)
    }

    /// The query string a delivery arrived with.
    pub fn query_of(&self, delivery_id: &str) -> ApiResult<Option<String>> {
        row! {
            struct Q {
                query: Option<String>,
            }
        }
        Ok(self
            .rows::<Q>(
                "read query",
                "SELECT query FROM deliveries WHERE id = ?",
                vec![s(delivery_id)],
            )?
            .into_iter()
            .next()
            .and_then(|q| q.query))
    }
}

impl Ledger {
    /// Deliveries received in `window`, counted by bucket start (ms) and
    /// status. A range scan of `deliveries_received`. (Bound numbers arrive
    /// as JavaScript numbers, which SQLite takes as REAL: the bucket index
    /// is cast back to an integer.)
    pub fn stats_counts(
        &self,
        window: &edgehook_core::stats::Window,
    ) -> ApiResult<Vec<(i64, DeliveryStatus, u64)>> {
        row! {
            struct Row {
                bucket: i64,
                status: String,
                n: i64,
            }
        }
        let rows = self.rows::<Row>(
            "stats counts",
            "SELECT CAST((received_at - ?1) / ?2 AS INTEGER) AS bucket, status, count(*) AS n FROM deliveries
             WHERE received_at >= ?1 AND received_at < ?3 GROUP BY bucket, status",
            vec![i(window.from_ms), i(window.bucket_ms), i(window.to_ms)],
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let status = DeliveryStatus::parse(&r.status)?;
                Some((
                    window.from_ms + r.bucket * window.bucket_ms,
                    status,
                    r.n.max(0) as u64,
                ))
            })
            .collect())
    }

    /// Milliseconds from receipt to the end of each successful attempt of a
    /// delivery received in `window`, the newest `limit` of them.
    pub fn dispatch_latencies(
        &self,
        window: &edgehook_core::stats::Window,
        limit: u32,
    ) -> ApiResult<Vec<u64>> {
        row! {
            struct Row {
                ms: i64,
            }
        }
        let rows = self.rows::<Row>(
            "dispatch latencies",
            "SELECT CAST(a.started_at + COALESCE(a.duration_ms, 0) - d.received_at AS INTEGER) AS ms
             FROM deliveries d JOIN attempts a ON a.delivery_id = d.id
             WHERE d.received_at >= ?1 AND d.received_at < ?2
               AND a.status_code BETWEEN 200 AND 299
             ORDER BY d.received_at DESC LIMIT ?3",
            vec![i(window.from_ms), i(window.to_ms), i(i64::from(limit))],
        )?;
        Ok(rows.into_iter().map(|r| r.ms.max(0) as u64).collect())
    }
}
