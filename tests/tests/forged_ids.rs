//! A forged or malformed trigger id is a 404 and creates no Durable Object
//! state. This binary has an edge of its own, so nothing else creates state
//! while it counts the objects on disk.

use edgehook_e2e::*;
use serde_json::json;

fn object_files(edge: &Edge) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(edge.trigger_state_dir())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn forged_and_malformed_trigger_ids_are_404_and_create_no_state() {
    let edge = Edge::start();
    let secret = "forged-test-secret-value";
    let t = edge
        .create_trigger(json!({"name": "real", "provider": "github", "signing_secret": secret}));
    let real = t["id"].as_str().expect("id").to_string();
    let sig = github_signature(secret, b"{}");
    assert_eq!(
        edge.hook(&real, &[("x-hub-signature-256", &sig)], b"{}")
            .status,
        200
    );
    let before = object_files(&edge);
    assert!(!before.is_empty(), "the real trigger has state on disk");

    let mut forged: Vec<String> = (0..10)
        .map(|i| {
            let mut chars: Vec<char> = real.chars().collect();
            let pos = 4 + i * 3;
            chars[pos] = if chars[pos] == 'a' { 'b' } else { 'a' };
            chars.into_iter().collect()
        })
        .collect();
    forged.extend(
        [
            "trg_",
            "nope",
            "trg_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
            "..%2f..%2fetc",
            "TRG_AAAA",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    for f in &forged {
        let r = edge.hook(f, &[("x-hub-signature-256", &sig)], b"{}");
        assert_eq!(r.status, 404, "{f}: {}", r.body);
        assert!(r.json()["error"].is_string());
        for path in [
            format!("/api/triggers/{f}"),
            format!("/api/triggers/{f}/deliveries"),
            format!("/api/triggers/{f}/changes"),
        ] {
            assert_eq!(edge.admin("GET", &path, None).status, 404, "{path}");
        }
    }
    assert_eq!(
        object_files(&edge),
        before,
        "forged ids created Durable Object state"
    );
}
