//! JSON ↔ model ↔ protobuf ↔ signed bytes round-trips for every event kind, on generated events.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use ledger_core::envelope::{event_id, Envelope};
use ledger_core::event::*;
use ledger_core::ids::*;
use ledger_core::jurisdiction::Jurisdiction;
use ledger_core::money::Money;
use ledger_core::time::{Date, Instant, Month};
use ledger_core::wire;
use proptest::prelude::*;

fn ju() -> impl Strategy<Value = Jurisdiction> {
    prop::sample::select(vec!["CN-44", "CN-33", "CN-51", "DE", "KR", "FR-IDF"])
        .prop_map(|s| s.parse().unwrap())
}
fn id_str() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
}
fn worker() -> impl Strategy<Value = WorkerId> {
    id_str().prop_map(|s| WorkerId::new(s).unwrap())
}
fn employer() -> impl Strategy<Value = EmployerId> {
    id_str().prop_map(|s| EmployerId::new(s).unwrap())
}
fn month() -> impl Strategy<Value = Month> {
    (1951i32..2100, 1u32..=12).prop_map(|(y, m)| Month::new(y, m).unwrap())
}
fn date() -> impl Strategy<Value = Date> {
    (-7000i64..40000).prop_map(|d| Date::from_days_since_epoch(d).unwrap())
}
fn instant() -> impl Strategy<Value = Instant> {
    (0i64..4_000_000_000, 0u32..1_000_000_000, -720i32..=840)
        .prop_map(|(s, n, o)| Instant::new(s, n, o).unwrap())
}
fn money() -> impl Strategy<Value = Money> {
    (0i64..10_000_000_000).prop_map(Money::from_minor)
}
fn text() -> impl Strategy<Value = String> {
    "[ -~]{0,40}"
}
fn scheme() -> impl Strategy<Value = Scheme> {
    prop::sample::select(vec![
        Scheme::Pension,
        Scheme::Injury,
        Scheme::Medical,
        Scheme::Unemployment,
        Scheme::Maternity,
    ])
}
fn salt() -> impl Strategy<Value = Salt> {
    any::<[u8; 16]>().prop_map(Salt)
}
fn key_bytes() -> impl Strategy<Value = PublicKeyBytes> {
    any::<[u8; 32]>()
        .prop_map(|s| PublicKeyBytes(SigningKey::from_bytes(&s).verifying_key().to_bytes()))
}
fn contribution_line() -> impl Strategy<Value = ContributionLine> {
    (salt(), worker(), scheme(), money(), money(), money()).prop_map(
        |(salt, worker, scheme, base, employer_amount, employee_amount)| ContributionLine {
            salt,
            worker,
            scheme,
            base,
            employer_amount,
            employee_amount,
        },
    )
}
fn order_line() -> impl Strategy<Value = OrderLine> {
    (salt(), worker(), id_str(), instant(), 0i64..86_400, money()).prop_map(
        |(salt, worker, order, accepted_at, dur, premium)| OrderLine {
            salt,
            worker,
            order: OrderId::new(order).unwrap(),
            accepted_at,
            completed_at: accepted_at.plus_seconds(dur),
            premium,
        },
    )
}

