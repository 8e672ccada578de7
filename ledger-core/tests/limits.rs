//! Every named limit at its boundary: the limit itself passes the limit check, one past it is
//! refused with the limit's reason. Batches and bodies are built by hand (prost messages, lines
//! encoded with `wire::encode_line`, roots with `merkle::root`), so the boundary is exact.

mod common;
use common::LEDGER;

use std::collections::BTreeMap;

use ledger_core::envelope::{Envelope, SignatureEntry};
use ledger_core::event::*;
use ledger_core::ids::{WorkerId, MAX_ID_BYTES, MAX_TEXT_BYTES};
use ledger_core::json::parse_json_event;
use ledger_core::limits::*;
use ledger_core::money::Money;
use ledger_core::refusal::Refusal;
use ledger_core::time::Instant;
use ledger_core::{merkle, pb, validate, wire};
use prost::Message;

fn signed_at() -> pb::Instant {
    pb::Instant {
        unix_seconds: 1_706_749_200,
        nanos: 0,
        offset_minutes: 480,
    }
}

fn stamp() -> Instant {
    common::instant("2024-06-15T08:00:00Z")
}

/// A contributions_declared body over `lines` (already encoded), committing to their root.
fn declaration_body(lines: &[Vec<u8>]) -> Vec<u8> {
    pb::EventBody {
        version: 1,
        signed_at: Some(signed_at()),
        kind: Some(pb::event_body::Kind::ContributionsDeclared(
            pb::ContributionsDeclared {
                employer: "E1".into(),
                jurisdiction: "CN-44".into(),
                period: 202401,
                back_pay: false,
                line_count: lines.len() as u32,
                lines_root: merkle::root(lines).0.to_vec(),
            },
        )),
    }
    .encode_to_vec()
}

/// `n` distinct encoded lines (one worker each, so the batch is also valid).
fn lines(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            wire::encode_line(&Line::Contribution(ContributionLine {
                salt: Salt::default(),
                worker: WorkerId::new(format!("W{i}")).unwrap(),
                scheme: Scheme::Pension,
                base: Money::from_minor(500_000),
                employer_amount: Money::from_minor(80_000),
                employee_amount: Money::from_minor(40_000),
            }))
        })
        .collect()
}

#[test]
fn a_batch_of_max_batch_lines_decodes_and_one_more_is_too_large() {
    // MAX_BATCH_LINES lines decode (and pass the field rules); MAX_BATCH_LINES + 1 are refused
    // as TooLarge, even though the body commits to them correctly.
    let mut l = lines(MAX_BATCH_LINES + 1);
    let over = declaration_body(&l);
    let r = wire::decode_event(&over, &l);
    assert!(
        matches!(&r, Err(Refusal::TooLarge(m)) if m.contains("100001")),
        "{r:?}"
    );
    assert_eq!(r.unwrap_err().code(), "too_large");

    l.pop();
    let at = declaration_body(&l);
    let body = wire::decode_event(&at, &l).unwrap();
    assert_eq!(body.kind.lines().len(), MAX_BATCH_LINES);
    validate::check_body(&body, stamp()).unwrap();
}

#[test]
fn a_line_of_max_line_bytes_reaches_the_decoder_and_one_byte_more_is_too_large() {
    // A line padded to exactly MAX_LINE_BYTES (with an unknown field) passes the size check and
    // is refused by the canonical decoder; one byte longer is refused for its size.
    let base = lines(1).remove(0);
    let padded = |total: usize| {
        // field 15, length-delimited: tag (1 byte) + length (2 bytes) + filler.
        let filler = total - base.len() - 3;
        let mut l = base.clone();
        l.push((15 << 3) | 2);
        l.extend_from_slice(&[(filler as u8 & 0x7f) | 0x80, (filler >> 7) as u8]);
        l.extend(std::iter::repeat_n(b'x', filler));
        assert_eq!(l.len(), total);
        l
    };
    let at = vec![padded(MAX_LINE_BYTES)];
    assert_eq!(
        wire::decode_event(&declaration_body(&at), &at),
        Err(Refusal::NonCanonical)
    );
    let over = vec![padded(MAX_LINE_BYTES + 1)];
    assert!(matches!(
        wire::decode_event(&declaration_body(&over), &over),
        Err(Refusal::TooLarge(_))
    ));
}

/// A body whose worker id is `worker` (any string; the model would refuse a long one).
fn person_body(worker: &str) -> Vec<u8> {
    pb::EventBody {
        version: 1,
        signed_at: Some(signed_at()),
        kind: Some(pb::event_body::Kind::PersonRegistered(
            pb::PersonRegistered {
                worker: worker.into(),
                jurisdiction: "CN-44".into(),
                sex: pb::Sex::Male as i32,
                birth_date: 19800101,
                female_category: 0,
                nationality: "CN".into(),
                hukou: None,
            },
        )),
    }
    .encode_to_vec()
}

