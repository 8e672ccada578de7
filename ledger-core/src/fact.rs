//! Facts: what an event says about each worker it concerns, as the rules read it, and the
//! worker entry that stores them (`w` worker 0x00 index, [`crate::schema::worker`]). Derived
//! from an event (and, for the two kinds that name a contract or transfer, its record) alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::*;
use crate::ids::{ContractId, EmployerId, OrderId, WorkerId};
use crate::jurisdiction::Jurisdiction;
use crate::kv::{StateRead, StoreFault};
use crate::money::Money;
use crate::records;
use crate::time::{Date, Instant, Month};

/// One fact about a worker: where it sits in the log, and what it says now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub index: u64,
    pub line: u32,
    pub what: FactKind,
}

/// A fact as stored in its worker entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub line: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub voided: bool,
    pub what: FactKind,
}

/// The value of a worker index entry: the worker's line positions in the event (empty for a
/// non-batch event) and the facts it gives about the worker (none for a correction, which is
/// listed under the workers it touches).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkerEntry {
    pub positions: Vec<u32>,
    pub facts: Vec<Slot>,
}

/// Marks the compact encoding of an entry whose facts are all contribution lines (the bulk of
/// the log: a payroll line is about 60 bytes this way, about 200 as JSON).
const COMPACT_CONTRIBUTIONS: u8 = 0x01;
const SCHEMES: [Scheme; 5] = [
    Scheme::Pension,
    Scheme::Injury,
    Scheme::Medical,
    Scheme::Unemployment,
    Scheme::Maternity,
];

impl WorkerEntry {
    /// `n (u32 BE) | n positions (u32 BE) | facts`, the facts absent when none, else either a
    /// JSON array or, when every fact is a contribution line, [`COMPACT_CONTRIBUTIONS`] and per
    /// fact: line u32, flags u8 (voided, back pay), scheme u8, period u32 (YYYYMM), base,
    /// employer and employee amounts (i64 minor units), employer and jurisdiction (u8 length and
    /// bytes each). All integers big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + 4 * self.positions.len() + 64 * self.facts.len());
        v.extend_from_slice(&(self.positions.len() as u32).to_be_bytes());
        for p in &self.positions {
            v.extend_from_slice(&p.to_be_bytes());
        }
        if self.facts.is_empty() {
            return v;
        }
        let all_contributions = self
            .facts
            .iter()
            .all(|s| matches!(s.what, FactKind::Contribution { .. }));
        if !all_contributions {
            serde_json::to_writer(&mut v, &self.facts).expect("facts serialize");
            return v;
        }
        v.push(COMPACT_CONTRIBUTIONS);
        for s in &self.facts {
            let FactKind::Contribution {
                employer,
                jurisdiction,
                period,
                back_pay,
                scheme,
                base,
                employer_amount,
                employee_amount,
            } = &s.what
            else {
                unreachable!("checked above");
            };
            v.extend_from_slice(&s.line.to_be_bytes());
            v.push(u8::from(s.voided) | (u8::from(*back_pay) << 1));
            v.push(
                SCHEMES
                    .iter()
                    .position(|x| x == scheme)
                    .expect("every scheme") as u8,
            );
            v.extend_from_slice(&period.to_wire().to_be_bytes());
            for m in [base, employer_amount, employee_amount] {
                v.extend_from_slice(&m.minor().to_be_bytes());
            }
            // Ids are at most MAX_ID_BYTES (64) long, so a length byte holds them.
            for t in [employer.as_str(), jurisdiction.as_str()] {
                v.push(t.len() as u8);
                v.extend_from_slice(t.as_bytes());
            }
        }
        v
    }

    fn decode_compact(mut b: &[u8]) -> Result<Vec<Slot>, StoreFault> {
        let bad = |why: &str| StoreFault(format!("worker index entry (compact): {why}"));
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (h, t) = (b.len() >= n).then(|| b.split_at(n))?;
            *b = t;
            Some(h)
        }
        let u32_of = |x: &[u8]| u32::from_be_bytes(x.try_into().expect("4 bytes"));
        let mut out = Vec::new();
        while !b.is_empty() {
            let line = u32_of(take(&mut b, 4).ok_or_else(|| bad("truncated"))?);
            let head = take(&mut b, 2).ok_or_else(|| bad("truncated"))?;
            let scheme = *SCHEMES
                .get(head[1] as usize)
                .ok_or_else(|| bad("unknown scheme"))?;
            let period = Month::from_wire(u32_of(take(&mut b, 4).ok_or_else(|| bad("truncated"))?))
                .map_err(|e| bad(&e.0))?;
            let mut money = [Money::ZERO; 3];
            for m in money.iter_mut() {
                let x = take(&mut b, 8).ok_or_else(|| bad("truncated"))?;
                *m = Money::from_minor(i64::from_be_bytes(x.try_into().expect("8 bytes")));
            }
            let mut text = [String::new(), String::new()];
            for t in text.iter_mut() {
                let n = *take(&mut b, 1)
                    .ok_or_else(|| bad("truncated"))?
                    .first()
                    .expect("1 byte");
                let raw = take(&mut b, n as usize).ok_or_else(|| bad("truncated"))?;
                *t = String::from_utf8(raw.to_vec()).map_err(|_| bad("not UTF-8"))?;
            }
            let [employer, jurisdiction] = text;
            out.push(Slot {
                line,
                voided: head[0] & 1 == 1,
                what: FactKind::Contribution {
                    employer: EmployerId::new(employer).map_err(|e| bad(&e.0))?,
                    jurisdiction: Jurisdiction::new(jurisdiction).map_err(|e| bad(&e.0))?,
                    period,
                    back_pay: head[0] & 2 == 2,
                    scheme,
                    base: money[0],
                    employer_amount: money[1],
                    employee_amount: money[2],
                },
            });
        }
        Ok(out)
    }

    pub fn decode(b: &[u8]) -> Result<WorkerEntry, StoreFault> {
        let bad = |why: &str| StoreFault(format!("worker index entry: {why}"));
        let n = b
            .get(..4)
            .map(|x| u32::from_be_bytes(x.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| bad("truncated"))?;
        let end = 4 + 4 * n;
        let positions = b
            .get(4..end)
            .ok_or_else(|| bad("truncated positions"))?
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let facts = match b.get(end) {
            None => Vec::new(),
            Some(&COMPACT_CONTRIBUTIONS) => Self::decode_compact(&b[end + 1..])?,
            Some(_) => serde_json::from_slice(&b[end..]).map_err(|e| bad(&e.to_string()))?,
        };
        Ok(WorkerEntry { positions, facts })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    Person(PersonRegistered),
    Hukou(HukouChanged),
    Contract(ContractRegistered),
    ContractEnded {
        contract: ContractId,
        end: Date,
    },
    Contribution {
        employer: EmployerId,
        jurisdiction: Jurisdiction,
        period: Month,
        back_pay: bool,
        scheme: Scheme,
        base: Money,
        employer_amount: Money,
        employee_amount: Money,
    },
    Flexible(FlexibleContribution),
    Order {
        platform: EmployerId,
        jurisdiction: Jurisdiction,
        order: OrderId,
        accepted_at: Instant,
        completed_at: Instant,
    },
    Injury(InjuryOccurred),
    Certificate(CoverageCertificateIssued),
    Permit(WorkPermitLinked),
    TransferRequested(TransferRequested),
    TransferCompleted(TransferCompleted),
    Foreign(ForeignPeriodsReported),
}

/// A `parameters_published` event as the rules read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub index: u64,
    pub jurisdiction: Jurisdiction,
    pub effective: Date,
    pub parameters: BTreeMap<String, serde_json::Value>,
}

