//! The signed wire form: model ↔ protobuf (`pb`, generated from events.proto). This module owns
//! the signed-bytes format: encoding is deterministic, and decoding refuses any body that does
//! not re-encode to the same bytes, so an event has exactly one encoding and one id.

use prost::Message;

use crate::event::*;
use crate::ids::{
    check_text, ContractId, EmployerId, OrderId, PermitNumber, SocialSecurityNumber, SubjectId,
    TransferId, WorkerId,
};
use crate::jurisdiction::Jurisdiction;
use crate::limits::{MAX_BATCH_LINES, MAX_BODY_BYTES, MAX_LINE_BYTES};
use crate::merkle;
use crate::money::{Money, MAX_MINOR};
use crate::pb;
use crate::refusal::Refusal;
use crate::time::{Date, Instant, Month};

/// The format version written into every body.
pub const BODY_VERSION: u32 = 1;

/// A body and its lines, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub body: Vec<u8>,
    pub lines: Vec<Vec<u8>>,
}

// ---------- model → wire ----------

fn instant(i: Instant) -> pb::Instant {
    pb::Instant {
        unix_seconds: i.unix_seconds(),
        nanos: i.nanos(),
        offset_minutes: i.offset_minutes(),
    }
}

fn scheme(s: Scheme) -> i32 {
    (match s {
        Scheme::Pension => pb::Scheme::Pension,
        Scheme::Injury => pb::Scheme::Injury,
        Scheme::Medical => pb::Scheme::Medical,
        Scheme::Unemployment => pb::Scheme::Unemployment,
        Scheme::Maternity => pb::Scheme::Maternity,
    }) as i32
}

fn contribution_line(l: &ContributionLine) -> pb::ContributionLine {
    pb::ContributionLine {
        salt: l.salt.0.to_vec(),
        worker: l.worker.to_string(),
        scheme: scheme(l.scheme),
        base: l.base.minor(),
        employer_amount: l.employer_amount.minor(),
        employee_amount: l.employee_amount.minor(),
    }
}

fn order_line(l: &OrderLine) -> pb::OrderLine {
    pb::OrderLine {
        salt: l.salt.0.to_vec(),
        worker: l.worker.to_string(),
        order: l.order.to_string(),
        accepted_at: Some(instant(l.accepted_at)),
        completed_at: Some(instant(l.completed_at)),
        premium: l.premium.minor(),
    }
}

/// Encodes a line as it travels in `Envelope.lines` and as its Merkle leaf.
pub fn encode_line(line: &Line) -> Vec<u8> {
    match line {
        Line::Contribution(l) => contribution_line(l).encode_to_vec(),
        Line::Order(l) => order_line(l).encode_to_vec(),
    }
}

