//! PostgreSQL: connection, migrations, and batched writes.
//!
//! A page of the change feed is written with one `INSERT … SELECT FROM
//! UNNEST(…) ON CONFLICT DO UPDATE` per table (a round trip per page, not per
//! row), and the trigger's cursor moves in the same transaction. Rows only
//! move forward: an upsert rewrites a row only for a later change (`seq`), so
//! a repeated or concurrent sync changes nothing.
//!
//! A page whose rows are all new, as in a first backfill, is written faster
//! by a binary `COPY` straight into the tables, under a savepoint: if any of
//! its rows is already there, the `COPY` fails on the primary key, the
//! savepoint is rolled back, and the page is upserted instead. A `COPY`
//! that succeeds wrote exactly what the upserts would have (every row was
//! new), so the rule above holds either way.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use bytes::{BufMut, BytesMut};
use edgehook_core::api::{AttemptView, RouteView, RunDetail, TriggerView};
use edgehook_core::frames::FramedPage;
use edgehook_core::time::Timestamp;
use edgehook_core::HeaderList;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, IsNull, Json, ToSql, Type};
use tokio_postgres::{Client, Transaction};

use crate::Fatal;

/// The migrations, in order, embedded so the binary runs from anywhere.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init.sql",
        include_str!("../../migrations/0001_init.sql"),
    ),
    (
        "0002_redact_signatures.sql",
        include_str!("../../migrations/0002_redact_signatures.sql"),
    ),
    (
        "0003_body_truncated.sql",
        include_str!("../../migrations/0003_body_truncated.sql"),
    ),
    (
        "0004_routes.sql",
        include_str!("../../migrations/0004_routes.sql"),
    ),
];

/// Serializes concurrent backfills' migrations (`pg_advisory_xact_lock`).
const MIGRATION_LOCK: i64 = 0x6564_6765_686f_6f6b; // "edgehook"

/// Turns a database error into a [`Fatal`] when it is one a person must fix.
pub fn classify(err: tokio_postgres::Error, context: &str) -> anyhow::Error {
    if err.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
        return anyhow!(Fatal::Database(
            "the database is read-only (a standby, or default_transaction_read_only is on); the backfill must write"
                .into()
        ));
    }
    if err.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        return anyhow!(Fatal::Database(format!(
            "{context}: permission denied: {err}"
        )));
    }
    anyhow::Error::new(err).context(context.to_string())
}

/// The SQLSTATE of a database error, if `err` is one.
fn pg_code(err: &anyhow::Error) -> Option<&SqlState> {
    err.downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
}

/// Whether retrying on a fresh connection may help.
pub fn is_transient(err: &anyhow::Error) -> bool {
    match err.downcast_ref::<tokio_postgres::Error>() {
        Some(e) => {
            e.is_closed()
                || matches!(
                    e.code(),
                    Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                        || *c == SqlState::T_R_DEADLOCK_DETECTED
                        || *c == SqlState::ADMIN_SHUTDOWN
                        || *c == SqlState::CONNECTION_FAILURE
                )
                || e.code().is_none()
        }
        None => false,
    }
}

/// Connects, with TLS when the URL asks for it (`sslmode=require`).
pub async fn connect(url: &str) -> Result<Client> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS configuration")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
    let (client, connection) = tokio_postgres::connect(url, connector)
        .await
        .map_err(|e| anyhow!(Fatal::Database(format!("cannot connect: {e}"))))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("backfill: database connection closed: {e}");
        }
    });
    Ok(client)
}

