//! A change-feed page as the columns its writes bind: one vector per column
//! of each table, built once per page (a retried write binds them again),
//! with the feed's times read into `timestamptz` ([`PgTime`]).

use anyhow::{anyhow, Result};
use bytes::{BufMut, BytesMut};
use edgehook_core::api::{AttemptView, RunDetail};
use edgehook_core::frames::FramedPage;
use edgehook_core::time::Timestamp;
use edgehook_core::HeaderList;
use tokio_postgres::types::{to_sql_checked, IsNull, Json, ToSql, Type};

/// A `timestamptz` as PostgreSQL's binary format holds it: microseconds
/// since 2000-01-01 UTC. The feed's RFC 3339 times are read here rather
/// than cast by the database, which a binary `COPY` cannot do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgTime(i64);

/// 2000-01-01T00:00:00Z in milliseconds since the Unix epoch.
const PG_EPOCH_MS: i64 = 946_684_800_000;

impl PgTime {
    /// The feed's RFC 3339 text as a `timestamptz`.
    pub fn parse(text: &str) -> Result<PgTime> {
        let t = Timestamp::parse(text)
            .ok_or_else(|| anyhow!("the edge sent an unreadable time: {text:?}"))?;
        Ok(PgTime((t.millis() - PG_EPOCH_MS).saturating_mul(1000)))
    }

    fn parse_opt(text: Option<String>) -> Result<Option<PgTime>> {
        text.as_deref().map(PgTime::parse).transpose()
    }
}

impl ToSql for PgTime {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_i64(self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }

    to_sql_checked!();
}

/// A page of the change feed as the columns its upserts bind, built once:
/// a retried write binds the same columns again.
pub struct PageRows {
    pub(super) deliveries: Deliveries,
    pub(super) runs: Runs,
    pub(super) attempts: Attempts,
    /// The cursor the page moves to.
    pub next_after: i64,
    /// Whether the edge has more changes after this page.
    pub has_more: bool,
}

impl PageRows {
    /// The page's columns. The page is consumed: its strings move into the
    /// columns rather than being copied.
    pub fn new(page: FramedPage) -> Result<PageRows> {
        // One row per delivery, at its latest change (a page never repeats
        // one, but a duplicate would make ON CONFLICT fail, so keep the
        // latest), in delivery-id order: concurrent syncs then take row
        // locks in the same order and cannot deadlock.
        let mut changes = page.changes;
        changes.sort_by(|(x, _), (y, _)| {
            (x.delivery.delivery_id.as_str(), y.seq).cmp(&(y.delivery.delivery_id.as_str(), x.seq))
        });
        changes.dedup_by(|(later, _), (kept, _)| {
            later.delivery.delivery_id == kept.delivery.delivery_id
        });
        let mut d = Deliveries::default();
        let mut r = Runs::default();
        let mut a = Attempts::default();
        for (c, body) in changes {
            let seq = c.seq;
            let dl = c.delivery;
            // Every run of every route, with its attempts; an edge from
            // before routes sends only `run`, which has none.
            let runs = match dl.runs {
                Some(runs) => runs,
                None => dl.run.as_ref().map(RunDetail::from).into_iter().collect(),
            };
            for mut run in runs {
                for at in std::mem::take(&mut run.attempts) {
                    a.push(&dl.delivery_id, seq, &run, at)?;
                }
                r.push(&dl.delivery_id, seq, run)?;
            }
            d.run_ids.push(dl.run.map(|run| run.run_id));
            d.seqs.push(seq);
            d.statuses.push(dl.status.as_str());
            d.dedupe_keys.push(dl.dedupe_key);
            d.attempt_counts
                .push(dl.attempt_count.min(i32::MAX as u32) as i32);
            d.signature_statuses.push(dl.signature_status);
            d.matched.push(dl.matched_secret);
            d.event_types.push(dl.event_type);
            d.replayed_from.push(dl.replayed_from);
            d.reasons.push(dl.reason);
            d.received.push(PgTime::parse(&dl.received_at)?);
            // The size received; for a rejected delivery the stored body
            // may be only its first 4 KiB (`body_truncated`).
            d.body_bytes.push(dl.body_bytes.min(i32::MAX as u64) as i32);
            d.truncated.push(dl.body_truncated);
            d.bodies.push(body);
            d.headers.push(Json(dl.headers.unwrap_or_default()));
            d.ids.push(dl.delivery_id);
        }
        Ok(PageRows {
            deliveries: d,
            runs: r,
            attempts: a,
            next_after: page.next_after,
            has_more: page.has_more,
        })
    }

    /// Whether the page holds no change.
    pub fn is_empty(&self) -> bool {
        self.deliveries.ids.is_empty()
    }

    /// Whether the feed goes on after this page.
    pub fn more_follow(&self) -> bool {
        self.has_more && !self.is_empty()
    }
}

