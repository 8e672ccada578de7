//! The deterministic state machine: applies one committed entry (a stamp and the verified events
//! it orders) to the ledger state and says, per event, receipt or refusal. It reads state through
//! [`StateRead`] and returns the writes as one batch; it never touches a clock, randomness or a
//! disk. The same state and entry give the same outcomes and byte-identical writes on every node.
//!
//! The key layout below is the on-disk format of the ledger state; it is versioned with the store.

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::authority::{Act, Authority};
use crate::envelope::{Envelope, VerifiedEvent};
use crate::event::*;
use crate::genesis::Genesis;
use crate::ids::WorkerId;
use crate::jurisdiction::Jurisdiction;
use crate::refusal::Refusal;
use crate::time::Instant;
use crate::validate;
use crate::wire;

/// A read failure of the underlying store. Fatal for apply: a node that cannot read its state
/// must stop rather than decide differently from its peers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store fault: {0}")]
pub struct StoreFault(pub String);

/// Reads of the ledger state: point reads, and prefix scans for the projection.
pub trait StateRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreFault>;
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A prefix scan of `base` seen through `pending` writes (later writes win, `None` deletes).
pub fn scan_through(
    base: Vec<(Vec<u8>, Vec<u8>)>,
    pending: &Writes,
    prefix: &[u8],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = base.into_iter().collect();
    for (k, v) in pending
        .range(prefix.to_vec()..)
        .take_while(|(k, _)| k.starts_with(prefix))
    {
        match v {
            Some(v) => merged.insert(k.clone(), v.clone()),
            None => merged.remove(k),
        };
    }
    merged.into_iter().collect()
}

/// Writes of one entry: `None` deletes. Ordered, so applying them is deterministic.
pub type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Key layout of the ledger state (one keyspace, a prefix byte per table).
pub mod keys {
    use crate::event::{Hash32, PublicKeyBytes};

    /// `e` + index (u64 BE) → [`super::StoredRecord`]
    pub const EVENT: u8 = b'e';
    /// `i` + event id → index (u64 BE)
    pub const EVENT_ID: u8 = b'i';
    /// `w` + worker + 0x00 + index (u64 BE) → [`crate::projection::WorkerEntry`]: the worker's line
    /// positions in the event and the facts it gives (the projection)
    pub const WORKER: u8 = b'w';
    /// `k` + public key → [`super::KeyRecord`] (JSON)
    pub const KEY: u8 = b'k';
    /// `p` + worker → [`super::PersonRecord`] (JSON)
    pub const PERSON: u8 = b'p';
    /// `d` + employer, worker, jurisdiction, period, scheme (0x00-separated) → index
    pub const DECLARATION: u8 = b'd';
    /// `f` + worker, jurisdiction, period, scheme → index (flexible contributions)
    pub const FLEXIBLE: u8 = b'f';
    /// `c` + contract → [`super::ContractRecord`] (JSON)
    pub const CONTRACT: u8 = b'c';
    /// `t` + transfer → [`super::TransferRecord`] (JSON)
    pub const TRANSFER: u8 = b't';
    /// `v` + event id [+ line (u32 BE)] → index of the voiding correction
    pub const VOIDED: u8 = b'v';
    /// `m` + name → metadata
    pub const META: u8 = b'm';
    /// `r` + content key ([`super::content_key`]) → index of the event that recorded that
    /// content (retry-safe submission: the same content signed again gets this event's receipt)
    pub const CONTENT: u8 = b'r';
    /// `n` + nonce → index of the ledger act that used it (a nonce serves one act only)
    pub const ACT_NONCE: u8 = b'n';

    pub fn event(index: u64) -> Vec<u8> {
        let mut k = vec![EVENT];
        k.extend_from_slice(&index.to_be_bytes());
        k
    }
    pub fn event_id(id: &Hash32) -> Vec<u8> {
        let mut k = vec![EVENT_ID];
        k.extend_from_slice(&id.0);
        k
    }
    pub fn worker_prefix(worker: &str) -> Vec<u8> {
        let mut k = vec![WORKER];
        k.extend_from_slice(worker.as_bytes());
        k.push(0);
        k
    }
    pub fn worker(worker: &str, index: u64) -> Vec<u8> {
        let mut k = worker_prefix(worker);
        k.extend_from_slice(&index.to_be_bytes());
        k
    }
    pub fn key(pk: &PublicKeyBytes) -> Vec<u8> {
        let mut k = vec![KEY];
        k.extend_from_slice(&pk.0);
        k
    }
    pub fn joined(prefix: u8, parts: &[&str]) -> Vec<u8> {
        let mut k = vec![prefix];
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                k.push(0);
            }
            k.extend_from_slice(p.as_bytes());
        }
        k
    }
    pub fn voided(id: &Hash32, line: Option<u32>) -> Vec<u8> {
        let mut k = vec![VOIDED];
        k.extend_from_slice(&id.0);
        if let Some(l) = line {
            k.extend_from_slice(&l.to_be_bytes());
        }
        k
    }
    pub fn content(key: &Hash32) -> Vec<u8> {
        let mut k = vec![CONTENT];
        k.extend_from_slice(&key.0);
        k
    }
    pub fn act_nonce(nonce: &str) -> Vec<u8> {
        let mut k = vec![ACT_NONCE];
        k.extend_from_slice(nonce.as_bytes());
        k
    }
    /// [`crate::authority::Authority`] (JSON), from the genesis.
    pub const AUTHORITY: &[u8] = b"mauthority";
    pub const HEAD: &[u8] = b"mhead";
    pub const GENESIS: &[u8] = b"mgenesis";
}

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
    pub start: crate::time::Date,
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

/// What happened to one submitted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Appended(Receipt),
    Refused(Refusal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub event_id: Hash32,
    pub index: u64,
    pub appended_at: Instant,
    /// The event was already recorded: the same event id, or the same content signed again by
    /// the same signers ([`content_key`]). This is the committed event's receipt (its id, which
    /// may differ from the submitted one, its index and its stamp); nothing was appended.
    pub duplicate: bool,
}

/// The result of applying one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub outcomes: Vec<Outcome>,
    pub writes: Writes,
    pub head: Head,
}

