// Runs one Worker with Miniflare's API: the same workerd as `wrangler dev`,
// without wrangler's proxy and inspector in front of it, which is closer to
// production. `make bench` (through the e2e harness) starts it as
//
//   node bench/miniflare.mjs <worker> <port> <state-dir>
//
// where <worker> is a key of `workers` below, with ADMIN_TOKEN and
// DISPATCH_SECRET (edgehook) or FLOOR_SECRET (the floors; FLOOR_TARGET too
// for floor-rpc-consumer) in the environment, and stops it with a signal.
// The edgehook bindings mirror wrangler.toml.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Log, LogLevel, Miniflare } from "miniflare";

const [kind, port, state] = process.argv.slice(2);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
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

const workers = {
  noop: {
    modules: true,
    script:
      "export default { async fetch(request) { await request.arrayBuffer(); " +
      "return new Response('{}', { headers: { 'content-type': 'application/json' } }); } };",
  },
  floor: (mode) => ({
    modules: true,
    scriptPath: path.join(root, "bench/floor/floor.js"),
    // Module names are paths relative to this root (by default the working
    // directory, which is the edge's own directory).
    modulesRoot: path.join(root, "bench/floor"),
    bindings: { FLOOR_SECRET: process.env.FLOOR_SECRET, FLOOR_MODE: mode },
    durableObjects: { LEDGER: { className: "Ledger", useSQLite: true } },
    queueProducers: { RUNS: "floor-runs" },
  }),
  edgehook: {
    modules: true,
    scriptPath: path.join(root, "build/entry.mjs"),
    modulesRoot: path.join(root, "build"),
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    bindings: {
      ADMIN_TOKEN: process.env.ADMIN_TOKEN,
      DISPATCH_SECRET: process.env.DISPATCH_SECRET,
    },
    durableObjects: {
      TRIGGERS: { className: "Trigger", useSQLite: true },
      REGISTRY: { className: "Registry", useSQLite: true },
    },
    queueProducers: {
      RUNS: "edgehook-runs",
      DLQ: "edgehook-dlq",
    },
    queueConsumers: {
      "edgehook-runs": {
        maxBatchSize: 100,
        maxBatchTimeout: 0,
        maxRetries: 10,
        deadLetterQueue: "edgehook-runs-undeliverable",
      },
    },
    // wrangler.toml allows 10,000 requests per 10 s per client IP; every bench
    // request comes from one IP, so the limit is raised here.
    ratelimits: { INGRESS_IP_LIMITER: { simple: { limit: 1000000, period: 10 } } },
  },
};

// The Rust floor (bench/floor-rust): the JavaScript floor's admission written
// with workers-rs, built by `make bench` into target/floor-rust.
workers["floor-rust"] = {
  modules: true,
  scriptPath: path.join(root, "target/floor-rust/entry.mjs"),
  modulesRoot: path.join(root, "target/floor-rust"),
  modulesRules: workers.edgehook.modulesRules,
  bindings: { FLOOR_SECRET: process.env.FLOOR_SECRET },
  durableObjects: { LEDGER: { className: "Ledger", useSQLite: true } },
  queueProducers: { RUNS: "floor-runs" },
};

// The ledger floor: the Rust floor writing the rows edgehook writes for a new
// delivery, with edgehook's schema and statements (bench/floor-rust's doc).
workers["floor-rust-ledger"] = {
  ...workers["floor-rust"],
  bindings: { FLOOR_SECRET: process.env.FLOOR_SECRET, FLOOR_LEDGER: "edgehook" },
};

// The RPC floor with a do-nothing consumer of its queue, which POSTs each
// message to FLOOR_TARGET: what Miniflare's local queue delivers under a
// load, with no edgehook code on either side of it.
workers["floor-rpc-consumer"] = {
  ...workers.floor("rpc"),
  bindings: {
    FLOOR_SECRET: process.env.FLOOR_SECRET,
    FLOOR_MODE: "rpc",
    FLOOR_TARGET: process.env.FLOOR_TARGET,
  },
  queueConsumers: { "floor-runs": { maxBatchSize: 100, maxBatchTimeout: 0 } },
};

// The same edge whose Worker does not consume the runs queue: what a crash
// before dispatch leaves behind, for the drain measurement.
workers["edgehook-without-consumer"] = { ...workers.edgehook, queueConsumers: undefined };

const worker =
  kind === "floor-rpc"
    ? workers.floor("rpc")
    : kind === "floor-fetch"
      ? workers.floor("fetch")
      : workers[kind];
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
