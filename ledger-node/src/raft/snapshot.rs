//! The ledger snapshot as a stream of events, and its checks on receipt.
//!
//! A snapshot is not a dump of the store: it is the ledger's log (each appended event's index,
//! stamp and envelope bytes) up to a head, with the Raft bookkeeping openraft needs and what the
//! receiver compares after replaying it (genesis, log size, Merkle root, head chain link). The
//! receiver never takes its tables on trust: events it already holds must be byte-identical to
//! its own, the others are opened again (signatures) and applied with the same `apply_entry` as
//! any committed entry, into writes staged beside the live store; only when the replayed head
//! and root equal the claimed ones are the staged writes committed, in one atomic batch.
//!
//! Layout (format version 2):
//! `MAGIC | u32 header length | header (JSON) | size × record | BLAKE3 of everything before`,
//! a record being `u64 index | i64 stamp seconds | u32 stamp nanos | u32 length | envelope`.

use std::io::{Read, Write};

use ledger_core::envelope::{Envelope, LedgerId, VerifiedEvent};
use ledger_core::event::Hash32;
use ledger_core::kv::{StateRead, Writes};
use ledger_core::limits::MAX_ENVELOPE_BYTES;
use ledger_core::pb;
use ledger_core::records;
use ledger_core::records::{Head, StoredRecord};
use ledger_core::schema as keys;
use ledger_core::state::{self, Outcome};
use ledger_core::time::Instant;
use openraft::{LogId, StoredMembership};
use prost::Message;
use serde::{Deserialize, Serialize};

use super::state_machine::{Layered, APPLIED_KEY, MEMBERSHIP_KEY};
use super::{LedgerNode, NodeId};
use crate::store::{SledStore, Store};

/// First bytes of a ledger snapshot; the digit is the format version.
pub const SNAPSHOT_MAGIC: &[u8] = b"PCL-SNAPSHOT-2\n";
/// The header's own version field (a reader refuses any other).
pub const SNAPSHOT_VERSION: u32 = 2;
/// Largest snapshot a node receives or installs. A receiver stages the events it lacks
/// in memory until the atomic commit (about three times their snapshot bytes), so this bounds
/// the memory an install may take; it is also the bound on a peer's chunk offsets, refused
/// before anything is allocated.
pub const MAX_SNAPSHOT_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// The header is a few hashes, a log id and the membership (a handful of members).
pub const MAX_SNAPSHOT_HEADER_BYTES: u32 = 1024 * 1024;
/// Events replayed with one `apply_entry` call at most (same stamp): bounds the opened events
/// held at once while staging.
const REPLAY_GROUP: usize = 1024;
/// Ledger records read per page while building (the store is never read whole).
const BUILD_PAGE: usize = 1024;

/// What a snapshot claims, checked against the replay of its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub version: u32,
    /// The genesis hash of the ledger the events belong to.
    pub genesis: Hash32,
    /// Number of events (the log runs 1..=size).
    pub size: u64,
    /// Merkle root of the log tree at `size`.
    pub root: Hash32,
    /// Hash-chain link of event `size`.
    pub head_chain: Hash32,
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, LedgerNode>,
}

/// Writes that turn the live store into the snapshot's state, checked and not yet committed.
pub struct Staged {
    pub header: Header,
    /// The head of the live store the writes were computed on: valid only while it still is.
    pub base: Head,
    /// The snapshot's trailing BLAKE3 (names its content).
    pub digest: [u8; 32],
    pub writes: Writes,
}

/// Reads the current header of the live store (call under the apply lock, so it is one state).
pub fn current_header(
    store: &SledStore,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, LedgerNode>,
) -> Result<Header, String> {
    let head = records::read_head(store).map_err(|e| e.0)?;
    let root = records::tree_root(store, head.size).map_err(|e| e.0)?;
    Ok(Header {
        version: SNAPSHOT_VERSION,
        genesis: own_genesis(store)?,
        size: head.size,
        root,
        head_chain: head.chain,
        last_applied,
        membership,
    })
}

