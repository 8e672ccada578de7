//! Replication on openraft (0.9, `storage-v2`): the Raft log on sled beside the ledger, and the
//! state machine that applies committed entries through `ledger_core::state::apply_entry`.
//!
//! The Raft log is not the ledger. An entry carries a stamp and the envelopes it orders; applying
//! it appends events to the ledger store. openraft purges its log after snapshots; the ledger (the
//! `e`/`i`/`w` tables) is never purged, and a snapshot hands over the ledger's events, which the
//! receiver checks and replays (`snapshot`) before committing them.
//!
//! Entries in the Raft log and every Raft RPC are binary ([`encode`]: a format byte, then postcard);
//! entries and messages of the earlier JSON formats are still read ([`decode`]).

// openraft's traits fix the error type (StorageError, ~224 bytes); boxing it is not ours to do.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod members;
pub mod network;
pub mod snapshot;
pub mod state_machine;
pub mod wire;

use serde::{Deserialize, Serialize};

pub use log_store::RaftLogStore;
pub use members::{MemberKeys, Net};
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
        // Entries per AppendEntries; with the entry's byte bound, what keeps every message under
        // what a follower accepts (`limits`).
        max_payload_entries: crate::limits::MAX_PAYLOAD_ENTRIES,
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
        SnapshotData = tokio::fs::File,
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
    /// The member's node key (hex ed25519 public key): the only certificate key its peers accept
    /// from it. Empty in a membership written before node keys; `[[raft.members]] node_key`
    /// answers then. Always written: the binary encoding (postcard) is not self-describing, so
    /// a field skipped when empty could not be read back.
    #[serde(default)]
    pub node_key: String,
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
///
/// Its serde form depends on the format: in binary formats (postcard, the Raft log and RPCs since
/// the binary encoding) a tuple of stamp and envelopes, each envelope's bytes once with a length
/// prefix; in JSON (the earlier Raft logs) the base64 form, still reading the first hex form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRequest {
    pub stamp_seconds: i64,
    pub stamp_nanos: u32,
    pub envelopes: Vec<Vec<u8>>,
}

impl LedgerRequest {
    /// An upper bound of the binary size of an entry holding envelopes of these sizes, log id and
    /// format byte included: what [`crate::limits::MAX_RAFT_ENTRY_BYTES`] counts.
    pub fn encoded_len_of(envelope_sizes: impl IntoIterator<Item = usize>) -> usize {
        use crate::limits::{RAFT_ENTRY_OVERHEAD_BYTES, RAFT_ENTRY_PER_ENVELOPE_BYTES};
        RAFT_ENTRY_OVERHEAD_BYTES
            + envelope_sizes
                .into_iter()
                .map(|n| n + RAFT_ENTRY_PER_ENVELOPE_BYTES)
                .sum::<usize>()
    }
}

impl Serialize for LedgerRequest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return LedgerRequestWire::from(self).serialize(s);
        }
        let envelopes: Vec<Bytes<'_>> = self.envelopes.iter().map(|e| Bytes(e)).collect();
        (self.stamp_seconds, self.stamp_nanos, envelopes).serialize(s)
    }
}

impl<'de> Deserialize<'de> for LedgerRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            return LedgerRequestWire::deserialize(d)?
                .try_into()
                .map_err(serde::de::Error::custom);
        }
        let (stamp_seconds, stamp_nanos, envelopes): (i64, u32, Vec<ByteBuf>) =
            Deserialize::deserialize(d)?;
        Ok(LedgerRequest {
            stamp_seconds,
            stamp_nanos,
            envelopes: envelopes.into_iter().map(|b| b.0).collect(),
        })
    }
}

/// Bytes serialized as bytes (a length and the bytes), not as a sequence of numbers.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("envelope bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

/// The first byte of a binary Raft log entry or Raft RPC payload (postcard after it). The JSON of
/// the earlier formats always starts with `{`, so one byte tells them apart: logs written before
/// the binary encoding stay readable, and an older peer's JSON RPC is still understood.
pub const BINARY_FORMAT: u8 = 0x01;

/// Encodes a Raft log entry or RPC message: [`BINARY_FORMAT`], then postcard.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_extend(value, vec![BINARY_FORMAT]).map_err(|e| format!("binary encoding: {e}"))
}

/// Decodes what [`encode`] wrote, or the JSON of the earlier formats. Trailing bytes are refused.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.first() {
        Some(&BINARY_FORMAT) => match postcard::take_from_bytes(&bytes[1..]) {
            Ok((value, [])) => Ok(value),
            Ok((_, rest)) => Err(format!("{} bytes after the message", rest.len())),
            Err(e) => Err(format!("binary decoding: {e}")),
        },
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| format!("JSON decoding: {e}")),
        Some(other) => Err(format!("unknown message format (first byte {other:#04x})")),
        None => Err("empty message".into()),
    }
}