#[test]
fn an_id_of_64_bytes_is_accepted_and_65_refused() {
    // On the wire, in JSON and in the model, ids count UTF-8 bytes: 64 pass, 65 do not.
    assert_eq!(MAX_ID_BYTES, 64);
    for id in ["W".repeat(64), format!("{}W", "工".repeat(21))] {
        assert_eq!(id.len(), 64);
        let body = wire::decode_event(&person_body(&id), &[]).unwrap();
        let EventKind::PersonRegistered(p) = &body.kind else {
            panic!()
        };
        assert_eq!(p.worker.as_str(), id);
        assert!(WorkerId::new(id.clone()).is_ok());
        let json = format!(
            r#"{{"type":"hukou_changed","worker":"{id}","hukou":"CN-44","effective":"2024-01-01"}}"#
        );
        assert!(parse_json_event(&json).is_ok());
    }
    for id in [
        "W".repeat(65),
        format!("{}WW", "工".repeat(21)),
        "工".repeat(22),
    ] {
        assert!(id.len() > 64);
        let r = wire::decode_event(&person_body(&id), &[]);
        assert!(
            matches!(&r, Err(Refusal::InvalidField(m)) if m.starts_with("worker") && m.contains(&format!("{} bytes", id.len()))),
            "{r:?}"
        );
        assert!(WorkerId::new(id.clone()).is_err());
        let json = format!(
            r#"{{"type":"hukou_changed","worker":"{id}","hukou":"CN-44","effective":"2024-01-01"}}"#
        );
        assert!(parse_json_event(&json).unwrap_err().contains("64"));
    }
}

/// A parameters_published body carrying `n` codes of `len` bytes and one of `last` bytes.
fn parameters_body(n: usize, len: usize, last: usize) -> Vec<u8> {
    let mut codes: Vec<String> = (0..n).map(|_| "P".repeat(len)).collect();
    codes.push("Q".repeat(last));
    pb::EventBody {
        version: 1,
        signed_at: Some(signed_at()),
        kind: Some(pb::event_body::Kind::ParametersPublished(
            pb::ParametersPublished {
                jurisdiction: "CN-44".into(),
                effective: 20250101,
                parameters: vec![pb::Parameter {
                    name: "pilot_platforms".into(),
                    value_json: serde_json::to_string(&codes).unwrap(),
                }],
            },
        )),
    }
    .encode_to_vec()
}

/// A canonical, valid body of exactly `size` bytes (near 64 KiB every length prefix is 3
/// bytes, so each byte added to the last code adds one byte to the body).
fn body_of_size(size: usize) -> Vec<u8> {
    for n in (size / 67).saturating_sub(4)..size / 67 + 4 {
        let shortest = parameters_body(n, 64, 1).len();
        if shortest <= size && size - shortest < 64 {
            let b = parameters_body(n, 64, 1 + size - shortest);
            assert_eq!(b.len(), size);
            return b;
        }
    }
    panic!("no parameters body of {size} bytes")
}

#[test]
fn a_body_of_max_body_bytes_decodes_and_one_byte_more_is_too_large() {
    // A real (canonical, valid) body of exactly MAX_BODY_BYTES decodes; one byte more is refused
    // for its size before anything else is looked at.
    let at = body_of_size(MAX_BODY_BYTES);
    let body = wire::decode_event(&at, &[]).unwrap();
    validate::check_body(&body, stamp()).unwrap();
    let over = body_of_size(MAX_BODY_BYTES + 1);
    let r = wire::decode_event(&over, &[]);
    assert!(
        matches!(&r, Err(Refusal::TooLarge(m)) if m.contains("65537")),
        "{r:?}"
    );
    // The size check comes first: junk of that size is TooLarge, not Malformed.
    assert!(matches!(
        wire::decode_event(&vec![0xff; MAX_BODY_BYTES + 1], &[]),
        Err(Refusal::TooLarge(_))
    ));
    assert!(matches!(
        wire::decode_event(&vec![0xff; MAX_BODY_BYTES], &[]),
        Err(Refusal::Malformed(_))
    ));
}

#[test]
fn an_envelope_over_max_envelope_bytes_is_refused_before_decoding() {
    // Body, lines and 96 bytes a signature count; at the limit the envelope is decoded (and
    // fails on its content), one byte over it is TooLarge.
    let body = declaration_body(&lines(1));
    let sig = SignatureEntry {
        public_key: PublicKeyBytes([0; 32]),
        signature: [0; 64],
    };
    let make = |total: usize| {
        let mut rest = total - body.len() - 96;
        let mut ls = Vec::new();
        while rest > 0 {
            let n = rest.min(MAX_LINE_BYTES);
            ls.push(vec![0u8; n]);
            rest -= n;
        }
        let e = Envelope {
            body: body.clone(),
            lines: ls,
            signatures: vec![sig.clone()],
        };
        assert_eq!(e.encoded_len(), total);
        e
    };
    assert!(matches!(
        make(MAX_ENVELOPE_BYTES).open(&LEDGER),
        Err(Refusal::Malformed(m)) if m.contains("commits to 1 lines")
    ));
    assert!(matches!(
        make(MAX_ENVELOPE_BYTES + 1).open(&LEDGER),
        Err(Refusal::TooLarge(m)) if m.contains("envelope")
    ));
}

