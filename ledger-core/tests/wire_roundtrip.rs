//! Round-trips and tamper-evidence of the event forms, on generated events of every kind:
//! model ↔ JSON, model ↔ signed bytes, bytes ↔ envelope. Every generated event is also valid
//! under the catalogue's field rules, so these are the events real clients send.

mod common;
use common::LEDGER;

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use ledger_core::envelope::{event_id, Envelope};
use ledger_core::event::*;
use ledger_core::ids::*;
use ledger_core::json::{parse_json_event, to_json_event};
use ledger_core::jurisdiction::Jurisdiction;
use ledger_core::money::{Money, MAX_MINOR};
use ledger_core::refusal::Refusal;
use ledger_core::time::{Date, Instant, Month};
use ledger_core::{merkle, pb, validate, wire};
use proptest::prelude::*;
use prost::Message;

// ---------- generators ----------

/// Every generated date, month and instant lies before this stamp, so generated events pass
/// the "not in the future" rules.
fn stamp() -> Instant {
    common::instant("2099-12-31T00:00:00Z")
}

fn country() -> impl Strategy<Value = Jurisdiction> {
    prop_oneof![
        prop::sample::select(vec!["CN", "DE", "KR", "FR", "JP"]).prop_map(common::ju),
        "[A-Z]{2}".prop_map(|s| common::ju(&s)),
    ]
}
fn cn_province() -> impl Strategy<Value = Jurisdiction> {
    prop_oneof![
        prop::sample::select(vec!["CN-44", "CN-33", "CN-51", "CN-11"]).prop_map(common::ju),
        "CN-[0-9A-Z]{1,3}".prop_map(|s| common::ju(&s)),
    ]
}
fn jurisdiction() -> impl Strategy<Value = Jurisdiction> {
    prop_oneof![
        country(),
        cn_province(),
        "[A-Z]{2}-[A-Z0-9]{1,3}".prop_map(|s| common::ju(&s)),
    ]
}
/// Identifiers with ASCII, CJK (3 UTF-8 bytes each) and inner spaces; at most 58 bytes.
fn id_str() -> impl Strategy<Value = String> {
    "[A-Za-z0-9一-龥]([A-Za-z0-9 _.:/一-龥-]{0,18}[A-Za-z0-9])?"
}
fn worker_id() -> impl Strategy<Value = WorkerId> {
    id_str().prop_map(|s| WorkerId::new(s).unwrap())
}
fn employer_id() -> impl Strategy<Value = EmployerId> {
    id_str().prop_map(|s| EmployerId::new(s).unwrap())
}
fn order_id() -> impl Strategy<Value = OrderId> {
    id_str().prop_map(|s| OrderId::new(s).unwrap())
}
/// Free text: printable ASCII, CJK, an accent, new lines and tabs.
fn text() -> impl Strategy<Value = String> {
    "[ -~\n\té一-龥]{0,40}"
}
fn month() -> impl Strategy<Value = Month> {
    (1951i32..=2099, 1u32..=12).prop_map(|(y, m)| Month::new(y, m).unwrap())
}
fn month_pair() -> impl Strategy<Value = (Month, Month)> {
    (month(), month()).prop_map(|(a, b)| (a.min(b), a.max(b)))
}
fn date() -> impl Strategy<Value = Date> {
    let first = common::date("1900-01-01").days_since_epoch();
    let last = common::date("2099-12-31").days_since_epoch();
    (first..=last).prop_map(|d| Date::from_days_since_epoch(d).unwrap())
}
fn date_pair() -> impl Strategy<Value = (Date, Date)> {
    (date(), date()).prop_map(|(a, b)| (a.min(b), a.max(b)))
}
/// Instants from 1901 to 2099-12-30, with nanoseconds and any real UTC offset.
fn instant() -> impl Strategy<Value = Instant> {
    (
        -2_177_452_800i64..=4_102_272_000,
        prop_oneof![Just(0u32), 0u32..1_000_000_000],
        prop_oneof![Just(0i32), Just(480), -1080i32..=1080],
    )
        .prop_map(|(s, n, o)| Instant::new(s, n, o).unwrap())
}
fn amount() -> impl Strategy<Value = Money> {
    prop_oneof![Just(0i64), 0i64..1_000_000_000, 0i64..=MAX_MINOR].prop_map(Money::from_minor)
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
fn public_key() -> impl Strategy<Value = PublicKeyBytes> {
    any::<[u8; 32]>().prop_map(|seed| common::pk(&SigningKey::from_bytes(&seed)))
}

fn contribution_line() -> impl Strategy<Value = ContributionLine> {
    (salt(), worker_id(), scheme(), amount(), amount(), amount()).prop_map(
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
    (
        salt(),
        worker_id(),
        order_id(),
        instant(),
        0i64..86_400,
        amount(),
    )
        .prop_map(
            |(salt, worker, order, accepted_at, secs, premium)| OrderLine {
                salt,
                worker,
                order,
                accepted_at,
                completed_at: accepted_at.plus_seconds(secs),
                premium,
            },
        )
}

fn key_registered() -> impl Strategy<Value = EventKind> {
    (
        jurisdiction(),
        prop::sample::select(vec![Role::Employer, Role::Platform, Role::Worker]),
        id_str(),
        public_key(),
    )
        .prop_map(|(jurisdiction, role, subject, public_key)| {
            EventKind::KeyRegistered(KeyRegistered {
                jurisdiction,
                role,
                subject: SubjectId::new(subject).unwrap(),
                public_key,
            })
        })
}
fn key_revoked() -> impl Strategy<Value = EventKind> {
    (public_key(), text())
        .prop_map(|(public_key, reason)| EventKind::KeyRevoked(KeyRevoked { public_key, reason }))
}
fn person_registered() -> impl Strategy<Value = EventKind> {
    (
        worker_id(),
        jurisdiction(),
        prop_oneof![
            Just(None),
            Just(Some(FemaleCategory::Fifty)),
            Just(Some(FemaleCategory::FiftyFive))
        ],
        date(),
        country(),
        prop::option::of(cn_province()),
    )
        .prop_map(
            |(worker, jurisdiction, female_category, birth_date, nationality, hukou)| {
                let hukou = hukou.filter(|_| nationality.as_str() == "CN");
                EventKind::PersonRegistered(PersonRegistered {
                    worker,
                    jurisdiction,
                    sex: if female_category.is_some() {
                        Sex::Female
                    } else {
                        Sex::Male
                    },
                    birth_date,
                    female_category,
                    nationality,
                    hukou,
                })
            },
        )
}
fn hukou_changed() -> impl Strategy<Value = EventKind> {
    (worker_id(), cn_province(), date()).prop_map(|(worker, hukou, effective)| {
        EventKind::HukouChanged(HukouChanged {
            worker,
            hukou,
            effective,
        })
    })
}
fn contract_registered() -> impl Strategy<Value = EventKind> {
    (
        id_str(),
        worker_id(),
        employer_id(),
        jurisdiction(),
        prop::sample::select(vec![
            ContractForm::OpenEnded,
            ContractForm::FixedTerm,
            ContractForm::PartTime,
            ContractForm::AgencyWork,
            ContractForm::Platform,
            ContractForm::SelfEmployed,
            ContractForm::Posted,
        ]),
        date_pair(),
        any::<bool>(),
        prop::option::of(jurisdiction()),
    )
        .prop_map(
            |(c, worker, employer, jurisdiction, form, (start, end), ended, host)| {
                EventKind::ContractRegistered(ContractRegistered {
                    contract: ContractId::new(c).unwrap(),
                    worker,
                    employer,
                    jurisdiction,
                    form,
                    start,
                    end: ended.then_some(end),
                    host: host.filter(|_| form == ContractForm::Posted),
                })
            },
        )
}
fn contract_ended() -> impl Strategy<Value = EventKind> {
    (id_str(), date(), text()).prop_map(|(c, end, reason)| {
        EventKind::ContractEnded(ContractEnded {
            contract: ContractId::new(c).unwrap(),
            end,
            reason,
        })
    })
}
/// A payroll batch of 1 to 19 lines, each (worker, scheme) once, with random salts.
fn contributions_declared() -> impl Strategy<Value = EventKind> {
    (
        employer_id(),
        jurisdiction(),
        month(),
        prop::collection::vec(contribution_line(), 1..20),
        any::<bool>(),
    )
        .prop_map(|(employer, jurisdiction, period, mut lines, back_pay)| {
            let mut seen = BTreeSet::new();
            lines.retain(|l| seen.insert((l.worker.clone(), l.scheme)));
            EventKind::ContributionsDeclared(ContributionsDeclared {
                employer,
                jurisdiction,
                period,
                lines,
                back_pay,
            })
        })
}
fn flexible_contribution() -> impl Strategy<Value = EventKind> {
    (
        worker_id(),
        jurisdiction(),
        month(),
        prop::sample::select(vec![Scheme::Pension, Scheme::Medical]),
        amount(),
        amount(),
    )
        .prop_map(|(worker, jurisdiction, period, scheme, base, amount)| {
            EventKind::FlexibleContribution(FlexibleContribution {
                worker,
                jurisdiction,
                period,
                scheme,
                base,
                amount,
            })
        })
}
/// A day of platform orders, 1 to 19 lines, each order once, with random salts.
fn platform_orders() -> impl Strategy<Value = EventKind> {
    (
        employer_id(),
        jurisdiction(),
        date(),
        prop::collection::vec(order_line(), 1..20),
    )
        .prop_map(|(platform, jurisdiction, date, mut lines)| {
            let mut seen = BTreeSet::new();
            lines.retain(|l| seen.insert(l.order.clone()));
            EventKind::PlatformOrders(PlatformOrders {
                platform,
                jurisdiction,
                date,
                lines,
            })
        })
}
fn injury_occurred() -> impl Strategy<Value = EventKind> {
    (
        worker_id(),
        jurisdiction(),
        instant(),
        any::<bool>(),
        employer_id(),
        prop::option::of(order_id()),
        text(),
    )
        .prop_map(
            |(worker, jurisdiction, at, on_platform, who, order, description)| {
                EventKind::InjuryOccurred(InjuryOccurred {
                    worker,
                    jurisdiction,
                    at,
                    employer: (!on_platform).then(|| who.clone()),
                    platform: on_platform.then_some(who),
                    order: order.filter(|_| on_platform),
                    description,
                })
            },
        )
}
/// A certificate under an agreement of two distinct countries; `sending` is in one of them
/// (the country or one of its provinces), `receiving` in the other.
fn coverage_certificate_issued() -> impl Strategy<Value = EventKind> {
    (
        worker_id(),
        "[A-Z]{2}",
        "[A-Z]{2}",
        prop::option::of("[A-Z0-9]{1,3}"),
        any::<bool>(),
        month_pair(),
        prop::sample::subsequence(
            vec![
                Scheme::Pension,
                Scheme::Injury,
                Scheme::Medical,
                Scheme::Unemployment,
                Scheme::Maternity,
            ],
            1..=5,
        )
        .prop_shuffle(),
        prop::sample::select(vec![
            CertificateBasis::Posting,
            CertificateBasis::Extension,
            CertificateBasis::Exception,
        ]),
    )
        .prop_filter("two distinct countries", |(_, a, b, ..)| a != b)
        .prop_map(
            |(worker, a, b, sub, a_sends, (from, to), branches, basis)| {
                let (s, r) = if a_sends { (&a, &b) } else { (&b, &a) };
                let sending = match sub {
                    Some(sub) => common::ju(&format!("{s}-{sub}")),
                    None => common::ju(s),
                };
                EventKind::CoverageCertificateIssued(CoverageCertificateIssued {
                    worker,
                    agreement: format!("{a}-{b}"),
                    sending,
                    receiving: common::ju(r),
                    from,
                    to,
                    branches,
                    basis,
                })
            },
        )
}
fn work_permit_linked() -> impl Strategy<Value = EventKind> {
    (worker_id(), id_str(), id_str(), jurisdiction(), date_pair()).prop_map(
        |(worker, permit, ssn, jurisdiction, (valid_from, valid_to))| {
            EventKind::WorkPermitLinked(WorkPermitLinked {
                worker,
                permit_number: PermitNumber::new(permit).unwrap(),
                social_security_number: SocialSecurityNumber::new(ssn).unwrap(),
                jurisdiction,
                valid_from,
                valid_to,
            })
        },
    )
}
fn transfer_requested() -> impl Strategy<Value = EventKind> {
    (id_str(), worker_id(), cn_province(), cn_province(), month())
        .prop_filter("two provinces", |(_, _, from, to, _)| from != to)
        .prop_map(|(t, worker, from, to, requested)| {
            EventKind::TransferRequested(TransferRequested {
                transfer: TransferId::new(t).unwrap(),
                worker,
                from,
                to,
                requested,
            })
        })
}
fn transfer_completed() -> impl Strategy<Value = EventKind> {
    (id_str(), amount(), amount()).prop_map(|(t, individual_account, pooled_fund)| {
        EventKind::TransferCompleted(TransferCompleted {
            transfer: TransferId::new(t).unwrap(),
            individual_account,
            pooled_fund,
        })
    })
}
fn foreign_periods_reported() -> impl Strategy<Value = EventKind> {
    (
        worker_id(),
        country(),
        scheme(),
        prop::collection::vec(
            (
                month_pair(),
                prop::sample::select(vec![
                    PeriodKind::Insurance,
                    PeriodKind::Residence,
                    PeriodKind::Voluntary,
                ]),
            ),
            1..6,
        ),
    )
        .prop_map(|(worker, country, scheme, periods)| {
            EventKind::ForeignPeriodsReported(ForeignPeriodsReported {
                worker,
                country,
                scheme,
                periods: periods
                    .into_iter()
                    .map(|((from, to), kind)| ForeignPeriod { from, to, kind })
                    .collect(),
            })
        })
}
fn percent() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        (0i64..=10_000).prop_map(|m| serde_json::json!(Money::from_minor(m).to_string())),
        (0u32..=100).prop_map(|p| serde_json::json!(p.to_string())),
    ]
}
/// Always an average wage, plus any subset of the other known parameters.
fn parameters_published() -> impl Strategy<Value = EventKind> {
    let percents = [
        "employer_pension_rate",
        "employee_pension_rate",
        "flexible_pension_rate",
        "flexible_account_rate",
        "pooled_transfer_rate",
        "base_floor_percent",
        "base_ceiling_percent",
    ];
    (
        jurisdiction(),
        date(),
        1951u64..=9999,
        1i64..=MAX_MINOR,
        prop::collection::vec(prop::option::of(percent()), percents.len()),
        prop::option::of(prop::collection::vec(cn_province(), 0..4)),
        prop::option::of(prop::collection::vec(id_str(), 0..4)),
    )
        .prop_map(
            move |(jurisdiction, effective, year, wage, rates, provinces, platforms)| {
                let mut parameters = BTreeMap::new();
                parameters.insert(
                    "average_wage".to_string(),
                    serde_json::json!({"year": year, "monthly": Money::from_minor(wage).to_string()}),
                );
                for (name, v) in percents.iter().zip(rates) {
                    if let Some(v) = v {
                        parameters.insert(name.to_string(), v);
                    }
                }
                if let Some(p) = provinces {
                    let codes: Vec<String> = p.iter().map(|j| j.to_string()).collect();
                    parameters.insert("pilot_provinces".into(), serde_json::json!(codes));
                }
                if let Some(p) = platforms {
                    parameters.insert("pilot_platforms".into(), serde_json::json!(p));
                }
                EventKind::ParametersPublished(ParametersPublished {
                    jurisdiction,
                    effective,
                    parameters,
                })
            },
        )
}

