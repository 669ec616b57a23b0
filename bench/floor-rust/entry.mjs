// The Rust floor's entry module: what worker-build makes from the crate
// (index.js), plus the class RPC needs around the Rust object, as
// worker/entry.mjs does for edgehook's Trigger.
import { DurableObject } from "cloudflare:workers";
import floor, { Ledger as RustLedger } from "./index.js";

export default floor;

export class Ledger extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.rust = new RustLedger(ctx, env);
  }

  fetch(request) {
    return this.rust.fetch(request);
  }

  alarm(info) {
    return this.rust.alarm(info);
  }

  admit(id, body) {
    return this.rust.admit(id, body);
  }
}
