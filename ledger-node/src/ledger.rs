//! The ledger of one node: the store, start-up integrity check, and the appender that orders
//! verified events into entries. Submissions from concurrent requests are grouped into one entry
//! (one stamp, one storage batch, one flush), so durability is paid per entry, not per event.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ledger_core::envelope::VerifiedEvent;
use ledger_core::genesis::Genesis;
use ledger_core::state::{self, keys, Head, Outcome, StateRead, StoredRecord};
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
}

struct Job {
    events: Vec<VerifiedEvent>,
    reply: oneshot::Sender<Result<Vec<Outcome>, LedgerError>>,
}

pub struct Ledger {
    store: Arc<SledStore>,
    genesis: Genesis,
    head: Arc<Mutex<Head>>,
    tx: mpsc::Sender<Job>,
}

/// The node's clock as a ledger instant (UTC). Only the appender and edge checks read it.
pub fn now() -> Instant {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    Instant::from_unix_utc(d.as_secs() as i64, d.subsec_nanos())
        .expect("clock within years 1900..9999")
}

impl Ledger {
    /// Opens the store in `dir` (creating it from `genesis` when new), verifies its integrity, and
    /// starts the appender thread.
    pub fn open(dir: &Path, genesis: Genesis) -> Result<Ledger, LedgerError> {
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
                        why: "the head marker records appended events but the store is empty"
                            .into(),
                    });
                }
                store.commit(&state::genesis_writes(&genesis))?;
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
                verify_log(store.as_ref(), marked).map_err(|why| LedgerError::Integrity {
                    dir: dir.display().to_string(),
                    why,
                })?
            }
        };
        marker.write(&head).map_err(|source| LedgerError::Marker {
            path: marker_path.display().to_string(),
            source,
        })?;
        let head = Arc::new(Mutex::new(head));
        let (tx, rx) = mpsc::channel(APPEND_QUEUE_DEPTH);
        let appender = Appender {
            store: store.clone(),
            marker,
            marker_path,
            head: head.clone(),
            last_stamp: None,
        };
        std::thread::Builder::new()
            .name("appender".into())
            .spawn(move || appender.run(rx))
            .map_err(|e| StoreError::Io(format!("starting the appender thread: {e}")))?;
        Ok(Ledger {
            store,
            genesis,
            head,
            tx,
        })
    }

    pub fn store(&self) -> &SledStore {
        &self.store
    }
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }
    pub fn head(&self) -> Head {
        *self.head.lock().expect("head lock")
    }

    /// Appends verified events in order; one outcome each, after they are durable.
    pub async fn append(&self, events: Vec<VerifiedEvent>) -> Result<Vec<Outcome>, LedgerError> {
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
    head: Arc<Mutex<Head>>,
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
        *self.head.lock().expect("head lock") = applied.head;
        tracing::debug!(
            events = events.len(),
            size = applied.head.size,
            "appended entry"
        );
        let mut outcomes = applied.outcomes.into_iter();
        for (count, reply) in replies {
            let mine: Vec<Outcome> = outcomes.by_ref().take(count).collect();
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
