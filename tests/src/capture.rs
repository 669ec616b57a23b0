//! [`Capture`]: a target server on loopback that records every request and
//! answers as its path (or [`Capture::set_status`]) says.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request a [`Capture`] server received.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Path and query.
    pub path: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

impl Captured {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A target server on loopback. Its answer depends on the path:
/// `/ok/…` 200; `/fail/…` 500 (body `target exploded`); `/flaky/{n}/…` 500
/// for the first `n` requests to that path, then 200; `/slow/{ms}/…` 200
/// after `ms` milliseconds; `/chaos/{ms}/…` after a delay of up to `ms`
/// that depends on the body, and 500 to the first attempt of every third
/// body (so runs finish out of order and retry); `/big/{n}/…` and
/// `/chunked/{n}/…` 200 with [`pattern`]`(n)` as the body, with a
/// `Content-Length` or in chunks. [`Capture::set_status`] overrides the
/// status of any other path's answer.
pub struct Capture {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    seen: Arc<Mutex<Vec<Captured>>>,
    overrides: Arc<Mutex<HashMap<String, u16>>>,
}

impl Capture {
    /// Starts a capture server.
    pub fn start() -> Capture {
        Capture::start_on(0)
    }

    /// Starts a capture server on `port` (0: any free port), e.g. where a
    /// target that was down comes back.
    pub fn start_on(port: u16) -> Capture {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("capture server");
        let port = listener.local_addr().expect("local addr").port();
        let seen: Arc<Mutex<Vec<Captured>>> = Arc::new(Mutex::new(Vec::new()));
        let counts: Arc<Mutex<HashMap<String, u32>>> = Arc::new(Mutex::new(HashMap::new()));
        let overrides: Arc<Mutex<HashMap<String, u16>>> = Arc::new(Mutex::new(HashMap::new()));
        let seen2 = seen.clone();
        let overrides2 = overrides.clone();
        // One thread per connection, started as it is accepted: a burst of a
        // hundred concurrent attempts (one consumer batch) is answered at
        // once. (tiny_http, used before, took a cold burst of a hundred
        // connections into its pool 5 s at a time, up to two minutes.)
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let seen = seen2.clone();
                let counts = counts.clone();
                let overrides = overrides2.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &seen, &counts, &overrides);
                });
            }
        });
        Capture {
            base: format!("http://127.0.0.1:{port}"),
            seen,
            overrides,
        }
    }

    /// Makes `path` answer `status` from now on.
    pub fn set_status(&self, path: &str, status: u16) {
        self.overrides
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_string(), status);
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Requests received for `path` so far.
    pub fn received(&self, path: &str) -> Vec<Captured> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }

    /// How many requests `path` has received so far (without copying them).
    pub fn count(&self, path: &str) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|c| c.path == path)
            .count()
    }

    /// Waits until `path` has received at least `n` requests.
    pub fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Captured> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{path} received {} of {n} requests",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Most bytes of a request line and headers the server reads.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Reads one request from `stream`, records it, answers as its path says
/// and closes the connection (the runtime opens one per attempt; thousands
/// left idle would exhaust its file descriptors in a soak).
fn serve(
    stream: TcpStream,
    seen: &Mutex<Vec<Captured>>,
    counts: &Mutex<HashMap<String, u32>>,
    overrides: &Mutex<HashMap<String, u16>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut head_bytes = line.len();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        head_bytes += h.len();
        if head_bytes > MAX_HEAD_BYTES {
            return Ok(());
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        reader.read_exact(&mut body)?;
    }
    let first_attempt = header("x-edgehook-attempt") == Some("1");
    let digest: u64 = body
        .iter()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)));
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Captured {
            path: path.clone(),
            headers: headers.clone(),
            body,
            at: Instant::now(),
        });
    let n = {
        let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
        let e = c.entry(path.clone()).or_insert(0);
        *e += 1;
        *e
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let status = match segs.as_slice() {
        ["fail", ..] => 500,
        ["flaky", k, ..] if n <= k.parse::<u32>().unwrap_or(0) => 500,
        ["slow", ms, ..] => {
            std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
            200
        }
        ["chaos", ms, ..] => {
            let max = ms.parse::<u64>().unwrap_or(0).max(1);
            std::thread::sleep(Duration::from_millis(digest % max));
            if first_attempt && digest.is_multiple_of(3) {
                500
            } else {
                200
            }
        }
        _ => 200,
    };
    let status = overrides
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&path)
        .copied()
        .unwrap_or(status);
    let text = if status >= 500 {
        "target exploded"
    } else {
        "ok"
    };
    let mut out = stream;
    // `/big/{n}/…` and `/chunked/{n}/…`: 200 with `n` bytes of
    // `0123456789…`, declared by `Content-Length` or sent in chunks.
    if let ["big" | "chunked", n, ..] = segs.as_slice() {
        let body = pattern(n.parse().unwrap_or(0));
        if segs[0] == "big" {
            write!(
                out,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(&body)?;
        } else {
            write!(
                out,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            )?;
            for chunk in body.chunks(700) {
                write!(out, "{:x}\r\n", chunk.len())?;
                out.write_all(chunk)?;
                out.write_all(b"\r\n")?;
            }
            out.write_all(b"0\r\n\r\n")?;
        }
        out.flush()?;
        return out.shutdown(std::net::Shutdown::Both);
    }
    write!(
        out,
        "HTTP/1.1 {status} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        if status < 400 { "OK" } else { "Error" },
        text.len()
    )?;
    out.flush()?;
    out.shutdown(std::net::Shutdown::Both)
}

/// `n` bytes of `0123456789` repeated: a body whose every prefix is known.
pub fn pattern(n: usize) -> Vec<u8> {
    b"0123456789".iter().copied().cycle().take(n).collect()
}
