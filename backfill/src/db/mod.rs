//! PostgreSQL: connection, migrations, the trigger and route rows, and the
//! writing of change-feed pages.
//!
//! A page is written with its cursor in one transaction (`write.rs`), from
//! columns built once per page (`page.rs`): by upserts that only move rows
//! forward (`seq`), or, while every row is new, by binary `COPY` (`copy.rs`).

mod copy;
mod page;
mod write;

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use edgehook_core::api::{RouteView, TriggerView};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::Fatal;

pub use page::PageRows;
pub use write::{apply_page, Written};

/// The migrations, in order, embedded so the binary runs from anywhere.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init.sql",
        include_str!("../../../migrations/0001_init.sql"),
    ),
    (
        "0002_redact_signatures.sql",
        include_str!("../../../migrations/0002_redact_signatures.sql"),
    ),
    (
        "0003_body_truncated.sql",
        include_str!("../../../migrations/0003_body_truncated.sql"),
    ),
    (
        "0004_routes.sql",
        include_str!("../../../migrations/0004_routes.sql"),
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
