//! Provider test vectors and negative cases, all run through one helper.

use super::*;

const NOW: i64 = 1_700_000_000;
const TOL: u64 = DEFAULT_TOLERANCE_SECONDS;

const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const GITHUB_BODY: &[u8] = b"Hello, World!";
const GITHUB_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STANDARD_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const STANDARD_TS: i64 = 1_614_265_330;
const STANDARD_BODY: &[u8] = br#"{"test": 2432232314}"#;
const STANDARD_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

// Slack's published example (api.slack.com/authentication/verifying-requests-from-slack).
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const SLACK_TS: i64 = 1_531_420_618;
const SLACK_BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const SLACK_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

// Stripe, Shopify, Linear and generic vectors were computed with Python's
// `hmac` module, an implementation independent of the one under test.
const STRIPE_SECRET: &str = "whsec_test_secret";
const STRIPE_BODY: &[u8] =
    br#"{"id":"evt_test_webhook","object":"event","type":"payment_intent.succeeded"}"#;
const STRIPE_V1: &str = "130dc37d5a27b1b232a61e4f2ff00ed245f498112c11e8b747aff3d0fb754056";

const SHOPIFY_SECRET: &str = "shpss_example_secret";
const SHOPIFY_BODY: &[u8] = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;
const SHOPIFY_SIG: &str = "35DGSCsYGhssCXikM1rFvRtvLrHjZ3LG9BTZ5lYDs7g=";

const LINEAR_SECRET: &str = "lin_wh_example_secret";
const LINEAR_BODY: &[u8] =
    br#"{"action":"create","type":"Issue","data":{"id":"abc"},"webhookTimestamp":1700000000123}"#;
const LINEAR_SIG: &str = "71350e4909c87164cb8b59f243efe2f101d2db30cbece3c19d7fc081b15ae98a";

const GENERIC_SECRET: &str = "generic-secret";
const GENERIC_BODY: &[u8] = br#"{"type":"order.created","id":"ord_1"}"#;
const GENERIC_SHA1_HEX: &str = "85cd55cf7c6300bca9dc4bc99199cdd428796898";
const GENERIC_SHA512_B64: &str =
    "4zbcwpB+DJBi8+kI0HINSNg20yRh6cJx81ov8tTbZnpTNpCmG/3cci+j2S4Kbe3+iWGR9/DFlT4OMUkKOG+FPA==";

#[derive(Clone, Copy)]
enum Scheme {
    Github,
    Stripe,
    Slack,
    Shopify,
    Standard,
    Gitlab,
    Linear,
    GenericSha256HexPrefixed,
    GenericSha1Hex,
    GenericSha512Base64,
    Basic,
    ApiKey,
}

struct Case {
    name: &'static str,
    scheme: Scheme,
    secret: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    now: i64,
    expect: Result<(), VerifyError>,
}

fn run(case: &Case) -> Result<(), VerifyError> {
    let secret = Secret::new(case.secret);
    let headers = HeaderList::from_pairs(case.headers.iter().map(|(n, v)| (*n, v.clone())));
    let body = &case.body[..];
    let now = Timestamp::from_secs(case.now);
    match case.scheme {
        Scheme::Github => verify_github(&secret, &headers, body),
        Scheme::Stripe => verify_stripe(&secret, &headers, body, now, TOL),
        Scheme::Slack => verify_slack(&secret, &headers, body, now, TOL),
        Scheme::Shopify => verify_shopify(&secret, &headers, body),
        Scheme::Standard => verify_standard(&secret, &headers, body, now, TOL),
        Scheme::Gitlab => verify_gitlab(&secret, &headers),
        Scheme::Linear => verify_linear(&secret, &headers, body, now, TOL),
        Scheme::GenericSha256HexPrefixed => verify_generic(
            &secret,
            GenericScheme {
                header: "x-signature",
                algorithm: HmacAlgorithm::Sha256,
                encoding: SignatureEncoding::Hex,
                prefix: "sha256=",
            },
            &headers,
            body,
        ),
        Scheme::GenericSha1Hex => verify_generic(
            &secret,
            GenericScheme {
                header: "x-signature",
                algorithm: HmacAlgorithm::Sha1,
                encoding: SignatureEncoding::Hex,
                prefix: "",
            },
            &headers,
            body,
        ),
        Scheme::GenericSha512Base64 => verify_generic(
            &secret,
            GenericScheme {
                header: "x-signature",
                algorithm: HmacAlgorithm::Sha512,
                encoding: SignatureEncoding::Base64,
                prefix: "",
            },
            &headers,
            body,
        ),
        Scheme::Basic => verify_basic("hooks", &secret, &headers),
        Scheme::ApiKey => verify_api_key("x-api-key", &secret, &headers),
    }
}

