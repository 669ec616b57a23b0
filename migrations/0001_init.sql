-- edgehook's history in PostgreSQL, written by the backfill from each
-- trigger's change feed. Rows are upserted by primary key and only move
-- forward (a row is rewritten only by a later change, `seq`).

CREATE TABLE IF NOT EXISTS triggers (
    trigger_id  text PRIMARY KEY,
    name        text NOT NULL,
    provider    text NOT NULL,
    enabled     boolean NOT NULL,
    url         text,
    target_url  text,
    created_at  timestamptz,
    updated_at  timestamptz,
    -- Set when the trigger was deleted at the edge; its rows stay.
    deleted_at  timestamptz,
    -- The trigger as the API shows it (never its secret).
    config      jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE IF NOT EXISTS deliveries (
    trigger_id        text NOT NULL,
    delivery_id       text NOT NULL,
    seq               bigint NOT NULL,
    status            text NOT NULL,
    dedupe_key        text,
    attempt_count     integer NOT NULL,
    signature_status  text NOT NULL,
    matched_secret    text,
    event_type        text,
    replayed_from     text,
    reason            text,
    received_at       timestamptz NOT NULL,
    raw_body          bytea NOT NULL,
    body_bytes        integer NOT NULL,
    headers           jsonb NOT NULL,
    run_id            text,
    PRIMARY KEY (trigger_id, delivery_id)
);

CREATE INDEX IF NOT EXISTS deliveries_by_trigger_time ON deliveries (trigger_id, received_at DESC);
CREATE INDEX IF NOT EXISTS deliveries_by_status ON deliveries (status, received_at DESC);
CREATE INDEX IF NOT EXISTS deliveries_by_dedupe_key ON deliveries (trigger_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_by_event_type ON deliveries (trigger_id, event_type, received_at DESC);

CREATE TABLE IF NOT EXISTS runs (
    run_id            text PRIMARY KEY,
    trigger_id        text NOT NULL,
    delivery_id       text NOT NULL,
    seq               bigint NOT NULL,
    status            text NOT NULL,
    attempts          integer NOT NULL,
    last_error        text,
    last_status_code  integer,
    next_attempt_at   timestamptz,
    dead_lettered_at  timestamptz,
    created_at        timestamptz,
    updated_at        timestamptz
);

CREATE INDEX IF NOT EXISTS runs_by_delivery ON runs (trigger_id, delivery_id);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, updated_at DESC);

CREATE TABLE IF NOT EXISTS sync_cursors (
    trigger_id  text PRIMARY KEY,
    last_seq    bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