/// Every kind a whole-event replacement may be: not a batch, not a correction.
fn replaceable_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        key_registered(),
        key_revoked(),
        person_registered(),
        hukou_changed(),
        contract_registered(),
        contract_ended(),
        flexible_contribution(),
        injury_occurred(),
        coverage_certificate_issued(),
        work_permit_linked(),
        transfer_requested(),
        transfer_completed(),
        foreign_periods_reported(),
        parameters_published(),
    ]
}

fn target() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>().prop_map(Hash32)
}

/// Corrections of every shape: void an event, void a line, replace a contribution line,
/// replace an order line, replace a whole event.
fn correction() -> impl Strategy<Value = EventKind> {
    let c = |target, line, action, replacement, reason| {
        EventKind::Correction(Correction {
            target,
            line,
            action,
            replacement,
            reason,
        })
    };
    prop_oneof![
        (target(), text()).prop_map(move |(t, r)| c(t, None, CorrectionAction::Void, None, r)),
        (target(), any::<u32>(), text()).prop_map(move |(t, l, r)| c(
            t,
            Some(l),
            CorrectionAction::Void,
            None,
            r
        )),
        (target(), 0u32..100_000, contribution_line(), text()).prop_map(move |(t, l, x, r)| c(
            t,
            Some(l),
            CorrectionAction::Replace,
            Some(Replacement::Line(Line::Contribution(x))),
            r
        )),
        (target(), 0u32..100_000, order_line(), text()).prop_map(move |(t, l, x, r)| c(
            t,
            Some(l),
            CorrectionAction::Replace,
            Some(Replacement::Line(Line::Order(x))),
            r
        )),
        (target(), replaceable_kind(), text()).prop_map(move |(t, k, r)| c(
            t,
            None,
            CorrectionAction::Replace,
            Some(Replacement::Event(Box::new(k))),
            r
        )),
    ]
}

