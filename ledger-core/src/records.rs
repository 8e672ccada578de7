//! The records of the ledger state and their typed reads: the stored event ([`StoredRecord`],
//! with its checksum and chain link), the log [`Head`], the key, person, contract and transfer
//! records, and [`StoredTree`], the log's Merkle tree as stored. One function per lookup, so
//! every caller gets the same answer for a missing or damaged entry.

use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, LedgerId};
use crate::event::{EventBody, Role};
use crate::ids::{Hash32, PublicKeyBytes};
use crate::jurisdiction::Jurisdiction;
use crate::kv::{get_json, get_u64, Overlay, StateRead, StoreFault};
use crate::log_tree::{self, HashReader, OutOfRange};
use crate::schema;
use crate::time::{Date, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub role: Role,
    pub jurisdiction: Jurisdiction,
    pub subject: String,
    /// Log index of the registration; 0 for genesis keys.
    pub registered_at: u64,
    pub revoked_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRecord {
    pub index: u64,
    pub jurisdiction: Jurisdiction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractRecord {
    pub index: u64,
    pub start: Date,
    pub employer: String,
    pub worker: String,
    pub jurisdiction: Jurisdiction,
    pub ended_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecord {
    pub index: u64,
    pub worker: String,
    pub from: Jurisdiction,
    pub to: Jurisdiction,
    pub completed_at: Option<u64>,
}

/// The head of the appended log: its size and the hash chain over every appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Head {
    pub size: u64,
    pub chain: Hash32,
}

impl Head {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.size.to_be_bytes().to_vec();
        v.extend_from_slice(&self.chain.0);
        v
    }
    pub fn decode(b: &[u8]) -> Result<Head, StoreFault> {
        if b.len() != 40 {
            return Err(StoreFault(format!(
                "head record has {} bytes, expected 40",
                b.len()
            )));
        }
        Ok(Head {
            size: u64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
            chain: Hash32(b[8..].try_into().expect("32 bytes")),
        })
    }
}

/// The chain link of event `index`: commits to the previous link, the index, the id and stamp.
pub fn chain_next(prev: &Hash32, index: u64, id: &Hash32, stamp: Instant) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(b"portable-contribution-ledger/chain/v1\n");
    h.update(&prev.0);
    h.update(&index.to_be_bytes());
    h.update(&id.0);
    h.update(&stamp.unix_seconds().to_be_bytes());
    h.update(&stamp.nanos().to_be_bytes());
    Hash32(*h.finalize().as_bytes())
}

/// One appended event as stored: what the log holds forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub index: u64,
    pub stamp: Instant,
    pub event_id: Hash32,
    /// Chain link after this event ([`chain_next`]).
    pub chain: Hash32,
    pub envelope: Envelope,
}

/// Version byte of the stored record format.
const RECORD_VERSION: u8 = 1;

impl StoredRecord {
    /// `version | index | stamp secs | stamp nanos | event id | chain | envelope (protobuf) | BLAKE3 checksum of all before`.
    pub fn encode(&self) -> Vec<u8> {
        use prost::Message;
        let env = self.envelope.to_pb().encode_to_vec();
        let mut v = Vec::with_capacity(1 + 8 + 8 + 4 + 64 + env.len() + 32);
        v.push(RECORD_VERSION);
        v.extend_from_slice(&self.index.to_be_bytes());
        v.extend_from_slice(&self.stamp.unix_seconds().to_be_bytes());
        v.extend_from_slice(&self.stamp.nanos().to_be_bytes());
        v.extend_from_slice(&self.event_id.0);
        v.extend_from_slice(&self.chain.0);
        v.extend_from_slice(&env);
        let sum = blake3::hash(&v);
        v.extend_from_slice(sum.as_bytes());
        v
    }

    /// The event's body, decoded again from the stored bytes.
    pub fn body(&self) -> Result<EventBody, StoreFault> {
        crate::wire::decode_event(&self.envelope.body, &self.envelope.lines).map_err(|e| {
            StoreFault(format!(
                "stored event {} no longer decodes: {e}",
                self.index
            ))
        })
    }

    /// Decodes and checks the checksum; any flipped byte is a [`StoreFault`].
    pub fn decode(b: &[u8]) -> Result<StoredRecord, StoreFault> {
        use prost::Message;
        const HEADER: usize = 1 + 8 + 8 + 4 + 32 + 32;
        if b.len() < HEADER + 32 {
            return Err(StoreFault(format!(
                "stored event record of {} bytes is truncated",
                b.len()
            )));
        }
        let (payload, sum) = b.split_at(b.len() - 32);
        if blake3::hash(payload).as_bytes() != sum {
            return Err(StoreFault(
                "stored event record fails its checksum (corrupted)".into(),
            ));
        }
        if payload[0] != RECORD_VERSION {
            return Err(StoreFault(format!(
                "stored event record has unknown version {}",
                payload[0]
            )));
        }
        let u64_at = |o: usize| u64::from_be_bytes(payload[o..o + 8].try_into().expect("8 bytes"));
        let index = u64_at(1);
        let secs = u64_at(9) as i64;
        let nanos = u32::from_be_bytes(payload[17..21].try_into().expect("4 bytes"));
        let stamp = Instant::from_unix_utc(secs, nanos)
            .map_err(|e| StoreFault(format!("stored stamp: {e}")))?;
        let event_id = Hash32(payload[21..53].try_into().expect("32 bytes"));
        let chain = Hash32(payload[53..85].try_into().expect("32 bytes"));
        let env = crate::pb::Envelope::decode(&payload[HEADER..])
            .map_err(|e| StoreFault(format!("stored envelope: {e}")))?;
        let envelope =
            Envelope::from_pb(env).map_err(|e| StoreFault(format!("stored envelope: {e}")))?;
        Ok(StoredRecord {
            index,
            stamp,
            event_id,
            chain,
            envelope,
        })
    }
}