fn own_genesis(store: &SledStore) -> Result<Hash32, String> {
    let bytes = store
        .get(keys::GENESIS)
        .map_err(|e| e.0)?
        .ok_or("this node's store has no genesis hash")?;
    Ok(Hash32(bytes.as_slice().try_into().map_err(|_| {
        "this node's genesis hash is not 32 bytes".to_string()
    })?))
}

/// Hashes everything that passes through, for the trailer.
struct Hashing<T> {
    inner: T,
    hasher: blake3::Hasher,
    /// Bytes read so far (a reader refuses to go past [`MAX_SNAPSHOT_BYTES`]).
    count: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        // Building is not bounded: failing to build would stop the leader's Raft; a snapshot
        // past the bound is refused by its receivers instead, with a message naming it.
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the snapshot of `header` to `out`: the records 1..=header.size are read page by page
/// (they never change once appended, so no lock is needed while streaming them).
pub fn write(store: &SledStore, header: &Header, out: impl Write) -> Result<[u8; 32], String> {
    let io = |e: std::io::Error| format!("writing the snapshot: {e}");
    let mut w = Hashing {
        inner: std::io::BufWriter::new(out),
        hasher: blake3::Hasher::new(),
        count: 0,
    };
    let head = serde_json::to_vec(header).map_err(|e| e.to_string())?;
    w.write_all(SNAPSHOT_MAGIC).map_err(io)?;
    w.write_all(&(head.len() as u32).to_be_bytes())
        .map_err(io)?;
    w.write_all(&head).map_err(io)?;
    let mut after: Option<Vec<u8>> = None;
    let mut next = 1u64;
    while next <= header.size {
        let page = store
            .scan(&[keys::EVENT], after.as_deref(), BUILD_PAGE)
            .map_err(|e| e.to_string())?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (_, v) in page.iter().take((header.size + 1 - next) as usize) {
            let rec = StoredRecord::decode(v).map_err(|e| e.0)?;
            if rec.index != next {
                return Err(format!(
                    "the store's log skips from {next} to {}",
                    rec.index
                ));
            }
            let env = rec.envelope.to_pb().encode_to_vec();
            w.write_all(&rec.index.to_be_bytes()).map_err(io)?;
            w.write_all(&rec.stamp.unix_seconds().to_be_bytes())
                .map_err(io)?;
            w.write_all(&rec.stamp.nanos().to_be_bytes()).map_err(io)?;
            w.write_all(&(env.len() as u32).to_be_bytes()).map_err(io)?;
            w.write_all(&env).map_err(io)?;
            next += 1;
        }
    }
    if next != header.size + 1 {
        return Err(format!(
            "the store holds {} events, the head says {}",
            next - 1,
            header.size
        ));
    }
    let digest = *w.hasher.finalize().as_bytes();
    w.inner.write_all(&digest).map_err(io)?;
    w.inner.flush().map_err(io)?;
    Ok(digest)
}

/// One event as a snapshot carries it.
struct Record {
    index: u64,
    stamp: Instant,
    envelope: Vec<u8>,
}

/// Reads a snapshot, every field bounded, hashing as it goes.
struct Reader<R> {
    inner: Hashing<R>,
}

impl<R: Read> Reader<R> {
    fn take(&mut self, buf: &mut [u8]) -> Result<(), String> {
        let r = &mut self.inner;
        r.inner
            .read_exact(buf)
            .map_err(|e| format!("the snapshot is truncated or unreadable: {e}"))?;
        r.hasher.update(buf);
        r.count += buf.len() as u64;
        if r.count > MAX_SNAPSHOT_BYTES {
            return Err(format!(
                "the snapshot exceeds MAX_SNAPSHOT_BYTES ({MAX_SNAPSHOT_BYTES} bytes)"
            ));
        }
        Ok(())
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        self.take(&mut b)?;
        Ok(b)
    }
    fn bytes(&mut self, len: usize) -> Result<Vec<u8>, String> {
        let mut b = vec![0u8; len];
        self.take(&mut b)?;
        Ok(b)
    }

