//! The benchmark knob `Engine::matching_core_only` (feature `bench-knobs`): it must drop the
//! decoders and nothing else, or `dlp_peers.py`'s matching-core column measures something other
//! than what docs/DLP.md says it does.

use ::base64::Engine as _;

use crate::engine::Engine;
use crate::finding::Location;

const TOKEN: &str = "ghp_irklt3xbnOppZ9xgpQdJjC82RLHxfjmQVnbI";

fn rules_found(e: &Engine, body: &str) -> Vec<String> {
    let mut ids: Vec<String> = e
        .scan_bytes(body.as_bytes(), false, Location::Body)
        .into_iter()
        .map(|f| f.rule_id)
        .collect();
    ids.dedup();
    ids
}

#[test]
fn the_core_keeps_raw_matches_and_drops_only_decoded_ones() {
    let full = Engine::builtin().unwrap();
    let core = Engine::builtin().unwrap().matching_core_only();
    let raw = format!("{{\"content\": \"export GITHUB_TOKEN={TOKEN}\\nok\"}}");
    // The token's `h` as a JSON `\u` escape: only the escape layer puts it back together.
    let escaped = format!("{{\"content\": \"token g\\u0068{}\"}}", &TOKEN[2..]);
    let b64 = ::base64::engine::general_purpose::STANDARD.encode(format!("token={TOKEN}\n"));
    let encoded = format!("{{\"blob\": \"{b64}\"}}");
    for body in [&raw, &escaped, &encoded] {
        assert_eq!(rules_found(&full, body), ["github-pat"], "{body}");
    }
    assert_eq!(rules_found(&core, &raw), ["github-pat"]);
    assert!(rules_found(&core, &escaped).is_empty());
    assert!(rules_found(&core, &encoded).is_empty());
}
