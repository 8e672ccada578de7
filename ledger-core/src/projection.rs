//! The projection: the read model the entitlement rules answer from. It is fed only by applied
//! events and written in the same atomic batch as the events themselves, so it always reflects
//! exactly the log head, on every node, byte for byte.
//!
//! Per worker it keeps the worker's *facts*: each event (or batch line) that concerns the worker,
//! as it stands after corrections (a voided one is gone; a replaced one is its replacement, at the
//! original's position in the log, so "committed first" keeps meaning the original's place).
//! Rule parameters published by agencies are kept beside them. Rules are evaluated from these on
//! demand ([`crate::rules`]): an entitlement depends on the date it is asked for, so it is not
//! stored, but it never scans the log.
//!
//! The facts live in the worker index itself: the entry `w` worker `0x00` index (u64 BE) that
//! lists an event under a worker also holds what the event says about that worker
//! ([`WorkerEntry`]), so the projection costs no extra key per line. A voided fact stays (flagged)
//! so the worker's history still lists the event; the rules skip it.
//!
//! Key layout (one keyspace with the ledger, see [`crate::state::keys`]):
//! - `w` worker `0x00` index (u64 BE) → [`WorkerEntry`]
//! - `y` index (u64 BE) → [`Published`] (JSON)
//! - `h` level position → the log's Merkle tree ([`crate::log_tree`]), derived like the rest
//! - `mprojection` → [`PROJECTION_VERSION`] (u32 BE)
//! - `mrulebook` → the rulebook the ledger was created with ([`crate::rulebook`])

use serde::{Deserialize, Serialize};

use crate::event::*;
use crate::ids::{ContractId, EmployerId, OrderId, WorkerId};
use crate::jurisdiction::Jurisdiction;
use crate::money::Money;
use crate::rulebook::Rulebook;
use crate::state::{StateRead, StoreFault, Writes};
use crate::time::{Date, Instant, Month};

/// Format version of the projection. A node whose stored projection has another version (or
/// none) rebuilds it from the log at start-up.
pub const PROJECTION_VERSION: u32 = 2;

pub mod keys {
    pub use crate::state::keys::{worker, worker_prefix, WORKER};
    pub const PUBLISHED: u8 = b'y';
    pub const VERSION: &[u8] = b"mprojection";
    pub const RULEBOOK: &[u8] = b"mrulebook";

    pub fn published(index: u64) -> Vec<u8> {
        let mut k = vec![PUBLISHED];
        k.extend_from_slice(&index.to_be_bytes());
        k
    }
}

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

/// The log index a worker index key ends with.
pub fn index_of_key(key: &[u8]) -> Option<u64> {
    let tail = key.len().checked_sub(8).map(|s| &key[s..])?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
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
    pub parameters: std::collections::BTreeMap<String, serde_json::Value>,
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
/// a contract or transfer rather than the worker.
pub fn facts_of(
    view: &dyn StateRead,
    kind: &EventKind,
) -> Result<Vec<(String, u32, FactKind)>, StoreFault> {
    let one = |w: &WorkerId, f: FactKind| vec![(w.to_string(), 0, f)];
    Ok(match kind {
        EventKind::KeyRegistered(_)
        | EventKind::KeyRevoked(_)
        | EventKind::ParametersPublished(_)
        | EventKind::Correction(_)
        | EventKind::LedgerAct(_) => Vec::new(),
        EventKind::PersonRegistered(e) => one(&e.worker, FactKind::Person(e.clone())),
        EventKind::HukouChanged(e) => one(&e.worker, FactKind::Hukou(e.clone())),
        EventKind::ContractRegistered(e) => one(&e.worker, FactKind::Contract(e.clone())),
        EventKind::ContractEnded(e) => {
            match crate::state::contract_record(view, e.contract.as_str())? {
                Some(c) => vec![(
                    c.worker,
                    0,
                    FactKind::ContractEnded {
                        contract: e.contract.clone(),
                        end: e.end,
                    },
                )],
                None => Vec::new(),
            }
        }
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
        EventKind::TransferCompleted(e) => {
            match crate::state::transfer_record(view, e.transfer.as_str())? {
                Some(t) => vec![(t.worker, 0, FactKind::TransferCompleted(e.clone()))],
                None => Vec::new(),
            }
        }
        EventKind::ForeignPeriodsReported(e) => one(&e.worker, FactKind::Foreign(e.clone())),
    })
}

fn is_batch(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::ContributionsDeclared(_) | EventKind::PlatformOrders(_)
    )
}

fn put_entry(w: &mut Writes, worker: &str, index: u64, entry: &WorkerEntry) {
    w.insert(keys::worker(worker, index), Some(entry.encode()));
}

