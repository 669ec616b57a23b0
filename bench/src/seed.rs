//! Grows a stopped trigger's ledger to a million deliveries in seconds, and
//! shows the query plans of the ingest and claim paths on it.
//!
//! Growing a ledger through its API runs at a few thousand deliveries a
//! second, so a million would take most of the bench's time budget. Instead
//! the bench stops the runtime, copies real rows the Worker wrote (their
//! deliveries, bodies, runs and attempts, with new ids, sequence numbers and
//! receive times within the last day) straight into the object's SQLite
//! file with Python's `sqlite3`, fixes the counters, and starts the runtime
//! again on it. The rows are the Worker's own, so every path reads them as
//! it reads its own writes.

use std::path::{Path, PathBuf};
use std::process::Command;

const SEED: &str = r#"
import sqlite3, sys, time
path, count, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
db = sqlite3.connect(path)
db.execute("PRAGMA synchronous = OFF")
cols = lambda t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")]
dcols, rcols, acols = cols("deliveries"), cols("runs"), cols("attempts")
templates = db.execute(f"SELECT {','.join(dcols)} FROM deliveries WHERE replayed_from IS NULL ORDER BY seq").fetchall()
assert templates, "no deliveries to copy"
bodies = {r[0]: r[1] for r in db.execute("SELECT delivery_id, data FROM bodies WHERE idx = 0")}
runs = {}
for r in db.execute(f"SELECT {','.join(rcols)} FROM runs"):
    runs.setdefault(r[rcols.index("delivery_id")], []).append(r)
attempts = {}
for a in db.execute(f"SELECT {','.join(acols)} FROM attempts"):
    attempts.setdefault(a[acols.index("run_id")], []).append(a)
