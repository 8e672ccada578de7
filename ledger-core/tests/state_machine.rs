//! The state machine (`state::apply_entry`) on an in-memory store created from a genesis with the
//! agencies of CN-44 and CN-33: receipts, every refusal reason the catalogue names, idempotency,
//! corrections, and determinism. Every refusal is also checked to leave no trace: the head is
//! unchanged, the only write is the unchanged head, and the event's id is not indexed.

mod common;

use std::cell::Cell;
use std::collections::BTreeMap;

use common::*;
use ed25519_dalek::SigningKey;
use ledger_core::envelope::VerifiedEvent;
use ledger_core::event::*;
use ledger_core::ids::OrderId;
use ledger_core::kv;
use ledger_core::money::Money;
use ledger_core::records;
use ledger_core::records::{chain_next, StoredRecord};
use ledger_core::refusal::Refusal;
use ledger_core::schema as keys;
use ledger_core::state::{self, Applied, Outcome, Receipt};
use ledger_core::time::Instant;
use proptest::prelude::*;

/// Seeds of the keys registered by [`World::new`].
const EMPLOYER_44: u8 = 3; // employer E1 in CN-44
const EMPLOYER_33: u8 = 4; // employer E1 in CN-33
const WORKER_44: u8 = 5; // worker W-1 in CN-44
const PLATFORM_44: u8 = 6; // platform P1 in CN-44

const STAMP: &str = "2024-06-15T08:00:00Z";

struct World {
    store: Mem,
    stamp: Instant,
    /// Each event is signed a second earlier than the last, so equal kinds are distinct events.
    nonce: Cell<i64>,
    /// Each generated line gets a fresh salt, so equal declarations are distinct events.
    salt: Cell<u8>,
}

impl World {
    /// A store fresh from the genesis, nothing appended.
    fn bare() -> World {
        World {
            store: Mem::from_genesis(),
            stamp: instant(STAMP),
            nonce: Cell::new(0),
            salt: Cell::new(0),
        }
    }

    /// A store with employer, worker and platform keys and two persons (W-1, W-2) registered.
    fn new() -> World {
        let w = World::bare();
        let (a44, a33) = (key(AGENCY_44), key(AGENCY_33));
        let setup = vec![
            w.ev(
                key_registered("CN-44", Role::Employer, "E1", &key(EMPLOYER_44)),
                &[&a44],
            ),
            w.ev(
                key_registered("CN-33", Role::Employer, "E1", &key(EMPLOYER_33)),
                &[&a33],
            ),
            w.ev(
                key_registered("CN-44", Role::Worker, "W-1", &key(WORKER_44)),
                &[&a44],
            ),
            w.ev(
                key_registered("CN-44", Role::Platform, "P1", &key(PLATFORM_44)),
                &[&a44],
            ),
            w.ev(person_registered("W-1", "CN-44"), &[&a44]),
            w.ev(person_registered("W-2", "CN-44"), &[&a44]),
        ];
        let mut w = w;
        let applied = w.apply(&setup);
        assert!(
            applied
                .outcomes
                .iter()
                .all(|o| matches!(o, Outcome::Appended(r) if !r.duplicate)),
            "{:?}",
            applied.outcomes
        );
        assert_eq!(w.store.head().size, 6);
        w
    }

    fn ev(&self, kind: EventKind, signers: &[&SigningKey]) -> VerifiedEvent {
        self.nonce.set(self.nonce.get() + 1);
        signed(kind, self.stamp.plus_seconds(-self.nonce.get()), signers)
    }

    fn lines(&self, spec: &[(&str, Scheme)]) -> Vec<ContributionLine> {
        spec.iter()
            .map(|(w, s)| {
                self.salt.set(self.salt.get().wrapping_add(1));
                contribution_line(w, *s, self.salt.get())
            })
            .collect()
    }

    fn decl(&self, emp: &str, j: &str, period: &str, spec: &[(&str, Scheme)]) -> EventKind {
        declaration(emp, j, period, self.lines(spec), false)
    }

    fn apply(&mut self, events: &[VerifiedEvent]) -> Applied {
        let applied = state::apply_entry(&self.store, self.stamp, events).unwrap();
        self.store.commit(&applied.writes);
        applied
    }

    /// Applies one event that must be appended as new; returns its receipt.
    fn appended(&mut self, ev: VerifiedEvent) -> Receipt {
        // The edge's check never refuses what apply appends.
        assert_eq!(state::precheck(&self.store, &ev).unwrap(), Ok(()));
        let before = self.store.head();
        let applied = self.apply(std::slice::from_ref(&ev));
        match &applied.outcomes[..] {
            [Outcome::Appended(r)] if !r.duplicate => {
                assert_eq!(r.index, before.size + 1);
                assert_eq!(r.event_id, ev.id);
                assert_eq!(applied.head.size, r.index);
                r.clone()
            }
            other => panic!("expected a new receipt, got {other:?}"),
        }
    }