/// The writes that create a ledger from its genesis: agency keys, the genesis hash, an empty head.
pub fn genesis_writes(genesis: &Genesis) -> Writes {
    let mut w = Writes::new();
    for j in &genesis.jurisdictions {
        for k in &j.agency_keys {
            let rec = KeyRecord {
                role: Role::Agency,
                jurisdiction: j.code.clone(),
                subject: j.code.to_string(),
                registered_at: 0,
                revoked_at: None,
            };
            w.insert(
                keys::key(k),
                Some(serde_json::to_vec(&rec).expect("serializes")),
            );
        }
    }
    w.insert(keys::GENESIS.to_vec(), Some(genesis.hash().0.to_vec()));
    w.insert(
        keys::AUTHORITY.to_vec(),
        Some(serde_json::to_vec(&Authority::of(genesis)).expect("serializes")),
    );
    w.insert(
        crate::projection::keys::RULEBOOK.to_vec(),
        Some(crate::rulebook::Rulebook::builtin().to_bytes()),
    );
    w.insert(
        crate::projection::keys::VERSION.to_vec(),
        Some(crate::projection::PROJECTION_VERSION.to_be_bytes().to_vec()),
    );
    w.insert(keys::HEAD.to_vec(), Some(Head::default().encode()));
    w
}

/// Reads through the entry's own pending writes, so later events see earlier ones.
struct Overlay<'a> {
    base: &'a dyn StateRead,
    writes: Writes,
}

impl Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }
    fn get_json<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreFault> {
        get_json(self, key)
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }
    fn put_json<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.put(
            key,
            serde_json::to_vec(value).expect("state records serialize"),
        );
    }
    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }
    fn index_of(&self, id: &Hash32) -> Result<Option<u64>, StoreFault> {
        Ok(self
            .get(&keys::event_id(id))?
            .map(|b| u64::from_be_bytes(b.as_slice().try_into().unwrap_or([0; 8]))))
    }
    fn record(&self, index: u64) -> Result<StoredRecord, StoreFault> {
        let b = self
            .get(&keys::event(index))?
            .ok_or_else(|| StoreFault(format!("event {index} missing")))?;
        StoredRecord::decode(&b)
    }
}

impl StateRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault> {
        Overlay::get(self, key)
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreFault> {
        Ok(scan_through(
            self.base.scan_prefix(prefix)?,
            &self.writes,
            prefix,
        ))
    }
}

fn get_json<T: DeserializeOwned>(
    view: &dyn StateRead,
    key: &[u8],
) -> Result<Option<T>, StoreFault> {
    view.get(key)?
        .map(|b| serde_json::from_slice(&b).map_err(|e| StoreFault(format!("state record: {e}"))))
        .transpose()
}

/// The registration record of a contract.
pub fn contract_record(
    view: &dyn StateRead,
    contract: &str,
) -> Result<Option<ContractRecord>, StoreFault> {
    get_json(view, &contract_key(contract))
}

/// The record of a transfer.
pub fn transfer_record(
    view: &dyn StateRead,
    transfer: &str,
) -> Result<Option<TransferRecord>, StoreFault> {
    get_json(view, &transfer_key(transfer))
}

/// The ledger's authority: written at genesis; for a store created before it was, derived the
/// same way from the genesis agency keys (registered at index 0), so every node agrees.
pub fn authority(view: &dyn StateRead) -> Result<Authority, StoreFault> {
    if let Some(a) = get_json::<Authority>(view, keys::AUTHORITY)? {
        return Ok(a);
    }
    let mut jurisdictions = std::collections::BTreeSet::new();
    for (_, v) in view.scan_prefix(&[keys::KEY])? {
        let rec: KeyRecord =
            serde_json::from_slice(&v).map_err(|e| StoreFault(format!("key record: {e}")))?;
        if rec.role == Role::Agency && rec.registered_at == 0 {
            jurisdictions.insert(rec.jurisdiction);
        }
    }
    Ok(Authority {
        quorum: jurisdictions.len() / 2 + 1,
        jurisdictions,
    })
}

/// Reads the head of a ledger state.
pub fn read_head(view: &dyn StateRead) -> Result<Head, StoreFault> {
    let b = view.get(keys::HEAD)?.ok_or_else(|| {
        StoreFault("no head: the store was not initialised from a genesis".into())
    })?;
    Head::decode(&b)
}

/// The ledger a state belongs to (its genesis hash): what every event of it is signed for.
pub fn read_ledger_id(view: &dyn StateRead) -> Result<crate::envelope::LedgerId, StoreFault> {
    let b = view.get(keys::GENESIS)?.ok_or_else(|| {
        StoreFault("no genesis hash: the store was not initialised from a genesis".into())
    })?;
    Hash32::from_slice(&b)
        .map(crate::envelope::LedgerId)
        .map_err(|e| StoreFault(format!("genesis hash: {e}")))
}

/// Applies one entry. `events` have passed [`Envelope::open`]; everything that depends on the
/// ledger state or the stamp is decided here, identically on every node.
pub fn apply_entry(
    view: &dyn StateRead,
    stamp: Instant,
    events: &[VerifiedEvent],
) -> Result<Applied, StoreFault> {
    let mut head = read_head(view)?;
    let mut st = Overlay {
        base: view,
        writes: Writes::new(),
    };
    let mut outcomes = Vec::with_capacity(events.len());
    for ev in events {
        if let Some(index) = st.index_of(&ev.id)? {
            let original = st.record(index)?;
            outcomes.push(Outcome::Appended(Receipt {
                event_id: ev.id,
                index,
                appended_at: original.stamp,
                duplicate: true,
            }));
            continue;
        }
        let content = content_key(ev);
        if let Some(original) = recorded_content(&st, &content)? {
            outcomes.push(Outcome::Appended(Receipt {
                event_id: original.event_id,
                index: original.index,
                appended_at: original.stamp,
                duplicate: true,
            }));
            continue;
        }
        let index = head.size + 1;
        match admit(&mut st, ev, index, stamp)? {
            Err(refusal) => outcomes.push(Outcome::Refused(refusal)),
            Ok(()) => {
                let chain = chain_next(&head.chain, index, &ev.id, stamp);
                let rec = StoredRecord {
                    index,
                    stamp,
                    event_id: ev.id,
                    chain,
                    envelope: ev.envelope.clone(),
                };
                let projected = project_event(&st, index, &ev.body.kind)?;
                st.put(keys::event(index), rec.encode());
                st.put(keys::event_id(&ev.id), index.to_be_bytes().to_vec());
                st.put(keys::content(&content), index.to_be_bytes().to_vec());
                st.writes.extend(projected);
                crate::log_tree::append(
                    st.base,
                    &mut st.writes,
                    index - 1,
                    crate::log_tree::event_leaf(&ev.id, stamp),
                )?;
                head = Head { size: index, chain };
                outcomes.push(Outcome::Appended(Receipt {
                    event_id: ev.id,
                    index,
                    appended_at: stamp,
                    duplicate: false,
                }));
            }
        }
    }
    st.put(keys::HEAD.to_vec(), head.encode());
    Ok(Applied {
        outcomes,
        writes: st.writes,
        head,
    })
}

