//! The ledger of one node: the store, start-up integrity check, and the appender that orders
//! verified events into entries. Submissions from concurrent requests are grouped into one entry
//! (one stamp, one storage batch, one flush), so durability is paid per entry, not per event.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ledger_core::envelope::VerifiedEvent;
use ledger_core::genesis::Genesis;
use ledger_core::state::{self, keys, Head, StateRead, StoredRecord};

use crate::raft::OutcomeRecord;
use ledger_core::time::Instant;
use ledger_core::wire;
use tokio::sync::{mpsc, oneshot};

use crate::head_marker::HeadMarker;
use crate::store::{SledStore, Store, StoreError};

/// Most events in one entry. Bounds the memory and latency of one apply.
pub const MAX_ENTRY_EVENTS: usize = 4096;
/// Most encoded bytes in one entry.
pub const MAX_ENTRY_BYTES: usize = 32 * 1024 * 1024;
/// Requests waiting for the appender. Beyond it submitters wait (back-pressure), not the heap.
pub const APPEND_QUEUE_DEPTH: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store at {dir} belongs to another ledger (genesis {found}, expected {expected}); point the node at its own data directory")]
    GenesisMismatch {
        dir: String,
        found: String,
        expected: String,
    },
    #[error("store integrity check failed at {dir}: {why}. The store is corrupt: do not serve it; restore the data directory from a replica or backup")]
    Integrity { dir: String, why: String },
    #[error("head marker {path}: {source}")]
    Marker {
        path: String,
        source: std::io::Error,
    },
    #[error("the ledger stopped after a storage failure; restart the node")]
    Stopped,
    #[error("not committed within {0:?}: is a majority of the cluster's nodes up? The events were not acknowledged; submitting them again is safe")]
    NotCommitted(std::time::Duration),
    #[error(
        "the cluster has no leader at the moment (an election is under way); try again shortly"
    )]
    NoLeader,
    #[error("replication: {0}")]
    Replication(String),
}

/// How long a submission waits for its entry to be committed and applied.
pub const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

struct Job {
    events: Vec<VerifiedEvent>,
    reply: oneshot::Sender<Result<Vec<OutcomeRecord>, LedgerError>>,
}

pub struct Ledger {
    store: Arc<SledStore>,
    genesis: Genesis,
    tx: mpsc::Sender<Job>,
    raft: Option<openraft::Raft<crate::raft::TypeConfig>>,
    /// How this node reaches its peers (TLS pinned to their node keys, or plaintext).
    net: crate::tls::Net,
}

/// The node's clock as a ledger instant (UTC). Only the appender and edge checks read it.
pub fn now() -> Instant {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    Instant::from_unix_utc(d.as_secs() as i64, d.subsec_nanos())
        .expect("clock within years 1900..9999")
}

/// Opens the store in `dir`, creating it from `genesis` when new, and verifies its integrity.
fn open_store(
    dir: &Path,
    genesis: &Genesis,
) -> Result<(Arc<SledStore>, HeadMarker, PathBuf, Head), LedgerError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::Io(format!("creating {}: {e}", dir.display())))?;
    let store = Arc::new(SledStore::open(&dir.join("store"))?);
    let marker_path = dir.join("head");
    let (mut marker, marked) =
        HeadMarker::open(&marker_path).map_err(|source| LedgerError::Marker {
            path: marker_path.display().to_string(),
            source,
        })?;
    let expected = genesis.hash();
    let head = match store.get(keys::GENESIS).map_err(|e| StoreError::Io(e.0))? {
        None => {
            if marked.is_some_and(|h| h.size > 0) {
                return Err(LedgerError::Integrity {
                    dir: dir.display().to_string(),
                    why: "the head marker records appended events but the store is empty".into(),
                });
            }
            store.commit(&state::genesis_writes(genesis))?;
            tracing::info!(ledger = %genesis.ledger, "created a new ledger from genesis");
            Head::default()
        }
        Some(found) => {
            if found != expected.0 {
                return Err(LedgerError::GenesisMismatch {
                    dir: dir.display().to_string(),
                    found: hex::encode(found),
                    expected: expected.to_hex(),
                });
            }
            let head =
                verify_log(store.as_ref(), marked).map_err(|why| LedgerError::Integrity {
                    dir: dir.display().to_string(),
                    why,
                })?;
            crate::projection::ensure_current(store.as_ref())?;
            head
        }
    };
    marker.write(&head).map_err(|source| LedgerError::Marker {
        path: marker_path.display().to_string(),
        source,
    })?;
    Ok((store, marker, marker_path, head))
}

