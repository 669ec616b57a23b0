// edgehook console: triggers, deliveries, runs and replays over the same
// management API as curl. No framework and no external asset: the page is
// built with DOM calls only (never innerHTML), so nothing a webhook sent can
// become markup. The admin token lives in sessionStorage only: never in a
// URL, a cookie or a log line.

const TOKEN_KEY = "edgehook.admin_token";
const POLL_MS = 2000;
// The trigger list costs three calls per trigger: it refreshes less often.
const LIST_POLL_MS = 15000;
const BODY_SHOWN_BYTES = 64 * 1024;
const app = document.getElementById("app");
const crumbs = document.getElementById("crumbs");
const live = document.getElementById("live");
const signOutButton = document.getElementById("sign-out");
let timer = null;
let generation = 0;

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// h("a", {href: "#/"}, "text", child): an element with attributes (on* are
// listeners) and children (strings become text nodes).
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

async function api(method, path, body, headers = {}) {
  const init = {
    method,
    headers: { authorization: `Bearer ${token()}`, ...headers },
    cache: "no-store",
    referrerPolicy: "no-referrer",
  };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (res.status === 401) {
    signOut("That token was not accepted. Sign in again.");
    throw new ApiError(401, "unauthorized");
  }
  if (!res.ok) {
    const what = data && (data.message || data.error);
    throw new ApiError(res.status, what || `HTTP ${res.status}`);
  }
  return data;
}

const idempotencyKey = () => `console-${crypto.randomUUID()}`;
const enc = encodeURIComponent;

function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

const badge = (status) => h("span", { class: `badge s-${status}` }, status);

function message(el, text, kind = "error") {
  el.replaceChildren(text ? h("span", { class: kind }, text) : "");
}

function setCrumbs(...parts) {
  const out = [h("a", { href: "#/" }, "triggers")];
  for (const [label, href] of parts) {
    out.push(h("span", { class: "sep" }, "/"));
    out.push(href ? h("a", { href }, label) : h("span", {}, label));
  }
  crumbs.replaceChildren(...out);
}

function stopPolling() {
  if (timer) clearInterval(timer);
  timer = null;
  live.hidden = true;
}

function poll(fn, every = POLL_MS) {
  stopPolling();
  live.hidden = false;
  const mine = generation;
  timer = setInterval(async () => {
    if (mine !== generation) return;
    try {
      await fn();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) console.warn("refresh failed", e.message);
    }
  }, every);
}

// ---- sign-in ----------------------------------------------------------

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  stopPolling();
  generation++;
  signInView(reason);
}

function signInView(reason) {
  signOutButton.hidden = true;
  crumbs.replaceChildren();
  const input = h("input", {
    type: "password",
    id: "token",
    name: "token",
    autocomplete: "off",
    placeholder: "ADMIN_TOKEN",
    required: true,
  });
  const note = h("p", { id: "signin-message" });
  if (reason) message(note, reason);
  const form = h(
    "form",
    {
      class: "card signin",
      id: "signin",
      onsubmit: async (ev) => {
        ev.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        input.value = "";
        try {
          await api("GET", "/api/triggers?limit=1");
          route();
        } catch (e) {
          if (!(e instanceof ApiError && e.status === 401)) message(note, e.message);
        }
      },
    },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "The admin token is kept in this tab only, until you sign out or close it."),
    input,
    h("p", {}, h("button", { class: "primary", type: "submit" }, "Sign in")),
    note,
  );
  app.replaceChildren(form);
  input.focus();
}

// ---- triggers ---------------------------------------------------------

