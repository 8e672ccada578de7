//! Worked careers for each rule of docs/rules.md, driven through the state machine (signed events,
//! `apply_entry`, the projection it writes) and evaluated by `rules::entitlement` / `coverage`.
//! Every expected figure is worked out in a comment beside it. Property tests at the end: months
//! are never counted twice, transfers conserve the individual account, and the projection after
//! any sequence of events equals a rebuild from the log.

mod common;

use std::cell::Cell;

use common::*;
use ed25519_dalek::SigningKey;
use ledger_core::event::*;
use ledger_core::genesis::{Genesis, GenesisJurisdiction};
use ledger_core::ids::*;
use ledger_core::kv::Writes;
use ledger_core::projection;
use ledger_core::rules::{self, Entitlement, Params};
use ledger_core::schema;
use ledger_core::state::{self, Outcome};
use ledger_core::time::{Instant, Month};
use proptest::prelude::*;

const PLACES: &[&str] = &[
    "CN-11", "CN-31", "CN-33", "CN-43", "CN-44", "CN-51", "DE", "ES", "FR", "KR",
];

fn agency(j: &str) -> SigningKey {
    key(10 + PLACES.iter().position(|p| *p == j).expect("known place") as u8)
}
fn employer_key(j: &str) -> SigningKey {
    key(40 + PLACES.iter().position(|p| *p == j).expect("known place") as u8)
}
fn employer_of(j: &str) -> String {
    format!("E-{j}")
}

struct Career {
    store: Mem,
    stamp: Instant,
    nonce: Cell<i64>,
    salt: Cell<u8>,
}

impl Career {
    fn new() -> Career {
        let genesis = Genesis {
            ledger: "pcl-rules-tests".into(),
            jurisdictions: PLACES
                .iter()
                .map(|j| GenesisJurisdiction {
                    code: ju(j),
                    agency_keys: vec![pk(&agency(j))],
                })
                .collect(),
            authority_quorum: None,
            members: Vec::new(),
        };
        let mut store = Mem::default();
        store.commit(&state::genesis_writes(&genesis));
        let c = Career {
            store,
            stamp: instant("2026-06-15T08:00:00Z"),
            nonce: Cell::new(0),
            salt: Cell::new(0),
        };
        let mut c = c;
        for j in PLACES {
            c.ok(
                key_registered(j, Role::Employer, &employer_of(j), &employer_key(j)),
                &agency(j),
            );
        }
        for p in ["Meituan", "Didi"] {
            for j in ["CN-44", "CN-33"] {
                let k = SigningKey::from_bytes(
                    &[if p == "Meituan" { 90 } else { 91 } + if j == "CN-44" { 0 } else { 2 }; 32],
                );
                c.ok(key_registered(j, Role::Platform, p, &k), &agency(j));
            }
        }
        c
    }

    fn apply(&mut self, kind: EventKind, signer: &SigningKey) -> Outcome {
        self.nonce.set(self.nonce.get() + 1);
        let ev = signed(kind, self.stamp.plus_seconds(-self.nonce.get()), &[signer]);
        let applied = state::apply_entry(&self.store, self.stamp, &[ev]).expect("store reads");
        self.store.commit(&applied.writes);
        applied.outcomes.into_iter().next().expect("one outcome")
    }

    /// Applies and insists on a receipt; returns the event id.
    fn ok(&mut self, kind: EventKind, signer: &SigningKey) -> Hash32 {
        match self.apply(kind.clone(), signer) {
            Outcome::Appended(r) => r.event_id,
            Outcome::Refused(r) => panic!("refused {}: {r}", kind.type_name()),
        }
    }

    fn person(
        &mut self,
        w: &str,
        sex: Sex,
        birth: &str,
        category: Option<u32>,
        hukou: Option<&str>,
    ) {
        let kind = EventKind::PersonRegistered(PersonRegistered {
            worker: worker(w),
            jurisdiction: ju("CN-44"),
            sex,
            birth_date: date(birth),
            female_category: category.map(|c| FemaleCategory::from_years(c).unwrap()),
            nationality: ju(if hukou.is_some() { "CN" } else { "DE" }),
            hukou: hukou.map(ju),
        });
        self.ok(kind, &agency("CN-44"));
    }

    fn line(&self, w: &str, scheme: Scheme, base: &str, er: &str, ee: &str) -> ContributionLine {
        self.salt.set(self.salt.get().wrapping_add(1));
        ContributionLine {
            salt: salt(self.salt.get()),
            worker: worker(w),
            scheme,
            base: money(base),
            employer_amount: money(er),
            employee_amount: money(ee),
        }
    }