#[test]
fn max_signatures_open_and_one_more_is_too_large() {
    // Eight distinct signers open; a ninth is refused for the count.
    let keys: Vec<_> = (1..=MAX_SIGNATURES as u8 + 1).map(common::key).collect();
    let refs: Vec<_> = keys.iter().collect();
    let body = EventBody {
        signed_at: stamp(),
        kind: common::person_registered("W-1", "CN-44"),
    };
    let opened = Envelope::sign(&LEDGER, &body, &refs[..MAX_SIGNATURES])
        .open(&LEDGER)
        .unwrap();
    assert_eq!(opened.envelope.signatures.len(), MAX_SIGNATURES);
    assert!(matches!(
        Envelope::sign(&LEDGER, &body, &refs).open(&LEDGER),
        Err(Refusal::TooLarge(m)) if m.contains("9 signatures")
    ));
}

#[test]
fn texts_of_max_text_bytes_pass_and_one_byte_more_is_refused() {
    // Free text (reasons, descriptions) is limited in bytes, on the wire and at validation.
    let kind = |reason: String| {
        EventKind::KeyRevoked(KeyRevoked {
            public_key: common::pk(&common::key(3)),
            reason,
        })
    };
    let at = kind("r".repeat(MAX_TEXT_BYTES));
    assert!(validate::check_kind(&at, stamp()).is_ok());
    let e = wire::encode_body(&EventBody {
        signed_at: stamp(),
        kind: at,
    });
    assert!(wire::decode_event(&e.body, &[]).is_ok());

    let over = kind("r".repeat(MAX_TEXT_BYTES + 1));
    assert!(matches!(
        validate::check_kind(&over, stamp()),
        Err(Refusal::InvalidField(_))
    ));
    let e = wire::encode_body(&EventBody {
        signed_at: stamp(),
        kind: over,
    });
    assert!(matches!(
        wire::decode_event(&e.body, &[]),
        Err(Refusal::InvalidField(m)) if m.starts_with("reason")
    ));
}

#[test]
fn lists_of_max_list_items_pass_and_one_more_is_too_large() {
    // Foreign periods: 1024 pass the field rules, 1025 are refused as TooLarge.
    let kind = |n: usize| {
        EventKind::ForeignPeriodsReported(ForeignPeriodsReported {
            worker: common::worker("W-1"),
            country: common::ju("DE"),
            scheme: Scheme::Pension,
            periods: vec![
                ForeignPeriod {
                    from: common::month("2010-01"),
                    to: common::month("2010-12"),
                    kind: PeriodKind::Insurance,
                };
                n
            ],
        })
    };
    assert!(validate::check_kind(&kind(MAX_LIST_ITEMS), stamp()).is_ok());
    assert!(matches!(
        validate::check_kind(&kind(MAX_LIST_ITEMS + 1), stamp()),
        Err(Refusal::TooLarge(_))
    ));
}

#[test]
fn more_than_max_parameters_is_too_large() {
    // The parameter count is checked before the names: 257 parameters are TooLarge, 256 get as
    // far as the name check.
    let kind = |n: usize| {
        EventKind::ParametersPublished(ParametersPublished {
            jurisdiction: common::ju("CN-44"),
            effective: common::date("2025-01-01"),
            parameters: (0..n)
                .map(|i| (format!("p{i:03}"), serde_json::json!("1")))
                .collect::<BTreeMap<_, _>>(),
        })
    };
    assert!(matches!(
        validate::check_kind(&kind(MAX_PARAMETERS + 1), stamp()),
        Err(Refusal::TooLarge(_))
    ));
    assert!(matches!(
        validate::check_kind(&kind(MAX_PARAMETERS), stamp()),
        Err(Refusal::InvalidField(m)) if m.contains("unknown parameter")
    ));
}

#[test]
fn signed_at_may_be_exactly_max_signed_ahead_seconds_after_the_stamp() {
    // 300 s ahead passes; 300 s and one nanosecond does not.
    let body = |secs: i64, nanos: u32| EventBody {
        signed_at: Instant::new(stamp().unix_seconds() + secs, nanos, 0).unwrap(),
        kind: common::person_registered("W-1", "CN-44"),
    };
    assert_eq!(MAX_SIGNED_AHEAD_SECONDS, 300);
    assert!(validate::check_body(&body(300, 0), stamp()).is_ok());
    assert!(matches!(
        validate::check_body(&body(300, 1), stamp()),
        Err(Refusal::SignedInFuture { .. })
    ));
}

#[test]
fn the_first_contribution_month_is_1951_01() {
    // 1951-01 passes, 1950-12 is TooEarly.
    assert_eq!(FIRST_CONTRIBUTION_MONTH, (1951, 1));
    let kind = |m: &str| {
        common::declaration(
            "E1",
            "CN-44",
            m,
            vec![common::contribution_line("W-1", Scheme::Pension, 1)],
            false,
        )
    };
    assert!(validate::check_kind(&kind("1951-01"), stamp()).is_ok());
    assert!(matches!(
        validate::check_kind(&kind("1950-12"), stamp()),
        Err(Refusal::TooEarly(_))
    ));
}
