// What a Worker's size costs when an isolate starts: `make bench` runs
//
//   node bench/startup.mjs <rounds> <state-dir>
//
// and reads the one JSON line it prints. Each round starts every Worker
// below once, in an order that rotates from round to round, with fresh
// state: the time from `new Miniflare` to its `ready` (workerd started, the
// script and its Wasm loaded and compiled) and the time of the first answer
// after that (GET /healthz for edgehook, GET / for the others). workerd
// compiles a Worker's Wasm while it loads the script, before `ready`. (This
// process's V8 cannot time that compile apart: Node 20 does not compile the
// exception-handling instructions the Wasm uses.)
//
// One more Worker tells bytes from code: the Rust floor with a custom
// section appended to its Wasm that makes the file as large as edgehook's.
// V8 never compiles a custom section, so what that costs is what the bytes
// themselves cost on their way into workerd.
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
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

/** `n` as an unsigned LEB128. */
function leb128(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

// The padded Rust floor: a copy of target/floor-rust whose Wasm ends with a
// custom section named "padding" that brings it to edgehook's size. Its
// bytes are random, so that nothing on the way can compress them.
const floorDir = path.join(root, "target/floor-rust");
const paddedDir = path.join(state, "floor-rust-padded");
mkdirSync(paddedDir, { recursive: true });
for (const f of ["entry.mjs", "index.js"]) copyFileSync(path.join(floorDir, f), path.join(paddedDir, f));
const floorWasm = readFileSync(path.join(floorDir, "index_bg.wasm"));
const target = statSync(path.join(root, "build/index_bg.wasm")).size;
const name = Buffer.from("padding");
// Section id, size, name length, name, payload: sized to land within a few
// bytes of `target` (the LEB128 lengths vary in size).
const payload = randomBytes(Math.max(0, target - floorWasm.length - name.length - 8));
const body = Buffer.concat([leb128(name.length), name, payload]);
writeFileSync(
  path.join(paddedDir, "index_bg.wasm"),
  Buffer.concat([floorWasm, Buffer.from([0]), leb128(body.length), body]),
);
const options = (kind) =>
  kind === "floor-rust-padded"
    ? {
        ...workerOptions("floor-rust"),
        scriptPath: path.join(paddedDir, "entry.mjs"),
        modulesRoot: paddedDir,
      }
    : workerOptions(kind);

const kinds = ["noop", "floor-rpc", "floor-rust", "floor-rust-padded", "edgehook"];
const firstPath = (kind) => (kind === "edgehook" ? "/healthz" : "/");
const out = {
  rounds: Number(rounds),
  padded_bytes: statSync(path.join(paddedDir, "index_bg.wasm")).size,
  workers: {},
};
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
      ...options(kind),
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