    /// Applies one event that must be refused, checks that it left no trace, returns the reason.
    fn refused(&mut self, ev: VerifiedEvent) -> Refusal {
        let before = self.store.clone();
        let head = self.store.head();
        let applied =
            state::apply_entry(&self.store, self.stamp, std::slice::from_ref(&ev)).unwrap();
        let refusal = match &applied.outcomes[..] {
            [Outcome::Refused(r)] => r.clone(),
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(applied.head, head, "{refusal:?}: the head moved");
        let mut only_head = kv::Writes::new();
        only_head.insert(keys::HEAD.to_vec(), Some(head.encode()));
        assert_eq!(
            applied.writes, only_head,
            "{refusal:?}: something was written"
        );
        self.store.commit(&applied.writes);
        assert_eq!(self.store, before);
        assert!(!self.store.0.contains_key(&keys::event_id(&ev.id)));
        // What the edge refuses before consensus, it refuses exactly as apply does.
        if let Err(at_edge) = state::precheck(&self.store, &ev).unwrap() {
            assert_eq!(at_edge, refusal, "the edge and apply disagree");
        }
        refusal
    }
}

/// Applies `$ev`, which must be refused with a reason matching `$pat` whose code is `$code`,
/// leaving no trace.
macro_rules! assert_refused {
    ($w:expr, $ev:expr, $pat:pat, $code:literal) => {{
        let r = $w.refused($ev);
        assert!(matches!(r, $pat), "expected {}, got {r:?}", $code);
        assert_eq!(r.code(), $code);
        r
    }};
}

#[test]
fn valid_flow_appends_in_order_and_extends_the_chain() {
    // Agency registers an employer key, then a person; the employer declares: indices 1, 2, 3,
    // each link of the chain commits to the previous link, index, id and stamp.
    let mut w = World::bare();
    let a44 = key(AGENCY_44);
    let emp = key(EMPLOYER_44);
    let genesis_head = w.store.head();
    assert_eq!(genesis_head, records::Head::default());

    let events = [
        w.ev(key_registered("CN-44", Role::Employer, "E1", &emp), &[&a44]),
        w.ev(person_registered("W-1", "CN-44"), &[&a44]),
        w.ev(
            w.decl(
                "E1",
                "CN-44",
                "2024-05",
                &[("W-1", Scheme::Pension), ("W-1", Scheme::Medical)],
            ),
            &[&emp],
        ),
    ];
    let mut prev = genesis_head;
    for (i, ev) in events.into_iter().enumerate() {
        w.stamp = instant(STAMP).plus_seconds(60 * i as i64);
        let id = ev.id;
        let r = w.appended(ev.clone());
        assert_eq!(r.index, i as u64 + 1);
        assert_eq!(r.appended_at, w.stamp);
        let head = w.store.head();
        assert_eq!(head.size, r.index);
        assert_ne!(head.chain, prev.chain, "the chain head changes");
        assert_eq!(head.chain, chain_next(&prev.chain, r.index, &id, w.stamp));
        // The stored record keeps the author's envelope and the link.
        let rec = StoredRecord::decode(&w.store.0[&keys::event(r.index)]).unwrap();
        assert_eq!(
            (rec.index, rec.event_id, rec.chain, rec.stamp),
            (r.index, id, head.chain, w.stamp)
        );
        assert_eq!(rec.envelope, ev.envelope);
        assert_eq!(
            w.store.0[&keys::event_id(&id)],
            r.index.to_be_bytes().to_vec()
        );
        prev = head;
    }
    // The key record, the person, the worker index (with line positions) and the guard.
    let k: records::KeyRecord = serde_json::from_slice(&w.store.0[&keys::key(&pk(&emp))]).unwrap();
    assert_eq!(
        (k.role, k.subject.as_str(), k.registered_at, k.revoked_at),
        (Role::Employer, "E1", 1, None)
    );
    assert!(w.store.0.contains_key(&[b"pW-1".as_slice()].concat()));
    let entry =
        |i| ledger_core::fact::WorkerEntry::decode(&w.store.0[&keys::worker("W-1", i)]).unwrap();
    assert!(entry(2).positions.is_empty());
    assert_eq!(entry(3).positions, vec![0, 1]);
    assert_eq!(
        entry(3).facts.len(),
        2,
        "the entry holds the worker's facts"
    );
    let guard = keys::joined(
        keys::DECLARATION,
        &["E1", "W-1", "CN-44", "2024-05", "pension"],
    );
    assert_eq!(w.store.0[&guard], 3u64.to_be_bytes().to_vec());
}

#[test]
fn refused_events_in_an_entry_do_not_disturb_their_neighbours() {
    // [good, refused, good] in one entry: the good ones take consecutive indices.
    let mut w = World::new();
    let emp = key(EMPLOYER_44);
    let good1 = w.ev(
        w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
        &[&emp],
    );
    let bad = w.ev(
        w.decl("E1", "CN-44", "2024-01", &[("W-9", Scheme::Pension)]),
        &[&emp],
    );
    let good2 = w.ev(
        w.decl("E1", "CN-44", "2024-02", &[("W-1", Scheme::Pension)]),
        &[&emp],
    );
    let bad_id = bad.id;
    let applied = w.apply(&[good1, bad, good2]);
    match &applied.outcomes[..] {
        [Outcome::Appended(a), Outcome::Refused(Refusal::UnregisteredWorker(_)), Outcome::Appended(b)] =>
        {
            assert_eq!((a.index, b.index), (7, 8));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(applied.head.size, 8);
    assert!(!w.store.0.contains_key(&keys::event_id(&bad_id)));
}

#[test]
fn the_edge_refuses_unknown_keys_and_wrong_roles_as_apply_does() {
    // `precheck` (what a node runs before consensus) refuses from the keys alone, with apply's
    // codes; state it does not read (persons, duplicates) is left to apply.
    let w = World::new();
    let stranger = key(99);
    let unknown = w.ev(
        w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
        &[&stranger],
    );
    let r = state::precheck(&w.store, &unknown).unwrap().unwrap_err();
    assert_eq!(r.code(), "unknown_key");
    let wrong_role = w.ev(person_registered("W-9", "CN-44"), &[&key(EMPLOYER_44)]);
    let r = state::precheck(&w.store, &wrong_role).unwrap().unwrap_err();
    assert_eq!(r.code(), "wrong_role");
    let wrong_place = w.ev(person_registered("W-9", "CN-33"), &[&key(AGENCY_44)]);
    let r = state::precheck(&w.store, &wrong_place)
        .unwrap()
        .unwrap_err();
    assert_eq!(r.code(), "wrong_jurisdiction");
    let unregistered_worker = w.ev(
        w.decl("E1", "CN-44", "2024-01", &[("W-404", Scheme::Pension)]),
        &[&key(EMPLOYER_44)],
    );
    assert_eq!(
        state::precheck(&w.store, &unregistered_worker).unwrap(),
        Ok(())
    );
}

#[test]
fn an_unknown_key_is_refused() {
    // A key no agency registered cannot sign.
    let mut w = World::new();
    let stranger = key(99);
    let r = assert_refused!(
        w,
        w.ev(
            w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
            &[&stranger]
        ),
        Refusal::UnknownKey(_),
        "unknown_key"
    );
    assert_eq!(r, Refusal::UnknownKey(pk(&stranger).to_hex()));
    // One unknown co-signer is enough to refuse.
    assert_refused!(
        w,
        w.ev(
            w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
            &[&key(EMPLOYER_44), &stranger]
        ),
        Refusal::UnknownKey(_),
        "unknown_key"
    );
}

#[test]
fn a_revoked_key_is_refused() {
    // Register, revoke, then sign: refused; revoking twice is refused too.
    let mut w = World::new();
    let a44 = key(AGENCY_44);
    let k = key(10);
    w.appended(w.ev(key_registered("CN-44", Role::Employer, "E2", &k), &[&a44]));
    w.appended(w.ev(
        w.decl("E2", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
        &[&k],
    ));
    let revocation = w.appended(w.ev(key_revoked(&k), &[&a44]));
    let rec: records::KeyRecord = serde_json::from_slice(&w.store.0[&keys::key(&pk(&k))]).unwrap();
    assert_eq!(rec.revoked_at, Some(revocation.index));
    let r = assert_refused!(
        w,
        w.ev(
            w.decl("E2", "CN-44", "2024-02", &[("W-1", Scheme::Pension)]),
            &[&k]
        ),
        Refusal::RevokedKey(_),
        "revoked_key"
    );
    assert_eq!(r, Refusal::RevokedKey(pk(&k).to_hex()));
    // The same revocation signed again is the recorded one (a retry); another one is refused.
    let again = w.apply(&[w.ev(key_revoked(&k), &[&a44])]);
    assert!(
        matches!(&again.outcomes[..], [Outcome::Appended(r)] if r.duplicate && r.event_id == revocation.event_id),
        "{:?}",
        again.outcomes
    );
    let mut other = key_revoked(&k);
    if let EventKind::KeyRevoked(r) = &mut other {
        r.reason = "key stolen".into();
    }
    assert_refused!(
        w,
        w.ev(other, &[&a44]),
        Refusal::AlreadyVoided(_),
        "already_voided"
    );
    // Only the agency of the key's jurisdiction may revoke it.
    assert_refused!(
        w,
        w.ev(key_revoked(&key(EMPLOYER_44)), &[&key(AGENCY_33)]),
        Refusal::WrongJurisdiction(_),
        "wrong_jurisdiction"
    );
}

#[test]
fn a_revocation_takes_effect_within_its_entry() {
    // Events after the revocation in the same entry see it.
    let mut w = World::new();
    let emp = key(EMPLOYER_44);
    let revoke = w.ev(key_revoked(&emp), &[&key(AGENCY_44)]);
    let decl = w.ev(
        w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
        &[&emp],
    );
    let applied = w.apply(&[revoke, decl]);
    assert!(matches!(
        &applied.outcomes[..],
        [
            Outcome::Appended(_),
            Outcome::Refused(Refusal::RevokedKey(_))
        ]
    ));
    assert_eq!(applied.head.size, 7);
}

#[test]
fn a_key_of_the_wrong_role_is_refused() {
    // A worker key cannot declare contributions, an employer key cannot register persons, and
    // an employer key cannot sign platform orders.
    let mut w = World::new();
    assert_refused!(
        w,
        w.ev(
            w.decl("W-1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
            &[&key(WORKER_44)]
        ),
        Refusal::WrongRole(_),
        "wrong_role"
    );
    assert_refused!(
        w,
        w.ev(person_registered("W-3", "CN-44"), &[&key(EMPLOYER_44)]),
        Refusal::WrongRole(_),
        "wrong_role"
    );
    let orders = platform_orders("E1", "2024-06-14T10:00:00Z", "2024-06-14T10:30:00Z");
    assert_refused!(
        w,
        w.ev(orders, &[&key(EMPLOYER_44)]),
        Refusal::WrongRole(_),
        "wrong_role"
    );
    // The same orders signed by the platform for itself are appended.
    let orders = platform_orders("P1", "2024-06-14T10:00:00Z", "2024-06-14T10:30:00Z");
    w.appended(w.ev(orders, &[&key(PLATFORM_44)]));
}

#[test]
fn a_key_of_another_jurisdiction_is_refused() {
    // E1's CN-33 key cannot declare E1's CN-44 contributions; the CN-33 agency cannot register
    // a key or a person for CN-44.
    let mut w = World::new();
    let a33 = key(AGENCY_33);
    assert_refused!(
        w,
        w.ev(
            w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
            &[&key(EMPLOYER_33)]
        ),
        Refusal::WrongJurisdiction(_),
        "wrong_jurisdiction"
    );
    assert_refused!(
        w,
        w.ev(
            key_registered("CN-44", Role::Employer, "E7", &key(11)),
            &[&a33]
        ),
        Refusal::WrongJurisdiction(_),
        "wrong_jurisdiction"
    );
    assert_refused!(
        w,
        w.ev(person_registered("W-3", "CN-44"), &[&a33]),
        Refusal::WrongJurisdiction(_),
        "wrong_jurisdiction"
    );
    // The CN-33 key declares for CN-33.
    w.appended(w.ev(
        w.decl("E1", "CN-33", "2024-01", &[("W-1", Scheme::Pension)]),
        &[&key(EMPLOYER_33)],
    ));
}

#[test]
fn a_key_of_another_subject_is_refused() {
    // E1's key cannot declare for E2; W-1's worker key cannot pay W-2's flexible contribution.
    let mut w = World::new();
    assert_refused!(
        w,
        w.ev(
            w.decl("E2", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
            &[&key(EMPLOYER_44)]
        ),
        Refusal::WrongSubject(_),
        "wrong_subject"
    );
    assert_refused!(
        w,
        w.ev(flexible("W-2", "2024-01", "100.00"), &[&key(WORKER_44)]),
        Refusal::WrongSubject(_),
        "wrong_subject"
    );
    w.appended(w.ev(flexible("W-1", "2024-01", "100.00"), &[&key(WORKER_44)]));
}

#[test]
fn a_line_for_an_unregistered_worker_refuses_the_whole_declaration() {
    // A worker without person_registered: refused, and the registered worker's line of the
    // same declaration takes no guard.
    let mut w = World::new();
    let emp = key(EMPLOYER_44);
    let r = assert_refused!(
        w,
        w.ev(
            w.decl(
                "E1",
                "CN-44",
                "2024-01",
                &[("W-1", Scheme::Pension), ("W-404", Scheme::Pension)]
            ),
            &[&emp]
        ),
        Refusal::UnregisteredWorker(_),
        "unregistered_worker"
    );
    assert!(r.to_string().contains("W-404"), "{r}");
    // W-1's month is still free.
    w.appended(w.ev(
        w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
        &[&emp],
    ));
}

#[test]
fn duplicate_declarations_back_pay_and_void() {
    // Same (employer, worker, jurisdiction, period, scheme) twice is refused; back pay is
    // accepted; after voiding the first, a new declaration is accepted.
    let mut w = World::new();
    let emp = key(EMPLOYER_44);
    let d1 = w.appended(w.ev(
        w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
        &[&emp],
    ));
    assert_refused!(
        w,
        w.ev(
            other_amounts(w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)])),
            &[&emp]
        ),
        Refusal::DuplicateDeclaration(_),
        "duplicate_declaration"
    );
    // Another scheme, month, worker or jurisdiction is another declaration.
    w.appended(w.ev(
        w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Medical)]),
        &[&emp],
    ));
    w.appended(w.ev(
        w.decl("E1", "CN-44", "2024-02", &[("W-1", Scheme::Pension)]),
        &[&emp],
    ));
    w.appended(w.ev(
        w.decl("E1", "CN-44", "2024-01", &[("W-2", Scheme::Pension)]),
        &[&emp],
    ));
    w.appended(w.ev(
        w.decl("E1", "CN-33", "2024-01", &[("W-1", Scheme::Pension)]),
        &[&key(EMPLOYER_33)],
    ));
    // Back pay for the same month.
    let back_pay = declaration(
        "E1",
        "CN-44",
        "2024-01",
        w.lines(&[("W-1", Scheme::Pension)]),
        true,
    );
    w.appended(w.ev(back_pay, &[&emp]));
    // Void the first; the month is free again, once.
    w.appended(w.ev(void(d1.event_id, None), &[&emp]));
    w.appended(w.ev(
        w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
        &[&emp],
    ));
    assert_refused!(
        w,
        w.ev(
            other_amounts(w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)])),
            &[&emp]
        ),
        Refusal::DuplicateDeclaration(_),
        "duplicate_declaration"
    );
}

