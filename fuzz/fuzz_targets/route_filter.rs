//! Content filters on arbitrary input: the first line is a filter, the rest
//! a delivery body. Parsing never panics, a parsed filter never panics when
//! evaluated, and a filter that parses round-trips as the JSON it was given.
#![no_main]

use edgehook_core::filter::{redact_query, Filter, FilterInput};
use edgehook_core::route::RouteCreate;
use edgehook_core::HeaderList;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (filter, body) = data.split_at(split);
    let _ = serde_json::from_slice::<RouteCreate>(data);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(filter) else {
        return;
    };
    let text = String::from_utf8_lossy(body);
    let _ = redact_query(&text);
    if let Ok(f) = Filter::parse(&v) {
        assert_eq!(serde_json::to_value(&f).ok().as_ref(), Some(&v));
        let headers =
            HeaderList::from_pairs([("content-type", "application/json"), ("x-a", &*text)]);
        let input = FilterInput::new(&headers, body, &format!("/hooks/t?{text}"));
        let _ = f.matches(&input);
        let form = HeaderList::from_pairs([("content-type", "application/x-www-form-urlencoded")]);
        let _ = f.matches(&FilterInput::new(&form, body, "/hooks/t"));
    }
});
