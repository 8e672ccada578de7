//! The key layout of the ledger state: every prefix and every key builder, in one place (one
//! keyspace, a prefix byte per table; ARCHITECTURE.md "Stored state" is its table). This is
//! the on-disk format; it is versioned with the store.

use crate::event::Scheme;
use crate::ids::{Hash32, PublicKeyBytes};
use crate::jurisdiction::Jurisdiction;

/// `e` + index (u64 BE) → [`crate::records::StoredRecord`]
pub const EVENT: u8 = b'e';
/// `i` + event id → index (u64 BE)
pub const EVENT_ID: u8 = b'i';
/// `w` + worker + 0x00 + index (u64 BE) → [`crate::fact::WorkerEntry`]: the worker's line
/// positions in the event and the facts it gives (the projection)
pub const WORKER: u8 = b'w';
/// `k` + public key → [`crate::records::KeyRecord`] (JSON)
pub const KEY: u8 = b'k';
/// `p` + worker → [`crate::records::PersonRecord`] (JSON)
pub const PERSON: u8 = b'p';
/// `d` + employer, worker, jurisdiction, period, scheme (0x00-separated) → index
pub const DECLARATION: u8 = b'd';
/// `f` + worker, jurisdiction, period, scheme → index (flexible contributions)
pub const FLEXIBLE: u8 = b'f';
/// `c` + contract → [`crate::records::ContractRecord`] (JSON)
pub const CONTRACT: u8 = b'c';
/// `t` + transfer → [`crate::records::TransferRecord`] (JSON)
pub const TRANSFER: u8 = b't';
/// `v` + event id [+ line (u32 BE)] → index of the voiding correction
pub const VOIDED: u8 = b'v';
/// `m` + name → metadata
pub const META: u8 = b'm';
/// `r` + content key (`state::content_key`) → index of the event that recorded that content
/// (retry-safe submission: the same content signed again gets this event's receipt)
pub const CONTENT: u8 = b'r';
/// `n` + nonce → index of the ledger act that used it (a nonce serves one act only)
pub const ACT_NONCE: u8 = b'n';
/// `y` + index (u64 BE) → a `parameters_published` as the rules read it (JSON)
pub const PUBLISHED: u8 = b'y';
/// `h` + level (u8) + position (u64 BE) → the hash of the complete subtree of 2^level leaves
/// of the log's Merkle tree that starts at leaf `position × 2^level`
pub const TREE: u8 = b'h';

/// [`crate::authority::Authority`] (JSON), from the genesis.
pub const AUTHORITY: &[u8] = b"mauthority";
/// The log head ([`crate::records::Head`]).
pub const HEAD: &[u8] = b"mhead";
/// The genesis hash: the ledger id.
pub const GENESIS: &[u8] = b"mgenesis";
/// The projection's format version (u32 BE).
pub const PROJECTION_VERSION: &[u8] = b"mprojection";
/// The rulebook the ledger was created with.
pub const RULEBOOK: &[u8] = b"mrulebook";
/// Raft's last applied log id (replicated mode; written by the node with each applied batch).
pub const RAFT_APPLIED: &[u8] = b"mraft_applied";
/// Raft's membership (replicated mode).
pub const RAFT_MEMBERSHIP: &[u8] = b"mraft_membership";

fn prefixed(prefix: u8, tail: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + tail.len());
    k.push(prefix);
    k.extend_from_slice(tail);
    k
}

pub fn event(index: u64) -> Vec<u8> {
    prefixed(EVENT, &index.to_be_bytes())
}
pub fn event_id(id: &Hash32) -> Vec<u8> {
    prefixed(EVENT_ID, &id.0)
}
pub fn worker_prefix(worker: &str) -> Vec<u8> {
    let mut k = prefixed(WORKER, worker.as_bytes());
    k.push(0);
    k
}
pub fn worker(worker: &str, index: u64) -> Vec<u8> {
    let mut k = worker_prefix(worker);
    k.extend_from_slice(&index.to_be_bytes());
    k
}
/// The log index a worker key ends with.
pub fn index_of_worker_key(key: &[u8]) -> Option<u64> {
    let tail = key.len().checked_sub(8).map(|s| &key[s..])?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}
pub fn key(pk: &PublicKeyBytes) -> Vec<u8> {
    prefixed(KEY, &pk.0)
}
pub fn person(worker: &str) -> Vec<u8> {
    prefixed(PERSON, worker.as_bytes())
}
pub fn contract(contract: &str) -> Vec<u8> {
    prefixed(CONTRACT, contract.as_bytes())
}
pub fn transfer(transfer: &str) -> Vec<u8> {
    prefixed(TRANSFER, transfer.as_bytes())
}
/// `prefix` + the parts, 0x00-separated.
pub fn joined(prefix: u8, parts: &[&str]) -> Vec<u8> {
    prefixed(prefix, parts.join("\0").as_bytes())
}
/// The duplicate guard of one declared line.
pub fn declaration(
    employer: &str,
    worker: &str,
    j: &Jurisdiction,
    period: &str,
    scheme: Scheme,
) -> Vec<u8> {
    joined(
        DECLARATION,
        &[employer, worker, j.as_str(), period, scheme.as_str()],
    )
}
/// The duplicate guard of a flexible contribution.
pub fn flexible(worker: &str, j: &Jurisdiction, period: &str, scheme: Scheme) -> Vec<u8> {
    joined(FLEXIBLE, &[worker, j.as_str(), period, scheme.as_str()])
}
/// The void of a whole event (`line` None) or of one of its lines.
pub fn voided(id: &Hash32, line: Option<u32>) -> Vec<u8> {
    let mut k = prefixed(VOIDED, &id.0);
    if let Some(l) = line {
        k.extend_from_slice(&l.to_be_bytes());
    }
    k
}
/// Every void of an event: of the whole event and of each line.
pub fn voids_of(id: &Hash32) -> Vec<u8> {
    prefixed(VOIDED, &id.0)
}
pub fn content(key: &Hash32) -> Vec<u8> {
    prefixed(CONTENT, &key.0)
}
pub fn act_nonce(nonce: &str) -> Vec<u8> {
    prefixed(ACT_NONCE, nonce.as_bytes())
}
pub fn published(index: u64) -> Vec<u8> {
    prefixed(PUBLISHED, &index.to_be_bytes())
}
pub fn tree_node(level: u8, position: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(10);
    k.push(TREE);
    k.push(level);
    k.extend_from_slice(&position.to_be_bytes());
    k
}

/// True when a key belongs to the projection: what a rebuild clears and replays (the worker
/// entries, published parameters, the Merkle tree and the projection's version).
pub fn is_projection_key(key: &[u8]) -> bool {
    matches!(key.first(), Some(&WORKER) | Some(&PUBLISHED) | Some(&TREE))
        || key == PROJECTION_VERSION
}
