//! Golden bytes: the signed encoding of fixed bodies, their event ids and their signatures by a
//! fixed key are pinned as literals, so any change to the signed format is loud. If one of these
//! fails, the format changed: that needs a new format version (and new domain strings), not new
//! literals. Independent recomputations (BLAKE3 and ed25519 called directly) check that the
//! literals mean what they claim. The literals were produced once by printing
//! `hex::encode(Envelope::sign(&LEDGER, body, &[&golden_key()]).body)` (and lines, id, signature),
//! for the ledger id `[0x1e; 32]`: event format 2 put the ledger into every id and signature.

mod common;
use common::LEDGER;

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use ledger_core::envelope::{event_id, Envelope, EVENT_DOMAIN};
use ledger_core::event::*;
use ledger_core::json::parse_json_event;
use ledger_core::refusal::Refusal;
use ledger_core::{merkle, wire};

/// The signing key of every golden: seed `[7; 32]`.
fn golden_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn salt_counting_up() -> Salt {
    Salt(core::array::from_fn(|i| i as u8))
}
fn salt_counting_down() -> Salt {
    Salt(core::array::from_fn(|i| 15 - i as u8))
}

/// A payroll month of two lines with fixed salts, signed at 09:00 in UTC+8.
fn declaration() -> EventBody {
    EventBody {
        signed_at: common::instant("2024-02-01T09:00:00+08:00"),
        kind: EventKind::ContributionsDeclared(ContributionsDeclared {
            employer: common::employer("91440300MA5G"),
            jurisdiction: common::ju("CN-44"),
            period: common::month("2024-01"),
            lines: vec![
                ContributionLine {
                    salt: salt_counting_up(),
                    worker: common::worker("W-1"),
                    scheme: Scheme::Pension,
                    base: common::money("5000.00"),
                    employer_amount: common::money("800.00"),
                    employee_amount: common::money("400.00"),
                },
                ContributionLine {
                    salt: salt_counting_down(),
                    worker: common::worker("W-2"),
                    scheme: Scheme::Injury,
                    base: common::money("6000.00"),
                    employer_amount: common::money("12.00"),
                    employee_amount: common::money("0.00"),
                },
            ],
            back_pay: false,
        }),
    }
}

/// The golden key registers itself as employer 91440300MA5G in CN-44.
fn key_registered() -> EventBody {
    EventBody {
        signed_at: common::instant("2024-01-01T00:00:00Z"),
        kind: common::key_registered("CN-44", Role::Employer, "91440300MA5G", &golden_key()),
    }
}

/// A woman of category 55 with a Sichuan hukou.
fn person_registered() -> EventBody {
    EventBody {
        signed_at: common::instant("2024-01-01T00:00:00Z"),
        kind: EventKind::PersonRegistered(PersonRegistered {
            worker: common::worker("W-1"),
            jurisdiction: common::ju("CN-44"),
            sex: Sex::Female,
            birth_date: common::date("1985-03-12"),
            female_category: Some(FemaleCategory::FiftyFive),
            nationality: common::ju("CN"),
            hukou: Some(common::ju("CN-51")),
        }),
    }
}

/// Published parameters: pins the canonical JSON of parameter values (sorted keys, no spaces).
fn parameters_published() -> EventBody {
    let mut parameters = BTreeMap::new();
    parameters.insert(
        "average_wage".to_string(),
        serde_json::json!({"year": 2024, "monthly": "13900.00"}),
    );
    parameters.insert(
        "pilot_provinces".to_string(),
        serde_json::json!(["CN-11", "CN-31"]),
    );
    EventBody {
        signed_at: common::instant("2025-01-02T03:04:05.006Z"),
        kind: EventKind::ParametersPublished(ParametersPublished {
            jurisdiction: common::ju("CN-44"),
            effective: common::date("2025-01-01"),
            parameters,
        }),
    }
}