/// Domain of [`content_key`], so a content key never equals an event id or another hash.
const CONTENT_DOMAIN: &[u8] = b"portable-contribution-ledger/content/v1\n";

/// What makes two signed events "the same submission": the body without `signed_at` and with
/// every line salt zeroed (so `lines_root` is recomputed over salt-free lines), and the set of
/// signer keys. A client that lost the answer to a submission signs the event again with a new
/// `signed_at` and new salts, hence a new event id; the content key still matches.
pub fn content_key(ev: &VerifiedEvent) -> Hash32 {
    let body = EventBody {
        signed_at: Instant::from_unix_utc(0, 0).expect("the epoch is a valid instant"),
        kind: without_salts(&ev.body.kind),
    };
    let encoded = wire::encode_body(&body);
    let signers: std::collections::BTreeSet<[u8; 32]> = ev
        .envelope
        .signatures
        .iter()
        .map(|s| s.public_key.0)
        .collect();
    let mut h = blake3::Hasher::new();
    h.update(CONTENT_DOMAIN);
    h.update(&(encoded.body.len() as u64).to_be_bytes());
    h.update(&encoded.body);
    for pk in &signers {
        h.update(pk);
    }
    Hash32(*h.finalize().as_bytes())
}

/// The event kind with every batch line's salt (and any replacement line's) set to zero.
fn without_salts(kind: &EventKind) -> EventKind {
    let mut kind = kind.clone();
    match &mut kind {
        EventKind::ContributionsDeclared(d) => {
            d.lines.iter_mut().for_each(|l| l.salt = Salt::default())
        }
        EventKind::PlatformOrders(o) => o.lines.iter_mut().for_each(|l| l.salt = Salt::default()),
        EventKind::Correction(c) => match &mut c.replacement {
            Some(Replacement::Line(Line::Contribution(l))) => l.salt = Salt::default(),
            Some(Replacement::Line(Line::Order(l))) => l.salt = Salt::default(),
            Some(Replacement::Event(e)) => **e = without_salts(e),
            None => {}
        },
        _ => {}
    }
    kind
}

/// The committed event that recorded this content, if it still stands: a correction that voided
/// it (wholly or any line) frees the content, so the same declaration can be made again after a
/// void, and is then decided like any new event.
fn recorded_content(
    st: &Overlay<'_>,
    content: &Hash32,
) -> Result<Option<StoredRecord>, StoreFault> {
    let Some(b) = st.get(&keys::content(content))? else {
        return Ok(None);
    };
    let index = u64::from_be_bytes(
        b.as_slice()
            .try_into()
            .map_err(|_| StoreFault("content index entry is not 8 bytes".into()))?,
    );
    let rec = st.record(index)?;
    let mut voids = vec![keys::VOIDED];
    voids.extend_from_slice(&rec.event_id.0);
    if !st.scan_prefix(&voids)?.is_empty() {
        return Ok(None);
    }
    Ok(Some(rec))
}

/// The projection writes of an admitted event (the state machine and a rebuild share this).
pub fn project_event(
    view: &dyn StateRead,
    index: u64,
    kind: &EventKind,
) -> Result<Writes, StoreFault> {
    let target = match kind {
        EventKind::Correction(c) => {
            let t_index = view
                .get(&keys::event_id(&c.target))?
                .map(|b| u64::from_be_bytes(b.as_slice().try_into().unwrap_or([0; 8])))
                .ok_or_else(|| StoreFault(format!("correction target {} is missing", c.target)))?;
            let b = view
                .get(&keys::event(t_index))?
                .ok_or_else(|| StoreFault(format!("event {t_index} missing")))?;
            let rec = StoredRecord::decode(&b)?;
            let body =
                wire::decode_event(&rec.envelope.body, &rec.envelope.lines).map_err(|e| {
                    StoreFault(format!("stored event {t_index} no longer decodes: {e}"))
                })?;
            Some((t_index, body.kind))
        }
        _ => None,
    };
    crate::projection::project(view, index, kind, target.as_ref().map(|(i, k)| (*i, k)))
}

macro_rules! refuse_if {
    ($r:expr) => {
        if let Err(refusal) = $r {
            return Ok(Err(refusal));
        }
    };
}

/// Decides one event: `Ok(Err(refusal))` refuses it with nothing written for it.
fn admit(
    st: &mut Overlay<'_>,
    ev: &VerifiedEvent,
    index: u64,
    stamp: Instant,
) -> Result<Result<(), Refusal>, StoreFault> {
    if let Err(r) = validate::check_body(&ev.body, stamp) {
        return Ok(Err(r));
    }
    let signers = match signer_records(st, ev)? {
        Ok(signers) => signers,
        Err(refusal) => return Ok(Err(refusal)),
    };
    refuse_if!(authorize(&ev.body.kind, &signers));
    let staged = st.writes.len();
    let result = effects(st, &ev.body.kind, &signers, index, stamp)?;
    // A refused event leaves no trace: `effects` decides every refusal before its first write.
    // (Counting staged keys catches a new key written before a refusal; tests cover the rest.)
    debug_assert!(
        result.is_ok() || st.writes.len() == staged,
        "a refusal after a write"
    );
    Ok(result)
}

/// The signers of an event with their key records, as the state knows them.
pub type Signers = Vec<(PublicKeyBytes, KeyRecord)>;

/// Looks up every signer's key: refuses an unknown or revoked one. Apply calls it for every
/// event, and a node's edge calls it (through [`precheck`]) before an event reaches consensus.
pub fn signer_records(
    view: &dyn StateRead,
    ev: &VerifiedEvent,
) -> Result<Result<Signers, Refusal>, StoreFault> {
    let mut signers = Vec::with_capacity(ev.envelope.signatures.len());
    for s in &ev.envelope.signatures {
        let Some(rec) = get_json::<KeyRecord>(view, &keys::key(&s.public_key))? else {
            return Ok(Err(Refusal::UnknownKey(s.public_key.to_hex())));
        };
        if rec.revoked_at.is_some() {
            return Ok(Err(Refusal::RevokedKey(s.public_key.to_hex())));
        }
        signers.push((s.public_key, rec));
    }
    Ok(Ok(signers))
}