    /// One pension declaration a month by the place's employer, `from..=to`.
    fn months(
        &mut self,
        w: &str,
        j: &str,
        (from, to): (&str, &str),
        base: &str,
        er: &str,
        ee: &str,
    ) {
        let (a, b) = (month(from).ordinal(), month(to).ordinal());
        for o in a..=b {
            let m = Month::from_ordinal(o).unwrap();
            let l = self.line(w, Scheme::Pension, base, er, ee);
            self.ok(
                declaration(&employer_of(j), j, &m.to_string(), vec![l], false),
                &employer_key(j),
            );
        }
    }

    fn transfer(&mut self, id: &str, w: &str, from: &str, to: &str, requested: &str) {
        self.ok(
            EventKind::TransferRequested(TransferRequested {
                transfer: TransferId::new(id).unwrap(),
                worker: worker(w),
                from: ju(from),
                to: ju(to),
                requested: month(requested),
            }),
            &agency(to),
        );
    }

    fn complete(&mut self, id: &str, from: &str, account: &str, pooled: &str) -> Outcome {
        self.apply(
            EventKind::TransferCompleted(TransferCompleted {
                transfer: TransferId::new(id).unwrap(),
                individual_account: money(account),
                pooled_fund: money(pooled),
            }),
            &agency(from),
        )
    }

    fn publish(&mut self, j: &str, effective: &str, name: &str, value: serde_json::Value) {
        let mut parameters = std::collections::BTreeMap::new();
        parameters.insert(name.to_string(), value);
        self.ok(
            EventKind::ParametersPublished(ParametersPublished {
                jurisdiction: ju(j),
                effective: date(effective),
                parameters,
            }),
            &agency(j),
        );
    }

    fn entitlement(&self, w: &str, as_of: &str) -> Entitlement {
        let facts = projection::worker_facts(&self.store, w).unwrap();
        let rulebook = projection::rulebook(&self.store).unwrap();
        let published = projection::published(&self.store).unwrap();
        let params = Params {
            rulebook: &rulebook,
            published: &published,
        };
        rules::entitlement(w, &facts, &params, date(as_of)).unwrap()
    }

    fn coverage(&self, w: &str, at: &str, place: &str) -> rules::Coverage {
        let facts = projection::worker_facts(&self.store, w).unwrap();
        let rulebook = projection::rulebook(&self.store).unwrap();
        let published = projection::published(&self.store).unwrap();
        let params = Params {
            rulebook: &rulebook,
            published: &published,
        };
        rules::injury::coverage(w, &facts, &params, instant(at), &ju(place)).unwrap()
    }
}

fn amount(m: ledger_core::money::Money) -> String {
    m.to_string()
}