    fn header(&mut self) -> Result<Header, String> {
        let magic = self.bytes(SNAPSHOT_MAGIC.len())?;
        if magic != SNAPSHOT_MAGIC {
            return Err("not a ledger snapshot of format version 2 (bad magic)".into());
        }
        let len = u32::from_be_bytes(self.array()?);
        if len > MAX_SNAPSHOT_HEADER_BYTES {
            return Err(format!(
                "snapshot header of {len} bytes exceeds {MAX_SNAPSHOT_HEADER_BYTES}"
            ));
        }
        let header: Header = serde_json::from_slice(&self.bytes(len as usize)?)
            .map_err(|e| format!("malformed snapshot header: {e}"))?;
        if header.version != SNAPSHOT_VERSION {
            return Err(format!(
                "snapshot header version {} (this node reads {SNAPSHOT_VERSION})",
                header.version
            ));
        }
        Ok(header)
    }

    fn record(&mut self, expected: u64) -> Result<Record, String> {
        let index = u64::from_be_bytes(self.array()?);
        if index != expected {
            return Err(format!(
                "snapshot record {index} where event {expected} was expected (out of order)"
            ));
        }
        let secs = i64::from_be_bytes(self.array()?);
        let nanos = u32::from_be_bytes(self.array()?);
        let stamp = Instant::from_unix_utc(secs, nanos)
            .map_err(|e| format!("event {index}: stamp out of range: {e}"))?;
        let len = u32::from_be_bytes(self.array()?) as usize;
        if len > MAX_ENVELOPE_BYTES {
            return Err(format!(
                "event {index}: envelope of {len} bytes exceeds {MAX_ENVELOPE_BYTES}"
            ));
        }
        Ok(Record {
            index,
            stamp,
            envelope: self.bytes(len)?,
        })
    }

    /// Checks the trailer and that nothing follows it.
    fn finish(mut self) -> Result<[u8; 32], String> {
        let digest = *self.inner.hasher.finalize().as_bytes();
        let mut trailer = [0u8; 32];
        self.inner
            .inner
            .read_exact(&mut trailer)
            .map_err(|e| format!("the snapshot is truncated (no checksum): {e}"))?;
        if trailer != digest {
            return Err("the snapshot fails its checksum (damaged in transit or forged)".into());
        }
        let mut extra = [0u8; 1];
        match self.inner.inner.read(&mut extra) {
            Ok(0) => Ok(digest),
            Ok(_) => Err("bytes follow the snapshot's checksum".into()),
            Err(e) => Err(format!("reading the snapshot: {e}")),
        }
    }
}

/// Checks a snapshot completely against the live store and stages the writes that would make
/// the store its state. Nothing is written; the caller commits `Staged::writes` atomically while
/// the store's head is still `Staged::base`. Call with applies excluded (the apply lock).
pub fn stage(store: &SledStore, input: impl Read) -> Result<Staged, String> {
    let mut r = Reader {
        inner: Hashing {
            inner: std::io::BufReader::new(input),
            hasher: blake3::Hasher::new(),
            count: 0,
        },
    };
    let header = r.header()?;
    let genesis = own_genesis(store)?;
    if header.genesis != genesis {
        return Err(format!(
            "the snapshot is of another ledger (genesis {}, this node's {})",
            hex::encode(header.genesis.0),
            hex::encode(genesis.0)
        ));
    }
    let base = records::read_head(store).map_err(|e| e.0)?;
    if header.size < base.size {
        return Err(format!(
            "the snapshot holds {} events but this node already holds {}: a snapshot may not drop events",
            header.size, base.size
        ));
    }
    let mut replay = Replay {
        store,
        ledger: records::read_ledger_id(store).map_err(|e| e.0)?,
        pending: Writes::new(),
        group: Vec::new(),
        stamp: None,
    };
    for index in 1..=header.size {
        let rec = r.record(index)?;
        if index <= base.size {
            same_as_own(store, &rec)?;
        } else {
            replay.push(rec)?;
        }
    }
    replay.flush()?;
    let digest = r.finish()?;
    let mut writes = replay.pending;
    compare_claims(store, &writes, &header)?;
    let json = |e: serde_json::Error| e.to_string();
    let applied = serde_json::to_vec(&header.last_applied).map_err(json)?;
    let membership = serde_json::to_vec(&header.membership).map_err(json)?;
    writes.insert(APPLIED_KEY.to_vec(), Some(applied));
    writes.insert(MEMBERSHIP_KEY.to_vec(), Some(membership));
    Ok(Staged {
        header,
        base,
        digest,
        writes,
    })
}

/// An event the node already holds must be the node's own, byte for byte (a snapshot never
/// rewrites the log).
fn same_as_own(store: &SledStore, rec: &Record) -> Result<(), String> {
    let own = store
        .get(&keys::event(rec.index))
        .map_err(|e| e.0)?
        .ok_or_else(|| format!("this node's event {} is missing", rec.index))?;
    let own = StoredRecord::decode(&own).map_err(|e| e.0)?;
    if own.stamp != rec.stamp || own.envelope.to_pb().encode_to_vec() != rec.envelope {
        return Err(format!(
            "the snapshot's event {} differs from this node's: a snapshot may not rewrite the log",
            rec.index
        ));
    }
    Ok(())
}

/// The events a node lacks, replayed with `apply_entry` in groups of one stamp.
struct Replay<'a> {
    store: &'a SledStore,
    ledger: LedgerId,
    pending: Writes,
    group: Vec<(u64, VerifiedEvent)>,
    stamp: Option<Instant>,
}

