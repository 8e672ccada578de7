//! Each named limit at its boundary: the limit itself is accepted, one past it refused.

use ledger_core::event::{ContributionLine, ContributionsDeclared, EventBody, EventKind, Salt};
use ledger_core::ids::{EmployerId, WorkerId, MAX_ID_BYTES};
use ledger_core::limits::{MAX_BATCH_LINES, MAX_BODY_BYTES, MAX_SIGNATURES};
use ledger_core::money::Money;
use ledger_core::refusal::Refusal;
use ledger_core::time::Instant;
use ledger_core::{wire, Envelope};

fn batch(lines: usize) -> EventBody {
    let line = ContributionLine {
        salt: Salt::default(),
        worker: WorkerId::new("W").unwrap(),
        scheme: ledger_core::event::Scheme::Pension,
        base: Money::from_minor(1),
        employer_amount: Money::ZERO,
        employee_amount: Money::ZERO,
    };
    EventBody {
        signed_at: Instant::from_unix_utc(1_700_000_000, 0).unwrap(),
        kind: EventKind::ContributionsDeclared(ContributionsDeclared {
            employer: EmployerId::new("E").unwrap(),
            jurisdiction: "CN-44".parse().unwrap(),
            period: "2024-01".parse().unwrap(),
            lines: vec![line; lines],
            back_pay: false,
        }),
    }
}

#[test]
fn batch_line_limit() {
    let ok = wire::encode_body(&batch(MAX_BATCH_LINES));
    assert!(wire::decode_event(&ok.body, &ok.lines).is_ok());
    let over = wire::encode_body(&batch(MAX_BATCH_LINES + 1));
    assert!(matches!(
        wire::decode_event(&over.body, &over.lines),
        Err(Refusal::TooLarge(_))
    ));
}

#[test]
fn id_length_limit() {
    assert!(WorkerId::new("W".repeat(MAX_ID_BYTES)).is_ok());
    let err = WorkerId::new("W".repeat(MAX_ID_BYTES + 1)).unwrap_err();
    assert!(err.to_string().contains("65 bytes"), "{err}");
    // Multi-byte characters count in bytes: 22 three-byte characters are 66 bytes.
    assert!(WorkerId::new("工".repeat(22)).is_err());
}

#[test]
fn body_size_limit() {
    let mut body = wire::encode_body(&batch(1)).body;
    body.resize(MAX_BODY_BYTES + 1, 0);
    assert!(matches!(
        wire::decode_event(&body, &[]),
        Err(Refusal::TooLarge(_))
    ));
}

#[test]
fn signature_count_limit() {
    let keys: Vec<ed25519_dalek::SigningKey> = (0..=MAX_SIGNATURES as u8)
        .map(|i| ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32]))
        .collect();
    let refs: Vec<&ed25519_dalek::SigningKey> = keys.iter().collect();
    assert!(Envelope::sign(&batch(1), &refs[..MAX_SIGNATURES])
        .open()
        .is_ok());
    assert!(matches!(
        Envelope::sign(&batch(1), &refs).open(),
        Err(Refusal::TooLarge(_))
    ));
}
