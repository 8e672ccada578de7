//! The state machine on an in-memory state: determinism, idempotency, corrections, and that a
//! refused event leaves no trace.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use ledger_core::envelope::{Envelope, VerifiedEvent};
use ledger_core::event::{parse_json_event, EventBody, PublicKeyBytes};
use ledger_core::genesis::{Genesis, GenesisJurisdiction};
use ledger_core::state::{self, keys, Outcome, StateRead, StoreFault, Writes};
use ledger_core::time::Instant;

#[derive(Default, Clone, PartialEq, Eq, Debug)]
struct Mem(BTreeMap<Vec<u8>, Vec<u8>>);

impl StateRead for Mem {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault> {
        Ok(self.0.get(key).cloned())
    }
}

impl Mem {
    fn commit(&mut self, w: &Writes) {
        for (k, v) in w {
            match v {
                Some(v) => self.0.insert(k.clone(), v.clone()),
                None => self.0.remove(k),
            };
        }
    }
}

struct World {
    state: Mem,
    agency: SigningKey,
    employer: SigningKey,
    stamp: Instant,
    /// Makes each generated declaration a distinct event (signed a second earlier than the last).
    nonce: std::cell::Cell<i64>,
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn genesis() -> Genesis {
    Genesis {
        ledger: "pcl-test".into(),
        jurisdictions: vec![
            GenesisJurisdiction {
                code: "CN-44".parse().unwrap(),
                agency_keys: vec![PublicKeyBytes(key(1).verifying_key().to_bytes())],
            },
            GenesisJurisdiction {
                code: "CN-33".parse().unwrap(),
                agency_keys: vec![PublicKeyBytes(key(2).verifying_key().to_bytes())],
            },
        ],
    }
}

fn event(json: &str, signers: &[&SigningKey], signed_at: Instant) -> VerifiedEvent {
    let (kind, _) = parse_json_event(json).unwrap();
    Envelope::sign(&EventBody { signed_at, kind }, signers)
        .open()
        .unwrap()
}

impl World {
    fn new() -> World {
        let mut state = Mem::default();
        state.commit(&state::genesis_writes(&genesis()));
        let mut w = World {
            state,
            agency: key(1),
            employer: key(3),
            stamp: "2024-06-01T00:00:00Z".parse().unwrap(),
            nonce: Default::default(),
        };
        let reg = format!(
            r#"{{"type":"key_registered","jurisdiction":"CN-44","role":"employer","subject":"E1","public_key":"{}"}}"#,
            hex::encode(w.employer.verifying_key().to_bytes())
        );
        let person = r#"{"type":"person_registered","worker":"W-1","jurisdiction":"CN-44","sex":"M","birth_date":"1980-01-01","nationality":"CN"}"#;
        let (a, s) = (w.agency.clone(), w.stamp);
        let out = w.apply(vec![event(&reg, &[&a], s), event(person, &[&a], s)]);
        assert!(
            out.iter().all(|o| matches!(o, Outcome::Appended(_))),
            "{out:?}"
        );
        w
    }

    fn apply(&mut self, events: Vec<VerifiedEvent>) -> Vec<Outcome> {
        let applied = state::apply_entry(&self.state, self.stamp, &events).unwrap();
        self.state.commit(&applied.writes);
        applied.outcomes
    }

