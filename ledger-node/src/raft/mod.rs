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
pub mod network;
pub mod state_machine;
pub mod wire;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

pub use log_store::RaftLogStore;
pub use state_machine::LedgerStateMachine;

/// Raft node ids: one per node of a jurisdiction's agency.
pub type NodeId = u64;

/// Leader heartbeat. openraft also uses it as the deadline of each append_entries RPC, so it must
/// cover a full batch on a loaded 2-core machine.
pub const HEARTBEAT_MS: u64 = 250;
/// Election timeout range: wide, because openraft 0.9 draws one timeout per process and two
/// survivors with close timeouts can split votes repeatedly (fixed only in 0.10).
pub const ELECTION_TIMEOUT_MS: (u64, u64) = (1000, 3000);
/// Entries between snapshots (the Raft log is purged behind them; the ledger never is).
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 5000;
/// A snapshot chunk, including the follower's install on the last one, may take this long.
pub const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 30_000;

/// The openraft configuration of a ledger cluster, snapshotting every `snapshot_every` entries
/// and keeping a fifth of that of the Raft log behind each snapshot for slow followers.
pub fn config(
    cluster_name: &str,
    snapshot_every: u64,
) -> Result<openraft::Config, openraft::ConfigError> {
    openraft::Config {
        cluster_name: cluster_name.to_string(),
        heartbeat_interval: HEARTBEAT_MS,
        election_timeout_min: ELECTION_TIMEOUT_MS.0,
        election_timeout_max: ELECTION_TIMEOUT_MS.1,
        install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_every.max(1)),
        max_in_snapshot_log_to_keep: snapshot_every / 5,
        purge_batch_size: 256,
        max_payload_entries: 64,
        ..Default::default()
    }
    .validate()
}

openraft::declare_raft_types!(
    /// The Raft types of the ledger.
    pub TypeConfig:
        D = LedgerRequest,
        R = LedgerResponse,
        NodeId = NodeId,
        Node = LedgerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A member as the Raft membership records it: where its peers reach its Raft service, and where
/// clients (and forwarded submissions) reach its public service. Kept in the membership itself,
/// so a node added at run time is reachable without editing any config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerNode {
    /// (`addr` is the field of openraft's `BasicNode`, which stores of the first release hold.)
    #[serde(alias = "addr")]
    pub raft_address: String,
    /// Empty only in a membership written by the first release; the node's `[raft] members`
    /// config answers then.
    #[serde(default)]
    pub public_address: String,
}

impl std::fmt::Display for LedgerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "raft {} public {}",
            self.raft_address, self.public_address
        )
    }
}

/// One Raft entry of the ledger: the leader's stamp and the envelopes it orders (each the
/// protobuf encoding of `ledger.v1.events.Envelope`, the author's bytes inside).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "LedgerRequestWire", into = "LedgerRequestWire")]
pub struct LedgerRequest {
    pub stamp_seconds: i64,
    pub stamp_nanos: u32,
    pub envelopes: Vec<Vec<u8>>,
}

/// The serde form of a [`LedgerRequest`] (Raft log and Raft RPCs are JSON): envelopes as base64
/// (`envelopes64`, a third over their size), still reading the first format's hex
/// (`envelopes`) so logs written before stay readable.
#[derive(Serialize, Deserialize)]
struct LedgerRequestWire {
    stamp_seconds: i64,
    stamp_nanos: u32,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_list")]
    envelopes: Option<Vec<Vec<u8>>>,
    #[serde(default)]
    envelopes64: Vec<String>,
}

impl From<LedgerRequest> for LedgerRequestWire {
    fn from(r: LedgerRequest) -> Self {
        use base64::Engine;
        LedgerRequestWire {
            stamp_seconds: r.stamp_seconds,
            stamp_nanos: r.stamp_nanos,
            envelopes: None,
            envelopes64: r
                .envelopes
                .iter()
                .map(|e| base64::engine::general_purpose::STANDARD.encode(e))
                .collect(),
        }
    }
}

impl TryFrom<LedgerRequestWire> for LedgerRequest {
    type Error = String;
    fn try_from(w: LedgerRequestWire) -> Result<Self, String> {
        use base64::Engine;
        let envelopes = match w.envelopes {
            Some(hex) => hex,
            None => w
                .envelopes64
                .iter()
                .map(|e| {
                    base64::engine::general_purpose::STANDARD
                        .decode(e)
                        .map_err(|e| format!("entry envelope: {e}"))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(LedgerRequest {
            stamp_seconds: w.stamp_seconds,
            stamp_nanos: w.stamp_nanos,
            envelopes,
        })
    }
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

/// The replicable form of an outcome.
pub fn record(o: ledger_core::state::Outcome) -> OutcomeRecord {
    match o {
        ledger_core::state::Outcome::Appended(r) => OutcomeRecord::Appended {
            event_id: r.event_id.to_hex(),
            index: r.index,
            stamp_seconds: r.appended_at.unix_seconds(),
            stamp_nanos: r.appended_at.nanos(),
            duplicate: r.duplicate,
        },
        ledger_core::state::Outcome::Refused(r) => refused(&r),
    }
}

pub fn refused(r: &ledger_core::refusal::Refusal) -> OutcomeRecord {
    OutcomeRecord::Refused {
        code: r.code().to_string(),
        message: r.to_string(),
    }
}

/// The first format's envelopes: hex strings (read only; JSON would spell bytes as numbers).
mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<Vec<u8>>>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().flatten().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Vec<u8>>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|h| hex::decode(h).map_err(serde::de::Error::custom))
            .collect::<Result<_, _>>()
            .map(Some)
    }
}

/// A member's public address, from the current Raft membership.
pub fn public_address(raft: &openraft::Raft<TypeConfig>, id: NodeId) -> Option<String> {
    raft.metrics()
        .borrow()
        .membership_config
        .membership()
        .get_node(&id)
        .map(|n| n.public_address.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memberships_written_with_basic_node_still_read() {
        let old = r#"{"addr":"http://127.0.0.1:7200"}"#;
        let n: LedgerNode = serde_json::from_str(old).unwrap();
        assert_eq!(n.raft_address, "http://127.0.0.1:7200");
        assert_eq!(n.public_address, "");
    }

    #[test]
    fn entries_round_trip_and_the_first_hex_format_still_reads() {
        let r = LedgerRequest {
            stamp_seconds: 1_700_000_000,
            stamp_nanos: 7,
            envelopes: vec![vec![0, 1, 2, 255], vec![]],
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("envelopes64"), "{json}");
        assert_eq!(serde_json::from_str::<LedgerRequest>(&json).unwrap(), r);
        let old = r#"{"stamp_seconds":1700000000,"stamp_nanos":7,"envelopes":["000102ff",""]}"#;
        assert_eq!(serde_json::from_str::<LedgerRequest>(old).unwrap(), r);
        let bad = r#"{"stamp_seconds":1,"stamp_nanos":0,"envelopes64":["!!"]}"#;
        assert!(serde_json::from_str::<LedgerRequest>(bad).is_err());
    }
}