/// What apply refuses from the signers' keys alone, before any other state is read: unknown or
/// revoked keys ([`signer_records`]), then the role and jurisdiction the kind requires
/// ([`authorize`]). The edge of a node calls it to refuse such events before consensus; apply
/// decides them again with the same functions, since the state may change in between.
pub fn precheck(
    view: &dyn StateRead,
    ev: &VerifiedEvent,
) -> Result<Result<(), Refusal>, StoreFault> {
    let signers = match signer_records(view, ev)? {
        Ok(s) => s,
        Err(r) => return Ok(Err(r)),
    };
    if let Err(r) = authorize(&ev.body.kind, &signers) {
        return Ok(Err(r));
    }
    match &ev.body.kind {
        EventKind::LedgerAct(a) => Ok(authority(view)?.permits(&a.act, &signers)),
        _ => Ok(Ok(())),
    }
}

/// The role and jurisdiction checks that depend only on the event and its signers' key records.
/// Kinds whose check needs another record (the revoked key, the ended contract, the completed
/// transfer, the corrected event) are checked in `effects` once that record is read.
pub fn authorize(kind: &EventKind, signers: &[(PublicKeyBytes, KeyRecord)]) -> Result<(), Refusal> {
    match kind {
        EventKind::KeyRegistered(e) => need_agency(signers, &e.jurisdiction, "key_registered"),
        EventKind::PersonRegistered(e) => {
            need_agency(signers, &e.jurisdiction, "person_registered")
        }
        // Any agency may record a hukou move (like person_registered): the hukou authority
        // is outside the insurance agencies, which only relay it.
        EventKind::HukouChanged(_) => need_any_agency(signers, "hukou_changed"),
        EventKind::ContractRegistered(e) => authorize_contract(e, signers),
        EventKind::ContributionsDeclared(e) => signers.iter().try_for_each(|(pk, rec)| {
            check_employer(
                pk,
                rec,
                e.employer.as_str(),
                &e.jurisdiction,
                false,
                "contributions_declared",
            )
        }),
        EventKind::FlexibleContribution(e) => authorize_flexible(e, signers),
        EventKind::PlatformOrders(e) => signers.iter().try_for_each(|(pk, rec)| {
            check_employer(
                pk,
                rec,
                e.platform.as_str(),
                &e.jurisdiction,
                true,
                "platform_orders",
            )
        }),
        EventKind::InjuryOccurred(e) => need_agency(signers, &e.jurisdiction, "injury_occurred"),
        EventKind::CoverageCertificateIssued(e) => need_agency(
            signers,
            &e.sending,
            "coverage_certificate_issued (by the agency of `sending`)",
        ),
        EventKind::WorkPermitLinked(e) => {
            need_agency(signers, &e.jurisdiction, "work_permit_linked")
        }
        EventKind::TransferRequested(e) => need_agency(
            signers,
            &e.to,
            "transfer_requested (by the agency of the receiving province `to`)",
        ),
        EventKind::ForeignPeriodsReported(e) => need_agency(
            signers,
            &e.country,
            "foreign_periods_reported (by the agency of `country`)",
        ),
        EventKind::ParametersPublished(e) => {
            need_agency(signers, &e.jurisdiction, "parameters_published")
        }
        // A ledger act needs the authority record: decided by `precheck` and in `effects`.
        EventKind::KeyRevoked(_)
        | EventKind::ContractEnded(_)
        | EventKind::TransferCompleted(_)
        | EventKind::Correction(_)
        | EventKind::LedgerAct(_) => Ok(()),
    }
}

fn need_any_agency(signers: &[(PublicKeyBytes, KeyRecord)], what: &str) -> Result<(), Refusal> {
    for (pk, rec) in signers {
        if rec.role != Role::Agency {
            return Err(Refusal::WrongRole(format!(
                "{what} must be signed by an agency key; key {}… is a {:?} key",
                short(pk),
                rec.role
            )));
        }
    }
    Ok(())
}

fn authorize_contract(
    e: &ContractRegistered,
    signers: &[(PublicKeyBytes, KeyRecord)],
) -> Result<(), Refusal> {
    let mut employer_signed = false;
    for (pk, rec) in signers {
        if rec.role == Role::Worker {
            if rec.subject != e.worker.as_str() {
                return Err(Refusal::WrongSubject(format!(
                    "worker key {}… belongs to {}, not to the contract's worker {}",
                    short(pk),
                    rec.subject,
                    e.worker
                )));
            }
            continue;
        }
        check_employer(
            pk,
            rec,
            e.employer.as_str(),
            &e.jurisdiction,
            false,
            "contract_registered",
        )?;
        employer_signed = true;
    }
    if !employer_signed {
        return Err(Refusal::WrongRole(
            "contract_registered needs the employer's or platform's signature".into(),
        ));
    }
    Ok(())
}

fn authorize_flexible(
    e: &FlexibleContribution,
    signers: &[(PublicKeyBytes, KeyRecord)],
) -> Result<(), Refusal> {
    for (pk, rec) in signers {
        match rec.role {
            Role::Agency => need_agency(
                &[(*pk, rec.clone())],
                &e.jurisdiction,
                "flexible_contribution",
            )?,
            Role::Worker => {
                if rec.subject != e.worker.as_str() {
                    return Err(Refusal::WrongSubject(format!(
                        "worker key {}… belongs to {}, not to {}",
                        short(pk),
                        rec.subject,
                        e.worker
                    )));
                }
                if rec.jurisdiction != e.jurisdiction {
                    return Err(Refusal::WrongJurisdiction(format!(
                        "the contribution is for {}, but worker key {}… is registered in {}",
                        e.jurisdiction,
                        short(pk),
                        rec.jurisdiction
                    )));
                }
            }
            other => {
                return Err(Refusal::WrongRole(format!(
                    "flexible_contribution must be signed by the worker or an agency; key {}… is a {other:?} key",
                    short(pk)
                )))
            }
        }
    }
    Ok(())
}

fn short(pk: &PublicKeyBytes) -> String {
    pk.to_hex()[..16].to_string()
}

/// Requires every signer to be an agency of `j`.
fn need_agency(
    signers: &[(PublicKeyBytes, KeyRecord)],
    j: &Jurisdiction,
    what: &str,
) -> Result<(), Refusal> {
    for (pk, rec) in signers {
        if rec.role != Role::Agency {
            return Err(Refusal::WrongRole(format!(
                "{what} must be signed by an agency key; key {}… is a {:?} key",
                short(pk),
                rec.role
            )));
        }
        if &rec.jurisdiction != j {
            return Err(Refusal::WrongJurisdiction(format!(
                "{what} concerns {j}, but agency key {}… belongs to {}",
                short(pk),
                rec.jurisdiction
            )));
        }
    }
    Ok(())
}

