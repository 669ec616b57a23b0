//! A flood of unsigned 1 MiB requests leaves the trigger's ledger under a
//! stated bound. This binary runs its own edge with nothing else in it, so
//! the object's files on disk are this trigger's alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgehook_e2e::*;
use serde_json::json;

/// Bytes of rejected deliveries stored per minute at most (the core's
/// `REJECTION_BYTES_STORED_PER_MINUTE`).
const REJECTION_BYTES_PER_MINUTE: u64 = 256 * 1024;

/// SQLite's write-ahead log before an automatic checkpoint: 1,000 pages of
/// 4 KiB, plus frame headers.
const WAL_BYTES: u64 = 4 * 1024 * 1024 + 64 * 1024;

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_flood_of_unsigned_one_mib_requests_stores_a_bounded_number_of_bytes() {
    let requests = scaled(400, 10_000);
    let edge = Arc::new(Edge::start());
    let t = edge.create_trigger(json!({
        "name": "flooded", "provider": "github",
        "signing_secret": "flood-test-github-secret-0123",
        "rate_limit_per_second": 1_000_000, "rate_limit_per_ip_per_second": 1_000_000
    }));
    let id = t["id"].as_str().expect("id").to_string();
    let before = dir_bytes(&edge.trigger_state_dir());
    let body = Arc::new(vec![b'{'; 1024 * 1024]);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (edge, id, body, next) = (edge.clone(), id.clone(), body.clone(), next.clone());
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    let key = unique("flood");
                    let r = edge.hook(
                        &id,
                        &[("x-github-delivery", &key), ("x-github-event", "push")],
                        &body,
                    );
                    statuses.push(r.status);
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<u16> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    let elapsed = started.elapsed();
    assert_eq!(statuses.len(), requests);
    assert!(
        statuses.iter().all(|s| *s == 401),
        "every unsigned request is a 401"
    );

    // Stored rejections plus counted ones account for every request.
    let stored = edge.all_changes(&id);
    let windows = edge
        .admin(
            "GET",
            &format!("/api/triggers/{id}/rejections?limit=1000"),
            None,
        )
        .json();
    let counted: u64 = windows["windows"]
        .as_array()
        .expect("windows")
        .iter()
        .map(|w| w["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(stored.len() as u64 + counted, requests as u64);
    assert!(stored.iter().all(|c| c["body_truncated"] == true));

    // The bound: one byte cap per started minute of flood, plus the last.
    let minutes = elapsed.as_secs() / 60 + 2;
    let bound = minutes * REJECTION_BYTES_PER_MINUTE;
    let used = edge
        .admin("GET", &format!("/api/triggers/{id}"), None)
        .json()["storage_used_bytes"]
        .as_u64()
        .expect("used");
    assert!(used <= bound, "ledger accounts {used} bytes, bound {bound}");
    // On disk: the database and its write-ahead log, which SQLite lets grow
    // to about 1,000 pages (4 MiB) before it checkpoints and starts over;
    // pages, indexes and the aggregates get 1 MiB of slack.
    std::thread::sleep(Duration::from_secs(1));
    let grown = dir_bytes(&edge.trigger_state_dir()).saturating_sub(before);
    let disk_bound = bound + WAL_BYTES + 1024 * 1024;
    assert!(
        grown <= disk_bound,
        "the object's files grew by {grown} bytes, bound {disk_bound}"
    );
    println!(
        "flood: {requests} unsigned 1 MiB requests in {elapsed:.1?}: {} stored, {counted} counted; ledger {used} B (bound {bound} B), files +{grown} B (bound {disk_bound} B)",
        stored.len()
    );
}
