// A CPU profile of one of bench/workers.mjs's Workers (edgehook by default)
// under Miniflare, while 16 clients send it new signed GitHub deliveries of
// about 2 KB for a number of seconds (10 by default):
//
//   node bench/profile.mjs [worker] [seconds]
//
// With PROFILE_FEED=1 (edgehook only) it profiles the backfill's read
// instead: the change feed's first page of 1000 changes, as frames, read
// again and again by one client after those deliveries went in.
//
// With PROFILE_DISPATCH=1 (edgehook only) the trigger has a target, a local
// HTTP server answering 204, and 4 clients send deliveries as fast as they
// are answered: the profile then holds each run's dispatch (the queue
// consumer's claim, the POST, the report) beside its ingest.
//
// It prints the throughput, then each function's share of the samples, with
// its callees (inclusive) and alone (self), and writes the whole profile to
// /tmp/<worker>.cpuprofile for Chrome's DevTools. Build the Worker with
// `EDGEHOOK_WASM_NAMES=1 bash scripts/build-worker.sh` first, or its Wasm
// functions are nameless. Not part of `make bench`: the load generator shares
// the machine, and a profile is for finding where the time goes, not for
// figures.
import { Miniflare } from "miniflare";
import WebSocket from "ws";
import crypto from "node:crypto";
import fs from "node:fs";
import { workerOptions } from "./workers.mjs";

const kind = process.argv[2] ?? "edgehook";
const seconds = Number(process.argv[3] ?? 10);
process.env.ADMIN_TOKEN = "admin-token-0123456789abcdef";
process.env.DISPATCH_SECRET = "whsec_" + Buffer.from("dispatch-secret-0123456789abcdef").toString("base64");
process.env.FLOOR_SECRET = "floor-secret";
const opts = workerOptions(kind);
const state = fs.mkdtempSync("/tmp/prof-");
const mf = new Miniflare({
  host: "127.0.0.1", port: 0, compatibilityDate: "2026-04-01",
  durableObjectsPersist: state + "/do", queuesPersist: state + "/q", cachePersist: false,
  // The inspector, for the profiler.
  inspectorPort: 9339, ...opts,
  bindings: { ...opts.bindings, ADMIN_TOKEN: process.env.ADMIN_TOKEN, DISPATCH_SECRET: process.env.DISPATCH_SECRET, FLOOR_SECRET: process.env.FLOOR_SECRET },
});
const base = (await mf.ready).toString().replace(/\/$/, "");
const dispatch = process.env.PROFILE_DISPATCH === "1" && kind === "edgehook";
let delivered = 0;
let targetUrl;
if (dispatch) {
  const http = await import("node:http");
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => { delivered++; res.writeHead(204); res.end(); });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  server.unref();
  targetUrl = `http://127.0.0.1:${server.address().port}/hook`;
}
const secret = kind === "edgehook" ? "github-secret-0123456789" : process.env.FLOOR_SECRET;
let path = "/hooks/t";
if (kind === "edgehook") {
  const r = await fetch(base + "/api/triggers", {
    method: "POST",
    headers: { authorization: "Bearer " + process.env.ADMIN_TOKEN, "content-type": "application/json" },
    body: JSON.stringify({ name: "prof", provider: "github", signing_secret: secret,
      rate_limit_per_second: 1000000, rate_limit_per_ip_per_second: 1000000,
      ...(dispatch ? { target_url: targetUrl } : {}) }),
  });
  const t = await r.json();
  if (!t.id) throw new Error(JSON.stringify(t));
  path = "/hooks/" + t.id;
}
const body = Buffer.from(JSON.stringify({ ref: "refs/heads/main", pad: "x".repeat(2000) }));
const sig = "sha256=" + crypto.createHmac("sha256", secret).update(body).digest("hex");
let n = 0, errors = 0;
async function client(until) {
  while (Date.now() < until) {
    const r = await fetch(base + path, { method: "POST", body, headers: {
      "x-hub-signature-256": sig, "x-github-event": "push", "x-github-delivery": "d-" + crypto.randomUUID(),
      "content-type": "application/json" } });
    await r.arrayBuffer();
    if (r.status !== 200) { errors++; if (errors < 3) console.error(r.status); }
    n++;
  }
}
// Two seconds of warm-up, unprofiled (six with PROFILE_FEED=1, to fill
// pages of 1000 changes).
const feed = process.env.PROFILE_FEED === "1" && kind === "edgehook";
await Promise.all(Array.from({ length: 16 }, () => client(Date.now() + (feed ? 6000 : 2000))));
const list = await (await fetch("http://127.0.0.1:9339/json/list")).json();
const target = list.find((t) => t.title.endsWith("core:user:"));
const ws = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((r) => ws.on("open", r));
let id = 0;
const pending = new Map();
ws.on("message", (m) => { const msg = JSON.parse(m); if (pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); } });
const call = (method, params = {}) => new Promise((r) => { const i = ++id; pending.set(i, r); ws.send(JSON.stringify({ id: i, method, params })); });
await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 200 });
await call("Profiler.start");
n = 0;
const t0 = Date.now();
if (feed) {
  // The backfill's read: the trigger's first change-feed page, as frames,
  // again and again (each loop is one page of up to 1000 changes).
  const page = base + "/api/triggers/" + path.slice("/hooks/".length) + "/changes?after=0&limit=1000&format=frames";
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    const r = await fetch(page, { headers: { authorization: "Bearer " + process.env.ADMIN_TOKEN } });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`changes: ${r.status}`);
    n++;
  }
} else {
  const before = delivered;
  await Promise.all(Array.from({ length: dispatch ? 4 : 16 }, () => client(Date.now() + seconds * 1000)));
  if (dispatch) console.log(`runs delivered while profiled: ${delivered - before}`);
}
const rps = n / ((Date.now() - t0) / 1000);
const { result } = await call("Profiler.stop");
const p = result.profile;
fs.writeFileSync(`/tmp/${kind}.cpuprofile`, JSON.stringify(p));
const self = new Map();
const byId = new Map(p.nodes.map((x) => [x.id, x]));
const counts = new Map();
for (const s of p.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
let total = 0;
for (const [nid, c] of counts) {
  const node = byId.get(nid);
  const f = node.callFrame;
  const key = (f.functionName || "(anon)") + " " + (f.url ? f.url.split("/").pop() : "");
  self.set(key, (self.get(key) ?? 0) + c);
  total += c;
}
console.log(`${kind}: ${rps.toFixed(0)} req/s, ${errors} errors, ${total} samples`);
// Inclusive: each function counted once per sample whose stack holds it.
const parent = new Map();
for (const x of p.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
const incl = new Map();
for (const [nid, c] of counts) {
  const seen = new Set();
  for (let cur = nid; cur !== undefined; cur = parent.get(cur)) {
    const f = byId.get(cur).callFrame;
    const key = (f.functionName || "(anon)") + " " + (f.url ? f.url.split("/").pop() : "");
    if (seen.has(key)) continue;
    seen.add(key);
    incl.set(key, (incl.get(key) ?? 0) + c);
  }
}
console.log("--- inclusive");
for (const [k, c] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, 70)) console.log(((100 * c) / total).toFixed(1).padStart(5) + "% " + k);
console.log("--- self");
const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, 60);
for (const [k, c] of top) console.log(((100 * c) / total).toFixed(1).padStart(5) + "% " + k);
ws.close();
await mf.dispose();
