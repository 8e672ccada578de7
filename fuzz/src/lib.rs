//! The fuzz targets' contracts, one function per network-facing decoder. Each takes the raw
//! bytes a peer or a user could send and asserts what the decoder promises beyond "no panic":
//! accepted input re-encodes to the same bytes, a verified statement or note stays verified after
//! re-serialisation, a token signs exactly one subject. `src/bin/*.rs` wrap them for AFL++;
//! `replay` runs them over the corpus without AFL; `seeds` writes the corpus from real encodings.

pub mod seeds;

use ed25519_dalek::{Signature, VerifyingKey};
use ledger_core::checkpoint::{Checkpoint, NoteKey, SignedNote};
use ledger_core::envelope::{event_id, Envelope};
use ledger_core::event::{EventBody, PublicKeyBytes};
use ledger_core::json::parse_json_event;
use ledger_core::statement::{self, Statement};
use ledger_core::{pb, wire};
use ledger_node::raft::{wire as raft_wire, LedgerRequest};
use openraft::EntryPayload;
use prost::Message;

/// Every target by name, as `replay` and `run.sh` know them.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("submit", submit),
    ("json_event", json_event),
    ("statement", statement),
    ("checkpoint", checkpoint),
    ("read_token", read_token),
    ("raft_append_entries", raft_append_entries),
    ("raft_vote", raft_vote),
    ("raft_install_snapshot", raft_install_snapshot),
    ("raft_replies", raft_replies),
    ("raft_entry", raft_entry),
    ("snapshot", snapshot),
];

/// One submitted envelope as the node opens it (service `open_submitted`, and again on every
/// replica when a Raft entry is applied). Accepted bodies and lines re-encode to their bytes; an
/// envelope that opens is exactly the decoded body with the id of its bytes.
pub fn check_envelope(p: pb::Envelope) {
    let Ok(env) = Envelope::from_pb(p.clone()) else {
        return;
    };
    assert_eq!(
        env.to_pb(),
        p,
        "from_pb checks shapes only, so to_pb gives the message back"
    );
    for line in &env.lines {
        for orders in [false, true] {
            if let Ok(l) = wire::decode_line(orders, line) {
                assert_eq!(
                    &wire::encode_line(&l),
                    line,
                    "an accepted line is canonical"
                );
            }
        }
    }
    let decoded = wire::decode_event(&env.body, &env.lines);
    if let Ok(body) = &decoded {
        let again = wire::encode_body(body);
        assert_eq!(
            again.body, env.body,
            "an accepted body re-encodes to its bytes"
        );
        assert_eq!(
            again.lines, env.lines,
            "accepted lines re-encode to their bytes"
        );
    }
    if let Ok(v) = env.clone().open(&seeds::LEDGER) {
        assert_eq!(
            Ok(&v.body),
            decoded.as_ref(),
            "open decodes as decode_event does"
        );
        assert_eq!(v.id, event_id(&seeds::LEDGER, &env.body));
        assert_eq!(v.envelope, env);
    }
}

/// The public Submit path: a `SubmitRequest` off the wire, each envelope opened.
pub fn submit(data: &[u8]) {
    let Ok(req) = ledger_proto::node::SubmitRequest::decode(data) else {
        return;
    };
    req.events.into_iter().for_each(check_envelope);
}

/// `submit`'s JSON lines: an accepted event survives JSON -> model -> JSON and model -> signed
/// encoding -> model unchanged.
pub fn json_event(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((kind, signed_at)) = parse_json_event(text) else {
        return;
    };
    let json = serde_json::to_string(&kind).expect("events serialize");
    let (again, none) = parse_json_event(&json).expect("an event's own JSON parses");
    assert_eq!(again, kind, "JSON round trip");
    assert_eq!(none, None);
    let body = EventBody {
        signed_at: signed_at.unwrap_or(seeds::signed_at()),
        kind,
    };
    let enc = wire::encode_body(&body);
    // An event parse accepts but the node could not decode would be signed and then refused;
    // only the node's size limits are left to the node.
    match wire::decode_event(&enc.body, &enc.lines) {
        Ok(back) => assert_eq!(back, body, "signed-encoding round trip"),
        Err(ledger_core::refusal::Refusal::TooLarge(_)) => {}
        Err(r) => panic!("a parsed event does not decode: {r}"),
    }
}

/// Statement files: one that verifies against the trusted key verifies again, with the same
/// result, after it is parsed and written out again; its facts can be derived.
pub fn statement(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let trusted = seeds::trust();
    let Ok(proven) = statement::verify(text, &trusted) else {
        return;
    };
    assert!(
        !proven.signed_by.is_empty(),
        "verified means a trusted node signed"
    );
    let st: Statement = serde_json::from_str(text).expect("a verified statement parses");
    let rewritten = serde_json::to_string_pretty(&st).expect("statements serialize");
    assert_eq!(statement::verify(&rewritten, &trusted), Ok(proven.clone()));
    let _ = statement::facts(&proven);
}

/// Checkpoint bodies, signed notes (Cosign, statements) and verifier keys (trust files).
pub fn checkpoint(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cp) = Checkpoint::parse_body(text) {
        assert_eq!(Checkpoint::parse_body(&cp.body()), Ok(cp));
    }
    if let Ok(k) = NoteKey::parse_verifier(text) {
        assert_eq!(
            k.verifier_string(),
            text.trim(),
            "one verifier string per key"
        );
    }
    let Ok(note) = SignedNote::parse(text) else {
        return;
    };
    let formatted = note.format();
    assert_eq!(
        SignedNote::parse(&formatted).as_ref(),
        Ok(&note),
        "format round trip"
    );
    let trusted = [seeds::node_note_key()];
    if let Ok(names) = note.verify(&trusted) {
        let again = SignedNote::parse(&formatted).expect("parsed above");
        assert_eq!(again.verify(&trusted), Ok(names));
    }
}

