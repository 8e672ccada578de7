//! The event model: what every kind of event says, independent of any encoding. The JSON form of
//! `docs/events.md` is this model's serde form (`type` selects the kind, unknown fields are refused);
//! the signed wire form is in [`crate::wire`], the entry points of the JSON form in
//! [`crate::json`].

use std::collections::BTreeMap;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{
    ContractId, EmployerId, OrderId, PermitNumber, SocialSecurityNumber, SubjectId, TransferId,
    WorkerId,
};
use crate::jurisdiction::Jurisdiction;
use crate::money::Money;
use crate::time::{Date, Instant, Month};

pub use crate::ids::{Hash32, PublicKeyBytes, Salt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agency,
    Employer,
    Platform,
    Worker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sex {
    #[serde(rename = "M")]
    Male,
    #[serde(rename = "F")]
    Female,
}

/// Statutory retirement category of a woman (docs/rules.md §1): original age 50 or 55.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FemaleCategory {
    Fifty,
    FiftyFive,
}

impl FemaleCategory {
    pub fn years(self) -> u32 {
        match self {
            Self::Fifty => 50,
            Self::FiftyFive => 55,
        }
    }
    pub fn from_years(v: u32) -> Result<Self, String> {
        match v {
            50 => Ok(Self::Fifty),
            55 => Ok(Self::FiftyFive),
            _ => Err(format!("female_category must be 50 or 55, got {v}")),
        }
    }
}
impl Serialize for FemaleCategory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.years())
    }
}
impl<'de> Deserialize<'de> for FemaleCategory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        Self::from_years(v).map_err(de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    Pension,
    Injury,
    Medical,
    Unemployment,
    Maternity,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pension => "pension",
            Self::Injury => "injury",
            Self::Medical => "medical",
            Self::Unemployment => "unemployment",
            Self::Maternity => "maternity",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractForm {
    OpenEnded,
    FixedTerm,
    PartTime,
    AgencyWork,
    Platform,
    SelfEmployed,
    Posted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateBasis {
    Posting,
    Extension,
    Exception,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    Insurance,
    Residence,
    Voluntary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrectionAction {
    Void,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRegistered {
    pub jurisdiction: Jurisdiction,
    pub role: Role,
    pub subject: SubjectId,
    pub public_key: PublicKeyBytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRevoked {
    pub public_key: PublicKeyBytes,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonRegistered {
    pub worker: WorkerId,
    pub jurisdiction: Jurisdiction,
    pub sex: Sex,
    pub birth_date: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub female_category: Option<FemaleCategory>,
    pub nationality: Jurisdiction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hukou: Option<Jurisdiction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HukouChanged {
    pub worker: WorkerId,
    pub hukou: Jurisdiction,
    pub effective: Date,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractRegistered {
    pub contract: ContractId,
    pub worker: WorkerId,
    pub employer: EmployerId,
    pub jurisdiction: Jurisdiction,
    pub form: ContractForm,
    pub start: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Jurisdiction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractEnded {
    pub contract: ContractId,
    pub end: Date,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContributionLine {
    #[serde(default, skip_serializing_if = "Salt::is_zero")]
    pub salt: Salt,
    pub worker: WorkerId,
    pub scheme: Scheme,
    pub base: Money,
    pub employer_amount: Money,
    pub employee_amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContributionsDeclared {
    pub employer: EmployerId,
    pub jurisdiction: Jurisdiction,
    pub period: Month,
    pub lines: Vec<ContributionLine>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub back_pay: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlexibleContribution {
    pub worker: WorkerId,
    pub jurisdiction: Jurisdiction,
    pub period: Month,
    pub scheme: Scheme,
    pub base: Money,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    #[serde(default, skip_serializing_if = "Salt::is_zero")]
    pub salt: Salt,
    pub worker: WorkerId,
    pub order: OrderId,
    pub accepted_at: Instant,
    pub completed_at: Instant,
    pub premium: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformOrders {
    pub platform: EmployerId,
    pub jurisdiction: Jurisdiction,
    pub date: Date,
    pub lines: Vec<OrderLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjuryOccurred {
    pub worker: WorkerId,
    pub jurisdiction: Jurisdiction,
    pub at: Instant,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer: Option<EmployerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<EmployerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderId>,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageCertificateIssued {
    pub worker: WorkerId,
    pub agreement: String,
    pub sending: Jurisdiction,
    pub receiving: Jurisdiction,
    pub from: Month,
    pub to: Month,
    pub branches: Vec<Scheme>,
    pub basis: CertificateBasis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkPermitLinked {
    pub worker: WorkerId,
    pub permit_number: PermitNumber,
    pub social_security_number: SocialSecurityNumber,
    pub jurisdiction: Jurisdiction,
    pub valid_from: Date,
    pub valid_to: Date,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequested {
    pub transfer: TransferId,
    pub worker: WorkerId,
    pub from: Jurisdiction,
    pub to: Jurisdiction,
    pub requested: Month,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferCompleted {
    pub transfer: TransferId,
    pub individual_account: Money,
    pub pooled_fund: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignPeriod {
    pub from: Month,
    pub to: Month,
    pub kind: PeriodKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignPeriodsReported {
    pub worker: WorkerId,
    pub country: Jurisdiction,
    pub scheme: Scheme,
    pub periods: Vec<ForeignPeriod>,
}

/// One line of a batch event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Line {
    Contribution(ContributionLine),
    Order(OrderLine),
}

/// What a `replace` correction puts in place of its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replacement {
    /// One line of a batch (the correction names the line).
    Line(Line),
    /// A whole event of the target's kind.
    Event(Box<EventKind>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    pub target: Hash32,
    /// Zero-based position of the corrected line in a batch event.
    pub line: Option<u32>,
    pub action: CorrectionAction,
    pub replacement: Option<Replacement>,
    pub reason: String,
}

/// JSON form of a correction: `replacement` is a line object when `line` is given, otherwise an
/// event object with its `type`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrectionJson {
    target: Hash32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
    action: CorrectionAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replacement: Option<serde_json::Value>,
    reason: String,
}

impl Serialize for Correction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let replacement = match &self.replacement {
            None => None,
            Some(Replacement::Line(l)) => {
                Some(serde_json::to_value(l).map_err(serde::ser::Error::custom)?)
            }
            Some(Replacement::Event(e)) => {
                Some(serde_json::to_value(e).map_err(serde::ser::Error::custom)?)
            }
        };
        CorrectionJson {
            target: self.target,
            line: self.line,
            action: self.action,
            replacement,
            reason: self.reason.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Correction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = CorrectionJson::deserialize(d)?;
        let replacement = match (j.replacement, j.line) {
            (None, _) => None,
            (Some(v), Some(_)) => {
                let is_order = v.get("order").is_some();
                Some(Replacement::Line(if is_order {
                    Line::Order(serde_json::from_value(v).map_err(de::Error::custom)?)
                } else {
                    Line::Contribution(serde_json::from_value(v).map_err(de::Error::custom)?)
                }))
            }
            (Some(v), None) => Some(Replacement::Event(Box::new(
                serde_json::from_value(v)
                    .map_err(|e| de::Error::custom(format!("replacement event: {e}")))?,
            ))),
        };
        Ok(Correction {
            target: j.target,
            line: j.line,
            action: j.action,
            replacement,
            reason: j.reason,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParametersPublished {
    pub jurisdiction: Jurisdiction,
    pub effective: Date,
    /// Rule parameters by name (docs/rules.md); checked against [`crate::params`] at validation.
    #[serde(flatten)]
    pub parameters: BTreeMap<String, serde_json::Value>,
}

/// A ledger-wide act ([`crate::act`], [`crate::authority`]): admitted only with agency signatures of the
/// genesis's authority quorum (or, for an agency's own keys, of that agency alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerAct {
    pub act: crate::act::Act,
    /// Chosen by the proposer; a nonce is used once, so the same act can be signed again
    /// later (with a new nonce) but never carried out twice from one signing.
    pub nonce: String,
}

/// Every kind of event in the catalogue; `type` in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    KeyRegistered(KeyRegistered),
    KeyRevoked(KeyRevoked),
    PersonRegistered(PersonRegistered),
    HukouChanged(HukouChanged),
    ContractRegistered(ContractRegistered),
    ContractEnded(ContractEnded),
    ContributionsDeclared(ContributionsDeclared),
    FlexibleContribution(FlexibleContribution),
    PlatformOrders(PlatformOrders),
    InjuryOccurred(InjuryOccurred),
    CoverageCertificateIssued(CoverageCertificateIssued),
    WorkPermitLinked(WorkPermitLinked),
    TransferRequested(TransferRequested),
    TransferCompleted(TransferCompleted),
    ForeignPeriodsReported(ForeignPeriodsReported),
    Correction(Correction),
    ParametersPublished(ParametersPublished),
    LedgerAct(LedgerAct),
}

impl EventKind {
    /// The `type` string of this kind.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::KeyRegistered(_) => "key_registered",
            Self::KeyRevoked(_) => "key_revoked",
            Self::PersonRegistered(_) => "person_registered",
            Self::HukouChanged(_) => "hukou_changed",
            Self::ContractRegistered(_) => "contract_registered",
            Self::ContractEnded(_) => "contract_ended",
            Self::ContributionsDeclared(_) => "contributions_declared",
            Self::FlexibleContribution(_) => "flexible_contribution",
            Self::PlatformOrders(_) => "platform_orders",
            Self::InjuryOccurred(_) => "injury_occurred",
            Self::CoverageCertificateIssued(_) => "coverage_certificate_issued",
            Self::WorkPermitLinked(_) => "work_permit_linked",
            Self::TransferRequested(_) => "transfer_requested",
            Self::TransferCompleted(_) => "transfer_completed",
            Self::ForeignPeriodsReported(_) => "foreign_periods_reported",
            Self::Correction(_) => "correction",
            Self::ParametersPublished(_) => "parameters_published",
            Self::LedgerAct(_) => "ledger_act",
        }
    }

    /// The lines of a batch event, in order; empty for other kinds.
    pub fn lines(&self) -> Vec<Line> {
        match self {
            Self::ContributionsDeclared(c) => {
                c.lines.iter().cloned().map(Line::Contribution).collect()
            }
            Self::PlatformOrders(p) => p.lines.iter().cloned().map(Line::Order).collect(),
            _ => Vec::new(),
        }
    }

    pub fn is_batch(&self) -> bool {
        matches!(
            self,
            Self::ContributionsDeclared(_) | Self::PlatformOrders(_)
        )
    }

    /// The workers an event is about (for the per-worker index), without duplicates, in order
    /// of first appearance. Key and parameter events concern no worker.
    pub fn workers(&self) -> Vec<&WorkerId> {
        let mut out: Vec<&WorkerId> = Vec::new();
        let mut push = |w| out.push(w);
        match self {
            Self::PersonRegistered(e) => push(&e.worker),
            Self::HukouChanged(e) => push(&e.worker),
            Self::ContractRegistered(e) => push(&e.worker),
            Self::FlexibleContribution(e) => push(&e.worker),
            Self::InjuryOccurred(e) => push(&e.worker),
            Self::CoverageCertificateIssued(e) => push(&e.worker),
            Self::WorkPermitLinked(e) => push(&e.worker),
            Self::TransferRequested(e) => push(&e.worker),
            Self::ForeignPeriodsReported(e) => push(&e.worker),
            Self::ContributionsDeclared(e) => e.lines.iter().for_each(|l| push(&l.worker)),
            Self::PlatformOrders(e) => e.lines.iter().for_each(|l| push(&l.worker)),
            Self::KeyRegistered(_)
            | Self::KeyRevoked(_)
            | Self::ContractEnded(_)
            | Self::TransferCompleted(_)
            | Self::Correction(_)
            | Self::ParametersPublished(_)
            | Self::LedgerAct(_) => {}
        }
        let mut seen = std::collections::BTreeSet::new();
        out.retain(|w| seen.insert(*w));
        out
    }
}

/// A body as signed: the kind and the signer's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBody {
    pub signed_at: Instant,
    pub kind: EventKind,
}
