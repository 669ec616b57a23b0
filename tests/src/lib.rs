//! The end-to-end harness.
//!
//! [`Edge`] runs the real Worker under `wrangler dev` (workerd with local
//! Durable Objects, SQLite storage and Queues) on a free loopback port, with
//! its own state directory and its own secrets. [`Capture`] is a target server
//! on loopback that records every request and answers as its path says.
//! Each test binary starts one edge and shares it across its tests; tests get
//! fresh state by creating their own triggers.
//!
//! Every response the harness sees is checked against every secret the suite
//! configured: a secret in a response body or header fails the test at once.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;

pub mod browser;
mod capture;
mod client;
mod edge;
pub mod openapi;
pub mod pg;

pub use capture::{pattern, Capture, Captured};
pub use client::{raw_http, raw_http_cut, try_post};
pub use edge::{shared, Edge, Resp, Runtime};

pub use edgehook_core::encoding::{b64, b64_decode};
pub use edgehook_core::verify::hmac_sha256;

/// Secrets configured anywhere in this test process.
pub(crate) static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Registers a secret that no response may contain.
pub fn register_secret(secret: &str) {
    // Very short values would match by accident; the suite uses long ones.
    if secret.len() >= 8 {
        SECRETS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(secret.to_string());
    }
}

pub(crate) fn assert_no_secret(context: &str, text: &str) {
    for s in SECRETS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        assert!(
            !text.contains(s.as_str()),
            "a configured secret appears in {context}"
        );
    }
}

/// The project root (the workspace).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// `quick` in `make test`, `full` in `make soak` (`EDGEHOOK_SOAK=1`).
pub fn scaled(quick: usize, full: usize) -> usize {
    if std::env::var_os("EDGEHOOK_SOAK").is_some() {
        full
    } else {
        quick
    }
}

/// `base` with the fields of `extra` added or replaced (both JSON objects).
pub fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(o), Value::Object(e)) = (base.as_object_mut(), extra) {
        o.extend(e);
    }
    base
}

/// A unique name for a test's paths and triggers.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex(6))
}

/// GitHub's `X-Hub-Signature-256` value.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), &[body])))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the epoch, from this machine's clock (the edge's is the same).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