/// Read tokens: byte 0 is the subject's length, then the subject, then a `ReadToken`. The pure
/// steps of the node's check (key shape, signature shape, strict verification over the read
/// message); a token that verifies signs exactly its subject and time.
pub fn read_token(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let Some(subject) = rest.get(..n as usize) else {
        return;
    };
    let Ok(subject) = std::str::from_utf8(subject) else {
        return;
    };
    let Ok(t) = ledger_proto::node::ReadToken::decode(&rest[n as usize..]) else {
        return;
    };
    let verifies = |subject: &str, issued_at: i64| -> bool {
        let Ok(pk) = PublicKeyBytes::from_slice(&t.public_key) else {
            return false;
        };
        let Ok(vk) = VerifyingKey::from_bytes(&pk.0) else {
            return false;
        };
        let Ok(sig) = <[u8; 64]>::try_from(t.signature.as_slice()) else {
            return false;
        };
        if t.nonce.as_slice() != seeds::TOKEN_NONCE {
            return false;
        }
        let Some(message) = seeds::token_message(subject, issued_at) else {
            return false;
        };
        vk.verify_strict(&message, &Signature::from_bytes(&sig))
            .is_ok()
    };
    if verifies(subject, t.issued_at) {
        assert!(
            !verifies(&format!("{subject}x"), t.issued_at),
            "bound to the subject"
        );
        assert!(
            !verifies(subject, t.issued_at.wrapping_add(1)),
            "bound to the time"
        );
    }
}

/// The envelopes of a ledger request, opened as the state machine opens them on apply.
fn open_entry_envelopes(req: &LedgerRequest) {
    for bytes in &req.envelopes {
        if let Ok(p) = pb::Envelope::decode(bytes.as_slice()) {
            check_envelope(p);
        }
    }
}

fn open_payload(payload: &EntryPayload<ledger_node::raft::TypeConfig>) {
    if let EntryPayload::Normal(req) = payload {
        open_entry_envelopes(req);
    }
}

/// Asserts that encoding is a fixed point after one decode: decode(x) = v, encode(v) = b,
/// decode(b) = v2 with encode(v2) = b (for types without equality).
fn fixed_point<T>(
    v: &T,
    decode: impl Fn(&[u8]) -> Result<T, String>,
    encode: impl Fn(&T) -> Vec<u8>,
) -> T {
    let b = encode(v);
    let v2 = decode(&b).expect("an encoded message decodes");
    assert_eq!(encode(&v2), b, "re-encoding is stable");
    v2
}

pub fn raft_append_entries(data: &[u8]) {
    let Ok(req) = raft_wire::decode_append_entries(data) else {
        return;
    };
    let again = fixed_point(
        &req,
        raft_wire::decode_append_entries,
        raft_wire::encode_append_entries,
    );
    assert_eq!(again.entries, req.entries);
    req.entries.iter().for_each(|e| open_payload(&e.payload));
}

pub fn raft_vote(data: &[u8]) {
    if let Ok(req) = raft_wire::decode_vote(data) {
        let again = fixed_point(&req, raft_wire::decode_vote, raft_wire::encode_vote);
        assert_eq!(again, req);
    }
}

pub fn raft_install_snapshot(data: &[u8]) {
    let Ok(req) = raft_wire::decode_install_snapshot(data) else {
        return;
    };
    let again = fixed_point(
        &req,
        raft_wire::decode_install_snapshot,
        raft_wire::encode_install_snapshot,
    );
    assert_eq!(again, req);
    let _ = raft_wire::decode_snapshot(&req.data);
}

/// The replies a peer sends back; each decoder is tried on the same bytes.
pub fn raft_replies(data: &[u8]) {
    if let Ok(r) = raft_wire::decode_append_entries_reply(data) {
        let _ = fixed_point(
            &r,
            raft_wire::decode_append_entries_reply,
            raft_wire::encode_reply,
        );
    }
    if let Ok(r) = raft_wire::decode_vote_reply(data) {
        let _ = fixed_point(&r, raft_wire::decode_vote_reply, raft_wire::encode_reply);
    }
    if let Ok(r) = raft_wire::decode_install_snapshot_reply(data) {
        let _ = fixed_point(
            &r,
            raft_wire::decode_install_snapshot_reply,
            raft_wire::encode_reply,
        );
    }
}

/// A Raft log entry (as stored and replicated) and a bare ledger request, on the same bytes.
pub fn raft_entry(data: &[u8]) {
    if let Ok(e) = raft_wire::decode_entry(data) {
        let again = fixed_point(&e, raft_wire::decode_entry, raft_wire::encode_entry);
        assert_eq!(again, e);
        open_payload(&e.payload);
    }
    if let Ok(r) = raft_wire::decode_ledger_request(data) {
        let again = fixed_point(
            &r,
            raft_wire::decode_ledger_request,
            raft_wire::encode_ledger_request,
        );
        assert_eq!(again, r);
        open_entry_envelopes(&r);
    }
}

/// A received snapshot. The input is the framed body without its checksum: the target appends
/// the right one so mutations reach the frame parser, and also tries the bytes as they are.
/// Accepted pairs re-frame to the same bytes.
pub fn snapshot(data: &[u8]) {
    // The header of a snapshot of format 2 (events; the body is checked against a store by
    // `snapshot::stage`, which needs a node): bounded, never a panic.
    let _ = raft_wire::decode_snapshot(data);
}
