//! The ledger of one node: the store, start-up integrity check, and the appender that orders
//! verified events into entries. Submissions from concurrent requests are grouped into one entry
//! (one stamp, one storage batch, one flush), so durability is paid per entry, not per event.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ledger_core::envelope::VerifiedEvent;
use ledger_core::genesis::Genesis;
use ledger_core::kv::StateRead;
use ledger_core::records;
use ledger_core::records::{Head, StoredRecord};
use ledger_core::schema as keys;
use ledger_core::state;

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
/// Their bytes are bounded too, by `limits::APPEND_QUEUE_BYTES`.
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
        "the cluster has no leader at the moment (an election is under way); wait for the election to end (a few seconds), then submit again: it is safe"
    )]
    NoLeader,
    /// The leader could not be reached: it may have just died, so an election follows.
    #[error("this node cannot reach leader {leader} ({why}); wait for it to answer or for a new leader to be elected, then submit again: it is safe")]
    LeaderUnreachable { leader: u64, why: String },
    /// The leader answered the forwarded submission with an error; its gRPC code is kept.
    #[error("leader {leader}: {message}")]
    Leader {
        leader: u64,
        code: tonic::Code,
        message: String,
    },
    /// This node's Raft stopped (a fatal error or shutdown); other nodes may still serve.
    #[error("replication on this node stopped ({0}); send the submission to another node")]
    RaftStopped(String),
    /// Starting replication failed (configuration, storage); never reaches a client.
    #[error("replication: {0}")]
    Replication(String),
}

impl LedgerError {
    /// The same error for each of the requests that shared one failed entry.
    fn for_each_request(&self) -> LedgerError {
        match self {
            LedgerError::NotCommitted(d) => LedgerError::NotCommitted(*d),
            LedgerError::NoLeader => LedgerError::NoLeader,
            LedgerError::Stopped => LedgerError::Stopped,
            LedgerError::LeaderUnreachable { leader, why } => LedgerError::LeaderUnreachable {
                leader: *leader,
                why: why.clone(),
            },
            LedgerError::Leader {
                leader,
                code,
                message,
            } => LedgerError::Leader {
                leader: *leader,
                code: *code,
                message: message.clone(),
            },
            LedgerError::RaftStopped(why) => LedgerError::RaftStopped(why.clone()),
            LedgerError::Replication(why) => LedgerError::Replication(why.clone()),
            // Not produced by a commit; kept whole in the text, without a second prefix.
            other => LedgerError::Replication(other.to_string()),
        }
    }
}

/// How long a submission waits for its entry to be committed and applied.
pub const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

struct Job {
    events: Vec<VerifiedEvent>,
    reply: oneshot::Sender<Result<Vec<OutcomeRecord>, LedgerError>>,
}

impl Job {
    fn envelope_sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.events.iter().map(|e| e.envelope.encoded_len())
    }
}

/// The appender's byte budget ([`crate::limits::APPEND_QUEUE_BYTES`]), in bytes of envelopes.
fn queue_budget() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(
        crate::limits::APPEND_QUEUE_BYTES,
    ))
}

