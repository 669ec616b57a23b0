// The JavaScript floor for `make bench`: the least work that durable,
// deduplicated admission of a signed webhook needs on this platform.
//
// It verifies a GitHub signature with `crypto.subtle`, inserts the delivery
// into a SQLite Durable Object with insert-if-absent on the delivery id, sets
// an alarm and sends one queue message. It does nothing else: no config, no
// registry, no runs, no limits. `FLOOR_MODE` picks how the Worker reaches the
// object: "rpc" (a JavaScript RPC method of a class that extends
// `DurableObject`) or "fetch" (the object's `fetch`, as workers-rs does).
//
// With `FLOOR_LEDGER = "edgehook"` (the JavaScript ledger floor) it writes,
// instead of its one row, the rows edgehook writes for a new GitHub delivery
// with one run, with edgehook's own schema and statements (`schema.mjs`,
// written by `make bench` from core/src/schema.rs), as the Rust ledger floor
// (bench/floor-rust) does: what edgehook's ledger layout costs with no Wasm
// in the way.
//
// With `FLOOR_TARGET` set (the dispatch section's Miniflare reference), its
// answer names the run (the delivery id) and a do-nothing consumer POSTs each
// queue message to that URL: the least a queue consumer can do, to show what
// the local queue itself delivers under load.

import { DurableObject } from "cloudflare:workers";
import * as schema from "./schema.mjs";

// The stored headers of a GitHub delivery, as the Rust ledger floor stores
// them (its STORED_HEADERS).
const STORED_HEADERS = JSON.stringify([
  ["accept", "*/*"],
  ["content-type", "application/json"],
  ["user-agent", "GitHub-Hookshot/0000000"],
  ["x-github-delivery", "00000000-0000-0000-0000-000000000000"],
  ["x-github-event", "push"],
  ["x-github-hook-id", "000000000"],
  ["x-hub-signature-256", "sha256:00000000"],
]);
// What edgehook counts for each stored row besides its headers and body
// (edgehook_core::ingest::ROW_OVERHEAD_BYTES).
const ROW_OVERHEAD_BYTES = 512;
// The bench trigger's storage budget, as edgehook passes it.
const STORAGE_BUDGET_BYTES = 9 * 1024 * 1024 * 1024;

const encoder = new TextEncoder();
let key;

function hexBytes(hex) {
  if (hex.length !== 64 || !/^[0-9a-f]+$/i.test(hex)) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

async function verified(env, body, header) {
  if (!header || !header.startsWith("sha256=")) return false;
  const sig = hexBytes(header.slice(7));
  if (!sig) return false;
  key ??= crypto.subtle.importKey(
    "raw",
    encoder.encode(env.FLOOR_SECRET),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
  return crypto.subtle.verify("HMAC", await key, sig, body);
}

function json(status, value) {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json" },
  });
}

export class Ledger extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.edgehookRows = env.FLOOR_LEDGER === "edgehook";
    if (this.edgehookRows) {
      // Every step, on a new object only (as the Rust ledger floor does):
      // some steps add columns, which cannot run twice.
      const fresh =
        ctx.storage.sql.exec("SELECT name FROM sqlite_master WHERE name = 'deliveries'").toArray()
          .length === 0;
      if (fresh) for (const stmt of schema.MIGRATIONS) ctx.storage.sql.exec(stmt);
    } else {
      ctx.storage.sql.exec(
        "CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, received_at INTEGER NOT NULL, body BLOB NOT NULL)",
      );
    }
  }

  // edgehook's admission of a new GitHub delivery with one run, statement
  // for statement (the Rust ledger floor's insert_as_edgehook): whether it
  // was new.
  insertAsEdgehook(id, now, body) {
    const sql = this.ctx.storage.sql;
    // A GitHub delivery's dedupe key is its delivery id.
    if (sql.exec(schema.FIND_HOLDER, id, now - 86_400_000).toArray().length > 0) return false;
    const size = STORED_HEADERS.length + body.byteLength + ROW_OVERHEAD_BYTES;
    let seq = null;
    for (const [name, value] of sql.exec(schema.COUNT_STORED_BYTES, size, STORAGE_BUDGET_BYTES).raw()) {
      if (name === "seq") seq = value;
    }
    const runId = "run_" + id;
    sql.exec(
      schema.INSERT_DELIVERY,
      ...[id, seq, now, "queued", id, "valid", "current", "push", null, null, null],
      ...[STORED_HEADERS, body.byteLength, runId, 0, size, null],
    );
    sql.exec(schema.INSERT_BODY, id, 0, body);
    sql.exec(schema.INSERT_RUN, runId, id, "queued", now, now, now, null);
    return true;
  }

  // Inserts the delivery unless its id is known; a new one gets an alarm
  // (the re-send guarantee) and its queue message.
  async admit(id, body) {
    const now = Date.now();
    if (this.edgehookRows) {
      const fresh = this.insertAsEdgehook(id, now, body);
      if (fresh) {
        if ((await this.ctx.storage.getAlarm()) === null) {
          await this.ctx.storage.setAlarm(now + 60_000);
        }
        await this.env.RUNS.send({ id });
      }
      return fresh;
    }
    const cursor = this.ctx.storage.sql.exec(
      "INSERT INTO deliveries (id, received_at, body) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
      id,
      now,
      body,
    );
    const fresh = cursor.rowsWritten > 0;
    if (fresh) {
      if ((await this.ctx.storage.getAlarm()) === null) {
        await this.ctx.storage.setAlarm(now + 60_000);
      }
      await this.env.RUNS.send({ id });
    }
    return fresh;
  }

  async fetch(request) {
    const id = request.headers.get("x-delivery-id");
    const fresh = await this.admit(id, await request.arrayBuffer());
    return json(200, { status: fresh ? "accepted" : "duplicate" });
  }

  async alarm() {}
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return json(200, { ok: true });
    const body = await request.arrayBuffer();
    if (!(await verified(env, body, request.headers.get("x-hub-signature-256")))) {
      return json(401, { error: "invalid_signature" });
    }
    const id = request.headers.get("x-github-delivery");
    if (!id) return json(400, { error: "missing_delivery_id" });
    const stub = env.LEDGER.get(env.LEDGER.idFromName(url.pathname));
    if (env.FLOOR_MODE === "rpc") {
      const fresh = await stub.admit(id, body);
      const status = fresh ? "accepted" : "duplicate";
      return json(200, env.FLOOR_TARGET ? { status, run_id: id } : { status });
    }
    return stub.fetch("https://ledger/admit", {
      method: "POST",
      headers: { "x-delivery-id": id },
      body,
    });
  },

  async queue(batch, env) {
    await Promise.all(
      batch.messages.map((m) =>
        fetch(env.FLOOR_TARGET, { method: "POST", headers: { "webhook-id": m.body.id }, body: "{}" }),
      ),
    );
    batch.ackAll();
  },
};