/// Requires an employer (or platform) key of `employer` in `j`.
fn check_employer(
    pk: &PublicKeyBytes,
    rec: &KeyRecord,
    employer: &str,
    j: &Jurisdiction,
    platform_only: bool,
    what: &str,
) -> Result<(), Refusal> {
    let role_ok = match rec.role {
        Role::Platform => true,
        Role::Employer => !platform_only,
        _ => false,
    };
    if !role_ok {
        let need = if platform_only {
            "a platform key"
        } else {
            "an employer or platform key"
        };
        return Err(Refusal::WrongRole(format!(
            "{what} must be signed by {need}; key {}… is a {:?} key",
            short(pk),
            rec.role
        )));
    }
    if rec.subject != employer {
        return Err(Refusal::WrongSubject(format!(
            "key {}… is registered for {}, not for {employer}",
            short(pk),
            rec.subject
        )));
    }
    if &rec.jurisdiction != j {
        return Err(Refusal::WrongJurisdiction(format!(
            "{what} is for {j}, but key {}… is registered in {}",
            short(pk),
            rec.jurisdiction
        )));
    }
    Ok(())
}

fn need_person(st: &Overlay<'_>, worker: &WorkerId) -> Result<Result<(), Refusal>, StoreFault> {
    Ok(
        match st.get(&[&[keys::PERSON][..], worker.as_str().as_bytes()].concat())? {
            Some(_) => Ok(()),
            None => Err(Refusal::UnregisteredWorker(worker.to_string())),
        },
    )
}

fn person_key(worker: &str) -> Vec<u8> {
    [&[keys::PERSON][..], worker.as_bytes()].concat()
}
fn contract_key(c: &str) -> Vec<u8> {
    [&[keys::CONTRACT][..], c.as_bytes()].concat()
}
fn transfer_key(t: &str) -> Vec<u8> {
    [&[keys::TRANSFER][..], t.as_bytes()].concat()
}
fn declaration_key(
    employer: &str,
    worker: &str,
    j: &Jurisdiction,
    period: &str,
    scheme: Scheme,
) -> Vec<u8> {
    keys::joined(
        keys::DECLARATION,
        &[employer, worker, j.as_str(), period, scheme.as_str()],
    )
}

/// Frees the duplicate guard of a voided declaration line, if that declaration holds it (the
/// guard may belong to a later declaration of the month, made after an earlier void).
fn release_declaration(
    st: &mut Overlay<'_>,
    declaration: &ContributionsDeclared,
    line: &ContributionLine,
    voided_index: u64,
) -> Result<(), StoreFault> {
    let key = declaration_key(
        declaration.employer.as_str(),
        line.worker.as_str(),
        &declaration.jurisdiction,
        &declaration.period.to_string(),
        line.scheme,
    );
    if st.get(&key)?.as_deref() == Some(&voided_index.to_be_bytes()[..]) {
        st.delete(key);
    }
    Ok(())
}

/// The jurisdiction an event belongs to, for corrections by an agency.
fn event_jurisdiction(kind: &EventKind) -> Option<Jurisdiction> {
    Some(match kind {
        EventKind::KeyRegistered(e) => e.jurisdiction.clone(),
        EventKind::PersonRegistered(e) => e.jurisdiction.clone(),
        EventKind::HukouChanged(e) => e.hukou.clone(),
        EventKind::ContractRegistered(e) => e.jurisdiction.clone(),
        EventKind::ContributionsDeclared(e) => e.jurisdiction.clone(),
        EventKind::FlexibleContribution(e) => e.jurisdiction.clone(),
        EventKind::PlatformOrders(e) => e.jurisdiction.clone(),
        EventKind::InjuryOccurred(e) => e.jurisdiction.clone(),
        EventKind::CoverageCertificateIssued(e) => e.sending.clone(),
        EventKind::WorkPermitLinked(e) => e.jurisdiction.clone(),
        EventKind::TransferRequested(e) => e.to.clone(),
        EventKind::ForeignPeriodsReported(e) => e.country.clone(),
        EventKind::ParametersPublished(e) => e.jurisdiction.clone(),
        EventKind::KeyRevoked(_)
        | EventKind::ContractEnded(_)
        | EventKind::TransferCompleted(_)
        | EventKind::Correction(_)
        | EventKind::LedgerAct(_) => return None,
    })
}