impl Replay<'_> {
    fn push(&mut self, rec: Record) -> Result<(), String> {
        if self.stamp != Some(rec.stamp) || self.group.len() >= REPLAY_GROUP {
            self.flush()?;
            self.stamp = Some(rec.stamp);
        }
        let opened = pb::Envelope::decode(rec.envelope.as_slice())
            .map_err(|e| ledger_core::refusal::Refusal::Malformed(format!("envelope: {e}")))
            .and_then(|env| Envelope::from_pb(env)?.open(&self.ledger))
            .map_err(|refusal| format!("event {}: {refusal}", rec.index))?;
        self.group.push((rec.index, opened));
        Ok(())
    }

    /// Applies the group exactly as a committed entry: each event must be appended anew at its
    /// own index (a refusal or a duplicate means the log is not one this ledger could have).
    fn flush(&mut self) -> Result<(), String> {
        let Some(stamp) = self.stamp else {
            return Ok(());
        };
        let group = std::mem::take(&mut self.group);
        let events: Vec<VerifiedEvent> = group.iter().map(|(_, e)| e.clone()).collect();
        let view = Layered {
            base: self.store,
            pending: &self.pending,
        };
        let applied = state::apply_entry(&view, stamp, &events).map_err(|e| e.0)?;
        for ((index, _), outcome) in group.iter().zip(&applied.outcomes) {
            match outcome {
                Outcome::Appended(r) if !r.duplicate && r.index == *index => {}
                Outcome::Appended(r) => {
                    return Err(format!(
                        "event {index} replays as event {} (duplicate: {}): the snapshot's log is not one this ledger could have",
                        r.index, r.duplicate
                    ))
                }
                Outcome::Refused(why) => {
                    return Err(format!("event {index} is refused on replay: {why}"))
                }
            }
        }
        self.pending.extend(applied.writes);
        Ok(())
    }
}

/// The replayed head and root must be what the snapshot claims.
fn compare_claims(store: &SledStore, writes: &Writes, header: &Header) -> Result<(), String> {
    let view = Layered {
        base: store,
        pending: writes,
    };
    let head = records::read_head(&view).map_err(|e| e.0)?;
    if head.size != header.size || head.chain != header.head_chain {
        return Err(format!(
            "the snapshot claims {} events with head link {}, its events give {} with {}",
            header.size,
            hex::encode(header.head_chain.0),
            head.size,
            hex::encode(head.chain.0)
        ));
    }
    let root = records::tree_root(&view, head.size).map_err(|e| e.0)?;
    if root != header.root {
        return Err(format!(
            "the snapshot claims Merkle root {}, its events give {}",
            hex::encode(header.root.0),
            hex::encode(root.0)
        ));
    }
    Ok(())
}

/// Reads only the header (to name a stored snapshot file).
pub fn read_header(input: impl Read) -> Result<Header, String> {
    Reader {
        inner: Hashing {
            inner: input,
            hasher: blake3::Hasher::new(),
            count: 0,
        },
    }
    .header()
}
