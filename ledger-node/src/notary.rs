//! The node's notary: it signs checkpoints of its own tree, cosigns a peer's checkpoint only when
//! its own tree has the same root at that size, and keeps the evidence when shown one that does
//! not (a fork).
//!
//! Why this is safe without remembering what it signed: a node signs only checkpoints that match
//! its own tree, and its tree only grows (the log is append-only and verified at start-up), so it
//! can never sign two checkpoints of one size with different roots, nor two inconsistent ones.
//!
//! The notary key lives in `DATA_DIR/node.key` (created on first start, mode 0600); its C2SP
//! verifier string is written to `DATA_DIR/node.pub` for trust files. A cosign request counts
//! only when its note carries a valid signature of a node key this node trusts (its own, and the
//! `trust` file named in the node config); peers' cosignatures are verified before they are
//! added. Fork evidence (a trusted node's note that conflicts with this node's tree) is kept in
//! `DATA_DIR/forks/`, one file per distinct note, within [`MAX_FORK_FILES`] and
//! [`MAX_FORK_BYTES`], and reported by `status` and `Checkpoint`.
//!
//! Readers get a cosigned checkpoint from a cache that a background task refreshes (at most once
//! per [`CHECKPOINT_REFRESH_INTERVAL`]), so reads do not fan out to every peer each time.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ed25519_dalek::SigningKey;
use ledger_core::checkpoint::{Checkpoint, NoteKey, SignedNote, Trust};
use ledger_core::event::PublicKeyBytes;
use ledger_core::kv;
use ledger_core::projection::listed_indexes;
use ledger_core::records;
use ledger_core::statement::{Contents, CONTENTS_HEADER};
use tokio::sync::{watch, Notify};
use tonic::Status;

use crate::ledger::Ledger;
use crate::store::SledStore;

/// How long one round of cosigning waits for the peers' cosignatures.
pub const COSIGN_TIMEOUT: Duration = Duration::from_secs(3);
/// Least time between two rounds of cosigning the cached checkpoint: however many readers
/// wait, peers are asked at most this often (each round asks every peer once).
pub const CHECKPOINT_REFRESH_INTERVAL: Duration = Duration::from_millis(500);
/// When nothing wakes it, the refresher still looks this often whether the log grew (a
/// replicated node's log grows without a local reader asking).
pub const CHECKPOINT_REFRESH_IDLE: Duration = Duration::from_secs(5);
/// How long a read waits for a cosigned checkpoint that covers what it needs: a refresh round
/// ([`COSIGN_TIMEOUT`]) after the interval, with room for one retry.
pub const CACHE_WAIT: Duration = Duration::from_secs(10);
/// Most fork notes kept as files: evidence needs one conflicting note per liar, not thousands.
pub const MAX_FORK_FILES: usize = 32;
/// Most bytes of fork notes kept: a bound on the disk a misbehaving peer can make us fill.
pub const MAX_FORK_BYTES: usize = 256 * 1024;

/// Conflicting notes signed by trusted nodes, deduplicated by content hash and bounded.
struct Evidence {
    dir: PathBuf,
    notes: Mutex<Vec<String>>,
    /// Distinct conflicting notes seen beyond the limits: counted, not kept.
    dropped: AtomicU64,
}

pub struct Notary {
    key: SigningKey,
    name: String,
    origin: String,
    evidence: Evidence,
    /// Public URLs of the other nodes asked to cosign.
    peers: Vec<String>,
    /// How the peers are reached (TLS pinned to the members' node keys).
    transport: ledger_client::transport::Transport,
    /// The trust file of the node config; re-read when it changes (`dev` writes it after the
    /// nodes have started and made their keys).
    trust_file: Option<PathBuf>,
    trust_cache: Mutex<Option<(SystemTime, Vec<NoteKey>)>>,
    /// The newest cosigned checkpoint (see [`Notary::spawn_refresher`]).
    cached: watch::Sender<Option<SignedNote>>,
    /// When the cached checkpoint was made (for the metrics).
    cached_at: Mutex<Option<std::time::Instant>>,
    wake: Notify,
}

