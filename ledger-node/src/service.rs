//! The public gRPC service: the edge where wire messages become core values and errors become
//! gRPC statuses (in one place, [`status_of`]). Signature checks run here, on the receiving node,
//! off the async executor; everything that depends on the ledger state is the state machine's.

use std::sync::Arc;

use ledger_core::envelope::{read_method, Envelope, LedgerId, VerifiedEvent};
use ledger_core::event::{EventKind, Hash32, PublicKeyBytes, Role};
use ledger_core::kv::StateRead;
use ledger_core::limits::MAX_SIGNED_AHEAD_SECONDS;
use ledger_core::merkle;
use ledger_core::records::{self, StoredRecord};
use ledger_core::refusal::Refusal;
use ledger_core::schema as keys;
use ledger_core::state;
use ledger_core::time::Instant;
use ledger_proto::node::{self as pb, ledger_server};
use tonic::{Request, Response, Status};

use crate::config::NodeConfig;
use crate::ledger::{now, Ledger, LedgerError};
use crate::raft::OutcomeRecord;
use crate::read_gate::ReadGate;
use crate::store::{Store, StoreError};

pub use crate::limits::MAX_MESSAGE_BYTES;
pub use crate::limits::MAX_SUBMIT_EVENTS;
pub use crate::read_gate::READ_TOKEN_WINDOW_SECONDS;
/// Default and largest page of a worker's events.
pub const DEFAULT_PAGE: usize = 200;
pub const MAX_PAGE: usize = 2000;

pub struct NodeService {
    ledger: Arc<Ledger>,
    config: NodeConfig,
    gate: Arc<ReadGate>,
}

impl NodeService {
    pub fn new(ledger: Arc<Ledger>, config: NodeConfig, gate: Arc<ReadGate>) -> Self {
        Self {
            ledger,
            config,
            gate,
        }
    }
}

/// Maps every internal error to a gRPC status, once. Unavailable means "nothing was decided,
/// the same request may succeed shortly or on another node" (clients retry it); Internal is
/// kept for faults of this node's storage.
pub(crate) fn status_of(e: LedgerError) -> Status {
    match e {
        LedgerError::Stopped
        | LedgerError::NoLeader
        | LedgerError::LeaderUnreachable { .. }
        | LedgerError::RaftStopped(_) => Status::unavailable(e.to_string()),
        LedgerError::NotCommitted(_) => Status::deadline_exceeded(e.to_string()),
        LedgerError::Leader { code, .. } => Status::new(code, e.to_string()),
        LedgerError::Store(_)
        | LedgerError::GenesisMismatch { .. }
        | LedgerError::Integrity { .. }
        | LedgerError::Marker { .. }
        | LedgerError::Replication(_) => Status::internal(e.to_string()),
    }
}

fn store_status(e: StoreError) -> Status {
    Status::internal(e.to_string())
}

fn stamp_text(i: Instant) -> String {
    i.to_string()
}

/// The wire form of a replicated outcome.
fn outcome_pb(o: OutcomeRecord) -> pb::outcome::Result {
    match o {
        OutcomeRecord::Refused { code, message } => {
            pb::outcome::Result::Refusal(pb::Refusal { code, message })
        }
        OutcomeRecord::Appended {
            event_id,
            index,
            stamp_seconds,
            stamp_nanos,
            duplicate,
        } => pb::outcome::Result::Receipt(pb::Receipt {
            event_id: hex::decode(event_id).unwrap_or_default(),
            index,
            appended_at: Instant::from_unix_utc(stamp_seconds, stamp_nanos)
                .map(stamp_text)
                .unwrap_or_default(),
            duplicate,
            already_recorded: duplicate,
        }),
    }
}

fn refusal_pb(r: &Refusal) -> pb::Refusal {
    pb::Refusal {
        code: r.code().to_string(),
        message: r.to_string(),
    }
}

/// Decodes, checks limits and verifies the signatures of one submitted envelope.
pub(crate) fn open_submitted(
    ledger: &LedgerId,
    env: ledger_core::pb::Envelope,
    now: Instant,
) -> Result<VerifiedEvent, Refusal> {
    let v = Envelope::from_pb(env)?.open(ledger)?;
    // In nanoseconds, as the state machine checks it: 300.5 s ahead is more than five minutes.
    if v.body.signed_at.unix_nanos()
        > now.unix_nanos() + i128::from(MAX_SIGNED_AHEAD_SECONDS) * 1_000_000_000
    {
        return Err(Refusal::SignedInFuture {
            signed_at: v.body.signed_at.to_string(),
            now: now.to_string(),
        });
    }
    Ok(v)
}

