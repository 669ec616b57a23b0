// Runs one Worker with Miniflare's API: the same workerd as `wrangler dev`,
// without wrangler's proxy and inspector in front of it, which is closer to
// production. `make bench` (through the e2e harness) starts it as
//
//   node bench/miniflare.mjs <worker> <port> <state-dir>
//
// where <worker> names one of bench/workers.mjs, with its secrets in the
// environment, and stops it with a signal.
import path from "node:path";
import { Log, LogLevel, Miniflare } from "miniflare";
import { workerOptions } from "./workers.mjs";

const [kind, port, state] = process.argv.slice(2);
const common = {
  host: "127.0.0.1",
  port: Number(port),
  compatibilityDate: "2026-04-01",
  durableObjectsPersist: path.join(state, "do"),
  queuesPersist: path.join(state, "queues"),
  cachePersist: false,
  // MF_LOG=info shows queue batches and the Worker's console (for looking
  // into a bench run; the figures are taken without it).
  ...(process.env.MF_LOG === "info" ? { log: new Log(LogLevel.INFO) } : {}),
};

const worker = workerOptions(kind);
if (!worker) {
  console.error(`unknown worker ${kind}`);
  process.exit(2);
}
const mf = new Miniflare({ ...common, ...worker });
const url = await mf.ready;
console.log(`ready ${url}`);
const stop = async () => {
  await mf.dispose();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