#[test]
fn voiding_a_back_pay_declaration_keeps_the_original_month_guarded() {
    // Regression: voiding the back pay used to free the month although the original
    // declaration was still live, so a second regular declaration was accepted.
    let mut w = World::new();
    let emp = key(EMPLOYER_44);
    w.appended(w.ev(
        w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
        &[&emp],
    ));
    let back_pay = declaration(
        "E1",
        "CN-44",
        "2024-01",
        w.lines(&[("W-1", Scheme::Pension)]),
        true,
    );
    let bp = w.appended(w.ev(back_pay, &[&emp]));
    w.appended(w.ev(void(bp.event_id, None), &[&emp]));
    assert_refused!(
        w,
        w.ev(
            other_amounts(w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)])),
            &[&emp]
        ),
        Refusal::DuplicateDeclaration(_),
        "duplicate_declaration"
    );
}

#[test]
fn voiding_lines_frees_only_their_own_months() {
    // A voided line frees its (worker, scheme) only; voiding the rest of that old declaration
    // later does not free the month its successor now holds.
    let mut w = World::new();
    let emp = key(EMPLOYER_44);
    let d = w.appended(w.ev(
        w.decl(
            "E1",
            "CN-44",
            "2024-03",
            &[("W-1", Scheme::Pension), ("W-2", Scheme::Pension)],
        ),
        &[&emp],
    ));
    w.appended(w.ev(void(d.event_id, Some(1)), &[&emp]));
    assert_refused!(
        w,
        w.ev(void_because(d.event_id, Some(1), "again"), &[&emp]),
        Refusal::AlreadyVoided(_),
        "already_voided"
    );
    assert_refused!(
        w,
        w.ev(
            other_amounts(w.decl("E1", "CN-44", "2024-03", &[("W-1", Scheme::Pension)])),
            &[&emp]
        ),
        Refusal::DuplicateDeclaration(_),
        "duplicate_declaration"
    );
    w.appended(w.ev(
        w.decl("E1", "CN-44", "2024-03", &[("W-2", Scheme::Pension)]),
        &[&emp],
    ));
    // Voiding the whole old declaration frees W-1's month, not W-2's (held by its successor).
    w.appended(w.ev(void(d.event_id, None), &[&emp]));
    w.appended(w.ev(
        w.decl("E1", "CN-44", "2024-03", &[("W-1", Scheme::Pension)]),
        &[&emp],
    ));
    assert_refused!(
        w,
        w.ev(
            other_amounts(w.decl("E1", "CN-44", "2024-03", &[("W-2", Scheme::Pension)])),
            &[&emp]
        ),
        Refusal::DuplicateDeclaration(_),
        "duplicate_declaration"
    );
}