fn contribution_fact(d: &ContributionsDeclared, l: &ContributionLine) -> FactKind {
    FactKind::Contribution {
        employer: d.employer.clone(),
        jurisdiction: d.jurisdiction.clone(),
        period: d.period,
        back_pay: d.back_pay,
        scheme: l.scheme,
        base: l.base,
        employer_amount: l.employer_amount,
        employee_amount: l.employee_amount,
    }
}

fn order_fact(p: &PlatformOrders, l: &OrderLine) -> FactKind {
    FactKind::Order {
        platform: p.platform.clone(),
        jurisdiction: p.jurisdiction.clone(),
        order: l.order.clone(),
        accepted_at: l.accepted_at,
        completed_at: l.completed_at,
    }
}

/// The fact one line of a batch event becomes, `None` when `line` does not fit `kind`.
pub fn line_fact(kind: &EventKind, line: &Line) -> Option<(WorkerId, FactKind)> {
    match (kind, line) {
        (EventKind::ContributionsDeclared(d), Line::Contribution(l)) => {
            Some((l.worker.clone(), contribution_fact(d, l)))
        }
        (EventKind::PlatformOrders(p), Line::Order(l)) => {
            Some((l.worker.clone(), order_fact(p, l)))
        }
        _ => None,
    }
}

/// The facts an event gives: (worker, line, fact). Needs the state for the two kinds that name
/// a contract or transfer rather than the worker: its record names the worker.
pub fn facts_of(
    view: &dyn StateRead,
    kind: &EventKind,
) -> Result<Vec<(String, u32, FactKind)>, StoreFault> {
    let named = match kind {
        EventKind::ContractEnded(e) => {
            records::contract_record(view, e.contract.as_str())?.map(|c| c.worker)
        }
        EventKind::TransferCompleted(e) => {
            records::transfer_record(view, e.transfer.as_str())?.map(|t| t.worker)
        }
        _ => None,
    };
    Ok(facts_given(kind, named))
}