/// A membership act recorded without being carried out would spend its signatures for
/// nothing: only the admin service (which carries it out once recorded) takes one.
fn not_membership_act(v: VerifiedEvent) -> Result<VerifiedEvent, Refusal> {
    match &v.body.kind {
        EventKind::LedgerAct(a) if a.act.is_membership() => Err(Refusal::InvalidField(format!(
            "`{}` is a membership act: submit it with `ledger-client act submit`, which records \
             it and has the leader carry it out",
            a.act
        ))),
        _ => Ok(v),
    }
}

/// Refuses at the edge, before consensus, what apply would refuse from the signers' keys alone
/// (unknown or revoked key, wrong role or jurisdiction for the kind), with apply's own function
/// ([`state::precheck`]) and codes. Apply decides again: the state may change in between. Left to
/// apply: an event already in the ledger (its receipt is returned), and one signed by a key that
/// the same request registers.
fn precheck_all(
    view: &dyn StateRead,
    opened: &mut [Result<VerifiedEvent, Refusal>],
) -> Result<(), ledger_core::kv::StoreFault> {
    let registered_here: Vec<PublicKeyBytes> = opened
        .iter()
        .flatten()
        .filter_map(|v| match &v.body.kind {
            EventKind::KeyRegistered(k) => Some(k.public_key),
            _ => None,
        })
        .collect();
    for slot in opened.iter_mut() {
        let Ok(v) = slot else { continue };
        let new_key = v
            .envelope
            .signatures
            .iter()
            .any(|s| registered_here.contains(&s.public_key));
        if new_key || view.get(&keys::event_id(&v.id))?.is_some() {
            continue;
        }
        if let Err(refusal) = state::precheck(view, v)? {
            *slot = Err(refusal);
        }
    }
    Ok(())
}

impl NodeService {
    /// Whether this node's state may refuse at the edge: always alone; under Raft only on the
    /// leader, whose applied state holds every acknowledged event (a follower may lag, and
    /// forwards to the leader, which checks).
    fn checks_at_edge(&self) -> bool {
        match (self.ledger.raft(), &self.config.raft) {
            (Some(raft), Some(cfg)) => raft.metrics().borrow().current_leader == Some(cfg.id),
            _ => true,
        }
    }
}

impl NodeService {
    /// The stored event as sent to a reader; for a batch with `positions`, only those lines and
    /// their Merkle proofs, never the other workers' lines.
    fn stored_pb(&self, rec: StoredRecord, positions: Option<Vec<u32>>) -> pb::StoredEvent {
        let (envelope, line_positions, proofs) =
            ledger_core::statement::redacted(&rec.envelope, &positions.unwrap_or_default());
        let line_proofs = proofs.iter().map(|p| merkle::proof_to_bytes(p)).collect();
        let envelope = envelope.to_pb();
        pb::StoredEvent {
            index: rec.index,
            event_id: rec.event_id.0.to_vec(),
            appended_at: stamp_text(rec.stamp),
            envelope: Some(envelope),
            line_positions,
            line_proofs,
        }
    }
}

impl NodeService {
    /// Submit without the counting: verify, refuse at the edge, append, answer in order.
    async fn submit_events(
        &self,
        events: Vec<ledger_core::pb::Envelope>,
    ) -> Result<pb::SubmitResponse, Status> {
        if events.len() > MAX_SUBMIT_EVENTS {
            return Err(Status::invalid_argument(format!(
                "{} events in one request exceed the limit of {MAX_SUBMIT_EVENTS}; split the batch",
                events.len()
            )));
        }
        let now = now();
        let (ledger, at_edge) = (self.ledger.clone(), self.checks_at_edge());
        // Signature checks are CPU work: keep them off the async executor.
        let opened: Vec<Result<VerifiedEvent, Refusal>> = tokio::task::spawn_blocking(move || {
            let id = ledger.genesis().ledger_id();
            let mut opened: Vec<_> = events
                .into_iter()
                .map(|e| open_submitted(&id, e, now).and_then(not_membership_act))
                .collect();
            if at_edge {
                precheck_all(ledger.store(), &mut opened).map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(opened)
        })
        .await
        .map_err(|e| Status::internal(format!("verification task failed: {e}")))?
        .map_err(Status::internal)?;
        // Move (not copy) the verified events to the appender; remember where the refusals were.
        let mut to_append = Vec::with_capacity(opened.len());
        let slots: Vec<Option<Refusal>> = opened
            .into_iter()
            .map(|r| match r {
                Ok(v) => {
                    to_append.push(v);
                    None
                }
                Err(refusal) => Some(refusal),
            })
            .collect();
        let mut appended = self
            .ledger
            .append(to_append)
            .await
            .map_err(status_of)?
            .into_iter();
        let outcomes = slots
            .into_iter()
            .map(|slot| {
                let result = match slot {
                    Some(refusal) => pb::outcome::Result::Refusal(refusal_pb(&refusal)),
                    None => outcome_pb(appended.next().expect("one outcome per appended event")),
                };
                pb::Outcome {
                    result: Some(result),
                }
            })
            .collect();
        Ok(pb::SubmitResponse { outcomes })
    }
}

#[tonic::async_trait]
impl ledger_server::Ledger for NodeService {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let started = std::time::Instant::now();
        let events = request.into_inner().events;
        let count = events.len();
        let answer = self.submit_events(events).await;
        let metrics = crate::metrics::get();
        match &answer {
            Ok(response) => {
                let refused: Vec<Option<&'static str>> = response
                    .outcomes
                    .iter()
                    .map(|o| match &o.result {
                        Some(pb::outcome::Result::Refusal(r)) => {
                            Some(crate::metrics::refusal_code(&r.code))
                        }
                        _ => None,
                    })
                    .collect();
                metrics.count_submit(count, Ok(&refused), started.elapsed());
            }
            Err(status) => metrics.count_submit(count, Err(status.code()), started.elapsed()),
        }
        answer.map(Response::new)
    }