impl Ledger {
    /// Opens the store in `dir` (creating it from `genesis` when new), verifies its integrity, and
    /// starts the appender thread.
    pub fn open(dir: &Path, genesis: Genesis) -> Result<Ledger, LedgerError> {
        let (store, marker, marker_path, _) = open_store(dir, &genesis)?;
        let (tx, rx) = mpsc::channel(APPEND_QUEUE_DEPTH);
        let appender = Appender {
            store: store.clone(),
            marker,
            marker_path,
            last_stamp: None,
        };
        std::thread::Builder::new()
            .name("appender".into())
            .spawn(move || appender.run(rx))
            .map_err(|e| StoreError::Io(format!("starting the appender thread: {e}")))?;
        Ok(Ledger {
            store,
            genesis,
            tx,
            raft: None,
            net: crate::tls::Net::default(),
        })
    }

    pub fn store(&self) -> &SledStore {
        &self.store
    }
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }
    /// The head of the applied log, as the store records it (in both modes).
    pub fn head(&self) -> Result<Head, LedgerError> {
        state::read_head(self.store.as_ref()).map_err(|e| LedgerError::Store(StoreError::Io(e.0)))
    }

    /// The Raft handle, when the node replicates.
    pub fn raft(&self) -> Option<&openraft::Raft<crate::raft::TypeConfig>> {
        self.raft.as_ref()
    }

    pub fn net(&self) -> &crate::tls::Net {
        &self.net
    }

    /// Appends verified events in order; one outcome each, after they are durable.
    pub async fn append(
        &self,
        events: Vec<VerifiedEvent>,
    ) -> Result<Vec<OutcomeRecord>, LedgerError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { events, reply })
            .await
            .map_err(|_| LedgerError::Stopped)?;
        rx.await.map_err(|_| LedgerError::Stopped)?
    }

    /// Reads one stored event by index.
    pub fn record(&self, index: u64) -> Result<Option<StoredRecord>, StoreError> {
        match self
            .store
            .get(&keys::event(index))
            .map_err(|e| StoreError::Io(e.0))?
        {
            None => Ok(None),
            Some(b) => StoredRecord::decode(&b)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(e.0)),
        }
    }
}

struct Appender {
    store: Arc<SledStore>,
    marker: HeadMarker,
    marker_path: PathBuf,
    last_stamp: Option<Instant>,
}

