// The Worker's entry module: what worker-build makes from the Rust crate
// (build/index.js), plus the one thing workers-rs cannot declare, a Durable
// Object class that extends `DurableObject`. Only such a class can be called
// by JavaScript RPC, which the Worker uses for the hot paths: an ingest whose
// body the edge has read whole, and the queue consumer's batch claims and
// reports (worker/src/wire.rs). Every method forwards to
// the Rust object; nothing is decided here. scripts/build-worker.sh copies
// this file next to index.js, and wrangler.toml's `main` points at the copy.
import { DurableObject } from "cloudflare:workers";
import edge, { Registry, Trigger as RustTrigger } from "./index.js";

export { Registry };
export default edge;

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