#[test]
fn migrant_across_three_provinces_claims_where_ten_years_were_paid() {
    // A man born 1975-03, hukou CN-43 (never worked there):
    //   CN-44 2000-01..2009-12: 120 months, base 3000.00, employee 240.00 (8%)
    //   CN-33 2010-01..2014-12:  60 months, base 5000.00, employee 400.00
    //   CN-11 2015-01..2019-12:  60 months, base 6000.00, employee 480.00
    let mut c = Career::new();
    c.person("M-1", Sex::Male, "1975-03-09", None, Some("CN-43"));
    c.months(
        "M-1",
        "CN-44",
        ("2000-01", "2009-12"),
        "3000.00",
        "600.00",
        "240.00",
    );
    c.transfer("T-1", "M-1", "CN-44", "CN-33", "2010-01");
    // The relation carries 120 × 240 = 28800.00 of account and 12% × 120 × 3000 = 43200.00.
    let wrong = c.complete("T-1", "CN-44", "28800.00", "43199.99");
    let Outcome::Refused(r) = wrong else {
        panic!("a wrong pooled fund must be refused")
    };
    assert_eq!(r.code(), "amount_mismatch");
    assert!(r.to_string().contains("43200.00"), "{r}");
    assert!(matches!(
        c.complete("T-1", "CN-44", "28800.00", "43200.00"),
        Outcome::Appended(_)
    ));
    c.months(
        "M-1",
        "CN-33",
        ("2010-01", "2014-12"),
        "5000.00",
        "1000.00",
        "400.00",
    );
    c.transfer("T-2", "M-1", "CN-33", "CN-11", "2015-01");
    // Everything the relation holds moves on: 28800 + 60 × 400 = 52800.00 of account, and the
    // pooled fund of every base since 1998-01 it carries, received months included:
    // 12% × (360000 + 60 × 5000) = 12% × 660000 = 79200.00.
    assert!(matches!(
        c.complete("T-2", "CN-33", "52800.00", "79200.00"),
        Outcome::Appended(_)
    ));
    c.months(
        "M-1",
        "CN-11",
        ("2015-01", "2019-12"),
        "6000.00",
        "1200.00",
        "480.00",
    );

    let e = c.entitlement("M-1", "2026-01-01");
    let p = &e.pension;
    assert_eq!(p.insured_months, 240);
    assert_eq!(p.months_by_jurisdiction.get("CN-44"), Some(&120));
    assert_eq!(p.months_by_jurisdiction.get("CN-33"), Some(&60));
    assert_eq!(p.months_by_jurisdiction.get("CN-11"), Some(&60));
    assert_eq!(p.relation_jurisdiction, Some(ju("CN-11")));
    // 52800 + 60 × 480 = 81600.00
    assert_eq!(amount(p.individual_account), "81600.00");
    assert_eq!(p.transfers.len(), 2);
    assert_eq!(amount(p.transfers[1].pooled_fund), "79200.00");
    // Born 1975-03: (1975-03 − 1965-01) = 122 months; 122 / 4 = 30, + 1 = 31 months of delay;
    // 60 y + 31 m = 62 y 7 m; 1975-03 + 62 y 7 m = 2037-10.
    assert_eq!(p.retirement_month, month("2037-10"));
    assert_eq!((p.retirement_age.years, p.retirement_age.months), (62, 7));
    // Retiring in 2037: 180 + 6 × (2037 − 2029) = 228 months; 240 ≥ 228.
    assert_eq!(p.minimum_months, 228);
    assert!(p.vested);
    assert_eq!(p.shortfall_months, 0);
    // Relation CN-11 (60 months) is not the hukou and holds < 120; of the earlier relation
    // places, CN-33 (60) does not qualify and CN-44 (120) does: the claim goes back to CN-44.
    assert_eq!(p.claim_jurisdiction, Some(ju("CN-44")));
    let ct = p
        .claim_transfer
        .as_ref()
        .expect("the relation moves at claim");
    assert_eq!(ct.from, Some(ju("CN-11")));
    assert_eq!(ct.to, ju("CN-44"));
    assert_eq!(amount(ct.individual_account), "81600.00");
    // 12% × (660000 + 60 × 6000) = 12% × 1020000 = 122400.00
    assert_eq!(amount(ct.pooled_fund), "122400.00");
    assert!(ct.temporary_accounts.is_empty());
    // A past --as-of cuts months and transfers: by 2012-06 only T-1 has happened.
    let past = c.entitlement("M-1", "2012-06-30");
    assert_eq!(past.pension.insured_months, 120 + 30);
    assert_eq!(past.pension.transfers.len(), 1);
    assert_eq!(past.pension.relation_jurisdiction, Some(ju("CN-33")));
}

#[test]
fn without_ten_years_anywhere_the_claim_falls_to_the_hukou_province() {
    // Hukou CN-51; 60 months in CN-44 (base 4000, ee 320), transfer, 60 months in CN-33.
    let mut c = Career::new();
    c.person("M-2", Sex::Male, "1980-01-01", None, Some("CN-51"));
    c.months(
        "M-2",
        "CN-44",
        ("2010-01", "2014-12"),
        "4000.00",
        "640.00",
        "320.00",
    );
    c.transfer("T-3", "M-2", "CN-44", "CN-33", "2015-01");
    // 60 × 320 = 19200.00; 12% × 60 × 4000 = 28800.00
    assert!(matches!(
        c.complete("T-3", "CN-44", "19200.00", "28800.00"),
        Outcome::Appended(_)
    ));
    c.months(
        "M-2",
        "CN-33",
        ("2015-01", "2019-12"),
        "4000.00",
        "640.00",
        "320.00",
    );
    let p = c.entitlement("M-2", "2026-01-01").pension;
    assert_eq!(p.claim_jurisdiction, Some(ju("CN-51")));
    let ct = p.claim_transfer.expect("gathered in the hukou province");
    assert_eq!((ct.from, ct.to.clone()), (Some(ju("CN-33")), ju("CN-51")));
    // All 120 months: 120 × 320 = 38400.00; 12% × 120 × 4000 = 57600.00
    assert_eq!(amount(ct.individual_account), "38400.00");
    assert_eq!(amount(ct.pooled_fund), "57600.00");
    // Born 1980-01: 180 months after 1965-01 → 45 + 1 = 46, capped at 36: 63 y 0 m, in 2043-01;
    // minimum in 2043 is 180 + 6 × 10 = 240; 120 insured months are 120 short.
    assert_eq!(p.retirement_month, month("2043-01"));
    assert_eq!(p.minimum_months, 240);
    assert!(!p.vested);
    assert_eq!(p.shortfall_months, 120);
}

