//! Cluster administration (`admin.proto`): ledger acts. A membership change or an agency key
//! change is a `ledger_act` event signed by agency keys of the authority quorum (the state
//! machine's rule, [`ledger_core::authority`]). A follower forwards the request unchanged to the
//! leader; the leader checks it, records it in the ledger (ordered, replicated, durable), and
//! only once it committed carries out a membership change, exactly as the act names it. An act
//! that is already recorded is refused with its index: it is never carried out twice.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ledger_core::authority::Act;
use ledger_core::envelope::VerifiedEvent;
use ledger_core::event::EventKind;
use ledger_core::kv::StateRead;
use ledger_core::refusal::Refusal;
use ledger_core::schema as keys;
use ledger_core::state;
use ledger_proto::admin::{self as pb, admin_server};
use openraft::ChangeMembers;
use tonic::{Request, Response, Status};

use crate::ledger::{now, Ledger};
use crate::raft::{LedgerNode, NodeId, OutcomeRecord, TypeConfig};
use crate::service::{open_submitted, status_of};

/// How long adding a learner may take to catch up before the request gives up (the learner
/// stays and keeps catching up).
pub const ADD_LEARNER_TIMEOUT: Duration = Duration::from_secs(120);
/// A membership change (joint consensus, two commits) must finish within this.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

type Raft = openraft::Raft<TypeConfig>;

pub struct AdminService {
    ledger: Arc<Ledger>,
    /// This node's own key: only a connection proving it may take a backup.
    node_key: Option<ledger_client::transport::NodeKey>,
}

impl AdminService {
    pub fn new(ledger: Arc<Ledger>) -> Self {
        Self {
            ledger,
            node_key: None,
        }
    }

    /// Allows backups to connections that prove `key` (the node's own; none in plaintext).
    pub fn with_node_key(mut self, key: Option<ledger_client::transport::NodeKey>) -> Self {
        self.node_key = key;
        self
    }
}

fn members_pb(raft: &Raft) -> Vec<pb::Member> {
    let m = raft.metrics().borrow().membership_config.clone();
    let voters: BTreeSet<NodeId> = m.membership().voter_ids().collect();
    m.membership()
        .nodes()
        .map(|(id, n)| pb::Member {
            id: *id,
            raft_address: n.raft_address.clone(),
            public_address: n.public_address.clone(),
            voter: voters.contains(id),
            node_key: n.node_key.clone(),
        })
        .collect()
}

/// The status of a refused act, by the refusal's kind.
fn refusal_status(code: &str, message: String) -> Status {
    let message = format!("the ledger act was refused ({code}): {message}");
    match code {
        "insufficient_authority"
        | "wrong_role"
        | "wrong_jurisdiction"
        | "unknown_key"
        | "revoked_key" => Status::permission_denied(message),
        "already_exists" | "already_voided" => Status::already_exists(message),
        "not_found" => Status::not_found(message),
        _ => Status::invalid_argument(message),
    }
}

fn refused(r: Refusal) -> Status {
    refusal_status(r.code(), r.to_string())
}

fn already_carried_out(index: u64) -> Status {
    Status::failed_precondition(format!(
        "this act was already carried out at index {index}; it is not carried out twice. To do \
         it again, sign it anew with a new nonce"
    ))
}

fn change_failed(e: impl std::fmt::Display) -> Status {
    Status::failed_precondition(format!("the membership change failed: {e}"))
}