    /// One whole event, for an agency key or a key that signed it. The token names the event
    /// as asked (its id in hex, or `index:N`) and is checked before anything is looked up; a
    /// key that may not read the event hears the same "not found" as for a missing one, since
    /// an event's existence may itself be private.
    async fn get_event(
        &self,
        request: Request<pb::GetEventRequest>,
    ) -> Result<Response<pb::GetEventResponse>, Status> {
        let req = request.into_inner();
        let (subject, by_id) = match &req.by {
            Some(pb::get_event_request::By::Index(i)) => (format!("index:{i}"), None),
            Some(pb::get_event_request::By::EventId(id)) => {
                let id = Hash32::from_slice(id).map_err(Status::invalid_argument)?;
                (id.to_hex(), Some(id))
            }
            None => return Err(Status::invalid_argument("name the event by id or index")),
        };
        let (pk, key) = self
            .gate
            .admit(req.token, read_method::GET_EVENT, &subject)?;
        let hidden = || Status::not_found(format!("no event {subject} that this key may read"));
        let index = match (by_id, &req.by) {
            (Some(id), _) => match records::index_of(self.ledger.store(), &id)
                .map_err(|e| Status::internal(e.0))?
            {
                Some(index) => index,
                None => return Err(hidden()),
            },
            (None, Some(pb::get_event_request::By::Index(i))) => *i,
            _ => unreachable!("the selector was matched above"),
        };
        let rec = self
            .ledger
            .record(index)
            .map_err(store_status)?
            .ok_or_else(hidden)?;
        let signed_it = rec.envelope.signatures.iter().any(|s| s.public_key == pk);
        if key.role != Role::Agency && !signed_it {
            return Err(hidden());
        }
        Ok(Response::new(pb::GetEventResponse {
            event: Some(self.stored_pb(rec, None)),
        }))
    }