#[test]
fn a_woman_over_forty_outside_her_hukou_province_holds_a_temporary_account() {
    // Woman born 1970-06, category 50, hukou CN-51. CN-51 2000-01..2011-12: 144 months
    // (base 3000, er 600, ee 240). In 2012-01 she is 41 (≥ 40) and moves to CN-44, not her
    // hukou: CN-44 keeps a temporary account for 2012-01..2016-12 (60 months, base 5000,
    // er 800, ee 400); the relation stays in CN-51.
    let mut c = Career::new();
    c.person("F-1", Sex::Female, "1970-06-20", Some(50), Some("CN-51"));
    c.months(
        "F-1",
        "CN-51",
        ("2000-01", "2011-12"),
        "3000.00",
        "600.00",
        "240.00",
    );
    c.months(
        "F-1",
        "CN-44",
        ("2012-01", "2016-12"),
        "5000.00",
        "800.00",
        "400.00",
    );
    let p = c.entitlement("F-1", "2026-01-01").pension;
    assert_eq!(p.insured_months, 204);
    assert_eq!(
        p.months_by_jurisdiction.get("CN-44"),
        Some(&60),
        "temporary months still count"
    );
    assert_eq!(p.temporary_account_months.get("CN-44"), Some(&60));
    assert_eq!(p.relation_jurisdiction, Some(ju("CN-51")));
    // Account: 144 × 240 + 60 × 400 = 34560 + 24000 = 58560.00 (temporary account included)
    assert_eq!(amount(p.individual_account), "58560.00");
    // Category 50, born before 1975-01: no delay; 50 y, in 2020-06; minimum 180.
    assert_eq!(p.retirement_month, month("2020-06"));
    assert!(p.vested);
    // The relation is in the hukou province: she claims there, and the sealed temporary account
    // moves in full (no 12% rule): employer 60 × 800 = 48000.00, employee 60 × 400 = 24000.00.
    assert_eq!(p.claim_jurisdiction, Some(ju("CN-51")));
    let ct = p.claim_transfer.expect("the temporary account moves");
    assert_eq!(ct.from, None);
    assert_eq!(amount(ct.individual_account), "0.00");
    assert_eq!(ct.temporary_accounts.len(), 1);
    let t = &ct.temporary_accounts[0];
    assert_eq!((t.jurisdiction.as_str(), t.months), ("CN-44", 60));
    assert_eq!(
        (amount(t.employer_amount), amount(t.employee_amount)),
        ("48000.00".into(), "24000.00".into())
    );
}

#[test]
fn duplicate_months_count_once_and_first_committed_keeps_the_month() {
    let mut c = Career::new();
    c.person("D-1", Sex::Male, "1990-01-01", None, Some("CN-44"));
    c.months(
        "D-1",
        "CN-44",
        ("2020-01", "2020-12"),
        "5000.00",
        "800.00",
        "400.00",
    );
    // CN-33 also declares 2020-12 and 2021-01: 2020-12 is a duplicate (CN-44 was first).
    c.months(
        "D-1",
        "CN-33",
        ("2020-12", "2021-01"),
        "5000.00",
        "800.00",
        "400.00",
    );
    let p = c.entitlement("D-1", "2026-01-01").pension;
    assert_eq!(p.insured_months, 13);
    assert_eq!(p.duplicate_months, vec![month("2020-12")]);
    assert_eq!(p.months_by_jurisdiction.get("CN-33"), Some(&1));
    // 13 × 400 = 5200.00: the duplicate's money is not in the account.
    assert_eq!(amount(p.individual_account), "5200.00");
}

