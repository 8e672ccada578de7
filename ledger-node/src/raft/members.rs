//! Which node key each member must prove: the membership's record of the members' keys, and
//! the transport (TLS pinned to that key, or plaintext in a ledger without TLS) to reach one.
//! This is membership knowledge on top of `tls`, which knows certificates and handshakes only.

use std::collections::BTreeMap;
use std::sync::Arc;

use ledger_client::transport::{self, NodeKey, Pins, Transport};

use super::{LedgerNode, NodeId, TypeConfig};
use crate::tls::NodeTls;

/// Node keys of the members: the Raft membership's (`LedgerNode::node_key`), else the
/// `[[raft.members]] node_key` of the config (memberships written before node keys existed).
#[derive(Clone, Default)]
pub struct MemberKeys {
    configured: BTreeMap<NodeId, NodeKey>,
}

impl MemberKeys {
    pub fn new(configured: BTreeMap<NodeId, NodeKey>) -> MemberKeys {
        MemberKeys { configured }
    }

    pub fn key_of(&self, id: NodeId, node: &LedgerNode) -> Option<NodeKey> {
        transport::parse_node_key(&node.node_key)
            .ok()
            .or_else(|| self.configured.get(&id).copied())
    }

    /// The members whose node key is `key`: of the current membership, or, while this node
    /// has none yet (a new cluster, or a node waiting to be added), of its config.
    pub fn members_with(&self, raft: &openraft::Raft<TypeConfig>, key: &NodeKey) -> Vec<NodeId> {
        let m = raft.metrics().borrow().membership_config.clone();
        if m.membership().nodes().next().is_none() {
            return self
                .configured
                .iter()
                .filter(|(_, k)| *k == key)
                .map(|(id, _)| *id)
                .collect();
        }
        m.membership()
            .nodes()
            .filter(|(id, n)| self.key_of(**id, n).as_ref() == Some(key))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Pins accepting the node key of any member (as [`MemberKeys::members_with`] finds them).
    pub fn any_member(&self, raft: &openraft::Raft<TypeConfig>) -> Pins {
        let raft = raft.clone();
        let keys = self.clone();
        Pins::dynamic(move |k| !keys.members_with(&raft, k).is_empty())
    }

    /// Pins accepting exactly the node key of member `id` (`node` as the membership has it).
    pub fn exactly(&self, id: NodeId, node: &LedgerNode) -> Option<Pins> {
        self.key_of(id, node).map(|k| Pins::keys([k]))
    }
}

/// How this node reaches its peers: plaintext (`[tls] mode = "plaintext"`, loopback only), or
/// mutual TLS pinned to the member's node key.
#[derive(Clone, Default)]
pub struct Net {
    pub tls: Option<Arc<NodeTls>>,
    pub keys: MemberKeys,
}

impl Net {
    /// The transport to member `id` (`node` as the membership records it).
    pub fn to_member(&self, id: NodeId, node: &LedgerNode) -> Result<Transport, String> {
        let Some(tls) = &self.tls else {
            return Ok(Transport::Plaintext);
        };
        let pins = self.keys.exactly(id, node).ok_or_else(|| {
            format!(
                "member {id} has no node key in the membership or in [[raft.members]]; add its \
                 node_key to this node's config"
            )
        })?;
        Ok(tls.outgoing(pins))
    }

    /// The transport to member `id` of the current membership.
    pub fn to_current(
        &self,
        raft: &openraft::Raft<TypeConfig>,
        id: NodeId,
    ) -> Result<Transport, String> {
        let node = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned()
            .unwrap_or_default();
        self.to_member(id, &node)
    }
}
