//! Every decoder that faces the network or the disk answers arbitrary and mutated input with an
//! error, never a panic. Random-input regressions that run with the test suite; the
//! coverage-guided fuzz targets of the same entry points (AFL++ on stable) are in `fuzz/` at the
//! repository root, and inputs they found are kept here as regression tests.

use ed25519_dalek::SigningKey;
use ledger_core::envelope::{Envelope, LedgerId};
use ledger_core::event::EventBody;
use ledger_core::event::Hash32;
use ledger_core::json::parse_json_event;
use ledger_core::records::StoredRecord;
use ledger_core::time::Instant;
use ledger_core::{merkle, pb, wire};
use proptest::prelude::*;

const LEDGER: LedgerId = LedgerId(Hash32([0x1e; 32]));
use prost::Message;

fn sample_envelope() -> Envelope {
    let line = r#"{"type":"contributions_declared","employer":"E1","jurisdiction":"CN-44","period":"2024-01","lines":[{"worker":"W-1","scheme":"pension","base":"5000.00","employer_amount":"800.00","employee_amount":"400.00"},{"worker":"W-2","scheme":"injury","base":"5000.00","employer_amount":"10.00","employee_amount":"0.00"}]}"#;
    let (kind, _) = parse_json_event(line).unwrap();
    let body = EventBody {
        signed_at: Instant::from_unix_utc(1_700_000_000, 0).unwrap(),
        kind,
    };
    Envelope::sign(&LEDGER, &body, &[&SigningKey::from_bytes(&[9; 32])])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // Random bytes as a body, with and without random lines.
    #[test]
    fn random_bodies_are_refused_without_panic(body in proptest::collection::vec(any::<u8>(), 0..512),
                                               lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..4)) {
        let _ = wire::decode_event(&body, &lines);
        let _ = wire::decode_line(true, &body);
        let _ = wire::decode_line(false, &body);
    }

    // A valid envelope with one bit changed anywhere (body, a line or a signature) never opens
    // as a different event: it is refused or, if the change hit nothing signed, is the same event.
    #[test]
    fn mutated_envelopes_never_open_as_something_else(pos in any::<usize>(), bit in 0u8..8) {
        let good = sample_envelope();
        let mut bytes = good.to_pb().encode_to_vec();
        let p = pos % bytes.len();
        bytes[p] ^= 1 << bit;
        if let Ok(env) = pb::Envelope::decode(bytes.as_slice()) {
            if let Ok(env) = Envelope::from_pb(env) {
                if let Ok(opened) = env.open(&LEDGER) {
                    prop_assert_eq!(opened.id, good.id(&LEDGER));
                    prop_assert_eq!(opened.envelope.body, good.body.clone());
                    prop_assert_eq!(opened.envelope.lines, good.lines.clone());
                }
            }
        }
    }

    // Stored records: any flipped bit fails the checksum; any truncation fails to decode.
    #[test]
    fn mutated_stored_records_are_detected(pos in any::<usize>(), bit in 0u8..8) {
        let rec = StoredRecord {
            index: 7,
            stamp: Instant::from_unix_utc(1_700_000_000, 5).unwrap(),
            event_id: sample_envelope().id(&LEDGER),
            chain: Default::default(),
            envelope: sample_envelope(),
        };
        let mut bytes = rec.encode();
        prop_assert_eq!(StoredRecord::decode(&bytes).unwrap(), rec);
        let p = pos % bytes.len();
        prop_assert!(StoredRecord::decode(&bytes[..p]).is_err());
        bytes[p] ^= 1 << bit;
        prop_assert!(StoredRecord::decode(&bytes).is_err());
    }

    // Proof bytes from the wire.
    #[test]
    fn random_proof_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), index in any::<u64>(), size in any::<u64>()) {
        if let Some(path) = merkle::proof_from_bytes(&bytes) {
            let leaf = merkle::leaf_hash(b"x");
            let _ = merkle::verify_inclusion(&leaf, index, size, &path, &leaf);
        }
    }

    // JSON input of submit: arbitrary text is an error message, not a panic.
    #[test]
    fn random_json_lines_never_panic(text in ".{0,200}") {
        let _ = parse_json_event(&text);
    }

    // Checkpoint notes arrive from peers (Cosign) and in statements: any text is refused or
    // parsed, never a panic; a mutated valid note never verifies as a different checkpoint.
    #[test]
    fn random_and_mutated_checkpoint_notes_never_panic(text in "(?s).{0,300}", pos in any::<usize>(), byte in any::<u8>()) {
        use ledger_core::checkpoint::{Checkpoint, NoteKey, SignedNote};
        if let Ok(n) = SignedNote::parse(&text) {
            let _ = Checkpoint::parse_body(&n.text);
            let _ = n.verify(&[]);
        }
        let _ = Checkpoint::parse_body(&text);
        let _ = NoteKey::parse_verifier(&text);
        let key = SigningKey::from_bytes(&[3; 32]);
        let cp = Checkpoint { origin: "o".into(), size: 7, root: ledger_core::event::Hash32([1; 32]) };
        let mut note = SignedNote::new(cp.body());
        note.sign("n", &key).unwrap();
        let mut bytes = note.format().into_bytes();
        let p = pos % bytes.len();
        if bytes[p] != byte {
            bytes[p] = byte;
            if let Ok(t) = String::from_utf8(bytes) {
                let trusted = [NoteKey::new("n", ledger_core::event::PublicKeyBytes(key.verifying_key().to_bytes())).unwrap()];
                if let Ok(m) = SignedNote::parse(&t) {
                    if let Ok(signed) = m.verify(&trusted) {
                        if !signed.is_empty() {
                            prop_assert_eq!(Checkpoint::parse_body(&m.text).ok(), Some(cp));
                        }
                    }
                }
            }
        }
    }

    // Statement files come from anywhere: arbitrary text is refused, never a panic.
    #[test]
    fn random_statements_never_panic(text in "(?s).{0,400}") {
        let trust = ledger_core::checkpoint::Trust { nodes: Vec::new(), quorum: 1 };
        let _ = ledger_core::statement::verify(&text, &trust);
        let q = serde_json::to_string(&text).unwrap();
        let json = format!(r#"{{"format":"pcl-statement/2","worker":"W","checkpoint":{q},"contents":{q},"events":[{{"index":1,"appended_at":"2024-01-01T00:00:00Z","envelope":{q},"inclusion":[]}}]}}"#);
        let _ = ledger_core::statement::verify(&json, &trust);
        let _ = ledger_core::statement::Contents::parse_body(&text);
    }

    // Worker index entries are read back from the store: any bytes are an error or an entry.
    #[test]
    fn random_worker_entries_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = ledger_core::fact::WorkerEntry::decode(&bytes);
    }
}

// Found by the json_event fuzz target: JSON allows a raw DEL (and other non-ASCII control
// characters) in a string, which the signed encoding refuses in free text. `submit` used to sign
// such an event and only the node refused it; the JSON parser now says so first.
#[test]
fn json_events_the_node_would_refuse_are_refused_when_parsed() {
    let del = "{\"type\":\"key_revoked\",\"public_key\":\"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c\",\"reason\":\"left the compan\u{7f}\"}";
    let err = parse_json_event(del).unwrap_err();
    assert!(
        err.contains("reason") && err.contains("control characters"),
        "{err}"
    );
    let ok = del.replace('\u{7f}', "y");
    assert!(parse_json_event(&ok).is_ok());
}