/// Applies the migrations not yet recorded; returns how many ran. Safe to
/// run concurrently with another backfill (an advisory lock serializes them)
/// and while an older backfill syncs (migrations only add).
pub async fn migrate(client: &mut Client) -> Result<usize> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| classify(e, "starting migrations"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| classify(e, "locking migrations"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS edgehook_migrations (
            name text PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(|e| classify(e, "creating edgehook_migrations"))?;
    let applied: HashSet<String> = tx
        .query("SELECT name FROM edgehook_migrations", &[])
        .await
        .map_err(|e| classify(e, "reading edgehook_migrations"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut ran = 0;
    for (name, sql) in MIGRATIONS {
        if applied.contains(*name) {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|e| classify(e, &format!("migration {name}")))?;
        tx.execute(
            "INSERT INTO edgehook_migrations (name) VALUES ($1)",
            &[name],
        )
        .await
        .map_err(|e| classify(e, "recording a migration"))?;
        ran += 1;
    }
    tx.commit()
        .await
        .map_err(|e| classify(e, "committing migrations"))?;
    Ok(ran)
}

/// Upserts the trigger list; deleted triggers get `deleted_at` and keep their
/// rows. A row never goes backwards: an older view (from a backfill that
/// listed triggers before a change) does not overwrite a newer one, as
/// `updated_at` only moves forward on the edge.
pub async fn upsert_triggers(client: &Client, triggers: &[TriggerView]) -> Result<u64> {
    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut providers = Vec::new();
    let mut enabled = Vec::new();
    let mut urls = Vec::new();
    let mut targets: Vec<Option<String>> = Vec::new();
    let mut created = Vec::new();
    let mut updated = Vec::new();
    let mut deleted: Vec<Option<String>> = Vec::new();
    let mut configs = Vec::new();
    for t in triggers {
        ids.push(t.id.clone());
        names.push(t.name.clone());
        providers.push(t.provider.as_str().to_string());
        enabled.push(t.enabled);
        urls.push(t.url.clone());
        targets.push(t.target_url.clone());
        created.push(t.created_at.clone());
        updated.push(t.updated_at.clone());
        deleted.push(t.deleted_at.clone());
        configs.push(serde_json::to_value(t).context("trigger json")?);
    }
    client
        .execute(
            "INSERT INTO triggers (trigger_id, name, provider, enabled, url, target_url, created_at, updated_at, deleted_at, config)
             SELECT t.id, t.name, t.provider, t.enabled, t.url, t.target_url,
                    t.created_at::timestamptz, t.updated_at::timestamptz, t.deleted_at::timestamptz, t.config
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::jsonb[])
                  AS t(id, name, provider, enabled, url, target_url, created_at, updated_at, deleted_at, config)
             ON CONFLICT (trigger_id) DO UPDATE SET
                name = EXCLUDED.name, provider = EXCLUDED.provider, enabled = EXCLUDED.enabled,
                url = EXCLUDED.url, target_url = EXCLUDED.target_url, created_at = EXCLUDED.created_at,
                updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at, config = EXCLUDED.config
             WHERE triggers.updated_at <= EXCLUDED.updated_at
               AND (triggers.name, triggers.provider, triggers.enabled, triggers.url, triggers.target_url,
                    triggers.updated_at, triggers.deleted_at, triggers.config)
                IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.provider, EXCLUDED.enabled, EXCLUDED.url,
                    EXCLUDED.target_url, EXCLUDED.updated_at, EXCLUDED.deleted_at, EXCLUDED.config)",
            &[&ids, &names, &providers, &enabled, &urls, &targets, &created, &updated, &deleted, &configs],
        )
        .await
        .map_err(|e| classify(e, "upserting triggers"))
}

/// The stored cursor of a trigger (0 before its first sync).
pub async fn cursor(client: &Client, trigger_id: &str) -> Result<i64> {
    Ok(client
        .query_opt(
            "SELECT last_seq FROM sync_cursors WHERE trigger_id = $1",
            &[&trigger_id],
        )
        .await
        .map_err(|e| classify(e, "reading the cursor"))?
        .map_or(0, |r| r.get(0)))
}

/// Rows written by one page.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    /// Deliveries inserted or updated.
    pub deliveries: u64,
    /// Runs inserted or updated.
    pub runs: u64,
    /// Attempts inserted or updated.
    pub attempts: u64,
    /// Whether the page went in by `COPY` (every row of it was new).
    pub copied: bool,
}

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
    deliveries: Deliveries,
    runs: Runs,
    attempts: Attempts,
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

/// Writes one page and the new cursor in one transaction: by `COPY` when
/// `try_copy` and every row of the page is new, by upserts otherwise.
pub async fn apply_page(
    client: &mut Client,
    trigger_id: &str,
    page: &PageRows,
    try_copy: bool,
) -> Result<Written> {
    let mut tx = client
        .transaction()
        .await
        .map_err(|e| classify(e, "starting a page"))?;
    if try_copy {
        let copy = tx
            .savepoint("page_copy")
            .await
            .map_err(|e| classify(e, "starting a page"))?;
        match copy_page(&copy, trigger_id, page).await {
            Ok(written) => {
                copy.commit()
                    .await
                    .map_err(|e| classify(e, "copying a page"))?;
                move_cursor(&tx, trigger_id, page.next_after).await?;
                tx.commit()
                    .await
                    .map_err(|e| classify(e, "committing a page"))?;
                return Ok(written);
            }
            // A row of the page is already there: upsert the page instead.
            Err(e) if pg_code(&e) == Some(&SqlState::UNIQUE_VIOLATION) => copy
                .rollback()
                .await
                .map_err(|e| classify(e, "undoing a page's copy"))?,
            Err(e) => {
                return Err(match e.downcast::<tokio_postgres::Error>() {
                    Ok(e) => classify(e, "copying a page"),
                    Err(e) => e,
                })
            }
        }
    }
    let written = upsert_page(&tx, trigger_id, page).await?;
    tx.commit()
        .await
        .map_err(|e| classify(e, "committing a page"))?;
    Ok(written)
}

/// The page's rows by binary `COPY` into the tables; fails on the first
/// row that is already there (`UNIQUE_VIOLATION`). The database's errors
/// are returned as they came, for the caller to tell that one apart.
async fn copy_page(tx: &Transaction<'_>, trigger_id: &str, page: &PageRows) -> Result<Written> {
    use Type as T;
    let (d, r, a) = (&page.deliveries, &page.runs, &page.attempts);
    let deliveries = copy_rows(
        tx,
        "COPY deliveries (trigger_id, delivery_id, seq, status, dedupe_key, attempt_count,
            signature_status, matched_secret, event_type, replayed_from, reason, received_at,
            raw_body, body_bytes, headers, run_id, body_truncated) FROM STDIN (FORMAT binary)",
        &[
            T::TEXT,
            T::TEXT,
            T::INT8,
            T::TEXT,
            T::TEXT,
            T::INT4,
            T::TEXT,
            T::TEXT,
            T::TEXT,
            T::TEXT,
            T::TEXT,
            T::TIMESTAMPTZ,
            T::BYTEA,
            T::INT4,
            T::JSONB,
            T::TEXT,
            T::BOOL,
        ],
        (0..d.ids.len()).map(|i| -> [&(dyn ToSql + Sync); 17] {
            [
                &trigger_id,
                &d.ids[i],
                &d.seqs[i],
                &d.statuses[i],
                &d.dedupe_keys[i],
                &d.attempt_counts[i],
                &d.signature_statuses[i],
                &d.matched[i],
                &d.event_types[i],
                &d.replayed_from[i],
                &d.reasons[i],
                &d.received[i],
                &d.bodies[i],
                &d.body_bytes[i],
                &d.headers[i],
                &d.run_ids[i],
                &d.truncated[i],
            ]
        }),
    )
    .await?;
    let runs = copy_rows(
        tx,
        "COPY runs (run_id, trigger_id, delivery_id, seq, status, attempts, last_error,
            last_status_code, next_attempt_at, dead_lettered_at, created_at, updated_at, route_id)
         FROM STDIN (FORMAT binary)",
        &[
            T::TEXT,
            T::TEXT,
            T::TEXT,
            T::INT8,
            T::TEXT,
            T::INT4,
            T::TEXT,
            T::INT4,
            T::TIMESTAMPTZ,
            T::TIMESTAMPTZ,
            T::TIMESTAMPTZ,
            T::TIMESTAMPTZ,
            T::TEXT,
        ],
        (0..r.ids.len()).map(|i| -> [&(dyn ToSql + Sync); 13] {
            [
                &r.ids[i],
                &trigger_id,
                &r.delivery_ids[i],
                &r.seqs[i],
                &r.statuses[i],
                &r.attempts[i],
                &r.last_errors[i],
                &r.codes[i],
                &r.next_attempt[i],
                &r.dead_lettered[i],
                &r.created[i],
                &r.updated[i],
                &r.routes[i],
            ]
        }),
    )
    .await?;
    let attempts = copy_rows(
        tx,
        "COPY attempts (run_id, attempt, trigger_id, delivery_id, route_id, seq, started_at,
            duration_ms, status_code, error, error_message, response_excerpt, rate_limited_ms)
         FROM STDIN (FORMAT binary)",
        &[
            T::TEXT,
            T::INT4,
            T::TEXT,
            T::TEXT,
            T::TEXT,
            T::INT8,
            T::TIMESTAMPTZ,
            T::INT8,
            T::INT4,
            T::TEXT,
            T::TEXT,
            T::TEXT,
            T::INT8,
        ],
        (0..a.run_ids.len()).map(|i| -> [&(dyn ToSql + Sync); 13] {
            [
                &a.run_ids[i],
                &a.attempts[i],
                &trigger_id,
                &a.delivery_ids[i],
                &a.routes[i],
                &a.seqs[i],
                &a.started[i],
                &a.durations[i],
                &a.codes[i],
                &a.errors[i],
                &a.messages[i],
                &a.excerpts[i],
                &a.waited[i],
            ]
        }),
    )
    .await?;
    Ok(Written {
        deliveries,
        runs,
        attempts,
        copied: true,
    })
}