fn batch_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![contributions_declared(), platform_orders()]
}

/// Any valid event of any of the 17 kinds.
fn any_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        14 => replaceable_kind(),
        2 => batch_kind(),
        2 => correction(),
    ]
}

fn any_body() -> impl Strategy<Value = EventBody> {
    (any_kind(), instant()).prop_map(|(kind, signed_at)| EventBody { signed_at, kind })
}

fn signing_key() -> impl Strategy<Value = SigningKey> {
    any::<[u8; 32]>().prop_map(|s| SigningKey::from_bytes(&s))
}

// ---------- helpers ----------

fn varint(mut v: u64) -> Vec<u8> {
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

/// One protobuf field: tag, then a value of the wire type.
fn field(number: u32, wire_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = varint((u64::from(number) << 3) | u64::from(wire_type));
    match wire_type {
        0 => {
            let mut v = [0u8; 8];
            for (d, s) in v.iter_mut().zip(payload) {
                *d = *s;
            }
            out.extend_from_slice(&varint(u64::from_le_bytes(v)));
        }
        1 => out.extend(payload.iter().copied().chain([0; 8]).take(8)),
        2 => {
            out.extend_from_slice(&varint(payload.len() as u64));
            out.extend_from_slice(payload);
        }
        5 => out.extend(payload.iter().copied().chain([0; 4]).take(4)),
        _ => unreachable!("wire types used here: 0, 1, 2, 5"),
    }
    out
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

// ---------- properties ----------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    // Generated events are valid under the catalogue's field rules (so the round-trips below
    // are about events that can really be submitted), and the JSON of every kind parses back to
    // an equal model, with and without signed_at.
    #[test]
    fn json_round_trips_every_kind(body in any_body()) {
        validate::check_kind(&body.kind, stamp()).map_err(|e| fail(format!("generator made an invalid event: {e}: {:?}", body.kind)))?;

        let text = serde_json::to_string(&body.kind).map_err(fail)?;
        let (kind, signed_at) = parse_json_event(&text).map_err(|e| fail(format!("{e}: {text}")))?;
        prop_assert_eq!(&kind, &body.kind);
        prop_assert_eq!(signed_at, None);

        let with_time = to_json_event(&body).to_string();
        let (kind, signed_at) = parse_json_event(&with_time).map_err(|e| fail(format!("{e}: {with_time}")))?;
        prop_assert_eq!(EventBody { signed_at: signed_at.unwrap(), kind }, body);
    }

    // The signed bytes decode to the same body and re-encode byte for byte; the envelope opens
    // (one and two signers), carries exactly those bytes, and its id is event_id(body).
    #[test]
    fn wire_round_trips_and_envelopes_verify(body in any_body(), k1 in signing_key(), k2 in signing_key()) {
        let encoded = wire::encode_body(&body);
        prop_assert_eq!(encoded.lines.is_empty(), !body.kind.is_batch());
        prop_assert_eq!(encoded.lines.len(), body.kind.lines().len());

        let decoded = wire::decode_event(&encoded.body, &encoded.lines).map_err(fail)?;
        prop_assert_eq!(&decoded, &body);
        let again = wire::encode_body(&decoded);
        prop_assert_eq!(&again.body, &encoded.body);
        prop_assert_eq!(&again.lines, &encoded.lines);

        for (i, l) in encoded.lines.iter().enumerate() {
            prop_assert_eq!(wire::decode_line(matches!(body.kind, EventKind::PlatformOrders(_)), l).map_err(fail)?, body.kind.lines()[i].clone());
        }

        let signers: Vec<&SigningKey> = if k1.verifying_key() == k2.verifying_key() { vec![&k1] } else { vec![&k1, &k2] };
        let env = Envelope::sign(&LEDGER, &body, &signers);
        prop_assert_eq!(&env.body, &encoded.body);
        prop_assert_eq!(&env.lines, &encoded.lines);
        prop_assert_eq!(env.signatures.len(), signers.len());
        let opened = env.clone().open(&LEDGER).map_err(fail)?;
        prop_assert_eq!(opened.id, event_id(&LEDGER, &encoded.body));
        prop_assert_eq!(opened.id, env.id(&LEDGER));
        prop_assert_eq!(opened.body, body);
        prop_assert_eq!(opened.envelope, env);
    }

    // Changing any single byte of a signed body never opens: it is refused by the decoder, as
    // non-canonical, or by the signature check.
    #[test]
    fn any_flipped_body_byte_is_refused(body in any_body(), k in signing_key(), pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let mut env = Envelope::sign(&LEDGER, &body, &[&k]);
        let p = pos.index(env.body.len());
        env.body[p] ^= mask;
        match env.open(&LEDGER) {
            Ok(v) => prop_assert!(false, "a body with byte {} changed opened as {:?}", p, v.body),
            Err(Refusal::Malformed(_) | Refusal::NonCanonical | Refusal::BadSignature(_)
                | Refusal::InvalidField(_) | Refusal::UnsupportedVersion(_)) => {}
            Err(other) => prop_assert!(false, "unexpected refusal {:?}", other),
        }
    }

    // A changed signature byte is refused as a bad signature.
    #[test]
    fn any_flipped_signature_byte_is_refused(body in any_body(), k in signing_key(), pos in 0usize..64, mask in 1u8..=255) {
        let mut env = Envelope::sign(&LEDGER, &body, &[&k]);
        env.signatures[0].signature[pos] ^= mask;
        prop_assert!(matches!(env.open(&LEDGER), Err(Refusal::BadSignature(_))));
    }

    // An unknown field appended to a valid body (any field number the body does not use, any
    // wire type) is refused as non-canonical or malformed, never ignored.
    #[test]
    fn unknown_fields_are_refused(
        body in any_body(),
        number in prop_oneof![3u32..=9, 27u32..=1000, 1000u32..(1 << 29)],
        wire_type in prop::sample::select(vec![0u8, 1, 2, 5]),
        payload in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let encoded = wire::encode_body(&body);
        let mut bytes = encoded.body.clone();
        bytes.extend(field(number, wire_type, &payload));
        let r = wire::decode_event(&bytes, &encoded.lines);
        prop_assert!(matches!(r, Err(Refusal::NonCanonical | Refusal::Malformed(_))), "{:?}", r);
    }

    // The lines of a batch are bound to the signed root: a changed byte in any line, a dropped,
    // duplicated or reordered line, or lines of another batch are refused as malformed.
    #[test]
    fn tampered_lines_are_refused(kind in batch_kind(), other in batch_kind(), signed_at in instant(), k in signing_key(),
                                  which in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let body = EventBody { signed_at, kind };
        let env = Envelope::sign(&LEDGER, &body, &[&k]);
        let n = env.lines.len();
        let i = which.index(n);

        let mut flipped = env.clone();
        let p = pos.index(flipped.lines[i].len());
        flipped.lines[i][p] ^= mask;
        prop_assert!(matches!(wire::decode_event(&flipped.body, &flipped.lines), Err(Refusal::Malformed(_))));
        prop_assert!(flipped.open(&LEDGER).is_err());

        let mut dropped = env.clone();
        dropped.lines.remove(i);
        if dropped.lines.is_empty() {
            prop_assert!(matches!(wire::decode_event(&dropped.body, &dropped.lines), Err(Refusal::InvalidField(_))));
        } else {
            prop_assert!(matches!(wire::decode_event(&dropped.body, &dropped.lines), Err(Refusal::Malformed(_))));
        }

        let mut duplicated = env.clone();
        duplicated.lines.push(env.lines[i].clone());
        prop_assert!(matches!(wire::decode_event(&duplicated.body, &duplicated.lines), Err(Refusal::Malformed(_))));

        if n > 1 {
            let mut reordered = env.clone();
            reordered.lines.swap(i, (i + 1) % n);
            prop_assert!(matches!(wire::decode_event(&reordered.body, &reordered.lines), Err(Refusal::Malformed(_))));
        }

        let foreign = wire::encode_body(&EventBody { signed_at, kind: other });
        if foreign.lines != env.lines {
            prop_assert!(matches!(wire::decode_event(&env.body, &foreign.lines), Err(Refusal::Malformed(_))));
        }
    }

    // Lines are refused on a body that commits to none.
    #[test]
    fn lines_beside_a_non_batch_body_are_refused(kind in replaceable_kind(), signed_at in instant(), line in contribution_line()) {
        let encoded = wire::encode_body(&EventBody { signed_at, kind });
        let lines = vec![wire::encode_line(&Line::Contribution(line))];
        prop_assert!(matches!(wire::decode_event(&encoded.body, &lines), Err(Refusal::Malformed(_))));
    }
}

#[test]
fn every_kind_and_correction_shape_is_generated() {
    // Guards the generators: all 17 kinds and all 5 correction shapes are reachable.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut kinds = BTreeSet::new();
    let mut shapes = BTreeSet::new();
    for _ in 0..3000 {
        let k = any_kind().new_tree(&mut runner).unwrap().current();
        kinds.insert(k.type_name());
        if let EventKind::Correction(c) = &k {
            shapes.insert(match (&c.line, &c.replacement) {
                (None, None) => "void event",
                (Some(_), None) => "void line",
                (Some(_), Some(Replacement::Line(Line::Contribution(_)))) => {
                    "replace contribution line"
                }
                (Some(_), Some(Replacement::Line(Line::Order(_)))) => "replace order line",
                (None, Some(Replacement::Event(_))) => "replace event",
                _ => "other",
            });
        }
    }
    assert_eq!(kinds.len(), 17, "kinds generated: {kinds:?}");
    assert_eq!(shapes.len(), 5, "correction shapes generated: {shapes:?}");
    assert!(!shapes.contains("other"));
}

/// A fixed two-line declaration, for the hand-built wire tests below.
fn sample_batch() -> EventBody {
    EventBody {
        signed_at: common::instant("2024-02-01T09:00:00+08:00"),
        kind: common::declaration(
            "E1",
            "CN-44",
            "2024-01",
            vec![
                common::contribution_line("W-1", Scheme::Pension, 1),
                common::contribution_line("W-2", Scheme::Injury, 2),
            ],
            false,
        ),
    }
}

#[test]
fn a_line_with_an_unknown_field_is_refused_even_when_the_root_commits_to_it() {
    // Lines are decoded canonically too: an author cannot smuggle bytes into a line by signing a
    // root over them.
    let encoded = wire::encode_body(&sample_batch());
    let mut lines = encoded.lines.clone();
    lines[1].extend(field(99, 0, &[7]));
    let mut msg = pb::EventBody::decode(encoded.body.as_slice()).unwrap();
    let Some(pb::event_body::Kind::ContributionsDeclared(d)) = &mut msg.kind else {
        panic!("a declaration")
    };
    d.lines_root = merkle::root(&lines).0.to_vec();
    let body = msg.encode_to_vec();
    assert_eq!(
        wire::decode_event(&body, &lines),
        Err(Refusal::NonCanonical)
    );
    // The untouched lines under the recomputed (now wrong) root are refused as not matching it.
    assert!(matches!(
        wire::decode_event(&body, &encoded.lines),
        Err(Refusal::Malformed(_))
    ));
}

#[test]
fn an_unknown_field_inside_the_kind_is_refused() {
    // The canonical check covers nested messages, not just the top level.
    let body = EventBody {
        signed_at: common::instant("2024-01-01T00:00:00Z"),
        kind: common::person_registered("W-1", "CN-44"),
    };
    let encoded = wire::encode_body(&body);
    let mut msg = pb::EventBody::decode(encoded.body.as_slice()).unwrap();
    let Some(pb::event_body::Kind::PersonRegistered(p)) = msg.kind.take() else {
        panic!("a person")
    };
    let mut inner = p.encode_to_vec();
    inner.extend(field(42, 2, b"hidden"));
    let mut bytes = msg.encode_to_vec(); // version and signed_at only
    bytes.extend(field(12, 2, &inner)); // person_registered = 12
    assert_eq!(wire::decode_event(&bytes, &[]), Err(Refusal::NonCanonical));
    // Without the extra field the same hand-built bytes are the canonical body.
    let mut plain = msg.encode_to_vec();
    plain.extend(field(12, 2, &p.encode_to_vec()));
    assert_eq!(plain, encoded.body);
    assert_eq!(wire::decode_event(&plain, &[]).unwrap(), body);
}

#[test]
fn repeated_and_conflicting_fields_are_refused() {
    // Protobuf's "last one wins" would give one event two encodings; the decoder refuses it.
    let encoded = wire::encode_body(&sample_batch());
    let mut version_twice = encoded.body.clone();
    version_twice.extend(field(1, 0, &[1]));
    assert_eq!(
        wire::decode_event(&version_twice, &encoded.lines),
        Err(Refusal::NonCanonical)
    );
    // A second kind in the oneof.
    let person = wire::encode_body(&EventBody {
        signed_at: common::instant("2024-01-01T00:00:00Z"),
        kind: common::person_registered("W-1", "CN-44"),
    });
    let mut two_kinds = person.body.clone();
    two_kinds.extend(field(
        13,
        2,
        &pb::HukouChanged {
            worker: "W-1".into(),
            hukou: "CN-44".into(),
            effective: 20240101,
        }
        .encode_to_vec(),
    ));
    assert_eq!(
        wire::decode_event(&two_kinds, &[]),
        Err(Refusal::NonCanonical)
    );
}

#[test]
fn a_non_minimal_varint_is_refused() {
    // The same number in a longer varint is another encoding of the same event.
    let encoded = wire::encode_body(&sample_batch());
    assert_eq!(&encoded.body[..2], &[0x08, 0x01], "version = 1 comes first");
    let mut padded = vec![0x08, 0x81, 0x00];
    padded.extend_from_slice(&encoded.body[2..]);
    assert_eq!(
        wire::decode_event(&padded, &encoded.lines),
        Err(Refusal::NonCanonical)
    );
}

#[test]
fn other_versions_and_missing_kinds_are_refused() {
    // The version field is checked, and a body without a kind names the catalogue.
    let encoded = wire::encode_body(&sample_batch());
    let mut msg = pb::EventBody::decode(encoded.body.as_slice()).unwrap();
    msg.version = 2;
    assert_eq!(
        wire::decode_event(&msg.encode_to_vec(), &encoded.lines),
        Err(Refusal::UnsupportedVersion(2))
    );
    msg.version = 0;
    assert_eq!(
        wire::decode_event(&msg.encode_to_vec(), &encoded.lines),
        Err(Refusal::UnsupportedVersion(0))
    );
    msg.version = 1;
    msg.kind = None;
    assert!(matches!(
        wire::decode_event(&msg.encode_to_vec(), &[]),
        Err(Refusal::Malformed(m)) if m.contains("docs/events.md")
    ));
}

#[test]
fn extreme_instants_are_refused_not_a_panic() {
    // Instants at the ends of the integer ranges come off the network; they must be refused
    // with a field error, never overflow.
    let encoded = wire::encode_body(&sample_batch());
    let msg = pb::EventBody::decode(encoded.body.as_slice()).unwrap();
    for (unix_seconds, nanos, offset_minutes) in [
        (i64::MAX, 0, 60),
        (i64::MIN, 0, -60),
        (i64::MAX, 999_999_999, 1080),
        (0, 0, i32::MIN),
        (0, 0, i32::MAX),
        (0, 1_000_000_000, 0),
    ] {
        let mut m = msg.clone();
        m.signed_at = Some(pb::Instant {
            unix_seconds,
            nanos,
            offset_minutes,
        });
        let r = std::panic::catch_unwind(|| wire::decode_event(&m.encode_to_vec(), &encoded.lines));
        match r {
            Ok(Err(Refusal::InvalidField(f))) => assert!(f.starts_with("signed_at"), "{f}"),
            other => panic!("({unix_seconds}, {nanos}, {offset_minutes}): {other:?}"),
        }
        assert!(Instant::new(unix_seconds, nanos, offset_minutes).is_err());
    }
}

#[test]
fn amounts_beyond_the_money_range_are_refused_on_the_wire() {
    // An amount the JSON form cannot carry (over MAX_MINOR) must not enter through the wire:
    // otherwise an accepted event would have a JSON form that does not parse.
    for (minor, ok) in [
        (MAX_MINOR, true),
        (-MAX_MINOR, true),
        (MAX_MINOR + 1, false),
        (-MAX_MINOR - 1, false),
        (i64::MAX, false),
        (i64::MIN, false),
    ] {
        let mut body = sample_batch();
        let EventKind::ContributionsDeclared(d) = &mut body.kind else {
            unreachable!()
        };
        d.lines[0].base = Money::from_minor(minor);
        let encoded = wire::encode_body(&body);
        let r = wire::decode_event(&encoded.body, &encoded.lines);
        if ok {
            let decoded = r.unwrap();
            let json = to_json_event(&decoded).to_string();
            let (kind, _) = parse_json_event(&json).unwrap();
            assert_eq!(kind, decoded.kind);
        } else {
            assert!(
                matches!(&r, Err(Refusal::InvalidField(m)) if m.contains("base")),
                "{minor}: {r:?}"
            );
        }
        // The same holds for a non-batch amount.
        let flex = EventBody {
            signed_at: body.signed_at,
            kind: EventKind::TransferCompleted(TransferCompleted {
                transfer: TransferId::new("T-1").unwrap(),
                individual_account: Money::from_minor(minor),
                pooled_fund: Money::ZERO,
            }),
        };
        let encoded = wire::encode_body(&flex);
        assert_eq!(
            wire::decode_event(&encoded.body, &[]).is_ok(),
            ok,
            "{minor}"
        );
    }
}

#[test]
fn a_batch_cannot_be_a_whole_event_replacement() {
    // Batch lines of a nested event have nowhere to travel; the decoder refuses such a correction.
    let body = EventBody {
        signed_at: common::instant("2024-01-01T00:00:00Z"),
        kind: EventKind::Correction(Correction {
            target: Hash32([3; 32]),
            line: None,
            action: CorrectionAction::Replace,
            replacement: Some(Replacement::Event(Box::new(sample_batch().kind))),
            reason: "wrong".into(),
        }),
    };
    let encoded = wire::encode_body(&body);
    assert!(encoded.lines.is_empty());
    assert!(matches!(
        wire::decode_event(&encoded.body, &[]),
        Err(Refusal::InvalidField(m)) if m.contains("replacement")
    ));
}

#[test]
fn signatures_from_another_body_or_key_do_not_verify() {
    // A signature is bound to its body and its key: moved to another body or claimed by another
    // key, it is refused.
    let a = Envelope::sign(&LEDGER, &sample_batch(), &[&common::key(7)]);
    let mut other = sample_batch();
    other.signed_at = other.signed_at.plus_seconds(1);
    let b = Envelope::sign(&LEDGER, &other, &[&common::key(7)]);
    let mut moved = b.clone();
    moved.signatures = a.signatures.clone();
    assert!(matches!(moved.open(&LEDGER), Err(Refusal::BadSignature(_))));
    let mut claimed = a.clone();
    claimed.signatures[0].public_key = common::pk(&common::key(8));
    assert!(matches!(
        claimed.open(&LEDGER),
        Err(Refusal::BadSignature(_))
    ));
    let mut twice = a.clone();
    twice.signatures.push(a.signatures[0].clone());
    assert!(matches!(twice.open(&LEDGER), Err(Refusal::Malformed(m)) if m.contains("twice")));
    let mut unsigned = a;
    unsigned.signatures.clear();
    assert_eq!(unsigned.open(&LEDGER), Err(Refusal::Unsigned));
}