#[test]
fn a_monthly_estimate_with_a_known_divisor() {
    // A man born 1964-06 (before the reform's first cohort): retires at 60, in 2024-06; the
    // divisor at 60 is 139. CN-44 2009-01..2023-12: 180 months, base 4000.00, employee 320.00.
    // CN-44 publishes an average monthly wage of 8000.00 for every year 2009..2023.
    let mut c = Career::new();
    c.person("P-1", Sex::Male, "1964-06-01", None, Some("CN-44"));
    c.months(
        "P-1",
        "CN-44",
        ("2009-01", "2023-12"),
        "4000.00",
        "640.00",
        "320.00",
    );
    let before = c.entitlement("P-1", "2026-01-01").pension;
    assert!(
        before.estimated_monthly.is_none(),
        "no wage known: no estimate"
    );
    for year in 2009..=2023 {
        c.publish(
            "CN-44",
            "2024-01-01",
            "average_wage",
            serde_json::json!({"year": year, "monthly": "8000.00"}),
        );
    }
    let p = c.entitlement("P-1", "2026-01-01").pension;
    let e = p.estimated_monthly.expect("every wage is known");
    // C = 8000 (2023), I = 4000 / 8000 = 0.5, N = 180 / 12 = 15:
    // basic = (8000 + 8000 × 0.5) / 2 × 15 × 1% = 6000 × 0.15 = 900.00
    assert_eq!(amount(e.basic), "900.00");
    // account = 180 × 320 / 139 = 57600 / 139 = 414.3884… → 414.39
    assert_eq!(e.divisor, 139);
    assert_eq!(amount(e.account), "414.39");
    assert_eq!(amount(e.total), "1314.39");
    // 4000 is 50% of 8000, under the 60% floor: every month is flagged.
    assert!(e.total.minor() > 0);
    let flags = c.entitlement("P-1", "2026-01-01").flags;
    assert!(
        flags.contains(&"base_below_floor:CN-44:2009-03".to_string()),
        "{flags:?}"
    );
}

#[test]
fn a_late_insuring_employer_pays_until_the_back_pay() {
    let mut c = Career::new();
    c.person("L-1", Sex::Male, "1990-01-01", None, Some("CN-44"));
    c.ok(
        EventKind::ContractRegistered(ContractRegistered {
            contract: ContractId::new("C-L1").unwrap(),
            worker: worker("L-1"),
            employer: employer(&employer_of("CN-44")),
            jurisdiction: ju("CN-44"),
            form: ContractForm::OpenEnded,
            start: date("2024-01-01"),
            end: None,
            host: None,
        }),
        &employer_key("CN-44"),
    );
    // January insured in time, February only by a later back-pay, March not at all.
    let jan = c.line("L-1", Scheme::Injury, "5000.00", "25.00", "0.00");
    c.ok(
        declaration("E-CN-44", "CN-44", "2024-01", vec![jan], false),
        &employer_key("CN-44"),
    );
    let feb = c.line("L-1", Scheme::Injury, "5000.00", "25.00", "0.00");
    c.ok(
        declaration("E-CN-44", "CN-44", "2024-02", vec![feb], true),
        &employer_key("CN-44"),
    );
    let at = |d: &str| format!("{d}T10:00:00+08:00");
    let jan = c.coverage("L-1", &at("2024-01-15"), "CN-44");
    assert_eq!(
        (jan.basis, jan.payer, jan.covered),
        ("employment_injury_insurance", "fund", true)
    );
    assert_eq!(jan.insurer, Some(ju("CN-44")));
    let feb = c.coverage("L-1", &at("2024-02-15"), "CN-44");
    assert_eq!(feb.payer, "employer_then_fund");
    let mar = c.coverage("L-1", &at("2024-03-15"), "CN-33");
    assert_eq!(
        (mar.payer, mar.covered),
        ("employer", true),
        "uninsured, still a work injury"
    );
    // Before the contract: nothing.
    let before = c.coverage("L-1", &at("2023-12-15"), "CN-44");
    assert_eq!(
        (before.basis, before.payer, before.covered, before.insurer),
        ("none", "none", false, None)
    );
}

fn orders(c: &mut Career, platform: &str, j: &str, key_seed: u8, day: &str, order: &str) {
    let kind = EventKind::PlatformOrders(PlatformOrders {
        platform: employer(platform),
        jurisdiction: ju(j),
        date: date(day),
        lines: vec![OrderLine {
            salt: salt(7),
            worker: worker("R-1"),
            order: OrderId::new(order).unwrap(),
            accepted_at: instant(&format!("{day}T12:00:00+08:00")),
            completed_at: instant(&format!("{day}T12:40:00+08:00")),
            premium: money("0.04"),
        }],
    });
    c.ok(kind, &SigningKey::from_bytes(&[key_seed; 32]));
}