/// The newest cosigned checkpoint, as the metrics see it.
pub struct CheckpointState {
    pub size: u64,
    pub made: std::time::Instant,
    pub missing: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum NotaryError {
    #[error("notary key {path}: {message}")]
    Key { path: String, message: String },
}

pub fn load_or_create_key(path: &Path) -> Result<SigningKey, NotaryError> {
    ledger_client::keys::load_or_create(path).map_err(|e| NotaryError::Key {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Makes (or keeps) `DATA_DIR/node.key` and writes `DATA_DIR/node.pub`, as the node does on
/// start; returns the hex node key and the checkpoint verifier key.
pub fn init_node_key(data_dir: &Path, node_id: &str) -> Result<(String, String), NotaryError> {
    std::fs::create_dir_all(data_dir).map_err(|e| key_error(data_dir, e))?;
    let key = load_or_create_key(&data_dir.join("node.key"))?;
    let public = PublicKeyBytes(key.verifying_key().to_bytes());
    let verifier = NoteKey::new(node_id, public)
        .map_err(|e| key_error(Path::new("--node-id"), e))?
        .verifier_string();
    let pub_path = data_dir.join("node.pub");
    std::fs::write(&pub_path, format!("{verifier}\n")).map_err(|e| key_error(&pub_path, e))?;
    Ok((hex::encode(public.0), verifier))
}

fn key_error(path: &Path, e: impl ToString) -> NotaryError {
    NotaryError::Key {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl Evidence {
    /// Loads the evidence kept earlier, within the limits.
    fn load(dir: PathBuf) -> Evidence {
        let mut notes = Vec::new();
        let mut bytes = 0;
        let mut dropped = 0;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for t in files.iter().filter_map(|f| std::fs::read_to_string(f).ok()) {
                if notes.len() < MAX_FORK_FILES && bytes + t.len() <= MAX_FORK_BYTES {
                    bytes += t.len();
                    notes.push(t);
                } else {
                    dropped += 1;
                }
            }
        }
        if !notes.is_empty() {
            tracing::error!(count = notes.len(), dir = %dir.display(), "this node holds evidence of a fork");
        }
        Evidence {
            dir,
            notes: Mutex::new(notes),
            dropped: AtomicU64::new(dropped),
        }
    }

    /// Keeps `text` once (by content hash); beyond the limits keeps the first and counts the rest.
    fn keep(&self, text: &str, why: &str) -> Result<(), Status> {
        let mut notes = self.notes.lock().expect("lock");
        if notes.iter().any(|f| f == text) {
            return Ok(());
        }
        let bytes: usize = notes.iter().map(String::len).sum();
        if notes.len() >= MAX_FORK_FILES || bytes + text.len() > MAX_FORK_BYTES {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(dropped = n, "FORK: another conflicting note; the evidence store is full, so it is counted, not kept");
            return Ok(());
        }
        let name = format!("{}.note", &blake3::hash(text.as_bytes()).to_hex()[..32]);
        crate::store::durable::create_dir_all_synced(&self.dir)
            .and_then(|_| {
                crate::store::durable::write_synced(&self.dir.join(name), text.as_bytes())
            })
            .map_err(|e| Status::internal(format!("keeping fork evidence: {e}")))?;
        notes.push(text.to_string());
        tracing::error!(note = %text.replace('\n', "\\n"), why, "FORK: a trusted node presented a note that conflicts with this node's tree");
        Ok(())
    }
}

impl Notary {
    pub fn open(
        data_dir: &Path,
        name: &str,
        origin: &str,
        peers: Vec<String>,
        trust_file: Option<PathBuf>,
    ) -> Result<Notary, NotaryError> {
        crate::store::durable::create_dir_all_synced(data_dir)
            .map_err(|e| key_error(data_dir, e))?;
        let key = load_or_create_key(&data_dir.join("node.key"))?;
        let notary_key = NoteKey::new(name, PublicKeyBytes(key.verifying_key().to_bytes()))
            .map_err(|e| key_error(Path::new("node_id"), e))?;
        let pub_path = data_dir.join("node.pub");
        std::fs::write(&pub_path, format!("{}\n", notary_key.verifier_string()))
            .map_err(|e| key_error(&pub_path, e))?;
        Ok(Notary {
            key,
            name: name.to_string(),
            origin: origin.to_string(),
            evidence: Evidence::load(data_dir.join("forks")),
            peers,
            transport: ledger_client::transport::Transport::Plaintext,
            trust_file,
            trust_cache: Mutex::new(None),
            cached: watch::channel(None).0,
            cached_at: Mutex::new(None),
            wake: Notify::new(),
        })
    }

    pub fn with_transport(mut self, transport: ledger_client::transport::Transport) -> Notary {
        self.transport = transport;
        self
    }

    pub fn verifier(&self) -> NoteKey {
        NoteKey::new(
            &self.name,
            PublicKeyBytes(self.key.verifying_key().to_bytes()),
        )
        .expect("checked at open")
    }

    pub fn forks(&self) -> Vec<String> {
        self.evidence.notes.lock().expect("lock").clone()
    }

    /// The peers asked to cosign.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The newest cosigned checkpoint's size, age and missing cosignatures, if there is one.
    pub fn checkpoint_state(&self) -> Option<CheckpointState> {
        let note = self.cached.borrow().clone()?;
        let made = (*self.cached_at.lock().ok()?)?;
        Some(CheckpointState {
            size: note_size(&note)?,
            made,
            // Its own signature and one per peer make it whole.
            missing: (self.peers.len() + 1).saturating_sub(note.signatures.len()),
        })
    }

    /// Conflicting notes seen beyond the evidence limits.
    pub fn forks_dropped(&self) -> u64 {
        self.evidence.dropped.load(Ordering::Relaxed)
    }

    /// The node keys this node trusts: its own and those of its trust file (re-read when the
    /// file changes). The one place that says who may ask for a cosignature and whose
    /// cosignatures count.
    pub fn trusted_keys(&self) -> Vec<NoteKey> {
        let own = self.verifier();
        let mut keys = vec![own.clone()];
        let Some(path) = &self.trust_file else {
            return keys;
        };
        let mut cache = self.trust_cache.lock().expect("lock");
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if let Some(m) = modified {
            if cache.as_ref().map(|(t, _)| *t) != Some(m) {
                match std::fs::read_to_string(path)
                    .map_err(|e| e.to_string())
                    .and_then(|t| Trust::parse(&t).map_err(|e| e.0))
                {
                    Ok(t) => *cache = Some((m, t.keys())),
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "trust file unreadable; keeping the keys read before")
                    }
                }
            }
        }
        if let Some((_, more)) = cache.as_ref() {
            keys.extend(more.iter().filter(|k| **k != own).cloned());
        }
        keys
    }

    /// A checkpoint of the tree as the store holds it now, signed by this node.
    pub fn checkpoint(&self, store: &SledStore) -> Result<SignedNote, Status> {
        let read = |e: kv::StoreFault| Status::internal(e.to_string());
        let size = records::read_head(store).map_err(read)?.size;
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size,
            root: records::tree_root(store, size).map_err(read)?,
        };
        let mut note = SignedNote::new(cp.body());
        note.sign(&self.name, &self.key)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(note)
    }

    /// Cosigns a trusted node's note (a checkpoint, or a statement's contents) when this node's
    /// own store agrees with it; refuses a note no trusted node signed; refuses (and keeps the
    /// evidence) when a trusted node's note conflicts with this node's tree.
    pub fn cosign(&self, store: &SledStore, text: &str) -> Result<SignedNote, Status> {
        let mut note =
            SignedNote::parse(text).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let signed = note
            .verify(&self.trusted_keys())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if signed.is_empty() {
            return Err(Status::permission_denied(
                "the note carries no valid signature of a node key this node trusts (its own or its trust file's); nothing was kept",
            ));
        }
        let (cp, contents) = if note.text.starts_with(&format!("{CONTENTS_HEADER}\n")) {
            let c = Contents::parse_body(&note.text)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            (c.checkpoint.clone(), Some(c))
        } else {
            let cp = Checkpoint::parse_body(&note.text)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            (cp, None)
        };
        self.check_tree(store, &cp, text)?;
        if let Some(c) = contents {
            self.check_contents(store, &c, text)?;
        }
        note.sign(&self.name, &self.key)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(note)
    }

    /// The checkpoint is of this ledger and equals this node's tree at its size.
    fn check_tree(&self, store: &SledStore, cp: &Checkpoint, text: &str) -> Result<(), Status> {
        if cp.origin != self.origin {
            return Err(Status::invalid_argument(format!(
                "the checkpoint is of ledger {:?}, this node keeps {:?}",
                cp.origin, self.origin
            )));
        }
        let read = |e: kv::StoreFault| Status::internal(e.to_string());
        let size = records::read_head(store).map_err(read)?.size;
        if cp.size > size {
            // Unavailable, the code for "try again": a peer's notary retries on it, and only on
            // it (a fork is FailedPrecondition and ends the attempt).
            return Err(Status::unavailable(format!(
                "this node has applied {size} events, fewer than the checkpoint's {}; ask again later",
                cp.size
            )));
        }
        let mine = records::tree_root(store, cp.size).map_err(read)?;
        if mine != cp.root {
            self.evidence.keep(text, "root")?;
            return Err(Status::failed_precondition(format!(
                "fork: the checkpoint's root at size {} differs from this node's ({}); the \
                 note is kept as evidence",
                cp.size,
                mine.to_hex()
            )));
        }
        Ok(())
    }

    /// The contents note lists exactly the worker's events and the publications this node
    /// holds at that size.
    fn check_contents(&self, store: &SledStore, c: &Contents, text: &str) -> Result<(), Status> {
        let (events, parameters) = listed_indexes(store, &c.worker, c.checkpoint.size)
            .map_err(|e| Status::internal(e.to_string()))?;
        let mine = Contents::new(c.checkpoint.clone(), &c.worker, &events, &parameters);
        if mine != *c {
            self.evidence.keep(text, "statement contents")?;
            return Err(Status::failed_precondition(format!(
                "fork: the statement of {} lists other events than this node holds at size {} \
                 ({} events, {} publications); the note is kept as evidence",
                c.worker,
                c.checkpoint.size,
                events.len(),
                parameters.len()
            )));
        }
        Ok(())
    }

    /// `note` with the verified cosignatures of every peer that cosigns it within
    /// [`COSIGN_TIMEOUT`] (a peer still behind is asked again until then).
    async fn collect_cosignatures(&self, mut note: SignedNote) -> SignedNote {
        let text = note.format();
        let asks = self
            .peers
            .iter()
            .map(|url| ask_cosign(url.clone(), text.clone(), self.transport.clone()));
        let trusted = self.trusted_keys();
        for got in futures_join_all(asks).await.into_iter().flatten() {
            merge_cosignatures(&mut note, got, &trusted);
        }
        note
    }

    /// This node's checkpoint now, cosigned by the peers (one round).
    pub async fn cosigned(&self, store: &SledStore) -> Result<SignedNote, Status> {
        let note = self.checkpoint(store)?;
        Ok(self.collect_cosignatures(note).await)
    }

    /// The signed contents note of `worker`'s statement at checkpoint `cp`, cosigned by the
    /// peers that recompute the same lists.
    pub async fn contents(
        &self,
        cp: &Checkpoint,
        worker: &str,
        events: &[u64],
        parameters: &[u64],
    ) -> Result<SignedNote, Status> {
        let mut note =
            SignedNote::new(Contents::new(cp.clone(), worker, events, parameters).body());
        note.sign(&self.name, &self.key)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(self.collect_cosignatures(note).await)
    }

    /// Keeps a cosigned checkpoint current in the background: when the log has grown, or when
    /// a peer's cosignature is still missing, at most once per [`CHECKPOINT_REFRESH_INTERVAL`].
    pub fn spawn_refresher(self: &Arc<Self>, ledger: Arc<Ledger>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.refresh(&ledger).await;
                tokio::time::sleep(CHECKPOINT_REFRESH_INTERVAL).await;
                let _ = tokio::time::timeout(CHECKPOINT_REFRESH_IDLE, me.wake.notified()).await;
            }
        });
    }

    async fn refresh(&self, ledger: &Ledger) {
        let store = ledger.store();
        let Ok(head) = records::read_head(store) else {
            return;
        };
        let current = self.cached.borrow().clone();
        let fresh = current.is_some_and(|n| {
            note_size(&n) == Some(head.size) && n.signatures.len() > self.peers.len()
        });
        if fresh {
            return;
        }
        match self.cosigned(store).await {
            Ok(note) => {
                self.cached.send_replace(Some(note));
                if let Ok(mut at) = self.cached_at.lock() {
                    *at = Some(std::time::Instant::now());
                }
            }
            Err(e) => tracing::warn!(error = %e.message(), "refreshing the cosigned checkpoint"),
        }
    }

    /// The newest cosigned checkpoint of at least `size` events, waiting (up to [`CACHE_WAIT`])
    /// for the refresher to make one.
    pub async fn cosigned_at_least(&self, size: u64) -> Result<SignedNote, Status> {
        let mut rx = self.cached.subscribe();
        let deadline = tokio::time::Instant::now() + CACHE_WAIT;
        loop {
            if let Some(n) = rx.borrow_and_update().clone() {
                if note_size(&n).is_some_and(|s| s >= size) {
                    return Ok(n);
                }
            }
            self.wake.notify_one();
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    return Err(Status::unavailable(format!(
                        "no cosigned checkpoint of {size} events yet; retry shortly"
                    )))
                }
            }
        }
    }
}

