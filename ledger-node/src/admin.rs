//! Cluster administration (`admin.proto`): an agency adds a node as a learner, promotes it to
//! voter, or removes a node. Checked on the receiving node (a registered, unrevoked agency key
//! signed this very change recently), then carried out by the leader; a follower forwards the
//! signed request unchanged.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ledger_core::envelope::admin_message;
use ledger_core::event::Role;
use ledger_proto::admin::{self as pb, admin_server, change_membership_request::Change};
use openraft::ChangeMembers;
use tonic::{Request, Response, Status};

use crate::ledger::Ledger;
use crate::raft::{LedgerNode, NodeId, TypeConfig};
use crate::service::signed_by_key;

/// How long adding a learner may take to catch up before the request gives up (the learner
/// stays and keeps catching up).
pub const ADD_LEARNER_TIMEOUT: Duration = Duration::from_secs(120);
/// A membership change (joint consensus, two commits) must finish within this.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct AdminService {
    ledger: Arc<Ledger>,
}

impl AdminService {
    pub fn new(ledger: Arc<Ledger>) -> Self {
        Self { ledger }
    }
}

/// The canonical text of a change: what the agency signs.
pub fn change_text(change: &Change) -> String {
    pb::change_of(change).text()
}

fn members_pb(raft: &openraft::Raft<TypeConfig>) -> Vec<pb::Member> {
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

/// A new member's node key: well-formed, and present when the cluster runs TLS (its peers
/// would refuse every connection of a member without one).
fn check_node_key(key: &str, tls: bool) -> Result<(), Status> {
    if key.is_empty() {
        return if tls {
            Err(Status::invalid_argument(
                "the new node's node key is needed (the hex key its log prints at start as \
                 node_key=..., or the key of its DATA_DIR/node.crt)",
            ))
        } else {
            Ok(())
        };
    }
    ledger_client::transport::parse_node_key(key)
        .map(|_| ())
        .map_err(Status::invalid_argument)
}

fn refused(e: impl std::fmt::Display) -> Status {
    Status::failed_precondition(format!("the membership change failed: {e}"))
}

#[tonic::async_trait]
impl admin_server::Admin for AdminService {
    async fn change_membership(
        &self,
        request: Request<pb::ChangeMembershipRequest>,
    ) -> Result<Response<pb::ChangeMembershipResponse>, Status> {
        let req = request.into_inner();
        let change = req
            .change
            .clone()
            .ok_or_else(|| Status::invalid_argument("no change: add_learner, promote or remove"))?;
        let text = change_text(&change);
        let message = admin_message(&self.ledger.genesis().ledger, &text, req.issued_at);
        let (pk, key) = signed_by_key(
            &self.ledger,
            &req.public_key,
            req.issued_at,
            &req.signature,
            &message,
        )?;
        if key.role != Role::Agency {
            return Err(Status::permission_denied(format!(
                "only an agency key may change the cluster; key {pk} is a {:?} key",
                key.role
            )));
        }
        let raft = self
            .ledger
            .raft()
            .ok_or_else(|| {
                Status::failed_precondition("this node does not replicate (no [raft] section)")
            })?
            .clone();
        let (leader, leader_address) = {
            let m = raft.metrics().borrow().clone();
            let leader = m.current_leader;
            let address = leader.and_then(|l| {
                m.membership_config
                    .membership()
                    .get_node(&l)
                    .map(|n| n.public_address.clone())
            });
            (leader, address)
        };
        let me = raft.metrics().borrow().id;
        match leader {
            None => {
                return Err(Status::unavailable(
                    "the cluster has no leader at the moment; try again shortly",
                ))
            }
            Some(l) if l != me => {
                let url = leader_address.filter(|a| !a.is_empty()).ok_or_else(|| {
                    Status::unavailable(format!("leader {l} has no public address"))
                })?;
                let transport = self
                    .ledger
                    .net()
                    .to_current(&raft, l)
                    .map_err(Status::unavailable)?;
                let channel = ledger_client::transport::channel(&url, &transport)
                    .await
                    .map_err(|e| {
                        Status::unavailable(format!("forwarding to leader {l} at {url}: {e}"))
                    })?;
                let mut c = pb::admin_client::AdminClient::new(channel);
                return c.change_membership(req).await;
            }
            Some(_) => {}
        }
        let membership = raft.metrics().borrow().membership_config.clone();
        let nodes: BTreeSet<NodeId> = membership.membership().nodes().map(|(id, _)| *id).collect();
        let voters: BTreeSet<NodeId> = membership.membership().voter_ids().collect();
        let message = match change {
            Change::AddLearner(a) => {
                if a.id == 0 {
                    return Err(Status::invalid_argument("node ids start at 1"));
                }
                if nodes.contains(&a.id) {
                    return Err(Status::already_exists(format!(
                        "node {} is already a member",
                        a.id
                    )));
                }
                for (what, url) in [("raft", &a.raft_address), ("public", &a.public_address)] {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(Status::invalid_argument(format!(
                            "the {what} address {url:?} must be a URL, e.g. http://10.0.0.4:7200"
                        )));
                    }
                }
                check_node_key(&a.node_key, self.ledger.net().tls.is_some())?;
                let node = LedgerNode {
                    raft_address: a.raft_address.clone(),
                    public_address: a.public_address.clone(),
                    node_key: a.node_key.to_ascii_lowercase(),
                };
                tokio::time::timeout(ADD_LEARNER_TIMEOUT, raft.add_learner(a.id, node, true))
                    .await
                    .map_err(|_| {
                        Status::deadline_exceeded(format!(
                            "node {} was added as a learner but has not caught up within {} s; it keeps catching up",
                            a.id,
                            ADD_LEARNER_TIMEOUT.as_secs()
                        ))
                    })?
                    .map_err(refused)?;
                format!(
                    "node {} added as a learner and caught up with the log",
                    a.id
                )
            }
            Change::Promote(id) => {
                if !nodes.contains(&id) {
                    return Err(Status::not_found(format!(
                        "node {id} is not a member; add it as a learner first"
                    )));
                }
                if voters.contains(&id) {
                    format!("node {id} is already a voter")
                } else {
                    tokio::time::timeout(
                        CHANGE_TIMEOUT,
                        raft.change_membership(
                            ChangeMembers::AddVoterIds(BTreeSet::from([id])),
                            false,
                        ),
                    )
                    .await
                    .map_err(|_| {
                        Status::deadline_exceeded("the membership change did not commit in time")
                    })?
                    .map_err(refused)?;
                    format!("node {id} is now a voter")
                }
            }
            Change::Remove(id) => {
                if !nodes.contains(&id) {
                    return Err(Status::not_found(format!("node {id} is not a member")));
                }
                let change = if voters.contains(&id) {
                    if voters.len() == 1 {
                        return Err(Status::failed_precondition(format!(
                            "node {id} is the last voter; a cluster needs one"
                        )));
                    }
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                };
                tokio::time::timeout(CHANGE_TIMEOUT, raft.change_membership(change, false))
                    .await
                    .map_err(|_| {
                        Status::deadline_exceeded("the membership change did not commit in time")
                    })?
                    .map_err(refused)?;
                format!("node {id} removed from the cluster")
            }
        };
        tracing::info!(change = %text, by = %pk, "membership changed");
        Ok(Response::new(pb::ChangeMembershipResponse {
            message,
            members: members_pb(&raft),
        }))
    }
}