async function triggerRow(t) {
  const [stats, latest, routes] = await Promise.all([
    api("GET", `/api/triggers/${t.id}/stats?hours=24&buckets=24`),
    api("GET", `/api/triggers/${t.id}/deliveries?limit=1`),
    api("GET", `/api/triggers/${t.id}/routes`),
  ]);
  const c = stats.totals;
  const paused = (routes.routes || []).filter((r) => r.paused_at);
  const copy = h(
    "button",
    {
      type: "button",
      class: "copy",
      title: "Copy the ingress URL",
      onclick: async () => {
        await navigator.clipboard?.writeText(t.url).catch(() => {});
        copy.textContent = "copied";
        setTimeout(() => (copy.textContent = "copy"), 1500);
      },
    },
    "copy",
  );
  return h(
    "tr",
    { dataset: { trigger: t.id } },
    h("td", {}, h("a", { href: `#/t/${t.id}` }, t.name), t.enabled ? "" : h("span", { class: "muted" }, " (disabled)")),
    h("td", {}, t.provider),
    h("td", {}, h("code", {}, t.url), " ", copy),
    h(
      "td",
      { class: "counts" },
      `${c.total} received · `,
      h("span", { class: "notice" }, `${c.delivered} delivered`),
      " · ",
      h("span", { class: c.failed ? "error" : "" }, `${c.failed} failed`),
      ` · ${c.queued} queued · ${c.rejected} rejected`,
    ),
    h("td", {}, ago(latest.deliveries[0]?.received_at)),
    h("td", {}, paused.length ? h("span", { class: "badge s-held" }, `${paused.length} paused`) : "—"),
  );
}

async function triggersView() {
  setCrumbs();
  const body = h("tbody");
  const note = h("p");
  app.replaceChildren(
    h("h1", {}, "Triggers"),
    h(
      "table",
      { id: "triggers" },
      h("thead", {}, h("tr", {}, ["Name", "Provider", "URL", "Last 24 h", "Last delivery", "Routes"].map((x) => h("th", {}, x)))),
      body,
    ),
    note,
  );
  const load = async () => {
    const list = await api("GET", "/api/triggers?limit=200");
    const rows = await Promise.all(list.triggers.map(triggerRow));
    body.replaceChildren(...rows);
    message(note, list.triggers.length ? "" : "No triggers yet: create one with POST /api/triggers.", "muted");
  };
  await load();
  poll(load, LIST_POLL_MS);
}

// ---- a trigger --------------------------------------------------------

function chart(stats) {
  const n = stats.buckets.length;
  const max = Math.max(1, ...stats.buckets.map((b) => b.counts.total));
  const w = 600;
  const hgt = 100;
  const bw = w / n;
  const g = svg("svg", { class: "chart", viewBox: `0 0 ${w} ${hgt + 16}`, preserveAspectRatio: "none", role: "img" });
  g.append(svg("title", {}, `Deliveries per ${stats.bucket_seconds / 60} min, last ${n} buckets`));
  stats.buckets.forEach((b, i) => {
    const c = b.counts;
    let y = hgt;
    for (const [v, cls] of [
      [c.delivered, "ok"],
      [c.failed + c.rejected, "bad"],
      [c.queued + c.ignored, "other"],
    ]) {
      if (!v) continue;
      const bh = (v / max) * hgt;
      y -= bh;
      g.append(svg("rect", { x: i * bw + 1, y, width: Math.max(1, bw - 2), height: bh, class: cls }));
    }
  });
  g.append(svg("text", { x: 0, y: hgt + 14, "font-size": 11, fill: "#5f6b76" }, when(stats.from)));
  g.append(svg("text", { x: w, y: hgt + 14, "font-size": 11, fill: "#5f6b76", "text-anchor": "end" }, "now"));
  return g;
}

function latencyText(l) {
  return l.count
    ? `dispatch latency p50 ${l.p50} ms · p90 ${l.p90} ms · p99 ${l.p99} ms (${l.count} runs)`
    : "no successful dispatch in this window";
}

function filtersFromHash() {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  return {
    status: q.get("status") || "",
    event_type: q.get("event_type") || "",
    received_after: q.get("received_after") || "",
    received_before: q.get("received_before") || "",
  };
}

