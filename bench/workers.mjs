// The Workers `make bench` runs under Miniflare's API, by name:
// `bench/miniflare.mjs` serves one of them, `bench/startup.mjs` starts several
// of them again and again. The edgehook bindings mirror wrangler.toml;
// secrets come from the environment (ADMIN_TOKEN and DISPATCH_SECRET for
// edgehook, FLOOR_SECRET for the floors, FLOOR_TARGET for
// floor-rpc-consumer).
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

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
      // As `make dev` sets it: the local runtime has no limit on
      // connections waiting for headers, where production has six.
      DISPATCH_SEND_SLOTS: "100",
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

// The JavaScript ledger floor: the RPC floor writing edgehook's rows with
// edgehook's schema and statements (bench/floor/floor.js). Run it with
// `BENCH_ONLY=probe BENCH_PROBE_WORKERS=floor-rpc,floor-js-ledger,...`.
workers["floor-js-ledger"] = {
  ...workers.floor("rpc"),
  bindings: { FLOOR_SECRET: process.env.FLOOR_SECRET, FLOOR_MODE: "rpc", FLOOR_LEDGER: "edgehook" },
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

// The same edge with production's send slots (six): for the test that a slow
// target sees no more than six requests at once.
workers["edgehook-platform-slots"] = {
  ...workers.edgehook,
  bindings: {
    ADMIN_TOKEN: process.env.ADMIN_TOKEN,
    DISPATCH_SECRET: process.env.DISPATCH_SECRET,
  },
};

// A baseline build of edgehook, for measuring a change against it in turns:
// build the baseline, copy build/ (with worker/entry.mjs as its entry.mjs)
// to a directory, and name it in BENCH_BASELINE_BUILD; then
// `BENCH_ONLY=probe BENCH_PROBE_WORKERS=edgehook-baseline,edgehook`.
if (process.env.BENCH_BASELINE_BUILD) {
  const dir = path.resolve(process.env.BENCH_BASELINE_BUILD);
  workers["edgehook-baseline"] = {
    ...workers.edgehook,
    scriptPath: path.join(dir, "entry.mjs"),
    modulesRoot: dir,
  };
}

/** The Miniflare options of the Worker named `kind`, or undefined. */
export function workerOptions(kind) {
  return kind === "floor-rpc"
    ? workers.floor("rpc")
    : kind === "floor-fetch"
      ? workers.floor("fetch")
      : workers[kind];
}