fn kind_to_pb(kind: &EventKind, lines: &mut Vec<Vec<u8>>) -> pb::event_body::Kind {
    use pb::event_body::Kind as K;
    let s = |x: &dyn ToString| x.to_string();
    let mut batch = |ls: Vec<Line>| -> (u32, Vec<u8>) {
        *lines = ls.iter().map(encode_line).collect();
        (lines.len() as u32, merkle::root(lines).0.to_vec())
    };
    match kind {
        EventKind::KeyRegistered(e) => K::KeyRegistered(pb::KeyRegistered {
            jurisdiction: s(&e.jurisdiction),
            role: (match e.role {
                Role::Agency => pb::Role::Agency,
                Role::Employer => pb::Role::Employer,
                Role::Platform => pb::Role::Platform,
                Role::Worker => pb::Role::Worker,
            }) as i32,
            subject: s(&e.subject),
            public_key: e.public_key.0.to_vec(),
        }),
        EventKind::KeyRevoked(e) => K::KeyRevoked(pb::KeyRevoked {
            public_key: e.public_key.0.to_vec(),
            reason: e.reason.clone(),
        }),
        EventKind::PersonRegistered(e) => K::PersonRegistered(pb::PersonRegistered {
            worker: s(&e.worker),
            jurisdiction: s(&e.jurisdiction),
            sex: (match e.sex {
                Sex::Male => pb::Sex::Male,
                Sex::Female => pb::Sex::Female,
            }) as i32,
            birth_date: e.birth_date.to_wire(),
            female_category: e.female_category.map_or(0, FemaleCategory::years),
            nationality: s(&e.nationality),
            hukou: e.hukou.as_ref().map(|h| h.to_string()),
        }),
        EventKind::HukouChanged(e) => K::HukouChanged(pb::HukouChanged {
            worker: s(&e.worker),
            hukou: s(&e.hukou),
            effective: e.effective.to_wire(),
        }),
        EventKind::ContractRegistered(e) => K::ContractRegistered(pb::ContractRegistered {
            contract: s(&e.contract),
            worker: s(&e.worker),
            employer: s(&e.employer),
            jurisdiction: s(&e.jurisdiction),
            form: (match e.form {
                ContractForm::OpenEnded => pb::ContractForm::OpenEnded,
                ContractForm::FixedTerm => pb::ContractForm::FixedTerm,
                ContractForm::PartTime => pb::ContractForm::PartTime,
                ContractForm::AgencyWork => pb::ContractForm::AgencyWork,
                ContractForm::Platform => pb::ContractForm::Platform,
                ContractForm::SelfEmployed => pb::ContractForm::SelfEmployed,
                ContractForm::Posted => pb::ContractForm::Posted,
            }) as i32,
            start: e.start.to_wire(),
            end: e.end.map(Date::to_wire),
            host: e.host.as_ref().map(|h| h.to_string()),
        }),
        EventKind::ContractEnded(e) => K::ContractEnded(pb::ContractEnded {
            contract: s(&e.contract),
            end: e.end.to_wire(),
            reason: e.reason.clone(),
        }),
        EventKind::ContributionsDeclared(e) => {
            let (line_count, lines_root) = batch(kind.lines());
            K::ContributionsDeclared(pb::ContributionsDeclared {
                employer: s(&e.employer),
                jurisdiction: s(&e.jurisdiction),
                period: e.period.to_wire(),
                back_pay: e.back_pay,
                line_count,
                lines_root,
            })
        }
        EventKind::FlexibleContribution(e) => K::FlexibleContribution(pb::FlexibleContribution {
            worker: s(&e.worker),
            jurisdiction: s(&e.jurisdiction),
            period: e.period.to_wire(),
            scheme: scheme(e.scheme),
            base: e.base.minor(),
            amount: e.amount.minor(),
        }),
        EventKind::PlatformOrders(e) => {
            let (line_count, lines_root) = batch(kind.lines());
            K::PlatformOrders(pb::PlatformOrders {
                platform: s(&e.platform),
                jurisdiction: s(&e.jurisdiction),
                date: e.date.to_wire(),
                line_count,
                lines_root,
            })
        }
        EventKind::InjuryOccurred(e) => K::InjuryOccurred(pb::InjuryOccurred {
            worker: s(&e.worker),
            jurisdiction: s(&e.jurisdiction),
            at: Some(instant(e.at)),
            employer: e.employer.as_ref().map(|x| x.to_string()),
            platform: e.platform.as_ref().map(|x| x.to_string()),
            order: e.order.as_ref().map(|x| x.to_string()),
            description: e.description.clone(),
        }),
        EventKind::CoverageCertificateIssued(e) => {
            K::CoverageCertificateIssued(pb::CoverageCertificateIssued {
                worker: s(&e.worker),
                agreement: e.agreement.clone(),
                sending: s(&e.sending),
                receiving: s(&e.receiving),
                from: e.from.to_wire(),
                to: e.to.to_wire(),
                branches: e.branches.iter().map(|b| scheme(*b)).collect(),
                basis: (match e.basis {
                    CertificateBasis::Posting => pb::CertificateBasis::Posting,
                    CertificateBasis::Extension => pb::CertificateBasis::Extension,
                    CertificateBasis::Exception => pb::CertificateBasis::Exception,
                }) as i32,
            })
        }
        EventKind::WorkPermitLinked(e) => K::WorkPermitLinked(pb::WorkPermitLinked {
            worker: s(&e.worker),
            permit_number: s(&e.permit_number),
            social_security_number: s(&e.social_security_number),
            jurisdiction: s(&e.jurisdiction),
            valid_from: e.valid_from.to_wire(),
            valid_to: e.valid_to.to_wire(),
        }),
        EventKind::TransferRequested(e) => K::TransferRequested(pb::TransferRequested {
            transfer: s(&e.transfer),
            worker: s(&e.worker),
            from: s(&e.from),
            to: s(&e.to),
            requested: e.requested.to_wire(),
        }),
        EventKind::TransferCompleted(e) => K::TransferCompleted(pb::TransferCompleted {
            transfer: s(&e.transfer),
            individual_account: e.individual_account.minor(),
            pooled_fund: e.pooled_fund.minor(),
        }),
        EventKind::ForeignPeriodsReported(e) => {
            K::ForeignPeriodsReported(pb::ForeignPeriodsReported {
                worker: s(&e.worker),
                country: s(&e.country),
                scheme: scheme(e.scheme),
                periods: e
                    .periods
                    .iter()
                    .map(|p| pb::ForeignPeriod {
                        from: p.from.to_wire(),
                        to: p.to.to_wire(),
                        kind: (match p.kind {
                            PeriodKind::Insurance => pb::PeriodKind::Insurance,
                            PeriodKind::Residence => pb::PeriodKind::Residence,
                            PeriodKind::Voluntary => pb::PeriodKind::Voluntary,
                        }) as i32,
                    })
                    .collect(),
            })
        }
        EventKind::Correction(e) => {
            use pb::correction::Replacement as R;
            K::Correction(Box::new(pb::Correction {
                target: e.target.0.to_vec(),
                line: e.line,
                action: (match e.action {
                    CorrectionAction::Void => pb::CorrectionAction::Void,
                    CorrectionAction::Replace => pb::CorrectionAction::Replace,
                }) as i32,
                replacement: e.replacement.as_ref().map(|r| match r {
                    Replacement::Line(Line::Contribution(l)) => {
                        R::ContributionLine(contribution_line(l))
                    }
                    Replacement::Line(Line::Order(l)) => R::OrderLine(order_line(l)),
                    Replacement::Event(k) => {
                        let mut nested_lines = Vec::new();
                        let kind = kind_to_pb(k, &mut nested_lines);
                        R::Event(Box::new(pb::EventBody {
                            version: BODY_VERSION,
                            signed_at: None,
                            kind: Some(kind),
                        }))
                    }
                }),
                reason: e.reason.clone(),
            }))
        }
        EventKind::ParametersPublished(e) => K::ParametersPublished(pb::ParametersPublished {
            jurisdiction: s(&e.jurisdiction),
            effective: e.effective.to_wire(),
            parameters: e
                .parameters
                .iter()
                .map(|(name, v)| pb::Parameter {
                    name: name.clone(),
                    value_json: serde_json::to_string(v).expect("JSON values serialize"),
                })
                .collect(),
        }),
        EventKind::LedgerAct(e) => K::LedgerAct(pb::LedgerAct {
            act: e.act.to_string(),
            nonce: e.nonce.clone(),
        }),
    }
}

