//! Statements: a self-contained, offline-verifiable file of one worker's records.
//!
//! Format `pcl-statement/3` (JSON): the worker, the ledger (its genesis hash, which every
//! event's signatures and id include), a signed checkpoint (C2SP note text), a signed
//! note of its contents (which of the log's events up to the checkpoint are the worker's, and
//! which are parameter publications: see [`Contents`]), and each of
//! the worker's events — the author's envelope (protobuf, base64) with only that worker's lines
//! of a batch and their proofs into the signed `lines_root` — with its log index, the stamp of
//! the entry that appended it, and its inclusion proof into the checkpoint's tree. The
//! `parameters_published` events of the log come along (with proofs too) so the entitlement can
//! be recomputed with the same parameters. [`verify`] checks every byte of it against a quorum
//! of trusted node keys; anything altered, added, removed or reordered fails with the reason.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, SignedNote, Trust};
use crate::envelope::{Envelope, LedgerId};
use crate::event::*;
use crate::fact::{line_fact, Fact, FactKind, Published};
use crate::ids::WorkerId;
use crate::log_tree::event_leaf;
use crate::merkle;
use crate::time::Instant;
use crate::wire::{self, ProvenLine};

pub const STATEMENT_FORMAT: &str = "pcl-statement/3";
/// The first line of a contents note; no checkpoint parses with it (its second line is no size).
pub const CONTENTS_HEADER: &str = "pcl-statement-contents/1";
/// Domain of the hash of an index list, so it cannot be confused with any other hash.
const INDEX_LIST_DOMAIN: &[u8] = b"pcl-statement-indexes/1\0";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    pub format: String,
    pub worker: String,
    /// The ledger's genesis hash (hex): part of every event's signatures and id, so a wrong
    /// value fails every event's signature and inclusion proof.
    pub ledger: String,
    /// The signed checkpoint every inclusion proof leads to.
    pub checkpoint: String,
    /// The signed [`Contents`] note: which events the statement holds, cosigned by the nodes
    /// that recomputed the list from their own store.
    pub contents: String,
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
    /// The trusted nodes whose signatures on the contents note verified.
    pub contents_signed_by: Vec<String>,
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

    fn open(&self, cp: &Checkpoint, ledger: &LedgerId) -> Result<ProvenEvent, StatementError> {
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
        env.verify_signatures(ledger)
            .map_err(|r| at(r.to_string()))?;
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
        let id = env.id(ledger);
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

/// What a statement holds, as the nodes sign it: the worker, the checkpoint (origin, size,
/// root), and the exact lists of the worker's event indexes and of the parameter publications'
/// indexes up to that size (each as a count and a BLAKE3 hash of the sorted list). A node
/// cosigns it only after recomputing both lists from its own store at that size, so a holder
/// cannot drop, add or reorder events without breaking every signature.
///
/// Note text: `pcl-statement-contents/1`, origin, `worker W`, size, base64 root,
/// `events N HEX`, `parameters N HEX`, each on its own line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    pub checkpoint: Checkpoint,
    pub worker: String,
    pub events: (u64, Hash32),
    pub parameters: (u64, Hash32),
}

/// The hash of a sorted list of log indexes.
pub fn index_list_hash(indexes: &[u64]) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(INDEX_LIST_DOMAIN);
    for i in indexes {
        h.update(&i.to_be_bytes());
    }
    Hash32(*h.finalize().as_bytes())
}

impl Contents {
    pub fn new(checkpoint: Checkpoint, worker: &str, events: &[u64], parameters: &[u64]) -> Self {
        Contents {
            checkpoint,
            worker: worker.to_string(),
            events: (events.len() as u64, index_list_hash(events)),
            parameters: (parameters.len() as u64, index_list_hash(parameters)),
        }
    }

    pub fn body(&self) -> String {
        let cp = self.checkpoint.body();
        let (origin, rest) = cp.split_once('\n').expect("a checkpoint body has lines");
        format!(
            "{CONTENTS_HEADER}\n{origin}\nworker {}\n{rest}events {} {}\nparameters {} {}\n",
            self.worker,
            self.events.0,
            self.events.1.to_hex(),
            self.parameters.0,
            self.parameters.1.to_hex()
        )
    }

