//! A page by binary `COPY` straight into the tables, each table's rows
//! encoded in PostgreSQL's binary format and sent as one message.

use anyhow::{anyhow, Result};
use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::Transaction;

use super::page::PageRows;
use super::write::Written;

/// The page's rows by binary `COPY` into the tables; fails on the first
/// row that is already there (`UNIQUE_VIOLATION`). The database's errors
/// are returned as they came, for the caller to tell that one apart.
pub(super) async fn copy_page(
    tx: &Transaction<'_>,
    trigger_id: &str,
    page: &PageRows,
) -> Result<Written> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