/// A correction replacing a whole event: pins the nested body (version 1, no signed_at).
fn correction_replacing_an_event() -> EventBody {
    EventBody {
        signed_at: common::instant("2024-03-01T12:00:00-05:30"),
        kind: EventKind::Correction(Correction {
            target: Hash32([0xab; 32]),
            line: None,
            action: CorrectionAction::Replace,
            replacement: Some(Replacement::Event(Box::new(EventKind::HukouChanged(
                HukouChanged {
                    worker: common::worker("W-1"),
                    hukou: common::ju("CN-44"),
                    effective: common::date("2024-02-29"),
                },
            )))),
            reason: "wrong effective date".into(),
        }),
    }
}

struct Golden {
    body: &'static str,
    lines: &'static [&'static str],
    id: &'static str,
    signature: &'static str,
}

/// Signs `body` with the golden key and compares every part with its literal; then recomputes
/// the id and verifies the signature without going through the crate.
fn check(name: &str, body: &EventBody, g: &Golden) {
    let env = Envelope::sign(&LEDGER, body, &[&golden_key()]);
    let got_lines: Vec<String> = env.lines.iter().map(hex::encode).collect();
    let got = (
        hex::encode(&env.body),
        got_lines.clone(),
        env.id(&LEDGER).to_hex(),
        hex::encode(env.signatures[0].signature),
    );
    let want = (
        g.body.to_string(),
        g.lines.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        g.id.to_string(),
        g.signature.to_string(),
    );
    assert_eq!(got, want, "the signed encoding of {name} changed");

    // The id is BLAKE3(EVENT_DOMAIN || ledger || body), computed here without the crate.
    assert_eq!(EVENT_DOMAIN, b"portable-contribution-ledger/event/v2\n");
    let mut h = blake3::Hasher::new();
    h.update(b"portable-contribution-ledger/event/v2\n");
    h.update(&[0x1e; 32]);
    h.update(&env.body);
    assert_eq!(hex::encode(h.finalize().as_bytes()), g.id, "{name}: id");
    assert_eq!(event_id(&LEDGER, &env.body).to_hex(), g.id);

    // The signature verifies strictly over EVENT_DOMAIN || ledger || body with the seed-7
    // public key.
    let vk = VerifyingKey::from_bytes(&hex::decode(GOLDEN_PUBLIC_KEY).unwrap().try_into().unwrap())
        .unwrap();
    let mut msg = EVENT_DOMAIN.to_vec();
    msg.extend_from_slice(&[0x1e; 32]);
    msg.extend_from_slice(&env.body);
    let sig = Signature::from_bytes(&hex::decode(g.signature).unwrap().try_into().unwrap());
    vk.verify_strict(&msg, &sig)
        .unwrap_or_else(|e| panic!("{name}: golden signature does not verify: {e}"));
    // ... and not over the bare body (the domain is part of the message).
    assert!(vk.verify_strict(&env.body, &sig).is_err(), "{name}");

    // The golden bytes decode back to the body.
    let lines: Vec<Vec<u8>> = g.lines.iter().map(|l| hex::decode(l).unwrap()).collect();
    assert_eq!(
        wire::decode_event(&hex::decode(g.body).unwrap(), &lines).unwrap(),
        *body,
        "{name}: golden bytes decode"
    );
}

#[test]
fn the_golden_key_is_pinned() {
    // Seed [7; 32] gives this ed25519 public key (RFC 8032 key derivation).
    assert_eq!(common::pk(&golden_key()).to_hex(), GOLDEN_PUBLIC_KEY);
}

#[test]
fn contributions_declared_is_pinned() {
    // Body, both lines, id and signature of a two-line payroll declaration.
    check(
        "contributions_declared",
        &declaration(),
        &GOLDEN_DECLARATION,
    );
}