pub struct Ledger {
    store: Arc<SledStore>,
    genesis: Genesis,
    tx: mpsc::Sender<Job>,
    /// Bytes of envelopes queued for or inside the appender; a request holds its share until
    /// answered.
    queued_bytes: Arc<tokio::sync::Semaphore>,
    raft: Option<openraft::Raft<crate::raft::TypeConfig>>,
    /// The Raft service checks received snapshots against this state machine before the install.
    raft_state: Option<crate::raft::LedgerStateMachine>,
    /// How this node reaches its peers (TLS pinned to their node keys, or plaintext).
    net: crate::raft::Net,
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
    crate::store::durable::create_dir_all_synced(dir).map_err(|e| StoreError::Io(e.to_string()))?;
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
            queued_bytes: queue_budget(),
            raft: None,
            raft_state: None,
            net: crate::raft::Net::default(),
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
        records::read_head(self.store.as_ref()).map_err(|e| LedgerError::Store(StoreError::Io(e.0)))
    }

    /// The Raft handle, when the node replicates.
    pub fn raft(&self) -> Option<&openraft::Raft<crate::raft::TypeConfig>> {
        self.raft.as_ref()
    }

    /// The internal Raft service of a replicated ledger.
    pub fn raft_service(
        &self,
    ) -> Option<ledger_proto::raft::raft_server::RaftServer<crate::raft::network::RaftService>>
    {
        let (raft, state) = (self.raft.clone()?, self.raft_state.clone()?);
        Some(crate::raft::network::RaftService::server(
            raft,
            state,
            self.net.clone(),
        ))
    }

    /// The Raft state machine of a replicated ledger (backups read a consistent header from it).
    pub fn state_machine(&self) -> Option<&crate::raft::LedgerStateMachine> {
        self.raft_state.as_ref()
    }

    /// How this node reaches its peers.
    pub fn net(&self) -> &crate::raft::Net {
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
        let job = Job { events, reply };
        // Wait for room in the byte budget; a request is never larger than the whole budget.
        let bytes: usize = job.envelope_sizes().sum();
        let share = u32::try_from(bytes.min(crate::limits::APPEND_QUEUE_BYTES)).unwrap_or(u32::MAX);
        let _room = self
            .queued_bytes
            .acquire_many(share)
            .await
            .map_err(|_| LedgerError::Stopped)?;
        self.tx.send(job).await.map_err(|_| LedgerError::Stopped)?;
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
        let started = std::time::Instant::now();
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
        let metrics = crate::metrics::get();
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.count_applied(events.iter().zip(&applied.outcomes).filter_map(|(e, o)| {
            matches!(o, state::Outcome::Appended(r) if !r.duplicate).then_some(&e.envelope)
        }));
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

/// Opens the stopped node's store under `dir`, verifies its log, and rebuilds the projection.
pub fn rebuild_projection_in(
    dir: &std::path::Path,
    progress: impl FnMut(u64, u64),
) -> Result<u64, LedgerError> {
    let path = dir.join("store");
    if !path.exists() {
        return Err(StoreError::Io(format!(
            "{} holds no ledger store; check the config's data_dir",
            dir.display()
        ))
        .into());
    }
    let store = crate::store::SledStore::open(&path).map_err(|e| {
        StoreError::Io(format!(
            "{e} (is the node still running? stop it before rebuilding)"
        ))
    })?;
    let (_, marked) =
        crate::head_marker::HeadMarker::open(&dir.join("head")).map_err(|source| {
            LedgerError::Marker {
                path: dir.join("head").display().to_string(),
                source,
            }
        })?;
    verify_log(&store, marked).map_err(|why| LedgerError::Integrity {
        dir: dir.display().to_string(),
        why,
    })?;
    Ok(crate::projection::rebuild(&store, progress)?)
}

/// The leader's answer to one forwarded event, as this node's appender answers it.
fn outcome_record(o: ledger_proto::node::Outcome) -> OutcomeRecord {
    use ledger_proto::node as pb;
    match o.result {
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
    }
}

/// One stored record in its place: under its own key at the expected index, its body hashing
/// to its id and still decoding, its chain link following `chain`, and the id index pointing
/// back to it. Returns its chain link.
fn verify_record(
    store: &dyn Store,
    ledger: &ledger_core::envelope::LedgerId,
    key: &[u8],
    rec: &StoredRecord,
    expected_index: u64,
    chain: &ledger_core::event::Hash32,
) -> Result<ledger_core::event::Hash32, String> {
    if keys::event(rec.index) != key || rec.index != expected_index {
        return Err(format!(
            "expected event {expected_index}, found record {} under key {}",
            rec.index,
            hex::encode(key)
        ));
    }
    if rec.envelope.id(ledger) != rec.event_id {
        return Err(format!(
            "event {}: body does not hash to its event id",
            rec.index
        ));
    }
    wire::decode_event(&rec.envelope.body, &rec.envelope.lines)
        .map_err(|e| format!("event {}: stored body no longer decodes: {e}", rec.index))?;
    let link = records::chain_next(chain, rec.index, &rec.event_id, rec.stamp);
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
    Ok(link)
}

/// Walks the whole stored log: each record's checksum, contiguous indexes, event ids that match
/// their bodies, the id index, and the hash chain up to the head; then compares with the marker.
pub fn verify_log(store: &dyn Store, marked: Option<Head>) -> Result<Head, String> {
    let head = records::read_head(store).map_err(|e| e.0)?;
    let ledger = records::read_ledger_id(store).map_err(|e| e.0)?;
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
            let link = verify_record(store, &ledger, k, &rec, expected_index, &chain)?;
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
        net: crate::raft::Net,
    ) -> Result<Ledger, LedgerError> {
        use crate::raft::{network::GrpcNetwork, LedgerStateMachine, RaftLogStore};
        let (store, marker, _, _) = open_store(dir, &genesis)?;
        let io = |e: sled::Error| LedgerError::Store(StoreError::Io(e.to_string()));
        let log = RaftLogStore::open(&store).map_err(io)?;
        let sm = LedgerStateMachine::open(store.clone(), &dir.join("snapshots"), marker)
            .map_err(|e| LedgerError::Store(StoreError::Io(e.to_string())))?;
        let config = crate::raft::config(&genesis.ledger, cfg.snapshot_every)
            .map_err(|e| LedgerError::Replication(e.to_string()))?;
        let raft_state = Some(sm.clone());
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
            queued_bytes: queue_budget(),
            raft: Some(raft),
            raft_state,
            net,
        })
    }
}

/// The error of a forwarded submission, its gRPC code kept: a leader that timed out did not
/// commit (safe to submit again); one that stopped answering may be dying.
fn leader_error(leader: u64, s: tonic::Status) -> LedgerError {
    match s.code() {
        tonic::Code::DeadlineExceeded => LedgerError::NotCommitted(COMMIT_TIMEOUT),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
            LedgerError::LeaderUnreachable {
                leader,
                why: s.message().to_string(),
            }
        }
        code => LedgerError::Leader {
            leader,
            code,
            message: s.message().to_string(),
        },
    }
}