/// The state checks of one kind (and the role checks that need a stored record; the others are
/// [`authorize`]'s, already passed), then its state writes. Every refusal is decided before the
/// first write.
fn effects(
    st: &mut Overlay<'_>,
    kind: &EventKind,
    signers: &[(PublicKeyBytes, KeyRecord)],
    index: u64,
    stamp: Instant,
) -> Result<Result<(), Refusal>, StoreFault> {
    match kind {
        EventKind::LedgerAct(a) => return ledger_act(st, a, signers, index),
        EventKind::KeyRegistered(e) => {
            if st.get(&keys::key(&e.public_key))?.is_some() {
                return Ok(Err(Refusal::AlreadyExists(format!(
                    "key {} is already registered",
                    e.public_key
                ))));
            }
            st.put_json(
                keys::key(&e.public_key),
                &KeyRecord {
                    role: e.role,
                    jurisdiction: e.jurisdiction.clone(),
                    subject: e.subject.to_string(),
                    registered_at: index,
                    revoked_at: None,
                },
            );
        }
        EventKind::KeyRevoked(e) => {
            let Some(mut rec) = st.get_json::<KeyRecord>(&keys::key(&e.public_key))? else {
                return Ok(Err(Refusal::NotFound(format!(
                    "key {} is not registered",
                    e.public_key
                ))));
            };
            refuse_if!(need_agency(signers, &rec.jurisdiction, "key_revoked"));
            if rec.revoked_at.is_some() {
                return Ok(Err(Refusal::AlreadyVoided(format!(
                    "key {} is already revoked",
                    e.public_key
                ))));
            }
            rec.revoked_at = Some(index);
            st.put_json(keys::key(&e.public_key), &rec);
        }
        EventKind::PersonRegistered(e) => {
            if st.get(&person_key(e.worker.as_str()))?.is_some() {
                return Ok(Err(Refusal::AlreadyExists(format!(
                    "person {} is already registered",
                    e.worker
                ))));
            }
            st.put_json(
                person_key(e.worker.as_str()),
                &PersonRecord {
                    index,
                    jurisdiction: e.jurisdiction.clone(),
                },
            );
        }
        EventKind::HukouChanged(e) => {
            refuse_if!(need_person(st, &e.worker)?);
        }
        EventKind::ContractRegistered(e) => {
            refuse_if!(need_person(st, &e.worker)?);
            if st.get(&contract_key(e.contract.as_str()))?.is_some() {
                return Ok(Err(Refusal::AlreadyExists(format!(
                    "contract {} is already registered",
                    e.contract
                ))));
            }
            st.put_json(
                contract_key(e.contract.as_str()),
                &ContractRecord {
                    index,
                    start: e.start,
                    employer: e.employer.to_string(),
                    worker: e.worker.to_string(),
                    jurisdiction: e.jurisdiction.clone(),
                    ended_at: None,
                },
            );
        }
        EventKind::ContractEnded(e) => {
            let Some(mut c) = st.get_json::<ContractRecord>(&contract_key(e.contract.as_str()))?
            else {
                return Ok(Err(Refusal::NotFound(format!(
                    "contract {} is not registered",
                    e.contract
                ))));
            };
            for (pk, rec) in signers {
                if rec.role == Role::Agency {
                    refuse_if!(need_agency(
                        &[(*pk, rec.clone())],
                        &c.jurisdiction,
                        "contract_ended"
                    ));
                } else {
                    refuse_if!(check_employer(
                        pk,
                        rec,
                        &c.employer,
                        &c.jurisdiction,
                        false,
                        "contract_ended"
                    ));
                }
            }
            if c.ended_at.is_some() {
                return Ok(Err(Refusal::AlreadyExists(format!(
                    "contract {} has already ended",
                    e.contract
                ))));
            }
            if e.end < c.start {
                return Ok(Err(Refusal::ImpossiblePeriod(format!(
                    "contract {} cannot end on {}, before it started on {}",
                    e.contract, e.end, c.start
                ))));
            }
            c.ended_at = Some(index);
            st.put_json(contract_key(e.contract.as_str()), &c);
        }
        EventKind::ContributionsDeclared(e) => {
            let period = e.period.to_string();
            let mut keys_to_write = Vec::with_capacity(e.lines.len());
            for (i, l) in e.lines.iter().enumerate() {
                if st.get(&person_key(l.worker.as_str()))?.is_none() {
                    return Ok(Err(Refusal::UnregisteredWorker(format!(
                        "{} (lines[{i}])",
                        l.worker
                    ))));
                }
                let k = declaration_key(
                    e.employer.as_str(),
                    l.worker.as_str(),
                    &e.jurisdiction,
                    &period,
                    l.scheme,
                );
                let guarded = st.get(&k)?.is_some();
                if !e.back_pay && guarded {
                    return Ok(Err(Refusal::DuplicateDeclaration(format!(
                        "lines[{i}]: {} already declared {} for worker {} in {} for {period}; \
                         use a correction to change it, or back_pay for a late payment",
                        e.employer,
                        l.scheme.as_str(),
                        l.worker,
                        e.jurisdiction
                    ))));
                }
                // The guard names the declaration that holds the month; a back-pay declaration
                // never takes it over, so voiding the back pay cannot free the original's month.
                if !guarded {
                    keys_to_write.push(k);
                }
            }
            for k in keys_to_write {
                st.put(k, index.to_be_bytes().to_vec());
            }
        }
        EventKind::FlexibleContribution(e) => {
            refuse_if!(need_person(st, &e.worker)?);
            let k = keys::joined(
                keys::FLEXIBLE,
                &[
                    e.worker.as_str(),
                    e.jurisdiction.as_str(),
                    &e.period.to_string(),
                    e.scheme.as_str(),
                ],
            );
            if st.get(&k)?.is_some() {
                return Ok(Err(Refusal::DuplicateDeclaration(format!(
                    "worker {} already contributed {} in {} for {}; use a correction to change it",
                    e.worker,
                    e.scheme.as_str(),
                    e.jurisdiction,
                    e.period
                ))));
            }
            st.put(k, index.to_be_bytes().to_vec());
        }
        EventKind::PlatformOrders(e) => {
            for (i, l) in e.lines.iter().enumerate() {
                if st.get(&person_key(l.worker.as_str()))?.is_none() {
                    return Ok(Err(Refusal::UnregisteredWorker(format!(
                        "{} (lines[{i}])",
                        l.worker
                    ))));
                }
            }
        }
        EventKind::InjuryOccurred(e) => {
            refuse_if!(need_person(st, &e.worker)?);
        }
        EventKind::CoverageCertificateIssued(e) => {
            refuse_if!(need_person(st, &e.worker)?);
        }
        EventKind::WorkPermitLinked(e) => {
            refuse_if!(need_person(st, &e.worker)?);
        }
        EventKind::TransferRequested(e) => {
            refuse_if!(need_person(st, &e.worker)?);
            if st.get(&transfer_key(e.transfer.as_str()))?.is_some() {
                return Ok(Err(Refusal::AlreadyExists(format!(
                    "transfer {} already exists",
                    e.transfer
                ))));
            }
            st.put_json(
                transfer_key(e.transfer.as_str()),
                &TransferRecord {
                    index,
                    worker: e.worker.to_string(),
                    from: e.from.clone(),
                    to: e.to.clone(),
                    completed_at: None,
                },
            );
        }
        EventKind::TransferCompleted(e) => {
            let Some(mut t) = st.get_json::<TransferRecord>(&transfer_key(e.transfer.as_str()))?
            else {
                return Ok(Err(Refusal::NotFound(format!(
                    "transfer {} was never requested",
                    e.transfer
                ))));
            };
            refuse_if!(need_agency(
                signers,
                &t.from,
                "transfer_completed (by the agency of the sending province)"
            ));
            if t.completed_at.is_some() {
                return Ok(Err(Refusal::AlreadyExists(format!(
                    "transfer {} is already completed",
                    e.transfer
                ))));
            }
            refuse_if!(check_transfer_amounts(st, &t, e, stamp)?);
            t.completed_at = Some(index);
            st.put_json(transfer_key(e.transfer.as_str()), &t);
        }
        EventKind::ForeignPeriodsReported(e) => {
            refuse_if!(need_person(st, &e.worker)?);
        }
        EventKind::ParametersPublished(_) => {}
        EventKind::Correction(c) => return correction(st, c, signers, index),
    }
    Ok(Ok(()))
}