fn tampered(body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    b[0] ^= 0x01;
    b
}

fn stripe_header(t: i64, sigs: &[&str]) -> String {
    let mut s = format!("t={t}");
    for sig in sigs {
        s.push(',');
        s.push_str(sig);
    }
    s
}

fn stripe_v1_at(t: i64) -> String {
    hex::encode(hmac_sha256(
        STRIPE_SECRET.as_bytes(),
        &[t.to_string().as_bytes(), b".", STRIPE_BODY],
    ))
}

fn slack_sig_at(ts: i64) -> String {
    format!(
        "v0={}",
        hex::encode(hmac_sha256(
            SLACK_SECRET.as_bytes(),
            &[format!("v0:{ts}:").as_bytes(), SLACK_BODY]
        ))
    )
}

fn standard_headers(ts: i64, sig: String) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", STANDARD_ID.to_string()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sig),
    ]
}

fn standard_sig_at(ts: i64) -> String {
    let key = standard_key(&Secret::new(STANDARD_SECRET)).expect("valid secret");
    sign_standard(&key, STANDARD_ID, ts, STANDARD_BODY)
}

fn cases() -> Vec<Case> {
    let ok = Ok(());
    let mismatch = Err(VerifyError::SignatureMismatch);
    let late = Err(VerifyError::TimestampOutOfTolerance);
    let tol = TOL as i64;
    vec![
        // GitHub's published vector.
        Case {
            name: "github vector",
            scheme: Scheme::Github,
            secret: GITHUB_SECRET,
            headers: vec![("X-Hub-Signature-256", GITHUB_SIG.into())],
            body: GITHUB_BODY.into(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "github upper-case hex",
            scheme: Scheme::Github,
            secret: GITHUB_SECRET,
            headers: vec![(
                "X-Hub-Signature-256",
                format!("sha256={}", GITHUB_SIG[7..].to_uppercase()),
            )],
            body: GITHUB_BODY.into(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "github tampered byte",
            scheme: Scheme::Github,
            secret: GITHUB_SECRET,
            headers: vec![("X-Hub-Signature-256", GITHUB_SIG.into())],
            body: tampered(GITHUB_BODY),
            now: NOW,
            expect: mismatch.clone(),
        },
        Case {
            name: "github wrong secret",
            scheme: Scheme::Github,
            secret: "It's a secret to everybody",
            headers: vec![("X-Hub-Signature-256", GITHUB_SIG.into())],
            body: GITHUB_BODY.into(),
            now: NOW,
            expect: mismatch.clone(),
        },
        Case {
            name: "github missing header",
            scheme: Scheme::Github,
            secret: GITHUB_SECRET,
            headers: vec![],
            body: GITHUB_BODY.into(),
            now: NOW,
            expect: Err(VerifyError::MissingHeader(GITHUB_SIGNATURE_HEADER)),
        },
        Case {
            name: "github sha1 prefix is not accepted",
            scheme: Scheme::Github,
            secret: GITHUB_SECRET,
            headers: vec![(
                "X-Hub-Signature-256",
                GITHUB_SIG.replace("sha256=", "sha1="),
            )],
            body: GITHUB_BODY.into(),
            now: NOW,
            expect: Err(VerifyError::MalformedHeader(GITHUB_SIGNATURE_HEADER)),
        },
        Case {
            name: "github non-hex",
            scheme: Scheme::Github,
            secret: GITHUB_SECRET,
            headers: vec![("X-Hub-Signature-256", "sha256=zz".into())],
            body: GITHUB_BODY.into(),
            now: NOW,
            expect: Err(VerifyError::MalformedHeader(GITHUB_SIGNATURE_HEADER)),
        },
        Case {
            name: "github truncated signature",
            scheme: Scheme::Github,
            secret: GITHUB_SECRET,
            headers: vec![(
                "X-Hub-Signature-256",
                GITHUB_SIG[..GITHUB_SIG.len() - 2].into(),
            )],
            body: GITHUB_BODY.into(),
            now: NOW,
            expect: mismatch.clone(),
        },
        // Stripe.
        Case {
            name: "stripe vector",
            scheme: Scheme::Stripe,
            secret: STRIPE_SECRET,
            headers: vec![(
                "Stripe-Signature",
                stripe_header(NOW, &[&format!("v1={STRIPE_V1}")]),
            )],
            body: STRIPE_BODY.into(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "stripe several v1, one valid, v0 ignored",
            scheme: Scheme::Stripe,
            secret: STRIPE_SECRET,
            headers: vec![(
                "Stripe-Signature",
                stripe_header(
                    NOW,
                    &[
                        "v1=00ff",
                        &format!("v1={STRIPE_V1}"),
                        "v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39",
                    ],
                ),
            )],
            body: STRIPE_BODY.into(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "stripe only v0",
            scheme: Scheme::Stripe,
            secret: STRIPE_SECRET,
            headers: vec![(
                "Stripe-Signature",
                stripe_header(NOW, &[&format!("v0={STRIPE_V1}")]),
            )],
            body: STRIPE_BODY.into(),
            now: NOW,
            expect: Err(VerifyError::NoSupportedSignature),
        },
        Case {
            name: "stripe tampered byte",
            scheme: Scheme::Stripe,
            secret: STRIPE_SECRET,
            headers: vec![(
                "Stripe-Signature",
                stripe_header(NOW, &[&format!("v1={STRIPE_V1}")]),
            )],
            body: tampered(STRIPE_BODY),
            now: NOW,
            expect: mismatch.clone(),
        },
        Case {
            name: "stripe at tolerance in the past",
            scheme: Scheme::Stripe,
            secret: STRIPE_SECRET,
            headers: vec![(
                "Stripe-Signature",
                stripe_header(NOW - tol, &[&format!("v1={}", stripe_v1_at(NOW - tol))]),
            )],
            body: STRIPE_BODY.into(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "stripe one second too old",
            scheme: Scheme::Stripe,
            secret: STRIPE_SECRET,
            headers: vec![(
                "Stripe-Signature",
                stripe_header(
                    NOW - tol - 1,
                    &[&format!("v1={}", stripe_v1_at(NOW - tol - 1))],
                ),
            )],
            body: STRIPE_BODY.into(),
            now: NOW,
            expect: late.clone(),
        },
        Case {
            name: "stripe at tolerance in the future",
            scheme: Scheme::Stripe,
            secret: STRIPE_SECRET,
            headers: vec![(
                "Stripe-Signature",
                stripe_header(NOW + tol, &[&format!("v1={}", stripe_v1_at(NOW + tol))]),
            )],
            body: STRIPE_BODY.into(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "stripe one second too far in the future",
            scheme: Scheme::Stripe,
            secret: STRIPE_SECRET,
            headers: vec![(
                "Stripe-Signature",
                stripe_header(
                    NOW + tol + 1,
                    &[&format!("v1={}", stripe_v1_at(NOW + tol + 1))],
                ),
            )],
            body: STRIPE_BODY.into(),
            now: NOW,
            expect: late.clone(),
        },
        Case {
            name: "stripe without t",
            scheme: Scheme::Stripe,
            secret: STRIPE_SECRET,
            headers: vec![("Stripe-Signature", format!("v1={STRIPE_V1}"))],
            body: STRIPE_BODY.into(),
            now: NOW,
            expect: Err(VerifyError::MalformedHeader(STRIPE_SIGNATURE_HEADER)),
        },
        Case {
            name: "stripe missing header",
            scheme: Scheme::Stripe,
            secret: STRIPE_SECRET,
            headers: vec![],
            body: STRIPE_BODY.into(),
            now: NOW,
            expect: Err(VerifyError::MissingHeader(STRIPE_SIGNATURE_HEADER)),
        },
        Case {
            name: "stripe key is the secret as given, not decoded",
            scheme: Scheme::Stripe,
            secret: "test_secret",
            headers: vec![(
                "Stripe-Signature",
                stripe_header(NOW, &[&format!("v1={STRIPE_V1}")]),
            )],
            body: STRIPE_BODY.into(),
            now: NOW,
            expect: mismatch.clone(),
        },
        // Slack's published example, checked at its own time.
        Case {
            name: "slack vector",
            scheme: Scheme::Slack,
            secret: SLACK_SECRET,
            headers: vec![
                ("X-Slack-Request-Timestamp", SLACK_TS.to_string()),
                ("X-Slack-Signature", SLACK_SIG.into()),
            ],
            body: SLACK_BODY.into(),
            now: SLACK_TS,
            expect: ok.clone(),
        },
        Case {
            name: "slack vector replayed later",
            scheme: Scheme::Slack,
            secret: SLACK_SECRET,
            headers: vec![
                ("X-Slack-Request-Timestamp", SLACK_TS.to_string()),
                ("X-Slack-Signature", SLACK_SIG.into()),
            ],
            body: SLACK_BODY.into(),
            now: NOW,
            expect: late.clone(),
        },
        Case {
            name: "slack one second too old",
            scheme: Scheme::Slack,
            secret: SLACK_SECRET,
            headers: vec![
                ("X-Slack-Request-Timestamp", (NOW - tol - 1).to_string()),
                ("X-Slack-Signature", slack_sig_at(NOW - tol - 1)),
            ],
            body: SLACK_BODY.into(),
            now: NOW,
            expect: late.clone(),
        },
        Case {
            name: "slack one second too new",
            scheme: Scheme::Slack,
            secret: SLACK_SECRET,
            headers: vec![
                ("X-Slack-Request-Timestamp", (NOW + tol + 1).to_string()),
                ("X-Slack-Signature", slack_sig_at(NOW + tol + 1)),
            ],
            body: SLACK_BODY.into(),
            now: NOW,
            expect: late.clone(),
        },
        Case {
            name: "slack tampered byte",
            scheme: Scheme::Slack,
            secret: SLACK_SECRET,
            headers: vec![
                ("X-Slack-Request-Timestamp", SLACK_TS.to_string()),
                ("X-Slack-Signature", SLACK_SIG.into()),
            ],
            body: tampered(SLACK_BODY),
            now: SLACK_TS,
            expect: mismatch.clone(),
        },
        Case {
            name: "slack missing timestamp",
            scheme: Scheme::Slack,
            secret: SLACK_SECRET,
            headers: vec![("X-Slack-Signature", SLACK_SIG.into())],
            body: SLACK_BODY.into(),
            now: SLACK_TS,
            expect: Err(VerifyError::MissingHeader(SLACK_TIMESTAMP_HEADER)),
        },
        Case {
            name: "slack non-numeric timestamp",
            scheme: Scheme::Slack,
            secret: SLACK_SECRET,
            headers: vec![
                ("X-Slack-Request-Timestamp", "soon".into()),
                ("X-Slack-Signature", SLACK_SIG.into()),
            ],
            body: SLACK_BODY.into(),
            now: SLACK_TS,
            expect: Err(VerifyError::MalformedHeader(SLACK_TIMESTAMP_HEADER)),
        },
        // Shopify.
        Case {
            name: "shopify vector",
            scheme: Scheme::Shopify,
            secret: SHOPIFY_SECRET,
            headers: vec![("X-Shopify-Hmac-Sha256", SHOPIFY_SIG.into())],
            body: SHOPIFY_BODY.into(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "shopify tampered byte",
            scheme: Scheme::Shopify,
            secret: SHOPIFY_SECRET,
            headers: vec![("X-Shopify-Hmac-Sha256", SHOPIFY_SIG.into())],
            body: tampered(SHOPIFY_BODY),
            now: NOW,
            expect: mismatch.clone(),
        },
        Case {
            name: "shopify hex instead of base64",
            scheme: Scheme::Shopify,
            secret: SHOPIFY_SECRET,
            headers: vec![("X-Shopify-Hmac-Sha256", "zz-not-base64!".into())],
            body: SHOPIFY_BODY.into(),
            now: NOW,
            expect: Err(VerifyError::MalformedHeader(SHOPIFY_HMAC_HEADER)),
        },
        // Standard Webhooks' published vector, at its own time.
        Case {
            name: "standard vector",
            scheme: Scheme::Standard,
            secret: STANDARD_SECRET,
            headers: standard_headers(STANDARD_TS, STANDARD_SIG.into()),
            body: STANDARD_BODY.into(),
            now: STANDARD_TS,
            expect: ok.clone(),
        },
        Case {
            name: "standard vector under svix names",
            scheme: Scheme::Standard,
            secret: STANDARD_SECRET,
            headers: vec![
                ("svix-id", STANDARD_ID.into()),
                ("svix-timestamp", STANDARD_TS.to_string()),
                ("svix-signature", STANDARD_SIG.into()),
            ],
            body: STANDARD_BODY.into(),
            now: STANDARD_TS,
            expect: ok.clone(),
        },
        Case {
            name: "standard several signatures, one valid",
            scheme: Scheme::Standard,
            secret: STANDARD_SECRET,
            headers: standard_headers(STANDARD_TS, format!("v1,AAAA v1a,Zm9v {STANDARD_SIG}")),
            body: STANDARD_BODY.into(),
            now: STANDARD_TS,
            expect: ok.clone(),
        },
        Case {
            name: "standard only unsupported versions",
            scheme: Scheme::Standard,
            secret: STANDARD_SECRET,
            headers: standard_headers(STANDARD_TS, STANDARD_SIG.replace("v1,", "v2,")),
            body: STANDARD_BODY.into(),
            now: STANDARD_TS,
            expect: Err(VerifyError::NoSupportedSignature),
        },
        Case {
            name: "standard tampered byte",
            scheme: Scheme::Standard,
            secret: STANDARD_SECRET,
            headers: standard_headers(STANDARD_TS, STANDARD_SIG.into()),
            body: tampered(STANDARD_BODY),
            now: STANDARD_TS,
            expect: mismatch.clone(),
        },
        Case {
            name: "standard one second too old",
            scheme: Scheme::Standard,
            secret: STANDARD_SECRET,
            headers: standard_headers(NOW - tol - 1, standard_sig_at(NOW - tol - 1)),
            body: STANDARD_BODY.into(),
            now: NOW,
            expect: late.clone(),
        },
        Case {
            name: "standard one second too new",
            scheme: Scheme::Standard,
            secret: STANDARD_SECRET,
            headers: standard_headers(NOW + tol + 1, standard_sig_at(NOW + tol + 1)),
            body: STANDARD_BODY.into(),
            now: NOW,
            expect: late.clone(),
        },
        Case {
            name: "standard exactly at tolerance",
            scheme: Scheme::Standard,
            secret: STANDARD_SECRET,
            headers: standard_headers(NOW - tol, standard_sig_at(NOW - tol)),
            body: STANDARD_BODY.into(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "standard secret in the wrong encoding",
            scheme: Scheme::Standard,
            secret: "whsec_not*base64!",
            headers: standard_headers(STANDARD_TS, STANDARD_SIG.into()),
            body: STANDARD_BODY.into(),
            now: STANDARD_TS,
            expect: Err(VerifyError::InvalidSecret),
        },
        Case {
            name: "standard missing signature header",
            scheme: Scheme::Standard,
            secret: STANDARD_SECRET,
            headers: vec![
                ("webhook-id", STANDARD_ID.into()),
                ("webhook-timestamp", STANDARD_TS.to_string()),
            ],
            body: STANDARD_BODY.into(),
            now: STANDARD_TS,
            expect: Err(VerifyError::MissingHeader(STANDARD_SIGNATURE_HEADER)),
        },
        // GitLab.
        Case {
            name: "gitlab token",
            scheme: Scheme::Gitlab,
            secret: "glpat-hook-token",
            headers: vec![("X-Gitlab-Token", "glpat-hook-token".into())],
            body: b"{}".to_vec(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "gitlab wrong token",
            scheme: Scheme::Gitlab,
            secret: "glpat-hook-token",
            headers: vec![("X-Gitlab-Token", "glpat-hook-tokeN".into())],
            body: b"{}".to_vec(),
            now: NOW,
            expect: mismatch.clone(),
        },
        Case {
            name: "gitlab missing token",
            scheme: Scheme::Gitlab,
            secret: "glpat-hook-token",
            headers: vec![],
            body: b"{}".to_vec(),
            now: NOW,
            expect: Err(VerifyError::MissingHeader(GITLAB_TOKEN_HEADER)),
        },
        // Linear: the body's webhookTimestamp (ms) is checked too.
        Case {
            name: "linear vector",
            scheme: Scheme::Linear,
            secret: LINEAR_SECRET,
            headers: vec![("Linear-Signature", LINEAR_SIG.into())],
            body: LINEAR_BODY.into(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "linear stale webhookTimestamp",
            scheme: Scheme::Linear,
            secret: LINEAR_SECRET,
            headers: vec![("Linear-Signature", LINEAR_SIG.into())],
            body: LINEAR_BODY.into(),
            now: NOW + tol + 1,
            expect: late.clone(),
        },
        Case {
            name: "linear without webhookTimestamp fails closed",
            scheme: Scheme::Linear,
            secret: LINEAR_SECRET,
            headers: vec![(
                "Linear-Signature",
                hex::encode(hmac_sha256(
                    LINEAR_SECRET.as_bytes(),
                    &[br#"{"action":"create","type":"Issue"}"#],
                )),
            )],
            body: br#"{"action":"create","type":"Issue"}"#.to_vec(),
            now: NOW,
            expect: Err(VerifyError::MissingTimestamp(LINEAR_TIMESTAMP_FIELD)),
        },
        Case {
            name: "linear tampered byte",
            scheme: Scheme::Linear,
            secret: LINEAR_SECRET,
            headers: vec![("Linear-Signature", LINEAR_SIG.into())],
            body: tampered(LINEAR_BODY),
            now: NOW,
            expect: mismatch.clone(),
        },
        // Generic HMAC in its three algorithms and two encodings.
        Case {
            name: "generic sha256 hex with prefix",
            scheme: Scheme::GenericSha256HexPrefixed,
            secret: GENERIC_SECRET,
            headers: vec![(
                "X-Signature",
                format!(
                    "sha256={}",
                    hex::encode(hmac_sha256(GENERIC_SECRET.as_bytes(), &[GENERIC_BODY]))
                ),
            )],
            body: GENERIC_BODY.into(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "generic prefix missing",
            scheme: Scheme::GenericSha256HexPrefixed,
            secret: GENERIC_SECRET,
            headers: vec![(
                "X-Signature",
                hex::encode(hmac_sha256(GENERIC_SECRET.as_bytes(), &[GENERIC_BODY])),
            )],
            body: GENERIC_BODY.into(),
            now: NOW,
            expect: Err(VerifyError::MalformedHeader("signature header")),
        },
        Case {
            name: "generic sha1 hex",
            scheme: Scheme::GenericSha1Hex,
            secret: GENERIC_SECRET,
            headers: vec![("X-Signature", GENERIC_SHA1_HEX.into())],
            body: GENERIC_BODY.into(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "generic sha1 tampered",
            scheme: Scheme::GenericSha1Hex,
            secret: GENERIC_SECRET,
            headers: vec![("X-Signature", GENERIC_SHA1_HEX.into())],
            body: tampered(GENERIC_BODY),
            now: NOW,
            expect: mismatch.clone(),
        },
        Case {
            name: "generic sha512 base64",
            scheme: Scheme::GenericSha512Base64,
            secret: GENERIC_SECRET,
            headers: vec![("X-Signature", GENERIC_SHA512_B64.into())],
            body: GENERIC_BODY.into(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "generic missing header",
            scheme: Scheme::GenericSha512Base64,
            secret: GENERIC_SECRET,
            headers: vec![],
            body: GENERIC_BODY.into(),
            now: NOW,
            expect: Err(VerifyError::MissingHeader("signature header")),
        },
        // Basic and API key.
        Case {
            name: "basic credentials",
            scheme: Scheme::Basic,
            secret: "pa55word",
            headers: vec![("Authorization", format!("Basic {}", b64(b"hooks:pa55word")))],
            body: b"{}".to_vec(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "basic wrong user",
            scheme: Scheme::Basic,
            secret: "pa55word",
            headers: vec![("Authorization", format!("Basic {}", b64(b"hook:pa55word")))],
            body: b"{}".to_vec(),
            now: NOW,
            expect: mismatch.clone(),
        },
        Case {
            name: "basic wrong password",
            scheme: Scheme::Basic,
            secret: "pa55word",
            headers: vec![("Authorization", format!("Basic {}", b64(b"hooks:pa55wor")))],
            body: b"{}".to_vec(),
            now: NOW,
            expect: mismatch.clone(),
        },
        Case {
            name: "basic bearer instead",
            scheme: Scheme::Basic,
            secret: "pa55word",
            headers: vec![("Authorization", "Bearer pa55word".into())],
            body: b"{}".to_vec(),
            now: NOW,
            expect: Err(VerifyError::MalformedHeader(AUTHORIZATION_HEADER)),
        },
        Case {
            name: "api key",
            scheme: Scheme::ApiKey,
            secret: "key-123",
            headers: vec![("X-Api-Key", "key-123".into())],
            body: b"{}".to_vec(),
            now: NOW,
            expect: ok.clone(),
        },
        Case {
            name: "api key wrong",
            scheme: Scheme::ApiKey,
            secret: "key-123",
            headers: vec![("X-Api-Key", "key-124".into())],
            body: b"{}".to_vec(),
            now: NOW,
            expect: mismatch.clone(),
        },
        Case {
            name: "api key missing",
            scheme: Scheme::ApiKey,
            secret: "key-123",
            headers: vec![],
            body: b"{}".to_vec(),
            now: NOW,
            expect: Err(VerifyError::MissingHeader("api key header")),
        },
    ]
}

#[test]
fn provider_vectors_and_negative_cases() {
    let mut failures = Vec::new();
    for case in cases() {
        let got = run(&case);
        if got != case.expect {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                case.name, case.expect, got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn standard_signing_reproduces_the_published_vector() {
    let key = standard_key(&Secret::new(STANDARD_SECRET)).expect("valid secret");
    assert_eq!(
        sign_standard(&key, STANDARD_ID, STANDARD_TS, STANDARD_BODY),
        STANDARD_SIG
    );
    // The prefix is optional.
    let bare =
        standard_key(&Secret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).expect("valid secret");
    assert_eq!(bare, key);
}

#[test]
fn rotation_accepts_previous_and_reports_the_slot() {
    let old = Secret::new(GITHUB_SECRET);
    let new = Secret::new("the new secret");
    let headers = HeaderList::from_pairs([("x-hub-signature-256", GITHUB_SIG)]);
    let check = |s: &Secret| verify_github(s, &headers, GITHUB_BODY);

    let both = SecretSet {
        current: Some(&new),
        previous: Some(&old),
    };
    assert_eq!(verify_with_rotation(both, check), Ok(SecretSlot::Previous));

    let current_only = SecretSet {
        current: Some(&new),
        previous: None,
    };
    assert_eq!(
        verify_with_rotation(current_only, check),
        Err(VerifyError::SignatureMismatch)
    );

    let old_is_current = SecretSet {
        current: Some(&old),
        previous: Some(&new),
    };
    assert_eq!(
        verify_with_rotation(old_is_current, check),
        Ok(SecretSlot::Current)
    );

    let none = SecretSet {
        current: None,
        previous: Some(&old),
    };
    assert_eq!(
        verify_with_rotation(none, check),
        Err(VerifyError::NoSecret)
    );
}

#[test]
fn rotation_does_not_retry_secret_independent_errors() {
    let a = Secret::new("a");
    let b = Secret::new("b");
    let mut calls = 0;
    let result = verify_with_rotation(
        SecretSet {
            current: Some(&a),
            previous: Some(&b),
        },
        |_| {
            calls += 1;
            Err(VerifyError::MissingHeader("x"))
        },
    );
    assert_eq!(result, Err(VerifyError::MissingHeader("x")));
    assert_eq!(calls, 1);
}

#[test]
fn errors_map_to_stored_statuses() {
    assert_eq!(
        VerifyError::SignatureMismatch.signature_status().as_str(),
        "invalid"
    );
    assert_eq!(
        VerifyError::MissingHeader("x").signature_status().as_str(),
        "missing"
    );
    assert_eq!(
        VerifyError::NoSupportedSignature
            .signature_status()
            .as_str(),
        "missing"
    );
    assert_eq!(
        VerifyError::TimestampOutOfTolerance
            .signature_status()
            .as_str(),
        "out_of_tolerance"
    );
    assert_eq!(
        VerifyError::NoSecret.signature_status().as_str(),
        "no_secret"
    );
    assert_eq!(
        VerifyError::InvalidSecret.signature_status().as_str(),
        "misconfigured"
    );
}