#[test]
fn a_rider_is_covered_only_inside_order_windows_in_pilot_provinces_and_platforms() {
    let mut c = Career::new();
    c.person("R-1", Sex::Male, "1995-01-01", None, Some("CN-43"));
    // Meituan in CN-44 (pilot since 2022-07-01), Meituan in CN-33 before and after CN-33 joined
    // (2025-07-01), Didi in CN-44 before and after Didi joined (2025-07-01).
    orders(&mut c, "Meituan", "CN-44", 90, "2024-03-15", "M1");
    orders(&mut c, "Meituan", "CN-33", 92, "2025-03-15", "M2");
    orders(&mut c, "Meituan", "CN-33", 92, "2025-08-15", "M3");
    orders(&mut c, "Didi", "CN-44", 91, "2025-03-16", "D1");
    orders(&mut c, "Didi", "CN-44", 91, "2025-08-16", "D2");
    let cov = |c: &Career, at: &str, j: &str| c.coverage("R-1", at, j);
    let inside = cov(&c, "2024-03-15T12:20:00+08:00", "CN-44");
    assert_eq!(
        (inside.basis, inside.payer),
        ("occupational_injury_pilot", "fund")
    );
    assert_eq!(
        (inside.platform.as_deref(), inside.order.as_deref()),
        (Some("Meituan"), Some("M1"))
    );
    assert_eq!(inside.insurer, Some(ju("CN-44")));
    assert!(
        !cov(&c, "2024-03-15T12:41:00+08:00", "CN-44").covered,
        "after completed_at"
    );
    assert!(
        !cov(&c, "2024-03-15T11:59:59+08:00", "CN-44").covered,
        "before accepted_at"
    );
    assert!(
        !cov(&c, "2024-03-15T12:20:00+08:00", "CN-33").covered,
        "only where it is executed"
    );
    assert!(
        !cov(&c, "2025-03-15T12:20:00+08:00", "CN-33").covered,
        "CN-33 not yet a pilot province"
    );
    assert!(
        cov(&c, "2025-08-15T12:20:00+08:00", "CN-33").covered,
        "CN-33 from 2025-07-01"
    );
    assert!(
        !cov(&c, "2025-03-16T12:20:00+08:00", "CN-44").covered,
        "Didi not yet a pilot platform"
    );
    assert!(
        cov(&c, "2025-08-16T12:20:00+08:00", "CN-44").covered,
        "Didi from 2025-07-01"
    );
}

fn posted(c: &mut Career, w: &str, contract: &str, start: &str, end: &str) {
    c.ok(
        EventKind::ContractRegistered(ContractRegistered {
            contract: ContractId::new(contract).unwrap(),
            worker: worker(w),
            employer: employer("E-CN-33"),
            jurisdiction: ju("CN-33"),
            form: ContractForm::Posted,
            start: date(start),
            end: Some(date(end)),
            host: Some(ju("DE")),
        }),
        &employer_key("CN-33"),
    );
}

fn certificate(c: &mut Career, w: &str, from: &str, to: &str, basis: CertificateBasis) {
    c.ok(
        EventKind::CoverageCertificateIssued(CoverageCertificateIssued {
            worker: worker(w),
            agreement: "CN-DE".into(),
            sending: ju("CN-33"),
            receiving: ju("DE"),
            from: month(from),
            to: month(to),
            branches: vec![Scheme::Pension, Scheme::Unemployment],
            basis,
        }),
        &agency("CN-33"),
    );
}