fn note_size(note: &SignedNote) -> Option<u64> {
    Checkpoint::parse_body(&note.text).ok().map(|c| c.size)
}

/// Adds to `note` the signatures of `got` that are by a trusted key and verify over the same
/// text; anything else a peer returns is left out, so one peer cannot spoil the note.
pub fn merge_cosignatures(note: &mut SignedNote, got: SignedNote, trusted: &[NoteKey]) {
    if got.text != note.text {
        return;
    }
    for s in got.signatures {
        if note
            .signatures
            .iter()
            .any(|m| m.name == s.name && m.key_id == s.key_id)
        {
            continue;
        }
        let one = SignedNote {
            text: note.text.clone(),
            signatures: vec![s.clone()],
        };
        match one.verify(trusted) {
            Ok(names) if !names.is_empty() => note.signatures.push(s),
            _ => {
                tracing::warn!(signer = %s.name, "a peer returned a cosignature that does not verify with a trusted key; left out")
            }
        }
    }
}

async fn ask_cosign(
    url: String,
    text: String,
    transport: ledger_client::transport::Transport,
) -> Option<SignedNote> {
    use ledger_proto::rights::{rights_client::RightsClient, CosignRequest};
    let deadline = tokio::time::Instant::now() + COSIGN_TIMEOUT;
    loop {
        let attempt = async {
            let channel = ledger_client::transport::channel(&url, &transport)
                .await
                .ok()?;
            let mut c = RightsClient::new(channel);
            match c.cosign(CosignRequest { note: text.clone() }).await {
                Ok(r) => Some(Ok(r.into_inner().note)),
                Err(s) => Some(Err(s)),
            }
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Some(Ok(note))) => return SignedNote::parse(&note).ok(),
            // The peer has not applied that far yet.
            Ok(Some(Err(s))) if s.code() == tonic::Code::Unavailable => {}
            Ok(Some(Err(s))) => {
                tracing::warn!(peer = %url, error = %s.message(), "a peer refused to cosign");
                return None;
            }
            Ok(None) => {}
            Err(_) => return None,
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs futures concurrently and collects their outputs in order (no extra crate for one join).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn note_key(name: &str, seed: u8) -> NoteKey {
        NoteKey::new(name, PublicKeyBytes(key(seed).verifying_key().to_bytes())).unwrap()
    }

    #[test]
    fn a_bad_or_unknown_cosignature_is_left_out_and_a_good_one_kept() {
        let text = "pcl\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n".to_string();
        let trusted = [note_key("n1", 1), note_key("n2", 2), note_key("n3", 3)];
        let mut mine = SignedNote::new(text.clone());
        mine.sign("n1", &key(1)).unwrap();
        // Peer n2 returns its name and key id with a signature over another text.
        let mut bad =
            SignedNote::new("pcl\n4\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n".into());
        bad.sign("n2", &key(2)).unwrap();
        let forged = SignedNote {
            text: text.clone(),
            signatures: bad.signatures.clone(),
        };
        merge_cosignatures(&mut mine, forged, &trusted);
        // A stranger's signature.
        let mut stranger = SignedNote::new(text.clone());
        stranger.sign("rogue", &key(9)).unwrap();
        merge_cosignatures(&mut mine, stranger, &trusted);
        assert_eq!(mine.signatures.len(), 1, "only n1's own signature");
        assert_eq!(
            mine.verify(&trusted).unwrap(),
            vec!["n1"],
            "the note still verifies"
        );
        let mut good = SignedNote::new(text);
        good.sign("n3", &key(3)).unwrap();
        merge_cosignatures(&mut mine, good, &trusted);
        assert_eq!(mine.verify(&trusted).unwrap(), vec!["n1", "n3"]);
    }

    #[test]
    fn evidence_is_deduplicated_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let ev = Evidence::load(dir.path().join("forks"));
        ev.keep("a note\n", "test").unwrap();
        ev.keep("a note\n", "test").unwrap();
        assert_eq!(
            ev.notes.lock().unwrap().len(),
            1,
            "one file per distinct note"
        );
        for i in 0..MAX_FORK_FILES + 5 {
            ev.keep(&format!("note {i}\n"), "test").unwrap();
        }
        assert_eq!(ev.notes.lock().unwrap().len(), MAX_FORK_FILES);
        assert_eq!(ev.dropped.load(Ordering::Relaxed), 6);
        let files = std::fs::read_dir(dir.path().join("forks")).unwrap().count();
        assert_eq!(files, MAX_FORK_FILES);
        let big = "x".repeat(MAX_FORK_BYTES);
        let ev2 = Evidence::load(dir.path().join("other"));
        ev2.keep(&big, "test").unwrap();
        ev2.keep(&format!("{big}y"), "test").unwrap();
        assert_eq!(
            ev2.notes.lock().unwrap().len(),
            1,
            "the byte limit holds too"
        );
        let again = Evidence::load(dir.path().join("forks"));
        assert_eq!(again.notes.lock().unwrap().len(), MAX_FORK_FILES);
    }
}
