-- Rejected deliveries keep only the first 4 KiB of their body on the edge;
-- `body_truncated` says so, and `body_bytes` stays the size received.
-- Additive, with a default: safe while an older backfill runs.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS body_truncated boolean NOT NULL DEFAULT false;