#[test]
fn a_posted_worker_is_exempt_up_to_the_agreements_maximum() {
    let mut c = Career::new();
    // Within the maximum: posted 2025-01..2027-12 (36 months) with a certificate for all of it.
    c.person("X-1", Sex::Male, "1985-01-01", None, Some("CN-33"));
    posted(&mut c, "X-1", "P-X1", "2025-01-01", "2027-12-31");
    certificate(
        &mut c,
        "X-1",
        "2025-01",
        "2027-12",
        CertificateBasis::Posting,
    );
    let e = c.entitlement("X-1", "2026-01-01");
    assert_eq!(e.postings.len(), 1);
    let p = &e.postings[0];
    assert_eq!(
        (p.agreement.as_deref(), p.receiving.as_str()),
        (Some("CN-DE"), "DE")
    );
    assert_eq!(
        (p.from, p.to, p.exempt_months),
        (month("2025-01"), month("2027-12"), 36)
    );
    assert!(p.double_coverage_months.is_empty());
    assert_eq!(p.branches, vec![Scheme::Pension, Scheme::Unemployment]);
    assert_eq!(
        e.foreign.get("DE").map(|f| f.months),
        Some(0),
        "the host is listed"
    );

    // Beyond it: posted 2020-01..2025-12 (72 months) on ordinary certificates: CN-DE exempts 48
    // months automatically, so 2024-01..2025-12 (24 months) are due in both countries.
    c.person("X-2", Sex::Male, "1985-01-01", None, Some("CN-33"));
    posted(&mut c, "X-2", "P-X2", "2020-01-01", "2025-12-31");
    certificate(
        &mut c,
        "X-2",
        "2020-01",
        "2025-12",
        CertificateBasis::Posting,
    );
    let p = c.entitlement("X-2", "2026-01-01").postings.remove(0);
    assert_eq!(p.exempt_months, 48);
    assert_eq!(p.double_coverage_months.len(), 24);
    assert_eq!(p.double_coverage_months[0], month("2024-01"));
    // An exception certificate for the rest allows up to 96 months: all 72 are exempt.
    certificate(
        &mut c,
        "X-2",
        "2024-01",
        "2025-12",
        CertificateBasis::Exception,
    );
    let p = c.entitlement("X-2", "2026-01-01").postings.remove(0);
    assert_eq!((p.exempt_months, p.double_coverage_months.len()), (72, 0));
}

#[test]
fn pro_rata_under_totalization_leaves_out_a_country_under_twelve_months() {
    // Reported periods: DE 60 months, FR 8 months, ES 36 months, no overlap. Under EU 883/2004
    // all 104 count for entitlement; FR (< 12 months, no entitlement of its own) pays nothing
    // and leaves the pro-rata denominator: 104 − 8 = 96. DE: 60 / 96 = 0.625; ES: 36 / 96 = 0.375.
    let mut c = Career::new();
    c.person("EU-1", Sex::Female, "1980-01-01", Some(55), None);
    for (country, from, to) in [
        ("DE", "2000-01", "2004-12"),
        ("FR", "2005-01", "2005-08"),
        ("ES", "2006-01", "2008-12"),
    ] {
        c.ok(
            EventKind::ForeignPeriodsReported(ForeignPeriodsReported {
                worker: worker("EU-1"),
                country: ju(country),
                scheme: Scheme::Pension,
                periods: vec![ForeignPeriod {
                    from: month(from),
                    to: month(to),
                    kind: PeriodKind::Insurance,
                }],
            }),
            &agency(country),
        );
    }
    let e = c.entitlement("EU-1", "2026-01-01");
    assert_eq!(e.foreign.get("DE").unwrap().months, 60);
    assert_eq!(e.foreign.get("FR").unwrap().months, 8);
    let share = |country: &str| {
        e.coordination
            .iter()
            .find(|x| x.country == country)
            .unwrap()
            .clone()
    };
    assert_eq!(share("DE").pro_rata_share, "0.625000");
    assert_eq!(share("ES").pro_rata_share, "0.375000");
    assert!(!share("FR").pays);
    assert_eq!(share("FR").pro_rata_share, "0.000000");
    assert_eq!(
        (share("DE").total_months, share("DE").pro_rata_denominator),
        (104, 96)
    );
}

#[test]
fn a_void_or_line_replacement_changes_the_entitlement() {
    let mut c = Career::new();
    c.person("V-1", Sex::Male, "1990-01-01", None, Some("CN-44"));
    let l = c.line("V-1", Scheme::Pension, "5000.00", "800.00", "400.00");
    let id = c.ok(
        declaration("E-CN-44", "CN-44", "2024-01", vec![l], false),
        &employer_key("CN-44"),
    );
    c.months(
        "V-1",
        "CN-44",
        ("2024-02", "2024-03"),
        "5000.00",
        "800.00",
        "400.00",
    );
    assert_eq!(c.entitlement("V-1", "2026-01-01").pension.insured_months, 3);
    let replacement = c.line("V-1", Scheme::Pension, "6000.00", "960.00", "480.00");
    c.ok(
        EventKind::Correction(Correction {
            target: id,
            line: Some(0),
            action: CorrectionAction::Replace,
            replacement: Some(Replacement::Line(Line::Contribution(replacement))),
            reason: "wrong base".into(),
        }),
        &employer_key("CN-44"),
    );
    // 480 + 400 + 400 = 1280.00
    assert_eq!(
        amount(
            c.entitlement("V-1", "2026-01-01")
                .pension
                .individual_account
        ),
        "1280.00"
    );
    c.ok(void(id, Some(0)), &employer_key("CN-44"));
    let p = c.entitlement("V-1", "2026-01-01").pension;
    assert_eq!(
        (p.insured_months, amount(p.individual_account)),
        (2, "800.00".to_string())
    );
}