/// Encodes a body for signing; batch lines come out separately, committed by their root.
pub fn encode_body(body: &EventBody) -> Encoded {
    let mut lines = Vec::new();
    let kind = kind_to_pb(&body.kind, &mut lines);
    let msg = pb::EventBody {
        version: BODY_VERSION,
        signed_at: Some(instant(body.signed_at)),
        kind: Some(kind),
    };
    Encoded {
        body: msg.encode_to_vec(),
        lines,
    }
}

// ---------- wire → model ----------

fn invalid(field: &str, e: impl std::fmt::Display) -> Refusal {
    Refusal::InvalidField(format!("{field}: {e}"))
}

fn ju(field: &str, s: &str) -> Result<Jurisdiction, Refusal> {
    Jurisdiction::new(s).map_err(|e| invalid(field, e))
}
fn opt_ju(field: &str, s: &Option<String>) -> Result<Option<Jurisdiction>, Refusal> {
    s.as_deref().map(|s| ju(field, s)).transpose()
}
fn month(field: &str, v: u32) -> Result<Month, Refusal> {
    Month::from_wire(v).map_err(|e| invalid(field, e))
}
fn date(field: &str, v: u32) -> Result<Date, Refusal> {
    Date::from_wire(v).map_err(|e| invalid(field, e))
}
fn inst(field: &str, v: &Option<pb::Instant>) -> Result<Instant, Refusal> {
    let v = v.as_ref().ok_or_else(|| invalid(field, "missing"))?;
    Instant::new(v.unix_seconds, v.nanos, v.offset_minutes).map_err(|e| invalid(field, e))
}
fn text(field: &str, s: &str) -> Result<String, Refusal> {
    check_text(field, s).map_err(|e| invalid(field, e))?;
    Ok(s.to_string())
}
/// An amount off the wire: within ±[`MAX_MINOR`], the range the JSON form accepts, so every
/// decoded event has a JSON form that parses back.
fn money(field: &str, v: i64) -> Result<Money, Refusal> {
    if v.unsigned_abs() > MAX_MINOR.unsigned_abs() {
        return Err(invalid(
            field,
            format!(
                "amount {} is beyond ±{}",
                Money::from_minor(v),
                Money::from_minor(MAX_MINOR)
            ),
        ));
    }
    Ok(Money::from_minor(v))
}
fn salt(v: &[u8]) -> Result<Salt, Refusal> {
    Salt::from_slice(v).map_err(|e| invalid("salt", e))
}

