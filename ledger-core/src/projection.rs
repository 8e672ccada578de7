//! The projection: the read model the entitlement rules answer from. It is fed only by applied
//! events and written in the same atomic batch as the events themselves, so it always reflects
//! exactly the log head, on every node, byte for byte.
//!
//! Per worker it keeps the worker's *facts* ([`crate::fact`]): each event (or batch line) that
//! concerns the worker, as it stands after corrections (a voided one is gone; a replaced one is
//! its replacement, at the original's position in the log, so "committed first" keeps meaning
//! the original's place). Rule parameters published by agencies are kept beside them. Rules are
//! evaluated from these on demand ([`crate::rules`]): an entitlement depends on the date it is
//! asked for, so it is not stored, but it never scans the log.
//!
//! The facts live in the worker index itself: the entry `w` worker `0x00` index (u64 BE) that
//! lists an event under a worker also holds what the event says about that worker
//! ([`WorkerEntry`]), so the projection costs no extra key per line. A voided fact stays (flagged)
//! so the worker's history still lists the event; the rules skip it.
//!
//! Keys (all in [`crate::schema`]): `w` worker entries, `y` published parameters, `h` the log's
//! Merkle tree ([`crate::log_tree`], derived like the rest), `mprojection`
//! ([`PROJECTION_VERSION`]) and `mrulebook` (the rulebook the ledger was created with).

use crate::event::*;
use crate::fact::{entries_of, line_fact, Fact, Published, WorkerEntry};
use crate::kv::{Overlay, StateRead, StoreFault, Writes};
use crate::log_tree::event_leaf;
use crate::records;
use crate::rulebook::Rulebook;
use crate::schema;

/// Format version of the projection. A node whose stored projection has another version (or
/// none) rebuilds it from the log at start-up.
pub const PROJECTION_VERSION: u32 = 2;

fn put_entry(w: &mut Overlay<'_>, worker: &str, index: u64, entry: &WorkerEntry) {
    w.put(schema::worker(worker, index), entry.encode());
}

/// The projection writes of an admitted event (the state machine and a rebuild share this):
/// for a correction, its target is read from `view` first.
pub fn project_event(
    view: &dyn StateRead,
    index: u64,
    kind: &EventKind,
) -> Result<Writes, StoreFault> {
    let target = match kind {
        EventKind::Correction(c) => {
            let t_index = records::index_of(view, &c.target)?
                .ok_or_else(|| StoreFault(format!("correction target {} is missing", c.target)))?;
            Some((t_index, records::record(view, t_index)?.body()?.kind))
        }
        _ => None,
    };
    project(view, index, kind, target.as_ref().map(|(i, k)| (*i, k)))
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
    let mut w = Overlay::new(view);
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
            project_correction(&mut w, c, index, t_index, t_kind)?;
        }
        _ => {
            for (worker, entry) in entries_of(view, kind)? {
                put_entry(&mut w, &worker, index, &entry);
            }
        }
    }
    Ok(w.into_writes())
}

fn put_published(w: &mut Overlay<'_>, index: u64, p: &ParametersPublished) {
    let rec = Published {
        index,
        jurisdiction: p.jurisdiction.clone(),
        effective: p.effective,
        parameters: p.parameters.clone(),
    };
    w.put_json(schema::published(index), &rec);
}

/// Reads, changes and writes back one worker entry of the corrected event.
fn amend(
    w: &mut Overlay<'_>,
    worker: &str,
    t_index: u64,
    change: impl FnOnce(&mut WorkerEntry),
) -> Result<(), StoreFault> {
    let mut entry = match w.get(&schema::worker(worker, t_index))? {
        Some(b) => WorkerEntry::decode(&b)?,
        None => WorkerEntry::default(),
    };
    change(&mut entry);
    put_entry(w, worker, t_index, &entry);
    Ok(())
}

/// The corrected facts (or parameters) of the target, and the correction's own (empty) entry
/// under every worker it touches.
fn project_correction(
    w: &mut Overlay<'_>,
    c: &Correction,
    index: u64,
    t_index: u64,
    t_kind: &EventKind,
) -> Result<(), StoreFault> {
    if let EventKind::ParametersPublished(_) = t_kind {
        correct_published(w, c, t_index);
        return Ok(());
    }
    let touched = match c.line {
        Some(line) => correct_line(w, c, line, t_index, t_kind)?,
        None => correct_event(w, c, t_index, t_kind)?,
    };
    for worker in touched {
        put_entry(w, &worker, index, &WorkerEntry::default());
    }
    Ok(())
}

fn correct_published(w: &mut Overlay<'_>, c: &Correction, t_index: u64) {
    match (c.action, &c.replacement) {
        (CorrectionAction::Replace, Some(Replacement::Event(new))) => {
            if let EventKind::ParametersPublished(p) = new.as_ref() {
                put_published(w, t_index, p);
            }
        }
        _ => w.delete(schema::published(t_index)),
    }
}