#[test]
fn the_lines_root_in_the_signed_body_is_the_merkle_root_of_the_lines() {
    // The pinned body commits to its pinned lines: RFC 6962 root, recomputed with BLAKE3 here.
    let l0 = hex::decode(GOLDEN_DECLARATION.lines[0]).unwrap();
    let l1 = hex::decode(GOLDEN_DECLARATION.lines[1]).unwrap();
    let leaf = |b: &[u8]| {
        let mut h = blake3::Hasher::new();
        h.update(&[0]);
        h.update(b);
        *h.finalize().as_bytes()
    };
    let mut h = blake3::Hasher::new();
    h.update(&[1]);
    h.update(&leaf(&l0));
    h.update(&leaf(&l1));
    let root = *h.finalize().as_bytes();
    assert_eq!(merkle::root(&[&l0, &l1]).0, root);
    let body = hex::decode(GOLDEN_DECLARATION.body).unwrap();
    assert!(
        body.windows(34)
            .any(|w| w[..2] == [0x32, 0x20] && w[2..] == root),
        "lines_root (field 6, 32 bytes) in the body"
    );
}

#[test]
fn key_registered_is_pinned() {
    // An employer key registration.
    check("key_registered", &key_registered(), &GOLDEN_KEY);
}

#[test]
fn person_registered_is_pinned() {
    // A person registration with the optional fields set.
    check("person_registered", &person_registered(), &GOLDEN_PERSON);
}

#[test]
fn parameters_published_is_pinned() {
    // Parameter values travel as canonical JSON text inside the signed body.
    check(
        "parameters_published",
        &parameters_published(),
        &GOLDEN_PARAMETERS,
    );
    let body = hex::decode(GOLDEN_PARAMETERS.body).unwrap();
    let needle = br#"{"monthly":"13900.00","year":2024}"#;
    assert!(body.windows(needle.len()).any(|w| w == needle));
}

#[test]
fn a_correction_with_a_replacement_event_is_pinned() {
    // A nested replacement body with a negative-offset signed_at.
    check(
        "correction",
        &correction_replacing_an_event(),
        &GOLDEN_CORRECTION,
    );
}

#[test]
fn the_json_form_gives_the_same_bytes() {
    // The JSON a client submits encodes to the pinned bytes (salts written out in hex).
    let json = r#"{"type":"contributions_declared","signed_at":"2024-02-01T09:00:00+08:00","employer":"91440300MA5G","jurisdiction":"CN-44","period":"2024-01","lines":[{"salt":"000102030405060708090a0b0c0d0e0f","worker":"W-1","scheme":"pension","base":"5000.00","employer_amount":"800.00","employee_amount":"400.00"},{"salt":"0f0e0d0c0b0a09080706050403020100","worker":"W-2","scheme":"injury","base":"6000.00","employer_amount":"12.00","employee_amount":"0.00"}]}"#;
    let (kind, signed_at) = parse_json_event(json).unwrap();
    let body = EventBody {
        signed_at: signed_at.unwrap(),
        kind,
    };
    assert_eq!(body, declaration());
    assert_eq!(
        hex::encode(wire::encode_body(&body).body),
        GOLDEN_DECLARATION.body
    );
}

#[test]
fn merkle_root_of_three_leaves_is_pinned() {
    // The tree shape: left subtree is the largest power of two below the size; checked against
    // BLAKE3 called directly and against the literal.
    let leaf = |b: &[u8]| {
        let mut h = blake3::Hasher::new();
        h.update(&[0]);
        h.update(b);
        *h.finalize().as_bytes()
    };
    let node = |l: [u8; 32], r: [u8; 32]| {
        let mut h = blake3::Hasher::new();
        h.update(&[1]);
        h.update(&l);
        h.update(&r);
        *h.finalize().as_bytes()
    };
    let by_hand = node(node(leaf(b"leaf 0"), leaf(b"leaf 1")), leaf(b"leaf 2"));
    let root = merkle::root(&[b"leaf 0".as_slice(), b"leaf 1", b"leaf 2"]);
    assert_eq!(root.0, by_hand);
    assert_eq!(root.to_hex(), GOLDEN_ROOT_OF_3);
    assert_eq!(
        merkle::empty_root().to_hex(),
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    );
}