function toIso(local) {
  if (!local) return "";
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

async function triggerView(id) {
  const t = await api("GET", `/api/triggers/${id}`);
  setCrumbs([t.name, null]);
  const filters = filtersFromHash();
  let cursors = [null];
  let page = 0;
  let seq = 0;

  const chartBox = h("div", { id: "chart" });
  const latency = h("p", { class: "muted", id: "latency" });
  const rows = h("tbody");
  const pager = h("div", { class: "pager" });
  const listNote = h("p");

  const status = h(
    "select",
    { name: "status", id: "filter-status" },
    ["", "queued", "delivered", "failed", "rejected", "ignored"].map((s) =>
      h("option", { value: s, selected: s === filters.status }, s || "any status"),
    ),
  );
  const eventType = h("input", { name: "event_type", id: "filter-event", value: filters.event_type, placeholder: "any event" });
  const after = h("input", { type: "datetime-local", name: "received_after", value: toLocalInput(filters.received_after) });
  const before = h("input", { type: "datetime-local", name: "received_before", value: toLocalInput(filters.received_before) });
  const filterForm = h(
    "form",
    {
      class: "row",
      id: "filters",
      onsubmit: (ev) => {
        ev.preventDefault();
        const q = new URLSearchParams();
        if (status.value) q.set("status", status.value);
        if (eventType.value.trim()) q.set("event_type", eventType.value.trim());
        if (toIso(after.value)) q.set("received_after", toIso(after.value));
        if (toIso(before.value)) q.set("received_before", toIso(before.value));
        const s = q.toString();
        location.hash = `#/t/${id}${s ? `?${s}` : ""}`;
      },
    },
    h("label", {}, "Status", status),
    h("label", {}, "Event type", eventType),
    h("label", {}, "Received after", after),
    h("label", {}, "Received before", before),
    h("button", { type: "submit" }, "Filter"),
  );

  const listQuery = () => {
    const q = new URLSearchParams({ limit: "25" });
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    if (cursors[page]) q.set("cursor", cursors[page]);
    return q.toString();
  };

  const loadList = async () => {
    const list = await api("GET", `/api/triggers/${id}/deliveries?${listQuery()}`);
    rows.replaceChildren(
      ...list.deliveries.map((d) =>
        h(
          "tr",
          { dataset: { delivery: d.delivery_id } },
          h("td", {}, h("a", { href: `#/t/${id}/d/${d.delivery_id}` }, h("code", {}, d.delivery_id))),
          h("td", {}, badge(d.status)),
          h("td", {}, d.event_type || "—"),
          h("td", {}, when(d.received_at)),
          h("td", {}, d.signature_status),
          h("td", {}, d.attempt_count > 1 ? `${d.attempt_count}×` : ""),
          h("td", {}, d.replayed_from ? h("a", { href: `#/t/${id}/d/${d.replayed_from}` }, "replay") : ""),
        ),
      ),
    );
    cursors[page + 1] = list.next_cursor;
    pager.replaceChildren(
      h("button", { type: "button", disabled: page === 0, onclick: () => { page--; loadList(); } }, "Newer"),
      h("span", { class: "muted" }, `page ${page + 1}`),
      h("button", { type: "button", disabled: !list.next_cursor, onclick: () => { page++; loadList(); } }, "Older"),
    );
    message(listNote, list.deliveries.length ? "" : "No deliveries match.", "muted");
  };

  const loadStats = async () => {
    const stats = await api("GET", `/api/triggers/${id}/stats?hours=24&buckets=48`);
    chartBox.replaceChildren(chart(stats));
    latency.textContent = `Last 24 h: ${stats.totals.total} received, ${stats.totals.delivered} delivered, ${stats.totals.failed} failed, ${stats.totals.rejected} rejected · ${latencyText(stats.dispatch_latency_ms)}`;
    return stats;
  };

  // Routes with pause and resume.
  const routeRows = h("tbody");
  const routeNote = h("p");
  const loadRoutes = async () => {
    const list = await api("GET", `/api/triggers/${id}/routes`);
    routeRows.replaceChildren(
      ...list.routes.map((r) =>
        h(
          "tr",
          { dataset: { route: r.id } },
          h("td", {}, r.name),
          h("td", {}, h("code", {}, r.target_url)),
          h("td", {}, r.paused_at ? h("span", {}, badge("held"), ` paused ${ago(r.paused_at)}${r.paused_reason ? `: ${r.paused_reason}` : ""}`) : r.enabled ? "active" : "disabled"),
          h("td", {}, `${r.open_runs} open · ${r.held_runs} held`),
          h(
            "td",
            {},
            h(
              "button",
              {
                type: "button",
                class: r.paused_at ? "resume" : "pause",
                onclick: async () => {
                  try {
                    await api("POST", `/api/triggers/${id}/routes/${r.id}/${r.paused_at ? "resume" : "pause"}`, r.paused_at ? undefined : { reason: "paused from the console" });
                    await loadRoutes();
                  } catch (e) {
                    message(routeNote, e.message);
                  }
                },
              },
              r.paused_at ? "Resume" : "Pause",
            ),
          ),
        ),
      ),
    );
    message(routeNote, list.routes.length ? "" : "No routes: deliveries are stored and not sent anywhere.", "muted");
  };

  // Secret rotation: write-only; only the hint comes back.
  const secretInput = h("input", { type: "password", name: "secret", id: "new-secret", autocomplete: "off", required: true });
  const grace = h("input", { type: "number", name: "grace_seconds", min: 0, value: 86400 });
  const hint = h("span", { id: "secret-hint" }, t.signing_secret_hint ? `current secret ends …${t.signing_secret_hint}` : "no secret set");
  const rotateNote = h("p");
  const rotate = h(
    "form",
    {
      class: "row",
      id: "rotate",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const secret = secretInput.value;
        secretInput.value = "";
        try {
          const v = await api("PUT", `/api/triggers/${id}/signing-secret`, { secret, grace_seconds: Number(grace.value) });
          hint.textContent = `current secret ends …${v.signing_secret_hint}`;
          message(rotateNote, `Rotated. The previous secret is accepted until ${when(v.previous_secret_expires_at)}.`, "notice");
        } catch (e) {
          message(rotateNote, e.message);
        }
      },
    },
    h("label", {}, "New signing secret", secretInput),
    h("label", {}, "Grace (s)", grace),
    h("button", { type: "submit" }, "Rotate"),
    hint,
  );

  // Bulk replay: count first, then confirm.
  const bulkStatus = h("select", { name: "bulk_status", id: "bulk-status" }, ["failed", "delivered", "queued", "ignored", ""].map((s) => h("option", { value: s }, s || "any status")));
  const bulkLimit = h("input", { type: "number", name: "limit", min: 1, max: 500, value: 100 });
  const bulkOut = h("div", { id: "bulk-result" });
  const bulkRequest = () => {
    const req = { limit: Number(bulkLimit.value) || 100 };
    if (bulkStatus.value) req.status = bulkStatus.value;
    if (filters.event_type) req.event_type = filters.event_type;
    if (filters.received_after) req.received_after = filters.received_after;
    if (filters.received_before) req.received_before = filters.received_before;
    return req;
  };
  const bulk = h(
    "form",
    {
      class: "row",
      id: "bulk",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const req = bulkRequest();
        try {
          const preview = await api("POST", `/api/triggers/${id}/replay`, { ...req, dry_run: true });
          if (!preview.count) {
            message(bulkOut, "Nothing matches: no delivery would be replayed.", "muted");
            return;
          }
          const key = idempotencyKey();
          const confirm = h(
            "button",
            {
              type: "button",
              class: "primary",
              id: "bulk-confirm",
              onclick: async () => {
                confirm.disabled = true;
                try {
                  const done = await api("POST", `/api/triggers/${id}/replay`, req, { "idempotency-key": key });
                  bulkOut.replaceChildren(
                    h("p", { class: "notice" }, `Replayed ${done.count} deliveries.`),
                    h("ul", { id: "bulk-replayed" }, done.replayed.map((r) => h("li", {}, h("a", { href: `#/t/${id}/d/${r.delivery_id}` }, r.delivery_id), ` (of ${r.replayed_from})`))),
                  );
                  await refresh();
                } catch (e) {
                  message(bulkOut, e.message);
                }
              },
            },
            `Replay ${preview.count}`,
          );
          bulkOut.replaceChildren(h("p", { id: "bulk-preview" }, `${preview.count} deliveries would be replayed. `, confirm));
        } catch (e) {
          message(bulkOut, e.message);
        }
      },
    },
    h("label", {}, "Status", bulkStatus),
    h("label", {}, "At most", bulkLimit),
    h("button", { type: "submit" }, "Preview bulk replay"),
    h("span", { class: "muted" }, "uses the event type and time filters above"),
  );

  const config = { ...t };
  app.replaceChildren(
    h("h1", {}, t.name, " ", h("span", { class: "muted" }, t.provider)),
    h("p", {}, h("code", { id: "trigger-url" }, t.url)),
    h("div", { class: "card" }, chartBox, latency),
    h("h2", {}, "Deliveries"),
    filterForm,
    h(
      "table",
      { id: "deliveries" },
      h("thead", {}, h("tr", {}, ["Delivery", "Status", "Event", "Received", "Signature", "Copies", ""].map((x) => h("th", {}, x)))),
      rows,
    ),
    pager,
    listNote,
    h("h2", {}, "Bulk replay"),
    h("div", { class: "card" }, bulk, bulkOut),
    h("h2", {}, "Routes"),
    h("table", { id: "routes" }, h("thead", {}, h("tr", {}, ["Name", "Target", "State", "Runs", ""].map((x) => h("th", {}, x)))), routeRows),
    routeNote,
    h("h2", {}, "Signing secret"),
    h("div", { class: "card" }, rotate, rotateNote),
    h("h2", {}, "Configuration"),
    h("pre", { id: "config" }, JSON.stringify(config, null, 2)),
  );

  const refresh = async () => {
    await Promise.all([loadList(), loadStats(), loadRoutes()]);
  };
  const stats = await loadStats();
  seq = stats.seq;
  await Promise.all([loadList(), loadRoutes()]);
  // Live: the change feed says whether anything changed since `seq`.
  poll(async () => {
    const changes = await api("GET", `/api/triggers/${id}/changes?after=${seq}&limit=20`);
    if (changes.changes.length) {
      seq = changes.next_after;
      // Later pages keep their place; the first page shows new arrivals.
      await refresh();
    }
  });
}