/// One binary `COPY … FROM STDIN` of `rows`, whose values have `types`.
///
/// The whole table's part of the page is encoded first and sent as one
/// message: `BinaryCopyInWriter` hands the connection a message every 4 KB,
/// and those hand-offs took more CPU than the encoding itself.
async fn copy_rows<'a, const N: usize>(
    tx: &Transaction<'_>,
    statement: &str,
    types: &[Type; N],
    rows: impl Iterator<Item = [&'a (dyn ToSql + Sync); N]>,
) -> Result<u64> {
    let data = encode_copy(types, rows).map_err(|e| anyhow!("encoding a page for COPY: {e}"))?;
    let sink = tx.copy_in::<_, bytes::Bytes>(statement).await?;
    futures::pin_mut!(sink);
    futures::SinkExt::send(&mut sink, data).await?;
    Ok(sink.finish().await?)
}

/// Rows in PostgreSQL's binary `COPY` format: the signature, each row as
/// its field count and length-prefixed fields (-1 for NULL), the trailer.
fn encode_copy<'a, const N: usize>(
    types: &[Type; N],
    rows: impl Iterator<Item = [&'a (dyn ToSql + Sync); N]>,
) -> std::result::Result<bytes::Bytes, Box<dyn std::error::Error + Sync + Send>> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension length
    for row in rows {
        buf.put_i16(N as i16);
        for (value, ty) in row.iter().zip(types) {
            let at = buf.len();
            buf.put_i32(0);
            let len = match value.to_sql_checked(ty, &mut buf)? {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(buf.len() - at - 4)?,
            };
            buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
    buf.put_i16(-1);
    Ok(buf.freeze())
}

/// Moves the trigger's cursor to `next_after` (never back).
async fn move_cursor(tx: &Transaction<'_>, trigger_id: &str, next_after: i64) -> Result<u64> {
    tx.execute(
        "INSERT INTO sync_cursors (trigger_id, last_seq) VALUES ($1, $2)
         ON CONFLICT (trigger_id) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now()
         WHERE sync_cursors.last_seq < EXCLUDED.last_seq",
        &[&trigger_id, &next_after],
    )
    .await
    .map_err(|e| classify(e, "moving the cursor"))
}

/// The page's rows by upserts, and the cursor.
async fn upsert_page(tx: &Transaction<'_>, trigger_id: &str, page: &PageRows) -> Result<Written> {
    let (d, r, a) = (&page.deliveries, &page.runs, &page.attempts);
    // The four statements are pipelined on the connection (sent without
    // waiting for each other's answers): one round trip's wait per page, not
    // one per statement. The tables have no foreign keys, and all four
    // commit together.
    let deliveries = async {
        tx.execute(
            "INSERT INTO deliveries (trigger_id, delivery_id, seq, status, dedupe_key, attempt_count,
                signature_status, matched_secret, event_type, replayed_from, reason, received_at,
                raw_body, body_bytes, headers, run_id, body_truncated)
             SELECT $1, t.id, t.seq, t.status, t.dedupe_key, t.attempt_count, t.signature_status,
                t.matched, t.event_type, t.replayed_from, t.reason, t.received_at,
                t.body, t.body_bytes, t.headers, t.run_id, t.truncated
             FROM UNNEST($2::text[], $3::int8[], $4::text[], $5::text[], $6::int4[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::bytea[],
                         $14::int4[], $15::jsonb[], $16::text[], $17::bool[])
                  AS t(id, seq, status, dedupe_key, attempt_count, signature_status, matched, event_type,
                       replayed_from, reason, received_at, body, body_bytes, headers, run_id, truncated)
             ON CONFLICT (trigger_id, delivery_id) DO UPDATE SET
                seq = EXCLUDED.seq, status = EXCLUDED.status, dedupe_key = EXCLUDED.dedupe_key,
                attempt_count = EXCLUDED.attempt_count, signature_status = EXCLUDED.signature_status,
                matched_secret = EXCLUDED.matched_secret, event_type = EXCLUDED.event_type,
                replayed_from = EXCLUDED.replayed_from, reason = EXCLUDED.reason,
                received_at = EXCLUDED.received_at, raw_body = EXCLUDED.raw_body,
                body_bytes = EXCLUDED.body_bytes, headers = EXCLUDED.headers, run_id = EXCLUDED.run_id,
                body_truncated = EXCLUDED.body_truncated
             WHERE deliveries.seq < EXCLUDED.seq",
            &[
                &trigger_id,
                &d.ids,
                &d.seqs,
                &d.statuses,
                &d.dedupe_keys,
                &d.attempt_counts,
                &d.signature_statuses,
                &d.matched,
                &d.event_types,
                &d.replayed_from,
                &d.reasons,
                &d.received,
                &d.bodies,
                &d.body_bytes,
                &d.headers,
                &d.run_ids,
                &d.truncated,
            ],
        )
        .await
        .map_err(|e| classify(e, "upserting deliveries"))
    };
    let runs = async {
        tx.execute(
            "INSERT INTO runs (run_id, trigger_id, delivery_id, seq, status, attempts, last_error,
                last_status_code, next_attempt_at, dead_lettered_at, created_at, updated_at, route_id)
             SELECT t.id, $1, t.delivery_id, t.seq, t.status, t.attempts, t.last_error, t.code,
                t.next_attempt, t.dead_lettered, t.created, t.updated, t.route_id
             FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::text[], $6::int4[], $7::text[],
                         $8::int4[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[],
                         $12::timestamptz[], $13::text[])
                  AS t(id, delivery_id, seq, status, attempts, last_error, code, next_attempt,
                       dead_lettered, created, updated, route_id)
             ON CONFLICT (run_id) DO UPDATE SET
                seq = EXCLUDED.seq, status = EXCLUDED.status, attempts = EXCLUDED.attempts,
                last_error = EXCLUDED.last_error, last_status_code = EXCLUDED.last_status_code,
                next_attempt_at = EXCLUDED.next_attempt_at, dead_lettered_at = EXCLUDED.dead_lettered_at,
                updated_at = EXCLUDED.updated_at, route_id = EXCLUDED.route_id
             WHERE runs.seq < EXCLUDED.seq",
            &[
                &trigger_id,
                &r.ids,
                &r.delivery_ids,
                &r.seqs,
                &r.statuses,
                &r.attempts,
                &r.last_errors,
                &r.codes,
                &r.next_attempt,
                &r.dead_lettered,
                &r.created,
                &r.updated,
                &r.routes,
            ],
        )
        .await
        .map_err(|e| classify(e, "upserting runs"))
    };
    let attempts = async {
        tx.execute(
            "INSERT INTO attempts (run_id, attempt, trigger_id, delivery_id, route_id, seq, started_at,
                duration_ms, status_code, error, error_message, response_excerpt, rate_limited_ms)
             SELECT t.run_id, t.attempt, $1, t.delivery_id, t.route_id, t.seq, t.started,
                t.duration, t.code, t.error, t.message, t.excerpt, t.waited
             FROM UNNEST($2::text[], $3::int4[], $4::text[], $5::text[], $6::int8[], $7::timestamptz[],
                         $8::int8[], $9::int4[], $10::text[], $11::text[], $12::text[], $13::int8[])
                  AS t(run_id, attempt, delivery_id, route_id, seq, started, duration, code, error,
                       message, excerpt, waited)
             ON CONFLICT (run_id, attempt) DO UPDATE SET
                seq = EXCLUDED.seq, started_at = EXCLUDED.started_at, duration_ms = EXCLUDED.duration_ms,
                status_code = EXCLUDED.status_code, error = EXCLUDED.error,
                error_message = EXCLUDED.error_message, response_excerpt = EXCLUDED.response_excerpt,
                rate_limited_ms = EXCLUDED.rate_limited_ms, route_id = EXCLUDED.route_id
             WHERE attempts.seq < EXCLUDED.seq",
            &[
                &trigger_id,
                &a.run_ids,
                &a.attempts,
                &a.delivery_ids,
                &a.routes,
                &a.seqs,
                &a.started,
                &a.durations,
                &a.codes,
                &a.errors,
                &a.messages,
                &a.excerpts,
                &a.waited,
            ],
        )
        .await
        .map_err(|e| classify(e, "upserting attempts"))
    };
    let cursor = move_cursor(tx, trigger_id, page.next_after);
    let (deliveries, runs, attempts, _) = futures::try_join!(deliveries, runs, attempts, cursor)?;
    Ok(Written {
        deliveries,
        runs,
        attempts,
        copied: false,
    })
}

