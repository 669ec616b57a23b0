// The Worker's entry module: what worker-build makes from the Rust crate
// (build/index.js), plus two things the Rust crate does not do.
//
// - A Durable Object class that extends `DurableObject`, which workers-rs
//   cannot declare. Only such a class can be called by JavaScript RPC, which
//   the Worker uses for the hot paths: an ingest whose body the edge has read
//   whole, and the queue consumer's batch claims and reports
//   (worker/src/wire.rs). Every method forwards to the Rust object; nothing
//   is decided here.
// - The console and the OpenAPI document, from build/static.mjs
//   (scripts/static-assets.mjs). They are not Workers static assets: an
//   [assets] directory puts the platform's asset router in front of every
//   request, webhooks included, and they are not in the Wasm, whose size
//   matters more. Every other request goes to the Rust Worker untouched.
//
// scripts/build-worker.sh copies this file next to index.js, and
// wrangler.toml's `main` points at the copy.
import { DurableObject } from "cloudflare:workers";
import RustEdge, { Registry, Trigger as RustTrigger } from "./index.js";
import files from "./static.mjs";

export { Registry };

export default class Edge extends RustEdge {
  fetch(request) {
    const method = request.method;
    if (method === "GET" || method === "HEAD") {
      const file = files.get(new URL(request.url).pathname);
      if (file !== undefined) return serve(file, request, method);
    }
    return super.fetch(request);
  }
}

// A static file, or 304 when the client holds this version of it. Files are
// small and change with every deploy, so their headers ask for revalidation
// (console/_headers) and the ETag makes that cheap.
function serve(file, request, method) {
  if (holds(request.headers.get("if-none-match"), file.etag)) {
    return new Response(null, { status: 304, headers: file.headers });
  }
  return new Response(method === "HEAD" ? null : file.body, { headers: file.headers });
}

// Whether an `If-None-Match` names `etag`: `*`, or a list of tags compared
// weakly (a `W/` prefix, which caches may add, does not matter).
function holds(header, etag) {
  if (header === null) return false;
  if (header.trim() === "*") return true;
  return header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}

export class Trigger extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.rust = new RustTrigger(ctx, env);
  }

  fetch(request) {
    return this.rust.fetch(request);
  }

  alarm(info) {
    return this.rust.alarm(info);
  }

  // The RPC methods: see worker/src/trigger/rpc.rs.
  ingest(headers, body, query, receivedAt) {
    return this.rust.ingest(headers, body, query, receivedAt);
  }

  claimRuns(batch) {
    return this.rust.claimRuns(batch);
  }

  reportRuns(batch) {
    return this.rust.reportRuns(batch);
  }
}
