//! Retention, the rejection aggregates, storage accounting and stored
//! `Idempotency-Key` responses.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Ledger {
    /// Deletes deliveries (with bodies and runs) received before `cutoff`,
    /// except those whose run is still open or still owes its dead letter,
    /// and gives their bytes back to the budget. Returns how many were
    /// deleted; `batch` means there may be more.
    pub fn enforce_retention(&self, cutoff: Timestamp, batch: u32) -> ApiResult<usize> {
        row! {
            struct Id {
                id: String,
                stored_bytes: i64,
            }
        }
        let old = self.rows::<Id>(
            "retention",
            "SELECT d.id, d.stored_bytes FROM deliveries d
             WHERE d.received_at < ? AND d.status != 'queued'
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.delivery_id = d.id
                   AND (r.dlq_pending = 1 OR r.status IN ('queued', 'held')))
             ORDER BY d.received_at LIMIT ?",
            vec![i(cutoff.millis()), i(i64::from(batch))],
        )?;
        let freed: i64 = old.iter().map(|r| r.stored_bytes.max(0)).sum();
        for row in &old {
            self.exec(
                "retention",
                "DELETE FROM bodies WHERE delivery_id = ?",
                vec![s(&row.id)],
            )?;
            // Attempts and runs go with their delivery.
            self.exec(
                "retention",
                "DELETE FROM attempts WHERE delivery_id = ?",
                vec![s(&row.id)],
            )?;
            self.exec(
                "retention",
                "DELETE FROM runs WHERE delivery_id = ?",
                vec![s(&row.id)],
            )?;
            self.exec(
                "retention",
                "DELETE FROM deliveries WHERE id = ?",
                vec![s(&row.id)],
            )?;
        }
        if freed > 0 {
            self.add_to_counter(STORED_BYTES, -freed)?;
        }
        if old.len() < batch as usize {
            // The small tables age out with the last batch.
            self.exec(
                "retention",
                "DELETE FROM rejection_windows WHERE minute < ?",
                vec![i(cutoff.millis())],
            )?;
        }
        Ok(old.len())
    }

    /// Forgets stored `Idempotency-Key` responses created before `cutoff`.
    pub fn expire_idempotency(&self, cutoff: Timestamp) -> ApiResult<()> {
        self.exec(
            "idempotency expiry",
            "DELETE FROM idempotency WHERE created_at < ?",
            vec![i(cutoff.millis())],
        )?;
        Ok(())
    }

    /// The response stored for (`scope`, `key`) at or after `since`, with the
    /// hash of the request that made it.
    pub fn idempotent_response(
        &self,
        scope: &str,
        key: &str,
        since: Timestamp,
    ) -> ApiResult<Option<(String, String)>> {
        row! {
            struct R {
                request_hash: String,
                response: String,
            }
        }
        Ok(self
            .rows::<R>(
                "idempotency",
                "SELECT request_hash, response FROM idempotency WHERE scope = ? AND key = ? AND created_at >= ?",
                vec![s(scope), s(key), i(since.millis())],
            )?
            .into_iter()
            .next()
            .map(|r| (r.request_hash, r.response)))
    }

    /// Stores the first response of a call made with an `Idempotency-Key`.
    pub fn store_idempotent_response(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
        response: &str,
        now: Timestamp,
    ) -> ApiResult<()> {
        self.exec(
            "idempotency",
            "INSERT INTO idempotency (scope, key, request_hash, response, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash,
                response = excluded.response, created_at = excluded.created_at",
            vec![s(scope), s(key), s(request_hash), s(response), i(now.millis())],
        )?;
        Ok(())
    }

    /// How many rejected deliveries were stored since `since`, and their bytes.
    pub fn rejections_stored_since(&self, since: Timestamp) -> ApiResult<(u64, u64)> {
        row! {
            struct N {
                n: i64,
                bytes: Option<i64>,
            }
        }
        Ok(self
            .rows::<N>(
                "count rejections",
                "SELECT COUNT(*) AS n, SUM(stored_bytes) AS bytes FROM deliveries
                 WHERE status = 'rejected' AND received_at >= ?",
                vec![i(since.millis())],
            )?
            .first()
            .map_or((0, 0), |r| {
                (r.n.max(0) as u64, r.bytes.unwrap_or(0).max(0) as u64)
            }))
    }

    /// Counts one rejection that was not stored, in its minute.
    pub fn aggregate_rejection(
        &self,
        at: Timestamp,
        signature_status: &str,
        reason: &str,
    ) -> ApiResult<()> {
        let minute = at.millis() - at.millis().rem_euclid(60_000);
        self.exec(
            "aggregate rejection",
            "INSERT INTO rejection_windows (minute, signature_status, count, last_reason) VALUES (?, ?, 1, ?)
             ON CONFLICT (minute, signature_status) DO UPDATE SET count = count + 1, last_reason = excluded.last_reason",
            vec![i(minute), s(signature_status), s(reason)],
        )?;
        Ok(())
    }

    /// Aggregated rejections, newest minute first.
    pub fn rejection_windows(&self, limit: u32) -> ApiResult<Vec<serde_json::Value>> {
        row! {
            struct W {
                minute: i64,
                signature_status: String,
                count: i64,
                last_reason: Option<String>,
            }
        }
        let rows = self.rows::<W>(
            "rejection windows",
            "SELECT minute, signature_status, count, last_reason FROM rejection_windows ORDER BY minute DESC, signature_status LIMIT ?",
            vec![i(i64::from(limit))],
        )?;
        Ok(rows
            .into_iter()
            .map(|w| {
                serde_json::json!({
                    "minute": Timestamp(w.minute).to_rfc3339(),
                    "signature_status": w.signature_status,
                    "count": w.count,
                    "last_reason": w.last_reason,
                })
            })
            .collect())
    }
}