#[test]
fn negative_amounts_are_refused() {
    // A negative base or amount in any line, or a negative flexible contribution.
    let mut w = World::new();
    let emp = key(EMPLOYER_44);
    for field in 0..3 {
        let mut lines = w.lines(&[("W-1", Scheme::Pension), ("W-2", Scheme::Pension)]);
        let minus = Money::from_minor(-1);
        match field {
            0 => lines[1].base = minus,
            1 => lines[1].employer_amount = minus,
            _ => lines[1].employee_amount = minus,
        }
        let r = assert_refused!(
            w,
            w.ev(declaration("E1", "CN-44", "2024-01", lines, false), &[&emp]),
            Refusal::NegativeAmount(_),
            "negative_amount"
        );
        assert!(r.to_string().contains("lines[1]"), "{r}");
    }
    assert_refused!(
        w,
        w.ev(flexible("W-1", "2024-01", "-0.01"), &[&key(WORKER_44)]),
        Refusal::NegativeAmount(_),
        "negative_amount"
    );
    // Zero is an amount.
    let mut lines = w.lines(&[("W-1", Scheme::Pension)]);
    lines[0].employee_amount = Money::ZERO;
    w.appended(w.ev(declaration("E1", "CN-44", "2024-01", lines, false), &[&emp]));
}

