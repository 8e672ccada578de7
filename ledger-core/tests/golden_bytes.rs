//! Golden bytes: the signed encoding, event ids, signatures and the Merkle shape are pinned, so a
//! change to any of them is never silent. If one of these fails, the format changed: that needs a
//! new format version, not new literals.

use ed25519_dalek::SigningKey;
use ledger_core::envelope::Envelope;
use ledger_core::event::{parse_json_event, EventBody};
use ledger_core::merkle;
use ledger_core::time::Instant;

fn envelope(json: &str) -> Envelope {
    let (kind, at) = parse_json_event(json).unwrap();
    let body = EventBody {
        signed_at: at.unwrap(),
        kind,
    };
    Envelope::sign(&body, &[&SigningKey::from_bytes(&[7; 32])])
}

const DECLARATION: &str = r#"{"type":"contributions_declared","signed_at":"2024-02-01T09:00:00+08:00","employer":"91440300MA5G","jurisdiction":"CN-44","period":"2024-01","lines":[{"salt":"000102030405060708090a0b0c0d0e0f","worker":"W-1","scheme":"pension","base":"5000.00","employer_amount":"800.00","employee_amount":"400.00"},{"salt":"0f0e0d0c0b0a09080706050403020100","worker":"W-2","scheme":"injury","base":"6000.00","employer_amount":"12.00","employee_amount":"0.00"}]}"#;
const KEY_REGISTERED: &str = r#"{"type":"key_registered","signed_at":"2024-01-01T00:00:00Z","jurisdiction":"CN-44","role":"employer","subject":"91440300MA5G","public_key":"ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"}"#;
const PERSON: &str = r#"{"type":"person_registered","signed_at":"2024-01-01T00:00:00Z","worker":"W-1","jurisdiction":"CN-44","sex":"F","birth_date":"1985-03-12","female_category":55,"nationality":"CN","hukou":"CN-51"}"#;

struct Golden {
    body: &'static str,
    lines: &'static [&'static str],
    id: &'static str,
    signature: &'static str,
}

fn check(json: &str, g: &Golden) {
    let e = envelope(json);
    let got = Golden {
        body: Box::leak(hex::encode(&e.body).into_boxed_str()),
        lines: Box::leak(
            e.lines
                .iter()
                .map(|l| &*Box::leak(hex::encode(l).into_boxed_str()))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        ),
        id: Box::leak(e.id().to_hex().into_boxed_str()),
        signature: Box::leak(hex::encode(e.signatures[0].signature).into_boxed_str()),
    };
    assert_eq!(
        (got.body, got.lines, got.id, got.signature),
        (g.body, g.lines, g.id, g.signature),
        "the signed encoding of {json} changed"
    );
}

#[test]
fn contributions_declared_is_pinned() {
    check(DECLARATION, &GOLDEN_DECLARATION);
}

#[test]
fn key_registered_is_pinned() {
    check(KEY_REGISTERED, &GOLDEN_KEY);
}

#[test]
fn person_registered_is_pinned() {
    check(PERSON, &GOLDEN_PERSON);
}

#[test]
fn merkle_root_of_three_is_pinned() {
    let root = merkle::root(&[b"leaf 0".as_slice(), b"leaf 1", b"leaf 2"]);
    assert_eq!(root.to_hex(), GOLDEN_ROOT_OF_3);
}

#[test]
fn stamps_and_signed_at_keep_their_offset() {
    let i: Instant = "2024-02-01T09:00:00+08:00".parse().unwrap();
    assert_eq!(i.unix_seconds(), 1_706_749_200);
    assert_eq!(i.offset_minutes(), 480);
}

const GOLDEN_ROOT_OF_3: &str = "e8a21b226e7dee1b97377e948a3bd99f65d63ab89334f3c29e0f089138fad8a2";
const GOLDEN_DECLARATION: Golden = Golden {
    body: "080112090890daebad0618c00782013d0a0c39313434303330304d4135471205434e2d343418a1ad0c2802322080ab31d8bec78a0f36e4b6b755f3a07b1cdcdf85606c60d24c586e63bf461a30",
    lines: &["0a10000102030405060708090a0b0c0d0e0f1203572d31180120a0c21e2880f10430c0b802", "0a100f0e0d0c0b0a090807060504030201001203572d32180220c0cf2428b009"],
    id: "260af39fca60b22ac0270bce50038dd14caf9279fbc92dccebf6ec15080d869b",
    signature: "caac41f978fc2d3d575710c00ffbc3350e040664a6d95b9f1f6335b21e2377f5fa9fcbed9951490eabe77a84f7effd6e330c7d541cc536428c9b7885e72e0408",
};
const GOLDEN_KEY: Golden = Golden {
    body: "08011206088081c8ac0652390a05434e2d343410021a0c39313434303330304d4135472220ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c",
    lines: &[],
    id: "f05d01b22824ef7f14c6a23d1eb650ab82f2eaabfb2db2b4c6e4ce371801b3f2",
    signature: "21b8f7aeba5ce85b445fd7905185d6a518d3f92f2613c914833e7fe428a57161c22733ce621f38b1732e2c9a089c9aa1c8b973682ec90781dee19f369d42af0e",
};
const GOLDEN_PERSON: Golden = Golden {
    body: "08011206088081c8ac0662200a03572d311205434e2d3434180220c8c8bb0928373202434e3a05434e2d3531",
    lines: &[],
    id: "8479e0f644174db9eb0c0ed7de7097eaeb4936d43d2a296e2747321fe29379d3",
    signature: "4b47a80e6a47840df775bb3a1d22fe2ff9115ff0bfcceafbc1134c3789d27d83f2b8e4e02b04cc5957b824746c3be4d2f7ba2817ddcee4e48028fdcfac464004",
};
