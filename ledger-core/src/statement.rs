//! Statements: a self-contained, offline-verifiable file of one worker's records.
//!
//! Format `pcl-statement/1` (JSON): the worker, a signed checkpoint (C2SP note text), and each of
//! the worker's events — the author's envelope (protobuf, base64) with only that worker's lines
//! of a batch and their proofs into the signed `lines_root` — with its log index, the stamp of
//! the entry that appended it, and its inclusion proof into the checkpoint's tree. The
//! `parameters_published` events of the log come along (with proofs too) so the entitlement can
//! be recomputed with the same parameters. [`verify`] checks every byte of it against trusted
//! node keys; anything altered fails with the reason.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, NoteKey, SignedNote};
use crate::envelope::Envelope;
use crate::event::*;
use crate::ids::WorkerId;
use crate::log_tree::event_leaf;
use crate::merkle;
use crate::projection::{line_fact, Fact, FactKind, Published};
use crate::time::Instant;
use crate::wire::{self, ProvenLine};

pub const STATEMENT_FORMAT: &str = "pcl-statement/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    pub format: String,
    pub worker: String,
    /// The signed checkpoint every inclusion proof leads to.
    pub checkpoint: String,
    /// The node asserts these are all of the worker's events up to the checkpoint.
    pub complete: bool,
    pub events: Vec<StatementEvent>,
    /// Every `parameters_published` of the log up to the checkpoint.
    #[serde(default)]
    pub parameters: Vec<StatementEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementEvent {
    pub index: u64,
    pub appended_at: Instant,
    /// The envelope as protobuf bytes, base64; a batch carries only the worker's lines.
    pub envelope: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub line_positions: Vec<u32>,
    /// Per kept line, its proof into the body's lines_root (concatenated hashes, base64).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub line_proofs: Vec<String>,
    /// The inclusion proof of the event's leaf in the checkpoint's tree (hex hashes, bottom-up).
    pub inclusion: Vec<Hash32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("statement does not verify: {0}")]
pub struct StatementError(pub String);

/// One event the statement proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenEvent {
    pub index: u64,
    pub event_id: Hash32,
    pub appended_at: Instant,
    pub body: EventBody,
    /// Positions of the kept lines in the batch (empty for other events).
    pub line_positions: Vec<u32>,
    pub signers: Vec<PublicKeyBytes>,
}

/// What a verified statement proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven {
    pub worker: String,
    pub checkpoint: Checkpoint,
    /// The trusted nodes whose signatures on the checkpoint verified.
    pub signed_by: Vec<String>,
    pub complete: bool,
    pub events: Vec<ProvenEvent>,
    pub parameters: Vec<Published>,
}

fn fail<T>(m: impl Into<String>) -> Result<T, StatementError> {
    Err(StatementError(m.into()))
}

impl StatementEvent {
    /// Packs an event for a statement.
    pub fn new(
        index: u64,
        appended_at: Instant,
        envelope: &Envelope,
        line_positions: Vec<u32>,
        line_proofs: Vec<Vec<Hash32>>,
        inclusion: Vec<Hash32>,
    ) -> StatementEvent {
        use prost::Message;
        StatementEvent {
            index,
            appended_at,
            envelope: B64.encode(envelope.to_pb().encode_to_vec()),
            line_positions,
            line_proofs: line_proofs
                .iter()
                .map(|p| B64.encode(merkle::proof_to_bytes(p)))
                .collect(),
            inclusion,
        }
    }