    async fn list_worker_events(
        &self,
        request: Request<pb::ListWorkerEventsRequest>,
    ) -> Result<Response<pb::ListWorkerEventsResponse>, Status> {
        let req = request.into_inner();
        let worker = ledger_core::ids::WorkerId::new(req.worker.clone())
            .map_err(|e| Status::invalid_argument(e.0))?;
        let (_, key) =
            self.gate
                .admit(req.token, read_method::LIST_WORKER_EVENTS, worker.as_str())?;
        let allowed = key.role == Role::Agency
            || (key.role == Role::Worker && key.subject == worker.as_str());
        if !allowed {
            return Err(Status::permission_denied(format!(
                "only worker {worker}'s own key or an agency key may read worker {worker}'s records"
            )));
        }
        let prefix = keys::worker_prefix(worker.as_str());
        let after = (req.after_index > 0).then(|| keys::worker(worker.as_str(), req.after_index));
        let limit = match req.limit as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let rows = self
            .ledger
            .store()
            .scan(&prefix, after.as_deref(), limit + 1)
            .map_err(store_status)?;
        if rows.is_empty()
            && req.after_index == 0
            && records::person(self.ledger.store(), worker.as_str())
                .map_err(|e| Status::internal(e.0))?
                .is_none()
        {
            return Err(Status::not_found(format!(
                "worker {worker} has no records on this ledger"
            )));
        }
        let more = rows.len() > limit;
        let mut events = Vec::with_capacity(rows.len().min(limit));
        for (k, v) in rows.into_iter().take(limit) {
            let index =
                u64::from_be_bytes(k[k.len() - 8..].try_into().expect("8-byte index suffix"));
            let positions = ledger_core::fact::WorkerEntry::decode(&v)
                .map_err(|e| Status::internal(e.0))?
                .positions;
            let rec = self
                .ledger
                .record(index)
                .map_err(store_status)?
                .ok_or_else(|| Status::internal(format!("indexed event {index} missing")))?;
            events.push(self.stored_pb(rec, Some(positions)));
        }
        Ok(Response::new(pb::ListWorkerEventsResponse { events, more }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let head = self.ledger.head().map_err(status_of)?;
        let (mut members, mut leader) = (Vec::new(), self.config.node_id.clone());
        let mut replication = pb::StatusResponse::default();
        match (self.ledger.raft(), &self.config.raft) {
            (Some(raft), Some(cfg)) => {
                let m = raft.metrics().borrow().clone();
                replication.leader_id = m.current_leader.unwrap_or(0);
                leader = m.current_leader.map_or_else(
                    || "none (election under way)".to_string(),
                    |l| format!("raft {l}"),
                );
                let voters: std::collections::BTreeSet<u64> =
                    m.membership_config.membership().voter_ids().collect();
                // The members as the Raft membership records them (nodes added at run time
                // included), voters and learners.
                for (id, node) in m.membership_config.membership().nodes() {
                    let me = if *id == cfg.id { " (this node)" } else { "" };
                    let role = if voters.contains(id) { "" } else { " learner" };
                    members.push(format!("raft {id} {}{role}{me}", node.public_address));
                    replication.raft_members.push(pb::RaftMemberStatus {
                        id: *id,
                        public_address: node.public_address.clone(),
                        raft_address: node.raft_address.clone(),
                        voter: voters.contains(id),
                        matched_index: m
                            .replication
                            .as_ref()
                            .map(|r| r.get(id).copied().flatten().map_or(0, |l| l.index)),
                    });
                }
                replication.commit_index = commit_index(&m, &voters);
                replication.raft_id = cfg.id;
                replication.raft_state = format!("{:?}", m.state);
                replication.term = m.current_term;
                replication.last_log_index = m.last_log_index.unwrap_or(0);
                replication.applied_index = m.last_applied.map_or(0, |l| l.index);
                replication.snapshot_index = m.snapshot.map_or(0, |l| l.index);
            }
            _ => {
                members.push(format!(
                    "{} ({}) {}",
                    self.config.node_id, self.config.jurisdiction, self.config.listen
                ));
                members.extend(
                    self.config
                        .peers
                        .iter()
                        .map(|p| format!("{} {}", p.node_id, p.address)),
                );
            }
        }
        Ok(Response::new(pb::StatusResponse {
            node_id: self.config.node_id.clone(),
            jurisdiction: self.config.jurisdiction.to_string(),
            ledger: self.ledger.genesis().ledger.clone(),
            log_size: head.size,
            head_hash: head.chain.to_hex(),
            genesis_hash: self.ledger.genesis().hash().to_hex(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            members,
            leader,
            ..replication
        }))
    }
}

/// The commit index as the leader knows it: the highest log index a majority of voters holds
/// (the leader counts its own last log index). 0 on a follower.
pub(crate) fn commit_index(
    m: &openraft::RaftMetrics<u64, crate::raft::LedgerNode>,
    voters: &std::collections::BTreeSet<u64>,
) -> u64 {
    let Some(replication) = &m.replication else {
        return 0;
    };
    let mut matched: Vec<u64> = voters
        .iter()
        .map(|v| {
            if *v == m.id {
                m.last_log_index.unwrap_or(0)
            } else {
                replication.get(v).copied().flatten().map_or(0, |l| l.index)
            }
        })
        .collect();
    matched.sort_unstable_by(|a, b| b.cmp(a));
    let quorum = voters.len() / 2 + 1;
    matched.get(quorum - 1).copied().unwrap_or(0)
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn leader_changes_are_unavailable_and_forwarded_codes_are_kept() {
        let unreachable = status_of(LedgerError::LeaderUnreachable {
            leader: 1,
            why: "connection refused".into(),
        });
        assert_eq!(unreachable.code(), tonic::Code::Unavailable);
        assert!(unreachable.message().contains("new leader"));
        assert_eq!(
            status_of(LedgerError::NoLeader).code(),
            tonic::Code::Unavailable
        );
        assert_eq!(
            status_of(LedgerError::RaftStopped("shut down".into())).code(),
            tonic::Code::Unavailable
        );
        let kept = status_of(LedgerError::Leader {
            leader: 2,
            code: tonic::Code::ResourceExhausted,
            message: "too many requests".into(),
        });
        assert_eq!(kept.code(), tonic::Code::ResourceExhausted);
        assert_eq!(kept.message(), "leader 2: too many requests");
        let internal = status_of(LedgerError::Replication("bad config".into()));
        assert_eq!(internal.code(), tonic::Code::Internal);
        assert_eq!(internal.message(), "replication: bad config");
    }
}