// ---- a delivery -------------------------------------------------------

function bodyView(d) {
  if (!d.raw_body) return h("p", { class: "muted" }, "No body stored.");
  let bytes;
  try {
    bytes = Uint8Array.from(atob(d.raw_body), (c) => c.charCodeAt(0));
  } catch {
    return h("p", { class: "error" }, "The stored body could not be decoded.");
  }
  const cut = bytes.length > BODY_SHOWN_BYTES;
  const text = new TextDecoder("utf-8", { fatal: false }).decode(cut ? bytes.slice(0, BODY_SHOWN_BYTES) : bytes);
  let shown = text;
  if (!cut) {
    try {
      shown = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      shown = text;
    }
  }
  return h(
    "div",
    {},
    h("pre", { id: "body" }, shown),
    cut ? h("p", { class: "muted" }, `Showing the first ${BODY_SHOWN_BYTES} of ${bytes.length} bytes.`) : "",
    d.body_truncated ? h("p", { class: "muted" }, `Rejected deliveries keep only the start of their body (${d.body_bytes} bytes were received).`) : "",
  );
}

function runView(r) {
  return h(
    "div",
    { class: "card run", dataset: { run: r.run_id } },
    h("p", {}, h("code", {}, r.run_id), " ", badge(r.status), r.route_id ? h("span", { class: "muted" }, ` route ${r.route_id}`) : "", ` · ${r.attempt_count} attempt(s)`),
    r.last_error ? h("p", { class: "error" }, r.last_error) : "",
    h(
      "ol",
      { class: "timeline" },
      (r.attempts || []).map((a) =>
        h(
          "li",
          { class: a.status_code >= 200 && a.status_code < 300 ? "ok" : a.error || a.status_code ? "bad" : "" },
          `#${a.attempt} ${when(a.started_at)} · `,
          a.status_code ? `HTTP ${a.status_code}` : a.error ? a.error : "in flight",
          a.duration_ms !== null && a.duration_ms !== undefined ? ` · ${a.duration_ms} ms` : "",
          a.rate_limited_ms ? ` · waited ${a.rate_limited_ms} ms (rate limit)` : "",
          a.error_message ? h("div", { class: "muted" }, a.error_message) : "",
          a.response_excerpt ? h("pre", {}, a.response_excerpt) : "",
        ),
      ),
    ),
  );
}