    fn open(&self, cp: &Checkpoint) -> Result<ProvenEvent, StatementError> {
        use prost::Message;
        let at = |m: String| StatementError(format!("event {}: {m}", self.index));
        let bytes = B64
            .decode(&self.envelope)
            .map_err(|_| at("the envelope is not base64".into()))?;
        let pb = crate::pb::Envelope::decode(bytes.as_slice())
            .map_err(|e| at(format!("the envelope does not decode: {e}")))?;
        // One envelope, one encoding: bytes that decode to the same message are still a change.
        if B64.encode(&bytes) != self.envelope || pb.encode_to_vec() != bytes {
            return Err(at(
                "the envelope is not in its canonical encoding (altered)".into(),
            ));
        }
        let env = Envelope::from_pb(pb).map_err(|r| at(r.to_string()))?;
        env.verify_signatures().map_err(|r| at(r.to_string()))?;
        let body = if self.line_positions.is_empty() {
            wire::decode_event(&env.body, &env.lines).map_err(|r| at(r.to_string()))?
        } else {
            if self.line_positions.len() != env.lines.len()
                || self.line_proofs.len() != env.lines.len()
            {
                return Err(at(
                    "line positions, lines and proofs differ in number".into()
                ));
            }
            let proven = self
                .line_positions
                .iter()
                .zip(&env.lines)
                .zip(&self.line_proofs)
                .map(|((p, l), proof)| {
                    let raw = B64
                        .decode(proof)
                        .ok()
                        .filter(|r| B64.encode(r) == *proof)
                        .ok_or_else(|| at("a line proof is not canonical base64".into()))?;
                    Ok(ProvenLine {
                        position: *p,
                        bytes: l.clone(),
                        proof: merkle::proof_from_bytes(&raw)
                            .ok_or_else(|| at("malformed line proof".into()))?,
                    })
                })
                .collect::<Result<Vec<_>, StatementError>>()?;
            wire::decode_proven(&env.body, &proven).map_err(|r| at(r.to_string()))?
        };
        let id = env.id();
        if self.index == 0 || self.index > cp.size {
            return Err(at(format!(
                "index outside the checkpoint's {} events",
                cp.size
            )));
        }
        let leaf = event_leaf(&id, self.appended_at);
        if !merkle::verify_inclusion(&leaf, self.index - 1, cp.size, &self.inclusion, &cp.root) {
            return Err(at(
                "its inclusion proof does not lead to the checkpoint's root (altered event, stamp, index or proof)".into(),
            ));
        }
        Ok(ProvenEvent {
            index: self.index,
            event_id: id,
            appended_at: self.appended_at,
            body,
            line_positions: self.line_positions.clone(),
            signers: env.signatures.iter().map(|s| s.public_key).collect(),
        })
    }
}

/// Parses and checks a statement offline against trusted node keys: the checkpoint's signatures
/// (at least one trusted), every event's signatures, batch-line proofs and inclusion proof, and
/// that the events are the worker's.
pub fn verify(text: &str, trusted: &[NoteKey]) -> Result<Proven, StatementError> {
    let st: Statement = serde_json::from_str(text)
        .map_err(|e| StatementError(format!("not a statement file: {e}")))?;
    // One statement, one text: whitespace, key order or escapes that differ from the canonical
    // form are changes too, so any altered byte fails.
    let canonical = serde_json::to_string_pretty(&st).expect("statements serialize");
    if text.strip_suffix('\n').unwrap_or(text) != canonical {
        return fail("the file is not in its canonical form (it was edited)");
    }
    if st.format != STATEMENT_FORMAT {
        return fail(format!(
            "format {:?}; this verifier reads {STATEMENT_FORMAT}",
            st.format
        ));
    }
    let note = SignedNote::parse(&st.checkpoint).map_err(|e| StatementError(e.to_string()))?;
    if note.format() != st.checkpoint {
        return fail("its checkpoint is not in canonical signed-note form (altered)");
    }
    let signed_by = note
        .verify(trusted)
        .map_err(|e| StatementError(e.to_string()))?;
    if signed_by.is_empty() {
        return fail("no trusted node signed its checkpoint (check --trust)");
    }
    // Every signature must be checkable: a line by an unknown key could be anything, including
    // an altered one, so it is refused rather than skipped.
    for s in &note.signatures {
        if !trusted
            .iter()
            .any(|k| k.name == s.name && k.id() == s.key_id)
        {
            return fail(format!(
                "its checkpoint carries a signature by {:?}, a key not in the trust file (add that node's key to the trust file)",
                s.name
            ));
        }
    }
    let cp = Checkpoint::parse_body(&note.text).map_err(|e| StatementError(e.to_string()))?;
    let worker = WorkerId::new(st.worker.clone()).map_err(|e| StatementError(e.0))?;
    let mut events = Vec::with_capacity(st.events.len());
    let mut last = 0;
    for e in &st.events {
        if e.index <= last {
            return fail("events are not in log order");
        }
        last = e.index;
        let p = e.open(&cp)?;
        let others: Vec<&WorkerId> = match &p.body.kind {
            EventKind::ContributionsDeclared(_) | EventKind::PlatformOrders(_) => p
                .body
                .kind
                .workers()
                .into_iter()
                .filter(|w| **w != worker)
                .collect(),
            _ => Vec::new(),
        };
        if !others.is_empty() {
            return fail(format!("event {} carries another worker's lines", e.index));
        }
        let named = p.body.kind.workers();
        if !named.is_empty() && !named.contains(&&worker) {
            return fail(format!("event {} is not about worker {worker}", e.index));
        }
        events.push(p);
    }
    let mut parameters = Vec::new();
    for e in &st.parameters {
        let p = e.open(&cp)?;
        let EventKind::ParametersPublished(pp) = p.body.kind else {
            return fail(format!("event {} is not a parameters_published", e.index));
        };
        parameters.push(Published {
            index: p.index,
            jurisdiction: pp.jurisdiction,
            effective: pp.effective,
            parameters: pp.parameters,
        });
    }
    Ok(Proven {
        worker: worker.to_string(),
        checkpoint: cp,
        signed_by,
        complete: st.complete,
        events,
        parameters,
    })
}