    /// Parses a contents note's text; only the canonical text is accepted.
    pub fn parse_body(text: &str) -> Result<Contents, StatementError> {
        let bad = || StatementError("its contents note is malformed".into());
        let lines: Vec<&str> = text.split('\n').collect();
        if lines.len() != 8 || lines[0] != CONTENTS_HEADER || !lines[7].is_empty() {
            return Err(bad());
        }
        let worker = lines[2].strip_prefix("worker ").ok_or_else(bad)?;
        let checkpoint =
            Checkpoint::parse_body(&format!("{}\n{}\n{}\n", lines[1], lines[3], lines[4]))
                .map_err(|_| bad())?;
        let list = |line: &str, name: &str| -> Result<(u64, Hash32), StatementError> {
            let rest = line.strip_prefix(name).ok_or_else(bad)?;
            let (n, h) = rest.split_once(' ').ok_or_else(bad)?;
            Ok((
                n.parse().map_err(|_| bad())?,
                Hash32::from_hex(h).map_err(|_| bad())?,
            ))
        };
        let c = Contents {
            checkpoint,
            worker: worker.to_string(),
            events: list(lines[5], "events ")?,
            parameters: list(lines[6], "parameters ")?,
        };
        if c.body() != text {
            return Err(bad());
        }
        Ok(c)
    }
}

/// Parses a signed note that must be in canonical form and carry a quorum of trusted signatures.
fn quorum_note(
    text: &str,
    trust: &Trust,
    what: &str,
) -> Result<(SignedNote, Vec<String>), StatementError> {
    let note = SignedNote::parse(text).map_err(|e| StatementError(format!("{what}: {}", e.0)))?;
    if note.format() != text {
        return fail(format!(
            "{what} is not in canonical signed-note form (altered)"
        ));
    }
    let signed = trust
        .verify_quorum(&note, what)
        .map_err(|e| StatementError(e.0))?;
    Ok((note, signed))
}

/// Parses and checks a statement offline against a quorum of trusted node keys: the checkpoint's
/// and the contents note's signatures, that the events are exactly the ones the contents note
/// lists, every event's signatures, batch-line proofs and inclusion proof, and that the events
/// are the worker's.
pub fn verify(text: &str, trust: &Trust) -> Result<Proven, StatementError> {
    let st = parse_canonical(text)?;
    let (note, signed_by) = quorum_note(&st.checkpoint, trust, "its checkpoint")?;
    let cp = Checkpoint::parse_body(&note.text).map_err(|e| StatementError(e.to_string()))?;
    let (cnote, contents_signed_by) = quorum_note(&st.contents, trust, "its contents note")?;
    let contents = Contents::parse_body(&cnote.text)?;
    if contents.checkpoint != cp || contents.worker != st.worker {
        return fail(
            "its contents note is of another worker or checkpoint than the statement (altered)",
        );
    }
    check_lists(&st, &contents)?;
    let ledger = LedgerId::from_hex(&st.ledger).map_err(StatementError)?;
    let worker = WorkerId::new(st.worker.clone()).map_err(|e| StatementError(e.0))?;
    let mut events = Vec::with_capacity(st.events.len());
    for e in &st.events {
        let p = e.open(&cp, &ledger)?;
        check_worker(&p, &worker)?;
        events.push(p);
    }
    let mut parameters = Vec::new();
    for e in &st.parameters {
        let p = e.open(&cp, &ledger)?;
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
        contents_signed_by,
        events,
        parameters,
    })
}

fn parse_canonical(text: &str) -> Result<Statement, StatementError> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        if v["format"] == "pcl-statement/1" {
            return fail("format pcl-statement/1 carries no signed list of its events, so events could be dropped unnoticed; ask a node for a new statement");
        }
        if v["format"] == "pcl-statement/2" {
            return fail("format pcl-statement/2 holds events signed in event format 1, which names no ledger; ask a node of a format-2 ledger for a new statement");
        }
    }
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
    Ok(st)
}

/// The events and parameters are exactly, and in the order of, the lists the nodes signed.
fn check_lists(st: &Statement, contents: &Contents) -> Result<(), StatementError> {
    for (what, list, signed) in [
        ("events", &st.events, contents.events),
        ("parameters", &st.parameters, contents.parameters),
    ] {
        let indexes: Vec<u64> = list.iter().map(|e| e.index).collect();
        if indexes.windows(2).any(|w| w[0] >= w[1]) {
            return fail(format!(
                "its {what} are not in log order (reordered or repeated): {indexes:?}"
            ));
        }
        if (indexes.len() as u64, index_list_hash(&indexes)) != signed {
            return fail(format!(
                "its {what} are not the ones the nodes signed: the file holds {} ({indexes:?}), the signed list {} (an event was removed or added)",
                indexes.len(),
                signed.0
            ));
        }
    }
    Ok(())
}

/// An event of the statement is about the worker and carries no other worker's lines.
fn check_worker(p: &ProvenEvent, worker: &WorkerId) -> Result<(), StatementError> {
    let others = match &p.body.kind {
        EventKind::ContributionsDeclared(_) | EventKind::PlatformOrders(_) => {
            p.body.kind.workers().into_iter().any(|w| w != worker)
        }
        _ => false,
    };
    if others {
        return fail(format!("event {} carries another worker's lines", p.index));
    }
    let named = p.body.kind.workers();
    if !named.is_empty() && !named.contains(&worker) {
        return fail(format!("event {} is not about worker {worker}", p.index));
    }
    Ok(())
}