/// Upserts a trigger's routes; routes no longer listed get `deleted_at` and
/// keep their rows. A route's configuration never goes backwards
/// (`updated_at` only moves forward on the edge); its pause state follows
/// the newest listing.
pub async fn upsert_routes(client: &Client, trigger_id: &str, routes: &[RouteView]) -> Result<u64> {
    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut targets = Vec::new();
    let mut priorities = Vec::new();
    let mut enabled = Vec::new();
    let mut ordered = Vec::new();
    let mut paused: Vec<Option<String>> = Vec::new();
    let mut reasons: Vec<Option<String>> = Vec::new();
    let mut created = Vec::new();
    let mut updated = Vec::new();
    let mut configs = Vec::new();
    for r in routes {
        ids.push(r.id.clone());
        names.push(r.name.clone());
        targets.push(r.target_url.clone());
        priorities.push(r.priority);
        enabled.push(r.enabled);
        ordered.push(r.ordered);
        paused.push(r.paused_at.clone());
        reasons.push(r.paused_reason.clone());
        created.push(r.created_at.clone());
        updated.push(r.updated_at.clone());
        configs.push(serde_json::to_value(r).context("route json")?);
    }
    let written = client
        .execute(
            "INSERT INTO routes (route_id, trigger_id, name, target_url, priority, enabled, ordered,
                paused_at, paused_reason, created_at, updated_at, config)
             SELECT t.id, $1, t.name, t.target, t.priority, t.enabled, t.ordered,
                t.paused::timestamptz, t.reason, t.created::timestamptz, t.updated::timestamptz, t.config
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int4[], $6::bool[], $7::bool[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::jsonb[])
                  AS t(id, name, target, priority, enabled, ordered, paused, reason, created, updated, config)
             ON CONFLICT (route_id) DO UPDATE SET
                name = EXCLUDED.name, target_url = EXCLUDED.target_url, priority = EXCLUDED.priority,
                enabled = EXCLUDED.enabled, ordered = EXCLUDED.ordered, paused_at = EXCLUDED.paused_at,
                paused_reason = EXCLUDED.paused_reason, updated_at = EXCLUDED.updated_at,
                config = EXCLUDED.config, deleted_at = NULL
             WHERE routes.updated_at <= EXCLUDED.updated_at
               AND (routes.config, routes.deleted_at) IS DISTINCT FROM (EXCLUDED.config, NULL)",
            &[
                &trigger_id,
                &ids,
                &names,
                &targets,
                &priorities,
                &enabled,
                &ordered,
                &paused,
                &reasons,
                &created,
                &updated,
                &configs,
            ],
        )
        .await
        .map_err(|e| classify(e, "upserting routes"))?;
    client
        .execute(
            "UPDATE routes SET deleted_at = now()
             WHERE trigger_id = $1 AND deleted_at IS NULL AND NOT (route_id = ANY($2::text[]))",
            &[&trigger_id, &ids],
        )
        .await
        .map_err(|e| classify(e, "marking deleted routes"))?;
    Ok(written)
}