/// The columns of a page's deliveries.
#[derive(Default)]
pub(super) struct Deliveries {
    pub(super) ids: Vec<String>,
    pub(super) seqs: Vec<i64>,
    pub(super) statuses: Vec<&'static str>,
    pub(super) dedupe_keys: Vec<Option<String>>,
    pub(super) attempt_counts: Vec<i32>,
    pub(super) signature_statuses: Vec<String>,
    pub(super) matched: Vec<Option<String>>,
    pub(super) event_types: Vec<Option<String>>,
    pub(super) replayed_from: Vec<Option<String>>,
    pub(super) reasons: Vec<Option<String>>,
    pub(super) received: Vec<PgTime>,
    pub(super) bodies: Vec<Vec<u8>>,
    pub(super) body_bytes: Vec<i32>,
    pub(super) headers: Vec<Json<HeaderList>>,
    pub(super) run_ids: Vec<Option<String>>,
    pub(super) truncated: Vec<bool>,
}

/// The columns of a page's runs.
#[derive(Default)]
pub(super) struct Runs {
    pub(super) ids: Vec<String>,
    pub(super) delivery_ids: Vec<String>,
    pub(super) seqs: Vec<i64>,
    pub(super) statuses: Vec<&'static str>,
    pub(super) attempts: Vec<i32>,
    pub(super) last_errors: Vec<Option<String>>,
    pub(super) codes: Vec<Option<i32>>,
    pub(super) next_attempt: Vec<Option<PgTime>>,
    pub(super) dead_lettered: Vec<Option<PgTime>>,
    pub(super) created: Vec<PgTime>,
    pub(super) updated: Vec<PgTime>,
    pub(super) routes: Vec<Option<String>>,
}

impl Runs {
    fn push(&mut self, delivery_id: &str, seq: i64, run: RunDetail) -> Result<()> {
        self.ids.push(run.run_id);
        self.delivery_ids.push(delivery_id.to_string());
        self.seqs.push(seq);
        self.statuses.push(run.status.as_str());
        self.attempts
            .push(run.attempt_count.min(i32::MAX as u32) as i32);
        self.last_errors.push(run.last_error);
        self.codes.push(run.last_status_code.map(i32::from));
        self.next_attempt
            .push(PgTime::parse_opt(run.next_attempt_at)?);
        self.dead_lettered
            .push(PgTime::parse_opt(run.dead_lettered_at)?);
        self.created.push(PgTime::parse(&run.created_at)?);
        self.updated.push(PgTime::parse(&run.updated_at)?);
        self.routes.push(run.route_id);
        Ok(())
    }
}

/// The columns of a page's attempts.
#[derive(Default)]
pub(super) struct Attempts {
    pub(super) run_ids: Vec<String>,
    pub(super) attempts: Vec<i32>,
    pub(super) delivery_ids: Vec<String>,
    pub(super) routes: Vec<Option<String>>,
    pub(super) seqs: Vec<i64>,
    pub(super) started: Vec<PgTime>,
    pub(super) durations: Vec<Option<i64>>,
    pub(super) codes: Vec<Option<i32>>,
    pub(super) errors: Vec<Option<String>>,
    pub(super) messages: Vec<Option<String>>,
    pub(super) excerpts: Vec<Option<String>>,
    pub(super) waited: Vec<i64>,
}

impl Attempts {
    fn push(
        &mut self,
        delivery_id: &str,
        seq: i64,
        run: &RunDetail,
        at: AttemptView,
    ) -> Result<()> {
        self.run_ids.push(run.run_id.clone());
        self.attempts.push(at.attempt.min(i32::MAX as u32) as i32);
        self.delivery_ids.push(delivery_id.to_string());
        self.routes.push(run.route_id.clone());
        self.seqs.push(seq);
        self.started.push(PgTime::parse(&at.started_at)?);
        self.durations
            .push(at.duration_ms.map(|d| d.min(i64::MAX as u64) as i64));
        self.codes.push(at.status_code.map(i32::from));
        self.errors.push(at.error);
        self.messages.push(at.error_message);
        self.excerpts.push(at.response_excerpt);
        self.waited
            .push(at.rate_limited_ms.min(i64::MAX as u64) as i64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_time_becomes_microseconds_since_the_postgres_epoch() {
        assert_eq!(
            PgTime::parse("2000-01-01T00:00:00.000Z").expect("valid"),
            PgTime(0)
        );
        assert_eq!(
            PgTime::parse("2026-11-24T08:00:00.123Z").expect("valid"),
            PgTime((1_795_507_200_123 - PG_EPOCH_MS) * 1000)
        );
        assert_eq!(
            PgTime::parse("1999-12-31T23:59:59.999Z").expect("valid"),
            PgTime(-1000)
        );
        assert_eq!(PgTime::parse_opt(None).expect("valid"), None);
        assert!(PgTime::parse("yesterday").is_err());
    }

    #[test]
    fn a_time_is_written_as_postgres_binary_timestamptz() {
        let mut out = BytesMut::new();
        let t = PgTime::parse("2000-01-01T00:00:01.000Z").expect("valid");
        assert!(matches!(
            t.to_sql(&Type::TIMESTAMPTZ, &mut out),
            Ok(IsNull::No)
        ));
        assert_eq!(&out[..], &1_000_000i64.to_be_bytes());
        assert!(PgTime::accepts(&Type::TIMESTAMPTZ));
        assert!(!PgTime::accepts(&Type::TEXT));
    }
}