/// A `transfer_completed` must carry exactly what the rules compute at that point (docs/rules.md §1).
fn check_transfer_amounts(
    st: &Overlay<'_>,
    t: &TransferRecord,
    e: &TransferCompleted,
    stamp: Instant,
) -> Result<Result<(), Refusal>, StoreFault> {
    let facts = crate::projection::worker_facts(st, &t.worker)?;
    let requested = facts.iter().find_map(|f| match &f.what {
        crate::projection::FactKind::TransferRequested(r) if r.transfer == e.transfer => {
            Some(r.requested)
        }
        _ => None,
    });
    let Some(requested) = requested else {
        return Ok(Err(Refusal::NotFound(format!(
            "transfer {} has no request in force (was it voided?)",
            e.transfer
        ))));
    };
    let stored = crate::projection::StoredParams::read(st)?;
    let params = stored.params();
    let Ok(w) = crate::rules::Worker::new(&t.worker, &facts) else {
        return Ok(Err(Refusal::UnregisteredWorker(t.worker.clone())));
    };
    let (account, pooled) = crate::rules::pension::transfer_amounts(
        &w,
        &params,
        &e.transfer,
        stamp.local_date(),
        requested,
    );
    if (account, pooled) != (e.individual_account, e.pooled_fund) {
        return Ok(Err(Refusal::AmountMismatch(format!(
            "transfer {} from {} to {} carries individual_account {account} and pooled_fund \
             {pooled} (the whole account the relation holds, and the pooled-fund rate of every \
             monthly base it carries); the event says {} and {}",
            e.transfer, t.from, t.to, e.individual_account, e.pooled_fund
        ))));
    }
    Ok(Ok(()))
}

/// A whole-event replacement may change what an event says, not whom or what it is about: the
/// same workers (in the same line positions) and the same contract, transfer, employer, place
/// and period. Anything else is a void and a new event, so every guard and index stays true.
fn same_identity(old: &EventKind, new: &EventKind) -> Result<(), String> {
    if old.workers() != new.workers() {
        return Err("a replacement keeps the event's workers (and their line positions); void the event and submit a new one instead".into());
    }
    let same =
        match (old, new) {
            (EventKind::ContractRegistered(a), EventKind::ContractRegistered(b)) => {
                a.contract == b.contract
            }
            (EventKind::ContractEnded(a), EventKind::ContractEnded(b)) => a.contract == b.contract,
            (EventKind::TransferRequested(a), EventKind::TransferRequested(b)) => {
                a.transfer == b.transfer
            }
            (EventKind::TransferCompleted(_), _) => return Err(
                "a transfer_completed cannot be replaced; void it and complete the transfer again"
                    .into(),
            ),
            (EventKind::ContributionsDeclared(a), EventKind::ContributionsDeclared(b)) => {
                a.employer == b.employer
                    && a.jurisdiction == b.jurisdiction
                    && a.period == b.period
                    && a.back_pay == b.back_pay
                    && a.lines
                        .iter()
                        .map(|l| l.scheme)
                        .eq(b.lines.iter().map(|l| l.scheme))
            }
            (EventKind::FlexibleContribution(a), EventKind::FlexibleContribution(b)) => {
                a.jurisdiction == b.jurisdiction && a.period == b.period && a.scheme == b.scheme
            }
            (EventKind::PlatformOrders(a), EventKind::PlatformOrders(b)) => {
                a.platform == b.platform
                    && a.jurisdiction == b.jurisdiction
                    && a.lines
                        .iter()
                        .map(|l| &l.order)
                        .eq(b.lines.iter().map(|l| &l.order))
            }
            (EventKind::ParametersPublished(a), EventKind::ParametersPublished(b)) => {
                a.jurisdiction == b.jurisdiction
            }
            _ => true,
        };
    if same {
        Ok(())
    } else {
        Err(format!(
            "a replacement {} keeps the identity of the original (its contract, transfer, employer or platform, jurisdiction, period and line schemes or orders); void it and submit a new event to change those",
            new.type_name()
        ))
    }
}

/// A ledger act: the authority rule, a fresh nonce, then the act's own state change (a
/// membership act changes no ledger state: the leader carries it out once it is recorded).
fn ledger_act(
    st: &mut Overlay<'_>,
    a: &LedgerAct,
    signers: &[(PublicKeyBytes, KeyRecord)],
    index: u64,
) -> Result<Result<(), Refusal>, StoreFault> {
    let authority = authority(st)?;
    refuse_if!(authority.permits(&a.act, signers));
    let nonce_key = keys::act_nonce(&a.nonce);
    if let Some(b) = st.get(&nonce_key)? {
        let used = u64::from_be_bytes(b.as_slice().try_into().unwrap_or([0; 8]));
        return Ok(Err(Refusal::AlreadyExists(format!(
            "nonce {:?} was already used by the ledger act at index {used}; sign the act again \
             with a new nonce",
            a.nonce
        ))));
    }
    match &a.act {
        Act::RegisterAgencyKey {
            jurisdiction,
            public_key,
        } => {
            if !authority.jurisdictions.contains(jurisdiction) {
                return Ok(Err(Refusal::NotFound(format!(
                    "{jurisdiction} is not a jurisdiction of this ledger's genesis"
                ))));
            }
            if st.get(&keys::key(public_key))?.is_some() {
                return Ok(Err(Refusal::AlreadyExists(format!(
                    "key {public_key} is already registered"
                ))));
            }
            st.put_json(
                keys::key(public_key),
                &KeyRecord {
                    role: Role::Agency,
                    jurisdiction: jurisdiction.clone(),
                    subject: jurisdiction.to_string(),
                    registered_at: index,
                    revoked_at: None,
                },
            );
        }
        Act::RevokeAgencyKey {
            jurisdiction,
            public_key,
        } => {
            let found = st.get_json::<KeyRecord>(&keys::key(public_key))?;
            let Some(mut rec) = found.filter(|r| r.role == Role::Agency) else {
                return Ok(Err(Refusal::NotFound(format!(
                    "{public_key} is not an agency key of this ledger"
                ))));
            };
            if &rec.jurisdiction != jurisdiction {
                return Ok(Err(Refusal::WrongJurisdiction(format!(
                    "agency key {public_key} belongs to {}, not to {jurisdiction}",
                    rec.jurisdiction
                ))));
            }
            if rec.revoked_at.is_some() {
                return Ok(Err(Refusal::AlreadyVoided(format!(
                    "key {public_key} is already revoked"
                ))));
            }
            rec.revoked_at = Some(index);
            st.put_json(keys::key(public_key), &rec);
        }
        Act::AddLearner { .. } | Act::Promote(_) | Act::Remove(_) => {}
    }
    st.put(nonce_key, index.to_be_bytes().to_vec());
    Ok(Ok(()))
}