async function deliveryView(id, did) {
  const t = await api("GET", `/api/triggers/${id}`);
  setCrumbs([t.name, `#/t/${id}`], [did, null]);
  const box = h("div");
  const note = h("p", { id: "replay-result" });
  const replay = h(
    "button",
    {
      type: "button",
      class: "primary",
      id: "replay",
      onclick: async () => {
        replay.disabled = true;
        try {
          const r = await api("POST", `/api/triggers/${id}/deliveries/${did}/replay`, undefined, { "idempotency-key": idempotencyKey() });
          note.replaceChildren(h("span", { class: "notice" }, "Replayed as "), h("a", { href: `#/t/${id}/d/${r.delivery_id}`, id: "replay-link" }, r.delivery_id));
        } catch (e) {
          message(note, e.message);
        } finally {
          replay.disabled = false;
        }
      },
    },
    "Replay",
  );
  const render = (d) => {
    const headers = Object.entries(d.headers || {});
    box.replaceChildren(
      h("h1", {}, h("code", {}, d.delivery_id), " ", badge(d.status)),
      h(
        "div",
        { class: "grid" },
        h(
          "div",
          { class: "card" },
          h("table", {}, h("tbody", {},
            [
              ["Received", when(d.received_at)],
              ["Event type", d.event_type || "—"],
              ["Signature", d.signature_status],
              ["Matched secret", d.matched_secret || "—"],
              ["Dedupe key", d.dedupe_key || "—"],
              ["Copies received", d.attempt_count],
              ["Body", `${d.body_bytes} bytes`],
              ["Reason", d.reason || "—"],
            ].map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, String(v)))),
            d.replayed_from ? h("tr", {}, h("th", {}, "Replay of"), h("td", {}, h("a", { href: `#/t/${id}/d/${d.replayed_from}` }, d.replayed_from))) : "",
          )),
          h("p", {}, d.status === "rejected" ? h("span", { class: "muted" }, "Rejected deliveries cannot be replayed.") : replay),
          note,
        ),
        h("div", { class: "card" }, h("h2", {}, "Headers (as stored, redacted)"), h("table", { id: "headers" }, h("tbody", {}, headers.map(([k, v]) => h("tr", {}, h("td", {}, h("code", {}, k)), h("td", {}, h("code", {}, String(v)))))))),
      ),
      h("h2", {}, "Body"),
      bodyView(d),
      h("h2", {}, "Runs"),
      ...(d.runs || []).map(runView),
      d.runs && d.runs.length ? "" : h("p", { class: "muted" }, "No runs."),
    );
  };
  app.replaceChildren(box);
  const load = async () => render(await api("GET", `/api/triggers/${id}/deliveries/${did}`));
  await load();
  poll(load);
}

// ---- routing ----------------------------------------------------------

async function route() {
  generation++;
  stopPolling();
  if (!token()) return signInView();
  signOutButton.hidden = false;
  const path = location.hash.replace(/^#/, "").split("?")[0] || "/";
  const parts = path.split("/").filter(Boolean);
  try {
    if (parts.length === 0) await triggersView();
    else if (parts[0] === "t" && parts.length === 2) await triggerView(enc(parts[1]));
    else if (parts[0] === "t" && parts[2] === "d" && parts.length === 4) await deliveryView(enc(parts[1]), enc(parts[3]));
    else app.replaceChildren(h("p", { class: "error" }, "Nothing here."), h("a", { href: "#/" }, "All triggers"));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    app.replaceChildren(h("p", { class: "error", id: "view-error" }, e.message), h("a", { href: "#/" }, "All triggers"));
  }
}

signOutButton.addEventListener("click", () => signOut("Signed out."));
window.addEventListener("hashchange", route);
route();
