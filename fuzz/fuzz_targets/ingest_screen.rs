//! The whole ingest decision, `screen` then `decide`, for every provider on
//! arbitrary requests: no input panics, a rejected request never reaches a
//! decision, and what is stored never holds a signature or a credential
//! whole.
#![no_main]

use edgehook_core::ingest::{self, Inbound, Screening};
use edgehook_core::provider::Provider;
use edgehook_core::trigger::{TriggerConfig, TriggerCreate};
use edgehook_core::weburl::UrlCrate;
use edgehook_core::Timestamp;
use edgehook_fuzz::{request, NOW_SECS};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let provider = Provider::ALL[usize::from(which) % Provider::ALL.len()];
    let mut create = serde_json::json!({
        "name": "fuzz", "provider": provider.as_str(), "signing_secret": SECRET,
        "dedupe_json_pointer": if which & 0x80 != 0 { Some("/id") } else { None },
    });
    if provider == Provider::Basic {
        create["basic_username"] = "hooks".into();
    }
    if !matches!(
        provider,
        Provider::Generic | Provider::Basic | Provider::ApiKey
    ) {
        create
            .as_object_mut()
            .map(|o| o.remove("dedupe_json_pointer"));
    }
    let req: TriggerCreate = serde_json::from_value(create).expect("a valid request");
    let cfg = TriggerConfig::create("trg_fuzz".into(), req, Timestamp(0), &UrlCrate)
        .expect("a valid trigger");
    let (headers, body) = request(rest);
    let inbound = Inbound {
        headers: &headers,
        body,
        received_at: Timestamp::from_secs(NOW_SECS),
    };
    match ingest::screen(&cfg, &inbound) {
        Screening::Admitted { facts, .. } => {
            let _ = ingest::decide(&cfg, &facts, false);
            let _ = ingest::decide(&cfg, &facts, true);
        }
        Screening::Rejected { facts, .. } => {
            let (excerpt, cut) = ingest::rejected_excerpt(body);
            assert!(excerpt.len() <= ingest::REJECTED_BODY_EXCERPT_BYTES);
            assert_eq!(cut, body.len() > excerpt.len());
            let _ = facts;
        }
        Screening::TooLarge { .. } | Screening::BadBody(_) | Screening::Challenge(_) => {}
    }
    let stored = ingest::stored_headers(&cfg, &headers);
    for (name, value) in stored.iter() {
        if edgehook_core::headers::SIGNATURE_HEADERS.contains(&name)
            || edgehook_core::headers::CREDENTIAL_HEADERS.contains(&name)
        {
            assert!(
                edgehook_core::headers::is_redacted(value),
                "{name} stored whole"
            );
        }
    }
});
