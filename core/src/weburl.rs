//! Target URLs, read by a WHATWG URL parser that the adapter passes in.
//!
//! The core holds no URL parser of its own, as it holds no clock. The Worker
//! passes the runtime's `URL`, which is the WHATWG parser itself and knows
//! international host names; the `url` crate's parser, which the core used
//! before, was 30 KB of the Wasm and, built without Unicode tables, refused
//! such names. Native code (the tests, the fuzz targets) passes
//! [`UrlCrate`], behind the `url-crate` feature.

/// A URL as a WHATWG parser serializes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUrl {
    /// The whole serialization (`href`).
    pub href: String,
    /// The scheme, lower-cased, without its `:`.
    pub scheme: String,
    /// The host as serialized (`example.com`, `xn--bcher-kva.example`,
    /// `[::1]`), without its port; empty when the URL has none.
    pub host: String,
}

impl ParsedUrl {
    /// Whether the URL has a fragment, empty or not. A serialization holds a
    /// `#` only where its fragment starts: everywhere else it is
    /// percent-encoded.
    pub fn has_fragment(&self) -> bool {
        self.href.contains('#')
    }
}

/// A WHATWG URL parser.
pub trait UrlParser {
    /// `raw` parsed as an absolute URL, or `None` if it is not one.
    fn parse(&self, raw: &str) -> Option<ParsedUrl>;
}

/// The `url` crate's parser, for native code.
#[cfg(any(test, feature = "url-crate"))]
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlCrate;

#[cfg(any(test, feature = "url-crate"))]
impl UrlParser for UrlCrate {
    fn parse(&self, raw: &str) -> Option<ParsedUrl> {
        let url = url::Url::parse(raw).ok()?;
        Some(ParsedUrl {
            href: url.to_string(),
            scheme: url.scheme().to_string(),
            host: url.host_str().unwrap_or_default().to_string(),
        })
    }
}
