//! Raw clients for tests that misbehave on purpose: POSTs that survive the
//! runtime dying under them, and hand-written HTTP on a socket.

use std::io::Read;
use std::time::Duration;

use crate::SECRETS;

/// A POST that reports a transport failure instead of panicking, for
/// clients that keep sending while the runtime is killed under them.
pub fn try_post(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String), String> {
    let mut req = agent.post(url);
    for (n, v) in headers {
        req = req.set(n, v);
    }
    let resp = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let text = resp.into_string().map_err(|e| e.to_string())?;
    Ok((status, text))
}

/// Sends raw bytes over one HTTP/1.1 connection and returns the status and
/// body of the answer, or `None` if the server closed without one. For the
/// requests no client library will send: repeated or non-ASCII headers,
/// unknown methods. [`raw_http_cut`] sends a body shorter than declared.
pub fn raw_http(base: &str, request: &[u8]) -> Option<(u16, String)> {
    raw(base, request, false)
}

/// As [`raw_http`], then closes the sending side: a body shorter than its
/// `Content-Length` ends there, as when a client dies mid-upload.
pub fn raw_http_cut(base: &str, request: &[u8]) -> Option<(u16, String)> {
    raw(base, request, true)
}

fn raw(base: &str, request: &[u8], cut: bool) -> Option<(u16, String)> {
    use std::io::Write;
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    stream.write_all(request).ok()?;
    if cut {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    for s in SECRETS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        assert!(
            !text.contains(s.as_str()),
            "a configured secret appears in a raw response"
        );
    }
    Some((status, body))
}
