-- Signatures in stored headers are reduced to their scheme and a fingerprint,
-- as the edge now stores them: a signature of a scheme without a timestamp
-- (GitHub, Shopify, generic HMAC) stays valid forever, so a readable one lets
-- anyone re-send its body. The format matches the edge's
-- (`sha256=[redacted fp=1a2b3c4d]`: the first 4 bytes of the value's SHA-256).
--
-- Safe while an older backfill runs: it only rewrites values, and running it
-- again changes nothing (redacted values are left as they are).
UPDATE deliveries d
SET headers = (
    SELECT jsonb_object_agg(
        h.key,
        CASE
            WHEN jsonb_typeof(h.value) = 'string'
                 AND position('[redacted' IN (h.value #>> '{}')) = 0
                 AND (h.key IN ('x-hub-signature-256', 'x-hub-signature', 'stripe-signature',
                                'x-slack-signature', 'x-shopify-hmac-sha256', 'webhook-signature',
                                'svix-signature', 'linear-signature', 'x-signature')
                      OR h.key = x.generic_header)
            THEN to_jsonb(
                COALESCE(substring(h.value #>> '{}' FROM '^(?:sha1|sha256|sha512|v0|v1|t)[=,]'), '')
                || '[redacted fp='
                || substr(encode(sha256(convert_to(h.value #>> '{}', 'UTF8')), 'hex'), 1, 8)
                || ']')
            ELSE h.value
        END)
    FROM jsonb_each(d.headers) AS h
)
FROM (
    SELECT d2.trigger_id, d2.delivery_id,
           CASE WHEN t.provider = 'generic' THEN lower(t.config ->> 'signature_header') END AS generic_header
    FROM deliveries d2
    LEFT JOIN triggers t ON t.trigger_id = d2.trigger_id
) x
WHERE x.trigger_id = d.trigger_id
  AND x.delivery_id = d.delivery_id
  AND jsonb_typeof(d.headers) = 'object'
  AND (d.headers ?| ARRAY['x-hub-signature-256', 'x-hub-signature', 'stripe-signature',
                          'x-slack-signature', 'x-shopify-hmac-sha256', 'webhook-signature',
                          'svix-signature', 'linear-signature', 'x-signature']
       OR (x.generic_header IS NOT NULL AND d.headers ? x.generic_header));
