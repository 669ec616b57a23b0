//! What the fuzz targets share: inputs are written like an HTTP request's
//! head and body, so seeds can be real provider requests.
//!
//! ```text
//! x-hub-signature-256: sha256=757107ea…
//! x-github-delivery: d-1
//!
//! Hello, World!
//! ```

use edgehook_core::HeaderList;

/// The receive time every target verifies against: the seeds' timestamps
/// are near it, so timestamped schemes reach their MAC checks.
pub const NOW_SECS: i64 = 1_700_000_000;

/// Splits `data` into headers (lines `name: value` up to the first empty
/// line) and the body after it. Anything goes: lines without a colon are
/// skipped, and non-UTF-8 header bytes are replaced.
pub fn request(data: &[u8]) -> (HeaderList, &[u8]) {
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or((data, &data[data.len()..]), |i| {
            (&data[..i], &data[i + 2..])
        });
    let head = String::from_utf8_lossy(split.0);
    let pairs = head.lines().filter_map(|line| {
        let (name, value) = line.split_once(':')?;
        Some((name.trim().to_string(), value.trim().to_string()))
    });
    (HeaderList::from_pairs(pairs), split.1)
}