macro_rules! id {
    ($t:ty, $field:literal, $v:expr) => {
        <$t>::new($v.clone()).map_err(|e| invalid($field, e))?
    };
}

fn enum_value<T: TryFrom<i32>>(field: &str, v: i32) -> Result<T, Refusal> {
    T::try_from(v).map_err(|_| invalid(field, format!("unknown value {v}")))
}

fn scheme_from(field: &str, v: i32) -> Result<Scheme, Refusal> {
    Ok(match enum_value::<pb::Scheme>(field, v)? {
        pb::Scheme::Unspecified => return Err(invalid(field, "missing")),
        pb::Scheme::Pension => Scheme::Pension,
        pb::Scheme::Injury => Scheme::Injury,
        pb::Scheme::Medical => Scheme::Medical,
        pb::Scheme::Unemployment => Scheme::Unemployment,
        pb::Scheme::Maternity => Scheme::Maternity,
    })
}

fn contribution_line_from(l: &pb::ContributionLine) -> Result<ContributionLine, Refusal> {
    Ok(ContributionLine {
        salt: salt(&l.salt)?,
        worker: id!(WorkerId, "worker", l.worker),
        scheme: scheme_from("scheme", l.scheme)?,
        base: money("base", l.base)?,
        employer_amount: money("employer_amount", l.employer_amount)?,
        employee_amount: money("employee_amount", l.employee_amount)?,
    })
}

fn order_line_from(l: &pb::OrderLine) -> Result<OrderLine, Refusal> {
    Ok(OrderLine {
        salt: salt(&l.salt)?,
        worker: id!(WorkerId, "worker", l.worker),
        order: id!(OrderId, "order", l.order),
        accepted_at: inst("accepted_at", &l.accepted_at)?,
        completed_at: inst("completed_at", &l.completed_at)?,
        premium: money("premium", l.premium)?,
    })
}

/// Decodes one message and refuses any encoding other than the canonical one.
fn decode_canonical<M: Message + Default>(what: &str, bytes: &[u8]) -> Result<M, Refusal> {
    let msg = M::decode(bytes).map_err(|e| Refusal::Malformed(format!("{what}: {e}")))?;
    if msg.encode_to_vec() != bytes {
        return Err(Refusal::NonCanonical);
    }
    Ok(msg)
}

/// The lines that travel with a body: all of them (a submission), or some with Merkle proofs
/// (one worker's view of a batch).
#[derive(Clone, Copy)]
pub enum LinesSource<'a> {
    All(&'a [Vec<u8>]),
    Proven(&'a [ProvenLine]),
}

/// One line of a batch with its position and its inclusion proof into the body's lines_root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenLine {
    pub position: u32,
    pub bytes: Vec<u8>,
    pub proof: Vec<Hash32>,
}

impl LinesSource<'_> {
    fn is_empty(&self) -> bool {
        match self {
            Self::All(l) => l.is_empty(),
            Self::Proven(l) => l.is_empty(),
        }
    }
    fn len(&self) -> usize {
        match self {
            Self::All(l) => l.len(),
            Self::Proven(l) => l.len(),
        }
    }
}