#[test]
fn contribution_months_are_bounded_by_1951_and_the_stamp() {
    // The stamp's month and 1951-01 are accepted; the month after the stamp and 1950-12 are not.
    let mut w = World::new();
    let emp = key(EMPLOYER_44);
    assert_refused!(
        w,
        w.ev(
            w.decl("E1", "CN-44", "2024-07", &[("W-1", Scheme::Pension)]),
            &[&emp]
        ),
        Refusal::InFuture(_),
        "in_future"
    );
    assert_refused!(
        w,
        w.ev(
            w.decl("E1", "CN-44", "1950-12", &[("W-1", Scheme::Pension)]),
            &[&emp]
        ),
        Refusal::TooEarly(_),
        "too_early"
    );
    w.appended(w.ev(
        w.decl("E1", "CN-44", "2024-06", &[("W-1", Scheme::Pension)]),
        &[&emp],
    ));
    w.appended(w.ev(
        w.decl("E1", "CN-44", "1951-01", &[("W-1", Scheme::Pension)]),
        &[&emp],
    ));
    // The same period is judged by the stamp, not by when it was signed: a month ahead of the
    // stamp is refused even when signed long ago, and becomes acceptable once the stamp reaches it.
    let july = w.ev(
        w.decl("E1", "CN-44", "2024-07", &[("W-1", Scheme::Pension)]),
        &[&emp],
    );
    assert_refused!(w, july.clone(), Refusal::InFuture(_), "in_future");
    w.stamp = instant("2024-07-01T00:00:00Z");
    w.appended(july);
}

#[test]
fn a_body_signed_more_than_five_minutes_after_the_stamp_is_refused() {
    // signed_at may be at most 300 s after the entry's stamp, to the nanosecond.
    let mut w = World::new();
    let a44 = key(AGENCY_44);
    let hukou = |h: &str| {
        EventKind::HukouChanged(HukouChanged {
            worker: worker("W-1"),
            hukou: ju(h),
            effective: date("2024-01-01"),
        })
    };
    let stamp = w.stamp;
    let at = |secs: i64, nanos: u32| {
        let s = stamp.plus_seconds(secs);
        Instant::new(s.unix_seconds(), nanos, 0).unwrap()
    };
    let r = assert_refused!(
        w,
        signed(hukou("CN-11"), at(301, 0), &[&a44]),
        Refusal::SignedInFuture { .. },
        "signed_in_future"
    );
    assert!(r.to_string().contains("2024-06-15T08:05:01Z"), "{r}");
    assert_refused!(
        w,
        signed(hukou("CN-12"), at(300, 1), &[&a44]),
        Refusal::SignedInFuture { .. },
        "signed_in_future"
    );
    w.appended(signed(hukou("CN-13"), at(300, 0), &[&a44]));
    w.appended(signed(hukou("CN-14"), at(-86_400 * 365, 0), &[&a44]));
}

#[test]
fn the_same_envelope_twice_returns_the_first_receipt() {
    // Idempotency: within one entry and in a later entry, the second submission is a duplicate
    // receipt with the first index and stamp, and nothing is appended.
    let mut w = World::new();
    let d = w.ev(
        w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
        &[&key(EMPLOYER_44)],
    );
    let applied = w.apply(&[d.clone(), d.clone()]);
    let [Outcome::Appended(first), Outcome::Appended(again)] = &applied.outcomes[..] else {
        panic!("{:?}", applied.outcomes)
    };
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(
        (again.index, again.event_id, again.appended_at),
        (first.index, first.event_id, first.appended_at)
    );
    assert_eq!(applied.head.size, first.index);

    let before = w.store.clone();
    let head = w.store.head();
    w.stamp = w.stamp.plus_seconds(3600);
    let applied = w.apply(&[d]);
    let [Outcome::Appended(later)] = &applied.outcomes[..] else {
        panic!("{:?}", applied.outcomes)
    };
    assert!(later.duplicate);
    assert_eq!(
        (later.index, later.appended_at),
        (first.index, first.appended_at)
    );
    assert_eq!(applied.head, head);
    assert_eq!(w.store, before, "a duplicate writes nothing");
}

#[test]
fn the_same_content_signed_again_returns_the_committed_receipt() {
    // Retry-safe submission: a declaration signed again (new signed_at, new salts, so a new
    // event id) is answered with the committed receipt and appends nothing, in a later entry
    // and within one entry; a different declaration of the month is still refused.
    let mut w = World::new();
    let emp = key(EMPLOYER_44);
    let spec = [("W-1", Scheme::Pension), ("W-2", Scheme::Pension)];
    let first = w.appended(w.ev(w.decl("E1", "CN-44", "2024-01", &spec), &[&emp]));
    let before = w.store.clone();
    let head = w.store.head();
    w.stamp = w.stamp.plus_seconds(3600);
    let resigned = w.ev(w.decl("E1", "CN-44", "2024-01", &spec), &[&emp]);
    assert_ne!(resigned.id, first.event_id);
    let applied = w.apply(std::slice::from_ref(&resigned));
    let [Outcome::Appended(r)] = &applied.outcomes[..] else {
        panic!("{:?}", applied.outcomes)
    };
    assert!(r.duplicate);
    assert_eq!(
        (r.event_id, r.index, r.appended_at),
        (first.event_id, first.index, first.appended_at)
    );
    assert_eq!(applied.head, head);
    assert_eq!(w.store, before, "an already recorded event writes nothing");
    assert!(!w.store.0.contains_key(&keys::event_id(&resigned.id)));

    assert_refused!(
        w,
        w.ev(
            other_amounts(w.decl("E1", "CN-44", "2024-01", &spec)),
            &[&emp]
        ),
        Refusal::DuplicateDeclaration(_),
        "duplicate_declaration"
    );
    // Lines in another order are another batch (another lines_root): decided afresh.
    let reversed = [spec[1], spec[0]];
    assert_refused!(
        w,
        w.ev(w.decl("E1", "CN-44", "2024-01", &reversed), &[&emp]),
        Refusal::DuplicateDeclaration(_),
        "duplicate_declaration"
    );

    // Within one entry: the second copy gets the first one's receipt.
    let a = w.ev(w.decl("E1", "CN-44", "2024-05", &spec), &[&emp]);
    let b = w.ev(w.decl("E1", "CN-44", "2024-05", &spec), &[&emp]);
    let applied = w.apply(&[a.clone(), b]);
    assert!(
        matches!(&applied.outcomes[..], [Outcome::Appended(x), Outcome::Appended(y)]
            if !x.duplicate && y.duplicate && y.event_id == a.id && y.index == x.index),
        "{:?}",
        applied.outcomes
    );
}

