//! Shared fixtures of the ledger-core integration tests: fixed keys, an in-memory state store,
//! the two-jurisdiction genesis, and short constructors for model values.
//!
//! Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use ledger_core::envelope::{Envelope, LedgerId, VerifiedEvent};
use ledger_core::event::*;
use ledger_core::genesis::{Genesis, GenesisJurisdiction};
use ledger_core::ids::*;
use ledger_core::jurisdiction::Jurisdiction;
use ledger_core::kv::{StateRead, StoreFault, Writes};
use ledger_core::money::Money;
use ledger_core::records;
use ledger_core::records::Head;
use ledger_core::state;
use ledger_core::time::{Date, Instant, Month};

/// A deterministic key: the ed25519 seed is `[seed; 32]`.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn pk(k: &SigningKey) -> PublicKeyBytes {
    PublicKeyBytes(k.verifying_key().to_bytes())
}

/// Seeds of the genesis agency keys.
pub const AGENCY_44: u8 = 1;
pub const AGENCY_33: u8 = 2;

/// The genesis of every state-machine test: agencies of CN-44 and CN-33.
pub fn genesis() -> Genesis {
    Genesis {
        ledger: "pcl-core-tests".into(),
        jurisdictions: vec![
            GenesisJurisdiction {
                code: ju("CN-44"),
                agency_keys: vec![pk(&key(AGENCY_44))],
            },
            GenesisJurisdiction {
                code: ju("CN-33"),
                agency_keys: vec![pk(&key(AGENCY_33))],
            },
        ],
        authority_quorum: None,
        members: Vec::new(),
    }
}

/// The ledger state in memory: a `BTreeMap`, so two stores compare byte for byte.
#[derive(Default, Clone, PartialEq, Eq, Debug)]
pub struct Mem(pub BTreeMap<Vec<u8>, Vec<u8>>);

impl StateRead for Mem {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault> {
        Ok(self.0.get(key).cloned())
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreFault> {
        Ok(self
            .0
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl Mem {
    /// A store created from [`genesis`].
    pub fn from_genesis() -> Mem {
        let mut m = Mem::default();
        m.commit(&state::genesis_writes(&genesis()));
        m
    }

    /// Applies one batch of writes (`None` deletes).
    pub fn commit(&mut self, w: &Writes) {
        for (k, v) in w {
            match v {
                Some(v) => self.0.insert(k.clone(), v.clone()),
                None => self.0.remove(k),
            };
        }
    }

    pub fn head(&self) -> Head {
        records::read_head(self).expect("the store has a head")
    }
}

/// The ledger every test event is signed for (a genesis hash of the tests' own).
pub const LEDGER: LedgerId = LedgerId(Hash32([0x1e; 32]));

/// Signs a body with `signers` and opens it, as a node does before ordering it.
pub fn signed(kind: EventKind, signed_at: Instant, signers: &[&SigningKey]) -> VerifiedEvent {
    Envelope::sign(&LEDGER, &EventBody { signed_at, kind }, signers)
        .open(&LEDGER)
        .expect("test events open")
}

pub fn ju(s: &str) -> Jurisdiction {
    s.parse().expect("valid jurisdiction")
}
pub fn worker(s: &str) -> WorkerId {
    WorkerId::new(s).expect("valid worker id")
}
pub fn employer(s: &str) -> EmployerId {
    EmployerId::new(s).expect("valid employer id")
}
pub fn month(s: &str) -> Month {
    s.parse().expect("valid month")
}
pub fn date(s: &str) -> Date {
    s.parse().expect("valid date")
}
pub fn instant(s: &str) -> Instant {
    s.parse().expect("valid instant")
}
pub fn money(s: &str) -> Money {
    s.parse().expect("valid amount")
}

/// A salt whose bytes are all `n` (distinct salts make otherwise equal batches distinct events).
pub fn salt(n: u8) -> Salt {
    Salt([n; 16])
}

pub fn contribution_line(w: &str, scheme: Scheme, salt_byte: u8) -> ContributionLine {
    ContributionLine {
        salt: salt(salt_byte),
        worker: worker(w),
        scheme,
        base: money("5000.00"),
        employer_amount: money("800.00"),
        employee_amount: money("400.00"),
    }
}

pub fn key_registered(j: &str, role: Role, subject: &str, k: &SigningKey) -> EventKind {
    EventKind::KeyRegistered(KeyRegistered {
        jurisdiction: ju(j),
        role,
        subject: SubjectId::new(subject).expect("valid subject"),
        public_key: pk(k),
    })
}

pub fn key_revoked(k: &SigningKey) -> EventKind {
    EventKind::KeyRevoked(KeyRevoked {
        public_key: pk(k),
        reason: "key lost".into(),
    })
}

pub fn person_registered(w: &str, j: &str) -> EventKind {
    EventKind::PersonRegistered(PersonRegistered {
        worker: worker(w),
        jurisdiction: ju(j),
        sex: Sex::Male,
        birth_date: date("1980-05-17"),
        female_category: None,
        nationality: ju("CN"),
        hukou: Some(ju("CN-51")),
    })
}

pub fn declaration(
    emp: &str,
    j: &str,
    period: &str,
    lines: Vec<ContributionLine>,
    back_pay: bool,
) -> EventKind {
    EventKind::ContributionsDeclared(ContributionsDeclared {
        employer: employer(emp),
        jurisdiction: ju(j),
        period: month(period),
        lines,
        back_pay,
    })
}

pub fn void(target: Hash32, line: Option<u32>) -> EventKind {
    EventKind::Correction(Correction {
        target,
        line,
        action: CorrectionAction::Void,
        replacement: None,
        reason: "declared in error".into(),
    })
}