fn decode_lines<L, M: Message + Default>(
    source: LinesSource<'_>,
    count: u32,
    root: &[u8],
    convert: impl Fn(&M) -> Result<L, Refusal>,
) -> Result<Vec<L>, Refusal> {
    let lines = match source {
        LinesSource::All(lines) => lines,
        LinesSource::Proven(proven) => {
            let root = Hash32::from_slice(root).map_err(|e| invalid("lines_root", e))?;
            return proven
                .iter()
                .map(|p| decode_proven_line(p, count, &root, &convert))
                .collect();
        }
    };
    if lines.len() > MAX_BATCH_LINES {
        return Err(Refusal::TooLarge(format!(
            "{} lines exceed the batch limit of {MAX_BATCH_LINES}; split the declaration",
            lines.len()
        )));
    }
    if lines.is_empty() {
        return Err(invalid("lines", "a batch needs at least one line"));
    }
    if lines.len() != count as usize {
        return Err(Refusal::Malformed(format!(
            "the body commits to {count} lines but {} travel with it",
            lines.len()
        )));
    }
    if merkle::root(lines).0.as_slice() != root {
        return Err(Refusal::Malformed(
            "the lines do not match the lines_root committed in the signed body".into(),
        ));
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            if bytes.len() > MAX_LINE_BYTES {
                return Err(Refusal::TooLarge(format!(
                    "line {i} is {} bytes, over {MAX_LINE_BYTES}",
                    bytes.len()
                )));
            }
            let msg: M = decode_canonical(&format!("line {i}"), bytes)?;
            convert(&msg).map_err(|e| prefix_line(i, e))
        })
        .collect()
}

/// One line that travels with its inclusion proof into the signed `lines_root`.
fn decode_proven_line<L, M: Message + Default>(
    p: &ProvenLine,
    count: u32,
    root: &Hash32,
    convert: &impl Fn(&M) -> Result<L, Refusal>,
) -> Result<L, Refusal> {
    let leaf = merkle::leaf_hash(&p.bytes);
    if !merkle::verify_inclusion(
        &leaf,
        u64::from(p.position),
        u64::from(count),
        &p.proof,
        root,
    ) {
        return Err(Refusal::Malformed(format!(
            "line {} does not prove into the signed lines_root",
            p.position
        )));
    }
    if p.bytes.len() > MAX_LINE_BYTES {
        return Err(Refusal::TooLarge(format!(
            "line {} is over {MAX_LINE_BYTES} bytes",
            p.position
        )));
    }
    let msg: M = decode_canonical(&format!("line {}", p.position), &p.bytes)?;
    convert(&msg).map_err(|e| prefix_line(p.position as usize, e))
}

fn prefix_line(i: usize, e: Refusal) -> Refusal {
    match e {
        Refusal::InvalidField(m) => Refusal::InvalidField(format!("lines[{i}]: {m}")),
        other => other,
    }
}