impl Appender {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(first) = rx.blocking_recv() {
            // Group whatever else is already waiting into the same entry.
            let mut jobs = vec![first];
            let mut count = jobs[0].events.len();
            let mut bytes: usize = jobs[0]
                .events
                .iter()
                .map(|e| e.envelope.encoded_len())
                .sum();
            while count < MAX_ENTRY_EVENTS && bytes < MAX_ENTRY_BYTES {
                match rx.try_recv() {
                    Ok(job) => {
                        count += job.events.len();
                        bytes += job
                            .events
                            .iter()
                            .map(|e| e.envelope.encoded_len())
                            .sum::<usize>();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            if let Err(e) = self.append_entry(jobs) {
                // The store could not be written or read: stop rather than diverge or lie.
                tracing::error!(error = %e, "storage failure in the appender; stopping the node");
                std::process::exit(70);
            }
        }
    }

    fn append_entry(&mut self, jobs: Vec<Job>) -> Result<(), String> {
        // The stamp never goes backwards, even if the wall clock does.
        let stamp = match self.last_stamp {
            Some(last) if last > now() => last,
            _ => now(),
        };
        self.last_stamp = Some(stamp);
        let mut events: Vec<VerifiedEvent> = Vec::new();
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            replies.push((job.events.len(), job.reply));
            events.extend(job.events);
        }
        let applied =
            state::apply_entry(self.store.as_ref(), stamp, &events).map_err(|e| e.to_string())?;
        self.store
            .commit(&applied.writes)
            .map_err(|e| e.to_string())?;
        self.marker
            .write(&applied.head)
            .map_err(|e| format!("{}: {e}", self.marker_path.display()))?;
        tracing::debug!(
            events = events.len(),
            size = applied.head.size,
            "appended entry"
        );
        let mut outcomes = applied.outcomes.into_iter();
        for (count, reply) in replies {
            let mine: Vec<OutcomeRecord> = outcomes
                .by_ref()
                .take(count)
                .map(crate::raft::record)
                .collect();
            let _ = reply.send(Ok(mine));
        }
        Ok(())
    }
}

/// Walks the whole stored log: each record's checksum, contiguous indexes, event ids that match
/// their bodies, the id index, and the hash chain up to the head; then compares with the marker.
pub fn verify_log(store: &dyn Store, marked: Option<Head>) -> Result<Head, String> {
    let head = state::read_head(store).map_err(|e| e.0)?;
    let mut chain = ledger_core::event::Hash32::default();
    let mut expected_index = 1u64;
    let mut after: Option<Vec<u8>> = None;
    const PAGE: usize = 4096;
    loop {
        let page = store
            .scan(&[keys::EVENT], after.as_deref(), PAGE)
            .map_err(|e| e.to_string())?;
        if page.is_empty() {
            break;
        }
        for (k, v) in &page {
            let rec = StoredRecord::decode(v)
                .map_err(|e| format!("event record {}: {}", hex::encode(&k[1..]), e.0))?;
            if keys::event(rec.index) != *k || rec.index != expected_index {
                return Err(format!(
                    "expected event {expected_index}, found record {} under key {}",
                    rec.index,
                    hex::encode(k)
                ));
            }
            if rec.envelope.id() != rec.event_id {
                return Err(format!(
                    "event {}: body does not hash to its event id",
                    rec.index
                ));
            }
            wire::decode_event(&rec.envelope.body, &rec.envelope.lines)
                .map_err(|e| format!("event {}: stored body no longer decodes: {e}", rec.index))?;
            let link = state::chain_next(&chain, rec.index, &rec.event_id, rec.stamp);
            if link != rec.chain {
                return Err(format!("event {}: hash chain broken", rec.index));
            }
            let indexed = store.get(&keys::event_id(&rec.event_id)).map_err(|e| e.0)?;
            if indexed.as_deref() != Some(&rec.index.to_be_bytes()[..]) {
                return Err(format!(
                    "event {}: id index does not point back to it",
                    rec.index
                ));
            }
            if marked.is_some_and(|m| m.size == rec.index && m.chain != link) {
                return Err(format!(
                    "event {}: differs from the head marker's chain link",
                    rec.index
                ));
            }
            chain = link;
            expected_index += 1;
            if rec.index % 100_000 == 0 {
                tracing::info!(
                    verified = rec.index,
                    of = head.size,
                    "verifying the stored log"
                );
            }
        }
        after = page.last().map(|(k, _)| k.clone());
    }
    let size = expected_index - 1;
    if size != head.size || chain != head.chain {
        return Err(format!(
            "the log holds {size} events but its head says {}",
            head.size
        ));
    }
    if let Some(m) = marked {
        if m.size > size {
            return Err(format!(
                "the head marker records {} appended events but the store holds only {size}: acknowledged events are missing",
                m.size
            ));
        }
    }
    Ok(head)
}

impl Ledger {
    /// Opens the store like [`Ledger::open`], then runs it under Raft: an entry is committed by a
    /// majority before it is applied, on every node, by the same state machine; a submission that
    /// reaches a follower is forwarded to the leader, and answered once this node has applied it
    /// too (read-your-writes on the node the client talks to).
    pub async fn open_replicated(
        dir: &Path,
        genesis: Genesis,
        cfg: &crate::config::RaftConfig,
        net: crate::tls::Net,
    ) -> Result<Ledger, LedgerError> {
        use crate::raft::{network::GrpcNetwork, LedgerStateMachine, RaftLogStore};
        let (store, _marker, _, _) = open_store(dir, &genesis)?;
        let io = |e: sled::Error| LedgerError::Store(StoreError::Io(e.to_string()));
        let log = RaftLogStore::open(store.db()).map_err(io)?;
        let sm = LedgerStateMachine::open(store.clone()).map_err(io)?;
        let config = crate::raft::config(&genesis.ledger, cfg.snapshot_every)
            .map_err(|e| LedgerError::Replication(e.to_string()))?;
        let raft = openraft::Raft::new(
            cfg.id,
            Arc::new(config),
            GrpcNetwork { net: net.clone() },
            log,
            sm,
        )
        .await
        .map_err(|e| LedgerError::Replication(e.to_string()))?;
        let (tx, rx) = mpsc::channel(APPEND_QUEUE_DEPTH);
        let appender = RaftAppender {
            raft: raft.clone(),
            store: store.clone(),
            configured: cfg
                .members
                .iter()
                .map(|m| (m.id, m.public_address.clone()))
                .collect(),
            net: net.clone(),
        };
        tokio::spawn(appender.run(rx));
        Ok(Ledger {
            store,
            genesis,
            tx,
            raft: Some(raft),
            net,
        })
    }
}

/// Groups waiting submissions into one Raft entry (one consensus round and one flush per group),
/// commits it through the leader, and hands each request its outcomes.
struct RaftAppender {
    raft: openraft::Raft<crate::raft::TypeConfig>,
    store: Arc<SledStore>,
    /// Public addresses from `[raft] members`: only for a membership written by the first
    /// release, which recorded Raft addresses alone.
    configured: std::collections::BTreeMap<u64, String>,
    net: crate::tls::Net,
}

impl RaftAppender {
    async fn run(self, mut rx: mpsc::Receiver<Job>) {
        while let Some(first) = rx.recv().await {
            let mut count = first.events.len();
            let mut jobs = vec![first];
            while count < MAX_ENTRY_EVENTS {
                match rx.try_recv() {
                    Ok(job) => {
                        count += job.events.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            let mut events = Vec::with_capacity(count);
            let mut replies = Vec::with_capacity(jobs.len());
            for job in jobs {
                replies.push((job.events.len(), job.reply));
                events.extend(job.events);
            }
            match self.commit(events).await {
                Ok(outcomes) => {
                    let mut outcomes = outcomes.into_iter();
                    for (n, reply) in replies {
                        let _ = reply.send(Ok(outcomes.by_ref().take(n).collect()));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for (_, reply) in replies {
                        let _ = reply.send(Err(match &e {
                            LedgerError::NotCommitted(d) => LedgerError::NotCommitted(*d),
                            LedgerError::NoLeader => LedgerError::NoLeader,
                            _ => LedgerError::Replication(message.clone()),
                        }));
                    }
                }
            }
        }
    }

    async fn commit(&self, events: Vec<VerifiedEvent>) -> Result<Vec<OutcomeRecord>, LedgerError> {
        use prost::Message;
        let stamp = now();
        let request = crate::raft::LedgerRequest {
            stamp_seconds: stamp.unix_seconds(),
            stamp_nanos: stamp.nanos(),
            envelopes: events
                .iter()
                .map(|e| e.envelope.to_pb().encode_to_vec())
                .collect(),
        };
        match tokio::time::timeout(COMMIT_TIMEOUT, self.raft.client_write(request)).await {
            Err(_) => Err(LedgerError::NotCommitted(COMMIT_TIMEOUT)),
            Ok(Ok(response)) => Ok(response.data.outcomes),
            Ok(Err(e)) => match e.forward_to_leader::<crate::raft::LedgerNode>() {
                // Rare (this node is not the leader): encode again rather than copy every entry.
                Some(forward) => {
                    let address = forward
                        .leader_node
                        .as_ref()
                        .map(|n| n.public_address.clone());
                    self.forward(forward.leader_id, address, &events).await
                }
                None => Err(LedgerError::Replication(e.to_string())),
            },
        }
    }

    /// Sends the envelopes to the leader's public service, then waits until this node has applied
    /// them, so the client can read what it wrote from the node it talks to.
    async fn forward(
        &self,
        leader: Option<u64>,
        address: Option<String>,
        events: &[VerifiedEvent],
    ) -> Result<Vec<OutcomeRecord>, LedgerError> {
        use ledger_proto::node as pb;
        let leader = leader.ok_or(LedgerError::NoLeader)?;
        // The leader's public address comes from the Raft membership, so members added at run
        // time are reachable too.
        let address = address
            .filter(|a| !a.is_empty())
            .or_else(|| crate::raft::public_address(&self.raft, leader))
            .filter(|a| !a.is_empty())
            .or_else(|| self.configured.get(&leader).cloned())
            .ok_or_else(|| {
                LedgerError::Replication(format!(
                    "leader {leader} has no public address in the membership"
                ))
            })?;
        // Over TLS the leader must prove the node key the membership records for it.
        let transport = self
            .net
            .to_current(&self.raft, leader)
            .map_err(LedgerError::Replication)?;
        let forwarded = async {
            let channel = ledger_client::transport::channel(&address, &transport)
                .await
                .map_err(|e| {
                    LedgerError::Replication(format!("forwarding to leader {leader}: {e}"))
                })?;
            let mut client = pb::ledger_client::LedgerClient::new(channel)
                .max_decoding_message_size(crate::service::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(crate::service::MAX_MESSAGE_BYTES);
            let events = events.iter().map(|e| e.envelope.to_pb()).collect();
            let response =
                client
                    .submit(pb::SubmitRequest { events })
                    .await
                    .map_err(|s| match s.code() {
                        tonic::Code::DeadlineExceeded => LedgerError::NotCommitted(COMMIT_TIMEOUT),
                        tonic::Code::Unavailable => LedgerError::NoLeader,
                        _ => LedgerError::Replication(format!("leader {leader}: {}", s.message())),
                    })?;
            Ok::<_, LedgerError>(response.into_inner().outcomes)
        };
        let outcomes = tokio::time::timeout(COMMIT_TIMEOUT * 2, forwarded)
            .await
            .map_err(|_| LedgerError::NotCommitted(COMMIT_TIMEOUT * 2))??;
        let records: Vec<OutcomeRecord> = outcomes
            .into_iter()
            .map(|o| match o.result {
                Some(pb::outcome::Result::Receipt(r)) => {
                    let at: Instant = r.appended_at.parse().unwrap_or_else(|_| now());
                    OutcomeRecord::Appended {
                        event_id: hex::encode(r.event_id),
                        index: r.index,
                        stamp_seconds: at.unix_seconds(),
                        stamp_nanos: at.nanos(),
                        duplicate: r.duplicate,
                    }
                }
                Some(pb::outcome::Result::Refusal(r)) => OutcomeRecord::Refused {
                    code: r.code,
                    message: r.message,
                },
                None => OutcomeRecord::Refused {
                    code: "internal".into(),
                    message: "the leader sent an empty outcome".into(),
                },
            })
            .collect();
        let highest = records
            .iter()
            .filter_map(|r| match r {
                OutcomeRecord::Appended { index, .. } => Some(*index),
                OutcomeRecord::Refused { .. } => None,
            })
            .max();
        if let Some(target) = highest {
            let store = self.store.clone();
            self.raft
                .wait(Some(COMMIT_TIMEOUT))
                .metrics(
                    move |_| state::read_head(store.as_ref()).is_ok_and(|h| h.size >= target),
                    "local apply",
                )
                .await
                .map_err(|_| LedgerError::NotCommitted(COMMIT_TIMEOUT))?;
        }
        Ok(records)
    }
}