#[test]
fn the_same_content_by_another_signer_or_after_a_void_is_a_new_event() {
    // The signers are part of the content: another key of the same employer signing the same
    // declaration is a second declaration (refused as such). After a void, the same content
    // is free again and appended as a new event.
    let mut w = World::new();
    let emp = key(EMPLOYER_44);
    let second_key = key(11);
    w.appended(w.ev(
        key_registered("CN-44", Role::Employer, "E1", &second_key),
        &[&key(AGENCY_44)],
    ));
    let spec = [("W-1", Scheme::Pension)];
    let d = w.appended(w.ev(w.decl("E1", "CN-44", "2024-01", &spec), &[&emp]));
    assert_refused!(
        w,
        w.ev(w.decl("E1", "CN-44", "2024-01", &spec), &[&second_key]),
        Refusal::DuplicateDeclaration(_),
        "duplicate_declaration"
    );
    w.appended(w.ev(void(d.event_id, None), &[&emp]));
    let again = w.appended(w.ev(w.decl("E1", "CN-44", "2024-01", &spec), &[&emp]));
    assert!(again.index > d.index);
    // A retry of that new declaration now gets the new receipt.
    let applied = w.apply(&[w.ev(w.decl("E1", "CN-44", "2024-01", &spec), &[&emp])]);
    assert!(
        matches!(&applied.outcomes[..], [Outcome::Appended(r)] if r.duplicate && r.event_id == again.event_id),
        "{:?}",
        applied.outcomes
    );
}

#[test]
fn the_content_key_ignores_only_signed_at_and_salts() {
    let w = World::new();
    let emp = key(EMPLOYER_44);
    let spec = [("W-1", Scheme::Pension)];
    let a = w.ev(w.decl("E1", "CN-44", "2024-01", &spec), &[&emp]);
    let b = w.ev(w.decl("E1", "CN-44", "2024-01", &spec), &[&emp]);
    assert_ne!(a.id, b.id);
    assert_eq!(state::content_key(&a), state::content_key(&b));
    let other = [
        w.ev(
            other_amounts(w.decl("E1", "CN-44", "2024-01", &spec)),
            &[&emp],
        ),
        w.ev(w.decl("E1", "CN-44", "2024-02", &spec), &[&emp]),
        w.ev(w.decl("E1", "CN-44", "2024-01", &spec), &[&key(11)]),
        w.ev(w.decl("E1", "CN-44", "2024-01", &spec), &[&emp, &key(11)]),
    ];
    for o in &other {
        assert_ne!(state::content_key(&a), state::content_key(o));
    }
}

#[test]
fn corrections_need_a_live_target() {
    // A correction of an event not in the ledger is NotFound; of a voided event, AlreadyVoided
    // (also when both corrections are in one entry).
    let mut w = World::new();
    let emp = key(EMPLOYER_44);
    assert_refused!(
        w,
        w.ev(void(Hash32([0xab; 32]), None), &[&emp]),
        Refusal::NotFound(_),
        "not_found"
    );
    let d = w.appended(w.ev(
        w.decl("E1", "CN-44", "2024-01", &[("W-1", Scheme::Pension)]),
        &[&emp],
    ));
    let v1 = w.ev(void(d.event_id, None), &[&emp]);
    let v2 = w.ev(void_because(d.event_id, None, "twice"), &[&emp]);
    let v3 = w.ev(void(d.event_id, None), &[&emp]);
    let applied = w.apply(&[v1, v2, v3]);
    // The same void signed again (v3) is the recorded one; a different void is refused.
    assert!(
        matches!(
            &applied.outcomes[..],
            [
                Outcome::Appended(first),
                Outcome::Refused(Refusal::AlreadyVoided(_)),
                Outcome::Appended(again),
            ] if again.duplicate && again.index == first.index
        ),
        "{:?}",
        applied.outcomes
    );
    assert_refused!(
        w,
        w.ev(void_because(d.event_id, None, "again"), &[&emp]),
        Refusal::AlreadyVoided(_),
        "already_voided"
    );
    assert_refused!(
        w,
        w.ev(void(d.event_id, Some(0)), &[&emp]),
        Refusal::AlreadyVoided(_),
        "already_voided"
    );
    // Neither another jurisdiction's agency nor an unrelated employer may correct an event.
    let d2 = w.appended(w.ev(
        w.decl("E1", "CN-44", "2024-02", &[("W-1", Scheme::Pension)]),
        &[&emp],
    ));
    assert_refused!(
        w,
        w.ev(void(d2.event_id, None), &[&key(AGENCY_33)]),
        Refusal::WrongRole(_),
        "wrong_role"
    );
    assert_refused!(
        w,
        w.ev(void(d2.event_id, None), &[&key(EMPLOYER_33)]),
        Refusal::WrongRole(_),
        "wrong_role"
    );
    w.appended(w.ev(void(d2.event_id, None), &[&key(AGENCY_44)]));
}

