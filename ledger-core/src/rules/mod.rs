//! The entitlement rules of docs/rules.md, evaluated from a worker's projected facts and the rule
//! parameters. Pure functions: the same facts, parameters and dates give the same answer on every
//! node, and a worker or auditor holding the same events can recompute it.
//!
//! The output types serialize to the JSON of docs/cli.md (`entitlement --json`, `coverage --json`).

pub mod cross_border;
pub mod indicators;
pub mod injury;
pub mod params;
pub mod pension;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::{PersonRegistered, Scheme};
use crate::fact::{Fact, FactKind};
use crate::jurisdiction::Jurisdiction;
use crate::kv::StoreFault;
use crate::money::Money;
use crate::time::{Date, Instant, Month};

pub use params::Params;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("unknown worker {0}: no person_registered event for this id")]
    UnknownWorker(String),
    #[error("rule parameter {0} is missing from the rulebook and was never published")]
    MissingParameter(String),
    #[error(transparent)]
    Store(#[from] StoreFault),
}

/// `entitlement --json` (docs/cli.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entitlement {
    pub worker: String,
    pub as_of: Date,
    pub pension: Pension,
    pub postings: Vec<Posting>,
    pub foreign: BTreeMap<String, ForeignMonths>,
    pub flags: Vec<String>,
    /// Totalization under agreements that aggregate periods (docs/rules.md §3); omitted when none
    /// applies to the worker.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub coordination: Vec<Coordination>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pension {
    pub insured_months: u32,
    pub months_by_jurisdiction: BTreeMap<String, u32>,
    pub temporary_account_months: BTreeMap<String, u32>,
    pub duplicate_months: Vec<Month>,
    pub relation_jurisdiction: Option<Jurisdiction>,
    pub individual_account: Money,
    pub transfers: Vec<TransferOut>,
    pub retirement_month: Month,
    pub retirement_age: Age,
    pub minimum_months: u32,
    pub vested: bool,
    pub shortfall_months: u32,
    pub claim_jurisdiction: Option<Jurisdiction>,
    pub claim_transfer: Option<ClaimTransfer>,
    pub estimated_monthly: Option<Estimate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Age {
    pub years: u32,
    pub months: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferOut {
    pub from: Jurisdiction,
    pub to: Jurisdiction,
    pub period: Month,
    pub individual_account: Money,
    pub pooled_fund: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimTransfer {
    pub from: Option<Jurisdiction>,
    pub to: Jurisdiction,
    pub individual_account: Money,
    pub pooled_fund: Money,
    pub temporary_accounts: Vec<TemporaryAccount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemporaryAccount {
    pub jurisdiction: Jurisdiction,
    pub months: u32,
    pub employer_amount: Money,
    pub employee_amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Estimate {
    pub basic: Money,
    pub account: Money,
    pub total: Money,
    pub divisor: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Posting {
    pub agreement: Option<String>,
    pub receiving: Jurisdiction,
    pub from: Month,
    pub to: Month,
    pub exempt_months: u32,
    pub branches: Vec<Scheme>,
    pub double_coverage_months: Vec<Month>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignMonths {
    pub months: u32,
}

/// One country's share under a totalizing agreement (883/2004 art. 6, 52, 57).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coordination {
    pub agreement: String,
    pub country: String,
    /// Months completed under this country's legislation.
    pub own_months: u32,
    /// All months counted for entitlement under the agreement, overlaps once.
    pub total_months: u32,
    /// The pro-rata denominator: total months less those of countries under the minimum.
    pub pro_rata_denominator: u32,
    /// False for a country with fewer months than the agreement's minimum that gives no
    /// entitlement on its own: it pays nothing (art. 57).
    pub pays: bool,
    /// own ÷ denominator as a decimal string with six places ("0.000000" when it pays nothing).
    pub pro_rata_share: String,
}

/// `coverage --json` (docs/cli.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    pub worker: String,
    pub at: Instant,
    pub jurisdiction: Jurisdiction,
    pub covered: bool,
    pub basis: &'static str,
    pub payer: &'static str,
    pub insurer: Option<Jurisdiction>,
    pub platform: Option<String>,
    pub order: Option<String>,
}

/// A worker's facts, sorted into what the rules read.
pub struct Worker<'f> {
    pub id: &'f str,
    pub person: &'f PersonRegistered,
    pub facts: &'f [Fact],
}

impl<'f> Worker<'f> {
    pub fn new(id: &'f str, facts: &'f [Fact]) -> Result<Self, RuleError> {
        let person = facts
            .iter()
            .find_map(|f| match &f.what {
                FactKind::Person(p) => Some(p),
                _ => None,
            })
            .ok_or_else(|| RuleError::UnknownWorker(id.to_string()))?;
        Ok(Worker { id, person, facts })
    }

    /// The hukou province on `on`: the latest change in effect, else the registered one. None for
    /// a person without hukou (a foreign national).
    pub fn hukou_on(&self, on: Date) -> Option<Jurisdiction> {
        let mut best: Option<(Date, u64, &Jurisdiction)> = None;
        for f in self.facts {
            if let FactKind::Hukou(h) = &f.what {
                if h.effective <= on && best.is_none_or(|(d, i, _)| (h.effective, f.index) > (d, i))
                {
                    best = Some((h.effective, f.index, &h.hukou));
                }
            }
        }
        best.map(|(_, _, j)| j.clone())
            .or_else(|| self.person.hukou.clone())
    }
}

/// `round(n / d)`, halves up, for non-negative `n` and positive `d`.
pub(crate) fn div_half_up(n: i128, d: i128) -> i128 {
    debug_assert!(n >= 0 && d > 0);
    (2 * n + d) / (2 * d)
}

/// `amount × hundredths-of-a-percent`, rounded half up to the minor unit.
pub(crate) fn percent_of(amount: i128, hundredths: i64) -> i128 {
    div_half_up(amount * i128::from(hundredths), 10_000)
}

/// Money from an i128 that rules arithmetic keeps within range (sums of bounded amounts).
pub(crate) fn money(v: i128) -> Money {
    Money::from_minor(i64::try_from(v).unwrap_or(i64::MAX))
}

/// The entitlement of a worker as of a date (docs/rules.md §1 and §3).
pub fn entitlement(
    worker_id: &str,
    facts: &[Fact],
    params: &Params<'_>,
    as_of: Date,
) -> Result<Entitlement, RuleError> {
    let w = Worker::new(worker_id, facts)?;
    let mut flags = Vec::new();
    let pension = pension::pension(&w, params, as_of, &mut flags)?;
    let postings = cross_border::postings(&w, params, as_of);
    let (foreign, coordination) = cross_border::foreign(&w, params, as_of, &postings);
    flags.sort();
    flags.dedup();
    Ok(Entitlement {
        worker: worker_id.to_string(),
        as_of,
        pension,
        postings,
        foreign,
        flags,
        coordination,
    })
}
