// What a Worker's size costs when an isolate starts: `make bench` runs
//
//   node bench/startup.mjs <rounds> <state-dir>
//
// and reads the one JSON line it prints. Each round starts every Worker
// below once, in an order that rotates from round to round, with fresh
// state: the time from `new Miniflare` to its `ready` (workerd started, the
// script and its Wasm loaded and compiled) and the time of the first answer
// after that (GET /healthz for edgehook, GET / for the others). workerd
// compiles a Worker's Wasm while it loads the script, before `ready`.
// (This process's V8 cannot stand in for that: Node 20 does not compile the
// exception-handling instructions the Wasm uses.)
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

const [rounds, state] = process.argv.slice(2);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
// Start-up does not depend on the secrets' values; the bindings need some.
process.env.ADMIN_TOKEN ??= "adm_startup_measurement";
process.env.DISPATCH_SECRET ??= "whsec_c3RhcnR1cC1tZWFzdXJlbWVudA==";
process.env.FLOOR_SECRET ??= "startup-measurement";
// Imported after the secrets are set: the table reads them when it loads.
const { workerOptions } = await import("./workers.mjs");

const kinds = ["noop", "floor-rpc", "floor-rust", "edgehook"];
const firstPath = (kind) => (kind === "edgehook" ? "/healthz" : "/");
const out = { rounds: Number(rounds), workers: {} };
for (const kind of kinds) out.workers[kind] = { ready_ms: [], first_answer_ms: [] };

for (let round = 0; round < Number(rounds); round++) {
  for (let k = 0; k < kinds.length; k++) {
    const kind = kinds[(k + round) % kinds.length];
    const started = performance.now();
    const mf = new Miniflare({
      host: "127.0.0.1",
      port: 0,
      compatibilityDate: "2026-04-01",
      durableObjectsPersist: path.join(state, `${kind}-${round}`, "do"),
      queuesPersist: path.join(state, `${kind}-${round}`, "queues"),
      cachePersist: false,
      ...workerOptions(kind),
    });
    const url = await mf.ready;
    const ready = performance.now();
    const res = await fetch(new URL(firstPath(kind), url));
    await res.arrayBuffer();
    const answered = performance.now();
    await mf.dispose();
    out.workers[kind].ready_ms.push(ready - started);
    out.workers[kind].first_answer_ms.push(answered - ready);
  }
}

console.log(JSON.stringify(out));