fn kind_from_pb(k: &pb::event_body::Kind, lines: LinesSource<'_>) -> Result<EventKind, Refusal> {
    use pb::event_body::Kind as K;
    let no_lines = |kind: EventKind| {
        if lines.is_empty() {
            Ok(kind)
        } else {
            Err(Refusal::Malformed(format!(
                "{} carries no lines, got {}",
                kind.type_name(),
                lines.len()
            )))
        }
    };
    match k {
        K::KeyRegistered(e) => no_lines(EventKind::KeyRegistered(KeyRegistered {
            jurisdiction: ju("jurisdiction", &e.jurisdiction)?,
            role: match enum_value::<pb::Role>("role", e.role)? {
                pb::Role::Unspecified => return Err(invalid("role", "missing")),
                pb::Role::Agency => Role::Agency,
                pb::Role::Employer => Role::Employer,
                pb::Role::Platform => Role::Platform,
                pb::Role::Worker => Role::Worker,
            },
            subject: id!(SubjectId, "subject", e.subject),
            public_key: PublicKeyBytes::from_slice(&e.public_key)
                .map_err(|m| invalid("public_key", m))?,
        })),
        K::KeyRevoked(e) => no_lines(EventKind::KeyRevoked(KeyRevoked {
            public_key: PublicKeyBytes::from_slice(&e.public_key)
                .map_err(|m| invalid("public_key", m))?,
            reason: text("reason", &e.reason)?,
        })),
        K::PersonRegistered(e) => no_lines(EventKind::PersonRegistered(PersonRegistered {
            worker: id!(WorkerId, "worker", e.worker),
            jurisdiction: ju("jurisdiction", &e.jurisdiction)?,
            sex: match enum_value::<pb::Sex>("sex", e.sex)? {
                pb::Sex::Unspecified => return Err(invalid("sex", "missing")),
                pb::Sex::Male => Sex::Male,
                pb::Sex::Female => Sex::Female,
            },
            birth_date: date("birth_date", e.birth_date)?,
            female_category: match e.female_category {
                0 => None,
                v => {
                    Some(FemaleCategory::from_years(v).map_err(|m| invalid("female_category", m))?)
                }
            },
            nationality: ju("nationality", &e.nationality)?,
            hukou: opt_ju("hukou", &e.hukou)?,
        })),
        K::HukouChanged(e) => no_lines(EventKind::HukouChanged(HukouChanged {
            worker: id!(WorkerId, "worker", e.worker),
            hukou: ju("hukou", &e.hukou)?,
            effective: date("effective", e.effective)?,
        })),
        K::ContractRegistered(e) => no_lines(EventKind::ContractRegistered(ContractRegistered {
            contract: id!(ContractId, "contract", e.contract),
            worker: id!(WorkerId, "worker", e.worker),
            employer: id!(EmployerId, "employer", e.employer),
            jurisdiction: ju("jurisdiction", &e.jurisdiction)?,
            form: match enum_value::<pb::ContractForm>("form", e.form)? {
                pb::ContractForm::Unspecified => return Err(invalid("form", "missing")),
                pb::ContractForm::OpenEnded => ContractForm::OpenEnded,
                pb::ContractForm::FixedTerm => ContractForm::FixedTerm,
                pb::ContractForm::PartTime => ContractForm::PartTime,
                pb::ContractForm::AgencyWork => ContractForm::AgencyWork,
                pb::ContractForm::Platform => ContractForm::Platform,
                pb::ContractForm::SelfEmployed => ContractForm::SelfEmployed,
                pb::ContractForm::Posted => ContractForm::Posted,
            },
            start: date("start", e.start)?,
            end: e.end.map(|v| date("end", v)).transpose()?,
            host: opt_ju("host", &e.host)?,
        })),
        K::ContractEnded(e) => no_lines(EventKind::ContractEnded(ContractEnded {
            contract: id!(ContractId, "contract", e.contract),
            end: date("end", e.end)?,
            reason: text("reason", &e.reason)?,
        })),
        K::ContributionsDeclared(e) => {
            Ok(EventKind::ContributionsDeclared(ContributionsDeclared {
                employer: id!(EmployerId, "employer", e.employer),
                jurisdiction: ju("jurisdiction", &e.jurisdiction)?,
                period: month("period", e.period)?,
                back_pay: e.back_pay,
                lines: decode_lines(lines, e.line_count, &e.lines_root, contribution_line_from)?,
            }))
        }
        K::FlexibleContribution(e) => {
            no_lines(EventKind::FlexibleContribution(FlexibleContribution {
                worker: id!(WorkerId, "worker", e.worker),
                jurisdiction: ju("jurisdiction", &e.jurisdiction)?,
                period: month("period", e.period)?,
                scheme: scheme_from("scheme", e.scheme)?,
                base: money("base", e.base)?,
                amount: money("amount", e.amount)?,
            }))
        }
        K::PlatformOrders(e) => Ok(EventKind::PlatformOrders(PlatformOrders {
            platform: id!(EmployerId, "platform", e.platform),
            jurisdiction: ju("jurisdiction", &e.jurisdiction)?,
            date: date("date", e.date)?,
            lines: decode_lines(lines, e.line_count, &e.lines_root, order_line_from)?,
        })),
        K::InjuryOccurred(e) => no_lines(EventKind::InjuryOccurred(InjuryOccurred {
            worker: id!(WorkerId, "worker", e.worker),
            jurisdiction: ju("jurisdiction", &e.jurisdiction)?,
            at: inst("at", &e.at)?,
            employer: e
                .employer
                .as_ref()
                .map(|v| EmployerId::new(v.clone()).map_err(|m| invalid("employer", m)))
                .transpose()?,
            platform: e
                .platform
                .as_ref()
                .map(|v| EmployerId::new(v.clone()).map_err(|m| invalid("platform", m)))
                .transpose()?,
            order: e
                .order
                .as_ref()
                .map(|v| OrderId::new(v.clone()).map_err(|m| invalid("order", m)))
                .transpose()?,
            description: text("description", &e.description)?,
        })),
        K::CoverageCertificateIssued(e) => no_lines(EventKind::CoverageCertificateIssued(
            CoverageCertificateIssued {
                worker: id!(WorkerId, "worker", e.worker),
                agreement: text("agreement", &e.agreement)?,
                sending: ju("sending", &e.sending)?,
                receiving: ju("receiving", &e.receiving)?,
                from: month("from", e.from)?,
                to: month("to", e.to)?,
                branches: e
                    .branches
                    .iter()
                    .map(|b| scheme_from("branches", *b))
                    .collect::<Result<_, _>>()?,
                basis: match enum_value::<pb::CertificateBasis>("basis", e.basis)? {
                    pb::CertificateBasis::Unspecified => return Err(invalid("basis", "missing")),
                    pb::CertificateBasis::Posting => CertificateBasis::Posting,
                    pb::CertificateBasis::Extension => CertificateBasis::Extension,
                    pb::CertificateBasis::Exception => CertificateBasis::Exception,
                },
            },
        )),
        K::WorkPermitLinked(e) => no_lines(EventKind::WorkPermitLinked(WorkPermitLinked {
            worker: id!(WorkerId, "worker", e.worker),
            permit_number: id!(PermitNumber, "permit_number", e.permit_number),
            social_security_number: id!(
                SocialSecurityNumber,
                "social_security_number",
                e.social_security_number
            ),
            jurisdiction: ju("jurisdiction", &e.jurisdiction)?,
            valid_from: date("valid_from", e.valid_from)?,
            valid_to: date("valid_to", e.valid_to)?,
        })),
        K::TransferRequested(e) => no_lines(EventKind::TransferRequested(TransferRequested {
            transfer: id!(TransferId, "transfer", e.transfer),
            worker: id!(WorkerId, "worker", e.worker),
            from: ju("from", &e.from)?,
            to: ju("to", &e.to)?,
            requested: month("requested", e.requested)?,
        })),
        K::TransferCompleted(e) => no_lines(EventKind::TransferCompleted(TransferCompleted {
            transfer: id!(TransferId, "transfer", e.transfer),
            individual_account: money("individual_account", e.individual_account)?,
            pooled_fund: money("pooled_fund", e.pooled_fund)?,
        })),
        K::ForeignPeriodsReported(e) => {
            no_lines(EventKind::ForeignPeriodsReported(ForeignPeriodsReported {
                worker: id!(WorkerId, "worker", e.worker),
                country: ju("country", &e.country)?,
                scheme: scheme_from("scheme", e.scheme)?,
                periods: e
                    .periods
                    .iter()
                    .map(|p| {
                        Ok(ForeignPeriod {
                            from: month("periods.from", p.from)?,
                            to: month("periods.to", p.to)?,
                            kind: match enum_value::<pb::PeriodKind>("periods.kind", p.kind)? {
                                pb::PeriodKind::Unspecified => {
                                    return Err(invalid("periods.kind", "missing"))
                                }
                                pb::PeriodKind::Insurance => PeriodKind::Insurance,
                                pb::PeriodKind::Residence => PeriodKind::Residence,
                                pb::PeriodKind::Voluntary => PeriodKind::Voluntary,
                            },
                        })
                    })
                    .collect::<Result<_, Refusal>>()?,
            }))
        }
        K::Correction(e) => {
            use pb::correction::Replacement as R;
            no_lines(EventKind::Correction(Correction {
                target: Hash32::from_slice(&e.target).map_err(|m| invalid("target", m))?,
                line: e.line,
                action: match enum_value::<pb::CorrectionAction>("action", e.action)? {
                    pb::CorrectionAction::Unspecified => return Err(invalid("action", "missing")),
                    pb::CorrectionAction::Void => CorrectionAction::Void,
                    pb::CorrectionAction::Replace => CorrectionAction::Replace,
                },
                replacement: match &e.replacement {
                    None => None,
                    Some(R::ContributionLine(l)) => Some(Replacement::Line(Line::Contribution(
                        contribution_line_from(l)?,
                    ))),
                    Some(R::OrderLine(l)) => {
                        Some(Replacement::Line(Line::Order(order_line_from(l)?)))
                    }
                    Some(R::Event(b)) => {
                        if b.signed_at.is_some() || b.version != BODY_VERSION {
                            return Err(invalid(
                                "replacement",
                                "a replacement event carries no signed_at and version 1",
                            ));
                        }
                        let k = b
                            .kind
                            .as_ref()
                            .ok_or_else(|| invalid("replacement", "missing event kind"))?;
                        if matches!(k, K::Correction(_))
                            || matches!(k, K::ContributionsDeclared(_) | K::PlatformOrders(_))
                        {
                            return Err(invalid(
                                "replacement",
                                "a whole-event replacement cannot be a correction or a batch; correct batch lines one by one",
                            ));
                        }
                        Some(Replacement::Event(Box::new(kind_from_pb(
                            k,
                            LinesSource::All(&[]),
                        )?)))
                    }
                },
                reason: text("reason", &e.reason)?,
            }))
        }
        K::ParametersPublished(e) => {
            let mut parameters = std::collections::BTreeMap::new();
            for p in &e.parameters {
                let v: serde_json::Value = serde_json::from_str(&p.value_json)
                    .map_err(|err| invalid(&format!("parameter {}", p.name), err))?;
                if serde_json::to_string(&v).ok().as_deref() != Some(p.value_json.as_str()) {
                    return Err(Refusal::NonCanonical);
                }
                if parameters.insert(p.name.clone(), v).is_some() {
                    return Err(invalid("parameters", format!("{} appears twice", p.name)));
                }
            }
            if !e.parameters.windows(2).all(|w| w[0].name < w[1].name) {
                return Err(Refusal::NonCanonical);
            }
            no_lines(EventKind::ParametersPublished(ParametersPublished {
                jurisdiction: ju("jurisdiction", &e.jurisdiction)?,
                effective: date("effective", e.effective)?,
                parameters,
            }))
        }
        K::LedgerAct(e) => {
            crate::act::check_nonce(&e.nonce).map_err(|m| invalid("nonce", m))?;
            no_lines(EventKind::LedgerAct(LedgerAct {
                act: crate::act::Act::parse(&e.act).map_err(|m| invalid("act", m))?,
                nonce: e.nonce.clone(),
            }))
        }
    }
}

