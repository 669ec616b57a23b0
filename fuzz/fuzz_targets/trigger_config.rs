//! Trigger configuration as the API receives it: a create request, then a
//! patch (the input split at its first NUL byte). No input panics, every
//! accepted configuration survives a round trip through its stored JSON,
//! and a refused patch leaves the configuration as it was.
#![no_main]

use edgehook_core::api::TriggerView;
use edgehook_core::trigger::{TriggerConfig, TriggerCreate, TriggerPatch};
use edgehook_core::weburl::UrlCrate;
use edgehook_core::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (create, patch) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[data.len()..]),
    };
    let Ok(req) = serde_json::from_slice::<TriggerCreate>(create) else {
        return;
    };
    let Ok(mut cfg) = TriggerConfig::create("trg_fuzz".into(), req, Timestamp(1), &UrlCrate) else {
        return;
    };
    let stored = serde_json::to_string(&cfg).expect("a config serialises");
    let back: TriggerConfig = serde_json::from_str(&stored).expect("and reads back");
    assert_eq!(back, cfg);
    let _ = TriggerView::of(&cfg, "https://hooks.example");
    if let Ok(p) = serde_json::from_slice::<TriggerPatch>(patch) {
        let before = cfg.clone();
        match cfg.apply(p, Timestamp(2), &UrlCrate) {
            Ok(()) => assert!(cfg.updated_at > before.updated_at),
            Err(_) => assert_eq!(cfg, before, "a refused patch changed the trigger"),
        }
    }
});