/// The index of the committed event with this act's id or content, if any.
fn recorded_at(view: &dyn StateRead, ev: &VerifiedEvent) -> Result<Option<u64>, Status> {
    let content = state::content_key(ev);
    for key in [keys::event_id(&ev.id), keys::content(&content)] {
        if let Some(b) = view.get(&key).map_err(|e| Status::internal(e.0))? {
            let index = b
                .as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| Status::internal("an index entry is not 8 bytes"))?;
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// What the current membership must be for `act` to be carried out: checked before the act is
/// recorded, so an act that cannot be carried out is not recorded.
fn check_change(raft: &Raft, act: &Act, tls: bool) -> Result<(), Status> {
    let membership = raft.metrics().borrow().membership_config.clone();
    let nodes: BTreeSet<NodeId> = membership.membership().nodes().map(|(id, _)| *id).collect();
    let voters: BTreeSet<NodeId> = membership.membership().voter_ids().collect();
    match act {
        Act::AddLearner { id, node_key, .. } => {
            if nodes.contains(id) {
                return Err(Status::already_exists(format!(
                    "node {id} is already a member"
                )));
            }
            if node_key.is_empty() && tls {
                return Err(Status::invalid_argument(
                    "the act must name the new node's node key (the hex key its log prints at \
                     start as node_key=..., or the key of its DATA_DIR/node.crt)",
                ));
            }
        }
        Act::Promote(id) => {
            if !nodes.contains(id) {
                return Err(Status::not_found(format!(
                    "node {id} is not a member; add it as a learner first"
                )));
            }
            if voters.contains(id) {
                return Err(Status::already_exists(format!(
                    "node {id} is already a voter"
                )));
            }
        }
        Act::Remove(id) => {
            if !nodes.contains(id) {
                return Err(Status::not_found(format!("node {id} is not a member")));
            }
            if voters.contains(id) && voters.len() == 1 {
                return Err(Status::failed_precondition(format!(
                    "node {id} is the last voter; a cluster needs one"
                )));
            }
        }
        Act::RegisterAgencyKey { .. } | Act::RevokeAgencyKey { .. } => {}
    }
    Ok(())
}

/// Carries out a recorded membership act on the Raft membership, exactly as it names it.
async fn carry_out(raft: &Raft, act: &Act) -> Result<String, Status> {
    let timed_out = || Status::deadline_exceeded("the membership change did not commit in time");
    match act {
        Act::AddLearner {
            id,
            raft_address,
            public_address,
            node_key,
        } => {
            let node = LedgerNode {
                raft_address: raft_address.clone(),
                public_address: public_address.clone(),
                node_key: node_key.clone(),
            };
            tokio::time::timeout(ADD_LEARNER_TIMEOUT, raft.add_learner(*id, node, true))
                .await
                .map_err(|_| {
                    Status::deadline_exceeded(format!(
                        "node {id} was added as a learner but has not caught up within {} s; it keeps catching up",
                        ADD_LEARNER_TIMEOUT.as_secs()
                    ))
                })?
                .map_err(change_failed)?;
            Ok(format!(
                "node {id} added as a learner and caught up with the log"
            ))
        }
        Act::Promote(id) => {
            let change = ChangeMembers::AddVoterIds(BTreeSet::from([*id]));
            tokio::time::timeout(CHANGE_TIMEOUT, raft.change_membership(change, false))
                .await
                .map_err(|_| timed_out())?
                .map_err(change_failed)?;
            Ok(format!("node {id} is now a voter"))
        }
        Act::Remove(id) => {
            let voter = raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == *id);
            let change = if voter {
                ChangeMembers::RemoveVoters(BTreeSet::from([*id]))
            } else {
                ChangeMembers::RemoveNodes(BTreeSet::from([*id]))
            };
            tokio::time::timeout(CHANGE_TIMEOUT, raft.change_membership(change, false))
                .await
                .map_err(|_| timed_out())?
                .map_err(change_failed)?;
            Ok(format!("node {id} removed from the cluster"))
        }
        Act::RegisterAgencyKey {
            jurisdiction,
            public_key,
        } => Ok(format!(
            "agency key {public_key} of {jurisdiction} registered"
        )),
        Act::RevokeAgencyKey {
            jurisdiction,
            public_key,
        } => Ok(format!("agency key {public_key} of {jurisdiction} revoked")),
    }
}

impl AdminService {
    /// Forwards the request to the leader when this node is not it; `None` on the leader.
    async fn forward(
        &self,
        raft: &Raft,
        req: &pb::SubmitActRequest,
    ) -> Result<Option<pb::SubmitActResponse>, Status> {
        let m = raft.metrics().borrow().clone();
        let Some(leader) = m.current_leader else {
            return Err(Status::unavailable(
                "the cluster has no leader at the moment; try again shortly",
            ));
        };
        if leader == m.id {
            return Ok(None);
        }
        let url = m
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.public_address.clone())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Status::unavailable(format!("leader {leader} has no public address")))?;
        let transport = self
            .ledger
            .net()
            .to_current(raft, leader)
            .map_err(Status::unavailable)?;
        let channel = ledger_client::transport::channel(&url, &transport)
            .await
            .map_err(|e| {
                Status::unavailable(format!("forwarding to leader {leader} at {url}: {e}"))
            })?;
        let mut c = pb::admin_client::AdminClient::new(channel);
        Ok(Some(c.submit_act(req.clone()).await?.into_inner()))
    }

    /// Refuses an act already recorded: its replay is answered first, whatever the membership
    /// became since.
    fn not_recorded(&self, ev: &VerifiedEvent) -> Result<(), Status> {
        match recorded_at(self.ledger.store(), ev)? {
            Some(index) => Err(already_carried_out(index)),
            None => Ok(()),
        }
    }

    /// Records the act (checked first against the state, as apply will check it again) and
    /// returns its index; refuses an act already recorded.
    async fn record(&self, ev: VerifiedEvent) -> Result<(u64, Vec<u8>), Status> {
        self.not_recorded(&ev)?;
        state::precheck(self.ledger.store(), &ev)
            .map_err(|e| Status::internal(e.0))?
            .map_err(refused)?;
        let event_id = ev.id.0.to_vec();
        let outcome = self.ledger.append(vec![ev]).await.map_err(status_of)?;
        match outcome.into_iter().next() {
            Some(OutcomeRecord::Appended {
                index,
                duplicate: false,
                ..
            }) => Ok((index, event_id)),
            Some(OutcomeRecord::Appended { index, .. }) => Err(already_carried_out(index)),
            Some(OutcomeRecord::Refused { code, message }) => Err(refusal_status(&code, message)),
            None => Err(Status::internal("the appender gave no outcome")),
        }
    }
}