/// Takes the waiting jobs that fit one entry with `first`: at most [`MAX_ENTRY_EVENTS`] events
/// and [`crate::limits::MAX_RAFT_ENTRY_BYTES`] of encoded entry. The first job that does not fit
/// is returned to open the next entry (a single job always fits: the edge bounds requests).
fn group(first: Job, rx: &mut mpsc::Receiver<Job>) -> (Vec<Job>, Option<Job>) {
    use crate::limits::MAX_RAFT_ENTRY_BYTES;
    let mut count = first.events.len();
    let mut bytes = crate::raft::LedgerRequest::encoded_len_of(first.envelope_sizes());
    let mut jobs = vec![first];
    while count < MAX_ENTRY_EVENTS && bytes < MAX_RAFT_ENTRY_BYTES {
        let Ok(job) = rx.try_recv() else { break };
        let more = crate::raft::LedgerRequest::encoded_len_of(job.envelope_sizes())
            - crate::limits::RAFT_ENTRY_OVERHEAD_BYTES;
        if count + job.events.len() > MAX_ENTRY_EVENTS || bytes + more > MAX_RAFT_ENTRY_BYTES {
            return (jobs, Some(job));
        }
        count += job.events.len();
        bytes += more;
        jobs.push(job);
    }
    (jobs, None)
}

/// Groups waiting submissions into one Raft entry (one consensus round and one flush per group),
/// commits it through the leader, and hands each request its outcomes.
struct RaftAppender {
    raft: openraft::Raft<crate::raft::TypeConfig>,
    store: Arc<SledStore>,
    /// Public addresses from `[raft] members`: only for a membership written by the first
    /// release, which recorded Raft addresses alone.
    configured: std::collections::BTreeMap<u64, String>,
    net: crate::raft::Net,
}

impl RaftAppender {
    async fn run(self, mut rx: mpsc::Receiver<Job>) {
        // A job that did not fit the previous entry opens the next one.
        let mut carried: Option<Job> = None;
        loop {
            let first = match carried.take() {
                Some(job) => job,
                None => match rx.recv().await {
                    Some(job) => job,
                    None => return,
                },
            };
            let (jobs, next) = group(first, &mut rx);
            carried = next;
            let count = jobs.iter().map(|j| j.events.len()).sum();
            let mut events = Vec::with_capacity(count);
            let mut replies = Vec::with_capacity(jobs.len());
            for job in jobs {
                replies.push((job.events.len(), job.reply));
                events.extend(job.events);
            }
            let started = std::time::Instant::now();
            match self.commit(events).await {
                Ok(outcomes) => {
                    crate::metrics::get()
                        .commit_seconds
                        .observe(started.elapsed().as_secs_f64());
                    let mut outcomes = outcomes.into_iter();
                    for (n, reply) in replies {
                        let _ = reply.send(Ok(outcomes.by_ref().take(n).collect()));
                    }
                }
                Err(e) => {
                    for (_, reply) in replies {
                        let _ = reply.send(Err(e.for_each_request()));
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
                None => Err(match e {
                    openraft::error::RaftError::Fatal(f) => LedgerError::RaftStopped(f.to_string()),
                    other => LedgerError::Replication(other.to_string()),
                }),
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
            .ok_or_else(|| LedgerError::LeaderUnreachable {
                leader,
                why: "it has no public address in the membership".into(),
            })?;
        // Over TLS the leader must prove the node key the membership records for it.
        let transport = self
            .net
            .to_current(&self.raft, leader)
            .map_err(LedgerError::Replication)?;
        let forwarded = async {
            let channel = ledger_client::transport::channel(&address, &transport)
                .await
                .map_err(|why| LedgerError::LeaderUnreachable {
                    leader,
                    why: format!("{address}: {why}"),
                })?;
            let mut client = pb::ledger_client::LedgerClient::new(channel)
                .max_decoding_message_size(crate::limits::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(crate::limits::MAX_MESSAGE_BYTES);
            let events = events.iter().map(|e| e.envelope.to_pb()).collect();
            let response = client
                .submit(pb::SubmitRequest { events })
                .await
                .map_err(|s| leader_error(leader, s))?;
            Ok::<_, LedgerError>(response.into_inner().outcomes)
        };
        let outcomes = tokio::time::timeout(COMMIT_TIMEOUT * 2, forwarded)
            .await
            .map_err(|_| LedgerError::NotCommitted(COMMIT_TIMEOUT * 2))??;
        let records: Vec<OutcomeRecord> = outcomes.into_iter().map(outcome_record).collect();
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
                    move |_| records::read_head(store.as_ref()).is_ok_and(|h| h.size >= target),
                    "local apply",
                )
                .await
                .map_err(|_| LedgerError::NotCommitted(COMMIT_TIMEOUT))?;
        }
        Ok(records)
    }
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn a_shared_failure_is_not_prefixed_again() {
        let e = LedgerError::Replication("raft is not initialised".into());
        assert_eq!(
            e.for_each_request().to_string(),
            "replication: raft is not initialised"
        );
        let e = LedgerError::LeaderUnreachable {
            leader: 1,
            why: "refused".into(),
        };
        assert_eq!(e.for_each_request().to_string(), e.to_string());
    }
}