/// Reads the head of a ledger state.
pub fn read_head(view: &dyn StateRead) -> Result<Head, StoreFault> {
    let b = view.get(schema::HEAD)?.ok_or_else(|| {
        StoreFault("no head: the store was not initialised from a genesis".into())
    })?;
    Head::decode(&b)
}

/// The ledger a state belongs to (its genesis hash): what every event of it is signed for.
pub fn read_ledger_id(view: &dyn StateRead) -> Result<LedgerId, StoreFault> {
    let b = view.get(schema::GENESIS)?.ok_or_else(|| {
        StoreFault("no genesis hash: the store was not initialised from a genesis".into())
    })?;
    Hash32::from_slice(&b)
        .map(LedgerId)
        .map_err(|e| StoreFault(format!("genesis hash: {e}")))
}

/// The log index of an event id: `None` when the ledger does not hold it; a damaged entry is a
/// fault, never index 0.
pub fn index_of(view: &dyn StateRead, id: &Hash32) -> Result<Option<u64>, StoreFault> {
    get_u64(view, &schema::event_id(id))
}

/// The stored event at `index`, which must exist.
pub fn record(view: &dyn StateRead, index: u64) -> Result<StoredRecord, StoreFault> {
    let b = view
        .get(&schema::event(index))?
        .ok_or_else(|| StoreFault(format!("event {index} missing")))?;
    StoredRecord::decode(&b)
}

/// A signer's key record.
pub fn key_record(
    view: &dyn StateRead,
    pk: &PublicKeyBytes,
) -> Result<Option<KeyRecord>, StoreFault> {
    get_json(view, &schema::key(pk))
}

/// A worker's registration.
pub fn person(view: &dyn StateRead, worker: &str) -> Result<Option<PersonRecord>, StoreFault> {
    get_json(view, &schema::person(worker))
}

/// The registration record of a contract.
pub fn contract_record(
    view: &dyn StateRead,
    contract: &str,
) -> Result<Option<ContractRecord>, StoreFault> {
    get_json(view, &schema::contract(contract))
}

/// The record of a transfer.
pub fn transfer_record(
    view: &dyn StateRead,
    transfer: &str,
) -> Result<Option<TransferRecord>, StoreFault> {
    get_json(view, &schema::transfer(transfer))
}

impl From<OutOfRange> for StoreFault {
    fn from(e: OutOfRange) -> StoreFault {
        StoreFault(e.0)
    }
}

/// The log's Merkle tree as the ledger state stores it (`h` level position), for the pure
/// proofs of [`crate::log_tree`].
pub struct StoredTree<'a>(pub &'a dyn StateRead);

impl HashReader for StoredTree<'_> {
    type Error = StoreFault;
    fn read_hash(&self, level: u8, position: u64) -> Result<Hash32, StoreFault> {
        let b = self
            .0
            .get(&schema::tree_node(level, position))?
            .ok_or_else(|| {
                StoreFault(format!(
                    "tree node (level {level}, position {position}) is missing"
                ))
            })?;
        Hash32::from_slice(&b).map_err(StoreFault)
    }
}

/// Appends leaf number `size` (0-based) to the stored tree: writes the leaf and every subtree
/// it completes.
pub fn append_leaf(st: &mut Overlay<'_>, size: u64, leaf: Hash32) -> Result<(), StoreFault> {
    for (level, position, h) in log_tree::append(&StoredTree(st), size, leaf)? {
        st.put(schema::tree_node(level, position), h.0.to_vec());
    }
    Ok(())
}

/// The root of the stored tree of the first `size` events.
pub fn tree_root(view: &dyn StateRead, size: u64) -> Result<Hash32, StoreFault> {
    log_tree::root(&StoredTree(view), size)
}

/// The inclusion proof of leaf `index` (0-based) in the stored tree of `size` events.
pub fn inclusion_proof(
    view: &dyn StateRead,
    index: u64,
    size: u64,
) -> Result<Vec<Hash32>, StoreFault> {
    log_tree::prove_inclusion(&StoredTree(view), index, size)
}

/// The consistency proof between the stored trees of `old` and `new` events.
pub fn consistency_proof(
    view: &dyn StateRead,
    old: u64,
    new: u64,
) -> Result<Vec<Hash32>, StoreFault> {
    log_tree::prove_consistency(&StoredTree(view), old, new)
}