#[tonic::async_trait]
impl admin_server::Admin for AdminService {
    async fn genesis(
        &self,
        _request: Request<pb::GenesisRequest>,
    ) -> Result<Response<pb::GenesisResponse>, Status> {
        let genesis_json = serde_json::to_vec(self.ledger.genesis())
            .map_err(|e| Status::internal(format!("encoding the genesis: {e}")))?;
        Ok(Response::new(pb::GenesisResponse { genesis_json }))
    }

    type BackupStream = tokio_stream::wrappers::ReceiverStream<Result<pb::BackupChunk, Status>>;

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let peer = request
            .extensions()
            .get::<crate::tls::PeerInfo>()
            .and_then(|p| p.key);
        if self.node_key.is_none() || peer != self.node_key {
            return Err(Status::permission_denied(
                "a backup holds every event: only this node's operator may take one, with \
                 `ledger-node backup --config` on the node's machine (it proves the node key)",
            ));
        }
        Ok(Response::new(
            crate::backup::stream(self.ledger.clone()).await?,
        ))
    }

    async fn submit_act(
        &self,
        request: Request<pb::SubmitActRequest>,
    ) -> Result<Response<pb::SubmitActResponse>, Status> {
        let req = request.into_inner();
        let envelope = req
            .act
            .clone()
            .ok_or_else(|| Status::invalid_argument("no act: a signed ledger_act envelope"))?;
        let ev =
            open_submitted(&self.ledger.genesis().ledger_id(), envelope, now()).map_err(refused)?;
        let EventKind::LedgerAct(act) = &ev.body.kind else {
            return Err(Status::invalid_argument(format!(
                "a {} is not a ledger act; submit it with `ledger-client submit`",
                ev.body.kind.type_name()
            )));
        };
        let act = act.act.clone();
        let Some(raft) = self.ledger.raft().cloned() else {
            if act.is_membership() {
                return Err(Status::failed_precondition(
                    "this node does not replicate (no [raft] section): it has no membership",
                ));
            }
            let (index, event_id) = self.record(ev).await?;
            let message = carry_out_unreplicated(&act, index);
            return Ok(Response::new(pb::SubmitActResponse {
                message,
                members: Vec::new(),
                event_id,
                index,
            }));
        };
        if let Some(answer) = self.forward(&raft, &req).await? {
            return Ok(Response::new(answer));
        }
        self.not_recorded(&ev)?;
        check_change(&raft, &act, self.ledger.net().tls.is_some())?;
        let (index, event_id) = self.record(ev).await?;
        let message = carry_out(&raft, &act).await?;
        tracing::info!(act = %act, index, "ledger act carried out");
        Ok(Response::new(pb::SubmitActResponse {
            message: format!("{message} (ledger act at index {index})"),
            members: members_pb(&raft),
            event_id,
            index,
        }))
    }
}

fn carry_out_unreplicated(act: &Act, index: u64) -> String {
    format!("{act}: done (ledger act at index {index})")
}
