//! Every provider's signature check on arbitrary headers and bodies: no
//! input panics, and no HMAC scheme accepts an input under a key that did
//! not sign it (the seeds are signed with the first secret only).
#![no_main]

use edgehook_core::verify::{self, GenericScheme, HmacAlgorithm, SignatureEncoding};
use edgehook_core::{Secret, Timestamp};
use edgehook_fuzz::{request, NOW_SECS};
use libfuzzer_sys::fuzz_target;

fn check_all(secret: &Secret, data: &[u8]) -> Vec<bool> {
    let (h, body) = request(data);
    let now = Timestamp::from_secs(NOW_SECS);
    let tol = verify::DEFAULT_TOLERANCE_SECONDS;
    let mut results = vec![
        verify::verify_github(secret, &h, body).is_ok(),
        verify::verify_stripe(secret, &h, body, now, tol).is_ok(),
        verify::verify_slack(secret, &h, body, now, tol).is_ok(),
        verify::verify_shopify(secret, &h, body).is_ok(),
        verify::verify_standard(secret, &h, body, now, tol).is_ok(),
        verify::verify_gitlab(secret, &h).is_ok(),
        verify::verify_linear(secret, &h, body, now, tol).is_ok(),
        verify::verify_basic("hooks", secret, &h).is_ok(),
        verify::verify_api_key("x-api-key", secret, &h).is_ok(),
    ];
    for algorithm in [
        HmacAlgorithm::Sha1,
        HmacAlgorithm::Sha256,
        HmacAlgorithm::Sha512,
    ] {
        for encoding in [SignatureEncoding::Hex, SignatureEncoding::Base64] {
            let scheme = GenericScheme {
                header: "x-signature",
                algorithm,
                encoding,
                prefix: "sha256=",
            };
            results.push(verify::verify_generic(secret, scheme, &h, body).is_ok());
        }
    }
    results
}

fuzz_target!(|data: &[u8]| {
    let signed_with = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let other = Secret::new("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let _ = check_all(&signed_with, data);
    // Nobody can make a MAC under a key they do not have: an HMAC scheme
    // that accepts an input under `other` (which no seed is signed with)
    // accepts something that is not a signature at all. The token schemes
    // (GitLab, Basic, API key) compare the secret itself, so an input may
    // carry it, and are left out.
    let with_other = check_all(&other, data);
    for (i, accepted) in with_other.iter().enumerate() {
        assert!(
            !accepted || [5, 7, 8].contains(&i),
            "HMAC scheme {i} accepted an input under a key that did not sign it"
        );
    }
});