    fn declaration(&self, period: &str, back_pay: bool) -> VerifiedEvent {
        let bp = if back_pay { r#","back_pay":true"# } else { "" };
        let json = format!(
            r#"{{"type":"contributions_declared","employer":"E1","jurisdiction":"CN-44","period":"{period}","lines":[{{"worker":"W-1","scheme":"pension","base":"5000.00","employer_amount":"800.00","employee_amount":"400.00"}}]{bp}}}"#
        );
        self.nonce.set(self.nonce.get() + 1);
        event(
            &json,
            &[&self.employer],
            self.stamp.plus_seconds(-self.nonce.get()),
        )
    }

    fn size(&self) -> u64 {
        state::read_head(&self.state).unwrap().size
    }
}

fn refusal(o: &Outcome) -> &'static str {
    match o {
        Outcome::Refused(r) => r.code(),
        Outcome::Appended(_) => "appended",
    }
}

#[test]
fn the_same_entries_give_byte_identical_state() {
    // Two fresh state machines fed the same entries end with the same bytes.
    let run = || {
        let mut w = World::new();
        for m in 1..=5 {
            let d = w.declaration(&format!("2024-0{m}"), false);
            w.apply(vec![d.clone(), d]);
        }
        w.state
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert!(a.0.keys().any(|k| k[0] == keys::EVENT));
}

#[test]
fn a_known_event_returns_its_first_receipt() {
    // Idempotency within one entry and across entries.
    let mut w = World::new();
    let d = w.declaration("2024-01", false);
    let out = w.apply(vec![d.clone(), d.clone()]);
    let (Outcome::Appended(first), Outcome::Appended(again)) = (&out[0], &out[1]) else {
        panic!("{out:?}")
    };
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(first.index, again.index);
    let size = w.size();
    w.stamp = w.stamp.plus_seconds(60);
    let out = w.apply(vec![d]);
    let Outcome::Appended(later) = &out[0] else {
        panic!()
    };
    assert!(later.duplicate);
    assert_eq!(
        (later.index, later.appended_at),
        (first.index, first.appended_at)
    );
    assert_eq!(w.size(), size);
}

#[test]
fn a_refused_event_leaves_no_trace_and_later_events_still_apply() {
    let mut w = World::new();
    let before = w.state.clone();
    let stranger = key(9);
    let bad = event(
        r#"{"type":"contributions_declared","employer":"E1","jurisdiction":"CN-44","period":"2024-01","lines":[{"worker":"W-1","scheme":"pension","base":"1.00","employer_amount":"1.00","employee_amount":"1.00"}]}"#,
        &[&stranger],
        w.stamp,
    );
    let out = w.apply(vec![bad]);
    assert_eq!(refusal(&out[0]), "unknown_key");
    // Only the head record is rewritten (same value): no event, index or state key appears.
    assert_eq!(w.state, before);
    let good = w.declaration("2024-01", false);
    let out = w.apply(vec![good]);
    assert_eq!(refusal(&out[0]), "appended");
}

#[test]
fn voiding_a_declaration_allows_declaring_the_month_again() {
    let mut w = World::new();
    let d = w.declaration("2024-01", false);
    let id = d.id;
    assert_eq!(refusal(&w.apply(vec![d])[0]), "appended");
    assert_eq!(
        refusal(&w.apply(vec![w.declaration("2024-01", false)])[0]),
        "duplicate_declaration"
    );
    assert_eq!(
        refusal(&w.apply(vec![w.declaration("2024-01", true)])[0]),
        "appended",
        "back pay is not a duplicate"
    );
    let void = format!(
        r#"{{"type":"correction","target":"{id}","action":"void","reason":"wrong month"}}"#
    );
    let (emp, s) = (w.employer.clone(), w.stamp);
    assert_eq!(
        refusal(&w.apply(vec![event(&void, &[&emp], s)])[0]),
        "appended"
    );
    // Voiding again, or correcting a voided event, is refused.
    let again =
        format!(r#"{{"type":"correction","target":"{id}","action":"void","reason":"again"}}"#);
    assert_eq!(
        refusal(&w.apply(vec![event(&again, &[&emp], s)])[0]),
        "already_voided"
    );
    assert_eq!(
        refusal(&w.apply(vec![w.declaration("2024-01", false)])[0]),
        "appended"
    );
    // A correction of an event that does not exist.
    let missing = format!(
        r#"{{"type":"correction","target":"{}","action":"void","reason":"?"}}"#,
        "ab".repeat(32)
    );
    assert_eq!(
        refusal(&w.apply(vec![event(&missing, &[&emp], s)])[0]),
        "not_found"
    );
    // Another employer's key cannot correct it; the CN-33 agency is not its jurisdiction's.
    let other = key(2);
    let d2 = w.declaration("2024-02", false);
    let id2 = d2.id;
    w.apply(vec![d2]);
    let void2 = format!(r#"{{"type":"correction","target":"{id2}","action":"void","reason":"x"}}"#);
    assert_eq!(
        refusal(&w.apply(vec![event(&void2, &[&other], s)])[0]),
        "wrong_role"
    );
    let a = w.agency.clone();
    assert_eq!(
        refusal(&w.apply(vec![event(&void2, &[&a], s)])[0]),
        "appended",
        "the home agency may correct"
    );
}

#[test]
fn stamp_bounds_periods_and_signed_at() {
    let mut w = World::new();
    assert_eq!(
        refusal(&w.apply(vec![w.declaration("2024-07", false)])[0]),
        "in_future"
    );
    assert_eq!(
        refusal(&w.apply(vec![w.declaration("1950-12", false)])[0]),
        "too_early"
    );
    assert_eq!(
        refusal(&w.apply(vec![w.declaration("2024-06", false)])[0]),
        "appended",
        "the stamp's own month"
    );
    let ahead = w.stamp.plus_seconds(301);
    let (kind, _) = parse_json_event(
        r#"{"type":"hukou_changed","worker":"W-1","hukou":"CN-51","effective":"2024-01-01"}"#,
    )
    .unwrap();
    let e = Envelope::sign(
        &EventBody {
            signed_at: ahead,
            kind: kind.clone(),
        },
        &[&w.agency],
    )
    .open()
    .unwrap();
    assert_eq!(refusal(&w.apply(vec![e])[0]), "signed_in_future");
    let e = Envelope::sign(
        &EventBody {
            signed_at: w.stamp.plus_seconds(300),
            kind,
        },
        &[&w.agency],
    )
    .open()
    .unwrap();
    assert_eq!(
        refusal(&w.apply(vec![e])[0]),
        "appended",
        "exactly five minutes ahead is allowed"
    );
}

#[test]
fn keys_are_checked_at_apply_time() {
    let mut w = World::new();
    let s = w.stamp;
    let a = w.agency.clone();
    // An agency key cannot be registered by event; a weak key is refused.
    let agency_role = format!(
        r#"{{"type":"key_registered","jurisdiction":"CN-44","role":"agency","subject":"X","public_key":"{}"}}"#,
        hex::encode(key(7).verifying_key().to_bytes())
    );
    assert_eq!(
        refusal(&w.apply(vec![event(&agency_role, &[&a], s)])[0]),
        "wrong_role"
    );
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = format!(
        r#"{{"type":"key_registered","jurisdiction":"CN-44","role":"worker","subject":"W-1","public_key":"{}"}}"#,
        hex::encode(identity)
    );
    assert_eq!(
        refusal(&w.apply(vec![event(&weak, &[&a], s)])[0]),
        "weak_key"
    );
    // Revocation in the same entry takes effect for the events after it.
    let revoke = format!(
        r#"{{"type":"key_revoked","public_key":"{}","reason":"lost"}}"#,
        hex::encode(w.employer.verifying_key().to_bytes())
    );
    let out = w.apply(vec![
        event(&revoke, &[&a], s),
        w.declaration("2024-01", false),
    ]);
    assert_eq!(
        (refusal(&out[0]), refusal(&out[1])),
        ("appended", "revoked_key")
    );
}