/// The JSON form of a [`LedgerRequest`] (Raft logs written before the binary encoding):
/// envelopes as base64 (`envelopes64`), or the first format's hex (`envelopes`).
#[derive(Serialize, Deserialize)]
struct LedgerRequestWire {
    stamp_seconds: i64,
    stamp_nanos: u32,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_list")]
    envelopes: Option<Vec<Vec<u8>>>,
    #[serde(default)]
    envelopes64: Vec<String>,
}

impl From<&LedgerRequest> for LedgerRequestWire {
    fn from(r: &LedgerRequest) -> Self {
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
    fn members_without_keys_or_addresses_round_trip_in_the_binary_encoding() {
        let n = LedgerNode::default();
        assert_eq!(decode::<LedgerNode>(&encode(&n).unwrap()).unwrap(), n);
    }

    #[test]
    fn memberships_written_with_basic_node_still_read() {
        let old = r#"{"addr":"http://127.0.0.1:7200"}"#;
        let n: LedgerNode = serde_json::from_str(old).unwrap();
        assert_eq!(n.raft_address, "http://127.0.0.1:7200");
        assert_eq!(n.public_address, "");
        assert_eq!(n.node_key, "");
    }

    fn entry(index: u64, req: LedgerRequest) -> openraft::Entry<TypeConfig> {
        openraft::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(3, 1), index),
            payload: openraft::EntryPayload::Normal(req),
        }
    }

    #[test]
    fn binary_entries_round_trip_carry_each_envelope_once_and_stay_within_their_bound() {
        let envelopes = vec![vec![7u8; 1000], vec![], vec![0xff; 300]];
        let r = LedgerRequest {
            stamp_seconds: 1_700_000_000,
            stamp_nanos: 999_999_999,
            envelopes: envelopes.clone(),
        };
        let e = entry(u64::MAX, r.clone());
        let bytes = encode(&e).unwrap();
        assert_eq!(bytes[0], BINARY_FORMAT);
        let back: openraft::Entry<TypeConfig> = decode(&bytes).unwrap();
        assert_eq!(back.log_id, e.log_id);
        assert!(matches!(back.payload, openraft::EntryPayload::Normal(ref b) if *b == r));
        // Each envelope's bytes once, plus a few bytes of framing (JSON with base64 was 4/3).
        let payload: usize = envelopes.iter().map(Vec::len).sum();
        assert!(bytes.len() < payload + 40, "{} bytes", bytes.len());
        let bound = LedgerRequest::encoded_len_of(envelopes.iter().map(Vec::len));
        assert!(bytes.len() <= bound, "{} > {bound}", bytes.len());
        // Damage is refused, not misread.
        assert!(decode::<openraft::Entry<TypeConfig>>(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode::<openraft::Entry<TypeConfig>>(&longer).is_err());
        assert!(decode::<openraft::Entry<TypeConfig>>(&[0x02, 0]).is_err());
        assert!(decode::<openraft::Entry<TypeConfig>>(&[]).is_err());
    }

    #[test]
    fn raft_logs_written_in_the_json_formats_still_read() {
        // Entries exactly as the log store wrote them before the binary encoding: base64 (the
        // second format) and hex (the first).
        let base64 = br#"{"log_id":{"leader_id":{"term":3,"node_id":1},"index":9},"payload":{"Normal":{"stamp_seconds":1700000000,"stamp_nanos":7,"envelopes64":["AAEC/w==",""]}}}"#;
        let hex = br#"{"log_id":{"leader_id":{"term":3,"node_id":1},"index":9},"payload":{"Normal":{"stamp_seconds":1700000000,"stamp_nanos":7,"envelopes":["000102ff",""]}}}"#;
        let expected = LedgerRequest {
            stamp_seconds: 1_700_000_000,
            stamp_nanos: 7,
            envelopes: vec![vec![0, 1, 2, 255], vec![]],
        };
        for old in [&base64[..], &hex[..]] {
            let e: openraft::Entry<TypeConfig> = decode(old).unwrap();
            assert_eq!(e.log_id.index, 9);
            assert!(matches!(e.payload, openraft::EntryPayload::Normal(ref r) if *r == expected));
        }
        // What the JSON form writes today is the second format, byte for byte.
        assert_eq!(
            serde_json::to_vec(&entry(9, expected)).unwrap(),
            base64.to_vec()
        );
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