#[test]
fn an_unknown_worker_is_an_error_naming_the_worker() {
    let c = Career::new();
    let facts = projection::worker_facts(&c.store, "NOBODY").unwrap();
    let rulebook = projection::rulebook(&c.store).unwrap();
    let params = Params {
        rulebook: &rulebook,
        published: &[],
    };
    let e = rules::entitlement("NOBODY", &facts, &params, date("2026-01-01")).unwrap_err();
    assert!(e.to_string().contains("NOBODY"), "{e}");
}

/// The projection keys of a store.
fn projection_of(store: &Mem) -> Vec<(Vec<u8>, Vec<u8>)> {
    store
        .0
        .iter()
        .filter(|(k, _)| schema::is_projection_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Clears the projection and replays the whole log.
fn rebuilt(store: &Mem) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut s = store.clone();
    let clear: Writes = projection_of(store)
        .into_iter()
        .map(|(k, _)| (k, None))
        .collect();
    s.commit(&clear);
    let size = s.head().size;
    let w = projection::replay(&s, 1, size).unwrap();
    s.commit(&w);
    let mut v = Writes::new();
    v.insert(
        ledger_core::schema::PROJECTION_VERSION.to_vec(),
        Some(projection::PROJECTION_VERSION.to_be_bytes().to_vec()),
    );
    s.commit(&v);
    projection_of(&s)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random careers: months in random provinces (with repeats, so duplicates occur), random
    /// voids, and a transfer with the amounts the ledger computes.
    #[test]
    fn careers_count_each_month_once_conserve_the_account_and_rebuild_identically(
        steps in proptest::collection::vec((0usize..4, 0i64..36, 1u32..50, any::<bool>()), 1..40),
        transfer_at in 0usize..40,
    ) {
        let provinces = ["CN-44", "CN-33", "CN-11", "CN-51"];
        let mut c = Career::new();
        c.person("Q-1", Sex::Female, "1975-01-01", Some(55), Some("CN-51"));
        let mut ids = Vec::new();
        for (i, (p, m, base, void_it)) in steps.iter().enumerate() {
            if i == transfer_at {
                c.transfer("TQ", "Q-1", "CN-44", "CN-33", "2026-01");
                let facts = projection::worker_facts(&c.store, "Q-1").unwrap();
                let rulebook = projection::rulebook(&c.store).unwrap();
                let published = projection::published(&c.store).unwrap();
                let params = Params { rulebook: &rulebook, published: &published };
                let w = rules::Worker::new("Q-1", &facts).unwrap();
                let (a, pooled) = rules::pension::transfer_amounts(&w, &params, &TransferId::new("TQ").unwrap(), date("2026-06-15"), month("2026-01"));
                let before = c.entitlement("Q-1", "2026-06-15").pension;
                let held_44: i64 = before.months_by_jurisdiction.get("CN-44").copied().unwrap_or(0) as i64;
                prop_assert!(matches!(c.complete("TQ", "CN-44", &a.to_string(), &pooled.to_string()), Outcome::Appended(_)));
                let after = c.entitlement("Q-1", "2026-06-15").pension;
                // A transfer moves money between places; the worker's account is unchanged.
                prop_assert_eq!(before.individual_account, after.individual_account);
                prop_assert!(a.minor() >= 0 && (held_44 > 0 || a.minor() == 0));
            }
            let j = provinces[*p];
            let period = Month::from_ordinal(month("2023-01").ordinal() + m).unwrap();
            let base = format!("{}.00", 1000 * base);
            let ee = format!("{}.00", 80 * (base.len() as u32));
            let l = c.line("Q-1", Scheme::Pension, &base, "0.00", &ee);
            let kind = declaration(&employer_of(j), j, &period.to_string(), vec![l], false);
            if let Outcome::Appended(r) = c.apply(kind, &employer_key(j)) {
                ids.push((r.event_id, j));
                if *void_it {
                    c.ok(void(r.event_id, Some(0)), &employer_key(j));
                }
            }
        }
        let p = c.entitlement("Q-1", "2026-06-15").pension;
        let sum: u32 = p.months_by_jurisdiction.values().sum();
        prop_assert_eq!(sum, p.insured_months);
        for d in &p.duplicate_months {
            prop_assert!(*d <= month("2026-06"));
        }
        prop_assert_eq!(projection_of(&c.store), rebuilt(&c.store));
    }
}