/// Every kind except corrections (which nest a kind; generated below).
fn plain_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        (ju(), prop::sample::select(vec![Role::Employer, Role::Platform, Role::Worker]), id_str(), key_bytes()).prop_map(|(jurisdiction, role, s, public_key)| {
            EventKind::KeyRegistered(KeyRegistered { jurisdiction, role, subject: SubjectId::new(s).unwrap(), public_key })
        }),
        (key_bytes(), text()).prop_map(|(public_key, reason)| EventKind::KeyRevoked(KeyRevoked { public_key, reason })),
        (worker(), ju(), any::<bool>(), date(), any::<bool>(), proptest::option::of(ju())).prop_map(|(worker, jurisdiction, female, birth_date, f55, hukou)| {
            EventKind::PersonRegistered(PersonRegistered {
                worker,
                jurisdiction,
                sex: if female { Sex::Female } else { Sex::Male },
                birth_date,
                female_category: female.then_some(if f55 { FemaleCategory::FiftyFive } else { FemaleCategory::Fifty }),
                nationality: "CN".parse().unwrap(),
                hukou,
            })
        }),
        (worker(), ju(), date()).prop_map(|(worker, hukou, effective)| EventKind::HukouChanged(HukouChanged { worker, hukou, effective })),
        (id_str(), worker(), employer(), ju(), date(), proptest::option::of(date()), proptest::option::of(ju())).prop_map(|(c, worker, employer, jurisdiction, start, end, host)| {
            EventKind::ContractRegistered(ContractRegistered {
                contract: ContractId::new(c).unwrap(),
                worker,
                employer,
                jurisdiction,
                form: if host.is_some() { ContractForm::Posted } else { ContractForm::FixedTerm },
                start,
                end,
                host,
            })
        }),
        (id_str(), date(), text()).prop_map(|(c, end, reason)| EventKind::ContractEnded(ContractEnded { contract: ContractId::new(c).unwrap(), end, reason })),
        (employer(), ju(), month(), proptest::collection::vec(contribution_line(), 1..20), any::<bool>()).prop_map(|(employer, jurisdiction, period, lines, back_pay)| {
            EventKind::ContributionsDeclared(ContributionsDeclared { employer, jurisdiction, period, lines, back_pay })
        }),
        (worker(), ju(), month(), money(), money()).prop_map(|(worker, jurisdiction, period, base, amount)| {
            EventKind::FlexibleContribution(FlexibleContribution { worker, jurisdiction, period, scheme: Scheme::Pension, base, amount })
        }),
        (employer(), ju(), date(), proptest::collection::vec(order_line(), 1..20)).prop_map(|(platform, jurisdiction, date, lines)| {
            EventKind::PlatformOrders(PlatformOrders { platform, jurisdiction, date, lines })
        }),
        (worker(), ju(), instant(), any::<bool>(), employer(), proptest::option::of(id_str()), text()).prop_map(|(worker, jurisdiction, at, by_platform, who, order, description)| {
            EventKind::InjuryOccurred(InjuryOccurred {
                worker,
                jurisdiction,
                at,
                employer: (!by_platform).then(|| who.clone()),
                platform: by_platform.then_some(who),
                order: if by_platform { order.map(|o| OrderId::new(o).unwrap()) } else { None },
                description,
            })
        }),
        (worker(), month(), month(), proptest::collection::btree_set(scheme(), 1..4)).prop_map(|(worker, from, to, branches)| {
            EventKind::CoverageCertificateIssued(CoverageCertificateIssued {
                worker,
                agreement: "CN-DE".into(),
                sending: "CN-33".parse().unwrap(),
                receiving: "DE".parse().unwrap(),
                from: from.min(to),
                to: from.max(to),
                branches: branches.into_iter().collect(),
                basis: CertificateBasis::Exception,
            })
        }),
        (worker(), id_str(), id_str(), ju(), date(), date()).prop_map(|(worker, p, s, jurisdiction, a, b)| EventKind::WorkPermitLinked(WorkPermitLinked {
            worker,
            permit_number: PermitNumber::new(p).unwrap(),
            social_security_number: SocialSecurityNumber::new(s).unwrap(),
            jurisdiction,
            valid_from: a.min(b),
            valid_to: a.max(b),
        })),
        (id_str(), worker(), month()).prop_map(|(t, worker, requested)| EventKind::TransferRequested(TransferRequested {
            transfer: TransferId::new(t).unwrap(),
            worker,
            from: "CN-44".parse().unwrap(),
            to: "CN-51".parse().unwrap(),
            requested,
        })),
        (id_str(), money(), money()).prop_map(|(t, individual_account, pooled_fund)| EventKind::TransferCompleted(TransferCompleted {
            transfer: TransferId::new(t).unwrap(),
            individual_account,
            pooled_fund,
        })),
        (worker(), proptest::collection::vec((month(), month()), 1..5)).prop_map(|(worker, ps)| EventKind::ForeignPeriodsReported(ForeignPeriodsReported {
            worker,
            country: "DE".parse().unwrap(),
            scheme: Scheme::Pension,
            periods: ps.into_iter().map(|(a, b)| ForeignPeriod { from: a.min(b), to: a.max(b), kind: PeriodKind::Insurance }).collect(),
        })),
        (ju(), date(), 1951u64..2100, 1i64..10_000_000).prop_map(|(jurisdiction, effective, year, wage)| {
            let mut parameters = BTreeMap::new();
            parameters.insert("average_wage".to_string(), serde_json::json!({"year": year, "monthly": Money::from_minor(wage).to_string()}));
            parameters.insert("employer_pension_rate".to_string(), serde_json::json!("16"));
            EventKind::ParametersPublished(ParametersPublished { jurisdiction, effective, parameters })
        }),
    ]
}