/// The worker entries an event gives, by worker.
fn entries_of(
    view: &dyn StateRead,
    kind: &EventKind,
) -> Result<std::collections::BTreeMap<String, WorkerEntry>, StoreFault> {
    let batch = is_batch(kind);
    let mut out: std::collections::BTreeMap<String, WorkerEntry> = Default::default();
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

/// The projection writes of an appended event at `index`: its worker index entries (with their
/// facts), published parameters, and for a correction the corrected facts. `view` reads the
/// state as it was before this event (plus earlier events of the same entry); `target` is, for a
/// correction, the corrected event's index and body.
pub fn project(
    view: &dyn StateRead,
    index: u64,
    kind: &EventKind,
    target: Option<(u64, &EventKind)>,
) -> Result<Writes, StoreFault> {
    let mut w = Writes::new();
    match kind {
        EventKind::ParametersPublished(p) => {
            put_published(&mut w, index, p);
        }
        EventKind::Correction(c) => {
            let Some((t_index, t_kind)) = target else {
                return Err(StoreFault(format!(
                    "correction {index} projected without its target"
                )));
            };
            project_correction(view, &mut w, c, index, t_index, t_kind)?;
        }
        _ => {
            for (worker, entry) in entries_of(view, kind)? {
                put_entry(&mut w, &worker, index, &entry);
            }
        }
    }
    Ok(w)
}

fn put_published(w: &mut Writes, index: u64, p: &ParametersPublished) {
    let rec = Published {
        index,
        jurisdiction: p.jurisdiction.clone(),
        effective: p.effective,
        parameters: p.parameters.clone(),
    };
    w.insert(
        keys::published(index),
        Some(serde_json::to_vec(&rec).expect("serializes")),
    );
}

/// Reads, changes and writes back one worker entry of the corrected event.
fn amend(
    view: &dyn StateRead,
    w: &mut Writes,
    worker: &str,
    t_index: u64,
    change: impl FnOnce(&mut WorkerEntry),
) -> Result<(), StoreFault> {
    let key = keys::worker(worker, t_index);
    let current = match w.get(&key) {
        Some(Some(v)) => Some(v.clone()),
        Some(None) => None,
        None => view.get(&key)?,
    };
    let mut entry = match current {
        Some(b) => WorkerEntry::decode(&b)?,
        None => WorkerEntry::default(),
    };
    change(&mut entry);
    put_entry(w, worker, t_index, &entry);
    Ok(())
}

fn project_correction(
    view: &dyn StateRead,
    w: &mut Writes,
    c: &Correction,
    index: u64,
    t_index: u64,
    t_kind: &EventKind,
) -> Result<(), StoreFault> {
    if let EventKind::ParametersPublished(_) = t_kind {
        match (c.action, &c.replacement) {
            (CorrectionAction::Replace, Some(Replacement::Event(new))) => {
                if let EventKind::ParametersPublished(p) = new.as_ref() {
                    put_published(w, t_index, p);
                }
            }
            _ => {
                w.insert(keys::published(t_index), None);
            }
        }
        return Ok(());
    }
    // The workers the correction touches: it is listed under each of them.
    let mut touched: Vec<String> = Vec::new();
    match c.line {
        Some(line) => {
            let Some(old) = t_kind.lines().into_iter().nth(line as usize) else {
                return Ok(());
            };
            let (worker, _) = line_fact(t_kind, &old).expect("a line of its own event");
            let new = match (c.action, &c.replacement) {
                (CorrectionAction::Replace, Some(Replacement::Line(l))) => line_fact(t_kind, l),
                _ => None,
            };
            amend(view, w, worker.as_str(), t_index, |e| {
                for s in e.facts.iter_mut().filter(|s| s.line == line) {
                    match &new {
                        Some((_, f)) => s.what = f.clone(),
                        None => s.voided = true,
                    }
                }
            })?;
            touched.push(worker.to_string());
        }
        None => {
            let replaced = match (c.action, &c.replacement) {
                (CorrectionAction::Replace, Some(Replacement::Event(new))) => {
                    Some(entries_of(view, new)?)
                }
                _ => None,
            };
            for (worker, _) in entries_of(view, t_kind)? {
                let new = replaced.as_ref().and_then(|r| r.get(&worker)).cloned();
                amend(view, w, &worker, t_index, |e| match new {
                    Some(n) => {
                        // A replacement keeps the line positions (its identity rule), and
                        // lines voided before stay voided.
                        for s in n.facts {
                            if let Some(old) = e.facts.iter_mut().find(|o| o.line == s.line) {
                                old.what = s.what;
                            }
                        }
                    }
                    None => e.facts.iter_mut().for_each(|s| s.voided = true),
                })?;
                touched.push(worker);
            }
        }
    }
    for worker in touched {
        put_entry(w, &worker, index, &WorkerEntry::default());
    }
    Ok(())
}

/// A worker's live facts (voided ones left out) in log order, read from the projection.
pub fn worker_facts(view: &dyn StateRead, worker: &str) -> Result<Vec<Fact>, StoreFault> {
    let mut out = Vec::new();
    for (k, v) in view.scan_prefix(&keys::worker_prefix(worker))? {
        push_live(&k, &v, &mut out)?;
    }
    Ok(out)
}

fn push_live(key: &[u8], value: &[u8], out: &mut Vec<Fact>) -> Result<(), StoreFault> {
    let index = index_of_key(key).ok_or_else(|| StoreFault("short worker index key".into()))?;
    for s in WorkerEntry::decode(value)?.facts {
        if !s.voided {
            out.push(Fact {
                index,
                line: s.line,
                what: s.what,
            });
        }
    }
    Ok(())
}

/// Every published parameter set, in log order.
pub fn published(view: &dyn StateRead) -> Result<Vec<Published>, StoreFault> {
    view.scan_prefix(&[keys::PUBLISHED])?
        .into_iter()
        .map(|(_, v)| {
            serde_json::from_slice(&v)
                .map_err(|e| StoreFault(format!("projection parameters: {e}")))
        })
        .collect()
}

/// The rulebook the ledger was created with.
pub fn rulebook(view: &dyn StateRead) -> Result<Rulebook, StoreFault> {
    let b = view.get(keys::RULEBOOK)?.ok_or_else(|| {
        StoreFault(
            "the ledger holds no rulebook (created before rulebooks; rebuild it from genesis)"
                .into(),
        )
    })?;
    Rulebook::from_bytes(&b).map_err(StoreFault)
}

/// The rule parameters a ledger holds: its rulebook and what agencies published.
pub struct StoredParams {
    pub rulebook: Rulebook,
    pub published: Vec<Published>,
}

impl StoredParams {
    pub fn read(view: &dyn StateRead) -> Result<StoredParams, StoreFault> {
        Ok(StoredParams {
            rulebook: rulebook(view)?,
            published: published(view)?,
        })
    }

    /// The parameters as the rules read them.
    pub fn params(&self) -> crate::rules::Params<'_> {
        crate::rules::Params {
            rulebook: &self.rulebook,
            published: &self.published,
        }
    }
}

