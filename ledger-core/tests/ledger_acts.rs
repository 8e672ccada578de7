//! Ledger acts in the state machine: the m-of-n rule with the genesis's two jurisdictions
//! (quorum 2), an agency rotating its own keys, and replays.

mod common;

use common::*;
use ledger_core::authority::Act;
use ledger_core::event::*;
use ledger_core::state::{self, Outcome};

fn act(a: &str, nonce: &str) -> EventKind {
    EventKind::LedgerAct(LedgerAct {
        act: Act::parse(a).expect("act"),
        nonce: nonce.into(),
    })
}

fn apply(store: &mut Mem, ev: &ledger_core::VerifiedEvent) -> Outcome {
    let applied = state::apply_entry(
        store,
        instant("2025-01-01T00:00:00Z"),
        std::slice::from_ref(ev),
    )
    .unwrap();
    store.commit(&applied.writes);
    applied.outcomes.into_iter().next().unwrap()
}

fn refusal(o: Outcome) -> ledger_core::Refusal {
    match o {
        Outcome::Refused(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn receipt(o: Outcome) -> state::Receipt {
    match o {
        Outcome::Appended(r) => r,
        other => panic!("expected a receipt, got {other:?}"),
    }
}

const AT: &str = "2024-12-31T00:00:00Z";

#[test]
fn one_agency_cannot_remove_a_node_and_two_can_once() {
    let mut store = Mem::from_genesis();
    let (a44, a33) = (key(AGENCY_44), key(AGENCY_33));
    let alone = signed(act("remove 3", "n-1"), instant(AT), &[&a44]);
    let r = refusal(apply(&mut store, &alone));
    assert_eq!(r.code(), "insufficient_authority", "{r}");
    assert_eq!(store.head().size, 0, "a refused act leaves nothing");

    let both = signed(act("remove 3", "n-1"), instant(AT), &[&a44, &a33]);
    let first = receipt(apply(&mut store, &both));
    assert!(!first.duplicate);
    // The same envelope again is the recorded act, not a new one.
    let again = receipt(apply(&mut store, &both));
    assert!(again.duplicate);
    assert_eq!(again.index, first.index);
    // Signed anew (another signed_at) with the same nonce and signers: the same content.
    let resigned = signed(
        act("remove 3", "n-1"),
        instant("2025-01-01T00:00:00Z"),
        &[&a44, &a33],
    );
    assert!(receipt(apply(&mut store, &resigned)).duplicate);
    // Another act under a used nonce is refused; a fresh nonce makes the act new.
    let other = signed(act("promote 4", "n-1"), instant(AT), &[&a44, &a33]);
    let r = refusal(apply(&mut store, &other));
    assert!(r.to_string().contains("already used"), "{r}");
    let fresh = signed(act("remove 3", "n-2"), instant(AT), &[&a44, &a33]);
    assert!(!receipt(apply(&mut store, &fresh)).duplicate);
    assert_eq!(store.head().size, 2);
}

#[test]
fn an_agency_rotates_its_own_keys_and_cannot_touch_anothers() {
    let mut store = Mem::from_genesis();
    let (a44, a33, new44) = (key(AGENCY_44), key(AGENCY_33), key(40));
    let register = format!("register-agency-key CN-44 {}", pk(&new44));
    receipt(apply(
        &mut store,
        &signed(act(&register, "r-1"), instant(AT), &[&a44]),
    ));
    // The new key is an agency key of CN-44: it revokes the old one alone.
    let revoke_old = format!("revoke-agency-key CN-44 {}", pk(&a44));
    receipt(apply(
        &mut store,
        &signed(act(&revoke_old, "r-2"), instant(AT), &[&new44]),
    ));
    // The revoked key no longer signs anything, acts included.
    let late = signed(act("promote 4", "r-3"), instant(AT), &[&a44, &a33]);
    assert_eq!(refusal(apply(&mut store, &late)).code(), "revoked_key");
    // CN-33 alone may not add a key to CN-44, nor revoke one.
    let intruder = key(41);
    let foreign = format!("register-agency-key CN-44 {}", pk(&intruder));
    let r = refusal(apply(
        &mut store,
        &signed(act(&foreign, "r-4"), instant(AT), &[&a33]),
    ));
    assert_eq!(r.code(), "insufficient_authority");
    let revoke_new = format!("revoke-agency-key CN-44 {}", pk(&new44));
    let r = refusal(apply(
        &mut store,
        &signed(act(&revoke_new, "r-5"), instant(AT), &[&a33]),
    ));
    assert_eq!(r.code(), "insufficient_authority");
    // A key act naming another jurisdiction's key is refused, even by the quorum.
    let wrong = format!("revoke-agency-key CN-33 {}", pk(&new44));
    let r = refusal(apply(
        &mut store,
        &signed(act(&wrong, "r-6"), instant(AT), &[&new44, &a33]),
    ));
    assert_eq!(r.code(), "wrong_jurisdiction");
    // A jurisdiction outside the genesis gets no agency key.
    let outsider = format!("register-agency-key FR {}", pk(&intruder));
    let r = refusal(apply(
        &mut store,
        &signed(act(&outsider, "r-7"), instant(AT), &[&new44, &a33]),
    ));
    assert_eq!(r.code(), "not_found");
}

/// A store from a genesis of three jurisdictions (CN-44, CN-33, DE; quorum 2 by default).
fn three_jurisdictions() -> Mem {
    let mut g = genesis();
    g.jurisdictions
        .push(ledger_core::genesis::GenesisJurisdiction {
            code: ju("DE"),
            agency_keys: vec![pk(&key(AGENCY_DE))],
        });
    let mut m = Mem::default();
    m.commit(&state::genesis_writes(&g));
    m
}

const AGENCY_DE: u8 = 3;

#[test]
fn a_lost_jurisdiction_is_restored_by_the_others() {
    let mut store = three_jurisdictions();
    let (a44, a33, de, new44) = (key(AGENCY_44), key(AGENCY_33), key(AGENCY_DE), key(42));
    // CN-44's only key is stolen: the others revoke it, without CN-44...
    let revoke = format!("revoke-agency-key CN-44 {}", pk(&a44));
    let r = refusal(apply(
        &mut store,
        &signed(act(&revoke, "l-1"), instant(AT), &[&a33]),
    ));
    assert_eq!(
        r.code(),
        "insufficient_authority",
        "one other is not 2 of 3"
    );
    receipt(apply(
        &mut store,
        &signed(act(&revoke, "l-1"), instant(AT), &[&a33, &de]),
    ));
    // ...the thief can no longer use it, not even for CN-44's own keys...
    let thief = key(43);
    let grab = format!("register-agency-key CN-44 {}", pk(&thief));
    let r = refusal(apply(
        &mut store,
        &signed(act(&grab, "l-2"), instant(AT), &[&a44]),
    ));
    assert_eq!(r.code(), "revoked_key");
    // ...and the others give CN-44 its new key, which then acts for CN-44.
    let restore = format!("register-agency-key CN-44 {}", pk(&new44));
    receipt(apply(
        &mut store,
        &signed(act(&restore, "l-3"), instant(AT), &[&a33, &de]),
    ));
    let person = EventKind::PersonRegistered(PersonRegistered {
        worker: worker("W-R1"),
        jurisdiction: ju("CN-44"),
        sex: Sex::Male,
        birth_date: date("1980-01-01"),
        female_category: None,
        nationality: ju("CN"),
        hukou: None,
    });
    receipt(apply(&mut store, &signed(person, instant(AT), &[&new44])));
}

#[test]
fn ledger_acts_cannot_be_corrected_and_are_only_signed_by_agencies() {
    let mut store = Mem::from_genesis();
    let (a44, a33) = (key(AGENCY_44), key(AGENCY_33));
    let rec = receipt(apply(
        &mut store,
        &signed(act("promote 4", "c-1"), instant(AT), &[&a44, &a33]),
    ));
    let correction = EventKind::Correction(Correction {
        target: rec.event_id,
        line: None,
        action: CorrectionAction::Void,
        replacement: None,
        reason: "undo".into(),
    });
    let r = refusal(apply(&mut store, &signed(correction, instant(AT), &[&a44])));
    assert!(r.to_string().contains("cannot be corrected"), "{r}");
    let employer_key = key(50);
    receipt(apply(
        &mut store,
        &signed(
            key_registered("CN-44", Role::Employer, "91440300MA5G2X7U8K", &employer_key),
            instant(AT),
            &[&a44],
        ),
    ));
    let r = refusal(apply(
        &mut store,
        &signed(act("promote 5", "c-2"), instant(AT), &[&a44, &employer_key]),
    ));
    assert_eq!(r.code(), "wrong_role");
}

#[test]
fn a_store_without_an_authority_record_derives_it_from_the_genesis_keys() {
    let mut store = Mem::from_genesis();
    let written = ledger_core::authority::Authority::read(&store).unwrap();
    store.0.remove(ledger_core::schema::AUTHORITY);
    assert_eq!(
        ledger_core::authority::Authority::read(&store).unwrap(),
        written
    );
}