#[test]
fn agency_keys_cannot_be_registered_by_event() {
    // Agency keys come only from the genesis.
    let mut w = World::new();
    assert_refused!(
        w,
        w.ev(
            key_registered("CN-44", Role::Agency, "CN-44", &key(12)),
            &[&key(AGENCY_44)]
        ),
        Refusal::WrongRole(_),
        "wrong_role"
    );
}

#[test]
fn weak_keys_are_refused() {
    // Small-order points (the identity, and points of order 2 and 4) cannot be registered.
    let mut w = World::new();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut order_2 = [0xff; 32]; // y = -1
    order_2[0] = 0xec;
    order_2[31] = 0x7f;
    let order_4 = [0u8; 32]; // y = 0
    for point in [identity, order_2, order_4] {
        let kind = EventKind::KeyRegistered(KeyRegistered {
            jurisdiction: ju("CN-44"),
            role: Role::Worker,
            subject: "W-1".parse().unwrap(),
            public_key: PublicKeyBytes(point),
        });
        let r = assert_refused!(
            w,
            w.ev(kind, &[&key(AGENCY_44)]),
            Refusal::WeakKey(_),
            "weak_key"
        );
        assert_eq!(r, Refusal::WeakKey(hex::encode(point)));
    }
}

#[test]
fn orders_completed_before_they_were_accepted_are_refused() {
    // completed_at before accepted_at is an impossible period; completed after the stamp is in
    // the future.
    let mut w = World::new();
    let p = key(PLATFORM_44);
    assert_refused!(
        w,
        w.ev(
            platform_orders("P1", "2024-06-14T10:30:00Z", "2024-06-14T10:29:59Z"),
            &[&p]
        ),
        Refusal::ImpossiblePeriod(_),
        "impossible_period"
    );
    assert_refused!(
        w,
        w.ev(
            platform_orders("P1", "2024-06-15T07:59:00Z", "2024-06-15T08:00:01Z"),
            &[&p]
        ),
        Refusal::InFuture(_),
        "in_future"
    );
    w.appended(w.ev(
        platform_orders("P1", "2024-06-15T07:59:00Z", "2024-06-15T08:00:00Z"),
        &[&p],
    ));
}

fn void_because(target: Hash32, line: Option<u32>, reason: &str) -> EventKind {
    let mut kind = void(target, line);
    if let EventKind::Correction(c) = &mut kind {
        c.reason = reason.into();
    }
    kind
}

/// A declaration like [`World::decl`] but with other amounts: a different declaration of the
/// same month, not the same one signed again.
fn other_amounts(mut kind: EventKind) -> EventKind {
    if let EventKind::ContributionsDeclared(d) = &mut kind {
        for l in &mut d.lines {
            l.employee_amount = Money::from_minor(l.employee_amount.minor() + 1);
        }
    }
    kind
}

fn platform_orders(platform: &str, accepted: &str, completed: &str) -> EventKind {
    EventKind::PlatformOrders(PlatformOrders {
        platform: employer(platform),
        jurisdiction: ju("CN-44"),
        date: date("2024-06-14"),
        lines: vec![OrderLine {
            salt: salt(9),
            worker: worker("W-1"),
            order: OrderId::new("O-1").unwrap(),
            accepted_at: instant(accepted),
            completed_at: instant(completed),
            premium: money("0.60"),
        }],
    })
}

fn flexible(w: &str, period: &str, amount: &str) -> EventKind {
    EventKind::FlexibleContribution(FlexibleContribution {
        worker: worker(w),
        jurisdiction: ju("CN-44"),
        period: month(period),
        scheme: Scheme::Pension,
        base: money("5000.00"),
        amount: money(amount),
    })
}

// ---------- determinism ----------

/// A pool of signed events touching most kinds and tables, valid and invalid, including
/// corrections of other pool events. Built deterministically, so two calls give equal pools.
fn pool() -> Vec<VerifiedEvent> {
    let (a44, a33) = (key(AGENCY_44), key(AGENCY_33));
    let (emp, wk) = (key(EMPLOYER_44), key(WORKER_44));
    let at = instant("2024-06-01T00:00:00Z");
    let s = |kind, signers: &[&SigningKey]| signed(kind, at, signers);
    let line = |w: &str, sc, n| contribution_line(w, sc, n);
    let d1 = s(
        declaration(
            "E1",
            "CN-44",
            "2024-01",
            vec![line("W-1", Scheme::Pension, 1)],
            false,
        ),
        &[&emp],
    );
    let bp = s(
        declaration(
            "E1",
            "CN-44",
            "2024-01",
            vec![line("W-1", Scheme::Pension, 2)],
            true,
        ),
        &[&emp],
    );
    let d2 = s(
        declaration(
            "E1",
            "CN-44",
            "2024-02",
            vec![
                line("W-1", Scheme::Pension, 3),
                line("W-2", Scheme::Medical, 4),
            ],
            false,
        ),
        &[&emp],
    );
    let replace_line = EventKind::Correction(Correction {
        target: d2.id,
        line: Some(0),
        action: CorrectionAction::Replace,
        replacement: Some(Replacement::Line(Line::Contribution(ContributionLine {
            base: money("5100.00"),
            ..line("W-1", Scheme::Pension, 5)
        }))),
        reason: "base was wrong".into(),
    });
    let contract = EventKind::ContractRegistered(ContractRegistered {
        contract: "C-1".parse().unwrap(),
        worker: worker("W-1"),
        employer: employer("E1"),
        jurisdiction: ju("CN-44"),
        form: ContractForm::OpenEnded,
        start: date("2023-01-01"),
        end: None,
        host: None,
    });
    let contract_ended = EventKind::ContractEnded(ContractEnded {
        contract: "C-1".parse().unwrap(),
        end: date("2024-05-31"),
        reason: "resigned".into(),
    });
    let transfer = EventKind::TransferRequested(TransferRequested {
        transfer: "T-1".parse().unwrap(),
        worker: worker("W-1"),
        from: ju("CN-44"),
        to: ju("CN-33"),
        requested: month("2024-06"),
    });
    let transfer_done = EventKind::TransferCompleted(TransferCompleted {
        transfer: "T-1".parse().unwrap(),
        individual_account: money("1000.00"),
        pooled_fund: money("2000.00"),
    });
    let hukou = EventKind::HukouChanged(HukouChanged {
        worker: worker("W-1"),
        hukou: ju("CN-33"),
        effective: date("2024-05-01"),
    });
    vec![
        s(key_registered("CN-44", Role::Employer, "E1", &emp), &[&a44]),
        s(person_registered("W-1", "CN-44"), &[&a44]),
        s(person_registered("W-2", "CN-33"), &[&a33]),
        d1.clone(),
        bp.clone(),
        s(
            declaration(
                "E1",
                "CN-44",
                "2024-01",
                vec![line("W-1", Scheme::Pension, 6)],
                false,
            ),
            &[&emp],
        ),
        d2.clone(),
        s(void(d1.id, None), &[&emp]),
        s(void(bp.id, None), &[&a44]),
        s(void(d2.id, Some(1)), &[&emp]),
        s(replace_line, &[&emp]),
        s(key_revoked(&emp), &[&a44]),
        s(key_registered("CN-44", Role::Worker, "W-1", &wk), &[&a44]),
        s(flexible("W-1", "2024-03", "300.00"), &[&wk]),
        s(hukou, &[&a33]),
        s(contract, &[&emp, &wk]),
        s(contract_ended, &[&a44]),
        s(transfer, &[&a33]),
        s(transfer_done, &[&a44]),
        s(
            declaration(
                "E1",
                "CN-44",
                "2024-04",
                vec![line("W-1", Scheme::Pension, 7)],
                false,
            ),
            &[&key(99)],
        ),
        s(person_registered("W-1", "CN-33"), &[&a33]),
    ]
}