/// True when a key belongs to the projection (what a rebuild clears and replays).
pub fn is_projection_key(key: &[u8]) -> bool {
    matches!(
        key.first(),
        Some(&keys::WORKER) | Some(&keys::PUBLISHED) | Some(&crate::log_tree::TREE)
    ) || key == keys::VERSION
}

/// Reads a base state through pending writes: what a replay sees between its commits.
pub struct Layer<'a> {
    pub base: &'a dyn StateRead,
    pub pending: &'a Writes,
}

impl StateRead for Layer<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault> {
        match self.pending.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreFault> {
        Ok(crate::state::scan_through(
            self.base.scan_prefix(prefix)?,
            self.pending,
            prefix,
        ))
    }
}

/// The projection writes of replaying the logged events `from..=to` in order, over a state
/// whose projection was cleared (or holds the replay of events before `from`). A rebuild is
/// these chunks committed in order, then [`PROJECTION_VERSION`]: the result equals what applying
/// the log wrote as it went.
pub fn replay(view: &dyn StateRead, from: u64, to: u64) -> Result<Writes, StoreFault> {
    let mut pending = Writes::new();
    for index in from..=to {
        let b = view
            .get(&crate::state::keys::event(index))?
            .ok_or_else(|| StoreFault(format!("event {index} missing")))?;
        let rec = crate::state::StoredRecord::decode(&b)?;
        let body = crate::wire::decode_event(&rec.envelope.body, &rec.envelope.lines)
            .map_err(|e| StoreFault(format!("stored event {index} no longer decodes: {e}")))?;
        let w = crate::state::project_event(
            &Layer {
                base: view,
                pending: &pending,
            },
            index,
            &body.kind,
        )?;
        pending.extend(w);
        crate::log_tree::append(
            view,
            &mut pending,
            index - 1,
            crate::log_tree::event_leaf(&rec.event_id, rec.stamp),
        )?;
    }
    Ok(pending)
}

/// Calls `f` with every worker's live facts, worker by worker in id order (for aggregates such
/// as the coverage indicators). Reads the projection only.
pub fn for_each_worker(
    view: &dyn StateRead,
    mut f: impl FnMut(&str, &[Fact]),
) -> Result<(), StoreFault> {
    let rows = view.scan_prefix(&[keys::WORKER])?;
    let mut current: Option<Vec<u8>> = None;
    let mut facts: Vec<Fact> = Vec::new();
    for (k, v) in rows {
        // `w` worker 0x00 index(8)
        let Some(worker) = k.len().checked_sub(9).map(|end| k[1..end].to_vec()) else {
            continue;
        };
        if current.as_ref() != Some(&worker) {
            if let Some(w) = current.take() {
                f(&String::from_utf8_lossy(&w), &facts);
            }
            facts.clear();
            current = Some(worker);
        }
        push_live(&k, &v, &mut facts)?;
    }
    if let Some(w) = current {
        f(&String::from_utf8_lossy(&w), &facts);
    }
    Ok(())
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