const GOLDEN_PUBLIC_KEY: &str = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";
const GOLDEN_ROOT_OF_3: &str = "e8a21b226e7dee1b97377e948a3bd99f65d63ab89334f3c29e0f089138fad8a2";
const GOLDEN_DECLARATION: Golden = Golden {
    body: "080112090890daebad0618c00782013d0a0c39313434303330304d4135471205434e2d343418a1ad0c2802322080ab31d8bec78a0f36e4b6b755f3a07b1cdcdf85606c60d24c586e63bf461a30",
    lines: &[
        "0a10000102030405060708090a0b0c0d0e0f1203572d31180120a0c21e2880f10430c0b802",
        "0a100f0e0d0c0b0a090807060504030201001203572d32180220c0cf2428b009",
    ],
    id: "38c065a9c4454081320945bc0b66b26f2d5cc52be4cbe3cb349a64ca337a96c6",
    signature: "cf7ea2a693066f2210ae661e577fb7a3f10dc567246041fdbd6bef8a7bac77198440b659600f2556465a36414421181cbf0103013ef842524daf6846755db802",
};
const GOLDEN_KEY: Golden = Golden {
    body: "08011206088081c8ac0652390a05434e2d343410021a0c39313434303330304d4135472220ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c",
    lines: &[],
    id: "ce44d6b5f67045f20561b8366966fa7845ec5d91db282f487c49686a8c8e0dbd",
    signature: "bfaaa1212e3d51086b3d481ca5b1d5247b56fb9a6579ab6207fa427ca6d5e02c5c36420f2d00749005c2b9f28e1133fdccc210896b54ddfd61be4a74e1073b04",
};
const GOLDEN_PERSON: Golden = Golden {
    body: "08011206088081c8ac0662200a03572d311205434e2d3434180220c8c8bb0928373202434e3a05434e2d3531",
    lines: &[],
    id: "c2bda5795d457c2e7e198c20e34ba6d01139889287f188d873c658f226c932c9",
    signature: "eb9cb55cc7b2837ebae209ba51902a06ab3eeaa4ef809700a7c046c09621fcc5e1dd63d57a099d2bc48e41a04e7f7516f8f9e29f0cf8b59a5a454e7be6681a03",
};
const GOLDEN_PARAMETERS: Golden = Golden {
    body: "0801120b08a584d8bb0610809bee02d201660a05434e2d343410f5fbd3091a320a0c617665726167655f7761676512227b226d6f6e74686c79223a2231333930302e3030222c2279656172223a323032347d1a240a0f70696c6f745f70726f76696e63657312115b22434e2d3131222c22434e2d3331225d",
    lines: &[],
    id: "77b3e449df4f9dfbb133074b5cc6588effbe6d03f49f8520085d45a9aefed957",
    signature: "af1ba25f61d6de5824756e05f985e3279bbdc61df6fdb1621a0303a664c393aae519191b04791f61cad20d0992d2c64ad1d1e1ef89a04aa783cb6bcb0d613603",
};
const GOLDEN_CORRECTION: Golden = Golden {
    body: "080112090898a188af06189305ca01510a20abababababababababababababababababababababababababababababababab1802321508016a110a03572d311205434e2d343418e5aed3093a1477726f6e67206566666563746976652064617465",
    lines: &[],
    id: "3ab9d1ae4da15c28afd56fe2b3c20539732c136884f09dacb43ce2a6af2e2d4b",
    signature: "f7c11be9dc14d0d9090ad13a7f1852430c32b8600834f4baafaa193e3cc60f4bbada9629e65e3d40e8a614efa65a525f5090149542648361f8e3ce9beb21d60a",
};