/// Decodes a signed body and its lines into the model. Refuses oversize, non-canonical,
/// unknown-version and malformed input; semantic checks are in [`crate::validate`].
pub fn decode_event(body: &[u8], lines: &[Vec<u8>]) -> Result<EventBody, Refusal> {
    decode_with(body, LinesSource::All(lines))
}

/// Decodes a body with only some of its batch lines, each checked against the signed
/// lines_root; the model then holds just those lines.
pub fn decode_proven(body: &[u8], lines: &[ProvenLine]) -> Result<EventBody, Refusal> {
    decode_with(body, LinesSource::Proven(lines))
}

fn decode_with(body: &[u8], lines: LinesSource<'_>) -> Result<EventBody, Refusal> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Refusal::TooLarge(format!(
            "body of {} bytes exceeds {MAX_BODY_BYTES}",
            body.len()
        )));
    }
    let msg = pb::EventBody::decode(body).map_err(|e| Refusal::Malformed(format!("body: {e}")))?;
    let Some(kind) = &msg.kind else {
        return Err(Refusal::Malformed(
            "unknown or missing event type; see the event catalogue (docs/events.md)".into(),
        ));
    };
    if msg.encode_to_vec() != body {
        return Err(Refusal::NonCanonical);
    }
    if msg.version != BODY_VERSION {
        return Err(Refusal::UnsupportedVersion(msg.version));
    }
    let signed_at = inst("signed_at", &msg.signed_at)?;
    Ok(EventBody {
        signed_at,
        kind: kind_from_pb(kind, lines)?,
    })
}

/// Decodes one line of a batch as stored beside its body (for statements and listings).
pub fn decode_line(kind_is_orders: bool, bytes: &[u8]) -> Result<Line, Refusal> {
    if kind_is_orders {
        Ok(Line::Order(order_line_from(&decode_canonical::<
            pb::OrderLine,
        >("line", bytes)?)?))
    } else {
        Ok(Line::Contribution(contribution_line_from(
            &decode_canonical::<pb::ContributionLine>("line", bytes)?,
        )?))
    }
}