#[derive(Default)]
struct Deliveries {
    ids: Vec<String>,
    seqs: Vec<i64>,
    statuses: Vec<&'static str>,
    dedupe_keys: Vec<Option<String>>,
    attempt_counts: Vec<i32>,
    signature_statuses: Vec<String>,
    matched: Vec<Option<String>>,
    event_types: Vec<Option<String>>,
    replayed_from: Vec<Option<String>>,
    reasons: Vec<Option<String>>,
    received: Vec<PgTime>,
    bodies: Vec<Vec<u8>>,
    body_bytes: Vec<i32>,
    headers: Vec<Json<HeaderList>>,
    run_ids: Vec<Option<String>>,
    truncated: Vec<bool>,
}

#[derive(Default)]
struct Runs {
    ids: Vec<String>,
    delivery_ids: Vec<String>,
    seqs: Vec<i64>,
    statuses: Vec<&'static str>,
    attempts: Vec<i32>,
    last_errors: Vec<Option<String>>,
    codes: Vec<Option<i32>>,
    next_attempt: Vec<Option<PgTime>>,
    dead_lettered: Vec<Option<PgTime>>,
    created: Vec<PgTime>,
    updated: Vec<PgTime>,
    routes: Vec<Option<String>>,
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

/// The columns of a page's attempts.
#[derive(Default)]
struct Attempts {
    run_ids: Vec<String>,
    attempts: Vec<i32>,
    delivery_ids: Vec<String>,
    routes: Vec<Option<String>>,
    seqs: Vec<i64>,
    started: Vec<PgTime>,
    durations: Vec<Option<i64>>,
    codes: Vec<Option<i32>>,
    errors: Vec<Option<String>>,
    messages: Vec<Option<String>>,
    excerpts: Vec<Option<String>>,
    waited: Vec<i64>,
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

    #[test]
    fn rows_are_encoded_in_the_binary_copy_format() {
        let none: Option<String> = None;
        let rows = [[&"ab" as &(dyn ToSql + Sync), &none, &7i32]];
        let data =
            encode_copy(&[Type::TEXT, Type::TEXT, Type::INT4], rows.into_iter()).expect("valid");
        let mut want = b"PGCOPY\n\xff\r\n\0".to_vec();
        want.extend([0, 0, 0, 0, 0, 0, 0, 0]); // flags, extension length
        want.extend([0, 3]); // three fields
        want.extend([0, 0, 0, 2, b'a', b'b']);
        want.extend([0xff, 0xff, 0xff, 0xff]); // NULL
        want.extend([0, 0, 0, 4, 0, 0, 0, 7]);
        want.extend([0xff, 0xff]); // trailer
        assert_eq!(&data[..], &want[..]);
        // A value its column cannot take is an error, not a corrupt stream.
        let wrong = [[&"ab" as &(dyn ToSql + Sync), &none, &"7"]];
        assert!(encode_copy(&[Type::TEXT, Type::TEXT, Type::INT4], wrong.into_iter()).is_err());
    }
}