/// Applies `entries` (each a list of pool positions) to a fresh store, one stamp per entry.
fn run(pool: &[VerifiedEvent], entries: &[Vec<usize>]) -> (Mem, Vec<Outcome>) {
    let mut store = Mem::from_genesis();
    let mut outcomes = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        let stamp = instant(STAMP).plus_seconds(60 * n as i64);
        let events: Vec<VerifiedEvent> = entry.iter().map(|&i| pool[i].clone()).collect();
        let applied = state::apply_entry(&store, stamp, &events).unwrap();
        store.commit(&applied.writes);
        assert_eq!(store.head(), applied.head);
        outcomes.extend(applied.outcomes);
    }
    (store, outcomes)
}

#[test]
fn the_same_entries_give_byte_identical_stores() {
    // Two fresh stores fed the same entries (every pool event, in order, three per entry, plus a
    // repeat of the whole pool) end with identical bytes.
    let mut entries: Vec<Vec<usize>> = (0..pool().len())
        .collect::<Vec<_>>()
        .chunks(3)
        .map(|c| c.to_vec())
        .collect();
    entries.push((0..pool().len()).collect());
    let (a, out_a) = run(&pool(), &entries);
    let (b, out_b) = run(&pool(), &entries);
    assert_eq!(out_a, out_b);
    assert_eq!(a, b);
    // The run did real work: most events were appended, some refused.
    let appended = out_a
        .iter()
        .filter(|o| matches!(o, Outcome::Appended(r) if !r.duplicate))
        .count();
    let refused = out_a
        .iter()
        .filter(|o| matches!(o, Outcome::Refused(_)))
        .count();
    assert!(appended >= 15 && refused >= 2, "{out_a:?}");
    assert_eq!(a.head().size, appended as u64);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    // For random orders and groupings of the pool: two fresh stores end byte-identical, and the
    // log is consistent — the head counts the new receipts, every receipt's event and id are
    // stored, duplicates point at the first receipt, refused ids are not indexed, and the chain
    // recomputes from the stored records.
    #[test]
    fn random_entry_sequences_are_deterministic_and_consistent(
        picks in prop::collection::vec((0usize..21, 0u8..4), 1..50)
    ) {
        let pool = pool();
        prop_assert_eq!(pool.len(), 21);
        let mut entries: Vec<Vec<usize>> = vec![Vec::new()];
        for (i, cut) in picks {
            entries.last_mut().unwrap().push(i);
            if cut == 0 {
                entries.push(Vec::new());
            }
        }
        let (a, outcomes) = run(&pool, &entries);
        let (b, _) = run(&pool, &entries);
        prop_assert_eq!(&a, &b);

        let mut first: BTreeMap<Hash32, u64> = BTreeMap::new();
        let order: Vec<&VerifiedEvent> = entries.iter().flatten().map(|&i| &pool[i]).collect();
        for (ev, o) in order.iter().zip(&outcomes) {
            match o {
                Outcome::Appended(r) if !r.duplicate => {
                    prop_assert!(first.insert(ev.id, r.index).is_none());
                }
                // The same id, or the same content signed again: the committed receipt.
                Outcome::Appended(r) => prop_assert_eq!(Some(&r.index), first.get(&r.event_id)),
                Outcome::Refused(_) => prop_assert!(!first.contains_key(&ev.id)),
            }
        }
        let head = a.head();
        prop_assert_eq!(head.size, first.len() as u64);
        for ev in &order {
            let indexed = a.0.get(&keys::event_id(&ev.id));
            match first.get(&ev.id) {
                Some(i) => prop_assert_eq!(indexed, Some(&i.to_be_bytes().to_vec())),
                None => prop_assert_eq!(indexed, None),
            }
        }
        let mut chain = Hash32::default();
        for index in 1..=head.size {
            let rec = StoredRecord::decode(&a.0[&keys::event(index)]).unwrap();
            prop_assert_eq!(first.get(&rec.event_id), Some(&index));
            chain = chain_next(&chain, index, &rec.event_id, rec.stamp);
            prop_assert_eq!(rec.chain, chain);
        }
        prop_assert_eq!(chain, head.chain);
        prop_assert!(!a.0.contains_key(&keys::event(head.size + 1)));
    }
}
