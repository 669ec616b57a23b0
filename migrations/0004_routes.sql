-- Routes, the run of each route, and every dispatch attempt.
-- Additive only (new tables, a nullable column): safe while an older
-- backfill runs, which simply leaves them empty.

-- A run belongs to a route (NULL for a trigger without routes).
ALTER TABLE runs ADD COLUMN IF NOT EXISTS route_id text;
CREATE INDEX IF NOT EXISTS runs_by_route ON runs (route_id, status) WHERE route_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS routes (
    route_id              text PRIMARY KEY,
    trigger_id            text NOT NULL,
    name                  text NOT NULL,
    target_url            text NOT NULL,
    priority              integer NOT NULL,
    enabled               boolean NOT NULL,
    ordered               boolean NOT NULL,
    paused_at             timestamptz,
    paused_reason         text,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    -- Set when the route was no longer listed at the edge; its runs stay.
    deleted_at            timestamptz,
    -- The route as the API shows it (credential-like header values redacted).
    config                jsonb NOT NULL
);

CREATE INDEX IF NOT EXISTS routes_by_trigger ON routes (trigger_id);

-- One row per attempt; `seq` is the change of the delivery it came with, so
-- a row only moves forward.
CREATE TABLE IF NOT EXISTS attempts (
    run_id            text NOT NULL,
    attempt           integer NOT NULL,
    trigger_id        text NOT NULL,
    delivery_id       text NOT NULL,
    route_id          text,
    seq               bigint NOT NULL,
    started_at        timestamptz NOT NULL,
    duration_ms       bigint,
    status_code       integer,
    error             text,
    error_message     text,
    response_excerpt  text,
    rate_limited_ms   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, attempt)
);

CREATE INDEX IF NOT EXISTS attempts_by_delivery ON attempts (trigger_id, delivery_id);
CREATE INDEX IF NOT EXISTS attempts_failed ON attempts (route_id, started_at DESC) WHERE error IS NOT NULL;
