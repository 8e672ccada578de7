//! One public decode (and encode) function per message a peer sends: the Raft RPC payloads, the
//! replies, a Raft log entry, a ledger request and a snapshot. They are the entry points of the
//! fuzz targets (`fuzz/` at the repository root), so each takes plain bytes and returns a clear
//! error. They use the same `raft::encode`/`raft::decode` as `network` and `log_store` (binary,
//! still reading the JSON of earlier releases), so the fuzz targets exercise the real decoders.

use openraft::error::{Infallible, InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::Entry;
use serde::{de::DeserializeOwned, Serialize};

use super::{LedgerRequest, NodeId, TypeConfig};

/// A peer's reply to an RPC as `network` reads it: the answer or the peer's Raft error.
pub type Reply<T, E> = Result<T, RaftError<NodeId, E>>;

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, String> {
    super::decode(bytes).map_err(|e| format!("malformed {what}: {e}"))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Encoding these types cannot fail: postcard writes every value openraft's types hold.
    super::encode(v).expect("Raft messages encode")
}

pub fn decode_append_entries(bytes: &[u8]) -> Result<AppendEntriesRequest<TypeConfig>, String> {
    decode("append_entries request", bytes)
}

pub fn encode_append_entries(req: &AppendEntriesRequest<TypeConfig>) -> Vec<u8> {
    encode(req)
}

pub fn decode_vote(bytes: &[u8]) -> Result<VoteRequest<NodeId>, String> {
    decode("vote request", bytes)
}

pub fn encode_vote(req: &VoteRequest<NodeId>) -> Vec<u8> {
    encode(req)
}

pub fn decode_install_snapshot(bytes: &[u8]) -> Result<InstallSnapshotRequest<TypeConfig>, String> {
    decode("install_snapshot request", bytes)
}

pub fn encode_install_snapshot(req: &InstallSnapshotRequest<TypeConfig>) -> Vec<u8> {
    encode(req)
}

pub fn decode_append_entries_reply(
    bytes: &[u8],
) -> Result<Reply<AppendEntriesResponse<NodeId>, Infallible>, String> {
    decode("append_entries reply", bytes)
}

pub fn decode_vote_reply(bytes: &[u8]) -> Result<Reply<VoteResponse<NodeId>, Infallible>, String> {
    decode("vote reply", bytes)
}

pub fn decode_install_snapshot_reply(
    bytes: &[u8],
) -> Result<Reply<InstallSnapshotResponse<NodeId>, InstallSnapshotError>, String> {
    decode("install_snapshot reply", bytes)
}

/// A Raft log entry as the log store keeps it and append_entries carries it.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry<TypeConfig>, String> {
    decode("Raft entry", bytes)
}

pub fn encode_entry(entry: &Entry<TypeConfig>) -> Vec<u8> {
    encode(entry)
}

/// The application payload of a normal entry.
pub fn decode_ledger_request(bytes: &[u8]) -> Result<LedgerRequest, String> {
    decode("ledger request", bytes)
}

pub fn encode_ledger_request(req: &LedgerRequest) -> Vec<u8> {
    encode(req)
}

/// The header of a received snapshot (format, bounds; the events behind it are checked by
/// `snapshot::stage` against a store).
pub fn decode_snapshot(bytes: &[u8]) -> Result<super::snapshot::Header, String> {
    super::snapshot::read_header(bytes)
}

/// A reply as `network`'s server side sends it (any of the three `decode_*_reply` above).
pub fn encode_reply<T: Serialize, E: Serialize>(reply: &Reply<T, E>) -> Vec<u8> {
    encode(reply)
}