seq = db.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0]
now = int(time.time() * 1000)
start = now - 86_400_000
step = max(1, 80_000_000 // max(count, 1))
added_bytes = 0
D = {c: i for i, c in enumerate(dcols)}
R = {c: i for i, c in enumerate(rcols)}
A = {c: i for i, c in enumerate(acols)}
dq = f"INSERT INTO deliveries ({','.join(dcols)}) VALUES ({','.join('?' * len(dcols))})"
rq = f"INSERT INTO runs ({','.join(rcols)}) VALUES ({','.join('?' * len(rcols))})"
aq = f"INSERT INTO attempts ({','.join(acols)}) VALUES ({','.join('?' * len(acols))})"
bq = "INSERT INTO bodies (delivery_id, idx, data) VALUES (?, 0, ?)"
batch_d, batch_b, batch_r, batch_a = [], [], [], []
def flush():
    db.executemany(dq, batch_d); db.executemany(bq, batch_b)
    db.executemany(rq, batch_r); db.executemany(aq, batch_a)
    batch_d.clear(); batch_b.clear(); batch_r.clear(); batch_a.clear()
for n in range(count):
    t = templates[n % len(templates)]
    d = list(t)
    old = d[D["id"]]
    did = f"dlv_{tag}{n:09d}"
    seq += 1
    at = start + n * step
    d[D["id"]], d[D["seq"]], d[D["received_at"]] = did, seq, at
    if d[D["dedupe_key"]] is not None:
        d[D["dedupe_key"]] = f"{tag}-seed-{n}"
    new_runs = []
    for k, r in enumerate(runs.get(old, [])):
        r = list(r)
        rid = f"run_{tag}{n:09d}{k}"
        for a in attempts.get(r[R["id"]], []):
            a = list(a)
            a[A["run_id"]], a[A["delivery_id"]], a[A["started_at"]] = rid, did, at
            batch_a.append(a)
        r[R["id"]], r[R["delivery_id"]] = rid, did
        r[R["created_at"]] = r[R["updated_at"]] = r[R["next_attempt_at"]] = at
        new_runs.append(r)
    if d[D["run_id"]] is not None and new_runs:
        d[D["run_id"]] = new_runs[0][R["id"]]
    batch_r.extend(new_runs)
    batch_d.append(d)
    if old in bodies:
        batch_b.append((did, bodies[old]))
    added_bytes += d[D["stored_bytes"]]
    if len(batch_d) >= 20_000:
        flush()
flush()
db.execute("UPDATE counters SET value = ? WHERE name = 'seq'", (seq,))
db.execute("UPDATE counters SET value = value + ? WHERE name = 'stored_bytes'", (added_bytes,))
db.commit()
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
"#;

/// Copies the Worker's rows in the ledger at `file` until it holds `count`
/// more deliveries. The runtime must be stopped.
pub fn grow(file: &Path, count: usize, tag: &str) {
    let out = Command::new("python3")
        .args(["-c", SEED])
        .arg(file)
        .arg(count.to_string())
        .arg(tag)
        .output()
        .expect("python3 (the bench seeds ledgers with its sqlite3 module)");
    assert!(
        out.status.success(),
        "seeding {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The object file (in a Durable Object state directory) whose ledger holds
/// a delivery with dedupe key `key`.
pub fn ledger_file(dir: &Path, key: &str) -> PathBuf {
    let script = "import sqlite3, sys\n\
        db = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True)\n\
        print(db.execute('SELECT count(*) FROM deliveries WHERE dedupe_key LIKE ?', ('%' + sys.argv[2] + '%',)).fetchone()[0])\n";
    std::fs::read_dir(dir)
        .expect("state directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .filter(|p| !p.ends_with("metadata.sqlite"))
        .find(|p| {
            Command::new("python3")
                .args(["-c", script])
                .arg(p)
                .arg(key)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim() != "0")
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("no ledger in {} holds {key}", dir.display()))
}

/// The queries of the ingest and claim paths (as `worker/src/ledger` writes
/// them, with literal arguments) and SQLite's plan for each on `file`.
pub fn query_plans(file: &Path) -> Vec<(&'static str, String)> {
    const QUERIES: &[(&str, &str)] = &[
        (
            "ingest: the dedupe holder (deliveries.rs)",
            "SELECT id, run_id, status FROM deliveries WHERE dedupe_key = 'k' AND replayed_from IS NULL AND received_at >= 0 AND status IN ('queued', 'delivered', 'failed') ORDER BY received_at ASC, id ASC LIMIT 1",
        ),
        (
            "ingest and claim: a run by id (runs.rs)",
            "SELECT * FROM runs WHERE id = 'run_x'",
        ),
        (
            "claim: an ordered route's earlier open run (runs.rs)",
            "SELECT id FROM runs WHERE route_id = 'rte_x' AND rowid < 5 AND status IN ('queued', 'held') ORDER BY rowid LIMIT 1",
        ),
        (
            "report: a delivery's status from its runs (runs.rs touch_delivery)",
            "UPDATE deliveries SET seq = 1, status = CASE WHEN EXISTS (SELECT 1 FROM runs WHERE delivery_id = 'd' AND status IN ('queued', 'held')) THEN 'queued' ELSE status END WHERE id = 'd'",
        ),
        (
            "claim: a batch's runs without a route, settled together (runs.rs)",
            "UPDATE runs SET status = 'delivered' WHERE id IN (SELECT value FROM json_each('[\"run_x\",\"run_y\"]')) AND +status = 'queued' AND +route_id IS NULL RETURNING id, delivery_id",
        ),
        (
            "claim: their deliveries, each with a sequence number (runs.rs)",
            "UPDATE deliveries SET seq = 1 + j.key, status = CASE WHEN EXISTS (SELECT 1 FROM runs r WHERE r.delivery_id = deliveries.id AND r.status IN ('queued', 'held')) THEN 'queued' ELSE deliveries.status END FROM json_each('[\"d\"]') AS j WHERE deliveries.id = j.value",
        ),
        (
            "claim: late runs, claimed ahead of their messages (runs.rs)",
            "SELECT * FROM runs WHERE status = 'queued' AND next_attempt_at <= 0 AND lease_until IS NULL ORDER BY next_attempt_at LIMIT 100",
        ),
        (
            "alarm: stale runs (runs.rs)",
            "SELECT * FROM runs WHERE status = 'queued' AND ((lease_until IS NOT NULL AND lease_until <= 0) OR (lease_until IS NULL AND next_attempt_at <= 0)) AND (resend_after IS NULL OR resend_after <= 0) ORDER BY next_attempt_at LIMIT 100",
        ),
        (
            "alarm: owed dead letters (runs.rs)",
            "SELECT * FROM runs WHERE dlq_pending = 1 AND updated_at <= 0 LIMIT 100",
        ),
        (
            "alarm: next run check (runs.rs)",
            "SELECT MIN(MAX(COALESCE(lease_until, next_attempt_at + 5), COALESCE(resend_after, 0))) AS due FROM runs WHERE status = 'queued'",
        ),
        (
            "change feed page",
            "SELECT id FROM deliveries WHERE seq > 0 ORDER BY seq LIMIT 100",
        ),
    ];
    let script = "import sqlite3, sys\n\
        db = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True)\n\
        print('; '.join(r[3] for r in db.execute('EXPLAIN QUERY PLAN ' + sys.argv[2])))\n";
    QUERIES
        .iter()
        .map(|(name, sql)| {
            let out = Command::new("python3")
                .args(["-c", script])
                .arg(file)
                .arg(sql)
                .output()
                .expect("python3");
            let plan = if out.status.success() {
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            } else {
                format!("error: {}", String::from_utf8_lossy(&out.stderr).trim())
            };
            (*name, plan)
        })
        .collect()
}