fn any_kind() -> impl Strategy<Value = EventKind> {
    let non_batch = plain_kind().prop_filter("whole-event replacements are not batches", |k| {
        !k.is_batch()
    });
    prop_oneof![
        4 => plain_kind(),
        1 => (any::<[u8; 32]>(), text(), proptest::option::of(non_batch)).prop_map(|(t, reason, repl)| EventKind::Correction(Correction {
            target: Hash32(t),
            line: None,
            action: if repl.is_some() { CorrectionAction::Replace } else { CorrectionAction::Void },
            replacement: repl.map(|k| Replacement::Event(Box::new(k))),
            reason,
        })),
        1 => (any::<[u8; 32]>(), 0u32..100, text(), contribution_line()).prop_map(|(t, line, reason, l)| EventKind::Correction(Correction {
            target: Hash32(t),
            line: Some(line),
            action: CorrectionAction::Replace,
            replacement: Some(Replacement::Line(Line::Contribution(l))),
            reason,
        })),
        1 => (any::<[u8; 32]>(), 0u32..100, text(), order_line()).prop_map(|(t, line, reason, l)| EventKind::Correction(Correction {
            target: Hash32(t),
            line: Some(line),
            action: CorrectionAction::Replace,
            replacement: Some(Replacement::Line(Line::Order(l))),
            reason,
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // The JSON form parses back to the same model, for every kind.
    #[test]
    fn json_round_trips(kind in any_kind(), signed_at in instant()) {
        let body = EventBody { signed_at, kind };
        let json = to_json_event(&body).to_string();
        let (kind, at) = parse_json_event(&json).map_err(|e| TestCaseError::fail(format!("{e}: {json}")))?;
        prop_assert_eq!(EventBody { signed_at: at.unwrap(), kind }, body);
    }

    // The signed bytes decode to the same model and re-encode to the same bytes; the envelope
    // opens with its signatures and its id is the domain-separated hash of the body.
    #[test]
    fn wire_round_trips_and_signs(kind in any_kind(), signed_at in instant(), seed in any::<[u8; 32]>()) {
        let body = EventBody { signed_at, kind };
        let encoded = wire::encode_body(&body);
        let decoded = wire::decode_event(&encoded.body, &encoded.lines).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&decoded, &body);
        prop_assert_eq!(wire::encode_body(&decoded), encoded.clone());
        let key = SigningKey::from_bytes(&seed);
        let env = Envelope::sign(&body, &[&key]);
        prop_assert_eq!(&env.body, &encoded.body);
        let opened = env.clone().open().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(opened.id, event_id(&encoded.body));
        // The JSON of the decoded body equals the JSON of the original.
        prop_assert_eq!(to_json_event(&decoded), to_json_event(&opened.body));
        prop_assert_eq!(opened.body, body);
    }

    // Bytes appended to a valid body (an unknown field, a repeated field) are refused.
    #[test]
    fn trailing_fields_are_refused(kind in plain_kind(), signed_at in instant(), field in 30u32..1000, value in any::<u8>()) {
        let encoded = wire::encode_body(&EventBody { signed_at, kind });
        let mut bytes = encoded.body.clone();
        bytes.extend_from_slice(&prost_varint(u64::from(field) << 3));
        bytes.push(value & 0x7f);
        prop_assert!(wire::decode_event(&bytes, &encoded.lines).is_err());
    }
}

fn prost_varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

#[test]
fn every_kind_is_generated() {
    // Guards the generators above: all 17 kinds must be reachable.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        seen.insert(
            any_kind()
                .new_tree(&mut runner)
                .unwrap()
                .current()
                .type_name(),
        );
    }
    assert_eq!(seen.len(), 17, "kinds generated: {seen:?}");
}