/// Voids or replaces the fact of one line; the workers touched (none for a missing line).
fn correct_line(
    w: &mut Overlay<'_>,
    c: &Correction,
    line: u32,
    t_index: u64,
    t_kind: &EventKind,
) -> Result<Vec<String>, StoreFault> {
    let Some(old) = t_kind.lines().into_iter().nth(line as usize) else {
        return Ok(Vec::new());
    };
    let (worker, _) = line_fact(t_kind, &old).expect("a line of its own event");
    let new = match (c.action, &c.replacement) {
        (CorrectionAction::Replace, Some(Replacement::Line(l))) => line_fact(t_kind, l),
        _ => None,
    };
    amend(w, worker.as_str(), t_index, |e| {
        for s in e.facts.iter_mut().filter(|s| s.line == line) {
            match &new {
                Some((_, f)) => s.what = f.clone(),
                None => s.voided = true,
            }
        }
    })?;
    Ok(vec![worker.to_string()])
}

/// Voids or replaces every fact of the target; the workers touched.
fn correct_event(
    w: &mut Overlay<'_>,
    c: &Correction,
    t_index: u64,
    t_kind: &EventKind,
) -> Result<Vec<String>, StoreFault> {
    let replaced = match (c.action, &c.replacement) {
        (CorrectionAction::Replace, Some(Replacement::Event(new))) => Some(entries_of(w, new)?),
        _ => None,
    };
    let mut touched = Vec::new();
    for (worker, _) in entries_of(w, t_kind)? {
        let new = replaced.as_ref().and_then(|r| r.get(&worker)).cloned();
        amend(w, &worker, t_index, |e| match new {
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
    Ok(touched)
}

/// A worker's live facts (voided ones left out) in log order, read from the projection.
pub fn worker_facts(view: &dyn StateRead, worker: &str) -> Result<Vec<Fact>, StoreFault> {
    let mut out = Vec::new();
    for (k, v) in view.scan_prefix(&schema::worker_prefix(worker))? {
        push_live(&k, &v, &mut out)?;
    }
    Ok(out)
}

fn push_live(key: &[u8], value: &[u8], out: &mut Vec<Fact>) -> Result<(), StoreFault> {
    let index = schema::index_of_worker_key(key)
        .ok_or_else(|| StoreFault("short worker index key".into()))?;
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
    view.scan_prefix(&[schema::PUBLISHED])?
        .into_iter()
        .map(|(_, v)| {
            serde_json::from_slice(&v)
                .map_err(|e| StoreFault(format!("projection parameters: {e}")))
        })
        .collect()
}

/// The rulebook the ledger was created with.
pub fn rulebook(view: &dyn StateRead) -> Result<Rulebook, StoreFault> {
    let b = view.get(schema::RULEBOOK)?.ok_or_else(|| {
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

/// The projection writes of replaying the logged events `from..=to` in order, over a state
/// whose projection was cleared (or holds the replay of events before `from`). A rebuild is
/// these chunks committed in order, then [`PROJECTION_VERSION`]: the result equals what applying
/// the log wrote as it went.
pub fn replay(view: &dyn StateRead, from: u64, to: u64) -> Result<Writes, StoreFault> {
    let mut pending = Overlay::new(view);
    for index in from..=to {
        let rec = records::record(view, index)?;
        let body = rec.body()?;
        let w = project_event(&pending, index, &body.kind)?;
        pending.extend(w);
        records::append_leaf(
            &mut pending,
            index - 1,
            event_leaf(&rec.event_id, rec.stamp),
        )?;
    }
    Ok(pending.into_writes())
}

/// Calls `f` with every worker's live facts, worker by worker in id order (for aggregates such
/// as the coverage indicators). Reads the projection only.
pub fn for_each_worker(
    view: &dyn StateRead,
    mut f: impl FnMut(&str, &[Fact]),
) -> Result<(), StoreFault> {
    let rows = view.scan_prefix(&[schema::WORKER])?;
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

/// The worker's event indexes and the parameter publications' indexes up to `size`, in log
/// order: what a statement at that size holds ([`crate::statement::Contents`]). The same on every node with the same log, since
/// each index entry is written with the event that gives it.
pub fn listed_indexes(
    view: &dyn StateRead,
    worker: &str,
    size: u64,
) -> Result<(Vec<u64>, Vec<u64>), StoreFault> {
    let events = view
        .scan_prefix(&schema::worker_prefix(worker))?
        .iter()
        .filter_map(|(k, _)| schema::index_of_worker_key(k))
        .filter(|i| *i <= size)
        .collect();
    let parameters = published(view)?
        .iter()
        .map(|p| p.index)
        .filter(|i| *i <= size)
        .collect();
    Ok((events, parameters))
}