/// The worker's facts from proven events, corrections applied, as the projection would hold
/// them: what the entitlement is recomputed from.
pub fn facts(proven: &Proven) -> Vec<Fact> {
    let mut out: Vec<Fact> = Vec::new();
    let worker = proven.worker.as_str();
    for e in &proven.events {
        match &e.body.kind {
            EventKind::Correction(c) => correct_facts(proven, &mut out, c),
            kind => out.extend(event_facts(worker, kind, e.index, &e.line_positions)),
        }
    }
    out.sort_by_key(|f| (f.index, f.line));
    out
}

/// The facts one event of the statement gives about `worker` (`positions`: the worker's lines).
fn event_facts(worker: &str, kind: &EventKind, index: u64, positions: &[u32]) -> Vec<Fact> {
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
                    .filter(|(lw, _)| lw.as_str() == worker)
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
            crate::fact::facts_given(other, None)
                .into_iter()
                .filter(|(fw, _, _)| fw == worker)
                .map(|(_, line, what)| Fact { index, line, what })
                .collect()
        }
    }
}

/// Applies a correction of the statement to the facts gathered so far (its target comes first).
fn correct_facts(proven: &Proven, out: &mut Vec<Fact>, c: &Correction) {
    let Some(t) = proven
        .events
        .iter()
        .find(|e| e.event_id == c.target)
        .map(|e| e.index)
    else {
        return;
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
                event_facts(proven.worker.as_str(), new, t, &[])
                    .into_iter()
                    .filter(|f| kept.contains(&f.line)),
            );
        }
        (None, _, _) => out.retain(|f| f.index != t),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::NoteKey;
    use ed25519_dalek::SigningKey;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    const LEDGER: LedgerId = LedgerId(Hash32([0x1e; 32]));

    fn at(s: &str) -> Instant {
        s.parse().unwrap()
    }

    fn envelope(json: &str, signer: &SigningKey) -> Envelope {
        let (kind, _) = crate::json::parse_json_event(json).unwrap();
        let body = EventBody {
            signed_at: at("2024-03-01T00:00:00+08:00"),
            kind,
        };
        Envelope::sign(&LEDGER, &body, &[signer])
    }

    fn person(w: &str) -> String {
        format!(
            r#"{{"type":"person_registered","worker":"{w}","jurisdiction":"CN-44","sex":"M","birth_date":"1980-05-01","nationality":"CN","hukou":"CN-51"}}"#
        )
    }

    fn declared(w: &str, period: &str) -> String {
        format!(
            r#"{{"type":"contributions_declared","employer":"91440300MA5GUNIT1","jurisdiction":"CN-44","period":"{period}","lines":[{{"worker":"{w}","scheme":"pension","base":"5000.00","employer_amount":"800.00","employee_amount":"400.00"}}]}}"#
        )
    }

    /// A log of six events (two workers; W-S's second declaration voided), the statements of
    /// both workers at its head signed by `signers` of three nodes, and the trust file.
    fn ledger(signers: &[u8]) -> (String, String, Trust) {
        let agency = key(10);
        let employer = key(11);
        let mut log: Vec<(Envelope, Vec<u32>)> = vec![
            (envelope(&person("W-S"), &agency), vec![]),
            (envelope(&person("W-O"), &agency), vec![]),
            (envelope(&declared("W-S", "2024-01"), &employer), vec![0]),
            (envelope(&declared("W-S", "2024-02"), &employer), vec![0]),
        ];
        let void = EventKind::Correction(Correction {
            target: log[3].0.id(&LEDGER),
            line: None,
            action: CorrectionAction::Void,
            replacement: None,
            reason: "declared twice".into(),
        });
        let body = EventBody {
            signed_at: at("2024-03-02T00:00:00+08:00"),
            kind: void,
        };
        log.push((Envelope::sign(&LEDGER, &body, &[&employer]), vec![]));
        log.push((envelope(&declared("W-O", "2024-01"), &employer), vec![0]));
        let stamp = at("2024-03-05T10:00:00+08:00");
        let leaves: Vec<Hash32> = log
            .iter()
            .map(|(e, _)| event_leaf(&e.id(&LEDGER), stamp))
            .collect();
        let cp = Checkpoint {
            origin: "pcl-unit".into(),
            size: log.len() as u64,
            root: merkle::root_of_hashes(&leaves),
        };
        let sign = |text: String| {
            let mut note = SignedNote::new(text);
            for s in signers {
                note.sign(&format!("node-{s}"), &key(*s)).unwrap();
            }
            note.format()
        };
        let statement = |worker: &str, indexes: &[u64]| {
            let events = indexes
                .iter()
                .map(|i| {
                    let (env, positions) = &log[*i as usize - 1];
                    let (env, kept, proofs) = redacted(env, positions);
                    let inclusion = merkle::inclusion_proof(&leaves, *i as usize - 1);
                    StatementEvent::new(*i, stamp, &env, kept, proofs, inclusion)
                })
                .collect();
            let st = Statement {
                format: STATEMENT_FORMAT.into(),
                worker: worker.into(),
                ledger: LEDGER.to_hex(),
                checkpoint: sign(cp.body()),
                contents: sign(Contents::new(cp.clone(), worker, indexes, &[]).body()),
                events,
                parameters: Vec::new(),
            };
            serde_json::to_string_pretty(&st).unwrap()
        };
        let trust: String = [1u8, 2, 3]
            .iter()
            .map(|s| {
                let k = NoteKey::new(
                    &format!("node-{s}"),
                    PublicKeyBytes(key(*s).verifying_key().to_bytes()),
                )
                .unwrap();
                format!("CN-44 {}\n", k.verifier_string())
            })
            .collect();
        (
            statement("W-S", &[1, 3, 4, 5]),
            statement("W-O", &[2, 6]),
            Trust::parse(&trust).unwrap(),
        )
    }

    fn edit(text: &str, f: impl FnOnce(&mut Statement)) -> String {
        let mut st: Statement = serde_json::from_str(text).unwrap();
        f(&mut st);
        serde_json::to_string_pretty(&st).unwrap()
    }

    #[test]
    fn a_complete_statement_verifies_and_its_voided_month_stays_voided() {
        let (text, _, trust) = ledger(&[1, 2, 3]);
        let p = verify(&text, &trust).unwrap();
        assert_eq!(p.events.len(), 4);
        assert_eq!(p.contents_signed_by.len(), 3);
        let months = facts(&p)
            .iter()
            .filter(|f| matches!(f.what, FactKind::Contribution { .. }))
            .count();
        assert_eq!(months, 1, "the voided declaration gives no fact");
    }

    #[test]
    fn removing_the_voiding_correction_fails() {
        let (text, _, trust) = ledger(&[1, 2, 3]);
        let shortened = edit(&text, |st| {
            st.events.retain(|e| e.index != 5);
        });
        let e = verify(&shortened, &trust).unwrap_err();
        assert!(e.0.contains("not the ones the nodes signed"), "{e}");
    }

    #[test]
    fn adding_an_event_from_another_workers_statement_fails() {
        let (text, other, trust) = ledger(&[1, 2, 3]);
        let other: Statement = serde_json::from_str(&other).unwrap();
        let grown = edit(&text, |st| {
            st.events.push(other.events[1].clone());
        });
        let e = verify(&grown, &trust).unwrap_err();
        assert!(e.0.contains("not the ones the nodes signed"), "{e}");
        // Even placed where its index belongs.
        let grown = edit(&text, |st| {
            st.events.insert(1, other.events[0].clone());
        });
        assert!(verify(&grown, &trust).is_err());
    }

    #[test]
    fn reordering_two_events_fails() {
        let (text, _, trust) = ledger(&[1, 2, 3]);
        let reordered = edit(&text, |st| st.events.swap(1, 2));
        let e = verify(&reordered, &trust).unwrap_err();
        assert!(e.0.contains("not in log order"), "{e}");
    }

    #[test]
    fn a_statement_signed_by_a_minority_is_refused_naming_the_signers() {
        let (text, _, trust) = ledger(&[1]);
        let e = verify(&text, &trust).unwrap_err();
        assert!(
            e.0.contains("node-1 (CN-44)")
                && e.0.contains("1 of the 3")
                && e.0.contains("2 needed"),
            "{e}"
        );
        assert!(verify(&text, &trust.with_quorum(1).unwrap()).is_ok());
    }

    #[test]
    fn a_contents_note_of_another_worker_does_not_fit() {
        let (text, other, trust) = ledger(&[1, 2, 3]);
        let other: Statement = serde_json::from_str(&other).unwrap();
        let swapped = edit(&text, |st| st.contents = other.contents.clone());
        let e = verify(&swapped, &trust).unwrap_err();
        assert!(e.0.contains("another worker"), "{e}");
        let body = Contents::parse_body(&SignedNote::parse(&other.contents).unwrap().text).unwrap();
        assert_eq!(body.worker, "W-O");
        assert!(Contents::parse_body(&body.body().replace("events 2", "events 02")).is_err());
    }
}