fn correction(
    st: &mut Overlay<'_>,
    c: &Correction,
    signers: &[(PublicKeyBytes, KeyRecord)],
    index: u64,
) -> Result<Result<(), Refusal>, StoreFault> {
    let Some(target_index) = st.index_of(&c.target)? else {
        return Ok(Err(Refusal::NotFound(format!(
            "correction target {} is not in the ledger",
            c.target
        ))));
    };
    let target = st.record(target_index)?;
    let body = wire::decode_event(&target.envelope.body, &target.envelope.lines).map_err(|e| {
        StoreFault(format!(
            "stored event {target_index} no longer decodes: {e}"
        ))
    })?;
    // Who may correct: a signer of the target, or the agency of the target's jurisdiction.
    let target_signers: Vec<PublicKeyBytes> = target
        .envelope
        .signatures
        .iter()
        .map(|s| s.public_key)
        .collect();
    let home = event_jurisdiction(&body.kind);
    for (pk, rec) in signers {
        let is_author = target_signers.contains(pk);
        let is_home_agency = rec.role == Role::Agency && home.as_ref() == Some(&rec.jurisdiction);
        if !is_author && !is_home_agency {
            return Ok(Err(Refusal::WrongRole(format!(
                "a correction must be signed by a signer of the corrected event or by the agency of its jurisdiction ({}); key {}… is neither",
                home.map_or("none".to_string(), |j| j.to_string()),
                short(pk)
            ))));
        }
    }
    match &body.kind {
        EventKind::Correction(_)
        | EventKind::KeyRegistered(_)
        | EventKind::KeyRevoked(_)
        | EventKind::LedgerAct(_) => {
            return Ok(Err(Refusal::InvalidField(format!(
                "a {} cannot be corrected{}",
                body.kind.type_name(),
                match body.kind {
                    EventKind::Correction(_) => "; correct the original event again",
                    EventKind::LedgerAct(_) => "; a new ledger act undoes it",
                    _ => "; revoke the key instead",
                }
            ))))
        }
        _ => {}
    }
    if st.get(&keys::voided(&c.target, None))?.is_some() {
        return Ok(Err(Refusal::AlreadyVoided(format!(
            "event {} is already voided",
            c.target
        ))));
    }
    let lines = body.kind.lines();
    match c.line {
        Some(line) => {
            let Some(old) = lines.get(line as usize) else {
                return Ok(Err(Refusal::InvalidField(format!(
                    "line {line} does not exist: event {} has {} lines (numbered from 0)",
                    c.target,
                    lines.len()
                ))));
            };
            if st.get(&keys::voided(&c.target, Some(line)))?.is_some() {
                return Ok(Err(Refusal::AlreadyVoided(format!(
                    "line {line} of event {} is already voided",
                    c.target
                ))));
            }
            if let Some(Replacement::Line(new)) = &c.replacement {
                let same = match (old, new) {
                    (Line::Contribution(a), Line::Contribution(b)) => {
                        a.worker == b.worker && a.scheme == b.scheme
                    }
                    (Line::Order(a), Line::Order(b)) => a.worker == b.worker && a.order == b.order,
                    _ => false,
                };
                if !same {
                    return Ok(Err(Refusal::InvalidField(
                        "a replacement line keeps the line's kind, worker and scheme (or order); to move a contribution to another worker, void the line and declare it anew".into(),
                    )));
                }
            }
            if c.action == CorrectionAction::Void {
                st.put(
                    keys::voided(&c.target, Some(line)),
                    index.to_be_bytes().to_vec(),
                );
                if let (EventKind::ContributionsDeclared(d), Line::Contribution(l)) =
                    (&body.kind, old)
                {
                    release_declaration(st, d, l, target_index)?;
                }
            }
        }
        None => {
            if let Some(Replacement::Event(new)) = &c.replacement {
                if new.type_name() != body.kind.type_name() {
                    return Ok(Err(Refusal::InvalidField(format!(
                        "the replacement is a {} but the target is a {}",
                        new.type_name(),
                        body.kind.type_name()
                    ))));
                }
                if let Err(why) = same_identity(&body.kind, new) {
                    return Ok(Err(Refusal::InvalidField(why)));
                }
                match new.as_ref() {
                    EventKind::ContractRegistered(n) => {
                        if let Some(mut rec) =
                            st.get_json::<ContractRecord>(&contract_key(n.contract.as_str()))?
                        {
                            rec.start = n.start;
                            rec.employer = n.employer.to_string();
                            rec.jurisdiction = n.jurisdiction.clone();
                            st.put_json(contract_key(n.contract.as_str()), &rec);
                        }
                    }
                    EventKind::TransferRequested(n) => {
                        if let Some(mut rec) =
                            st.get_json::<TransferRecord>(&transfer_key(n.transfer.as_str()))?
                        {
                            if rec.completed_at.is_some() {
                                return Ok(Err(Refusal::InvalidField(format!(
                                    "transfer {} is completed; void its completion before changing the request",
                                    n.transfer
                                ))));
                            }
                            rec.from = n.from.clone();
                            rec.to = n.to.clone();
                            st.put_json(transfer_key(n.transfer.as_str()), &rec);
                        }
                    }
                    _ => {}
                }
            }
            if c.action == CorrectionAction::Void {
                match &body.kind {
                    EventKind::TransferCompleted(t) => {
                        // The transfer may complete again, with the right amounts.
                        if let Some(mut rec) =
                            st.get_json::<TransferRecord>(&transfer_key(t.transfer.as_str()))?
                        {
                            rec.completed_at = None;
                            st.put_json(transfer_key(t.transfer.as_str()), &rec);
                        }
                    }
                    EventKind::TransferRequested(t)
                        if st
                            .get_json::<TransferRecord>(&transfer_key(t.transfer.as_str()))?
                            .is_some_and(|r| r.completed_at.is_some()) =>
                    {
                        return Ok(Err(Refusal::InvalidField(format!(
                            "transfer {} is completed; void its completion first",
                            t.transfer
                        ))));
                    }
                    _ => {}
                }
            }
            if c.action == CorrectionAction::Void {
                st.put(keys::voided(&c.target, None), index.to_be_bytes().to_vec());
                if let EventKind::ContributionsDeclared(d) = &body.kind {
                    for l in &d.lines {
                        release_declaration(st, d, l, target_index)?;
                    }
                }
            }
        }
    }
    Ok(Ok(()))
}
