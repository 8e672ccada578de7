//! Replication on openraft (0.9, `storage-v2`): the Raft log on sled beside the ledger, and the
//! state machine that applies committed entries through `ledger_core::state::apply_entry`.
//!
//! The Raft log is not the ledger. An entry carries a stamp and the envelopes it orders; applying
//! it appends events to the ledger store. openraft purges its log after snapshots; the ledger (the
//! `e`/`i`/`w` tables) is never purged, and a snapshot hands over the whole ledger store, which the
//! receiver verifies (`ledger::verify_log`) before serving it.
//!
//! Status: storage layer, verified with openraft's storage test suite. The gRPC transport, leader
//! forwarding and cluster start-up are the next step of the replication issue.

// openraft's traits fix the error type (StorageError, ~224 bytes); boxing it is not ours to do.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod state_machine;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

pub use log_store::RaftLogStore;
pub use state_machine::LedgerStateMachine;

/// Raft node ids: one per node of a jurisdiction's agency.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The Raft types of the ledger.
    pub TypeConfig:
        D = LedgerRequest,
        R = LedgerResponse,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// One Raft entry of the ledger: the leader's stamp and the envelopes it orders (each the
/// protobuf encoding of `ledger.v1.events.Envelope`, the author's bytes inside).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRequest {
    pub stamp_seconds: i64,
    pub stamp_nanos: u32,
    #[serde(with = "hex_list")]
    pub envelopes: Vec<Vec<u8>>,
}

/// The outcome of each envelope of an entry, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerResponse {
    pub outcomes: Vec<OutcomeRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutcomeRecord {
    Appended {
        event_id: String,
        index: u64,
        stamp_seconds: i64,
        stamp_nanos: u32,
        duplicate: bool,
    },
    Refused {
        code: String,
        message: String,
    },
}

/// Byte strings as hex in the serde form of Raft messages (JSON would spell bytes as numbers).
mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|h| hex::decode(h).map_err(serde::de::Error::custom))
            .collect()
    }
}