/// The worker's facts from proven events, corrections applied, as the projection would hold
/// them: what the entitlement is recomputed from.
pub fn facts(proven: &Proven) -> Vec<Fact> {
    let mut out: Vec<Fact> = Vec::new();
    let index_of = |id: &Hash32| {
        proven
            .events
            .iter()
            .find(|e| e.event_id == *id)
            .map(|e| e.index)
    };
    let whole = |kind: &EventKind, index: u64, positions: &[u32]| -> Vec<Fact> {
        let w = proven.worker.as_str();
        let one = |what| {
            vec![Fact {
                index,
                line: 0,
                what,
            }]
        };
        match kind {
            EventKind::ContributionsDeclared(_) | EventKind::PlatformOrders(_) => kind
                .lines()
                .iter()
                .zip(positions.iter().copied().chain(0..))
                .filter_map(|(l, pos)| {
                    line_fact(kind, l)
                        .filter(|(lw, _)| lw.as_str() == w)
                        .map(|(_, what)| Fact {
                            index,
                            line: pos,
                            what,
                        })
                })
                .collect(),
            EventKind::ContractEnded(e) => one(FactKind::ContractEnded {
                contract: e.contract.clone(),
                end: e.end,
            }),
            EventKind::TransferCompleted(e) => one(FactKind::TransferCompleted(e.clone())),
            other => {
                // Stateless kinds: the projection's own mapping.
                crate::projection::facts_of(&NoState, other)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(fw, _, _)| fw == w)
                    .map(|(_, line, what)| Fact { index, line, what })
                    .collect()
            }
        }
    };
    for e in &proven.events {
        match &e.body.kind {
            EventKind::Correction(c) => {
                let Some(t) = index_of(&c.target) else {
                    continue;
                };
                match (c.line, c.action, &c.replacement) {
                    (Some(line), CorrectionAction::Replace, Some(Replacement::Line(l))) => {
                        let target = proven.events.iter().find(|x| x.index == t).expect("found");
                        if let Some((_, what)) = line_fact(&target.body.kind, l) {
                            for f in out.iter_mut().filter(|f| f.index == t && f.line == line) {
                                f.what = what.clone();
                            }
                        }
                    }
                    (Some(line), _, _) => out.retain(|f| !(f.index == t && f.line == line)),
                    (None, CorrectionAction::Replace, Some(Replacement::Event(new))) => {
                        // The replacement is a whole event: its lines keep their own positions.
                        let kept: Vec<u32> = out
                            .iter()
                            .filter(|f| f.index == t)
                            .map(|f| f.line)
                            .collect();
                        out.retain(|f| f.index != t);
                        out.extend(
                            whole(new, t, &[])
                                .into_iter()
                                .filter(|f| kept.contains(&f.line)),
                        );
                    }
                    (None, _, _) => out.retain(|f| f.index != t),
                }
            }
            kind => out.extend(whole(kind, e.index, &e.line_positions)),
        }
    }
    out.sort_by_key(|f| (f.index, f.line));
    out
}

/// A view with no state: for the event kinds whose facts need none.
struct NoState;

impl crate::state::StateRead for NoState {
    fn get(&self, _: &[u8]) -> Result<Option<Vec<u8>>, crate::state::StoreFault> {
        Ok(None)
    }
    fn scan_prefix(
        &self,
        _: &[u8],
    ) -> Result<Vec<crate::state::KeyValue>, crate::state::StoreFault> {
        Ok(Vec::new())
    }
}

/// The envelope with only the lines at `positions`, each with its proof into the body's
/// lines_root (what a worker may see of a batch). Positions outside the batch are dropped.
pub fn redacted(env: &Envelope, positions: &[u32]) -> (Envelope, Vec<u32>, Vec<Vec<Hash32>>) {
    if positions.is_empty() {
        return (env.clone(), Vec::new(), Vec::new());
    }
    let hashes: Vec<Hash32> = env.lines.iter().map(|l| merkle::leaf_hash(l)).collect();
    let kept: Vec<u32> = positions
        .iter()
        .copied()
        .filter(|p| (*p as usize) < hashes.len())
        .collect();
    let out = Envelope {
        body: env.body.clone(),
        lines: kept
            .iter()
            .map(|p| env.lines[*p as usize].clone())
            .collect(),
        signatures: env.signatures.clone(),
    };
    let proofs = kept
        .iter()
        .map(|p| merkle::inclusion_proof(&hashes, *p as usize))
        .collect();
    (out, kept, proofs)
}