/// The facts an event gives, `named` being the worker of a `contract_ended` or
/// `transfer_completed` (which name a contract or transfer; none gives no fact). Reads nothing.
pub fn facts_given(kind: &EventKind, named: Option<String>) -> Vec<(String, u32, FactKind)> {
    let one = |w: &WorkerId, f: FactKind| vec![(w.to_string(), 0, f)];
    match kind {
        EventKind::KeyRegistered(_)
        | EventKind::KeyRevoked(_)
        | EventKind::ParametersPublished(_)
        | EventKind::Correction(_)
        | EventKind::LedgerAct(_) => Vec::new(),
        EventKind::PersonRegistered(e) => one(&e.worker, FactKind::Person(e.clone())),
        EventKind::HukouChanged(e) => one(&e.worker, FactKind::Hukou(e.clone())),
        EventKind::ContractRegistered(e) => one(&e.worker, FactKind::Contract(e.clone())),
        EventKind::ContractEnded(e) => named
            .map(|w| {
                let what = FactKind::ContractEnded {
                    contract: e.contract.clone(),
                    end: e.end,
                };
                vec![(w, 0, what)]
            })
            .unwrap_or_default(),
        EventKind::ContributionsDeclared(d) => d
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| (l.worker.to_string(), i as u32, contribution_fact(d, l)))
            .collect(),
        EventKind::FlexibleContribution(e) => one(&e.worker, FactKind::Flexible(e.clone())),
        EventKind::PlatformOrders(p) => p
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| (l.worker.to_string(), i as u32, order_fact(p, l)))
            .collect(),
        EventKind::InjuryOccurred(e) => one(&e.worker, FactKind::Injury(e.clone())),
        EventKind::CoverageCertificateIssued(e) => one(&e.worker, FactKind::Certificate(e.clone())),
        EventKind::WorkPermitLinked(e) => one(&e.worker, FactKind::Permit(e.clone())),
        EventKind::TransferRequested(e) => one(&e.worker, FactKind::TransferRequested(e.clone())),
        EventKind::TransferCompleted(e) => named
            .map(|w| vec![(w, 0, FactKind::TransferCompleted(e.clone()))])
            .unwrap_or_default(),
        EventKind::ForeignPeriodsReported(e) => one(&e.worker, FactKind::Foreign(e.clone())),
    }
}

pub fn is_batch(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::ContributionsDeclared(_) | EventKind::PlatformOrders(_)
    )
}

/// The worker entries an event gives, by worker.
pub fn entries_of(
    view: &dyn StateRead,
    kind: &EventKind,
) -> Result<BTreeMap<String, WorkerEntry>, StoreFault> {
    let batch = is_batch(kind);
    let mut out: BTreeMap<String, WorkerEntry> = Default::default();
    for (worker, line, what) in facts_of(view, kind)? {
        let e = out.entry(worker).or_default();
        if batch {
            e.positions.push(line);
        }
        e.facts.push(Slot {
            line,
            voided: false,
            what,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn contribution(
        employer: &str,
        period: u32,
        scheme: usize,
        amounts: [i64; 3],
        back_pay: bool,
    ) -> FactKind {
        FactKind::Contribution {
            employer: EmployerId::new(employer).unwrap(),
            jurisdiction: Jurisdiction::new("CN-44").unwrap(),
            period: Month::from_wire(period).unwrap(),
            back_pay,
            scheme: SCHEMES[scheme],
            base: Money::from_minor(amounts[0]),
            employer_amount: Money::from_minor(amounts[1]),
            employee_amount: Money::from_minor(amounts[2]),
        }
    }

    proptest! {
        /// Both encodings round-trip: compact for contribution lines, JSON for anything else.
        #[test]
        fn worker_entries_round_trip(
            positions in proptest::collection::vec(any::<u32>(), 0..4),
            lines in proptest::collection::vec((any::<u32>(), any::<bool>(), 0usize..5, 1951u32..9999, 1u32..13, [0i64..=crate::money::MAX_MINOR, 0i64..=crate::money::MAX_MINOR, 0i64..=crate::money::MAX_MINOR], any::<bool>(), "[A-Z0-9]{1,64}"), 0..4),
            mixed in any::<bool>(),
        ) {
            let mut facts: Vec<Slot> = lines
                .iter()
                .map(|(line, voided, scheme, y, m, amounts, back_pay, employer)| Slot {
                    line: *line,
                    voided: *voided,
                    what: contribution(employer, y * 100 + m, *scheme, *amounts, *back_pay),
                })
                .collect();
            if mixed {
                facts.push(Slot {
                    line: 0,
                    voided: false,
                    what: FactKind::ContractEnded {
                        contract: ContractId::new("C-1").unwrap(),
                        end: Date::new(2024, 2, 29).unwrap(),
                    },
                });
            }
            let e = WorkerEntry { positions, facts };
            let bytes = e.encode();
            prop_assert_eq!(WorkerEntry::decode(&bytes).unwrap(), e);
        }
    }
}