#[test]
fn an_event_signed_for_another_ledger_does_not_verify_here() {
    let other = ledger_core::envelope::LedgerId(Hash32([0x2f; 32]));
    let env = Envelope::sign(&other, &person_registered(), &[&golden_key()]);
    assert_ne!(env.id(&other), env.id(&LEDGER), "the id names the ledger");
    match env.open(&LEDGER) {
        Err(Refusal::BadSignature(m)) => {
            assert!(m.contains("for this ledger"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_format_1_signature_is_refused_with_the_reason() {
    // Format 1 signed EVENT_DOMAIN_V1 || body: no ledger. Such a signer gets told what changed.
    let mut env = Envelope::sign(&LEDGER, &person_registered(), &[&golden_key()]);
    let mut v1 = b"portable-contribution-ledger/event/v1\n".to_vec();
    v1.extend_from_slice(&env.body);
    use ed25519_dalek::Signer;
    env.signatures[0].signature = golden_key().sign(&v1).to_bytes();
    match env.open(&LEDGER) {
        Err(Refusal::BadSignature(m)) => assert!(m.contains("event format 1"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// docs/integration.md gives an integrator in another language test vectors for every byte
/// they must reproduce; this recomputes each with the code and compares.
#[test]
fn the_integrators_guide_vectors_are_the_codes() {
    use ledger_core::envelope::{read_message, ReadScope};
    let guide = include_str!("../../docs/integration.md");
    let block = guide
        .split("```vectors\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/integration.md has a ```vectors block");
    let given: BTreeMap<&str, &str> = block
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("name = value");
            (k.trim(), v.trim())
        })
        .collect();

    let key = golden_key();
    let person = Envelope::sign(&LEDGER, &person_registered(), &[&key]);
    let declared = Envelope::sign(&LEDGER, &declaration(), &[&key]);
    let nonce = [0x0e; 16];
    let scope = ReadScope {
        ledger: LEDGER,
        audience: "node-1",
        method: ledger_core::envelope::read_method::ENTITLEMENT,
        subject: "W-1",
    };
    let token_message = read_message(&scope, &nonce, 1_700_000_000).unwrap();
    let line_hashes: Vec<_> = declared
        .lines
        .iter()
        .map(|l| hex::encode(merkle::leaf_hash(l).0))
        .collect();
    use ed25519_dalek::Signer;
    let want: BTreeMap<&str, String> = [
        ("key_seed", hex::encode(key.to_bytes())),
        ("public_key", GOLDEN_PUBLIC_KEY.to_string()),
        ("ledger_id", LEDGER.to_hex()),
        ("event_domain", hex::encode(EVENT_DOMAIN)),
        ("person_body", hex::encode(&person.body)),
        (
            "person_signing_message",
            hex::encode(ledger_core::envelope::signing_message(
                &LEDGER,
                &person.body,
            )),
        ),
        ("person_event_id", person.id(&LEDGER).to_hex()),
        (
            "person_signature",
            hex::encode(person.signatures[0].signature),
        ),
        ("declaration_line_0", hex::encode(&declared.lines[0])),
        ("declaration_line_1", hex::encode(&declared.lines[1])),
        ("declaration_leaf_0", line_hashes[0].clone()),
        ("declaration_leaf_1", line_hashes[1].clone()),
        (
            "declaration_lines_root",
            hex::encode(merkle::root(&declared.lines).0),
        ),
        ("declaration_body", hex::encode(&declared.body)),
        ("declaration_event_id", declared.id(&LEDGER).to_hex()),
        (
            "declaration_signature",
            hex::encode(declared.signatures[0].signature),
        ),
        ("token_message", hex::encode(&token_message)),
        (
            "token_signature",
            hex::encode(key.sign(&token_message).to_bytes()),
        ),
    ]
    .into_iter()
    .collect();
    let printed: String = want.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    for (k, v) in &want {
        assert_eq!(
            given.get(k).copied(),
            Some(v.as_str()),
            "vector {k} of docs/integration.md; the code gives:\n{printed}"
        );
    }
}
